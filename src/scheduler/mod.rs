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

pub mod foreground;
pub mod lock;
pub mod policy;
pub mod worker;

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

/// The parameters a job was queued with (stored as the job's `params`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct JobParams {
    pub channel: Option<String>,
    pub languages: Option<Vec<String>>,
    pub quality: Quality,
    pub seed: u64,
}

impl JobParams {
    /// The parameters of `req`.
    pub fn of(req: &RenderRequest) -> Self {
        Self {
            channel: req.channel.clone(),
            languages: req.languages.clone(),
            quality: req.quality,
            seed: req.seed,
        }
    }

    /// As stored in the job row.
    pub fn to_value(&self) -> Result<serde_json::Value, job::JobError> {
        serde_json::to_value(self).map_err(|e| job::JobError::Failed(e.to_string()))
    }
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

/// The in-process executor's pseudo worker id.
const IN_PROCESS: WorkerId = 0;

/// A task running on a worker (or a thread of this process).
struct Running {
    job: JobId,
    node: usize,
    name: String,
    worker: WorkerId,
    fraction: f32,
    /// When its progress last moved (or a checkpoint was saved).
    moved: Instant,
    stalled: bool,
    /// Checkpoints saved in this attempt (a crash after one is not a crash loop).
    checkpoints: u32,
    cancel_sent: Option<Instant>,
    kill_sent: bool,
}

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

impl Running {
    fn new(job: JobId, node: usize, name: String, worker: WorkerId) -> Self {
        Self {
            job,
            node,
            name,
            worker,
            fraction: 0.0,
            moved: Instant::now(),
            stalled: false,
            checkpoints: 0,
            cancel_sent: None,
            kill_sent: false,
        }
    }
}

/// "10 min", "45 s".
fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s % 3600 == 0 {
        format!("{} h", s / 3600)
    } else if s >= 60 && s % 60 == 0 {
        format!("{} min", s / 60)
    } else {
        format!("{} s", s.max(1))
    }
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
            let req = RenderRequest {
                script: path.to_path_buf(),
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

    fn score(&self, row: &JobRow) -> i64 {
        policy::score(
            row.priority,
            row.queued_ms.unwrap_or(row.created_ms),
            self.cfg.aging.as_millis() as i64,
        )
    }

    /// Brings the best waiting jobs into the window, planning their tasks.
    fn fill_window(&mut self) -> Result<(), SchedError> {
        if self.queue_paused {
            return Ok(());
        }
        // Paused live jobs with nothing running make room.
        let idle_paused: Vec<JobId> = self
            .live
            .iter()
            .filter(|(_, l)| l.row.status == JobStatus::Paused && l.running() == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in idle_paused {
            if let Some(l) = self.live.remove(&id) {
                self.queue.insert(id, l.row);
            }
        }
        while self.live.len() < self.cfg.window {
            let best = self
                .queue
                .values()
                .filter(|r| r.status != JobStatus::Paused && !r.cancel_requested)
                .max_by(|a, b| self.score(a).cmp(&self.score(b)).then(b.id.cmp(&a.id)))
                .map(|r| r.id);
            let Some(id) = best else {
                break;
            };
            let Some(row) = self.queue.remove(&id) else {
                break;
            };
            self.load_job(row)?;
        }
        Ok(())
    }

    fn load_job(&mut self, row: JobRow) -> Result<(), SchedError> {
        let id = row.id;
        let prepared = self.prepare(&row);
        let (spec, planned) = match prepared {
            Ok(v) => v,
            Err(msg) => {
                self.store
                    .set_job_status(id, JobStatus::Failed, Some(&msg))?;
                self.event(Some(id), None, EventLevel::Error, &msg);
                self.say(format!("job {id}: failed: {msg}"));
                self.stats.jobs_failed += 1;
                return Ok(());
            }
        };
        let mut nodes = Vec::with_capacity(planned.len());
        for p in planned {
            let task = self.store.upsert_task(
                id,
                &p.node.name(),
                p.node.kind.as_str(),
                p.node.lang.as_deref(),
            )?;
            nodes.push(LiveNode {
                planned: p,
                task,
                state: NodeState::Pending,
                slot: None,
                device: None,
                resources: Default::default(),
                oom_tries: 0,
                not_before: None,
            });
        }
        let cancel = self.shutdown.child_token();
        if row.cancel_requested {
            cancel.cancel();
        }
        self.live.insert(
            id,
            LiveJob {
                row,
                spec,
                nodes,
                artifacts: BTreeMap::new(),
                reports: Vec::new(),
                cancel,
                started: Instant::now(),
            },
        );
        Ok(())
    }

    fn prepare(&self, row: &JobRow) -> Result<(Arc<JobSpec>, Vec<Planned>), String> {
        let params: JobParams = serde_json::from_value(row.params.clone()).map_err(|e| {
            format!(
                "job {}: unreadable parameters ({e}); re-add the script",
                row.id
            )
        })?;
        let text = row
            .script
            .clone()
            .ok_or_else(|| format!("job {} has no script snapshot; re-add the script", row.id))?;
        let script_name = row
            .script_name
            .clone()
            .unwrap_or_else(|| "script.yaml".into());
        let req = RenderRequest {
            script: script_name.into(),
            channel: params.channel,
            languages: params.languages,
            out: row.out_dir.clone().into(),
            quality: params.quality,
            seed: params.seed,
        };
        let models = StageModels::resolve(&self.dirs)?;
        let spec =
            job::prepare_text(&req, &text, &self.channels, &models).map_err(|e| e.to_string())?;
        let graph = spec
            .channel
            .graph()
            .map_err(|e| format!("channel {}: {e}", spec.channel.name))?;
        let planned = runner::plan_nodes(&spec, &graph, &self.stages).map_err(|e| e.to_string())?;
        Ok((Arc::new(spec), planned))
    }

    /// Starts every ready task that fits, best job first; cache hits finish at once.
    fn launch(&mut self) -> Result<(), SchedError> {
        if self.queue_paused {
            return Ok(());
        }
        // Cache hits first (they unlock more nodes), until none are left.
        loop {
            let mut hits = Vec::new();
            for (id, l) in &self.live {
                if l.row.status == JobStatus::Paused || l.user_cancelled() {
                    continue;
                }
                for (i, n) in l.nodes.iter().enumerate() {
                    if n.state == NodeState::Pending && self.deps_done(l, i) {
                        if let Some(dir) = self.cache.get(&n.planned.key) {
                            hits.push((*id, i, dir));
                        }
                    }
                }
            }
            if hits.is_empty() {
                break;
            }
            for (id, i, dir) in hits {
                self.finish_cached(id, i, dir)?;
            }
        }
        let mut order: Vec<(i64, JobId)> = self
            .live
            .iter()
            .filter(|(_, l)| l.row.status != JobStatus::Paused && !l.user_cancelled())
            .map(|(id, l)| (self.score(&l.row), *id))
            .collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, id) in order {
            let now = Instant::now();
            let ready: Vec<usize> = match self.live.get(&id) {
                Some(l) => (0..l.nodes.len())
                    .filter(|&i| {
                        let n = &l.nodes[i];
                        n.state == NodeState::Pending
                            && n.not_before.is_none_or(|t| t <= now)
                            && self.deps_done(l, i)
                    })
                    .collect(),
                None => continue,
            };
            for i in ready {
                if !self.try_start(id, i)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn deps_done(&self, l: &LiveJob, i: usize) -> bool {
        l.nodes[i].planned.deps.iter().all(|d| {
            let name = d.name();
            l.nodes.iter().any(|n| {
                n.planned.node.name() == name
                    && matches!(
                        n.state,
                        NodeState::Finished(NodeStatus::Done | NodeStatus::Cached)
                    )
            })
        })
    }

    fn finish_cached(
        &mut self,
        id: JobId,
        i: usize,
        dir: std::path::PathBuf,
    ) -> Result<(), SchedError> {
        let Some(l) = self.live.get_mut(&id) else {
            return Ok(());
        };
        let n = &mut l.nodes[i];
        n.state = NodeState::Finished(NodeStatus::Cached);
        let name = n.planned.node.name();
        let report = NodeReport {
            node: name.clone(),
            kind: n.planned.node.kind,
            lang: n.planned.node.lang.clone(),
            status: NodeStatus::Cached,
            key: n.planned.key.clone(),
            engine: n.planned.engine.clone(),
            seconds: 0.0,
            items: Default::default(),
            notes: vec![],
            error: None,
            oom: false,
        };
        let task = n.task;
        l.artifacts.insert(
            name,
            ArtifactRef {
                key: report.key.clone(),
                dir,
            },
        );
        l.reports.push(report.clone());
        self.store
            .task_finished(task, TaskStatus::Cached, Some(&report.key), None, 0)?;
        self.emit(runner::RunEvent::Finished(report));
        self.stats.tasks_cached += 1;
        self.maybe_finish_job(id)
    }

    /// Starts node `i` of job `id` if resources allow; false when the CPU side is full.
    fn try_start(&mut self, id: JobId, i: usize) -> Result<bool, SchedError> {
        let Some(l) = self.live.get(&id) else {
            return Ok(true);
        };
        let kind = l.nodes[i].planned.node.kind;
        let Some(stage) = self.stages.get(&kind).cloned() else {
            return Ok(true);
        };
        let res = stage.resources(&l.spec);
        let slot = self.next_slot;
        if !self
            .cpu
            .try_acquire(slot, res.cpu_slots.max(1), res.ram_bytes)
        {
            return Ok(false);
        }
        let mut device = None;
        if res.vram_bytes > 0 {
            let mut admission = self
                .ledger
                .try_admit(slot, res.vram_bytes, res.model.as_deref());
            if let Admission::AfterEvicting { device, models } = &admission {
                // Idle models make room: drop them from the ledger (the loaded-model cache
                // frees them) and ask again.
                for m in models.clone() {
                    self.evict_model(*device, &m);
                }
                admission = self
                    .ledger
                    .try_admit(slot, res.vram_bytes, res.model.as_deref());
            }
            match admission {
                Admission::Admitted(r) => device = Some(r.device),
                Admission::CpuOnly => {}
                Admission::Never { reason } => {
                    self.cpu.release(slot);
                    let msg = format!("needs {} MiB of GPU memory: {reason}", res.vram_bytes >> 20);
                    self.fail_unstartable(id, i, &msg)?;
                    return Ok(true);
                }
                Admission::AfterEvicting { .. } | Admission::Wait { .. } => {
                    self.cpu.release(slot);
                    return Ok(true);
                }
            }
        }
        self.next_slot += 1;
        let Some(l) = self.live.get_mut(&id) else {
            return Ok(true);
        };
        let n = &mut l.nodes[i];
        n.state = NodeState::Running;
        n.slot = Some(slot);
        n.device = device;
        n.resources = res.clone();
        let planned = n.planned.clone();
        let task = n.task;
        let inputs: BTreeMap<_, _> = planned
            .inputs
            .iter()
            .filter_map(|(k, name)| l.artifacts.get(name).map(|a| (*k, a.clone())))
            .collect();
        let spec = l.spec.clone();
        let cancel = l.cancel.clone();
        let first = l.row.status == JobStatus::Queued;
        if first {
            l.row.status = JobStatus::Running;
        }
        self.store.task_started_on(task, &planned.engine, device)?;
        if first {
            self.store.set_job_status(id, JobStatus::Running, None)?;
        }
        self.stats.tasks_run += 1;
        self.emit(runner::RunEvent::Started {
            node: planned.node.name(),
            engine: planned.engine.clone(),
        });
        let name = planned.node.name();
        let worker = match self.pool.as_mut() {
            None => {
                let (cache, tx) = (self.cache.clone(), self.tx.clone());
                tokio::task::spawn_blocking(move || {
                    let progress = |fraction: f32| {
                        let _ = tx.send(PoolMsg::From(
                            IN_PROCESS,
                            FromWorker::Progress { task, fraction },
                        ));
                    };
                    let events = |event: crate::pipeline::StageEvent| {
                        let _ =
                            tx.send(PoolMsg::From(IN_PROCESS, FromWorker::Event { task, event }));
                    };
                    let (report, artifact) = runner::execute_node(
                        &spec,
                        stage.as_ref(),
                        &planned.node,
                        &planned.key,
                        &planned.engine,
                        &inputs,
                        &cache,
                        &cancel,
                        device,
                        &progress,
                        &events,
                    );
                    let _ = tx.send(PoolMsg::From(
                        IN_PROCESS,
                        FromWorker::Done {
                            task,
                            report,
                            artifact,
                            models: Vec::new(),
                        },
                    ));
                });
                IN_PROCESS
            }
            Some(pool) => {
                let order = worker::Order {
                    task,
                    job: id,
                    spec: (*spec).clone(),
                    node: planned.node.clone(),
                    key: planned.key.clone(),
                    engine: planned.engine.clone(),
                    inputs,
                    device,
                };
                match pool.assign(device, task) {
                    Ok(w) => {
                        if let Err(e) = pool.send(w, &ToWorker::Run(Box::new(order))) {
                            // The worker is on its way out: its exit puts the task back.
                            tracing::warn!("{name}: {e}");
                            pool.kill(w);
                        }
                        w
                    }
                    Err(e) => {
                        self.running
                            .insert(task, Running::new(id, i, name, IN_PROCESS));
                        let report = self.synthetic_report(id, i, NodeStatus::Failed, Some(e));
                        self.running.remove(&task);
                        return self.reduce((id, i, report, None)).map(|()| true);
                    }
                }
            }
        };
        self.running.insert(task, Running::new(id, i, name, worker));
        Ok(true)
    }

    /// A report for node `i` of job `id` that no stage wrote (a worker that died or could not
    /// start).
    fn synthetic_report(
        &self,
        id: JobId,
        i: usize,
        status: NodeStatus,
        error: Option<String>,
    ) -> NodeReport {
        let (node, key, engine) = match self.live.get(&id) {
            Some(l) => {
                let p = &l.nodes[i].planned;
                (p.node.clone(), p.key.clone(), p.engine.clone())
            }
            None => (
                crate::pipeline::Node {
                    kind: crate::pipeline::StageKind::Plan,
                    lang: None,
                },
                String::new(),
                String::new(),
            ),
        };
        NodeReport {
            node: node.name(),
            kind: node.kind,
            lang: node.lang,
            status,
            key,
            engine,
            seconds: 0.0,
            items: Default::default(),
            notes: vec![],
            error,
            oom: false,
        }
    }

    /// Unloads `model` from GPU `device`: from the ledger, and from whoever holds it (the
    /// device's worker, or this process).
    fn evict_model(&mut self, device: u32, model: &str) {
        self.ledger.evict(device, model);
        match self.pool.as_mut() {
            Some(pool) => {
                if let Some(w) = pool.of_device(device) {
                    let msg = ToWorker::Evict {
                        device: Some(device),
                        model: model.to_string(),
                    };
                    if let Err(e) = pool.send(w, &msg) {
                        tracing::warn!("evicting {model}: {e}");
                    }
                }
            }
            None => {
                crate::engines::loaded::evict(Some(device), model);
            }
        }
    }

    /// Handles one message from a worker (or an in-process stage thread).
    fn on_message(&mut self, msg: PoolMsg) -> Result<(), SchedError> {
        match msg {
            PoolMsg::From(_, FromWorker::Ready { pid }) => {
                tracing::debug!("stage worker {pid} ready");
                Ok(())
            }
            PoolMsg::From(_, FromWorker::Progress { task, fraction }) => {
                let Some(r) = self.running.get_mut(&task) else {
                    return Ok(());
                };
                if fraction > r.fraction {
                    r.moved = Instant::now();
                }
                r.fraction = fraction;
                let (job, name, was_stalled) = (r.job, r.name.clone(), r.stalled);
                if was_stalled && r.moved.elapsed() < Duration::from_secs(1) {
                    r.stalled = false;
                    let msg = format!("{name} is moving again");
                    self.event(Some(job), Some(task), EventLevel::Info, &msg);
                }
                if let Ok(mut p) = self.progress.lock() {
                    p.insert(task, fraction);
                }
                self.emit(runner::RunEvent::Progress {
                    node: name,
                    fraction,
                });
                Ok(())
            }
            PoolMsg::From(_, FromWorker::Event { task, event }) => {
                let Some(r) = self.running.get_mut(&task) else {
                    return Ok(());
                };
                r.moved = Instant::now();
                r.stalled = false;
                let (job, name) = (r.job, r.name.clone());
                let msg = match event {
                    crate::pipeline::StageEvent::Checkpoint(label) => {
                        r.checkpoints += 1;
                        tracing::info!("job {job} {name}: checkpoint {label}");
                        format!("{name}: checkpoint saved ({label})")
                    }
                    crate::pipeline::StageEvent::Resumed(label) => {
                        let m = format!("{name}: resumed from the checkpoint at {label}");
                        self.say(format!("job {job} {m}"));
                        m
                    }
                };
                self.event(Some(job), Some(task), EventLevel::Info, &msg);
                Ok(())
            }
            PoolMsg::From(
                w,
                FromWorker::Done {
                    task,
                    report,
                    artifact,
                    models,
                },
            ) => {
                let Some(r) = self.running.remove(&task) else {
                    return Ok(());
                };
                if w != IN_PROCESS {
                    if let Some(why) = self.pool.as_mut().and_then(|p| p.finished(w, task, models))
                    {
                        self.say(why);
                    }
                }
                self.reduce((r.job, r.node, report, artifact))
            }
            PoolMsg::Exited(w, death) => self.worker_exited(w, death),
        }
    }

    /// A worker is gone: GPU memory it held is free again, and what it was running is put
    /// back, cancelled or counted as a crash.
    fn worker_exited(&mut self, w: WorkerId, death: Death) -> Result<(), SchedError> {
        let Some(gone) = self.pool.as_mut().and_then(|p| p.exited(w)) else {
            return Ok(());
        };
        if let Some(d) = gone.device {
            let loaded: Vec<String> = self
                .ledger
                .snapshot()
                .into_iter()
                .filter(|dl| dl.index == d)
                .flat_map(|dl| dl.loaded.into_iter().map(|m| m.model))
                .collect();
            for m in loaded {
                self.ledger.evict(d, &m);
            }
        }
        if gone.running.is_empty() {
            if !death.clean() && !gone.retiring && !self.shutdown.is_cancelled() {
                let what = death.describe("nothing");
                self.say(format!("stage worker {} ended: {what}", gone.pid));
            }
            return Ok(());
        }
        for task in gone.running {
            self.task_died(task, &death, gone.pid)?;
        }
        Ok(())
    }

    fn task_died(&mut self, task: TaskId, death: &Death, pid: u32) -> Result<(), SchedError> {
        let Some(r) = self.running.remove(&task) else {
            return Ok(());
        };
        let Some(l) = self.live.get(&r.job) else {
            return Ok(());
        };
        let (job, i, name) = (r.job, r.node, r.name.clone());
        if l.user_cancelled() {
            let report =
                self.synthetic_report(job, i, NodeStatus::Cancelled, Some("cancelled".into()));
            if r.kill_sent {
                let msg = format!("{name} did not answer the cancel; its worker {pid} was stopped");
                self.event(Some(job), Some(task), EventLevel::Warn, &msg);
            }
            return self.reduce((job, i, report, None));
        }
        if self.shutdown.is_cancelled() {
            // Checkpointed: it resumes on the next start.
            let report =
                self.synthetic_report(job, i, NodeStatus::Cancelled, Some("cancelled".into()));
            return self.reduce((job, i, report, None));
        }
        if death.killed_by_us {
            // Stopped for another task's sake (a shared GPU worker): not its fault.
            let msg = format!("{name}: its worker {pid} was stopped; starting it again");
            self.requeue(job, i, Duration::ZERO, &msg)?;
            return Ok(());
        }
        let cause = death.describe(&name);
        let counted = r.checkpoints == 0;
        let limit = self.cfg.crash_limit;
        let (crashes, failed) = self.store.task_crashed(task, &cause, counted, limit)?;
        if failed {
            let msg = format!(
                "{cause}; it crashed {crashes} times in a row without progress \
                 (limit {limit}); fix or remove it, then `reelsmith retry {job}`"
            );
            let report = self.synthetic_report(job, i, NodeStatus::Failed, Some(msg));
            return self.reduce((job, i, report, None));
        }
        let msg = if counted {
            format!("{cause}; starting it again (crash {crashes} of {limit} without progress)")
        } else {
            format!(
                "{cause}; it had saved {} checkpoint(s), so this is not a crash loop: resuming from the last",
                r.checkpoints
            )
        };
        self.requeue(job, i, Duration::from_secs(1), &msg)
    }

    /// Puts node `i` of job `id` back to pending (resources released), not before `after`.
    fn requeue(
        &mut self,
        id: JobId,
        i: usize,
        after: Duration,
        msg: &str,
    ) -> Result<(), SchedError> {
        let Some(l) = self.live.get_mut(&id) else {
            return Ok(());
        };
        let project = l.spec.project.clone();
        let n = &mut l.nodes[i];
        if let Some(slot) = n.slot.take() {
            self.cpu.release(slot);
            self.ledger.release(slot);
        }
        n.state = NodeState::Pending;
        n.not_before = Some(Instant::now() + after);
        let task = n.task;
        self.store.reset_task(task)?;
        self.store
            .add_event(Some(id), Some(task), EventLevel::Warn, msg)?;
        self.say(format!("job {id} ({project}) {msg}"));
        Ok(())
    }

    /// Sends cancels to workers whose task's job was cancelled, stops the workers that do not
    /// answer in time, and reports tasks whose progress stopped moving.
    fn supervise(&mut self) -> Result<(), SchedError> {
        let now = Instant::now();
        let mut stalled = Vec::new();
        let mut to_cancel = Vec::new();
        let mut to_kill = Vec::new();
        for (task, r) in self.running.iter_mut() {
            let cancelled = self
                .live
                .get(&r.job)
                .is_some_and(|l| l.cancel.is_cancelled());
            if cancelled && r.worker != IN_PROCESS {
                match r.cancel_sent {
                    None => {
                        r.cancel_sent = Some(now);
                        to_cancel.push((*task, r.worker));
                    }
                    Some(t) if !r.kill_sent && now.duration_since(t) >= self.cfg.kill_grace => {
                        r.kill_sent = true;
                        to_kill.push((r.job, r.name.clone(), r.worker));
                    }
                    _ => {}
                }
            }
            if !r.stalled && now.duration_since(r.moved) >= self.cfg.stall_after {
                r.stalled = true;
                stalled.push((*task, r.job, r.name.clone(), r.worker));
            }
        }
        if let Some(pool) = self.pool.as_mut() {
            for (task, w) in to_cancel {
                if let Err(e) = pool.send(w, &ToWorker::Cancel { task }) {
                    tracing::warn!("cancelling task {task}: {e}");
                }
            }
        }
        for (job, name, w) in to_kill {
            let pid = self.pool.as_ref().and_then(|p| p.pid(w)).unwrap_or(0);
            self.say(format!(
                "job {job} {name} did not answer the cancel within {:.0} s: stopping its worker {pid}",
                self.cfg.kill_grace.as_secs_f64()
            ));
            if let Some(pool) = self.pool.as_mut() {
                pool.kill(w);
            }
        }
        for (task, job, name, w) in stalled {
            let pid = self.pool.as_ref().and_then(|p| p.pid(w));
            let on = pid.map(|p| format!(" (worker {p})")).unwrap_or_default();
            let msg = format!(
                "{name} has made no progress for {}{on}; `reelsmith cancel {job}` (or c in the studio) stops it",
                human_duration(self.cfg.stall_after)
            );
            self.event(Some(job), Some(task), EventLevel::Warn, &msg);
            self.say(format!("job {job} {msg}"));
        }
        Ok(())
    }

    /// Writes the worker list to the store when it changed (or every 10 s, for memory
    /// figures); `stopping` publishes an empty list.
    fn publish_workers(&mut self, stopping: bool) {
        let Some(pool) = self.pool.as_ref() else {
            return;
        };
        let views = if stopping {
            Vec::new()
        } else {
            pool.views(|task| match self.running.get(&task) {
                Some(r) => format!(
                    "job {} {} ({:.0}%{})",
                    r.job,
                    r.name,
                    r.fraction * 100.0,
                    if r.stalled { ", stalled" } else { "" }
                ),
                None => format!("task {task}"),
            })
        };
        let identity: Vec<_> = views
            .iter()
            .map(|v| (v.pid, &v.tasks, &v.models, v.tasks_done))
            .collect();
        let Ok(identity) = serde_json::to_string(&identity) else {
            return;
        };
        if let Some((last, at)) = &self.published_workers {
            if *last == identity && at.elapsed() < Duration::from_secs(10) {
                return;
            }
        }
        let Ok(json) = serde_json::to_string(&views) else {
            return;
        };
        match self.store.set_setting(WORKERS_SETTING, &json) {
            Ok(()) => self.published_workers = Some((identity, Instant::now())),
            Err(e) => tracing::warn!("publishing the workers: {e}"),
        }
    }

    fn fail_unstartable(&mut self, id: JobId, i: usize, msg: &str) -> Result<(), SchedError> {
        let Some(l) = self.live.get_mut(&id) else {
            return Ok(());
        };
        let n = &mut l.nodes[i];
        n.state = NodeState::Finished(NodeStatus::Failed);
        let task = n.task;
        let name = n.planned.node.name();
        self.store
            .task_finished(task, TaskStatus::Failed, None, Some(msg), 0)?;
        self.event(
            Some(id),
            Some(task),
            EventLevel::Error,
            &format!("{name}: {msg}"),
        );
        self.skip_dependents(id)?;
        self.maybe_finish_job(id)
    }

    /// Marks pending nodes whose dependencies can no longer finish as skipped.
    fn skip_dependents(&mut self, id: JobId) -> Result<(), SchedError> {
        let Some(l) = self.live.get_mut(&id) else {
            return Ok(());
        };
        loop {
            let dead: BTreeSet<String> = l
                .nodes
                .iter()
                .filter(|n| {
                    matches!(
                        n.state,
                        NodeState::Finished(
                            NodeStatus::Failed | NodeStatus::Skipped | NodeStatus::Cancelled
                        )
                    )
                })
                .map(|n| n.planned.node.name())
                .collect();
            let mut changed = false;
            for n in l.nodes.iter_mut() {
                if n.state == NodeState::Pending
                    && n.planned.deps.iter().any(|d| dead.contains(&d.name()))
                {
                    n.state = NodeState::Finished(NodeStatus::Skipped);
                    self.store.task_finished(
                        n.task,
                        TaskStatus::Skipped,
                        None,
                        Some("an earlier stage failed"),
                        0,
                    )?;
                    changed = true;
                }
            }
            if !changed {
                return Ok(());
            }
        }
    }

    /// Records a finished task and what follows from it.
    fn reduce(&mut self, (id, i, report, art): TaskResult) -> Result<(), SchedError> {
        let shutting = self.shutdown.is_cancelled();
        let Some(l) = self.live.get_mut(&id) else {
            return Ok(());
        };
        let user_cancel = l.user_cancelled();
        let project = l.spec.project.clone();
        let n = &mut l.nodes[i];
        if let Some(slot) = n.slot.take() {
            self.cpu.release(slot);
            self.ledger.release(slot);
        }
        let task = n.task;
        let ms = (report.seconds * 1000.0) as i64;
        let name = report.node.clone();
        if report.oom {
            let dev = n.device;
            let res = n.resources.clone();
            let free = dev
                .and_then(|d| self.gpus.sample().into_iter().find(|s| s.index == d))
                .map(|s| s.free >> 20)
                .unwrap_or(0);
            let model = res.model.clone().unwrap_or_else(|| "(no model)".into());
            let what = format!(
                "{name} ran out of GPU memory on GPU {} running {model} (estimate {} MiB, {free} MiB free)",
                dev.map(|d| d.to_string()).unwrap_or_else(|| "?".into()),
                res.vram_bytes >> 20
            );
            if n.oom_tries < self.cfg.oom_retries {
                n.oom_tries += 1;
                let wait = Duration::from_secs(1 << (n.oom_tries - 1).min(6));
                n.state = NodeState::Pending;
                n.not_before = Some(Instant::now() + wait);
                let msg = format!(
                    "{what}; freed cached models, retrying in {} s ({}/{})",
                    wait.as_secs(),
                    n.oom_tries,
                    self.cfg.oom_retries
                );
                if let Some(d) = dev {
                    for m in self.ledger.evictable(d, res.vram_bytes) {
                        self.evict_model(d, &m);
                    }
                }
                self.store.reset_task(task)?;
                self.store
                    .add_event(Some(id), Some(task), EventLevel::Warn, &msg)?;
                self.say(format!("job {id} ({project}) {msg}"));
                return Ok(());
            }
            let msg = format!("{what}; gave up after {} retries", self.cfg.oom_retries);
            n.state = NodeState::Finished(NodeStatus::Failed);
            self.store
                .task_finished(task, TaskStatus::Failed, None, Some(&msg), ms)?;
            self.store
                .add_event(Some(id), Some(task), EventLevel::Error, &msg)?;
            let mut r = report;
            r.error = Some(msg.clone());
            l.reports.push(r.clone());
            if let Some(tx) = &self.events {
                let _ = tx.send(runner::RunEvent::Finished(r));
            }
            self.say(format!("job {id} ({project}) FAILED: {msg}"));
            self.skip_dependents(id)?;
            return self.maybe_finish_job(id);
        }
        let line = match report.status {
            NodeStatus::Done => {
                n.state = NodeState::Finished(NodeStatus::Done);
                if let Some(a) = &art {
                    l.artifacts.insert(name.clone(), a.clone());
                }
                self.store
                    .task_finished(task, TaskStatus::Done, Some(&report.key), None, ms)?;
                if let Some(a) = &art {
                    let bytes = crate::pipeline::cache::dir_size(&a.dir).unwrap_or(0);
                    self.store
                        .record_artifact(&report.key, report.kind.as_str(), bytes)?;
                }
                for note in &report.notes {
                    self.store
                        .add_event(Some(id), Some(task), EventLevel::Warn, note)?;
                }
                let items = if report.items.made + report.items.hits > 0 {
                    format!(
                        " [{} made, {} reused]",
                        report.items.made, report.items.hits
                    )
                } else {
                    String::new()
                };
                let msg = format!("{name} done in {:.2} s{items}", report.seconds);
                self.store
                    .add_event(Some(id), Some(task), EventLevel::Info, &msg)?;
                format!("job {id} ({project}) {msg}")
            }
            NodeStatus::Cancelled if shutting && !user_cancel => {
                // Checkpoint: finished stages are in the cache; this one starts over next time.
                n.state = NodeState::Pending;
                self.store.reset_task(task)?;
                format!("job {id} ({project}) {name} checkpointed")
            }
            NodeStatus::Cancelled => {
                n.state = NodeState::Finished(NodeStatus::Cancelled);
                self.store.task_finished(
                    task,
                    TaskStatus::Cancelled,
                    None,
                    Some("cancelled"),
                    ms,
                )?;
                format!("job {id} ({project}) {name} cancelled")
            }
            _ => {
                n.state = NodeState::Finished(NodeStatus::Failed);
                let err = report.error.clone().unwrap_or_else(|| "failed".into());
                self.store
                    .task_finished(task, TaskStatus::Failed, None, Some(&err), ms)?;
                self.store.add_event(
                    Some(id),
                    Some(task),
                    EventLevel::Error,
                    &format!("{name}: {err}"),
                )?;
                format!("job {id} ({project}) {name} FAILED: {err}")
            }
        };
        if let Some(tx) = &self.events {
            let _ = tx.send(runner::RunEvent::Finished(report.clone()));
        }
        l.reports.push(report);
        self.say(line);
        self.skip_dependents(id)?;
        self.maybe_finish_job(id)
    }

    /// Closes a job whose nodes are all finished (or, when stopping, that has nothing running).
    fn maybe_finish_job(&mut self, id: JobId) -> Result<(), SchedError> {
        let Some(l) = self.live.get(&id) else {
            return Ok(());
        };
        if l.running() > 0 {
            return Ok(());
        }
        if self.shutdown.is_cancelled() && !l.user_cancelled() {
            // Stopping: the job stays queued and resumes on the next start.
            if l.nodes.iter().any(|n| n.state == NodeState::Pending) {
                if let Some(l) = self.live.remove(&id) {
                    if l.row.status == JobStatus::Running {
                        self.store.set_job_status(id, JobStatus::Queued, None)?;
                    }
                }
                return Ok(());
            }
        }
        if l.user_cancelled() {
            for n in &l.nodes {
                if n.state == NodeState::Pending {
                    self.store.task_finished(
                        n.task,
                        TaskStatus::Cancelled,
                        None,
                        Some("cancelled"),
                        0,
                    )?;
                }
            }
            self.store
                .set_job_status(id, JobStatus::Cancelled, Some("cancelled by the user"))?;
            self.event(Some(id), None, EventLevel::Info, "cancelled");
            self.say(format!("job {id} cancelled"));
            self.live.remove(&id);
            return Ok(());
        }
        if l.nodes.iter().any(|n| n.state == NodeState::Pending) {
            return Ok(());
        }
        let Some(l) = self.live.remove(&id) else {
            return Ok(());
        };
        let failures: Vec<String> = l
            .reports
            .iter()
            .filter(|r| r.status == NodeStatus::Failed)
            .map(|r| format!("{}: {}", r.node, r.error.clone().unwrap_or_default()))
            .collect();
        let failed_nodes = l
            .nodes
            .iter()
            .filter(|n| matches!(n.state, NodeState::Finished(NodeStatus::Failed)))
            .count();
        if failed_nodes > 0 {
            let msg = if failures.is_empty() {
                "a stage failed; see `reelsmith logs`".to_string()
            } else {
                failures.join("\n")
            };
            self.store
                .set_job_status(id, JobStatus::Failed, Some(&msg))?;
            self.say(format!("job {id} ({}) failed", l.spec.project));
            self.stats.jobs_failed += 1;
            return Ok(());
        }
        let summary = RunSummary {
            nodes: l.reports.clone(),
            artifacts: l.artifacts.clone(),
            seconds: l.started.elapsed().as_secs_f64(),
        };
        if self.cfg.only_job == Some(id) {
            self.summary = Some((id, summary.clone()));
        }
        if self.cfg.export {
            let project_dir = std::path::PathBuf::from(&l.row.out_dir);
            if let Err(e) = job::export(&l.spec, &summary, &project_dir) {
                let msg = format!("exporting to {}: {e}", project_dir.display());
                self.store
                    .set_job_status(id, JobStatus::Failed, Some(&msg))?;
                self.say(format!("job {id} failed: {msg}"));
                self.stats.jobs_failed += 1;
                return Ok(());
            }
        }
        self.store.set_job_status(id, JobStatus::Done, None)?;
        self.event(Some(id), None, EventLevel::Info, "done");
        self.say(format!(
            "job {id} ({}) done -> {}",
            l.spec.project, l.row.out_dir
        ));
        self.stats.jobs_done += 1;
        Ok(())
    }
}

/// The task rows a job of `graph` over `languages` starts with (all pending).
pub fn new_tasks(
    graph: &crate::pipeline::StageGraph,
    languages: &[String],
) -> Vec<crate::store::NewTask> {
    graph
        .expand(languages)
        .into_iter()
        .map(|(n, _)| crate::store::NewTask {
            stage: n.name(),
            kind: n.kind.as_str().to_string(),
            lang: n.lang.clone(),
        })
        .collect()
}

/// Validates a script and queues a render job for it (the script's text is kept in the store,
/// so the job never depends on the file). Returns the job id.
pub fn enqueue(
    store: &Store,
    channels: &ChannelSet,
    req: &RenderRequest,
    priority: i64,
    models: &StageModels,
) -> Result<JobId, job::JobError> {
    let text =
        crate::script::read_text(&req.script).map_err(|e| job::JobError::Input(e.to_string()))?;
    let spec = job::prepare_text(req, &text, channels, models)?;
    enqueue_prepared(store, req, text, &spec, priority)
}

/// Queues a job for `spec`, prepared from `text` (the script's content) for `req`.
pub fn enqueue_prepared(
    store: &Store,
    req: &RenderRequest,
    text: String,
    spec: &JobSpec,
    priority: i64,
) -> Result<JobId, job::JobError> {
    let graph = spec
        .channel
        .graph()
        .map_err(|e| job::JobError::Input(format!("channel {}: {e}", spec.channel.name)))?;
    let script_path = std::fs::canonicalize(&req.script).unwrap_or_else(|_| req.script.clone());
    let fail = |e: StoreError| job::JobError::Failed(e.to_string());
    let project = store
        .upsert_project(
            &spec.project,
            &script_path.to_string_lossy(),
            &spec.channel.name,
        )
        .map_err(fail)?;
    let tasks = new_tasks(&graph, &spec.languages);
    let new = crate::store::NewJob {
        project,
        kind: "render".into(),
        params: JobParams::of(req).to_value()?,
        out_dir: req.out.join(&spec.project).to_string_lossy().into_owned(),
        priority,
        script: text,
        script_name: script_path.to_string_lossy().into_owned(),
        tasks,
    };
    store.enqueue_job(&new).map_err(fail)
}
