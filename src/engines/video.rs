//! The video engine: LTX-Video from the `reelsmith-video` crate, loaded once per device through
//! the loaded-model cache, driven in two halves the animate stage keeps apart — sampling, whose
//! latents are saved before anything else, and the streamed decode into RGB frames.
//!
//! Requests speak the studio's language (pictures, seconds, a motion hint); the crate's speak
//! tensors. Conditioning pictures are scaled and cropped to the generation size here.

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use reelsmith_kit::noise::Seeded;
use reelsmith_video::frames::FrameRule;
use reelsmith_video::ltx::load::LtxSource;
use reelsmith_video::ltx::model::{DecodeParams, LtxFiles, LtxModel};
use reelsmith_video::ltx::pipeline::{Condition, Mode, Request};
use reelsmith_video::ltx::schedule::Steps;
use reelsmith_video::VideoError;

use super::loaded::{self, ModelKey};
use super::EngineError;
use crate::media::image::RgbImage;
use crate::media::stills;

/// A picture to hold at an output frame.
#[derive(Clone, Debug)]
pub struct ClipCondition {
    pub image: RgbImage,
    pub frame: usize,
    pub strength: f64,
}

/// What one generated clip should show.
#[derive(Clone, Debug)]
pub struct ClipRequest {
    pub prompt: String,
    pub negative_prompt: String,
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    pub fps: f64,
    pub steps: Steps,
    pub guidance: f64,
    pub seed: u64,
    pub conditions: Vec<ClipCondition>,
    /// T5 tokens the prompt is read up to ([`PROMPT_TOKENS`] by default, diffusers' choice;
    /// the official pipeline reads 256).
    pub prompt_tokens: usize,
}

/// diffusers' LTX prompt length.
pub const PROMPT_TOKENS: usize = reelsmith_video::ltx::text::DEFAULT_MAX_TOKENS;

/// `REELSMITH_VIDEO_TOKENS`: the prompt length of the studio's clips (default [`PROMPT_TOKENS`]).
pub fn prompt_tokens_setting() -> usize {
    std::env::var("REELSMITH_VIDEO_TOKENS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| (8..=512).contains(n))
        .unwrap_or(PROMPT_TOKENS)
}

/// The files and facts of one video model, as the job pins them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VideoWeights {
    pub id: String,
    pub fingerprint: String,
    /// Single file or diffusers folder.
    pub weights: PathBuf,
    pub text_encoder: PathBuf,
    pub tokenizer: PathBuf,
}

impl VideoWeights {
    fn files(&self) -> LtxFiles {
        let source = if self.weights.is_dir() {
            LtxSource::Diffusers(self.weights.clone())
        } else {
            LtxSource::SingleFile(self.weights.clone())
        };
        LtxFiles {
            source,
            text_encoder: self.text_encoder.clone(),
            tokenizer: self.tokenizer.clone(),
        }
    }
}

pub use super::video_select::VideoModelRef;

/// The files of a job's video model.
pub fn weights_of(m: &VideoModelRef) -> VideoWeights {
    VideoWeights {
        id: m.id.clone(),
        fingerprint: m.fingerprint.clone(),
        weights: m.weights.clone(),
        text_encoder: m.text_encoder.clone(),
        tokenizer: m.tokenizer.clone(),
    }
}

/// The model's default steps: a distilled model's fixed timesteps, else a count.
pub fn default_steps(m: &VideoModelRef) -> Steps {
    if m.timesteps().is_empty() {
        Steps::Count(m.steps().max(1) as usize)
    } else {
        Steps::Timesteps(m.timesteps().iter().map(|s| s * 1000.0).collect())
    }
}

/// A loaded video model.
pub struct VideoEngine {
    id: String,
    model: Arc<LtxModel>,
}

fn failed(engine: &str, e: VideoError) -> EngineError {
    match e {
        VideoError::Cancelled => EngineError::Cancelled,
        e => EngineError::Failed {
            engine: engine.to_string(),
            message: e.to_string(),
        },
    }
}

/// Size of the files behind a model (the cache's byte count).
fn weight_bytes(w: &VideoWeights) -> u64 {
    fn size(p: &std::path::Path) -> u64 {
        if p.is_dir() {
            std::fs::read_dir(p)
                .map(|d| d.filter_map(|e| e.ok()).map(|e| size(&e.path())).sum())
                .unwrap_or(0)
        } else {
            std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
        }
    }
    size(&w.weights) + size(&w.text_encoder)
}

impl VideoEngine {
    /// Loads (or reuses) the model on `device` (`device_index` names the GPU for the cache).
    pub fn load(
        w: &VideoWeights,
        device: &Device,
        device_index: Option<u32>,
    ) -> Result<Self, EngineError> {
        let key = ModelKey {
            model: format!("{}#{}", w.id, w.fingerprint),
            device: device_index,
            dtype: format!("{:?}", LtxModel::dtype_for(device)),
        };
        let model = loaded::shared(&key, weight_bytes(w), || {
            LtxModel::load(&w.files(), device).map_err(|e| failed(&w.id, e))
        })?;
        Ok(Self {
            id: w.id.clone(),
            model,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn rule(&self) -> FrameRule {
        self.model.rule()
    }

    pub fn dtype(&self) -> DType {
        self.model.dtype
    }

    fn picture(&self, img: &RgbImage, w: usize, h: usize) -> Result<Tensor, EngineError> {
        let img = stills::cover(img, w as u32, h as u32);
        let v: Vec<f32> = img.data.iter().map(|&p| p as f32 / 127.5 - 1.0).collect();
        Tensor::from_vec(v, (h, w, 3), &self.model.device)
            .and_then(|t| t.permute((2, 0, 1)))
            .and_then(|t| t.contiguous())
            .map_err(|e| failed(&self.id, e.into()))
    }

    /// Samples a clip's latents (normalised, `[1, C, F', H', W']`, on the CPU in f32 so they can
    /// be saved). `on_step(done, total)` returns false to cancel between steps.
    pub fn sample(
        &self,
        req: &ClipRequest,
        on_step: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Tensor, EngineError> {
        let fail = |e| failed(&self.id, e);
        let text = self
            .model
            .text
            .as_ref()
            .ok_or_else(|| EngineError::Failed {
                engine: self.id.clone(),
                message: "no text encoder loaded".into(),
            })?;
        let (prompt, cut) = text
            .encode_up_to(&req.prompt, req.prompt_tokens)
            .map_err(fail)?;
        if cut > 0 {
            tracing::info!(
                "{}: the prompt is {cut} token(s) longer than {} and its end was left out",
                self.id,
                req.prompt_tokens
            );
        }
        let negative = if req.guidance > 1.0 {
            Some(
                text.encode_up_to(&req.negative_prompt, req.prompt_tokens)
                    .map_err(fail)?
                    .0,
            )
        } else {
            None
        };
        let mode = match req.conditions.as_slice() {
            [] => Mode::Text,
            conds => Mode::Conditions(
                conds
                    .iter()
                    .map(|c| {
                        Ok(Condition {
                            media: self.picture(&c.image, req.width, req.height)?,
                            frame: c.frame,
                            strength: c.strength,
                        })
                    })
                    .collect::<Result<_, EngineError>>()?,
            ),
        };
        let request = Request {
            prompt,
            negative,
            guidance: req.guidance,
            width: req.width,
            height: req.height,
            frames: req.frames,
            frame_rate: req.fps,
            steps: req.steps.clone(),
            mode,
            cond_noise_scale: 0.15,
        };
        let mut noise = Seeded::new(req.seed);
        let mut hook = |done: usize, total: usize, _: &Tensor| on_step(done, total);
        let latents = self
            .model
            .sample(&request, &mut noise, &mut hook)
            .map_err(fail)?;
        latents
            .to_device(&Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| fail(e.into()))
    }

    /// Decodes saved latents into frames, in order, handing each to `frame`.
    pub fn decode(
        &self,
        latents: &Tensor,
        seed: u64,
        frame: &mut dyn FnMut(RgbImage) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let fail = |e| failed(&self.id, e);
        // The decode noise has its own stream: a resumed decode draws what the first did.
        let mut noise = Seeded::new(seed ^ 0x00de_c0de);
        let mut sink = |frames: Tensor| -> Result<(), VideoError> {
            let (_, _, _, h, w) = frames.dims5()?;
            for rgb in reelsmith_video::ltx::pipeline::to_rgb(&frames)? {
                let img = RgbImage {
                    width: w as u32,
                    height: h as u32,
                    data: rgb,
                };
                frame(img).map_err(|e| VideoError::Invalid(e.to_string()))?;
            }
            Ok(())
        };
        self.model
            .decode(latents, &DecodeParams::default(), &mut noise, &mut sink)
            .map_err(fail)
    }
}

/// Latents as bytes for a checkpoint: dims then little-endian f32 values.
pub fn latents_to_bytes(t: &Tensor) -> Result<Vec<u8>, EngineError> {
    let err = |e: candle_core::Error| EngineError::Failed {
        engine: "latents".into(),
        message: e.to_string(),
    };
    let dims = t.dims().to_vec();
    let v: Vec<f32> = t
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .map_err(err)?;
    let mut out = Vec::with_capacity(8 + dims.len() * 8 + v.len() * 4);
    out.extend_from_slice(&(dims.len() as u64).to_le_bytes());
    for d in &dims {
        out.extend_from_slice(&(*d as u64).to_le_bytes());
    }
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    Ok(out)
}

/// Inverse of [`latents_to_bytes`]; `None` for bytes that are not a whole latents record.
pub fn latents_from_bytes(b: &[u8]) -> Option<Tensor> {
    let word = |i: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            b.get(i * 8..i * 8 + 8)?.try_into().ok()?,
        ))
    };
    let rank = word(0)? as usize;
    if rank > 8 {
        return None;
    }
    let dims: Vec<usize> = (1..=rank)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<Option<_>>()?;
    let start = 8 * (rank + 1);
    let n: usize = dims.iter().product();
    let body = b.get(start..start + n * 4)?;
    if b.len() != start + n * 4 {
        return None;
    }
    let v: Vec<f32> = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latents_round_trip_and_truncation_is_refused() {
        let t = Tensor::arange(0f32, 24.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 2, 3, 2, 2))
            .unwrap();
        let b = latents_to_bytes(&t).unwrap();
        let back = latents_from_bytes(&b).unwrap();
        assert_eq!(back.dims(), t.dims());
        assert_eq!(
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert!(latents_from_bytes(&b[..b.len() - 1]).is_none());
        assert!(latents_from_bytes(&[]).is_none());
    }
}
