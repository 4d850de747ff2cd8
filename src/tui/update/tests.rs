use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyEventState, KeyModifiers};

use super::*;
use crate::tui::bench::{state_with_jobs, synthetic_jobs};
use crate::tui::state::Mode;

const NOW: i64 = 1_700_000_000_000;

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent {
        code: c,
        modifiers: KeyModifiers::NONE,
        kind: KeyEventKind::Press,
        state: KeyEventState::NONE,
    }
}

/// Presses keys through the keymap and the reducer; returns every effect.
fn press(state: &mut AppState, keys: &[KeyCode]) -> Vec<Effect> {
    let map = Keymap::default();
    let mut fx = Vec::new();
    for k in keys {
        if let Some(a) = key_action(state, &map, &key(*k)) {
            fx.extend(update(state, a));
        }
    }
    fx
}

fn chars(s: &str) -> Vec<KeyCode> {
    s.chars().map(KeyCode::Char).collect()
}

#[test]
fn navigation_moves_and_clamps() {
    let mut s = state_with_jobs(50, NOW, (120, 30));
    s.page = 10;
    press(
        &mut s,
        &[KeyCode::Down, KeyCode::Char('j'), KeyCode::Char('j')],
    );
    assert_eq!(s.queue.sel, 3);
    press(&mut s, &[KeyCode::Up]);
    assert_eq!(s.queue.sel, 2);
    press(&mut s, &[KeyCode::PageDown]);
    assert_eq!(s.queue.sel, 12);
    press(&mut s, &[KeyCode::Char('G')]);
    assert_eq!(s.queue.sel, 49);
    press(&mut s, &[KeyCode::Down]);
    assert_eq!(s.queue.sel, 49, "stays on the last row");
    press(&mut s, &[KeyCode::Char('g')]);
    assert_eq!(s.queue.sel, 0);
    press(&mut s, &[KeyCode::Up]);
    assert_eq!(s.queue.sel, 0, "stays on the first row");
}

#[test]
fn digits_and_tab_switch_panes() {
    let mut s = state_with_jobs(5, NOW, (120, 30));
    press(&mut s, &[KeyCode::Char('1')]);
    assert_eq!(s.pane, Pane::Projects);
    press(&mut s, &[KeyCode::Tab, KeyCode::Tab]);
    assert_eq!(s.pane, Pane::Models);
    press(&mut s, &[KeyCode::BackTab]);
    assert_eq!(s.pane, Pane::Queue);
    let fx = press(&mut s, &[KeyCode::Char('3')]);
    assert_eq!(
        fx,
        vec![Effect::RescanModels],
        "models are scanned on first visit"
    );
    let fx = press(&mut s, &[KeyCode::Char('2'), KeyCode::Char('5')]);
    assert_eq!(s.pane, Pane::Preview);
    let first = s.jobs[s.visible[0]].id;
    assert_eq!(fx, vec![Effect::LoadPreview(first)]);
}

#[test]
fn filtering_narrows_the_queue_and_esc_clears_it() {
    let mut s = state_with_jobs(100, NOW, (120, 30));
    press(&mut s, &[KeyCode::Char('/')]);
    assert!(s.filter_editing);
    // Letters typed into the filter are text, not commands ('q' must not quit).
    let fx = press(&mut s, &chars("status:failed q"));
    assert!(fx.is_empty());
    assert_eq!(s.quit, None);
    assert_eq!(s.filter_text, "status:failed q");
    press(&mut s, &[KeyCode::Backspace, KeyCode::Backspace]);
    assert_eq!(s.visible.len(), 10, "every tenth synthetic job failed");
    assert!(s
        .visible
        .iter()
        .all(|&i| s.jobs[i].status == JobStatus::Failed));
    press(&mut s, &[KeyCode::Enter]);
    assert!(!s.filter_editing, "Enter keeps the filter");
    assert_eq!(s.visible.len(), 10);
    press(&mut s, &[KeyCode::Esc]);
    assert!(s.filter_text.is_empty());
    assert_eq!(s.visible.len(), 100);

    let mut s = state_with_jobs(100, NOW, (120, 30));
    press(&mut s, &[KeyCode::Char('/')]);
    press(&mut s, &chars("story-00042"));
    assert_eq!(s.visible.len(), 1);
    assert_eq!(s.selected_job().unwrap().id, 42);
}

#[test]
fn sorting_keeps_the_selected_job_selected() {
    let mut s = state_with_jobs(30, NOW, (120, 30));
    press(&mut s, &[KeyCode::Down, KeyCode::Down, KeyCode::Down]);
    let id = s.selected_job().unwrap().id;
    for _ in 0..5 {
        press(&mut s, &[KeyCode::Char('s')]);
        assert_eq!(s.selected_job().unwrap().id, id, "sort {:?}", s.sort);
    }
    assert_eq!(s.sort, SortKey::Queue, "five sorts come back round");
    // Queue order: running first, then waiting by priority.
    let order: Vec<JobStatus> = s.visible.iter().map(|&i| s.jobs[i].status).collect();
    let first_queued = order.iter().position(|x| *x == JobStatus::Queued).unwrap();
    assert!(order[..first_queued]
        .iter()
        .all(|x| *x == JobStatus::Running));
    press(&mut s, &[KeyCode::Char('S')]);
    assert!(s.sort_reversed);
    assert_eq!(s.selected_job().unwrap().id, id);
}

use crate::tui::state::SortKey;

#[test]
fn cancel_asks_first_and_no_means_no() {
    let mut s = state_with_jobs(10, NOW, (120, 30));
    let id = s.selected_job().unwrap().id;
    assert!(!s.selected_job().unwrap().status.is_terminal());
    let fx = press(&mut s, &[KeyCode::Char('c')]);
    assert!(fx.is_empty());
    assert!(matches!(s.overlay, Overlay::Confirm(Confirm::CancelJob(j, _)) if j == id));
    // Keys that are commands elsewhere are answers here.
    let fx = press(&mut s, &[KeyCode::Char('q')]);
    assert!(fx.is_empty() && s.overlay == Overlay::None && s.quit.is_none());
    press(&mut s, &[KeyCode::Char('c')]);
    let fx = press(&mut s, &[KeyCode::Esc]);
    assert!(fx.is_empty() && s.overlay == Overlay::None);
    press(&mut s, &[KeyCode::Char('c')]);
    let fx = press(&mut s, &[KeyCode::Char('y')]);
    assert_eq!(fx, vec![Effect::CancelJob(id)]);
}

#[test]
fn job_actions_follow_the_job_state() {
    let mut s = state_with_jobs(10, NOW, (120, 30));
    s.sort = SortKey::Id;
    s.rebuild_visible();
    // Job 1 runs, 3 waits, 7 is paused, 8 failed, 10 is done.
    let select = |s: &mut AppState, id: JobId| {
        s.queue.sel = s.visible.iter().position(|&i| s.jobs[i].id == id).unwrap();
    };
    select(&mut s, 1);
    assert_eq!(
        press(&mut s, &[KeyCode::Char('p')]),
        vec![Effect::PauseJob(1)]
    );
    select(&mut s, 7);
    assert_eq!(
        press(&mut s, &[KeyCode::Char('p')]),
        vec![Effect::ResumeJob(7)]
    );
    assert_eq!(
        press(&mut s, &[KeyCode::Char('r')]),
        vec![],
        "only failed jobs retry"
    );
    assert_eq!(s.message.as_ref().unwrap().level, Level::Warn);
    select(&mut s, 8);
    assert_eq!(
        press(&mut s, &[KeyCode::Char('r')]),
        vec![Effect::RetryJob(8)]
    );
    select(&mut s, 10);
    assert!(press(&mut s, &[KeyCode::Char('c')]).is_empty());
    assert_eq!(s.overlay, Overlay::None, "a done job is not cancelled");
    select(&mut s, 3);
    let before = s.job(3).unwrap().priority;
    assert_eq!(
        press(&mut s, &[KeyCode::Char('+'), KeyCode::Char('+')]),
        vec![
            Effect::SetPriority(3, before + 1),
            Effect::SetPriority(3, before + 2)
        ]
    );
    assert_eq!(s.selected_job().unwrap().id, 3);
    let paused = s.queue_paused;
    assert_eq!(
        press(&mut s, &[KeyCode::Char('P')]),
        vec![Effect::PauseQueue(!paused)]
    );
}

#[test]
fn quitting_with_running_jobs_offers_headless() {
    let mut s = state_with_jobs(10, NOW, (120, 30));
    assert!(s.running_jobs() > 0);
    assert!(press(&mut s, &[KeyCode::Char('q')]).is_empty());
    assert_eq!(s.overlay, Overlay::Quit);
    press(&mut s, &[KeyCode::Esc]);
    assert_eq!(s.overlay, Overlay::None);
    assert_eq!(s.quit, None, "Esc stays");
    press(&mut s, &[KeyCode::Char('q')]);
    assert_eq!(
        press(&mut s, &[KeyCode::Char('k')]),
        vec![Effect::Quit(QuitHow::Headless)]
    );
    assert_eq!(s.quit, Some(QuitHow::Headless));

    let mut s = state_with_jobs(10, NOW, (120, 30));
    press(&mut s, &[KeyCode::Char('q')]);
    assert_eq!(
        press(&mut s, &[KeyCode::Char('s')]),
        vec![Effect::Quit(QuitHow::Stop)]
    );

    // A monitor never owns running jobs: it just leaves.
    let mut s = state_with_jobs(10, NOW, (120, 30));
    s.mode = Mode::Monitor { pid: Some(42) };
    assert_eq!(
        press(&mut s, &[KeyCode::Char('q')]),
        vec![Effect::Quit(QuitHow::Now)]
    );

    // Nothing running: no question.
    let mut s = AppState::new(Mode::Owner, vec![], NOW);
    assert_eq!(
        press(&mut s, &[KeyCode::Char('q')]),
        vec![Effect::Quit(QuitHow::Now)]
    );

    // Ctrl-C always works, even in a form.
    let mut s = state_with_jobs(10, NOW, (120, 30));
    press(&mut s, &[KeyCode::Char('1'), KeyCode::Char('n')]);
    let ctrl_c = KeyEvent {
        code: KeyCode::Char('c'),
        modifiers: KeyModifiers::CONTROL,
        kind: KeyEventKind::Press,
        state: KeyEventState::NONE,
    };
    let a = key_action(&s, &Keymap::default(), &ctrl_c).unwrap();
    assert_eq!(update(&mut s, a), vec![Effect::Quit(QuitHow::Stop)]);
}

#[test]
fn the_new_project_form_collects_a_request() {
    let mut s = AppState::new(Mode::Owner, vec!["anime".into(), "gaming".into()], NOW);
    press(&mut s, &[KeyCode::Char('1'), KeyCode::Char('n')]);
    assert!(matches!(s.overlay, Overlay::NewProject(_)));
    // Enter with no script: an error, the form stays.
    assert!(press(&mut s, &[KeyCode::Enter]).is_empty());
    let Overlay::NewProject(f) = &s.overlay else {
        panic!()
    };
    assert!(f.error.is_some());
    // Typed text goes into the path; Tab asks for completions.
    press(&mut s, &chars("data/ex"));
    assert_eq!(
        press(&mut s, &[KeyCode::Tab]),
        vec![Effect::Complete("data/ex".into())]
    );
    update(&mut s, Action::Completions(vec!["data/examples/".into()]));
    press(&mut s, &chars("no"));
    update(
        &mut s,
        Action::Completions(vec![
            "data/examples/notes.txt".into(),
            "data/examples/notes2.txt".into(),
        ]),
    );
    let Overlay::NewProject(f) = &s.overlay else {
        panic!()
    };
    assert_eq!(f.script, "data/examples/notes", "common prefix");
    assert_eq!(f.completions.len(), 2);
    press(&mut s, &chars(".txt"));
    // Channel: → picks the first channel; languages: Space ticks ja (cursor moved right once).
    press(&mut s, &[KeyCode::Down, KeyCode::Right]);
    press(&mut s, &[KeyCode::Down, KeyCode::Right, KeyCode::Char(' ')]);
    press(&mut s, &[KeyCode::Down, KeyCode::Right, KeyCode::Right]);
    press(&mut s, &[KeyCode::Down, KeyCode::Right]);
    let fx = press(&mut s, &[KeyCode::Enter]);
    assert_eq!(
        fx,
        vec![Effect::Enqueue(EnqueueRequest {
            script: "data/examples/notes.txt".into(),
            channel: Some("anime".into()),
            languages: Some(vec![s.languages[1].clone()]),
            priority: 2,
            quality: Quality::Final,
            out: "out".into(),
        })]
    );
    update(&mut s, Action::FormError("notes.txt:3: bad".into()));
    let Overlay::NewProject(f) = &s.overlay else {
        panic!()
    };
    assert_eq!(
        f.error.as_deref(),
        Some("notes.txt:3: bad"),
        "kept open with the error"
    );
    update(&mut s, Action::Queued(9, "notes".into()));
    assert_eq!(s.overlay, Overlay::None);
    assert_eq!(s.pane, Pane::Queue);
}

#[test]
fn help_opens_and_closes() {
    let mut s = AppState::new(Mode::Owner, vec![], NOW);
    press(&mut s, &[KeyCode::Char('?')]);
    assert!(matches!(s.overlay, Overlay::Help { .. }));
    press(&mut s, &[KeyCode::Down, KeyCode::Down]);
    assert_eq!(s.overlay, Overlay::Help { scroll: 2 });
    press(&mut s, &[KeyCode::Char('q')]);
    assert_eq!(s.overlay, Overlay::None);
    assert_eq!(s.quit, None, "q closes help, it does not quit");
}

#[test]
fn store_changes_merge_and_keep_the_selection() {
    let mut s = AppState::new(Mode::Owner, vec![], NOW);
    let jobs = synthetic_jobs(20, NOW);
    update(
        &mut s,
        Action::Jobs {
            changed: jobs[..10].to_vec(),
            queue_paused: false,
            projects: vec![],
            ledger: None,
            workers: vec![],
        },
    );
    assert_eq!(s.jobs.len(), 10);
    press(&mut s, &[KeyCode::Down, KeyCode::Down]);
    let id = s.selected_job().unwrap().id;
    s.dirty = false;
    let mut more = jobs[10..].to_vec();
    let mut changed = jobs[id as usize - 1].clone();
    changed.0.status = JobStatus::Done;
    more.push(changed);
    update(
        &mut s,
        Action::Jobs {
            changed: more,
            queue_paused: true,
            projects: vec![],
            ledger: None,
            workers: vec![],
        },
    );
    assert!(s.dirty);
    assert_eq!(s.jobs.len(), 20);
    assert!(s.queue_paused);
    assert_eq!(
        s.selected_job().unwrap().id,
        id,
        "followed to its new place"
    );
    assert_eq!(s.selected_job().unwrap().status, JobStatus::Done);
    // Nothing changed: nothing to draw.
    s.dirty = false;
    update(
        &mut s,
        Action::Jobs {
            changed: vec![],
            queue_paused: true,
            projects: vec![],
            ledger: None,
            workers: vec![],
        },
    );
    assert!(!s.dirty);
}

#[test]
fn the_clock_redraws_only_while_something_runs() {
    let mut s = AppState::new(Mode::Owner, vec![], NOW);
    s.dirty = false;
    update(&mut s, Action::Tick(NOW + 1000));
    assert!(!s.dirty, "an idle studio does not redraw every second");
    let mut s = state_with_jobs(10, NOW, (120, 30));
    s.dirty = false;
    update(&mut s, Action::Tick(NOW + 1000));
    assert!(s.dirty);
}

#[test]
fn clicks_pick_tabs_and_rows() {
    let mut s = state_with_jobs(30, NOW, (120, 30));
    update(&mut s, Action::Click { column: 1, row: 0 });
    assert_eq!(s.pane, Pane::Projects);
    let x = crate::tui::view::tab_x(Pane::Gpu);
    update(&mut s, Action::Click { column: x, row: 0 });
    assert_eq!(s.pane, Pane::Gpu);
    update(&mut s, Action::Cmd(Command::GoQueue));
    // Body starts at row 1; border and table header take two rows.
    update(&mut s, Action::Click { column: 10, row: 5 });
    assert_eq!(s.queue.sel, 2);
}

#[test]
fn common_prefix_respects_characters() {
    assert_eq!(common_prefix(&["abc".into(), "abd".into()]), "ab");
    assert_eq!(common_prefix(&["日本語".into(), "日本人".into()]), "日本");
    assert_eq!(common_prefix(&["x".into()]), "x");
    assert_eq!(common_prefix(&[]), "");
}

#[test]
fn pull_and_remove_depend_on_what_the_model_is() {
    use crate::tui::catalog::{ModelView, Source};
    let row = |id: &str, source: Source, installed: bool| ModelView {
        id: id.into(),
        kind: "llm".into(),
        stage: None,
        source,
        installed,
        size: Some(10),
        vram: 10,
        download: None,
    };
    let mut s = AppState::new(Mode::Owner, vec![], NOW);
    s.models = vec![
        row("espeak-ng@1", Source::BuiltIn, true),
        row(
            "qwen",
            Source::Registry {
                repo: "Qwen/q".into(),
            },
            false,
        ),
        row("smol", Source::Registry { repo: "H/s".into() }, true),
    ];
    s.pane = Pane::Models;
    assert!(
        press(&mut s, &[KeyCode::Char('p')]).is_empty(),
        "built-ins are not pulled"
    );
    press(&mut s, &[KeyCode::Down]);
    assert_eq!(
        press(&mut s, &[KeyCode::Char('p')]),
        vec![Effect::PullModel("qwen".into())]
    );
    assert!(press(&mut s, &[KeyCode::Char('D')]).is_empty());
    assert_eq!(s.overlay, Overlay::None, "nothing to remove");
    press(&mut s, &[KeyCode::Down]);
    assert!(
        press(&mut s, &[KeyCode::Char('p')]).is_empty(),
        "installed already"
    );
    press(&mut s, &[KeyCode::Char('D')]);
    assert_eq!(
        press(&mut s, &[KeyCode::Char('y')]),
        vec![Effect::RemoveModel("H/s".into())]
    );
}
