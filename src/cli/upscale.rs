//! `reelsmith upscale IN -o OUT`: make a picture (PNG, JPEG) or a video (MP4, MKV, MOV, WebM)
//! larger — Lanczos built in, model upscalers when installed. A video keeps its frame count,
//! timestamps and audio (copied as it is). Everything is checked before an engine loads (a
//! missing file, a wrong extension or scale exits 2 naming it); the output appears under its name
//! only when complete; Ctrl-C stops between frames and leaves nothing behind (exit 130).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use ffmpeg_next::Rational;

use super::Fail;
use crate::config::Dirs;
use crate::engines::models::parse_device;
use crate::engines::post_select::choose_upscaler;
use crate::engines::EngineError;
use crate::media::frames::VideoFrames;
use crate::media::image::RgbImage;
use crate::media::rewrite::{has_audio, Mp4Rewriter, VideoOut};
use crate::media::{decode, jpeg, stills};

/// Largest side of an upscaled picture, in pixels.
pub const MAX_PICTURE_SIDE: u32 = 16384;
/// Largest side of an upscaled video (H.264 level 6.2 stops at 8192).
pub const MAX_VIDEO_SIDE: u32 = 8192;
/// x264 quality of the videos the post commands write (visually lossless).
pub const VIDEO_CRF: u8 = 16;

#[derive(Args, Debug)]
pub struct UpscaleArgs {
    /// The picture (png, jpg) or video (mp4, mkv, mov, webm) to make larger.
    pub input: PathBuf,
    /// Where to write: .png or .jpg for a picture, .mp4 for a video.
    #[arg(short, long)]
    pub out: PathBuf,
    /// The upscaler: `lanczos` (built in, the default) or an installed upscaling model.
    #[arg(long)]
    pub model: Option<String>,
    /// How many times larger: 2, 3 or 4 (default: 4 for a picture, 2 for a video).
    #[arg(long, allow_negative_numbers = true)]
    pub scale: Option<i64>,
    /// Tile side in input pixels for model upscalers, to bound memory (0: whole frames).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub tile: i64,
    /// cpu, cuda or cuda:N for model upscalers (default: cuda when this build has it, else cpu).
    #[arg(long)]
    pub device: Option<String>,
}

pub fn run(args: UpscaleArgs, dirs: &Dirs) -> i32 {
    Fail::exit_code(upscale(&args, dirs))
}

/// What an input file holds, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Picture,
    Video,
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Checks that `path` exists and is a picture or video reelsmith reads, by its extension.
pub(super) fn input_kind(path: &Path) -> Result<Kind, String> {
    if !path.is_file() {
        return Err(format!("{}: no such file", path.display()));
    }
    match extension(path).as_str() {
        "png" | "jpg" | "jpeg" => Ok(Kind::Picture),
        "mp4" | "mkv" | "mov" | "webm" => Ok(Kind::Video),
        e => Err(format!(
            "{}: `.{e}` is neither a picture (png, jpg) nor a video (mp4, mkv, mov, webm)",
            path.display()
        )),
    }
}

/// Checks that `out` ends in one of `exts`, sits in an existing folder, and is not `input`.
pub(super) fn check_output(out: &Path, input: &Path, exts: &[&str]) -> Result<(), String> {
    let e = extension(out);
    if !exts.contains(&e.as_str()) {
        let names: Vec<String> = exts.iter().map(|x| format!("*.{x}")).collect();
        return Err(format!(
            "-o {}: this output is written as {}; name it so",
            out.display(),
            names.join(" or ")
        ));
    }
    let dir = match out.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "-o {}: no folder {}; create it first",
            out.display(),
            dir.display()
        ));
    }
    let same = match (input.canonicalize(), dir.canonicalize(), out.file_name()) {
        (Ok(i), Ok(d), Some(name)) => i == d.join(name),
        _ => false,
    };
    if same {
        return Err(format!(
            "-o {}: that is the input; write to another file",
            out.display()
        ));
    }
    Ok(())
}

/// `--device`, else cuda when this build has it, else cpu.
pub(super) fn device(value: Option<&str>) -> Result<candle_core::Device, Fail> {
    let name = value.map(str::to_string).unwrap_or_else(|| {
        if candle_core::utils::cuda_is_available() {
            "cuda".into()
        } else {
            "cpu".into()
        }
    });
    parse_device(&name).map_err(Fail::Input)
}

/// A video's size, rate and length, known to decode (its first frame was decoded).
#[derive(Clone, Debug)]
pub(super) struct VideoSource {
    pub width: u32,
    pub height: u32,
    pub rate: Rational,
    pub frames: u64,
    /// When the first frame is shown, seconds.
    pub start: f64,
}

/// Opens `path` as a video and decodes its first frame: bad input (exit 2) when it cannot.
pub(super) fn probe_video(path: &Path) -> Result<VideoSource, String> {
    let bad = |e: String| {
        format!(
            "{}: not a video reelsmith can read ({e}); convert it to an H.264 MP4 first",
            path.display()
        )
    };
    let info = decode::probe(path).map_err(|e| bad(e.to_string()))?;
    let mut frames = VideoFrames::open(path).map_err(|e| bad(e.to_string()))?;
    let tb = frames.time_base();
    let first = frames.next_frame().map_err(|e| bad(e.to_string()))?;
    let Some((pts, img)) = first else {
        return Err(bad("it holds no frames".into()));
    };
    Ok(VideoSource {
        width: img.width,
        height: img.height,
        rate: frames.rate(),
        frames: info.video.map(|v| v.frames).unwrap_or(0),
        start: pts as f64 * f64::from(tb),
    })
}

/// A file written under a temporary name beside its target and renamed into place by
/// [`Part::commit`]; dropped uncommitted, it is removed.
pub(super) struct Part {
    tmp: PathBuf,
    target: PathBuf,
    done: bool,
}

impl Part {
    pub fn new(target: &Path) -> Self {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        Self {
            tmp: target.with_file_name(format!(".{name}.{}.part", std::process::id())),
            target: target.to_path_buf(),
            done: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.tmp
    }

    pub fn commit(mut self) -> Result<(), Fail> {
        std::fs::rename(&self.tmp, &self.target)
            .map_err(|e| Fail::Failed(format!("{}: {e}", self.target.display())))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A runtime that turns Ctrl-C / SIGTERM into a cancellation token (kept alive with it).
pub(super) fn cancellation(
) -> Result<(tokio::runtime::Runtime, tokio_util::sync::CancellationToken), Fail> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Fail::Failed(format!("cannot start the runtime: {e}")))?;
    let cancel = tokio_util::sync::CancellationToken::new();
    {
        let _guard = rt.enter();
        super::cancel_on_signals(cancel.clone(), "interrupted: stopping after this frame");
    }
    Ok((rt, cancel))
}

/// One line on stderr about once a second: frames done, speed, time left.
pub(super) struct Progress {
    what: &'static str,
    total: u64,
    t0: Instant,
    shown: Instant,
}

impl Progress {
    pub fn new(what: &'static str, total: u64) -> Self {
        let now = Instant::now();
        Self {
            what,
            total,
            t0: now,
            shown: now,
        }
    }

    pub fn tick(&mut self, done: u64) {
        if self.shown.elapsed().as_secs_f64() < 1.0 && done < self.total {
            return;
        }
        self.shown = Instant::now();
        let fps = done as f64 / self.t0.elapsed().as_secs_f64().max(1e-6);
        let left = self.total.saturating_sub(done) as f64 / fps.max(1e-6);
        eprintln!(
            "{} frame {done}/{} ({fps:.1} fps, {left:.0} s left)",
            self.what, self.total
        );
    }

    pub fn seconds(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }
}

/// A frame rate as people write it: `24`, or `23.976 (24000/1001)`.
pub(super) fn rate_text(r: Rational) -> String {
    if r.denominator() == 1 {
        r.numerator().to_string()
    } else {
        format!(
            "{:.3} ({}/{})",
            f64::from(r),
            r.numerator(),
            r.denominator()
        )
    }
}

pub(super) fn engine_fail(e: EngineError) -> Fail {
    match e {
        EngineError::Cancelled => Fail::Cancelled,
        e => Fail::Failed(e.to_string()),
    }
}

/// `img` grown to even sides by repeating its last column and row (H.264 4:2:0 needs them).
pub(super) fn even(img: RgbImage) -> RgbImage {
    let (w, h) = (img.width + img.width % 2, img.height + img.height % 2);
    if (w, h) == (img.width, img.height) {
        return img;
    }
    let mut out = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            out.put(
                x as i64,
                y as i64,
                img.get(x.min(img.width - 1), y.min(img.height - 1)),
            );
        }
    }
    out
}

/// Everything the command line says, checked.
struct Plan {
    kind: Kind,
    scale: u32,
    tile: u32,
    /// Output size.
    width: u32,
    height: u32,
    /// A picture's pixels (read while checking), or a video's facts.
    picture: Option<RgbImage>,
    video: Option<VideoSource>,
}

fn plan(args: &UpscaleArgs) -> Result<Plan, String> {
    let kind = input_kind(&args.input)?;
    match kind {
        Kind::Picture => {
            let mut exts = vec!["png"];
            if jpeg::available() {
                exts.extend(["jpg", "jpeg"]);
            }
            check_output(&args.out, &args.input, &exts)?;
        }
        Kind::Video => check_output(&args.out, &args.input, &["mp4"])?,
    }
    let scale = match args.scale {
        None if kind == Kind::Picture => 4,
        None => 2,
        Some(s @ 2..=4) => s as u32,
        Some(s) => return Err(format!("--scale {s}: 2, 3 or 4")),
    };
    let tile = match args.tile {
        0 => 0,
        t @ 32..=8192 => t as u32,
        t => {
            return Err(format!(
                "--tile {t}: 0 (whole frames) or 32 to 8192 input pixels"
            ))
        }
    };
    let (picture, video, w, h) = match kind {
        Kind::Picture => {
            let img = decode::read_image(&args.input).map_err(|e| {
                format!(
                    "{}: not a picture reelsmith can read ({e})",
                    args.input.display()
                )
            })?;
            let (w, h) = (img.width, img.height);
            (Some(img), None, w, h)
        }
        Kind::Video => {
            let v = probe_video(&args.input)?;
            let (w, h) = (v.width, v.height);
            (None, Some(v), w, h)
        }
    };
    let (mut width, mut height) = (w * scale, h * scale);
    let max = if kind == Kind::Video {
        // H.264 4:2:0 wants even sides: one more pixel where ×3 makes them odd.
        width += width % 2;
        height += height % 2;
        MAX_VIDEO_SIDE
    } else {
        MAX_PICTURE_SIDE
    };
    if width > max || height > max {
        return Err(format!(
            "--scale {scale}: {w}×{h} would become {width}×{height}, more than {max} pixels a \
             side; use a smaller --scale"
        ));
    }
    Ok(Plan {
        kind,
        scale,
        tile,
        width,
        height,
        picture,
        video,
    })
}

fn upscale(args: &UpscaleArgs, dirs: &Dirs) -> Result<(), Fail> {
    let plan = plan(args).map_err(Fail::Input)?;
    let device = device(args.device.as_deref())?;
    let (_rt, cancel) = cancellation()?;
    let t0 = Instant::now();
    let mut engine = choose_upscaler(dirs, args.model.as_deref(), &device, plan.scale, plan.tile)?;
    let loaded = t0.elapsed().as_secs_f64();
    let part = Part::new(&args.out);
    let summary = match (plan.kind, &plan.picture) {
        (Kind::Picture, Some(img)) => {
            let big = engine
                .upscale(img, plan.width, plan.height)
                .map_err(engine_fail)?;
            if cancel.is_cancelled() {
                return Err(Fail::Cancelled);
            }
            let written = if matches!(extension(&args.out).as_str(), "jpg" | "jpeg") {
                jpeg::write_jpeg(&big, part.path(), 2)
            } else {
                stills::write_png(&big, part.path())
            };
            written.map_err(|e| Fail::Failed(e.to_string()))?;
            format!(
                "{}×{} → {}×{}",
                img.width, img.height, big.width, big.height
            )
        }
        _ => {
            let v = plan
                .video
                .as_ref()
                .ok_or_else(|| Fail::Failed("internal: a video without its facts".into()))?;
            let n = upscale_video(args, &plan, v, engine.as_mut(), &part, &cancel)?;
            format!(
                "{n} frames {}×{} → {}×{} at {} fps{}",
                v.width,
                v.height,
                plan.width,
                plan.height,
                rate_text(v.rate),
                if has_audio(&args.input) {
                    ", audio copied"
                } else {
                    ""
                }
            )
        }
    };
    part.commit()?;
    println!("{}", args.out.display());
    eprintln!(
        "{summary} with {} (×{}); loaded in {loaded:.1} s, done in {:.1} s",
        engine.id(),
        plan.scale,
        t0.elapsed().as_secs_f64() - loaded
    );
    Ok(())
}

fn upscale_video(
    args: &UpscaleArgs,
    plan: &Plan,
    v: &VideoSource,
    engine: &mut dyn crate::engines::post::Upscaler,
    part: &Part,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<u64, Fail> {
    let media = |e: crate::media::MediaError| Fail::Failed(e.to_string());
    let mut frames = VideoFrames::open(&args.input).map_err(media)?;
    let out = VideoOut {
        width: plan.width,
        height: plan.height,
        time_base: frames.time_base(),
        frame_rate: v.rate,
        crf: VIDEO_CRF,
        preset: "medium".into(),
    };
    let mut mp4 = Mp4Rewriter::create(part.path(), &out, Some(&args.input)).map_err(media)?;
    let mut progress = Progress::new("upscaled", v.frames);
    let mut n = 0u64;
    while let Some((pts, img)) = frames.next_frame().map_err(media)? {
        if cancel.is_cancelled() {
            return Err(Fail::Cancelled);
        }
        let big = engine
            .upscale(&img, plan.width, plan.height)
            .map_err(engine_fail)?;
        mp4.push(&big, pts).map_err(media)?;
        n += 1;
        progress.tick(n);
    }
    if n == 0 {
        return Err(Fail::Failed(format!(
            "{}: no frames could be read",
            args.input.display()
        )));
    }
    mp4.finish().map_err(media)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_checked_by_extension_folder_and_identity() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("a.png");
        std::fs::write(&input, b"x").unwrap();
        assert!(check_output(&dir.path().join("b.png"), &input, &["png"]).is_ok());
        let e = check_output(&dir.path().join("b.gif"), &input, &["png", "jpg"]).unwrap_err();
        assert!(e.contains("*.png or *.jpg"), "{e}");
        let e = check_output(&dir.path().join("no/b.png"), &input, &["png"]).unwrap_err();
        assert!(e.contains("no folder"), "{e}");
        let e = check_output(&dir.path().join("./a.png"), &input, &["png"]).unwrap_err();
        assert!(e.contains("is the input"), "{e}");
        assert!(input_kind(&dir.path().join("none.png"))
            .unwrap_err()
            .contains("no such file"));
        let gif = dir.path().join("a.gif");
        std::fs::write(&gif, b"x").unwrap();
        assert!(input_kind(&gif).unwrap_err().contains("neither a picture"));
    }

    #[test]
    fn odd_frames_grow_to_even_sides_by_repeating_the_edge() {
        let mut img = RgbImage::new(3, 1);
        img.put(2, 0, [9, 8, 7]);
        let e = even(img);
        assert_eq!((e.width, e.height), (4, 2));
        assert_eq!(e.get(3, 1), [9, 8, 7]);
        assert_eq!(e.get(0, 1), [0, 0, 0]);
    }

    #[test]
    fn a_part_file_is_removed_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("o.png");
        {
            let p = Part::new(&target);
            std::fs::write(p.path(), b"half").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let p = Part::new(&target);
        std::fs::write(p.path(), b"whole").unwrap();
        p.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
