//! The Wan2.1 video VAE (diffusers `AutoencoderKLWan`): 8× in space, 4× in time, 16 latent
//! channels. A clip of `4k + 1` frames encodes to `k + 1` latent frames, the first from the first
//! frame alone.
//!
//! Every 3×3×3 convolution is causal (two zero frames in front), every norm an L2 normalisation
//! over the channels times `√C · γ`, and the mid blocks hold one single-head attention over each
//! frame's pixels. The networks run a chunk of frames at a time, each causal convolution keeping
//! its last two input frames for the next chunk (diffusers' `feat_cache`): the encoder takes frame
//! 0, then 4 frames at a time; the decoder one latent frame at a time, the temporal upsamplers
//! skipping the first (1 pixel frame for it, 4 for each later one).
//!
//! A single-pass decode of a long clip would need tens of GB, so decoding is streamed:
//! [`WanStreamDecoder`] takes one latent frame per [`decode_step`](WanStreamDecoder::decode_step)
//! and holds only the caches, which it can save to a file and resume from
//! ([`WanDecodeState`]). [`WanVae::decode`] is that loop over a clip. Spatial tiling as diffusers'
//! `enable_tiling` ([`WanTiling`]) bounds the activations by the tile.
//!
//! Weights: a diffusers `vae/` folder ([`WanVae::from_diffusers_dir`]) or a single file
//! ([`WanVae::from_file`]: `.safetensors` or `.pth`, diffusers names or the original ones of
//! `Wan2.1_VAE.pth` / ComfyUI's `wan_2.1_vae.safetensors`, see [`names`]). The VAE runs in f32.

mod blocks;
pub mod config;
pub mod names;
mod nets;
mod stream;
pub mod tiling;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::VideoError;
use blocks::{Cache, Conv, Weights};
use nets::{Decoder, Encoder};

pub use config::{DecodeMemory, LatentStats, WanVaeConfig};
pub use names::{is_original_layout, wan_vae_key_from_original};
pub use stream::{WanDecodeState, WanStreamDecoder};
pub use tiling::WanTiling;

type Result<T> = std::result::Result<T, VideoError>;

/// The Wan2.1 VAE, in f32.
pub struct WanVae {
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Conv,
    post_quant_conv: Conv,
    config: WanVaeConfig,
    device: Device,
}

fn weights_err(path: &Path, message: impl Into<String>) -> VideoError {
    VideoError::Weights {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// The tensors of a `.safetensors` or `.pth` file, by name, as f32 on `device`.
fn read_file(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let raw: Vec<(String, Tensor)> = match ext.as_str() {
        "safetensors" => candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| weights_err(path, format!("not a readable safetensors file: {e}")))?
            .into_iter()
            .collect(),
        "pth" | "pt" | "ckpt" => {
            let nested = candle_core::pickle::read_pth_tensor_info(path, false, Some("state_dict"))
                .map(|i| !i.is_empty())
                .unwrap_or(false);
            let key = nested.then_some("state_dict");
            candle_core::pickle::read_all_with_key(path, key)
                .map_err(|e| weights_err(path, format!("not a readable PyTorch file: {e}")))?
        }
        other => {
            return Err(weights_err(
                path,
                format!("unknown weights format `.{other}`: expected .safetensors or .pth"),
            ))
        }
    };
    let mut out = HashMap::with_capacity(raw.len());
    for (name, t) in raw {
        out.insert(name, t.to_dtype(DType::F32)?.to_device(device)?);
    }
    Ok(out)
}

impl WanVae {
    /// From tensors named as diffusers saves them (or the original names, which are mapped).
    /// `path` names the source in errors. Every tensor the config needs must be there with its
    /// shape, and no other.
    pub fn from_tensors(
        tensors: HashMap<String, Tensor>,
        config: &WanVaeConfig,
        path: &Path,
        device: &Device,
    ) -> Result<Self> {
        config.validate().map_err(|m| weights_err(path, m))?;
        let tensors = if is_original_layout(tensors.keys().map(String::as_str)) {
            let mut mapped = HashMap::with_capacity(tensors.len());
            for (k, v) in tensors {
                let name = wan_vae_key_from_original(&k, config).ok_or_else(|| {
                    weights_err(path, format!("unexpected tensor `{k}` (original naming)"))
                })?;
                mapped.insert(name, v.to_dtype(DType::F32)?.to_device(device)?);
            }
            mapped
        } else {
            tensors
                .into_iter()
                .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?.to_device(device)?)))
                .collect::<Result<HashMap<_, _>>>()?
        };
        let shown = path.display().to_string();
        let w = Weights::new(&tensors, &shown);
        let z = config.z_dim;
        let encoder = Encoder::load(&w, config)?;
        let decoder = Decoder::load(&w, config)?;
        let quant_conv = Conv::same(&w, "quant_conv", 2 * z, 2 * z, 1)?;
        let post_quant_conv = Conv::same(&w, "post_quant_conv", z, z, 1)?;
        w.finish()?;
        Ok(Self {
            encoder,
            decoder,
            quant_conv,
            post_quant_conv,
            config: config.clone(),
            device: device.clone(),
        })
    }

    /// A diffusers `vae/` folder: `config.json` and `diffusion_pytorch_model.safetensors` (or
    /// the folder's other `.safetensors` files).
    pub fn from_diffusers_dir(dir: &Path, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path)
            .map_err(|e| weights_err(&cfg_path, format!("cannot read: {e}")))?;
        let config = WanVaeConfig::from_json(&text, &cfg_path.display().to_string())?;
        let main = dir.join("diffusion_pytorch_model.safetensors");
        let files: Vec<PathBuf> = if main.is_file() {
            vec![main]
        } else {
            let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| weights_err(dir, format!("cannot list: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
                .collect();
            v.sort();
            v
        };
        if files.is_empty() {
            return Err(weights_err(
                dir,
                "no .safetensors weights in the VAE folder",
            ));
        }
        let mut tensors = HashMap::new();
        for f in &files {
            tensors.extend(read_file(f, device)?);
        }
        Self::from_tensors(tensors, &config, dir, device)
    }

    /// A single weights file (`.safetensors` or `.pth`, either naming) of a VAE with `config`
    /// (the released one: [`WanVaeConfig::wan2_1`]).
    pub fn from_file(path: &Path, config: &WanVaeConfig, device: &Device) -> Result<Self> {
        if !path.is_file() {
            return Err(weights_err(path, "no such file"));
        }
        let tensors = read_file(path, device)?;
        Self::from_tensors(tensors, config, path, device)
    }

    pub fn config(&self) -> &WanVaeConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn check_video(&self, video: &Tensor) -> Result<(usize, usize, usize)> {
        let (_, c, f, h, w) = video.dims5()?;
        if c != self.config.in_channels || f == 0 {
            return Err(VideoError::Invalid(format!(
                "a video of {c} channels and {f} frames; the Wan VAE encodes {} channels, ≥ 1 frame",
                self.config.in_channels
            )));
        }
        Ok((f, h, w))
    }

    /// The encoder's chunks (frame 0, then 4 at a time) through fresh caches, then
    /// `quant_conv`: moments `[b, 2z, f', h', w']`.
    fn encode_clip(&self, video: &Tensor) -> Result<Tensor> {
        let f = video.dim(2)?;
        let ratio = self.config.temporal_ratio();
        let mut cache = Cache::default();
        let mut outs = Vec::with_capacity(self.config.latent_frames(f));
        let mut at = 0;
        while at < f {
            let n = if at == 0 { 1 } else { ratio.min(f - at) };
            let chunk = video.narrow(2, at, n)?;
            outs.push(
                self.quant_conv
                    .forward(&self.encoder.step(&chunk, &mut cache)?)?,
            );
            at += n;
        }
        Ok(Tensor::cat(&outs, 2)?)
    }

    /// The posterior's parameters (mean ‖ log-variance, `[b, 2z, 1 + (f − 1)/4, h/8, w/8]`) of
    /// a video `[b, 3, f, h, w]` in [-1, 1] (diffusers `encode(x).latent_dist.parameters`).
    pub fn encode_moments(&self, video: &Tensor) -> Result<Tensor> {
        self.check_video(video)?;
        let video = video.to_dtype(DType::F32)?.to_device(&self.device)?;
        self.encode_clip(&video)
    }

    /// The latent mean (the VAE latents, not normalised; see [`normalize`](Self::normalize)).
    pub fn encode(&self, video: &Tensor) -> Result<Tensor> {
        let m = self.encode_moments(video)?;
        Ok(m.narrow(1, 0, self.config.z_dim)?)
    }

    /// [`encode_moments`](Self::encode_moments) over spatial tiles, as diffusers' `tiled_encode`
    /// (a single pass when the frames fit in one tile).
    pub fn encode_moments_tiled(&self, video: &Tensor, tiling: &WanTiling) -> Result<Tensor> {
        let (_, h, w) = self.check_video(video)?;
        let video = video.to_dtype(DType::F32)?.to_device(&self.device)?;
        let grid = tiling::Grid::encode(tiling, h, w, self.config.spatial_ratio())?;
        let tiles = (0..grid.len())
            .map(|k| self.encode_clip(&grid.cut(&video, k)?))
            .collect::<Result<Vec<_>>>()?;
        Ok(grid.assemble(tiles)?)
    }

    /// The latent mean of [`encode_moments_tiled`](Self::encode_moments_tiled).
    pub fn encode_tiled(&self, video: &Tensor, tiling: &WanTiling) -> Result<Tensor> {
        let m = self.encode_moments_tiled(video, tiling)?;
        Ok(m.narrow(1, 0, self.config.z_dim)?)
    }

    /// VAE latents → the transformer's: `(z − mean)·(1/std)` per channel, as the pipelines
    /// compute it ([`LatentStats::normalize`]).
    pub fn normalize(&self, z: &Tensor) -> Result<Tensor> {
        self.check_channels(z)?;
        self.config.latent_stats().normalize(z)
    }

    /// The transformer's latents → the VAE's: `z / (1/std) + mean` per channel
    /// ([`LatentStats::denormalize`]).
    pub fn denormalize(&self, z: &Tensor) -> Result<Tensor> {
        self.check_channels(z)?;
        self.config.latent_stats().denormalize(z)
    }

    fn check_channels(&self, z: &Tensor) -> Result<()> {
        let (_, c, _, _, _) = z.dims5()?;
        if c != self.config.z_dim {
            return Err(VideoError::Invalid(format!(
                "latents of {c} channels, the Wan VAE has {}",
                self.config.z_dim
            )));
        }
        Ok(())
    }

    /// A streamed decode of `latent_h × latent_w` latents (see [`WanStreamDecoder`]).
    pub fn stream_decoder(
        &self,
        latent_h: usize,
        latent_w: usize,
        tiling: Option<WanTiling>,
    ) -> Result<WanStreamDecoder<'_>> {
        WanStreamDecoder::new(self, latent_h, latent_w, tiling)
    }

    /// VAE latents `[b, z, n, h, w]` → video `[b, 3, 1 + 4(n − 1), 8h, 8w]` in [-1, 1], as
    /// diffusers' `decode` (with `enable_tiling(tiling)` when given). Tiled, the tiles are decoded
    /// one after the other over the whole clip, each through its own caches (diffusers' order),
    /// so only one tile's caches are alive at a time; untiled it is the streamed decode's loop.
    pub fn decode(&self, latents: &Tensor, tiling: Option<WanTiling>) -> Result<Tensor> {
        let (_, _, n, h, w) = latents.dims5()?;
        if n == 0 {
            return Err(VideoError::Invalid("no latent frames to decode".into()));
        }
        let ratio = self.config.spatial_ratio();
        let grid = match &tiling {
            Some(t) => tiling::Grid::decode(t, h, w, ratio)?,
            None => tiling::Grid::single(h, w, h * ratio, w * ratio),
        };
        let x = self.post_quant(&latents.to_dtype(DType::F32)?.to_device(&self.device)?)?;
        let mut tiles = Vec::with_capacity(grid.len());
        for k in 0..grid.len() {
            let tile = grid.cut(&x, k)?;
            let mut cache = Cache::default();
            let frames = (0..n)
                .map(|i| self.decoder_step(&tile.narrow(2, i, 1)?, &mut cache))
                .collect::<Result<Vec<_>>>()?;
            tiles.push(Tensor::cat(&frames, 2)?);
        }
        Ok(grid.assemble(tiles)?.clamp(-1f32, 1f32)?)
    }

    fn post_quant(&self, z: &Tensor) -> Result<Tensor> {
        let c = z.dim(1)?;
        if c != self.config.z_dim {
            return Err(VideoError::Invalid(format!(
                "latents of {c} channels, the Wan VAE decodes {}",
                self.config.z_dim
            )));
        }
        Ok(self.post_quant_conv.forward(z)?)
    }

    fn decoder_step(&self, x: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        Ok(self.decoder.step(x, cache)?)
    }
}
