//! The LTX-Video 0.9.x denoiser: diffusers' `LTXVideoTransformer3DModel` (2B: 28 layers × 2048
//! channels, 13B: 48 × 4096), asked for its weights by diffusers names; the original Lightricks
//! single files are read through [`ltx_transformer_key_from_original`].
//!
//! Tokens are the patchified latent video `[B, S, 128]`; the caption (T5 states, 4096 channels)
//! comes in through cross-attention with its padding masked, the timestep through adaLN-single
//! modulation — one per sample, or one per token for the conditioning pipelines, where
//! conditioning tokens are less noisy than the rest — and positions through a 3D rotary
//! embedding ([`Positions`]).
//!
//! Precision: the network computes in the VarBuilder's dtype (bf16 on CUDA, f32 on the CPU);
//! the rotary tables and their application, the timestep sinusoids and the norms' reductions
//! run in f32 as in the reference. The attention score matrix is bounded by processing queries
//! in chunks (see [`LtxTransformer::set_attention_budget`]).

mod block;
mod rope;
#[cfg(test)]
mod tests;

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{linear_b, Linear, VarBuilder};
use serde::Deserialize;

use block::{Block, BlockInput, ADA_PARAMS};
use rope::Rope;

pub use rope::Positions;

/// Width of the sinusoidal timestep features (PixArt-α's `Timesteps(256, flip_sin_to_cos=True,
/// downscale_freq_shift=0)`).
const TIMESTEP_CHANNELS: usize = 256;

/// Default bound on one attention chunk's score matrix: 512 MiB.
pub const DEFAULT_ATTENTION_BUDGET: usize = 512 << 20;

/// diffusers `LTXVideoTransformer3DModel` config (`transformer/config.json`); absent fields take
/// diffusers' defaults, which are the 2B model's.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct LtxTransformerConfig {
    pub in_channels: usize,
    /// `None` (JSON null) means `in_channels`.
    pub out_channels: Option<usize>,
    pub patch_size: usize,
    pub patch_size_t: usize,
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    pub cross_attention_dim: usize,
    pub num_layers: usize,
    /// `gelu-approximate` (every released model) or `gelu`.
    pub activation_fn: String,
    /// Only `rms_norm_across_heads` exists.
    pub qk_norm: String,
    pub norm_elementwise_affine: bool,
    pub norm_eps: f64,
    pub caption_channels: usize,
    pub attention_bias: bool,
    pub attention_out_bias: bool,
}

impl Default for LtxTransformerConfig {
    fn default() -> Self {
        Self {
            in_channels: 128,
            out_channels: Some(128),
            patch_size: 1,
            patch_size_t: 1,
            num_attention_heads: 32,
            attention_head_dim: 64,
            cross_attention_dim: 2048,
            num_layers: 28,
            activation_fn: "gelu-approximate".into(),
            qk_norm: "rms_norm_across_heads".into(),
            norm_elementwise_affine: false,
            norm_eps: 1e-6,
            caption_channels: 4096,
            attention_bias: true,
            attention_out_bias: true,
        }
    }
}

impl LtxTransformerConfig {
    /// LTX-Video 2B (0.9.0 – 0.9.8 2B): 28 layers, 32 heads × 64 = 2048 channels.
    pub fn ltxv_2b() -> Self {
        Self::default()
    }

    /// LTX-Video 13B (0.9.7 / 0.9.8 13B): 48 layers, 32 heads × 128 = 4096 channels.
    pub fn ltxv_13b() -> Self {
        Self {
            attention_head_dim: 128,
            cross_attention_dim: 4096,
            num_layers: 48,
            ..Self::default()
        }
    }

    /// Reads `transformer/config.json`.
    pub fn from_json(json: &str) -> std::result::Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Rejects what diffusers would reject or fail on later.
    pub fn validate(&self) -> Result<()> {
        if self.qk_norm != "rms_norm_across_heads" {
            candle_core::bail!(
                "ltx transformer: qk_norm {:?} is not supported (only rms_norm_across_heads)",
                self.qk_norm
            );
        }
        if !matches!(self.activation_fn.as_str(), "gelu-approximate" | "gelu") {
            candle_core::bail!(
                "ltx transformer: activation_fn {:?} is not supported (gelu-approximate or gelu)",
                self.activation_fn
            );
        }
        if self.inner_dim() == 0 || self.in_channels == 0 || self.out_channels() == 0 {
            candle_core::bail!("ltx transformer: zero-sized config {self:?}");
        }
        if self.patch_size == 0 || self.patch_size_t == 0 {
            candle_core::bail!("ltx transformer: patch sizes must be at least 1");
        }
        // The caption is projected to the inner width before the cross-attention's k/v, so the
        // two must agree (diffusers would fail at the first call).
        if self.cross_attention_dim != self.inner_dim() {
            candle_core::bail!(
                "ltx transformer: cross_attention_dim {} differs from the inner width {} ({} heads × {})",
                self.cross_attention_dim,
                self.inner_dim(),
                self.num_attention_heads,
                self.attention_head_dim
            );
        }
        Ok(())
    }
}

/// A name of the original Lightricks single-file transformer (`ltxv-2b-0.9.x.safetensors`,
/// `ltxv-13b-…`; the `model.diffusion_model.` prefix may be there or not) → its diffusers name
/// (diffusers' `convert_ltx_transformer_checkpoint_to_diffusers`). The two layouts differ only in
/// four module names; the tensors themselves are the same.
pub fn ltx_transformer_key_from_original(name: &str) -> String {
    let name = name.strip_prefix("model.diffusion_model.").unwrap_or(name);
    name.replace("patchify_proj", "proj_in")
        .replace("adaln_single", "time_embed")
        .replace("q_norm", "norm_q")
        .replace("k_norm", "norm_k")
}

/// Whether a single-file key belongs to the transformer: the files also carry the VAE
/// (`vae.*`), which diffusers sets aside the same way.
pub fn is_ltx_transformer_key(name: &str) -> bool {
    !name.contains("vae")
}

/// diffusers `AdaLayerNormSingle` (without PixArt's size conditions): timestep → sinusoids →
/// MLP (`embedded_timestep`) → SiLU → 6 modulation vectors per channel (`temb`).
struct TimeEmbed {
    linear_1: Linear,
    linear_2: Linear,
    linear: Linear,
}

impl TimeEmbed {
    fn new(vb: VarBuilder, dim: usize) -> Result<Self> {
        let emb = vb.pp("emb.timestep_embedder");
        Ok(Self {
            linear_1: linear_b(TIMESTEP_CHANNELS, dim, true, emb.pp("linear_1"))?,
            linear_2: linear_b(dim, dim, true, emb.pp("linear_2"))?,
            linear: linear_b(dim, ADA_PARAMS * dim, true, vb.pp("linear"))?,
        })
    }

    /// `t` `[N]` f32 → (`temb` `[N, 6·dim]`, `embedded_timestep` `[N, dim]`) in `dtype`.
    fn forward(&self, t: &Tensor, dtype: DType) -> Result<(Tensor, Tensor)> {
        let proj = timestep_sinusoids(t)?.to_dtype(dtype)?;
        let embedded = self
            .linear_2
            .forward(&self.linear_1.forward(&proj)?.silu()?)?;
        let temb = self.linear.forward(&embedded.silu()?)?;
        Ok((temb, embedded))
    }
}

/// diffusers `get_timestep_embedding(t, 256, flip_sin_to_cos=True, downscale_freq_shift=0)`:
/// `[cos(t·f_i), sin(t·f_i)]` with `f_i = exp(−ln(10⁴)·i/128)`, in f32. Timesteps reach 1000,
/// so the frequencies are rounded to f32 the way the reference rounds them.
fn timestep_sinusoids(t: &Tensor) -> Result<Tensor> {
    let half = TIMESTEP_CHANNELS / 2;
    let ln = -(10000f64.ln()) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (((ln * i as f32) / half as f32) as f64).exp() as f32)
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
    let args = t
        .to_dtype(DType::F32)?
        .unsqueeze(1)?
        .broadcast_mul(&freqs)?;
    Tensor::cat(&[args.cos()?, args.sin()?], 1)
}

/// diffusers `PixArtAlphaTextProjection` (tanh GELU).
struct CaptionProjection {
    linear_1: Linear,
    linear_2: Linear,
}

impl CaptionProjection {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear_2.forward(&self.linear_1.forward(x)?.gelu()?)
    }
}

/// The LTX-Video transformer.
pub struct LtxTransformer {
    cfg: LtxTransformerConfig,
    dtype: DType,
    proj_in: Linear,
    time_embed: TimeEmbed,
    caption_projection: CaptionProjection,
    blocks: Vec<Block>,
    scale_shift_table: Tensor,
    proj_out: Linear,
    attention_budget: usize,
}

impl LtxTransformer {
    /// Loads the weights by diffusers names; computes in `vb`'s dtype.
    pub fn new(vb: VarBuilder, cfg: &LtxTransformerConfig) -> Result<Self> {
        cfg.validate()?;
        let dim = cfg.inner_dim();
        let blocks = (0..cfg.num_layers)
            .map(|i| Block::new(vb.pp(format!("transformer_blocks.{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        let cp = vb.pp("caption_projection");
        Ok(Self {
            cfg: cfg.clone(),
            dtype: vb.dtype(),
            proj_in: linear_b(cfg.in_channels, dim, true, vb.pp("proj_in"))?,
            time_embed: TimeEmbed::new(vb.pp("time_embed"), dim)?,
            caption_projection: CaptionProjection {
                linear_1: linear_b(cfg.caption_channels, dim, true, cp.pp("linear_1"))?,
                linear_2: linear_b(dim, dim, true, cp.pp("linear_2"))?,
            },
            blocks,
            scale_shift_table: vb.get((2, dim), "scale_shift_table")?,
            proj_out: linear_b(dim, cfg.out_channels(), true, vb.pp("proj_out"))?,
            attention_budget: DEFAULT_ATTENTION_BUDGET,
        })
    }

    pub fn config(&self) -> &LtxTransformerConfig {
        &self.cfg
    }

    /// The compute dtype (the VarBuilder's).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Bounds the bytes of one query chunk's attention scores (`[B, heads, chunk, S]` in the
    /// compute dtype); default [`DEFAULT_ATTENTION_BUDGET`]. Results do not depend on it.
    pub fn set_attention_budget(&mut self, bytes: usize) {
        self.attention_budget = bytes.max(1);
    }

    /// The rotary tables `(cos, sin)`, `[B or 1, S, inner_dim]` f32, that a call with these
    /// positions uses (diffusers `LTXVideoRotaryPosEmbed`'s output; for checks against it).
    pub fn rope_tables(
        &self,
        positions: &Positions,
        batch: usize,
        seq: usize,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let rope = Rope::new(
            positions,
            batch,
            seq,
            self.cfg.inner_dim(),
            (self.cfg.patch_size_t, self.cfg.patch_size),
            device,
        )?;
        let (cos, sin) = rope.tables();
        Ok((cos.clone(), sin.clone()))
    }

    /// One denoiser call.
    ///
    /// - `hidden` `[B, S, in_channels]`: packed latent tokens;
    /// - `encoder_hidden` `[B, L, caption_channels]`: T5 states;
    /// - `timestep` `[B]` (or `[B, 1]`) per sample, or `[B, S]` per token, in the model's
    ///   0–1000 scale;
    /// - `encoder_mask` `[B, L]`: 1 keep, 0 padding (padding gets a −10000 attention bias);
    /// - `positions`: the tokens' places for the rotary embedding.
    ///
    /// Returns `[B, S, out_channels]` in the compute dtype.
    pub fn forward(
        &self,
        hidden: &Tensor,
        encoder_hidden: &Tensor,
        timestep: &Tensor,
        encoder_mask: Option<&Tensor>,
        positions: &Positions,
    ) -> Result<Tensor> {
        let (b, s, c) = hidden.dims3()?;
        if c != self.cfg.in_channels {
            candle_core::bail!(
                "ltx transformer: tokens have {c} channels, the model takes {}",
                self.cfg.in_channels
            );
        }
        let (eb, l, ec) = encoder_hidden.dims3()?;
        if eb != b || ec != self.cfg.caption_channels {
            candle_core::bail!(
                "ltx transformer: caption states are {:?}, expected [{b}, L, {}]",
                encoder_hidden.dims(),
                self.cfg.caption_channels
            );
        }
        let device = hidden.device();
        let dim = self.cfg.inner_dim();

        let rope = Rope::new(
            positions,
            b,
            s,
            dim,
            (self.cfg.patch_size_t, self.cfg.patch_size),
            device,
        )?;

        // (1 − mask) · −10000, broadcast over heads and queries.
        let bias = match encoder_mask {
            Some(mask) => {
                if mask.dims() != [b, l] {
                    candle_core::bail!(
                        "ltx transformer: caption mask is {:?}, expected [{b}, {l}]",
                        mask.dims()
                    );
                }
                let bias = mask.to_dtype(DType::F32)?.affine(10000.0, -10000.0)?;
                Some(bias.to_dtype(self.dtype)?.reshape((b, 1, 1, l))?)
            }
            None => None,
        };

        // One timestep per sample (T = 1) or per token (T = S).
        let n = timestep.elem_count();
        let t = if b > 0 && n.is_multiple_of(b) {
            n / b
        } else {
            0
        };
        if t != 1 && t != s {
            candle_core::bail!(
                "ltx transformer: timestep is {:?}, expected [{b}] or [{b}, {s}]",
                timestep.dims()
            );
        }
        let (temb, embedded) = self
            .time_embed
            .forward(&timestep.flatten_all()?, self.dtype)?;
        let temb = temb.reshape((b, t, ADA_PARAMS * dim))?;
        let embedded = embedded.reshape((b, t, dim))?;

        let x = self.proj_in.forward(&hidden.to_dtype(self.dtype)?)?;
        let context = self
            .caption_projection
            .forward(&encoder_hidden.to_dtype(self.dtype)?)?;

        let input = BlockInput {
            context: &context,
            temb: &temb,
            rope: &rope,
            bias: bias.as_ref(),
            budget: self.attention_budget,
        };
        let mut x = x;
        for block in &self.blocks {
            x = block.forward(&x, &input)?;
        }

        // Output modulation: the model's table plus the (per-sample or per-token) embedding.
        let ss = embedded
            .unsqueeze(2)?
            .broadcast_add(&self.scale_shift_table.unsqueeze(0)?.unsqueeze(0)?)?;
        let shift = ss.narrow(2, 0, 1)?.squeeze(2)?;
        let scale = ss.narrow(2, 1, 1)?.squeeze(2)?;
        let x = layer_norm(&x, 1e-6)?
            .broadcast_mul(&(scale + 1.0)?)?
            .broadcast_add(&shift)?;
        self.proj_out.forward(&x)
    }
}

/// LayerNorm without affine parameters, two-pass in f32 (the residual stream of a deep
/// transformer can carry a mean large against its spread, where E[x²] − E[x]² cancels).
fn layer_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    let xf = x.to_dtype(DType::F32)?;
    let centred = xf.broadcast_sub(&xf.mean_keepdim(D::Minus1)?)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .to_dtype(x.dtype())
}
