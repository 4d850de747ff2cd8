//! Text-to-image, image-to-image and inpainting for every family, following diffusers'
//! pipelines step for step (including when they draw noise), so a run can be checked against
//! theirs.

use std::sync::Mutex;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_transformers::models::flux::{self, WithForward};
use candle_transformers::models::t5;

use crate::clip::{ClipOutput, ClipText};
use crate::noise::Noise;
use crate::resume::{InpaintState, LoopState, Resume};
use crate::scheduler::{Sampler, SamplerKind, ScheduleConfig};
use crate::unet::{UNet, UNetInput};
use crate::vae::Vae;

/// The model families, by how they are conditioned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// SD 1.x: CLIP-L last hidden state.
    Sd1,
    /// SD 2.x / SD-Turbo: OpenCLIP-H, penultimate layer (the diffusers text encoder stops there).
    Sd2,
    /// SDXL / SDXL-Turbo: CLIP-L + OpenCLIP-bigG penultimate layers, pooled bigG, size ids.
    Sdxl,
    /// SDXL refiner: OpenCLIP-bigG only, aesthetic-score ids.
    SdxlRefiner,
    /// FLUX.1: T5-XXL hidden states + CLIP-L pooled, rectified flow, no CFG.
    Flux,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Model(#[from] candle_core::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("cancelled")]
    Cancelled,
    /// A sampling checkpoint that cannot be read or does not fit the run (the caller starts
    /// over without it).
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

pub type Result<T> = std::result::Result<T, Error>;

fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid(msg.into()))
}

pub enum Denoiser {
    UNet(Box<UNet>),
    Flux(Box<flux::model::Flux>),
}

/// The text encoders a family uses (the others are `None`).
#[derive(Default)]
pub struct TextEncoders {
    /// CLIP-L (SD 1.x, SDXL, FLUX) or OpenCLIP-H (SD 2.x).
    pub clip: Option<ClipText>,
    /// OpenCLIP-bigG with projection (SDXL, refiner).
    pub clip2: Option<ClipText>,
    /// T5 encoder (FLUX); its forward takes `&mut self`.
    pub t5: Option<Mutex<t5::T5EncoderModel>>,
}

/// Token ids per encoder, one row per prompt.
#[derive(Clone, Debug, Default)]
pub struct TokenIds {
    pub clip: Option<Vec<u32>>,
    pub clip2: Option<Vec<u32>>,
    pub t5: Option<Vec<u32>>,
}

/// An encoded prompt: what the denoiser is conditioned on (batch 1).
#[derive(Clone, Debug)]
pub struct Conditioning {
    /// `[1, tokens, dim]`.
    pub context: Tensor,
    /// SDXL: pooled bigG `[1, 1280]`; FLUX: pooled CLIP-L `[1, 768]`.
    pub pooled: Option<Tensor>,
}

/// Image-to-image and inpainting input.
pub struct InitImage {
    /// `[1, 3, h, w]` in [0, 1], the output size.
    pub image: Tensor,
    /// Share of the schedule to run (1 = start from noise).
    pub strength: f64,
    /// `[1, 1, h, w]`, ≥ 0.5 = repaint.
    pub mask: Option<Tensor>,
}

/// Progress after a sampling step.
pub struct Step<'a> {
    pub done: usize,
    pub total: usize,
    /// The latents after this step `[b, c, h, w]` (unpacked for FLUX too).
    pub latents: &'a Tensor,
}

pub struct Params {
    pub sampler: SamplerKind,
    pub steps: usize,
    /// Classifier-free guidance scale; ≤ 1 turns guidance off (as diffusers).
    pub cfg: f64,
    pub width: usize,
    pub height: usize,
    pub batch: usize,
    /// SDXL refiner aesthetic scores (positive, negative).
    pub aesthetic: (f64, f64),
}

pub struct Pipeline {
    pub family: Family,
    pub denoiser: Denoiser,
    pub vae: Vae,
    pub text: TextEncoders,
    pub schedule: ScheduleConfig,
    pub device: Device,
    pub dtype: DType,
    /// The autoencoder's dtype: f32 where f16 overflows (SDXL's VAE, as diffusers'
    /// `force_upcast`), else `dtype`.
    pub vae_dtype: DType,
}

fn ids_tensor(ids: &[u32], dev: &Device) -> Result<Tensor> {
    Ok(Tensor::new(ids, dev)?.unsqueeze(0)?)
}

impl Pipeline {
    /// How many times smaller (per side) latents are than images.
    pub fn latent_factor(&self) -> usize {
        self.vae.config.scale_factor()
    }

    /// Sizes must divide into whole latents (and FLUX's 2×2 patches).
    pub fn size_multiple(&self) -> usize {
        match self.family {
            Family::Flux => self.latent_factor() * 2,
            _ => self.latent_factor(),
        }
    }

    fn clip(
        &self,
        which: Option<&ClipText>,
        ids: Option<&Vec<u32>>,
        what: &str,
    ) -> Result<ClipOutput> {
        let (Some(m), Some(ids)) = (which, ids) else {
            return invalid(format!("{what}: no encoder or no token ids"));
        };
        Ok(m.forward(&ids_tensor(ids, &self.device)?)?)
    }

    /// Encodes one prompt's token ids.
    pub fn encode(&self, ids: &TokenIds) -> Result<Conditioning> {
        let t = &self.text;
        Ok(match self.family {
            Family::Sd1 | Family::Sd2 => Conditioning {
                context: self
                    .clip(t.clip.as_ref(), ids.clip.as_ref(), "text encoder")?
                    .last,
                pooled: None,
            },
            Family::Sdxl => {
                let a = self.clip(t.clip.as_ref(), ids.clip.as_ref(), "text encoder")?;
                let b = self.clip(t.clip2.as_ref(), ids.clip2.as_ref(), "text encoder 2")?;
                Conditioning {
                    context: Tensor::cat(&[&a.penultimate, &b.penultimate], 2)?,
                    pooled: b.projected,
                }
            }
            Family::SdxlRefiner => {
                let b = self.clip(t.clip2.as_ref(), ids.clip2.as_ref(), "text encoder 2")?;
                Conditioning {
                    context: b.penultimate,
                    pooled: b.projected,
                }
            }
            Family::Flux => {
                let a = self.clip(t.clip.as_ref(), ids.clip.as_ref(), "text encoder")?;
                let (Some(t5), Some(tids)) = (&t.t5, ids.t5.as_ref()) else {
                    return invalid("FLUX needs the T5 encoder and T5 token ids");
                };
                let mut t5 = t5.lock().unwrap_or_else(|e| e.into_inner());
                let context = t5.forward(&ids_tensor(tids, &self.device)?)?;
                Conditioning {
                    context,
                    pooled: Some(a.pooled),
                }
            }
        })
    }

    /// Whether a negative prompt is used at this guidance scale.
    pub fn uses_guidance(&self, cfg: f64) -> bool {
        self.family != Family::Flux && cfg > 1.0
    }

    /// Samples `p.batch` images for `cond` (and `uncond` with guidance); `on_step` sees each
    /// step's latents and returns false to cancel. Returns `[batch, 3, h, w]` f32 in [0, 1].
    pub fn generate(
        &self,
        cond: &Conditioning,
        uncond: Option<&Conditioning>,
        p: &Params,
        init: Option<&InitImage>,
        noise: &mut dyn Noise,
        on_step: &mut dyn FnMut(Step) -> bool,
    ) -> Result<Tensor> {
        self.generate_resumable(cond, uncond, p, init, noise, on_step, Resume::default())
    }

    /// The latents' shape for `p`.
    fn latent_shape(&self, p: &Params) -> [usize; 4] {
        let f = self.latent_factor();
        [
            p.batch,
            self.vae.config.latent_channels,
            p.height / f,
            p.width / f,
        ]
    }

    /// Whether `state` can continue a run of `p` (with `init`, which a resumed run does not
    /// otherwise need): same sampler, schedule, latent shape and dtype. The error says what
    /// differs.
    pub fn check_resume(
        &self,
        state: &LoopState,
        p: &Params,
        init: Option<&InitImage>,
    ) -> Result<()> {
        let bad = |m: String| Err(Error::Checkpoint(m));
        if state.sampler != p.sampler {
            return bad(format!(
                "saved by {}, the run samples with {}",
                state.sampler.name(),
                p.sampler.name()
            ));
        }
        let mut sampler = Sampler::new(p.sampler, &self.schedule, p.steps)?;
        let n = sampler.timesteps().len();
        let skipped = match init {
            Some(i) => n - sampler.start_at_strength(i.strength),
            None => state.skipped,
        };
        if state.skipped != skipped || state.total + skipped != n || state.done > state.total {
            return bad(format!(
                "step {}/{} (after skipping {}) is not a step of this {n}-step run{}",
                state.done,
                state.total,
                state.skipped,
                if init.is_some() {
                    format!(" skipping {skipped}")
                } else {
                    String::new()
                }
            ));
        }
        let shape = self.latent_shape(p);
        let fits = |what: &str, t: &Tensor, dims: &[usize]| {
            if t.dims() != dims || t.dtype() != self.dtype {
                bad(format!(
                    "{what} are {:?} {:?}, the run needs {dims:?} {:?}",
                    t.dims(),
                    t.dtype(),
                    self.dtype
                ))
            } else {
                Ok(())
            }
        };
        fits("latents", &state.latents, &shape)?;
        if let Some(prev) = &state.history.previous_x0 {
            fits("the sampler's history", prev, &shape)?;
        }
        match (&state.inpaint, init.map(|i| i.mask.is_some())) {
            (Some(i), _) => {
                fits("inpainting latents", &i.x0, &shape)?;
                fits("inpainting noise", &i.noise, &shape)?;
                fits(
                    "the inpainting mask",
                    &i.mask,
                    &[shape[0], 1, shape[2], shape[3]],
                )?;
            }
            (None, Some(true)) => return bad("the run inpaints, the checkpoint does not".into()),
            (None, _) => {}
        }
        Ok(())
    }

    /// [`Pipeline::generate`] with checkpoints: starts from `resume.from` when given (the run's
    /// other inputs must be the same as when it was saved; `init` may then be left out) and
    /// hands `resume.on_state` the loop's state after every step. With the same noise source,
    /// a resumed run gives the same image as an uninterrupted one.
    #[allow(clippy::too_many_arguments)]
    pub fn generate_resumable(
        &self,
        cond: &Conditioning,
        uncond: Option<&Conditioning>,
        p: &Params,
        init: Option<&InitImage>,
        noise: &mut dyn Noise,
        on_step: &mut dyn FnMut(Step) -> bool,
        resume: Resume,
    ) -> Result<Tensor> {
        let Resume { from, mut on_state } = resume;
        let noise = &mut Tracked {
            inner: noise,
            draws: Vec::new(),
        };
        let m = self.size_multiple();
        if p.width == 0
            || p.height == 0
            || !p.width.is_multiple_of(m)
            || !p.height.is_multiple_of(m)
        {
            return invalid(format!(
                "size {}x{} must be a positive multiple of {m}",
                p.width, p.height
            ));
        }
        if p.batch == 0 {
            return invalid("batch must be at least 1");
        }
        let guided = self.uses_guidance(p.cfg);
        if guided && uncond.is_none() {
            return invalid("guidance needs the negative prompt's conditioning");
        }
        let f = self.latent_factor();
        let b = p.batch;
        let shape = self.latent_shape(p);
        let dev = &self.device;
        let mut sampler = Sampler::new(p.sampler, &self.schedule, p.steps)?;

        // Conditioning batch: [negative × b, positive × b] with guidance (diffusers' order).
        let rep = |t: &Tensor| -> Result<Tensor> { Ok(repeat_batch(t, b)?) };
        let mut ctx = rep(&cond.context)?;
        let mut pooled = cond.pooled.as_ref().map(&rep).transpose()?;
        let mut ids = self
            .time_ids(p, false)?
            .map(|t| t.repeat((b, 1)))
            .transpose()?;
        if guided {
            let u = uncond.expect("checked");
            ctx = Tensor::cat(&[&rep(&u.context)?, &ctx], 0)?;
            if let (Some(pp), Some(up)) = (&pooled, &u.pooled) {
                pooled = Some(Tensor::cat(&[&rep(up)?, pp], 0)?);
            }
            if let Some(i) = &ids {
                let neg = self
                    .time_ids(p, true)?
                    .expect("same family")
                    .repeat((b, 1))?;
                ids = Some(Tensor::cat(&[&neg, i], 0)?);
            }
        }
        let ctx = ctx.to_dtype(self.dtype)?;
        let pooled = pooled.map(|t| t.to_dtype(self.dtype)).transpose()?;

        // Initial latents, or where an earlier run stopped.
        let mut inpaint: Option<InpaintState> = None;
        let mut start = 0;
        let mut latents = match (from, init) {
            (Some(state), _) => {
                self.check_resume(&state, p, init)?;
                // The noise stream continues where it stood: the same draws, thrown away.
                for shape in &state.noise_draws {
                    noise.draw(shape, &Device::Cpu)?;
                }
                sampler.skip(state.skipped);
                sampler.restore(state.history);
                inpaint = state.inpaint;
                start = state.done;
                state.latents
            }
            (None, None) => (noise.draw(&shape, dev)? * sampler.init_noise_sigma())?,
            (None, Some(init)) => {
                let (_, _, ih, iw) = init.image.dims4()?;
                if (ih, iw) != (p.height, p.width) {
                    return invalid(format!(
                        "init image is {iw}x{ih}, the output {}x{}",
                        p.width, p.height
                    ));
                }
                if !(init.strength > 0.0 && init.strength <= 1.0) {
                    return invalid(format!("strength {} is not in (0, 1]", init.strength));
                }
                let image = ((init.image.to_dtype(self.vae_dtype)? * 2.0)? - 1.0)?;
                let post = self.vae.encode(&image)?;
                let draw = noise
                    .draw(post.mean.dims(), dev)?
                    .to_dtype(self.vae_dtype)?;
                let x0 = self
                    .vae
                    .scale(&post.sample(&draw)?)?
                    .to_dtype(self.dtype)?
                    .repeat((b, 1, 1, 1))?;
                if sampler.start_at_strength(init.strength) == 0 {
                    return invalid(format!(
                        "strength {} leaves none of the {} steps",
                        init.strength, p.steps
                    ));
                }
                let n = noise.draw(&shape, dev)?.to_dtype(self.dtype)?;
                let lat = if init.mask.is_some() && init.strength >= 1.0 {
                    (&n * sampler.init_noise_sigma())?
                } else {
                    sampler.add_noise(&x0, &n, 0)?
                };
                if let Some(mask) = &init.mask {
                    // diffusers also encodes the masked image (used by 9-channel inpainting
                    // UNets only) and draws its posterior noise: drawn here to stay in step.
                    noise.draw(post.mean.dims(), dev)?;
                    let mask = mask.ge(0.5)?.to_dtype(self.dtype)?;
                    let mask =
                        nearest_resize(&mask, p.height / f, p.width / f)?.repeat((b, 1, 1, 1))?;
                    inpaint = Some(InpaintState { x0, noise: n, mask });
                }
                lat
            }
        };
        latents = latents.to_dtype(self.dtype)?;

        let flux_ids = match self.family {
            Family::Flux => Some(self.flux_ids(&shape, ctx.dim(1)?)?),
            _ => None,
        };
        let total = sampler.timesteps().len();
        let skipped = p.steps - total;
        for i in start..total {
            let t = sampler.timesteps()[i];
            let out = match &self.denoiser {
                Denoiser::UNet(unet) => {
                    let x = if guided {
                        Tensor::cat(&[&latents, &latents], 0)?
                    } else {
                        latents.clone()
                    };
                    let x = sampler.scale_model_input(&x, i)?;
                    let added = match (&pooled, &ids) {
                        (Some(pl), Some(ids)) => Some((pl, ids)),
                        _ => None,
                    };
                    let out = unet.forward(
                        &x,
                        t,
                        &UNetInput {
                            context: &ctx,
                            added,
                        },
                    )?;
                    if guided {
                        let (u, c) = (out.i(..b)?, out.i(b..)?);
                        (&u + ((c - &u)? * p.cfg)?)?
                    } else {
                        out
                    }
                }
                Denoiser::Flux(model) => {
                    let (img_ids, txt_ids) = flux_ids.as_ref().expect("flux ids");
                    let packed = pack(&latents)?;
                    let tv = Tensor::full(t as f32 / 1000.0, b, dev)?.to_dtype(self.dtype)?;
                    let pooled = pooled.as_ref().ok_or_else(|| {
                        Error::Invalid("FLUX needs the pooled CLIP embedding".into())
                    })?;
                    let v = model.forward(&packed, img_ids, &ctx, txt_ids, &tv, pooled, None)?;
                    unpack(&v, shape[1], shape[2], shape[3])?
                }
            };
            let step_noise = if sampler.needs_noise() {
                Some(noise.draw(&shape, dev)?.to_dtype(self.dtype)?)
            } else {
                None
            };
            latents = sampler.step(&out, i, &latents, step_noise.as_ref())?;
            if let Some(InpaintState { x0, noise: n, mask }) = &inpaint {
                let proper = if i + 1 < total {
                    sampler.add_noise(x0, n, i + 1)?
                } else {
                    x0.clone()
                };
                latents = (proper.broadcast_mul(&(1.0 - mask)?)? + latents.broadcast_mul(mask)?)?;
            }
            if let Some(save) = on_state.as_mut() {
                save(&LoopState {
                    sampler: p.sampler,
                    done: i + 1,
                    total,
                    skipped,
                    latents: latents.clone(),
                    history: sampler.state(),
                    inpaint: inpaint.clone(),
                    noise_draws: noise.draws.clone(),
                })?;
            }
            if !on_step(Step {
                done: i + 1,
                total,
                latents: &latents,
            }) {
                return Err(Error::Cancelled);
            }
        }
        let latents = latents.to_dtype(self.vae_dtype)?;
        let image = self.vae.decode(&self.vae.unscale(&latents)?)?;
        Ok(((image.to_dtype(DType::F32)? / 2.0)? + 0.5)?.clamp(0f32, 1f32)?)
    }

    /// SDXL micro-conditioning: (orig h, w, crop top, left, target h, w), or for the refiner
    /// (orig h, w, crop top, left, aesthetic score).
    fn time_ids(&self, p: &Params, negative: bool) -> Result<Option<Tensor>> {
        let (h, w) = (p.height as f32, p.width as f32);
        let v = match self.family {
            Family::Sdxl => vec![h, w, 0.0, 0.0, h, w],
            Family::SdxlRefiner => {
                let a = if negative {
                    p.aesthetic.1
                } else {
                    p.aesthetic.0
                };
                vec![h, w, 0.0, 0.0, a as f32]
            }
            _ => return Ok(None),
        };
        let n = v.len();
        Ok(Some(Tensor::from_vec(v, (1, n), &self.device)?))
    }

    /// FLUX position ids: image patches (0, row, col), text all zeros.
    fn flux_ids(&self, shape: &[usize; 4], txt_len: usize) -> Result<(Tensor, Tensor)> {
        let (b, h, w) = (shape[0], shape[2] / 2, shape[3] / 2);
        let mut v = Vec::with_capacity(h * w * 3);
        for r in 0..h {
            for c in 0..w {
                v.extend([0f32, r as f32, c as f32]);
            }
        }
        let dev = &self.device;
        let img = Tensor::from_vec(v, (1, h * w, 3), dev)?.repeat((b, 1, 1))?;
        let txt = Tensor::zeros((b, txt_len, 3), DType::F32, dev)?;
        Ok((img.to_dtype(self.dtype)?, txt.to_dtype(self.dtype)?))
    }
}

/// A noise source that remembers the shapes it was asked for (where the stream stands, for
/// checkpoints).
struct Tracked<'n> {
    inner: &'n mut dyn Noise,
    draws: Vec<Vec<usize>>,
}

impl Noise for Tracked<'_> {
    fn draw(&mut self, shape: &[usize], device: &Device) -> candle_core::Result<Tensor> {
        self.draws.push(shape.to_vec());
        self.inner.draw(shape, device)
    }
}

/// `[b, c, h, w]` → FLUX's `[b, h/2 · w/2, c · 4]` 2×2 patches.
pub fn pack(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h / 2, 2, w / 2, 2))?
        .permute((0, 2, 4, 1, 3, 5))?
        .reshape((b, (h / 2) * (w / 2), c * 4))
}

/// Inverse of [`pack`].
pub fn unpack(x: &Tensor, c: usize, h: usize, w: usize) -> candle_core::Result<Tensor> {
    let b = x.dim(0)?;
    x.reshape((b, h / 2, w / 2, c, 2, 2))?
        .permute((0, 3, 1, 4, 2, 5))?
        .reshape((b, c, h, w))
}

/// torch's `interpolate(mode="nearest")`: source index ⌊dst · in / out⌋.
fn nearest_resize(x: &Tensor, h: usize, w: usize) -> candle_core::Result<Tensor> {
    let (_, _, ih, iw) = x.dims4()?;
    let rows: Vec<u32> = (0..h).map(|i| (i * ih / h) as u32).collect();
    let cols: Vec<u32> = (0..w).map(|j| (j * iw / w) as u32).collect();
    let dev = x.device();
    x.index_select(&Tensor::new(rows.as_slice(), dev)?, 2)?
        .index_select(&Tensor::new(cols.as_slice(), dev)?, 3)
}

/// Repeats a batch-1 tensor `b` times along the batch.
fn repeat_batch(t: &Tensor, b: usize) -> candle_core::Result<Tensor> {
    let mut reps = vec![1; t.rank()];
    reps[0] = b;
    t.repeat(reps.as_slice())
}
