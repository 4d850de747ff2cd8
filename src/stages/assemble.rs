//! assemble: the finished video of one language — clips drawn frame by frame with their camera
//! moves and transitions, captions burned in with libass, the mixed soundtrack, H.264 + AAC in
//! an MP4 with the index up front. All in process.

use std::path::Path;

use crate::engines::Clip;
use crate::media::compose::make_writable;
use crate::media::compose::{new_frame, Still, TimelineClip, TimelineRenderer};
use crate::media::encode::{EncodeSettings, Mp4Writer};
use crate::media::overlay::CaptionTrack;
use crate::media::{stills, wav};
use crate::pipeline::{read_json, JobSpec, Stage, StageCtx, StageError, StageKind};

use super::model::{Clips, Keyframes, Plan, Timeline};

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

/// Loads every scene's still once (converted for sampling).
pub fn load_stills(ctx: &StageCtx) -> Result<Vec<Still>, StageError> {
    let kf_art = ctx.input(StageKind::Keyframes)?;
    let kf: Keyframes = read_json(&kf_art.file("keyframes.json"))?;
    kf.frames
        .iter()
        .map(|f| Ok(Still::from_rgb(&stills::read_png(&kf_art.file(&f.file))?)))
        .collect()
}

/// Draws and encodes `job` from the timeline's clips.
pub fn render_video(
    ctx: &StageCtx,
    stills: &[Still],
    timeline: &Timeline,
    job: VideoJob,
) -> Result<(), StageError> {
    let s = &ctx.job.settings;
    let clips: Clips = read_json(&ctx.input(StageKind::Animate)?.file("clips.json"))?;
    let mut tclips = Vec::new();
    for (i, slot) in timeline.scenes.iter().enumerate() {
        let sc = clips
            .clips
            .get(i)
            .ok_or_else(|| StageError::data("clips.json", format!("no clip for scene {i}")))?;
        let still = stills.get(i).ok_or_else(|| {
            StageError::data("keyframes.json", format!("no keyframe for scene {i}"))
        })?;
        let Clip::Camera { path } = sc.clip.clone();
        tclips.push(TimelineClip {
            still,
            path,
            start: slot.start,
            duration: slot.duration,
            out_blend: sc.blend_out,
            out_seconds: sc.blend_seconds,
        });
    }
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
    let audio = job.audio;
    let mut writer = Mp4Writer::create(&tmp, &enc, Some(Box::new(move || Ok(audio))))?;
    let mut captions = match job.captions {
        Some(p) => Some(CaptionTrack::render(p, job.width, job.height, s.fps)?),
        None => None,
    };
    let mut frame = new_frame(job.width, job.height);
    for n in 0..frames {
        if n % 8 == 0 {
            ctx.check_cancel()?;
            ctx.progress(n as f32 / frames as f32);
        }
        make_writable(&mut frame)?;
        renderer.render(n as f64 / s.fps as f64, &mut frame);
        if let Some(c) = captions.as_mut() {
            c.apply(n, &mut frame)?;
        }
        writer.push_frame(&mut frame)?;
    }
    writer.finish()?;
    std::fs::rename(&tmp, job.out).map_err(|e| StageError::io(job.out, e))?;
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
