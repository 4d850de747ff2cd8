//! Recording work: projects, jobs and tasks as they are created and advance, artifacts, events.

use rusqlite::params;

use super::{
    is_foreign_key_violation, now_ms, EventLevel, JobId, JobStatus, ProjectId, Store, StoreError,
    TaskId, TaskStatus,
};

impl Store {
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
}
