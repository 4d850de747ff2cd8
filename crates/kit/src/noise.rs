//! Where a run's randomness comes from: a seed, or (in parity tests) the draws a reference run
//! recorded, replayed in order. Pipelines draw exactly when diffusers' pipelines draw, so a
//! recorded run replays step for step.

use std::collections::VecDeque;

use candle_core::{Device, Result, Tensor};

pub trait Noise {
    /// Standard normal noise of `shape` (f32).
    fn draw(&mut self, shape: &[usize], device: &Device) -> Result<Tensor>;
}

/// A seeded standard normal stream (splitmix64 + Box–Muller): the same seed gives the same
/// image on every machine and device.
pub struct Seeded {
    state: u64,
    spare: Option<f32>,
}

impl Seeded {
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed ^ 0x5eed_d1ff_u64,
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        // (0, 1]: never 0, so ln() is finite.
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let a = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some((r * a.sin()) as f32);
        (r * a.cos()) as f32
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
