//! The scheduler's side of the workers: starting them, sending orders, reading their messages
//! on a thread per worker, reaping them (`wait4`, for the exit status and peak memory), killing
//! the ones that do not answer, recycling the ones that grew, and describing them for `status`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use super::{Death, FromWorker, ToWorker};
use crate::store::TaskId;

pub type WorkerId = u64;

/// How to start a worker: the program and its arguments (the device is appended).
#[derive(Clone, Debug)]
pub struct WorkerSpawn {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl WorkerSpawn {
    /// This executable as `reelsmith --data-dir <data> worker --stages <stages>`.
    pub fn current_exe(data: &std::path::Path, stages: &str) -> Result<Self, String> {
        let program = std::env::current_exe()
            .map_err(|e| format!("finding this program to start stage workers: {e}"))?;
        Ok(Self {
            program,
            args: vec![
                "--data-dir".into(),
                data.to_string_lossy().into_owned(),
                "worker".into(),
                "--stages".into(),
                stages.into(),
            ],
        })
    }
}

/// Worker hygiene settings.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub spawn: WorkerSpawn,
    /// Recycle a worker after this many tasks.
    pub max_tasks: u32,
    /// Recycle a worker whose resident memory grew this much over its size after its first task.
    pub max_rss_growth: u64,
    /// Address-space limit of CPU workers (`RLIMIT_AS`); GPU drivers reserve huge address
    /// ranges, so GPU workers are never limited.
    pub memory_limit: Option<u64>,
}

impl PoolConfig {
    pub fn new(spawn: WorkerSpawn) -> Self {
        Self {
            spawn,
            max_tasks: 500,
            max_rss_growth: 8 << 30,
            memory_limit: None,
        }
    }
}

/// What the pool reports to the scheduler's loop.
#[derive(Debug)]
pub enum PoolMsg {
    From(WorkerId, FromWorker),
    /// The worker is gone (its stdout closed and it was reaped).
    Exited(WorkerId, Death),
}

/// A worker as `status --json` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    pub pid: u32,
    /// `cpu` or `gpu0`, `gpu1` …
    pub device: String,
    pub models: Vec<String>,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    /// What it runs now.
    pub tasks: Vec<WorkerTask>,
    pub tasks_done: u32,
    pub uptime_s: f64,
}

/// A task running on a worker, as `status --json` and the studio show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerTask {
    pub job: i64,
    pub task: TaskId,
    /// The node, e.g. `keyframes` or `voice:en`.
    pub stage: String,
    pub progress: f32,
    /// Its progress has not moved for the scheduler's stall time.
    pub stalled: bool,
}

struct Worker {
    /// The jobs whose spec it was sent, oldest first (at most `SPECS_KEPT`).
    specs: VecDeque<i64>,
    pid: u32,
    device: Option<u32>,
    stdin: Option<ChildStdin>,
    running: BTreeSet<TaskId>,
    tasks_done: u32,
    models: Vec<String>,
    started: Instant,
    baseline_rss: Option<u64>,
    retiring: bool,
    killed: Arc<AtomicBool>,
    exited: Arc<AtomicBool>,
}

/// What the pool knew of a worker that exited.
#[derive(Debug)]
pub struct Gone {
    pub pid: u32,
    pub device: Option<u32>,
    pub running: Vec<TaskId>,
    pub retiring: bool,
}

pub struct Pool {
    cfg: PoolConfig,
    workers: BTreeMap<WorkerId, Worker>,
    tx: UnboundedSender<PoolMsg>,
    next: WorkerId,
    /// Start times (spawn → ready) of the workers so far, for the benchmark.
    pub spawn_times: Arc<Mutex<Vec<Duration>>>,
}

impl Pool {
    pub fn new(cfg: PoolConfig, tx: UnboundedSender<PoolMsg>) -> Self {
        Self {
            cfg,
            workers: BTreeMap::new(),
            tx,
            next: 1,
            spawn_times: Default::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// The worker for a task on `device` (the GPU's own worker; for the CPU an idle one),
    /// started when there is none.
    pub fn assign(&mut self, device: Option<u32>, task: TaskId) -> Result<WorkerId, String> {
        let found = self
            .workers
            .iter()
            .find(|(_, w)| {
                w.device == device
                    && !w.retiring
                    && !w.exited.load(Ordering::SeqCst)
                    && (device.is_some() || w.running.is_empty())
            })
            .map(|(id, _)| *id);
        let id = match found {
            Some(id) => id,
            None => self.spawn(device)?,
        };
        if let Some(w) = self.workers.get_mut(&id) {
            w.running.insert(task);
        }
        Ok(id)
    }

    fn spawn(&mut self, device: Option<u32>) -> Result<WorkerId, String> {
        let id = self.next;
        self.next += 1;
        let mut cmd = Command::new(&self.cfg.spawn.program);
        cmd.args(&self.cfg.spawn.args);
        if let Some(d) = device {
            cmd.arg("--device").arg(d.to_string());
            cmd.env(super::WORKER_GPU_ENV, d.to_string());
        }
        // CUDA numbers GPUs fastest first unless told otherwise; the ledger numbers them as
        // NVML does (PCI bus order). One order everywhere, so GPU i is the same card for both.
        if std::env::var_os("CUDA_DEVICE_ORDER").is_none() {
            cmd.env("CUDA_DEVICE_ORDER", "PCI_BUS_ID");
        }
        // Their own process group: a Ctrl-C or a hang-up meant for the studio reaches the
        // scheduler, which stops them in order, not the workers directly.
        cmd.process_group(0);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let limit = if device.is_none() {
            self.cfg.memory_limit
        } else {
            None
        };
        // SAFETY: only async-signal-safe calls (prctl, getppid, setrlimit, _exit) between fork
        // and exec.
        let parent = std::process::id() as libc::pid_t;
        unsafe {
            cmd.pre_exec(move || {
                // Die with the scheduler: no orphan keeps a GPU after the studio is gone.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                if let Some(bytes) = limit {
                    let lim = libc::rlimit {
                        rlim_cur: bytes as libc::rlim_t,
                        rlim_max: bytes as libc::rlim_t,
                    };
                    libc::setrlimit(libc::RLIMIT_AS, &lim);
                }
                Ok(())
            });
        }
        let t0 = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "starting a stage worker ({}): {e}",
                self.cfg.spawn.program.display()
            )
        })?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err("starting a stage worker: its pipes are missing".into());
        };
        // The reader thread reaps it; the Child handle is not needed (dropping it neither
        // waits nor kills).
        drop(child);
        let killed = Arc::new(AtomicBool::new(false));
        let exited = Arc::new(AtomicBool::new(false));
        let tail: Arc<Mutex<VecDeque<String>>> = Default::default();
        let err_thread = {
            let tail = tail.clone();
            std::thread::Builder::new()
                .name(format!("worker-{pid}-stderr"))
                .spawn(move || {
                    for line in BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        tracing::info!("worker {pid}: {line}");
                        let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                        if t.len() == 20 {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                })
                .map_err(|e| format!("starting a stage worker's reader: {e}"))?
        };
        {
            let (tx, killed, exited, times) = (
                self.tx.clone(),
                killed.clone(),
                exited.clone(),
                self.spawn_times.clone(),
            );
            std::thread::Builder::new()
                .name(format!("worker-{pid}"))
                .spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        match serde_json::from_str::<FromWorker>(&line) {
                            Ok(msg) => {
                                if matches!(msg, FromWorker::Ready { .. }) {
                                    if let Ok(mut t) = times.lock() {
                                        t.push(t0.elapsed());
                                    }
                                }
                                if tx.send(PoolMsg::From(id, msg)).is_err() {
                                    break;
                                }
                            }
                            Err(e) => {
                                tracing::warn!("worker {pid}: unreadable message ({e}): {line}")
                            }
                        }
                    }
                    let _ = err_thread.join();
                    let (status, peak_rss) = reap(pid);
                    exited.store(true, Ordering::SeqCst);
                    let stderr_tail = tail
                        .lock()
                        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
                        .unwrap_or_default();
                    let _ = tx.send(PoolMsg::Exited(
                        id,
                        Death {
                            status,
                            peak_rss,
                            stderr_tail,
                            killed_by_us: killed.load(Ordering::SeqCst),
                        },
                    ));
                })
                .map_err(|e| format!("starting a stage worker's reader: {e}"))?;
        }
        tracing::info!(
            "started stage worker {pid} for {}",
            device
                .map(|d| format!("GPU {d}"))
                .unwrap_or("the CPU".into())
        );
        self.workers.insert(
            id,
            Worker {
                specs: VecDeque::new(),
                pid,
                device,
                stdin,
                running: BTreeSet::new(),
                tasks_done: 0,
                models: Vec::new(),
                started: Instant::now(),
                baseline_rss: None,
                retiring: false,
                killed,
                exited,
            },
        );
        Ok(id)
    }

    /// Sends `msg` to worker `id`. An error means the worker is gone (its exit follows).
    pub fn send(&mut self, id: WorkerId, msg: &ToWorker) -> Result<(), String> {
        let w = self
            .workers
            .get_mut(&id)
            .ok_or_else(|| format!("worker {id} is gone"))?;
        let stdin = w
            .stdin
            .as_mut()
            .ok_or_else(|| format!("worker {} is closing", w.pid))?;
        let line = serde_json::to_string(msg).map_err(|e| e.to_string())?;
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.write_all(b"\n"))
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("worker {}: {e}", w.pid))
    }

    /// Sends `order` to worker `id`, without the job's spec when the worker has it.
    pub fn run(&mut self, id: WorkerId, mut order: super::Order) -> Result<(), String> {
        if let Some(w) = self.workers.get_mut(&id) {
            if w.specs.contains(&order.job) {
                order.spec = None;
            } else if order.spec.is_some() {
                w.specs.push_back(order.job);
                if w.specs.len() > super::SPECS_KEPT {
                    w.specs.pop_front();
                }
            }
        }
        self.send(id, &ToWorker::Run(Box::new(order)))
    }

    /// Task `task` finished on worker `id`, which now holds `models`. Recycles the worker if it
    /// ran its quota of tasks or grew too much; returns why, if it did.
    pub fn finished(&mut self, id: WorkerId, task: TaskId, models: Vec<String>) -> Option<String> {
        let (max_tasks, max_growth) = (self.cfg.max_tasks, self.cfg.max_rss_growth);
        let w = self.workers.get_mut(&id)?;
        w.running.remove(&task);
        w.tasks_done += 1;
        w.models = models;
        let (rss, _) = crate::rt::memory_of(Some(w.pid));
        let baseline = *w.baseline_rss.get_or_insert(rss);
        let why = if w.tasks_done >= max_tasks {
            Some(format!("it ran {} tasks", w.tasks_done))
        } else if rss > baseline.saturating_add(max_growth) {
            Some(format!(
                "its memory grew from {} MB to {} MB",
                baseline >> 20,
                rss >> 20
            ))
        } else {
            None
        };
        if why.is_some() {
            w.retiring = true;
        }
        if w.retiring && w.running.is_empty() {
            self.retire(id);
        }
        why.map(|w| format!("recycling worker {}: {w}", self.pid(id).unwrap_or(0)))
    }

    /// Asks worker `id` to exit once idle (closing its stdin).
    fn retire(&mut self, id: WorkerId) {
        if let Some(w) = self.workers.get_mut(&id) {
            w.retiring = true;
            if let Some(mut stdin) = w.stdin.take() {
                let _ = stdin.write_all(b"{\"t\":\"exit\"}\n");
            }
        }
    }

    /// Ends worker `id` now (SIGKILL).
    pub fn kill(&mut self, id: WorkerId) {
        if let Some(w) = self.workers.get_mut(&id) {
            w.retiring = true;
            w.killed.store(true, Ordering::SeqCst);
            if !w.exited.load(Ordering::SeqCst) {
                // SAFETY: signalling a child we have not reaped yet (its pid is still ours).
                unsafe {
                    libc::kill(w.pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
    }

    /// Forgets worker `id`, which exited; what it was running is returned.
    pub fn exited(&mut self, id: WorkerId) -> Option<Gone> {
        let w = self.workers.remove(&id)?;
        Some(Gone {
            pid: w.pid,
            device: w.device,
            running: w.running.into_iter().collect(),
            retiring: w.retiring,
        })
    }

    /// The workers' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.workers.values().map(|w| w.pid).collect()
    }

    pub fn pid(&self, id: WorkerId) -> Option<u32> {
        self.workers.get(&id).map(|w| w.pid)
    }

    /// The worker of GPU `device`, if one runs.
    pub fn of_device(&self, device: u32) -> Option<WorkerId> {
        self.workers
            .iter()
            .find(|(_, w)| w.device == Some(device) && !w.exited.load(Ordering::SeqCst))
            .map(|(id, _)| *id)
    }

    /// Every worker, with `describe` naming a running task.
    pub fn views(&self, describe: impl Fn(TaskId) -> WorkerTask) -> Vec<WorkerView> {
        self.workers
            .values()
            .map(|w| {
                let (rss, peak) = crate::rt::memory_of(Some(w.pid));
                WorkerView {
                    pid: w.pid,
                    device: w
                        .device
                        .map(|d| format!("gpu{d}"))
                        .unwrap_or_else(|| "cpu".into()),
                    models: w.models.clone(),
                    rss_bytes: rss,
                    peak_rss_bytes: peak,
                    tasks: w.running.iter().map(|t| describe(*t)).collect(),
                    tasks_done: w.tasks_done,
                    uptime_s: w.started.elapsed().as_secs_f64(),
                }
            })
            .collect()
    }

    /// Asks every worker to exit, waits up to `grace` for them, then kills the rest. Their
    /// exits still arrive as messages.
    pub fn shutdown(&mut self, grace: Duration) {
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        for id in &ids {
            self.retire(*id);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && self
                .workers
                .values()
                .any(|w| !w.exited.load(Ordering::SeqCst))
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        for id in ids {
            self.kill(id);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Nobody is left to supervise them.
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
    }
}

/// Waits for `pid`; its wait status and peak resident memory (bytes).
fn reap(pid: u32) -> (Option<i32>, u64) {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data filled by the kernel; pid is our unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == pid as libc::pid_t {
            return (Some(status), (usage.ru_maxrss.max(0) as u64) << 10);
        }
        if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return (None, 0);
    }
}
