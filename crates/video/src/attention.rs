//! Scaled dot-product attention with the queries in chunks, shared by every network here
//! (LTX and Wan transformers, the Wan VAE's per-frame attention).
//!
//! The `[B, H, Sq, Sk]` score matrix of a long video does not fit anywhere (LTX: 6144 tokens ×
//! 32 heads × batch 2 is 4.8 GB in bf16 per layer; Wan at 832×480×81: 32 760 tokens), so the
//! queries are processed in chunks whose scores stay under a byte budget. Each query row's
//! softmax needs only its own scores, so the result does not depend on the chunking.

use candle_core::{Result, Tensor};

/// Attention over `[B, H, S, d]` tensors, scaled by `1/√d`, with an optional additive bias
/// broadcastable to `[B, H, Sq, Sk]`; the queries in chunks whose `[B, H, chunk, Sk]` scores
/// stay under `budget` bytes (at least one row at a time).
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    budget: usize,
) -> Result<Tensor> {
    let (b, h, sq, d) = q.dims4()?;
    let sk = k.dim(2)?;
    let scale = 1.0 / (d as f64).sqrt();
    let kt = k.t()?.contiguous()?;
    let one = |q: &Tensor| -> Result<Tensor> {
        let scores = (q * scale)?.matmul(&kt)?;
        let scores = match bias {
            Some(bias) => scores.broadcast_add(bias)?,
            None => scores,
        };
        candle_nn::ops::softmax_last_dim(&scores)?.matmul(v)
    };
    let row_bytes = (b * h * sk * q.dtype().size_in_bytes()).max(1);
    let chunk = (budget / row_bytes).clamp(1, sq.max(1));
    if chunk >= sq {
        return one(q);
    }
    let mut outs = Vec::with_capacity(sq.div_ceil(chunk));
    let mut start = 0;
    while start < sq {
        let len = chunk.min(sq - start);
        outs.push(one(&q.narrow(2, start, len)?.contiguous()?)?);
        start += len;
    }
    Tensor::cat(&outs, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn chunked_attention_matches_one_piece() -> Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (2, 3, 37, 8), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (2, 3, 29, 8), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (2, 3, 29, 8), &dev)?;
        let mask = Tensor::randn(0f32, 1.0, (2, 1, 1, 29), &dev)?.ge(0.0)?;
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 10000.0)?;
        // One row's scores are 2·3·29·4 bytes: a budget of 5 rows gives chunks of 5, 5, …, 2.
        let row = 2 * 3 * 29 * 4;
        for bias in [None, Some(&bias)] {
            let whole = attention(&q, &k, &v, bias, usize::MAX)?;
            for budget in [1, row * 5, row * 36] {
                let chunked = attention(&q, &k, &v, bias, budget)?;
                let diff = (&whole - &chunked)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(diff <= 1e-6, "budget {budget}: max|Δ| {diff}");
            }
        }
        // The bias takes effect: masked keys change the result.
        let free = attention(&q, &k, &v, None, usize::MAX)?;
        let masked = attention(&q, &k, &v, Some(&bias), usize::MAX)?;
        let diff = (&free - &masked)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff > 1e-3, "{diff}");
        Ok(())
    }
}
