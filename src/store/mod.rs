//! The SQLite store: projects, jobs, tasks, artifacts and events.
//!
//! This is the only module that writes SQL. Everything else goes through the
//! typed API of [`Store`].
//!
//! - The connection runs in WAL mode with `synchronous=NORMAL`,
//!   `foreign_keys=ON` and a 5 s busy timeout, so several reelsmith processes
//!   (a TUI and a worker, say) can share one database file.
//! - The schema lives in [`schema::MIGRATIONS`], an append-only list applied
//!   over `PRAGMA user_version`, one transaction per migration.
//! - A database written by a newer reelsmith (a larger `user_version`) is
//!   refused before anything is written to it.
//! - Timestamps are integer milliseconds since the UNIX epoch, taken from the
//!   system clock inside the store.

mod error;
mod pulls;
mod schema;
mod types;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::{Type, ValueRef};
use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior,
};

pub use error::StoreError;
pub use pulls::{PullEnd, PullId, PullRow, PullStart};
pub use types::{
    EventLevel, EventRow, JobId, JobRow, JobStatus, NewJob, NewTask, ProjectId, ProjectRow,
    PullStatus, Recovered, TaskId, TaskRow, TaskStatus,
};

use schema::MIGRATIONS;

/// A job with its tasks, as the queue overviews load them.
pub type JobWithTasks = (JobRow, Vec<TaskRow>);

/// The schema version this build writes (the number of migrations it knows).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// How long a statement waits for another connection's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the path of an in-memory database reads as in messages.
const MEMORY_PATH: &str = ":memory:";

/// A connection to the reelsmith database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Milliseconds since the UNIX epoch from the system clock (0 if the clock is
/// set before 1970).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn sqlite_code(e: &rusqlite::Error) -> Option<(ErrorCode, i32)> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some((f.code, f.extended_code)),
        _ => None,
    }
}

fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    matches!(
        sqlite_code(e),
        Some((_, ext)) if ext == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}

fn read_user_version(conn: &Connection) -> rusqlite::Result<u32> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    // user_version is a signed 32-bit header field; a negative value can only
    // come from someone else's tool, treat it as "far in the future".
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

fn check_not_newer(path: &Path, found: u32) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and brings its
    /// schema up to date. The parent directory must already exist.
    ///
    /// Fails with [`StoreError::NewerSchema`] — without writing anything —
    /// when the file was written by a newer reelsmith.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Store::init(conn, path.to_path_buf())
    }

    /// Opens a fresh, private in-memory database with the current schema.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(MEMORY_PATH);
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Store::init(conn, path)
    }

    fn init(conn: Connection, path: PathBuf) -> Result<Store, StoreError> {
        let mut store = Store { conn, path };
        // Connection-local settings first: none of these write to the file.
        store
            .conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| store.err(e))?;
        // Refuse a newer schema before anything (journal mode included)
        // touches the file. This read is also the first real access, so a
        // file that is not a database is reported here.
        let found = read_user_version(&store.conn).map_err(|e| store.open_err(e))?;
        store.check_not_newer(found)?;

        // Switching a fresh file to WAL and migrating it race with other
        // processes opening it at the same moment; SQLite answers some of
        // those races with SQLITE_BUSY without waiting (it would deadlock
        // otherwise), so the whole setup is retried for up to BUSY_TIMEOUT.
        let started = std::time::Instant::now();
        loop {
            match store.setup() {
                Err(StoreError::Busy { .. }) if started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                r => return r.map(|()| store),
            }
        }
    }

    fn setup(&mut self) -> Result<(), StoreError> {
        // `journal_mode` returns the resulting mode ("memory" for in-memory
        // databases, which cannot use WAL); it persists in the file.
        let _mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(|e| self.err(e))?;
        self.migrate()
    }

    fn check_not_newer(&self, found: u32) -> Result<(), StoreError> {
        check_not_newer(&self.path, found)
    }

    /// Applies every migration past the file's `user_version`, each in its own
    /// `BEGIN IMMEDIATE` transaction that also bumps `user_version`. The
    /// version is re-read under the write lock, so two processes opening a
    /// fresh file at once do not both run a migration. An up-to-date database
    /// takes no write lock at all.
    fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        loop {
            let current = read_user_version(&self.conn).map_err(|e| self.err(e))?;
            self.check_not_newer(current)?;
            if current >= SCHEMA_VERSION {
                return Ok(());
            }
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| Store::classify(&path, e))?;
            // Another process may have migrated between the read and the lock.
            let current = read_user_version(&tx).map_err(|e| Store::classify(&path, e))?;
            check_not_newer(&path, current)?;
            let Some(sql) = MIGRATIONS.get(current as usize) else {
                // Up to date after all; dropping `tx` rolls back (nothing was
                // written).
                return Ok(());
            };
            let version = current + 1;
            let migrate_err = |source| StoreError::Migrate {
                path: path.clone(),
                version,
                source,
            };
            tx.execute_batch(sql).map_err(migrate_err)?;
            tx.pragma_update(None, "user_version", version)
                .map_err(migrate_err)?;
            tx.commit().map_err(migrate_err)?;
        }
    }

    /// Maps a SQLite error to the store's error, naming this database.
    fn err(&self, e: rusqlite::Error) -> StoreError {
        Store::classify(&self.path, e)
    }

    fn classify(path: &Path, source: rusqlite::Error) -> StoreError {
        let path = path.to_path_buf();
        match sqlite_code(&source) {
            Some((ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked, _)) => {
                StoreError::Busy { path, source }
            }
            Some((ErrorCode::NotADatabase, _)) => StoreError::NotADatabase { path, source },
            _ => StoreError::Sqlite { path, source },
        }
    }

    /// Like [`Store::err`], for the first access after opening: a file that
    /// cannot be read at all is an open error.
    fn open_err(&self, source: rusqlite::Error) -> StoreError {
        match sqlite_code(&source) {
            Some((ErrorCode::CannotOpen | ErrorCode::PermissionDenied, _)) => StoreError::Open {
                path: self.path.clone(),
                source,
            },
            _ => self.err(source),
        }
    }

    fn not_found(&self, what: &'static str, id: i64) -> StoreError {
        StoreError::NotFound {
            path: self.path.clone(),
            what,
            id,
        }
    }

    fn invalid(&self, what: &'static str, why: impl Into<String>) -> StoreError {
        StoreError::InvalidArgument {
            path: self.path.clone(),
            what,
            why: why.into(),
        }
    }

    /// The path this store was opened with (`:memory:` for in-memory stores).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version recorded in the database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        read_user_version(&self.conn).map_err(|e| self.err(e))
    }

    /// Inserts the project with this script path, or updates its name and
    /// channel if it exists. Returns its id either way.
    pub fn upsert_project(
        &self,
        name: &str,
        script_path: &str,
        channel: &str,
    ) -> Result<ProjectId, StoreError> {
        let now = now_ms();
        self.conn
            .query_row(
                "INSERT INTO projects (name, script_path, channel, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (script_path) DO UPDATE SET
                     name = excluded.name,
                     channel = excluded.channel,
                     updated_ms = excluded.updated_ms
                 RETURNING id",
                params![name, script_path, channel, now],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Creates a job for `project`. `params` is stored as JSON text.
    pub fn create_job(
        &self,
        project: ProjectId,
        kind: &str,
        params: &serde_json::Value,
        out_dir: &str,
        priority: i64,
        status: JobStatus,
    ) -> Result<JobId, StoreError> {
        let params_text = serde_json::to_string(params).map_err(|source| StoreError::Json {
            path: self.path.clone(),
            what: "job params",
            source,
        })?;
        let now = now_ms();
        let (started, finished) = match status {
            JobStatus::Running => (Some(now), None),
            s if s.is_terminal() => (None, Some(now)),
            _ => (None, None),
        };
        let attempts = i64::from(status == JobStatus::Running);
        let queued = (status == JobStatus::Queued).then_some(now);
        self.conn
            .query_row(
                "INSERT INTO jobs (project_id, kind, status, priority, params, out_dir,
                                   attempts, created_ms, started_ms, finished_ms, queued_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 RETURNING id",
                params![
                    project,
                    kind,
                    status.as_str(),
                    priority,
                    params_text,
                    out_dir,
                    attempts,
                    now,
                    started,
                    finished,
                    queued
                ],
                |r| r.get(0),
            )
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    self.not_found("project", project)
                } else {
                    self.err(e)
                }
            })
    }

    /// Sets a job's status and error (`None` clears it).
    ///
    /// - → running: `started_ms` is set the first time only, and `attempts`
    ///   goes up by one unless the job was already running.
    /// - → done/failed/cancelled: `finished_ms` is set to now.
    /// - → queued/running/paused: `finished_ms` is cleared (a re-queued job is
    ///   not finished).
    /// - → queued from any other status: `queued_ms` becomes now.
    pub fn set_job_status(
        &self,
        job: JobId,
        status: JobStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE jobs SET
                     attempts = attempts + (?2 = 'running' AND status <> 'running'),
                     queued_ms = CASE WHEN ?2 = 'queued' AND status <> 'queued' THEN ?4
                                      ELSE queued_ms END,
                     status = ?2,
                     error = ?3,
                     started_ms = CASE WHEN ?2 = 'running' THEN COALESCE(started_ms, ?4)
                                       ELSE started_ms END,
                     finished_ms = CASE WHEN ?5 THEN ?4 ELSE NULL END
                 WHERE id = ?1",
                params![job, status.as_str(), error, now_ms(), status.is_terminal()],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(self.not_found("job", job));
        }
        Ok(())
    }

    /// Returns the task for `(job, stage)`, creating it as pending if needed.
    /// Calling it again with the same stage returns the same id and leaves the
    /// task's status alone (kind and lang are refreshed).
    pub fn upsert_task(
        &self,
        job: JobId,
        stage: &str,
        kind: &str,
        lang: Option<&str>,
    ) -> Result<TaskId, StoreError> {
        self.conn
            .query_row(
                "INSERT INTO tasks (job_id, stage, kind, lang)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (job_id, stage) DO UPDATE SET
                     kind = excluded.kind,
                     lang = excluded.lang
                 RETURNING id",
                params![job, stage, kind, lang],
                |r| r.get(0),
            )
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    self.not_found("job", job)
                } else {
                    self.err(e)
                }
            })
    }

    /// Marks a task running on `engine`: progress back to 0, start time now,
    /// previous finish/error cleared, `attempts` up by one.
    pub fn task_started(&self, task: TaskId, engine: &str) -> Result<(), StoreError> {
        self.task_started_on(task, engine, None)
    }

    /// [`Store::task_started`] on a GPU (`Some(index)`) or the CPU (`None`).
    pub fn task_started_on(
        &self,
        task: TaskId,
        engine: &str,
        device: Option<u32>,
    ) -> Result<(), StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE tasks SET
                     status = 'running',
                     attempts = attempts + 1,
                     engine = ?2,
                     progress = 0,
                     error = NULL,
                     started_ms = ?3,
                     finished_ms = NULL,
                     elapsed_ms = NULL,
                     device = ?4
                 WHERE id = ?1",
            )
            .and_then(|mut st| st.execute(params![task, engine, now_ms(), device]))
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(self.not_found("task", task));
        }
        Ok(())
    }

    /// Records a task's progress, a fraction clamped to `0.0..=1.0`.
    pub fn task_progress(&self, task: TaskId, progress: f64) -> Result<(), StoreError> {
        if !progress.is_finite() {
            return Err(self.invalid(
                "task progress",
                format!("{progress} is not a finite fraction between 0 and 1"),
            ));
        }
        let n = self
            .conn
            .prepare_cached("UPDATE tasks SET progress = ?2 WHERE id = ?1")
            .and_then(|mut st| st.execute(params![task, progress.clamp(0.0, 1.0)]))
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(self.not_found("task", task));
        }
        Ok(())
    }

    /// Records how a task ended. `status` must be terminal (not pending or
    /// running). Done and cached tasks get progress 1.
    pub fn task_finished(
        &self,
        task: TaskId,
        status: TaskStatus,
        artifact_key: Option<&str>,
        error: Option<&str>,
        elapsed_ms: i64,
    ) -> Result<(), StoreError> {
        if !status.is_terminal() {
            return Err(self.invalid("task status", format!("`{status}` is not a finished state")));
        }
        let complete = matches!(status, TaskStatus::Done | TaskStatus::Cached);
        let n = self
            .conn
            .prepare_cached(
                "UPDATE tasks SET
                     status = ?2,
                     artifact_key = ?3,
                     error = ?4,
                     elapsed_ms = ?5,
                     finished_ms = ?6,
                     progress = CASE WHEN ?7 THEN 1.0 ELSE progress END
                 WHERE id = ?1",
            )
            .and_then(|mut st| {
                st.execute(params![
                    task,
                    status.as_str(),
                    artifact_key,
                    error,
                    elapsed_ms,
                    now_ms(),
                    complete
                ])
            })
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(self.not_found("task", task));
        }
        Ok(())
    }

    /// Records an artifact in the cache index, or refreshes its kind and size;
    /// either way `last_used_ms` becomes now.
    pub fn record_artifact(
        &self,
        key: &str,
        stage_kind: &str,
        bytes: u64,
    ) -> Result<(), StoreError> {
        let bytes = i64::try_from(bytes)
            .map_err(|_| self.invalid("artifact size", format!("{bytes} bytes is too large")))?;
        self.conn
            .execute(
                "INSERT INTO artifacts (key, stage_kind, bytes, created_ms, last_used_ms)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (key) DO UPDATE SET
                     stage_kind = excluded.stage_kind,
                     bytes = excluded.bytes,
                     last_used_ms = excluded.last_used_ms",
                params![key, stage_kind, bytes, now_ms()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Appends an event, optionally tied to a job and/or a task.
    pub fn add_event(
        &self,
        job: Option<JobId>,
        task: Option<TaskId>,
        level: EventLevel,
        message: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO events (job_id, task_id, at_ms, level, message)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![job, task, now_ms(), level.as_str(), message]))
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    match (job, task) {
                        (Some(j), None) => self.not_found("job", j),
                        (None, Some(t)) => self.not_found("task", t),
                        _ => self.invalid(
                            "event",
                            format!("job {job:?} or task {task:?} does not exist"),
                        ),
                    }
                } else {
                    self.err(e)
                }
            })?;
        Ok(())
    }

    /// Starts a write transaction on this connection (`BEGIN IMMEDIATE`, so
    /// a busy database is reported up front rather than at the first write).
    fn write_tx(&self) -> Result<Transaction<'_>, StoreError> {
        Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))
    }

    /// Puts a job on the queue (status queued, `queued_ms` now) together with
    /// its script snapshot and its pending tasks, in one transaction.
    pub fn enqueue_job(&self, new: &NewJob) -> Result<JobId, StoreError> {
        let ids = self.enqueue_jobs(std::slice::from_ref(new))?;
        Ok(ids[0])
    }

    /// [`Store::enqueue_job`] for many jobs in one transaction: either all of
    /// them are queued or none is. Returns their ids in order.
    pub fn enqueue_jobs(&self, new: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
        let tx = self.write_tx()?;
        let now = now_ms();
        let mut ids = Vec::with_capacity(new.len());
        {
            let mut insert_job = tx
                .prepare_cached(
                    "INSERT INTO jobs (project_id, kind, status, priority, params, out_dir,
                                       script, script_name, created_ms, queued_ms)
                     VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                     RETURNING id",
                )
                .map_err(|e| self.err(e))?;
            let mut insert_task = tx
                .prepare_cached(UPSERT_TASK_NO_ID)
                .map_err(|e| self.err(e))?;
            for job in new {
                let params_text =
                    serde_json::to_string(&job.params).map_err(|source| StoreError::Json {
                        path: self.path.clone(),
                        what: "job params",
                        source,
                    })?;
                let id: JobId = insert_job
                    .query_row(
                        params![
                            job.project,
                            job.kind,
                            job.priority,
                            params_text,
                            job.out_dir,
                            job.script,
                            job.script_name,
                            now
                        ],
                        |r| r.get(0),
                    )
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            self.not_found("project", job.project)
                        } else {
                            self.err(e)
                        }
                    })?;
                for task in &job.tasks {
                    insert_task
                        .execute(params![id, task.stage, task.kind, task.lang])
                        .map_err(|e| self.err(e))?;
                }
                ids.push(id);
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// Asks for a job to be cancelled and returns the job as it is after:
    ///
    /// - queued or paused: cancelled at once (`finished_ms` now), and its
    ///   pending tasks become cancelled. A task of a paused job that is still
    ///   running is left to whoever runs it; it sees `cancel_requested`.
    /// - running: only `cancel_requested` is set; the scheduler stops it.
    /// - done, failed, cancelled: nothing changes.
    pub fn request_cancel(&self, job: JobId) -> Result<JobRow, StoreError> {
        let tx = self.write_tx()?;
        let now = now_ms();
        let cancelled_now: Option<bool> = tx
            .query_row(
                "UPDATE jobs SET
                     cancel_requested = 1,
                     status = CASE WHEN status = 'running' THEN status ELSE 'cancelled' END,
                     finished_ms = CASE WHEN status = 'running' THEN finished_ms ELSE ?2 END
                 WHERE id = ?1 AND status IN ('queued','running','paused')
                 RETURNING status = 'cancelled'",
                params![job, now],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if cancelled_now == Some(true) {
            tx.execute(
                "UPDATE tasks SET status = 'cancelled', finished_ms = ?2
                 WHERE job_id = ?1 AND status = 'pending'",
                params![job, now],
            )
            .map_err(|e| self.err(e))?;
        }
        let row = tx
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                params![job],
                job_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.not_found("job", job))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(row)
    }

    /// Changes a job's priority (any status).
    pub fn set_priority(&self, job: JobId, priority: i64) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE jobs SET priority = ?2 WHERE id = ?1",
                params![job, priority],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(self.not_found("job", job));
        }
        Ok(())
    }

    /// Moves a job's status from one of `from` to `to`. A job that already
    /// has status `to` is left alone; otherwise NotFound, or InvalidArgument
    /// naming its status.
    fn move_job(
        &self,
        job: JobId,
        from: &[JobStatus],
        to: JobStatus,
        verb: &str,
    ) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        let status: Option<String> = tx
            .query_row("SELECT status FROM jobs WHERE id = ?1", [job], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(status) = status else {
            return Err(self.not_found("job", job));
        };
        if status == to.as_str() {
            return Ok(());
        }
        if !from.iter().any(|s| s.as_str() == status) {
            let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
            return Err(self.invalid(
                "job status",
                format!(
                    "job {job} is {status}; only {} jobs can be {verb}",
                    allowed.join(" or ")
                ),
            ));
        }
        tx.execute(
            "UPDATE jobs SET
                 status = ?2,
                 finished_ms = NULL,
                 queued_ms = CASE WHEN ?2 = 'queued' THEN ?3 ELSE queued_ms END
             WHERE id = ?1",
            params![job, to.as_str(), now_ms()],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Pauses a queued or running job: the scheduler starts none of its
    /// tasks until it is resumed (running tasks finish). Pausing a paused job
    /// does nothing; a finished job is an InvalidArgument.
    pub fn pause_job(&self, job: JobId) -> Result<(), StoreError> {
        self.move_job(
            job,
            &[JobStatus::Queued, JobStatus::Running],
            JobStatus::Paused,
            "paused",
        )
    }

    /// Puts a paused job back on the queue (`queued_ms` now). Resuming a
    /// queued job does nothing; any other status is an InvalidArgument.
    pub fn resume_job(&self, job: JobId) -> Result<(), StoreError> {
        self.move_job(job, &[JobStatus::Paused], JobStatus::Queued, "resumed")
    }

    /// Re-queues a failed or cancelled job: `cancel_requested`, `error` and
    /// `finished_ms` cleared, `queued_ms` now. Its failed, cancelled, skipped
    /// and running tasks go back to pending (error, artifact key, finish
    /// time cleared; crashes and progress 0); done and cached tasks are kept.
    /// Returns how many tasks were reset. Any other job status is an
    /// InvalidArgument.
    pub fn retry_job(&self, job: JobId) -> Result<usize, StoreError> {
        let tx = self.write_tx()?;
        let status: Option<String> = tx
            .query_row("SELECT status FROM jobs WHERE id = ?1", [job], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(status) = status else {
            return Err(self.not_found("job", job));
        };
        if status != "failed" && status != "cancelled" {
            return Err(self.invalid(
                "job status",
                format!(
                    "job {job} is {status}, not failed or cancelled; only those can be retried"
                ),
            ));
        }
        tx.execute(
            "UPDATE jobs SET status = 'queued', cancel_requested = 0, error = NULL,
                             queued_ms = ?2, finished_ms = NULL
             WHERE id = ?1",
            params![job, now_ms()],
        )
        .map_err(|e| self.err(e))?;
        let reset = tx
            .execute(
                "UPDATE tasks SET status = 'pending', error = NULL, crashes = 0, progress = 0,
                                  artifact_key = NULL, finished_ms = NULL, elapsed_ms = NULL
                 WHERE job_id = ?1 AND status IN ('failed','cancelled','skipped','running')",
                [job],
            )
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(reset)
    }

    /// A global setting, or `None` if it was never set.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")
            .and_then(|mut st| st.query_row([key], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// Sets a global setting.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut st| st.execute([key, value]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Whether the whole queue is paused (no job starts). False by default.
    pub fn queue_paused(&self) -> Result<bool, StoreError> {
        Ok(self.setting(QUEUE_PAUSED_KEY)?.as_deref() == Some("1"))
    }

    /// Pauses or unpauses the whole queue.
    pub fn set_queue_paused(&self, paused: bool) -> Result<(), StoreError> {
        self.set_setting(QUEUE_PAUSED_KEY, if paused { "1" } else { "0" })
    }

    /// `PRAGMA data_version`: changes whenever *another* connection commits
    /// to the file (never for this connection's own commits). Cheap enough to
    /// poll to decide whether to re-read anything.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Crash recovery, for a scheduler starting up; one transaction. Every
    /// task still `running` was interrupted by a dead studio:
    ///
    /// - its `crashes` goes up by one (and its progress back to 0);
    /// - once it reaches `limit` it becomes failed ("crashed the studio
    ///   {limit} times") and so does its job (unless already finished), with
    ///   an error that names the stage and says how to retry;
    /// - otherwise it goes back to pending.
    ///
    /// Then every job still `running` goes back to the queue (`queued_ms`
    /// now) — or, if a cancel was requested, becomes cancelled along with its
    /// pending tasks. Paused jobs stay paused. Returns what happened to each
    /// interrupted task, ordered by task id.
    pub fn recover_after_crash(&self, limit: i64) -> Result<Vec<Recovered>, StoreError> {
        if limit < 1 {
            return Err(self.invalid("crash limit", format!("{limit} must be at least 1")));
        }
        let tx = self.write_tx()?;
        let now = now_ms();
        let task_error = format!("crashed the studio {limit} times");
        let mut report = {
            let mut st = tx
                .prepare(
                    "UPDATE tasks SET
                         crashes = crashes + 1,
                         status = CASE WHEN crashes + 1 >= ?1 THEN 'failed' ELSE 'pending' END,
                         error = CASE WHEN crashes + 1 >= ?1 THEN ?2 ELSE NULL END,
                         finished_ms = CASE WHEN crashes + 1 >= ?1 THEN ?3 ELSE NULL END,
                         progress = 0
                     WHERE status = 'running'
                     RETURNING id, job_id, stage, crashes, status = 'failed'",
                )
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map(params![limit, task_error, now], |r| {
                    Ok(Recovered {
                        task: r.get(0)?,
                        job: r.get(1)?,
                        stage: r.get(2)?,
                        crashes: r.get(3)?,
                        failed: r.get(4)?,
                    })
                })
                .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| self.err(e))?
        };
        report.sort_by_key(|r| r.task);
        {
            // Only unfinished jobs fail, so the first failed task (by id) of
            // a job names the job's error.
            let mut fail_job = tx
                .prepare(
                    "UPDATE jobs SET status = 'failed', error = ?2, finished_ms = ?3
                     WHERE id = ?1 AND status IN ('queued','running','paused')",
                )
                .map_err(|e| self.err(e))?;
            for r in report.iter().filter(|r| r.failed) {
                let error = format!(
                    "stage {} crashed the studio {limit} times; fix or remove it, \
                     then `reelsmith retry {}`",
                    r.stage, r.job
                );
                fail_job
                    .execute(params![r.job, error, now])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.execute(
            "UPDATE tasks SET status = 'cancelled', finished_ms = ?1
             WHERE status = 'pending' AND job_id IN
                   (SELECT id FROM jobs WHERE status = 'running' AND cancel_requested = 1)",
            [now],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "UPDATE jobs SET
                 status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                 finished_ms = CASE WHEN cancel_requested THEN ?1 ELSE NULL END,
                 queued_ms = CASE WHEN cancel_requested THEN queued_ms ELSE ?1 END
             WHERE status = 'running'",
            [now],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(report)
    }

    /// Puts a running task back to pending (error cleared, progress 0), for
    /// a graceful stop. A pending task is left alone; a finished one is an
    /// InvalidArgument.
    pub fn reset_task(&self, task: TaskId) -> Result<(), StoreError> {
        let status: Option<String> = self
            .conn
            .query_row(
                "UPDATE tasks SET
                     status = CASE WHEN status = 'running' THEN 'pending' ELSE status END,
                     error = CASE WHEN status = 'running' THEN NULL ELSE error END,
                     progress = CASE WHEN status = 'running' THEN 0 ELSE progress END
                 WHERE id = ?1
                 RETURNING status",
                [task],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match status.as_deref() {
            None => Err(self.not_found("task", task)),
            Some("pending") => Ok(()),
            Some(other) => Err(self.invalid(
                "task status",
                format!("task {task} is {other}; only a running task can be reset to pending"),
            )),
        }
    }

    /// Jobs that are queued, running or paused, with their scripts, oldest
    /// first.
    pub fn active_jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        // Only active rows, already in id order: the partial index
        // `jobs_active` (the WHERE term repeats its own verbatim). Left to
        // itself the planner picks `jobs_status_priority` and sorts.
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_active
                 WHERE status IN ('queued','running','paused') ORDER BY id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], job_from_row).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Every job (or only the newest `limit`), oldest first, each with its
    /// tasks in upsert order: what `reelsmith status` shows. Two queries in
    /// one read transaction, so jobs and tasks are one consistent snapshot.
    /// Scripts, params and artifact keys are not loaded (`script` is `None`,
    /// `params` is JSON null, `artifact_key` is `None`); use [`Store::job`] /
    /// [`Store::tasks`] for those.
    pub fn job_summaries(
        &self,
        limit: Option<usize>,
    ) -> Result<Vec<(JobRow, Vec<TaskRow>)>, StoreError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let mut out: Vec<(JobRow, Vec<TaskRow>)> = {
            let mut stmt = match limit {
                Some(_) => tx.prepare_cached(&format!(
                    "SELECT * FROM (SELECT {JOB_COLUMNS_SUMMARY} FROM jobs
                                    ORDER BY id DESC LIMIT ?1)
                     ORDER BY id"
                )),
                None => tx.prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS_SUMMARY} FROM jobs ORDER BY id"
                )),
            }
            .map_err(|e| self.err(e))?;
            let map = |r: &Row<'_>| Ok((job_from_row(r)?, Vec::new()));
            let rows = match limit {
                Some(n) => stmt.query_map([i64::try_from(n).unwrap_or(i64::MAX)], map),
                None => stmt.query_map([], map),
            }
            .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?
        };
        let Some(first) = out.first().map(|(j, _)| j.id) else {
            return Ok(out);
        };
        {
            // The selection is a suffix of all jobs by id, so `job_id >=
            // first` is exactly the selected jobs' tasks. For every job, read
            // the table in rowid order (no index lookups); tasks' ids rise
            // in upsert order, so each job's tasks stay in order.
            let mut stmt = match limit {
                Some(_) => tx.prepare_cached(&format!(
                    "SELECT {TASK_COLUMNS_SUMMARY} FROM tasks WHERE job_id >= ?1 ORDER BY job_id, id"
                )),
                None => tx.prepare_cached(&format!(
                    "SELECT {TASK_COLUMNS_SUMMARY} FROM tasks NOT INDEXED WHERE job_id >= ?1 ORDER BY id"
                )),
            }
            .map_err(|e| self.err(e))?;
            let rows = stmt.query([first]).map_err(|e| self.err(e))?;
            self.attach_tasks(&mut out, rows)?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Appends task rows (grouped by job, in order) to their jobs in `out`, which is sorted by
    /// job id; tasks of jobs not in `out` are skipped.
    fn attach_tasks(
        &self,
        out: &mut [JobWithTasks],
        mut rows: rusqlite::Rows<'_>,
    ) -> Result<(), StoreError> {
        let mut slot = 0;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let task = task_from_row(row).map_err(|e| self.err(e))?;
            // Look the job up only when it changes.
            if out.get(slot).is_none_or(|(j, _)| j.id != task.job_id) {
                let Ok(i) = out.binary_search_by_key(&task.job_id, |(j, _)| j.id) else {
                    continue;
                };
                // Jobs tend to have as many tasks as the one before.
                let hint = out.get(slot).map_or(0, |(_, t)| t.len());
                slot = i;
                out[slot].1.reserve(hint);
            }
            out[slot].1.push(task);
        }
        Ok(())
    }

    /// The output folder of a project's newest job, if it has one.
    pub fn latest_out_dir(&self, project: ProjectId) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT out_dir FROM jobs WHERE project_id = ?1 ORDER BY id DESC LIMIT 1",
                [project],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// One job, or `None` if there is no such id.
    pub fn job(&self, id: JobId) -> Result<Option<JobRow>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                params![id],
                job_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id"))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], job_from_row).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// The tasks of a job, in the order they were first upserted.
    pub fn tasks(&self, job: JobId) -> Result<Vec<TaskRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE job_id = ?1 ORDER BY id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![job], task_from_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Up to `limit` events of a job with id greater than `after_id`, oldest
    /// first. Pass the last id seen to follow a job's log (`0` to start).
    pub fn events(
        &self,
        job: JobId,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<EventRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, job_id, task_id, at_ms, level, message
                 FROM events WHERE job_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![job, after_id, limit], |r| {
                Ok(EventRow {
                    id: r.get(0)?,
                    job_id: r.get(1)?,
                    task_id: r.get(2)?,
                    at_ms: r.get(3)?,
                    level: parse_column(r, 4, EventLevel::parse)?,
                    message: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Every project, most recently updated first.
    pub fn projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, name, script_path, channel, created_ms, updated_ms
                 FROM projects ORDER BY updated_ms DESC, id DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ProjectRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    script_path: r.get(2)?,
                    channel: r.get(3)?,
                    created_ms: r.get(4)?,
                    updated_ms: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// The jobs (as in [`Store::job_summaries`], with their tasks) that changed after revision
    /// `after`, and the newest revision. Every insert or update of a job, and every update of
    /// one of its tasks, gives the job a new revision, so a monitor that passes back the
    /// revision it got reloads only what changed (pass 0 for everything).
    pub fn job_changes(&self, after: i64) -> Result<(i64, Vec<JobWithTasks>), StoreError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let rev: i64 = tx
            .query_row("SELECT COALESCE(MAX(rev), 0) FROM jobs", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let mut out: Vec<(JobRow, Vec<TaskRow>)> = {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS_SUMMARY} FROM jobs WHERE rev > ?1 ORDER BY id"
                ))
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([after], |r| Ok((job_from_row(r)?, Vec::new())))
                .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?
        };
        if !out.is_empty() {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT {TASK_COLUMNS_SUMMARY} FROM tasks
                     WHERE job_id IN (SELECT id FROM jobs WHERE rev > ?1) ORDER BY job_id, id"
                ))
                .map_err(|e| self.err(e))?;
            let rows = stmt.query([after]).map_err(|e| self.err(e))?;
            self.attach_tasks(&mut out, rows)?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok((rev, out))
    }

    /// Runs `PRAGMA integrity_check`; `"ok"` when the file is sound, otherwise
    /// the problems found, one per line.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(|e| self.err(e))?;
        let lines = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        Ok(lines.join("\n"))
    }
}

/// The settings key of the queue-wide pause flag.
const QUEUE_PAUSED_KEY: &str = "queue_paused";

/// Upserts a task by `(job, stage)` without returning its id.
const UPSERT_TASK_NO_ID: &str = "INSERT INTO tasks (job_id, stage, kind, lang)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (job_id, stage) DO UPDATE SET
         kind = excluded.kind,
         lang = excluded.lang";

const JOB_COLUMNS: &str = "id, project_id, kind, status, priority, params, out_dir, error, \
                           attempts, created_ms, started_ms, finished_ms, \
                           script_name, cancel_requested, queued_ms, script";

/// What `job_summaries` reads: no script, no params (NULL JSON), no artifact keys — the queue
/// overview needs none of them and parsing 10,000 params documents dominated its time.
const JOB_COLUMNS_SUMMARY: &str = "id, project_id, kind, status, priority, 'null', out_dir, \
                                   error, attempts, created_ms, started_ms, finished_ms, \
                                   script_name, cancel_requested, queued_ms, NULL";
const TASK_COLUMNS_SUMMARY: &str = "id, job_id, stage, kind, lang, status, engine, NULL, error, \
                                    progress, started_ms, finished_ms, elapsed_ms, crashes, attempts, \
                                    device";

const TASK_COLUMNS: &str = "id, job_id, stage, kind, lang, status, engine, artifact_key, error, \
                            progress, started_ms, finished_ms, elapsed_ms, crashes, attempts, \
                            device";

fn task_from_row(r: &Row<'_>) -> rusqlite::Result<TaskRow> {
    Ok(TaskRow {
        id: r.get(0)?,
        job_id: r.get(1)?,
        stage: r.get(2)?,
        kind: r.get(3)?,
        lang: r.get(4)?,
        status: parse_column(r, 5, TaskStatus::parse)?,
        engine: r.get(6)?,
        artifact_key: r.get(7)?,
        error: r.get(8)?,
        progress: r.get(9)?,
        started_ms: r.get(10)?,
        finished_ms: r.get(11)?,
        elapsed_ms: r.get(12)?,
        crashes: r.get(13)?,
        attempts: r.get(14)?,
        device: r.get(15)?,
    })
}

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    let params_text = text_column(r, 5)?;
    let params = serde_json::from_str(params_text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(5, Type::Text, Box::new(e)))?;
    Ok(JobRow {
        id: r.get(0)?,
        project_id: r.get(1)?,
        kind: r.get(2)?,
        status: parse_column(r, 3, JobStatus::parse)?,
        priority: r.get(4)?,
        params,
        out_dir: r.get(6)?,
        error: r.get(7)?,
        attempts: r.get(8)?,
        created_ms: r.get(9)?,
        started_ms: r.get(10)?,
        finished_ms: r.get(11)?,
        script_name: r.get(12)?,
        cancel_requested: r.get(13)?,
        queued_ms: r.get(14)?,
        script: r.get(15)?,
    })
}

/// Reads a text column and parses it with `parse`, reporting unknown values
/// as a conversion error that names the column and the value.
fn parse_column<T>(r: &Row<'_>, idx: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    // Borrowed, not copied: this runs for every row of a status listing.
    let text = text_column(r, idx)?;
    parse(text).ok_or_else(|| {
        let name = r.as_ref().column_name(idx).unwrap_or("?").to_string();
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            Type::Text,
            format!("unknown {name} value {text:?}").into(),
        )
    })
}

/// Borrows a text column without copying it.
fn text_column<'r>(r: &'r Row<'_>, idx: usize) -> rusqlite::Result<&'r str> {
    match r.get_ref(idx)? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))),
        other => Err(rusqlite::Error::InvalidColumnType(
            idx,
            r.as_ref().column_name(idx).unwrap_or("?").to_string(),
            other.data_type(),
        )),
    }
}
