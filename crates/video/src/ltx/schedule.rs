//! LTX's flow-match schedule, as diffusers' `FlowMatchEulerDiscreteScheduler` builds it from a
//! model's `scheduler_config.json`: σ from 1 towards 1/n (or the fixed timesteps of a distilled
//! model, or the condition pipeline's linear-quadratic schedule), shifted by the sequence length
//! (`use_dynamic_shifting`) or a constant, stretched to end at `shift_terminal`, then a final 0.
//!
//! Two step rules: the whole batch at one σ (text- and image-to-video), and per token, where
//! every token carries its own timestep (keyframe conditioning) and moves to the largest σ of the
//! schedule below its own.

use serde::Deserialize;

/// The scheduler config fields LTX uses (diffusers defaults).
#[derive(Clone, Debug, Deserialize)]
pub struct ScheduleConfig {
    #[serde(default = "thousand")]
    pub num_train_timesteps: usize,
    #[serde(default = "one")]
    pub shift: f64,
    #[serde(default)]
    pub use_dynamic_shifting: bool,
    #[serde(default = "base_shift")]
    pub base_shift: f64,
    #[serde(default = "max_shift")]
    pub max_shift: f64,
    #[serde(default = "base_seq")]
    pub base_image_seq_len: usize,
    #[serde(default = "max_seq")]
    pub max_image_seq_len: usize,
    #[serde(default = "exponential")]
    pub time_shift_type: String,
    #[serde(default)]
    pub shift_terminal: Option<f64>,
}

fn thousand() -> usize {
    1000
}
fn one() -> f64 {
    1.0
}
fn base_shift() -> f64 {
    0.5
}
fn max_shift() -> f64 {
    1.15
}
fn base_seq() -> usize {
    256
}
fn max_seq() -> usize {
    4096
}
fn exponential() -> String {
    "exponential".into()
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every field has a default")
    }
}

/// How the steps of a run are chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Steps {
    /// `n` steps from σ = 1 (shifted by the config).
    Count(usize),
    /// The condition pipeline's default: diffusers' `linear_quadratic_schedule(n)` as timesteps.
    LinearQuadratic(usize),
    /// Fixed timesteps (0..1000), as distilled models ship them.
    Timesteps(Vec<f64>),
}

impl Steps {
    pub fn len(&self) -> usize {
        match self {
            Steps::Count(n) | Steps::LinearQuadratic(n) => *n,
            Steps::Timesteps(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A run's schedule: the timesteps the transformer is called at and σ per step plus a final 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub timesteps: Vec<f64>,
    pub sigmas: Vec<f64>,
    /// The sequence-length shift used (`None` when the config shifts by a constant).
    pub mu: Option<f64>,
}

/// diffusers' `calculate_shift`: μ grows linearly with the latent sequence length.
pub fn shift_for(cfg: &ScheduleConfig, seq_len: usize) -> f64 {
    let (b, m) = (cfg.base_image_seq_len as f64, cfg.max_image_seq_len as f64);
    let slope = (cfg.max_shift - cfg.base_shift) / (m - b);
    cfg.base_shift + slope * (seq_len as f64 - b)
}

/// diffusers' `linear_quadratic_schedule` (threshold noise 0.025, half the steps linear).
pub fn linear_quadratic(n: usize) -> Vec<f64> {
    if n < 2 {
        return vec![1.0];
    }
    let threshold = 0.025;
    let linear = n / 2;
    let lin: Vec<f64> = (0..linear)
        .map(|i| i as f64 * threshold / linear as f64)
        .collect();
    let diff = linear as f64 - threshold * n as f64;
    let quad_steps = (n - linear) as f64;
    let qc = diff / (linear as f64 * quad_steps * quad_steps);
    let lc = threshold / linear as f64 - 2.0 * diff / (quad_steps * quad_steps);
    let c = qc * (linear * linear) as f64;
    let quad = (linear..n).map(|i| qc * (i * i) as f64 + lc * i as f64 + c);
    lin.into_iter().chain(quad).map(|x| 1.0 - x).collect()
}

impl Schedule {
    /// The schedule of `steps` for a latent sequence of `seq_len` tokens.
    pub fn new(cfg: &ScheduleConfig, steps: &Steps, seq_len: usize) -> Result<Self, String> {
        if steps.is_empty() {
            return Err("at least one sampling step is needed".into());
        }
        let t_train = cfg.num_train_timesteps as f64;
        let (fixed, base): (Option<Vec<f64>>, Vec<f64>) = match steps {
            Steps::Count(n) => {
                let n = *n;
                let s = (0..n)
                    .map(|i| {
                        if n == 1 {
                            1.0
                        } else {
                            1.0 + (1.0 / n as f64 - 1.0) * i as f64 / (n - 1) as f64
                        }
                    })
                    .collect();
                (None, s)
            }
            Steps::LinearQuadratic(n) => {
                let t: Vec<f64> = linear_quadratic(*n).iter().map(|s| s * 1000.0).collect();
                let s = t.iter().map(|t| t / t_train).collect();
                (Some(t), s)
            }
            Steps::Timesteps(t) => {
                if t.iter().any(|&v| !(0.0..=t_train).contains(&v)) {
                    return Err(format!("timesteps must lie in 0..={t_train}: {t:?}"));
                }
                (Some(t.clone()), t.iter().map(|t| t / t_train).collect())
            }
        };
        let mu = cfg.use_dynamic_shifting.then(|| shift_for(cfg, seq_len));
        let mut sigmas: Vec<f64> = match mu {
            Some(mu) => base
                .iter()
                .map(|&s| match cfg.time_shift_type.as_str() {
                    "linear" => mu / (mu + (1.0 / s - 1.0)),
                    _ => mu.exp() / (mu.exp() + (1.0 / s - 1.0)),
                })
                .collect(),
            None => base
                .iter()
                .map(|&s| cfg.shift * s / (1.0 + (cfg.shift - 1.0) * s))
                .collect(),
        };
        if let Some(terminal) = cfg.shift_terminal.filter(|t| *t > 0.0) {
            let last = 1.0 - sigmas[sigmas.len() - 1];
            let scale = last / (1.0 - terminal);
            for s in &mut sigmas {
                *s = 1.0 - (1.0 - *s) / scale;
            }
        }
        let timesteps = fixed.unwrap_or_else(|| sigmas.iter().map(|s| s * t_train).collect());
        sigmas.push(0.0);
        Ok(Self {
            timesteps,
            sigmas,
            mu,
        })
    }

    pub fn len(&self) -> usize {
        self.timesteps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timesteps.is_empty()
    }

    /// Keeps the last `strength` share of the steps (diffusers' `get_timesteps`).
    pub fn start_at_strength(&mut self, strength: f64) {
        let n = self.timesteps.len();
        let keep = ((n as f64 * strength) as usize).min(n);
        let start = n - keep;
        self.timesteps.drain(..start);
        self.sigmas.drain(..start);
    }

    /// The σ a token at `sigma` moves to on the per-token path: the largest σ of the schedule
    /// below it (0 past the last).
    pub fn next_below(&self, sigma: f64) -> f64 {
        self.sigmas
            .iter()
            .copied()
            .filter(|&s| s < sigma - 1e-6)
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_schedule_is_linspace_then_zero() {
        let s = Schedule::new(&ScheduleConfig::default(), &Steps::Count(4), 100).unwrap();
        assert_eq!(s.sigmas, vec![1.0, 0.75, 0.5, 0.25, 0.0]);
        assert_eq!(s.timesteps, vec![1000.0, 750.0, 500.0, 250.0]);
        assert_eq!(s.mu, None);
    }

    #[test]
    fn dynamic_shift_raises_sigmas_and_terminal_stretch_ends_there() {
        let cfg = ScheduleConfig {
            use_dynamic_shifting: true,
            shift_terminal: Some(0.1),
            ..Default::default()
        };
        let s = Schedule::new(&cfg, &Steps::Count(8), 4096).unwrap();
        assert!((s.mu.unwrap() - 1.15).abs() < 1e-12);
        assert!((s.sigmas[0] - 1.0).abs() < 1e-12);
        assert!((s.sigmas[7] - 0.1).abs() < 1e-12, "{:?}", s.sigmas);
        assert!(s.sigmas.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn linear_quadratic_matches_diffusers() {
        // diffusers 0.42.1 linear_quadratic_schedule(4): [1.0, 0.9875, 0.975, 0.4875]... check the
        // shape: first half linear from 1 by threshold/linear, then quadratic to ~0.
        let s = linear_quadratic(4);
        assert_eq!(s.len(), 4);
        assert!((s[0] - 1.0).abs() < 1e-12);
        assert!((s[1] - (1.0 - 0.0125)).abs() < 1e-12);
        assert!(s.windows(2).all(|w| w[0] > w[1]), "{s:?}");
        assert_eq!(linear_quadratic(1), vec![1.0]);
    }

    #[test]
    fn per_token_moves_to_the_next_sigma_below() {
        let s = Schedule::new(&ScheduleConfig::default(), &Steps::Count(4), 1).unwrap();
        assert_eq!(s.next_below(1.0), 0.75);
        assert_eq!(s.next_below(0.6), 0.5);
        assert_eq!(s.next_below(0.0), 0.0);
    }

    #[test]
    fn fixed_timesteps_are_kept_as_given() {
        let s = Schedule::new(
            &ScheduleConfig::default(),
            &Steps::Timesteps(vec![1000.0, 993.0, 987.0]),
            1,
        )
        .unwrap();
        assert_eq!(s.timesteps, vec![1000.0, 993.0, 987.0]);
        assert_eq!(s.sigmas, vec![1.0, 0.993, 0.987, 0.0]);
        assert!(Schedule::new(
            &ScheduleConfig::default(),
            &Steps::Timesteps(vec![1200.0]),
            1
        )
        .is_err());
    }
}
