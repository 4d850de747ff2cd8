//! shorts: the vertical cut (1080×1920, at most 60 s) of one language — the opening scenes that
//! fit, the same camera moves reframed for portrait, captions re-laid for the tall frame, and
//! the soundtrack faded and re-normalised.

use crate::media::mix::{fade, normalize_loudness};
use crate::media::wav;
use crate::pipeline::{read_json, write_json, JobSpec, Stage, StageCtx, StageError, StageKind};

use super::assemble::{load_stills, render_video, VideoJob};
use super::mix::{CEILING_DBTP, TARGET_LUFS};
use super::model::{Plan, Timeline};

pub struct ShortsStage;

/// Where the short ends: the last scene boundary within `max`, or `max` itself when even the
/// first scene is longer.
pub fn cut_point(timeline: &Timeline, max: f64) -> f64 {
    if timeline.total <= max + 1e-9 {
        return timeline.total;
    }
    let mut end = 0.0;
    for s in &timeline.scenes {
        let e = s.start + s.duration;
        if e <= max + 1e-9 {
            end = e;
        }
    }
    if end > 0.0 {
        end
    } else {
        max
    }
}

impl Stage for ShortsStage {
    fn kind(&self) -> StageKind {
        StageKind::Shorts
    }

    fn builtin_engine(&self) -> String {
        "libav/x264+aac@1".into()
    }

    fn params(&self, job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        let s = &job.settings;
        serde_json::json!({
            "lang": lang, "size": [s.short_width, s.short_height], "max": s.short_max_seconds,
            "fps": s.fps, "crf": s.quality.crf(), "preset": s.quality.x264_preset(),
        })
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let s = &ctx.job.settings;
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let timeline: Timeline = read_json(&ctx.input(StageKind::Align)?.file("timeline.json"))?;
        if let Some(rec) = plan.recorded.as_ref().filter(|r| !r.shorts.is_empty()) {
            return super::recorded_shorts::recorded_shorts(ctx, &plan, rec, &timeline);
        }
        let end = cut_point(&timeline, s.short_max_seconds);
        let frames = (end * s.fps as f64).round() as usize;
        let seconds = frames as f64 / s.fps as f64;
        let mix = wav::read(&ctx.input(StageKind::Mix)?.file("mix.wav"))?;
        let samples = (seconds * s.audio_rate as f64).round() as usize * 2;
        let mut audio: Vec<f32> = mix.samples.into_iter().take(samples).collect();
        audio.resize(samples, 0.0);
        if end + 1e-9 < timeline.total {
            fade(&mut audio, s.audio_rate, 0.0, 0.8);
        }
        let report = normalize_loudness(&mut audio, s.audio_rate, TARGET_LUFS, CEILING_DBTP);
        let ass = ctx.input(StageKind::Captions)?.file("portrait.ass");
        let stills = load_stills(ctx)?;
        render_video(
            ctx,
            &stills,
            &timeline,
            VideoJob {
                width: s.short_width,
                height: s.short_height,
                seconds,
                captions: plan.captions.burn_in.then_some(ass.as_path()),
                audio,
                out: &ctx.out.join("short.mp4"),
            },
        )?;
        write_json(
            &ctx.out.join("short.json"),
            &serde_json::json!({
                "seconds": seconds,
                "of": timeline.total,
                "output_lufs": report.output_lufs,
                "true_peak_dbtp": report.output_true_peak_dbtp,
            }),
        )
    }
}
