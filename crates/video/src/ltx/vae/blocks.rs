//! The VAE's building blocks: the resnet block, the pixel-shuffle up- and downsamplers, the
//! timestep embedder, and the per-pixel norms.
//!
//! Every norm here normalises each pixel over its channels (RMS norm, and the shortcut's layer
//! norm): nothing mixes pixels but the convolutions. That is what lets the decoder run on
//! spatial tiles and on chunks of frames and still give the single-pass result.
//!
//! The blocks the decoder streams take `step(state, x, last)`: the next frames (or none), and
//! whether the stream ends; they return the frames that are complete (see
//! [`crate::conv3d::CausalConv3d::step`]).

use candle_core::{DType, Result, Tensor};
use candle_nn as nn;
use candle_nn::Module;

use crate::conv3d::{CausalConv3d, Conv3dConfig, Conv3dState, TimePadding};

/// The causal or non-causal LTX convolution (kernel `k³`, "same" spatial padding, stride 1
/// unless given), loaded from `vb.conv` like diffusers' `LTXVideoCausalConv3d` wrapper.
pub(crate) fn ltx_conv(
    vb: nn::VarBuilder,
    cin: usize,
    cout: usize,
    k: usize,
    stride: (usize, usize, usize),
    causal: bool,
) -> Result<CausalConv3d> {
    let cfg = Conv3dConfig {
        stride,
        padding: (k / 2, k / 2),
        time_padding: if causal {
            TimePadding::ReplicateFirst
        } else {
            TimePadding::ReplicateBoth
        },
    };
    CausalConv3d::load(vb.pp("conv"), cin, cout, (k, k, k), cfg, true)
}

/// RMS norm over the channels (dim 1) without weights, in f32 (diffusers' `RMSNorm` with
/// `elementwise_affine=False`, eps 1e-8).
pub(crate) fn rms_norm(x: &Tensor) -> Result<Tensor> {
    let dt = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let ms = xf.sqr()?.mean_keepdim(1)?;
    xf.broadcast_div(&(ms + 1e-8)?.sqrt()?)?.to_dtype(dt)
}

/// Layer norm over the channels (dim 1) with weight and bias `[1, c, 1, 1, 1]`.
pub(crate) struct ChannelLayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl ChannelLayerNorm {
    fn new(vb: nn::VarBuilder, c: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(c, "weight")?.reshape((1, c, 1, 1, 1))?,
            bias: vb.get(c, "bias")?.reshape((1, c, 1, 1, 1))?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dt = x.dtype();
        let xf = x.to_dtype(DType::F32)?;
        let centred = xf.broadcast_sub(&xf.mean_keepdim(1)?)?;
        let var = centred.sqr()?.mean_keepdim(1)?;
        let y = centred
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .to_dtype(dt)?;
        y.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// PixArt-α's timestep embedding (diffusers `PixArtAlphaCombinedTimestepSizeEmbeddings` without
/// the size conditions): 256 sinusoids (cos first), linear, SiLU, linear.
pub(crate) struct TimeEmbedder {
    linear_1: nn::Linear,
    linear_2: nn::Linear,
}

impl TimeEmbedder {
    pub(crate) fn new(vb: nn::VarBuilder, dim: usize) -> Result<Self> {
        let vb = vb.pp("timestep_embedder");
        Ok(Self {
            linear_1: nn::linear(256, dim, vb.pp("linear_1"))?,
            linear_2: nn::linear(dim, dim, vb.pp("linear_2"))?,
        })
    }

    /// `t` `[b]` → `[b, dim]` in `dtype`.
    pub(crate) fn forward(&self, t: &Tensor, dtype: DType) -> Result<Tensor> {
        let emb = sinusoids(t, 256)?.to_dtype(dtype)?;
        self.linear_2
            .forward(&nn::ops::silu(&self.linear_1.forward(&emb)?)?)
    }
}

/// diffusers' `get_timestep_embedding` with `flip_sin_to_cos=True`, `downscale_freq_shift=0`:
/// `[cos(t·f), sin(t·f)]` with `f_i = 10000^(−i/half)`, in f32.
pub(crate) fn sinusoids(t: &Tensor, dim: usize) -> Result<Tensor> {
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(10000f64.ln()) * i as f64 / half as f64).exp() as f32)
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
    let args = t
        .to_dtype(DType::F32)?
        .reshape((t.elem_count(), 1))?
        .broadcast_mul(&freqs)?;
    let emb = Tensor::cat(&[&args.cos()?, &args.sin()?], 1)?;
    if !dim.is_multiple_of(2) {
        emb.pad_with_zeros(1, 0, 1)
    } else {
        Ok(emb)
    }
}

/// Frames waiting to be paired with frames that come later (a block's shortcut waits for its
/// convolutions, which lag when they look ahead).
#[derive(Clone, Debug, Default)]
pub(crate) struct FrameQueue(Option<Tensor>);

impl FrameQueue {
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().and_then(|t| t.dim(2).ok()).unwrap_or(0)
    }

    pub(crate) fn push(&mut self, x: Tensor) -> Result<()> {
        self.0 = Some(match self.0.take() {
            Some(q) => Tensor::cat(&[&q, &x], 2)?,
            None => x,
        });
        Ok(())
    }

    /// The first `n` frames (`n` ≥ 1 and at most [`len`](Self::len)).
    pub(crate) fn take(&mut self, n: usize) -> Result<Tensor> {
        let len = self.len();
        if n == 0 || n > len {
            candle_core::bail!("frame queue: {n} frames asked of {len}");
        }
        let Some(q) = self.0.take() else {
            candle_core::bail!("frame queue: {n} frames asked of an empty queue");
        };
        if n < len {
            self.0 = Some(q.narrow(2, n, len - n)?);
            q.narrow(2, 0, n)
        } else {
            Ok(q)
        }
    }
}

/// What a resnet block is conditioned on in one decode: the timestep's shifts and scales
/// (`[b, c, 1, 1, 1]` each: shift₁, scale₁, shift₂, scale₂) and its two noise images, already
/// scaled per channel (`[1, c, 1, h, w]`, cropped to the tile).
#[derive(Clone, Debug, Default)]
pub(crate) struct ResnetCond {
    pub(crate) modulation: Option<[Tensor; 4]>,
    pub(crate) noise: Option<[Tensor; 2]>,
}

/// A resnet block's stream state.
#[derive(Clone, Debug, Default)]
pub(crate) struct ResnetState {
    conv1: Conv3dState,
    conv2: Conv3dState,
    shortcut: FrameQueue,
}

/// diffusers `LTXVideoResnetBlock3d`: RMS norm, (timestep modulation), SiLU, conv, (noise),
/// RMS norm, (modulation), SiLU, conv, (noise), plus the input (through a layer norm and a 1³
/// convolution when the width changes).
pub(crate) struct Resnet {
    conv1: CausalConv3d,
    conv2: CausalConv3d,
    norm3: Option<ChannelLayerNorm>,
    conv_shortcut: Option<CausalConv3d>,
    /// `[c]` each: the learned noise scales.
    noise_scales: Option<[Tensor; 2]>,
    /// `[4, c]`: added to the timestep embedding.
    scale_shift_table: Option<Tensor>,
    in_channels: usize,
}

impl Resnet {
    pub(crate) fn new(
        vb: nn::VarBuilder,
        cin: usize,
        cout: usize,
        eps: f64,
        causal: bool,
        inject_noise: bool,
        timestep_conditioning: bool,
    ) -> Result<Self> {
        let conv1 = ltx_conv(vb.pp("conv1"), cin, cout, 3, (1, 1, 1), causal)?;
        let conv2 = ltx_conv(vb.pp("conv2"), cout, cout, 3, (1, 1, 1), causal)?;
        let (norm3, conv_shortcut) = if cin != cout {
            (
                Some(ChannelLayerNorm::new(vb.pp("norm3"), cin, eps)?),
                Some(ltx_conv(
                    vb.pp("conv_shortcut"),
                    cin,
                    cout,
                    1,
                    (1, 1, 1),
                    causal,
                )?),
            )
        } else {
            (None, None)
        };
        if (inject_noise || timestep_conditioning) && cin != cout {
            // diffusers sizes the noise scales and the table by the input width but applies them
            // to the output; such a block cannot run there either.
            candle_core::bail!(
                "LTX VAE: a resnet from {cin} to {cout} channels with noise or timestep \
                 conditioning (diffusers cannot run it)"
            );
        }
        let noise_scales = if inject_noise {
            Some([
                vb.get((cin, 1, 1), "per_channel_scale1")?.flatten_all()?,
                vb.get((cin, 1, 1), "per_channel_scale2")?.flatten_all()?,
            ])
        } else {
            None
        };
        let scale_shift_table = if timestep_conditioning {
            Some(vb.get((4, cin), "scale_shift_table")?)
        } else {
            None
        };
        Ok(Self {
            conv1,
            conv2,
            norm3,
            conv_shortcut,
            noise_scales,
            scale_shift_table,
            in_channels: cin,
        })
    }

    pub(crate) fn injects_noise(&self) -> bool {
        self.noise_scales.is_some()
    }

    /// The learned per-channel noise scales `[c]` (first and second convolution).
    pub(crate) fn noise_scales(&self) -> Option<&[Tensor; 2]> {
        self.noise_scales.as_ref()
    }

    /// Shift and scale `[b, c, 1, 1, 1]` ×4 from the block's timestep embedding `[b, 4c]`.
    pub(crate) fn modulation(&self, temb: Option<&Tensor>) -> Result<Option<[Tensor; 4]>> {
        let Some(table) = &self.scale_shift_table else {
            return Ok(None);
        };
        let Some(temb) = temb else {
            candle_core::bail!("LTX VAE: a timestep-conditioned block without a timestep");
        };
        let b = temb.dim(0)?;
        let c = self.in_channels;
        let m = temb
            .reshape((b, 4, c))?
            .broadcast_add(&table.unsqueeze(0)?.to_dtype(temb.dtype())?)?;
        let part = |i: usize| m.narrow(1, i, 1)?.reshape((b, c, 1, 1, 1));
        Ok(Some([part(0)?, part(1)?, part(2)?, part(3)?]))
    }

    /// The whole clip at once (the encoder's use).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut st = ResnetState::default();
        match self.step(&mut st, Some(x.clone()), true, &ResnetCond::default())? {
            Some(y) => Ok(y),
            None => candle_core::bail!("LTX VAE: a resnet block gave no frames"),
        }
    }

    pub(crate) fn step(
        &self,
        st: &mut ResnetState,
        x: Option<Tensor>,
        last: bool,
        cond: &ResnetCond,
    ) -> Result<Option<Tensor>> {
        if self.noise_scales.is_some() && cond.noise.is_none() {
            candle_core::bail!("LTX VAE: a noise-injecting block without its noise");
        }
        let modulate = |h: Tensor, shift: usize| -> Result<Tensor> {
            match &cond.modulation {
                Some(m) => h
                    .broadcast_mul(&(&m[shift + 1] + 1.0)?)?
                    .broadcast_add(&m[shift]),
                None => Ok(h),
            }
        };
        let noise = |h: Tensor, i: usize| -> Result<Tensor> {
            match &cond.noise {
                Some(n) => h.broadcast_add(&n[i]),
                None => Ok(h),
            }
        };
        let h = match &x {
            Some(x) => Some(nn::ops::silu(&modulate(rms_norm(x)?, 0)?)?),
            None => None,
        };
        let h = self.conv1.step(&mut st.conv1, h.as_ref(), last)?;
        let h = match h {
            Some(h) => Some(nn::ops::silu(&modulate(rms_norm(&noise(h, 0)?)?, 2)?)?),
            None => None,
        };
        let h = self.conv2.step(&mut st.conv2, h.as_ref(), last)?;
        if let Some(x) = x {
            let mut r = x;
            if let Some(n) = &self.norm3 {
                r = n.forward(&r)?;
            }
            if let Some(c) = &self.conv_shortcut {
                r = c.forward(&r)?;
            }
            st.shortcut.push(r)?;
        }
        match h {
            Some(h) => {
                let h = noise(h, 1)?;
                let r = st.shortcut.take(h.dim(2)?)?;
                Ok(Some((h + r)?))
            }
            None => Ok(None),
        }
    }
}

/// `[b, c·st·sh·sw, f, h, w]` → `[b, c, f·st, h·sh, w·sw]` (channel order `(c, st, sh, sw)`).
pub(crate) fn depth_to_space(x: &Tensor, s: (usize, usize, usize)) -> Result<Tensor> {
    let (b, c, f, h, w) = x.dims5()?;
    let (st, sh, sw) = s;
    let n = st * sh * sw;
    if !c.is_multiple_of(n) {
        candle_core::bail!("depth to space: {c} channels for a {s:?} shuffle");
    }
    x.reshape(vec![b, c / n, st, sh, sw, f, h, w])?
        .permute(vec![0, 1, 5, 2, 6, 3, 7, 4])?
        .contiguous()?
        .reshape((b, c / n, f * st, h * sh, w * sw))
}

/// `[b, c, f, h, w]` → `[b, c·st·sh·sw, f/st, h/sh, w/sw]` (channel order `(c, st, sh, sw)`).
pub(crate) fn space_to_depth(x: &Tensor, s: (usize, usize, usize)) -> Result<Tensor> {
    let (b, c, f, h, w) = x.dims5()?;
    let (st, sh, sw) = s;
    if !f.is_multiple_of(st) || !h.is_multiple_of(sh) || !w.is_multiple_of(sw) {
        candle_core::bail!(
            "LTX VAE: {f} frames of {h}×{w} do not fold by {s:?} (sizes must divide evenly)"
        );
    }
    x.reshape(vec![b, c, f / st, st, h / sh, sh, w / sw, sw])?
        .permute(vec![0, 1, 3, 5, 7, 2, 4, 6])?
        .contiguous()?
        .reshape((b, c * st * sh * sw, f / st, h / sh, w / sw))
}

/// A pixel-shuffle upsampler's stream state.
#[derive(Clone, Debug, Default)]
pub(crate) struct UpsamplerState {
    conv: Conv3dState,
    residual: FrameQueue,
    /// The first `st − 1` output frames of the clip are gone.
    trimmed: bool,
}

/// diffusers `LTXVideoUpsampler3d`: a convolution to `st·sh·sw / factor` times the channels,
/// a pixel shuffle by the stride, the first `st − 1` frames dropped (a latent frame's first
/// frame stands alone); with `residual`, plus the shuffled input repeated over the channels.
pub(crate) struct Upsampler {
    conv: CausalConv3d,
    stride: (usize, usize, usize),
    residual: bool,
    factor: usize,
}

impl Upsampler {
    pub(crate) fn new(
        vb: nn::VarBuilder,
        cin: usize,
        stride: (usize, usize, usize),
        causal: bool,
        residual: bool,
        factor: usize,
    ) -> Result<Self> {
        let n = stride.0 * stride.1 * stride.2;
        if factor == 0 || !(cin * n).is_multiple_of(factor) || !n.is_multiple_of(factor) {
            candle_core::bail!(
                "LTX VAE: upsample factor {factor} for {cin} channels, stride {stride:?}"
            );
        }
        Ok(Self {
            conv: ltx_conv(vb.pp("conv"), cin, cin * n / factor, 3, (1, 1, 1), causal)?,
            stride,
            residual,
            factor,
        })
    }

    pub(crate) fn stride(&self) -> (usize, usize, usize) {
        self.stride
    }

    pub(crate) fn step(
        &self,
        st: &mut UpsamplerState,
        x: Option<Tensor>,
        last: bool,
    ) -> Result<Option<Tensor>> {
        let h = self.conv.step(&mut st.conv, x.as_ref(), last)?;
        if self.residual {
            if let Some(x) = x {
                st.residual.push(x)?;
            }
        }
        let Some(h) = h else { return Ok(None) };
        let mut y = depth_to_space(&h, self.stride)?;
        if self.residual {
            let r = st.residual.take(h.dim(2)?)?;
            let r = depth_to_space(&r, self.stride)?;
            let n = self.stride.0 * self.stride.1 * self.stride.2;
            let r = r.repeat((1, n / self.factor, 1, 1, 1))?;
            y = (y + r)?;
        }
        if !st.trimmed {
            st.trimmed = true;
            let drop = self.stride.0 - 1;
            let f = y.dim(2)?;
            if drop >= f {
                candle_core::bail!("LTX VAE: upsampler output too short to trim");
            }
            if drop > 0 {
                y = y.narrow(2, drop, f - drop)?;
            }
        }
        Ok(Some(y))
    }
}

/// diffusers `LTXVideoDownsampler3d` (0.9.5 encoder): the first `st − 1` frames repeated in
/// front, then (a convolution to `out / (st·sh·sw)` channels, folded by the stride) plus (the
/// input folded by the stride, averaged over groups of channels).
pub(crate) struct Downsampler {
    conv: CausalConv3d,
    stride: (usize, usize, usize),
    group: usize,
    out_channels: usize,
}

impl Downsampler {
    pub(crate) fn new(
        vb: nn::VarBuilder,
        cin: usize,
        cout: usize,
        stride: (usize, usize, usize),
        causal: bool,
    ) -> Result<Self> {
        let n = stride.0 * stride.1 * stride.2;
        if cout == 0 || !(cin * n).is_multiple_of(cout) || !cout.is_multiple_of(n) {
            candle_core::bail!(
                "LTX VAE: a downsampler from {cin} to {cout} channels by {stride:?}"
            );
        }
        Ok(Self {
            conv: ltx_conv(vb.pp("conv"), cin, cout / n, 3, (1, 1, 1), causal)?,
            stride,
            group: cin * n / cout,
            out_channels: cout,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let st = self.stride.0;
        let x = if st > 1 {
            let f = x.dim(2)?;
            if f < st - 1 {
                candle_core::bail!("LTX VAE: {f} frames are too few to downsample by {st}");
            }
            Tensor::cat(&[&x.narrow(2, 0, st - 1)?, x], 2)?
        } else {
            x.clone()
        };
        let r = space_to_depth(&x, self.stride)?;
        let (b, _, f, h, w) = r.dims5()?;
        let r = r
            .reshape(vec![b, self.out_channels, self.group, f, h, w])?
            .mean(2)?;
        let y = space_to_depth(&self.conv.forward(&x)?, self.stride)?;
        y + r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn shuffles_invert_each_other() {
        let x = Tensor::arange(0f32, 2.0 * 16.0 * 4.0 * 6.0 * 2.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 16, 4, 6, 2))
            .unwrap();
        let s = (2, 2, 1);
        let y = depth_to_space(&space_to_depth(&x, s).unwrap(), s).unwrap();
        let d = (y - &x).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
        assert!(space_to_depth(&x, (3, 1, 1)).is_err());
    }

    #[test]
    fn sinusoids_put_cosines_first() {
        let t = Tensor::new(&[0f32, 2.0], &Device::Cpu).unwrap();
        let e = sinusoids(&t, 256).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(e[0][0], 1.0);
        assert_eq!(e[0][128], 0.0);
        assert!((e[1][0] - 2f32.cos()).abs() < 1e-6);
        assert!((e[1][128] - 2f32.sin()).abs() < 1e-6);
        // The last frequency is 10000^(-127/128).
        let f = (-(10000f64.ln()) * 127.0 / 128.0).exp();
        assert!((e[1][127] as f64 - (2.0 * f).cos()).abs() < 1e-6);
    }

    #[test]
    fn frame_queue_hands_out_in_order() {
        let mut q = FrameQueue::default();
        let a = Tensor::arange(0f32, 3.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 3, 1, 1))
            .unwrap();
        q.push(a.clone()).unwrap();
        q.push(a).unwrap();
        assert_eq!(q.len(), 6);
        let t = q
            .take(4)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(t, vec![0.0, 1.0, 2.0, 0.0]);
        assert!(q.take(3).is_err());
    }
}
