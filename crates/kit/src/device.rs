//! Where a model runs and in which precision.
//!
//! The policy every model crate states: the CPU computes in f32 (half precision is emulated
//! there and slower); CUDA computes in the half type the reference implementation uses for that
//! network — f16 for Whisper, VITS and Stable Diffusion, bf16 for FLUX and most LLMs, whose
//! activations overflow f16 — and keeps in f32 what the reference keeps in f32.

use candle_core::{DType, Device};

/// The half type a network's reference runs in on a GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// IEEE half (Whisper, VITS, SD 1.x/2.x/XL UNets).
    F16,
    /// bfloat16 (FLUX, LLMs, video transformers).
    Bf16,
    /// Full precision everywhere (networks that are unstable in half).
    F32,
}

/// The dtype to compute in: f32 on the CPU, the network's half type on an accelerator.
pub fn compute_dtype(device: &Device, precision: Precision) -> DType {
    if device.is_cpu() {
        return DType::F32;
    }
    match precision {
        Precision::F16 => DType::F16,
        Precision::Bf16 => DType::BF16,
        Precision::F32 => DType::F32,
    }
}

/// Why a device name could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{0}: use cpu, cuda or cuda:N")]
    Unknown(String),
    #[error(
        "{0}: this reelsmith was built without CUDA; rebuild with `cargo build --release --features cuda` (needs the CUDA toolkit), or use --device cpu"
    )]
    NoCuda(String),
    #[error("{name}: {source}")]
    Cuda {
        name: String,
        #[source]
        source: candle_core::Error,
    },
}

/// Opens `cpu`, `cuda` (GPU 0) or `cuda:N`.
pub fn parse_device(name: &str) -> Result<Device, DeviceError> {
    let lower = name.trim().to_ascii_lowercase();
    let ordinal = match lower.as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" | "gpu" => 0,
        other => match other
            .strip_prefix("cuda:")
            .or_else(|| other.strip_prefix("gpu:"))
            .map(str::parse::<usize>)
        {
            Some(Ok(n)) => n,
            _ => return Err(DeviceError::Unknown(name.to_string())),
        },
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(DeviceError::NoCuda(name.to_string()));
    }
    Device::new_cuda(ordinal).map_err(|source| DeviceError::Cuda {
        name: name.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_always_computes_in_f32() {
        for p in [Precision::F16, Precision::Bf16, Precision::F32] {
            assert_eq!(compute_dtype(&Device::Cpu, p), DType::F32);
        }
    }

    #[test]
    fn device_names() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device(" CPU ").unwrap().is_cpu());
        assert!(matches!(
            parse_device("tpu"),
            Err(DeviceError::Unknown(n)) if n == "tpu"
        ));
        assert!(matches!(
            parse_device("cuda:x"),
            Err(DeviceError::Unknown(_))
        ));
        if !candle_core::utils::cuda_is_available() {
            let e = parse_device("cuda:1").unwrap_err();
            assert!(e.to_string().contains("--features cuda"), "{e}");
        }
    }
}
