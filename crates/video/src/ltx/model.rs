//! An LTX model ready to run: networks, text encoder, scheduler, device and dtype policy, and
//! the two halves of a generation the studio keeps apart — sampling (minutes on a GPU; its
//! latents are saved before anything else happens) and the streamed decode (where memory would
//! explode if it were done in one pass).
//!
//! Dtype policy: the transformer in bf16 on CUDA (fp16 overflows into NaN and a black video),
//! the VAE and T5 in f32; everything f32 on the CPU.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use reelsmith_kit::noise::Noise;
use reelsmith_kit::{compute_dtype, Precision};

use super::load::{self, LtxConfigs, LtxSource};
use super::pipeline::{self, Geometry, LtxSampler, Request, StepHook};
use super::text::TextEncoder;
use super::transformer::LtxTransformer;
use super::vae::{LtxVae, TileConfig};
use crate::frames::FrameRule;
use crate::VideoError;

type Result<T> = std::result::Result<T, VideoError>;

/// The files of one LTX model.
#[derive(Clone, Debug)]
pub struct LtxFiles {
    pub source: LtxSource,
    /// A transformers T5 `text_encoder` folder (config.json + safetensors).
    pub text_encoder: PathBuf,
    /// The T5 tokenizer (folder or file).
    pub tokenizer: PathBuf,
}

/// How a clip is decoded: the decoder's timestep and noise (timestep-conditioned VAEs only:
/// 0.05 and 0.025 are the LTX defaults) and the tiling that bounds memory.
#[derive(Clone, Copy, Debug)]
pub struct DecodeParams {
    pub timestep: f64,
    pub noise_scale: f64,
    pub tile: TileConfig,
}

impl Default for DecodeParams {
    fn default() -> Self {
        Self {
            timestep: 0.05,
            noise_scale: 0.025,
            tile: TileConfig::default(),
        }
    }
}

pub struct LtxModel {
    pub transformer: LtxTransformer,
    pub vae: LtxVae,
    pub configs: LtxConfigs,
    pub text: Option<TextEncoder>,
    pub device: Device,
    pub dtype: DType,
}

impl LtxModel {
    /// The transformer's dtype on `device` under the LTX policy.
    pub fn dtype_for(device: &Device) -> DType {
        compute_dtype(device, Precision::Bf16)
    }

    /// Loads the networks and the text encoder.
    pub fn load(files: &LtxFiles, device: &Device) -> Result<Self> {
        let dtype = Self::dtype_for(device);
        let nets = load::load(&files.source, dtype, device)?;
        let text = TextEncoder::load(&files.text_encoder, &files.tokenizer, device)?;
        if text.hidden != nets.configs.transformer.caption_channels {
            return Err(VideoError::Weights {
                path: files.text_encoder.display().to_string(),
                message: format!(
                    "the text encoder's states are {} wide; this transformer takes {} (LTX needs T5-v1.1-XXL)",
                    text.hidden, nets.configs.transformer.caption_channels
                ),
            });
        }
        Ok(Self {
            transformer: nets.transformer,
            vae: nets.vae,
            configs: nets.configs,
            text: Some(text),
            device: device.clone(),
            dtype,
        })
    }

    /// The latent geometry (compression ratios, channels).
    pub fn geometry(&self) -> Geometry {
        Geometry {
            temporal: self.vae.config().temporal_compression(),
            spatial: self.vae.config().spatial_compression(),
            channels: self.configs.transformer.in_channels,
        }
    }

    /// The frame-count and size rule of this model (8k+1 frames, multiples of 32 for the real
    /// releases).
    pub fn rule(&self) -> FrameRule {
        let g = self.geometry();
        FrameRule {
            temporal: g.temporal,
            spatial: g.spatial,
            min_frames: g.temporal + 1,
        }
    }

    pub fn sampler(&self) -> LtxSampler<'_> {
        LtxSampler {
            transformer: &self.transformer,
            vae: &self.vae,
            schedule: &self.configs.schedule,
            geometry: self.geometry(),
        }
    }

    /// Samples normalised latents `[1, C, F', H', W']`.
    pub fn sample(
        &self,
        req: &Request,
        noise: &mut dyn Noise,
        on_step: StepHook<'_>,
    ) -> Result<Tensor> {
        self.sampler().sample(req, noise, on_step)
    }

    /// Decodes normalised latents into frames, handing runs of frames `[1, 3, n, H, W]` (−1..1,
    /// in order) to `sink`, with memory bounded by the tile size. A NaN or an all-black result
    /// fails, naming the dtype.
    pub fn decode(
        &self,
        latents: &Tensor,
        params: &DecodeParams,
        noise: &mut dyn Noise,
        sink: &mut dyn FnMut(Tensor) -> Result<()>,
    ) -> Result<()> {
        let z = self.vae.denormalize(
            &latents.to_device(&self.device)?.to_dtype(DType::F32)?,
            self.vae.config().scaling_factor,
        )?;
        let (z, temb) = if self.vae.config().timestep_conditioning {
            let eps = noise.draw(z.dims(), &self.device)?;
            let s = params.noise_scale;
            let z = ((z * (1.0 - s))? + (eps * s)?)?;
            let temb = Tensor::new(&[params.timestep as f32], &self.device)?;
            (z, Some(temb))
        } else {
            (z, None)
        };
        let mut sum = 0.0f64;
        let mut count = 0usize;
        let what = format!(
            "the decoded frames (transformer in {:?}, VAE in f32)",
            self.dtype
        );
        // The sink's own error is kept aside: the VAE's callback speaks candle errors.
        let mut failure: Option<VideoError> = None;
        let mut inner = |frames: Tensor| -> candle_core::Result<()> {
            let mut step = || -> Result<()> {
                pipeline::finite(&frames, &what)?;
                let n = frames.elem_count();
                sum += pipeline::brightness(&frames)? * n as f64;
                count += n;
                sink(frames.clone())
            };
            step().map_err(|e| {
                let msg = e.to_string();
                failure = Some(e);
                candle_core::Error::Msg(msg)
            })
        };
        let decoded = self.vae.decode_streamed(
            &z,
            temb.as_ref(),
            Some(&mut *noise),
            params.tile,
            &mut inner,
        );
        if let Some(e) = failure {
            return Err(e);
        }
        decoded?;
        let mean = if count == 0 { 0.0 } else { sum / count as f64 };
        if mean < 1.0 / 255.0 {
            return Err(VideoError::Black {
                mean,
                dtype: format!("{:?}", self.dtype),
            });
        }
        Ok(())
    }
}
