//! voice: every spoken line in one language, one WAV each at the mix rate. Lines are memoised
//! items, so editing one line re-voices only that line. A language with an installed Piper voice
//! speaks with it (VITS; per character: speaker and scales); the others speak with espeak-ng,
//! and the job's notes say so.

use std::path::Path;
use std::sync::Arc;

use crate::engines::loaded::{self, ModelKey};
use crate::engines::models::ModelRef;
use crate::engines::procedural::espeak::{trim_silence, Espeak};
use crate::engines::vits::speak::{PiperEngine, SpeakOptions};
use crate::engines::{SpeechEngine, VoiceParams};
use crate::media::wav::{self, Audio};
use crate::pipeline::{
    read_json, write_json, JobSpec, Resources, Stage, StageCtx, StageError, StageKind,
};
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

/// How a speaker sounds with a Piper voice: speaker id and scales.
pub fn piper_options(
    plan: &Plan,
    speaker: &str,
    lang: &str,
    engine: &PiperEngine,
) -> Result<SpeakOptions, StageError> {
    let mut opts = engine.default_options();
    let narrator_rate = plan.voices.get(lang).map(|v| v.rate);
    let multi = engine.voice.config.num_speakers > 1;
    if speaker == NARRATOR {
        if multi {
            opts.speaker = Some(0);
        }
        return Ok(opts);
    }
    let (index, c) = plan
        .characters
        .iter()
        .enumerate()
        .find(|(_, c)| c.id == speaker)
        .ok_or_else(|| {
            StageError::data(
                format!("speaker `{speaker}`"),
                "is not a character of the script",
            )
        })?;
    let field = format!("characters `{}`", c.id);
    match &c.speaker {
        Some(s) => {
            opts.speaker = Some(
                engine
                    .speaker(s)
                    .map_err(|e| StageError::data(format!("{field}.speaker"), e))?,
            );
        }
        // Characters of a multi-speaker voice get speakers of their own, in order after the
        // narrator's.
        None if multi => {
            opts.speaker = Some((index + 1) % engine.voice.config.num_speakers);
        }
        None => {}
    }
    match (c.length_scale, c.rate, narrator_rate) {
        (Some(l), _, _) => opts.scales.length_scale = l,
        // A faster `rate` than the narrator's speaks proportionally faster.
        (None, Some(r), Some(n)) if r > 0 => {
            opts.scales.length_scale *= n as f32 / r as f32;
        }
        _ => {}
    }
    if let Some(n) = c.noise_scale {
        opts.scales.noise_scale = n;
    }
    if let Some(n) = c.noise_w {
        opts.scales.noise_w = n;
    }
    Ok(opts)
}

/// How much higher (> 1) or lower a character speaks with a Piper voice: the script's `pitch`
/// (0..=99, 50 neutral) spans ±6 semitones. The narrator keeps the voice's own pitch.
pub fn pitch_factor(plan: &Plan, speaker: &str) -> f32 {
    plan.characters
        .iter()
        .find(|c| c.id == speaker)
        .and_then(|c| c.pitch)
        .map_or(1.0, |p| {
            let semitones = (p.min(99) as f32 - 50.0) / 50.0 * 6.0;
            2f32.powf(semitones / 12.0)
        })
}

/// The loaded Piper voice of a job's language (shared by tasks of the process).
fn piper_engine(m: &ModelRef) -> Result<Arc<PiperEngine>, StageError> {
    let key = ModelKey {
        model: format!("{}#{}", m.id, m.fingerprint),
        device: None,
        dtype: "f32".into(),
    };
    let bytes = std::fs::metadata(&m.path)
        .map(|x| x.len())
        .unwrap_or(64 << 20)
        * 2;
    loaded::shared(&key, bytes, || {
        PiperEngine::open(&m.path, &candle_core::Device::Cpu)
            .map_err(|e| StageError::Engine(format!("piper voice {}: {e}", m.id)))
    })
}

impl Stage for VoiceStage {
    fn kind(&self) -> StageKind {
        StageKind::Voice
    }

    fn builtin_engine(&self) -> String {
        Espeak::default().id()
    }

    fn engine(&self, job: &JobSpec) -> String {
        if job.models.tts.is_empty() {
            self.builtin_engine()
        } else {
            format!("{}+piper-vits@1", self.builtin_engine())
        }
    }

    fn params(&self, job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        let tts = lang
            .and_then(|l| job.models.tts.get(l))
            .map(|m| (&m.id, &m.fingerprint));
        serde_json::json!({ "lang": lang, "rate": job.settings.audio_rate, "tts": tts })
    }

    fn resources(&self, job: &JobSpec) -> Resources {
        if job.models.tts.is_empty() {
            Resources::default()
        } else {
            // VITS runs its convolutions on both cores; the voice's weights and activations.
            Resources {
                cpu_slots: 2,
                ram_bytes: 512 << 20,
                ..Resources::default()
            }
        }
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let lang = ctx.lang()?;
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let texts: Texts = read_json(&ctx.input(StageKind::Translate)?.file("text.json"))?;
        let engine = Espeak::default();
        let piper = match ctx.job.models.tts.get(lang) {
            Some(m) => Some((m, piper_engine(m)?)),
            // Said only when the job speaks some language with Piper: on a machine with no
            // voices at all, espeak-ng is simply the voice (report.json names it either way).
            None if !ctx.job.models.tts.is_empty() => {
                ctx.note(format!(
                    "voice ({lang}): no Piper voice installed for {lang}; spoken with espeak-ng \
                     (`reelsmith models list --kind tts` lists voices to pull)"
                ));
                None
            }
            None => None,
        };
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
                let fail = |e: String| {
                    StageError::Engine(format!("scenes[{si}].lines[{li}] ({lang}): {e}"))
                };
                // Mono samples at their own rate → the line's WAV at the mix rate.
                let write = |dir: &Path, samples: &[f32], from: u32| -> Result<(), StageError> {
                    let samples = wav::resample_mono(samples, from, rate)?;
                    wav::write_f32(
                        &dir.join("line.wav"),
                        &Audio {
                            rate,
                            channels: 1,
                            samples,
                        },
                    )?;
                    Ok(())
                };
                let (item, engine_id) = match &piper {
                    Some((m, piper)) => {
                        let mut opts = piper_options(&plan, &line.speaker, lang, piper)?;
                        opts.seed =
                            scene.seed ^ (li as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                        // A character's pitch: speak r× slower, play r× faster (formants move
                        // with it, like a small voice change; duration stays).
                        let r = pitch_factor(&plan, &line.speaker);
                        opts.scales.length_scale *= r;
                        let s = opts.scales;
                        let params = serde_json::json!({
                            "engine": format!("piper-vits@1/{}", m.id),
                            "fingerprint": m.fingerprint, "text": text,
                            "speaker": opts.speaker, "seed": opts.seed, "pitch": r,
                            "scales": [s.noise_scale, s.length_scale, s.noise_w], "rate": rate,
                        });
                        let item = ctx.item("voice-line", &params, |dir| {
                            let (samples, _) =
                                piper.speak(text, &opts).map_err(|e| fail(e.to_string()))?;
                            let from = piper.sample_rate();
                            let played = (from as f32 * r).round() as u32;
                            write(dir, trim_silence(&samples, from), played)
                        })?;
                        (item, format!("piper/{}", m.id))
                    }
                    None => {
                        let params = serde_json::json!({
                            "engine": engine.id(), "text": text, "voice": voice, "rate": rate,
                        });
                        let item = ctx.item("voice-line", &params, |dir| {
                            let audio = engine
                                .synthesize(text, &voice)
                                .map_err(|e| fail(e.to_string()))?;
                            write(dir, &audio.samples, audio.rate)
                        })?;
                        (item, engine.id())
                    }
                };
                let file = format!("s{si:03}-l{li:03}.wav");
                place(&item.join("line.wav"), &ctx.out.join(&file))?;
                let audio = wav::read(&ctx.out.join(&file))?;
                lines.push(VoicedLine {
                    scene: si,
                    line: li,
                    speaker: line.speaker.clone(),
                    file,
                    seconds: audio.seconds(),
                    engine: engine_id,
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
