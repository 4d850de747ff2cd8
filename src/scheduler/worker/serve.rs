//! The worker process (`reelsmith worker`): reads orders from stdin, runs each stage on a
//! thread of its own, and writes progress, checkpoints and results to the protocol pipe.
//!
//! stdout is the protocol: it is moved to a private descriptor at start and descriptor 1 is
//! pointed at stderr, so nothing a stage or a native library prints can corrupt a message.
//! When stdin closes or the parent changes (the scheduler died), the worker exits at once.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::fd::FromRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{fault, FromWorker, Order, ToWorker};
use crate::config::Dirs;
use crate::pipeline::runner::{self, Stages};
use crate::pipeline::{ArtifactCache, JobSpec, StageEvent};
use crate::store::{JobId, TaskId};

type Out = Arc<Mutex<std::io::BufWriter<std::fs::File>>>;

fn send(out: &Out, msg: &FromWorker) {
    let Ok(line) = serde_json::to_string(msg) else {
        return;
    };
    let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
    // A write error means the scheduler is gone; the stdin watcher ends the process.
    let _ = writeln!(w, "{line}").and_then(|()| w.flush());
}

/// Takes descriptor 1 for the protocol and sends everything else written to stdout to stderr.
fn protocol_pipe() -> std::io::Result<std::fs::File> {
    // SAFETY: plain descriptor calls on descriptors this process owns; the new descriptor is
    // owned by the returned File alone.
    unsafe {
        let fd = libc::dup(1);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        Ok(std::fs::File::from_raw_fd(fd))
    }
}

/// Ends the process when the parent that started it is gone (a backstop to stdin closing).
fn watch_parent() {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: as above.
        if unsafe { libc::getppid() } != parent {
            std::process::exit(0);
        }
    });
}

/// Runs a worker over `dirs` with `stages` until told to exit or orphaned; returns its exit code.
pub fn serve(dirs: &Dirs, stages: Stages) -> i32 {
    let out: Out = match protocol_pipe() {
        Ok(f) => Arc::new(Mutex::new(std::io::BufWriter::new(f))),
        Err(e) => {
            eprintln!("error: worker: taking the protocol pipe: {e}");
            return 1;
        }
    };
    watch_parent();
    let cache = match ArtifactCache::open(&dirs.artifacts(), &dirs.tmp()) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("error: worker: {}: {e}", dirs.artifacts().display());
            return 1;
        }
    };
    send(
        &out,
        &FromWorker::Ready {
            pid: std::process::id(),
        },
    );
    let running: Arc<Mutex<BTreeMap<TaskId, CancellationToken>>> = Default::default();
    // The specs of the last jobs the scheduler sent (it keeps the same list).
    let mut specs: std::collections::VecDeque<(JobId, Arc<JobSpec>)> = Default::default();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else {
            break;
        };
        let msg: ToWorker = match serde_json::from_str(&line) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("worker: unreadable order ({e}): {line}");
                return 2;
            }
        };
        match msg {
            ToWorker::Run(mut order) => {
                let spec = match order.spec.take() {
                    Some(spec) => {
                        let spec: Arc<JobSpec> = Arc::from(spec);
                        specs.push_back((order.job, spec.clone()));
                        if specs.len() > super::SPECS_KEPT {
                            specs.pop_front();
                        }
                        spec
                    }
                    None => match specs.iter().find(|(j, _)| *j == order.job) {
                        Some((_, s)) => s.clone(),
                        None => {
                            eprintln!(
                                "worker: an order for job {} came without its spec",
                                order.job
                            );
                            return 2;
                        }
                    },
                };
                let token = CancellationToken::new();
                running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(order.task, token.clone());
                let (out, cache, running) = (out.clone(), cache.clone(), running.clone());
                let stage = stages.get(&order.node.kind).cloned();
                std::thread::spawn(move || {
                    run_order(*order, &spec, stage, &cache, &token, &out, &running);
                });
            }
            ToWorker::Cancel { task } => {
                let mut r = running.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(t) = r.remove(&task) {
                    t.cancel();
                }
            }
            ToWorker::Evict { device, model } => {
                crate::engines::loaded::evict(device, &model);
            }
            ToWorker::Exit => return 0,
        }
    }
    // stdin closed: the scheduler is gone or done with us. Running stages are abandoned (their
    // temp dirs are swept by the next start); checkpoints already saved stay.
    0
}

fn run_order(
    order: Order,
    spec: &JobSpec,
    stage: Option<Arc<dyn crate::pipeline::Stage>>,
    cache: &ArtifactCache,
    cancel: &CancellationToken,
    out: &Out,
    running: &Mutex<BTreeMap<TaskId, CancellationToken>>,
) {
    let task = order.task;
    let Some(stage) = stage else {
        eprintln!("worker: no implementation for stage `{}`", order.node.kind);
        std::process::exit(2);
    };
    fault::inject(&order, &spec.project);
    let progress = |fraction: f32| send(out, &FromWorker::Progress { task, fraction });
    let events = |event: StageEvent| send(out, &FromWorker::Event { task, event });
    let (report, artifact) = runner::execute_node(
        spec,
        stage.as_ref(),
        &order.node,
        &order.key,
        &order.engine,
        &order.inputs,
        cache,
        cancel,
        order.device,
        &progress,
        &events,
    );
    // Forget the token before answering: the same task may be ordered again right after.
    running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&task);
    send(
        out,
        &FromWorker::Done {
            task,
            report: Box::new(report),
            artifact,
            models: crate::engines::loaded::models(),
        },
    );
}
