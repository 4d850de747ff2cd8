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
mod schema;
mod types;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::Type;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};

pub use error::StoreError;
pub use types::{
    EventLevel, EventRow, JobId, JobRow, JobStatus, ProjectId, TaskId, TaskRow, TaskStatus,
};

use schema::MIGRATIONS;

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

        // `journal_mode` returns the resulting mode ("memory" for in-memory
        // databases, which cannot use WAL); it persists in the file.
        let _mode: String = store
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| store.err(e))?;
        store
            .conn
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(|e| store.err(e))?;

        store.migrate()?;
        Ok(store)
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
        self.conn
            .query_row(
                "INSERT INTO jobs (project_id, kind, status, priority, params, out_dir,
                                   attempts, created_ms, started_ms, finished_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
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
                    finished
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
    /// previous finish/error cleared.
    pub fn task_started(&self, task: TaskId, engine: &str) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE tasks SET
                     status = 'running',
                     engine = ?2,
                     progress = 0,
                     error = NULL,
                     started_ms = ?3,
                     finished_ms = NULL,
                     elapsed_ms = NULL
                 WHERE id = ?1",
                params![task, engine, now_ms()],
            )
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
            .execute(
                "UPDATE tasks SET progress = ?2 WHERE id = ?1",
                params![task, progress.clamp(0.0, 1.0)],
            )
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
            .execute(
                "UPDATE tasks SET
                     status = ?2,
                     artifact_key = ?3,
                     error = ?4,
                     elapsed_ms = ?5,
                     finished_ms = ?6,
                     progress = CASE WHEN ?7 THEN 1.0 ELSE progress END
                 WHERE id = ?1",
                params![
                    task,
                    status.as_str(),
                    artifact_key,
                    error,
                    elapsed_ms,
                    now_ms(),
                    complete
                ],
            )
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
            .execute(
                "INSERT INTO events (job_id, task_id, at_ms, level, message)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![job, task, now_ms(), level.as_str(), message],
            )
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
            .prepare_cached(
                "SELECT id, job_id, stage, kind, lang, status, engine, artifact_key, error,
                        progress, started_ms, finished_ms, elapsed_ms
                 FROM tasks WHERE job_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![job], |r| {
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
                })
            })
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

const JOB_COLUMNS: &str = "id, project_id, kind, status, priority, params, out_dir, error, \
                           attempts, created_ms, started_ms, finished_ms";

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    let params_text: String = r.get(5)?;
    let params = serde_json::from_str(&params_text)
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
    })
}

/// Reads a text column and parses it with `parse`, reporting unknown values
/// as a conversion error that names the column and the value.
fn parse_column<T>(r: &Row<'_>, idx: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = r.get(idx)?;
    parse(&text).ok_or_else(|| {
        let name = r.as_ref().column_name(idx).unwrap_or("?").to_string();
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            Type::Text,
            format!("unknown {name} value {text:?}").into(),
        )
    })
}
