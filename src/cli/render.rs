//! `reelsmith render SCRIPT`: one job, run in the foreground with a line per stage.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::config::Dirs;
use crate::pipeline::job::RenderRequest;
use crate::pipeline::runner::{NodeStatus, RunEvent};
use crate::pipeline::Quality;
use crate::scheduler::foreground::{self, Ended, Notice};

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The script: .yaml/.yml, .json, or plain text.
    pub script: PathBuf,
    /// Channel (for plain-text scripts, or to override the script's).
    #[arg(long)]
    pub channel: Option<String>,
    /// Output languages, comma separated (e.g. en,ja,es); default: the script's.
    #[arg(long, value_delimiter = ',')]
    pub lang: Option<Vec<String>>,
    /// Output directory; the video lands in OUT/<project>/<lang>/.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "draft")]
    pub quality: Quality,
    /// Seed for every random choice (art, music); same seed, same video.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stages run at once (default: the number of CPU cores).
    #[arg(long)]
    pub jobs: Option<usize>,
}

/// Progress as indicatif bars on a terminal, plain lines otherwise (logs, CI, pipes).
struct TerminalProgress {
    multi: Option<MultiProgress>,
    bars: BTreeMap<String, ProgressBar>,
}

impl TerminalProgress {
    fn new() -> Self {
        Self {
            multi: std::io::stderr().is_terminal().then(MultiProgress::new),
            bars: BTreeMap::new(),
        }
    }

    fn bar(&mut self, node: &str) -> Option<&ProgressBar> {
        let multi = self.multi.as_ref()?;
        if !self.bars.contains_key(node) {
            let style =
                ProgressStyle::with_template("{prefix:>16} {bar:30.cyan/blue} {percent:>3}% {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            let b = multi.add(
                ProgressBar::new(1000)
                    .with_style(style)
                    .with_prefix(node.to_string()),
            );
            self.bars.insert(node.to_string(), b);
        }
        self.bars.get(node)
    }
}

impl TerminalProgress {
    fn event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Planned { .. } => {}
            RunEvent::Started { node, engine } => match self.bar(node) {
                Some(b) => b.set_message(engine.clone()),
                None => eprintln!("{node:>16}  started ({engine})"),
            },
            RunEvent::Progress { node, fraction } => {
                if let Some(b) = self.bar(node) {
                    b.set_position((*fraction * 1000.0) as u64);
                }
            }
            RunEvent::Finished(r) => {
                let what = match r.status {
                    NodeStatus::Done => format!("done in {:.1} s", r.seconds),
                    NodeStatus::Cached => "cached".to_string(),
                    NodeStatus::Failed => {
                        format!("FAILED: {}", r.error.clone().unwrap_or_default())
                    }
                    NodeStatus::Cancelled => "cancelled".into(),
                    NodeStatus::Skipped => "skipped".into(),
                };
                let items = if r.items.hits + r.items.made > 0 {
                    format!(" [{} made, {} reused]", r.items.made, r.items.hits)
                } else {
                    String::new()
                };
                match self.bar(&r.node) {
                    Some(b) => {
                        b.set_position(1000);
                        b.finish_with_message(format!("{what}{items}"));
                    }
                    None => eprintln!("{:>16}  {what}{items}", r.node),
                }
                for n in &r.notes {
                    eprintln!("{:>16}  note: {n}", r.node);
                }
            }
        }
    }
}

/// Renders one script in the foreground: the job goes through the scheduler like any queued job
/// (admission, store bookkeeping, crash recovery, export), shown as it runs.
/// Uploads, in the foreground, the publications the finished job's `publish:` block queued
/// (the scheduler's publication thread is not run by a foreground render, which ends with its
/// job). A failed upload stays in the store (`reelsmith publish --list`, `--retry`); the
/// render itself succeeded, so only a failed upload makes the exit code non-zero.
fn publish_job(dirs: &Dirs, job: crate::store::JobId, asks: bool) -> i32 {
    if !asks {
        return 0;
    }
    let store = match crate::store::Store::open(&dirs.db_path()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: publishing: {e}");
            return 1;
        }
    };
    let rows = match store.publications() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: publishing: {e}");
            return 1;
        }
    };
    let mine: Vec<_> = rows.iter().filter(|r| r.job_id == Some(job)).collect();
    if mine.is_empty() {
        // The script asks to publish and nothing was queued: the job's log says why.
        let why = store
            .events(job, 0, 100_000)
            .unwrap_or_default()
            .into_iter()
            .rev()
            .find(|e| e.message.starts_with("publishing not queued"))
            .map(|e| e.message)
            .unwrap_or_else(|| "publishing not queued".into());
        eprintln!(
            "error: {why}; the render is done: `reelsmith publish {job} --to …` publishes it"
        );
        return 1;
    }
    let ids: Vec<i64> = mine
        .iter()
        .filter(|r| r.status.is_active())
        .map(|r| r.id)
        .collect();
    if ids.is_empty() {
        return 0;
    }
    println!("publishing {} upload(s) the script asks for", ids.len());
    super::Fail::exit_code(super::publish::run_ids(&store, dirs, &ids))
}

pub fn run(args: RenderArgs, dirs: &Dirs) -> i32 {
    let req = RenderRequest {
        script: args.script,
        channel: args.channel,
        languages: args.lang,
        out: args.out,
        quality: args.quality,
        seed: args.seed,
    };
    let parallelism = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let shutdown = CancellationToken::new();
    let following = std::cell::Cell::new(false);
    let outcome = rt.block_on(async {
        super::cancel_on_signals(
            shutdown.clone(),
            "interrupted: stopping after the current frame; run the same command again to resume",
        );
        let mut display = TerminalProgress::new();
        foreground::run(
            dirs,
            &req,
            parallelism,
            shutdown.clone(),
            move |ev| display.event(ev),
            |notice| match notice {
                Notice::Adopted(id) => {
                    eprintln!("resuming job {id} (left unfinished by an earlier run)")
                }
                Notice::Following { job, pid } => {
                    following.set(true);
                    eprintln!(
                        "a scheduler{} is running on this data dir: queued as job {job} there; \
                         following it (Ctrl-C stops following, the job stays queued)",
                        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                    )
                }
            },
        )
        .await
    });
    match outcome {
        Ok(fg) => match fg.ended {
            Ended::Done { project_dir, .. } => {
                for lang in &fg.spec.languages {
                    let dir = project_dir.join(lang);
                    for name in [
                        "final.mp4",
                        "short.mp4",
                        "captions.srt",
                        "metadata.json",
                        "thumbnail.png",
                    ] {
                        println!("{lang}: {}", dir.join(name).display());
                    }
                }
                println!("report: {}", project_dir.join("report.json").display());
                if following.get() {
                    // The running scheduler uploads what the script's publish: block queued.
                    return 0;
                }
                publish_job(dirs, fg.job, fg.spec.script.publish.is_some())
            }
            Ended::Interrupted => {
                eprintln!(
                    "job {} stays queued with its finished stages; run the same command again to \
                     resume it (or `reelsmith run`; `reelsmith cancel {}` drops it)",
                    fg.job, fg.job
                );
                1
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
