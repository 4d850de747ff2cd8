//! Checkpoints of the sampling loop: everything a run needs to continue after step k exactly as
//! if it had never stopped, and a small versioned byte format for it.
//!
//! The pipeline reports a [`LoopState`] after every step through [`Resume::on_state`] and
//! starts from one given as [`Resume::from`]; the caller decides how often to save and where
//! (the crate knows nothing of files or jobs). The state holds:
//! - the latents after step `done`;
//! - the sampler's history (DPM++ 2M's previous denoised estimate);
//! - inpainting's fixed tensors (the clean latents, their noise and the mask);
//! - where the noise stream stands, as the shapes of the draws made so far (replayed on
//!   resume, so a seeded stream or recorded draws continue at the same place);
//! - how many schedule steps image-to-image left out (the refiner resumes without its init).
//!
//! A resumed run does the same arithmetic on the same values as an uninterrupted one: on the CPU
//! in f32 its image is bit-identical.
//!
//! Format (all integers little-endian): `RSLS`, version byte, sampler code, `u32` done, total,
//! skipped; `u32` draw count, each draw `u8` rank + `u64` dims; `u8` tensor count, each tensor
//! `u8` name length + name, `u8` dtype (0 f32, 1 f16, 2 bf16, 3 f64), `u8` rank + `u64` dims,
//! `u64` byte length + the elements as little-endian bytes. Nothing may follow.

use candle_core::{DType, Device, Tensor};

use crate::pipeline::{Error, Result};
use crate::scheduler::{SamplerKind, SamplerState};

const MAGIC: &[u8; 4] = b"RSLS";
/// Bump when the layout changes; older files are then refused (the run starts over).
pub const VERSION: u8 = 1;

/// Inpainting's tensors, fixed for the whole run.
#[derive(Clone, Debug)]
pub struct InpaintState {
    /// The init picture's latents.
    pub x0: Tensor,
    /// The noise they are re-noised with at every step.
    pub noise: Tensor,
    /// `[b, 1, h, w]` in latent space, 1 = repaint.
    pub mask: Tensor,
}

/// The sampling loop after step `done` of `total`.
#[derive(Clone, Debug)]
pub struct LoopState {
    pub sampler: SamplerKind,
    /// Steps finished; the loop continues with step `done`.
    pub done: usize,
    /// Steps of the run (after image-to-image's strength).
    pub total: usize,
    /// Schedule steps left out at the start (image-to-image).
    pub skipped: usize,
    pub latents: Tensor,
    pub history: SamplerState,
    pub inpaint: Option<InpaintState>,
    /// Shapes of the noise draws made so far, in order.
    pub noise_draws: Vec<Vec<usize>>,
}

/// How a sampling run checkpoints: where it starts and what it reports after each step.
#[derive(Default)]
pub struct Resume<'a> {
    /// Continue from this state (saved by `on_state` of an earlier run with the same inputs)
    /// instead of starting from noise.
    pub from: Option<LoopState>,
    /// Called after every step (before `on_step`) with the loop's state; the caller saves it
    /// when it is due. An error stops the run.
    #[allow(clippy::type_complexity)]
    pub on_state: Option<&'a mut dyn FnMut(&LoopState) -> Result<()>>,
}

fn bad<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Checkpoint(msg.into()))
}

fn dtype_code(d: DType) -> Result<u8> {
    Ok(match d {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::BF16 => 2,
        DType::F64 => 3,
        other => return bad(format!("cannot save {other:?} tensors")),
    })
}

fn put_dims(out: &mut Vec<u8>, dims: &[usize]) {
    out.push(dims.len() as u8);
    for d in dims {
        out.extend((*d as u64).to_le_bytes());
    }
}

fn put_tensor(out: &mut Vec<u8>, name: &str, t: &Tensor) -> Result<()> {
    out.push(name.len() as u8);
    out.extend(name.as_bytes());
    out.push(dtype_code(t.dtype())?);
    put_dims(out, t.dims());
    let flat = t.flatten_all()?;
    let bytes: Vec<u8> = match t.dtype() {
        DType::F32 => flat
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F16 => flat
            .to_vec1::<half::f16>()?
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect(),
        DType::BF16 => flat
            .to_vec1::<half::bf16>()?
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect(),
        DType::F64 => flat
            .to_vec1::<f64>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        other => return bad(format!("cannot save {other:?} tensors")),
    };
    out.extend((bytes.len() as u64).to_le_bytes());
    out.extend(bytes);
    Ok(())
}

/// A bounds-checked reader over a checkpoint's bytes.
struct Reader<'b> {
    bytes: &'b [u8],
    pos: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8]> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.bytes.len() => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => bad(format!("truncated at byte {}", self.pos)),
        }
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<usize> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn dims(&mut self) -> Result<Vec<usize>> {
        let rank = self.u8()? as usize;
        (0..rank)
            .map(|_| {
                usize::try_from(self.u64()?)
                    .or_else(|_| bad("a dimension does not fit this machine"))
            })
            .collect()
    }

    fn tensor(&mut self, device: &Device) -> Result<(String, Tensor)> {
        let n = self.u8()? as usize;
        let name = String::from_utf8_lossy(self.take(n)?).into_owned();
        let dtype = self.u8()?;
        let dims = self.dims()?;
        let len = usize::try_from(self.u64()?).or_else(|_| bad("tensor too large"))?;
        let count = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Error::Checkpoint(format!("{name}: shape {dims:?} overflows")))?;
        let width = match dtype {
            0 => 4,
            1 | 2 => 2,
            3 => 8,
            other => return bad(format!("{name}: unknown dtype code {other}")),
        };
        if count.checked_mul(width) != Some(len) {
            return bad(format!(
                "{name}: {len} bytes do not hold {dims:?} of {width}-byte values"
            ));
        }
        let b = self.take(len)?;
        let t = match dtype {
            0 => {
                let v: Vec<f32> = b
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Tensor::from_vec(v, dims, device)?
            }
            1 => {
                let v: Vec<half::f16> = b
                    .chunks_exact(2)
                    .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                    .collect();
                Tensor::from_vec(v, dims, device)?
            }
            2 => {
                let v: Vec<half::bf16> = b
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                    .collect();
                Tensor::from_vec(v, dims, device)?
            }
            _ => {
                let v: Vec<f64> = b
                    .chunks_exact(8)
                    .map(|c| {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(c);
                        f64::from_le_bytes(a)
                    })
                    .collect();
                Tensor::from_vec(v, dims, device)?
            }
        };
        Ok((name, t))
    }
}

impl LoopState {
    /// The state as bytes (see the module docs for the layout).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.latents.elem_count() * 4 * 2 + 256);
        out.extend(MAGIC);
        out.push(VERSION);
        out.push(self.sampler.code());
        for v in [self.done, self.total, self.skipped] {
            out.extend((v as u32).to_le_bytes());
        }
        out.extend((self.noise_draws.len() as u32).to_le_bytes());
        for d in &self.noise_draws {
            put_dims(&mut out, d);
        }
        let mut tensors = vec![("latents", &self.latents)];
        if let Some(p) = &self.history.previous_x0 {
            tensors.push(("previous_x0", p));
        }
        if let Some(i) = &self.inpaint {
            tensors.push(("inpaint.x0", &i.x0));
            tensors.push(("inpaint.noise", &i.noise));
            tensors.push(("inpaint.mask", &i.mask));
        }
        out.push(tensors.len() as u8);
        for (name, t) in tensors {
            put_tensor(&mut out, name, t)?;
        }
        Ok(out)
    }

    /// Reads a state written by [`LoopState::encode`], its tensors on `device`. Anything
    /// else (another version, a truncated or padded file) is an [`Error::Checkpoint`].
    pub fn decode(bytes: &[u8], device: &Device) -> Result<Self> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != MAGIC {
            return bad("not a sampling checkpoint");
        }
        let version = r.u8()?;
        if version != VERSION {
            return bad(format!(
                "checkpoint version {version}, this build reads {VERSION}"
            ));
        }
        let code = r.u8()?;
        let sampler = SamplerKind::from_code(code)
            .ok_or_else(|| Error::Checkpoint(format!("unknown sampler code {code}")))?;
        let (done, total, skipped) = (r.u32()?, r.u32()?, r.u32()?);
        let draws = r.u32()?;
        let noise_draws = (0..draws).map(|_| r.dims()).collect::<Result<Vec<_>>>()?;
        let n = r.u8()?;
        let mut named = std::collections::BTreeMap::new();
        for _ in 0..n {
            let (name, t) = r.tensor(device)?;
            named.insert(name, t);
        }
        if r.pos != bytes.len() {
            return bad(format!("{} bytes after the end", bytes.len() - r.pos));
        }
        let latents = named
            .remove("latents")
            .ok_or_else(|| Error::Checkpoint("no latents".into()))?;
        let inpaint = match (
            named.remove("inpaint.x0"),
            named.remove("inpaint.noise"),
            named.remove("inpaint.mask"),
        ) {
            (Some(x0), Some(noise), Some(mask)) => Some(InpaintState { x0, noise, mask }),
            (None, None, None) => None,
            _ => return bad("inpainting tensors are incomplete"),
        };
        let history = SamplerState {
            previous_x0: named.remove("previous_x0"),
        };
        if let Some(name) = named.keys().next() {
            return bad(format!("unknown tensor {name}"));
        }
        Ok(Self {
            sampler,
            done,
            total,
            skipped,
            latents,
            history,
            inpaint,
            noise_draws,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dtype: DType) -> LoopState {
        let dev = Device::Cpu;
        let t = |seed: f32, dims: &[usize]| {
            let n: usize = dims.iter().product();
            let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect();
            Tensor::from_vec(v, dims, &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
        };
        LoopState {
            sampler: SamplerKind::DpmPP2M,
            done: 7,
            total: 12,
            skipped: 3,
            latents: t(0.5, &[1, 4, 3, 5]),
            history: SamplerState {
                previous_x0: Some(t(1.5, &[1, 4, 3, 5])),
            },
            inpaint: Some(InpaintState {
                x0: t(2.0, &[1, 4, 3, 5]),
                noise: t(3.0, &[1, 4, 3, 5]),
                mask: t(4.0, &[1, 1, 3, 5]),
            }),
            noise_draws: vec![vec![1, 4, 3, 5], vec![1, 4, 6, 10], vec![]],
        }
    }

    fn bits(t: &Tensor) -> Vec<u64> {
        let t = t.flatten_all().unwrap();
        match t.dtype() {
            DType::F32 => t
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits() as u64)
                .collect(),
            DType::F16 => t
                .to_vec1::<half::f16>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits() as u64)
                .collect(),
            DType::BF16 => t
                .to_vec1::<half::bf16>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits() as u64)
                .collect(),
            _ => t
                .to_vec1::<f64>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect(),
        }
    }

    #[test]
    fn states_round_trip_bit_for_bit_in_every_dtype() {
        for dtype in [DType::F32, DType::F16, DType::BF16, DType::F64] {
            let s = state(dtype);
            let bytes = s.encode().unwrap();
            assert_eq!(&bytes[..4], MAGIC);
            assert_eq!(bytes[4], VERSION);
            let back = LoopState::decode(&bytes, &Device::Cpu).unwrap();
            assert_eq!(
                (back.sampler, back.done, back.total, back.skipped),
                (s.sampler, 7, 12, 3)
            );
            assert_eq!(back.noise_draws, s.noise_draws);
            assert_eq!(back.latents.dtype(), dtype);
            assert_eq!(back.latents.dims(), s.latents.dims());
            assert_eq!(bits(&back.latents), bits(&s.latents));
            let (p, q) = (
                back.history.previous_x0.as_ref().unwrap(),
                s.history.previous_x0.as_ref().unwrap(),
            );
            assert_eq!(bits(p), bits(q));
            let (a, b) = (back.inpaint.unwrap(), s.inpaint.unwrap());
            assert_eq!(bits(&a.x0), bits(&b.x0));
            assert_eq!(bits(&a.noise), bits(&b.noise));
            assert_eq!(a.mask.dims(), [1, 1, 3, 5]);
            assert_eq!(bits(&a.mask), bits(&b.mask));
            // Encoding is a function of the state.
            assert_eq!(back_encode(&bytes), bytes);
        }
    }

    fn back_encode(bytes: &[u8]) -> Vec<u8> {
        LoopState::decode(bytes, &Device::Cpu)
            .unwrap()
            .encode()
            .unwrap()
    }

    #[test]
    fn damaged_or_foreign_files_are_refused() {
        let bytes = state(DType::F32).encode().unwrap();
        let refused = |b: &[u8]| match LoopState::decode(b, &Device::Cpu) {
            Err(Error::Checkpoint(m)) => m,
            Err(e) => panic!("wrong error kind: {e}"),
            Ok(_) => panic!("accepted a damaged file"),
        };
        // Every truncation.
        for n in [0, 3, 5, 20, bytes.len() / 2, bytes.len() - 1] {
            refused(&bytes[..n]);
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(refused(&padded).contains("after the end"));
        let mut other = bytes.clone();
        other[4] = VERSION + 1;
        assert!(refused(&other).contains("version"));
        let mut magic = bytes.clone();
        magic[0] = b'X';
        refused(&magic);
        let mut sampler = bytes;
        sampler[5] = 99;
        assert!(refused(&sampler).contains("sampler"));
    }
}
