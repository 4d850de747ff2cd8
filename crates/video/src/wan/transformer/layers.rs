//! The transformer's parts: linear layers whose weights may be stored in fp8, the f32 norms,
//! the rotary tables, the attention kernel and one block (diffusers `WanTransformerBlock`).

use candle_core::{DType, Device, Module, Result, Tensor, D};

use super::config::WanTransformerConfig;
use crate::attention::attention;

/// A linear layer whose weight is stored in the compute dtype, in f32 (the parts kept in f32),
/// or in fp8 e4m3 (ComfyUI's fp8 files): an fp8 weight stays fp8 in memory and is upcast to the
/// input's dtype for each call.
#[derive(Clone)]
pub(crate) struct WLinear {
    /// `[out, in]`.
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl WLinear {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let cast = |t: &Tensor| -> Result<Tensor> {
            if t.dtype() == dtype {
                Ok(t.clone())
            } else {
                t.to_dtype(dtype)
            }
        };
        let bias = self.bias.as_ref().map(cast).transpose()?;
        candle_nn::Linear::new(cast(&self.weight)?, bias).forward(x)
    }

    fn map(&self, f: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<Self> {
        Ok(Self {
            weight: f(&self.weight)?,
            bias: self.bias.as_ref().map(f).transpose()?,
        })
    }

    pub(crate) fn tensors(&self) -> Vec<&Tensor> {
        std::iter::once(&self.weight).chain(&self.bias).collect()
    }
}

pub(crate) fn bytes(t: &Tensor) -> usize {
    t.elem_count() * t.dtype().size_in_bytes()
}

/// LayerNorm over the last dimension, two-pass in f32 (diffusers' `FP32LayerNorm`), with an
/// optional f32 affine; the result in f32.
pub(crate) fn layer_norm_f32(
    x: &Tensor,
    affine: Option<&(Tensor, Tensor)>,
    eps: f64,
) -> Result<Tensor> {
    let xf = x.to_dtype(DType::F32)?;
    let centred = xf.broadcast_sub(&xf.mean_keepdim(D::Minus1)?)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let y = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
    match affine {
        Some((w, b)) => y.broadcast_mul(w)?.broadcast_add(b),
        None => Ok(y),
    }
}

/// RMS norm over the last dimension (accumulated in f32 by candle's kernel).
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let w = if weight.dtype() == x.dtype() {
        weight.clone()
    } else {
        weight.to_dtype(x.dtype())?
    };
    candle_nn::ops::rms_norm(&x.contiguous()?, &w, eps as f32)
}

/// The rotary tables of one latent grid: `(cos, sin)`, `[S, head_dim/2]` f32, one angle per
/// channel pair, tokens in (f, h, w) order. Per axis of `d` channels, pair j turns at
/// `θ^(−2j/d)` (θ = 10⁴) times the token's index on that axis; angles and their cos/sin in f64
/// as diffusers' `WanRotaryPosEmbed` builds them, rounded to f32 at the end.
pub(crate) fn rope_tables(
    cfg: &WanTransformerConfig,
    grid: (usize, usize, usize),
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let (dt, dh, dw) = cfg.rope_split();
    let freqs = |d: usize| -> Vec<f64> {
        (0..d / 2)
            .map(|j| 1.0 / 10000f64.powf((2 * j) as f64 / d as f64))
            .collect()
    };
    let (ft, fh, fw) = (freqs(dt), freqs(dh), freqs(dw));
    let (f, h, w) = grid;
    let half = cfg.attention_head_dim / 2;
    let mut cos = Vec::with_capacity(f * h * w * half);
    let mut sin = Vec::with_capacity(f * h * w * half);
    for i in 0..f {
        for j in 0..h {
            for k in 0..w {
                let angles = ft
                    .iter()
                    .map(|x| x * i as f64)
                    .chain(fh.iter().map(|x| x * j as f64))
                    .chain(fw.iter().map(|x| x * k as f64));
                for a in angles {
                    cos.push(a.cos() as f32);
                    sin.push(a.sin() as f32);
                }
            }
        }
    }
    let s = f * h * w;
    Ok((
        Tensor::from_vec(cos, (s, half), device)?,
        Tensor::from_vec(sin, (s, half), device)?,
    ))
}

/// diffusers `get_timestep_embedding(t, n, flip_sin_to_cos=True, downscale_freq_shift=0)`:
/// `[cos(t·f_i), sin(t·f_i)]`, `f_i = exp(−ln(10⁴)·i/(n/2))`, in f32 as the reference rounds.
pub(crate) fn timestep_sinusoids(t: &Tensor, channels: usize) -> Result<Tensor> {
    let half = channels / 2;
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

/// What every block of one call shares.
pub(crate) struct BlockInput<'a> {
    /// Projected text `[B, L, dim]`.
    pub text: &'a Tensor,
    /// Projected image states `[B, N, dim]` (image-conditioned models).
    pub image: Option<&'a Tensor>,
    /// Timestep projection `[B, 6, dim]` (compute dtype).
    pub temb: &'a Tensor,
    /// Rotary `(cos, sin)` `[S, head_dim/2]` f32.
    pub rope: (&'a Tensor, &'a Tensor),
    pub budget: usize,
}

/// diffusers `WanAttention` + `WanAttnProcessor` (q/k RMS-normalised across heads).
#[derive(Clone)]
pub(crate) struct Attention {
    pub q: WLinear,
    pub k: WLinear,
    pub v: WLinear,
    pub o: WLinear,
    pub norm_q: Tensor,
    pub norm_k: Tensor,
    /// Image keys/values: `add_k_proj`, `add_v_proj`, `norm_added_k`.
    pub image: Option<(WLinear, WLinear, Tensor)>,
    pub heads: usize,
    /// The q/k norms' epsilon.
    pub eps: f64,
}

impl Attention {
    fn map(&self, f: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<Self> {
        Ok(Self {
            q: self.q.map(f)?,
            k: self.k.map(f)?,
            v: self.v.map(f)?,
            o: self.o.map(f)?,
            norm_q: f(&self.norm_q)?,
            norm_k: f(&self.norm_k)?,
            image: match &self.image {
                Some((k, v, n)) => Some((k.map(f)?, v.map(f)?, f(n)?)),
                None => None,
            },
            heads: self.heads,
            eps: self.eps,
        })
    }

    pub(crate) fn tensors(&self) -> Vec<&Tensor> {
        let mut t: Vec<&Tensor> = [&self.q, &self.k, &self.v, &self.o]
            .into_iter()
            .flat_map(WLinear::tensors)
            .collect();
        t.extend([&self.norm_q, &self.norm_k]);
        if let Some((k, v, n)) = &self.image {
            t.extend(k.tensors());
            t.extend(v.tensors());
            t.push(n);
        }
        t
    }

    /// `x` `[B, S, dim]` attends to itself (with `rope`) or to `context` (and the image states).
    fn forward(
        &self,
        x: &Tensor,
        context: Option<&Tensor>,
        image: Option<&Tensor>,
        rope: Option<(&Tensor, &Tensor)>,
        budget: usize,
    ) -> Result<Tensor> {
        let (heads, eps) = (self.heads, self.eps);
        let (b, s, dim) = x.dims3()?;
        let hd = dim / heads;
        let ctx = context.unwrap_or(x);
        let split = |t: &Tensor| -> Result<Tensor> {
            let n = t.dim(1)?;
            t.reshape((b, n, heads, hd))?.transpose(1, 2)?.contiguous()
        };
        let q = split(&rms_norm(&self.q.forward(x)?, &self.norm_q, eps)?)?;
        let k = split(&rms_norm(&self.k.forward(ctx)?, &self.norm_k, eps)?)?;
        let v = split(&self.v.forward(ctx)?)?;
        let (q, k) = match rope {
            Some((cos, sin)) => {
                let turn = |t: &Tensor| -> Result<Tensor> {
                    candle_nn::rotary_emb::rope_i(&t.to_dtype(DType::F32)?, cos, sin)?
                        .to_dtype(t.dtype())
                };
                (turn(&q)?, turn(&k)?)
            }
            None => (q, k),
        };
        let mut out = attention(&q, &k, &v, None, budget)?;
        if let (Some((add_k, add_v, norm)), Some(img)) = (&self.image, image) {
            let ki = split(&rms_norm(&add_k.forward(img)?, norm, eps)?)?;
            let vi = split(&add_v.forward(img)?)?;
            out = (out + attention(&q, &ki, &vi, None, budget)?)?;
        }
        let out = out.transpose(1, 2)?.reshape((b, s, dim))?;
        self.o.forward(&out)
    }
}

/// One `WanTransformerBlock`: modulated self-attention with RoPE, cross-attention to the text
/// (and image) after an affine LayerNorm, modulated tanh-GELU feed-forward. The modulation,
/// the norms and the residual sums run in f32 as in the reference; the rest in the compute
/// dtype.
#[derive(Clone)]
pub(crate) struct Block {
    pub attn1: Attention,
    pub attn2: Attention,
    /// The cross-attention norm's affine (f32), when `cross_attn_norm`.
    pub norm2: Option<(Tensor, Tensor)>,
    pub ffn_in: WLinear,
    pub ffn_out: WLinear,
    /// `[6, dim]` f32.
    pub scale_shift_table: Tensor,
    pub eps: f64,
}

impl Block {
    /// The same block with every tensor passed through `f` (a device transfer).
    pub fn map(&self, f: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<Self> {
        Ok(Self {
            attn1: self.attn1.map(f)?,
            attn2: self.attn2.map(f)?,
            norm2: match &self.norm2 {
                Some((w, b)) => Some((f(w)?, f(b)?)),
                None => None,
            },
            ffn_in: self.ffn_in.map(f)?,
            ffn_out: self.ffn_out.map(f)?,
            scale_shift_table: f(&self.scale_shift_table)?,
            eps: self.eps,
        })
    }

    pub fn bytes(&self) -> usize {
        let mut t = self.attn1.tensors();
        t.extend(self.attn2.tensors());
        if let Some((w, b)) = &self.norm2 {
            t.extend([w, b]);
        }
        t.extend(self.ffn_in.tensors());
        t.extend(self.ffn_out.tensors());
        t.push(&self.scale_shift_table);
        t.into_iter().map(bytes).sum()
    }

    /// The weights stored in fp8.
    pub fn fp8_tensors(&self) -> usize {
        let mut t = self.attn1.tensors();
        t.extend(self.attn2.tensors());
        t.extend(self.ffn_in.tensors());
        t.extend(self.ffn_out.tensors());
        t.into_iter().filter(|t| t.dtype() == DType::F8E4M3).count()
    }

    pub fn forward(&self, x: &Tensor, input: &BlockInput) -> Result<Tensor> {
        let dtype = x.dtype();
        // [B, 6, dim] f32: the block's table plus the timestep projection.
        let ada = input
            .temb
            .to_dtype(DType::F32)?
            .broadcast_add(&self.scale_shift_table.unsqueeze(0)?)?;
        let part = |i: usize| ada.narrow(1, i, 1);
        let (shift_msa, scale_msa, gate_msa) = (part(0)?, part(1)?, part(2)?);
        let (c_shift, c_scale, c_gate) = (part(3)?, part(4)?, part(5)?);

        let norm = layer_norm_f32(x, None, self.eps)?
            .broadcast_mul(&(scale_msa + 1.0)?)?
            .broadcast_add(&shift_msa)?
            .to_dtype(dtype)?;
        let attn = self
            .attn1
            .forward(&norm, None, None, Some(input.rope), input.budget)?;
        let x = (x.to_dtype(DType::F32)? + attn.to_dtype(DType::F32)?.broadcast_mul(&gate_msa)?)?
            .to_dtype(dtype)?;

        let norm = match &self.norm2 {
            Some(affine) => layer_norm_f32(&x, Some(affine), self.eps)?.to_dtype(dtype)?,
            None => x.clone(),
        };
        let attn = self
            .attn2
            .forward(&norm, Some(input.text), input.image, None, input.budget)?;
        let x = (x + attn)?;

        let norm = layer_norm_f32(&x, None, self.eps)?
            .broadcast_mul(&(c_scale + 1.0)?)?
            .broadcast_add(&c_shift)?
            .to_dtype(dtype)?;
        // candle's `gelu` is the tanh approximation (diffusers "gelu-approximate").
        let ff = self.ffn_out.forward(&self.ffn_in.forward(&norm)?.gelu()?)?;
        (x.to_dtype(DType::F32)? + ff.to_dtype(DType::F32)?.broadcast_mul(&c_gate)?)?
            .to_dtype(dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp8_weights_are_upcast_per_call() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[0.5f32, -1.0], [0.25, 2.0]], &dev)?;
        let x = Tensor::new(&[[1f32, 2.0]], &dev)?;
        let full = WLinear {
            weight: w.clone(),
            bias: None,
        };
        let fp8 = WLinear {
            weight: w.to_dtype(DType::F8E4M3)?,
            bias: None,
        };
        assert_eq!(fp8.weight.dtype(), DType::F8E4M3);
        // These values are exact in e4m3, so the two agree to the bit.
        assert_eq!(
            full.forward(&x)?.to_vec2::<f32>()?,
            fp8.forward(&x)?.to_vec2::<f32>()?
        );
        Ok(())
    }
}
