//! The transcription pipeline: language detection, greedy decoding with
//! Whisper's timestamp rules over sliding 30 s windows, and word timing.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::align::{self, WordTiming};
use super::audio::{self, LogMel, N_FRAMES, N_SAMPLES, SAMPLE_RATE};
use super::ct2::Ct2Model;
use super::model::{DecoderState, ModelDims, WhisperModel};
use super::tokenizer::Tokenizer;
use super::{Segment, Task, TranscribeOptions, Transcript, WhisperError, Word};

/// Seconds per mel frame.
const SECONDS_PER_MEL_FRAME: f64 = 0.01;
/// Seconds per timestamp token step.
const SECONDS_PER_TIMESTAMP: f64 = 0.02;
/// Mel frames per timestamp step (the encoder halves the frame rate).
const MEL_FRAMES_PER_TIMESTAMP: usize = 2;
/// The first timestamp of a window may be at most this many steps (1 s).
const MAX_INITIAL_TIMESTAMP_STEPS: u32 = 50;

/// Optional fields of a faster-whisper `config.json`.
#[derive(Debug, Default, serde::Deserialize)]
struct ConfigFile {
    #[serde(default)]
    alignment_heads: Option<Vec<(usize, usize)>>,
    #[serde(default)]
    suppress_ids: Option<Vec<i64>>,
    #[serde(default)]
    suppress_ids_begin: Option<Vec<i64>>,
}

/// Result of decoding one window.
struct WindowResult {
    /// Sampled tokens (timestamps included, `<|endoftext|>` excluded).
    tokens: Vec<u32>,
    avg_logprob: f32,
    no_speech_prob: f32,
}

/// A segment of one window before word timing.
struct WindowSegment {
    start: f64,
    end: f64,
    tokens: Vec<u32>,
    words: Vec<Word>,
}

/// A loaded Whisper model ready to transcribe.
#[derive(Debug)]
pub struct Whisper {
    model: WhisperModel,
    tokenizer: Tokenizer,
    device: Device,
    alignment_heads: Vec<(usize, usize)>,
    /// Tokens never sampled.
    suppress: Vec<u32>,
    /// Tokens not sampled first.
    suppress_begin: Vec<u32>,
    multilingual: bool,
}

fn log_sum_exp(v: &[f32]) -> f32 {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + v.iter().map(|x| (x - max).exp()).sum::<f32>().ln()
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

fn cancelled(opts: &TranscribeOptions) -> bool {
    reelsmith_kit::is_cancelled(opts.cancel.as_ref())
}

impl Whisper {
    /// Loads a faster-whisper model folder (`model.bin`, optional
    /// `config.json`, `vocabulary.txt` or `tokenizer.json`), or a Hugging Face checkpoint
    /// folder (`model.safetensors`, `config.json`, `tokenizer.json`, optional
    /// `generation_config.json`).
    ///
    /// Weights are converted to `f32` on the CPU and to `f16` on other
    /// devices.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, WhisperError> {
        let hf = !dir.join("model.bin").is_file() && super::hf::is_checkpoint(dir);
        let ct2 = if hf {
            super::hf::load(dir)?
        } else {
            Ct2Model::open(&dir.join("model.bin"))?
        };
        let model = WhisperModel::from_ct2(&ct2, device)?;
        drop(ct2);
        let dims = model.dims;
        let tokenizer = Tokenizer::load(dir, dims.n_vocab)?;

        let config_path = if hf {
            dir.join("generation_config.json")
        } else {
            dir.join("config.json")
        };
        let config: ConfigFile = if hf {
            // A Hugging Face checkpoint keeps these in generation_config.json.
            super::hf::generation_config(dir)
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| WhisperError::Config {
                    path: config_path.clone(),
                    msg: e.to_string(),
                })?
                .unwrap_or_default()
        } else if config_path.is_file() {
            let text =
                std::fs::read_to_string(&config_path).map_err(|source| WhisperError::Io {
                    path: config_path.clone(),
                    source,
                })?;
            serde_json::from_str(&text).map_err(|e| WhisperError::Config {
                path: config_path.clone(),
                msg: e.to_string(),
            })?
        } else {
            ConfigFile::default()
        };
        let config_err = |msg: String| WhisperError::Config {
            path: config_path.clone(),
            msg,
        };

        // Without a list, use every head of the second half of the layers
        // (what the reference does for models without known heads).
        let alignment_heads = match config.alignment_heads {
            Some(h) if !h.is_empty() => h,
            _ => (dims.n_text_layer / 2..dims.n_text_layer)
                .flat_map(|l| (0..dims.n_text_head).map(move |h| (l, h)))
                .collect(),
        };
        if let Some(&(l, h)) = alignment_heads
            .iter()
            .find(|&&(l, h)| l >= dims.n_text_layer || h >= dims.n_text_head)
        {
            return Err(config_err(format!(
                "alignment head ({l}, {h}) is outside the decoder's {} layers × {} heads",
                dims.n_text_layer, dims.n_text_head
            )));
        }

        let in_vocab = |ids: Vec<i64>| -> Vec<u32> {
            ids.into_iter()
                .filter(|&t| t >= 0 && (t as usize) < dims.n_vocab)
                .map(|t| t as u32)
                .collect()
        };
        let mut suppress = in_vocab(config.suppress_ids.unwrap_or_default());
        // Special tokens other than <|endoftext|> and timestamps are never text.
        suppress.extend(tokenizer.eot + 1..tokenizer.timestamp_begin);
        suppress.sort_unstable();
        suppress.dedup();
        let suppress_begin = match config.suppress_ids_begin {
            Some(ids) => in_vocab(ids),
            None => {
                let space = (0..tokenizer.eot).find(|&t| tokenizer.token_bytes(t) == b" ");
                space.into_iter().chain([tokenizer.eot]).collect()
            }
        };
        let multilingual = !tokenizer.languages.is_empty() && dims.n_vocab >= 51865;
        Ok(Self {
            model,
            tokenizer,
            device: device.clone(),
            alignment_heads,
            suppress,
            suppress_begin,
            multilingual,
        })
    }

    /// Model hyper-parameters.
    pub fn dims(&self) -> ModelDims {
        self.model.dims
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Whether the model knows several languages (not an `.en` model).
    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    /// Language codes the model can be told to decode.
    pub fn languages(&self) -> Vec<&str> {
        if self.multilingual {
            self.tokenizer
                .languages
                .iter()
                .map(|(c, _)| c.as_str())
                .collect()
        } else {
            vec!["en"]
        }
    }

    fn encode_window(&self, mel: &LogMel, start: usize) -> Result<Tensor, WhisperError> {
        let window = mel.window(start);
        Ok(self.model.encode(&window, &self.device)?)
    }

    fn logits_rows(&self, hidden: &Tensor, rows: &[usize]) -> Result<Vec<Vec<f32>>, WhisperError> {
        let idx = Tensor::new(
            rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            hidden.device(),
        )?;
        let h = hidden.index_select(&idx, 0)?;
        Ok(self.model.decoder.logits(&h)?.to_vec2::<f32>()?)
    }

    /// Language probabilities from one window's audio features.
    fn detect_from_audio(&self, audio: &Tensor) -> Result<(String, f32), WhisperError> {
        if !self.multilingual {
            return Ok(("en".into(), 1.0));
        }
        let mut state = self.model.decoder.new_state(audio)?;
        let out = self
            .model
            .decoder
            .forward(&[self.tokenizer.sot], &mut state, &[])?;
        let logits = self.logits_rows(&out.hidden, &[0])?.remove(0);
        let lang_logits: Vec<f32> = self
            .tokenizer
            .languages
            .iter()
            .map(|&(_, id)| logits[id as usize])
            .collect();
        let lse = log_sum_exp(&lang_logits);
        let best = argmax(&lang_logits);
        let prob = (lang_logits[best] - lse).exp();
        Ok((self.tokenizer.languages[best].0.clone(), prob))
    }

    /// Detects the spoken language from the first 30 s of 16 kHz mono
    /// audio: the decoder's first-step distribution over the language
    /// tokens. Returns the language code and its probability.
    pub fn detect_language(&mut self, pcm_16k_mono: &[f32]) -> Result<(String, f32), WhisperError> {
        check_samples(pcm_16k_mono)?;
        let head = &pcm_16k_mono[..pcm_16k_mono.len().min(N_SAMPLES)];
        let mel = audio::log_mel_spectrogram(head, self.model.dims.n_mels, N_SAMPLES);
        let audio = self.encode_window(&mel, 0)?;
        self.detect_from_audio(&audio)
    }

    /// Removes tokens the timestamp and suppression rules forbid after
    /// `sampled` (the tokens decoded so far in this window).
    fn apply_rules(&self, logits: &mut [f32], sampled: &[u32]) {
        let tk = &self.tokenizer;
        let ts = tk.timestamp_begin as usize;
        let eot = tk.eot as usize;
        let ninf = f32::NEG_INFINITY;
        let at_begin = sampled.is_empty();
        if at_begin {
            for &t in &self.suppress_begin {
                logits[t as usize] = ninf;
            }
        }
        for &t in &self.suppress {
            logits[t as usize] = ninf;
        }
        logits[tk.no_timestamps as usize] = ninf;

        let is_ts = |t: &u32| *t >= tk.timestamp_begin;
        let n = sampled.len();
        let last_ts = n >= 1 && is_ts(&sampled[n - 1]);
        let penultimate_ts = n < 2 || is_ts(&sampled[n - 2]);
        if last_ts {
            if penultimate_ts {
                // A segment just closed: text must follow.
                logits[ts..].fill(ninf);
            } else {
                // A text run just ended: close the segment or stop.
                logits[..eot].fill(ninf);
            }
        }
        if let Some(&last) = sampled.iter().rev().find(|t| is_ts(t)) {
            // Timestamps never go back, and segments are never empty.
            let limit = if last_ts && !penultimate_ts {
                last
            } else {
                last + 1
            };
            let limit = (limit as usize).min(logits.len());
            logits[ts..limit].fill(ninf);
        }
        if at_begin {
            logits[..ts].fill(ninf);
            let last_allowed = ts + MAX_INITIAL_TIMESTAMP_STEPS as usize;
            if last_allowed + 1 < logits.len() {
                logits[last_allowed + 1..].fill(ninf);
            }
        }
        // If timestamps together are likelier than any text token, pick one.
        let ts_mass = log_sum_exp(&logits[ts..]);
        let text_max = logits[..ts].iter().copied().fold(ninf, f32::max);
        if ts_mass > text_max {
            logits[..ts].fill(ninf);
        }
    }

    /// Greedy decoding of one window.
    fn decode_window(
        &self,
        state: &mut DecoderState,
        sot_seq: &[u32],
        prompt: &[u32],
        opts: &TranscribeOptions,
    ) -> Result<WindowResult, WhisperError> {
        let decoder = &self.model.decoder;
        let tk = &self.tokenizer;
        state.reset();
        let mut prefix = Vec::with_capacity(prompt.len() + sot_seq.len() + 1);
        if !prompt.is_empty() {
            prefix.push(tk.sot_prev);
            prefix.extend_from_slice(prompt);
        }
        let sot_index = prefix.len();
        prefix.extend_from_slice(sot_seq);
        let out = decoder.forward(&prefix, state, &[])?;
        let mut rows = self.logits_rows(&out.hidden, &[sot_index, prefix.len() - 1])?;
        let mut logits = rows.pop().unwrap_or_default();
        let no_speech_prob = match (tk.no_speech, rows.first()) {
            (Some(ns), Some(sot_row)) => (sot_row[ns as usize] - log_sum_exp(sot_row)).exp(),
            _ => 0.0,
        };
        let max_sampled = self.model.dims.n_text_ctx / 2;
        let max_positions = decoder.max_positions();
        let mut tokens: Vec<u32> = Vec::new();
        let mut sum_logprob = 0f32;
        loop {
            self.apply_rules(&mut logits, &tokens);
            let next = argmax(&logits) as u32;
            sum_logprob += logits[next as usize] - log_sum_exp(&logits);
            if next == tk.eot {
                break;
            }
            tokens.push(next);
            if tokens.len() >= max_sampled || state.len() + 1 > max_positions {
                break;
            }
            if cancelled(opts) {
                return Err(WhisperError::Cancelled);
            }
            logits = decoder.step(next, state)?;
        }
        Ok(WindowResult {
            avg_logprob: sum_logprob / (tokens.len() + 1) as f32,
            tokens,
            no_speech_prob,
        })
    }

    /// Transcribes 16 kHz mono samples (nominally in `[-1, 1]`).
    pub fn transcribe(
        &mut self,
        pcm_16k_mono: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, WhisperError> {
        check_samples(pcm_16k_mono)?;
        let tk = self.tokenizer.clone();
        let dims = self.model.dims;
        let duration = pcm_16k_mono.len() as f64 / SAMPLE_RATE as f64;
        let mel = audio::log_mel_spectrogram(pcm_16k_mono, dims.n_mels, N_SAMPLES);
        let content_frames = mel.n_frames.saturating_sub(N_FRAMES);
        let report = |fraction: f64| {
            if let Some(p) = &opts.progress {
                p(fraction.clamp(0.0, 1.0) as f32);
            }
        };

        // Language: given, or detected on the first window.
        let mut first_audio = None;
        let (language, language_prob) = if !self.multilingual {
            ("en".to_string(), 1.0)
        } else if let Some(code) = &opts.language {
            if tk.language_token(code).is_none() {
                return Err(WhisperError::UnknownLanguage(code.clone()));
            }
            (code.clone(), 1.0)
        } else if content_frames == 0 {
            (String::new(), 0.0)
        } else {
            let audio = self.encode_window(&mel, 0)?;
            let detected = self.detect_from_audio(&audio)?;
            first_audio = Some(audio);
            detected
        };
        let sot_seq: Vec<u32> = if self.multilingual {
            let task = match opts.task {
                Task::Transcribe => tk.transcribe,
                Task::Translate => tk.translate,
            };
            match tk.language_token(&language) {
                Some(lang) => vec![tk.sot, lang, task],
                None => vec![tk.sot],
            }
        } else {
            vec![tk.sot]
        };

        let max_prompt = dims.n_text_ctx / 2 - 1;
        let mut seek = 0usize;
        let mut all_tokens: Vec<u32> = Vec::new();
        let mut segments: Vec<Segment> = Vec::new();
        let mut last_speech = 0f64;
        while seek < content_frames {
            if cancelled(opts) {
                return Err(WhisperError::Cancelled);
            }
            report(seek as f64 / content_frames as f64);
            let time_offset = seek as f64 * SECONDS_PER_MEL_FRAME;
            let segment_size = N_FRAMES.min(content_frames - seek);
            let audio = match first_audio.take() {
                Some(a) if seek == 0 => a,
                _ => self.encode_window(&mel, seek)?,
            };
            let mut state = self.model.decoder.new_state(&audio)?;
            let prompt: &[u32] = if opts.condition_on_previous_text {
                &all_tokens[all_tokens.len().saturating_sub(max_prompt)..]
            } else {
                &[]
            };
            let result = self.decode_window(&mut state, &sot_seq, prompt, opts)?;

            if let Some(threshold) = opts.no_speech_threshold {
                let confident = opts
                    .logprob_threshold
                    .is_some_and(|lt| result.avg_logprob > lt);
                if result.no_speech_prob > threshold && !confident {
                    seek += segment_size;
                    continue;
                }
            }

            let (mut window_segments, single_ending, next_seek) =
                self.split_window(&result.tokens, seek, segment_size, time_offset);
            let mut new_seek = next_seek;
            if opts.word_timestamps {
                self.add_word_timestamps(
                    &mut state,
                    &sot_seq,
                    &language,
                    &mut window_segments,
                    segment_size,
                    time_offset,
                    &mut last_speech,
                )?;
                if !single_ending {
                    let last_word_end = window_segments
                        .iter()
                        .flat_map(|s| s.words.iter())
                        .next_back()
                        .map(|w| w.end);
                    if let Some(end) = last_word_end {
                        let frame = (end / SECONDS_PER_MEL_FRAME).round() as usize;
                        if end > time_offset && frame > seek {
                            new_seek = frame;
                        }
                    }
                }
            }
            seek = new_seek.max(seek + 1);

            for s in window_segments {
                let text = tk.decode(&s.tokens);
                if s.start == s.end || text.trim().is_empty() {
                    continue;
                }
                all_tokens.extend_from_slice(&s.tokens);
                segments.push(Segment {
                    start: s.start,
                    end: s.end,
                    text,
                    words: s.words,
                });
            }
        }
        report(1.0);
        let text = segments.iter().map(|s| s.text.as_str()).collect::<String>();
        for s in &mut segments {
            s.text = s.text.trim().to_string();
        }
        sanitize(&mut segments, duration);
        Ok(Transcript {
            language,
            language_prob,
            text: text.trim().to_string(),
            segments,
        })
    }

    /// Splits a window's tokens into segments at timestamp pairs and works
    /// out where the next window starts (in mel frames).
    fn split_window(
        &self,
        tokens: &[u32],
        seek: usize,
        segment_size: usize,
        time_offset: f64,
    ) -> (Vec<WindowSegment>, bool, usize) {
        let tk = &self.tokenizer;
        let is_ts = |t: u32| t >= tk.timestamp_begin;
        let ts_pos = |t: u32| t.saturating_sub(tk.timestamp_begin) as usize;
        let n = tokens.len();
        let single_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
        let mut consecutive: Vec<usize> = (1..n)
            .filter(|&i| is_ts(tokens[i - 1]) && is_ts(tokens[i]))
            .collect();
        let mut segments = Vec::new();
        let make = |slice: &[u32], fallback_end: f64| -> WindowSegment {
            let start = slice
                .first()
                .filter(|&&t| is_ts(t))
                .map_or(time_offset, |&t| {
                    time_offset + ts_pos(t) as f64 * SECONDS_PER_TIMESTAMP
                });
            let end = slice
                .last()
                .filter(|&&t| is_ts(t))
                .map_or(fallback_end, |&t| {
                    time_offset + ts_pos(t) as f64 * SECONDS_PER_TIMESTAMP
                });
            WindowSegment {
                start,
                end: end.max(start),
                tokens: slice.to_vec(),
                words: Vec::new(),
            }
        };
        let window_end = time_offset + segment_size as f64 * SECONDS_PER_MEL_FRAME;
        if !consecutive.is_empty() {
            if single_ending {
                consecutive.push(n);
            }
            let mut last = 0;
            for &cut in &consecutive {
                segments.push(make(&tokens[last..cut], window_end));
                last = cut;
            }
            let next = if single_ending {
                seek + segment_size
            } else {
                seek + ts_pos(tokens[last - 1]) * MEL_FRAMES_PER_TIMESTAMP
            };
            let next = if next <= seek {
                seek + segment_size
            } else {
                next
            };
            (segments, single_ending, next)
        } else {
            let mut end = window_end;
            if let Some(&t) = tokens.iter().rev().find(|&&t| is_ts(t)) {
                if t != tk.timestamp_begin {
                    end = time_offset + ts_pos(t) as f64 * SECONDS_PER_TIMESTAMP;
                }
            }
            let mut seg = make(tokens, end);
            seg.start = time_offset;
            seg.end = end.max(time_offset);
            segments.push(seg);
            (segments, single_ending, seek + segment_size)
        }
    }

    /// Runs `text_tokens` through the decoder after `sot_seq` and times each word from the
    /// alignment heads' cross-attention (DTW). `None` when the tokens don't fit the context.
    fn time_tokens(
        &self,
        state: &mut DecoderState,
        sot_seq: &[u32],
        text_tokens: &[u32],
        num_frames: usize,
        language: &str,
    ) -> Result<Option<(Vec<WordTiming>, f64)>, WhisperError> {
        let tk = &self.tokenizer;
        let mut tokens = sot_seq.to_vec();
        tokens.push(tk.no_timestamps);
        let first_text = tokens.len();
        tokens.extend_from_slice(text_tokens);
        tokens.push(tk.eot);
        if tokens.len() > self.model.decoder.max_positions() {
            return Ok(None);
        }
        state.reset();
        let out = self
            .model
            .decoder
            .forward(&tokens, state, &self.alignment_heads)?;

        // Probability of each text token among text tokens only.
        let n_text = text_tokens.len();
        let rows = out.hidden.narrow(0, first_text - 1, n_text)?;
        let logits = self
            .model
            .decoder
            .logits(&rows)?
            .narrow(1, 0, tk.eot as usize)?
            .contiguous()?;
        let probs = candle_nn::ops::softmax_last_dim(&logits)?;
        let idx = Tensor::new(text_tokens, probs.device())?.unsqueeze(1)?;
        let token_probs: Vec<f32> = probs
            .gather(&idx, 1)?
            .squeeze(1)?
            .to_dtype(DType::F32)?
            .to_vec1()?;

        let scores: Vec<Vec<Vec<f32>>> = out
            .cross_scores
            .iter()
            .map(|s| s.to_dtype(DType::F32)?.to_vec2::<f32>())
            .collect::<candle_core::Result<_>>()?;
        let n_frames = (num_frames / 2).max(1);
        let matrix = align::attention_matrix(&scores, n_frames);
        // Rows predicting the text tokens and <|endoftext|>.
        let matrix = &matrix[first_text - 1..tokens.len() - 1];
        let mut with_eot = text_tokens.to_vec();
        with_eot.push(tk.eot);
        let words = tk.split_to_words(&with_eot, language);
        let mut timings = align::time_words(matrix, &words, &token_probs);
        let median = align::post_process(&mut timings);
        Ok(Some((timings, median)))
    }

    /// Forced alignment: times the words of `text`, known to be what is said in
    /// `pcm_16k_mono` (at most 30 s), without recognising anything. Times are
    /// seconds from the clip start, monotonic, inside the clip.
    pub fn align_text(
        &mut self,
        pcm_16k_mono: &[f32],
        language: &str,
        text: &str,
    ) -> Result<Vec<Word>, WhisperError> {
        check_samples(pcm_16k_mono)?;
        if pcm_16k_mono.len() > N_SAMPLES {
            return Err(WhisperError::InvalidInput(format!(
                "alignment takes clips of at most 30 s, this one is {:.1} s",
                pcm_16k_mono.len() as f64 / SAMPLE_RATE as f64
            )));
        }
        let tk = self.tokenizer.clone();
        let sot_seq = if self.multilingual {
            let lang = tk
                .language_token(language)
                .ok_or_else(|| WhisperError::UnknownLanguage(language.to_string()))?;
            vec![tk.sot, lang, tk.transcribe]
        } else {
            vec![tk.sot]
        };
        let text_tokens = tk.encode(&format!(" {}", text.trim()));
        if text_tokens.is_empty() {
            return Ok(Vec::new());
        }
        let mel = audio::log_mel_spectrogram(pcm_16k_mono, self.model.dims.n_mels, N_SAMPLES);
        let num_frames = mel.n_frames.saturating_sub(N_FRAMES).max(1);
        let audio = self.encode_window(&mel, 0)?;
        let mut state = self.model.decoder.new_state(&audio)?;
        let Some((timings, _)) =
            self.time_tokens(&mut state, &sot_seq, &text_tokens, num_frames, language)?
        else {
            return Err(WhisperError::InvalidInput(
                "the text is longer than the decoder's context".into(),
            ));
        };
        let duration = pcm_16k_mono.len() as f64 / SAMPLE_RATE as f64;
        let mut words: Vec<Word> = Vec::new();
        for t in timings {
            if t.word.trim().is_empty() {
                continue;
            }
            let start = t.start.clamp(0.0, duration);
            let start = words.last().map_or(start, |w| start.max(w.end));
            let end = t.end.clamp(start, duration);
            words.push(Word {
                start,
                end,
                text: t.word.trim().to_string(),
                prob: t.prob,
            });
        }
        Ok(words)
    }

    /// Times the words of a window's segments (see [`super::align`]) and
    /// applies the reference's boundary heuristics.
    #[allow(clippy::too_many_arguments)]
    fn add_word_timestamps(
        &self,
        state: &mut DecoderState,
        sot_seq: &[u32],
        language: &str,
        segments: &mut [WindowSegment],
        num_frames: usize,
        time_offset: f64,
        last_speech: &mut f64,
    ) -> Result<(), WhisperError> {
        let tk = &self.tokenizer;
        let per_segment: Vec<Vec<u32>> = segments
            .iter()
            .map(|s| s.tokens.iter().copied().filter(|&t| t < tk.eot).collect())
            .collect();
        let text_tokens: Vec<u32> = per_segment.iter().flatten().copied().collect();
        if text_tokens.is_empty() {
            return Ok(());
        }
        let Some((timings, median)) =
            self.time_tokens(state, sot_seq, &text_tokens, num_frames, language)?
        else {
            return Ok(());
        };
        let max_duration = median * 2.0;

        let mut next_word = 0;
        for (seg, seg_tokens) in segments.iter_mut().zip(&per_segment) {
            let mut saved = 0;
            let mut words: Vec<Word> = Vec::new();
            while next_word < timings.len() && saved < seg_tokens.len() {
                let t: &WordTiming = &timings[next_word];
                if !t.word.trim().is_empty() {
                    words.push(Word {
                        start: time_offset + t.start,
                        end: time_offset + t.end,
                        text: t.word.trim().to_string(),
                        prob: t.prob,
                    });
                }
                saved += t.tokens.len();
                next_word += 1;
            }
            if let (Some(_), Some(_)) = (words.first(), words.last()) {
                let n = words.len();
                // The first (and second) word after a pause should not be
                // longer than twice the median word duration.
                if words[0].end - *last_speech > median * 4.0
                    && (words[0].end - words[0].start > max_duration
                        || (n > 1 && words[1].end - words[0].start > max_duration * 2.0))
                {
                    if n > 1 && words[1].end - words[1].start > max_duration {
                        let boundary = (words[1].end / 2.0).max(words[1].end - max_duration);
                        words[0].end = boundary;
                        words[1].start = boundary;
                    }
                    words[0].start = (words[0].end - max_duration).max(0.0);
                }
                // Prefer the segment start if the first word is too long.
                if seg.start < words[0].end && seg.start - 0.5 > words[0].start {
                    words[0].start = (words[0].end - median).min(seg.start).max(0.0);
                } else {
                    seg.start = words[0].start;
                }
                // Prefer the segment end if the last word is too long.
                let last = n - 1;
                if seg.end > words[last].start && seg.end + 0.5 < words[last].end {
                    words[last].end = (words[last].start + median).max(seg.end);
                } else {
                    seg.end = words[last].end;
                }
                *last_speech = seg.end;
            }
            seg.words = words;
        }
        Ok(())
    }
}

fn check_samples(pcm: &[f32]) -> Result<(), WhisperError> {
    if let Some(i) = pcm.iter().position(|v| !v.is_finite()) {
        return Err(WhisperError::InvalidInput(format!(
            "sample {i} is not a finite number"
        )));
    }
    Ok(())
}

/// Makes segment and word times monotonic, non-overlapping and inside
/// `[0, duration]`, with every word inside its segment.
fn sanitize(segments: &mut [Segment], duration: f64) {
    let mut cursor = 0f64;
    for seg in segments.iter_mut() {
        seg.start = seg.start.clamp(cursor, duration.max(cursor));
        seg.end = seg.end.clamp(seg.start, duration.max(seg.start));
        let mut word_cursor = seg.start;
        for w in &mut seg.words {
            w.start = w.start.clamp(word_cursor, seg.end);
            w.end = w.end.clamp(w.start, seg.end);
            word_cursor = w.end;
        }
        cursor = seg.end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_orders_and_clamps() {
        let mut segs = vec![
            Segment {
                start: -1.0,
                end: 2.0,
                text: "a".into(),
                words: vec![Word {
                    start: 1.5,
                    end: 2.5,
                    text: "a".into(),
                    prob: 1.0,
                }],
            },
            Segment {
                start: 1.0,
                end: 9.0,
                text: "b".into(),
                words: vec![],
            },
        ];
        sanitize(&mut segs, 5.0);
        assert_eq!((segs[0].start, segs[0].end), (0.0, 2.0));
        assert_eq!((segs[0].words[0].start, segs[0].words[0].end), (1.5, 2.0));
        assert_eq!((segs[1].start, segs[1].end), (2.0, 5.0));
    }

    #[test]
    fn log_sum_exp_handles_all_masked() {
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 3]), f32::NEG_INFINITY);
        assert!((log_sum_exp(&[0.0, 0.0]) - 2f32.ln()).abs() < 1e-6);
    }
}
