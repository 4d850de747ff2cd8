//! Typed values and rows that the store hands out.

use serde::Serialize;

/// Row id of a project.
pub type ProjectId = i64;
/// Row id of a job.
pub type JobId = i64;
/// Row id of a task.
pub type TaskId = i64;

macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($variant:ident => $text:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database (lowercase).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the stored text; `None` for anything unknown.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Lifecycle of a job.
    JobStatus {
        Queued => "queued",
        Running => "running",
        Paused => "paused",
        Done => "done",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl JobStatus {
    /// Done, failed or cancelled: the job will not run again unless re-queued.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Done | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

text_enum! {
    /// Lifecycle of one pipeline node (task) of a job.
    TaskStatus {
        Pending => "pending",
        Running => "running",
        Done => "done",
        Cached => "cached",
        Failed => "failed",
        Cancelled => "cancelled",
        Skipped => "skipped",
    }
}

impl TaskStatus {
    /// Anything but pending and running.
    pub fn is_terminal(self) -> bool {
        !matches!(self, TaskStatus::Pending | TaskStatus::Running)
    }
}

text_enum! {
    /// Severity of an event.
    EventLevel {
        Info => "info",
        Warn => "warn",
        Error => "error",
    }
}

/// One row of `jobs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    pub id: JobId,
    pub project_id: ProjectId,
    pub kind: String,
    pub status: JobStatus,
    pub priority: i64,
    pub params: serde_json::Value,
    pub out_dir: String,
    pub error: Option<String>,
    pub attempts: i64,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// The script text snapshot taken at enqueue time (`None` for jobs made
    /// with [`Store::create_job`](super::Store::create_job), and always
    /// `None` in [`Store::job_summaries`](super::Store::job_summaries), which
    /// does not load scripts).
    pub script: Option<String>,
    /// The script's original file name (for format detection).
    pub script_name: Option<String>,
    /// Someone asked to cancel this job; a running job's scheduler stops it.
    pub cancel_requested: bool,
    /// When the job last entered the queue (for priority aging).
    pub queued_ms: Option<i64>,
}

/// One row of `tasks`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRow {
    pub id: TaskId,
    pub job_id: JobId,
    pub stage: String,
    pub kind: String,
    pub lang: Option<String>,
    pub status: TaskStatus,
    pub engine: Option<String>,
    pub artifact_key: Option<String>,
    pub error: Option<String>,
    pub progress: f64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub elapsed_ms: Option<i64>,
    /// Times the task was running when the studio died.
    pub crashes: i64,
    /// Times the task was started.
    pub attempts: i64,
    /// The GPU the task runs (or last ran) on; `None` for CPU work.
    pub device: Option<u32>,
}

/// One row of `projects`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectRow {
    pub id: ProjectId,
    pub name: String,
    pub script_path: String,
    pub channel: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A job to put on the queue with [`Store::enqueue_job`](super::Store::enqueue_job).
#[derive(Debug, Clone)]
pub struct NewJob {
    pub project: ProjectId,
    pub kind: String,
    pub params: serde_json::Value,
    pub out_dir: String,
    pub priority: i64,
    /// The script's text, stored with the job.
    pub script: String,
    /// The script's original file name.
    pub script_name: String,
    /// Tasks created pending together with the job (a repeated stage is
    /// upserted: the last kind/lang wins).
    pub tasks: Vec<NewTask>,
}

/// A task created together with its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    pub stage: String,
    pub kind: String,
    pub lang: Option<String>,
}

/// What [`Store::recover_interrupted`](super::Store::recover_interrupted) did
/// to one task that was still running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recovered {
    pub job: JobId,
    pub task: TaskId,
    pub stage: String,
    /// The task's crash count (crashes of its worker; recovery does not add one).
    pub crashes: i64,
    /// Always false since stages run in workers (kept for the JSON shape).
    pub failed: bool,
}

/// One row of `events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub job_id: Option<JobId>,
    pub task_id: Option<TaskId>,
    pub at_ms: i64,
    pub level: EventLevel,
    pub message: String,
}

text_enum! {
    /// Lifecycle of a model download.
    PullStatus {
        Queued => "queued",
        Running => "running",
        Done => "done",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl PullStatus {
    /// Queued or running.
    pub fn is_active(self) -> bool {
        matches!(self, PullStatus::Queued | PullStatus::Running)
    }
}
