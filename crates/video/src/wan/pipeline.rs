//! The Wan2.1 sampling runs, step for step as diffusers 0.42.1's `WanPipeline` (text-to-video)
//! and `WanImageToVideoPipeline` (image-to-video, and first-last-frame with `last_image`) do
//! them, with the networks passed in as closures so this file knows none of their types:
//!
//! - the transformer is `FnMut(input, timestep, cond) -> velocity`, called with `cond = true`
//!   first and, when guidance is above 1, again with `cond = false`, combined as
//!   `uncond + g·(cond − uncond)`;
//! - the VAE encoder is `FnOnce(video [1, 3, F, H, W] in −1..1) -> mean latents [1, 16, L, h, w]`
//!   (diffusers takes the posterior's mode, so no noise is drawn there).
//!
//! Shapes: frames are 4k+1 and width/height multiples of 16 (refused otherwise with the nearest
//! valid values: diffusers rounds a wrong frame count down with only a warning); latents are
//! `[1, 16, (F−1)/4+1, H/8, W/8]`. The only noise of a run is the initial latents, one draw
//! (`randn_tensor` in diffusers, the seeded stream here, recorded draws in the parity tests).
//!
//! Image-to-video conditioning (`prepare_latents`): the video `[image, 0, …, 0]` (or
//! `[first, 0, …, 0, last]`) is encoded, normalised per channel as `(z − mean)·(1/std)`, and put
//! behind a 4-channel mask: the pixel-frame mask (1 on the given frames) with its first frame
//! repeated 4 times, folded into groups of 4 per latent frame. The transformer's 36 input
//! channels are `[noisy latents (16), mask (4), condition latents (16)]`; the sampler steps only
//! the first 16.

use candle_core::{DType, Device, Tensor};
use reelsmith_kit::noise::{Noise, Seeded};

use super::schedule::{SamplerKind, WanSampler};
use crate::frames::FrameRule;
use crate::VideoError;

type Result<T> = std::result::Result<T, VideoError>;

/// Latent channels of the Wan2.1 VAE (`z_dim`).
pub const LATENT_CHANNELS: usize = 16;
/// The VAE's spatial compression.
pub const VAE_SPATIAL: usize = 8;
/// The VAE's temporal compression (pixel frames per latent frame after the first).
pub const VAE_TEMPORAL: usize = 4;
/// Channels of the image-to-video condition: the 4-channel mask and the image latents.
pub const CONDITION_CHANNELS: usize = VAE_TEMPORAL + LATENT_CHANNELS;

/// One Wan2.1 sampling run's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct WanRequest {
    /// Pixel frames, 4k+1 (81 at 16 fps by default).
    pub frames: usize,
    pub width: usize,
    pub height: usize,
    pub steps: usize,
    /// Classifier-free guidance; at or below 1 the unconditional call is skipped.
    pub guidance: f64,
    /// The flow shift of the schedule.
    pub shift: f64,
    pub seed: u64,
    pub sampler: SamplerKind,
}

/// The latent grid of a run: `[1, 16, frames, height, width]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatentShape {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

impl LatentShape {
    pub fn dims(&self) -> [usize; 5] {
        [1, LATENT_CHANNELS, self.frames, self.height, self.width]
    }
}

impl WanRequest {
    /// diffusers' `WanPipeline` defaults at a size: 81 frames, 50 steps, guidance 5, UniPC with
    /// the shift of [`default_shift`](Self::default_shift). (For the 1.3B the Wan authors suggest
    /// guidance 6 and a shift of 8–12.)
    pub fn text_to_video(width: usize, height: usize) -> Self {
        Self {
            frames: 81,
            width,
            height,
            steps: 50,
            guidance: 5.0,
            shift: Self::default_shift(width, height),
            seed: 0,
            sampler: SamplerKind::UniPc,
        }
    }

    /// `WanImageToVideoPipeline`'s defaults: as text-to-video but 40 steps.
    pub fn image_to_video(width: usize, height: usize) -> Self {
        Self {
            steps: 40,
            ..Self::text_to_video(width, height)
        }
    }

    /// The flow shift the Wan2.1 configs use: 3.0 up to 480p (832×480 pixels), 5.0 above.
    pub fn default_shift(width: usize, height: usize) -> f64 {
        if width * height <= 832 * 480 {
            3.0
        } else {
            5.0
        }
    }

    /// Checks the request before anything heavy runs and returns its latent grid: frames 4k+1
    /// and sizes multiples of 16 (errors name the nearest valid values), at least one step, a
    /// finite guidance and a positive shift.
    pub fn validate(&self) -> Result<LatentShape> {
        let rule = FrameRule::WAN;
        rule.check_frames(self.frames)?;
        rule.check_size(self.width, self.height)?;
        if self.steps == 0 {
            return Err(VideoError::Invalid(
                "at least one sampling step is needed".into(),
            ));
        }
        if !self.guidance.is_finite() || self.guidance < 0.0 {
            return Err(VideoError::Invalid(format!(
                "guidance {} must be a number ≥ 0 (1 or less switches it off)",
                self.guidance
            )));
        }
        if !(self.shift.is_finite() && self.shift > 0.0) {
            return Err(VideoError::Invalid(format!(
                "the flow shift must be a positive number, not {}",
                self.shift
            )));
        }
        Ok(LatentShape {
            frames: rule.latent_frames(self.frames),
            height: self.height / VAE_SPATIAL,
            width: self.width / VAE_SPATIAL,
        })
    }

    /// The run's sampler (a fresh one per run: UniPC keeps history).
    pub fn build_sampler(&self) -> Result<Box<dyn WanSampler>> {
        self.sampler.build(self.steps, self.shift)
    }

    /// The run's noise stream from its seed.
    pub fn noise(&self) -> Seeded {
        Seeded::new(self.seed)
    }
}

/// Called after every step with (steps done, total, the latents `[1, 16, L, h, w]`); returning
/// false cancels the run.
pub type StepHook<'a> = &'a mut dyn FnMut(usize, usize, &Tensor) -> bool;

/// The initial latents: one standard normal draw of the latent grid's shape.
pub fn initial_latents(
    shape: LatentShape,
    noise: &mut dyn Noise,
    device: &Device,
) -> Result<Tensor> {
    Ok(noise.draw(&shape.dims(), device)?)
}

/// Classifier-free guidance: `uncond + g·(cond − uncond)`.
pub fn guide(cond: &Tensor, uncond: &Tensor, guidance: f64) -> Result<Tensor> {
    Ok((uncond + ((cond - uncond)? * guidance)?)?)
}

/// The denoising loop: at each of the sampler's timesteps the model gets the latents (with the
/// condition channels behind them when given), cond first and, when `guidance > 1`, uncond;
/// the guided velocity (in f32) steps the sampler; then the hook sees the new latents.
pub fn denoise<M>(
    sampler: &mut dyn WanSampler,
    latents: Tensor,
    condition: Option<&Tensor>,
    guidance: f64,
    model: M,
    on_step: StepHook<'_>,
) -> Result<Tensor>
where
    M: FnMut(&Tensor, f64, bool) -> Result<Tensor>,
{
    denoise_anchored(sampler, latents, condition, guidance, &[], model, on_step)
}

/// A latent frame held to known latents (normalised, `[1, 16, 1, h, w]`): the studio's way to
/// make a clip start (or end) exactly on a picture with any Wan model. Before the first step
/// and after every step the frame is set to the anchor noised to the current σ with the run's
/// own initial noise, `(1 − σ)·anchor + σ·noise` (the re-noising of latent inpainting), so the
/// last step (σ = 0) leaves it exactly the anchor while the frames around it are denoised
/// towards what agrees with it.
#[derive(Clone, Debug)]
pub struct Anchor {
    /// The latent frame (0 = the first pixel frame; `L − 1` = the last four).
    pub frame: usize,
    pub latents: Tensor,
}

fn set_frame(latents: &Tensor, k: usize, value: &Tensor) -> Result<Tensor> {
    let n = latents.dim(2)?;
    let mut parts = Vec::with_capacity(3);
    if k > 0 {
        parts.push(latents.narrow(2, 0, k)?);
    }
    parts.push(value.to_dtype(latents.dtype())?);
    if k + 1 < n {
        parts.push(latents.narrow(2, k + 1, n - k - 1)?);
    }
    Ok(Tensor::cat(&parts, 2)?)
}

/// Sets every anchored frame of `latents` to its anchor at noise level `sigma`.
fn apply_anchors(
    latents: &Tensor,
    anchors: &[(usize, Tensor, Tensor)],
    sigma: f64,
) -> Result<Tensor> {
    let mut x = latents.clone();
    for (k, clean, noise) in anchors {
        let v = ((clean * (1.0 - sigma))? + (noise * sigma)?)?;
        x = set_frame(&x, *k, &v)?;
    }
    Ok(x)
}

/// [`denoise`] with latent frames held to [`Anchor`]s (checked against the latents' grid).
pub fn denoise_anchored<M>(
    sampler: &mut dyn WanSampler,
    mut latents: Tensor,
    condition: Option<&Tensor>,
    guidance: f64,
    anchors: &[Anchor],
    mut model: M,
    on_step: StepHook<'_>,
) -> Result<Tensor>
where
    M: FnMut(&Tensor, f64, bool) -> Result<Tensor>,
{
    let (_, c, l, h, w) = latents.dims5()?;
    let held = anchors
        .iter()
        .map(|a| {
            if a.frame >= l || a.latents.dims() != [1, c, 1, h, w] {
                return Err(VideoError::Invalid(format!(
                    "an anchor of {:?} at latent frame {} does not fit latents [1, {c}, {l}, {h}, {w}]",
                    a.latents.dims(),
                    a.frame
                )));
            }
            let clean = a.latents.to_device(latents.device())?.to_dtype(DType::F32)?;
            let noise = latents.narrow(2, a.frame, 1)?.to_dtype(DType::F32)?;
            Ok((a.frame, clean, noise))
        })
        .collect::<Result<Vec<_>>>()?;
    sampler.reset();
    let n = sampler.len();
    if !held.is_empty() {
        latents = apply_anchors(&latents, &held, sampler.sigmas()[0])?;
    }
    for i in 0..n {
        let t = sampler.timesteps()[i];
        let input = match condition {
            Some(c) => Tensor::cat(&[&latents, c], 1)?,
            None => latents.clone(),
        };
        let cond = model(&input, t, true)?.to_dtype(DType::F32)?;
        let v = if guidance > 1.0 {
            let uncond = model(&input, t, false)?.to_dtype(DType::F32)?;
            guide(&cond, &uncond, guidance)?
        } else {
            cond
        };
        latents = sampler.step(&v, i, &latents)?;
        if !held.is_empty() {
            latents = apply_anchors(&latents, &held, sampler.sigmas()[i + 1])?;
        }
        if !on_step(i + 1, n, &latents) {
            return Err(VideoError::Cancelled);
        }
    }
    Ok(latents)
}

/// Text-to-video (`WanPipeline`): validated request, initial noise, the loop. Returns the
/// latents for the decode (denormalise with [`LatentStats::denormalize`] first).
pub fn text_to_video<M>(
    req: &WanRequest,
    noise: &mut dyn Noise,
    device: &Device,
    model: M,
    on_step: StepHook<'_>,
) -> Result<Tensor>
where
    M: FnMut(&Tensor, f64, bool) -> Result<Tensor>,
{
    let shape = req.validate()?;
    let mut sampler = req.build_sampler()?;
    let latents = initial_latents(shape, noise, device)?;
    denoise(
        sampler.as_mut(),
        latents,
        None,
        req.guidance,
        model,
        on_step,
    )
}

/// Image-to-video (`WanImageToVideoPipeline`): `first` (and `last` for first-last-frame) are
/// pictures `[3, H, W]` (or `[1, 3, H, W]`) in −1..1 at the run's size; `encode` is the VAE
/// encoder's mean. The initial noise is drawn before the encode, as diffusers does.
#[allow(clippy::too_many_arguments)]
pub fn image_to_video<M, E>(
    req: &WanRequest,
    first: &Tensor,
    last: Option<&Tensor>,
    stats: &LatentStats,
    encode: E,
    noise: &mut dyn Noise,
    device: &Device,
    model: M,
    on_step: StepHook<'_>,
) -> Result<Tensor>
where
    M: FnMut(&Tensor, f64, bool) -> Result<Tensor>,
    E: FnOnce(&Tensor) -> Result<Tensor>,
{
    let shape = req.validate()?;
    let mut sampler = req.build_sampler()?;
    let latents = initial_latents(shape, noise, device)?;
    let condition = image_condition(req, first, last, stats, encode, device)?;
    denoise(
        sampler.as_mut(),
        latents,
        Some(&condition),
        req.guidance,
        model,
        on_step,
    )
}

pub use super::vae::LatentStats;

/// A picture as `[1, 3, 1, H, W]` f32, checked against the run's size.
fn picture(p: &Tensor, req: &WanRequest, what: &str) -> Result<Tensor> {
    let p = match p.rank() {
        3 => p.unsqueeze(0)?,
        4 => p.clone(),
        r => {
            return Err(VideoError::Invalid(format!(
                "the {what} image must be [3, H, W] or [1, 3, H, W], not rank {r}"
            )))
        }
    };
    let (b, c, h, w) = p.dims4()?;
    if b != 1 || c != 3 || h != req.height || w != req.width {
        return Err(VideoError::Invalid(format!(
            "the {what} image is {b}×{c}×{h}×{w}; the run needs 1×3×{}×{}",
            req.height, req.width
        )));
    }
    Ok(p.to_dtype(DType::F32)?.unsqueeze(2)?)
}

/// The video the VAE encodes for image-to-video: `[first, 0 × (F−1)]`, or
/// `[first, 0 × (F−2), last]` for first-last-frame, `[1, 3, F, H, W]`.
pub fn condition_video(req: &WanRequest, first: &Tensor, last: Option<&Tensor>) -> Result<Tensor> {
    req.validate()?;
    let first = picture(first, req, "first")?;
    let f = req.frames;
    let zeros =
        |n: usize| Tensor::zeros((1, 3, n, req.height, req.width), DType::F32, first.device());
    Ok(match last {
        None => Tensor::cat(&[&first, &zeros(f - 1)?], 2)?,
        Some(l) => {
            let l = picture(l, req, "last")?.to_device(first.device())?;
            Tensor::cat(&[&first, &zeros(f - 2)?, &l], 2)?
        }
    })
}

/// The 4-channel mask `[1, 4, L, h, w]`: 1 on the given pixel frames (the first, and the last
/// with `last`), the first frame's value repeated 4 times in front so latent frame 0 is all 1,
/// then pixel frames folded 4 per latent frame (channel c of latent frame k ≥ 1 is pixel frame
/// 4k + c − 3).
pub fn condition_mask(req: &WanRequest, last: bool, device: &Device) -> Result<Tensor> {
    let shape = req.validate()?;
    let f = req.frames;
    let pixel = |i: usize| -> f32 { f32::from(i == 0 || (last && i == f - 1)) };
    let t = VAE_TEMPORAL;
    let hw = shape.height * shape.width;
    let mut v = Vec::with_capacity(t * shape.frames * hw);
    for c in 0..t {
        for k in 0..shape.frames {
            let m = if k == 0 {
                pixel(0)
            } else {
                pixel(t * k + c - (t - 1))
            };
            v.extend(std::iter::repeat_n(m, hw));
        }
    }
    Ok(Tensor::from_vec(
        v,
        (1, t, shape.frames, shape.height, shape.width),
        device,
    )?)
}

/// The image-to-video condition `[1, 20, L, h, w]` = `[mask (4), normalised latents of the
/// condition video (16)]`, with `encode` the VAE encoder's mean.
pub fn image_condition<E>(
    req: &WanRequest,
    first: &Tensor,
    last: Option<&Tensor>,
    stats: &LatentStats,
    encode: E,
    device: &Device,
) -> Result<Tensor>
where
    E: FnOnce(&Tensor) -> Result<Tensor>,
{
    let shape = req.validate()?;
    let video = condition_video(req, first, last)?;
    let z = encode(&video)?;
    let want = shape.dims();
    if z.dims() != want {
        return Err(VideoError::Invalid(format!(
            "the VAE encoded the condition video to {:?}; the run needs {want:?}",
            z.dims()
        )));
    }
    let z = stats.normalize(&z.to_device(device)?)?;
    let mask = condition_mask(req, last.is_some(), device)?;
    Ok(Tensor::cat(&[&mask, &z], 1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(frames: usize) -> WanRequest {
        WanRequest {
            frames,
            ..WanRequest::text_to_video(32, 16)
        }
    }

    #[test]
    fn defaults_follow_the_wan_configs() {
        let r = WanRequest::text_to_video(832, 480);
        assert_eq!((r.frames, r.steps, r.guidance, r.shift), (81, 50, 5.0, 3.0));
        assert_eq!(WanRequest::image_to_video(1280, 720).steps, 40);
        assert_eq!(WanRequest::image_to_video(1280, 720).shift, 5.0);
        let s = r.validate().unwrap();
        assert_eq!(s.dims(), [1, 16, 21, 60, 104]);
    }

    #[test]
    fn the_mask_marks_first_and_last_pixel_frames() {
        let dev = Device::Cpu;
        // 9 frames → 3 latent frames; pixel frames 1..=4 in latent 1, 5..=8 in latent 2.
        let m = condition_mask(&req(9), true, &dev).unwrap();
        assert_eq!(m.dims(), &[1, 4, 3, 2, 4]);
        let at = |c: usize, k: usize| -> f32 {
            m.get(0)
                .and_then(|x| x.get(c))
                .and_then(|x| x.get(k))
                .and_then(|x| x.flatten_all())
                .and_then(|x| x.to_vec1::<f32>())
                .unwrap()[0]
        };
        for c in 0..4 {
            assert_eq!(at(c, 0), 1.0);
            assert_eq!(at(c, 1), 0.0);
            assert_eq!(at(c, 2), if c == 3 { 1.0 } else { 0.0 });
        }
        let m = condition_mask(&req(9), false, &dev).unwrap();
        assert_eq!(m.sum_all().unwrap().to_scalar::<f32>().unwrap(), 4.0 * 8.0);
    }

    #[test]
    fn normalise_and_denormalise_invert_each_other() {
        let dev = Device::Cpu;
        let s = LatentStats::wan21();
        let z = Tensor::randn(0f32, 1.0, (1, 16, 2, 2, 2), &dev).unwrap();
        let back = s.denormalize(&s.normalize(&z).unwrap()).unwrap();
        let d: f32 = (back - &z)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-5, "{d}");
    }
}
