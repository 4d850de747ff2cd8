//! `reelsmith interpolate IN --fps 60 -o OUT.mp4`: raise a video's frame rate with in-between
//! frames — `minterpolate` (motion-compensated, built in) or an installed interpolation model —
//! at any ratio (24 → 60 included). The clip keeps its duration and audio; frames are never made
//! across a cut (the nearer frame is repeated). Everything is checked before an engine loads;
//! the MP4 appears under its name only when complete; Ctrl-C stops between frames (exit 130).

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use ffmpeg_next::Rational;

use super::upscale::{
    cancellation, check_output, device, engine_fail, even, input_kind, probe_video, rate_text,
    Kind, Part, Progress, VideoSource, VIDEO_CRF,
};
use super::Fail;
use crate::config::Dirs;
use crate::engines::post::retimed_frames;
use crate::engines::post_select::choose_interpolator;
use crate::engines::EngineError;
use crate::media::frames::VideoFrames;
use crate::media::rewrite::{has_audio, Mp4Rewriter, VideoOut};

/// Highest frame rate the command writes.
pub const MAX_FPS: f64 = 240.0;

#[derive(Args, Debug)]
pub struct InterpolateArgs {
    /// The video (mp4, mkv, mov, webm) to make smoother.
    pub input: PathBuf,
    /// Frame rate to write, above the video's and at most 240: 60, 59.94 or 60000/1001.
    #[arg(long)]
    pub fps: String,
    /// Where to write the MP4.
    #[arg(short, long)]
    pub out: PathBuf,
    /// The interpolator: `minterpolate` (built in, motion-compensated; the default), `blend`
    /// (built in, a cross-fade) or an installed interpolation model.
    #[arg(long)]
    pub model: Option<String>,
    /// cpu, cuda or cuda:N for model interpolators (default: cuda when this build has it,
    /// else cpu).
    #[arg(long)]
    pub device: Option<String>,
}

pub fn run(args: InterpolateArgs, dirs: &Dirs) -> i32 {
    Fail::exit_code(interpolate(&args, dirs))
}

/// `60`, `59.94` or `60000/1001` as an exact fraction.
fn parse_fps(s: &str) -> Result<Rational, String> {
    let bad = || format!("--fps {s}: write a rate such as 60, 59.94 or 60000/1001");
    let s = s.trim();
    let r = match s.split_once('/') {
        Some((n, d)) => {
            let n: i32 = n.trim().parse().map_err(|_| bad())?;
            let d: i32 = d.trim().parse().map_err(|_| bad())?;
            if d <= 0 {
                return Err(bad());
            }
            Rational::new(n, d).reduce()
        }
        None => {
            let f: f64 = s.parse().map_err(|_| bad())?;
            if !f.is_finite() {
                return Err(bad());
            }
            // 59.94 means NTSC's 60000/1001, as everywhere in video.
            let ntsc = (f * 1.001).round();
            if (f - ntsc * 1000.0 / 1001.0).abs() < 0.006 && (f - f.round()).abs() > 1e-9 {
                Rational::new(ntsc as i32 * 1000, 1001)
            } else {
                Rational::from(f)
            }
        }
    };
    let f = f64::from(r);
    if !(1.0..=MAX_FPS).contains(&f) || r.numerator() <= 0 {
        return Err(format!("--fps {s}: between 1 and {MAX_FPS}"));
    }
    Ok(r)
}

struct Plan {
    source: VideoSource,
    fps: Rational,
}

fn plan(args: &InterpolateArgs) -> Result<Plan, String> {
    if input_kind(&args.input)? != Kind::Video {
        return Err(format!(
            "{}: a picture has no frames to put between; give a video (mp4, mkv, mov, webm)",
            args.input.display()
        ));
    }
    check_output(&args.out, &args.input, &["mp4"])?;
    let fps = parse_fps(&args.fps)?;
    let source = probe_video(&args.input)?;
    let (i, o) = (f64::from(source.rate), f64::from(fps));
    if o <= i + 1e-9 {
        return Err(format!(
            "--fps {}: {} plays at {} fps already; ask for a higher rate",
            args.fps,
            args.input.display(),
            rate_text(source.rate)
        ));
    }
    Ok(Plan { source, fps })
}

fn interpolate(args: &InterpolateArgs, dirs: &Dirs) -> Result<(), Fail> {
    let plan = plan(args).map_err(Fail::Input)?;
    let device = device(args.device.as_deref())?;
    let (_rt, cancel) = cancellation()?;
    let t0 = Instant::now();
    let mut engine = choose_interpolator(dirs, args.model.as_deref(), &device)?;
    let loaded = t0.elapsed().as_secs_f64();
    let media = |e: crate::media::MediaError| Fail::Failed(e.to_string());
    let src = &plan.source;
    let (in_fps, out_fps) = (f64::from(src.rate), f64::from(plan.fps));
    let total = retimed_frames(src.frames, in_fps, out_fps);
    let part = Part::new(&args.out);
    let out = VideoOut {
        width: src.width + src.width % 2,
        height: src.height + src.height % 2,
        time_base: plan.fps.invert(),
        frame_rate: plan.fps,
        crf: VIDEO_CRF,
        preset: "medium".into(),
    };
    let mut mp4 = Mp4Rewriter::create(part.path(), &out, Some(&args.input)).map_err(media)?;
    let mut frames = VideoFrames::open(&args.input).map_err(media)?;
    // The first frame keeps its place on the audio's clock.
    let offset = (src.start * out_fps).round() as i64;
    let mut progress = Progress::new("interpolated", total);
    let mut j = 0u64;
    let mut source = std::iter::from_fn(|| {
        frames.next().map(|r| {
            r.map_err(|e| EngineError::Failed {
                engine: "decode".into(),
                message: e.to_string(),
            })
        })
    });
    let written = engine.retime(
        &mut source,
        in_fps,
        out_fps,
        &mut |img| {
            mp4.push(&even(img), offset + j as i64)
                .map_err(|e| EngineError::Failed {
                    engine: "mp4".into(),
                    message: e.to_string(),
                })?;
            j += 1;
            progress.tick(j);
            Ok(())
        },
        &|| cancel.is_cancelled(),
    );
    let n = written.map_err(engine_fail)?;
    if n == 0 {
        return Err(Fail::Failed(format!(
            "{}: no frames could be read",
            args.input.display()
        )));
    }
    mp4.finish().map_err(media)?;
    part.commit()?;
    println!("{}", args.out.display());
    eprintln!(
        "{n} frames at {} fps from {} at {} fps with {}{}; loaded in {loaded:.1} s, done in \
         {:.1} s",
        rate_text(plan.fps),
        src.frames,
        rate_text(src.rate),
        engine.id(),
        if has_audio(&args.input) {
            ", audio copied"
        } else {
            ""
        },
        progress.seconds()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_exact_fractions() {
        assert_eq!(parse_fps("60").unwrap(), Rational::new(60, 1));
        assert_eq!(parse_fps("59.94").unwrap(), Rational::new(60000, 1001));
        assert_eq!(parse_fps("23.976").unwrap(), Rational::new(24000, 1001));
        assert_eq!(parse_fps("60000/1001").unwrap(), Rational::new(60000, 1001));
        assert_eq!(parse_fps("12.5").unwrap(), Rational::new(25, 2));
        assert!(parse_fps("0").unwrap_err().contains("between 1 and 240"));
        assert!(parse_fps("241").unwrap_err().contains("between 1 and 240"));
        assert!(parse_fps("fast").unwrap_err().contains("such as 60"));
        assert!(parse_fps("60/0").is_err());
    }
}
