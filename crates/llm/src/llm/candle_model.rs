//! Stock candle-transformers quantized models behind one interface.
//!
//! Used for devices other than the CPU (CUDA, Metal) and as the reference the native forward
//! pass is tested and benchmarked against. Its Gemma-3 (SiLU instead of GELU in the
//! feed-forward) is only reachable with `LoadOptions::force_candle`.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{Device, IndexOp, Tensor};
use candle_transformers::models::{
    quantized_gemma3, quantized_llama, quantized_qwen2, quantized_qwen3,
};

use super::config::Arch;
use super::{LlmError, Result};

enum Weights {
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Qwen3(quantized_qwen3::ModelWeights),
    Gemma3(Box<quantized_gemma3::ModelWeights>),
}

/// A candle-transformers quantized model with its position counter.
pub struct CandleModel {
    weights: Weights,
    device: Device,
    path: PathBuf,
    pos: usize,
}

impl std::fmt::Debug for CandleModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandleModel")
            .field("path", &self.path)
            .field("pos", &self.pos)
            .finish()
    }
}

fn load_weights(arch: Arch, path: &Path, device: &Device) -> Result<Weights> {
    let mut reader = BufReader::new(File::open(path)?);
    let content = gguf_file::Content::read(&mut reader)?;
    Ok(match arch {
        Arch::Llama => Weights::Llama(quantized_llama::ModelWeights::from_gguf(
            content,
            &mut reader,
            device,
        )?),
        Arch::Qwen2 => Weights::Qwen2(quantized_qwen2::ModelWeights::from_gguf(
            content,
            &mut reader,
            device,
        )?),
        Arch::Qwen3 => Weights::Qwen3(quantized_qwen3::ModelWeights::from_gguf(
            content,
            &mut reader,
            device,
        )?),
        Arch::Gemma3 => Weights::Gemma3(Box::new(quantized_gemma3::ModelWeights::from_gguf(
            content,
            &mut reader,
            device,
        )?)),
    })
}

impl CandleModel {
    /// Loads `path` (architecture `arch`) onto `device`.
    pub fn load(arch: Arch, path: &Path, device: &Device) -> Result<Self> {
        Ok(Self {
            weights: load_weights(arch, path, device)?,
            device: device.clone(),
            path: path.to_path_buf(),
            pos: 0,
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Tokens fed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Clears the KV cache. candle-transformers' Gemma-3 has no cache reset, but a forward
    /// pass at position 0 replaces its cache, so going back to position 0 is enough.
    pub fn reset(&mut self) -> Result<()> {
        match &mut self.weights {
            Weights::Llama(m) => m.clear_kv_cache(),
            Weights::Qwen2(m) => m.clear_kv_cache(),
            Weights::Qwen3(m) => m.clear_kv_cache(),
            Weights::Gemma3(_) => {}
        }
        self.pos = 0;
        Ok(())
    }

    /// Feeds `tokens` and writes the last position's logits into `logits`.
    pub fn forward(&mut self, tokens: &[u32], logits: &mut Vec<f32>) -> Result<()> {
        if tokens.is_empty() {
            return Err(LlmError::Generation("empty input".into()));
        }
        // candle-transformers' Gemma-3 masks the whole cached prefix out of a multi-token pass
        // that does not start at 0: feed such chunks one token at a time.
        if matches!(self.weights, Weights::Gemma3(_)) && self.pos > 0 && tokens.len() > 1 {
            for t in tokens {
                self.forward(std::slice::from_ref(t), logits)?;
            }
            return Ok(());
        }
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let out = match &mut self.weights {
            Weights::Llama(m) => m.forward(&input, self.pos)?,
            Weights::Qwen2(m) => m.forward(&input, self.pos)?,
            Weights::Qwen3(m) => m.forward(&input, self.pos)?,
            Weights::Gemma3(m) => m.forward(&input, self.pos)?,
        };
        self.pos += tokens.len();
        last_logits(&out, logits)
    }
}

/// Writes the last position's logits of a candle-transformers output into `logits`: models
/// return either `[1, vocab]` or `[1, seq, vocab]`.
pub(crate) fn last_logits(out: &Tensor, logits: &mut Vec<f32>) -> Result<()> {
    let last = match out.rank() {
        3 => out.i((0, out.dim(1)? - 1))?,
        2 => out.i(0)?,
        _ => out.clone(),
    };
    *logits = last.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
    Ok(())
}
