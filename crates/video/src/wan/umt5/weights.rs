//! Reading the encoders' checkpoints: safetensors (one file or shards) and PyTorch `.pth` zips
//! (the official Wan release), by name, with ComfyUI's scaled-fp8 weights dequantized.
//!
//! ComfyUI's `*_fp8_e4m3fn_scaled.safetensors` files store each linear weight in float8_e4m3fn
//! next to a float32 scalar `<layer>.scale_weight` (and the marker tensor `scaled_fp8`); the
//! real weight is `weight · scale_weight` (ComfyUI `ops.scaled_fp8_ops`). Newer ComfyUI
//! quantized files name the scalar `<layer>.weight_scale`. Both are applied here; an fp8 weight
//! without a scale is read as is (scale 1, as ComfyUI's plain fp8 files).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::VideoError;

type Result<T> = std::result::Result<T, VideoError>;

enum Source {
    Safetensors(MmapedSafetensors),
    Pth(candle_core::pickle::PthTensors),
}

/// The tensors of one checkpoint (a `.pth`, or one or more `.safetensors` shards).
pub struct WeightFiles {
    label: String,
    names: HashSet<String>,
    source: Source,
}

pub(crate) fn weights_err(path: impl std::fmt::Display, message: impl Into<String>) -> VideoError {
    VideoError::Weights {
        path: path.to_string(),
        message: message.into(),
    }
}

impl WeightFiles {
    /// Opens the files: all `.safetensors`, or a single `.pth`/`.pt`/`.bin` (PyTorch zip).
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Result<Self> {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        let Some(first) = paths.first() else {
            return Err(weights_err("(none)", "no weight files given"));
        };
        let label = if paths.len() == 1 {
            first.display().to_string()
        } else {
            format!("{} (+{} shards)", first.display(), paths.len() - 1)
        };
        let is_pth = |p: &Path| {
            p.extension()
                .is_some_and(|x| x == "pth" || x == "pt" || x == "bin" || x == "ckpt")
        };
        if is_pth(first) {
            if paths.len() > 1 {
                return Err(weights_err(
                    &label,
                    "only one .pth file can be read at a time",
                ));
            }
            let pth = candle_core::pickle::PthTensors::new(first, None)
                .map_err(|e| weights_err(&label, format!("not a PyTorch checkpoint: {e}")))?;
            let names = pth.tensor_infos().keys().cloned().collect();
            return Ok(Self {
                label,
                names,
                source: Source::Pth(pth),
            });
        }
        // SAFETY: mapped read-only; the files are not expected to change while the model lives.
        let st = unsafe { MmapedSafetensors::multi(&paths) }
            .map_err(|e| weights_err(&label, format!("not a safetensors file: {e}")))?;
        let names = st.tensors().into_iter().map(|(n, _)| n).collect();
        Ok(Self {
            label,
            names,
            source: Source::Safetensors(st),
        })
    }

    /// The file(s), for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    fn raw(&self, name: &str) -> Result<Tensor> {
        if !self.contains(name) {
            return Err(weights_err(&self.label, format!("missing tensor {name:?}")));
        }
        let t = match &self.source {
            Source::Safetensors(st) => st.load(name, &Device::Cpu),
            Source::Pth(p) => p
                .get(name)
                .and_then(|t| t.ok_or_else(|| candle_core::Error::Msg("absent".into()))),
        };
        t.map_err(|e| weights_err(&self.label, format!("tensor {name:?}: {e}")))
    }

    /// The tensor `name` in `dtype` on `device` (fp8 weights dequantized with their scale).
    pub fn get(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let t = self.raw(name)?;
        let t = if matches!(t.dtype(), DType::F8E4M3) {
            let t = t.to_dtype(DType::F32)?;
            let base = name.strip_suffix("weight").unwrap_or(name);
            let scale = [format!("{base}scale_weight"), format!("{base}weight_scale")]
                .into_iter()
                .find(|s| self.contains(s));
            match scale {
                Some(s) => {
                    let scale = self.raw(&s)?.to_dtype(DType::F32)?.flatten_all()?;
                    if scale.elem_count() != 1 {
                        return Err(weights_err(
                            &self.label,
                            format!(
                                "{s:?} holds {} values (only per-tensor scales are read)",
                                scale.elem_count()
                            ),
                        ));
                    }
                    t.broadcast_mul(&scale)?
                }
                None => t,
            }
        } else {
            t
        };
        Ok(t.to_dtype(dtype)?.to_device(device)?)
    }

    /// [`WeightFiles::get`] that also checks the shape.
    pub fn get_shaped(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let t = self.get(name, dtype, device)?;
        if t.dims() != shape {
            return Err(weights_err(
                &self.label,
                format!(
                    "tensor {name:?} has shape {:?}, expected {shape:?}",
                    t.dims()
                ),
            ));
        }
        Ok(t)
    }
}

/// The weight files of `path`: a folder's `*.safetensors` (sorted), or the file itself.
pub(crate) fn files_of(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| weights_err(path.display(), e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(weights_err(
                path.display(),
                "no .safetensors weights in this folder",
            ));
        }
        Ok(files)
    } else if path.is_file() {
        Ok(vec![path.to_path_buf()])
    } else {
        Err(weights_err(path.display(), "no such file or folder"))
    }
}

/// `config.json` in the folder, or beside the file.
///
/// A `config.json` beside a single file is taken only when it holds `key` (the encoder's own
/// config): in the official Wan release the `config.json` next to the encoders' `.pth` files is
/// the transformer's, and the encoders are then the released shapes (the caller's default).
pub(crate) fn config_of(path: &Path, key: &str) -> Option<PathBuf> {
    if path.is_dir() {
        let c = path.join("config.json");
        return c.is_file().then_some(c);
    }
    let c = path.with_file_name("config.json");
    let text = std::fs::read_to_string(&c).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    (json.get(key).is_some()
        || json
            .get("vision_config")
            .is_some_and(|v| v.get(key).is_some()))
    .then_some(c)
}
