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
pub use super::video_wan::residency_for;
use super::video_wan::WanEngine;
use super::EngineError;
use crate::media::image::RgbImage;
use crate::media::stills;
pub use reelsmith_video::wan::transformer::Residency;

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
    /// the official pipeline reads 256). (Wan reads umT5's 512.)
    pub prompt_tokens: usize,
    /// Wan: the flow shift (None: the model's, else 3 up to 480p and 5 above).
    pub shift: Option<f64>,
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
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VideoWeights {
    pub id: String,
    pub fingerprint: String,
    /// Single file or diffusers folder.
    pub weights: PathBuf,
    pub text_encoder: PathBuf,
    pub tokenizer: PathBuf,
    /// `ltxv` or `wan`.
    #[serde(default)]
    pub arch: String,
    /// Wan: the VAE, the CLIP vision encoder and its image processor.
    #[serde(default)]
    pub vae: Option<PathBuf>,
    #[serde(default)]
    pub image_encoder: Option<PathBuf>,
    #[serde(default)]
    pub image_processor: Option<PathBuf>,
    /// Wan: the sampler (`unipc`, `euler`) and flow shift of the model's defaults.
    #[serde(default)]
    pub sampler: String,
    #[serde(default)]
    pub shift: Option<f64>,
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
        arch: m.arch.clone(),
        vae: m.vae.clone(),
        image_encoder: m.image_encoder.clone(),
        image_processor: m.image_processor.clone(),
        sampler: m.sampling.sampler.clone(),
        shift: m.facts.shift,
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

/// Where a Wan decode keeps its progress (`dir`, a folder of its own) and whom it tells when a
/// latent frame's state is saved (`saved(done, total)`, in latent frames) or found (`resumed`).
pub struct DecodeResume<'a> {
    pub dir: std::path::PathBuf,
    pub saved: &'a mut dyn FnMut(usize, usize),
    pub resumed: &'a mut dyn FnMut(usize),
}

/// A video model ready to make clips: LTX-Video (loaded once per device and kept in the
/// loaded-model cache) or Wan2.1 (whose networks load one at a time per call).
pub struct VideoEngine {
    id: String,
    backend: Backend,
}

enum Backend {
    Ltx(Arc<LtxModel>),
    Wan(Box<WanEngine>),
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

/// Decoded frames `[1, 3, F, H, W]` in −1..1 as pictures, in order.
pub(super) fn frame_images(frames: &Tensor) -> Result<Vec<RgbImage>, VideoError> {
    let (_, _, _, h, w) = frames.dims5()?;
    Ok(reelsmith_video::ltx::pipeline::to_rgb(frames)?
        .into_iter()
        .map(|data| RgbImage {
            width: w as u32,
            height: h as u32,
            data,
        })
        .collect())
}

/// A frame sink's error inside the decode: a cancel stays a cancel.
pub(super) fn frame_error(e: EngineError) -> VideoError {
    match e {
        EngineError::Cancelled => VideoError::Cancelled,
        e => VideoError::Invalid(e.to_string()),
    }
}

fn ltx_only(id: &str, what: &str) -> EngineError {
    EngineError::Failed {
        engine: id.to_string(),
        message: format!("{what} is for Wan models only"),
    }
}

impl VideoEngine {
    /// Loads (or reuses) the model on `device` (`device_index` names the GPU for the cache).
    /// `residency` places a Wan transformer's blocks (LTX models are always resident).
    pub fn load(
        w: &VideoWeights,
        device: &Device,
        device_index: Option<u32>,
        residency: Residency,
    ) -> Result<Self, EngineError> {
        if w.arch == "wan" {
            return Ok(Self {
                id: w.id.clone(),
                backend: Backend::Wan(Box::new(WanEngine::new(w, device, residency))),
            });
        }
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
            backend: Backend::Ltx(model),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn rule(&self) -> FrameRule {
        match &self.backend {
            Backend::Ltx(m) => m.rule(),
            Backend::Wan(w) => w.rule(),
        }
    }

    pub fn dtype(&self) -> DType {
        match &self.backend {
            Backend::Ltx(m) => m.dtype,
            Backend::Wan(w) => w.dtype(),
        }
    }

    /// Whether [`sample`](Self::sample) takes prompt states the caller encoded (and saved)
    /// with [`encode_prompts`](Self::encode_prompts) (Wan), instead of encoding the prompt
    /// itself (LTX, whose T5 stays loaded with it).
    pub fn takes_prompt_states(&self) -> bool {
        matches!(self.backend, Backend::Wan(_))
    }

    /// Wan: umT5 states of `texts`, `[n, 512, D]` f32 on the CPU, one encoder load for all.
    pub fn encode_prompts(&self, texts: &[&str]) -> Result<Tensor, EngineError> {
        match &self.backend {
            Backend::Wan(w) => w.encode_prompts(texts),
            Backend::Ltx(_) => Err(ltx_only(&self.id, "encoding prompts ahead")),
        }
    }

    fn picture(
        &self,
        model: &LtxModel,
        img: &RgbImage,
        w: usize,
        h: usize,
    ) -> Result<Tensor, EngineError> {
        let img = stills::cover(img, w as u32, h as u32);
        let v: Vec<f32> = img.data.iter().map(|&p| p as f32 / 127.5 - 1.0).collect();
        Tensor::from_vec(v, (h, w, 3), &model.device)
            .and_then(|t| t.permute((2, 0, 1)))
            .and_then(|t| t.contiguous())
            .map_err(|e| failed(&self.id, e.into()))
    }

    /// Samples a clip's latents (normalised, `[1, C, F', H', W']`, on the CPU in f32 so they can
    /// be saved). `on_step(done, total)` returns false to cancel between steps. A Wan model
    /// takes `states`: `[2, 512, D]`, the prompt's and the negative prompt's (see
    /// [`takes_prompt_states`](Self::takes_prompt_states)); LTX encodes the prompt itself.
    pub fn sample(
        &self,
        req: &ClipRequest,
        states: Option<&Tensor>,
        on_step: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Tensor, EngineError> {
        let model = match &self.backend {
            Backend::Ltx(m) => m,
            Backend::Wan(w) => {
                let states = states.ok_or_else(|| EngineError::Failed {
                    engine: self.id.clone(),
                    message: "a Wan model samples from encoded prompt states; none given".into(),
                })?;
                return w.sample(req, states, on_step);
            }
        };
        let fail = |e| failed(&self.id, e);
        let text = model.text.as_ref().ok_or_else(|| EngineError::Failed {
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
                            media: self.picture(model, &c.image, req.width, req.height)?,
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
        let latents = model
            .sample(&request, &mut noise, &mut hook)
            .map_err(fail)?;
        latents
            .to_device(&Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| fail(e.into()))
    }

    /// Decodes saved latents into frames, in order, handing each to `frame`. `resume` (Wan):
    /// a folder where the decode keeps its progress, so a killed decode of the same latents
    /// continues from the last finished latent frame (its frames are handed over again
    /// first). The caller removes the folder once it has committed the frames.
    pub fn decode(
        &self,
        latents: &Tensor,
        seed: u64,
        resume: Option<DecodeResume<'_>>,
        frame: &mut dyn FnMut(RgbImage) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let model = match &self.backend {
            Backend::Ltx(m) => m,
            Backend::Wan(w) => return w.decode(latents, resume, frame),
        };
        let fail = |e| failed(&self.id, e);
        // The decode noise has its own stream: a resumed decode draws what the first did.
        let mut noise = Seeded::new(seed ^ 0x00de_c0de);
        let mut sink = |frames: Tensor| -> Result<(), VideoError> {
            for img in frame_images(&frames)? {
                frame(img).map_err(frame_error)?;
            }
            Ok(())
        };
        model
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
