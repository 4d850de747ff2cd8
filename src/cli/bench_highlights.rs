//! `reelsmith bench highlights`: the analysis of a recording for highlights, as ratios measured
//! in this run — CPU seconds per second of recording (target ≤ 0.05×, an hour in ≤ 3
//! CPU-minutes) for the whole decode and for the two-pass path, and the speed of our cut
//! detection (every frame decoded) against PySceneDetect's AdaptiveDetector on the same file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::Args;

use crate::cli::Fail;
use crate::config::channel::HighlightDefaults;
use crate::config::Dirs;
use crate::highlights::analyze::{check_recording, Analysis, Progress};
use crate::highlights::synth::{self, AudioEvent, AudioSpec, Container, Segment, SynthSpec};
use crate::script::HighlightsSpec;
use crate::stages::analyze::{analyse_all, settings_from, HighlightSettings};

/// Target CPU seconds per second of recording.
const TARGET: f64 = 0.05;

#[derive(Args, Debug)]
pub struct HighlightsBenchArgs {
    /// Seconds of the generated 1080p60 recording (cached between runs under the data dir).
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Bench this recording instead of a generated one.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Ours only (no PySceneDetect).
    #[arg(long)]
    pub no_reference: bool,
}

pub fn run(work: &Path, dirs: &Dirs, args: HighlightsBenchArgs) -> i32 {
    Fail::exit_code(bench(work, dirs, &args))
}

/// A 1080p60 recording of `seconds`: shots of different test sources (static, busy, scrolling)
/// and 48 kHz stereo audio with loud moments; made once and kept under `<data>/bench/`.
fn generated(dirs: &Dirs, seconds: f64) -> Result<PathBuf, Fail> {
    let dir = dirs.data.join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| Fail::Failed(format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!(
        "highlights-1080p60-{}ms-v1.mp4",
        (seconds * 1000.0) as u64
    ));
    if path.is_file() && check_recording(&path).is_ok() {
        return Ok(path);
    }
    let sources = [
        "testsrc2",
        "color=c=0x203040",
        "mandelbrot",
        "smptebars",
        "testsrc2,hue=h=120",
        "rgbtestsrc",
        "color=c=0x402020",
        "smptehdbars",
    ];
    let n = ((seconds / 5.0).round() as usize).clamp(2, 1000);
    let each = seconds / n as f64;
    let segments = (0..n)
        .map(|i| {
            let mut s = Segment::cut(sources[i % sources.len()], each);
            if i % 3 == 2 {
                s.pan_px_per_frame = 8.0;
            }
            s
        })
        .collect();
    let events = (0..n)
        .step_by(3)
        .map(|i| AudioEvent {
            at: (i as f64 + 0.4) * each,
            seconds: (each * 0.3).min(2.0),
            gain_db: -4.0,
        })
        .collect();
    let spec = SynthSpec {
        width: 1920,
        height: 1080,
        fps: 60,
        segments,
        flashes: vec![],
        audio: Some(AudioSpec {
            rate: 48_000,
            channels: 2,
            base_db: -34.0,
            events,
        }),
        container: Container::Mp4,
        crf: 23,
        gop: 120,
    };
    let part = dir.join(format!("{}.part.mp4", std::process::id()));
    eprintln!(
        "bench highlights: writing a {seconds:.0} s 1080p60 recording to {} (once)",
        path.display()
    );
    let t = Instant::now();
    let written = synth::write(&part, &spec)
        .map_err(|e| e.to_string())
        .and_then(|_| std::fs::rename(&part, &path).map_err(|e| e.to_string()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        return Err(Fail::Failed(format!("{}: {e}", path.display())));
    }
    eprintln!("  written in {:.1} s", t.elapsed().as_secs_f64());
    Ok(path)
}

struct Run {
    cpu: f64,
    wall: f64,
    analysis: Analysis,
}

/// One analysis with a fresh cache: CPU seconds (this process, all threads) and wall seconds.
fn analyse_fresh(path: &Path, cache: &Path, hs: &HighlightSettings) -> Result<Run, Fail> {
    let _ = std::fs::remove_dir_all(cache);
    let c0 = crate::rt::cpu_seconds();
    let t0 = Instant::now();
    let (mut analyses, _) = analyse_all(&[path.to_path_buf()], cache, hs, &Progress::silent())
        .map_err(|e| Fail::Failed(format!("{}: {e}", path.display())))?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = crate::rt::cpu_seconds() - c0;
    let analysis = analyses
        .pop()
        .ok_or_else(|| Fail::Failed("the analysis returned nothing".into()))?;
    Ok(Run {
        cpu,
        wall,
        analysis,
    })
}

fn decoded_frames(a: &Analysis) -> usize {
    a.spans.iter().map(|s| s.frames.len()).sum()
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn bench(work: &Path, dirs: &Dirs, args: &HighlightsBenchArgs) -> Result<(), Fail> {
    let path = match &args.input {
        Some(p) => {
            check_recording(p).map_err(|e| Fail::Input(e.to_string()))?;
            p.clone()
        }
        None => {
            if !(args.seconds.is_finite() && (1.0..=7200.0).contains(&args.seconds)) {
                return Err(Fail::Input("--seconds: give 1 to 7200".into()));
            }
            generated(dirs, args.seconds)?
        }
    };
    let info = check_recording(&path).map_err(|e| Fail::Input(e.to_string()))?;
    let duration = info.duration.max(1e-3);
    let hs = settings_from(
        &HighlightDefaults::default(),
        &HighlightsSpec::default(),
        60.0,
    );
    let cache = work.join("analysis");

    // The path the recording takes by default (whole decode up to 600 s), then two passes.
    let default = analyse_fresh(&path, &cache, &hs)?;
    let mut two_pass_hs = hs.clone();
    two_pass_hs.analysis.full_decode_below = 0.0;
    let two = analyse_fresh(&path, &cache, &two_pass_hs)?;
    // Every frame decoded, whatever the length: what PySceneDetect does.
    let mut full_hs = hs.clone();
    full_hs.analysis.full_decode_below = f64::INFINITY;
    let full = if default.analysis.full {
        None
    } else {
        Some(analyse_fresh(&path, &cache, &full_hs)?)
    };
    let full = full.as_ref().unwrap_or(&default);

    println!(
        "bench highlights: {} — {}×{} {:.2} fps {}, {:.1} s, {}",
        path.display(),
        info.width,
        info.height,
        info.fps,
        info.codec,
        duration,
        match &info.audio {
            Some(a) => format!("audio {} {} Hz", a.codec, a.rate),
            None => "no audio".into(),
        }
    );
    let row = |label: &str, r: &Run| {
        let ratio = r.cpu / duration;
        println!(
            "  {label:<22} {:7.2} CPU-s, {:6.2} s wall, {:.1} s decoded frame by frame: \
             {ratio:.4}× CPU per recording second (target ≤ {TARGET}×: {}; an hour in {:.1} CPU-min)",
            r.cpu,
            r.wall,
            r.analysis.decoded_seconds + 0.0, // not -0.0 when nothing was decoded
            met(ratio <= TARGET),
            ratio * 60.0,
        );
    };
    row(
        if default.analysis.full {
            "whole decode (default)"
        } else {
            "two passes (default)"
        },
        &default,
    );
    if default.analysis.full {
        row("two passes (forced)", &two);
    } else {
        row("whole decode (forced)", full);
    }

    // Cut detection speed: our whole decode against PySceneDetect's adaptive detector.
    let ours_frames = decoded_frames(&full.analysis);
    let ours_fps = ours_frames as f64 / full.wall.max(1e-6);
    println!(
        "  cut detection, ours    {ours_frames} frames in {:.2} s wall (audio pass included): \
         {ours_fps:.1} frames/s, {} cuts",
        full.wall,
        full.analysis.cuts().len()
    );
    if args.no_reference {
        return Ok(());
    }
    let venv = std::env::var_os("REELSMITH_SCENEDETECT_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/reelsmith/scenedetect-venv"))
        });
    let python = venv.map(|v| v.join("bin/python"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/scenedetect_ref.py");
    let Some(python) = python.filter(|p| p.is_file()) else {
        println!(
            "  PySceneDetect          skipped: no venv (run `bash scripts/scenedetect-venv.sh`, \
             or set REELSMITH_SCENEDETECT_VENV)"
        );
        return Ok(());
    };
    if !script.is_file() {
        println!(
            "  PySceneDetect          skipped: {} is missing",
            script.display()
        );
        return Ok(());
    }
    let t0 = Instant::now();
    let out = Command::new(&python)
        .arg(&script)
        .arg(&path)
        .args(["--detector", "adaptive"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Fail::Failed(format!("{}: {e}", python.display())))?;
    let theirs_wall = t0.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(Fail::Failed(format!(
            "{} {} exited with {}",
            python.display(),
            script.display(),
            out.status
        )));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Fail::Failed(format!("PySceneDetect's output is not JSON: {e}")))?;
    let theirs_frames = v["frames"].as_u64().unwrap_or(0);
    let theirs_detect = v["seconds"].as_f64().unwrap_or(theirs_wall);
    let theirs_cuts: Vec<u64> = v["cuts"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_u64()).collect())
        .unwrap_or_default();
    let ours_cuts = full.analysis.cuts();
    let agree = ours_cuts
        .iter()
        .filter(|c| theirs_cuts.iter().any(|t| t.abs_diff(**c) <= 1))
        .count();
    println!(
        "  cut detection, PySceneDetect {} adaptive: {theirs_frames} frames in {theirs_wall:.2} s \
         wall ({theirs_detect:.2} s detecting): {:.1} frames/s, {} cuts ({agree} within a frame \
         of ours)",
        v["version"].as_str().unwrap_or("?"),
        theirs_frames as f64 / theirs_wall.max(1e-6),
        theirs_cuts.len()
    );
    println!(
        "  ratio (ours / theirs time): {:.2}× of their process, {:.2}× of their detection loop",
        full.wall / theirs_wall.max(1e-6),
        full.wall / theirs_detect.max(1e-6)
    );
    Ok(())
}
