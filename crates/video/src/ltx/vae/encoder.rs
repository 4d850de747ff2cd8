//! The encoder (diffusers `LTXVideoEncoder3d`): patchify, down blocks, mid block, RMS norm,
//! SiLU, a convolution to `latent + 1` channels whose last channel is the (shared) log-variance.
//!
//! Causal by default: latent frame `j` depends on the input frames up to `j·8` only (the first
//! latent frame on the first frame alone), so a clip's prefix encodes to the prefix's latents.

use candle_core::{Result, Tensor};
use candle_nn as nn;

use super::blocks::{ltx_conv, rms_norm, space_to_depth, Downsampler, Resnet};
use super::config::LtxVaeConfig;
use crate::conv3d::CausalConv3d;

enum Down {
    /// A strided 3D convolution (2 in time and space).
    Conv(CausalConv3d),
    Fold(Downsampler),
}

struct DownBlock {
    resnets: Vec<Resnet>,
    down: Option<Down>,
    /// `LTXVideoDownBlock3D`'s width change after the downsampler.
    conv_out: Option<Resnet>,
}

pub(crate) struct Encoder {
    conv_in: CausalConv3d,
    blocks: Vec<DownBlock>,
    mid: Vec<Resnet>,
    conv_out: CausalConv3d,
    patch: usize,
    patch_t: usize,
}

fn at<T: Copy>(v: &[T], i: usize, what: &str) -> Result<T> {
    match v.get(i) {
        Some(x) => Ok(*x),
        None => candle_core::bail!("LTX VAE config: {what} has no entry {i}"),
    }
}

impl Encoder {
    pub(crate) fn new(vb: nn::VarBuilder, cfg: &LtxVaeConfig) -> Result<Self> {
        let causal = cfg.encoder_causal;
        let eps = cfg.resnet_norm_eps;
        let bo = &cfg.block_out_channels;
        let types = &cfg.down_block_types;
        let Some(&first) = bo.first() else {
            candle_core::bail!("LTX VAE config: empty block_out_channels");
        };
        let is_095 = types.last().map(String::as_str) == Some("LTXVideo095DownBlock3D");
        let n = bo.len() - usize::from(is_095);
        let p = cfg.patch_size;
        let conv_in = ltx_conv(
            vb.pp("conv_in"),
            cfg.in_channels * p * p,
            first,
            3,
            (1, 1, 1),
            causal,
        )?;
        let mut out = first;
        let mut blocks = Vec::with_capacity(n);
        for i in 0..n {
            let cin = out;
            out = if is_095 || i + 1 < n {
                at(bo, i + 1, "block_out_channels")?
            } else {
                bo[i]
            };
            let vbb = vb.pp("down_blocks").pp(i);
            let layers = at(&cfg.layers_per_block, i, "layers_per_block")?;
            let scale = at(&cfg.spatio_temporal_scaling, i, "spatio_temporal_scaling")?;
            let resnets = (0..layers)
                .map(|j| Resnet::new(vbb.pp("resnets").pp(j), cin, cin, eps, causal, false, false))
                .collect::<Result<Vec<_>>>()?;
            let strided = |vbd: nn::VarBuilder| -> Result<Down> {
                Ok(Down::Conv(ltx_conv(vbd, cin, cin, 3, (2, 2, 2), causal)?))
            };
            let vbd = vbb.pp("downsamplers").pp(0);
            let block = match types.get(i).map(String::as_str) {
                Some("LTXVideoDownBlock3D") => DownBlock {
                    resnets,
                    down: if scale { Some(strided(vbd)?) } else { None },
                    conv_out: if cin != out {
                        Some(Resnet::new(
                            vbb.pp("conv_out"),
                            cin,
                            out,
                            eps,
                            causal,
                            false,
                            false,
                        )?)
                    } else {
                        None
                    },
                },
                Some("LTXVideo095DownBlock3D") => {
                    let down = if scale {
                        let kind = cfg.downsample_type.get(i).map(String::as_str);
                        let fold = |s| -> Result<Down> {
                            Ok(Down::Fold(Downsampler::new(
                                vbd.clone(),
                                cin,
                                out,
                                s,
                                causal,
                            )?))
                        };
                        Some(match kind {
                            Some("conv") => strided(vbd.clone())?,
                            Some("spatial") => fold((1, 2, 2))?,
                            Some("temporal") => fold((2, 1, 1))?,
                            Some("spatiotemporal") => fold((2, 2, 2))?,
                            other => candle_core::bail!(
                                "LTX VAE config: downsample_type {other:?} for block {i}"
                            ),
                        })
                    } else {
                        None
                    };
                    DownBlock {
                        resnets,
                        down,
                        conv_out: None,
                    }
                }
                other => candle_core::bail!("LTX VAE config: down block type {other:?}"),
            };
            blocks.push(block);
        }
        let mid_layers = match cfg.layers_per_block.last() {
            Some(&l) => l,
            None => candle_core::bail!("LTX VAE config: empty layers_per_block"),
        };
        let mid = (0..mid_layers)
            .map(|j| {
                Resnet::new(
                    vb.pp("mid_block").pp("resnets").pp(j),
                    out,
                    out,
                    eps,
                    causal,
                    false,
                    false,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let conv_out = ltx_conv(
            vb.pp("conv_out"),
            out,
            cfg.latent_channels + 1,
            3,
            (1, 1, 1),
            causal,
        )?;
        Ok(Self {
            conv_in,
            blocks,
            mid,
            conv_out,
            patch: p,
            patch_t: cfg.patch_size_t,
        })
    }

    /// Video `[b, c, f, h, w]` → moments `[b, 2·latent, f', h', w']`: the means, then the
    /// log-variance channel repeated (diffusers' layout, what `DiagonalGaussianDistribution`
    /// splits in two).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, f, h, w) = x.dims5()?;
        let (p, pt) = (self.patch, self.patch_t);
        if !f.is_multiple_of(pt) || !h.is_multiple_of(p) || !w.is_multiple_of(p) {
            candle_core::bail!(
                "LTX VAE: a {f}-frame {w}×{h} clip does not split into {pt}×{p}×{p} patches"
            );
        }
        // diffusers' patch channel order is (c, t, x, y): width before height.
        let xs = space_to_depth(x, (pt, p, p))?;
        let xs = swap_patch_axes(&xs, x.dim(1)? * pt, p)?;
        let mut xs = self.conv_in.forward(&xs)?;
        for b in &self.blocks {
            for r in &b.resnets {
                xs = r.forward(&xs)?;
            }
            match &b.down {
                Some(Down::Conv(c)) => xs = c.forward(&xs)?,
                Some(Down::Fold(d)) => xs = d.forward(&xs)?,
                None => {}
            }
            if let Some(r) = &b.conv_out {
                xs = r.forward(&xs)?;
            }
        }
        for r in &self.mid {
            xs = r.forward(&xs)?;
        }
        let xs = self.conv_out.forward(&nn::ops::silu(&rms_norm(&xs)?)?)?;
        let c = xs.dim(1)?;
        let logvar = xs.narrow(1, c - 1, 1)?;
        let rest = logvar.repeat((1, c.saturating_sub(2), 1, 1, 1))?;
        Tensor::cat(&[&xs, &rest], 1)
    }
}

/// Patch channels `(c, y, x)` → `(c, x, y)` (and back: the swap is its own inverse).
pub(crate) fn swap_patch_axes(x: &Tensor, groups: usize, p: usize) -> Result<Tensor> {
    if p == 1 {
        return Ok(x.clone());
    }
    let (b, _, f, h, w) = x.dims5()?;
    x.reshape(vec![b, groups, p, p, f, h, w])?
        .transpose(2, 3)?
        .contiguous()?
        .reshape((b, groups * p * p, f, h, w))
}
