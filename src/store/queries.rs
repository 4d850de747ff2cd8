//! Reading: jobs, tasks, events and projects as the overviews and monitors load them.

use rusqlite::{params, OptionalExtension, Row};

use super::{
    job_from_row, parse_column, task_from_row, EventLevel, EventRow, JobId, JobRow, JobWithTasks,
    ProjectId, ProjectRow, Store, StoreError, TaskRow, JOB_COLUMNS, JOB_COLUMNS_SUMMARY,
    TASK_COLUMNS, TASK_COLUMNS_SUMMARY,
};

impl Store {
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
}
