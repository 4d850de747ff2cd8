//! Wan2.1's text encoder: the encoder of umT5-XXL (transformers' `UMT5EncoderModel`, the
//! official `wan/modules/t5.py` `T5Encoder` with `shared_pos=False`), the prompt cleaning and
//! tokenization of diffusers' Wan pipelines, and their fixed 512-token prompt embedding.
//!
//! umT5 differs from T5 v1.1 (candle-transformers' `t5.rs`, whose relative bias lives in block
//! 0 only) in one place: **every** layer owns a relative-position bias table
//! (`relative_attention_bias`, `[buckets, heads]`), computed from the same bidirectional buckets.
//! The rest is T5 v1.1: RMS norm without mean or bias (eps 1e-6) before each sublayer, no scaling
//! of q·kᵀ, gated-gelu feed-forward with the tanh gelu (`gelu_new`), a final RMS norm.
//! The bucket of a relative position is computed in f32 as the references do, so that positions
//! at a bucket boundary land where theirs land.
//!
//! Precision: the reference runs in f32; bf16/f16/fp8 checkpoints are upcast when loaded
//! ([`UmT5Encoder::load`] uses f32 on every device; [`UmT5Encoder::from_weights`] takes a dtype).
//!
//! Weight layouts ([`UmT5Layout`]): transformers folders and the ComfyUI single files
//! (`umt5_xxl_fp16.safetensors`, `umt5_xxl_fp8_e4m3fn_scaled.safetensors`: transformers names,
//! fp8 weights times their `scale_weight`), and the official Wan release
//! (`models_t5_umt5-xxl-enc-bf16.pth`: [`umt5_official_name`]).

mod html_entities;
mod tokenizer;
pub mod weights;

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use serde::Deserialize;

pub use tokenizer::{prompt_clean, WanPromptTokens, WanTokenizer, WAN_MAX_TOKENS};
pub use weights::WeightFiles;

use crate::VideoError;
use weights::weights_err;

type Result<T> = std::result::Result<T, VideoError>;

/// The encoder's shape, with transformers' `config.json` names (`UMT5Config`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UmT5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// Only `gated-gelu` (umT5's) is supported.
    #[serde(default = "default_ff_proj")]
    pub feed_forward_proj: String,
}

fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ff_proj() -> String {
    "gated-gelu".into()
}

impl UmT5Config {
    /// google/umt5-xxl (the encoder of every Wan2.1 model).
    pub fn umt5_xxl() -> Self {
        Self {
            vocab_size: 256384,
            d_model: 4096,
            d_kv: 64,
            d_ff: 10240,
            num_layers: 24,
            num_heads: 64,
            relative_attention_num_buckets: 32,
            relative_attention_max_distance: 128,
            layer_norm_epsilon: 1e-6,
            feed_forward_proj: "gated-gelu".into(),
        }
    }

    /// A transformers `config.json` (`UMT5Config`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| weights_err(path.display(), e.to_string()))?;
        let cfg: Self = serde_json::from_str(&text)
            .map_err(|e| weights_err(path.display(), format!("not a umT5 config: {e}")))?;
        cfg.validate().map_err(|m| weights_err(path.display(), m))?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.feed_forward_proj != "gated-gelu" {
            return Err(format!(
                "feed_forward_proj {:?}: only umT5's \"gated-gelu\" is supported",
                self.feed_forward_proj
            ));
        }
        if self.num_heads == 0 || self.d_kv == 0 || self.relative_attention_num_buckets < 4 {
            return Err("num_heads, d_kv must be > 0 and buckets ≥ 4".into());
        }
        Ok(())
    }

    /// The bidirectional bucket of `memory − query` (transformers'
    /// `_relative_position_bucket` for an encoder; wan `T5RelativeEmbedding`), in the references'
    /// f32 arithmetic.
    pub fn bucket(&self, relative_position: i64) -> usize {
        let half = self.relative_attention_num_buckets / 2;
        let mut bucket = if relative_position > 0 { half } else { 0 };
        let rp = relative_position.unsigned_abs() as usize;
        let max_exact = half / 2;
        if rp < max_exact {
            return bucket + rp;
        }
        // torch: log(rp.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact),
        // every operation in f32 (the Python scalars become f32 operands), then truncated.
        let ratio = rp as f32 / max_exact as f32;
        let denom = (self.relative_attention_max_distance as f64 / max_exact as f64).ln() as f32;
        let scaled = ratio.ln() / denom * (half - max_exact) as f32;
        let large = max_exact + scaled as usize;
        bucket += large.min(half - 1);
        bucket
    }
}

/// How a checkpoint names the encoder's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UmT5Layout {
    /// transformers / ComfyUI: `shared.weight` (or `encoder.embed_tokens.weight`),
    /// `encoder.block.N.layer.0.SelfAttention.{q,k,v,o,relative_attention_bias}`, … .
    Transformers,
    /// The official Wan release: `token_embedding.weight`, `blocks.N.attn.{q,k,v,o}`, … .
    Official,
}

impl UmT5Layout {
    /// Which layout `files` use, from their names.
    pub fn detect(files: &WeightFiles) -> Result<Self> {
        if files.contains("encoder.block.0.layer.0.SelfAttention.q.weight") {
            Ok(Self::Transformers)
        } else if files.contains("blocks.0.attn.q.weight") {
            Ok(Self::Official)
        } else {
            Err(weights_err(
                files.label(),
                "not a umT5 encoder: neither \"encoder.block.0.layer.0.SelfAttention.q.weight\" \
                 (transformers/ComfyUI) nor \"blocks.0.attn.q.weight\" (official Wan) is present",
            ))
        }
    }
}

/// The official Wan name (`wan/modules/t5.py`) of a transformers `UMT5EncoderModel` tensor;
/// `None` for names outside the encoder.
pub fn umt5_official_name(name: &str) -> Option<String> {
    match name {
        "shared.weight" | "encoder.embed_tokens.weight" => {
            return Some("token_embedding.weight".into())
        }
        "encoder.final_layer_norm.weight" => return Some("norm.weight".into()),
        _ => {}
    }
    let rest = name.strip_prefix("encoder.block.")?;
    let (n, rest) = rest.split_once('.')?;
    let n: usize = n.parse().ok()?;
    let tail = match rest {
        "layer.0.layer_norm.weight" => "norm1.weight".to_string(),
        "layer.0.SelfAttention.relative_attention_bias.weight" => {
            "pos_embedding.embedding.weight".into()
        }
        "layer.1.layer_norm.weight" => "norm2.weight".into(),
        "layer.1.DenseReluDense.wi_0.weight" => "ffn.gate.0.weight".into(),
        "layer.1.DenseReluDense.wi_1.weight" => "ffn.fc1.weight".into(),
        "layer.1.DenseReluDense.wo.weight" => "ffn.fc2.weight".into(),
        other => {
            let x = other
                .strip_prefix("layer.0.SelfAttention.")?
                .strip_suffix(".weight")?;
            if !matches!(x, "q" | "k" | "v" | "o") {
                return None;
            }
            format!("attn.{x}.weight")
        }
    };
    Some(format!("blocks.{n}.{tail}"))
}

struct Block {
    norm1: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    rel_bias: Tensor,
    norm2: Tensor,
    wi_0: Tensor,
    wi_1: Tensor,
    wo: Tensor,
}

/// umT5's encoder stack.
pub struct UmT5Encoder {
    cfg: UmT5Config,
    embed: Tensor,
    blocks: Vec<Block>,
    final_norm: Tensor,
    dtype: DType,
    device: Device,
}

fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_matmul(&w.t()?)?)
}

impl UmT5Encoder {
    /// Loads a transformers folder (config.json + safetensors shards), a ComfyUI single file
    /// (`umt5_xxl_fp16.safetensors`, `umt5_xxl_fp8_e4m3fn_scaled.safetensors`) or the official
    /// `models_t5_umt5-xxl-enc-bf16.pth`, in f32. The config is the folder's (or a `config.json`
    /// beside the file), else umT5-XXL's.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let cfg = match weights::config_of(path, "d_model") {
            Some(c) => UmT5Config::from_file(&c)?,
            None => UmT5Config::umt5_xxl(),
        };
        let files = WeightFiles::open(&weights::files_of(path)?)?;
        Self::from_weights(&files, &cfg, DType::F32, device)
    }

    /// Builds the encoder from opened weights (either layout), computing in `dtype`.
    pub fn from_weights(
        files: &WeightFiles,
        cfg: &UmT5Config,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate().map_err(|m| weights_err(files.label(), m))?;
        let layout = UmT5Layout::detect(files)?;
        let name = |hf: &str| -> String {
            match layout {
                UmT5Layout::Transformers => hf.to_string(),
                UmT5Layout::Official => umt5_official_name(hf).unwrap_or_else(|| hf.to_string()),
            }
        };
        let get = |hf: &str, shape: &[usize]| files.get_shaped(&name(hf), shape, dtype, device);
        let (d, inner, ff, h) = (
            cfg.d_model,
            cfg.num_heads * cfg.d_kv,
            cfg.d_ff,
            cfg.num_heads,
        );
        let embed_name = match layout {
            UmT5Layout::Transformers if !files.contains("shared.weight") => {
                "encoder.embed_tokens.weight"
            }
            _ => "shared.weight",
        };
        let embed = get(embed_name, &[cfg.vocab_size, d])?;
        let mut blocks = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let p = format!("encoder.block.{i}.layer.");
            let at =
                |x: &str, shape: &[usize]| get(&format!("{p}0.SelfAttention.{x}.weight"), shape);
            let ffw =
                |x: &str, shape: &[usize]| get(&format!("{p}1.DenseReluDense.{x}.weight"), shape);
            blocks.push(Block {
                norm1: get(&format!("{p}0.layer_norm.weight"), &[d])?,
                q: at("q", &[inner, d])?,
                k: at("k", &[inner, d])?,
                v: at("v", &[inner, d])?,
                o: at("o", &[d, inner])?,
                rel_bias: at(
                    "relative_attention_bias",
                    &[cfg.relative_attention_num_buckets, h],
                )?,
                norm2: get(&format!("{p}1.layer_norm.weight"), &[d])?,
                wi_0: ffw("wi_0", &[ff, d])?,
                wi_1: ffw("wi_1", &[ff, d])?,
                wo: ffw("wo", &[d, ff])?,
            });
        }
        let final_norm = get("encoder.final_layer_norm.weight", &[d])?;
        Ok(Self {
            cfg: cfg.clone(),
            embed,
            blocks,
            final_norm,
            dtype,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &UmT5Config {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// T5's RMS norm: statistics in f32, then back to the compute dtype, times the weight.
    fn rms(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let xf = x.to_dtype(DType::F32)?;
        let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
        let y = xf.broadcast_div(&(var + self.cfg.layer_norm_epsilon)?.sqrt()?)?;
        Ok(y.to_dtype(self.dtype)?.broadcast_mul(w)?)
    }

    /// `[L, L]` bucket indices (query rows, key columns).
    fn buckets(&self, len: usize) -> Result<Tensor> {
        let mut idx = Vec::with_capacity(len * len);
        for q in 0..len as i64 {
            for k in 0..len as i64 {
                idx.push(self.cfg.bucket(k - q) as u32);
            }
        }
        Ok(Tensor::from_vec(idx, len * len, &self.device)?)
    }

    /// The encoder's last hidden state `[B, L, d_model]` for ids `[B, L]` (u32 or i64) and an
    /// optional attention mask `[B, L]` (1 = real token, 0 = padding: padded keys are ignored,
    /// as with transformers' mask).
    pub fn forward(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        if l == 0 {
            return Err(VideoError::Invalid("umT5: empty token sequence".into()));
        }
        let ids = ids.to_dtype(DType::U32)?.to_device(&self.device)?;
        let (d, h, dk) = (self.cfg.d_model, self.cfg.num_heads, self.cfg.d_kv);
        let mut x = self
            .embed
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, d))?;
        // Additive key mask [B, 1, 1, L]: 0 where real, f32::MIN where padding (transformers
        // adds torch.finfo(dtype).min).
        let key_mask = match mask {
            Some(m) => {
                if m.dims() != [b, l] {
                    return Err(VideoError::Invalid(format!(
                        "umT5: mask {:?} does not match ids {:?}",
                        m.dims(),
                        [b, l]
                    )));
                }
                let m = m.to_dtype(DType::F32)?.to_device(&self.device)?;
                let add = ((m - 1.0)? * f64::from(f32::MAX))?;
                Some(add.reshape((b, 1, 1, l))?.to_dtype(self.dtype)?)
            }
            None => None,
        };
        let buckets = self.buckets(l)?;
        for blk in &self.blocks {
            let hdn = self.rms(&x, &blk.norm1)?;
            let heads = |w: &Tensor| -> Result<Tensor> {
                Ok(linear(&hdn, w)?
                    .reshape((b, l, h, dk))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let (q, k, v) = (heads(&blk.q)?, heads(&blk.k)?, heads(&blk.v)?);
            let bias = blk
                .rel_bias
                .index_select(&buckets, 0)?
                .reshape((l, l, h))?
                .permute((2, 0, 1))?
                .unsqueeze(0)?;
            let mut scores = q.matmul(&k.t()?)?.broadcast_add(&bias)?;
            if let Some(m) = &key_mask {
                scores = scores.broadcast_add(m)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?
                .to_dtype(self.dtype)?;
            let att = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, l, h * dk))?;
            x = (x + linear(&att, &blk.o)?)?;
            let hdn = self.rms(&x, &blk.norm2)?;
            let gate = linear(&hdn, &blk.wi_0)?.gelu()?; // tanh approximation = gelu_new
            let up = linear(&hdn, &blk.wi_1)?;
            x = (x + linear(&(gate * up)?, &blk.wo)?)?;
        }
        self.rms(&x, &self.final_norm)
    }

    /// The Wan pipelines' prompt embedding (diffusers `_get_t5_prompt_embeds`, official
    /// `T5EncoderModel.__call__` + the transformer's padding): each prompt is encoded with its
    /// mask, cut to its real length and zero-padded back to its padded length (512 in Wan), so
    /// every row past the real tokens is exactly 0. Returns `[B, L, d_model]` in f32.
    pub fn encode_prompt(&self, prompts: &[WanPromptTokens]) -> Result<Tensor> {
        let Some(first) = prompts.first() else {
            return Err(VideoError::Invalid("umT5: no prompts to encode".into()));
        };
        let l = first.ids.len();
        let mut ids = Vec::with_capacity(prompts.len() * l);
        let mut mask = Vec::with_capacity(prompts.len() * l);
        for p in prompts {
            if p.ids.len() != l || p.len > l || p.len == 0 {
                return Err(VideoError::Invalid(format!(
                    "umT5: prompt of {} ids with {} real (all prompts must have {l} ids, ≥ 1 real)",
                    p.ids.len(),
                    p.len
                )));
            }
            ids.extend_from_slice(&p.ids);
            mask.extend((0..l).map(|i| u8::from(i < p.len)));
        }
        let b = prompts.len();
        let ids = Tensor::from_vec(ids, (b, l), &self.device)?;
        let mask = Tensor::from_vec(mask, (b, l), &self.device)?;
        let states = self.forward(&ids, Some(&mask))?.to_dtype(DType::F32)?;
        let keep = mask
            .unsqueeze(2)?
            .broadcast_as(states.shape())?
            .contiguous()?;
        let zeros = states.zeros_like()?;
        Ok(keep.where_cond(&states, &zeros)?)
    }
}
