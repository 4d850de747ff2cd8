//! Randomness and noise: the splitmix64 PRNG, value noise, fBm and a cached noise field.

use super::*;

use reelsmith_kit::noise::{mix64, SplitMix64};

/// The painter's generator: splitmix64 (shared with the model crates) from a mixed seed.
pub(super) struct Rng(SplitMix64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(SplitMix64::from_state(mix64(seed ^ 0x5DEE_CE66_D1CE_4E5B)))
    }
    /// Uniform in [0, 1).
    pub(super) fn f(&mut self) -> f32 {
        self.0.unit_f32()
    }
    pub(super) fn range(&mut self, a: f32, b: f32) -> f32 {
        a + (b - a) * self.f()
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0.below(n)
    }
    pub(super) fn chance(&mut self, p: f32) -> bool {
        self.0.chance(p)
    }
}

pub(super) fn hash2(ix: i32, iy: i32, seed: u64) -> f32 {
    let k = mix64(
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (ix as u32 as u64) ^ ((iy as u32 as u64) << 32),
    );
    (k >> 40) as f32 * (1.0 / 16_777_216.0)
}

/// Smooth value noise in [0, 1], one lattice cell per unit.
fn vnoise(x: f32, y: f32, seed: u64) -> f32 {
    let (xf, yf) = (ffloor(x), ffloor(y));
    let (ix, iy) = (xf as i32, yf as i32);
    let (fx, fy) = (x - xf, y - yf);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let a = hash2(ix, iy, seed);
    let b = hash2(ix + 1, iy, seed);
    let c = hash2(ix, iy + 1, seed);
    let d = hash2(ix + 1, iy + 1, seed);
    lerp(lerp(a, b, sx), lerp(c, d, sx), sy)
}

pub(super) fn fbm(x: f32, y: f32, seed: u64, octaves: u32) -> f32 {
    let (mut sum, mut amp, mut norm, mut f) = (0.0, 1.0, 0.0, 1.0);
    for o in 0..octaves {
        sum += amp
            * vnoise(
                x * f + o as f32 * 17.3,
                y * f - o as f32 * 9.1,
                seed + o as u64,
            );
        norm += amp;
        amp *= 0.5;
        f *= 2.03;
    }
    sum / norm
}

/// A scalar field sampled on a coarse grid and bilinearly interpolated: cheap per pixel and
/// smooth at the pixel scale.
pub(super) struct Field {
    gw: usize,
    gh: usize,
    inv: f32,
    v: Vec<f32>,
}

impl Field {
    pub(super) fn new<F: Fn(f32, f32) -> f32>(w: f32, h: f32, step: f32, f: F) -> Field {
        let step = step.max(1.0);
        let gw = (w / step).ceil() as usize + 2;
        let gh = (h / step).ceil() as usize + 2;
        let mut v = Vec::with_capacity(gw * gh);
        for j in 0..gh {
            for i in 0..gw {
                v.push(f(i as f32 * step, j as f32 * step));
            }
        }
        Field {
            gw,
            gh,
            inv: 1.0 / step,
            v,
        }
    }

    #[inline(always)]
    pub(super) fn at(&self, x: f32, y: f32) -> f32 {
        let gx = (x * self.inv).max(0.0);
        let gy = (y * self.inv).max(0.0);
        let ix = (gx as usize).min(self.gw - 2);
        let iy = (gy as usize).min(self.gh - 2);
        let fx = (gx - ix as f32).min(1.0);
        let fy = (gy - iy as f32).min(1.0);
        let i = iy * self.gw + ix;
        let top = lerp(self.v[i], self.v[i + 1], fx);
        let bot = lerp(self.v[i + self.gw], self.v[i + self.gw + 1], fx);
        lerp(top, bot, fy)
    }
}
