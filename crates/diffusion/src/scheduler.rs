//! Samplers: DDIM, Euler, Euler ancestral, DPM++ 2M and flow-match Euler, written against
//! diffusers' schedulers (same timestep spacings, tables and update rules) so a run matches
//! diffusers step for step. Noise is always passed in, never drawn here, so the caller owns the
//! random stream (a seed, or the recorded draws of a reference run).

use candle_core::{Result, Tensor};
use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    Ddim,
    Euler,
    EulerA,
    #[serde(rename = "dpmpp_2m")]
    DpmPP2M,
    /// Rectified flow (FLUX): x += (σ' − σ)·v.
    Flow,
}

impl SamplerKind {
    /// Every sampler, in the order of their codes in checkpoints ([`SamplerKind::code`]).
    pub const ALL: [SamplerKind; 5] = [
        Self::Ddim,
        Self::Euler,
        Self::EulerA,
        Self::DpmPP2M,
        Self::Flow,
    ];

    /// A stable one-byte code (checkpoint files).
    pub fn code(self) -> u8 {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0) as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ddim" => Self::Ddim,
            "euler" => Self::Euler,
            "euler_a" | "euler-a" | "euler_ancestral" => Self::EulerA,
            "dpmpp_2m" | "dpm++2m" | "dpm++_2m" | "dpmpp-2m" => Self::DpmPP2M,
            "flow" | "flow_euler" => Self::Flow,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Ddim => "ddim",
            Self::Euler => "euler",
            Self::EulerA => "euler_a",
            Self::DpmPP2M => "dpmpp_2m",
            Self::Flow => "flow",
        }
    }

    /// The diffusers class implementing the same sampler.
    pub fn from_diffusers_class(class: &str) -> Option<Self> {
        Some(match class {
            "DDIMScheduler" => Self::Ddim,
            "EulerDiscreteScheduler" => Self::Euler,
            "EulerAncestralDiscreteScheduler" => Self::EulerA,
            "DPMSolverMultistepScheduler" => Self::DpmPP2M,
            "FlowMatchEulerDiscreteScheduler" => Self::Flow,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    Epsilon,
    VPrediction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spacing {
    Leading,
    Trailing,
    Linspace,
}

/// The diffusers scheduler config fields the samplers use (a model's `scheduler_config.json`).
#[derive(Clone, Debug, Deserialize)]
pub struct ScheduleConfig {
    #[serde(default = "thousand")]
    pub num_train_timesteps: usize,
    #[serde(default = "beta_start")]
    pub beta_start: f64,
    #[serde(default = "beta_end")]
    pub beta_end: f64,
    #[serde(default = "scaled_linear")]
    pub beta_schedule: String,
    #[serde(default = "epsilon")]
    pub prediction_type: Prediction,
    #[serde(default)]
    pub timestep_spacing: Option<Spacing>,
    #[serde(default)]
    pub steps_offset: usize,
    /// DDIM: the "previous" alpha of the last step (false in every SD config).
    #[serde(default)]
    pub set_alpha_to_one: bool,
    /// Flow matching: σ shift (1.0 for schnell).
    #[serde(default = "one")]
    pub shift: f64,
}

fn thousand() -> usize {
    1000
}
fn beta_start() -> f64 {
    0.00085
}
fn beta_end() -> f64 {
    0.012
}
fn scaled_linear() -> String {
    "scaled_linear".into()
}
fn epsilon() -> Prediction {
    Prediction::Epsilon
}
fn one() -> f64 {
    1.0
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults")
    }
}

/// What a sampler carries between steps: DPM++ 2M's previous denoised estimate (the others
/// are memoryless).
#[derive(Clone, Debug, Default)]
pub struct SamplerState {
    pub previous_x0: Option<Tensor>,
}

/// A sampler set up for one run.
pub struct Sampler {
    kind: SamplerKind,
    prediction: Prediction,
    /// Timesteps the denoiser is called at (flow: σ·1000).
    timesteps: Vec<f64>,
    /// σ per timestep plus a final 0 (Euler, DPM++, flow).
    sigmas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    final_alpha: f64,
    train_steps: usize,
    inference_steps: usize,
    init_sigma: f64,
    /// DPM++ 2M: the previous step's denoised estimate.
    previous_x0: Option<Tensor>,
}

impl Sampler {
    pub fn new(kind: SamplerKind, cfg: &ScheduleConfig, steps: usize) -> Result<Self> {
        if steps == 0 {
            candle_core::bail!("at least one sampling step is needed");
        }
        let t_train = cfg.num_train_timesteps;
        let alphas_cumprod = alphas_cumprod(cfg)?;
        let sigma_table: Vec<f64> = alphas_cumprod
            .iter()
            .map(|a| ((1.0 - a) / a).sqrt())
            .collect();
        let n = steps;
        let spacing_default = match kind {
            SamplerKind::Ddim => Spacing::Leading,
            _ => Spacing::Linspace,
        };
        let spacing = cfg.timestep_spacing.unwrap_or(spacing_default);
        let (timesteps, sigmas, init_sigma) = match kind {
            SamplerKind::Flow => {
                // linspace(1, 1/n, n), shifted, then a final 0.
                let mut s: Vec<f64> = (0..n)
                    .map(|i| 1.0 + (1.0 / n as f64 - 1.0) * i as f64 / (n - 1).max(1) as f64)
                    .collect();
                if n == 1 {
                    s = vec![1.0];
                }
                let s: Vec<f64> = s
                    .iter()
                    .map(|&x| cfg.shift * x / (1.0 + (cfg.shift - 1.0) * x))
                    .collect();
                let t = s.iter().map(|x| x * t_train as f64).collect();
                let mut sig = s;
                sig.push(0.0);
                (t, sig, 1.0)
            }
            SamplerKind::Ddim => {
                let t = spaced(spacing, n, t_train, cfg.steps_offset, false);
                (t, Vec::new(), 1.0)
            }
            SamplerKind::DpmPP2M => {
                let t = spaced(spacing, n, t_train, cfg.steps_offset, true);
                let mut sig: Vec<f64> = t.iter().map(|&t| interp(&sigma_table, t)).collect();
                sig.push(0.0);
                (t, sig, 1.0)
            }
            SamplerKind::Euler | SamplerKind::EulerA => {
                let t = spaced(spacing, n, t_train, cfg.steps_offset, false);
                let mut sig: Vec<f64> = t.iter().map(|&t| interp(&sigma_table, t)).collect();
                let max = sig.iter().cloned().fold(0.0, f64::max);
                sig.push(0.0);
                let init = match spacing {
                    Spacing::Linspace | Spacing::Trailing => max,
                    Spacing::Leading => (max * max + 1.0).sqrt(),
                };
                (t, sig, init)
            }
        };
        let final_alpha = if cfg.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        Ok(Self {
            kind,
            prediction: cfg.prediction_type,
            timesteps,
            sigmas,
            alphas_cumprod,
            final_alpha,
            train_steps: t_train,
            inference_steps: n,
            init_sigma,
            previous_x0: None,
        })
    }

    pub fn kind(&self) -> SamplerKind {
        self.kind
    }

    /// The timesteps still to run, in order.
    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// What initial noise is multiplied by.
    pub fn init_noise_sigma(&self) -> f64 {
        self.init_sigma
    }

    /// Image-to-image: keep the last `strength` share of the schedule (diffusers'
    /// `get_timesteps`). Returns how many steps are left.
    pub fn start_at_strength(&mut self, strength: f64) -> usize {
        let n = self.timesteps.len();
        let init = ((n as f64 * strength) as usize).min(n);
        self.skip(n - init)
    }

    /// Drops the first `start` steps of the schedule (what [`Sampler::start_at_strength`]
    /// drops, as a count: a resumed run restores it). Returns how many steps are left.
    pub fn skip(&mut self, start: usize) -> usize {
        let start = start.min(self.timesteps.len());
        self.timesteps.drain(..start);
        if !self.sigmas.is_empty() {
            self.sigmas.drain(..start);
        }
        self.timesteps.len()
    }

    /// What the sampler carries from one step to the next (multistep history), for a
    /// checkpoint.
    pub fn state(&self) -> SamplerState {
        SamplerState {
            previous_x0: self.previous_x0.clone(),
        }
    }

    /// Continues from `state` (saved by [`Sampler::state`] after some step of the same run).
    pub fn restore(&mut self, state: SamplerState) {
        self.previous_x0 = state.previous_x0;
    }

    /// Noises clean latents to the first remaining timestep (image-to-image, inpainting).
    pub fn add_noise(&self, x0: &Tensor, noise: &Tensor, step: usize) -> Result<Tensor> {
        match self.kind {
            SamplerKind::Euler | SamplerKind::EulerA => x0 + (noise * self.sigmas[step])?,
            SamplerKind::Flow => {
                let s = self.sigmas[step];
                (x0 * (1.0 - s))? + (noise * s)?
            }
            SamplerKind::Ddim | SamplerKind::DpmPP2M => {
                let a = self.alphas_cumprod[self.timesteps[step] as usize];
                (x0 * a.sqrt())? + (noise * (1.0 - a).sqrt())?
            }
        }
    }

    /// Scales the latents for the denoiser at `step` (the Euler family works in σ space).
    pub fn scale_model_input(&self, x: &Tensor, step: usize) -> Result<Tensor> {
        match self.kind {
            SamplerKind::Euler | SamplerKind::EulerA => {
                let s = self.sigmas[step];
                x / (s * s + 1.0).sqrt()
            }
            _ => Ok(x.clone()),
        }
    }

    /// Whether `step` consumes fresh noise (ancestral sampling).
    pub fn needs_noise(&self) -> bool {
        self.kind == SamplerKind::EulerA
    }

    /// One update from the denoiser's output. `noise` is required by ancestral samplers.
    pub fn step(
        &mut self,
        out: &Tensor,
        step: usize,
        x: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        match self.kind {
            SamplerKind::Ddim => self.ddim(out, step, x),
            SamplerKind::Euler => {
                let (s, s_next) = (self.sigmas[step], self.sigmas[step + 1]);
                let x0 = self.sigma_x0(out, x, s)?;
                let d = ((x - &x0)? / s)?;
                x + (d * (s_next - s))?
            }
            SamplerKind::EulerA => {
                let (s, s_next) = (self.sigmas[step], self.sigmas[step + 1]);
                let x0 = self.sigma_x0(out, x, s)?;
                let up = (s_next * s_next * (s * s - s_next * s_next) / (s * s)).sqrt();
                let down = (s_next * s_next - up * up).sqrt();
                let d = ((x - &x0)? / s)?;
                let x = (x + (d * (down - s))?)?;
                let noise = noise.ok_or_else(|| {
                    candle_core::Error::Msg("Euler ancestral needs noise every step".into())
                })?;
                x + (noise * up)?
            }
            SamplerKind::DpmPP2M => self.dpmpp_2m(out, step, x),
            SamplerKind::Flow => {
                let (s, s_next) = (self.sigmas[step], self.sigmas[step + 1]);
                x + (out * (s_next - s))?
            }
        }
    }

    /// The clean-sample estimate of the Euler family (σ parametrisation).
    fn sigma_x0(&self, out: &Tensor, x: &Tensor, s: f64) -> Result<Tensor> {
        match self.prediction {
            Prediction::Epsilon => x - (out * s)?,
            Prediction::VPrediction => (out * (-s / (s * s + 1.0).sqrt()))? + (x / (s * s + 1.0))?,
        }
    }

    fn ddim(&self, out: &Tensor, step: usize, x: &Tensor) -> Result<Tensor> {
        let t = self.timesteps[step] as i64;
        let prev = t - (self.train_steps / self.inference_steps) as i64;
        let a = self.alphas_cumprod[t as usize];
        let a_prev = if prev >= 0 {
            self.alphas_cumprod[prev as usize]
        } else {
            self.final_alpha
        };
        let (x0, eps) = match self.prediction {
            Prediction::Epsilon => {
                let x0 = ((x - (out * (1.0 - a).sqrt())?)? / a.sqrt())?;
                (x0, out.clone())
            }
            Prediction::VPrediction => {
                let x0 = ((x * a.sqrt())? - (out * (1.0 - a).sqrt())?)?;
                let eps = ((out * a.sqrt())? + (x * (1.0 - a).sqrt())?)?;
                (x0, eps)
            }
        };
        (x0 * a_prev.sqrt())? + (eps * (1.0 - a_prev).sqrt())?
    }

    fn dpmpp_2m(&mut self, out: &Tensor, step: usize, x: &Tensor) -> Result<Tensor> {
        let vp = |s: f64| {
            let alpha = 1.0 / (s * s + 1.0).sqrt();
            (alpha, s * alpha)
        };
        let (alpha_s, sigma_s) = vp(self.sigmas[step]);
        let x0 = match self.prediction {
            Prediction::Epsilon => ((x - (out * sigma_s)?)? / alpha_s)?,
            Prediction::VPrediction => ((x * alpha_s)? - (out * sigma_s)?)?,
        };
        let s_next = self.sigmas[step + 1];
        let (alpha_t, sigma_t) = vp(s_next);
        let lambda = |a: f64, s: f64| a.ln() - s.ln();
        let lambda_s = lambda(alpha_s, sigma_s);
        // The last step lands on σ = 0 (λ = ∞), where the first-order update is x0 itself:
        // diffusers with final_sigmas_type "zero" (always first order there).
        let result = if s_next == 0.0 {
            x0.clone()
        } else {
            let h = lambda(alpha_t, sigma_t) - lambda_s;
            let first = ((x * (sigma_t / sigma_s))? - (&x0 * (alpha_t * ((-h).exp() - 1.0)))?)?;
            match (&self.previous_x0, step) {
                // Second order from the previous estimate (not on a run's first step).
                (Some(prev), s) if s > 0 => {
                    let (alpha_p, sigma_p) = vp(self.sigmas[step - 1]);
                    let h0 = lambda_s - lambda(alpha_p, sigma_p);
                    let r0 = h0 / h;
                    let d1 = ((&x0 - prev)? * (1.0 / r0))?;
                    (first - (d1 * (0.5 * alpha_t * ((-h).exp() - 1.0)))?)?
                }
                _ => first,
            }
        };
        self.previous_x0 = Some(x0);
        Ok(result)
    }
}

/// diffusers' timestep spacings. `dpm` spaces n+1 points and drops the last (as
/// DPMSolverMultistepScheduler does for leading/linspace).
fn spaced(spacing: Spacing, n: usize, t_train: usize, offset: usize, dpm: bool) -> Vec<f64> {
    let tf = t_train as f64;
    match spacing {
        Spacing::Leading => {
            let points = if dpm { n + 1 } else { n };
            let ratio = t_train / points;
            let mut t: Vec<f64> = (0..points)
                .map(|i| (i * ratio + offset) as f64)
                .rev()
                .collect();
            t.truncate(n);
            t
        }
        Spacing::Trailing => {
            let ratio = tf / n as f64;
            (0..n)
                .map(|i| (tf - i as f64 * ratio).round_ties_even() - 1.0)
                .collect()
        }
        Spacing::Linspace => {
            if dpm {
                let points = n + 1;
                let t: Vec<f64> = (0..points)
                    .map(|i| ((tf - 1.0) * i as f64 / n as f64).round_ties_even())
                    .rev()
                    .collect();
                t[..n].to_vec()
            } else if n == 1 {
                vec![tf - 1.0]
            } else {
                (0..n)
                    .map(|i| (tf - 1.0) * i as f64 / (n - 1) as f64)
                    .rev()
                    .collect()
            }
        }
    }
}

/// Linear interpolation of a per-train-step table at a (possibly fractional) timestep.
fn interp(table: &[f64], t: f64) -> f64 {
    let t = t.clamp(0.0, (table.len() - 1) as f64);
    let i = t.floor() as usize;
    if i + 1 >= table.len() {
        return table[table.len() - 1];
    }
    let f = t - i as f64;
    table[i] * (1.0 - f) + table[i + 1] * f
}

/// ᾱ per train step, computed in f32 as diffusers does (torch float32 tables), widened.
fn alphas_cumprod(cfg: &ScheduleConfig) -> Result<Vec<f64>> {
    let n = cfg.num_train_timesteps;
    let betas: Vec<f32> = match cfg.beta_schedule.as_str() {
        "scaled_linear" => {
            let (a, b) = ((cfg.beta_start as f32).sqrt(), (cfg.beta_end as f32).sqrt());
            (0..n)
                .map(|i| {
                    let v = a + (b - a) * i as f32 / (n - 1) as f32;
                    v * v
                })
                .collect()
        }
        "linear" => {
            let (a, b) = (cfg.beta_start as f32, cfg.beta_end as f32);
            (0..n)
                .map(|i| a + (b - a) * i as f32 / (n - 1) as f32)
                .collect()
        }
        other => candle_core::bail!("scheduler: beta_schedule {other} unsupported"),
    };
    let mut acc = 1f32;
    Ok(betas
        .iter()
        .map(|b| {
            acc *= 1.0 - b;
            acc as f64
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacings_match_diffusers() {
        // Values printed by diffusers 0.42.1 for 2 steps (steps_offset 1 where leading).
        assert_eq!(
            spaced(Spacing::Leading, 2, 1000, 1, false),
            vec![501.0, 1.0]
        );
        assert_eq!(
            spaced(Spacing::Trailing, 2, 1000, 0, false),
            vec![999.0, 499.0]
        );
        assert_eq!(
            spaced(Spacing::Linspace, 2, 1000, 0, false),
            vec![999.0, 0.0]
        );
        assert_eq!(
            spaced(Spacing::Linspace, 2, 1000, 0, true),
            vec![999.0, 500.0]
        );
        assert_eq!(
            spaced(Spacing::Leading, 2, 1000, 1, true),
            vec![667.0, 334.0]
        );
    }

    #[test]
    fn flow_schedule_is_linspace_to_zero() {
        let s = Sampler::new(SamplerKind::Flow, &ScheduleConfig::default(), 4).unwrap();
        assert_eq!(s.sigmas, vec![1.0, 0.75, 0.5, 0.25, 0.0]);
    }

    #[test]
    fn strength_keeps_the_tail() {
        let mut s = Sampler::new(SamplerKind::Euler, &ScheduleConfig::default(), 10).unwrap();
        let last = *s.timesteps().last().unwrap();
        assert_eq!(s.start_at_strength(0.3), 3);
        assert_eq!(*s.timesteps().last().unwrap(), last);
        assert_eq!(s.sigmas.len(), 4);
    }
}
