//! The studio's runtime: the terminal, the event loop, the in-process scheduler (or attaching
//! to the one another process runs), and leaving cleanly on every path.
//!
//! One inbox: terminal events, a 4 Hz store poll (one `PRAGMA data_version` when nothing
//! changed), GPU samples at 1 Hz, a 1 Hz clock for elapsed times, and signals. Drawing happens
//! only when the reducer says something visible changed, and ratatui writes only the cells
//! that differ — an idle studio costs next to nothing.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossterm::event::{Event, MouseButton, MouseEventKind};
use crossterm::{cursor, execute, terminal};
use futures_util::{Stream, StreamExt};
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::Terminal;
use tokio_util::sync::CancellationToken;

use crate::config::{ChannelSet, Dirs};
use crate::gpu::GpuMonitor;
use crate::scheduler::{Scheduler, SchedulerConfig, SchedulerLock};

use super::action::{Action, QuitHow};
use super::data::DataSource;
use super::keymap::Keymap;
use super::state::{AppState, Mode};
use super::theme::{ColorSupport, Theme};
use super::update::{key_action, update, Effect};
use super::view::{self, Images, ViewCtx};

/// `<config>/studio.toml`: `theme = "catppuccin-mocha"`, `mouse = true`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudioConfig {
    pub theme: Option<String>,
    pub mouse: Option<bool>,
}

impl StudioConfig {
    pub fn load(config_dir: &Path) -> Result<StudioConfig, String> {
        let path = config_dir.join("studio.toml");
        match std::fs::read_to_string(&path) {
            Ok(t) => toml::from_str(&t).map_err(|e| {
                format!(
                    "{}: {}; valid keys: theme = \"NAME\", mouse = true|false",
                    path.display(),
                    e.message()
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(StudioConfig::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

/// Options from the command line (they win over `studio.toml`).
#[derive(Clone, Debug, Default)]
pub struct StudioOptions {
    pub theme: Option<String>,
    pub mouse: Option<bool>,
}

/// Everything the event loop works with.
pub struct Studio {
    pub state: AppState,
    pub data: DataSource,
    pub keymap: Keymap,
    pub theme: Theme,
    pub images: Images,
    pub gpus: GpuMonitor,
    /// Mouse capture and similar escape sequences go to the real terminal.
    pub real_terminal: bool,
}

impl Studio {
    /// Loads the configuration; errors name the file and what to write instead.
    pub fn new(
        dirs: &Dirs,
        opts: &StudioOptions,
        mode: Mode,
        images: Images,
        now_ms: i64,
    ) -> Result<Studio, String> {
        let cfg = StudioConfig::load(&dirs.config)?;
        let keymap = Keymap::load(Some(&dirs.config)).map_err(|e| e.to_string())?;
        let theme_name = opts
            .theme
            .clone()
            .or(cfg.theme)
            .unwrap_or_else(|| "dark".into());
        let theme = Theme::load(&theme_name, Some(&dirs.config), ColorSupport::from_env())
            .map_err(|e| e.to_string())?;
        let channels = ChannelSet::load(Some(&dirs.config)).map_err(|e| e.to_string())?;
        let names = channels.names();
        let registry = crate::hub::Registry::load(Some(&dirs.config)).map_err(|e| e.to_string())?;
        let data = DataSource::open(dirs, channels, registry).map_err(|e| e.to_string())?;
        let gpus = GpuMonitor::from_env();
        let mut state = AppState::new(mode, names, now_ms);
        state.mouse = opts.mouse.or(cfg.mouse).unwrap_or(false);
        if gpus.is_cpu_only() {
            state.gpu.cpu_only = Some(gpus.describe());
        }
        Ok(Studio {
            state,
            data,
            keymap,
            theme,
            images,
            gpus,
            real_terminal: false,
        })
    }

    fn translate(&self, ev: Event) -> Vec<Action> {
        match ev {
            Event::Key(k) => key_action(&self.state, &self.keymap, &k)
                .into_iter()
                .collect(),
            Event::Mouse(m) if self.state.mouse => match m.kind {
                MouseEventKind::ScrollDown => vec![Action::Scroll(1)],
                MouseEventKind::ScrollUp => vec![Action::Scroll(-1)],
                MouseEventKind::Down(MouseButton::Left) => vec![Action::Click {
                    column: m.column,
                    row: m.row,
                }],
                _ => vec![],
            },
            Event::Resize(w, h) => vec![Action::Resize(w, h)],
            Event::Paste(text) => text
                .chars()
                .filter(|c| !c.is_control())
                .map(Action::Char)
                .collect(),
            Event::FocusGained => vec![Action::Resize(self.state.size.0, self.state.size.1)],
            _ => vec![],
        }
    }

    /// Runs an action and everything it leads to.
    pub fn dispatch(&mut self, action: Action) {
        let mut pending = vec![action];
        while let Some(a) = pending.pop() {
            for fx in update(&mut self.state, a) {
                match fx {
                    Effect::SetMouse(on) => {
                        if self.real_terminal {
                            let mut out = io::stdout();
                            let _ = if on {
                                execute!(out, crossterm::event::EnableMouseCapture)
                            } else {
                                execute!(out, crossterm::event::DisableMouseCapture)
                            };
                        }
                    }
                    Effect::Quit(_) => {}
                    Effect::LoadPreview(id) => {
                        self.images.clear();
                        pending.extend(self.data.perform(Effect::LoadPreview(id)));
                    }
                    other => pending.extend(self.data.perform(other)),
                }
            }
        }
    }

    /// The event loop: returns when the user quits, `stop` is cancelled, or the terminal goes
    /// away (then `state.detached` is set).
    pub async fn run_loop<B, S>(
        &mut self,
        term: &mut Terminal<B>,
        mut events: S,
        stop: CancellationToken,
    ) -> io::Result<()>
    where
        B: Backend,
        B::Error: Into<io::Error>,
        S: Stream<Item = io::Result<Event>> + Unpin,
    {
        use tokio::time::{interval, MissedTickBehavior};
        let area = term.get_frame().area();
        self.dispatch(Action::Resize(area.width, area.height));
        for a in self.data.poll().map_err(io::Error::other)? {
            self.dispatch(a);
        }
        let mut poll = interval(Duration::from_millis(250));
        let mut gpu = interval(Duration::from_secs(1));
        let mut clock = interval(Duration::from_secs(1));
        for i in [&mut poll, &mut gpu, &mut clock] {
            i.set_missed_tick_behavior(MissedTickBehavior::Skip);
        }
        let has_gpus = !self.gpus.is_cpu_only();
        let mut hangup = signal(tokio::signal::unix::SignalKind::hangup());
        let mut term_sig = signal(tokio::signal::unix::SignalKind::terminate());
        let mut int_sig = signal(tokio::signal::unix::SignalKind::interrupt());
        let mut poll_errors = 0u32;
        loop {
            if self.state.dirty && !self.state.detached {
                term.draw(|f| {
                    let mut ctx = ViewCtx {
                        theme: &self.theme,
                        keymap: &self.keymap,
                        images: &mut self.images,
                    };
                    view::draw(f, &self.state, &mut ctx);
                })
                .map_err(Into::into)?;
                self.state.dirty = false;
            }
            if self.state.quit.is_some() || self.state.detached {
                return Ok(());
            }
            tokio::select! {
                ev = events.next() => match ev {
                    Some(Ok(ev)) => {
                        for a in self.translate(ev) {
                            self.dispatch(a);
                        }
                    }
                    // The terminal is gone (SSH dropped without tmux).
                    Some(Err(_)) | None => self.dispatch(Action::Detached),
                },
                _ = poll.tick() => match self.data.poll() {
                    Ok(actions) => {
                        poll_errors = 0;
                        for a in actions {
                            self.dispatch(a);
                        }
                    }
                    Err(e) => {
                        // A busy database is retried on the next tick; say so once.
                        poll_errors += 1;
                        if poll_errors == 4 {
                            self.dispatch(Action::Done(Err(format!("store: {e}"))));
                        }
                    }
                },
                _ = gpu.tick(), if has_gpus => {
                    let now = now_ms();
                    self.dispatch(Action::Gpu(self.gpus.sample(), now));
                }
                _ = clock.tick() => self.dispatch(Action::Tick(now_ms())),
                _ = recv(&mut hangup) => self.dispatch(Action::Detached),
                _ = recv(&mut term_sig) => {
                    self.state.quit = Some(QuitHow::Stop);
                }
                _ = recv(&mut int_sig) => {
                    self.state.quit = Some(QuitHow::Stop);
                }
                _ = stop.cancelled() => return Ok(()),
            }
        }
    }
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).ok()
}

async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Puts the terminal back: cooked mode, main screen, cursor, no mouse reporting. Safe to call
/// more than once and from a panic hook.
pub fn restore_terminal() {
    let _ = terminal::disable_raw_mode();
    let mut out = io::stdout();
    let _ = execute!(
        out,
        crossterm::event::DisableMouseCapture,
        crossterm::event::DisableBracketedPaste,
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
    let _ = out.flush();
}

/// Raw mode and the alternate screen for as long as it lives.
struct TerminalGuard;

impl TerminalGuard {
    fn enter(mouse: bool) -> io::Result<TerminalGuard> {
        terminal::enable_raw_mode()?;
        let guard = TerminalGuard;
        let mut out = io::stdout();
        execute!(
            out,
            terminal::EnterAlternateScreen,
            crossterm::event::EnableBracketedPaste,
            cursor::Hide
        )?;
        if mouse {
            execute!(out, crossterm::event::EnableMouseCapture)?;
        }
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Starts `reelsmith run --wait-lock` in its own session (it survives this terminal), logging
/// to `<data>/logs/headless.log`. It takes the queue over when this studio lets go of the lock.
fn spawn_headless(dirs: &Dirs) -> io::Result<(u32, PathBuf)> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(dirs.logs())?;
    let log = dirs.logs().join("headless.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("--data-dir")
        .arg(&dirs.data)
        .args(["run", "--wait-lock"])
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    // SAFETY: setsid is async-signal-safe; it only detaches the child from our terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    Ok((child.id(), log))
}

/// Restores the terminal before a panic message is logged, so a crash never leaves the
/// user's shell in raw mode.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Stage panics are caught and reported as failures; only a panic on the UI thread
        // takes the studio down. Restoring twice is harmless.
        if std::thread::current().name() == Some("main") {
            restore_terminal();
        }
        previous(info);
    }));
}

/// Reads `studio.toml`, `keymap.toml` and the theme without touching anything.
fn check_config(dirs: &Dirs, opts: &StudioOptions) -> Result<(), String> {
    let cfg = StudioConfig::load(&dirs.config)?;
    Keymap::load(Some(&dirs.config)).map_err(|e| e.to_string())?;
    let name = opts
        .theme
        .clone()
        .or(cfg.theme)
        .unwrap_or_else(|| "dark".into());
    Theme::load(&name, Some(&dirs.config), ColorSupport::from_env()).map_err(|e| e.to_string())?;
    crate::hub::Registry::load(Some(&dirs.config)).map_err(|e| e.to_string())?;
    Ok(())
}

/// `reelsmith` with no arguments: the studio. Returns the exit code.
pub fn run(dirs: &Dirs, opts: StudioOptions) -> i32 {
    use std::io::IsTerminal;
    // Configuration mistakes first: they are what the user can fix right now.
    if let Err(e) = check_config(dirs, &opts) {
        eprintln!("error: {e}");
        return 2;
    }
    if !io::stdout().is_terminal() || !io::stdin().is_terminal() {
        eprintln!(
            "error: the studio needs a terminal; for scripts and services use `reelsmith run` \
             (headless) and `reelsmith status`"
        );
        return 2;
    }
    if let Err(e) = std::fs::create_dir_all(&dirs.data) {
        eprintln!("error: {}: {e}", dirs.data.display());
        return 1;
    }
    let (lock, mode) = match SchedulerLock::acquire(&dirs.data) {
        Ok(l) => (Some(l), Mode::Owner),
        Err(crate::scheduler::LockError::Held { .. }) => (
            None,
            Mode::Monitor {
                pid: SchedulerLock::holder_pid(&dirs.data),
            },
        ),
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let rt = match crate::rt::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = rt.block_on(studio(dirs, opts, mode));
    drop(lock);
    code
}

async fn studio(dirs: &Dirs, opts: StudioOptions, mode: Mode) -> i32 {
    let shutdown = CancellationToken::new();
    let drain = CancellationToken::new();
    // Configuration errors before the terminal is touched: they print like any CLI error.
    let mut studio = match Studio::new(dirs, &opts, mode.clone(), Images::halfblocks(), now_ms()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let scheduler = if mode == Mode::Owner {
        let log: Box<dyn FnMut(&str) + Send> = Box::new(|line| tracing::info!("{line}"));
        let workers = match crate::scheduler::worker::default_config(&dirs.data) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        let mut sched = match Scheduler::new(
            dirs.clone(),
            crate::stages::registry(),
            SchedulerConfig {
                workers: Some(workers),
                ..SchedulerConfig::default()
            },
            shutdown.clone(),
            log,
        ) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        sched.set_drain(drain.clone());
        Some(tokio::spawn(async move { sched.run().await }))
    } else {
        None
    };
    install_panic_hook();
    let guard = match TerminalGuard::enter(studio.state.mouse) {
        Ok(g) => g,
        Err(e) => {
            restore_terminal();
            eprintln!("error: cannot set up the terminal: {e}");
            shutdown.cancel();
            return 1;
        }
    };
    studio.images = Images::detect();
    studio.real_terminal = true;
    let result = match Terminal::new(CrosstermBackend::new(io::stdout())) {
        Ok(mut term) => {
            let events = crossterm::event::EventStream::new();
            studio
                .run_loop(&mut term, events, CancellationToken::new())
                .await
        }
        Err(e) => Err(e),
    };
    drop(guard);
    if let Err(e) = &result {
        eprintln!("error: the terminal failed: {e}");
        tracing::error!("terminal: {e}");
    }
    let Some(sched) = scheduler else {
        return i32::from(result.is_err());
    };
    let running = studio.state.running_jobs();
    if studio.state.detached {
        // No terminal any more: keep running the queue as `reelsmith run` would, until
        // SIGTERM.
        tracing::info!("terminal gone: the studio keeps running the queue headless");
        let s = shutdown.clone();
        tokio::spawn(async move {
            if let Some(mut t) = signal(tokio::signal::unix::SignalKind::terminate()) {
                t.recv().await;
            }
            s.cancel();
        });
    } else {
        match studio.state.quit.unwrap_or(QuitHow::Now) {
            QuitHow::Now => shutdown.cancel(),
            QuitHow::Stop => {
                if running > 0 {
                    eprintln!(
                        "stopping: {running} running job(s) checkpoint their stage and resume on \
                         the next start"
                    );
                }
                shutdown.cancel();
            }
            QuitHow::Headless => match spawn_headless(dirs) {
                Ok((pid, log)) => {
                    eprintln!(
                        "a headless scheduler (pid {pid}) takes the queue over; its log: {}\n\
                         waiting for the running stage(s) to finish — Ctrl-C checkpoints them now",
                        log.display()
                    );
                    drain.cancel();
                    crate::rt::cancel_on_signals(
                        shutdown.clone(),
                        "checkpointing the running stages; the headless scheduler resumes them",
                    );
                }
                Err(e) => {
                    eprintln!(
                        "error: cannot start a headless scheduler ({e}); stopping instead: \
                         running stages checkpoint and resume next time"
                    );
                    shutdown.cancel();
                }
            },
        }
    }
    let started = Instant::now();
    match sched.await {
        Ok(Ok(stats)) => {
            tracing::info!(
                "scheduler stopped after {:?}: {} done, {} failed",
                started.elapsed(),
                stats.jobs_done,
                stats.jobs_failed
            );
            i32::from(result.is_err())
        }
        Ok(Err(e)) => {
            eprintln!("error: scheduler: {e}");
            1
        }
        Err(e) => {
            eprintln!("error: scheduler: {e}");
            1
        }
    }
}
