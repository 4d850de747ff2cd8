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
mod publications;
mod pulls;
mod queries;
mod queue;
mod record;
mod schema;
mod types;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::{Type, ValueRef};
use rusqlite::{Connection, ErrorCode, Row, Transaction, TransactionBehavior};

pub use error::StoreError;
pub use publications::{
    Beat, ConsentRow, NewPublication, PublicationId, PublicationRow, PublicationStatus,
};
pub use pulls::{PullEnd, PullId, PullRow, PullStart};
pub use queries::{JobOverview, RunningStage};
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

    /// Starts a write transaction on this connection (`BEGIN IMMEDIATE`, so
    /// a busy database is reported up front rather than at the first write).
    fn write_tx(&self) -> Result<Transaction<'_>, StoreError> {
        Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))
    }

    /// `PRAGMA data_version`: changes whenever *another* connection commits
    /// to the file (never for this connection's own commits). Cheap enough to
    /// poll to decide whether to re-read anything.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
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
