//! The two Real-ESRGAN generator families, built from named tensors.
//!
//! - RRDBNet (ESRGAN's generator as BasicSR defines it): `conv_first`, `num_block` residual-in-
//!   residual dense blocks of three 5-conv dense blocks (growth 32, LeakyReLU 0.2, residuals
//!   scaled by 0.2), `conv_body`, two nearest ×2 upsamplings each followed by a conv, `conv_hr`,
//!   `conv_last`. Scale 2 and 1 pixel-unshuffle the input by 2 and 4 first (their `conv_first`
//!   takes 12 or 48 channels), so the output is always 4× the unshuffled size.
//! - SRVGGNetCompact (realesr-animevideov3, realesr-general-x4v3): `body.0` conv, then
//!   `num_conv` conv+PReLU pairs, a last conv to `3·s²` channels, pixel shuffle by `s`, plus the
//!   input upsampled by nearest neighbour: the network learns a residual over it.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig};

use crate::weights::Tensors;
use crate::{PostError, Result};

/// A 3×3 "same" convolution from `prefix.weight`/`prefix.bias`.
pub(crate) fn conv3(t: &Tensors, prefix: &str, dtype: DType, device: &Device) -> Result<Conv2d> {
    let get = |n: &str| -> Result<Tensor> {
        let name = format!("{prefix}.{n}");
        let v = t.get(&name).ok_or_else(|| PostError::Weights {
            path: String::new(),
            message: format!("tensor `{name}` is missing"),
        })?;
        Ok(v.to_device(device)?.to_dtype(dtype)?)
    };
    let w = get("weight")?;
    let (_, _, kh, kw) = w.dims4()?;
    if kh != 3 || kw != 3 {
        return Err(PostError::Weights {
            path: String::new(),
            message: format!("`{prefix}.weight` is {kh}x{kw}, Real-ESRGAN convolutions are 3x3"),
        });
    }
    let cfg = Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    Ok(Conv2d::new(w, Some(get("bias")?), cfg))
}

fn lrelu(x: &Tensor) -> Result<Tensor> {
    // max(x, 0.2x) is LeakyReLU(0.2) for a slope below one, in one pass.
    Ok(x.maximum(&(x * 0.2)?)?)
}

/// RRDBNet's shape, read from its tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RrdbShape {
    /// 4, 2 or 1: the factor from input to output.
    pub scale: usize,
    pub num_block: usize,
    pub num_feat: usize,
    pub num_grow: usize,
}

struct Dense {
    convs: [Conv2d; 5],
}

impl Dense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut feats = vec![x.clone()];
        for (i, c) in self.convs.iter().enumerate() {
            let inp = if feats.len() == 1 {
                x.clone()
            } else {
                Tensor::cat(&feats, 1)?
            };
            let y = c.forward(&inp)?;
            if i == 4 {
                return Ok(((y * 0.2)? + x)?);
            }
            feats.push(lrelu(&y)?);
        }
        unreachable!("five convolutions always return")
    }
}

pub struct Rrdb {
    pub shape: RrdbShape,
    first: Conv2d,
    blocks: Vec<[Dense; 3]>,
    body: Conv2d,
    up1: Conv2d,
    up2: Conv2d,
    hr: Conv2d,
    last: Conv2d,
}

impl Rrdb {
    pub fn new(t: &Tensors, shape: RrdbShape, dtype: DType, device: &Device) -> Result<Self> {
        let c = |p: &str| conv3(t, p, dtype, device);
        let mut blocks = Vec::with_capacity(shape.num_block);
        for b in 0..shape.num_block {
            let dense = |r: usize| -> Result<Dense> {
                let k = |i: usize| c(&format!("body.{b}.rdb{r}.conv{i}"));
                Ok(Dense {
                    convs: [k(1)?, k(2)?, k(3)?, k(4)?, k(5)?],
                })
            };
            blocks.push([dense(1)?, dense(2)?, dense(3)?]);
        }
        Ok(Rrdb {
            shape,
            first: c("conv_first")?,
            blocks,
            body: c("conv_body")?,
            up1: c("conv_up1")?,
            up2: c("conv_up2")?,
            hr: c("conv_hr")?,
            last: c("conv_last")?,
        })
    }

    /// `[N, 3, H, W]` → `[N, 3, H·scale, W·scale]`; H and W must be multiples of `4 / scale`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = match self.shape.scale {
            2 => candle_nn::ops::pixel_unshuffle(x, 2)?,
            1 => candle_nn::ops::pixel_unshuffle(x, 4)?,
            _ => x.clone(),
        };
        let feat = self.first.forward(&x)?;
        let mut h = feat.clone();
        for [a, b, c] in &self.blocks {
            let y = c.forward(&b.forward(&a.forward(&h)?)?)?;
            h = ((y * 0.2)? + h)?;
        }
        let feat = (self.body.forward(&h)? + feat)?;
        let (_, _, fh, fw) = feat.dims4()?;
        let feat = lrelu(
            &self
                .up1
                .forward(&feat.upsample_nearest2d(fh * 2, fw * 2)?)?,
        )?;
        let feat = lrelu(
            &self
                .up2
                .forward(&feat.upsample_nearest2d(fh * 4, fw * 4)?)?,
        )?;
        Ok(self.last.forward(&lrelu(&self.hr.forward(&feat)?)?)?)
    }

    /// How far (in input pixels) an output pixel sees: the halo that makes tiles exact.
    pub fn reach(&self) -> usize {
        // Unshuffled: every conv before the upsampling sees one more unshuffled pixel; the
        // three after it add under one input pixel together.
        let unshuffle = 4 / self.shape.scale;
        (2 + 15 * self.shape.num_block) * unshuffle + 1
    }
}

/// SRVGGNetCompact's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactShape {
    pub scale: usize,
    pub num_conv: usize,
    pub num_feat: usize,
}

pub struct Compact {
    pub shape: CompactShape,
    convs: Vec<Conv2d>,
    /// PReLU slopes `[1, C, 1, 1]`, one after every conv but the last.
    slopes: Vec<Tensor>,
}

impl Compact {
    pub fn new(t: &Tensors, shape: CompactShape, dtype: DType, device: &Device) -> Result<Self> {
        let mut convs = Vec::with_capacity(shape.num_conv + 2);
        let mut slopes = Vec::with_capacity(shape.num_conv + 1);
        for i in 0..shape.num_conv + 2 {
            convs.push(conv3(t, &format!("body.{}", 2 * i), dtype, device)?);
            if i <= shape.num_conv {
                let name = format!("body.{}.weight", 2 * i + 1);
                let s = t.get(&name).ok_or_else(|| PostError::Weights {
                    path: String::new(),
                    message: format!(
                        "tensor `{name}` (a PReLU) is missing: only the PReLU SRVGGNetCompact \
                         (every released model) is supported"
                    ),
                })?;
                let n = s.elem_count();
                slopes.push(
                    s.to_device(device)?
                        .to_dtype(dtype)?
                        .reshape((1, n, 1, 1))?,
                );
            }
        }
        Ok(Compact {
            shape,
            convs,
            slopes,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, c) in self.convs.iter().enumerate() {
            h = c.forward(&h)?;
            if let Some(s) = self.slopes.get(i) {
                // PReLU: x for x ≥ 0, slope·x below.
                let neg = h.minimum(0f32)?;
                h = (h.maximum(0f32)? + neg.broadcast_mul(s)?)?;
            }
        }
        let up = candle_nn::ops::pixel_shuffle(&h, self.shape.scale)?;
        let (_, _, ih, iw) = x.dims4()?;
        let s = self.shape.scale;
        Ok((up + x.upsample_nearest2d(ih * s, iw * s)?)?)
    }

    pub fn reach(&self) -> usize {
        self.shape.num_conv + 2
    }
}
