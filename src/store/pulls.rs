//! Model downloads as queued jobs (`pulls`): whoever asks (the studio's Models pane, `reelsmith
//! models pull`) writes a row; a runner claims it, reports progress and a heartbeat into it, and
//! finishes it. Every process that looks at the store sees the same downloads, and one that was
//! running when its process died goes back to the queue (the partial files resume).

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::types::PullStatus;
use super::{now_ms, Store, StoreError};

/// Row id of a pull.
pub type PullId = i64;

/// One download, as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PullRow {
    pub id: PullId,
    /// Registry id of the model.
    pub model: String,
    pub status: PullStatus,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    pub bytes_per_s: f64,
    pub error: Option<String>,
    /// Where the model was installed (done pulls).
    pub path: Option<String>,
    pub cancel_requested: bool,
    /// The process running it (running pulls).
    pub owner_pid: Option<u32>,
    /// Times it was started.
    pub attempts: u32,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    /// Last sign of life from its runner.
    pub beat_ms: Option<i64>,
    pub finished_ms: Option<i64>,
}

/// How a pull ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullEnd {
    /// Installed at this path.
    Done(String),
    Failed(String),
    Cancelled,
    /// Interrupted by a shutdown: back to the queue, resumed by whoever runs it next.
    Requeue,
}

/// What [`Store::start_pull_now`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum PullStart {
    /// This process now runs it.
    Started(PullRow),
    /// Another live process is running it.
    Busy(PullRow),
}

const COLUMNS: &str = "id, model, status, bytes_done, bytes_total, bytes_per_s, error, path,
    cancel_requested, owner_pid, attempts, created_ms, started_ms, beat_ms, finished_ms";

fn row(r: &Row<'_>) -> rusqlite::Result<PullRow> {
    let status: String = r.get(2)?;
    Ok(PullRow {
        id: r.get(0)?,
        model: r.get(1)?,
        status: PullStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("unknown pull status {status:?}").into(),
            )
        })?,
        bytes_done: r.get::<_, i64>(3)?.max(0) as u64,
        bytes_total: r.get::<_, Option<i64>>(4)?.map(|b| b.max(0) as u64),
        bytes_per_s: r.get(5)?,
        error: r.get(6)?,
        path: r.get(7)?,
        cancel_requested: r.get::<_, i64>(8)? != 0,
        owner_pid: r.get::<_, Option<i64>>(9)?.map(|p| p as u32),
        attempts: r.get::<_, i64>(10)?.max(0) as u32,
        created_ms: r.get(11)?,
        started_ms: r.get(12)?,
        beat_ms: r.get(13)?,
        finished_ms: r.get(14)?,
    })
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Queues a download of `model`, or returns the one already queued or running (`false`).
    pub fn enqueue_pull(&self, model: &str) -> Result<(PullRow, bool), StoreError> {
        if model.trim().is_empty() {
            return Err(self.invalid("pull", "empty model id"));
        }
        let tx = self.write_tx()?;
        if let Some(active) = active_for(&tx, model).map_err(|e| self.err(e))? {
            tx.commit().map_err(|e| self.err(e))?;
            return Ok((active, false));
        }
        tx.execute(
            "INSERT INTO pulls (model, status, created_ms) VALUES (?1, 'queued', ?2)",
            params![model, now_ms()],
        )
        .map_err(|e| self.err(e))?;
        let id = tx.last_insert_rowid();
        let new = by_id(&tx, id).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok((new.ok_or_else(|| self.not_found("pull", id))?, true))
    }

    /// Starts downloading `model` in process `pid` right away: claims a queued pull of it, or
    /// creates one; reports [`PullStart::Busy`] when another process is already running it.
    pub fn start_pull_now(&self, model: &str, pid: u32) -> Result<PullStart, StoreError> {
        let (row, _) = self.enqueue_pull(model)?;
        if row.status == PullStatus::Running && row.owner_pid != Some(pid) {
            return Ok(PullStart::Busy(row));
        }
        match self.claim(row.id, pid)? {
            Some(r) => Ok(PullStart::Started(r)),
            // Someone else claimed it between the two statements.
            None => Ok(PullStart::Busy(
                self.pull(row.id)?
                    .ok_or_else(|| self.not_found("pull", row.id))?,
            )),
        }
    }

    /// Claims the oldest queued pull for process `pid` (running, heartbeat now).
    pub fn claim_next_pull(&self, pid: u32) -> Result<Option<PullRow>, StoreError> {
        let next: Option<PullId> = self
            .conn
            .prepare_cached("SELECT id FROM pulls WHERE status = 'queued' ORDER BY id LIMIT 1")
            .and_then(|mut st| st.query_row([], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        match next {
            Some(id) => self.claim(id, pid),
            None => Ok(None),
        }
    }

    /// Queued → running for `pid`; `None` if it was no longer queued (or already ours).
    fn claim(&self, id: PullId, pid: u32) -> Result<Option<PullRow>, StoreError> {
        let tx = self.write_tx()?;
        let now = now_ms();
        let n = tx
            .execute(
                "UPDATE pulls SET status = 'running', owner_pid = ?2, started_ms = ?3,
                     beat_ms = ?3, attempts = attempts + 1, error = NULL, bytes_per_s = 0
                 WHERE id = ?1 AND status = 'queued'",
                params![id, i64::from(pid), now],
            )
            .map_err(|e| self.err(e))?;
        let r = if n == 1 {
            by_id(&tx, id).map_err(|e| self.err(e))?
        } else {
            None
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(r)
    }

    /// Records progress and a heartbeat of a running pull; returns whether a cancel was asked.
    pub fn pull_progress(
        &self,
        id: PullId,
        done: u64,
        total: Option<u64>,
        bytes_per_s: f64,
    ) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE pulls SET bytes_done = ?2, bytes_total = COALESCE(?3, bytes_total),
                     bytes_per_s = ?4, beat_ms = ?5
                 WHERE id = ?1 AND status = 'running'
                 RETURNING cancel_requested",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![
                        id,
                        i64_of(done),
                        total.map(i64_of),
                        if bytes_per_s.is_finite() {
                            bytes_per_s
                        } else {
                            0.0
                        },
                        now_ms()
                    ],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
            })
            .map(|c| c.is_some_and(|c| c != 0))
            .map_err(|e| self.err(e))
    }

    /// Ends a running pull.
    pub fn finish_pull(&self, id: PullId, end: &PullEnd) -> Result<(), StoreError> {
        let now = now_ms();
        let (status, error, path, finished) = match end {
            PullEnd::Done(p) => ("done", None, Some(p.as_str()), Some(now)),
            PullEnd::Failed(e) => ("failed", Some(e.as_str()), None, Some(now)),
            PullEnd::Cancelled => ("cancelled", None, None, Some(now)),
            PullEnd::Requeue => ("queued", None, None, None),
        };
        self.conn
            .prepare_cached(
                "UPDATE pulls SET status = ?2, error = ?3, path = ?4, finished_ms = ?5,
                     owner_pid = NULL, bytes_per_s = 0,
                     cancel_requested = CASE WHEN ?2 = 'queued' THEN 0 ELSE cancel_requested END
                 WHERE id = ?1 AND status = 'running'",
            )
            .and_then(|mut st| st.execute(params![id, status, error, path, finished]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Asks for a pull to stop: a queued one is cancelled at once, a running one is flagged for
    /// its runner (its partial files stay, so pulling again resumes). Returns the row after.
    pub fn cancel_pull(&self, id: PullId) -> Result<PullRow, StoreError> {
        let tx = self.write_tx()?;
        tx.execute(
            "UPDATE pulls SET status = CASE status WHEN 'queued' THEN 'cancelled' ELSE status END,
                 finished_ms = CASE status WHEN 'queued' THEN ?2 ELSE finished_ms END,
                 cancel_requested = CASE status WHEN 'running' THEN 1 ELSE cancel_requested END
             WHERE id = ?1",
            params![id, now_ms()],
        )
        .map_err(|e| self.err(e))?;
        let r = by_id(&tx, id).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        r.ok_or_else(|| self.not_found("pull", id))
    }

    /// One pull.
    pub fn pull(&self, id: PullId) -> Result<Option<PullRow>, StoreError> {
        by_id(&self.conn, id).map_err(|e| self.err(e))
    }

    /// The active pull of `model`, if any.
    pub fn active_pull(&self, model: &str) -> Result<Option<PullRow>, StoreError> {
        active_for(&self.conn, model).map_err(|e| self.err(e))
    }

    /// Every active pull and the `finished` most recently finished ones, oldest first.
    pub fn pulls(&self, finished: usize) -> Result<Vec<PullRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM pulls WHERE status IN ('queued','running')
             UNION ALL
             SELECT * FROM (SELECT {COLUMNS} FROM pulls WHERE status NOT IN ('queued','running')
                            ORDER BY id DESC LIMIT ?1)
             ORDER BY id"
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut st| {
                st.query_map([i64_of(finished as u64)], row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.err(e))
    }

    /// Puts running pulls whose runner is gone back on the queue: `alive(row)` says whether
    /// its runner still exists, and a heartbeat older than `stale_ms` counts as gone too.
    /// Returns the pulls requeued.
    pub fn recover_pulls(
        &self,
        alive: impl Fn(&PullRow) -> bool,
        stale_ms: i64,
    ) -> Result<Vec<PullRow>, StoreError> {
        let now = now_ms();
        let running: Vec<PullRow> = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM pulls WHERE status = 'running' ORDER BY id"
            ))
            .and_then(|mut st| st.query_map([], row)?.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        let mut back = Vec::new();
        for p in running {
            let dead = !alive(&p) || p.beat_ms.is_none_or(|b| now - b > stale_ms);
            if !dead {
                continue;
            }
            // A cancel asked of a runner that died is honoured here.
            let to = if p.cancel_requested {
                PullEnd::Cancelled
            } else {
                PullEnd::Requeue
            };
            self.finish_pull(p.id, &to)?;
            if let Some(r) = self.pull(p.id)? {
                back.push(r);
            }
        }
        Ok(back)
    }
}

fn by_id(conn: &rusqlite::Connection, id: PullId) -> rusqlite::Result<Option<PullRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM pulls WHERE id = ?1"))?
        .query_row([id], row)
        .optional()
}

fn active_for(conn: &rusqlite::Connection, model: &str) -> rusqlite::Result<Option<PullRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM pulls WHERE model = ?1 AND status IN ('queued','running')"
    ))?
    .query_row([model], row)
    .optional()
}
