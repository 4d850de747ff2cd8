//! One job in the foreground (`reelsmith render`, `bench render`): the job is queued in the store
//! like any other and run by the scheduler restricted to it — the same admission, bookkeeping,
//! crash recovery, events and export as the queue — while the caller shows its progress.
//!
//! A render that was killed or interrupted left its job in the store; running the same command
//! again adopts that job (same script text, parameters and output folder) instead of queueing a
//! second one, and finished stages come from the cache. When another process already runs the
//! scheduler on this data dir (the studio, `reelsmith run`), the job is queued to it and followed
//! through the store until it ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{enqueue_prepared, JobParams, LockError, Scheduler, SchedulerConfig, SchedulerLock};
use crate::config::{ChannelSet, Dirs};
use crate::engines::models::StageModels;
use crate::pipeline::job::{self, JobError, RenderRequest};
use crate::pipeline::runner::{RunEvent, RunSummary};
use crate::pipeline::JobSpec;
use crate::store::{JobId, JobStatus, Store};

/// How a foreground job ended.
#[derive(Debug)]
pub enum Ended {
    /// Finished and exported into `project_dir`; `summary` holds the stage reports and
    /// artifacts (absent when another process ran it).
    Done {
        project_dir: PathBuf,
        summary: Option<RunSummary>,
    },
    /// Interrupted (Ctrl-C, SIGTERM): the job stays queued; finished stages are kept.
    Interrupted,
}

/// A job run in the foreground.
#[derive(Debug)]
pub struct Foreground {
    pub job: JobId,
    pub spec: JobSpec,
    /// An unfinished job of an earlier run was picked up again.
    pub adopted: bool,
    pub ended: Ended,
}

/// What the foreground run tells its caller besides the stage events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Picked up job `0` left unfinished by an earlier run.
    Adopted(JobId),
    /// Another process runs the scheduler; the job was queued to it and is being followed.
    Following { job: JobId, pid: Option<u32> },
}

/// Validates `req`, queues (or adopts) its job and runs it to the end on `parallelism` CPU
/// slots. `shutdown` interrupts it (the job stays queued). Stage starts, progress and results
/// go to `on_event`; adoption and hand-over to a running studio to `on_notice`.
pub async fn run(
    dirs: &Dirs,
    req: &RenderRequest,
    parallelism: usize,
    shutdown: CancellationToken,
    mut on_event: impl FnMut(&RunEvent) + Send + 'static,
    mut on_notice: impl FnMut(Notice),
) -> Result<Foreground, JobError> {
    let failed = |m: String| JobError::Failed(m);
    // Bad input is refused before anything is written.
    let channels =
        ChannelSet::load(Some(&dirs.config)).map_err(|e| JobError::Input(e.to_string()))?;
    let text = crate::script::read_text(&req.script).map_err(|e| JobError::Input(e.to_string()))?;
    let models = StageModels::resolve(dirs).map_err(JobError::Input)?;
    let spec = job::prepare_text(req, &text, &channels, &models)?;
    let mut req = req.clone();
    req.out = std::path::absolute(&req.out)
        .map_err(|e| JobError::Input(format!("--out {}: {e}", req.out.display())))?;
    std::fs::create_dir_all(&dirs.data)
        .map_err(|e| failed(format!("{}: {e}", dirs.data.display())))?;
    let store = Store::open(&dirs.db_path()).map_err(|e| failed(e.to_string()))?;
    let earlier = unfinished_job(&store, &req, &text, &spec)?;
    let adopted = earlier.is_some();
    let id = match earlier {
        Some(id) => {
            on_notice(Notice::Adopted(id));
            id
        }
        None => enqueue_prepared(&store, &req, text, &spec, 0)?,
    };
    let lock = match SchedulerLock::acquire(&dirs.data) {
        Ok(l) => Some(l),
        Err(LockError::Held { .. }) => None,
        Err(e) => return Err(failed(e.to_string())),
    };
    let Some(lock) = lock else {
        on_notice(Notice::Following {
            job: id,
            pid: SchedulerLock::holder_pid(&dirs.data),
        });
        let ended = follow(&store, id, &shutdown).await?;
        return Ok(Foreground {
            job: id,
            spec,
            adopted,
            ended,
        });
    };

    let cfg = SchedulerConfig {
        cpu_slots: parallelism.max(1),
        window: 1,
        inbox: false,
        exit_when_idle: true,
        pulls: 0,
        run_publications: false,
        only_job: Some(id),
        workers: Some(super::worker::default_config(&dirs.data).map_err(failed)?),
        ..SchedulerConfig::default()
    };
    let log: Box<dyn FnMut(&str) + Send> = Box::new(|line| tracing::info!("{line}"));
    let mut sched = Scheduler::new(
        dirs.clone(),
        crate::stages::registry(),
        cfg,
        shutdown.clone(),
        log,
    )
    .map_err(|e| failed(e.to_string()))?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    sched.set_events(tx);
    let display = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            on_event(&ev);
        }
    });
    let run = sched.run().await;
    let summary = sched.take_summary(id);
    drop(sched);
    let _ = display.await;
    drop(lock);
    run.map_err(|e| failed(e.to_string()))?;
    let ended = match finished(&store, id)? {
        Some(project_dir) => Ended::Done {
            project_dir,
            summary,
        },
        None => Ended::Interrupted,
    };
    Ok(Foreground {
        job: id,
        spec,
        adopted,
        ended,
    })
}

/// An unfinished render job of the same script text, parameters and output folder.
fn unfinished_job(
    store: &Store,
    req: &RenderRequest,
    text: &str,
    spec: &JobSpec,
) -> Result<Option<JobId>, JobError> {
    let params = JobParams::of(req).to_value()?;
    let out_dir = req.out.join(&spec.project);
    let rows = store
        .active_jobs()
        .map_err(|e| JobError::Failed(e.to_string()))?;
    Ok(rows
        .into_iter()
        .filter(|r| {
            r.kind == "render"
                && !r.cancel_requested
                && r.params == params
                && Path::new(&r.out_dir) == out_dir
                && r.script.as_deref() == Some(text)
        })
        .map(|r| r.id)
        .max())
}

/// Where job `id` was exported once it is done; `None` while it is still queued or running,
/// its error when it failed or was cancelled.
fn finished(store: &Store, id: JobId) -> Result<Option<PathBuf>, JobError> {
    let row = store
        .job(id)
        .map_err(|e| JobError::Failed(e.to_string()))?
        .ok_or_else(|| JobError::Failed(format!("job {id} disappeared from the store")))?;
    match row.status {
        JobStatus::Done => Ok(Some(PathBuf::from(row.out_dir))),
        JobStatus::Failed => {
            Err(JobError::Failed(row.error.unwrap_or_else(|| {
                format!("job {id} failed; see `reelsmith logs {id}`")
            })))
        }
        JobStatus::Cancelled => Err(JobError::Failed(format!(
            "job {id} was cancelled (`reelsmith retry {id}` queues it again)"
        ))),
        _ => Ok(None),
    }
}

/// Follows a job another process runs until it ends (or `shutdown`: then it stays queued).
async fn follow(store: &Store, id: JobId, shutdown: &CancellationToken) -> Result<Ended, JobError> {
    let mut seen: std::collections::BTreeMap<String, String> = Default::default();
    loop {
        if let Ok(tasks) = store.tasks(id) {
            for t in tasks {
                let status = t.status.as_str().to_string();
                if seen.get(&t.stage) != Some(&status) {
                    if t.status != crate::store::TaskStatus::Pending {
                        let extra = t
                            .error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default();
                        eprintln!("{:>16}  {status}{extra}", t.stage);
                    }
                    seen.insert(t.stage.clone(), status);
                }
            }
        }
        if let Some(project_dir) = finished(store, id)? {
            return Ok(Ended::Done {
                project_dir,
                summary: None,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            _ = shutdown.cancelled() => return Ok(Ended::Interrupted),
        }
    }
}
