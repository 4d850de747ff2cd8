//! Reading: jobs, tasks, events and projects as the overviews and monitors load them.

use rusqlite::types::Type;
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{
    job_from_row, parse_column, task_from_row, text_column, EventLevel, EventRow, JobId, JobRow,
    JobStatus, JobWithTasks, ProjectId, ProjectRow, Store, StoreError, TaskRow, JOB_COLUMNS,
    JOB_COLUMNS_SUMMARY, TASK_COLUMNS, TASK_COLUMNS_SUMMARY,
};

/// One job as the queue overview shows it: the job's summary columns and its tasks counted
/// in SQL (see [`Store::for_each_job_overview`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobOverview {
    pub id: JobId,
    pub status: JobStatus,
    pub priority: i64,
    pub out_dir: String,
    /// The script's original file name.
    pub script_name: Option<String>,
    pub error: Option<String>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub cancel_requested: bool,
    /// How many tasks the job has.
    pub tasks: usize,
    /// Tasks that are neither pending nor running (finished, however they ended).
    pub tasks_finished: usize,
    /// Tasks running now (the same as `running.len()`).
    pub tasks_running: usize,
    /// Tasks that failed.
    pub tasks_failed: usize,
    /// The running tasks, in the order they were first upserted.
    pub running: Vec<RunningStage>,
}

/// A task that is running, as [`JobOverview`] lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningStage {
    pub stage: String,
    /// 0..=1, as the stage last reported it.
    pub progress: f64,
}

/// The overview's aggregate: jobs in id order, each with its tasks grouped in. The join walks
/// `jobs` by rowid and each job's tasks through `tasks_job`, so the grouping needs no sort
/// (only the few running tasks are sorted, into their JSON list). `?1` is the first job id
/// wanted.
pub(super) const JOB_OVERVIEW_SQL: &str = "
    SELECT j.id, j.status, j.priority, j.out_dir, j.script_name, j.error,
           j.created_ms, j.started_ms, j.finished_ms, j.cancel_requested,
           count(t.id),
           count(t.id) FILTER (WHERE t.status NOT IN ('pending','running')),
           count(t.id) FILTER (WHERE t.status = 'running'),
           count(t.id) FILTER (WHERE t.status = 'failed'),
           json_group_array(json_array(t.stage, t.progress) ORDER BY t.id)
               FILTER (WHERE t.status = 'running')
    FROM jobs j LEFT JOIN tasks t ON t.job_id = j.id
    WHERE j.id >= ?1
    GROUP BY j.id ORDER BY j.id";

fn overview_from_row(r: &Row<'_>) -> rusqlite::Result<JobOverview> {
    let tasks_running: usize = r.get(12)?;
    let running = if tasks_running == 0 {
        Vec::new()
    } else {
        let pairs: Vec<(String, f64)> = serde_json::from_str(text_column(r, 14)?)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(14, Type::Text, Box::new(e)))?;
        pairs
            .into_iter()
            .map(|(stage, progress)| RunningStage { stage, progress })
            .collect()
    };
    Ok(JobOverview {
        id: r.get(0)?,
        status: parse_column(r, 1, JobStatus::parse)?,
        priority: r.get(2)?,
        out_dir: r.get(3)?,
        script_name: r.get(4)?,
        error: r.get(5)?,
        created_ms: r.get(6)?,
        started_ms: r.get(7)?,
        finished_ms: r.get(8)?,
        cancel_requested: r.get(9)?,
        tasks: r.get(10)?,
        tasks_finished: r.get(11)?,
        tasks_running,
        tasks_failed: r.get(13)?,
        running,
    })
}

impl Store {
    /// Every job (or only the newest `limit`), oldest first, with its tasks counted in SQL:
    /// what `reelsmith status` shows, without loading a single task row. `f` sees each job as
    /// its row arrives, so a caller can write it out and forget it; an error from `f` stops the
    /// walk and is returned. One read transaction: the rows are one consistent snapshot.
    pub fn for_each_job_overview<E: From<StoreError>>(
        &self,
        limit: Option<usize>,
        mut f: impl FnMut(&JobOverview) -> Result<(), E>,
    ) -> Result<(), E> {
        self.walk_job_overview(limit, false, |job, _| f(job))
    }

    /// [`Store::for_each_job_overview`], and each job's tasks in upsert order (artifact keys
    /// not loaded, as in [`Store::job_summaries`]). The tasks are read alongside the jobs,
    /// one job's at a time.
    pub fn for_each_job_overview_with_tasks<E: From<StoreError>>(
        &self,
        limit: Option<usize>,
        f: impl FnMut(&JobOverview, &[TaskRow]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.walk_job_overview(limit, true, f)
    }

    /// [`Store::for_each_job_overview`], collected.
    pub fn job_overview(&self, limit: Option<usize>) -> Result<Vec<JobOverview>, StoreError> {
        let mut out = Vec::new();
        self.for_each_job_overview(limit, |j| {
            out.push(j.clone());
            Ok::<_, StoreError>(())
        })?;
        Ok(out)
    }

    fn walk_job_overview<E: From<StoreError>>(
        &self,
        limit: Option<usize>,
        with_tasks: bool,
        mut f: impl FnMut(&JobOverview, &[TaskRow]) -> Result<(), E>,
    ) -> Result<(), E> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        // The selection is a suffix of all jobs by id: start at the newest `limit`'s first.
        let first: i64 = match limit {
            None => i64::MIN,
            Some(n) => {
                let first: Option<i64> = tx
                    .prepare_cached(
                        "SELECT min(id) FROM (SELECT id FROM jobs ORDER BY id DESC LIMIT ?1)",
                    )
                    .and_then(|mut st| {
                        st.query_row([i64::try_from(n).unwrap_or(i64::MAX)], |r| r.get(0))
                    })
                    .map_err(|e| self.err(e))?;
                match first {
                    Some(id) => id,
                    None => return Ok(()),
                }
            }
        };
        let mut jobs_stmt = tx
            .prepare_cached(JOB_OVERVIEW_SQL)
            .map_err(|e| self.err(e))?;
        let mut tasks_stmt = if with_tasks {
            // In job order through `tasks_job` (job_id, then rowid = upsert order): no sort.
            Some(
                tx.prepare_cached(&format!(
                    "SELECT {TASK_COLUMNS_SUMMARY} FROM tasks WHERE job_id >= ?1
                     ORDER BY job_id, id"
                ))
                .map_err(|e| self.err(e))?,
            )
        } else {
            None
        };
        let mut jobs = jobs_stmt.query([first]).map_err(|e| self.err(e))?;
        let mut tasks = match tasks_stmt.as_mut() {
            Some(st) => Some(st.query([first]).map_err(|e| self.err(e))?),
            None => None,
        };
        // The first task of the next job, read ahead while filling this job's batch.
        let mut ahead: Option<TaskRow> = None;
        let mut batch: Vec<TaskRow> = Vec::new();
        while let Some(row) = jobs.next().map_err(|e| self.err(e))? {
            let job = overview_from_row(row).map_err(|e| self.err(e))?;
            batch.clear();
            if let Some(rows) = tasks.as_mut() {
                loop {
                    let task = match ahead.take() {
                        Some(t) => t,
                        None => match rows.next().map_err(|e| self.err(e))? {
                            Some(r) => task_from_row(r).map_err(|e| self.err(e))?,
                            None => break,
                        },
                    };
                    if task.job_id > job.id {
                        ahead = Some(task);
                        break;
                    }
                    // Both reads are one snapshot, so every task's job is among the jobs;
                    // anything else would be skipped rather than misfiled.
                    if task.job_id == job.id {
                        batch.push(task);
                    }
                }
            }
            f(&job, &batch)?;
        }
        drop(jobs);
        drop(tasks);
        drop(jobs_stmt);
        drop(tasks_stmt);
        tx.commit().map_err(|e| self.err(e))?;
        Ok(())
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
}
