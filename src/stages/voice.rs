//! voice: every spoken line in one language, one WAV each at the mix rate. Lines are memoised
//! items, so editing one line re-voices only that line.

use std::path::Path;

use crate::engines::procedural::espeak::Espeak;
use crate::engines::{SpeechEngine, VoiceParams};
use crate::media::wav::{self, Audio};
use crate::pipeline::{read_json, write_json, JobSpec, Stage, StageCtx, StageError, StageKind};
use crate::script::NARRATOR;

use super::model::{Plan, Texts, VoicedLine, Voices};

pub struct VoiceStage;

/// Links `src` to `dst` (or copies when linking is impossible, e.g. across file systems).
pub fn place(src: &Path, dst: &Path) -> Result<(), StageError> {
    if std::fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    std::fs::copy(src, dst)
        .map(|_| ())
        .map_err(|e| StageError::io(dst, e))
}

/// The voice a speaker uses in `lang`.
pub fn voice_for(plan: &Plan, speaker: &str, lang: &str) -> Result<VoiceParams, StageError> {
    let base = plan.voices.get(lang).ok_or_else(|| {
        StageError::data(
            format!("channel {}", plan.channel),
            format!("has no narrator voice for {lang}; add defaults.voices.{lang}"),
        )
    })?;
    let mut v = VoiceParams {
        language: lang.to_string(),
        voice: base.espeak.clone(),
        variant: base.variant.clone(),
        pitch: base.pitch,
        rate: base.rate,
    };
    if let Some(c) = plan.characters.iter().find(|c| c.id == speaker) {
        v.variant = c.variant.clone();
        v.pitch = c.pitch.unwrap_or(v.pitch);
        v.rate = c.rate.unwrap_or(v.rate);
    } else if speaker != NARRATOR {
        return Err(StageError::data(
            format!("speaker `{speaker}`"),
            "is not a character of the script",
        ));
    }
    Ok(v)
}

impl Stage for VoiceStage {
    fn kind(&self) -> StageKind {
        StageKind::Voice
    }

    fn builtin_engine(&self) -> String {
        Espeak::default().id()
    }

    fn params(&self, job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({ "lang": lang, "rate": job.settings.audio_rate })
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let lang = ctx.lang()?;
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let texts: Texts = read_json(&ctx.input(StageKind::Translate)?.file("text.json"))?;
        let engine = Espeak::default();
        let rate = ctx.job.settings.audio_rate;
        let total: usize = plan.scenes.iter().map(|s| s.lines.len()).sum();
        let mut done = 0usize;
        let mut lines = Vec::new();
        for (si, scene) in plan.scenes.iter().enumerate() {
            for (li, line) in scene.lines.iter().enumerate() {
                ctx.check_cancel()?;
                let text = texts
                    .scenes
                    .get(si)
                    .and_then(|s| s.lines.get(li))
                    .ok_or_else(|| {
                        StageError::data(
                            "text.json",
                            format!("no text for scenes[{si}].lines[{li}]"),
                        )
                    })?;
                let voice = voice_for(&plan, &line.speaker, lang)?;
                let params = serde_json::json!({
                    "engine": engine.id(), "text": text, "voice": voice, "rate": rate,
                });
                let item = ctx.item("voice-line", &params, |dir| {
                    let audio = engine.synthesize(text, &voice).map_err(|e| {
                        StageError::Engine(format!("scenes[{si}].lines[{li}] ({lang}): {e}"))
                    })?;
                    let samples = wav::resample_mono(&audio.samples, audio.rate, rate)?;
                    wav::write_f32(
                        &dir.join("line.wav"),
                        &Audio {
                            rate,
                            channels: 1,
                            samples,
                        },
                    )?;
                    Ok(())
                })?;
                let file = format!("s{si:03}-l{li:03}.wav");
                place(&item.join("line.wav"), &ctx.out.join(&file))?;
                let audio = wav::read(&ctx.out.join(&file))?;
                lines.push(VoicedLine {
                    scene: si,
                    line: li,
                    speaker: line.speaker.clone(),
                    file,
                    seconds: audio.seconds(),
                    engine: engine.id(),
                });
                done += 1;
                ctx.progress(done as f32 / total.max(1) as f32);
            }
        }
        write_json(
            &ctx.out.join("voice.json"),
            &Voices {
                lang: lang.to_string(),
                rate,
                lines,
            },
        )
    }
}
