//! Where the model crates' parity tests run: `REELSMITH_TEST_DEVICE` (cpu, cuda, cuda:N; default
//! cpu) and `REELSMITH_TEST_DTYPE` (`f32`, the default, or `production`: the half type the
//! network runs in on that device, see [`compute_dtype`]). `scripts/gpu-check.sh` runs every
//! crate's tests both ways on a GPU.
//!
//! Tolerances are stated once here. A test states its CPU f32 limits (rel-L2, max|Δ|/max|ref|);
//! on CUDA in f32 they widen 10× (cuBLAS/cuDNN reorder sums; TF32 stays off in candle), in f16 to
//! at least 1e-2 rel-L2 / 5e-2 max (11-bit mantissa through dozens of layers), in bf16 to
//! 3e-2 / 1e-1 (8-bit mantissa).

use candle_core::{DType, Device};

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
}
