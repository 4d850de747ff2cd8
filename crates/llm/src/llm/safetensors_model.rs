//! Hugging Face checkpoints (a folder with `config.json`, `*.safetensors` and
//! `tokenizer.json`) of the llama and qwen2 families, run by candle-transformers on any device
//! (the CPU, or CUDA with `--features cuda`) in the checkpoint's dtype (f32 on the CPU).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{llama, qwen2};

use super::config::Arch;
use super::{LlmError, Result};

enum Net {
    Llama {
        model: Box<llama::Llama>,
        cache: Box<llama::Cache>,
        cfg: Box<llama::Config>,
    },
    Qwen2(Box<qwen2::ModelForCausalLM>),
}

/// A loaded checkpoint with its position counter.
pub struct SafetensorsModel {
    net: Net,
    device: Device,
    dtype: DType,
    dir: PathBuf,
    pos: usize,
}

impl std::fmt::Debug for SafetensorsModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsModel")
            .field("dir", &self.dir)
            .field("dtype", &self.dtype)
            .field("pos", &self.pos)
            .finish()
    }
}

/// The weight files of a checkpoint folder: `model.safetensors`, or the shards its
/// `model.safetensors.index.json` names, or every `*.safetensors` file.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index)?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| LlmError::Format(format!("{}: {e}", index.display())))?;
        let mut files: Vec<PathBuf> = v["weight_map"]
            .as_object()
            .ok_or_else(|| LlmError::Format(format!("{}: no weight_map", index.display())))?
            .values()
            .filter_map(|f| f.as_str().map(|f| dir.join(f)))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LlmError::Format(format!(
            "{}: no *.safetensors weights",
            dir.display()
        )));
    }
    Ok(files)
}

impl SafetensorsModel {
    /// Loads the checkpoint in `dir` (architecture `arch`, HF `config.json` text) onto `device`.
    pub fn load(dir: &Path, arch: Arch, config_json: &str, device: &Device) -> Result<Self> {
        let files = weight_files(dir)?;
        // Half precision only where the hardware computes in it; the CPU runs f32.
        let dtype = reelsmith_kit::compute_dtype(device, reelsmith_kit::Precision::Bf16);
        // SAFETY: the files are memory-mapped read-only; they are not modified while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, device)? };
        let bad = |e: serde_json::Error| LlmError::Format(format!("config.json: {e}"));
        let net = match arch {
            Arch::Llama => {
                let hf: llama::LlamaConfig = serde_json::from_str(config_json).map_err(bad)?;
                let cfg = hf.into_config(false);
                let model = llama::Llama::load(vb, &cfg)?;
                let cache = llama::Cache::new(true, dtype, &cfg, device)?;
                Net::Llama {
                    model: Box::new(model),
                    cache: Box::new(cache),
                    cfg: Box::new(cfg),
                }
            }
            Arch::Qwen2 => {
                let cfg: qwen2::Config = serde_json::from_str(config_json).map_err(bad)?;
                Net::Qwen2(Box::new(qwen2::ModelForCausalLM::new(&cfg, vb)?))
            }
            other => {
                return Err(LlmError::Unsupported(format!(
                    "{other:?} safetensors checkpoints (llama and qwen2 are supported; use a GGUF)"
                )))
            }
        };
        Ok(Self {
            net,
            device: device.clone(),
            dtype,
            dir: dir.to_path_buf(),
            pos: 0,
        })
    }

    /// Tokens fed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Clears the KV cache.
    pub fn reset(&mut self) -> Result<()> {
        match &mut self.net {
            Net::Llama { cache, cfg, .. } => {
                **cache = llama::Cache::new(true, self.dtype, cfg, &self.device)?;
            }
            Net::Qwen2(m) => m.clear_kv_cache(),
        }
        self.pos = 0;
        Ok(())
    }

    /// Feeds `tokens` and writes the last position's logits into `logits`.
    pub fn forward(&mut self, tokens: &[u32], logits: &mut Vec<f32>) -> Result<()> {
        if tokens.is_empty() {
            return Err(LlmError::Generation("empty input".into()));
        }
        // candle-transformers' llama masks only square blocks: a multi-token pass after a
        // cached prefix goes one token at a time.
        if matches!(self.net, Net::Llama { .. }) && self.pos > 0 && tokens.len() > 1 {
            for t in tokens {
                self.forward(std::slice::from_ref(t), logits)?;
            }
            return Ok(());
        }
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let out = match &mut self.net {
            Net::Llama { model, cache, .. } => model.forward(&input, self.pos, cache)?,
            Net::Qwen2(m) => m.forward(&input, self.pos)?,
        };
        self.pos += tokens.len();
        super::candle_model::last_logits(&out, logits)
    }
}
