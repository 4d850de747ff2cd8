//! Where a run's randomness comes from: a seed, or (in parity tests) the draws a reference run
//! recorded, replayed in order. Pipelines draw exactly when diffusers' pipelines draw, so a
//! recorded run replays step for step.

use std::collections::VecDeque;

use candle_core::{Device, Result, Tensor};

pub trait Noise {
    /// Standard normal noise of `shape` (f32).
    fn draw(&mut self, shape: &[usize], device: &Device) -> Result<Tensor>;
}

/// splitmix64: a tiny generator that gives the same stream on every machine (the model crates'
/// noise and the procedural engines' choices both come from it).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose internal state starts at `state` (no mixing of the seed).
    pub fn from_state(state: u64) -> Self {
        Self(state)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// Uniform in (0, 1]: never 0, so `ln()` is finite.
    pub fn open_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Uniform in [0, 1) with 24 bits (an `f32` mantissa).
    pub fn unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-1, 1) with 24 bits.
    pub fn bipolar_f32(&mut self) -> f32 {
        self.unit_f32() * 2.0 - 1.0
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f32) -> bool {
        self.unit_f32() < p
    }

    /// Uniform integer in `0..n` (`n` of 0 counts as 1).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// splitmix64's output function: a good 64-bit mixer on its own (hashing coordinates, seeds).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded standard normal stream (splitmix64 + Box–Muller): the same seed gives the same
/// picture or voice on every machine and device.
#[derive(Debug, Clone)]
pub struct Seeded {
    rng: SplitMix64,
    spare: Option<f32>,
}

impl Seeded {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64::from_state(seed ^ 0x5eed_d1ff_u64),
            spare: None,
        }
    }

    /// One standard normal sample.
    pub fn normal(&mut self) -> f32 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let (u1, u2) = (self.rng.open_unit(), self.rng.open_unit());
        let r = (-2.0 * u1.ln()).sqrt();
        let a = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some((r * a.sin()) as f32);
        (r * a.cos()) as f32
    }

    /// `n` samples scaled by `scale` (all zeros, without drawing, when `scale` is 0).
    pub fn scaled(&mut self, n: usize, scale: f32) -> Vec<f32> {
        if scale == 0.0 {
            return vec![0.0; n];
        }
        (0..n).map(|_| self.normal() * scale).collect()
    }
}

impl Noise for Seeded {
    fn draw(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.normal()).collect();
        Tensor::from_vec(v, shape, device)
    }
}

/// Recorded draws, handed out in order; a draw of the wrong shape or one too many is an error
/// (the pipeline no longer draws like the reference).
pub struct Replay {
    draws: VecDeque<Tensor>,
    taken: usize,
}

impl Replay {
    pub fn new(draws: Vec<Tensor>) -> Self {
        Self {
            draws: draws.into(),
            taken: 0,
        }
    }

    /// Draws left unused.
    pub fn remaining(&self) -> usize {
        self.draws.len()
    }
}

impl Noise for Replay {
    fn draw(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let t = self.draws.pop_front().ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "replay: draw {} asked for but only {} recorded",
                self.taken + 1,
                self.taken
            ))
        })?;
        if t.dims() != shape {
            candle_core::bail!(
                "replay: draw {} has shape {:?}, the pipeline asked for {:?}",
                self.taken,
                t.dims(),
                shape
            );
        }
        self.taken += 1;
        t.to_device(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_noise_is_standard_normal_and_repeatable() {
        let dev = Device::Cpu;
        let a = Seeded::new(7).draw(&[4, 64, 64], &dev).unwrap();
        let b = Seeded::new(7).draw(&[4, 64, 64], &dev).unwrap();
        let c = Seeded::new(8).draw(&[4, 64, 64], &dev).unwrap();
        let v = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v, b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_ne!(v, c.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_stream() {
        // Vigna's splitmix64.c from state 0.
        let mut r = SplitMix64::from_state(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(r.next_u64(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn scaled_zero_draws_nothing() {
        let mut a = Seeded::new(3);
        let mut b = Seeded::new(3);
        assert_eq!(a.scaled(5, 0.0), vec![0.0; 5]);
        assert_eq!(a.normal(), b.normal());
        let v = b.scaled(4, 2.0);
        assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0));
    }
}
