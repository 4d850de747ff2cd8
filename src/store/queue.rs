//! Queue control: enqueueing, cancelling, pausing, retrying, settings and crash recovery.

use rusqlite::{params, OptionalExtension};

use super::{
    is_foreign_key_violation, job_from_row, now_ms, JobId, JobRow, JobStatus, NewJob, Recovered,
    Store, StoreError, TaskId, JOB_COLUMNS,
};

/// The settings key of the queue-wide pause flag.
const QUEUE_PAUSED_KEY: &str = "queue_paused";

/// Upserts a task by `(job, stage)` without returning its id.
const UPSERT_TASK_NO_ID: &str = "INSERT INTO tasks (job_id, stage, kind, lang)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (job_id, stage) DO UPDATE SET
         kind = excluded.kind,
         lang = excluded.lang";

impl Store {
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

    /// Recovery on start: every task that was running when the scheduler stopped (killed,
    /// power loss, a graceful stop that did not finish) is pending again, with its progress
    /// at 0 and its crash count untouched: stages run in workers, so the scheduler's death is
    /// never a stage's fault, and the task resumes from its checkpoints. Running jobs are
    /// queued again (cancelled if a cancel was requested meanwhile).
    pub fn recover_interrupted(&self) -> Result<Vec<Recovered>, StoreError> {
        let tx = self.write_tx()?;
        let now = now_ms();
        let mut report = {
            let mut st = tx
                .prepare(
                    "UPDATE tasks SET status = 'pending', progress = 0
                     WHERE status = 'running'
                     RETURNING id, job_id, stage, crashes",
                )
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map([], |r| {
                    Ok(Recovered {
                        task: r.get(0)?,
                        job: r.get(1)?,
                        stage: r.get(2)?,
                        crashes: r.get(3)?,
                        failed: false,
                    })
                })
                .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| self.err(e))?
        };
        report.sort_by_key(|r| r.task);
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

    /// A running task's worker died under it (signal, abort, exit, out of memory), `cause`
    /// saying how. A crash `counted` (no checkpoint since the task started) raises its crash
    /// count; one after progress resets it to 0, since a task that moves between crashes is
    /// not a crash loop. At `limit` consecutive counted crashes the task is failed with
    /// `cause` (its job's failure is the scheduler's to record); otherwise it is pending again.
    /// Returns the crash count and whether it failed.
    pub fn task_crashed(
        &self,
        task: TaskId,
        cause: &str,
        counted: bool,
        limit: i64,
    ) -> Result<(i64, bool), StoreError> {
        if limit < 1 {
            return Err(self.invalid("crash limit", format!("{limit} must be at least 1")));
        }
        let row: Option<(i64, String)> = self
            .conn
            .query_row(
                "UPDATE tasks SET
                     crashes = CASE WHEN ?2 THEN crashes + 1 ELSE 0 END,
                     status = CASE WHEN ?2 AND crashes + 1 >= ?3 THEN 'running' ELSE 'pending' END,
                     error = ?4,
                     progress = CASE WHEN ?2 AND crashes + 1 >= ?3 THEN progress ELSE 0 END
                 WHERE id = ?1 AND status = 'running'
                 RETURNING crashes, status",
                params![task, counted, limit, cause],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match row {
            // Still `running` at the limit: the caller records the failure with its message.
            Some((crashes, status)) => Ok((crashes, status == "running")),
            None => Err(self.invalid(
                "task status",
                format!("task {task} is not running; only a running task can crash"),
            )),
        }
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
}
