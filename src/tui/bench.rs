//! `reelsmith bench tui`: the cost of drawing a big queue, and of an idle studio.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::backend::{CrosstermBackend, TestBackend};
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use tokio_util::sync::CancellationToken;

use crate::config::Dirs;
use crate::scheduler::{Scheduler, SchedulerConfig, SchedulerLock};
use crate::store::{JobRow, JobStatus, TaskRow, TaskStatus};

use super::action::{Action, Pane};
use super::app::{Studio, StudioOptions};
use super::keymap::Keymap;
use super::state::{AppState, Mode};
use super::theme::Theme;
use super::update::update;
use super::view::{self, Images, ViewCtx};

/// The stages of a job of the default graph, for synthetic queues.
const STAGES: [&str; 13] = [
    "plan",
    "translate:en",
    "keyframes",
    "animate",
    "voice:en",
    "music",
    "mix:en",
    "align:en",
    "captions:en",
    "assemble:en",
    "shorts:en",
    "thumbnail:en",
    "metadata:en",
];

/// `n` deterministic jobs in every state (for benchmarks and snapshot tests), created at
/// `now_ms - …`.
pub fn synthetic_jobs(n: usize, now_ms: i64) -> Vec<(JobRow, Vec<TaskRow>)> {
    (0..n)
        .map(|i| {
            let id = i as i64 + 1;
            let status = match i % 10 {
                0 | 1 => JobStatus::Running,
                2..=5 => JobStatus::Queued,
                6 => JobStatus::Paused,
                7 => JobStatus::Failed,
                8 => JobStatus::Cancelled,
                _ => JobStatus::Done,
            };
            let started = (!matches!(status, JobStatus::Queued))
                .then_some(now_ms - 60_000 - (i as i64 % 7) * 45_000);
            let finished = status
                .is_terminal()
                .then(|| started.unwrap_or(now_ms) + 40_000);
            let done_upto = match status {
                JobStatus::Done => STAGES.len(),
                JobStatus::Queued => 0,
                _ => 2 + i % 9,
            };
            let tasks = STAGES
                .iter()
                .enumerate()
                .map(|(k, stage)| {
                    let st = if k < done_upto {
                        if k % 4 == 3 {
                            TaskStatus::Cached
                        } else {
                            TaskStatus::Done
                        }
                    } else if k == done_upto {
                        match status {
                            JobStatus::Running => TaskStatus::Running,
                            JobStatus::Failed => TaskStatus::Failed,
                            JobStatus::Cancelled => TaskStatus::Cancelled,
                            _ => TaskStatus::Pending,
                        }
                    } else if status == JobStatus::Failed {
                        TaskStatus::Skipped
                    } else {
                        TaskStatus::Pending
                    };
                    TaskRow {
                        id: id * 100 + k as i64,
                        job_id: id,
                        stage: stage.to_string(),
                        kind: stage.split(':').next().unwrap_or(stage).to_string(),
                        lang: stage.split(':').nth(1).map(str::to_string),
                        status: st,
                        engine: (st != TaskStatus::Pending).then(|| "builtin@1".to_string()),
                        artifact_key: None,
                        error: (st == TaskStatus::Failed).then(|| "espeak-ng exited 1".into()),
                        progress: if st == TaskStatus::Running {
                            ((i * 37) % 100) as f64 / 100.0
                        } else {
                            0.0
                        },
                        started_ms: (st != TaskStatus::Pending).then_some(started).flatten(),
                        finished_ms: None,
                        elapsed_ms: (k < done_upto).then_some(1500 + (k as i64) * 100),
                        crashes: 0,
                        attempts: i64::from(st != TaskStatus::Pending),
                        device: (st == TaskStatus::Running && k == 2).then_some((i % 2) as u32),
                    }
                })
                .collect();
            let job = JobRow {
                id,
                project_id: (i % 25) as i64 + 1,
                kind: "render".into(),
                status,
                priority: (i % 3) as i64 - 1,
                params: serde_json::Value::Null,
                out_dir: format!("out/story-{:05}", i + 1),
                error: (status == JobStatus::Failed).then(|| "voice:en: espeak-ng exited 1".into()),
                attempts: 1,
                created_ms: now_ms - 3_600_000 + i as i64,
                started_ms: started,
                finished_ms: finished,
                script: None,
                script_name: Some(format!("/home/me/scripts/story-{:05}.yaml", i + 1)),
                cancel_requested: false,
                queued_ms: Some(now_ms - 3_600_000),
            };
            (job, tasks)
        })
        .collect()
}

/// A state holding `n` synthetic jobs, on the queue pane.
pub fn state_with_jobs(n: usize, now_ms: i64, size: (u16, u16)) -> AppState {
    let mut s = AppState::new(
        Mode::Owner,
        vec!["anime".into(), "explainer".into()],
        now_ms,
    );
    s.size = size;
    s.merge_jobs(synthetic_jobs(n, now_ms));
    s.rebuild_visible();
    s
}

fn draw_frames(state: &mut AppState, frames: usize, size: (u16, u16)) -> Result<f64, String> {
    let theme = Theme::default_dark();
    let keymap = Keymap::default();
    let mut images = Images::halfblocks();
    let mut term = Terminal::new(TestBackend::new(size.0, size.1)).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    for i in 0..frames {
        // A different selection every frame, a page jump now and then.
        let cmd = if i % 25 == 24 {
            super::action::Command::PageDown
        } else {
            super::action::Command::Down
        };
        update(state, Action::Cmd(cmd));
        term.draw(|f| {
            let mut ctx = ViewCtx {
                theme: &theme,
                keymap: &keymap,
                images: &mut images,
            };
            view::draw(f, state, &mut ctx);
        })
        .map_err(|e| e.to_string())?;
    }
    Ok(t0.elapsed().as_secs_f64() * 1000.0 / frames as f64)
}

/// Counts what goes to the terminal.
struct Counting(Arc<AtomicU64>);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub fn run(work: &Path, jobs: usize, frames: usize, idle_seconds: u64) -> Result<(), String> {
    let now = super::app::now_ms();
    println!("bench tui: queue pane, {jobs} jobs, {frames} frames per size (dark theme)");
    for size in [(160u16, 48u16), (80, 24)] {
        let t0 = Instant::now();
        let mut state = state_with_jobs(jobs, now, size);
        let load_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let t1 = Instant::now();
        state.rebuild_visible();
        let sort_ms = t1.elapsed().as_secs_f64() * 1000.0;
        let full = draw_frames(&mut state, frames, size)?;
        let mut empty = AppState::new(Mode::Owner, Vec::new(), now);
        empty.size = size;
        let base = draw_frames(&mut empty, frames, size)?;
        println!(
            "  {}×{}: {full:.3} ms/frame (target ≤ 5 ms); empty queue {base:.3} ms/frame, \
             ratio {:.2}; load {load_ms:.0} ms, filter+sort {sort_ms:.1} ms",
            size.0,
            size.1,
            full / base.max(1e-9)
        );
    }
    if idle_seconds == 0 {
        return Ok(());
    }
    idle(work, idle_seconds)
}

fn idle(work: &Path, seconds: u64) -> Result<(), String> {
    let dirs = Dirs {
        data: work.join("idle-data"),
        config: work.join("idle-config"),
    };
    std::fs::create_dir_all(&dirs.data).map_err(|e| e.to_string())?;
    // A studio with history: 500 finished jobs in the store.
    {
        let store = crate::store::Store::open(&dirs.db_path()).map_err(|e| e.to_string())?;
        let p = store
            .upsert_project("history", "/scripts/history.yaml", "explainer")
            .map_err(|e| e.to_string())?;
        for _ in 0..500 {
            let id = store
                .create_job(
                    p,
                    "render",
                    &serde_json::json!({}),
                    "out/history",
                    0,
                    JobStatus::Done,
                )
                .map_err(|e| e.to_string())?;
            let _ = id;
        }
    }
    let rt = crate::rt::runtime().map_err(|_| "no runtime".to_string())?;
    rt.block_on(async {
        let _lock = SchedulerLock::acquire(&dirs.data).map_err(|e| e.to_string())?;
        let shutdown = CancellationToken::new();
        let mut sched = Scheduler::new(
            dirs.clone(),
            crate::stages::registry(),
            SchedulerConfig {
                pulls: 0,
                ..SchedulerConfig::default()
            },
            shutdown.clone(),
            Box::new(|_| {}),
        )
        .map_err(|e| e.to_string())?;
        let sched = tokio::spawn(async move { sched.run().await });
        let mut studio = Studio::new(
            &dirs,
            &StudioOptions::default(),
            Mode::Owner,
            Images::halfblocks(),
            super::app::now_ms(),
        )?;
        studio.state.pane = Pane::Queue;
        let bytes = Arc::new(AtomicU64::new(0));
        let backend = CrosstermBackend::new(Counting(bytes.clone()));
        let mut term = Terminal::with_options(
            backend,
            TerminalOptions {
                viewport: Viewport::Fixed(Rect::new(0, 0, 160, 48)),
            },
        )
        .map_err(|e| e.to_string())?;
        let stop = CancellationToken::new();
        let s2 = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            s2.cancel();
        });
        let cpu0 = crate::rt::cpu_seconds();
        let t0 = Instant::now();
        // The first frame is drawn at once; measure what follows it separately.
        let first = {
            let b = bytes.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                b.load(Ordering::Relaxed)
            })
        };
        studio
            .run_loop(&mut term, futures_util::stream::pending(), stop)
            .await
            .map_err(|e| e.to_string())?;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = crate::rt::cpu_seconds() - cpu0;
        let total = bytes.load(Ordering::Relaxed);
        let first = first.await.unwrap_or(0);
        shutdown.cancel();
        let _ = sched.await;
        println!(
            "  idle studio (scheduler in process, 500 jobs, 160×48) for {wall:.0} s: CPU {:.3} % \
             of one core (target ≤ 1 %), {:.1} KB written (target ≤ 50 KB): {:.1} KB first \
             frame, {} B after it",
            cpu / wall * 100.0,
            total as f64 / 1000.0,
            first as f64 / 1000.0,
            total.saturating_sub(first)
        );
        Ok::<(), String>(())
    })
}
