//! align: the timeline of one language. The embedded engine times lines from the real length of
//! their voice audio; a scene lasts as long as its speech needs (or longer, if the script asks),
//! rounded up to whole frames so audio and video durations agree exactly.

use crate::pipeline::{read_json, write_json, JobSpec, Stage, StageCtx, StageError, StageKind};

use super::model::{LineSlot, Plan, SceneSlot, Timeline, Voices};

pub struct AlignStage;

/// Rounds `seconds` up to a whole number of frames (with a tolerance for float noise).
pub fn whole_frames(seconds: f64, fps: u32) -> f64 {
    let frames = (seconds * fps as f64 - 1e-6).ceil().max(1.0);
    frames / fps as f64
}

impl Stage for AlignStage {
    fn kind(&self) -> StageKind {
        StageKind::Align
    }

    fn engine(&self) -> String {
        "audio-length@1".into()
    }

    fn params(&self, job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({ "lang": lang, "fps": job.settings.fps })
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let lang = ctx.lang()?;
        let fps = ctx.job.settings.fps;
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let voices: Voices = read_json(&ctx.input(StageKind::Voice)?.file("voice.json"))?;
        let t = &plan.timing;
        let mut start = 0.0f64;
        let mut scenes = Vec::new();
        let mut lines = Vec::new();
        for (si, scene) in plan.scenes.iter().enumerate() {
            let mine: Vec<_> = voices.lines.iter().filter(|l| l.scene == si).collect();
            let speech: f64 = mine.iter().map(|l| l.seconds).sum::<f64>()
                + t.line_gap * mine.len().saturating_sub(1) as f64;
            let needed = if mine.is_empty() {
                0.0
            } else {
                t.lead_in + speech + t.tail
            };
            let mut duration = needed.max(t.min_scene_seconds);
            if let Some(asked) = scene.min_duration {
                if asked + 1e-9 < needed {
                    ctx.note(format!(
                        "scene `{}` ({lang}): duration {asked:.2} s is shorter than its speech ({needed:.2} s); lengthened",
                        scene.id
                    ));
                }
                duration = duration.max(asked);
            }
            let duration = whole_frames(duration, fps);
            // Speech sits after the lead-in, centred in any extra time the script asked for.
            let slack = (duration - needed).max(0.0);
            let mut cursor = start
                + if mine.is_empty() {
                    0.0
                } else {
                    t.lead_in + slack / 2.0
                };
            for l in &mine {
                lines.push(LineSlot {
                    scene: si,
                    line: l.line,
                    start: cursor,
                    end: cursor + l.seconds,
                });
                cursor += l.seconds + t.line_gap;
            }
            scenes.push(SceneSlot {
                id: scene.id.clone(),
                start,
                duration,
            });
            start += duration;
        }
        // Re-derive the total from frame counts to avoid drift.
        let frames: u64 = scenes
            .iter()
            .map(|s| (s.duration * fps as f64).round() as u64)
            .sum();
        write_json(
            &ctx.out.join("timeline.json"),
            &Timeline {
                lang: lang.to_string(),
                fps,
                total: frames as f64 / fps as f64,
                scenes,
                lines,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_frames_rounds_up_but_not_exact_values() {
        assert_eq!(whole_frames(1.0, 30), 1.0);
        assert!((whole_frames(1.01, 30) - 31.0 / 30.0).abs() < 1e-12);
        assert!((whole_frames(0.1 + 0.2, 10) - 0.3).abs() < 1e-12);
    }
}
