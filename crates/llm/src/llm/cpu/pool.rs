//! A tiny persistent thread pool tuned for many short parallel regions.
//!
//! A decode step runs a few hundred parallel regions of a few microseconds
//! each, so wake-up latency dominates. Workers spin briefly on an atomic job
//! word before parking on a condition variable, and the calling thread takes
//! part in the work.
//!
//! Workers *join* a job explicitly. When the caller has handed out every task
//! it closes the job and waits only for the workers that joined, so a worker
//! that the OS has descheduled (a busy machine) never stalls the caller: the
//! caller simply does the work itself.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before parking.
const SPIN_TIME: Duration = Duration::from_micros(200);
/// Bit layout of the job word: generation above `GEN_SHIFT`, a "closed" flag,
/// and the number of joined workers in the low bits.
const GEN_SHIFT: u32 = 20;
const CLOSED: usize = 1 << 19;
const JOINED_MASK: usize = CLOSED - 1;

type Task = dyn Fn(usize) + Sync;

struct Shared {
    /// Generation, closed flag and joined count of the current job.
    state: AtomicUsize,
    /// Next task index to hand out.
    next: AtomicUsize,
    /// Number of tasks in the current job.
    n_tasks: AtomicUsize,
    /// Joined workers that have left the current job.
    left: AtomicUsize,
    /// Workers currently parked (or about to park).
    sleepers: AtomicUsize,
    shutdown: AtomicBool,
    /// The current job's closure, valid while a job is open.
    job: Mutex<Option<JobPtr>>,
    lock: Mutex<()>,
    cv: Condvar,
}

/// A lifetime-erased pointer to the job closure.
#[derive(Clone, Copy)]
struct JobPtr(*const Task);

// SAFETY: the pointee is `Sync`, and `ThreadPool::run` keeps it alive until
// every worker that joined the job has left it.
unsafe impl Send for JobPtr {}

/// A fixed-size pool; `run` splits a job into indexed tasks.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serialises concurrent `run` calls from different threads.
    run_lock: Mutex<()>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads())
            .finish()
    }
}

fn generation(state: usize) -> usize {
    state >> GEN_SHIFT
}

impl ThreadPool {
    /// Creates a pool that runs jobs on `threads` threads in total (the caller
    /// plus `threads - 1` workers).
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            state: AtomicUsize::new(CLOSED),
            next: AtomicUsize::new(0),
            n_tasks: AtomicUsize::new(0),
            left: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            job: Mutex::new(None),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        });
        let workers = (1..threads.max(1))
            .map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("llm-worker-{i}"))
                    .spawn(move || worker_loop(&s))
                    .expect("spawning an LLM worker thread")
            })
            .collect();
        Self {
            shared,
            workers,
            run_lock: Mutex::new(()),
        }
    }

    /// Total number of threads that execute tasks.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(i)` for every `i in 0..n_tasks`, spread over the pool, and
    /// returns when all calls have finished.
    pub fn run(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if n_tasks == 0 {
            return;
        }
        if self.workers.is_empty() || n_tasks == 1 {
            for i in 0..n_tasks {
                f(i);
            }
            return;
        }
        let _guard = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        let short: *const (dyn Fn(usize) + Sync + '_) = f;
        // SAFETY: only the lifetime is erased; the job is closed and every
        // worker that joined it has left before this function returns.
        let ptr: *const Task = unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Task>(short)
        };
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(JobPtr(ptr));
        s.n_tasks.store(n_tasks, Ordering::SeqCst);
        s.next.store(0, Ordering::SeqCst);
        s.left.store(0, Ordering::SeqCst);
        let gen = generation(s.state.load(Ordering::SeqCst)) + 1;
        s.state.store(gen << GEN_SHIFT, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.cv.notify_all();
        }
        loop {
            let i = s.next.fetch_add(1, Ordering::Relaxed);
            if i >= n_tasks {
                break;
            }
            f(i);
        }
        // Close the job: no worker may join from now on.
        let joined = s.state.fetch_or(CLOSED, Ordering::SeqCst) & JOINED_MASK;
        let mut spins = 0u32;
        while s.left.load(Ordering::Acquire) < joined {
            spins += 1;
            if spins > 2000 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Tries to join job generation `gen`; fails when it is closed or superseded.
fn try_join(s: &Shared, gen: usize) -> bool {
    let mut cur = s.state.load(Ordering::SeqCst);
    loop {
        if generation(cur) != gen || cur & CLOSED != 0 {
            return false;
        }
        match s
            .state
            .compare_exchange_weak(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => return true,
            Err(v) => cur = v,
        }
    }
}

fn worker_loop(s: &Shared) {
    let mut seen = generation(s.state.load(Ordering::SeqCst));
    loop {
        // Wait for a new job: spin, then yield, then park.
        let start = Instant::now();
        let mut spins = 0u32;
        let gen = loop {
            let g = generation(s.state.load(Ordering::Acquire));
            if g != seen {
                break g;
            }
            if s.shutdown.load(Ordering::Relaxed) {
                return;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && start.elapsed() > SPIN_TIME {
                let mut l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                while generation(s.state.load(Ordering::SeqCst)) == seen
                    && !s.shutdown.load(Ordering::SeqCst)
                {
                    l = s.cv.wait(l).unwrap_or_else(|e| e.into_inner());
                }
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
                drop(l);
                if s.shutdown.load(Ordering::SeqCst) {
                    return;
                }
                break generation(s.state.load(Ordering::SeqCst));
            }
            std::hint::spin_loop();
        };
        seen = gen;
        if !try_join(s, gen) {
            continue;
        }
        let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(JobPtr(ptr)) = job {
            let n = s.n_tasks.load(Ordering::Acquire);
            // SAFETY: we joined an open job; `run` keeps the closure alive
            // until `left` counts us.
            let f = unsafe { &*ptr };
            loop {
                let i = s.next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                f(i);
            }
        }
        s.left.fetch_add(1, Ordering::Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _l = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.cv.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Number of physical cores (hyper-threads counted once), at least 1.
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return logical;
    };
    let mut cores = std::collections::HashSet::new();
    let mut phys = "";
    for line in info.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim() {
                "physical id" => phys = v.trim(),
                "core id" => {
                    cores.insert(format!("{phys}/{}", v.trim()));
                }
                _ => {}
            }
        }
    }
    if cores.is_empty() {
        logical
    } else {
        cores.len().min(logical).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_task_once() {
        let pool = ThreadPool::new(3);
        for round in 0..300 {
            let hits: Vec<AtomicUsize> = (0..37).map(|_| AtomicUsize::new(0)).collect();
            pool.run(hits.len(), &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "round {round}"
            );
            if round % 50 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}
