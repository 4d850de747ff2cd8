//! What can happen to the studio: the panes, the bindable commands, and every action the
//! reducer ([`super::update::update`]) understands, whether it came from a key, the mouse,
//! the store or a clock.

use crate::gpu::DeviceSample;
use crate::scheduler::LedgerSnapshot;
use crate::store::{JobId, JobRow, ProjectRow, TaskRow};

use super::catalog::ModelView;
use super::state::{JobDetail, PreviewImage, ProjectDetail};

/// The studio's panes, in tab order (digits 1–6 jump to them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pane {
    Projects,
    Queue,
    Models,
    Gpu,
    Preview,
    Publish,
}

impl Pane {
    pub const ALL: [Pane; 6] = [
        Pane::Projects,
        Pane::Queue,
        Pane::Models,
        Pane::Gpu,
        Pane::Preview,
        Pane::Publish,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Projects => "Projects",
            Pane::Queue => "Queue",
            Pane::Models => "Models",
            Pane::Gpu => "GPU",
            Pane::Preview => "Preview",
            Pane::Publish => "Publish",
        }
    }

    pub fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    pub fn next(self) -> Pane {
        Pane::ALL[(self.index() + 1) % Pane::ALL.len()]
    }

    pub fn prev(self) -> Pane {
        Pane::ALL[(self.index() + Pane::ALL.len() - 1) % Pane::ALL.len()]
    }
}

/// Where a key is looked up: the pane (or overlay) in front, then `Global`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    Global,
    Projects,
    Queue,
    Models,
    Preview,
    Publish,
}

impl Context {
    pub const ALL: [Context; 6] = [
        Context::Global,
        Context::Projects,
        Context::Queue,
        Context::Models,
        Context::Preview,
        Context::Publish,
    ];

    /// The table name in `keymap.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Global => "global",
            Context::Projects => "projects",
            Context::Queue => "queue",
            Context::Models => "models",
            Context::Preview => "preview",
            Context::Publish => "publish",
        }
    }

    pub fn of(pane: Pane) -> Option<Context> {
        match pane {
            Pane::Projects => Some(Context::Projects),
            Pane::Queue => Some(Context::Queue),
            Pane::Models => Some(Context::Models),
            Pane::Preview => Some(Context::Preview),
            Pane::Publish => Some(Context::Publish),
            Pane::Gpu => None,
        }
    }
}

/// Everything a key can be bound to. The keymap, the help overlay and the footer hints are
/// all generated from [`Command::TABLE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    Quit,
    ForceQuit,
    Help,
    NextPane,
    PrevPane,
    GoProjects,
    GoQueue,
    GoModels,
    GoGpu,
    GoPreview,
    GoPublish,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Left,
    Right,
    Open,
    Back,
    ToggleMouse,
    Filter,
    Sort,
    ReverseSort,
    PauseJob,
    CancelJob,
    RetryJob,
    PriorityUp,
    PriorityDown,
    PauseQueue,
    NewProject,
    ShowJobs,
    Pull,
    CancelPull,
    Remove,
    Rescan,
    RetryPublication,
    CancelPublication,
}

/// One row of the command table: name in `keymap.toml`, where it applies, default keys, and
/// what the help overlay says.
pub struct CommandInfo {
    pub command: Command,
    pub name: &'static str,
    pub context: Context,
    pub keys: &'static [&'static str],
    pub help: &'static str,
    /// Shown in the footer when its context is in front.
    pub hint: Option<&'static str>,
}

macro_rules! commands {
    ($( $cmd:ident, $name:literal, $ctx:ident, [$($key:literal),*], $help:literal, $hint:expr; )*) => {
        impl Command {
            pub const TABLE: &'static [CommandInfo] = &[
                $( CommandInfo {
                    command: Command::$cmd,
                    name: $name,
                    context: Context::$ctx,
                    keys: &[$($key),*],
                    help: $help,
                    hint: $hint,
                }, )*
            ];
        }
    };
}

commands! {
    Quit, "quit", Global, ["q"], "Quit (asks first when jobs are rendering here)", Some("quit");
    ForceQuit, "force_quit", Global, ["ctrl-c"], "Quit now; running stages are checkpointed", None;
    Help, "help", Global, ["?", "f1"], "Show or hide this help", Some("help");
    NextPane, "next_pane", Global, ["tab"], "Next pane", None;
    PrevPane, "prev_pane", Global, ["shift-tab"], "Previous pane", None;
    GoProjects, "pane_projects", Global, ["1"], "Projects pane", None;
    GoQueue, "pane_queue", Global, ["2"], "Queue pane", None;
    GoModels, "pane_models", Global, ["3"], "Models pane", None;
    GoGpu, "pane_gpu", Global, ["4"], "GPU pane", None;
    GoPreview, "pane_preview", Global, ["5"], "Preview pane", None;
    GoPublish, "pane_publish", Global, ["6"], "Publish pane (uploads to the platforms)", None;
    Up, "up", Global, ["up", "k"], "Move up", None;
    Down, "down", Global, ["down", "j"], "Move down", None;
    PageUp, "page_up", Global, ["pageup", "ctrl-u"], "Page up", None;
    PageDown, "page_down", Global, ["pagedown", "ctrl-d"], "Page down", None;
    Top, "top", Global, ["home", "g"], "First row", None;
    Bottom, "bottom", Global, ["end", "G"], "Last row", None;
    Left, "left", Global, ["left", "h"], "Left / previous image", None;
    Right, "right", Global, ["right", "l"], "Right / next image", None;
    Open, "open", Global, ["enter"], "Open the selected item", Some("open");
    Back, "back", Global, ["esc"], "Back / close", None;
    ToggleMouse, "toggle_mouse", Global, ["M"], "Turn mouse support on or off", None;
    Filter, "filter", Queue, ["/"], "Filter jobs (words, status:, channel:, lang:, project:)", Some("filter");
    Sort, "sort", Queue, ["s"], "Sort by the next column", Some("sort");
    ReverseSort, "reverse_sort", Queue, ["S"], "Reverse the sort order", None;
    PauseJob, "pause_job", Queue, ["p"], "Pause or resume the selected job", Some("pause");
    CancelJob, "cancel_job", Queue, ["c"], "Cancel the selected job (asks first)", Some("cancel");
    RetryJob, "retry_job", Queue, ["r"], "Retry a failed or cancelled job", Some("retry");
    PriorityUp, "priority_up", Queue, ["+", "="], "Raise the job's priority", Some("priority");
    PriorityDown, "priority_down", Queue, ["-"], "Lower the job's priority", None;
    PauseQueue, "pause_queue", Queue, ["P"], "Pause or resume the whole queue", Some("pause all");
    NewProject, "new_project", Projects, ["n"], "New project from a script", Some("new");
    ShowJobs, "show_jobs", Projects, ["enter"], "Show the project's jobs in the queue", Some("jobs");
    Pull, "pull", Models, ["p"], "Download the selected model (queued; survives restarts)", Some("pull");
    CancelPull, "cancel_pull", Models, ["c"], "Stop the selected model's download", Some("stop");
    Remove, "remove", Models, ["D"], "Delete the selected model's files", None;
    Rescan, "rescan", Models, ["R"], "Look for installed models again", Some("rescan");
    RetryPublication, "retry_publication", Publish, ["r"], "Upload a failed or cancelled publication again (resumes)", Some("retry");
    CancelPublication, "cancel_publication", Publish, ["c"], "Stop the selected publication (asks first)", Some("cancel");
}

impl Command {
    pub fn info(self) -> &'static CommandInfo {
        Command::TABLE
            .iter()
            .find(|c| c.command == self)
            .expect("every command has a table row")
    }

    pub fn by_name(context: Context, name: &str) -> Option<Command> {
        Command::TABLE
            .iter()
            .find(|c| c.context == context && c.name == name)
            .map(|c| c.command)
    }
}

/// How the user wants to leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuitHow {
    /// Nothing is running here (or a monitor): just go.
    Now,
    /// Hand the queue to a headless `reelsmith run` and let running stages finish.
    Headless,
    /// Stop the scheduler; running stages are checkpointed and resume next time.
    Stop,
}

/// Everything the reducer understands.
#[derive(Debug)]
pub enum Action {
    /// A bound command.
    Cmd(Command),
    /// Text typed while an input has focus.
    Char(char),
    Backspace,
    /// Tab inside a path input.
    Complete,
    /// Enter inside an input.
    Submit,
    /// A confirmation answered (`y`/`n`, or the quit prompt's choice).
    Answer(char),
    /// A mouse click at a cell, or the wheel.
    Click {
        column: u16,
        row: u16,
    },
    Scroll(i32),
    Resize(u16, u16),
    /// The clock (1 Hz while something runs).
    Tick(i64),
    /// Jobs that changed in the store (with their tasks), the queue-wide pause flag, the
    /// projects, and the scheduler's published ledger.
    Jobs {
        changed: Vec<(JobRow, Vec<TaskRow>)>,
        queue_paused: bool,
        projects: Vec<ProjectRow>,
        ledger: Option<LedgerSnapshot>,
        /// The scheduler's stage workers and what they run.
        workers: Vec<crate::scheduler::worker::WorkerView>,
    },
    /// A GPU sample (empty in CPU-only mode) at a time.
    Gpu(Vec<DeviceSample>, i64),
    Detail(Box<JobDetail>),
    ProjectDetail(Box<ProjectDetail>),
    Preview(JobId, Vec<PreviewImage>),
    Models(Vec<ModelView>),
    Completions(Vec<String>),
    /// The result of an effect, for the status line: `Ok(message)` or `Err(message)`.
    Done(Result<String, String>),
    /// A new project was queued: close the form.
    Queued(JobId, String),
    /// The new-project form could not queue the script: show why, keep the form.
    FormError(String),
    /// The studio lost its terminal (SSH dropped): stop drawing, keep running.
    Detached,
    /// The model downloads (queued, running and recently finished), as the store has them.
    Pulls(Vec<crate::store::PullRow>),
    /// The publications (every active one and the latest finished), as the store has them.
    Publications(Vec<crate::store::PublicationRow>),
}
