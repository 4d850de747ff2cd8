//! Reader for CTranslate2 `model.bin` files (the format faster-whisper uses).
//!
//! The file is a flat little-endian binary:
//!
//! ```text
//! u32  binary_version            (4..=6 supported)
//! str  spec name                 (version >= 2; e.g. "WhisperSpec")
//! u32  spec revision             (version >= 2)
//! u32  number of variables
//!   str  name                    (e.g. "encoder/layer_0/ffn/linear_0/weight")
//!   u8   rank
//!   u32  dims[rank]
//!   u8   dtype id                (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16)
//!   u32  number of bytes
//!   ..   raw data
//! u32  number of aliases         (version >= 3)
//!   str  alias name
//!   str  target variable name
//! ```
//!
//! where `str` is a `u16` byte length followed by that many bytes, the last of
//! which is a NUL terminator.
//!
//! Quantized weights (`int8`/`int16`) come with a companion `<name>_scale`
//! array holding one scale per output row; [`Ct2Model::tensor`] dequantizes
//! them as `value / scale`.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::WhisperError;

/// Oldest and newest `model.bin` binary versions this reader understands.
const MIN_BINARY_VERSION: u32 = 4;
const MAX_BINARY_VERSION: u32 = 6;

/// Element type of a stored array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2DType {
    /// IEEE 754 single precision.
    F32,
    /// Signed 8-bit integer (quantized weights or flags).
    I8,
    /// Signed 16-bit integer (quantized weights or small scalars).
    I16,
    /// Signed 32-bit integer.
    I32,
    /// IEEE 754 half precision.
    F16,
    /// bfloat16.
    BF16,
}

impl Ct2DType {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::BF16,
            _ => return None,
        })
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::BF16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

/// Metadata of one named array; the bytes live in the model's buffer.
#[derive(Debug, Clone)]
pub struct Ct2Array {
    /// Dimensions (empty for scalars).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: Ct2DType,
    bytes: Range<usize>,
}

impl Ct2Array {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parsed CTranslate2 model file.
#[derive(Debug)]
pub struct Ct2Model {
    path: PathBuf,
    /// Model specification name, e.g. `WhisperSpec`.
    pub spec: String,
    /// Specification revision.
    pub revision: u32,
    /// Binary format version.
    pub binary_version: u32,
    buf: Vec<u8>,
    vars: HashMap<String, Ct2Array>,
    aliases: HashMap<String, String>,
}

/// Little-endian cursor over the file bytes with error reporting.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, msg: String) -> WhisperError {
        WhisperError::ModelFormat {
            path: self.path.to_path_buf(),
            msg,
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WhisperError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.err(format!(
                "file truncated: needed {n} bytes for {what} at offset {}, only {} left \
                 (file is {} bytes)",
                self.pos,
                self.buf.len().saturating_sub(self.pos),
                self.buf.len()
            ))),
        }
    }

    fn u8(&mut self, what: &str) -> Result<u8, WhisperError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, WhisperError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, WhisperError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Result<String, WhisperError> {
        let len = self.u16(what)? as usize;
        let start = self.pos;
        let raw = self.take(len, what)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec())
            .map_err(|_| self.err(format!("{what} at offset {start} is not valid UTF-8")))
    }
}

impl Ct2Model {
    /// Reads and parses `path`.
    pub fn open(path: &Path) -> Result<Self, WhisperError> {
        let buf = std::fs::read(path).map_err(|source| WhisperError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(buf, path)
    }

    /// Parses an in-memory copy of a `model.bin`; `path` is used in errors.
    pub fn parse(buf: Vec<u8>, path: &Path) -> Result<Self, WhisperError> {
        let mut c = Cursor {
            buf: &buf,
            pos: 0,
            path,
        };
        let binary_version = c.u32("binary version")?;
        if !(MIN_BINARY_VERSION..=MAX_BINARY_VERSION).contains(&binary_version) {
            return Err(c.err(format!(
                "unsupported CTranslate2 binary version {binary_version} (supported: \
                 {MIN_BINARY_VERSION}..={MAX_BINARY_VERSION}); is this a CTranslate2 model.bin?"
            )));
        }
        let spec = c.string("spec name")?;
        let revision = c.u32("spec revision")?;
        let num_vars = c.u32("variable count")? as usize;
        // Every variable needs at least 2+1+1+4 bytes: reject absurd counts early.
        if num_vars > buf.len() / 8 {
            return Err(c.err(format!(
                "variable count {num_vars} is impossible for a {} byte file",
                buf.len()
            )));
        }
        let mut vars = HashMap::with_capacity(num_vars);
        for i in 0..num_vars {
            let name = c.string(&format!("name of variable #{i}"))?;
            let rank = c.u8(&format!("rank of '{name}'"))? as usize;
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(c.u32(&format!("shape of '{name}'"))? as usize);
            }
            let type_id = c.u8(&format!("dtype of '{name}'"))?;
            let dtype = Ct2DType::from_id(type_id).ok_or_else(|| {
                c.err(format!("variable '{name}' has unknown dtype id {type_id}"))
            })?;
            let num_bytes = c.u32(&format!("byte count of '{name}'"))? as usize;
            let expected = shape
                .iter()
                .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
            if expected != Some(num_bytes) {
                return Err(c.err(format!(
                    "variable '{name}' with shape {shape:?} and dtype {dtype:?} declares \
                     {num_bytes} bytes, expected {expected:?}"
                )));
            }
            let start = c.pos;
            c.take(num_bytes, &format!("data of '{name}'"))?;
            vars.insert(
                name,
                Ct2Array {
                    shape,
                    dtype,
                    bytes: start..start + num_bytes,
                },
            );
        }
        let mut aliases = HashMap::new();
        if binary_version >= 3 {
            let n = c.u32("alias count")? as usize;
            for i in 0..n {
                let alias = c.string(&format!("alias #{i}"))?;
                let target = c.string(&format!("target of alias '{alias}'"))?;
                aliases.insert(alias, target);
            }
        }
        if c.pos != buf.len() {
            return Err(c.err(format!(
                "{} unexpected trailing bytes after offset {}",
                buf.len() - c.pos,
                c.pos
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            spec,
            revision,
            binary_version,
            buf,
            vars,
            aliases,
        })
    }

    /// Path the model was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, msg: String) -> WhisperError {
        WhisperError::ModelFormat {
            path: self.path.clone(),
            msg,
        }
    }

    /// Builds a model from `f32` arrays and integer scalars already named the CTranslate2 way
    /// (see [`super::hf`], which maps Hugging Face checkpoints onto these names). `path` is what
    /// error messages name.
    pub fn from_arrays(
        path: &Path,
        spec: &str,
        arrays: Vec<(String, Vec<usize>, Vec<f32>)>,
        scalars: &[(&str, i32)],
    ) -> Self {
        let mut buf = Vec::new();
        let mut vars = HashMap::new();
        for (name, shape, values) in arrays {
            let start = buf.len();
            buf.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            vars.insert(
                name,
                Ct2Array {
                    shape,
                    dtype: Ct2DType::F32,
                    bytes: start..buf.len(),
                },
            );
        }
        for (name, v) in scalars {
            let start = buf.len();
            buf.extend(v.to_le_bytes());
            vars.insert(
                name.to_string(),
                Ct2Array {
                    shape: Vec::new(),
                    dtype: Ct2DType::I32,
                    bytes: start..buf.len(),
                },
            );
        }
        Self {
            path: path.to_path_buf(),
            spec: spec.to_string(),
            revision: 0,
            binary_version: 0,
            buf,
            vars,
            aliases: HashMap::new(),
        }
    }

    /// Names of all stored variables (aliases excluded), sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Looks up a variable, following aliases.
    pub fn get(&self, name: &str) -> Option<&Ct2Array> {
        self.vars.get(name).or_else(|| {
            self.aliases
                .get(name)
                .and_then(|target| self.vars.get(target))
        })
    }

    /// Whether a variable (or alias) exists.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn require(&self, name: &str) -> Result<&Ct2Array, WhisperError> {
        self.get(name)
            .ok_or_else(|| self.err(format!("missing variable '{name}'")))
    }

    fn raw(&self, a: &Ct2Array) -> &[u8] {
        &self.buf[a.bytes.clone()]
    }

    /// Reads a scalar integer (flags, head counts, ...).
    pub fn scalar_i64(&self, name: &str) -> Result<i64, WhisperError> {
        let a = self.require(name)?;
        if a.len() != 1 {
            return Err(self.err(format!(
                "variable '{name}' should be a scalar, has shape {:?}",
                a.shape
            )));
        }
        let b = self.raw(a);
        Ok(match a.dtype {
            Ct2DType::I8 => i64::from(b[0] as i8),
            Ct2DType::I16 => i64::from(i16::from_le_bytes([b[0], b[1]])),
            Ct2DType::I32 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            other => {
                return Err(self.err(format!(
                    "variable '{name}' should be an integer scalar, has dtype {other:?}"
                )))
            }
        })
    }

    /// Decodes an array to `f32` values (dequantizing integer weights with
    /// their `<name>_scale` companion when there is one).
    pub fn to_f32_vec(&self, name: &str) -> Result<Vec<f32>, WhisperError> {
        let a = self.require(name)?;
        let b = self.raw(a);
        let values: Vec<f32> = match a.dtype {
            Ct2DType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Ct2DType::F16 => b
                .chunks_exact(2)
                .map(|c| crate::kernels::f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Ct2DType::BF16 => b
                .chunks_exact(2)
                .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                .collect(),
            Ct2DType::I8 => b.iter().map(|&v| f32::from(v as i8)).collect(),
            Ct2DType::I16 => b
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Ct2DType::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
        };
        let quantized = matches!(a.dtype, Ct2DType::I8 | Ct2DType::I16);
        let scale_name = format!("{name}_scale");
        if quantized && self.contains(&scale_name) {
            let scales = self.to_f32_vec(&scale_name)?;
            let rows = a.shape.first().copied().unwrap_or(1);
            if scales.len() != rows && scales.len() != 1 {
                return Err(self.err(format!(
                    "'{scale_name}' has {} values for {rows} rows of '{name}'",
                    scales.len()
                )));
            }
            let cols = values.len() / rows.max(1);
            return Ok(values
                .chunks(cols.max(1))
                .enumerate()
                .flat_map(|(r, row)| {
                    let s = if scales.len() == 1 {
                        scales[0]
                    } else {
                        scales[r]
                    };
                    row.iter().map(move |&v| v / s)
                })
                .collect());
        }
        Ok(values)
    }

    /// Loads an array as a tensor of `dtype` on `device`, checking its shape.
    ///
    /// `expected` may be empty to accept any shape.
    pub fn tensor(
        &self,
        name: &str,
        expected: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor, WhisperError> {
        let a = self.require(name)?;
        if !expected.is_empty() && a.shape != expected {
            return Err(self.err(format!(
                "variable '{name}' has shape {:?}, expected {expected:?}",
                a.shape
            )));
        }
        let shape = a.shape.clone();
        let values = self.to_f32_vec(name)?;
        let t = Tensor::from_vec(values, shape, &Device::Cpu)?;
        Ok(t.to_dtype(dtype)?.to_device(device)?)
    }

    /// Shape of an array.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>, WhisperError> {
        Ok(self.require(name)?.shape.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn sample() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        string(&mut b, "TestSpec");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        // scalar i16 = 8
        string(&mut b, "enc/num_heads");
        b.push(0);
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&8i16.to_le_bytes());
        // f16 [2] = [1.0, -2.5]
        string(&mut b, "w");
        b.push(1);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.push(4);
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&0x3c00u16.to_le_bytes());
        b.extend_from_slice(&0xc100u16.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        string(&mut b, "alias_w");
        string(&mut b, "w");
        b
    }

    #[test]
    fn parses_synthetic_file() {
        let m = Ct2Model::parse(sample(), Path::new("x/model.bin")).unwrap();
        assert_eq!(m.spec, "TestSpec");
        assert_eq!(m.scalar_i64("enc/num_heads").unwrap(), 8);
        assert_eq!(m.to_f32_vec("alias_w").unwrap(), vec![1.0, -2.5]);
        assert!(m.scalar_i64("w").is_err());
    }

    #[test]
    fn truncation_names_file() {
        let b = sample();
        for cut in [0, 3, 10, b.len() - 1] {
            let err = Ct2Model::parse(b[..cut].to_vec(), Path::new("dir/model.bin")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("dir/model.bin"), "{msg}");
        }
    }

    #[test]
    fn half_conversion() {
        assert_eq!(crate::kernels::f16_to_f32(0x3c00), 1.0);
        assert_eq!(crate::kernels::f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(crate::kernels::f16_to_f32(0x7bff), 65504.0);
        assert!(crate::kernels::f16_to_f32(0xfc00).is_infinite());
        assert!(crate::kernels::f16_to_f32(0x7e00).is_nan());
    }
}
