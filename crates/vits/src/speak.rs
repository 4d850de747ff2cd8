//! A Piper voice speaking text: phonemize (espeak-ng, punctuation kept), split into sentences,
//! synthesize each with VITS and hand the audio over sentence by sentence, with a pause between
//! sentences. Long text streams: the first sentence is out before the second is computed.

use std::path::Path;

use candle_core::Device;

use super::model::{Seeded, Vits};
use super::phonemize::{phoneme_ids, phonemize, PhonemizeError};
use super::{PiperVoice, Scales, VoiceError};

/// Silence between sentences (Piper's default `sentence_silence`).
pub const SENTENCE_SILENCE: f32 = 0.2;
/// Each sentence is scaled to this peak (−1 dBFS), as Piper normalises its output.
const PEAK: f32 = 0.891;

/// Longest phoneme string synthesized in one piece (about 20 s of speech).
const MAX_PHONEMES: usize = 400;

/// Cuts `phonemes` into pieces of at most `max` characters, at the last clause mark (`, ; :`)
/// before the limit, else the last space, else anywhere.
fn split_long(phonemes: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = phonemes.trim();
    while rest.chars().count() > max {
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let head = &rest[..limit];
        let cut = head
            .rfind([',', ';', ':'])
            .map(|i| i + 1)
            .filter(|&i| i > limit / 3)
            .or_else(|| head.rfind(' ').filter(|&i| i > 0))
            .unwrap_or(limit);
        out.push(rest[..cut].trim());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Why speaking failed.
#[derive(Debug, thiserror::Error)]
pub enum SpeakError {
    #[error(transparent)]
    Voice(#[from] VoiceError),
    #[error(transparent)]
    Phonemize(#[from] PhonemizeError),
    #[error("{voice}: {msg}")]
    Synthesis { voice: String, msg: String },
}

/// How to speak: speaker and the three scales (the voice's own unless overridden).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeakOptions {
    pub speaker: Option<usize>,
    pub scales: Scales,
    /// Seconds of silence between sentences.
    pub sentence_silence: f32,
    /// Seed of the noise (the same seed and text give the same audio).
    pub seed: u64,
}

/// What was said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpeakReport {
    pub sentences: usize,
    pub samples: usize,
    /// Phonemes espeak-ng produced that the voice has no id for (left out).
    pub unknown_phonemes: Vec<char>,
}

/// A Piper voice ready to speak.
pub struct PiperEngine {
    pub voice: PiperVoice,
    pub vits: Vits,
    /// The voice's name (`en_US-joe-medium`).
    pub name: String,
}

impl PiperEngine {
    /// Opens `NAME.onnx` (+ `NAME.onnx.json`) onto `device`.
    pub fn open(onnx: &Path, device: &Device) -> Result<Self, VoiceError> {
        let voice = PiperVoice::open(onnx)?;
        let vits = Vits::load(&voice, device)?;
        let name = onnx
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "voice".into());
        Ok(Self { voice, vits, name })
    }

    pub fn sample_rate(&self) -> u32 {
        self.voice.config.sample_rate
    }

    /// The voice's defaults: its own scales, first speaker, Piper's sentence pause.
    pub fn default_options(&self) -> SpeakOptions {
        SpeakOptions {
            speaker: None,
            scales: self.voice.config.scales,
            sentence_silence: SENTENCE_SILENCE,
            seed: 0,
        }
    }

    /// A speaker by name (`speaker_id_map`) or number.
    pub fn speaker(&self, name: &str) -> Result<usize, String> {
        let c = &self.voice.config;
        if let Some(&id) = c.speakers.get(name) {
            return Ok(id);
        }
        match name.parse::<usize>() {
            Ok(n) if n < c.num_speakers => Ok(n),
            _ => {
                let names: Vec<&str> = c.speakers.keys().map(String::as_str).take(12).collect();
                Err(if c.num_speakers <= 1 {
                    format!(
                        "voice {} has a single speaker; remove the speaker",
                        self.name
                    )
                } else if names.is_empty() {
                    format!(
                        "voice {} has no speaker {name:?}; use a number below {}",
                        self.name, c.num_speakers
                    )
                } else {
                    format!(
                        "voice {} has no speaker {name:?}; its speakers include {}",
                        self.name,
                        names.join(", ")
                    )
                })
            }
        }
    }

    /// Speaks `text`, calling `sink` with each sentence's samples (the pause before a
    /// sentence is part of its chunk). `sink` may stop the work by returning an error.
    pub fn speak_streaming<E: From<SpeakError>>(
        &self,
        text: &str,
        opts: &SpeakOptions,
        mut sink: impl FnMut(&[f32]) -> Result<(), E>,
    ) -> Result<SpeakReport, E> {
        let sentences =
            phonemize(text, &self.voice.config.espeak_voice).map_err(SpeakError::from)?;
        let mut noise = Seeded::new(opts.seed);
        let mut report = SpeakReport::default();
        let gap = (opts.sentence_silence.max(0.0) * self.sample_rate() as f32) as usize;
        for s in &sentences {
            // A very long sentence (a transcript without stops) is spoken in pieces cut at
            // clause, else word, boundaries: attention is quadratic in its length.
            let mut samples = Vec::new();
            for piece in split_long(&s.phonemes, MAX_PHONEMES) {
                let (ids, unknown) = phoneme_ids(piece, &self.voice.config.phoneme_ids);
                for c in unknown {
                    if !report.unknown_phonemes.contains(&c) {
                        report.unknown_phonemes.push(c);
                    }
                }
                let out = self
                    .vits
                    .synthesize(&ids, opts.scales, opts.speaker, &mut noise)
                    .map_err(|e| SpeakError::Synthesis {
                        voice: self.name.clone(),
                        msg: e.to_string(),
                    })?;
                samples.extend(out.samples);
            }
            let peak = samples.iter().fold(0f32, |m, s| m.max(s.abs()));
            let gain = PEAK / peak.max(0.01);
            let mut chunk = Vec::with_capacity(samples.len() + gap);
            if report.sentences > 0 {
                chunk.resize(gap, 0.0);
            }
            chunk.extend(samples.iter().map(|s| s * gain));
            report.sentences += 1;
            report.samples += chunk.len();
            sink(&chunk)?;
        }
        Ok(report)
    }

    /// Speaks `text` into one buffer.
    pub fn speak(
        &self,
        text: &str,
        opts: &SpeakOptions,
    ) -> Result<(Vec<f32>, SpeakReport), SpeakError> {
        let mut all = Vec::new();
        let report = self.speak_streaming(text, opts, |c: &[f32]| {
            all.extend_from_slice(c);
            Ok::<(), SpeakError>(())
        })?;
        Ok((all, report))
    }
}

#[cfg(test)]
mod tests {
    use super::split_long;

    #[test]
    fn long_sentences_split_at_clauses_then_words() {
        assert_eq!(split_long("abc def", 10), ["abc def"]);
        assert_eq!(
            split_long("aaaa, bbbb cccc dddd", 12),
            ["aaaa,", "bbbb cccc", "dddd"]
        );
        assert_eq!(split_long("aaaa bbbb cccc", 6), ["aaaa", "bbbb", "cccc"]);
        assert_eq!(split_long("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        let ipa = "ðə kwˈɪk bɹˈaʊn fˈɑːks ".repeat(50);
        for p in split_long(&ipa, 100) {
            assert!(p.chars().count() <= 100 && !p.starts_with(' ') && !p.is_empty());
        }
    }
}
