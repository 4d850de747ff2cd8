//! Model hyper-parameters read from GGUF metadata.

use candle_core::quantized::gguf_file;

use super::{LlmError, Result};

/// Transformer architectures the engine knows about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama family (SmolLM2, Llama-3.x, Mistral-style GGUFs).
    Llama,
    /// Qwen2 / Qwen2.5 (attention biases, NeoX RoPE).
    Qwen2,
    /// Qwen3 (per-head Q/K RMS norms, NeoX RoPE).
    Qwen3,
    /// Gemma-3 (scaled embeddings, sandwich norms, GELU, sliding-window layers).
    Gemma3,
}

impl Arch {
    /// Parses `general.architecture`.
    pub fn from_gguf_name(name: &str) -> Result<Self> {
        match name {
            "llama" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            "qwen3" => Ok(Arch::Qwen3),
            "gemma3" => Ok(Arch::Gemma3),
            other => Err(LlmError::Unsupported(format!("architecture '{other}'"))),
        }
    }

    /// The GGUF metadata key prefix.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
        }
    }

    /// Whether RoPE rotates adjacent pairs (`true`) or the two halves of each
    /// head (NeoX style, `false`).
    pub fn rope_interleaved(self) -> bool {
        matches!(self, Arch::Llama)
    }
}

/// Hyper-parameters of a decoder-only transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Architecture family.
    pub arch: Arch,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Hidden size.
    pub dim: usize,
    /// Feed-forward inner size.
    pub ffn_dim: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention when smaller than `n_heads`).
    pub n_kv_heads: usize,
    /// Size of one attention head.
    pub head_dim: usize,
    /// Dimensions rotated by RoPE (≤ `head_dim`).
    pub rope_dim: usize,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// RMS-norm epsilon.
    pub rms_eps: f32,
    /// Training context length.
    pub context_length: usize,
    /// Vocabulary size (rows of the embedding table).
    pub vocab_size: usize,
    /// Keys a sliding-window layer sees (itself included); `None`: every layer is global.
    pub sliding_window: Option<usize>,
    /// Every `sliding_pattern`-th layer is global, the others slide (Gemma-3: 6).
    pub sliding_pattern: usize,
    /// RoPE base frequency of the sliding-window layers.
    pub rope_theta_local: f32,
    /// Attention logit scale.
    pub attn_scale: f32,
}

impl ModelConfig {
    /// Reads a Hugging Face `config.json` (llama and qwen2 checkpoints).
    pub fn from_hf_config(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| LlmError::Format(format!("config.json: {e}")))?;
        let model_type = v["model_type"].as_str().unwrap_or_default();
        let arch = match model_type {
            "llama" | "mistral" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            other => {
                return Err(LlmError::Unsupported(format!(
                    "safetensors model_type '{other}' (llama and qwen2 are supported; use a GGUF)"
                )))
            }
        };
        let need = |k: &str| -> Result<usize> {
            v[k].as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| LlmError::Format(format!("config.json: missing {k}")))
        };
        let dim = need("hidden_size")?;
        let n_heads = need("num_attention_heads")?;
        let head_dim = v["head_dim"]
            .as_u64()
            .map(|n| n as usize)
            .unwrap_or(dim / n_heads.max(1));
        Ok(Self {
            arch,
            n_layers: need("num_hidden_layers")?,
            dim,
            ffn_dim: need("intermediate_size")?,
            n_heads,
            n_kv_heads: v["num_key_value_heads"]
                .as_u64()
                .map(|n| n as usize)
                .unwrap_or(n_heads),
            head_dim,
            rope_dim: head_dim,
            rope_theta: v["rope_theta"].as_f64().unwrap_or(10_000.0) as f32,
            rms_eps: v["rms_norm_eps"].as_f64().unwrap_or(1e-5) as f32,
            context_length: v["max_position_embeddings"]
                .as_u64()
                .map(|n| n as usize)
                .unwrap_or(4096),
            vocab_size: need("vocab_size")?,
            sliding_window: None,
            sliding_pattern: 6,
            rope_theta_local: 10_000.0,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
        })
    }

    /// Reads the configuration from GGUF metadata.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let md = &content.metadata;
        let arch_name = md
            .get("general.architecture")
            .ok_or_else(|| LlmError::Format("missing general.architecture".into()))?
            .to_string()?
            .clone();
        let arch = Arch::from_gguf_name(&arch_name)?;
        let p = arch.gguf_name();
        let get = |k: &str| md.get(&format!("{p}.{k}"));
        let need_u = |k: &str| -> Result<usize> {
            Ok(get(k)
                .ok_or_else(|| LlmError::Format(format!("missing {p}.{k}")))?
                .to_u32()? as usize)
        };
        let n_heads = need_u("attention.head_count")?;
        let dim = need_u("embedding_length")?;
        let n_kv_heads = get("attention.head_count_kv")
            .and_then(|v| v.to_u32().ok())
            .map(|v| v as usize)
            .unwrap_or(n_heads);
        let head_dim = get("attention.key_length")
            .and_then(|v| v.to_u32().ok())
            .map(|v| v as usize)
            .unwrap_or(dim / n_heads);
        let rope_dim = get("rope.dimension_count")
            .and_then(|v| v.to_u32().ok())
            .map(|v| v as usize)
            .unwrap_or(head_dim)
            .min(head_dim);
        let vocab_size = content
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or_else(|| LlmError::Format("missing token_embd.weight".into()))?;
        if content
            .tensor_infos
            .contains_key("blk.0.ffn_gate_inp.weight")
        {
            return Err(LlmError::Unsupported("mixture-of-experts models".into()));
        }
        let n_layers = need_u("block_count")?;
        let gemma = arch == Arch::Gemma3;
        // Gemma-3 27B scales queries by its hidden size per head, every other size by the head
        // size (llama.cpp does the same; the GGUF does not store query_pre_attn_scalar).
        let attn_scale = if gemma && n_layers == 62 {
            1.0 / ((dim / n_heads) as f32).sqrt()
        } else {
            1.0 / (head_dim as f32).sqrt()
        };
        Ok(Self {
            arch,
            n_layers,
            sliding_window: if gemma {
                get("attention.sliding_window")
                    .and_then(|v| v.to_u32().ok())
                    .map(|v| v as usize)
            } else {
                None
            },
            sliding_pattern: 6,
            rope_theta_local: get("rope.local_freq_base")
                .and_then(|v| v.to_f32().ok())
                .unwrap_or(10_000.0),
            attn_scale,
            dim,
            ffn_dim: need_u("feed_forward_length")?,
            n_heads,
            n_kv_heads,
            head_dim,
            rope_dim,
            rope_theta: get("rope.freq_base")
                .and_then(|v| v.to_f32().ok())
                .unwrap_or(10_000.0),
            rms_eps: get("attention.layer_norm_rms_epsilon")
                .and_then(|v| v.to_f32().ok())
                .unwrap_or(1e-5),
            context_length: get("context_length")
                .and_then(|v| v.to_u32().ok())
                .map(|v| v as usize)
                .unwrap_or(4096),
            vocab_size,
        })
    }
}
