//! The command line: one file per subcommand.

pub mod accounts;
pub mod bench;
pub mod bench_models;
pub mod bench_video;
pub mod chat;
pub mod consent;
pub mod doctor;
pub mod highlights;
pub mod image;
pub mod interpolate;
pub mod models;
pub mod publish;
pub mod queue;
pub mod render;
pub mod say;
pub mod transcribe;
pub mod upscale;
pub mod video;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Dirs;
pub(crate) use crate::rt::{cancel_on_signals, runtime};

#[derive(Parser, Debug)]
#[command(
    name = "reelsmith",
    version,
    about = "Turn scripts into finished videos on local GPUs"
)]
pub struct Cli {
    /// Where reelsmith keeps its database, artifacts and logs.
    #[arg(long, global = true, env = "REELSMITH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Nothing: open the studio (the TUI).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the studio: projects, queue, models, GPUs and previews in one terminal UI
    /// (what `reelsmith` with no command does).
    Studio(StudioArgs),
    /// Render a script into a finished video, short, captions, metadata and thumbnail.
    Render(render::RenderArgs),
    /// Check this machine: libraries, encoders, voices, fonts, GPUs, data dir, engines.
    Doctor,
    /// Measure performance against a baseline run in the same process.
    Bench(bench::BenchArgs),
    /// Queue a script (or a directory of scripts) for the scheduler.
    Add(queue::AddArgs),
    /// Run the queue (headless; one line per event; Ctrl-C or SIGTERM stops gracefully).
    Run(queue::RunArgs),
    /// Show the queue.
    Status(queue::StatusArgs),
    /// Cancel a job (the running stage stops within a second).
    Cancel(queue::JobArg),
    /// Queue a failed or cancelled job again; finished stages are reused.
    Retry(queue::JobArg),
    /// Pause a job: running stages finish, no new ones start.
    Pause(queue::JobArg),
    /// Resume a paused job.
    Resume(queue::JobArg),
    /// Pause or resume the whole queue.
    #[command(subcommand)]
    Queue(queue::QueueCmd),
    /// Change a job's priority (higher runs first).
    Priority(queue::PriorityArgs),
    /// Print a job's log (-f to follow it).
    Logs(queue::LogsArgs),
    /// The model registry and the local model cache: list, recommend, pull, verify, rm, import.
    Models(models::ModelsArgs),
    /// Transcribe speech with Whisper (prints the text; --srt/--vtt write captions).
    Transcribe(transcribe::TranscribeArgs),
    /// Speak text with a Piper voice (VITS on candle) into a WAV file, for trying voices.
    Say(say::SayArgs),
    /// Draw a picture with an installed image model (Stable Diffusion, SDXL, FLUX on candle):
    /// text-to-image, --init image-to-image, --mask inpainting, LoRAs.
    Image(image::ImageArgs),
    /// Generate a clip with an installed video model (LTX-Video, Wan2.1 on candle): from text, from a
    /// first picture (--image), between two pictures (--end), or held to pictures at frames.
    Video(video::VideoArgs),
    /// Make a picture or a video larger (Lanczos built in, upscaling models when installed);
    /// a video keeps its frames, timing and audio.
    Upscale(upscale::UpscaleArgs),
    /// Raise a video's frame rate with in-between frames (motion-compensated minterpolate built
    /// in, interpolation models when installed); never across a cut; audio and duration kept.
    Interpolate(interpolate::InterpolateArgs),
    /// A compilation and vertical shorts from gameplay recordings: shots, loud and busy moments,
    /// commentary; --dry-run prints the shots and the chosen highlights.
    Highlights(highlights::HighlightsArgs),
    /// Talk to an installed LLM (general, planner, scripter or editor mode); streams to stdout.
    Chat(chat::ChatArgs),
    /// Consent records of real people shown in videos (publishing refuses a video showing a
    /// real person without one): add, list, rm.
    Consent(consent::ConsentArgs),
    /// The platform accounts publishing uses: add (device flow or loopback redirect over
    /// `ssh -L`), list, rm; tokens kept in owner-only files, never printed.
    Accounts(accounts::AccountsArgs),
    /// Upload a finished render to YouTube (video, Short), TikTok and Instagram Reels (the
    /// vertical short): queued in the store, resumable after any interruption.
    Publish(publish::PublishArgs),
    /// A stage worker (started and fed by the scheduler over stdin/stdout; not for people).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// Which stage implementations to run: default, or noop (benchmarks).
    #[arg(long, default_value = "default")]
    pub stages: String,
    /// The GPU this worker serves (none: a CPU worker).
    #[arg(long)]
    pub device: Option<u32>,
}

#[derive(clap::Args, Debug, Default)]
pub struct StudioArgs {
    /// Colour theme: dark, light, high-contrast, catppuccin-mocha, gruvbox-dark, or one in
    /// <config>/themes/ (default: `theme` in <config>/studio.toml, else dark).
    #[arg(long)]
    pub theme: Option<String>,
    /// Report mouse clicks and the wheel (hold Shift to select text); M toggles it.
    #[arg(long)]
    pub mouse: bool,
}

/// Why a model command (`image`, `video`) stopped, and its exit code.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Bad input: exit 2.
    Input(String),
    /// The model failed to load or run: exit 1.
    Failed(String),
    /// Ctrl-C / SIGTERM between steps: exit 130.
    Cancelled,
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Input(s)
    }
}

impl Fail {
    /// Prints the reason and returns the exit code of a command's result.
    pub(crate) fn exit_code(result: Result<(), Fail>) -> i32 {
        match result {
            Ok(()) => 0,
            Err(Fail::Input(e)) => {
                eprintln!("error: {e}");
                2
            }
            Err(Fail::Failed(e)) => {
                eprintln!("error: {e}");
                1
            }
            Err(Fail::Cancelled) => {
                eprintln!("cancelled: nothing written");
                130
            }
        }
    }
}

/// Sends `tracing` output to `<data>/logs/reelsmith.log` (never to the terminal).
fn init_logging(dirs: &Dirs) {
    let logs = dirs.logs();
    if std::fs::create_dir_all(&logs).is_err() {
        return;
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("reelsmith.log"))
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("REELSMITH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

/// Panics inside stages are caught and reported as that stage's failure; the hook only records
/// where they happened in the log instead of spilling a backtrace over the progress display.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("panic: {info}");
    }));
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let dirs = Dirs::resolve(cli.data_dir.as_deref());
    init_logging(&dirs);
    install_panic_hook();
    let Some(command) = cli.command else {
        return crate::tui::run(&dirs, crate::tui::StudioOptions::default());
    };
    match command {
        Command::Studio(a) => crate::tui::run(
            &dirs,
            crate::tui::StudioOptions {
                theme: a.theme,
                mouse: a.mouse.then_some(true),
            },
        ),
        Command::Render(args) => render::run(args, &dirs),
        Command::Doctor => doctor::run(&dirs),
        Command::Bench(args) => bench::run(args, &dirs),
        Command::Add(a) => queue::add(a, &dirs),
        Command::Run(a) => queue::run(a, &dirs),
        Command::Status(a) => queue::status(a, &dirs),
        Command::Cancel(a) => queue::cancel(a, &dirs),
        Command::Retry(a) => queue::retry(a, &dirs),
        Command::Pause(a) => queue::pause(a, &dirs),
        Command::Resume(a) => queue::resume(a, &dirs),
        Command::Queue(c) => queue::queue(c, &dirs),
        Command::Priority(a) => queue::priority(a, &dirs),
        Command::Logs(a) => queue::logs(a, &dirs),
        Command::Worker(a) => {
            let Some(stages) = crate::stages::registry_named(&a.stages) else {
                eprintln!(
                    "error: worker: unknown stage set `{}` (default, noop)",
                    a.stages
                );
                return 2;
            };
            crate::scheduler::worker::serve::serve(&dirs, stages)
        }
        Command::Models(a) => models::run(a, &dirs),
        Command::Transcribe(a) => transcribe::run(a, &dirs),
        Command::Chat(a) => chat::run(a, &dirs),
        Command::Consent(a) => consent::run(a, &dirs),
        Command::Accounts(a) => accounts::run(a, &dirs),
        Command::Publish(a) => publish::run(a, &dirs),
        Command::Say(a) => say::run(a, &dirs),
        Command::Image(a) => image::run(a, &dirs),
        Command::Video(a) => video::run(a, &dirs),
        Command::Upscale(a) => upscale::run(a, &dirs),
        Command::Highlights(a) => highlights::run(a, &dirs),
        Command::Interpolate(a) => interpolate::run(a, &dirs),
    }
}
