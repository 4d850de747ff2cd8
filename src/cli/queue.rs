//! The queue from the command line: `add`, `run`, `status`, `cancel`, `retry`, `pause`,
//! `resume`, `queue pause|resume`, `priority`, `logs`. Every command but `run` only writes the
//! store; a running scheduler picks the change up within a poll interval.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{ChannelSet, Dirs};
use crate::pipeline::job::{JobError, RenderRequest};
use crate::pipeline::Quality;
use crate::scheduler::{self, Scheduler, SchedulerConfig, SchedulerLock};
use crate::store::{JobOverview, JobStatus, RunningStage, Store, StoreError, TaskRow, TaskStatus};
use crate::watch::SCRIPT_EXTENSIONS;

#[derive(Args, Debug)]
pub struct AddArgs {
    /// A script, or a directory of scripts (every .yaml/.yml/.json/.txt/.md in it).
    pub path: PathBuf,
    #[arg(long)]
    pub channel: Option<String>,
    #[arg(long, value_delimiter = ',')]
    pub lang: Option<Vec<String>>,
    /// Higher runs first; waiting jobs gain one level a minute.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "draft")]
    pub quality: Quality,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Tasks running at once (default: the number of CPU cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Stop when the queue is empty instead of waiting for more.
    #[arg(long)]
    pub exit_when_idle: bool,
    /// Don't watch <data>/inbox/.
    #[arg(long)]
    pub no_inbox: bool,
    /// Fail a task whose stage worker crashed this many times in a row without progress
    /// (a crash after a checkpoint does not count; the studio being killed never counts).
    #[arg(long, default_value_t = 3)]
    pub crash_limit: i64,
    /// Report a running task whose progress has not moved for this long (e.g. 30s, 10m, 2h).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub stall_after: std::time::Duration,
    /// Start a fresh stage worker after this many tasks.
    #[arg(long, default_value_t = 500)]
    pub worker_tasks: u32,
    /// Start a fresh stage worker when its memory grew this much since its first task.
    #[arg(long, default_value = "8GiB", value_parser = crate::gpu::units::parse_size)]
    pub worker_rss_growth: u64,
    /// Cap each CPU stage worker's address space (e.g. 16GiB): a runaway stage fails with
    /// "out of memory" instead of waking the kernel's OOM killer.
    #[arg(long, value_parser = crate::gpu::units::parse_size)]
    pub worker_memory_limit: Option<u64>,
    /// Run stages on threads of this process instead of worker processes (debugging only:
    /// a crash in a stage then takes the scheduler down).
    #[arg(long, hide = true)]
    pub in_process: bool,
    /// If another scheduler runs the queue, wait for it to stop and then take over
    /// (what the studio starts when you quit it and keep rendering headless).
    #[arg(long)]
    pub wait_lock: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// One JSON document: the queue, its workers and every job with its stages counted.
    #[arg(long)]
    pub json: bool,
    /// Only the most recent N jobs (with --json, each with its stages listed).
    #[arg(long)]
    pub last: Option<usize>,
    /// With --json: list every job's stages (status, progress, engine, error, attempts),
    /// not only their counts. Implied by --last.
    #[arg(long, requires = "json")]
    pub stages: bool,
}

#[derive(Args, Debug)]
pub struct JobArg {
    pub job: i64,
}

#[derive(Args, Debug)]
pub struct PriorityArgs {
    pub job: i64,
    #[arg(allow_negative_numbers = true)]
    pub priority: i64,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    pub job: i64,
    /// Keep printing new lines until the job ends.
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Subcommand, Debug)]
pub enum QueueCmd {
    /// Start no new tasks (running ones finish).
    Pause,
    /// Start tasks again.
    Resume,
}

fn open_store(dirs: &Dirs) -> Result<Store, i32> {
    if let Err(e) = std::fs::create_dir_all(&dirs.data) {
        eprintln!("error: {}: {e}", dirs.data.display());
        return Err(1);
    }
    Store::open(&dirs.db_path()).map_err(|e| {
        eprintln!("error: {e}");
        1
    })
}

fn is_script(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| SCRIPT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

pub fn add(args: AddArgs, dirs: &Dirs) -> i32 {
    let scripts: Vec<PathBuf> = if args.path.is_dir() {
        let mut v: Vec<PathBuf> = match std::fs::read_dir(&args.path) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_script(p))
                .collect(),
            Err(e) => {
                eprintln!("error: {}: {e}", args.path.display());
                return 2;
            }
        };
        v.sort();
        if v.is_empty() {
            eprintln!(
                "error: {}: no scripts (.yaml, .yml, .json, .txt, .md) in this directory",
                args.path.display()
            );
            return 2;
        }
        v
    } else {
        vec![args.path.clone()]
    };
    let models = match crate::engines::models::StageModels::resolve(dirs) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let channels = match ChannelSet::load(Some(&dirs.config)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let req_for = |script: &Path| RenderRequest {
        script: script.to_path_buf(),
        channel: args.channel.clone(),
        languages: args.lang.clone(),
        out: args.out.clone(),
        quality: args.quality,
        seed: args.seed,
    };
    // Validate everything first: a directory with one bad script queues nothing.
    let mut bad = 0;
    for s in &scripts {
        let text = crate::script::read_text(s).map_err(|e| JobError::Input(e.to_string()));
        if let Err(e) = text
            .and_then(|t| crate::pipeline::job::prepare_text(&req_for(s), &t, &channels, &models))
        {
            eprintln!("error: {e}");
            bad += 1;
        }
    }
    if bad > 0 {
        eprintln!("nothing was queued: fix the script(s) above and add again");
        return 2;
    }
    let store = match open_store(dirs) {
        Ok(s) => s,
        Err(code) => return code,
    };
    for s in &scripts {
        match scheduler::enqueue(&store, &channels, &req_for(s), args.priority, &models) {
            Ok(id) => println!("job {id}: queued {}", s.display()),
            Err(e) => {
                eprintln!("error: {e}");
                return e.exit_code();
            }
        }
    }
    0
}

pub fn run(args: RunArgs, dirs: &Dirs) -> i32 {
    let lock = if args.wait_lock {
        SchedulerLock::acquire_waiting(&dirs.data)
    } else {
        SchedulerLock::acquire(&dirs.data)
    };
    let lock = match lock {
        Ok(l) => l,
        Err(e @ scheduler::LockError::Held { .. }) => {
            eprintln!("error: {e}");
            return 2;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let mut cfg = SchedulerConfig::default();
    if let Some(j) = args.jobs {
        cfg.cpu_slots = j.max(1);
        cfg.window = (j * 2).max(4);
    }
    cfg.exit_when_idle = args.exit_when_idle;
    cfg.inbox = !args.no_inbox;
    cfg.crash_limit = args.crash_limit.max(1);
    cfg.stall_after = args.stall_after;
    if !args.in_process {
        match scheduler::worker::default_config(&dirs.data) {
            Ok(mut w) => {
                w.max_tasks = args.worker_tasks.max(1);
                w.max_rss_growth = args.worker_rss_growth;
                w.memory_limit = args.worker_memory_limit;
                cfg.workers = Some(w);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
    }
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let shutdown = CancellationToken::new();
    let code = rt.block_on(async {
        super::cancel_on_signals(
            shutdown.clone(),
            "stopping: running stages are checkpointed and resume on the next `reelsmith run`",
        );
        let log: Box<dyn FnMut(&str) + Send> = Box::new(|line| println!("{line}"));
        let mut sched = match Scheduler::new(
            dirs.clone(),
            crate::stages::registry(),
            cfg,
            shutdown.clone(),
            log,
        ) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        match sched.run().await {
            Ok(st) => {
                println!(
                    "{} job(s) done, {} failed; {} task(s) run, {} from cache",
                    st.jobs_done, st.jobs_failed, st.tasks_run, st.tasks_cached
                );
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        }
    });
    drop(lock);
    code
}

pub fn status(args: StatusArgs, dirs: &Dirs) -> i32 {
    let store = match open_store(dirs) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let out = std::io::stdout().lock();
    let written = if args.json {
        let stages = args.stages || args.last.is_some();
        write_status_json(&store, args.last, stages, out).map(|_| ())
    } else {
        write_status_table(&store, args.last, out)
    };
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

use crate::scheduler::WORKERS_SETTING;

/// Why `status` could not print the queue.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StatusError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the status: {0}")]
    Write(#[from] std::io::Error),
}

impl From<serde_json::Error> for StatusError {
    fn from(e: serde_json::Error) -> Self {
        StatusError::Write(e.into())
    }
}

/// `status --json`, written to `out` as the jobs' rows arrive (never one document in memory):
/// `{"queue_paused", "workers", "jobs": [...]}`. Each job carries its summary columns and its
/// stages counted (`stages_total`, `stages_finished`, `stages_running`, `stages_failed`,
/// `running`: the running stages with their progress); with `stages`, also the list of its
/// stages. Returns how many jobs were written.
pub(crate) fn write_status_json(
    store: &Store,
    last: Option<usize>,
    stages: bool,
    out: impl Write,
) -> Result<usize, StatusError> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    out.write_all(b"{\"queue_paused\":")?;
    serde_json::to_writer(&mut out, &store.queue_paused()?)?;
    out.write_all(b",\"workers\":")?;
    serde_json::to_writer(&mut out, &published_workers(store)?)?;
    out.write_all(b",\"jobs\":[")?;
    let mut n = 0usize;
    let mut write_job = |job: &JobOverview, tasks: Option<&[TaskRow]>| {
        if n > 0 {
            out.write_all(b",")?;
        }
        n += 1;
        serde_json::to_writer(&mut out, &JobJson::new(job, tasks))?;
        Ok::<_, StatusError>(())
    };
    if stages {
        store.for_each_job_overview_with_tasks(last, |j, t| write_job(j, Some(t)))?;
    } else {
        store.for_each_job_overview(last, |j| write_job(j, None))?;
    }
    out.write_all(b"]}\n")?;
    out.flush()?;
    Ok(n)
}

/// The workers the running scheduler published: the JSON array in the `workers` setting, or
/// an empty one when there is none (no scheduler yet) or it is not a JSON array.
fn published_workers(store: &Store) -> Result<serde_json::Value, StoreError> {
    let empty = || serde_json::Value::Array(Vec::new());
    Ok(match store.setting(WORKERS_SETTING)? {
        Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v @ serde_json::Value::Array(_)) => v,
            _ => empty(),
        },
        None => empty(),
    })
}

/// One job of `status --json`.
#[derive(Serialize)]
struct JobJson<'a> {
    id: i64,
    status: JobStatus,
    priority: i64,
    out_dir: &'a str,
    script: Option<&'a str>,
    error: Option<&'a str>,
    created_ms: i64,
    started_ms: Option<i64>,
    finished_ms: Option<i64>,
    cancel_requested: bool,
    stages_total: usize,
    stages_finished: usize,
    stages_running: usize,
    stages_failed: usize,
    running: &'a [RunningStage],
    #[serde(skip_serializing_if = "Option::is_none")]
    stages: Option<StagesJson<'a>>,
}

impl<'a> JobJson<'a> {
    fn new(j: &'a JobOverview, tasks: Option<&'a [TaskRow]>) -> Self {
        JobJson {
            id: j.id,
            status: j.status,
            priority: j.priority,
            out_dir: &j.out_dir,
            script: j.script_name.as_deref(),
            error: j.error.as_deref(),
            created_ms: j.created_ms,
            started_ms: j.started_ms,
            finished_ms: j.finished_ms,
            cancel_requested: j.cancel_requested,
            stages_total: j.tasks,
            stages_finished: j.tasks_finished,
            stages_running: j.tasks_running,
            stages_failed: j.tasks_failed,
            running: &j.running,
            stages: tasks.map(StagesJson),
        }
    }
}

/// A job's stages in `status --json --stages`, serialised straight from the rows.
struct StagesJson<'a>(&'a [TaskRow]);

impl Serialize for StagesJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|t| StageJson {
            stage: &t.stage,
            kind: &t.kind,
            lang: t.lang.as_deref(),
            status: t.status,
            progress: t.progress,
            engine: t.engine.as_deref(),
            error: t.error.as_deref(),
            elapsed_ms: t.elapsed_ms,
            attempts: t.attempts,
            crashes: t.crashes,
        }))
    }
}

#[derive(Serialize)]
struct StageJson<'a> {
    stage: &'a str,
    kind: &'a str,
    lang: Option<&'a str>,
    status: TaskStatus,
    progress: f64,
    engine: Option<&'a str>,
    error: Option<&'a str>,
    elapsed_ms: Option<i64>,
    attempts: i64,
    crashes: i64,
}

/// Plain `status`: a line per job (stages finished of all, the error or the running stages).
fn write_status_table(
    store: &Store,
    last: Option<usize>,
    out: impl Write,
) -> Result<(), StatusError> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    if store.queue_paused().unwrap_or(false) {
        writeln!(out, "queue paused (reelsmith queue resume)")?;
    }
    let workers: Vec<crate::scheduler::worker::WorkerView> =
        serde_json::from_value(published_workers(store)?).unwrap_or_default();
    let stalled = |job: i64, stage: &str| {
        workers.iter().any(|w| {
            w.tasks
                .iter()
                .any(|t| t.job == job && t.stage == stage && t.stalled)
        })
    };
    writeln!(
        out,
        "{:>6}  {:<9} {:>4}  {:>5}  {:<28} note",
        "job", "status", "pri", "done", "script"
    )?;
    store.for_each_job_overview(last, |j| {
        let note = match &j.error {
            Some(e) => e.lines().next().unwrap_or("").to_string(),
            None if !j.running.is_empty() => {
                let names: Vec<String> = j
                    .running
                    .iter()
                    .map(|r| {
                        if stalled(j.id, &r.stage) {
                            format!(
                                "{} (stalled: no progress; `reelsmith cancel {}`)",
                                r.stage, j.id
                            )
                        } else {
                            r.stage.clone()
                        }
                    })
                    .collect();
                format!("running {}", names.join(", "))
            }
            None => String::new(),
        };
        let name = j
            .script_name
            .as_deref()
            .and_then(|p| Path::new(p).file_name())
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        writeln!(
            out,
            "{:>6}  {:<9} {:>4}  {:>2}/{:<2}  {:<28} {note}",
            j.id,
            j.status.as_str(),
            j.priority,
            j.tasks_finished,
            j.tasks,
            name
        )?;
        Ok::<_, StatusError>(())
    })?;
    if !workers.is_empty() {
        writeln!(out, "stage workers:")?;
        for w in &workers {
            let doing = if w.tasks.is_empty() {
                "idle".to_string()
            } else {
                w.tasks
                    .iter()
                    .map(|t| {
                        format!(
                            "job {} {} {:.0}%{}",
                            t.job,
                            t.stage,
                            t.progress * 100.0,
                            if t.stalled { " STALLED" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let models = if w.models.is_empty() {
                String::new()
            } else {
                format!("  models: {}", w.models.join(", "))
            };
            writeln!(
                out,
                "  pid {:<8} {:<5} {:>7}  {:>4} tasks done  {doing}{models}",
                w.pid,
                w.device,
                crate::gpu::units::format_bytes(w.rss_bytes),
                w.tasks_done
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn job_cmd(
    dirs: &Dirs,
    job: i64,
    f: impl FnOnce(&Store) -> Result<String, crate::store::StoreError>,
) -> i32 {
    let store = match open_store(dirs) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match store.job(job) {
        Ok(Some(_)) => {}
        Ok(None) => {
            eprintln!("error: no job {job}; see `reelsmith status`");
            return 2;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    }
    match f(&store) {
        Ok(msg) => {
            println!("{msg}");
            0
        }
        Err(e @ crate::store::StoreError::InvalidArgument { .. }) => {
            eprintln!("error: {e}");
            2
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

pub fn cancel(a: JobArg, dirs: &Dirs) -> i32 {
    job_cmd(dirs, a.job, |s| {
        let row = s.request_cancel(a.job)?;
        Ok(match row.status {
            JobStatus::Cancelled => format!("job {}: cancelled", a.job),
            JobStatus::Running => format!(
                "job {}: cancelling (the running stage stops within a second)",
                a.job
            ),
            other => format!("job {}: already {}", a.job, other.as_str()),
        })
    })
}

pub fn retry(a: JobArg, dirs: &Dirs) -> i32 {
    job_cmd(dirs, a.job, |s| {
        let n = s.retry_job(a.job)?;
        Ok(format!(
            "job {}: queued again; {n} stage(s) will run, finished ones are reused",
            a.job
        ))
    })
}

pub fn pause(a: JobArg, dirs: &Dirs) -> i32 {
    job_cmd(dirs, a.job, |s| {
        s.pause_job(a.job)?;
        Ok(format!(
            "job {}: paused (running stages finish, no new ones start)",
            a.job
        ))
    })
}

pub fn resume(a: JobArg, dirs: &Dirs) -> i32 {
    job_cmd(dirs, a.job, |s| {
        s.resume_job(a.job)?;
        Ok(format!("job {}: resumed", a.job))
    })
}

pub fn priority(a: PriorityArgs, dirs: &Dirs) -> i32 {
    job_cmd(dirs, a.job, |s| {
        s.set_priority(a.job, a.priority)?;
        Ok(format!("job {}: priority {}", a.job, a.priority))
    })
}

pub fn queue(cmd: QueueCmd, dirs: &Dirs) -> i32 {
    let store = match open_store(dirs) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let paused = matches!(cmd, QueueCmd::Pause);
    match store.set_queue_paused(paused) {
        Ok(()) => {
            println!(
                "queue {}",
                if paused {
                    "paused: running stages finish, no new ones start"
                } else {
                    "resumed"
                }
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

pub fn logs(a: LogsArgs, dirs: &Dirs) -> i32 {
    let store = match open_store(dirs) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match store.job(a.job) {
        Ok(Some(_)) => {}
        Ok(None) => {
            eprintln!("error: no job {}; see `reelsmith status`", a.job);
            return 2;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    }
    let mut after = 0;
    loop {
        match store.events(a.job, after, 1000) {
            Ok(evs) => {
                for e in &evs {
                    let secs = e.at_ms / 1000;
                    println!(
                        "{:02}:{:02}:{:02} {:<5} {}",
                        (secs / 3600) % 24,
                        (secs / 60) % 60,
                        secs % 60,
                        e.level.as_str(),
                        e.message
                    );
                    after = e.id;
                }
                if !evs.is_empty() {
                    continue;
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
        if !a.follow {
            return 0;
        }
        match store.job(a.job) {
            Ok(Some(j)) if j.status.is_terminal() => return 0,
            Ok(_) => std::thread::sleep(Duration::from_millis(500)),
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
    }
}

/// "30s", "10m", "2h", "1h30m" or plain seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs > 0.0 {
            return Ok(std::time::Duration::from_secs_f64(secs));
        }
    }
    let mut total = 0.0f64;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            _ => return Err(format!("`{text}`: use a duration like 30s, 10m or 2h")),
        };
        let n: f64 = num
            .parse()
            .map_err(|_| format!("`{text}`: use a duration like 30s, 10m or 2h"))?;
        total += n * unit;
        num.clear();
    }
    if !num.is_empty() || total <= 0.0 {
        return Err(format!("`{text}`: use a duration like 30s, 10m or 2h"));
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn reads_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_secs_f64(2.5)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("0").is_err());
    }
}
