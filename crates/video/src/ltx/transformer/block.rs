//! One LTX-Video transformer block (diffusers `LTXVideoTransformerBlock`) and its parts:
//! attention with q/k RMS-normalised across heads (the chunked kernel is `crate::attention`)
//! and the tanh-GELU feed-forward.

use candle_core::{Module, Result, Tensor};
use candle_nn::{linear_b, Linear, VarBuilder};

use super::rope::Rope;
use super::LtxTransformerConfig;
use crate::attention::attention;

/// Number of modulation vectors per block: shift, scale and gate for attention and for the MLP.
pub(crate) const ADA_PARAMS: usize = 6;

/// q/k norm epsilon, fixed in diffusers' `LTXAttention` (not the config's `norm_eps`).
const QK_NORM_EPS: f32 = 1e-5;

/// RMS norm over the last dimension. candle's fused kernel accumulates in f32 whatever the
/// dtype, as the reference upcasts before its reduction; `weight` is all ones where the layer
/// has no affine parameters.
pub(crate) fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps)
}

/// diffusers `LTXAttention` with `LTXVideoAttnProcessor`: self-attention (with RoPE) or
/// cross-attention to the caption (with the padding bias).
pub(crate) struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    norm_q: Tensor,
    norm_k: Tensor,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(vb: VarBuilder, cfg: &LtxTransformerConfig, context_dim: usize) -> Result<Self> {
        let inner = cfg.inner_dim();
        let bias = cfg.attention_bias;
        Ok(Self {
            to_q: linear_b(inner, inner, bias, vb.pp("to_q"))?,
            to_k: linear_b(context_dim, inner, bias, vb.pp("to_k"))?,
            to_v: linear_b(context_dim, inner, bias, vb.pp("to_v"))?,
            to_out: linear_b(inner, inner, cfg.attention_out_bias, vb.pp("to_out.0"))?,
            norm_q: vb.get(inner, "norm_q.weight")?,
            norm_k: vb.get(inner, "norm_k.weight")?,
            heads: cfg.num_attention_heads,
            head_dim: cfg.attention_head_dim,
        })
    }

    /// `x` `[B, Sq, inner]` attends to `context` `[B, Sk, ·]` (itself when `None`).
    fn forward(
        &self,
        x: &Tensor,
        context: Option<&Tensor>,
        rope: Option<&Rope>,
        bias: Option<&Tensor>,
        budget: usize,
    ) -> Result<Tensor> {
        let ctx = context.unwrap_or(x);
        let q = rms_norm(&self.to_q.forward(x)?, &self.norm_q, QK_NORM_EPS)?;
        let k = rms_norm(&self.to_k.forward(ctx)?, &self.norm_k, QK_NORM_EPS)?;
        let v = self.to_v.forward(ctx)?;
        let (q, k) = match rope {
            Some(rope) => (rope.apply(&q)?, rope.apply(&k)?),
            None => (q, k),
        };
        let (b, sq, inner) = q.dims3()?;
        let heads = |t: &Tensor| -> Result<Tensor> {
            let s = t.dim(1)?;
            t.reshape((b, s, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let out = attention(&heads(&q)?, &heads(&k)?, &heads(&v)?, bias, budget)?;
        let out = out.transpose(1, 2)?.reshape((b, sq, inner))?;
        self.to_out.forward(&out)
    }
}

/// diffusers `FeedForward(dim, activation_fn="gelu-approximate")`: 4× expansion, GELU, back.
struct FeedForward {
    proj_in: Linear,
    proj_out: Linear,
    tanh_gelu: bool,
}

impl FeedForward {
    fn new(vb: VarBuilder, cfg: &LtxTransformerConfig) -> Result<Self> {
        let dim = cfg.inner_dim();
        Ok(Self {
            proj_in: linear_b(dim, 4 * dim, true, vb.pp("net.0.proj"))?,
            proj_out: linear_b(4 * dim, dim, true, vb.pp("net.2"))?,
            tanh_gelu: cfg.activation_fn == "gelu-approximate",
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.proj_in.forward(x)?;
        // candle's `gelu` is the tanh approximation; `gelu_erf` the exact one.
        let h = if self.tanh_gelu {
            h.gelu()?
        } else {
            h.gelu_erf()?
        };
        self.proj_out.forward(&h)
    }
}

/// What every block of one call shares.
pub(crate) struct BlockInput<'a> {
    /// Projected caption `[B, L, inner]`.
    pub context: &'a Tensor,
    /// Timestep modulation `[B, T, 6·inner]`, T = 1 (per sample) or S (per token).
    pub temb: &'a Tensor,
    pub rope: &'a Rope,
    /// Caption padding bias `[B, 1, 1, L]`.
    pub bias: Option<&'a Tensor>,
    pub budget: usize,
}

pub(crate) struct Block {
    /// `norm1`/`norm2` weights, all ones unless the config asks for affine norms.
    norm1: Tensor,
    norm2: Tensor,
    eps: f32,
    attn1: Attention,
    attn2: Attention,
    ff: FeedForward,
    scale_shift_table: Tensor,
}

impl Block {
    pub(crate) fn new(vb: VarBuilder, cfg: &LtxTransformerConfig) -> Result<Self> {
        let dim = cfg.inner_dim();
        let norm = |name: &str| -> Result<Tensor> {
            if cfg.norm_elementwise_affine {
                vb.get(dim, &format!("{name}.weight"))
            } else {
                Tensor::ones(dim, vb.dtype(), vb.device())
            }
        };
        Ok(Self {
            norm1: norm("norm1")?,
            norm2: norm("norm2")?,
            eps: cfg.norm_eps as f32,
            attn1: Attention::new(vb.pp("attn1"), cfg, dim)?,
            attn2: Attention::new(vb.pp("attn2"), cfg, cfg.cross_attention_dim)?,
            ff: FeedForward::new(vb.pp("ff"), cfg)?,
            scale_shift_table: vb.get((ADA_PARAMS, dim), "scale_shift_table")?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, input: &BlockInput) -> Result<Tensor> {
        let (b, _, dim) = x.dims3()?;
        let t = input.temb.dim(1)?;
        // [B, T, 6, D]: the block's own table plus the shared timestep embedding, one row per
        // token when the timesteps are per token.
        let ada = input
            .temb
            .reshape((b, t, ADA_PARAMS, dim))?
            .broadcast_add(&self.scale_shift_table.unsqueeze(0)?.unsqueeze(0)?)?;
        let part = |i: usize| ada.narrow(2, i, 1)?.squeeze(2);
        let (shift_msa, scale_msa, gate_msa) = (part(0)?, part(1)?, part(2)?);
        let (shift_mlp, scale_mlp, gate_mlp) = (part(3)?, part(4)?, part(5)?);

        let norm = rms_norm(x, &self.norm1, self.eps)?
            .broadcast_mul(&(scale_msa + 1.0)?)?
            .broadcast_add(&shift_msa)?;
        let attn = self
            .attn1
            .forward(&norm, None, Some(input.rope), None, input.budget)?;
        let x = (x + attn.broadcast_mul(&gate_msa)?)?;

        // Cross-attention reads the un-normalised stream and is not gated (as the reference).
        let attn = self
            .attn2
            .forward(&x, Some(input.context), None, input.bias, input.budget)?;
        let x = (x + attn)?;

        let norm = rms_norm(&x, &self.norm2, self.eps)?
            .broadcast_mul(&(scale_mlp + 1.0)?)?
            .broadcast_add(&shift_mlp)?;
        let ff = self.ff.forward(&norm)?;
        x + ff.broadcast_mul(&gate_mlp)?
    }
}
