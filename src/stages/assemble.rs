//! assemble: the finished video of one language — clips drawn frame by frame with their camera
//! moves and transitions, captions burned in with libass, the mixed soundtrack, H.264 + AAC in
//! an MP4 with the index up front. All in process.
//!
//! The picture is encoded in segments of [`SEGMENT_SECONDS`], each starting with a keyframe;
//! a finished segment is adopted into the task's checkpoint directory, so an attempt cut short
//! skips the segments an earlier one finished. The segments are then joined by copying their
//! packets beside the soundtrack (encoded meanwhile on its own thread). Interrupted or not, the
//! same segments are encoded the same way: the file is the same, byte for byte.

use std::path::{Path, PathBuf};

use crate::engines::Clip;
use crate::media::compose::make_writable;
use crate::media::compose::{
    new_frame, FrameSource, Picture, Still, TimelineClip, TimelineRenderer,
};
use crate::media::encode::{
    join_segments, probe_segment, AudioEncoding, EncodeSettings, Mp4Writer, SegmentInfo,
};
use crate::media::overlay::CaptionTrack;
use crate::media::{stills, wav};
use crate::pipeline::{read_json, JobSpec, Stage, StageCtx, StageError, StageKind};

use super::model::{Clips, Keyframes, Plan, SceneClip, Timeline};

pub struct AssembleStage;

/// A video to draw: size, the span of the timeline, captions and soundtrack.
pub struct VideoJob<'a> {
    pub width: u32,
    pub height: u32,
    /// Seconds of the timeline to draw, from 0.
    pub seconds: f64,
    pub captions: Option<&'a Path>,
    /// Interleaved stereo at `audio_rate`, exactly `seconds` long.
    pub audio: Vec<f32>,
    pub out: &'a Path,
}

/// Where assembly's pictures come from: `(keyframes.json's artifact, clips.json's artifact)` —
/// the post stage's (stills and clips at the output's size and rate) when the channel runs it,
/// else the keyframes and animate stages' own.
pub fn visuals<'c>(
    ctx: &'c StageCtx,
) -> Result<
    (
        &'c crate::pipeline::ArtifactRef,
        &'c crate::pipeline::ArtifactRef,
    ),
    StageError,
> {
    match ctx.optional_input(StageKind::Post) {
        Some(post) => Ok((post, post)),
        None => Ok((
            ctx.input(StageKind::Keyframes)?,
            ctx.input(StageKind::Animate)?,
        )),
    }
}

/// Loads every scene's still once (converted for sampling).
pub fn load_stills(ctx: &StageCtx) -> Result<Vec<Still>, StageError> {
    let (kf_art, _) = visuals(ctx)?;
    let kf: Keyframes = read_json(&kf_art.file("keyframes.json"))?;
    kf.frames
        .iter()
        .map(|f| Ok(Still::from_rgb(&stills::read_png(&kf_art.file(&f.file))?)))
        .collect()
}

/// Seconds of picture per encoded segment: five 2-second GOPs, so segments add no keyframes.
/// A segment is the unit of checkpointing: an interrupted assembly redraws at most this much.
pub const SEGMENT_SECONDS: u32 = 10;

/// The frames `[start, end)` of segment `k` of a video of `frames` frames cut every `span`.
fn segment_range(k: usize, span: i64, frames: i64) -> (i64, i64) {
    let start = k as i64 * span;
    (start, (start + span).min(frames))
}

/// How many segments of `span` frames a video of `frames` frames has (at least one).
fn segment_count(span: i64, frames: i64) -> usize {
    ((frames + span - 1) / span).max(1) as usize
}

/// A segment an earlier attempt finished, if it is whole and as long as it should be.
fn finished_segment(path: &Path, frames: i64) -> Option<SegmentInfo> {
    if !path.is_file() {
        return None;
    }
    match probe_segment(path) {
        Ok(info) if info.frames == frames as u64 => Some(info),
        Ok(info) => {
            tracing::warn!(
                "{}: {} frames, not {frames}: encoding it again",
                path.display(),
                info.frames
            );
            None
        }
        Err(e) => {
            tracing::warn!("{}: {e}: encoding it again", path.display());
            None
        }
    }
}

/// Frames `frames` of a video of `total`.
struct Span {
    frames: std::ops::Range<i64>,
    total: i64,
}

/// Draws `span`'s frames into the segment file `path`; returns what it holds.
fn draw_segment(
    ctx: &StageCtx,
    renderer: &mut TimelineRenderer,
    mut captions: Option<&mut CaptionTrack>,
    enc: &EncodeSettings,
    span: Span,
    path: &Path,
) -> Result<SegmentInfo, StageError> {
    let fps = enc.fps.max(1) as f64;
    let mut writer = Mp4Writer::create_segment(path, enc)?;
    let mut frame = new_frame(enc.width, enc.height);
    for f in span.frames {
        if f % 8 == 0 {
            ctx.check_cancel()?;
            ctx.progress(f as f32 / span.total.max(1) as f32);
        }
        make_writable(&mut frame)?;
        renderer.render(f as f64 / fps, &mut frame)?;
        if let Some(c) = captions.as_deref_mut() {
            c.apply(f, &mut frame)?;
        }
        writer.push_frame(&mut frame)?;
    }
    writer.finish()?;
    Ok(probe_segment(path)?)
}

/// Draws and encodes `frames` frames of `renderer` in segments of [`SEGMENT_SECONDS`], each
/// adopted into the task's checkpoint directory once finished (reported as "segment 2/9");
/// the segments an earlier attempt finished are kept ("resumed from segment 4/9"). Returns
/// the segments' files in order. The pattern for any long encode: cut it into pieces that
/// each stand alone, name each by its place, adopt it when whole, skip it when present.
fn encode_segments(
    ctx: &StageCtx,
    renderer: &mut TimelineRenderer,
    job: &VideoJob,
    enc: &EncodeSettings,
    frames: i64,
    staging: &Path,
) -> Result<Vec<PathBuf>, StageError> {
    let fps = enc.fps.max(1) as i64;
    let span = fps * SEGMENT_SECONDS as i64;
    let n = segment_count(span, frames);
    let stem = job
        .out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    let name = |k: usize| format!("{stem}-segment-{:03}-of-{n:03}.mp4", k + 1);
    let saved = ctx.checkpoint_dir();
    // Two passes at most: segments of an earlier attempt whose encoder headers differ from
    // this attempt's (another libx264 in between) cannot be joined with them; then all are
    // encoded again.
    for pass in 0..2 {
        let mut found: Vec<Option<(PathBuf, SegmentInfo)>> = (0..n)
            .map(|k| {
                let path = saved.as_ref().filter(|_| pass == 0)?.join(name(k));
                let (a, b) = segment_range(k, span, frames);
                finished_segment(&path, b - a).map(|info| (path, info))
            })
            .collect();
        let reused = found.iter().filter(|f| f.is_some()).count();
        if let Some(last) = found.iter().rposition(Option::is_some) {
            ctx.resumed(&format!("segment {}/{n}", last + 1));
        }
        let mut captions = None;
        let mut files = Vec::with_capacity(n);
        let mut headers = Vec::with_capacity(n);
        for (k, slot) in found.iter_mut().enumerate() {
            if let Some((path, info)) = slot.take() {
                files.push(path);
                headers.push(info.headers);
                continue;
            }
            let (a, b) = segment_range(k, span, frames);
            let tmp = staging.join(format!(".{}.{}.part", name(k), std::process::id()));
            if captions.is_none() {
                if let Some(p) = job.captions {
                    captions = Some(CaptionTrack::render(p, job.width, job.height, enc.fps)?);
                }
            }
            let part = Span {
                frames: a..b,
                total: frames,
            };
            let drawn = draw_segment(ctx, renderer, captions.as_mut(), enc, part, &tmp);
            let info = match drawn {
                Ok(info) => info,
                Err(e) => {
                    // A stopped attempt leaves no half segment behind (a killed one's is
                    // swept with the checkpoint directory).
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            };
            let path = ctx.adopt_checkpoint(&name(k), &tmp, &format!("segment {}/{n}", k + 1))?;
            files.push(path);
            headers.push(info.headers);
        }
        if headers.windows(2).all(|w| w[0] == w[1]) {
            return Ok(files);
        }
        if reused == 0 {
            break;
        }
        tracing::warn!(
            "{}: segments saved by an earlier attempt were encoded differently; encoding them all again",
            job.out.display()
        );
    }
    Err(StageError::data(
        job.out.display().to_string(),
        "the encoder wrote segments with different headers in one run; they cannot be joined",
    ))
}

/// A generated clip of the animate artifact (`dir`), checked against what clips.json says of it.
fn frames_source(dir: &Path, clip: &Clip, scene: usize) -> Result<FrameSource, StageError> {
    let Clip::Frames {
        file,
        frames,
        width,
        height,
        ..
    } = clip
    else {
        return Err(StageError::data(
            "clips.json",
            format!("scene {scene}: not a generated clip"),
        ));
    };
    // A bare file name: clips.json cannot point outside the artifact.
    let mut parts = Path::new(file).components();
    let bare = matches!(
        (parts.next(), parts.next()),
        (Some(std::path::Component::Normal(_)), None)
    );
    if !bare {
        return Err(StageError::data(
            "clips.json",
            format!("scene {scene}: `{file}` is not a file name in the animate artifact"),
        ));
    }
    let path = dir.join(file);
    let src = FrameSource::open(&path)?;
    let info = src.info();
    if (info.frames, info.width, info.height) != (*frames, *width, *height) {
        return Err(StageError::data(
            path.display().to_string(),
            format!(
                "holds {} frames of {}×{}, clips.json says {frames} of {width}×{height}: \
                 run the animate stage again",
                info.frames, info.width, info.height
            ),
        ));
    }
    Ok(src)
}

/// The timeline's clips: each scene's picture (a camera move over its still, or its generated
/// clip from the animate artifact in `animate_dir`) in its slot, with its transition out and,
/// for a morph, the generated transition clip.
pub fn timeline_clips<'a>(
    stills: &'a [Still],
    timeline: &Timeline,
    clips: &Clips,
    animate_dir: &Path,
) -> Result<Vec<TimelineClip<'a>>, StageError> {
    let mut tclips = Vec::with_capacity(timeline.scenes.len());
    for (i, slot) in timeline.scenes.iter().enumerate() {
        let sc: &SceneClip = clips
            .clips
            .get(i)
            .ok_or_else(|| StageError::data("clips.json", format!("no clip for scene {i}")))?;
        let picture = match &sc.clip {
            Clip::Camera { path } => {
                let still = stills.get(i).ok_or_else(|| {
                    StageError::data("keyframes.json", format!("no keyframe for scene {i}"))
                })?;
                Picture::Camera { still, path: *path }
            }
            frames @ Clip::Frames { .. } => {
                Picture::Frames(Box::new(frames_source(animate_dir, frames, i)?))
            }
        };
        let morph = match &sc.morph {
            None => None,
            Some(m @ Clip::Frames { .. }) => Some(frames_source(animate_dir, m, i)?),
            Some(Clip::Camera { .. }) => {
                tracing::warn!(
                    "clips.json: scene {i}: a morph must be a generated clip; crossfading"
                );
                None
            }
        };
        tclips.push(TimelineClip {
            picture,
            start: slot.start,
            duration: slot.duration,
            out_blend: sc.blend_out,
            out_seconds: sc.blend_seconds,
            morph,
        });
    }
    Ok(tclips)
}

/// Draws and encodes `job` from the timeline's clips, in checkpointed segments joined at the
/// end (see the module docs).
pub fn render_video(
    ctx: &StageCtx,
    stills: &[Still],
    timeline: &Timeline,
    mut job: VideoJob,
) -> Result<(), StageError> {
    let s = &ctx.job.settings;
    let (_, animate) = visuals(ctx)?;
    let clips: Clips = read_json(&animate.file("clips.json"))?;
    let tclips = timeline_clips(stills, timeline, &clips, &animate.dir)?;
    let mut renderer = TimelineRenderer::new(tclips, job.width, job.height);
    let enc = EncodeSettings {
        width: job.width,
        height: job.height,
        fps: s.fps,
        crf: s.quality.crf(),
        preset: s.quality.x264_preset().to_string(),
        audio_rate: s.audio_rate,
        audio_bitrate: 192_000,
        aac_coder: s.quality.aac_coder().to_string(),
    };
    let frames = (job.seconds * s.fps as f64).round() as i64;
    let tmp = job.out.with_extension("mp4.part");
    // The soundtrack encodes on its own thread while the picture does.
    let samples = std::mem::take(&mut job.audio);
    let audio = AudioEncoding::start(&enc, Box::new(move || Ok(samples)), job.out)?;
    // Segments are written beside the checkpoints they become (a rename, same file system),
    // or, outside a task, in a folder of the output that goes once they are joined.
    let (staging, scratch) = match ctx.checkpoint_dir() {
        Some(d) => (d, false),
        None => (ctx.out.join(".segments"), true),
    };
    std::fs::create_dir_all(&staging).map_err(|e| StageError::io(&staging, e))?;
    let segments = encode_segments(ctx, &mut renderer, &job, &enc, frames, &staging)?;
    join_segments(&tmp, &segments, s.fps, Some(audio))?;
    std::fs::rename(&tmp, job.out).map_err(|e| StageError::io(job.out, e))?;
    if scratch {
        std::fs::remove_dir_all(&staging).map_err(|e| StageError::io(&staging, e))?;
    }
    ctx.progress(1.0);
    Ok(())
}

impl Stage for AssembleStage {
    fn kind(&self) -> StageKind {
        StageKind::Assemble
    }

    fn builtin_engine(&self) -> String {
        "libav/x264+aac@1".into()
    }

    fn params(&self, job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        let s = &job.settings;
        serde_json::json!({
            "lang": lang, "size": [s.width, s.height], "fps": s.fps, "quality": s.quality,
            "crf": s.quality.crf(), "preset": s.quality.x264_preset(),
            "segment_seconds": SEGMENT_SECONDS,
        })
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let s = &ctx.job.settings;
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let timeline: Timeline = read_json(&ctx.input(StageKind::Align)?.file("timeline.json"))?;
        let mix = wav::read(&ctx.input(StageKind::Mix)?.file("mix.wav"))?;
        let ass = ctx.input(StageKind::Captions)?.file("landscape.ass");
        let stills = load_stills(ctx)?;
        render_video(
            ctx,
            &stills,
            &timeline,
            VideoJob {
                width: s.width,
                height: s.height,
                seconds: timeline.total,
                captions: plan.captions.burn_in.then_some(ass.as_path()),
                audio: mix.samples,
                out: &ctx.out.join("final.mp4"),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::clip::ClipWriter;
    use crate::media::compose::Blend;
    use crate::media::image::RgbImage;
    use crate::stages::model::SceneSlot;

    fn write_clip(dir: &Path, name: &str, frames: u32) -> Clip {
        let mut w = ClipWriter::create(&dir.join(name), 16, 8, 8.0).unwrap();
        for k in 0..frames {
            w.push(&RgbImage::filled(16, 8, [k as u8 * 20, 0, 0]))
                .unwrap();
        }
        let info = w.finish().unwrap();
        Clip::Frames {
            file: name.into(),
            fps: info.fps,
            frames: info.frames,
            width: info.width,
            height: info.height,
        }
    }

    fn timeline(n: usize) -> Timeline {
        Timeline {
            lang: "en".into(),
            fps: 24,
            total: n as f64 * 2.0,
            scenes: (0..n)
                .map(|i| SceneSlot {
                    id: format!("s{i}"),
                    start: i as f64 * 2.0,
                    duration: 2.0,
                })
                .collect(),
            lines: vec![],
        }
    }

    fn scene(i: usize, clip: Clip, morph: Option<Clip>) -> SceneClip {
        SceneClip {
            scene: i,
            clip,
            blend_out: Blend::Morph,
            blend_seconds: 0.5,
            morph,
            audio: None,
        }
    }

    #[test]
    fn clips_json_without_morphs_still_parses_and_morphs_round_trip() {
        let old = r#"{"engine":"procedural/ken-burns@1","clips":[{"scene":0,
            "clip":{"type":"camera","path":{"from":{"cx":0.5,"cy":0.5,"zoom":1.0},
            "to":{"cx":0.5,"cy":0.5,"zoom":1.2}}},"blend_out":"crossfade","blend_seconds":0.5}]}"#;
        let clips: Clips = serde_json::from_str(old).unwrap();
        assert_eq!(clips.clips[0].morph, None);
        let json = serde_json::to_string(&clips).unwrap();
        assert!(
            !json.contains("morph"),
            "no morph key when there is none: {json}"
        );
        let frames = Clip::Frames {
            file: "scene-000.mkv".into(),
            fps: 24.0,
            frames: 97,
            width: 768,
            height: 512,
        };
        let mut with = clips.clone();
        with.clips[0].blend_out = Blend::Morph;
        with.clips[0].morph = Some(frames);
        let json = serde_json::to_string(&with).unwrap();
        assert!(json.contains(r#""blend_out":"morph""#), "{json}");
        assert!(json.contains(r#""type":"frames""#), "{json}");
        assert_eq!(serde_json::from_str::<Clips>(&json).unwrap(), with);
    }

    #[test]
    fn generated_clips_and_morphs_come_from_the_animate_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_clip(dir.path(), "scene-000.mkv", 5);
        let m = write_clip(dir.path(), "morph-000.mkv", 3);
        let b = write_clip(dir.path(), "scene-001.mkv", 4);
        let clips = Clips {
            engine: "test".into(),
            clips: vec![scene(0, a.clone(), Some(m)), scene(1, b, None)],
        };
        let tl = timeline(2);
        let got = timeline_clips(&[], &tl, &clips, dir.path()).unwrap();
        assert_eq!(got.len(), 2);
        match &got[0].picture {
            Picture::Frames(src) => assert_eq!(src.info().frames, 5),
            other => panic!("{other:?}"),
        }
        assert_eq!(got[0].morph.as_ref().map(|m| m.info().frames), Some(3));
        assert!(got[1].morph.is_none());
        assert_eq!((got[1].start, got[1].out_blend), (2.0, Blend::Morph));

        // clips.json and the file disagree: the file is named, and what to do.
        let mut wrong = clips.clone();
        if let Clip::Frames { frames, .. } = &mut wrong.clips[1].clip {
            *frames = 9;
        }
        let err = timeline_clips(&[], &tl, &wrong, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("scene-001.mkv") && err.contains("animate"),
            "{err}"
        );

        // A name that leaves the artifact is refused.
        let mut out = clips.clone();
        if let Clip::Frames { file, .. } = &mut out.clips[0].clip {
            *file = "../scene-000.mkv".into();
        }
        let err = timeline_clips(&[], &tl, &out, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a file name"), "{err}");

        // A missing clip file is an error naming it.
        std::fs::remove_file(dir.path().join("morph-000.mkv")).unwrap();
        let err = timeline_clips(&[], &tl, &clips, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("morph-000.mkv"), "{err}");
    }
}
