//! The Wan2.1 VAE's configuration (diffusers `AutoencoderKLWan`'s `config.json`) and the memory
//! its streamed decode needs.

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::VideoError;

/// The released Wan2.1 VAE's latent statistics (diffusers' defaults, the same in every Wan2.1
/// pipeline's `vae/config.json`).
const LATENTS_MEAN: [f64; 16] = [
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517,
    -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
];
const LATENTS_STD: [f64; 16] = [
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579,
    1.6382, 1.1253, 2.8251, 1.9160,
];

/// The architecture of a Wan2.1 VAE (diffusers' names; the defaults are the released model's).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct WanVaeConfig {
    /// Channels of the encoder's first level (96).
    pub base_dim: usize,
    /// The decoder's, when it differs (Wan2.1: none, `base_dim`).
    pub decoder_base_dim: Option<usize>,
    /// Latent channels (16).
    pub z_dim: usize,
    /// Channel multiplier of each level ([1, 2, 4, 4]).
    pub dim_mult: Vec<usize>,
    /// Residual blocks per encoder level (2; the decoder has one more per level).
    pub num_res_blocks: usize,
    /// Must be empty (Wan2.1 has no attention outside the mid blocks).
    pub attn_scales: Vec<f64>,
    /// Whether each downsampling also halves time ([false, true, true]; diffusers' spelling).
    pub temperal_downsample: Vec<bool>,
    pub latents_mean: Vec<f64>,
    pub latents_std: Vec<f64>,
    /// Wan2.2's residual blocks: not supported.
    pub is_residual: bool,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Wan2.2's pixel patching: not supported (must be none).
    pub patch_size: Option<usize>,
}

impl Default for WanVaeConfig {
    fn default() -> Self {
        Self::wan2_1()
    }
}

impl WanVaeConfig {
    /// The released Wan2.1 VAE (`Wan-AI/Wan2.1-*-Diffusers/vae`, `Wan2.1_VAE.pth`,
    /// ComfyUI's `wan_2.1_vae.safetensors`).
    pub fn wan2_1() -> Self {
        Self {
            base_dim: 96,
            decoder_base_dim: None,
            z_dim: 16,
            dim_mult: vec![1, 2, 4, 4],
            num_res_blocks: 2,
            attn_scales: Vec::new(),
            temperal_downsample: vec![false, true, true],
            latents_mean: LATENTS_MEAN.to_vec(),
            latents_std: LATENTS_STD.to_vec(),
            is_residual: false,
            in_channels: 3,
            out_channels: 3,
            patch_size: None,
        }
    }

    /// From a diffusers `vae/config.json` (absent fields take diffusers' defaults), checked.
    pub fn from_json(text: &str, path: &str) -> Result<Self, VideoError> {
        let cfg: Self = serde_json::from_str(text).map_err(|e| VideoError::Weights {
            path: path.to_string(),
            message: format!("not an AutoencoderKLWan config: {e}"),
        })?;
        cfg.validate().map_err(|message| VideoError::Weights {
            path: path.to_string(),
            message,
        })?;
        Ok(cfg)
    }

    /// Why this configuration cannot be built, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        let levels = self.dim_mult.len();
        if levels == 0 || self.base_dim == 0 || self.z_dim == 0 || self.num_res_blocks == 0 {
            return Err("base_dim, z_dim, num_res_blocks and dim_mult must be non-zero".into());
        }
        if self.temperal_downsample.len() + 1 != levels {
            return Err(format!(
                "temperal_downsample has {} entries for {levels} levels (needs {})",
                self.temperal_downsample.len(),
                levels - 1
            ));
        }
        if self.is_residual || self.patch_size.is_some() {
            return Err(
                "a Wan2.2 VAE (is_residual / patch_size); only Wan2.1's is supported".into(),
            );
        }
        if !self.attn_scales.is_empty() {
            return Err("attn_scales must be empty (as in every Wan2.1 VAE)".into());
        }
        if self.latents_mean.len() != self.z_dim || self.latents_std.len() != self.z_dim {
            return Err(format!(
                "latents_mean/latents_std have {}/{} values for z_dim {}",
                self.latents_mean.len(),
                self.latents_std.len(),
                self.z_dim
            ));
        }
        let dec = self.decoder_dims();
        if dec[1..].iter().any(|d| d % 2 != 0) {
            return Err(format!("decoder widths {dec:?} must be even"));
        }
        Ok(())
    }

    /// The encoder's level widths: `base_dim · [1, dim_mult…]`.
    pub fn encoder_dims(&self) -> Vec<usize> {
        std::iter::once(1)
            .chain(self.dim_mult.iter().copied())
            .map(|m| m * self.base_dim)
            .collect()
    }

    /// The decoder's level widths: `dim · [dim_mult.last, dim_mult reversed…]`.
    pub fn decoder_dims(&self) -> Vec<usize> {
        let dim = self.decoder_base_dim.unwrap_or(self.base_dim);
        let last = self.dim_mult.last().copied().unwrap_or(1);
        std::iter::once(last)
            .chain(self.dim_mult.iter().rev().copied())
            .map(|m| m * dim)
            .collect()
    }

    /// Whether each decoder level doubles time (the encoder's flags reversed).
    pub fn temperal_upsample(&self) -> Vec<bool> {
        self.temperal_downsample.iter().rev().copied().collect()
    }

    /// Spatial compression (8 for Wan2.1): 2 per level but the last.
    pub fn spatial_ratio(&self) -> usize {
        1 << (self.dim_mult.len() - 1)
    }

    /// Temporal compression (4 for Wan2.1).
    pub fn temporal_ratio(&self) -> usize {
        1 << self.temperal_downsample.iter().filter(|t| **t).count()
    }

    /// Pixel frames of `latent_frames` latent frames: `1 + ratio·(n − 1)`.
    pub fn pixel_frames(&self, latent_frames: usize) -> usize {
        if latent_frames == 0 {
            0
        } else {
            1 + self.temporal_ratio() * (latent_frames - 1)
        }
    }

    /// Latent frames of `frames` pixel frames (diffusers: `1 + (F − 1)/4`, rounded down).
    pub fn latent_frames(&self, frames: usize) -> usize {
        if frames == 0 {
            0
        } else {
            1 + (frames - 1) / self.temporal_ratio()
        }
    }

    /// An estimate of the decoder's memory for one latent frame of a `width × height` video (one
    /// tile's size when tiled), in f32, batch 1: see [`DecodeMemory`].
    pub fn decode_memory(&self, width: usize, height: usize) -> DecodeMemory {
        const F32: u64 = 4;
        let ratio = self.spatial_ratio();
        let (lw, lh) = (width.div_ceil(ratio), height.div_ceil(ratio));
        let dims = self.decoder_dims();
        let ups = self.temperal_upsample();
        let levels = self.dim_mult.len();
        let mut cache: u64 = 0;
        let mut peak: u64 = 0;
        // (pixels, frames per step) at the current level.
        let mut px = (lw * lh) as u64;
        let mut frames: u64 = 1;
        // One cached conv: its two cached input frames; its activation: input, output and the
        // norm/residual temporaries, over the frames of the step plus the two cached ones.
        let conv =
            |cin: usize, cout: usize, px: u64, frames: u64, cache: &mut u64, peak: &mut u64| {
                *cache += 2 * cin as u64 * px * F32;
                let act =
                    (frames + 2) * cin as u64 * px * F32 + 3 * frames * cout as u64 * px * F32;
                *peak = (*peak).max(act);
            };
        conv(self.z_dim, dims[0], px, frames, &mut cache, &mut peak);
        for _ in 0..4 {
            conv(dims[0], dims[0], px, frames, &mut cache, &mut peak);
        }
        // The mid block's attention: one frame's score rows, in chunks of at most 2^28 bytes.
        let attn = (px * px * F32).min(ATTENTION_CHUNK_BYTES.max(px * F32));
        let attention = attn + 4 * dims[0] as u64 * px * F32;
        for i in 0..levels {
            let out = dims[i + 1];
            let mut cin = if i > 0 { dims[i] / 2 } else { dims[i] };
            for _ in 0..=self.num_res_blocks {
                conv(cin, out, px, frames, &mut cache, &mut peak);
                conv(out, out, px, frames, &mut cache, &mut peak);
                cin = out;
            }
            if i + 1 < levels {
                if ups[i] {
                    // time_conv: `out` → 2·out channels, then twice the frames.
                    conv(out, 2 * out, px, frames, &mut cache, &mut peak);
                    frames *= 2;
                }
                px *= 4;
                // The upsampled frames before the 2D convolution (out channels → out/2).
                peak = peak.max(frames * (out as u64 + out as u64 / 2) * px * F32);
            }
        }
        conv(
            dims[levels],
            self.out_channels,
            px,
            frames,
            &mut cache,
            &mut peak,
        );
        DecodeMemory {
            cache_bytes: cache,
            peak_activation_bytes: peak.max(attention),
        }
    }

    /// [`decode_memory`](Self::decode_memory)'s total: the bytes a streamed decode of a
    /// `width × height` video holds at its peak, per latent frame step.
    pub fn decode_bytes_per_frame(&self, width: usize, height: usize) -> u64 {
        self.decode_memory(width, height).total()
    }
}

/// The attention's score matrix is computed in row chunks of at most this many bytes.
pub(super) const ATTENTION_CHUNK_BYTES: u64 = 1 << 28;

/// What a streamed decode step of one tile holds (f32, batch 1), estimated from the channel
/// widths: the caches are exact (two input frames per causal convolution), the activations an
/// upper bound of the largest convolution's input, output and temporaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeMemory {
    /// The per-convolution frame caches kept between steps (what a saved decode state holds).
    pub cache_bytes: u64,
    /// The largest transient of one step.
    pub peak_activation_bytes: u64,
}

impl DecodeMemory {
    pub fn total(&self) -> u64 {
        self.cache_bytes + self.peak_activation_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preset_is_wan2_1() {
        let c = WanVaeConfig::wan2_1();
        assert_eq!(c.encoder_dims(), [96, 96, 192, 384, 384]);
        assert_eq!(c.decoder_dims(), [384, 384, 384, 192, 96]);
        assert_eq!(c.temperal_upsample(), [true, true, false]);
        assert_eq!((c.spatial_ratio(), c.temporal_ratio()), (8, 4));
        assert_eq!((c.pixel_frames(21), c.latent_frames(81)), (81, 21));
        assert!(c.validate().is_ok());
        let parsed = WanVaeConfig::from_json("{\"base_dim\": 96}", "x").unwrap();
        assert_eq!(parsed, c);
    }

    #[test]
    fn bad_configs_are_refused() {
        let e = WanVaeConfig::from_json("{\"is_residual\": true}", "cfg.json");
        assert!(matches!(e, Err(VideoError::Weights { .. })));
        let e = WanVaeConfig::from_json("{\"temperal_downsample\": [true]}", "cfg.json");
        assert!(e.is_err());
    }

    #[test]
    fn decode_memory_grows_with_the_frame_and_is_plausible_at_480p() {
        let c = WanVaeConfig::wan2_1();
        let small = c.decode_memory(256, 256);
        let big = c.decode_memory(832, 480);
        assert!(big.cache_bytes > 5 * small.cache_bytes);
        // 480p: a few GB of caches (the last level alone: 7 convs × 2 frames × 96 ch × 399 360 px).
        let gb = big.cache_bytes as f64 / 1e9;
        assert!((2.0..8.0).contains(&gb), "{gb} GB");
        assert!(big.total() > big.cache_bytes);
    }
}

impl WanVaeConfig {
    /// The config's `latents_mean` / `latents_std` as diffusers builds them (`torch.tensor` of
    /// the config's floats: f32).
    pub fn latent_stats(&self) -> LatentStats {
        LatentStats {
            mean: self.latents_mean.iter().map(|&x| x as f32).collect(),
            std: self.latents_std.iter().map(|&x| x as f32).collect(),
        }
    }
}

/// The VAE's per-channel latent statistics (`latents_mean`, `latents_std` of its config).
#[derive(Clone, Debug, PartialEq)]
pub struct LatentStats {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl LatentStats {
    /// The Wan2.1 VAE's (`AutoencoderKLWan` defaults, the released config).
    pub fn wan21() -> Self {
        WanVaeConfig::wan2_1().latent_stats()
    }

    /// `([1, C, 1, 1, 1] mean, [1, C, 1, 1, 1] 1/std)` as diffusers builds them (the reciprocal
    /// in f32, then multiplied).
    fn tensors(&self, device: &Device) -> Result<(Tensor, Tensor), VideoError> {
        let c = self.mean.len();
        if c != self.std.len() || c == 0 {
            return Err(VideoError::Invalid(format!(
                "latent statistics: {} means and {} standard deviations",
                c,
                self.std.len()
            )));
        }
        let inv: Vec<f32> = self.std.iter().map(|s| 1.0 / s).collect();
        Ok((
            Tensor::from_vec(self.mean.clone(), (1, c, 1, 1, 1), device)?,
            Tensor::from_vec(inv, (1, c, 1, 1, 1), device)?,
        ))
    }

    /// Encoder output → model space: `(z − mean)·(1/std)`.
    pub fn normalize(&self, z: &Tensor) -> Result<Tensor, VideoError> {
        let (mean, inv) = self.tensors(z.device())?;
        Ok(z.to_dtype(DType::F32)?
            .broadcast_sub(&mean)?
            .broadcast_mul(&inv)?)
    }

    /// Model space → decoder input: `x / (1/std) + mean`.
    pub fn denormalize(&self, x: &Tensor) -> Result<Tensor, VideoError> {
        let (mean, inv) = self.tensors(x.device())?;
        Ok(x.to_dtype(DType::F32)?
            .broadcast_div(&inv)?
            .broadcast_add(&mean)?)
    }
}
