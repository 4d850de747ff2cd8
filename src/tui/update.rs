//! The reducer: `update(state, action) -> effects`. Plain code, no I/O: the runtime performs
//! the effects (store writes, loads, quitting) and feeds their results back as actions.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::pipeline::Quality;
use crate::store::{JobId, JobStatus, ProjectId, PullStatus};

use super::action::{Action, Command, Context, Pane, QuitHow};
use super::catalog::Source;
use super::keymap::Keymap;
use super::state::{AppState, Confirm, FormField, Level, Message, Overlay, ProjectForm};
use super::view::layout;

/// A new project to queue (what the form collected).
#[derive(Clone, Debug, PartialEq)]
pub struct EnqueueRequest {
    pub script: PathBuf,
    pub channel: Option<String>,
    pub languages: Option<Vec<String>>,
    pub priority: i64,
    pub quality: Quality,
    pub out: PathBuf,
}

/// What the runtime must do after an update.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    PauseJob(JobId),
    ResumeJob(JobId),
    CancelJob(JobId),
    RetryJob(JobId),
    SetPriority(JobId, i64),
    PauseQueue(bool),
    Enqueue(EnqueueRequest),
    LoadDetail(JobId),
    LoadProjectDetail(ProjectId),
    LoadPreview(JobId),
    Complete(String),
    RescanModels,
    /// Queue a download of a registry model (the scheduler runs it).
    PullModel(String),
    /// Stop a model download.
    CancelPull(crate::store::PullId),
    /// Delete a repository's files from the cache.
    RemoveModel(String),
    /// Queue a failed or cancelled publication again.
    RetryPublication(crate::store::PublicationId),
    /// Stop a publication (at once when its runner is gone).
    CancelPublication(crate::store::PublicationId),
    SetMouse(bool),
    Quit(QuitHow),
}

/// Translates a key press into an action for the current state (inputs and dialogs first,
/// then the keymap).
pub fn key_action(state: &AppState, keymap: &Keymap, ev: &KeyEvent) -> Option<Action> {
    if ev.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && ev.code == KeyCode::Char('c') {
        return Some(Action::Cmd(Command::ForceQuit));
    }
    match &state.overlay {
        Overlay::Confirm(_) | Overlay::Quit => {
            return match ev.code {
                KeyCode::Esc => Some(Action::Answer('n')),
                KeyCode::Char(c) => Some(Action::Answer(c.to_ascii_lowercase())),
                _ => None,
            };
        }
        Overlay::NewProject(_) => {
            return match ev.code {
                KeyCode::Esc => Some(Action::Cmd(Command::Back)),
                KeyCode::Enter => Some(Action::Submit),
                KeyCode::Tab => Some(Action::Complete),
                KeyCode::BackTab | KeyCode::Up => Some(Action::Cmd(Command::Up)),
                KeyCode::Down => Some(Action::Cmd(Command::Down)),
                KeyCode::Left => Some(Action::Cmd(Command::Left)),
                KeyCode::Right => Some(Action::Cmd(Command::Right)),
                KeyCode::Backspace => Some(Action::Backspace),
                KeyCode::Char(c) if !ctrl => Some(Action::Char(c)),
                _ => None,
            };
        }
        Overlay::Help { .. } => {
            return match keymap.lookup(None, ev) {
                Some(c @ (Command::Up | Command::Down | Command::PageUp | Command::PageDown)) => {
                    Some(Action::Cmd(c))
                }
                Some(Command::Quit | Command::Help | Command::Back) => {
                    Some(Action::Cmd(Command::Help))
                }
                _ => None,
            };
        }
        Overlay::None => {}
    }
    if state.filter_editing {
        return match ev.code {
            KeyCode::Esc => Some(Action::Cmd(Command::Back)),
            KeyCode::Enter => Some(Action::Submit),
            KeyCode::Backspace => Some(Action::Backspace),
            KeyCode::Up => Some(Action::Cmd(Command::Up)),
            KeyCode::Down => Some(Action::Cmd(Command::Down)),
            KeyCode::Char(c) if !ctrl => Some(Action::Char(c)),
            _ => None,
        };
    }
    keymap.lookup(Context::of(state.pane), ev).map(Action::Cmd)
}

fn say(state: &mut AppState, level: Level, text: impl Into<String>) {
    state.message = Some(Message {
        text: text.into(),
        level,
    });
}

/// The job the preview pane should show: the selected job of the queue, or (from the
/// projects pane) the newest job of the selected project.
fn preview_target(state: &AppState) -> Option<JobId> {
    if state.pane == Pane::Projects || state.selected_job().is_none() {
        if let Some(p) = state.selected_project() {
            if let Some(j) = state.jobs.iter().rev().find(|j| j.project_id == p.id) {
                return Some(j.id);
            }
        }
    }
    state.selected_job().map(|j| j.id)
}

fn go(state: &mut AppState, pane: Pane, fx: &mut Vec<Effect>) {
    let from = state.pane;
    state.pane = pane;
    state.filter_editing = false;
    match pane {
        Pane::Preview => {
            state.pane = from;
            let target = preview_target(state);
            state.pane = pane;
            if let Some(id) = target {
                if state.preview.job != Some(id) {
                    state.preview.sel = 0;
                }
                fx.push(Effect::LoadPreview(id));
            }
        }
        Pane::Models if state.models.is_empty() => fx.push(Effect::RescanModels),
        Pane::Projects => {
            if let Some(p) = state.selected_project() {
                fx.push(Effect::LoadProjectDetail(p.id));
            }
        }
        _ => {}
    }
}

/// Moves the cursor of whatever list is in front.
fn move_cursor(state: &mut AppState, delta: i64, fx: &mut Vec<Effect>) {
    match state.pane {
        Pane::Queue => {
            let before = state.queue.sel;
            state.queue.move_by(delta, state.visible.len());
            if state.detail_open && before != state.queue.sel {
                if let Some(j) = state.selected_job() {
                    fx.push(Effect::LoadDetail(j.id));
                }
            }
        }
        Pane::Projects => {
            let before = state.project_cursor.sel;
            state.project_cursor.move_by(delta, state.projects.len());
            if before != state.project_cursor.sel {
                if let Some(p) = state.selected_project() {
                    fx.push(Effect::LoadProjectDetail(p.id));
                }
            }
        }
        Pane::Models => state.model_cursor.move_by(delta, state.models.len()),
        Pane::Publish => state
            .publish_cursor
            .move_by(delta, state.publications.len()),
        Pane::Preview => {
            let n = state.preview.images.len();
            if n > 0 {
                state.preview.sel =
                    (state.preview.sel as i64 + delta).clamp(0, n as i64 - 1) as usize;
            }
        }
        Pane::Gpu => {}
    }
}

fn form_field_step(form: &mut ProjectForm, delta: i64) {
    let all = FormField::ALL;
    let i = all.iter().position(|f| *f == form.field).unwrap_or(0) as i64;
    let n = all.len() as i64;
    form.field = all[((i + delta).rem_euclid(n)) as usize];
    form.completions.clear();
}

fn form_left_right(form: &mut ProjectForm, channels: &[String], languages: &[String], d: i64) {
    match form.field {
        FormField::Channel => {
            // None (the script's channel), then each channel.
            let n = channels.len() as i64 + 1;
            let cur = match &form.channel {
                None => 0,
                Some(c) => channels.iter().position(|x| x == c).map_or(0, |i| i + 1) as i64,
            };
            let next = (cur + d).rem_euclid(n);
            form.channel = (next > 0).then(|| channels[(next - 1) as usize].clone());
        }
        FormField::Languages => {
            let n = languages.len() as i64;
            if n > 0 {
                form.lang_cursor = ((form.lang_cursor as i64 + d).rem_euclid(n)) as usize;
            }
        }
        FormField::Priority => form.priority = (form.priority + d).clamp(-100, 100),
        FormField::Quality => form.final_quality = !form.final_quality,
        FormField::Script | FormField::Out => {}
    }
}

fn form_char(form: &mut ProjectForm, channels: &[String], languages: &[String], c: char) {
    form.error = None;
    match form.field {
        FormField::Script => {
            form.script.push(c);
            form.completions.clear();
        }
        FormField::Out => form.out.push(c),
        FormField::Languages if c == ' ' => {
            if let Some(l) = languages.get(form.lang_cursor) {
                if let Some(i) = form.langs.iter().position(|x| x == l) {
                    form.langs.remove(i);
                } else {
                    form.langs.push(l.clone());
                    // Keep the script's order of the language list.
                    form.langs
                        .sort_by_key(|x| languages.iter().position(|l| l == x));
                }
            }
        }
        FormField::Priority | FormField::Channel | FormField::Languages | FormField::Quality => {
            match c {
                '+' | '=' | 'l' | ' ' => form_left_right(form, channels, languages, 1),
                '-' | 'h' => form_left_right(form, channels, languages, -1),
                _ => {}
            }
        }
    }
}

/// The longest common prefix of some strings.
pub fn common_prefix(items: &[String]) -> String {
    let Some(first) = items.first() else {
        return String::new();
    };
    let mut end = first.len();
    for s in &items[1..] {
        end = end.min(
            first
                .char_indices()
                .zip(s.chars())
                .take_while(|((_, a), b)| a == b)
                .last()
                .map_or(0, |((i, a), _)| i + a.len_utf8()),
        );
    }
    first[..end].to_string()
}

/// Applies one action. Sets `state.dirty` when something visible changed.
pub fn update(state: &mut AppState, action: Action) -> Vec<Effect> {
    let mut fx = Vec::new();
    let mut dirty = true;
    match action {
        Action::Cmd(cmd) => command(state, cmd, &mut fx),
        Action::Char(c) => {
            if let Overlay::NewProject(form) = &mut state.overlay {
                form_char(form, &state.channels, &state.languages, c);
            } else if state.filter_editing {
                state.filter_text.push(c);
                refilter(state);
            } else {
                dirty = false;
            }
        }
        Action::Backspace => {
            if let Overlay::NewProject(form) = &mut state.overlay {
                match form.field {
                    FormField::Script => {
                        form.script.pop();
                        form.completions.clear();
                    }
                    FormField::Out => {
                        form.out.pop();
                    }
                    _ => {}
                }
            } else if state.filter_editing {
                state.filter_text.pop();
                refilter(state);
            }
        }
        Action::Complete => {
            if let Overlay::NewProject(form) = &mut state.overlay {
                if form.field == FormField::Script {
                    fx.push(Effect::Complete(form.script.clone()));
                } else {
                    form_field_step(form, 1);
                }
            }
        }
        Action::Submit => {
            if let Overlay::NewProject(form) = &mut state.overlay {
                if form.script.trim().is_empty() {
                    form.error = Some("type the path of a script (Tab completes)".into());
                    form.field = FormField::Script;
                } else {
                    form.error = None;
                    fx.push(Effect::Enqueue(EnqueueRequest {
                        script: PathBuf::from(form.script.trim()),
                        channel: form.channel.clone(),
                        languages: (!form.langs.is_empty()).then(|| form.langs.clone()),
                        priority: form.priority,
                        quality: if form.final_quality {
                            Quality::Final
                        } else {
                            Quality::Draft
                        },
                        out: PathBuf::from(if form.out.trim().is_empty() {
                            "out"
                        } else {
                            form.out.trim()
                        }),
                    }));
                }
            } else if state.filter_editing {
                state.filter_editing = false;
            }
        }
        Action::Answer(c) => match std::mem::replace(&mut state.overlay, Overlay::None) {
            Overlay::Confirm(Confirm::CancelJob(id, _)) if c == 'y' => {
                fx.push(Effect::CancelJob(id))
            }
            Overlay::Confirm(Confirm::RemoveModel(_, repo)) if c == 'y' => {
                fx.push(Effect::RemoveModel(repo))
            }
            Overlay::Confirm(Confirm::CancelPublication(id, _)) if c == 'y' => {
                fx.push(Effect::CancelPublication(id))
            }
            Overlay::Quit => match c {
                'k' | 'h' => {
                    state.quit = Some(QuitHow::Headless);
                    fx.push(Effect::Quit(QuitHow::Headless));
                }
                's' | 'y' => {
                    state.quit = Some(QuitHow::Stop);
                    fx.push(Effect::Quit(QuitHow::Stop));
                }
                _ => {}
            },
            _ => {}
        },
        Action::Click { column, row } => click(state, column, row, &mut fx),
        Action::Scroll(d) => move_cursor(state, i64::from(d) * 3, &mut fx),
        Action::Resize(w, h) => state.size = (w, h),
        Action::Tick(now) => {
            state.now_ms = now;
            dirty = state.running_jobs() > 0 && matches!(state.pane, Pane::Queue | Pane::Projects);
        }
        Action::Jobs {
            changed,
            queue_paused,
            projects,
            ledger,
            workers,
        } => {
            dirty = !changed.is_empty()
                || queue_paused != state.queue_paused
                || projects != state.projects
                || ledger != state.gpu.ledger
                || workers != state.gpu.workers;
            state.gpu.workers = workers;
            let projects_changed = projects != state.projects;
            let touched: Vec<JobId> = changed.iter().map(|(j, _)| j.id).collect();
            state.queue_paused = queue_paused;
            state.gpu.ledger = ledger;
            if projects_changed {
                let keep = state.selected_project().map(|p| p.id);
                state.projects = projects;
                state.relabel_jobs();
                if let Some(k) = keep {
                    if let Some(i) = state.projects.iter().position(|p| p.id == k) {
                        state.project_cursor.sel = i;
                    }
                }
                state.project_cursor.clamp(state.projects.len());
            }
            if !changed.is_empty() || projects_changed {
                state.merge_jobs(changed);
                state.rebuild_visible();
            }
            if state.detail_open {
                if let Some(j) = state.selected_job() {
                    if touched.contains(&j.id) || state.detail.is_none() {
                        fx.push(Effect::LoadDetail(j.id));
                    }
                }
            }
            if state.pane == Pane::Projects {
                if let Some(p) = state.selected_project() {
                    let pid = p.id;
                    let affected = projects_changed
                        || touched
                            .iter()
                            .any(|id| state.job(*id).is_some_and(|j| j.project_id == pid));
                    if affected {
                        fx.push(Effect::LoadProjectDetail(pid));
                    }
                }
            }
            if state.pane == Pane::Preview {
                if let Some(id) = state.preview.job {
                    if touched.contains(&id) {
                        fx.push(Effect::LoadPreview(id));
                    }
                }
            }
        }
        Action::Gpu(samples, now) => {
            state.now_ms = now;
            let pids: Vec<u32> = state
                .gpu
                .ledger
                .as_ref()
                .map(|l| {
                    std::iter::once(l.pid)
                        .chain(l.worker_pids.iter().copied())
                        .collect()
                })
                .unwrap_or_default();
            state.push_gpu(samples, &pids);
            dirty = state.pane == Pane::Gpu;
        }
        Action::Detail(d) => {
            let wanted = state.selected_job().map(|j| j.id);
            if state.detail_open && wanted == Some(d.job.id) {
                state.detail = Some(d);
            } else {
                dirty = false;
            }
        }
        Action::ProjectDetail(d) => state.project_detail = Some(d),
        Action::Preview(job, images) => {
            if state.preview.job != Some(job) {
                state.preview.sel = 0;
            }
            state.preview.job = Some(job);
            state.preview.images = images;
            state.preview.sel = state
                .preview
                .sel
                .min(state.preview.images.len().saturating_sub(1));
        }
        Action::Models(models) => {
            state.models = models;
            state.apply_pulls();
            state.model_cursor.clamp(state.models.len());
        }
        Action::Completions(list) => {
            if let Overlay::NewProject(form) = &mut state.overlay {
                match list.len() {
                    0 => form.error = Some(format!("nothing matches {}", form.script)),
                    1 => {
                        form.script = list[0].clone();
                        form.completions.clear();
                    }
                    _ => {
                        let p = common_prefix(&list);
                        if p.len() > form.script.len() {
                            form.script = p;
                        }
                        form.completions = list;
                    }
                }
            }
        }
        Action::Done(Ok(m)) => say(state, Level::Info, m),
        Action::Done(Err(m)) => say(state, Level::Error, m),
        Action::Queued(id, name) => {
            state.overlay = Overlay::None;
            state.pane = Pane::Queue;
            state.detail_open = false;
            say(state, Level::Info, format!("queued job {id}: {name}"));
        }
        Action::FormError(e) => {
            if let Overlay::NewProject(form) = &mut state.overlay {
                form.error = Some(e);
            }
        }
        Action::Detached => state.detached = true,
        Action::Pulls(pulls) => {
            // Say how the downloads that were active last time ended.
            for p in &pulls {
                let was_active = state
                    .pulls
                    .iter()
                    .any(|o| o.id == p.id && o.status.is_active());
                if !was_active || p.status.is_active() {
                    continue;
                }
                if let Some(m) = state.models.iter_mut().find(|m| m.id == p.model) {
                    m.installed = p.status == PullStatus::Done;
                }
                match p.status {
                    PullStatus::Done => {
                        let msg = format!(
                            "{} installed in {}",
                            p.model,
                            p.path.as_deref().unwrap_or("the model cache")
                        );
                        say(state, Level::Info, msg);
                    }
                    PullStatus::Failed => {
                        let msg = format!(
                            "{}: download failed: {}",
                            p.model,
                            p.error.as_deref().unwrap_or("no reason given")
                        );
                        say(state, Level::Error, msg);
                    }
                    _ => {
                        let msg = format!("{}: download {}", p.model, p.status);
                        say(state, Level::Warn, msg);
                    }
                }
            }
            state.pulls = pulls;
            state.apply_pulls();
            dirty = true;
        }
        Action::Publications(rows) => {
            publish::arrived(state, rows);
            dirty = true;
        }
    }
    state.dirty |= dirty;
    fx
}

fn refilter(state: &mut AppState) {
    state.filter = super::state::Filter::parse(&state.filter_text);
    state.rebuild_visible();
}

fn command(state: &mut AppState, cmd: Command, fx: &mut Vec<Effect>) {
    // The form and the help overlay take their own navigation.
    if let Overlay::NewProject(form) = &mut state.overlay {
        match cmd {
            Command::Up => form_field_step(form, -1),
            Command::Down => form_field_step(form, 1),
            Command::Left => form_left_right(form, &state.channels, &state.languages, -1),
            Command::Right => form_left_right(form, &state.channels, &state.languages, 1),
            Command::Back => state.overlay = Overlay::None,
            Command::ForceQuit => quit(state, true, fx),
            _ => {}
        }
        return;
    }
    if let Overlay::Help { scroll } = &mut state.overlay {
        match cmd {
            Command::Up => *scroll = scroll.saturating_sub(1),
            Command::Down => *scroll = scroll.saturating_add(1),
            Command::PageUp => *scroll = scroll.saturating_sub(10),
            Command::PageDown => *scroll = scroll.saturating_add(10),
            Command::ForceQuit => quit(state, true, fx),
            _ => state.overlay = Overlay::None,
        }
        return;
    }
    let page = state.page.max(1) as i64;
    match cmd {
        Command::Quit => quit(state, false, fx),
        Command::ForceQuit => quit(state, true, fx),
        Command::Help => state.overlay = Overlay::Help { scroll: 0 },
        Command::NextPane => go(state, state.pane.next(), fx),
        Command::PrevPane => go(state, state.pane.prev(), fx),
        Command::GoProjects => go(state, Pane::Projects, fx),
        Command::GoQueue => go(state, Pane::Queue, fx),
        Command::GoModels => go(state, Pane::Models, fx),
        Command::GoGpu => go(state, Pane::Gpu, fx),
        Command::GoPreview => go(state, Pane::Preview, fx),
        Command::GoPublish => go(state, Pane::Publish, fx),
        Command::Up => move_cursor(state, -1, fx),
        Command::Down => move_cursor(state, 1, fx),
        Command::PageUp => move_cursor(state, -page, fx),
        Command::PageDown => move_cursor(state, page, fx),
        Command::Top => move_cursor(state, i64::MIN / 2, fx),
        Command::Bottom => move_cursor(state, i64::MAX / 2, fx),
        Command::Left => {
            if state.pane == Pane::Preview {
                move_cursor(state, -1, fx);
            }
        }
        Command::Right => {
            if state.pane == Pane::Preview {
                move_cursor(state, 1, fx);
            }
        }
        Command::Open => match state.pane {
            Pane::Queue => {
                if let Some(j) = state.selected_job() {
                    let id = j.id;
                    state.detail_open = true;
                    if state.detail.as_ref().map(|d| d.job.id) != Some(id) {
                        state.detail = None;
                    }
                    fx.push(Effect::LoadDetail(id));
                }
            }
            Pane::Publish => {
                // The render the publication comes from, in the queue.
                let job = state
                    .publications
                    .get(state.publish_cursor.sel)
                    .and_then(|p| p.job_id);
                if let Some(job) = job {
                    state.filter_text = format!("id:{job}");
                    state.pane = Pane::Queue;
                    state.detail_open = false;
                    refilter(state);
                    state.queue.sel = 0;
                }
            }
            Pane::Models | Pane::Gpu | Pane::Preview | Pane::Projects => {}
        },
        Command::Back => {
            if state.message.is_some() && !state.detail_open && state.filter_text.is_empty() {
                state.message = None;
            } else if state.detail_open {
                state.detail_open = false;
            } else if !state.filter_text.is_empty() {
                state.filter_text.clear();
                state.filter_editing = false;
                refilter(state);
            } else {
                state.message = None;
            }
        }
        Command::ToggleMouse => {
            state.mouse = !state.mouse;
            fx.push(Effect::SetMouse(state.mouse));
            say(
                state,
                Level::Info,
                if state.mouse {
                    "mouse on (hold Shift to select text)"
                } else {
                    "mouse off"
                },
            );
        }
        Command::Filter => {
            state.pane = Pane::Queue;
            state.filter_editing = true;
        }
        Command::Sort => {
            state.sort = state.sort.next();
            state.rebuild_visible();
        }
        Command::ReverseSort => {
            state.sort_reversed = !state.sort_reversed;
            state.rebuild_visible();
        }
        Command::PauseJob => {
            if let Some(j) = state.selected_job() {
                let (id, status) = (j.id, j.status);
                match status {
                    JobStatus::Paused => fx.push(Effect::ResumeJob(id)),
                    JobStatus::Queued | JobStatus::Running => fx.push(Effect::PauseJob(id)),
                    s => say(
                        state,
                        Level::Warn,
                        format!("job {id} is {}: nothing to pause", s.as_str()),
                    ),
                }
            }
        }
        Command::CancelJob => {
            if let Some(j) = state.selected_job() {
                if j.status.is_terminal() {
                    let msg = format!("job {} is already {}", j.id, j.status.as_str());
                    say(state, Level::Warn, msg);
                } else {
                    state.overlay = Overlay::Confirm(Confirm::CancelJob(j.id, j.name.clone()));
                }
            }
        }
        Command::RetryJob => {
            if let Some(j) = state.selected_job() {
                let (id, status) = (j.id, j.status);
                if matches!(status, JobStatus::Failed | JobStatus::Cancelled) {
                    fx.push(Effect::RetryJob(id));
                } else {
                    say(
                        state,
                        Level::Warn,
                        format!(
                            "job {id} is {}; only failed or cancelled jobs are retried",
                            status.as_str()
                        ),
                    );
                }
            }
        }
        Command::PriorityUp | Command::PriorityDown => {
            let d = if cmd == Command::PriorityUp { 1 } else { -1 };
            if let Some(&i) = state.visible.get(state.queue.sel) {
                let j = &mut state.jobs[i];
                j.priority += d;
                fx.push(Effect::SetPriority(j.id, j.priority));
                state.rebuild_visible();
            }
        }
        Command::PauseQueue => {
            state.queue_paused = !state.queue_paused;
            fx.push(Effect::PauseQueue(state.queue_paused));
        }
        Command::NewProject => state.overlay = Overlay::NewProject(Box::default()),
        Command::ShowJobs => {
            if let Some(p) = state.selected_project() {
                state.filter_text = format!(
                    "project:{}",
                    p.name.to_lowercase().replace(char::is_whitespace, "")
                );
                state.pane = Pane::Queue;
                state.detail_open = false;
                refilter(state);
                state.queue.sel = 0;
            }
        }
        Command::Pull => {
            if let Some(m) = state.models.get(state.model_cursor.sel) {
                let msg = match (&m.source, m.installed, &m.download) {
                    (Source::Registry { .. }, false, None) => {
                        fx.push(Effect::PullModel(m.id.clone()));
                        format!("queueing a download of {}", m.id)
                    }
                    (_, _, Some(d)) if d.queued => format!("{} is queued to download", m.id),
                    (_, _, Some(_)) => format!("{} is already downloading", m.id),
                    (Source::BuiltIn, ..) => format!("{} is built in: nothing to download", m.id),
                    (Source::HfCache(_), ..) => format!(
                        "{} is not in the registry: add it to <config>/models/*.toml to pull it",
                        m.id
                    ),
                    (Source::Registry { .. }, true, None) => format!("{} is installed", m.id),
                };
                say(state, Level::Info, msg);
            }
        }
        Command::CancelPull => {
            if let Some(m) = state.models.get(state.model_cursor.sel) {
                match &m.download {
                    Some(d) => fx.push(Effect::CancelPull(d.pull)),
                    None => {
                        let msg = format!("{} is not downloading", m.id);
                        say(state, Level::Warn, msg);
                    }
                }
            }
        }
        Command::Remove => {
            if let Some(m) = state.models.get(state.model_cursor.sel) {
                match &m.source {
                    Source::Registry { repo } if m.installed => {
                        state.overlay =
                            Overlay::Confirm(Confirm::RemoveModel(m.id.clone(), repo.clone()));
                    }
                    Source::HfCache(_) => {
                        state.overlay =
                            Overlay::Confirm(Confirm::RemoveModel(m.id.clone(), m.id.clone()));
                    }
                    Source::BuiltIn => {
                        let msg = format!("{} is built in", m.id);
                        say(state, Level::Warn, msg);
                    }
                    Source::Registry { .. } => {
                        let msg = format!("{} is not installed", m.id);
                        say(state, Level::Warn, msg);
                    }
                }
            }
        }
        Command::Rescan => fx.push(Effect::RescanModels),
        Command::RetryPublication => publish::retry(state, fx),
        Command::CancelPublication => publish::cancel(state),
    }
}

fn quit(state: &mut AppState, force: bool, fx: &mut Vec<Effect>) {
    let owner = state.mode == super::state::Mode::Owner;
    if owner && state.running_jobs() > 0 {
        if force {
            state.quit = Some(QuitHow::Stop);
            fx.push(Effect::Quit(QuitHow::Stop));
        } else {
            state.overlay = Overlay::Quit;
        }
    } else {
        state.quit = Some(QuitHow::Now);
        fx.push(Effect::Quit(QuitHow::Now));
    }
}

fn click(state: &mut AppState, column: u16, row: u16, fx: &mut Vec<Effect>) {
    if state.overlay != Overlay::None {
        return;
    }
    let areas = layout(state.size);
    if row == areas.header.y {
        if let Some(p) = super::view::tab_at(column) {
            go(state, p, fx);
        }
        return;
    }
    if state.pane == Pane::Queue && !state.detail_open {
        let first = areas.body.y + 2;
        if row >= first && row < areas.body.bottom().saturating_sub(1) {
            let idx = state.queue.offset + usize::from(row - first);
            if idx < state.visible.len() {
                state.queue.sel = idx;
            }
        }
    }
}

mod publish;
#[cfg(test)]
mod tests;
