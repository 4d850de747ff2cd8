//! The rotary position embedding of LTX-Video (diffusers `LTXVideoRotaryPosEmbed` and
//! `apply_rotary_emb`).
//!
//! Every token has three fractional coordinates (frame, row, column) normalised by a fixed base
//! grid (20 frames, 2048 × 2048 pixels). Each coordinate turns `dim / 6` frequencies into phases;
//! the phases of the three axes are interleaved per frequency, each phase used for one pair of
//! channels, and the `dim % 6` channels left over at the front are not rotated (cos 1, sin 0).
//! The rotation covers the whole inner dimension of q and k, across heads, before they are split.
//!
//! Everything is f32 whatever the compute dtype, in the reference's order of operations: phases
//! reach ±10⁴ rad at the highest frequency, where one f32 ulp is ~10⁻³ rad, so the same values
//! must be rounded the same way to land on the same angles.

use candle_core::{DType, Device, Result, Tensor};

/// The base grid positions are divided by (fixed in `LTXVideoTransformer3DModel`).
const BASE_FRAMES: f32 = 20.0;
const BASE_HEIGHT: f32 = 2048.0;
const BASE_WIDTH: f32 = 2048.0;
const THETA: f64 = 10000.0;

/// Where the tokens of a call sit in the video.
#[derive(Clone, Debug)]
pub enum Positions {
    /// A whole `frames × height × width` latent grid (sizes after patchification), tokens in
    /// frame-major, then row, then column order — the plain text-to-video path
    /// (`LTXPipeline`). Token `(f, h, w)` sits at
    /// `(f · s_t · patch_t, h · s_h · patch, w · s_w · patch)` before normalisation, where
    /// `rope_interpolation_scale = (s_t, s_h, s_w)` is
    /// `(vae_temporal_compression / frame_rate, vae_spatial_compression, vae_spatial_compression)`.
    Grid {
        frames: usize,
        height: usize,
        width: usize,
        rope_interpolation_scale: (f64, f64, f64),
    },
    /// Explicit per-token coordinates `[B or 1, 3, S]` (frame, row, column), already scaled the
    /// way `LTXConditionPipeline` passes `video_coords` (pixel units, frames in seconds × base
    /// rate, conditioning tokens at their own positions).
    Coords(Tensor),
}

/// The cos/sin tables of one call, `[B or 1, S, dim]` f32.
#[derive(Clone, Debug)]
pub(crate) struct Rope {
    cos: Tensor,
    sin: Tensor,
}

/// `torch.linspace(0, 1, n)` in f32, the way PyTorch's CPU kernel computes it (step in f32,
/// the second half counted back from the end).
fn linspace_unit(n: usize) -> Vec<f32> {
    match n {
        0 => Vec::new(),
        1 => vec![0.0],
        _ => {
            let step = 1.0f32 / (n - 1) as f32;
            let half = n / 2;
            (0..n)
                .map(|i| {
                    if i < half {
                        step * i as f32
                    } else {
                        1.0 - step * (n - 1 - i) as f32
                    }
                })
                .collect()
        }
    }
}

/// The `dim / 6` angular frequencies: `θ^linspace(0, 1) · π / 2`, each step rounded to f32.
fn frequencies(n: usize) -> Vec<f32> {
    linspace_unit(n)
        .into_iter()
        .map(|t| {
            let f = THETA.powf(t as f64) as f32;
            (f * std::f32::consts::PI) / 2.0
        })
        .collect()
}

/// The normalised grid `[1, S, 3]` of a whole latent video.
fn grid_coords(
    frames: usize,
    height: usize,
    width: usize,
    scale: (f64, f64, f64),
    patch: (usize, usize),
    device: &Device,
) -> Result<Tensor> {
    let (patch_t, patch_s) = (patch.0 as f32, patch.1 as f32);
    let (st, sh, sw) = (scale.0 as f32, scale.1 as f32, scale.2 as f32);
    let mut v = Vec::with_capacity(frames * height * width * 3);
    for f in 0..frames {
        let gf = (f as f32 * st * patch_t) / BASE_FRAMES;
        for h in 0..height {
            let gh = (h as f32 * sh * patch_s) / BASE_HEIGHT;
            for w in 0..width {
                let gw = (w as f32 * sw * patch_s) / BASE_WIDTH;
                v.extend_from_slice(&[gf, gh, gw]);
            }
        }
    }
    Tensor::from_vec(v, (1, frames * height * width, 3), device)
}

impl Rope {
    /// The tables for `seq` tokens of a batch of `batch` over `dim` channels.
    pub(crate) fn new(
        positions: &Positions,
        batch: usize,
        seq: usize,
        dim: usize,
        patch: (usize, usize),
        device: &Device,
    ) -> Result<Self> {
        let grid = match positions {
            Positions::Grid {
                frames,
                height,
                width,
                rope_interpolation_scale,
            } => {
                if frames * height * width != seq {
                    candle_core::bail!(
                        "ltx transformer: a {frames}×{height}×{width} grid is {} tokens, the input has {seq}",
                        frames * height * width
                    );
                }
                grid_coords(
                    *frames,
                    *height,
                    *width,
                    *rope_interpolation_scale,
                    patch,
                    device,
                )?
            }
            Positions::Coords(coords) => {
                let (cb, axes, cs) = coords.dims3()?;
                if axes != 3 || cs != seq || (cb != batch && cb != 1) {
                    candle_core::bail!(
                        "ltx transformer: video coords are {:?}, expected [{batch} or 1, 3, {seq}]",
                        coords.dims()
                    );
                }
                let base = Tensor::new(&[BASE_FRAMES, BASE_HEIGHT, BASE_WIDTH], device)?
                    .reshape((1, 3, 1))?;
                // True division (not a multiplication by the reciprocal), as the reference.
                coords
                    .to_device(device)?
                    .to_dtype(DType::F32)?
                    .broadcast_div(&base)?
                    .transpose(1, 2)?
            }
        };
        let rows = grid.dim(0)?;
        let n = dim / 6;
        let pad = dim % 6;
        let (cos, sin) = if n == 0 {
            (
                Tensor::ones((rows, seq, dim), DType::F32, device)?,
                Tensor::zeros((rows, seq, dim), DType::F32, device)?,
            )
        } else {
            let freqs = Tensor::from_vec(frequencies(n), (1, 1, 1, n), device)?;
            // [rows, S, 3, n] → [rows, S, n, 3]: per frequency, the three axes in turn.
            let phase = grid
                .affine(2.0, -1.0)?
                .unsqueeze(3)?
                .broadcast_mul(&freqs)?
                .transpose(2, 3)?
                .contiguous()?
                .reshape((rows, seq, 3 * n))?;
            // Each phase drives one (real, imaginary) channel pair.
            let pairs = |t: Tensor| -> Result<Tensor> {
                t.unsqueeze(3)?
                    .broadcast_as((rows, seq, 3 * n, 2))?
                    .contiguous()?
                    .reshape((rows, seq, 6 * n))
            };
            let mut cos = pairs(phase.cos()?)?;
            let mut sin = pairs(phase.sin()?)?;
            if pad > 0 {
                let ones = Tensor::ones((rows, seq, pad), DType::F32, device)?;
                let zeros = Tensor::zeros((rows, seq, pad), DType::F32, device)?;
                cos = Tensor::cat(&[&ones, &cos], 2)?;
                sin = Tensor::cat(&[&zeros, &sin], 2)?;
            }
            (cos, sin)
        };
        Ok(Self { cos, sin })
    }

    /// Rotates `x` `[B, S, dim]` (channel pairs `(2i, 2i+1)` as complex numbers), in f32,
    /// returning `x`'s dtype.
    pub(crate) fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (b, s, d) = x.dims3()?;
        if d % 2 != 0 {
            candle_core::bail!("ltx transformer: rotary embedding over an odd dimension {d}");
        }
        let pairs = x.reshape((b, s, d / 2, 2))?;
        let re = pairs.narrow(3, 0, 1)?;
        let im = pairs.narrow(3, 1, 1)?;
        let rotated = Tensor::cat(&[&im.neg()?, &re], 3)?
            .reshape((b, s, d))?
            .to_dtype(DType::F32)?;
        let xf = x.to_dtype(DType::F32)?;
        (xf.broadcast_mul(&self.cos)? + rotated.broadcast_mul(&self.sin)?)?.to_dtype(x.dtype())
    }

    /// `(cos, sin)`, `[B or 1, S, dim]` f32.
    pub(crate) fn tables(&self) -> (&Tensor, &Tensor) {
        (&self.cos, &self.sin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_torch_endpoints() {
        assert_eq!(linspace_unit(1), vec![0.0]);
        assert_eq!(linspace_unit(2), vec![0.0, 1.0]);
        let v = linspace_unit(5);
        assert_eq!(v, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        let f = frequencies(2);
        assert_eq!(f[0], std::f32::consts::PI / 2.0);
        assert_eq!(f[1], (10000.0f32 * std::f32::consts::PI) / 2.0);
    }

    #[test]
    fn padding_channels_are_not_rotated() -> Result<()> {
        let dev = Device::Cpu;
        // dim 16: 2 frequencies × 3 axes × 2 = 12 rotated channels, 4 left at the front.
        let pos = Positions::Grid {
            frames: 2,
            height: 2,
            width: 3,
            rope_interpolation_scale: (0.32, 32.0, 32.0),
        };
        let rope = Rope::new(&pos, 1, 12, 16, (1, 1), &dev)?;
        let (cos, sin) = rope.tables();
        assert_eq!(cos.dims(), &[1, 12, 16]);
        let c = cos.narrow(2, 0, 4)?.flatten_all()?.to_vec1::<f32>()?;
        let s = sin.narrow(2, 0, 4)?.flatten_all()?.to_vec1::<f32>()?;
        assert!(c.iter().all(|&v| v == 1.0) && s.iter().all(|&v| v == 0.0));
        // Token 0 sits at grid (0, 0, 0) → 2g − 1 = −1 on every axis: phase −f.
        let c0 = cos.get(0)?.get(0)?.to_vec1::<f32>()?;
        let want = (-std::f32::consts::PI / 2.0).cos();
        assert_eq!(c0[4], want);
        assert_eq!(c0[5], want);
        // Rotation preserves each pair's norm.
        let x = Tensor::randn(0f32, 1.0, (1, 12, 16), &dev)?;
        let y = rope.apply(&x)?;
        let nx = x.sqr()?.sum_all()?.to_scalar::<f32>()?;
        let ny = y.sqr()?.sum_all()?.to_scalar::<f32>()?;
        assert!((nx - ny).abs() <= 1e-4 * nx);
        Ok(())
    }
}
