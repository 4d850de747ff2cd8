//! Reading post-network weights as users have them: PyTorch `.pth` pickles (Real-ESRGAN nests
//! its state dict under `params_ema` or `params`; RIFE's keys carry DataParallel's `module.`),
//! `.safetensors` conversions, and ncnn `.param`/`.bin` pairs ([`ncnn`]).

pub mod ncnn;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::{PostError, Result};

/// Tensors by name, as stored.
pub type Tensors = HashMap<String, Tensor>;

/// The sub-dictionaries a training checkpoint may keep its weights under, in the order a
/// reader should prefer them (EMA weights are the ones Real-ESRGAN publishes for inference).
const STATE_KEYS: [&str; 4] = ["params_ema", "params", "state_dict", "model"];

/// The tensors of a `.pth`/`.pt`/`.pkl`/`.ckpt` pickle or a `.safetensors` file on `device`,
/// in their stored dtype, with a leading `module.` (DataParallel) removed from every name.
pub fn read_tensors(path: &Path, device: &Device) -> Result<Tensors> {
    let fail = |message: String| PostError::Weights {
        path: path.display().to_string(),
        message,
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    let raw: Vec<(String, Tensor)> = match ext.as_str() {
        "safetensors" => candle_core::safetensors::load(path, device)
            .map_err(|e| fail(format!("not a readable safetensors file: {e}")))?
            .into_iter()
            .collect(),
        "pth" | "pt" | "pkl" | "ckpt" | "bin" => {
            read_pickle(path).map_err(|e| fail(format!("not a readable PyTorch file: {e}")))?
        }
        other => {
            return Err(fail(format!(
                "unknown weights format `.{other}`: expected .pth, .pt, .pkl, .ckpt or \
                 .safetensors (ncnn models are a .param/.bin pair: pass the .param)"
            )))
        }
    };
    if raw.is_empty() {
        return Err(fail("holds no tensors".into()));
    }
    let mut out = Tensors::with_capacity(raw.len());
    for (name, t) in raw {
        let t = t.to_device(device)?;
        let name = name.strip_prefix("module.").unwrap_or(&name).to_string();
        out.insert(name, t);
    }
    Ok(out)
}

/// The state dict of a torch zip pickle: under one of [`STATE_KEYS`] when the file nests it,
/// else the top-level dictionary.
fn read_pickle(path: &Path) -> candle_core::Result<Vec<(String, Tensor)>> {
    for key in STATE_KEYS {
        // An absent key is an error from candle; only a present one yields tensors.
        if let Ok(infos) = candle_core::pickle::read_pth_tensor_info(path, false, Some(key)) {
            if !infos.is_empty() {
                return candle_core::pickle::read_all_with_key(path, Some(key));
            }
        }
    }
    candle_core::pickle::read_all_with_key(path, None)
}

/// The tensor `name`, or an error naming the file and the tensor.
pub fn take<'a>(t: &'a Tensors, name: &str, path: &str) -> Result<&'a Tensor> {
    t.get(name).ok_or_else(|| PostError::Weights {
        path: path.to_string(),
        message: format!("tensor `{name}` is missing"),
    })
}
