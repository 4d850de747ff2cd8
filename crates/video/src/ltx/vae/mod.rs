//! LTX-Video's causal video VAE (diffusers `AutoencoderKLLTXVideo`), in the three released
//! layouts (0.9.0, 0.9.1, 0.9.5+; see [`LtxVaeConfig`]).
//!
//! 8× in time and 32× in space: a clip of `8k + 1` frames encodes to `k + 1` latent frames of
//! 128 channels, the first latent frame from the first frame alone. The encoder is causal, the
//! decoder (as released) is not: each of its convolutions sees one frame ahead.
//!
//! Decoding goes through [`LtxVae::decode_streamed`], which feeds the latents a few frames at a
//! time through the decoder's streaming stages and, if asked, over spatial tiles, handing each
//! run of finished frames to a sink: peak memory stays bounded whatever the clip length, and the
//! frames are the single-pass decode's (see [`decoder`] and [`tiling`] for why and when exactly).
//! [`LtxVae::decode`] is the same path in one chunk. diffusers' own (approximate, blended)
//! spatial tiling is there too, to match references made with it ([`DiffusersTiling`]).
//!
//! Weights are read by diffusers' names; [`names::ltx_vae_key_from_original`] maps the original
//! single-file checkpoints' names.

mod blocks;
pub mod config;
mod decoder;
mod diffusers_tiling;
mod encoder;
pub mod names;
pub mod tiling;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn as nn;
use reelsmith_kit::noise::Noise;

pub use config::LtxVaeConfig;
pub use diffusers_tiling::DiffusersTiling;
pub use names::{ltx_vae_key_from_original, LtxVaeLayout};
pub use tiling::TileConfig;

use decoder::{DecodeRun, Decoder};
use encoder::Encoder;

/// The LTX-Video VAE.
pub struct LtxVae {
    encoder: Encoder,
    decoder: Decoder,
    /// `[latent]`: the per-channel statistics the pipelines normalise latents with.
    latents_mean: Tensor,
    latents_std: Tensor,
    config: LtxVaeConfig,
    device: Device,
    dtype: DType,
}

/// `(z − mean) · scaling / std` per channel of `[b, c, f, h, w]` latents (the LTX pipelines'
/// `_normalize_latents`): VAE latents → the transformer's.
pub fn normalize_latents(z: &Tensor, mean: &Tensor, std: &Tensor, scaling: f64) -> Result<Tensor> {
    let (mean, std) = channel_stats(z, mean, std)?;
    (z.broadcast_sub(&mean)? * scaling)?.broadcast_div(&std)
}

/// `z · std / scaling + mean` per channel (the pipelines' `_denormalize_latents`): the
/// transformer's latents → the VAE's.
pub fn denormalize_latents(
    z: &Tensor,
    mean: &Tensor,
    std: &Tensor,
    scaling: f64,
) -> Result<Tensor> {
    let (mean, std) = channel_stats(z, mean, std)?;
    (z.broadcast_mul(&std)? / scaling)?.broadcast_add(&mean)
}

fn channel_stats(z: &Tensor, mean: &Tensor, std: &Tensor) -> Result<(Tensor, Tensor)> {
    let c = z.dim(1)?;
    if mean.elem_count() != c || std.elem_count() != c {
        candle_core::bail!(
            "latent statistics of {} and {} values for {c} channels",
            mean.elem_count(),
            std.elem_count()
        );
    }
    let shape = (1, c, 1, 1, 1);
    let cast = |t: &Tensor| -> Result<Tensor> {
        t.to_device(z.device())?.to_dtype(z.dtype())?.reshape(shape)
    };
    Ok((cast(mean)?, cast(std)?))
}

impl LtxVae {
    /// Builds the VAE from weights named as diffusers saves them (`encoder.…`, `decoder.…`,
    /// `latents_mean`, `latents_std`). The dtype and device are `vb`'s. Missing latent statistics
    /// default to zeros and ones, as diffusers initialises them.
    pub fn new(vb: nn::VarBuilder, config: &LtxVaeConfig) -> Result<Self> {
        if config.patch_size == 0 || config.patch_size_t == 0 {
            candle_core::bail!("LTX VAE config: patch sizes must be ≥ 1");
        }
        let encoder = Encoder::new(vb.pp("encoder"), config)?;
        let decoder = Decoder::new(vb.pp("decoder"), config)?;
        let c = config.latent_channels;
        let stat = |name: &str, fill: f64| -> Result<Tensor> {
            if vb.contains_tensor(name) {
                vb.get(c, name)
            } else {
                (Tensor::ones(c, vb.dtype(), vb.device())? * fill)?.to_dtype(vb.dtype())
            }
        };
        Ok(Self {
            encoder,
            decoder,
            latents_mean: stat("latents_mean", 0.0)?,
            latents_std: stat("latents_std", 1.0)?,
            config: config.clone(),
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    pub fn config(&self) -> &LtxVaeConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// `[latent]` per-channel means of the latents (the `latents_mean` buffer).
    pub fn latents_mean(&self) -> &Tensor {
        &self.latents_mean
    }

    /// `[latent]` per-channel standard deviations (the `latents_std` buffer).
    pub fn latents_std(&self) -> &Tensor {
        &self.latents_std
    }

    /// VAE latents → the transformer's, with this VAE's statistics.
    pub fn normalize(&self, z: &Tensor, scaling: f64) -> Result<Tensor> {
        normalize_latents(z, &self.latents_mean, &self.latents_std, scaling)
    }

    /// The transformer's latents → the VAE's, with this VAE's statistics.
    pub fn denormalize(&self, z: &Tensor, scaling: f64) -> Result<Tensor> {
        denormalize_latents(z, &self.latents_mean, &self.latents_std, scaling)
    }

    fn input(&self, x: &Tensor) -> Result<Tensor> {
        x.to_device(&self.device)?.to_dtype(self.dtype)
    }

    /// Video `[b, 3, f, h, w]` in [-1, 1] → the posterior's raw moments `[b, 2·latent, f', h', w']`
    /// (diffusers' layout: the means, then the log-variance; LTX shares one log-variance channel
    /// over all latent channels). The clip is encoded at once (the pipelines encode images and
    /// short clips); frames `8k + 1`, sides multiples of the patch size (and, for 0.9.5, of the
    /// spatial compression).
    pub fn encode_raw(&self, video: &Tensor) -> Result<Tensor> {
        let (_, c, _, _, _) = video.dims5()?;
        if c != self.config.in_channels {
            candle_core::bail!(
                "LTX VAE: {c}-channel video for a {}-channel encoder",
                self.config.in_channels
            );
        }
        self.encoder.forward(&self.input(video)?)
    }

    /// The posterior's mean and (unclamped) log-variance, `[b, latent, f', h', w']` each.
    pub fn encode_moments(&self, video: &Tensor) -> Result<(Tensor, Tensor)> {
        let m = self.encode_raw(video)?;
        let c = self.config.latent_channels;
        Ok((m.narrow(1, 0, c)?, m.narrow(1, c, c)?))
    }

    /// The posterior's mode (its mean): unnormalised latents.
    pub fn encode(&self, video: &Tensor) -> Result<Tensor> {
        Ok(self.encode_moments(video)?.0)
    }

    /// Latents `[b, latent, f, h, w]` (unnormalised) → video `[b, 3, 8(f − 1) + 1, 32h, 32w]`
    /// in about [-1, 1], in one chunk. `temb` is the decode timestep `[b]` (or one value) of a
    /// timestep-conditioned decoder (0.9.1+); `noise` feeds a noise-injecting one (0.9.1) its
    /// draws, in diffusers' order (`[h, w]` images at each resnet's resolution, two per resnet).
    pub fn decode(
        &self,
        z: &Tensor,
        temb: Option<&Tensor>,
        noise: Option<&mut dyn Noise>,
    ) -> Result<Tensor> {
        let f = z.dim(2)?;
        let mut parts = Vec::new();
        self.decode_streamed(z, temb, noise, TileConfig::frames(f.max(1)), &mut |t| {
            parts.push(t);
            Ok(())
        })?;
        match parts.len() {
            0 => candle_core::bail!("LTX VAE: the decoder gave no frames"),
            1 => parts
                .pop()
                .ok_or_else(|| candle_core::Error::Msg("LTX VAE: no frames".into())),
            _ => Tensor::cat(&parts, 2),
        }
    }

    /// Decodes `tile.frames` latent frames at a time (and over spatial tiles when
    /// `tile.tile` is set), handing each run of finished frames `[b, 3, n, H, W]` to `sink` in
    /// order. Only the latents and a bounded number of frames per decoder stage are held, never
    /// the whole video. The frames equal [`decode`](Self::decode)'s: exactly over time; over
    /// space when `tile.halo ≥ receptive_radius() + tile.blend` (see [`tiling`]).
    pub fn decode_streamed(
        &self,
        z: &Tensor,
        temb: Option<&Tensor>,
        noise: Option<&mut dyn Noise>,
        tile: TileConfig,
        sink: &mut dyn FnMut(Tensor) -> Result<()>,
    ) -> Result<()> {
        let z = self.input(z)?;
        let (b, c, f, h, w) = z.dims5()?;
        if c != self.config.latent_channels {
            candle_core::bail!(
                "LTX VAE: {c}-channel latents for a {}-channel decoder",
                self.config.latent_channels
            );
        }
        if f == 0 || h == 0 || w == 0 {
            candle_core::bail!("LTX VAE: empty latents {:?}", z.dims());
        }
        if tile.frames == 0 {
            candle_core::bail!("LTX VAE: a tile of 0 frames");
        }
        let cond = self
            .decoder
            .condition(b, (h, w), temb, noise, self.dtype, &self.device)?;
        let (rows, cols) = match tile.tile {
            Some((th, tw)) => (
                tiling::plan_axis(h, th, tile.halo, tile.blend),
                tiling::plan_axis(w, tw, tile.halo, tile.blend),
            ),
            None => (tiling::plan_axis(h, h, 0, 0), tiling::plan_axis(w, w, 0, 0)),
        };
        let mut runs = Vec::with_capacity(rows.len() * cols.len());
        for r in &rows {
            for cl in &cols {
                runs.push(DecodeRun::new(
                    &self.decoder,
                    &cond,
                    (r.window.0, cl.window.0),
                    (r.window.1, cl.window.1),
                    tile.frames,
                )?);
            }
        }
        let want = tile
            .frames
            .saturating_mul(self.config.temporal_compression().max(1));
        let scale = self.decoder.spatial_factor();
        let mut fed = 0;
        loop {
            if fed < f {
                let n = tile.frames.min(f - fed);
                let last = fed + n == f;
                let mut k = 0;
                for r in &rows {
                    for cl in &cols {
                        let part = z
                            .narrow(2, fed, n)?
                            .narrow(3, r.window.0, r.window.1)?
                            .narrow(4, cl.window.0, cl.window.1)?;
                        runs[k].feed(Some(part), last)?;
                        k += 1;
                    }
                }
                fed += n;
            }
            loop {
                for run in runs.iter_mut() {
                    run.pump(want)?;
                }
                let ready = runs.iter().map(|r| r.ready()).min().unwrap_or(0);
                if ready == 0 {
                    break;
                }
                let tiles = runs
                    .iter_mut()
                    .map(|r| r.take(ready))
                    .collect::<Result<Vec<_>>>()?;
                sink(tiling::assemble(tiles, &rows, &cols, scale)?)?;
            }
            if fed == f {
                if runs.iter().all(|r| r.done() && r.ready() == 0) {
                    return Ok(());
                }
                candle_core::bail!("LTX VAE: the decoder stalled before the clip's end");
            }
        }
    }

    /// How far, in latent pixels, a decoded pixel sees (see [`tiling`]).
    pub fn receptive_radius(&self) -> usize {
        self.decoder.receptive_radius()
    }

    /// Video frames a latent clip of `f` frames decodes to.
    pub fn decoded_frames(&self, f: usize) -> usize {
        decoder::output_frames(&self.decoder, f)
    }
}

#[cfg(test)]
mod tests;
