//! Snapshot tests of every pane and overlay on ratatui's TestBackend (insta). The text of the
//! screen is compared; colours are covered by the theme tests.

use std::collections::BTreeMap;

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::action::{Action, Command, Pane};
use super::bench::{state_with_jobs, synthetic_jobs};
use super::catalog::{Download, ModelView, Source};
use super::keymap::Keymap;
use super::state::{
    AppState, Confirm, JobDetail, Mode, Overlay, PreviewImage, ProjectDetail, ProjectForm,
};
use super::theme::Theme;
use super::update::update;
use super::view::{self, Images, ViewCtx};
use crate::gpu::{DeviceLedger, DeviceSample, GpuProcess, ReservationView};
use crate::scheduler::LedgerSnapshot;
use crate::store::{EventLevel, EventRow, ProjectRow};

pub(super) const NOW: i64 = 1_700_000_000_000;

/// A studio (owner) on `dirs`, its store opened, nothing running.
pub(super) fn studio_on(dirs: &crate::config::Dirs) -> super::Studio {
    super::Studio::new(
        dirs,
        &super::StudioOptions::default(),
        Mode::Owner,
        Images::halfblocks(),
        NOW,
    )
    .unwrap()
}

pub(super) fn render(state: &AppState) -> String {
    render_with(state, &mut Images::halfblocks())
}

fn render_with(state: &AppState, images: &mut Images) -> String {
    draw(state, &Theme::default_dark(), images)
        .backend()
        .to_string()
}

/// Draws one frame of `state` at `state.size`.
fn draw(state: &AppState, theme: &Theme, images: &mut Images) -> Terminal<TestBackend> {
    let (w, h) = state.size;
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    let keymap = Keymap::default();
    term.draw(|f| {
        let mut ctx = ViewCtx {
            theme,
            keymap: &keymap,
            images,
        };
        view::draw(f, state, &mut ctx);
    })
    .unwrap();
    term
}

fn projects() -> Vec<ProjectRow> {
    (1..=25)
        .map(|i| ProjectRow {
            id: i,
            name: format!("story {i:02}"),
            script_path: format!("/home/me/scripts/story-{i:02}.yaml"),
            channel: ["anime", "explainer", "gaming"][(i % 3) as usize].into(),
            created_ms: NOW - 1000 * i,
            updated_ms: NOW - 1000 * i,
        })
        .collect()
}

fn with_projects(mut s: AppState) -> AppState {
    update(
        &mut s,
        Action::Jobs {
            changed: vec![],
            queue_paused: false,
            projects: projects(),
            ledger: None,
            workers: vec![],
        },
    );
    s
}

#[test]
fn queue_pane() {
    let s = with_projects(state_with_jobs(40, NOW, (140, 30)));
    insta::assert_snapshot!(render(&s));
}

#[test]
fn queue_with_ten_thousand_jobs() {
    let mut s = with_projects(state_with_jobs(10_000, NOW, (120, 30)));
    update(&mut s, Action::Cmd(Command::Bottom));
    let screen = render(&s);
    assert!(screen.contains("10000 jobs"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn queue_in_a_narrow_80x24_terminal() {
    let s = with_projects(state_with_jobs(50, NOW, (80, 24)));
    insta::assert_snapshot!(render(&s));
}

#[test]
fn queue_empty() {
    let s = AppState::new(Mode::Owner, vec![], NOW);
    insta::assert_snapshot!(render(&s));
}

#[test]
fn queue_filtered_and_paused_as_a_monitor() {
    let mut s = with_projects(state_with_jobs(100, NOW, (120, 24)));
    s.mode = Mode::Monitor { pid: Some(4242) };
    s.queue_paused = true;
    s.filter_text = "status:failed".into();
    s.filter = super::state::Filter::parse(&s.filter_text);
    s.rebuild_visible();
    insta::assert_snapshot!(render(&s));
}

fn detail_for(s: &AppState) -> JobDetail {
    let id = s.selected_job().unwrap().id;
    let (job, tasks) = synthetic_jobs(id as usize, NOW).pop().unwrap();
    let mut deps = BTreeMap::new();
    deps.insert("keyframes".to_string(), vec!["plan".to_string()]);
    deps.insert(
        "assemble:en".to_string(),
        vec!["animate".to_string(), "mix:en".to_string()],
    );
    let log = (0..12)
        .map(|i| EventRow {
            id: i + 1,
            job_id: Some(id),
            task_id: None,
            at_ms: NOW - 60_000 + i * 2_500,
            level: if i == 7 {
                EventLevel::Warn
            } else {
                EventLevel::Info
            },
            message: format!("stage event number {i}"),
        })
        .collect();
    JobDetail {
        job,
        tasks,
        deps,
        artifacts: BTreeMap::new(),
        log,
    }
}

#[test]
fn queue_job_detail() {
    let mut s = with_projects(state_with_jobs(10, NOW, (130, 36)));
    update(&mut s, Action::Cmd(Command::Open));
    assert!(s.detail_open);
    let d = detail_for(&s);
    update(&mut s, Action::Detail(Box::new(d)));
    insta::assert_snapshot!(render(&s));
}

#[test]
fn projects_pane() {
    let mut s = with_projects(state_with_jobs(40, NOW, (120, 30)));
    s.pane = Pane::Projects;
    s.project_detail = Some(Box::new(ProjectDetail {
        project: 1,
        summary: Ok(vec![
            ("title".into(), "How tides work".into()),
            ("scenes".into(), "4 (9 lines)".into()),
            ("languages".into(), "en, ja".into()),
        ]),
        outputs: vec![
            ("en/final.mp4".into(), 4_200_000),
            ("en/thumbnail.png".into(), 310_000),
        ],
    }));
    insta::assert_snapshot!(render(&s));
}

#[test]
fn projects_empty_in_80x24() {
    let mut s = AppState::new(Mode::Owner, vec![], NOW);
    s.size = (80, 24);
    s.pane = Pane::Projects;
    insta::assert_snapshot!(render(&s));
}

#[test]
fn new_project_form() {
    let mut s = AppState::new(Mode::Owner, vec!["anime".into(), "explainer".into()], NOW);
    s.size = (100, 30);
    s.pane = Pane::Projects;
    s.overlay = Overlay::NewProject(Box::new(ProjectForm {
        script: "data/examples/".into(),
        completions: vec![
            "data/examples/anime-duel.yaml".into(),
            "data/examples/explainer.yaml".into(),
        ],
        langs: vec!["en".into(), "ja".into()],
        channel: Some("anime".into()),
        error: Some("data/examples/: is a directory; pick a script".into()),
        ..ProjectForm::default()
    }));
    insta::assert_snapshot!(render(&s));
}

fn models() -> Vec<ModelView> {
    let mut m = super::catalog::builtin();
    m.push(ModelView {
        id: "qwen2.5-1.5b-instruct-q4".into(),
        kind: "llm".into(),
        stage: None,
        source: Source::Registry {
            repo: "Qwen/Qwen2.5-1.5B-Instruct-GGUF".into(),
        },
        installed: false,
        size: Some(1_120_000_000),
        vram: 2_000_000_000,
        download: None,
    });
    m.push(ModelView {
        id: "openai/whisper-base".into(),
        kind: "asr".into(),
        stage: None,
        source: Source::HfCache("/cache/models--openai--whisper-base".into()),
        installed: true,
        size: Some(290_000_000),
        vram: 333_500_000,
        download: None,
    });
    m.push(ModelView {
        id: "black-forest-labs/FLUX.1-schnell".into(),
        kind: "image".into(),
        stage: None,
        source: Source::HfCache("/cache/models--black-forest-labs--FLUX.1-schnell".into()),
        installed: false,
        size: Some(12_000_000_000),
        vram: 36_000_000_000,
        download: Some(Download {
            pull: 3,
            queued: false,
            done: 12_000_000_000,
            total: 23_800_000_000,
            bytes_per_s: 85_000_000.0,
        }),
    });
    m
}

#[test]
fn models_pane_without_gpu() {
    let mut s = AppState::new(Mode::Owner, vec![], NOW);
    s.size = (110, 28);
    s.pane = Pane::Models;
    s.models = models();
    insta::assert_snapshot!(render(&s));
}

fn fake_gpus(s: &mut AppState) {
    let mib = 1u64 << 20;
    for t in 0..300u64 {
        let samples = (0..2u32)
            .map(|i| {
                let total = 24_576 * mib;
                let used = (4_000 + (t * 37 + u64::from(i) * 900) % 9_000) * mib;
                DeviceSample {
                    index: i,
                    name: format!("Fake RTX {}", 4090 - i * 10),
                    uuid: format!("GPU-fake-{i}"),
                    total,
                    used,
                    free: total - used,
                    utilization: Some(40 + i * 10),
                    temperature: Some(61 + i),
                    power_watts: Some(250.0 + f64::from(i) * 20.0),
                    processes: vec![
                        GpuProcess {
                            pid: 777,
                            used: 3_000 * mib,
                        },
                        GpuProcess {
                            pid: 1234,
                            used: used - 3_000 * mib,
                        },
                    ],
                }
            })
            .collect();
        update(s, Action::Gpu(samples, NOW + t as i64 * 1000));
    }
}

#[test]
fn gpu_pane_with_two_fake_gpus() {
    let mut s = AppState::new(Mode::Owner, vec![], NOW);
    s.size = (110, 24);
    s.pane = Pane::Gpu;
    let mib = 1u64 << 20;
    s.gpu.ledger = Some(LedgerSnapshot {
        pid: 777,
        worker_pids: vec![],
        devices: vec![DeviceLedger {
            index: 0,
            name: "Fake RTX 4090".into(),
            capacity: 24_576 * mib,
            margin: 512 * mib,
            usable: 24_064 * mib,
            reserved: 8_000 * mib,
            idle_loaded: 0,
            measured_free: 0,
            pending: 0,
            reservations: vec![ReservationView {
                task: 3,
                bytes: 8_000 * mib,
                model: Some("sdxl-turbo".into()),
            }],
            loaded: vec![],
        }],
    });
    fake_gpus(&mut s);
    assert_eq!(
        s.gpu.devices[0].used_history.len(),
        300,
        "five minutes kept"
    );
    assert_eq!(s.gpu.devices[0].ours, 3_000 * mib);
    let screen = render(&s);
    assert!(screen.contains("reserved 7.8 GiB"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn gpu_pane_cpu_only() {
    let mut s = AppState::new(Mode::Owner, vec![], NOW);
    s.size = (100, 20);
    s.pane = Pane::Gpu;
    s.gpu.cpu_only = Some("NVML is not available (libnvidia-ml.so.1 not found)".into());
    insta::assert_snapshot!(render(&s));
}

#[test]
fn models_pane_with_gpus_says_what_fits() {
    let mut s = AppState::new(Mode::Owner, vec![], NOW);
    s.size = (110, 28);
    fake_gpus(&mut s);
    s.pane = Pane::Models;
    s.models = models();
    let screen = render(&s);
    assert!(
        screen.contains("too big") && screen.contains("fits"),
        "{screen}"
    );
}

#[test]
fn preview_pane_draws_an_image() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("scene-001.png");
    // Left half red, right half blue.
    let (w, h) = (320u32, 180u32);
    let mut rgba = Vec::with_capacity((w * h * 4) as usize);
    for _y in 0..h {
        for x in 0..w {
            rgba.extend_from_slice(if x < w / 2 {
                &[220, 30, 30, 255]
            } else {
                &[30, 30, 220, 255]
            });
        }
    }
    image::save_buffer(&path, &rgba, w, h, image::ExtendedColorType::Rgba8).unwrap();
    let mut s = with_projects(state_with_jobs(3, NOW, (90, 24)));
    s.pane = Pane::Preview;
    s.preview.job = Some(1);
    s.preview.images = vec![
        PreviewImage {
            label: "scene 001".into(),
            path: path.clone(),
        },
        PreviewImage {
            label: "thumbnail en".into(),
            path: d.path().join("missing.png"),
        },
    ];
    let mut images = Images::halfblocks();
    let term = draw(&s, &Theme::default_dark(), &mut images);
    // Half-blocks carry the picture in their colours: red on the left, blue on the right.
    let buf = term.backend().buffer().clone();
    let colour = |c: ratatui::style::Color| match c {
        ratatui::style::Color::Rgb(r, _, b) => Some((r, b)),
        _ => None,
    };
    let mut reds = 0;
    let mut blues = 0;
    for cell in buf.content() {
        if let Some((r, b)) = colour(cell.fg) {
            if r > 150 && b < 80 {
                reds += 1;
            }
            if b > 150 && r < 80 {
                blues += 1;
            }
        }
    }
    assert!(reds > 20 && blues > 20, "reds {reds} blues {blues}");
    insta::assert_snapshot!(render_with(&s, &mut images));
    // The missing file names itself.
    s.preview.sel = 1;
    let screen = render_with(&s, &mut images);
    assert!(screen.contains("missing.png"), "{screen}");
}

#[test]
fn preview_empty() {
    let mut s = AppState::new(Mode::Owner, vec![], NOW);
    s.size = (80, 24);
    s.pane = Pane::Preview;
    insta::assert_snapshot!(render(&s));
}

#[test]
fn help_overlay_lists_every_binding() {
    let mut s = AppState::new(Mode::Owner, vec![], NOW);
    s.size = (100, 66);
    s.overlay = Overlay::Help { scroll: 0 };
    let screen = render(&s);
    for c in super::action::Command::TABLE {
        assert!(screen.contains(c.help), "help lacks {:?}", c.name);
    }
    insta::assert_snapshot!(screen);
}

#[test]
fn help_in_80x24_scrolls() {
    let mut s = AppState::new(Mode::Owner, vec![], NOW);
    s.size = (80, 24);
    s.overlay = Overlay::Help { scroll: 12 };
    insta::assert_snapshot!(render(&s));
}

#[test]
fn confirm_and_quit_dialogs() {
    let mut s = with_projects(state_with_jobs(10, NOW, (100, 24)));
    s.overlay = Overlay::Confirm(Confirm::CancelJob(3, "story 03".into()));
    insta::assert_snapshot!("confirm_cancel", render(&s));
    s.overlay = Overlay::Quit;
    insta::assert_snapshot!("quit_prompt", render(&s));
}

#[test]
fn every_theme_draws_every_pane() {
    // No theme may fail to draw anything (missing roles fall back to dark).
    for name in super::theme::theme_names(None) {
        for support in [
            super::theme::ColorSupport::NoColor,
            super::theme::ColorSupport::Ansi16,
            super::theme::ColorSupport::TrueColor,
        ] {
            let theme = Theme::load(&name, None, support).unwrap();
            let mut s = with_projects(state_with_jobs(20, NOW, (100, 30)));
            for pane in Pane::ALL {
                s.pane = pane;
                let term = draw(&s, &theme, &mut Images::halfblocks());
                if support == super::theme::ColorSupport::NoColor {
                    let buf = term.backend().buffer();
                    assert!(
                        buf.content()
                            .iter()
                            .all(|c| c.fg == ratatui::style::Color::Reset
                                && c.bg == ratatui::style::Color::Reset),
                        "NO_COLOR draws no colour ({name}, {pane:?})"
                    );
                }
            }
        }
    }
}

#[test]
fn the_models_pane_pulls_and_removes_through_the_hub() {
    use crate::hub::server_tests::{config, fixture, random_bytes, Behaviour, Server};
    use sha2::Digest;
    let tmp = tempfile::tempdir().unwrap();
    let dirs = crate::config::Dirs {
        data: tmp.path().join("data"),
        config: tmp.path().join("config"),
    };
    let weights = random_bytes(1_500_000, 7);
    let sha = hex::encode(sha2::Sha256::digest(&weights));
    std::fs::create_dir_all(dirs.config.join("models")).unwrap();
    std::fs::write(
        dirs.config.join("models/test.toml"),
        format!(
            "[[model]]\nid = \"tiny-test\"\nname = \"Tiny\"\nkind = \"asr\"\nrepo = \"test/tiny\"\n\
             license = \"mit\"\narch = \"whisper\"\nformat = \"safetensors\"\ndtype = \"f16\"\n\
             tier = \"low\"\n[[model.files]]\npath = \"model.safetensors\"\nsize = {}\nsha256 = \"{sha}\"\n\
             [[model.files]]\npath = \"config.json\"\n",
            weights.len()
        ),
    )
    .unwrap();
    let server = Server::start(
        vec![fixture(
            "test/tiny",
            &[
                ("model.safetensors", &weights, true),
                ("config.json", b"{}", false),
            ],
        )],
        Behaviour::default(),
    );
    let mut studio = studio_on(&dirs);
    studio.data.hub = config(&server, tmp.path());
    studio.dispatch(Action::Cmd(Command::GoModels));
    let idx = studio
        .state
        .models
        .iter()
        .position(|m| m.id == "tiny-test")
        .expect("the user's registry entry is listed");
    assert!(!studio.state.models[idx].installed);
    studio.state.model_cursor.sel = idx;
    studio.dispatch(Action::Cmd(Command::Pull));
    // The pull is a job in the store: the pane shows it queued before anything runs it.
    let poll = |studio: &mut super::Studio| {
        for a in studio.data.poll().unwrap() {
            studio.dispatch(a);
        }
    };
    poll(&mut studio);
    let d = studio.state.models[idx]
        .download
        .clone()
        .expect("listed as queued");
    assert!(d.queued, "{d:?}");
    let store = crate::store::Store::open(&dirs.db_path()).unwrap();
    let row = store
        .active_pull("tiny-test")
        .unwrap()
        .expect("in the store");
    assert_eq!(row.id, d.pull);
    // The scheduler's runner (here ticked by the test) downloads it; the pane follows.
    let mut runner = crate::hub::queue::PullRunner::new(
        studio.data.hub.clone(),
        studio.data.registry.clone(),
        1,
    );
    let t0 = std::time::Instant::now();
    let mut saw_running = false;
    loop {
        runner.tick(&store, true).unwrap();
        poll(&mut studio);
        let m = &studio.state.models[idx];
        saw_running |= m.download.as_ref().is_some_and(|d| !d.queued);
        if m.installed {
            break;
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "stuck");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let m = &studio.state.models[idx];
    assert!(
        m.installed && m.download.is_none(),
        "{:?}",
        studio.state.message
    );
    assert!(saw_running, "the pane showed the download running");
    assert!(
        format!("{:?}", studio.state.message).contains("tiny-test installed in"),
        "{:?}",
        studio.state.message
    );
    let pulled = crate::hub::installed(
        &studio.data.hub,
        &studio.data.registry.get("tiny-test").unwrap().spec(),
    )
    .expect("in the cache");
    assert_eq!(
        std::fs::read(pulled.dir.join("model.safetensors")).unwrap(),
        weights
    );
    // Remove asks, then deletes.
    studio.dispatch(Action::Cmd(Command::Remove));
    assert!(matches!(
        studio.state.overlay,
        Overlay::Confirm(Confirm::RemoveModel(..))
    ));
    studio.dispatch(Action::Answer('y'));
    let m = studio
        .state
        .models
        .iter()
        .find(|m| m.id == "tiny-test")
        .unwrap();
    assert!(!m.installed);
    assert!(crate::hub::installed(
        &studio.data.hub,
        &studio.data.registry.get("tiny-test").unwrap().spec()
    )
    .is_none());
}

#[test]
fn a_stalled_task_shows_its_job_as_stalled_in_the_queue() {
    use crate::scheduler::worker::{WorkerTask, WorkerView};
    let mut s = with_projects(state_with_jobs(12, NOW, (140, 30)));
    let running = s
        .jobs
        .iter()
        .find(|j| j.status == crate::store::JobStatus::Running)
        .map(|j| j.id)
        .expect("the fixture has a running job");
    assert!(!render(&s).contains("stalled"));
    let workers = vec![WorkerView {
        pid: 4242,
        device: "cpu".into(),
        models: vec![],
        rss_bytes: 300 << 20,
        peak_rss_bytes: 310 << 20,
        tasks: vec![WorkerTask {
            job: running,
            task: 1,
            stage: "voice:en".into(),
            progress: 0.4,
            stalled: true,
        }],
        tasks_done: 3,
        uptime_s: 60.0,
    }];
    update(
        &mut s,
        Action::Jobs {
            changed: vec![],
            queue_paused: false,
            projects: projects(),
            ledger: None,
            workers,
        },
    );
    let screen = render(&s);
    let row = screen
        .lines()
        .find(|l| l.contains(&format!("story {running:02}")))
        .unwrap_or_default();
    assert!(row.contains("stalled"), "{screen}");
    assert_eq!(screen.matches("stalled").count(), 1, "{screen}");
}
