//! `reelsmith highlights RECORDING…|DIR`: a compilation and shorts from gameplay recordings.
//!
//! The recordings are checked (a file that is not a video, has no frames or cannot be decoded
//! exits 2 naming it, before anything is written), analysed (cached per recording content in
//! `<data>/analysis`, resumed chunk by chunk after a kill) and the highlights chosen. With
//! `--dry-run` the shots and highlights are printed (`--json` for machines) and nothing is
//! written. Otherwise a project is written beside the recordings — `<name>.highlights.yaml` (a
//! gaming script naming them) and `<name>.selection.json` (the highlights, to edit and render
//! again) — and rendered like `reelsmith render` does.

use std::path::{Path, PathBuf};

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::Fail;
use crate::config::channel::ChannelSet;
use crate::config::Dirs;
use crate::highlights::analyze::{
    check_recording, Analysis, AnalysisError, DetectorChoice, Progress,
};
use crate::highlights::select::Selection;
use crate::media::vertical::{Layout, Rect};
use crate::pipeline::Quality;
use crate::script::{is_recording_name, HighlightsSpec};
use crate::stages::analyze::{analyse_all, analysis_root, settings_from, summary};

#[derive(Args, Debug)]
pub struct HighlightsArgs {
    /// Recordings (mp4, mkv, mov, flv, webm, …) or folders of them.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Highlights in the compilation (default: the channel's, 5).
    #[arg(long)]
    pub count: Option<usize>,
    /// Target seconds per highlight (default: the channel's, 12).
    #[arg(long)]
    pub length: Option<f64>,
    /// Vertical shorts from the best highlights (default: the channel's, 3).
    #[arg(long)]
    pub shorts: Option<usize>,
    /// Output languages, comma separated (default: en).
    #[arg(long, value_delimiter = ',')]
    pub lang: Option<Vec<String>>,
    /// Output directory; the videos land in OUT/<name>/<lang>/.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// The channel (its `[highlights]` table and look).
    #[arg(long, default_value = "gaming")]
    pub channel: String,
    /// Cut detector: adaptive (default) or content.
    #[arg(long, value_enum)]
    pub detector: Option<DetectorChoice>,
    /// Shorts layout: blurred-fill, crop, follow (a crop that follows the action) or stack
    /// (the --facecam rectangle over the gameplay).
    #[arg(long)]
    pub layout: Option<String>,
    /// The facecam rectangle X,Y,W,H (fractions ≤ 1 of the frame, or pixels).
    #[arg(long)]
    pub facecam: Option<String>,
    /// A region of interest X,Y,W,H where motion is measured (e.g. the arena, a HUD corner).
    #[arg(long)]
    pub region: Option<String>,
    /// Print the shots and the chosen highlights with their scores; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Project name (default: from the first recording or folder).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, value_enum, default_value = "draft")]
    pub quality: Quality,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(args: HighlightsArgs, dirs: &Dirs) -> i32 {
    match highlights(&args, dirs) {
        Ok(code) => code,
        Err(e) => Fail::exit_code(Err(e)),
    }
}

/// `X,Y,W,H` as a rectangle.
fn parse_rect(flag: &str, s: &str) -> Result<Rect, String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{flag} {s}: give X,Y,W,H as four numbers"))?;
    match v.as_slice() {
        [x, y, w, h] if v.iter().all(|n| n.is_finite() && *n >= 0.0) && *w > 0.0 && *h > 0.0 => {
            Ok(Rect {
                x: *x,
                y: *y,
                w: *w,
                h: *h,
            })
        }
        _ => Err(format!(
            "{flag} {s}: give X,Y,W,H as four numbers ≥ 0 with W and H > 0"
        )),
    }
}

/// The recordings the inputs name: files as given, folders' recordings in name order.
fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: cannot list ({e})", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && is_recording_name(f))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(format!(
                    "{}: the folder holds no recordings ({})",
                    p.display(),
                    crate::script::RECORDING_EXTENSIONS.join(", ")
                ));
            }
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    let mut canon = Vec::new();
    for p in out {
        let c = p
            .canonicalize()
            .map_err(|e| format!("{}: {e}", p.display()))?;
        if !canon.contains(&c) {
            canon.push(c);
        }
    }
    Ok(canon)
}

fn mmss(t: f64) -> String {
    let t = t.max(0.0);
    let cs = (t * 100.0).round() as u64;
    let (s, c) = (cs / 100, cs % 100);
    if s >= 3600 {
        format!("{}:{:02}:{:02}.{c:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}.{c:02}", s / 60, s % 60)
    }
}

/// The shots of an analysed recording: `(first frame, end frame, start s, end s)`, from its cuts
/// (for a two-pass analysis, the shots between cuts found in the decoded windows).
fn shots(a: &Analysis) -> Vec<(u64, u64, f64, f64)> {
    let fps = a.info.fps.max(1.0);
    let mut b = vec![0u64];
    b.extend(a.cuts());
    b.push(a.info.frames.max(b.last().copied().unwrap_or(0) + 1));
    b.windows(2)
        .map(|w| (w[0], w[1], w[0] as f64 / fps, w[1] as f64 / fps))
        .collect()
}

fn print_table(analyses: &[Analysis], sel: &Selection, seconds: f64) {
    for (i, a) in analyses.iter().enumerate() {
        let info = &a.info;
        println!(
            "recording {}: {}  {}×{} {:.2} fps {}, {}, {}",
            i + 1,
            a.path.display(),
            info.width,
            info.height,
            info.fps,
            info.codec,
            mmss(info.duration),
            match &info.audio {
                Some(au) => format!("audio {} {} Hz", au.codec, au.rate),
                None => "no audio".into(),
            }
        );
        println!(
            "  {} — {} of {} decoded frame by frame",
            if a.full {
                "every frame decoded"
            } else {
                "two passes: keyframes and audio, then the candidate windows"
            },
            mmss(a.decoded_seconds),
            mmss(info.duration)
        );
        let sh = shots(a);
        println!(
            "  shots: {} ({} cuts)",
            sh.len(),
            sh.len().saturating_sub(1)
        );
        println!(
            "  {:>4}  {:>10}  {:>10}  {:>8}  frames",
            "#", "start", "end", "length"
        );
        for (k, (f0, f1, t0, t1)) in sh.iter().enumerate() {
            println!(
                "  {:>4}  {:>10}  {:>10}  {:>8.2}  {f0}–{}",
                k + 1,
                mmss(*t0),
                mmss(*t1),
                t1 - t0,
                f1.saturating_sub(1)
            );
        }
    }
    println!();
    println!("highlights ({}):", sel.highlights.len());
    println!(
        "  {:<4} {:>3}  {:>10}  {:>10}  {:>6}  {:>6}  title — reasons",
        "id", "rec", "start", "end", "length", "score"
    );
    for h in &sel.highlights {
        println!(
            "  {:<4} {:>3}  {:>10}  {:>10}  {:>6.2}  {:>6.3}  {} — {}",
            h.id,
            h.recording + 1,
            mmss(h.start),
            mmss(h.end),
            h.seconds(),
            h.score,
            h.title,
            h.reasons.join("; ")
        );
    }
    println!("shorts ({}):", sel.shorts.len());
    for s in &sel.shorts {
        println!(
            "  {:<4} {:>10}  {:>10}  {:>6.2} s",
            s.highlight,
            mmss(s.start),
            mmss(s.end),
            s.end - s.start
        );
    }
    eprintln!("analysed in {seconds:.1} s");
}

fn json_report(analyses: &[Analysis], sel: &Selection) -> serde_json::Value {
    let recs: Vec<serde_json::Value> = analyses
        .iter()
        .map(|a| {
            let mut v = summary(a);
            v["shots"] = serde_json::json!(shots(a)
                .iter()
                .map(|(f0, f1, t0, t1)| serde_json::json!({
                    "start_frame": f0, "end_frame": f1, "start": t0, "end": t1
                }))
                .collect::<Vec<_>>());
            v["decoded"] = serde_json::json!(a
                .spans
                .iter()
                .map(|s| [s.start, s.end.min(a.info.duration)])
                .collect::<Vec<_>>());
            v
        })
        .collect();
    serde_json::json!({ "recordings": recs, "selection": sel })
}

/// The directory every recording lies under (the project directory of the script).
fn common_dir(paths: &[PathBuf]) -> PathBuf {
    let mut dir = paths
        .first()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    while !paths.iter().all(|p| p.starts_with(&dir)) {
        match dir.parent() {
            Some(p) => dir = p.to_path_buf(),
            None => break,
        }
    }
    dir
}

/// Writes `text` to `path` through a temp file and a rename.
fn write_new(path: &Path, text: &str) -> Result<(), Fail> {
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Fail::Failed(format!("{}: {e}", path.display())))
}

/// Returns the exit code of the render (0 after a dry run).
fn highlights(args: &HighlightsArgs, dirs: &Dirs) -> Result<i32, Fail> {
    if args.json && !args.dry_run {
        return Err(Fail::Input("--json goes with --dry-run".into()));
    }
    let recordings = expand(&args.inputs)?;
    let infos = recordings
        .iter()
        .map(|p| check_recording(p).map_err(|e| Fail::Input(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let channels = ChannelSet::load(Some(&dirs.config)).map_err(|e| Fail::Input(e.to_string()))?;
    let channel = channels
        .get(&args.channel)
        .map_err(|e| Fail::Input(e.to_string()))?
        .clone();
    let langs = args.lang.clone().unwrap_or_else(|| vec!["en".into()]);
    for l in &langs {
        if !crate::script::LANGUAGES.contains(&l.as_str()) {
            return Err(Fail::Input(format!(
                "--lang {l}: unknown language; use one of: {}",
                crate::script::LANGUAGES.join(", ")
            )));
        }
    }
    if args.count == Some(0) || args.count.is_some_and(|c| c > 50) {
        return Err(Fail::Input("--count: give 1 to 50 highlights".into()));
    }
    if args.shorts.is_some_and(|c| c > 20) {
        return Err(Fail::Input("--shorts: give 0 to 20 shorts".into()));
    }
    if args.length.is_some_and(|l| !(2.0..=120.0).contains(&l)) {
        return Err(Fail::Input(
            "--length: a highlight lasts 2 to 120 seconds".into(),
        ));
    }
    let facecam = args
        .facecam
        .as_deref()
        .map(|s| parse_rect("--facecam", s))
        .transpose()?;
    let region = args
        .region
        .as_deref()
        .map(|s| parse_rect("--region", s))
        .transpose()?;
    let layout = match args.layout.as_deref() {
        None => None,
        Some("blurred-fill" | "blurred_fill") => Some(Layout::BlurredFill),
        Some("crop") => Some(Layout::Crop { follow: false }),
        Some("follow") => Some(Layout::Crop { follow: true }),
        Some("stack") => match facecam {
            Some(f) => Some(Layout::Stack {
                facecam: f,
                gameplay: None,
                facecam_share: 0.35,
            }),
            None => {
                return Err(Fail::Input(
                    "--layout stack needs --facecam X,Y,W,H (where the camera is)".into(),
                ))
            }
        },
        Some(o) => {
            return Err(Fail::Input(format!(
                "--layout {o}: use blurred-fill, crop, follow or stack"
            )))
        }
    };
    let spec = HighlightsSpec {
        count: args.count,
        length: args.length,
        shorts: args.shorts,
        layout,
        facecam,
        region,
        detector: args.detector,
        selection: None,
        commentary: None,
    };
    let hs = settings_from(&channel.highlights, &spec, 60.0);
    // Layout rectangles must fit every recording.
    for (p, info) in recordings.iter().zip(&infos) {
        crate::media::vertical::VerticalComposer::new(
            &hs.layout,
            info.width,
            info.height,
            1080,
            1920,
        )
        .map_err(|e| Fail::Input(format!("{}: shorts layout: {e}", p.display())))?;
    }

    // Analysis, with progress on stderr and Ctrl-C between chunks.
    let rt = super::runtime().map_err(|_| Fail::Failed("cannot start the runtime".into()))?;
    let cancel = CancellationToken::new();
    {
        let _guard = rt.enter();
        super::cancel_on_signals(
            cancel.clone(),
            "interrupted: stopping; finished chunks are kept and the next run resumes from them",
        );
    }
    let started = std::time::Instant::now();
    let last = std::sync::Mutex::new(-1i32);
    let report = |f: f32, what: &str| {
        let pct = (f * 100.0) as i32;
        if let Ok(mut l) = last.lock() {
            if pct != *l && pct % 5 == 0 {
                *l = pct;
                eprintln!("analysing: {pct:>3}% {what}");
            }
        }
    };
    let cancelled = || cancel.is_cancelled();
    let reused = std::sync::atomic::AtomicUsize::new(0);
    let resumed = |what: &str| {
        reused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!("analysis: reused {what}");
    };
    let progress = Progress {
        report: &report,
        cancelled: &cancelled,
        resumed: &resumed,
    };
    let root = analysis_root(&dirs.data.join("checkpoints"));
    let (analyses, selection) =
        analyse_all(&recordings, &root, &hs, &progress).map_err(|e| match e {
            AnalysisError::Cancelled => Fail::Cancelled,
            e if e.is_input() => Fail::Input(e.to_string()),
            e => Fail::Failed(e.to_string()),
        })?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "analysis: resumed {} finished chunk(s)",
        reused.load(std::sync::atomic::Ordering::Relaxed)
    );
    if args.dry_run {
        if args.json {
            let text = serde_json::to_string_pretty(&json_report(&analyses, &selection))
                .map_err(|e| Fail::Failed(e.to_string()))?;
            println!("{text}");
        } else {
            print_table(&analyses, &selection, seconds);
        }
        return Ok(0);
    }
    if selection.highlights.is_empty() {
        return Err(Fail::Input(
            "no highlight was found in the recordings (all silent, black or still?)".into(),
        ));
    }

    // The project: a script beside the recordings and the selection it renders from.
    let dir = common_dir(&recordings);
    let name = match &args.name {
        Some(n) => crate::pipeline::job::slug(n),
        None => {
            let first = args.inputs.first().cloned().unwrap_or_default();
            let stem = first
                .canonicalize()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "recording".into());
            crate::pipeline::job::slug(&stem)
        }
    };
    let script_path = dir.join(format!("{name}.highlights.yaml"));
    let sel_path = dir.join(format!("{name}.selection.json"));
    if !crate::highlights::project::may_write(&script_path) {
        return Err(Fail::Input(format!(
            "{}: exists and was not written by `reelsmith highlights`; pass --name to pick another name",
            script_path.display()
        )));
    }
    // With an LLM set up, the render's analyze stage ranks and titles the highlights (the
    // analysis is cached: it is not done twice); its selection lands in the output folder.
    // Without one, the render takes exactly the selection made here.
    let llm = crate::engines::models::StageModels::resolve(dirs)
        .ok()
        .and_then(|m| m.llm);
    let spec = if llm.is_some() {
        eprintln!("an LLM is set up: the render ranks the highlights and writes their titles");
        spec
    } else {
        let sel_text =
            serde_json::to_string_pretty(&selection).map_err(|e| Fail::Failed(e.to_string()))?;
        write_new(&sel_path, &(sel_text + "\n"))?;
        eprintln!(
            "highlights: {} (edit, then render the script again)",
            sel_path.display()
        );
        HighlightsSpec {
            selection: Some(PathBuf::from(sel_path.file_name().unwrap_or_default())),
            ..spec
        }
    };
    crate::highlights::project::write_script(
        &script_path,
        &recordings,
        &name,
        &langs,
        &args.channel,
        spec,
    )
    .map_err(Fail::Failed)?;
    eprintln!("project: {}", script_path.display());
    Ok(super::render::run(
        super::render::RenderArgs {
            script: script_path,
            channel: None,
            lang: None,
            out: args.out.clone(),
            quality: args.quality,
            seed: args.seed,
            jobs: None,
        },
        dirs,
    ))
}
