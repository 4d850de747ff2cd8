//! The CLIP text encoder (transformers' `CLIPTextModel` / `CLIPTextModelWithProjection`): SD 1.x
//! and FLUX use CLIP-L, SD 2.x OpenCLIP-H, SDXL both CLIP-L and OpenCLIP-bigG. Ours because the
//! pipelines need outputs candle's does not give: the penultimate layer, the pooled token and
//! the projection, with either activation.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn as nn;

use crate::config::ClipConfig;

struct Layer {
    ln1: nn::LayerNorm,
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    out: nn::Linear,
    ln2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
}

pub struct ClipText {
    token: nn::Embedding,
    position: Tensor,
    layers: Vec<Layer>,
    final_norm: nn::LayerNorm,
    projection: Option<nn::Linear>,
    heads: usize,
    quick_gelu: bool,
    eos_token_id: usize,
}

/// What the pipelines take from a text encoder.
pub struct ClipOutput {
    /// After the final layer norm `[b, tokens, hidden]`.
    pub last: Tensor,
    /// The second-to-last layer's output, without the final norm (SDXL).
    pub penultimate: Tensor,
    /// The final-normed hidden state at the end-of-text token `[b, hidden]`.
    pub pooled: Tensor,
    /// `pooled` through the text projection, when the model has one `[b, proj]`.
    pub projected: Option<Tensor>,
}

impl ClipText {
    pub fn new(vb: nn::VarBuilder, cfg: &ClipConfig, with_projection: bool) -> Result<Self> {
        let quick_gelu = match cfg.hidden_act.as_str() {
            "quick_gelu" => true,
            "gelu" => false,
            other => candle_core::bail!("text encoder config: hidden_act {other} unsupported"),
        };
        let h = cfg.hidden_size;
        let t = vb.pp("text_model");
        let emb = t.pp("embeddings");
        let token = nn::embedding(cfg.vocab_size, h, emb.pp("token_embedding"))?;
        let position = emb
            .pp("position_embedding")
            .get((cfg.max_position_embeddings, h), "weight")?;
        let ln = |vb: nn::VarBuilder| nn::layer_norm(h, cfg.layer_norm_eps, vb);
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = t.pp("encoder.layers").pp(i);
                let a = l.pp("self_attn");
                Ok(Layer {
                    ln1: ln(l.pp("layer_norm1"))?,
                    q: nn::linear(h, h, a.pp("q_proj"))?,
                    k: nn::linear(h, h, a.pp("k_proj"))?,
                    v: nn::linear(h, h, a.pp("v_proj"))?,
                    out: nn::linear(h, h, a.pp("out_proj"))?,
                    ln2: ln(l.pp("layer_norm2"))?,
                    fc1: nn::linear(h, cfg.intermediate_size, l.pp("mlp.fc1"))?,
                    fc2: nn::linear(cfg.intermediate_size, h, l.pp("mlp.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let projection = if with_projection {
            let p = cfg.projection_dim.unwrap_or(h);
            Some(nn::linear_no_bias(h, p, vb.pp("text_projection"))?)
        } else {
            None
        };
        Ok(Self {
            token,
            position,
            layers,
            final_norm: ln(t.pp("final_layer_norm"))?,
            projection,
            heads: cfg.num_attention_heads,
            quick_gelu,
            eos_token_id: cfg.eos_token_id,
        })
    }

    fn attention(&self, l: &Layer, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, n, h) = x.dims3()?;
        let d = h / self.heads;
        let split = |t: Tensor| {
            t.reshape((b, n, self.heads, d))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split((l.q.forward(x)? * (d as f64).powf(-0.5))?)?;
        let k = split(l.k.forward(x)?)?;
        let v = split(l.v.forward(x)?)?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask)?;
        let probs = nn::ops::softmax_last_dim(&scores)?;
        let o = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, n, h))?;
        l.out.forward(&o)
    }

    fn mlp(&self, l: &Layer, x: &Tensor) -> Result<Tensor> {
        let x = l.fc1.forward(x)?;
        let x = if self.quick_gelu {
            (&x * nn::ops::sigmoid(&(&x * 1.702)?)?)?
        } else {
            x.gelu_erf()?
        };
        l.fc2.forward(&x)
    }

    /// Encodes token ids `[b, tokens]` (u32).
    pub fn forward(&self, ids: &Tensor) -> Result<ClipOutput> {
        let (b, n) = ids.dims2()?;
        let dtype = self.position.dtype();
        let mut x = self
            .token
            .forward(ids)?
            .broadcast_add(&self.position.narrow(0, 0, n)?)?;
        let mask = causal_mask(n, dtype, x.device())?;
        let mut penultimate = x.clone();
        let count = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            let a = self.attention(l, &l.ln1.forward(&x)?, &mask)?;
            x = (x + a)?;
            let m = self.mlp(l, &l.ln2.forward(&x)?)?;
            x = (x + m)?;
            if i + 2 == count {
                penultimate = x.clone();
            }
        }
        let last = self.final_norm.forward(&x)?;
        let ids_host = ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let mut rows = Vec::with_capacity(b);
        for (r, row) in ids_host.iter().enumerate() {
            let pos = self.eos_position(row);
            rows.push(last.get(r)?.get(pos)?);
        }
        let pooled = Tensor::stack(&rows, 0)?;
        let projected = match &self.projection {
            Some(p) => Some(p.forward(&pooled)?),
            None => None,
        };
        Ok(ClipOutput {
            last,
            penultimate,
            pooled,
            projected,
        })
    }

    /// Where transformers pools: the highest id for legacy configs (eos id 2, where the eos
    /// token is the highest id), else the first end-of-text token.
    fn eos_position(&self, row: &[u32]) -> usize {
        if self.eos_token_id == 2 {
            let mut best = 0;
            for (i, &id) in row.iter().enumerate() {
                if id > row[best] {
                    best = i;
                }
            }
            best
        } else {
            row.iter()
                .position(|&id| id as usize == self.eos_token_id)
                .unwrap_or(row.len() - 1)
        }
    }
}

fn causal_mask(n: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let m: Vec<f32> = (0..n)
        .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(m, (n, n), dev)?.to_dtype(dtype)
}
