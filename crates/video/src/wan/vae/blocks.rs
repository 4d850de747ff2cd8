//! The Wan2.1 VAE's layers: the causal convolution with its two-frame cache, the L2-normalising
//! RMS norm, the residual block, the per-frame attention and the resamplers.
//!
//! The cache is diffusers' `feat_cache`: one slot per causal convolution, visited in call order
//! (`feat_idx`). A slot holds the last [`CACHE_T`] input frames the convolution saw, which stand
//! in front of the next chunk instead of zero padding, so a clip fed a chunk at a time gives the
//! frames the clip fed at once would. The temporal upsampler marks its slot
//! [`Slot::Rep`] on the first chunk (which it does not upsample in time) and the temporal
//! downsampler keeps its last input frame.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use candle_core::{Result, Tensor, D};

use super::config::ATTENTION_CHUNK_BYTES;
use crate::attention::attention;
use crate::conv3d::{CausalConv3d, Conv3dConfig, TimePadding};
use crate::VideoError;

/// Frames a causal convolution keeps of its input for the next chunk.
pub(super) const CACHE_T: usize = 2;

/// One convolution's state between chunks.
#[derive(Clone, Debug, Default)]
pub(crate) enum Slot {
    /// No chunk seen yet.
    #[default]
    Empty,
    /// The temporal upsampler after the first chunk (diffusers' `"Rep"`): its next chunk is
    /// upsampled in time behind zero padding.
    Rep,
    /// The last input frames `[b, c, ≤ 2, h, w]`.
    Frames(Tensor),
}

/// The slots of one network, visited in call order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cache {
    pub(crate) slots: Vec<Slot>,
    at: usize,
}

impl Cache {
    pub(crate) fn from_slots(slots: Vec<Slot>) -> Self {
        Self { slots, at: 0 }
    }

    /// Before each chunk: the first convolution takes the first slot again.
    pub(super) fn rewind(&mut self) {
        self.at = 0;
    }

    fn next(&mut self) -> &mut Slot {
        if self.at == self.slots.len() {
            self.slots.push(Slot::Empty);
        }
        self.at += 1;
        &mut self.slots[self.at - 1]
    }
}

/// Tensors by (diffusers) name, handed out once each; what is left over is unexpected.
pub(super) struct Weights<'a> {
    map: &'a HashMap<String, Tensor>,
    used: RefCell<HashSet<String>>,
    path: &'a str,
}

impl<'a> Weights<'a> {
    pub(super) fn new(map: &'a HashMap<String, Tensor>, path: &'a str) -> Self {
        Self {
            map,
            used: RefCell::new(HashSet::new()),
            path,
        }
    }

    fn err(&self, message: String) -> VideoError {
        VideoError::Weights {
            path: self.path.to_string(),
            message,
        }
    }

    pub(super) fn get(
        &self,
        name: &str,
        shape: &[usize],
    ) -> std::result::Result<Tensor, VideoError> {
        let t = self.map.get(name).ok_or_else(|| {
            self.err(format!(
                "tensor `{name}` is missing (not a Wan2.1 VAE, or a config that does not match it)"
            ))
        })?;
        if t.dims() != shape {
            return Err(self.err(format!(
                "tensor `{name}` has shape {:?}, the config needs {shape:?}",
                t.dims()
            )));
        }
        self.used.borrow_mut().insert(name.to_string());
        Ok(t.clone())
    }

    /// An error naming the first tensor nothing read.
    pub(super) fn finish(&self) -> std::result::Result<(), VideoError> {
        let used = self.used.borrow();
        let mut extra: Vec<&String> = self.map.keys().filter(|k| !used.contains(*k)).collect();
        extra.sort();
        match extra.first() {
            None => Ok(()),
            Some(k) => Err(self.err(format!(
                "unexpected tensor `{k}` ({} unexpected in all): not a Wan2.1 VAE of this config",
                extra.len()
            ))),
        }
    }
}

type Built<T> = std::result::Result<T, VideoError>;

/// Wan's causal 3D convolution: `2·pt` zero frames in front (or the cached frames), `ph`/`pw`
/// zeros around.
#[derive(Clone, Debug)]
pub(super) struct Conv {
    conv: CausalConv3d,
    front: usize,
}

impl Conv {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn load(
        w: &Weights,
        name: &str,
        cin: usize,
        cout: usize,
        kernel: (usize, usize, usize),
        stride: (usize, usize, usize),
        padding: (usize, usize, usize),
    ) -> Built<Self> {
        let (kt, kh, kw) = kernel;
        let weight = w.get(&format!("{name}.weight"), &[cout, cin, kt, kh, kw])?;
        let bias = w.get(&format!("{name}.bias"), &[cout])?;
        let cfg = Conv3dConfig {
            stride,
            padding: (padding.1, padding.2),
            time_padding: TimePadding::None,
        };
        Ok(Self {
            conv: CausalConv3d::new(weight, Some(bias), cfg)?,
            front: 2 * padding.0,
        })
    }

    /// `k×k×k`, stride 1, padding `k/2` (the causal "same" convolution).
    pub(super) fn same(w: &Weights, name: &str, cin: usize, cout: usize, k: usize) -> Built<Self> {
        Self::load(
            w,
            name,
            cin,
            cout,
            (k, k, k),
            (1, 1, 1),
            (k / 2, k / 2, k / 2),
        )
    }

    /// `x` behind `cached` frames (if any), then zeros in front for the rest of the padding.
    fn run(&self, x: &Tensor, cached: Option<&Tensor>) -> Result<Tensor> {
        let mut parts: Vec<Tensor> = Vec::with_capacity(3);
        let have = match cached {
            Some(c) => c.dim(2)?,
            None => 0,
        };
        if self.front > have {
            let (b, c, _, h, w) = x.dims5()?;
            parts.push(Tensor::zeros(
                (b, c, self.front - have, h, w),
                x.dtype(),
                x.device(),
            )?);
        }
        if let Some(c) = cached.filter(|_| self.front > 0) {
            parts.push(c.clone());
        }
        if parts.is_empty() {
            return self.conv.forward(x);
        }
        parts.push(x.clone());
        self.conv.forward(&Tensor::cat(&parts, 2)?)
    }

    /// Without a cache (zero padding in front).
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, None)
    }

    /// One chunk of a stream through the next slot of `cache`.
    pub(super) fn step(&self, x: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let slot = cache.next();
        let prev = match slot {
            Slot::Frames(t) => Some(t.clone()),
            _ => None,
        };
        let keep = keep_frames(x, prev.as_ref(), false)?;
        let y = self.run(x, prev.as_ref())?;
        *slot = Slot::Frames(keep);
        Ok(y)
    }
}

/// The last [`CACHE_T`] frames of `x`; a one-frame chunk keeps the previous cache's last frame
/// in front of it (zeros after a [`Slot::Rep`] when `zeros_if_none`).
fn keep_frames(x: &Tensor, prev: Option<&Tensor>, zeros_if_none: bool) -> Result<Tensor> {
    let t = x.dim(2)?;
    let tail = x.narrow(2, t.saturating_sub(CACHE_T), t.min(CACHE_T))?;
    if t >= CACHE_T {
        return tail.contiguous();
    }
    match prev {
        Some(p) => {
            let pt = p.dim(2)?;
            Tensor::cat(&[&p.narrow(2, pt - 1, 1)?, &tail], 2)
        }
        None if zeros_if_none => Tensor::cat(&[&tail.zeros_like()?, &tail], 2),
        None => tail.contiguous(),
    }
}

/// `F.normalize(x, dim=1) · √C · γ` (no bias in Wan2.1).
#[derive(Clone, Debug)]
pub(super) struct RmsNorm {
    /// `[1, C, 1, 1(, 1)]`, already times √C.
    gamma: Tensor,
}

impl RmsNorm {
    /// `images`: a norm over `[n, C, h, w]` (γ `[C, 1, 1]`), else over `[b, C, t, h, w]`.
    pub(super) fn load(w: &Weights, name: &str, dim: usize, images: bool) -> Built<Self> {
        let shape: &[usize] = if images {
            &[dim, 1, 1]
        } else {
            &[dim, 1, 1, 1]
        };
        let g = w.get(&format!("{name}.gamma"), shape)?;
        let gamma = (g.unsqueeze(0)? * (dim as f64).sqrt())?;
        Ok(Self { gamma })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
        x.broadcast_div(&norm)?.broadcast_mul(&self.gamma)
    }
}

/// norm → SiLU → conv → norm → SiLU → conv, plus the (1×1×1 projected) input.
#[derive(Clone, Debug)]
pub(super) struct ResBlock {
    norm1: RmsNorm,
    conv1: Conv,
    norm2: RmsNorm,
    conv2: Conv,
    shortcut: Option<Conv>,
}

impl ResBlock {
    pub(super) fn load(w: &Weights, name: &str, cin: usize, cout: usize) -> Built<Self> {
        let shortcut = if cin != cout {
            Some(Conv::same(
                w,
                &format!("{name}.conv_shortcut"),
                cin,
                cout,
                1,
            )?)
        } else {
            None
        };
        Ok(Self {
            norm1: RmsNorm::load(w, &format!("{name}.norm1"), cin, false)?,
            conv1: Conv::same(w, &format!("{name}.conv1"), cin, cout, 3)?,
            norm2: RmsNorm::load(w, &format!("{name}.norm2"), cout, false)?,
            conv2: Conv::same(w, &format!("{name}.conv2"), cout, cout, 3)?,
            shortcut,
        })
    }

    pub(super) fn step(&self, x: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let h = match &self.shortcut {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        let y = self.norm1.forward(x)?.silu()?;
        let y = self.conv1.step(&y, cache)?;
        let y = self.norm2.forward(&y)?.silu()?;
        let y = self.conv2.step(&y, cache)?;
        y + h
    }
}

/// `[b, c, t, h, w]` → `[b·t, c, h, w]`.
pub(super) fn frames_to_batch(x: &Tensor) -> Result<Tensor> {
    let (b, c, t, h, w) = x.dims5()?;
    x.permute((0, 2, 1, 3, 4))?.reshape((b * t, c, h, w))
}

/// `[b·t, c, h, w]` → `[b, c, t, h, w]`.
pub(super) fn batch_to_frames(x: &Tensor, b: usize) -> Result<Tensor> {
    let (bt, c, h, w) = x.dims4()?;
    x.reshape((b, bt / b, c, h, w))?
        .permute((0, 2, 1, 3, 4))?
        .contiguous()
}

/// Single-head self-attention over each frame's pixels.
#[derive(Clone, Debug)]
pub(super) struct Attention {
    norm: RmsNorm,
    qkv_w: Tensor,
    qkv_b: Tensor,
    proj_w: Tensor,
    proj_b: Tensor,
    dim: usize,
}

impl Attention {
    pub(super) fn load(w: &Weights, name: &str, dim: usize) -> Built<Self> {
        Ok(Self {
            norm: RmsNorm::load(w, &format!("{name}.norm"), dim, true)?,
            qkv_w: w
                .get(&format!("{name}.to_qkv.weight"), &[3 * dim, dim, 1, 1])?
                .reshape((3 * dim, dim))?,
            qkv_b: w.get(&format!("{name}.to_qkv.bias"), &[3 * dim])?,
            proj_w: w
                .get(&format!("{name}.proj.weight"), &[dim, dim, 1, 1])?
                .reshape((dim, dim))?,
            proj_b: w.get(&format!("{name}.proj.bias"), &[dim])?,
            dim,
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t, h, w) = x.dims5()?;
        let n = h * w;
        // [b·t, hw, c]: pixels as tokens.
        let tokens = self
            .norm
            .forward(&frames_to_batch(x)?)?
            .reshape((b * t, c, n))?
            .transpose(1, 2)?
            .contiguous()?;
        let qkv = tokens
            .broadcast_matmul(&self.qkv_w.t()?)?
            .broadcast_add(&self.qkv_b)?;
        // One head over the frame's pixels: [b·t, 1, hw, c], the query rows in chunks (the
        // scores of a 720p frame's 14 400 tokens would be 830 MB).
        let head = |i: usize| {
            qkv.narrow(D::Minus1, i * self.dim, self.dim)?
                .unsqueeze(1)?
                .contiguous()
        };
        let o = attention(
            &head(0)?,
            &head(1)?,
            &head(2)?,
            None,
            ATTENTION_CHUNK_BYTES as usize,
        )?
        .squeeze(1)?;
        let o = o
            .broadcast_matmul(&self.proj_w.t()?)?
            .broadcast_add(&self.proj_b)?;
        let o = o.transpose(1, 2)?.reshape((b * t, c, h, w))?;
        batch_to_frames(&o, b)? + x
    }
}

/// What a [`Resample`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ResampleMode {
    Up2d,
    Up3d,
    Down2d,
    Down3d,
}

/// 2× (or ½×) in space, and with a temporal convolution also in time.
#[derive(Clone, Debug)]
pub(super) struct Resample {
    mode: ResampleMode,
    conv_w: Tensor,
    conv_b: Tensor,
    time_conv: Option<Conv>,
}

impl Resample {
    pub(super) fn load(w: &Weights, name: &str, dim: usize, mode: ResampleMode) -> Built<Self> {
        let out = match mode {
            ResampleMode::Up2d | ResampleMode::Up3d => dim / 2,
            _ => dim,
        };
        let time_conv = match mode {
            ResampleMode::Up3d => Some(Conv::load(
                w,
                &format!("{name}.time_conv"),
                dim,
                2 * dim,
                (3, 1, 1),
                (1, 1, 1),
                (1, 0, 0),
            )?),
            ResampleMode::Down3d => Some(Conv::load(
                w,
                &format!("{name}.time_conv"),
                dim,
                dim,
                (3, 1, 1),
                (2, 1, 1),
                (0, 0, 0),
            )?),
            _ => None,
        };
        Ok(Self {
            mode,
            conv_w: w.get(&format!("{name}.resample.1.weight"), &[out, dim, 3, 3])?,
            conv_b: w
                .get(&format!("{name}.resample.1.bias"), &[out])?
                .reshape((1, out, 1, 1))?,
            time_conv,
        })
    }

    pub(super) fn step(&self, x: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let b = x.dim(0)?;
        let mut x = x.clone();
        if let (ResampleMode::Up3d, Some(tc)) = (self.mode, &self.time_conv) {
            let slot = cache.next();
            match slot {
                Slot::Empty => *slot = Slot::Rep,
                Slot::Rep | Slot::Frames(_) => {
                    let prev = match slot {
                        Slot::Frames(t) => Some(t.clone()),
                        _ => None,
                    };
                    let keep = keep_frames(&x, prev.as_ref(), true)?;
                    let y = tc.run(&x, prev.as_ref())?;
                    *slot = Slot::Frames(keep);
                    // [b, 2c, t, h, w] → frames 2i (first c channels) and 2i + 1 (the rest).
                    let (_, c2, t, h, w) = y.dims5()?;
                    let c = c2 / 2;
                    x = y
                        .reshape((b, 2, c, t, h, w))?
                        .permute((0, 2, 3, 1, 4, 5))?
                        .reshape((b, c, 2 * t, h, w))?;
                }
            }
        }
        let f = frames_to_batch(&x)?;
        let f = match self.mode {
            ResampleMode::Up2d | ResampleMode::Up3d => {
                let (_, _, h, w) = f.dims4()?;
                f.upsample_nearest2d(2 * h, 2 * w)?
                    .conv2d(&self.conv_w, 1, 1, 1, 1)?
            }
            ResampleMode::Down2d | ResampleMode::Down3d => f
                .pad_with_zeros(2, 0, 1)?
                .pad_with_zeros(3, 0, 1)?
                .conv2d(&self.conv_w, 0, 2, 1, 1)?,
        };
        let x = batch_to_frames(&f.broadcast_add(&self.conv_b)?, b)?;
        match (self.mode, &self.time_conv) {
            (ResampleMode::Down3d, Some(tc)) => {
                let slot = cache.next();
                let t = x.dim(2)?;
                let last = x.narrow(2, t - 1, 1)?.contiguous()?;
                let prev = std::mem::replace(slot, Slot::Frames(last));
                match prev {
                    // The first chunk passes through unchanged.
                    Slot::Empty | Slot::Rep => Ok(x),
                    Slot::Frames(p) => {
                        let pt = p.dim(2)?;
                        tc.forward(&Tensor::cat(&[&p.narrow(2, pt - 1, 1)?, &x], 2)?)
                    }
                }
            }
            _ => Ok(x),
        }
    }
}
