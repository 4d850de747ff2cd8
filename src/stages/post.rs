//! post: stills and generated clips brought to the output's size and frame rate.
//!
//! - A still under a camera move smaller than the frame (a 512² or 1024² keyframe for 1080p or
//!   4K) is upscaled to cover it; with a network upscaler, to what the move shows at its
//!   closest zoom (the cover size times the larger zoom of the path), so the camera's sampler
//!   at assembly does not stretch it.
//! - A generated clip is upscaled frame by frame to cover the output frame, then retimed from
//!   its render rate to the output rate (any ratio: 24→30, 24→60, 16→30). Interpolation never
//!   crosses a cut inside a clip: frames on either side are repeated (see
//!   [`crate::engines::post`]). Upscaling first keeps the expensive network at one pass per
//!   source frame; the interpolator is the cheaper of the two.
//!
//! Engines: `engines.toml` `upscale`/`interpolate` (`REELSMITH_UPSCALE`/`REELSMITH_INTERPOLATE`)
//! name a model, `none`, or the embedded engines (Lanczos, libav's `minterpolate`). `auto` uses
//! installed models with CUDA, an anime-trained upscaler for anime and manga looks.
//!
//! Output: `keyframes.json` and `clips.json` in the shapes of the keyframes and animate stages,
//! their files in this artifact; assembly reads them instead of the originals. Each clip and
//! still is a cached item, so a changed scene redoes only itself. Progress counts frames;
//! cancellation is checked between frames.

use std::path::Path;

use crate::engines::post::{Interpolator, PairRetimer, Upscaler};
use crate::engines::post_models::{EsrganUpscaler, PostModelRef, RifePair};
use crate::engines::procedural::post::{Lanczos, Minterpolate};
use crate::engines::{Clip, EngineError};
use crate::media::clip::{ClipReader, ClipWriter};
use crate::media::image::RgbImage;
use crate::media::stills;
use crate::pipeline::{read_json, write_json, JobSpec, Stage, StageCtx, StageError, StageKind};

use super::model::{Clips, KeyframeInfo, Keyframes};

pub struct PostStage;

/// The embedded engines' version: bump when their output changes.
const ENGINE: &str = "post@1";

/// Whether the channel draws anime or manga (an anime-trained upscaler suits it).
fn anime_look(job: &JobSpec) -> bool {
    let look = job.channel.style.look.as_str();
    matches!(look, "anime" | "manga")
}

/// The upscaler for `job`: `None` off, `Some(None)` Lanczos, `Some(Some(m))` model `m`.
fn upscale_choice(job: &JobSpec) -> Option<Option<&PostModelRef>> {
    job.models.upscale.pick(anime_look(job))
}

fn interpolate_choice(job: &JobSpec) -> Option<Option<&PostModelRef>> {
    job.models.interpolate.pick(anime_look(job))
}

fn choice_id(c: Option<Option<&PostModelRef>>, embedded: &str) -> serde_json::Value {
    match c {
        None => serde_json::Value::Null,
        Some(None) => embedded.into(),
        Some(Some(m)) => serde_json::json!([m.id, m.fingerprint]),
    }
}

/// The smallest even size of `w`×`h`'s aspect that covers `out_w`×`out_h` scaled by `zoom`,
/// or `None` when the picture is already that large.
pub fn cover_size(w: u32, h: u32, out_w: u32, out_h: u32, zoom: f64) -> Option<(u32, u32)> {
    let need = (out_w as f64 * zoom / w as f64).max(out_h as f64 * zoom / h as f64);
    if need <= 1.0 + 1e-9 {
        return None;
    }
    let even = |v: f64| ((v / 2.0).ceil() as u32).max(1) * 2;
    Some((even(w as f64 * need), even(h as f64 * need)))
}

fn engine_err(what: &str, e: EngineError) -> StageError {
    match e {
        EngineError::Cancelled => StageError::Cancelled,
        e => StageError::Engine(format!("{what}: {e}")),
    }
}

/// Loads the engines a job's post stage runs (models once per task).
struct Engines {
    upscaler: Option<Box<dyn Upscaler>>,
    /// The upscaler is a network (expensive per pixel, unlike Lanczos).
    model_upscaler: bool,
    interpolator: Option<Box<dyn Interpolator>>,
}

fn load_engines(job: &JobSpec, device: &candle_core::Device) -> Result<Engines, StageError> {
    let upscaler: Option<Box<dyn Upscaler>> = match upscale_choice(job) {
        None => None,
        Some(None) => Some(Box::new(Lanczos::new())),
        Some(Some(m)) => Some(Box::new(
            EsrganUpscaler::load(m, device, 0).map_err(|e| engine_err("upscale", e))?,
        )),
    };
    let interpolator: Option<Box<dyn Interpolator>> = match interpolate_choice(job) {
        None => None,
        Some(None) => Some(Box::new(Minterpolate::new())),
        Some(Some(m)) => Some(Box::new(PairRetimer(
            RifePair::load(m, device).map_err(|e| engine_err("interpolate", e))?,
        ))),
    };
    Ok(Engines {
        upscaler,
        model_upscaler: matches!(upscale_choice(job), Some(Some(_))),
        interpolator,
    })
}

impl Stage for PostStage {
    fn kind(&self) -> StageKind {
        StageKind::Post
    }

    fn builtin_engine(&self) -> String {
        ENGINE.into()
    }

    fn engine(&self, job: &JobSpec) -> String {
        let name = |c: Option<Option<&PostModelRef>>, embedded: &str| match c {
            None => "none".to_string(),
            Some(None) => embedded.to_string(),
            Some(Some(m)) => m.id.clone(),
        };
        format!(
            "{ENGINE}/{}+{}",
            name(upscale_choice(job), "lanczos"),
            name(interpolate_choice(job), "minterpolate")
        )
    }

    fn params(&self, job: &JobSpec, _lang: Option<&str>) -> serde_json::Value {
        let s = &job.settings;
        serde_json::json!({
            "size": [s.width, s.height],
            "fps": s.fps,
            "upscale": choice_id(upscale_choice(job), "lanczos@1"),
            "interpolate": choice_id(interpolate_choice(job), "minterpolate@1"),
        })
    }

    fn resources(&self, job: &JobSpec) -> crate::pipeline::Resources {
        let model = upscale_choice(job)
            .flatten()
            .or(interpolate_choice(job).flatten());
        match model {
            Some(m) if candle_core::utils::cuda_is_available() => crate::pipeline::Resources {
                cpu_slots: 1,
                ram_bytes: 0,
                // Weights (≤ 70 MB) and one tile's activations in f16.
                vram_bytes: 3 << 30,
                model: Some(m.id.clone()),
            },
            _ => Default::default(),
        }
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let kf_art = ctx.input(StageKind::Keyframes)?;
        let kf: Keyframes = read_json(&kf_art.file("keyframes.json"))?;
        let anim = ctx.input(StageKind::Animate)?;
        let clips: Clips = read_json(&anim.file("clips.json"))?;
        let device = match &ctx.device {
            Some(i) if candle_core::utils::cuda_is_available() => {
                candle_core::Device::new_cuda(*i as usize)
                    .map_err(|e| StageError::Engine(format!("post: GPU {i}: {e}")))?
            }
            _ => candle_core::Device::Cpu,
        };
        let s = &ctx.job.settings;
        let (out_w, out_h, out_fps) = (s.width, s.height, s.fps as f64);
        // Frames to go through, for progress: every generated frame once.
        let total: u64 = clips
            .clips
            .iter()
            .flat_map(|c| std::iter::once(&c.clip).chain(c.morph.as_ref()))
            .map(|c| match c {
                Clip::Frames { frames, .. } => *frames as u64,
                Clip::Camera { .. } => 1,
            })
            .sum::<u64>()
            .max(1);
        let mut done = 0u64;
        let mut engines: Option<Engines> = None;
        let ensure = |engines: &mut Option<Engines>| -> Result<(), StageError> {
            if engines.is_none() {
                *engines = Some(load_engines(ctx.job, &device)?);
            }
            Ok(())
        };
        let up_id = choice_id(upscale_choice(ctx.job), "lanczos@1");
        let in_id = choice_id(interpolate_choice(ctx.job), "minterpolate@1");

        // Stills under camera moves.
        let mut frames: Vec<KeyframeInfo> = kf.frames.clone();
        for sc in &clips.clips {
            let Clip::Camera { path } = &sc.clip else {
                continue;
            };
            ctx.check_cancel()?;
            let Some(info) = frames.iter_mut().find(|f| f.scene == sc.scene) else {
                continue;
            };
            // A network adds detail, so the still is made as large as the move's closest view;
            // Lanczos adds none that the camera's own sampling would not, so it only brings a
            // still smaller than the frame up to the frame.
            let model = matches!(upscale_choice(ctx.job), Some(Some(_)));
            let zoom = if model {
                path.from.zoom.max(path.to.zoom).max(1.0)
            } else {
                1.0
            };
            let target = cover_size(info.width, info.height, out_w, out_h, zoom);
            let src = kf_art.file(&info.file);
            let name = format!("still-{:03}.png", sc.scene);
            match (target, upscale_choice(ctx.job)) {
                (Some((w, h)), Some(_)) => {
                    let params = serde_json::json!({
                        "still": [&kf_art.key, &info.file],
                        "size": [w, h], "engine": up_id,
                    });
                    let item = ctx.item("post-still", &params, |dir| {
                        ensure(&mut engines)?;
                        let up = engines.as_mut().and_then(|e| e.upscaler.as_mut());
                        let img = stills::read_png(&src)?;
                        let big = match up {
                            Some(u) => u
                                .upscale(&img, w, h)
                                .map_err(|e| engine_err(&format!("scene {} still", sc.scene), e))?,
                            None => img,
                        };
                        stills::write_png(&big, &dir.join("still.png"))?;
                        Ok(())
                    })?;
                    link_or_copy(&item.join("still.png"), &ctx.out.join(&name))?;
                    info.width = w;
                    info.height = h;
                }
                _ => link_or_copy(&src, &ctx.out.join(&name))?,
            }
            info.file = name;
            done += 1;
            ctx.progress(done as f32 / total as f32);
        }
        // Stills of scenes with generated clips are only read for thumbnails and fallbacks:
        // carried over as they are.
        for info in frames.iter_mut() {
            if info.file.starts_with("still-") {
                continue;
            }
            let name = format!("still-{:03}.png", info.scene);
            link_or_copy(&kf_art.file(&info.file), &ctx.out.join(&name))?;
            info.file = name;
        }

        // Generated clips (and generated transitions).
        let mut out_clips = clips.clone();
        for sc in out_clips.clips.iter_mut() {
            for clip in std::iter::once(&mut sc.clip).chain(sc.morph.as_mut()) {
                let Clip::Frames {
                    file,
                    fps,
                    frames: n,
                    width,
                    height,
                } = clip
                else {
                    continue;
                };
                let src = anim.dir.join(file.as_str());
                let size = match upscale_choice(ctx.job) {
                    Some(_) => cover_size(*width, *height, out_w, out_h, 1.0),
                    None => None,
                };
                let retime = interpolate_choice(ctx.job).is_some() && *fps + 1e-6 < out_fps;
                let name = file.clone();
                if size.is_none() && !retime {
                    link_or_copy(&src, &ctx.out.join(&name))?;
                    done += *n as u64;
                    continue;
                }
                let (w, h) = size.unwrap_or((*width, *height));
                let to_fps = if retime { out_fps } else { *fps };
                let params = serde_json::json!({
                    "clip": [&anim.key, &file],
                    "size": [w, h], "fps": to_fps,
                    "upscale": if size.is_some() { up_id.clone() } else { serde_json::Value::Null },
                    "interpolate": if retime { in_id.clone() } else { serde_json::Value::Null },
                });
                let label = format!("scene {}", sc.scene);
                let start = done;
                let item = ctx.item("post-clip", &params, |dir| {
                    ensure(&mut engines)?;
                    let e = engines.as_mut().expect("loaded just above");
                    process_clip(
                        ctx,
                        e,
                        &src,
                        &dir.join("clip.mkv"),
                        (w, h),
                        to_fps,
                        retime,
                        &label,
                        |k| {
                            ctx.progress((start + k) as f32 / total as f32);
                        },
                    )
                })?;
                link_or_copy(&item.join("clip.mkv"), &ctx.out.join(&name))?;
                let info = ClipReader::open(&ctx.out.join(&name))?.info();
                *fps = info.fps;
                *n = info.frames;
                *width = info.width;
                *height = info.height;
                done = start + info.frames as u64;
                ctx.progress(done as f32 / total as f32);
            }
        }
        out_clips.engine = format!("{}+{}", clips.engine, self.engine(ctx.job));
        write_json(
            &ctx.out.join("keyframes.json"),
            &Keyframes {
                engine: kf.engine.clone(),
                frames,
            },
        )?;
        write_json(&ctx.out.join("clips.json"), &out_clips)
    }
}

/// Upscales every frame of `src` to `size`, retimes to `fps` when `retime`, and writes the
/// result to `dst` (FFV1, lossless). A network upscaler runs before the interpolator (once
/// per source frame: it is the expensive one); Lanczos runs after it, so libav's motion search
/// works on the small frames.
#[allow(clippy::too_many_arguments)]
fn process_clip(
    ctx: &StageCtx,
    e: &mut Engines,
    src: &Path,
    dst: &Path,
    size: (u32, u32),
    fps: f64,
    retime: bool,
    label: &str,
    mut progress: impl FnMut(u64),
) -> Result<(), StageError> {
    let mut reader = ClipReader::open(src)?;
    let info = reader.info();
    let mut writer = ClipWriter::create(dst, size.0, size.1, fps)?;
    let upscale_first = e.model_upscaler || !retime;
    let (mut before, mut after) = match e.upscaler.as_mut() {
        Some(u) if upscale_first => (Some(u), None),
        Some(u) => (None, Some(u)),
        None => (None, None),
    };
    let failed = |err: crate::media::MediaError| EngineError::Failed {
        engine: "post".into(),
        message: err.to_string(),
    };
    let fit =
        |up: &mut Option<&mut Box<dyn Upscaler>>, f: RgbImage| -> Result<RgbImage, EngineError> {
            match up {
                Some(u) if f.width != size.0 || f.height != size.1 => u.upscale(&f, size.0, size.1),
                _ => Ok(f),
            }
        };
    let mut i = 0u32;
    let mut source = std::iter::from_fn(|| {
        if i >= info.frames {
            return None;
        }
        if ctx.check_cancel().is_err() {
            return Some(Err(EngineError::Cancelled));
        }
        let frame = match reader.frame(i) {
            Ok(f) => f.clone(),
            Err(err) => return Some(Err(failed(err))),
        };
        i += 1;
        progress(i as u64);
        Some(fit(&mut before, frame))
    });
    let mut sink = |img: RgbImage| -> Result<(), EngineError> {
        let img = fit(&mut after, img)?;
        writer.push(&img).map_err(failed)
    };
    match (retime, e.interpolator.as_mut()) {
        (true, Some(interp)) => {
            let cancelled = || ctx.check_cancel().is_err();
            interp
                .retime(&mut source, info.fps, fps, &mut sink, &cancelled)
                .map_err(|err| engine_err(label, err))?;
        }
        _ => {
            for f in source {
                sink(f.map_err(|err| engine_err(label, err))?)
                    .map_err(|err| engine_err(label, err))?;
            }
        }
    }
    writer.finish()?;
    Ok(())
}

/// `dst` as a hard link to `src` (same file system: the cache and artifacts live side by side),
/// else a copy.
fn link_or_copy(src: &Path, dst: &Path) -> Result<(), StageError> {
    if dst.exists() {
        std::fs::remove_file(dst).map_err(|e| StageError::io(dst, e))?;
    }
    if std::fs::hard_link(src, dst).is_err() {
        std::fs::copy(src, dst).map_err(|e| StageError::io(src, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_sizes_keep_the_aspect_and_cover_the_frame() {
        // A 768×512 clip for a 1920×1080 frame: 2.5× (width decides).
        assert_eq!(cover_size(768, 512, 1920, 1080, 1.0), Some((1920, 1280)));
        // A square still under a 1.2× zoom for 3840×2160.
        assert_eq!(cover_size(1024, 1024, 3840, 2160, 1.2), Some((4608, 4608)));
        assert_eq!(cover_size(1920, 1080, 1920, 1080, 1.0), None);
        assert_eq!(cover_size(2000, 1200, 1280, 720, 1.0), None);
    }
}
