//! The KL autoencoder (SD, SDXL and FLUX.1 share the architecture; FLUX has 16 latent channels,
//! no quant convs and a shift). Built from candle-transformers' blocks; ours because candle's
//! encoder hides the posterior's mean and draws its own noise, which image-to-image needs.

use candle_core::{Module, Result, Tensor};
use candle_nn as nn;
use candle_transformers::models::stable_diffusion::unet_2d_blocks::{
    DownEncoderBlock2D, DownEncoderBlock2DConfig, UNetMidBlock2D, UNetMidBlock2DConfig,
    UpDecoderBlock2D, UpDecoderBlock2DConfig,
};

use crate::config::VaeConfig;

pub struct Vae {
    enc_in: nn::Conv2d,
    enc_down: Vec<DownEncoderBlock2D>,
    enc_mid: UNetMidBlock2D,
    enc_norm: nn::GroupNorm,
    enc_out: nn::Conv2d,
    quant: Option<nn::Conv2d>,
    post_quant: Option<nn::Conv2d>,
    dec_in: nn::Conv2d,
    dec_mid: UNetMidBlock2D,
    dec_up: Vec<UpDecoderBlock2D>,
    dec_norm: nn::GroupNorm,
    dec_out: nn::Conv2d,
    pub config: VaeConfig,
}

/// The encoder's output: a diagonal Gaussian over latents (unscaled).
pub struct Posterior {
    pub mean: Tensor,
    pub std: Tensor,
}

impl Posterior {
    /// `mean + std · noise` (diffusers' `latent_dist.sample`, with the noise given).
    pub fn sample(&self, noise: &Tensor) -> Result<Tensor> {
        &self.mean + (&self.std * noise)?
    }
}

const EPS: f64 = 1e-6;

fn conv(cin: usize, cout: usize, k: usize, vb: nn::VarBuilder) -> Result<nn::Conv2d> {
    let cfg = nn::Conv2dConfig {
        padding: k / 2,
        ..Default::default()
    };
    nn::conv2d(cin, cout, k, cfg, vb)
}

fn mid(vb: nn::VarBuilder, ch: usize, groups: usize) -> Result<UNetMidBlock2D> {
    let cfg = UNetMidBlock2DConfig {
        resnet_eps: EPS,
        output_scale_factor: 1.,
        attn_num_head_channels: None,
        resnet_groups: Some(groups),
        ..Default::default()
    };
    UNetMidBlock2D::new(vb, ch, None, cfg)
}

impl Vae {
    pub fn new(vb: nn::VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let n = ch.len();
        let last = ch[n - 1];
        let g = cfg.norm_num_groups;
        let lat = cfg.latent_channels;
        let e = vb.pp("encoder");
        let mut enc_down = Vec::with_capacity(n);
        for i in 0..n {
            let c = DownEncoderBlock2DConfig {
                num_layers: cfg.layers_per_block,
                resnet_eps: EPS,
                resnet_groups: g,
                add_downsample: i + 1 < n,
                downsample_padding: 0,
                ..Default::default()
            };
            let cin = ch[i.saturating_sub(1)];
            enc_down.push(DownEncoderBlock2D::new(
                e.pp("down_blocks").pp(i),
                cin,
                ch[i],
                c,
            )?);
        }
        let d = vb.pp("decoder");
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let mut dec_up = Vec::with_capacity(n);
        for i in 0..n {
            let c = UpDecoderBlock2DConfig {
                num_layers: cfg.layers_per_block + 1,
                resnet_eps: EPS,
                resnet_groups: g,
                add_upsample: i + 1 < n,
                ..Default::default()
            };
            let cin = rev[i.saturating_sub(1)];
            dec_up.push(UpDecoderBlock2D::new(
                d.pp("up_blocks").pp(i),
                cin,
                rev[i],
                c,
            )?);
        }
        Ok(Self {
            enc_in: conv(cfg.in_channels, ch[0], 3, e.pp("conv_in"))?,
            enc_down,
            enc_mid: mid(e.pp("mid_block"), last, g)?,
            enc_norm: nn::group_norm(g, last, EPS, e.pp("conv_norm_out"))?,
            enc_out: conv(last, 2 * lat, 3, e.pp("conv_out"))?,
            quant: if cfg.use_quant_conv {
                Some(conv(2 * lat, 2 * lat, 1, vb.pp("quant_conv"))?)
            } else {
                None
            },
            post_quant: if cfg.use_post_quant_conv {
                Some(conv(lat, lat, 1, vb.pp("post_quant_conv"))?)
            } else {
                None
            },
            dec_in: conv(lat, last, 3, d.pp("conv_in"))?,
            dec_mid: mid(d.pp("mid_block"), last, g)?,
            dec_up,
            dec_norm: nn::group_norm(g, ch[0], EPS, d.pp("conv_norm_out"))?,
            dec_out: conv(ch[0], cfg.out_channels, 3, d.pp("conv_out"))?,
            config: cfg.clone(),
        })
    }

    /// Image in [-1, 1] `[b, 3, h, w]` → posterior over unscaled latents.
    pub fn encode(&self, image: &Tensor) -> Result<Posterior> {
        let mut xs = self.enc_in.forward(image)?;
        for b in &self.enc_down {
            xs = b.forward(&xs)?;
        }
        xs = self.enc_mid.forward(&xs, None)?;
        xs = self
            .enc_out
            .forward(&nn::ops::silu(&self.enc_norm.forward(&xs)?)?)?;
        if let Some(q) = &self.quant {
            xs = q.forward(&xs)?;
        }
        let lat = self.config.latent_channels;
        let mean = xs.narrow(1, 0, lat)?;
        // diffusers clamps the log-variance to [-30, 20].
        let logvar = xs.narrow(1, lat, lat)?.clamp(-30f32, 20f32)?;
        Ok(Posterior {
            mean,
            std: (logvar * 0.5)?.exp()?,
        })
    }

    /// Unscaled latents → image in about [-1, 1].
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let mut xs = match &self.post_quant {
            Some(p) => p.forward(latents)?,
            None => latents.clone(),
        };
        xs = self.dec_mid.forward(&self.dec_in.forward(&xs)?, None)?;
        for b in &self.dec_up {
            xs = b.forward(&xs)?;
        }
        self.dec_out
            .forward(&nn::ops::silu(&self.dec_norm.forward(&xs)?)?)
    }

    /// Unscaled → the latents the denoiser works in.
    pub fn scale(&self, latents: &Tensor) -> Result<Tensor> {
        let shift = self.config.shift_factor.unwrap_or(0.0);
        (latents - shift)? * self.config.scaling_factor
    }

    /// The denoiser's latents → unscaled.
    pub fn unscale(&self, latents: &Tensor) -> Result<Tensor> {
        let shift = self.config.shift_factor.unwrap_or(0.0);
        (latents / self.config.scaling_factor)? + shift
    }
}
