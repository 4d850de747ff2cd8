//! A Wan2.1 model ready to run: the files of its five networks, the device and dtype policy, and
//! the halves of a generation the studio keeps apart — the prompt encoding (umT5, whose
//! `[1, 512, D]` states the caller saves as an artifact), the image encoding (CLIP, for
//! image-to-video and first-last-frame), the sampling (the transformer's loop, minutes on a GPU;
//! its latents are saved before anything else happens) and the streamed decode (one latent frame
//! at a time, its state saveable so a decode can resume).
//!
//! Nothing is held between calls: every step loads the network it needs and drops it when done,
//! so at most one of the big ones (umT5-XXL ≈ 11 GB f32, the 14B transformer, the VAE) is in
//! memory at a time. In [`WanModel::sample`] the VAE encodes the image condition and is dropped
//! before the transformer is loaded (on its first call).
//!
//! Dtype policy (as LTX): the transformer in bf16 on CUDA, f32 on the CPU; the VAE, umT5 and CLIP
//! always in f32.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use reelsmith_kit::noise::Noise;
use reelsmith_kit::{compute_dtype, Precision};

use super::clip_vision::{ClipImageProcessor, ClipVision, ClipVisionConfig};
use super::pipeline::{self, Anchor, StepHook, WanRequest, VAE_TEMPORAL};
use super::transformer::{Residency, WanTransformer, WanTransformerConfig};
use super::umt5::{UmT5Encoder, WanTokenizer};
use super::vae::{WanStreamDecoder, WanTiling, WanVae, WanVaeConfig};
use crate::VideoError;

type Result<T> = std::result::Result<T, VideoError>;

/// The files of one Wan2.1 model. Each is a folder or a single file in any layout its loader
/// accepts (diffusers, official, ComfyUI).
#[derive(Clone, Debug)]
pub struct WanFiles {
    /// [`WanTransformer::load`]: a diffusers or official folder, or one file.
    pub transformer: PathBuf,
    /// A diffusers `vae/` folder, or one `.safetensors`/`.pth` file (its config from a
    /// `config.json` beside it, else the released Wan2.1 VAE's).
    pub vae: PathBuf,
    /// [`UmT5Encoder::load`]: a transformers folder or a ComfyUI / official file.
    pub text_encoder: PathBuf,
    /// [`WanTokenizer::from_path`]: a `tokenizer.json` or a folder holding one.
    pub tokenizer: PathBuf,
    /// [`ClipVision::load`] (image-to-video and first-last-frame models only).
    pub image_encoder: Option<PathBuf>,
    /// A `preprocessor_config.json` (or a folder holding one); without it the Wan I2V repos'
    /// processor at the tower's image size.
    pub image_processor: Option<PathBuf>,
}

/// An RGB picture: `height × width × 3` bytes, row major.
#[derive(Clone, Copy, Debug)]
pub struct Picture<'a> {
    pub rgb: &'a [u8],
    pub width: usize,
    pub height: usize,
}

impl Picture<'_> {
    fn check(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 || self.rgb.len() != self.width * self.height * 3 {
            return Err(VideoError::Invalid(format!(
                "a picture of {} bytes is not {}×{} RGB",
                self.rgb.len(),
                self.width,
                self.height
            )));
        }
        Ok(())
    }

    /// `[3, H, W]` f32 in −1..1 as diffusers' `VideoProcessor.preprocess` makes it from a picture
    /// already at the run's size: `(u8 / 255)·2 − 1` in f32.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        self.check()?;
        let (w, h) = (self.width, self.height);
        let mut v = vec![0f32; 3 * h * w];
        for (i, px) in self.rgb.chunks_exact(3).enumerate() {
            for (c, &b) in px.iter().enumerate() {
                v[c * h * w + i] = (f32::from(b) / 255.0) * 2.0 - 1.0;
            }
        }
        Ok(Tensor::from_vec(v, (3, h, w), device)?)
    }
}

/// What an image-to-video run is conditioned on.
#[derive(Clone, Copy, Debug)]
pub struct ImageCondition<'a> {
    /// [`WanModel::encode_image`]'s states: `[1, N, D]` (first-last-frame: both pictures',
    /// `[1, 2N, D]`).
    pub embeds: &'a Tensor,
    /// The first frame, at the run's size.
    pub first: Picture<'a>,
    /// The last frame (first-last-frame models).
    pub last: Option<Picture<'a>>,
}

/// Where an anchor picture holds a clip (see [`WanModel::encode_anchors`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnchorAt {
    /// Latent frame 0: the clip's first pixel frame.
    First,
    /// The last latent frame of a run of this many latent frames (its last four pixel frames).
    LastOf(usize),
}

/// A picture at the run's size and where it holds the clip.
#[derive(Clone, Copy, Debug)]
pub struct AnchorPicture<'a> {
    pub picture: Picture<'a>,
    pub at: AnchorAt,
}

/// How [`WanModel::decode`] runs.
#[derive(Clone, Debug, Default)]
pub struct DecodeOptions {
    /// Spatial tiling (diffusers' `enable_tiling`), to bound memory at large sizes.
    pub tiling: Option<WanTiling>,
    /// Continue the decode whose state was saved here ([`WanStreamDecoder::save`]).
    pub resume: Option<PathBuf>,
}

/// The Wan2.1 runner: files, device, dtype and residency; loads nothing until asked.
#[derive(Clone, Debug)]
pub struct WanModel {
    pub files: WanFiles,
    pub device: Device,
    /// The transformer's compute dtype ([`WanModel::dtype_for`]).
    pub dtype: DType,
    /// Whether the transformer's blocks stay on the device or are streamed in.
    pub residency: Residency,
}

impl WanModel {
    /// The transformer's dtype on `device`: bf16 on CUDA, f32 on the CPU.
    pub fn dtype_for(device: &Device) -> DType {
        compute_dtype(device, Precision::Bf16)
    }

    pub fn new(files: WanFiles, device: &Device) -> Self {
        Self {
            files,
            device: device.clone(),
            dtype: Self::dtype_for(device),
            residency: Residency::Resident,
        }
    }

    /// The transformer's config, from its config.json or shapes (no weights read).
    pub fn transformer_config(&self) -> Result<WanTransformerConfig> {
        Ok(WanTransformer::read_config(&self.files.transformer)?.0)
    }

    /// Tokenizes and encodes the prompt and the negative prompt with umT5 (loaded, then
    /// dropped): `([1, 512, D], [1, 512, D])` f32, zero past each real length (diffusers'
    /// `_get_t5_prompt_embeds`; an empty negative prompt is what diffusers uses without one).
    pub fn encode_prompt(&self, prompt: &str, negative: &str) -> Result<(Tensor, Tensor)> {
        let states = self.encode_prompts(&[prompt, negative])?;
        Ok((states.narrow(0, 0, 1)?, states.narrow(0, 1, 1)?))
    }

    /// Encodes several texts with one load of umT5: `[n, 512, D]` f32 (row i is text i, zero
    /// past its real length). The studio encodes every prompt of a render this way, saves the
    /// states, and the encoder leaves memory before any sampling.
    pub fn encode_prompts(&self, texts: &[&str]) -> Result<Tensor> {
        if texts.is_empty() {
            return Err(VideoError::Invalid("no texts to encode".into()));
        }
        let tokenizer = WanTokenizer::from_path(&self.files.tokenizer)?;
        let tokens: Vec<_> = texts.iter().map(|t| tokenizer.tokenize(t)).collect();
        let encoder = UmT5Encoder::load(&self.files.text_encoder, &self.device)?;
        let states = encoder.encode_prompt(&tokens)?;
        drop(encoder);
        Ok(states.to_dtype(DType::F32)?)
    }

    fn image_encoder_path(&self) -> Result<&Path> {
        self.files.image_encoder.as_deref().ok_or_else(|| {
            VideoError::Invalid(
                "this model has no image encoder (CLIP): image-to-video needs one".into(),
            )
        })
    }

    fn image_processor(&self, cfg: &ClipVisionConfig) -> Result<ClipImageProcessor> {
        match &self.files.image_processor {
            Some(p) if p.is_dir() => {
                ClipImageProcessor::from_file(&p.join("preprocessor_config.json"))
            }
            Some(p) => ClipImageProcessor::from_file(p),
            None => {
                let s = cfg.image_size;
                Ok(ClipImageProcessor {
                    shortest_edge: Some(s),
                    crop: Some((s, s)),
                    ..ClipImageProcessor::wan_i2v()
                })
            }
        }
    }

    /// CLIP's penultimate states of one picture, `[1, N, D]` (N = 257 for ViT-H/14).
    pub fn encode_image(&self, rgb: &[u8], width: usize, height: usize) -> Result<Tensor> {
        self.encode_images(&[Picture { rgb, width, height }])
    }

    /// The states of several pictures one after the other, `[1, k·N, D]`: first-last-frame
    /// takes `[first, last]` (diffusers encodes them as a batch of 2 and the transformer views
    /// them as one row of 2N tokens). CLIP is loaded, then dropped.
    pub fn encode_images(&self, pictures: &[Picture<'_>]) -> Result<Tensor> {
        if pictures.is_empty() {
            return Err(VideoError::Invalid("no pictures to encode".into()));
        }
        let clip = ClipVision::load(self.image_encoder_path()?, &self.device)?;
        let processor = self.image_processor(clip.config())?;
        let pixels = pictures
            .iter()
            .map(|p| {
                p.check()?;
                processor.preprocess(p.rgb, p.width, p.height, &self.device)
            })
            .collect::<Result<Vec<_>>>()?;
        let states = clip.penultimate(&Tensor::cat(&pixels, 0)?)?;
        let (k, n, d) = states.dims3()?;
        Ok(states.to_dtype(DType::F32)?.reshape((1, k * n, d))?)
    }

    /// Loads the VAE (f32) from a diffusers folder or a single file.
    pub fn load_vae(&self) -> Result<WanVae> {
        let p = &self.files.vae;
        if p.is_dir() {
            return WanVae::from_diffusers_dir(p, &self.device);
        }
        let config = self.vae_config()?;
        WanVae::from_file(p, &config, &self.device)
    }

    /// Loads the transformer in [`dtype`](Self::dtype) with [`residency`](Self::residency).
    pub fn load_transformer(&self) -> Result<WanTransformer> {
        WanTransformer::load(
            &self.files.transformer,
            self.dtype,
            &self.device,
            self.residency,
        )
    }

    /// Samples the normalised latents `[1, 16, L, H/8, W/8]` of `req` (diffusers' `WanPipeline`,
    /// or `WanImageToVideoPipeline` with `image`): the initial noise is one draw from `noise`;
    /// `prompt` and `negative` are [`encode_prompt`](Self::encode_prompt)'s (the negative one is
    /// used only when `req.guidance > 1`). With an image the VAE encodes the condition video and
    /// is dropped, then the transformer is loaded. `on_step` sees every step's latents and can
    /// cancel.
    pub fn sample(
        &self,
        req: &WanRequest,
        prompt: &Tensor,
        negative: Option<&Tensor>,
        image: Option<ImageCondition<'_>>,
        noise: &mut dyn Noise,
        on_step: StepHook<'_>,
    ) -> Result<Tensor> {
        self.sample_anchored(req, prompt, negative, image, &[], noise, on_step)
    }

    /// The latents [`Picture`]s would hold as a clip's first latent frame or its last one,
    /// normalised, `[1, 16, 1, h, w]` each (pictures at the run's size). First: the picture
    /// encoded alone (what the causal VAE's frame 0 is). Last: the picture held for five frames,
    /// latent frame 1 of that (four frames of it after itself). The VAE is loaded, then dropped.
    pub fn encode_anchors(&self, anchors: &[AnchorPicture<'_>]) -> Result<Vec<Anchor>> {
        if anchors.is_empty() {
            return Ok(Vec::new());
        }
        let vae = self.load_vae()?;
        let stats = vae.config().latent_stats();
        anchors
            .iter()
            .map(|a| {
                let x = a
                    .picture
                    .to_tensor(&self.device)?
                    .unsqueeze(0)?
                    .unsqueeze(2)?;
                let (video, pick) = match a.at {
                    AnchorAt::First => (x, 0),
                    AnchorAt::LastOf(_) => (x.repeat((1, 1, 1 + VAE_TEMPORAL, 1, 1))?, 1),
                };
                let z = stats.normalize(&vae.encode(&video)?.narrow(2, pick, 1)?)?;
                let frame = match a.at {
                    AnchorAt::First => 0,
                    AnchorAt::LastOf(latent_frames) => latent_frames.saturating_sub(1),
                };
                Ok(Anchor { frame, latents: z })
            })
            .collect()
    }

    /// [`sample`](Self::sample) with latent frames held to `anchors` (from
    /// [`encode_anchors`](Self::encode_anchors); see [`pipeline::Anchor`]).
    #[allow(clippy::too_many_arguments)]
    pub fn sample_anchored(
        &self,
        req: &WanRequest,
        prompt: &Tensor,
        negative: Option<&Tensor>,
        image: Option<ImageCondition<'_>>,
        anchors: &[Anchor],
        noise: &mut dyn Noise,
        on_step: StepHook<'_>,
    ) -> Result<Tensor> {
        let shape = req.validate()?;
        let cfg = self.transformer_config()?;
        let bad = |m: String| Err(VideoError::Invalid(m));
        match (&image, cfg.has_image_input()) {
            (Some(_), false) => {
                return bad("this is a text-to-video model: it takes no image".into())
            }
            (None, true) => {
                return bad("this is an image-to-video model: it needs a first frame".into())
            }
            _ => {}
        }
        let text_dim = cfg.text_dim;
        let check_text = |t: &Tensor, what: &str| -> Result<Tensor> {
            match t.dims() {
                [1, _, d] if *d == text_dim => Ok(t.to_device(&self.device)?),
                other => bad(format!(
                    "the {what} embeddings are {other:?}; this transformer takes [1, L, {text_dim}]"
                )),
            }
        };
        let prompt = check_text(prompt, "prompt")?;
        let negative = match (negative, req.guidance > 1.0) {
            (Some(n), true) => Some(check_text(n, "negative prompt")?),
            (None, true) => {
                return bad(format!(
                    "guidance {} needs the negative prompt's embeddings",
                    req.guidance
                ))
            }
            (_, false) => None,
        };
        let image_states = match &image {
            Some(c) => Some(c.embeds.to_device(&self.device)?),
            None => None,
        };
        let mut transformer: Option<WanTransformer> = None;
        let model = |x: &Tensor, t: f64, cond: bool| -> Result<Tensor> {
            if transformer.is_none() {
                transformer = Some(self.load_transformer()?);
            }
            let Some(tr) = transformer.as_ref() else {
                return bad("the transformer did not load".into());
            };
            let text = match (cond, &negative) {
                (true, _) => &prompt,
                (false, Some(n)) => n,
                (false, None) => return bad("an unconditional call without guidance".into()),
            };
            let timestep = Tensor::new(&[t as f32], &self.device)?;
            tr.forward(
                &x.to_dtype(self.dtype)?,
                &timestep,
                text,
                image_states.as_ref(),
            )
        };
        // As diffusers: the initial noise is drawn before the condition is encoded.
        let mut sampler = req.build_sampler()?;
        let latents = pipeline::initial_latents(shape, noise, &self.device)?;
        let condition = match image {
            None => None,
            Some(c) => {
                let first = c.first.to_tensor(&self.device)?;
                let last = match &c.last {
                    Some(p) => Some(p.to_tensor(&self.device)?),
                    None => None,
                };
                let vae_cfg = self.vae_config()?;
                Some(pipeline::image_condition(
                    req,
                    &first,
                    last.as_ref(),
                    &vae_cfg.latent_stats(),
                    // The VAE lives for the encode only: dropped before the transformer loads.
                    |video: &Tensor| self.load_vae()?.encode(video),
                    &self.device,
                )?)
            }
        };
        pipeline::denoise_anchored(
            sampler.as_mut(),
            latents,
            condition.as_ref(),
            req.guidance,
            anchors,
            model,
            on_step,
        )
    }

    /// The VAE's config without its weights.
    pub fn vae_config(&self) -> Result<WanVaeConfig> {
        let p = &self.files.vae;
        let cfg_path = if p.is_dir() {
            p.join("config.json")
        } else {
            p.with_file_name("config.json")
        };
        if !cfg_path.is_file() {
            return Ok(WanVaeConfig::wan2_1());
        }
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| VideoError::Weights {
            path: cfg_path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        WanVaeConfig::from_json(&text, &cfg_path.display().to_string())
    }

    /// Decodes normalised latents `[1, 16, L, h, w]` (as [`sample`](Self::sample) returns them)
    /// a latent frame at a time: `sink` gets the decoder (to [`save`](WanStreamDecoder::save) its
    /// state once the frames are stored) and each step's frames `[1, 3, 1 or 4, 8h, 8w]` in
    /// −1..1, in order. With `options.resume` the decode continues from the saved state (the
    /// frames before it are not produced again). A NaN or infinite value fails.
    pub fn decode(
        &self,
        latents: &Tensor,
        options: &DecodeOptions,
        sink: &mut dyn FnMut(&WanStreamDecoder<'_>, Tensor) -> Result<()>,
    ) -> Result<()> {
        let vae = self.load_vae()?;
        let z = vae
            .config()
            .latent_stats()
            .denormalize(&latents.to_device(&self.device)?.to_dtype(DType::F32)?)?;
        let (_, _, n, h, w) = z.dims5()?;
        let mut decoder = match &options.resume {
            Some(path) => WanStreamDecoder::resume(&vae, path)?,
            None => vae.stream_decoder(h, w, options.tiling)?,
        };
        if decoder.state().latent_size() != (h, w) || decoder.next_frame() > n {
            return Err(VideoError::Invalid(format!(
                "the saved decode is of {:?} latents at frame {}; these latents are {h}×{w}, {n} frames",
                decoder.state().latent_size(),
                decoder.next_frame()
            )));
        }
        while decoder.next_frame() < n {
            let i = decoder.next_frame();
            let frames = decoder.decode_step(&z.narrow(2, i, 1)?)?;
            let total = frames.abs()?.sum_all()?.to_scalar::<f32>()?;
            if !total.is_finite() {
                let count = frames
                    .flatten_all()?
                    .to_vec1::<f32>()?
                    .iter()
                    .filter(|x| !x.is_finite())
                    .count();
                return Err(VideoError::NonFinite {
                    what: format!(
                        "the decoded frames of latent frame {i} (transformer in {:?}, VAE in f32)",
                        self.dtype
                    ),
                    count,
                });
            }
            sink(&decoder, frames)?;
        }
        Ok(())
    }
}
