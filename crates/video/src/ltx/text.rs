//! The prompt side of LTX: T5-v1.1-XXL (candle-transformers' encoder, the tokenizer shared with
//! the image crate), padded to a fixed length with an attention mask.
//!
//! Length: 128 tokens, diffusers' default for LTX (the official pipeline uses 256); a setting
//! ([`TextEncoder::max_tokens`]). As in diffusers, T5 reads the whole padded sequence without a
//! mask; the mask goes to the transformer's cross-attention, which ignores the padding rows.

use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::t5;
use reelsmith_diffusion::tokenizer::T5Tokenizer;

use super::pipeline::Prompt;
use crate::VideoError;

type Result<T> = std::result::Result<T, VideoError>;

/// google/t5-v1_1-xxl's config (the encoder LTX was trained with), for single files without one.
const T5_XXL: &str = r#"{"vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240,
  "num_layers": 24, "num_heads": 64, "relative_attention_num_buckets": 32,
  "relative_attention_max_distance": 128, "dropout_rate": 0.1, "layer_norm_epsilon": 1e-6,
  "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu", "is_decoder": false,
  "is_encoder_decoder": true, "use_cache": false, "pad_token_id": 0, "eos_token_id": 1,
  "tie_word_embeddings": false}"#;

/// diffusers' LTX default.
pub const DEFAULT_MAX_TOKENS: usize = 128;

pub struct TextEncoder {
    model: Mutex<t5::T5EncoderModel>,
    tokenizer: T5Tokenizer,
    device: Device,
    pub max_tokens: usize,
    /// Width of the states (4096 for T5-XXL).
    pub hidden: usize,
}

fn err(path: &Path, message: impl Into<String>) -> VideoError {
    VideoError::Weights {
        path: path.display().to_string(),
        message: message.into(),
    }
}

impl TextEncoder {
    /// Loads a transformers `text_encoder` folder (config.json + safetensors) or a single T5
    /// file (the BFL/ComfyUI `t5xxl_*.safetensors`, T5-v1.1-XXL unless a `config.json` sits
    /// beside it), and a tokenizer (a folder with `spiece.model` or `tokenizer.json`, or one of
    /// those files).
    pub fn load(encoder: &Path, tokenizer: &Path, device: &Device) -> Result<Self> {
        let (cfg_path, files) = if encoder.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(encoder)
                .map_err(|e| err(encoder, e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect();
            files.sort();
            (Some(encoder.join("config.json")), files)
        } else {
            let beside = encoder.with_file_name("config.json");
            (
                beside.is_file().then_some(beside),
                vec![encoder.to_path_buf()],
            )
        };
        if files.is_empty() {
            return Err(err(encoder, "no .safetensors weights in this folder"));
        }
        let cfg: t5::Config = match &cfg_path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| err(p, e.to_string()))?;
                serde_json::from_str(&text).map_err(|e| err(p, format!("not a T5 config: {e}")))?
            }
            None => serde_json::from_str(T5_XXL).map_err(|e| err(encoder, e.to_string()))?,
        };
        // bf16 on a GPU (T5-XXL is 4.8B parameters: 19 GB in f32), f32 on the CPU.
        let dtype = reelsmith_kit::compute_dtype(device, reelsmith_kit::Precision::Bf16);
        // SAFETY: mapped read-only (see load.rs).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, device) }
            .map_err(|e| err(encoder, e.to_string()))?;
        let model = t5::T5EncoderModel::load(vb, &cfg)
            .map_err(|e| err(encoder, format!("T5 encoder: {e}")))?;
        let tok = if tokenizer.is_dir() {
            T5Tokenizer::from_dir(tokenizer)
        } else if tokenizer.extension().is_some_and(|x| x == "json") {
            T5Tokenizer::from_tokenizer_json(tokenizer)
        } else {
            T5Tokenizer::from_spiece_model(tokenizer)
        }
        .map_err(|e| err(tokenizer, format!("T5 tokenizer: {e}")))?;
        Ok(Self {
            model: Mutex::new(model),
            tokenizer: tok,
            device: device.clone(),
            max_tokens: DEFAULT_MAX_TOKENS,
            hidden: cfg.d_model,
        })
    }

    /// Token ids padded to `max_tokens`, how many are real, and how many were cut.
    pub fn tokens(&self, text: &str) -> (Vec<u32>, usize, usize) {
        self.tokens_up_to(text, self.max_tokens)
    }

    /// Token ids padded to `len` (a run's own setting), how many are real and how many were cut.
    pub fn tokens_up_to(&self, text: &str, len: usize) -> (Vec<u32>, usize, usize) {
        let r = self.tokenizer.encode_padded_report(text, len.max(1));
        (r.ids, r.len, r.truncated)
    }

    /// Encodes padded ids with `real` real tokens into states `[1, L, hidden]` + mask `[1, L]`.
    pub fn encode_ids(&self, ids: &[u32], real: usize) -> Result<Prompt> {
        let len = ids.len();
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let states = {
            let mut m = self.model.lock().unwrap_or_else(|e| e.into_inner());
            m.forward(&input)?
        };
        let mask: Vec<f32> = (0..len).map(|i| if i < real { 1.0 } else { 0.0 }).collect();
        Ok(Prompt {
            embeds: states.to_dtype(DType::F32)?,
            mask: Tensor::from_vec(mask, (1, len), &self.device)?,
        })
    }

    /// Encodes a prompt.
    pub fn encode(&self, text: &str) -> Result<Prompt> {
        let (ids, real, _) = self.tokens(text);
        self.encode_ids(&ids, real)
    }

    /// Encodes a prompt read up to `len` tokens; also says how many tokens were cut.
    pub fn encode_up_to(&self, text: &str, len: usize) -> Result<(Prompt, usize)> {
        let (ids, real, cut) = self.tokens_up_to(text, len);
        Ok((self.encode_ids(&ids, real)?, cut))
    }
}
