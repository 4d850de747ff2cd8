//! align: the timeline of one language. Lines are timed from the real length of their voice
//! audio; a scene lasts as long as its speech needs (or longer, if the script asks), rounded up
//! to whole frames so audio and video durations agree exactly. With a Whisper model set up,
//! every line's words are force-aligned to its voice (the known text through the decoder, timed
//! by cross-attention), so captions change where the voice does.

use std::sync::{Arc, Mutex};

use crate::engines::loaded::{self, ModelKey};
use crate::engines::models::ModelRef;
use crate::engines::whisper::Whisper;
use crate::pipeline::{
    read_json, write_json, JobSpec, Resources, Stage, StageCtx, StageError, StageKind,
};

use super::model::{LineSlot, Plan, SceneSlot, Texts, Timeline, Voices, WordSlot};

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

    fn builtin_engine(&self) -> String {
        "audio-length@1".into()
    }

    fn engine(&self, job: &JobSpec) -> String {
        match &job.models.asr {
            Some(m) => format!("audio-length@1+whisper-align/{}@1", m.id),
            None => self.builtin_engine(),
        }
    }

    fn params(&self, job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        let asr = job.models.asr.as_ref().map(|m| (&m.id, &m.fingerprint));
        serde_json::json!({ "lang": lang, "fps": job.settings.fps, "asr": asr })
    }

    fn resources(&self, job: &JobSpec) -> Resources {
        match &job.models.asr {
            Some(m) => Resources {
                cpu_slots: 2,
                ram_bytes: whisper_ram(m),
                ..Resources::default()
            },
            None => Resources::default(),
        }
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
                    words: Vec::new(),
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
        if let Some(m) = &ctx.job.models.asr {
            align_words(ctx, m, lang, &voices, &mut lines)?;
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

/// Host memory Whisper takes: the weights (kept as f16 and f32 copies) and scratch.
fn whisper_ram(m: &ModelRef) -> u64 {
    let bin = std::fs::metadata(m.path.join("model.bin"))
        .map(|x| x.len())
        .unwrap_or(0);
    bin * 2 + (256 << 20)
}

/// Force-aligns the text of every line to its voice and fills `words` on the video's clock.
/// A line that can't be aligned keeps its line-level timing, with a note.
fn align_words(
    ctx: &StageCtx,
    m: &ModelRef,
    lang: &str,
    voices: &Voices,
    lines: &mut [LineSlot],
) -> Result<(), StageError> {
    let texts: Texts = read_json(&ctx.input(StageKind::Translate)?.file("text.json"))?;
    let voice_dir = &ctx.input(StageKind::Voice)?.dir;
    let key = ModelKey {
        model: format!("{}#{}", m.id, m.fingerprint),
        device: None,
        dtype: "ct2".into(),
    };
    let whisper: Arc<Mutex<Whisper>> = loaded::shared(&key, whisper_ram(m), || {
        Whisper::load(&m.path, &candle_core::Device::Cpu)
            .map(Mutex::new)
            .map_err(|e| StageError::Engine(format!("whisper {}: {e}", m.path.display())))
    })?;
    let mut whisper = whisper.lock().unwrap_or_else(|p| p.into_inner());
    let n = lines.len().max(1);
    for (k, slot) in lines.iter_mut().enumerate() {
        ctx.check_cancel()?;
        ctx.progress(k as f32 / n as f32);
        let (Some(text), Some(voiced)) = (
            texts.line(slot.scene, slot.line),
            voices.line(slot.scene, slot.line),
        ) else {
            continue;
        };
        let mono = crate::media::decode::decode_audio_mono(&voice_dir.join(&voiced.file), 16_000)?;
        match whisper.align_text(&mono, lang, text) {
            Ok(words) => {
                slot.words = words
                    .into_iter()
                    .map(|w| WordSlot {
                        text: w.text,
                        start: (slot.start + w.start).min(slot.end),
                        end: (slot.start + w.end).min(slot.end),
                    })
                    .collect();
            }
            Err(e) => ctx.note(format!(
                "scene {} line {} ({lang}): words not aligned ({e}); captions follow the line",
                slot.scene + 1,
                slot.line + 1
            )),
        }
    }
    ctx.progress(1.0);
    Ok(())
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
