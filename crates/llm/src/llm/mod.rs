//! Local LLM inference on GGUF models, built on candle.
//!
//! * [`tokenizer`]: byte-level BPE rebuilt from the GGUF vocabulary;
//! * [`chat`]: ChatML / Llama-3 / Gemma / Phi-3 prompt templates;
//! * [`sample`]: temperature, top-k, top-p, repeat penalty, seeded RNG;
//! * [`cpu`]: the engine's own fast CPU forward pass (llama, qwen2, qwen3)
//!   with quantized AVX2 kernels and a persistent thread pool;
//! * [`candle_model`]: candle-transformers' stock quantized models, used on
//!   CUDA/Metal and as the correctness reference;
//! * [`safetensors_model`]: Hugging Face checkpoints (llama, qwen2) with their
//!   `tokenizer.json`, on candle-transformers (CPU or CUDA).
//!
//! [`LlmEngine`] ties them together: load a GGUF file or a checkpoint folder,
//! render a chat, and stream the answer through a callback that can cancel
//! generation.

pub mod candle_model;
pub mod chat;
pub mod config;
pub mod cpu;
pub mod safetensors_model;
pub mod sample;
pub mod structured;
pub mod tokenizer;

use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::Device;

pub use candle_model::CandleModel;
pub use chat::{ChatTemplate, Message, Role};
pub use config::{Arch, ModelConfig};
pub use cpu::CpuModel;
pub use safetensors_model::SafetensorsModel;
pub use sample::{Sampler, SamplingParams};
pub use structured::{generate_json, Schema, SchemaError, StructuredOptions, StructuredOutput};
pub use tokenizer::{IncrementalDecoder, PreTokenizer, SpmIds, Tokenizer};

/// Errors raised by the LLM engine.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Reading the model file failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// candle reported an error.
    #[error("candle error: {0}")]
    Candle(#[from] candle_core::Error),
    /// The GGUF file lacks something or is inconsistent.
    #[error("invalid model file: {0}")]
    Format(String),
    /// The model uses a feature this engine does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Generation could not proceed.
    #[error("generation failed: {0}")]
    Generation(String),
    /// The prompt plus answer do not fit in the KV cache.
    #[error("context full: {needed} tokens needed, capacity {capacity}")]
    ContextFull {
        /// Tokens that would be in the cache.
        needed: usize,
        /// KV cache capacity.
        capacity: usize,
    },
}

/// Result alias for the engine.
pub type Result<T> = std::result::Result<T, LlmError>;

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where to run. On the CPU the native forward pass is used when the
    /// architecture allows; other devices use candle-transformers.
    pub device: Device,
    /// CPU threads (default: number of physical cores).
    pub threads: Option<usize>,
    /// KV cache capacity in tokens (capped by the model's context length).
    pub max_context: usize,
    /// Use candle-transformers even on the CPU.
    pub force_candle: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            threads: None,
            max_context: 4096,
            force_candle: false,
        }
    }
}

/// What generation should do.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Sampling settings.
    pub sampling: SamplingParams,
    /// Maximum number of new tokens.
    pub max_tokens: usize,
    /// Text sequences that end generation (not included in the output).
    pub stop: Vec<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            sampling: SamplingParams::default(),
            max_tokens: 512,
            stop: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-turn / end-of-sequence token was produced.
    EndOfTurn,
    /// A stop sequence appeared in the text.
    StopSequence,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The callback asked to stop.
    Cancelled,
    /// The KV cache is full.
    ContextFull,
}

/// The outcome of one generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated text (without stop token or stop sequence).
    pub text: String,
    /// Generated token ids (including a final end-of-turn token, if any).
    pub tokens: Vec<u32>,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Prompt tokens actually evaluated (the rest were reused from the cache).
    pub prefill_tokens: usize,
    /// Why it stopped.
    pub finish: FinishReason,
    /// Time spent evaluating the prompt.
    pub prefill_time: Duration,
    /// Time spent generating (after the prompt).
    pub decode_time: Duration,
}

impl Generation {
    /// Prompt evaluation speed in tokens per second.
    pub fn prefill_tok_per_s(&self) -> f64 {
        self.prefill_tokens as f64 / self.prefill_time.as_secs_f64().max(1e-9)
    }

    /// Generation speed in tokens per second (tokens after the first, which
    /// comes out of the prompt pass).
    pub fn decode_tok_per_s(&self) -> f64 {
        self.tokens.len().saturating_sub(1) as f64 / self.decode_time.as_secs_f64().max(1e-9)
    }
}

/// Which forward pass runs the model.
#[derive(Debug)]
pub enum Backend {
    /// The engine's native CPU path.
    Cpu(Box<CpuModel>),
    /// candle-transformers (any device).
    Candle(Box<CandleModel>),
    /// A safetensors checkpoint on candle-transformers (any device).
    Safetensors(Box<SafetensorsModel>),
}

impl Backend {
    fn forward(&mut self, tokens: &[u32], logits: &mut Vec<f32>) -> Result<()> {
        match self {
            Backend::Cpu(m) => m.forward(tokens, logits),
            Backend::Candle(m) => m.forward(tokens, logits),
            Backend::Safetensors(m) => m.forward(tokens, logits),
        }
    }

    fn reset(&mut self) -> Result<()> {
        match self {
            Backend::Cpu(m) => m.reset(),
            Backend::Candle(m) => m.reset()?,
            Backend::Safetensors(m) => m.reset()?,
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        match self {
            Backend::Cpu(m) => m.max_context(),
            Backend::Candle(_) | Backend::Safetensors(_) => usize::MAX,
        }
    }
}

/// A loaded model, tokenizer and chat template.
#[derive(Debug)]
pub struct LlmEngine {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    config: ModelConfig,
    backend: Backend,
    stop_ids: Vec<u32>,
    /// Tokens whose keys/values are in the cache, in order.
    cached: Vec<u32>,
    logits: Vec<f32>,
}

impl LlmEngine {
    /// Loads a GGUF model, or a Hugging Face checkpoint folder (`config.json`,
    /// `*.safetensors`, `tokenizer.json`, optional `tokenizer_config.json`).
    pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            return Self::load_checkpoint(path, opts);
        }
        if path.extension().is_some_and(|x| x == "safetensors") {
            let dir = path.parent().unwrap_or(Path::new("."));
            return Self::load_checkpoint(dir, opts);
        }
        let mut reader = BufReader::new(File::open(path)?);
        let content = gguf_file::Content::read(&mut reader)?;
        let config = ModelConfig::from_gguf(&content)?;
        let tokenizer = Tokenizer::from_gguf(&content)?;
        let template_text = content
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .cloned();
        let template = ChatTemplate::detect(template_text.as_deref(), config.arch.gguf_name());
        // Gemma-3 always runs natively: candle-transformers 0.11.1's quantized_gemma3 uses SiLU
        // where Gemma has GELU (its answers part from llama.cpp's after a token or two).
        let native = !opts.force_candle
            && (config.arch == Arch::Gemma3
                || (opts.device.is_cpu()
                    && matches!(config.arch, Arch::Llama | Arch::Qwen2 | Arch::Qwen3)));
        let backend = if native {
            let threads = opts.threads.unwrap_or_else(cpu::physical_cores);
            Backend::Cpu(Box::new(CpuModel::load(
                &content,
                &mut reader,
                opts.max_context,
                threads,
            )?))
        } else {
            drop(content);
            Backend::Candle(Box::new(CandleModel::load(
                config.arch,
                path,
                &opts.device,
            )?))
        };
        Ok(Self::assemble(tokenizer, template, config, backend))
    }

    /// An engine with an empty cache; stop tokens follow from the template.
    fn assemble(
        tokenizer: Tokenizer,
        template: ChatTemplate,
        config: ModelConfig,
        backend: Backend,
    ) -> Self {
        let stop_ids = template.stop_token_ids(&tokenizer);
        Self {
            tokenizer,
            template,
            config,
            backend,
            stop_ids,
            cached: Vec::new(),
            logits: Vec::new(),
        }
    }

    fn load_checkpoint(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let read = |name: &str| -> Result<String> {
            let p = dir.join(name);
            std::fs::read_to_string(&p)
                .map_err(|e| LlmError::Format(format!("{}: {e}", p.display())))
        };
        let config_text = read("config.json")?;
        let config = ModelConfig::from_hf_config(&config_text)?;
        let tk_cfg: serde_json::Value = match read("tokenizer_config.json") {
            Ok(t) => serde_json::from_str(&t).map_err(|e| {
                LlmError::Format(format!(
                    "{}: {e}",
                    dir.join("tokenizer_config.json").display()
                ))
            })?,
            Err(_) => serde_json::Value::Null,
        };
        // Special tokens are written either as a string or as {"content": …}.
        let name = |k: &str| -> Option<String> {
            let v = &tk_cfg[k];
            v.as_str()
                .or_else(|| v["content"].as_str())
                .map(str::to_string)
        };
        let mut tokenizer = Tokenizer::from_tokenizer_json(
            &read("tokenizer.json")?,
            name("bos_token").as_deref(),
            name("eos_token").as_deref(),
            tk_cfg["add_bos_token"].as_bool().unwrap_or(false),
        )?;
        let hf: serde_json::Value = serde_json::from_str(&config_text)
            .map_err(|e| LlmError::Format(format!("config.json: {e}")))?;
        let id = |v: &serde_json::Value| {
            v.as_u64()
                .or_else(|| v.as_array().and_then(|a| a.first()?.as_u64()))
                .map(|i| i as u32)
        };
        tokenizer.fill_special_ids(id(&hf["bos_token_id"]), id(&hf["eos_token_id"]));
        let template =
            ChatTemplate::detect(tk_cfg["chat_template"].as_str(), config.arch.gguf_name());
        let backend = Backend::Safetensors(Box::new(SafetensorsModel::load(
            dir,
            config.arch,
            &config_text,
            &opts.device,
        )?));
        Ok(Self::assemble(tokenizer, template, config, backend))
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The detected chat template.
    pub fn chat_template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Overrides the chat template (and its stop tokens).
    pub fn set_chat_template(&mut self, template: ChatTemplate) {
        self.stop_ids = template.stop_token_ids(&self.tokenizer);
        self.template = template;
    }

    /// Model hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The forward-pass backend in use.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Mutable access to the backend (e.g. to switch kernels for testing).
    pub fn backend_mut(&mut self) -> &mut Backend {
        &mut self.backend
    }

    /// Token ids that end an assistant turn.
    pub fn stop_token_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// Renders messages with the model's chat template, ending with the
    /// assistant generation prompt.
    pub fn render_chat(&self, messages: &[Message]) -> String {
        let bos = self
            .tokenizer
            .bos_id()
            .and_then(|id| self.tokenizer.token_text(id));
        self.template.render(messages, true, bos)
    }

    /// Tokenizes a rendered prompt (special tokens parsed), adding BOS when the
    /// model wants one and the prompt does not already start with it.
    pub fn tokenize_prompt(&self, prompt: &str) -> Vec<u32> {
        let mut ids = self.tokenizer.encode(prompt, true);
        if self.tokenizer.add_bos() {
            if let Some(bos) = self.tokenizer.bos_id() {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
        }
        ids
    }

    /// Forgets the KV cache.
    pub fn reset(&mut self) -> Result<()> {
        self.cached.clear();
        self.backend.reset()
    }

    /// Low-level: feeds `tokens` after whatever is cached and returns the
    /// logits of the last one.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        self.backend.forward(tokens, &mut self.logits)?;
        self.cached.extend_from_slice(tokens);
        Ok(&self.logits)
    }

    /// Keeps the longest cached prefix shared with `prompt` (always leaving at
    /// least one token to feed) and returns its length.
    fn reuse_prefix(&mut self, prompt: &[u32]) -> Result<usize> {
        Ok(match &mut self.backend {
            Backend::Cpu(m) => {
                let c = self
                    .cached
                    .iter()
                    .zip(prompt)
                    .take_while(|(a, b)| a == b)
                    .count()
                    .min(prompt.len() - 1);
                m.truncate(c);
                self.cached.truncate(c);
                c
            }
            // candle-transformers' caches cannot be cut back: start over.
            Backend::Candle(_) | Backend::Safetensors(_) => {
                self.reset()?;
                0
            }
        })
    }

    /// Feeds `prompt`, reusing the cached prefix it shares with what was fed
    /// before, and returns the logits of its last token.
    pub fn prime(&mut self, prompt: &[u32]) -> Result<&[f32]> {
        if prompt.is_empty() {
            return Err(LlmError::Generation("empty prompt".into()));
        }
        let common = self.reuse_prefix(prompt)?;
        self.forward(&prompt[common..])
    }

    /// Tokens in the KV cache.
    pub fn context_len(&self) -> usize {
        self.cached.len()
    }

    /// KV cache capacity in tokens.
    pub fn capacity(&self) -> usize {
        self.backend.capacity()
    }

    /// Answers a conversation, streaming text pieces through `on_text`.
    pub fn chat(
        &mut self,
        messages: &[Message],
        opts: &GenerateOptions,
        on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        let prompt = self.render_chat(messages);
        self.complete(&prompt, opts, on_text)
    }

    /// Continues a raw prompt (special tokens in it are parsed).
    pub fn complete(
        &mut self,
        prompt: &str,
        opts: &GenerateOptions,
        on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        let ids = self.tokenize_prompt(prompt);
        self.generate(&ids, opts, on_text)
    }

    /// Generates from prompt token ids. The longest prefix shared with the
    /// previous call's tokens is reused from the KV cache (native CPU path).
    pub fn generate(
        &mut self,
        prompt: &[u32],
        opts: &GenerateOptions,
        mut on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(LlmError::Generation("empty prompt".into()));
        }
        let common = self.reuse_prefix(prompt)?;
        let mut sampler = Sampler::new(opts.sampling.clone());
        let mut history: Vec<u32> = prompt.to_vec();
        let mut generated = Vec::new();
        let mut decoder = IncrementalDecoder::new();
        let mut text = String::new();
        let mut emitted = 0usize;
        let max_stop = opts.stop.iter().map(|s| s.len()).max().unwrap_or(0);
        let t0 = Instant::now();
        self.forward(&prompt[common..])?;
        let prefill_time = t0.elapsed();
        let t1 = Instant::now();
        let mut finish = FinishReason::MaxTokens;
        let capacity = self.backend.capacity();
        for step in 0..opts.max_tokens {
            let next = sampler.sample(&mut self.logits, &history);
            generated.push(next);
            history.push(next);
            if self.stop_ids.contains(&next) {
                finish = FinishReason::EndOfTurn;
                break;
            }
            let piece = decoder.push(&self.tokenizer, next, false);
            let search_from = text.len().saturating_sub(max_stop);
            text.push_str(&piece);
            if let Some(cut) = find_stop(&text, search_from, &opts.stop) {
                text.truncate(cut);
                if cut > emitted && on_text(&text[emitted..]).is_break() {
                    finish = FinishReason::Cancelled;
                    break;
                }
                emitted = text.len();
                finish = FinishReason::StopSequence;
                break;
            }
            let safe = text.len() - pending_stop_prefix(&text, &opts.stop);
            if safe > emitted {
                let flow = on_text(&text[emitted..safe]);
                emitted = safe;
                if flow.is_break() {
                    finish = FinishReason::Cancelled;
                    break;
                }
            }
            if step + 1 == opts.max_tokens {
                break;
            }
            if self.cached.len() + 1 > capacity {
                finish = FinishReason::ContextFull;
                break;
            }
            self.forward(&[next])?;
        }
        if finish != FinishReason::StopSequence && finish != FinishReason::Cancelled {
            text.push_str(&decoder.finish());
            if text.len() > emitted {
                let _ = on_text(&text[emitted..]);
            }
        }
        Ok(Generation {
            text,
            tokens: generated,
            prompt_tokens: prompt.len(),
            prefill_tokens: prompt.len() - common,
            finish,
            prefill_time,
            decode_time: t1.elapsed(),
        })
    }
}

/// Byte offset of the earliest stop sequence starting at or after `from`.
fn find_stop(text: &str, from: usize, stops: &[String]) -> Option<usize> {
    let mut from = from.min(text.len());
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text[from..].find(s.as_str()).map(|i| from + i))
        .min()
}

/// Length of the longest suffix of `text` that is a proper prefix of a stop
/// sequence (such text must be held back while streaming).
fn pending_stop_prefix(text: &str, stops: &[String]) -> usize {
    let mut best = 0;
    for s in stops {
        for (i, _) in text.char_indices().rev().take(s.chars().count()) {
            let suffix = &text[i..];
            if suffix.len() < s.len() && s.starts_with(suffix) {
                best = best.max(suffix.len());
            }
        }
    }
    best
}

/// Hex sha256 of a file (for verifying downloaded models).
pub fn sha256_file(path: impl AsRef<Path>) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_helpers() {
        let stops = vec!["\nUser:".to_string()];
        assert_eq!(find_stop("hi\nUser: x", 0, &stops), Some(2));
        assert_eq!(pending_stop_prefix("hello\nUs", &stops), 3);
        assert_eq!(pending_stop_prefix("hello", &stops), 0);
    }
}
