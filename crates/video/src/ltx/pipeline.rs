//! The LTX sampling runs, step for step as diffusers 0.42.1 does them (so a run with the same
//! noise matches it): text-to-video (`LTXPipeline`), image-to-video (`LTXImageToVideoPipeline`:
//! the picture is latent frame 0, held fixed by a per-token timestep of 0) and conditioning on
//! pictures or clips at any frame index with a strength (`LTXConditionPipeline`: frame 0 is
//! blended into the first latent frames; later ones become extra tokens with their own
//! coordinates and timesteps, dropped before decoding). First + last picture = a generated
//! transition.
//!
//! Noise is passed in, never drawn here behind the caller's back, in the order diffusers draws
//! it (the parity tests replay recorded draws): the VAE posterior of each conditioning input
//! where the pipeline samples it, the initial latents, per-condition token noise, the per-step
//! conditioning noise, and the decode noise of a timestep-conditioned VAE.

use candle_core::{DType, Device, IndexOp, Tensor};
use reelsmith_kit::noise::Noise;

use super::schedule::{Schedule, ScheduleConfig, Steps};
use super::transformer::{LtxTransformer, Positions};
use super::vae::LtxVae;
use crate::frames::FrameRule;
use crate::VideoError;

type Result<T> = std::result::Result<T, VideoError>;

/// Encoded text: T5 states `[1, L, C]` and the attention mask `[1, L]` (1 = token, 0 = padding).
#[derive(Clone, Debug)]
pub struct Prompt {
    pub embeds: Tensor,
    pub mask: Tensor,
}

/// A picture (`[3, H, W]`) or a clip (`[3, F, H, W]`, F = 8k+1) in −1..1 at the run's size, to
/// hold at output frame `frame` with `strength` (1 = exactly; less lets the model drift).
#[derive(Clone, Debug)]
pub struct Condition {
    pub media: Tensor,
    pub frame: usize,
    pub strength: f64,
}

/// What drives the run besides the prompt.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Text only.
    Text,
    /// `LTXImageToVideoPipeline`: a picture `[3, H, W]` as the first frame.
    Image(Tensor),
    /// `LTXConditionPipeline`: pictures or clips at frame indices.
    Conditions(Vec<Condition>),
}

/// One sampling run.
#[derive(Clone, Debug)]
pub struct Request {
    pub prompt: Prompt,
    /// The unconditional prompt for classifier-free guidance (used when `guidance > 1`).
    pub negative: Option<Prompt>,
    pub guidance: f64,
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    pub frame_rate: f64,
    pub steps: Steps,
    pub mode: Mode,
    /// Condition runs: noise re-added to fully held tokens each step, × (t/1000)² (diffusers'
    /// `image_cond_noise_scale`, 0.15 by default).
    pub cond_noise_scale: f64,
}

/// Called after every step with (steps done, total, the packed latents `[1, S, C]`, extra
/// conditioning tokens first); returning false cancels.
pub type StepHook<'a> = &'a mut dyn FnMut(usize, usize, &Tensor) -> bool;

/// Shape facts a run needs from the VAE and transformer configs.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    pub temporal: usize,
    pub spatial: usize,
    pub channels: usize,
}

impl Geometry {
    pub fn rule(&self) -> FrameRule {
        FrameRule {
            temporal: self.temporal,
            spatial: self.spatial,
            min_frames: 1,
        }
    }
}

/// The latent grid of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

impl Grid {
    pub fn tokens(&self) -> usize {
        self.frames * self.height * self.width
    }
}

/// `[B, C, F, H, W]` → `[B, F·H·W, C]` (LTX's patch size is 1 in space and time).
pub fn pack(x: &Tensor) -> Result<Tensor> {
    let (b, c, f, h, w) = x.dims5()?;
    Ok(x.permute((0, 2, 3, 4, 1))?.reshape((b, f * h * w, c))?)
}

/// Inverse of [`pack`].
pub fn unpack(x: &Tensor, g: Grid) -> Result<Tensor> {
    let (b, _, c) = x.dims3()?;
    Ok(x.reshape((b, g.frames, g.height, g.width, c))?
        .permute((0, 4, 1, 2, 3))?
        .contiguous()?)
}

/// Everything a sampling run needs: the transformer, the VAE (to encode conditioning pictures)
/// and the scheduler config.
pub struct LtxSampler<'a> {
    pub transformer: &'a LtxTransformer,
    pub vae: &'a LtxVae,
    pub schedule: &'a ScheduleConfig,
    pub geometry: Geometry,
}

impl LtxSampler<'_> {
    /// Checks a request's shape (frames k·temporal+1, size a multiple of the spatial
    /// compression) before anything heavy runs.
    pub fn check(&self, req: &Request) -> Result<Grid> {
        let rule = self.geometry.rule();
        rule.check_frames(req.frames)?;
        rule.check_size(req.width, req.height)?;
        if req.steps.is_empty() {
            return Err(VideoError::Invalid(
                "at least one sampling step is needed".into(),
            ));
        }
        if req.frame_rate.is_nan() || req.frame_rate <= 0.0 {
            return Err(VideoError::Invalid(format!(
                "frame rate {} must be positive",
                req.frame_rate
            )));
        }
        if let Mode::Conditions(conds) = &req.mode {
            for c in conds {
                if c.frame >= req.frames {
                    return Err(VideoError::Invalid(format!(
                        "a condition at frame {} is past the clip's last frame {}",
                        c.frame,
                        req.frames - 1
                    )));
                }
                if c.frame % self.geometry.temporal != 0 {
                    return Err(VideoError::Invalid(format!(
                        "a condition at frame {}: conditions sit on multiples of {} (the nearest are {} and {})",
                        c.frame,
                        self.geometry.temporal,
                        c.frame / self.geometry.temporal * self.geometry.temporal,
                        (c.frame / self.geometry.temporal + 1) * self.geometry.temporal
                    )));
                }
                if !(0.0..=1.0).contains(&c.strength) {
                    return Err(VideoError::Invalid(format!(
                        "condition strength {} must lie in 0..=1",
                        c.strength
                    )));
                }
            }
        }
        Ok(Grid {
            frames: rule.latent_frames(req.frames),
            height: req.height / self.geometry.spatial,
            width: req.width / self.geometry.spatial,
        })
    }

    /// Samples normalised latents `[1, C, F', H', W']` for `req`.
    pub fn sample(
        &self,
        req: &Request,
        noise: &mut dyn Noise,
        on_step: StepHook<'_>,
    ) -> Result<Tensor> {
        let grid = self.check(req)?;
        let schedule =
            Schedule::new(self.schedule, &req.steps, grid.tokens()).map_err(VideoError::Invalid)?;
        let latents = match &req.mode {
            Mode::Text => self.text(req, grid, &schedule, noise, on_step)?,
            Mode::Image(img) => self.image(req, img, grid, &schedule, noise, on_step)?,
            Mode::Conditions(c) => self.conditions(req, c, grid, &schedule, noise, on_step)?,
        };
        finite(
            &latents,
            &format!(
                "the sampled latents (transformer in {:?})",
                self.transformer.dtype()
            ),
        )?;
        Ok(latents)
    }

    fn device(&self) -> &Device {
        self.vae.device()
    }

    /// The text states batched as the transformer sees them ([negative; positive] under CFG).
    fn context(&self, req: &Request) -> Result<(Tensor, Tensor, bool)> {
        let dtype = self.transformer.dtype();
        match (&req.negative, req.guidance > 1.0) {
            (Some(neg), true) => {
                if neg.embeds.dims() != req.prompt.embeds.dims() {
                    return Err(VideoError::Invalid(format!(
                        "the negative prompt's states {:?} differ in shape from the prompt's {:?}",
                        neg.embeds.dims(),
                        req.prompt.embeds.dims()
                    )));
                }
                let e = Tensor::cat(&[&neg.embeds, &req.prompt.embeds], 0)?.to_dtype(dtype)?;
                let m = Tensor::cat(&[&neg.mask, &req.prompt.mask], 0)?;
                Ok((e, m, true))
            }
            (None, true) => Err(VideoError::Invalid(
                "guidance above 1 needs a negative prompt".into(),
            )),
            _ => Ok((
                req.prompt.embeds.to_dtype(dtype)?,
                req.prompt.mask.clone(),
                false,
            )),
        }
    }

    /// One transformer call (both CFG halves in one batch) reduced to the guided velocity in f32.
    fn velocity(
        &self,
        x: &Tensor,
        timestep: &Tensor,
        ctx: &(Tensor, Tensor, bool),
        positions: &Positions,
        guidance: f64,
    ) -> Result<Tensor> {
        let (embeds, mask, cfg) = ctx;
        let dtype = self.transformer.dtype();
        let input = if *cfg {
            Tensor::cat(&[x, x], 0)?
        } else {
            x.clone()
        };
        let out = self
            .transformer
            .forward(
                &input.to_dtype(dtype)?,
                embeds,
                timestep,
                Some(mask),
                positions,
            )?
            .to_dtype(DType::F32)?;
        if !*cfg {
            return Ok(out);
        }
        let (uncond, cond) = (out.i(0..1)?, out.i(1..2)?);
        Ok((&uncond + ((cond - &uncond)? * guidance)?)?)
    }

    fn batch(&self, cfg: bool) -> usize {
        if cfg {
            2
        } else {
            1
        }
    }

    fn grid_positions(&self, req: &Request, grid: Grid) -> Positions {
        let s = self.geometry.spatial as f64;
        Positions::Grid {
            frames: grid.frames,
            height: grid.height,
            width: grid.width,
            rope_interpolation_scale: (self.geometry.temporal as f64 / req.frame_rate, s, s),
        }
    }

    fn text(
        &self,
        req: &Request,
        grid: Grid,
        schedule: &Schedule,
        noise: &mut dyn Noise,
        on_step: StepHook<'_>,
    ) -> Result<Tensor> {
        let ctx = self.context(req)?;
        let shape = [
            1,
            self.geometry.channels,
            grid.frames,
            grid.height,
            grid.width,
        ];
        let mut x = pack(&noise.draw(&shape, self.device())?)?;
        let positions = self.grid_positions(req, grid);
        let b = self.batch(ctx.2);
        for (i, &t) in schedule.timesteps.iter().enumerate() {
            let ts = Tensor::full(t as f32, b, self.device())?;
            let v = self.velocity(&x, &ts, &ctx, &positions, req.guidance)?;
            let dt = schedule.sigmas[i + 1] - schedule.sigmas[i];
            x = (&x + (v * dt)?)?;
            if !on_step(i + 1, schedule.len(), &x) {
                return Err(VideoError::Cancelled);
            }
        }
        unpack(&x, grid)
    }

    /// Encodes a clip `[1, 3, F, H, W]` and samples its posterior with one draw, normalised.
    fn encode_sampled(&self, media: &Tensor, noise: &mut dyn Noise) -> Result<Tensor> {
        let (mean, logvar) = self.vae.encode_moments(media)?;
        let std = (logvar.clamp(-30f32, 20f32)? * 0.5)?.exp()?;
        let eps = noise.draw(mean.dims(), self.device())?;
        let z = (&mean + (std * eps)?)?;
        Ok(self.vae.normalize(&z, 1.0)?)
    }

    fn image(
        &self,
        req: &Request,
        image: &Tensor,
        grid: Grid,
        schedule: &Schedule,
        noise: &mut dyn Noise,
        on_step: StepHook<'_>,
    ) -> Result<Tensor> {
        let ctx = self.context(req)?;
        let media = self.media(image, req)?;
        let first = self.encode_sampled(&media, noise)?;
        let c = self.geometry.channels;
        let shape = [1, c, grid.frames, grid.height, grid.width];
        let n = noise.draw(&shape, self.device())?;
        // Frame 0 is the picture, the rest noise.
        let mut x = if grid.frames > 1 {
            Tensor::cat(&[&first, &n.i((.., .., 1..))?], 2)?
        } else {
            first
        };
        let mask = frame_mask(&[1.0], grid, self.device())?; // [1, S]
        let positions = self.grid_positions(req, grid);
        let b = self.batch(ctx.2);
        let keep = (mask.ones_like()? - &mask)?;
        for (i, &t) in schedule.timesteps.iter().enumerate() {
            let ts = (keep.repeat((b, 1))? * t)?;
            let packed = pack(&x)?;
            let v = self.velocity(&packed, &ts, &ctx, &positions, req.guidance)?;
            let v = unpack(&v, grid)?;
            let dt = schedule.sigmas[i + 1] - schedule.sigmas[i];
            if grid.frames > 1 {
                let moved = (x.i((.., .., 1..))? + (v.i((.., .., 1..))? * dt)?)?;
                x = Tensor::cat(&[&x.i((.., .., ..1))?, &moved], 2)?;
            }
            if !on_step(i + 1, schedule.len(), &pack(&x)?) {
                return Err(VideoError::Cancelled);
            }
        }
        Ok(x)
    }

    /// A picture `[3, H, W]` or clip `[3, F, H, W]` as a VAE batch `[1, 3, F, H, W]` at the run's
    /// size.
    fn media(&self, media: &Tensor, req: &Request) -> Result<Tensor> {
        let m = match media.rank() {
            3 => media.unsqueeze(1)?,
            4 => media.clone(),
            r => {
                return Err(VideoError::Invalid(format!(
                    "a conditioning input must be [3, H, W] or [3, F, H, W], not rank {r}"
                )))
            }
        };
        let (ch, f, h, w) = m.dims4()?;
        if ch != 3 || h != req.height || w != req.width {
            return Err(VideoError::Invalid(format!(
                "a conditioning input is {ch}×{h}×{w}; the run needs 3×{}×{}",
                req.height, req.width
            )));
        }
        if (f - 1) % self.geometry.temporal != 0 {
            return Err(VideoError::Invalid(format!(
                "a conditioning clip has {f} frames; it must have k·{}+1",
                self.geometry.temporal
            )));
        }
        Ok(m.unsqueeze(0)?
            .to_device(self.device())?
            .to_dtype(DType::F32)?)
    }

    fn conditions(
        &self,
        req: &Request,
        conds: &[Condition],
        grid: Grid,
        schedule: &Schedule,
        noise: &mut dyn Noise,
        on_step: StepHook<'_>,
    ) -> Result<Tensor> {
        const PREFIX: usize = 2;
        let ctx = self.context(req)?;
        let dev = self.device().clone();
        let (tc, sc) = (self.geometry.temporal, self.geometry.spatial);
        let c = self.geometry.channels;
        let shape = [1, c, grid.frames, grid.height, grid.width];
        let mut x = noise.draw(&shape, &dev)?;
        let mut frame_strength = vec![0.0f64; grid.frames];
        // Extra tokens: (packed latents, coordinates [1, 3, n], strength).
        let mut extras: Vec<(Tensor, Tensor, f64)> = Vec::new();
        for cond in conds {
            let media = self.media(&cond.media, req)?;
            let data_frames = media.dim(2)?;
            let mut latent = self.encode_sampled(&media, noise)?;
            let n = latent.dim(2)?;
            let s = cond.strength;
            if cond.frame == 0 {
                let n = n.min(grid.frames);
                let head = x.i((.., .., ..n))?;
                let blended = lerp(&head, &latent.i((.., .., ..n))?, s)?;
                x = splice(&x, &blended, 0)?;
                for v in frame_strength.iter_mut().take(n) {
                    *v = s;
                }
                continue;
            }
            if data_frames > 1 {
                if n < PREFIX {
                    return Err(VideoError::Invalid(format!(
                        "a conditioning clip at frame {} must have at least {PREFIX} latent frames",
                        cond.frame
                    )));
                }
                if n > PREFIX {
                    let start = cond.frame / tc + PREFIX;
                    let end = (start + n - PREFIX).min(grid.frames);
                    if start < end {
                        let blended = lerp(
                            &x.i((.., .., start..end))?,
                            &latent.i((.., .., PREFIX..PREFIX + end - start))?,
                            s,
                        )?;
                        x = splice(&x, &blended, start)?;
                        for v in &mut frame_strength[start..end] {
                            *v = s;
                        }
                    }
                    latent = latent.i((.., .., ..PREFIX))?;
                }
            }
            let eps = noise.draw(latent.dims(), &dev)?;
            let latent = lerp(&eps, &latent, s)?;
            let lf = latent.dim(2)?;
            let g = Grid {
                frames: lf,
                height: grid.height,
                width: grid.width,
            };
            let co = pixel_coords(g, tc, sc, cond.frame, &dev)?;
            extras.push((pack(&latent)?, co, s));
        }
        // The main grid's tokens and their strengths (frame by frame).
        let mut tokens = vec![pack(&x)?];
        let mut coord_parts = vec![pixel_coords(grid, tc, sc, 0, &dev)?];
        let mut mask_parts = vec![frame_mask(&frame_strength, grid, &dev)?];
        let extra_tokens: usize = extras.iter().map(|(t, _, _)| t.dim(1).unwrap_or(0)).sum();
        for (t, co, s) in extras.into_iter().rev() {
            let n = t.dim(1)?;
            tokens.insert(0, t);
            coord_parts.insert(0, co);
            mask_parts.insert(0, Tensor::full(s as f32, (1, n), &dev)?);
        }
        let mut x = Tensor::cat(&tokens, 1)?;
        let coords = (Tensor::cat(&coord_parts, 2)?.broadcast_mul(&Tensor::new(
            &[[1.0 / req.frame_rate as f32], [1.0], [1.0]],
            &dev,
        )?)?)
        .contiguous()?;
        let mask = Tensor::cat(&mask_parts, 1)?; // [1, S]
        let init = x.clone();
        let b = self.batch(ctx.2);
        let positions = Positions::Coords(coords.repeat((b, 1, 1))?);
        let s_total = x.dim(1)?;
        let held: Vec<f32> = mask.flatten_all()?.to_vec1()?;
        let hard = Tensor::from_vec(
            held.iter()
                .map(|&m| if m > 1.0 - 1e-6 { 1u8 } else { 0 })
                .collect::<Vec<_>>(),
            (1, s_total, 1),
            &dev,
        )?;
        let free = ((mask.ones_like()? - &mask)? * 1000.0)?; // [1, S]
        for (i, &t) in schedule.timesteps.iter().enumerate() {
            if req.cond_noise_scale > 0.0 {
                let eps = noise.draw(&[1, s_total, c], &dev)?;
                let tt = t / 1000.0;
                let noised = (&init + (eps * (req.cond_noise_scale * tt * tt))?)?;
                x = hard.broadcast_as(x.shape())?.where_cond(&noised, &x)?;
            }
            // Per token: min(t, (1 − mask)·1000), so fully held tokens sit at 0.
            let ts = free.clamp(f32::MIN, t as f32)?;
            let v = self.velocity(&x, &ts.repeat((b, 1))?, &ctx, &positions, req.guidance)?;
            // The per-token Euler step: each token moves from its own σ to the next σ below it.
            let sig: Vec<f32> = (&ts / 1000.0)?.flatten_all()?.to_vec1()?;
            let dt: Vec<f32> = sig
                .iter()
                .map(|&s| (schedule.next_below(s as f64) - s as f64) as f32)
                .collect();
            let dt = Tensor::from_vec(dt, (1, s_total, 1), &dev)?;
            let denoised = (&x + v.broadcast_mul(&dt)?)?;
            // Only tokens whose own timestep is still above t move.
            let tt = t as f32 / 1000.0 - 1e-6;
            let moving: Vec<u8> = held.iter().map(|&m| u8::from(tt < 1.0 - m)).collect();
            let moving = Tensor::from_vec(moving, (1, s_total, 1), &dev)?;
            x = moving.broadcast_as(x.shape())?.where_cond(&denoised, &x)?;
            if !on_step(i + 1, schedule.len(), &x) {
                return Err(VideoError::Cancelled);
            }
        }
        unpack(&x.i((.., extra_tokens..))?, grid)
    }
}

/// `a + (b − a)·s` (torch.lerp).
fn lerp(a: &Tensor, b: &Tensor, s: f64) -> Result<Tensor> {
    Ok((a + ((b - a)? * s)?)?)
}

/// `x` with frames `at..at + part.frames` replaced by `part` (dim 2).
fn splice(x: &Tensor, part: &Tensor, at: usize) -> Result<Tensor> {
    let f = x.dim(2)?;
    let n = part.dim(2)?;
    let mut pieces = Vec::new();
    if at > 0 {
        pieces.push(x.i((.., .., ..at))?);
    }
    pieces.push(part.clone());
    if at + n < f {
        pieces.push(x.i((.., .., at + n..))?);
    }
    Ok(Tensor::cat(&pieces, 2)?)
}

/// Per-token strengths `[1, F·H·W]` from per-latent-frame ones (frames past the list are 0).
fn frame_mask(per_frame: &[f64], grid: Grid, dev: &Device) -> Result<Tensor> {
    let hw = grid.height * grid.width;
    let v: Vec<f32> = (0..grid.frames)
        .flat_map(|f| std::iter::repeat_n(per_frame.get(f).copied().unwrap_or(0.0) as f32, hw))
        .collect();
    Ok(Tensor::from_vec(v, (1, grid.tokens()), dev)?)
}

/// The condition pipeline's pixel coordinates `[1, 3, F·H·W]` of a latent grid placed at output
/// frame `frame`: time (i·tc + 1 − tc, clamped at 0) + frame, space × sc.
fn pixel_coords(g: Grid, tc: usize, sc: usize, frame: usize, dev: &Device) -> Result<Tensor> {
    let n = g.tokens();
    let mut v = vec![0f32; 3 * n];
    let mut k = 0;
    for f in 0..g.frames {
        let t = ((f * tc + 1) as i64 - tc as i64).max(0) as usize + frame;
        for h in 0..g.height {
            for w in 0..g.width {
                v[k] = t as f32;
                v[n + k] = (h * sc) as f32;
                v[2 * n + k] = (w * sc) as f32;
                k += 1;
            }
        }
    }
    Ok(Tensor::from_vec(v, (1, 3, n), dev)?)
}

/// A NaN or infinity anywhere fails the run (fp16 turns LTX black through NaNs).
pub fn finite(t: &Tensor, what: &str) -> Result<()> {
    let bad = t
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .filter(|v| !v.is_finite())
        .count();
    if bad > 0 {
        return Err(VideoError::NonFinite {
            what: what.to_string(),
            count: bad,
        });
    }
    Ok(())
}

/// Decoded frames `[1, 3, F, H, W]` in −1..1 → RGB bytes per frame.
pub fn to_rgb(frames: &Tensor) -> Result<Vec<Vec<u8>>> {
    let x = ((frames.to_dtype(DType::F32)? / 2.0)? + 0.5)?.clamp(0f32, 1f32)?;
    let x = (x * 255.0)?.round()?.squeeze(0)?; // [3, F, H, W]
    let x = x.permute((1, 2, 3, 0))?.contiguous()?; // [F, H, W, 3]
    let n = x.dim(0)?;
    let mut out = Vec::with_capacity(n);
    for f in 0..n {
        let v: Vec<f32> = x.i(f)?.flatten_all()?.to_vec1()?;
        out.push(v.into_iter().map(|p| p as u8).collect());
    }
    Ok(out)
}

/// Mean brightness 0..1 of decoded frames (−1..1); an all-black decode is a failure.
pub fn brightness(frames: &Tensor) -> Result<f64> {
    let m = ((frames.to_dtype(DType::F32)? / 2.0)? + 0.5)?
        .clamp(0f32, 1f32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    Ok(m as f64)
}
