//! `reelsmith render SCRIPT`: one job, run in the foreground with a line per stage.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::config::Dirs;
use crate::pipeline::job::{self, Progress, RenderRequest};
use crate::pipeline::runner::{NodeStatus, RunEvent};
use crate::pipeline::Quality;

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

impl Progress for TerminalProgress {
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

pub fn run(args: RenderArgs, dirs: &Dirs) -> i32 {
    let req = RenderRequest {
        script: args.script,
        channel: args.channel,
        languages: args.lang,
        out: args.out,
        quality: args.quality,
        seed: args.seed,
    };
    let job = match job::prepare(&req, dirs) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_code();
        }
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
    let cancel = CancellationToken::new();
    let outcome = rt.block_on(async {
        super::cancel_on_signals(
            cancel.clone(),
            "interrupted: stopping after the current frame; run again to resume",
        );
        job::execute(
            job,
            dirs,
            &req.out,
            parallelism,
            cancel,
            Box::new(TerminalProgress::new()),
        )
        .await
    });
    match outcome {
        Ok(o) => {
            for (lang, out) in &o.outputs {
                println!("{lang}: {}", out.final_mp4.display());
                println!("{lang}: {}", out.short_mp4.display());
                println!("{lang}: {}", out.captions_srt.display());
                println!("{lang}: {}", out.metadata_json.display());
                println!("{lang}: {}", out.thumbnail_png.display());
            }
            println!("report: {}", o.report.display());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
