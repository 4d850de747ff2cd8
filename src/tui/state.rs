//! The studio's state: plain data, built from store snapshots and GPU samples, changed only by
//! [`super::update::update`], read by the views.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;

use crate::gpu::DeviceSample;
use crate::scheduler::LedgerSnapshot;
use crate::store::{
    EventRow, JobId, JobRow, JobStatus, ProjectId, ProjectRow, TaskRow, TaskStatus,
};

use super::action::{Pane, QuitHow};
use super::catalog::ModelView;

/// Five minutes of samples at 1 Hz.
pub const GPU_HISTORY: usize = 300;

/// One stage of a job as the queue shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct StageCell {
    pub name: String,
    pub status: TaskStatus,
    pub progress: f32,
    pub device: Option<u32>,
    pub started_ms: Option<i64>,
    pub elapsed_ms: Option<i64>,
}

/// One job as the queue shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobView {
    pub id: JobId,
    pub project_id: ProjectId,
    /// The project name (the script's file stem until projects are loaded).
    pub name: String,
    pub channel: String,
    pub status: JobStatus,
    pub priority: i64,
    pub langs: Vec<String>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub cancel_requested: bool,
    pub error: Option<String>,
    pub out_dir: String,
    pub stages: Vec<StageCell>,
}

impl JobView {
    pub fn from_rows(job: &JobRow, tasks: &[TaskRow], project: Option<&ProjectRow>) -> JobView {
        let mut langs: Vec<String> = tasks.iter().filter_map(|t| t.lang.clone()).collect();
        langs.sort();
        langs.dedup();
        let name = project.map(|p| p.name.clone()).unwrap_or_else(|| {
            job.script_name
                .as_deref()
                .map(|s| {
                    std::path::Path::new(s)
                        .file_stem()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_else(|| s.to_string())
                })
                .unwrap_or_else(|| format!("job {}", job.id))
        });
        JobView {
            id: job.id,
            project_id: job.project_id,
            name,
            channel: project.map(|p| p.channel.clone()).unwrap_or_default(),
            status: job.status,
            priority: job.priority,
            langs,
            created_ms: job.created_ms,
            started_ms: job.started_ms,
            finished_ms: job.finished_ms,
            cancel_requested: job.cancel_requested,
            error: job.error.clone(),
            out_dir: job.out_dir.clone(),
            stages: tasks
                .iter()
                .map(|t| StageCell {
                    name: t.stage.clone(),
                    status: t.status,
                    progress: t.progress as f32,
                    device: t.device,
                    started_ms: t.started_ms,
                    elapsed_ms: t.elapsed_ms,
                })
                .collect(),
        }
    }

    /// Work done, 0..=1: finished stages count whole, running ones by their progress.
    pub fn progress(&self) -> f64 {
        if self.stages.is_empty() {
            return if self.status == JobStatus::Done {
                1.0
            } else {
                0.0
            };
        }
        let done: f64 = self
            .stages
            .iter()
            .map(|s| match s.status {
                TaskStatus::Done | TaskStatus::Cached | TaskStatus::Skipped => 1.0,
                TaskStatus::Running => f64::from(s.progress.clamp(0.0, 1.0)),
                _ => 0.0,
            })
            .sum();
        done / self.stages.len() as f64
    }

    pub fn elapsed_ms(&self, now_ms: i64) -> Option<i64> {
        let start = self.started_ms?;
        let end = match self.status {
            JobStatus::Running => now_ms,
            _ => self.finished_ms.unwrap_or(now_ms),
        };
        Some((end - start).max(0))
    }

    /// Time left, extrapolated from the elapsed time and the progress (once there is enough
    /// of it to say anything).
    pub fn eta_ms(&self, now_ms: i64) -> Option<i64> {
        if self.status != JobStatus::Running {
            return None;
        }
        let p = self.progress();
        let elapsed = self.elapsed_ms(now_ms)?;
        if p < 0.05 || elapsed < 1000 {
            return None;
        }
        Some(((elapsed as f64) * (1.0 - p) / p) as i64)
    }

    /// Where its running stages are: `gpu0`, `gpu0,1`, `cpu`, or empty when nothing runs.
    pub fn device_label(&self) -> String {
        let running: Vec<&StageCell> = self
            .stages
            .iter()
            .filter(|s| s.status == TaskStatus::Running)
            .collect();
        if running.is_empty() {
            return String::new();
        }
        let mut gpus: Vec<u32> = running.iter().filter_map(|s| s.device).collect();
        gpus.sort();
        gpus.dedup();
        let cpu = running.iter().any(|s| s.device.is_none());
        let mut parts = Vec::new();
        if !gpus.is_empty() {
            parts.push(format!(
                "gpu{}",
                gpus.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        if cpu {
            parts.push("cpu".into());
        }
        parts.join("+")
    }

    /// The text the filter matches words against.
    fn haystack(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.id,
            self.name,
            self.channel,
            self.status.as_str(),
            self.langs.join(" ")
        )
        .to_lowercase()
    }
}

/// Queue sort orders, cycled with `s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Running first, then waiting by priority, then paused, then finished (newest first).
    Queue,
    Id,
    Priority,
    Name,
    Elapsed,
}

impl SortKey {
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Queue => SortKey::Id,
            SortKey::Id => SortKey::Priority,
            SortKey::Priority => SortKey::Name,
            SortKey::Name => SortKey::Elapsed,
            SortKey::Elapsed => SortKey::Queue,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Queue => "queue order",
            SortKey::Id => "id",
            SortKey::Priority => "priority",
            SortKey::Name => "name",
            SortKey::Elapsed => "elapsed",
        }
    }
}

fn status_rank(s: JobStatus) -> u8 {
    match s {
        JobStatus::Running => 0,
        JobStatus::Queued => 1,
        JobStatus::Paused => 2,
        JobStatus::Failed => 3,
        JobStatus::Cancelled => 4,
        JobStatus::Done => 5,
    }
}

/// A parsed filter: every word must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    words: Vec<(Option<String>, String)>,
}

impl Filter {
    pub fn parse(text: &str) -> Filter {
        Filter {
            words: text
                .split_whitespace()
                .map(|w| {
                    let w = w.to_lowercase();
                    match w.split_once(':') {
                        Some((k, v))
                            if ["status", "channel", "lang", "project", "id"].contains(&k) =>
                        {
                            (Some(k.to_string()), v.to_string())
                        }
                        _ => (None, w),
                    }
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn matches(&self, job: &JobView) -> bool {
        if self.words.is_empty() {
            return true;
        }
        let hay = job.haystack();
        self.words.iter().all(|(key, v)| match key.as_deref() {
            Some("status") => job.status.as_str().starts_with(v.as_str()),
            Some("channel") => job.channel.to_lowercase().starts_with(v.as_str()),
            Some("lang") => job.langs.iter().any(|l| l == v),
            Some("project") => job
                .name
                .to_lowercase()
                .replace(char::is_whitespace, "")
                .contains(v.as_str()),
            Some("id") => job.id.to_string() == *v,
            _ => hay.contains(v.as_str()),
        })
    }
}

/// A scrolling selection over `len` rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub sel: usize,
    pub offset: usize,
}

impl Cursor {
    pub fn clamp(&mut self, len: usize) {
        if len == 0 {
            *self = Cursor::default();
            return;
        }
        self.sel = self.sel.min(len - 1);
        self.offset = self.offset.min(self.sel);
    }

    pub fn move_by(&mut self, delta: i64, len: usize) {
        if len == 0 {
            return;
        }
        let s = (self.sel as i64 + delta).clamp(0, len as i64 - 1);
        self.sel = s as usize;
    }

    /// Keeps the selection inside a window of `height` rows; returns the first visible row.
    pub fn scroll_into_view(&mut self, height: usize) -> usize {
        let h = height.max(1);
        if self.sel < self.offset {
            self.offset = self.sel;
        } else if self.sel >= self.offset + h {
            self.offset = self.sel + 1 - h;
        }
        self.offset
    }
}

/// What the detail view of a job shows.
#[derive(Clone, Debug, PartialEq)]
pub struct JobDetail {
    pub job: JobRow,
    pub tasks: Vec<TaskRow>,
    /// `stage name → names it waits for`.
    pub deps: BTreeMap<String, Vec<String>>,
    /// `artifact key → (path, bytes)` for finished stages.
    pub artifacts: BTreeMap<String, (PathBuf, u64)>,
    pub log: Vec<EventRow>,
}

/// What the project detail shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectDetail {
    pub project: ProjectId,
    /// Title, scenes, duration, languages … or why the script could not be read.
    pub summary: Result<Vec<(String, String)>, String>,
    /// Files in the latest job's output folder: `(relative path, bytes)`.
    pub outputs: Vec<(String, u64)>,
}

/// An image the preview pane can draw.
#[derive(Clone, Debug, PartialEq)]
pub struct PreviewImage {
    pub label: String,
    pub path: PathBuf,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PreviewState {
    pub job: Option<JobId>,
    pub images: Vec<PreviewImage>,
    pub sel: usize,
}

/// One device with its history.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuView {
    pub sample: DeviceSample,
    /// The studio's own use (processes of the scheduler's pid).
    pub ours: u64,
    /// Used memory, in MiB, one per second (oldest first).
    pub used_history: VecDeque<u64>,
    pub util_history: VecDeque<u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuState {
    /// Why there is no GPU (`None` when there are GPUs or before the first sample).
    pub cpu_only: Option<String>,
    pub devices: Vec<GpuView>,
    pub ledger: Option<LedgerSnapshot>,
    pub sampled: bool,
    /// The scheduler's stage workers (pid, device, models, memory, tasks).
    pub workers: Vec<crate::scheduler::worker::WorkerView>,
}

/// Who runs the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The scheduler runs in this process.
    Owner,
    /// Another process (this pid) runs it; this studio watches and sends commands.
    Monitor { pid: Option<u32> },
}

/// A yes/no question before a destructive action.
#[derive(Clone, Debug, PartialEq)]
pub enum Confirm {
    CancelJob(JobId, String),
    /// Delete a model's files: `(id, repo)`.
    RemoveModel(String, String),
    /// Stop a publication: `(id, label)`.
    CancelPublication(crate::store::PublicationId, String),
}

/// A field of the new-project form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormField {
    Script,
    Channel,
    Languages,
    Priority,
    Quality,
    Out,
}

impl FormField {
    pub const ALL: [FormField; 6] = [
        FormField::Script,
        FormField::Channel,
        FormField::Languages,
        FormField::Priority,
        FormField::Quality,
        FormField::Out,
    ];
}

/// The new-project form.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectForm {
    pub field: FormField,
    pub script: String,
    pub completions: Vec<String>,
    /// `None` = the channel the script names.
    pub channel: Option<String>,
    /// Empty = the languages the script names.
    pub langs: Vec<String>,
    /// Which language the cursor is on.
    pub lang_cursor: usize,
    pub priority: i64,
    pub final_quality: bool,
    pub out: String,
    pub error: Option<String>,
}

impl Default for ProjectForm {
    fn default() -> Self {
        ProjectForm {
            field: FormField::Script,
            script: String::new(),
            completions: Vec::new(),
            channel: None,
            langs: Vec::new(),
            lang_cursor: 0,
            priority: 0,
            final_quality: false,
            out: "out".into(),
            error: None,
        }
    }
}

/// What is drawn over the panes.
#[derive(Clone, Debug, PartialEq)]
pub enum Overlay {
    None,
    Help {
        scroll: u16,
    },
    Confirm(Confirm),
    NewProject(Box<ProjectForm>),
    /// Jobs are running here and the user pressed quit.
    Quit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// The status line.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub text: String,
    pub level: Level,
}

/// The whole state.
#[derive(Clone, Debug)]
pub struct AppState {
    pub pane: Pane,
    pub overlay: Overlay,
    pub mode: Mode,
    pub now_ms: i64,
    /// Every job, by id.
    pub jobs: Vec<JobView>,
    pub job_index: HashMap<JobId, usize>,
    /// Jobs shown (filtered and sorted), as indices into `jobs`.
    pub visible: Vec<usize>,
    pub queue: Cursor,
    pub sort: SortKey,
    pub sort_reversed: bool,
    pub filter_text: String,
    pub filter: Filter,
    pub filter_editing: bool,
    /// The queue shows the selected job's detail (stage graph, artifacts, log).
    pub detail_open: bool,
    /// The detail as last loaded (for the selected job when it matches).
    pub detail: Option<Box<JobDetail>>,
    pub projects: Vec<ProjectRow>,
    pub project_cursor: Cursor,
    pub project_detail: Option<Box<ProjectDetail>>,
    pub models: Vec<ModelView>,
    pub model_cursor: Cursor,
    /// Model downloads from the store: every active one and the latest finished.
    pub pulls: Vec<crate::store::PullRow>,
    /// Publications from the store: every active one and the latest finished, newest first.
    pub publications: Vec<crate::store::PublicationRow>,
    pub publish_cursor: Cursor,
    pub gpu: GpuState,
    pub preview: PreviewState,
    pub queue_paused: bool,
    pub message: Option<Message>,
    pub mouse: bool,
    pub channels: Vec<String>,
    pub languages: Vec<String>,
    pub quit: Option<QuitHow>,
    pub detached: bool,
    pub size: (u16, u16),
    /// Something visible changed since the last draw.
    pub dirty: bool,
    /// Rows of the queue table in the last layout (for paging).
    pub page: usize,
}

impl AppState {
    /// Shows the active downloads on their models' rows.
    pub fn apply_pulls(&mut self) {
        for m in &mut self.models {
            m.download = self
                .pulls
                .iter()
                .find(|p| p.model == m.id && p.status.is_active())
                .map(|p| super::catalog::Download {
                    pull: p.id,
                    queued: p.status == crate::store::PullStatus::Queued,
                    done: p.bytes_done,
                    total: p.bytes_total.unwrap_or(0),
                    bytes_per_s: p.bytes_per_s,
                });
        }
    }

    pub fn new(mode: Mode, channels: Vec<String>, now_ms: i64) -> AppState {
        AppState {
            pane: Pane::Queue,
            overlay: Overlay::None,
            mode,
            now_ms,
            jobs: Vec::new(),
            job_index: HashMap::new(),
            visible: Vec::new(),
            queue: Cursor::default(),
            sort: SortKey::Queue,
            sort_reversed: false,
            filter_text: String::new(),
            filter: Filter::default(),
            filter_editing: false,
            detail_open: false,
            detail: None,
            projects: Vec::new(),
            project_cursor: Cursor::default(),
            project_detail: None,
            models: Vec::new(),
            pulls: Vec::new(),
            model_cursor: Cursor::default(),
            publications: Vec::new(),
            publish_cursor: Cursor::default(),
            gpu: GpuState::default(),
            preview: PreviewState::default(),
            queue_paused: false,
            message: None,
            mouse: false,
            channels,
            languages: crate::script::LANGUAGES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            quit: None,
            detached: false,
            size: (80, 24),
            dirty: true,
            page: 10,
        }
    }

    pub fn selected_job(&self) -> Option<&JobView> {
        self.visible
            .get(self.queue.sel)
            .and_then(|&i| self.jobs.get(i))
    }

    pub fn selected_project(&self) -> Option<&ProjectRow> {
        self.projects.get(self.project_cursor.sel)
    }

    pub fn job(&self, id: JobId) -> Option<&JobView> {
        self.job_index.get(&id).and_then(|&i| self.jobs.get(i))
    }

    /// Counts by status, for the header.
    pub fn counts(&self) -> BTreeMap<JobStatus, usize> {
        let mut m = BTreeMap::new();
        for j in &self.jobs {
            *m.entry(j.status).or_insert(0) += 1;
        }
        m
    }

    pub fn running_jobs(&self) -> usize {
        self.jobs
            .iter()
            .filter(|j| j.status == JobStatus::Running)
            .count()
    }

    /// Merges changed jobs into the table (new ones appended in id order).
    pub fn merge_jobs(&mut self, changed: Vec<(JobRow, Vec<TaskRow>)>) {
        let projects: HashMap<ProjectId, &ProjectRow> =
            self.projects.iter().map(|p| (p.id, p)).collect();
        let mut appended = false;
        for (job, tasks) in changed {
            let view = JobView::from_rows(&job, &tasks, projects.get(&job.project_id).copied());
            match self.job_index.get(&job.id) {
                Some(&i) => self.jobs[i] = view,
                None => {
                    self.job_index.insert(job.id, self.jobs.len());
                    self.jobs.push(view);
                    appended = true;
                }
            }
        }
        if appended && self.jobs.windows(2).any(|w| w[0].id > w[1].id) {
            self.jobs.sort_by_key(|j| j.id);
            self.job_index = self
                .jobs
                .iter()
                .enumerate()
                .map(|(i, j)| (j.id, i))
                .collect();
        }
    }

    /// Names and channels of jobs from the projects table (after projects change).
    pub fn relabel_jobs(&mut self) {
        let projects: HashMap<ProjectId, &ProjectRow> =
            self.projects.iter().map(|p| (p.id, p)).collect();
        for j in &mut self.jobs {
            if let Some(p) = projects.get(&j.project_id) {
                if j.name != p.name || j.channel != p.channel {
                    j.name = p.name.clone();
                    j.channel = p.channel.clone();
                }
            }
        }
    }

    /// Recomputes `visible` (filter + sort), keeping the selected job selected.
    pub fn rebuild_visible(&mut self) {
        let keep = self.selected_job().map(|j| j.id);
        let filter = &self.filter;
        let mut v: Vec<usize> = (0..self.jobs.len())
            .filter(|&i| filter.matches(&self.jobs[i]))
            .collect();
        let jobs = &self.jobs;
        let now = self.now_ms;
        match self.sort {
            SortKey::Queue => v.sort_by(|&a, &b| {
                let (a, b) = (&jobs[a], &jobs[b]);
                let ra = status_rank(a.status);
                ra.cmp(&status_rank(b.status)).then_with(|| {
                    if ra >= 3 {
                        // Finished: newest first.
                        b.id.cmp(&a.id)
                    } else {
                        b.priority.cmp(&a.priority).then(a.id.cmp(&b.id))
                    }
                })
            }),
            SortKey::Id => v.sort_by_key(|&i| jobs[i].id),
            SortKey::Priority => {
                v.sort_by(|&a, &b| jobs[b].priority.cmp(&jobs[a].priority).then(a.cmp(&b)))
            }
            SortKey::Name => v.sort_by(|&a, &b| jobs[a].name.cmp(&jobs[b].name).then(a.cmp(&b))),
            SortKey::Elapsed => v.sort_by(|&a, &b| {
                jobs[b]
                    .elapsed_ms(now)
                    .cmp(&jobs[a].elapsed_ms(now))
                    .then(a.cmp(&b))
            }),
        }
        if self.sort_reversed {
            v.reverse();
        }
        self.visible = v;
        if let Some(id) = keep {
            if let Some(pos) = self.visible.iter().position(|&i| self.jobs[i].id == id) {
                self.queue.sel = pos;
            }
        }
        self.queue.clamp(self.visible.len());
    }

    /// Adds a GPU sample to the history.
    /// Whether a task of job `id` has stopped moving (the scheduler flags it stalled).
    pub fn job_stalled(&self, id: JobId) -> bool {
        self.gpu
            .workers
            .iter()
            .any(|w| w.tasks.iter().any(|t| t.job == id && t.stalled))
    }

    /// `studio_pids`: the scheduler's process and its stage workers (their memory is ours).
    pub fn push_gpu(&mut self, samples: Vec<DeviceSample>, studio_pids: &[u32]) {
        self.gpu.sampled = true;
        let old = std::mem::take(&mut self.gpu.devices);
        let mut old: HashMap<u32, GpuView> = old.into_iter().map(|g| (g.sample.index, g)).collect();
        for s in samples {
            let ours = s
                .processes
                .iter()
                .filter(|p| studio_pids.contains(&p.pid))
                .map(|p| p.used)
                .sum();
            let mut g = old.remove(&s.index).unwrap_or(GpuView {
                sample: s.clone(),
                ours: 0,
                used_history: VecDeque::with_capacity(GPU_HISTORY),
                util_history: VecDeque::with_capacity(GPU_HISTORY),
            });
            if g.used_history.len() == GPU_HISTORY {
                g.used_history.pop_front();
                g.util_history.pop_front();
            }
            g.used_history.push_back(s.used >> 20);
            g.util_history
                .push_back(u64::from(s.utilization.unwrap_or(0)));
            g.ours = ours;
            g.sample = s;
            self.gpu.devices.push(g);
        }
    }
}
