//! The encoder and decoder networks (diffusers `WanEncoder3d`, `WanDecoder3d`), run a chunk at
//! a time through a [`Cache`].

use candle_core::{Result, Tensor};

use super::blocks::{Attention, Cache, Conv, ResBlock, Resample, ResampleMode, RmsNorm, Weights};
use super::config::WanVaeConfig;
use crate::VideoError;

type Built<T> = std::result::Result<T, VideoError>;

/// Residual block, attention, residual block.
#[derive(Clone, Debug)]
struct MidBlock {
    res0: ResBlock,
    attn: Attention,
    res1: ResBlock,
}

impl MidBlock {
    fn load(w: &Weights, name: &str, dim: usize) -> Built<Self> {
        Ok(Self {
            res0: ResBlock::load(w, &format!("{name}.resnets.0"), dim, dim)?,
            attn: Attention::load(w, &format!("{name}.attentions.0"), dim)?,
            res1: ResBlock::load(w, &format!("{name}.resnets.1"), dim, dim)?,
        })
    }

    fn step(&self, x: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let x = self.res0.step(x, cache)?;
        let x = self.attn.forward(&x)?;
        self.res1.step(&x, cache)
    }
}

#[derive(Clone, Debug)]
enum Layer {
    Res(Box<ResBlock>),
    Resample(Resample),
}

/// Video `[b, 3, t, h, w]` → moments `[b, 2·z, t', h/8, w/8]` (before `quant_conv`).
#[derive(Clone, Debug)]
pub(super) struct Encoder {
    conv_in: Conv,
    layers: Vec<Layer>,
    mid: MidBlock,
    norm_out: RmsNorm,
    conv_out: Conv,
}

impl Encoder {
    pub(super) fn load(w: &Weights, cfg: &WanVaeConfig) -> Built<Self> {
        let dims = cfg.encoder_dims();
        let levels = cfg.dim_mult.len();
        let conv_in = Conv::same(w, "encoder.conv_in", cfg.in_channels, dims[0], 3)?;
        let mut layers = Vec::new();
        for i in 0..levels {
            let (mut cin, out) = (dims[i], dims[i + 1]);
            for _ in 0..cfg.num_res_blocks {
                let name = format!("encoder.down_blocks.{}", layers.len());
                layers.push(Layer::Res(Box::new(ResBlock::load(w, &name, cin, out)?)));
                cin = out;
            }
            if i + 1 < levels {
                let mode = if cfg.temperal_downsample[i] {
                    ResampleMode::Down3d
                } else {
                    ResampleMode::Down2d
                };
                let name = format!("encoder.down_blocks.{}", layers.len());
                layers.push(Layer::Resample(Resample::load(w, &name, out, mode)?));
            }
        }
        let top = dims[levels];
        Ok(Self {
            conv_in,
            layers,
            mid: MidBlock::load(w, "encoder.mid_block", top)?,
            norm_out: RmsNorm::load(w, "encoder.norm_out", top, false)?,
            conv_out: Conv::same(w, "encoder.conv_out", top, 2 * cfg.z_dim, 3)?,
        })
    }

    /// One chunk (diffusers: frame 0 alone, then 4 frames at a time).
    pub(super) fn step(&self, x: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        cache.rewind();
        let mut x = self.conv_in.step(x, cache)?;
        for layer in &self.layers {
            x = match layer {
                Layer::Res(r) => r.step(&x, cache)?,
                Layer::Resample(r) => r.step(&x, cache)?,
            };
        }
        let x = self.mid.step(&x, cache)?;
        let x = self.norm_out.forward(&x)?.silu()?;
        self.conv_out.step(&x, cache)
    }
}

#[derive(Clone, Debug)]
struct UpBlock {
    resnets: Vec<ResBlock>,
    upsampler: Option<Resample>,
}

/// Latents `[b, z, 1, h, w]` (after `post_quant_conv`) → pixel frames, one latent frame a step.
#[derive(Clone, Debug)]
pub(super) struct Decoder {
    conv_in: Conv,
    mid: MidBlock,
    ups: Vec<UpBlock>,
    norm_out: RmsNorm,
    conv_out: Conv,
}

impl Decoder {
    pub(super) fn load(w: &Weights, cfg: &WanVaeConfig) -> Built<Self> {
        let dims = cfg.decoder_dims();
        let levels = cfg.dim_mult.len();
        let temporal = cfg.temperal_upsample();
        let conv_in = Conv::same(w, "decoder.conv_in", cfg.z_dim, dims[0], 3)?;
        let mid = MidBlock::load(w, "decoder.mid_block", dims[0])?;
        let mut ups = Vec::with_capacity(levels);
        for i in 0..levels {
            // Wan2.1: each upsampler halves the width it hands on.
            let mut cin = if i > 0 { dims[i] / 2 } else { dims[i] };
            let out = dims[i + 1];
            let mut resnets = Vec::with_capacity(cfg.num_res_blocks + 1);
            for j in 0..=cfg.num_res_blocks {
                let name = format!("decoder.up_blocks.{i}.resnets.{j}");
                resnets.push(ResBlock::load(w, &name, cin, out)?);
                cin = out;
            }
            let upsampler = if i + 1 < levels {
                let mode = if temporal[i] {
                    ResampleMode::Up3d
                } else {
                    ResampleMode::Up2d
                };
                let name = format!("decoder.up_blocks.{i}.upsamplers.0");
                Some(Resample::load(w, &name, out, mode)?)
            } else {
                None
            };
            ups.push(UpBlock { resnets, upsampler });
        }
        let last = dims[levels];
        Ok(Self {
            conv_in,
            mid,
            ups,
            norm_out: RmsNorm::load(w, "decoder.norm_out", last, false)?,
            conv_out: Conv::same(w, "decoder.conv_out", last, cfg.out_channels, 3)?,
        })
    }

    /// One latent frame: 1 pixel frame for the first, `4` for each later one.
    pub(super) fn step(&self, x: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        cache.rewind();
        let x = self.conv_in.step(x, cache)?;
        let mut x = self.mid.step(&x, cache)?;
        for up in &self.ups {
            for r in &up.resnets {
                x = r.step(&x, cache)?;
            }
            if let Some(u) = &up.upsampler {
                x = u.step(&x, cache)?;
            }
        }
        let x = self.norm_out.forward(&x)?.silu()?;
        self.conv_out.step(&x, cache)
    }
}
