//! Whisper speech recognition on candle, loading faster-whisper
//! (CTranslate2) model folders.
//!
//! A model folder holds `model.bin` (CTranslate2 weights, float16/float32,
//! or int8 with per-row scales), `config.json` (alignment heads and token
//! suppression lists, optional) and `vocabulary.txt` or `tokenizer.json`.
//!
//! ```no_run
//! # use std::path::Path;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use reelsmith_whisper::{to_srt, TranscribeOptions, Whisper};
//! let mut model = Whisper::load(Path::new("models/whisper-base"), &candle_core::Device::Cpu)?;
//! let pcm: Vec<f32> = vec![0.0; 16_000]; // 16 kHz mono samples in [-1, 1]
//! let opts = TranscribeOptions { word_timestamps: true, ..Default::default() };
//! let transcript = model.transcribe(&pcm, &opts)?;
//! println!("{}", to_srt(&transcript));
//! # Ok(()) }
//! ```
//!
//! Decoding follows the reference implementation at temperature 0 (greedy):
//! timestamp-token rules, blank/special token suppression, 30 s windows that
//! advance to the last predicted timestamp, conditioning on the previous
//! window's text, no-speech skipping, and word timestamps from dynamic time
//! warping over the cross-attention of the model's alignment heads.
//! Temperature fallback and beam search are not implemented.

mod align;
pub mod audio;
pub mod ct2;
mod decode;
pub mod hf;
mod kernels;
pub mod model;
pub mod tokenizer;

use std::fmt;
use std::path::PathBuf;

pub use decode::Whisper;

/// Errors of model loading and transcription.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `model.bin` is malformed, truncated or not a Whisper model.
    #[error("invalid model file {}: {msg}", path.display())]
    ModelFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// `config.json` is malformed or inconsistent with the weights.
    #[error("invalid model config {}: {msg}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The vocabulary is missing or inconsistent.
    #[error("invalid tokenizer {}: {msg}", path.display())]
    Tokenizer {
        /// The file (or folder).
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A language code the model does not know.
    #[error("unknown language code '{0}'")]
    UnknownLanguage(String),
    /// Invalid arguments.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The cancel flag was raised.
    #[error("transcription cancelled")]
    Cancelled,
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// What the decoder produces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Task {
    /// Speech to text in the spoken language.
    #[default]
    Transcribe,
    /// Speech to English text.
    Translate,
}

pub use reelsmith_kit::hooks::{CancelFlag, ProgressFn};

/// Transcription settings. `Default` gives greedy transcription with
/// language detection and segment-level timestamps.
#[derive(Clone)]
pub struct TranscribeOptions {
    /// Spoken language code (`"en"`, `"de"`, ...); `None` detects it from
    /// the first 30 s.
    pub language: Option<String>,
    /// Transcribe or translate.
    pub task: Task,
    /// Compute per-word timestamps and probabilities.
    pub word_timestamps: bool,
    /// Prompt each window with the text of the previous ones.
    pub condition_on_previous_text: bool,
    /// A window is skipped as silence when its no-speech probability is
    /// above this and its average log-probability below
    /// [`Self::logprob_threshold`].
    pub no_speech_threshold: Option<f32>,
    /// See [`Self::no_speech_threshold`].
    pub logprob_threshold: Option<f32>,
    /// Raised by another thread to stop; `transcribe` then returns
    /// [`WhisperError::Cancelled`].
    pub cancel: Option<CancelFlag>,
    /// Called with the processed fraction after each 30 s window.
    pub progress: Option<ProgressFn>,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            language: None,
            task: Task::Transcribe,
            word_timestamps: false,
            condition_on_previous_text: true,
            no_speech_threshold: Some(0.6),
            logprob_threshold: Some(-1.0),
            cancel: None,
            progress: None,
        }
    }
}

impl fmt::Debug for TranscribeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TranscribeOptions")
            .field("language", &self.language)
            .field("task", &self.task)
            .field("word_timestamps", &self.word_timestamps)
            .field(
                "condition_on_previous_text",
                &self.condition_on_previous_text,
            )
            .field("no_speech_threshold", &self.no_speech_threshold)
            .field("logprob_threshold", &self.logprob_threshold)
            .field("cancel", &self.cancel.is_some())
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// One recognised word.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Word {
    /// Start in seconds from the beginning of the clip.
    pub start: f64,
    /// End in seconds.
    pub end: f64,
    /// The word, without surrounding whitespace (attached punctuation kept).
    pub text: String,
    /// Mean probability of the word's tokens.
    pub prob: f32,
}

/// A timed piece of text (usually a sentence or phrase).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    /// Start in seconds from the beginning of the clip.
    pub start: f64,
    /// End in seconds.
    pub end: f64,
    /// Text without surrounding whitespace.
    pub text: String,
    /// Words (empty unless word timestamps were requested).
    pub words: Vec<Word>,
}

/// Result of [`Whisper::transcribe`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transcript {
    /// Language code used for decoding.
    pub language: String,
    /// Probability of that language (1.0 when it was given).
    pub language_prob: f32,
    /// Full text.
    pub text: String,
    /// Timed segments, in order, non-overlapping, inside the clip.
    pub segments: Vec<Segment>,
}

fn timestamp(seconds: f64, decimal: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    format!("{h:02}:{m:02}:{s:02}{decimal}{ms:03}")
}

/// Renders the segments as SubRip (`.srt`) subtitles.
pub fn to_srt(t: &Transcript) -> String {
    let mut out = String::new();
    for (i, s) in t.segments.iter().filter(|s| !s.text.is_empty()).enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(s.start, ','),
            timestamp(s.end, ','),
            s.text
        ));
    }
    out
}

/// Renders the segments as WebVTT (`.vtt`) subtitles.
pub fn to_vtt(t: &Transcript) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for s in t.segments.iter().filter(|s| !s.text.is_empty()) {
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            timestamp(s.start, '.'),
            timestamp(s.end, '.'),
            s.text.replace("-->", "->")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Transcript {
        Transcript {
            language: "en".into(),
            language_prob: 1.0,
            text: "Hello there. General Kenobi.".into(),
            segments: vec![
                Segment {
                    start: 0.0,
                    end: 1.5,
                    text: "Hello there.".into(),
                    words: vec![],
                },
                Segment {
                    start: 3661.25,
                    end: 3662.0,
                    text: "General Kenobi.".into(),
                    words: vec![],
                },
            ],
        }
    }

    #[test]
    fn srt_format() {
        assert_eq!(
            to_srt(&sample()),
            "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n\
             2\n01:01:01,250 --> 01:01:02,000\nGeneral Kenobi.\n\n"
        );
    }

    #[test]
    fn vtt_format() {
        assert_eq!(
            to_vtt(&sample()),
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n\
             01:01:01.250 --> 01:01:02.000\nGeneral Kenobi.\n\n"
        );
    }
}
