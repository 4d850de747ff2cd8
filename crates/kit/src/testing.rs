//! Where the model crates' parity tests run: `REELSMITH_TEST_DEVICE` (cpu, cuda, cuda:N; default
//! cpu) and `REELSMITH_TEST_DTYPE` (`f32`, the default, or `production`: the half type the
//! network runs in on that device, see [`compute_dtype`]). `scripts/gpu-check.sh` runs every
//! crate's tests both ways on a GPU.
//!
//! Tolerances are stated once here. A test states its CPU f32 limits (rel-L2, max|Δ|/max|ref|);
//! on CUDA in f32 they widen 10× (cuBLAS/cuDNN reorder sums; TF32 stays off in candle), in f16 to
//! at least 1e-2 rel-L2 / 5e-2 max (11-bit mantissa through dozens of layers), in bf16 to
//! 3e-2 / 1e-1 (8-bit mantissa).

use candle_core::{DType, Device, Tensor};

use crate::device::{compute_dtype, parse_device, Precision};

/// The device and dtype a parity test runs in.
#[derive(Clone, Debug)]
pub struct TestDevice {
    pub device: Device,
    /// Run in the network's production dtype instead of f32.
    pub production: bool,
}

impl TestDevice {
    /// From the environment (panics with a clear message on a bad value: tests only).
    pub fn from_env() -> Self {
        let name = std::env::var("REELSMITH_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
        let device =
            parse_device(&name).unwrap_or_else(|e| panic!("REELSMITH_TEST_DEVICE={name}: {e}"));
        let production = match std::env::var("REELSMITH_TEST_DTYPE").as_deref() {
            Err(_) | Ok("f32") | Ok("") => false,
            Ok("production") => true,
            Ok(other) => panic!("REELSMITH_TEST_DTYPE={other}: use f32 or production"),
        };
        Self { device, production }
    }

    /// The dtype a network whose reference runs in `precision` is tested in.
    pub fn dtype(&self, precision: Precision) -> DType {
        if self.production {
            compute_dtype(&self.device, precision)
        } else {
            DType::F32
        }
    }

    /// The (rel-L2, max|Δ|/max|ref|) limits for a result computed in `dtype`, from the CPU f32
    /// limits a test states.
    pub fn limits(&self, dtype: DType, rel: f64, max: f64) -> (f64, f64) {
        match dtype {
            DType::F16 => (rel.max(1e-2), max.max(5e-2)),
            DType::BF16 => (rel.max(3e-2), max.max(1e-1)),
            _ if self.device.is_cpu() => (rel, max),
            _ => (rel * 10.0, max * 10.0),
        }
    }
}

/// Relative L2 error and max|Δ|/max|reference| of `got` against `want` (computed in f64).
pub fn errors(got: &Tensor, want: &Tensor) -> candle_core::Result<(f64, f64)> {
    let flat = |t: &Tensor| t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>();
    let (g, w) = (flat(got)?, flat(want)?);
    let (mut num, mut den, mut max_d, mut max_r) = (0.0, 0.0, 0.0f64, 0.0f64);
    for (a, b) in g.iter().zip(&w) {
        num += (a - b) * (a - b);
        den += b * b;
        max_d = max_d.max((a - b).abs());
        max_r = max_r.max(b.abs());
    }
    Ok(((num / den.max(1e-30)).sqrt(), max_d / max_r.max(1e-30)))
}

impl TestDevice {
    /// Asserts `got` matches `want` in shape and within the CPU f32 limits `rel` (rel-L2) and
    /// `max` (max|Δ|/max|ref|), widened for `got`'s dtype and this device ([`TestDevice::limits`]);
    /// prints the measured errors (`-- --nocapture`).
    pub fn assert_close(&self, what: &str, got: &Tensor, want: &Tensor, rel: f64, max: f64) {
        assert_eq!(got.dims(), want.dims(), "{what}: shape");
        let (rel_limit, max_limit) = self.limits(got.dtype(), rel, max);
        let (r, m) = errors(got, want).unwrap_or_else(|e| panic!("{what}: {e}"));
        println!("{what}: rel-L2 {r:.2e}, max|Δ|/max|ref| {m:.2e}");
        assert!(r <= rel_limit, "{what}: rel-L2 {r:.3e} > {rel_limit:.0e}");
        assert!(
            m <= max_limit,
            "{what}: max|Δ|/max|ref| {m:.3e} > {max_limit:.0e}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_widen_with_precision_only() {
        let cpu = TestDevice {
            device: Device::Cpu,
            production: true,
        };
        assert_eq!(cpu.dtype(Precision::Bf16), DType::F32);
        assert_eq!(cpu.limits(DType::F32, 1e-4, 1e-3), (1e-4, 1e-3));
        assert_eq!(cpu.limits(DType::F16, 1e-4, 1e-3), (1e-2, 5e-2));
        assert_eq!(cpu.limits(DType::BF16, 1e-4, 1e-3), (3e-2, 1e-1));
    }

    #[test]
    fn errors_measure_relative_l2_and_max() {
        let want = Tensor::new(&[1f32, -2.0, 2.0], &Device::Cpu).unwrap();
        let got = Tensor::new(&[1f32, -2.0, 2.5], &Device::Cpu).unwrap();
        let (r, m) = errors(&got, &want).unwrap();
        assert!((r - 0.5 / 3.0).abs() < 1e-12, "{r}");
        assert!((m - 0.25).abs() < 1e-12, "{m}");
        assert_eq!(errors(&want, &want).unwrap(), (0.0, 0.0));
    }
}
