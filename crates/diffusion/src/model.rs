//! A released model ready to draw from prompts: its architecture, weights (any supported
//! layout), tokenizers and LoRAs. What `reelsmith image` and the keyframes stage use.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::arch::Arch;
use crate::build::{build, Network};
use crate::checkpoint::{Checkpoint, Part};
use crate::lora::LoraSpec;
use crate::noise::Seeded;
use crate::pipeline::{
    Conditioning, Error, Family, InitImage, Params, Pipeline, Result, Step, TokenIds,
};
use crate::resume::{LoopState, Resume};
use crate::scheduler::SamplerKind;
use crate::tokenizer::{ClipTokenizer, Pad, T5Tokenizer};
use reelsmith_kit::{compute_dtype, Precision};

/// CLIP's context length.
const CLIP_LEN: usize = 77;
/// FLUX.1-schnell's T5 sequence length.
const T5_LEN: usize = 256;

/// Where a model's files are.
#[derive(Clone, Debug)]
pub struct ModelFiles {
    /// `.safetensors` files: a single-file checkpoint, or FLUX's transformer + autoencoder +
    /// text encoders.
    pub weights: Vec<PathBuf>,
    /// Networks whose weights are in files of their own (a diffusers folder: `unet`, `vae`,
    /// `text_encoder`, `text_encoder_2` → files); the others come from `weights`.
    pub per_network: std::collections::BTreeMap<String, Vec<PathBuf>>,
    /// CLIP BPE: a folder with `vocab.json` + `merges.txt`, or OpenAI's
    /// `bpe_simple_vocab_16e6.txt(.gz)`.
    pub clip_tokenizer: PathBuf,
    /// FLUX: `spiece.model` or `tokenizer.json` (or a folder holding one).
    pub t5_tokenizer: Option<PathBuf>,
}

/// One image request.
#[derive(Clone, Debug)]
pub struct Request {
    pub prompt: String,
    /// `None`: no negative prompt (SDXL then conditions on zeros, as diffusers does).
    pub negative: Option<String>,
    pub width: usize,
    pub height: usize,
    pub seed: u64,
    pub batch: usize,
    pub sampler: Option<SamplerKind>,
    pub steps: Option<usize>,
    pub cfg: Option<f64>,
}

/// Run dtype per device: f32 on the CPU; f16 (SD/SDXL) or bf16 (FLUX, whose activations
/// overflow f16) on CUDA.
pub fn run_dtype(family: Family, device: &Device) -> DType {
    let precision = match family {
        Family::Flux => Precision::Bf16,
        _ => Precision::F16,
    };
    compute_dtype(device, precision)
}

pub struct Model {
    pub arch: Arch,
    pub pipeline: Pipeline,
    clip: Option<ClipTokenizer>,
    clip2: Option<ClipTokenizer>,
    t5: Option<T5Tokenizer>,
}

fn open_clip_tokenizer(path: &Path) -> Result<ClipTokenizer> {
    let t = if path.is_dir() {
        ClipTokenizer::from_dir(path)
    } else {
        ClipTokenizer::from_openai_bpe(path)
    };
    t.map_err(|e| Error::Invalid(e.to_string()))
}

fn open_t5_tokenizer(path: &Path) -> Result<T5Tokenizer> {
    let t = if path.is_dir() {
        T5Tokenizer::from_dir(path)
    } else if path.extension().is_some_and(|e| e == "json") {
        T5Tokenizer::from_tokenizer_json(path)
    } else {
        T5Tokenizer::from_spiece_model(path)
    };
    t.map_err(|e| Error::Invalid(e.to_string()))
}

/// Which checkpoint part holds a network of `family`.
pub fn part_of(net: Network, family: Family) -> Part {
    match (net, family) {
        (Network::Unet, _) => Part::Unet,
        (Network::Transformer, _) => Part::FluxTransformer,
        (Network::Vae, Family::Flux) => Part::FluxVae,
        (Network::Vae, _) => Part::Vae,
        (Network::TextEncoder, _) => Part::TextEncoder,
        (Network::TextEncoder2, Family::Flux) => Part::T5,
        (Network::TextEncoder2, _) => Part::TextEncoder2,
    }
}

impl Model {
    /// Loads `arch` from `files` on `device`, merging `loras`.
    pub fn load(
        arch: Arch,
        files: &ModelFiles,
        loras: &[LoraSpec],
        device: &Device,
    ) -> Result<Self> {
        let family = arch.family;
        let open =
            |paths: &[PathBuf]| Checkpoint::open(paths).map_err(|e| Error::Invalid(e.to_string()));
        let ckpt = if files.weights.is_empty() {
            None
        } else {
            Some(open(&files.weights)?)
        };
        let mut own = std::collections::BTreeMap::new();
        for (net, paths) in &files.per_network {
            own.insert(net.clone(), open(paths)?);
        }
        let dtype = run_dtype(family, device);
        // SDXL's autoencoder overflows in f16 (diffusers upcasts it: `force_upcast`).
        let net_dtype = |net: Network| match (net, family) {
            (Network::Vae, Family::Sdxl | Family::SdxlRefiner) if dtype == DType::F16 => DType::F32,
            _ => dtype,
        };
        let pipeline = build(
            family,
            &arch.configs,
            arch.schedule.clone(),
            dtype,
            device,
            |net, cfg| {
                let c = own
                    .get(net.key())
                    .or(ckpt.as_ref())
                    .ok_or_else(|| Error::Invalid(format!("no weights for the {}", net.key())))?;
                c.var_builder(part_of(net, family), cfg, loras, net_dtype(net), device)
                    .map_err(|e| Error::Invalid(e.to_string()))
            },
        )?;
        let base = open_clip_tokenizer(&files.clip_tokenizer)?;
        // SD 2.x's and SDXL's OpenCLIP tokenizers pad with "!" (id 0); CLIP-L's with eos.
        let (clip, clip2) = match family {
            Family::Sd1 | Family::Flux => (Some(base), None),
            Family::Sd2 => (Some(base.with_pad_token("!").map_err(tok)?), None),
            Family::Sdxl => (
                Some(base.clone()),
                Some(base.with_pad_token("!").map_err(tok)?),
            ),
            Family::SdxlRefiner => (None, Some(base.with_pad_token("!").map_err(tok)?)),
        };
        let t5 = match (family, &files.t5_tokenizer) {
            (Family::Flux, Some(p)) => Some(open_t5_tokenizer(p)?),
            (Family::Flux, None) => {
                return Err(Error::Invalid(
                    "FLUX needs its T5 tokenizer (tokenizer_2/spiece.model)".into(),
                ))
            }
            _ => None,
        };
        Ok(Self {
            arch,
            pipeline,
            clip,
            clip2,
            t5,
        })
    }

    /// Token ids of `text` for every encoder, and how many tokens did not fit.
    pub fn tokenize(&self, text: &str) -> (TokenIds, usize) {
        let mut cut = 0;
        let mut clip = |t: &Option<ClipTokenizer>| {
            t.as_ref().map(|t| {
                let r = t.encode_padded_report(text, CLIP_LEN, Pad::Configured);
                cut = cut.max(r.truncated);
                r.ids
            })
        };
        let ids = TokenIds {
            clip: clip(&self.clip),
            clip2: clip(&self.clip2),
            t5: self.t5.as_ref().map(|t| {
                let r = t.encode_padded_report(text, T5_LEN);
                r.ids
            }),
        };
        (ids, cut)
    }

    fn zeros_like(c: &Conditioning) -> Result<Conditioning> {
        Ok(Conditioning {
            context: c.context.zeros_like()?,
            pooled: c.pooled.as_ref().map(|p| p.zeros_like()).transpose()?,
        })
    }

    /// Draws `req.batch` images; `init` for image-to-image / inpainting. Returns
    /// `[batch, 3, h, w]` in [0, 1] and the number of prompt tokens that were cut.
    pub fn generate(
        &self,
        req: &Request,
        init: Option<&InitImage>,
        on_step: &mut dyn FnMut(Step) -> bool,
    ) -> Result<(Tensor, usize)> {
        self.generate_resumable(req, init, on_step, Resume::default())
    }

    /// The sampling parameters of `req` (the architecture's defaults where it sets none).
    pub fn params(&self, req: &Request) -> Params {
        let d = self.arch.defaults;
        Params {
            sampler: req.sampler.unwrap_or(d.sampler),
            steps: req.steps.unwrap_or(d.steps),
            cfg: req.cfg.unwrap_or(d.cfg),
            width: req.width,
            height: req.height,
            batch: req.batch.max(1),
            aesthetic: (6.0, 2.5),
        }
    }

    /// Whether `state` (decoded from an earlier run's checkpoint) can continue `req` with
    /// `init`; checked before anything is computed, so a caller can report the resume or
    /// start over. See [`Pipeline::check_resume`].
    pub fn check_resume(
        &self,
        req: &Request,
        init: Option<&InitImage>,
        state: &LoopState,
    ) -> Result<()> {
        self.pipeline.check_resume(state, &self.params(req), init)
    }

    /// [`Model::generate`] with checkpoints (see [`Pipeline::generate_resumable`]): the noise
    /// is the request's seeded stream, so a run resumed from its own checkpoint draws the
    /// same image.
    pub fn generate_resumable(
        &self,
        req: &Request,
        init: Option<&InitImage>,
        on_step: &mut dyn FnMut(Step) -> bool,
        resume: Resume,
    ) -> Result<(Tensor, usize)> {
        let params = self.params(req);
        if let Some(state) = &resume.from {
            self.pipeline.check_resume(state, &params, init)?;
        }
        if params.sampler == SamplerKind::Flow && self.arch.family != Family::Flux
            || params.sampler != SamplerKind::Flow && self.arch.family == Family::Flux
        {
            return Err(Error::Invalid(format!(
                "sampler {} does not fit {} (FLUX samples with `flow`, the others with ddim, euler, euler_a or dpmpp_2m)",
                params.sampler.name(),
                self.arch.name
            )));
        }
        let (ids, cut) = self.tokenize(&req.prompt);
        let cond = self.pipeline.encode(&ids)?;
        let uncond = if self.pipeline.uses_guidance(params.cfg) {
            Some(match (&req.negative, self.arch.family) {
                (None, Family::Sdxl) => Self::zeros_like(&cond)?,
                (neg, _) => {
                    let (ids, _) = self.tokenize(neg.as_deref().unwrap_or(""));
                    self.pipeline.encode(&ids)?
                }
            })
        } else {
            None
        };
        let mut noise = Seeded::new(req.seed);
        let image = self.pipeline.generate_resumable(
            &cond,
            uncond.as_ref(),
            &params,
            init,
            &mut noise,
            on_step,
            resume,
        )?;
        Ok((image, cut))
    }
}

fn tok(e: crate::tokenizer::TokenizerError) -> Error {
    Error::Invalid(e.to_string())
}

/// `[b, 3, h, w]` in [0, 1] → one RGB8 buffer per image (row-major, 3 bytes per pixel).
pub fn to_rgb8(images: &Tensor) -> Result<Vec<Vec<u8>>> {
    let images = (images.to_dtype(DType::F32)? * 255.0)?
        .round()?
        .clamp(0f32, 255f32)?;
    let (b, _, _, _) = images.dims4()?;
    let mut out = Vec::with_capacity(b);
    for i in 0..b {
        let hwc = images.get(i)?.permute((1, 2, 0))?.flatten_all()?;
        out.push(hwc.to_vec1::<f32>()?.into_iter().map(|v| v as u8).collect());
    }
    Ok(out)
}

/// RGB8 `w`×`h` → `[1, 3, h, w]` in [0, 1] (an init image or a mask's first channel).
pub fn from_rgb8(rgb: &[u8], width: usize, height: usize, device: &Device) -> Result<Tensor> {
    if rgb.len() != width * height * 3 {
        return Err(Error::Invalid(format!(
            "image buffer is {} bytes, not {width}×{height}×3",
            rgb.len()
        )));
    }
    let v: Vec<f32> = rgb.iter().map(|&b| b as f32 / 255.0).collect();
    Ok(Tensor::from_vec(v, (height, width, 3), device)?
        .permute((2, 0, 1))?
        .unsqueeze(0)?
        .contiguous()?)
}
