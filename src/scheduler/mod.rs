//! The durable scheduler: runs the queue stored in SQLite, stage task by stage task, across jobs.
//!
//! - The store is the truth. Every state change is committed before it is acted on; another
//!   process talks to the scheduler by writing the store (`add`, `cancel`, `pause` …), and the
//!   scheduler notices through `PRAGMA data_version` within one poll interval.
//! - One reducer: this loop alone owns job and task state. Workers (blocking threads) run a stage
//!   and hand back a report; the loop records it, unlocks dependents and starts what fits.
//! - Tasks, not jobs, are scheduled: a window of jobs is live at once and their ready tasks
//!   interleave (one job's encoding overlaps another's drawing), best job first by priority
//!   with aging, first come first served within a level.
//! - Admission is a ledger: CPU slots and RAM for every task, VRAM on a device for GPU tasks.
//! - On start, tasks that were running when the studio died are resumed (finished stages are
//!   cache hits); a task that was running through `crash_limit` consecutive crashes is failed.

mod enqueue;
pub mod foreground;
mod launch;
pub mod lock;
pub mod policy;
mod reduce;
mod supervise;
pub mod worker;

pub use enqueue::{enqueue, enqueue_prepared, new_tasks, JobParams};
use supervise::{Running, IN_PROCESS};

use crate::engines::models::StageModels;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use crate::config::{ChannelSet, Dirs};
use crate::gpu::{Admission, CpuBudget, GpuMonitor, Ledger, LedgerConfig};
use crate::pipeline::job::{self, RenderRequest};
use crate::pipeline::runner::{self, NodeReport, NodeStatus, Planned, RunSummary, Stages};
use crate::pipeline::{ArtifactCache, ArtifactRef, JobSpec, Quality};
use crate::store::{EventLevel, JobId, JobRow, JobStatus, Store, StoreError, TaskId, TaskStatus};
use crate::watch::{Inbox, Outcome};
use worker::pool::PoolMsg;
use worker::{Death, FromWorker, Pool, PoolConfig, ToWorker, WorkerId};

pub use lock::{LockError, SchedulerLock};

#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// CPU slots (tasks running at once on the CPU side).
    pub cpu_slots: usize,
    /// How often the store, the inbox and finished tasks are looked at.
    pub poll: Duration,
    /// Waiting this long raises a job by one priority level (no starvation).
    pub aging: Duration,
    /// Consecutive crashes a task may be running through before it is failed.
    pub crash_limit: i64,
    /// How many jobs are live (planned, with tasks interleaving) at once.
    pub window: usize,
    /// Watch `<data>/inbox/`.
    pub inbox: bool,
    /// Stop when nothing is queued or running (tests, benchmarks, batch use).
    pub exit_when_idle: bool,
    /// Times a task that ran out of GPU memory is retried (after freeing cached models,
    /// waiting 1 s, 2 s, 4 s …) before it fails.
    pub oom_retries: u32,
    /// Copy outputs to the job's out dir when it finishes (off only for benchmarks with no-op stages).
    pub export: bool,
    /// Model downloads (`pulls`) run at once; 0 leaves queued pulls to another process.
    pub pulls: usize,
    /// Run this job only, leaving the rest of the queue to whoever runs it (`render`'s
    /// foreground run).
    pub only_job: Option<JobId>,
    /// Run stages in worker processes (None: on threads of this process, for tests with
    /// stages of their own and for benchmark baselines).
    pub workers: Option<PoolConfig>,
    /// A running task whose progress has not moved for this long is reported as stalled.
    pub stall_after: Duration,
    /// A cancelled task on a worker that has not answered within this is ended by stopping
    /// its worker.
    pub kill_grace: Duration,
    /// Queue the publications a finished job's script asks for (`publish:`).
    pub publish: bool,
    /// Run queued publications (uploads to the platforms) on a thread of their own. Off for
    /// `render`'s foreground run, which ends with its job and runs its own job's uploads in
    /// the foreground afterwards.
    pub run_publications: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            cpu_slots: cores,
            poll: Duration::from_millis(250),
            aging: Duration::from_secs(60),
            crash_limit: 3,
            window: (cores * 2).max(4),
            inbox: true,
            exit_when_idle: false,
            export: true,
            oom_retries: 3,
            pulls: 2,
            only_job: None,
            workers: None,
            stall_after: Duration::from_secs(600),
            kill_grace: Duration::from_secs(3),
            publish: true,
            run_publications: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeState {
    Pending,
    Running,
    Finished(NodeStatus),
}

struct LiveNode {
    planned: Planned,
    task: TaskId,
    state: NodeState,
    slot: Option<u64>,
    /// Where it runs and what it declared, for out-of-memory handling.
    device: Option<u32>,
    resources: crate::pipeline::Resources,
    oom_tries: u32,
    /// Back-off: not started again before this.
    not_before: Option<Instant>,
}

struct LiveJob {
    row: JobRow,
    spec: Arc<JobSpec>,
    nodes: Vec<LiveNode>,
    artifacts: BTreeMap<String, ArtifactRef>,
    reports: Vec<NodeReport>,
    cancel: CancellationToken,
    started: Instant,
}

impl LiveJob {
    fn running(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.state == NodeState::Running)
            .count()
    }

    fn user_cancelled(&self) -> bool {
        self.row.cancel_requested
    }
}

/// What a run of the scheduler did (for `run`'s summary and the benchmark).
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub jobs_done: usize,
    pub jobs_failed: usize,
    pub tasks_run: usize,
    pub tasks_cached: usize,
}

type TaskResult = (JobId, usize, NodeReport, Option<ArtifactRef>);

/// The settings key under which the running scheduler publishes its workers as JSON
/// (a list of [`worker::WorkerView`]), for `status --json` and the studio.
pub const WORKERS_SETTING: &str = "workers";

pub struct Scheduler {
    dirs: Dirs,
    store: Store,
    cache: Arc<ArtifactCache>,
    stages: Stages,
    channels: ChannelSet,
    cfg: SchedulerConfig,
    cpu: CpuBudget,
    gpus: GpuMonitor,
    ledger: Ledger,
    /// Active jobs not yet in the window.
    queue: BTreeMap<JobId, JobRow>,
    live: BTreeMap<JobId, LiveJob>,
    queue_paused: bool,
    last_version: Option<i64>,
    shutdown: CancellationToken,
    progress: Arc<Mutex<BTreeMap<TaskId, f32>>>,
    log: Box<dyn FnMut(&str) + Send>,
    inbox: Option<(Inbox, std::sync::mpsc::Receiver<()>)>,
    last_inbox_scan: Instant,
    next_slot: u64,
    stats: RunStats,
    /// Start nothing new; stop once the running tasks are done (a hand-over to another process).
    drain: CancellationToken,
    /// The VRAM ledger as last written to the store (for monitors: the studio's GPU pane).
    published_ledger: Option<String>,
    /// Runs the queued model downloads.
    pulls: Option<crate::hub::queue::PullRunner>,
    /// The thread running publications, while it runs.
    publisher: Option<std::thread::JoinHandle<()>>,
    last_publish_check: Option<std::time::Instant>,
    /// Where stage starts, progress and results are also sent (a foreground `render`).
    events: Option<tokio::sync::mpsc::UnboundedSender<runner::RunEvent>>,
    /// The stage reports and artifacts of `only_job` once it finished.
    summary: Option<(JobId, RunSummary)>,
    /// The stage workers (None: stages run on threads of this process).
    pool: Option<Pool>,
    /// Where workers (and in-process threads) report.
    tx: UnboundedSender<PoolMsg>,
    rx: Option<UnboundedReceiver<PoolMsg>>,
    running: BTreeMap<TaskId, Running>,
    /// The worker list as last written to the store, and when.
    published_workers: Option<(String, Instant)>,
}

/// The settings key under which the running scheduler publishes its VRAM ledger as JSON
/// ([`LedgerSnapshot`]), so a monitor in another process can draw reservations.
pub const LEDGER_SETTING: &str = "gpu_ledger";

/// What the scheduler publishes about GPU memory.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct LedgerSnapshot {
    /// The scheduler's process (its own GPU memory use is this pid's).
    pub pid: u32,
    /// Its stage workers' processes (their GPU memory is the studio's too).
    #[serde(default)]
    pub worker_pids: Vec<u32>,
    pub devices: Vec<crate::gpu::DeviceLedger>,
}

fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

impl Scheduler {
    /// A scheduler over `dirs` with the given stage implementations. `shutdown` stops it
    /// gracefully: no new tasks, running ones are cancelled and checkpointed.
    pub fn new(
        dirs: Dirs,
        stages: Stages,
        cfg: SchedulerConfig,
        shutdown: CancellationToken,
        log: Box<dyn FnMut(&str) + Send>,
    ) -> Result<Self, SchedError> {
        std::fs::create_dir_all(&dirs.data)
            .map_err(|e| SchedError::Io(format!("{}: {e}", dirs.data.display())))?;
        let store = Store::open(&dirs.db_path())?;
        let cache = Arc::new(
            ArtifactCache::open(&dirs.artifacts(), &dirs.tmp())
                .map_err(|e| SchedError::Io(format!("{}: {e}", dirs.artifacts().display())))?,
        );
        let channels =
            ChannelSet::load(Some(&dirs.config)).map_err(|e| SchedError::Io(e.to_string()))?;
        let gpus = GpuMonitor::from_env();
        let ledger = Ledger::new(&gpus.sample(), LedgerConfig::default());
        let inbox = if cfg.inbox {
            let mut ib = Inbox::open(&dirs.data.join("inbox")).map_err(|e| {
                SchedError::Io(format!("{}: {e}", dirs.data.join("inbox").display()))
            })?;
            let rx = ib.watch().map_err(|e| SchedError::Io(e.to_string()))?;
            Some((ib, rx))
        } else {
            None
        };
        let cpu = CpuBudget::new(cfg.cpu_slots.max(1), CpuBudget::from_system().free_ram());
        let pulls = if cfg.pulls == 0 {
            None
        } else {
            let registry = crate::hub::Registry::load(Some(&dirs.config))
                .map_err(|e| SchedError::Io(e.to_string()))?;
            let hub = crate::hub::HubConfig::from_env(|k| std::env::var(k).ok());
            Some(crate::hub::queue::PullRunner::new(hub, registry, cfg.pulls))
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let pool = cfg.workers.clone().map(|w| Pool::new(w, tx.clone()));
        Ok(Self {
            dirs,
            store,
            cache,
            stages,
            channels,
            cfg,
            cpu,
            gpus,
            ledger,
            queue: BTreeMap::new(),
            live: BTreeMap::new(),
            queue_paused: false,
            last_version: None,
            shutdown,
            progress: Arc::new(Mutex::new(BTreeMap::new())),
            log,
            inbox,
            last_inbox_scan: Instant::now() - Duration::from_secs(10),
            next_slot: 1,
            stats: RunStats::default(),
            drain: CancellationToken::new(),
            published_ledger: None,
            pulls,
            publisher: None,
            last_publish_check: None,
            events: None,
            summary: None,
            pool,
            tx,
            rx: Some(rx),
            running: BTreeMap::new(),
            published_workers: None,
        })
    }

    /// Uses these GPUs instead of what the environment says (tests, demos).
    pub fn set_gpus(&mut self, gpus: GpuMonitor) {
        self.ledger = Ledger::new(&gpus.sample(), LedgerConfig::default());
        self.gpus = gpus;
    }

    /// Downloads queued models from `hub` with this registry (tests; the default comes from the
    /// environment and `<config>/models`). No effect when `pulls` is 0.
    pub fn set_hub(&mut self, hub: crate::hub::HubConfig, registry: crate::hub::Registry) {
        if self.pulls.is_some() {
            self.pulls = Some(crate::hub::queue::PullRunner::new(
                hub,
                registry,
                self.cfg.pulls,
            ));
        }
    }

    /// Cancelling `token` drains the scheduler: it starts nothing new and returns from
    /// [`Scheduler::run`] once the running tasks have finished (nothing is checkpointed or lost;
    /// the jobs stay queued for whoever runs the queue next).
    pub fn set_drain(&mut self, token: CancellationToken) {
        self.drain = token;
    }

    /// Also sends every task's start, progress and result to `tx` (a foreground run's display).
    pub fn set_events(&mut self, tx: tokio::sync::mpsc::UnboundedSender<runner::RunEvent>) {
        self.events = Some(tx);
    }

    /// The stage reports and artifacts of job `id` (the `only_job`) after it finished.
    pub fn take_summary(&mut self, id: JobId) -> Option<RunSummary> {
        match self.summary.take() {
            Some((j, s)) if j == id => Some(s),
            other => {
                self.summary = other;
                None
            }
        }
    }

    fn emit(&self, event: runner::RunEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    /// Writes the ledger to the store when it changed (at most once per loop turn).
    fn publish_ledger(&mut self) {
        if self.gpus.is_cpu_only() && self.published_ledger.is_some() {
            return;
        }
        let snap = LedgerSnapshot {
            pid: std::process::id(),
            worker_pids: self.pool.as_ref().map(Pool::pids).unwrap_or_default(),
            devices: self.ledger.snapshot(),
        };
        let Ok(json) = serde_json::to_string(&snap) else {
            return;
        };
        if self.published_ledger.as_deref() == Some(json.as_str()) {
            return;
        }
        match self.store.set_setting(LEDGER_SETTING, &json) {
            Ok(()) => self.published_ledger = Some(json),
            Err(e) => tracing::warn!("publishing the GPU ledger: {e}"),
        }
    }

    fn say(&mut self, line: String) {
        (self.log)(&format!("{} {line}", clock()));
    }

    fn event(&mut self, job: Option<JobId>, task: Option<TaskId>, level: EventLevel, msg: &str) {
        if let Err(e) = self.store.add_event(job, task, level, msg) {
            tracing::error!("store: {e}");
        }
    }

    /// Runs until `shutdown` (or, with `exit_when_idle`, until nothing is left to do).
    pub async fn run(&mut self) -> Result<RunStats, SchedError> {
        let desc = self.gpus.describe();
        self.say(format!(
            "scheduler started on {} ({} CPU slots; GPUs: {desc})",
            self.dirs.data.display(),
            self.cfg.cpu_slots
        ));
        // Stages ran in workers, so the studio stopping was not their fault: what was running
        // resumes (from its checkpoints) without counting a crash.
        for r in self.store.recover_interrupted()? {
            self.say(format!(
                "job {} {}: was running when the studio stopped; resuming",
                r.job, r.stage
            ));
        }
        let Some(mut rx) = self.rx.take() else {
            return Err(SchedError::Io("the scheduler is already running".into()));
        };
        let mut stopping = false;
        let mut last_flush = Instant::now();
        loop {
            self.refresh()?;
            self.poll_inbox();
            let mut progressed = false;
            let draining = self.drain.is_cancelled();
            if !self.shutdown.is_cancelled() && !draining {
                let before = (
                    self.live.len(),
                    self.queue.len(),
                    self.stats.tasks_cached,
                    self.running.len(),
                );
                self.fill_window()?;
                self.launch()?;
                let after = (
                    self.live.len(),
                    self.queue.len(),
                    self.stats.tasks_cached,
                    self.running.len(),
                );
                progressed = before != after;
            }
            self.supervise()?;
            self.publish_ledger();
            let stopping_now = self.shutdown.is_cancelled() || draining;
            self.tick_pulls(!stopping_now);
            if !stopping_now {
                self.tick_publications();
            }
            if stopping_now && self.running.is_empty() {
                break;
            }
            if self.cfg.exit_when_idle
                && self.running.is_empty()
                && self.live.is_empty()
                && self.queue.is_empty()
                && self.pulls.as_ref().is_none_or(|p| p.is_idle())
            {
                break;
            }
            if last_flush.elapsed() >= Duration::from_secs(1) {
                self.flush_progress();
                // GPU samples at ≤ 1 Hz; admissions since the last one are counted as pending
                // by the ledger until the next sample shows their memory.
                if !self.gpus.is_cpu_only() {
                    self.ledger.update_samples(&self.gpus.sample());
                }
                self.publish_workers(false);
                last_flush = Instant::now();
            }
            if progressed && self.running.is_empty() {
                // Jobs finished from the cache or entered the window: schedule again at once.
                continue;
            }
            tokio::select! {
                m = rx.recv() => {
                    if let Some(m) = m {
                        self.on_message(m)?;
                    }
                    // Take everything else that arrived meanwhile before scheduling again.
                    while let Ok(m) = rx.try_recv() {
                        self.on_message(m)?;
                    }
                }
                _ = tokio::time::sleep(self.cfg.poll) => {}
                _ = self.shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    let n = self.running.len();
                    self.say(format!("stopping: {n} running task(s) will be checkpointed and resumed next time"));
                    self.supervise()?;
                }
            }
        }
        self.flush_progress();
        if let Some(pool) = self.pool.as_mut() {
            pool.shutdown(Duration::from_secs(2));
        }
        // Their exits are expected now; nothing runs on them.
        while let Ok(m) = rx.try_recv() {
            if let PoolMsg::Exited(id, _) = m {
                if let Some(p) = self.pool.as_mut() {
                    p.exited(id);
                }
            }
        }
        self.publish_workers(true);
        self.rx = Some(rx);
        if let Some(mut runner) = self.pulls.take() {
            match runner.shutdown(&self.store) {
                Ok(reports) => reports.iter().for_each(|r| self.say(r.to_string())),
                Err(e) => self.say(format!("stopping model downloads: {e}")),
            }
            self.pulls = Some(runner);
        }
        self.say("scheduler stopped".into());
        Ok(self.stats.clone())
    }

    /// Starts the publication thread when publications are runnable and it is not running
    /// (looked at every few seconds). It runs them with its own store connection; an upload it
    /// leaves when the process ends resumes from its saved state next time.
    fn tick_publications(&mut self) {
        if !self.cfg.run_publications
            || self
                .last_publish_check
                .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
        {
            return;
        }
        self.last_publish_check = Some(std::time::Instant::now());
        if let Some(h) = &self.publisher {
            if !h.is_finished() {
                return;
            }
        }
        if let Some(h) = self.publisher.take() {
            let _ = h.join();
        }
        let now = reelsmith_publish::oauth::now_ms();
        let runnable = self.store.publications().is_ok_and(|rows| {
            rows.iter().any(|r| {
                use crate::store::PublicationStatus as S;
                match r.status {
                    S::Queued => !r.cancel_requested,
                    S::Waiting => !r.cancel_requested && r.not_before_ms.unwrap_or(0) <= now,
                    // A dead runner's upload resumes; a cancel it never acted on is finished.
                    S::Uploading | S::Processing => r
                        .owner_pid
                        .is_none_or(|p| !crate::publish::runner::owner_alive(p)),
                    _ => false,
                }
            })
        });
        if !runnable {
            return;
        }
        let db = self.dirs.db_path();
        let data = self.dirs.data.clone();
        self.publisher = Some(std::thread::spawn(move || {
            let store = match Store::open(&db) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("publications: {e}");
                    return;
                }
            };
            let runner = crate::publish::runner::Runner::from_env(&store, &data);
            if let Err(e) = runner.run_all(None, &mut |row, outcome| {
                tracing::info!("publication {} ({}): {outcome:?}", row.id, row.platform)
            }) {
                tracing::error!("publications: {e}");
            }
        }));
    }

    /// Runs the model-download queue one turn (starting new downloads only when `claim`).
    fn tick_pulls(&mut self, claim: bool) {
        let Some(runner) = self.pulls.as_mut() else {
            return;
        };
        match runner.tick(&self.store, claim) {
            Ok(reports) => {
                for r in reports {
                    let line = r.to_string();
                    self.say(line);
                }
            }
            Err(e) => tracing::warn!("model downloads: {e}"),
        }
    }

    fn flush_progress(&mut self) {
        let batch: Vec<(TaskId, f32)> = match self.progress.lock() {
            Ok(mut p) => std::mem::take(&mut *p).into_iter().collect(),
            Err(_) => return,
        };
        for (task, f) in batch {
            if let Err(e) = self.store.task_progress(task, f as f64) {
                tracing::warn!("progress of task {task}: {e}");
            }
        }
    }

    /// Picks up what other processes changed: new jobs, cancels, pauses, priorities.
    fn refresh(&mut self) -> Result<(), SchedError> {
        let v = self.store.data_version()?;
        if self.last_version == Some(v) {
            return Ok(());
        }
        self.last_version = Some(v);
        self.queue_paused = self.store.queue_paused()?;
        let mut rows = self.store.active_jobs()?;
        if let Some(only) = self.cfg.only_job {
            rows.retain(|r| r.id == only);
        }
        let active: BTreeSet<JobId> = rows.iter().map(|r| r.id).collect();
        for row in rows {
            if let Some(l) = self.live.get_mut(&row.id) {
                if row.cancel_requested && !l.row.cancel_requested {
                    l.cancel.cancel();
                }
                l.row = row;
            } else {
                self.queue.insert(row.id, row);
            }
        }
        self.queue.retain(|id, _| active.contains(id));
        // A cancelled job with nothing running (between two stages) has no task to come back
        // and close it: close it now.
        let idle_cancelled: Vec<JobId> = self
            .live
            .iter()
            .filter(|(id, l)| active.contains(id) && l.user_cancelled() && l.running() == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in idle_cancelled {
            self.maybe_finish_job(id)?;
        }
        // Live jobs that left the active set elsewhere (cancelled while waiting, say).
        let gone: Vec<JobId> = self
            .live
            .keys()
            .filter(|id| !active.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(l) = self.live.get_mut(&id) {
                l.row.cancel_requested = true;
                l.cancel.cancel();
                if l.running() == 0 {
                    self.live.remove(&id);
                }
            }
        }
        Ok(())
    }

    fn poll_inbox(&mut self) {
        let Some((_, rx)) = self.inbox.as_ref() else {
            return;
        };
        let woke = rx.try_recv().is_ok();
        if !woke && self.last_inbox_scan.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_inbox_scan = Instant::now();
        let Some((mut inbox, rx)) = self.inbox.take() else {
            return;
        };
        let dirs = self.dirs.clone();
        let out = dirs.data.join("out");
        // Once per scan, and only when a script arrived.
        let mut models: Option<StageModels> = None;
        let mut accept = |path: &std::path::Path| -> Result<(), String> {
            // A recording becomes a highlights project of its own (a script beside a link to it).
            let script = if crate::script::is_recording_name(path) {
                crate::highlights::project::inbox_project(path, &dirs.data.join("projects"))?
            } else {
                path.to_path_buf()
            };
            let req = RenderRequest {
                script,
                channel: None,
                languages: None,
                out: out.clone(),
                quality: Quality::Draft,
                seed: 1,
            };
            let models = match &models {
                Some(m) => m,
                None => models.insert(StageModels::resolve(&dirs)?),
            };
            enqueue(&self.store, &self.channels, &req, 0, models)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let outcomes = inbox.scan(&mut accept);
        self.inbox = Some((inbox, rx));
        match outcomes {
            Ok(list) => {
                for o in list {
                    match o {
                        Outcome::Accepted { from, moved_to } => self.say(format!(
                            "inbox: queued {} (moved to {})",
                            from.display(),
                            moved_to.display()
                        )),
                        Outcome::Rejected {
                            from, error_file, ..
                        } => self.say(format!(
                            "inbox: rejected {} (see {})",
                            from.display(),
                            error_file.display()
                        )),
                        Outcome::Stuck { from, error, .. } => {
                            self.say(format!("inbox: cannot move {}: {error}", from.display()))
                        }
                    }
                }
            }
            Err(e) => self.say(format!("inbox: {e}")),
        }
        // The jobs we just queued were written by this connection: look at them now.
        self.last_version = None;
    }
}
