//! Wan2.1's samplers, step for step as diffusers 0.42.1 runs them (so a run with the same noise
//! and the same network matches it):
//!
//! - [`UniPcFlow`]: `UniPCMultistepScheduler` as the Wan2.1 diffusers repos configure it —
//!   `prediction_type = "flow_prediction"`, `use_flow_sigmas = true`, `flow_shift` (5.0 at 720p,
//!   3.0 at 480p; 8–12 suggested for the 1.3B) and the class defaults for the rest: solver order
//!   2, `bh2`, `lower_order_final`, final σ 0, corrector on every step. The model is called at
//!   **integer** timesteps (σ·1000 truncated, as diffusers casts them to int64) while the update
//!   uses the float32 σ.
//! - [`FlowEuler`]: `FlowMatchEulerDiscreteScheduler(shift)`, the plain flow-match Euler step.
//!   diffusers shifts its σ **twice**: the class shifts its training σ at construction, the run's
//!   linspace goes from the shifted σ_max to the shifted σ_min and is shifted again (so the last σ
//!   of 8 steps at shift 5 is 0.0244, not 0.001·5/(1+4·0.001)).
//!
//! Both sit behind [`WanSampler`], so the pipeline takes either.

use candle_core::{DType, Tensor};

use crate::VideoError;

type Result<T> = std::result::Result<T, VideoError>;

/// A sampler the Wan denoise loop drives: the timesteps the model is called at, σ per step plus
/// the final one, and the update from a (guided) velocity.
pub trait WanSampler: Send {
    /// The timestep of each step (what the transformer gets), 0..1000.
    fn timesteps(&self) -> &[f64];
    /// σ of each step plus the final one (`timesteps().len() + 1` values).
    fn sigmas(&self) -> &[f64];
    /// One step from `sample` at step `index` with the model's velocity `model_output`; returns
    /// the sample at the next σ. Steps are taken in order (a multistep sampler keeps history).
    fn step(&mut self, model_output: &Tensor, index: usize, sample: &Tensor) -> Result<Tensor>;
    /// Forgets the history so the schedule can be run again.
    fn reset(&mut self);

    fn len(&self) -> usize {
        self.timesteps().len()
    }

    fn is_empty(&self) -> bool {
        self.timesteps().is_empty()
    }
}

/// Which sampler a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SamplerKind {
    /// UniPC multistep on flow σ (the Wan2.1 default).
    #[default]
    UniPc,
    /// Flow-match Euler.
    Euler,
}

impl SamplerKind {
    /// The sampler of `steps` steps at `shift` with the Wan2.1 configs.
    pub fn build(self, steps: usize, shift: f64) -> Result<Box<dyn WanSampler>> {
        Ok(match self {
            SamplerKind::UniPc => Box::new(UniPcFlow::new(UniPcConfig::wan(shift), steps)?),
            SamplerKind::Euler => Box::new(FlowEuler::new(steps, shift)?),
        })
    }
}

fn check_steps(steps: usize, shift: f64) -> Result<()> {
    if steps == 0 {
        return Err(VideoError::Invalid(
            "at least one sampling step is needed".into(),
        ));
    }
    if !(shift.is_finite() && shift > 0.0) {
        return Err(VideoError::Invalid(format!(
            "the flow shift must be a positive number, not {shift}"
        )));
    }
    Ok(())
}

/// numpy's `linspace(start, stop, num)`: `i·step + start`, the last value exactly `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

/// UniPC's B(h): `bh1` is h, `bh2` is eʰ − 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolverType {
    Bh1,
    Bh2,
}

/// The σ after the last step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalSigma {
    /// 0: the last step lands on the clean sample (Wan).
    Zero,
    /// The last step's own σ (only sensible with `lower_order_final`).
    SigmaMin,
}

/// The `UniPCMultistepScheduler` fields a flow-σ run depends on (always
/// `prediction_type = "flow_prediction"`, `predict_x0`, `timestep_spacing = "linspace"`, no
/// thresholding, no dynamic shifting).
#[derive(Clone, Debug, PartialEq)]
pub struct UniPcConfig {
    pub num_train_timesteps: usize,
    pub flow_shift: f64,
    pub solver_order: usize,
    pub solver_type: SolverType,
    pub lower_order_final: bool,
    pub final_sigmas: FinalSigma,
    /// Steps whose following corrector is skipped (diffusers' `disable_corrector`).
    pub disable_corrector: Vec<usize>,
}

impl UniPcConfig {
    /// Wan2.1's scheduler config at `flow_shift`.
    pub fn wan(flow_shift: f64) -> Self {
        Self {
            num_train_timesteps: 1000,
            flow_shift,
            solver_order: 2,
            solver_type: SolverType::Bh2,
            lower_order_final: true,
            final_sigmas: FinalSigma::Zero,
            disable_corrector: Vec::new(),
        }
    }
}

/// diffusers' `UniPCMultistepScheduler` with flow σ: predictor (UniP) and corrector (UniC) in
/// the B(h) form, on the data prediction x₀ = x − σ·v.
pub struct UniPcFlow {
    config: UniPcConfig,
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    /// The last `solver_order` data predictions, oldest first.
    history: Vec<Tensor>,
    last_sample: Option<Tensor>,
    lower_order_nums: usize,
    this_order: usize,
    next_index: Option<usize>,
}

impl UniPcFlow {
    /// The schedule of `steps` steps: σ = linspace(1, 1/T, n+1)[..n] (float64), shifted by
    /// `flow_shift·σ/(1 + (flow_shift−1)·σ)`, the first lowered by 1e-6 when it is 1 (so log(1−σ)
    /// is finite), timesteps = σ·T truncated to integers, σ stored as float32 with a final 0
    /// (or the last σ).
    pub fn new(config: UniPcConfig, steps: usize) -> Result<Self> {
        check_steps(steps, config.flow_shift)?;
        if !(1..=3).contains(&config.solver_order) {
            return Err(VideoError::Invalid(format!(
                "UniPC solver order {} is not supported (1, 2 or 3)",
                config.solver_order
            )));
        }
        let train = config.num_train_timesteps as f64;
        let shift = config.flow_shift;
        let mut s: Vec<f64> = linspace(1.0, 1.0 / train, steps + 1)[..steps]
            .iter()
            .map(|&s| shift * s / (1.0 + (shift - 1.0) * s))
            .collect();
        if (s[0] - 1.0).abs() < 1e-6 {
            s[0] -= 1e-6;
        }
        let timesteps = s.iter().map(|&s| (s * train).trunc()).collect();
        let last = match config.final_sigmas {
            FinalSigma::Zero => 0.0,
            FinalSigma::SigmaMin => s[steps - 1],
        };
        let sigmas = s
            .iter()
            .chain(std::iter::once(&last))
            .map(|&s| s as f32 as f64)
            .collect();
        Ok(Self {
            config,
            timesteps,
            sigmas,
            history: Vec::new(),
            last_sample: None,
            lower_order_nums: 0,
            this_order: 0,
            next_index: None,
        })
    }

    pub fn config(&self) -> &UniPcConfig {
        &self.config
    }

    /// log α − log σ with α = 1 − σ (flow σ).
    fn lambda(&self, index: usize) -> f64 {
        let s = self.sigmas[index];
        (1.0 - s).ln() - s.ln()
    }

    /// The coefficients both updates share: (h, hh, h·φ₁, B(h), R, b) for `order`, from the log-SNR
    /// gaps `rks` (the last is 1).
    fn coefficients(&self, h: f64, rks: &[f64], order: usize) -> Coefficients {
        let hh = -h; // predict_x0
        let h_phi_1 = hh.exp_m1();
        let mut h_phi_k = h_phi_1 / hh - 1.0;
        let mut factorial = 1.0;
        let b_h = match self.config.solver_type {
            SolverType::Bh1 => hh,
            SolverType::Bh2 => hh.exp_m1(),
        };
        let mut r = Vec::with_capacity(order);
        let mut b = Vec::with_capacity(order);
        for i in 1..=order {
            r.push(
                rks.iter()
                    .map(|&rk| rk.powi(i as i32 - 1))
                    .collect::<Vec<_>>(),
            );
            b.push(h_phi_k * factorial / b_h);
            factorial *= (i + 1) as f64;
            h_phi_k = h_phi_k / hh - 1.0 / factorial;
        }
        Coefficients { h_phi_1, b_h, r, b }
    }

    /// The earlier data predictions as (rk, D1 = (m_k − m₀)/rk) for k = 1..order, where m_k is
    /// `k` entries back in the history and sits at σ index `sigma_index(k)`.
    fn differences(
        &self,
        order: usize,
        lambda_s0: f64,
        h: f64,
        sigma_index: impl Fn(usize) -> usize,
    ) -> Result<(Vec<f64>, Vec<Tensor>)> {
        let n = self.history.len();
        let m0 = &self.history[n - 1];
        let mut rks = Vec::new();
        let mut d1s = Vec::new();
        for k in 1..order {
            let mk = &self.history[n - 1 - k];
            let rk = (self.lambda(sigma_index(k)) - lambda_s0) / h;
            rks.push(rk);
            d1s.push(((mk - m0)? / rk)?);
        }
        rks.push(1.0);
        Ok((rks, d1s))
    }

    /// UniP: the sample at σ[i+1] from `x` at σ[i].
    fn predict(&self, x: &Tensor, order: usize, i: usize) -> Result<Tensor> {
        let (st, s0) = (self.sigmas[i + 1], self.sigmas[i]);
        let alpha_t = 1.0 - st;
        let lambda_s0 = self.lambda(i);
        let h = self.lambda(i + 1) - lambda_s0;
        let (rks, d1s) = self.differences(order, lambda_s0, h, |k| i - k)?;
        let c = self.coefficients(h, &rks, order);
        let m0 = &self.history[self.history.len() - 1];
        let x_t = ((x * (st / s0))? - (m0 * (alpha_t * c.h_phi_1))?)?;
        if d1s.is_empty() {
            return Ok(x_t);
        }
        let rhos: Vec<f64> = if order == 2 {
            vec![0.5]
        } else {
            let k = order - 1;
            let r: Vec<Vec<f64>> = c.r[..k].iter().map(|row| row[..k].to_vec()).collect();
            solve(r, c.b[..k].to_vec())?
        };
        let pred_res = weighted_sum(&rhos, &d1s)?;
        Ok((x_t - (pred_res * (alpha_t * c.b_h))?)?)
    }

    /// UniC: corrects `this_sample` (at σ[i], predicted from `last_sample` at σ[i−1]) with the
    /// data prediction `model_t` made at it.
    fn correct(
        &self,
        model_t: &Tensor,
        last_sample: &Tensor,
        order: usize,
        i: usize,
    ) -> Result<Tensor> {
        let (st, s0) = (self.sigmas[i], self.sigmas[i - 1]);
        let alpha_t = 1.0 - st;
        let lambda_s0 = self.lambda(i - 1);
        let h = self.lambda(i) - lambda_s0;
        let (rks, d1s) = self.differences(order, lambda_s0, h, |k| i - (k + 1))?;
        let c = self.coefficients(h, &rks, order);
        let rhos = if order == 1 {
            vec![0.5]
        } else {
            solve(c.r.clone(), c.b.clone())?
        };
        let m0 = &self.history[self.history.len() - 1];
        let x_t = ((last_sample * (st / s0))? - (m0 * (alpha_t * c.h_phi_1))?)?;
        let d1_t = (model_t - m0)?;
        let mut res = (d1_t * rhos[order - 1])?;
        if !d1s.is_empty() {
            res = (weighted_sum(&rhos[..order - 1], &d1s)? + res)?;
        }
        Ok((x_t - (res * (alpha_t * c.b_h))?)?)
    }
}

struct Coefficients {
    h_phi_1: f64,
    b_h: f64,
    r: Vec<Vec<f64>>,
    b: Vec<f64>,
}

/// Σ wᵢ·tᵢ.
fn weighted_sum(w: &[f64], t: &[Tensor]) -> Result<Tensor> {
    let mut acc = (&t[0] * w[0])?;
    for (wi, ti) in w.iter().zip(t).skip(1) {
        acc = (acc + (ti * *wi)?)?;
    }
    Ok(acc)
}

/// Solves the small system `a·x = b` (Gaussian elimination with partial pivoting).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Result<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))
            .unwrap_or(col);
        if a[pivot][col] == 0.0 || !a[pivot][col].is_finite() {
            return Err(VideoError::Invalid(format!(
                "UniPC: singular coefficient system {a:?} (two steps at the same σ?)"
            )));
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col].clone();
        for row in col + 1..n {
            let f = a[row][col] / pivot_row[col];
            for (x, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Ok(x)
}

impl WanSampler for UniPcFlow {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    fn reset(&mut self) {
        self.history.clear();
        self.last_sample = None;
        self.lower_order_nums = 0;
        self.this_order = 0;
        self.next_index = None;
    }

    fn step(&mut self, model_output: &Tensor, index: usize, sample: &Tensor) -> Result<Tensor> {
        let n = self.timesteps.len();
        if index >= n {
            return Err(VideoError::Invalid(format!(
                "step {index} of a {n}-step schedule"
            )));
        }
        if let Some(want) = self.next_index {
            if index != want {
                return Err(VideoError::Invalid(format!(
                    "UniPC is multistep: step {want} comes next, not {index} (reset to start over)"
                )));
            }
        }
        let sample = sample.to_dtype(DType::F32)?;
        let v = model_output.to_dtype(DType::F32)?;
        // The data prediction x₀ = x − σ·v.
        let x0 = (&sample - (v * self.sigmas[index])?)?;
        let corrector = self.next_index.is_some()
            && index > 0
            && !self.config.disable_corrector.contains(&(index - 1));
        let sample = match (&self.last_sample, corrector) {
            (Some(last), true) => self.correct(&x0, last, self.this_order, index)?,
            _ => sample,
        };
        self.history.push(x0);
        if self.history.len() > self.config.solver_order {
            self.history.remove(0);
        }
        let order = if self.config.lower_order_final {
            self.config.solver_order.min(n - index)
        } else {
            self.config.solver_order
        };
        self.this_order = order.min(self.lower_order_nums + 1);
        let prev = self.predict(&sample, self.this_order, index)?;
        self.last_sample = Some(sample);
        if self.lower_order_nums < self.config.solver_order {
            self.lower_order_nums += 1;
        }
        self.next_index = Some(index + 1);
        Ok(prev)
    }
}

/// diffusers' `FlowMatchEulerDiscreteScheduler(shift)` (no dynamic shifting, no terminal
/// stretch): `x ← x + (σ_{i+1} − σ_i)·v`.
pub struct FlowEuler {
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
}

impl FlowEuler {
    /// The schedule of `steps` steps at `shift` (1000 training timesteps).
    pub fn new(steps: usize, shift: f64) -> Result<Self> {
        check_steps(steps, shift)?;
        const TRAIN: usize = 1000;
        // The class's shifted training σ at both ends, in float32 as torch computes them.
        let shifted_f32 = |s: f32| (shift as f32 * s) / (1.0 + (shift - 1.0) as f32 * s);
        // The training timesteps run 1000..=1 (float32), σ = t/1000: 1 exactly at the top.
        let sigma_max = shifted_f32(1.0) as f64;
        let sigma_min = shifted_f32(1.0 / TRAIN as f32) as f64;
        let train = TRAIN as f64;
        let sig: Vec<f32> = linspace(sigma_max * train, sigma_min * train, steps)
            .into_iter()
            .map(|t| t / train)
            .map(|s| (shift * s / (1.0 + (shift - 1.0) * s)) as f32)
            .collect();
        let timesteps = sig.iter().map(|&s| (s * TRAIN as f32) as f64).collect();
        let sigmas = sig
            .iter()
            .map(|&s| s as f64)
            .chain(std::iter::once(0.0))
            .collect();
        Ok(Self { timesteps, sigmas })
    }
}

impl WanSampler for FlowEuler {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    fn reset(&mut self) {}

    fn step(&mut self, model_output: &Tensor, index: usize, sample: &Tensor) -> Result<Tensor> {
        let n = self.timesteps.len();
        if index >= n {
            return Err(VideoError::Invalid(format!(
                "step {index} of a {n}-step schedule"
            )));
        }
        // dt in float32, as the scheduler's σ tensor subtracts it.
        let dt = (self.sigmas[index + 1] as f32 - self.sigmas[index] as f32) as f64;
        let v = model_output.to_dtype(DType::F32)?;
        Ok((sample.to_dtype(DType::F32)? + (v * dt)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn unipc_timesteps_are_truncated_shifted_sigmas() {
        let s = UniPcFlow::new(UniPcConfig::wan(5.0), 4).unwrap();
        // σ = 1, 0.75025, 0.5005, 0.25075 shifted by 5; the first lowered by 1e-6.
        assert_eq!(s.timesteps()[0], 999.0);
        assert!((s.sigmas()[0] - 0.999999).abs() < 1e-7);
        let sh = |s: f64| 5.0 * s / (1.0 + 4.0 * s);
        assert_eq!(s.timesteps()[1], (sh(0.75025) * 1000.0).trunc());
        assert_eq!(s.sigmas().len(), 5);
        assert_eq!(s.sigmas()[4], 0.0);
        assert!(s.sigmas().windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn bad_steps_and_shifts_are_refused() {
        assert!(UniPcFlow::new(UniPcConfig::wan(5.0), 0).is_err());
        assert!(FlowEuler::new(10, 0.0).is_err());
        assert!(FlowEuler::new(10, f64::NAN).is_err());
        let mut cfg = UniPcConfig::wan(3.0);
        cfg.solver_order = 4;
        assert!(UniPcFlow::new(cfg, 10).is_err());
    }

    #[test]
    fn the_solver_solves() {
        let x = solve(vec![vec![2.0, 1.0], vec![1.0, 3.0]], vec![3.0, 5.0]).unwrap();
        assert!(
            (x[0] - 0.8).abs() < 1e-12 && (x[1] - 1.4).abs() < 1e-12,
            "{x:?}"
        );
        assert!(solve(vec![vec![1.0, 1.0], vec![1.0, 1.0]], vec![1.0, 2.0]).is_err());
    }

    /// With a velocity that is exact for straight paths (v = noise − x₀, so x₀ = x − σ·v is the
    /// same at every step), both samplers land on x₀.
    #[test]
    fn a_straight_flow_lands_on_its_data() {
        let dev = Device::Cpu;
        let x0 = Tensor::new(&[0.5f32, -1.0, 2.0], &dev).unwrap();
        let noise = Tensor::new(&[1.0f32, 0.3, -0.7], &dev).unwrap();
        let v = (&noise - &x0).unwrap();
        for kind in [SamplerKind::UniPc, SamplerKind::Euler] {
            let mut s = kind.build(6, 3.0).unwrap();
            let s0 = s.sigmas()[0];
            let mut x = ((&x0 * (1.0 - s0)).unwrap() + (&noise * s0).unwrap()).unwrap();
            for i in 0..s.len() {
                x = s.step(&v, i, &x).unwrap();
            }
            let d: f32 = (&x - &x0)
                .unwrap()
                .abs()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(d < 1e-5, "{kind:?}: {d}");
        }
    }

    #[test]
    fn unipc_steps_in_order_only() {
        let dev = Device::Cpu;
        let x = Tensor::zeros(3, DType::F32, &dev).unwrap();
        let mut s = UniPcFlow::new(UniPcConfig::wan(3.0), 4).unwrap();
        s.step(&x, 0, &x).unwrap();
        assert!(s.step(&x, 2, &x).is_err());
        assert!(s.step(&x, 9, &x).is_err());
        s.reset();
        s.step(&x, 0, &x).unwrap();
    }
}
