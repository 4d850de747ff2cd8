//! Real-ESRGAN super-resolution: RRDBNet (x4plus, x4plus_anime_6B, x2plus) and
//! SRVGGNetCompact (realesr-animevideov3, realesr-general-x4v3), from `.pth`, `.safetensors` or
//! ncnn weights, the architecture read from the tensors ([`Arch::detect`]).
//!
//! [`Esrgan::upscale`] does what the reference's `RealESRGANer.enhance` does around the network:
//! reflect pre-padding on the right and bottom, reflect padding to the multiple the unshuffle
//! needs, tiles with a halo so any frame size runs in bounded memory, and the crop back.

pub mod nets;
mod pad;

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::weights::{self, ncnn, Tensors};
use crate::{PostError, Result};
pub use nets::{CompactShape, RrdbShape};

/// Which generator a set of tensors is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Rrdb(RrdbShape),
    Compact(CompactShape),
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arch::Rrdb(s) => write!(f, "RRDBNet x{} ({} blocks)", s.scale, s.num_block),
            Arch::Compact(s) => write!(f, "SRVGGNetCompact x{} ({} convs)", s.scale, s.num_conv),
        }
    }
}

fn dims(t: &Tensors, name: &str) -> Option<Vec<usize>> {
    t.get(name).map(|v| v.dims().to_vec())
}

impl Arch {
    /// The generator these tensors (BasicSR names) describe, or why they are none.
    pub fn detect(t: &Tensors) -> std::result::Result<Arch, String> {
        if let Some(first) = dims(t, "conv_first.weight") {
            let scale = match first.get(1) {
                Some(3) => 4,
                Some(12) => 2,
                Some(48) => 1,
                other => {
                    return Err(format!(
                    "conv_first takes {other:?} channels; RRDBNet takes 3 (x4), 12 (x2) or 48 (x1)"
                ))
                }
            };
            let num_block = (0..)
                .take_while(|b| t.contains_key(&format!("body.{b}.rdb1.conv1.weight")))
                .count();
            let grow = dims(t, "body.0.rdb1.conv1.weight").map(|d| d[0]);
            return match (num_block, grow) {
                (n, Some(g)) if n > 0 => Ok(Arch::Rrdb(RrdbShape {
                    scale,
                    num_block: n,
                    num_feat: first[0],
                    num_grow: g,
                })),
                _ => Err("conv_first is there but no body.N.rdb1 blocks: not an RRDBNet".into()),
            };
        }
        if dims(t, "body.0.weight").is_some_and(|d| d.len() == 4) {
            let convs = (0..)
                .take_while(|i| {
                    dims(t, &format!("body.{}.weight", 2 * i)).is_some_and(|d| d.len() == 4)
                })
                .count();
            let last = dims(t, &format!("body.{}.weight", 2 * (convs - 1))).unwrap_or_default();
            let out = last.first().copied().unwrap_or(0);
            let scale = (1..=8).find(|s| 3 * s * s == out);
            return match (convs, scale) {
                (c, Some(s)) if c >= 2 => Ok(Arch::Compact(CompactShape {
                    scale: s,
                    num_conv: c - 2,
                    num_feat: dims(t, "body.0.weight").map(|d| d[0]).unwrap_or(0),
                })),
                _ => Err(format!(
                    "body.* looks like SRVGGNetCompact but its last conv gives {out} channels, not 3·s²"
                )),
            };
        }
        if t.contains_key("model.0.weight") {
            return Err(
                "this is the old ESRGAN layout (model.N.*); convert it to BasicSR names \
                        (conv_first, body.N.rdbM.convK, …) first"
                    .into(),
            );
        }
        Err("neither RRDBNet (conv_first, body.N.rdbM) nor SRVGGNetCompact (body.N) tensors".into())
    }

    /// The factor from input to output pixels.
    pub fn scale(&self) -> usize {
        match self {
            Arch::Rrdb(s) => s.scale,
            Arch::Compact(s) => s.scale,
        }
    }
}

enum Net {
    Rrdb(Box<nets::Rrdb>),
    Compact(nets::Compact),
}

/// How [`Esrgan::upscale`] cuts a picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    /// Tile edge in input pixels, halo excluded; 0 runs the whole picture at once.
    pub tile: usize,
    /// Input pixels each tile also sees on every side; `None`: [`Esrgan::default_halo`].
    pub halo: Option<usize>,
    /// Reflect padding on the right and bottom before anything else (the reference's
    /// `pre_pad`, 10 in `RealESRGANer`): keeps the border free of the conv's zero padding.
    pub pre_pad: usize,
}

impl Default for Tiling {
    fn default() -> Self {
        Tiling {
            tile: 0,
            halo: None,
            pre_pad: 10,
        }
    }
}

/// A loaded Real-ESRGAN generator.
pub struct Esrgan {
    arch: Arch,
    net: Net,
    /// What the model is sold as when that differs from the network's factor (the ncnn
    /// realesr-animevideov3 x2 and x3 graphs are the x4 network followed by a downscale).
    nominal: usize,
    dtype: DType,
    device: Device,
}

/// The largest halo used by default: an RRDBNet's true reach (hundreds of pixels) would make
/// every tile several times its size for a difference below what 8 bits show.
pub const MAX_DEFAULT_HALO: usize = 40;

impl Esrgan {
    /// The network these tensors describe, computing in `dtype` on `device`.
    pub fn from_tensors(t: &Tensors, dtype: DType, device: &Device) -> Result<Self> {
        let arch = Arch::detect(t).map_err(|message| PostError::Weights {
            path: String::new(),
            message,
        })?;
        let net = match arch {
            Arch::Rrdb(s) => Net::Rrdb(Box::new(nets::Rrdb::new(t, s, dtype, device)?)),
            Arch::Compact(s) => Net::Compact(nets::Compact::new(t, s, dtype, device)?),
        };
        Ok(Esrgan {
            arch,
            net,
            nominal: arch.scale(),
            dtype,
            device: device.clone(),
        })
    }

    /// Loads `.pth`/`.pt`/`.safetensors` weights or an ncnn `.param` (with its `.bin`).
    pub fn load(path: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let named = |e: PostError| match e {
            PostError::Weights { path: p, message } if p.is_empty() => PostError::Weights {
                path: path.display().to_string(),
                message,
            },
            e => e,
        };
        let is_ncnn = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("param"));
        if is_ncnn {
            let model = ncnn::read(path, &Device::Cpu)?;
            let (t, nominal) = from_ncnn(&model).map_err(|message| PostError::Weights {
                path: path.display().to_string(),
                message,
            })?;
            let mut e = Esrgan::from_tensors(&t, dtype, device).map_err(named)?;
            e.nominal = nominal;
            return Ok(e);
        }
        let t = weights::read_tensors(path, &Device::Cpu)?;
        Esrgan::from_tensors(&t, dtype, device).map_err(named)
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }
    /// The factor the network itself upscales by.
    pub fn scale(&self) -> usize {
        self.arch.scale()
    }
    /// The factor the model is published as (see [`Esrgan`]); callers resize to it.
    pub fn nominal_scale(&self) -> usize {
        self.nominal
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Input pixels an output pixel depends on, each side.
    pub fn reach(&self) -> usize {
        match &self.net {
            Net::Rrdb(n) => n.reach(),
            Net::Compact(n) => n.reach(),
        }
    }

    /// The halo used when [`Tiling::halo`] is `None`: the exact reach, at most [`MAX_DEFAULT_HALO`].
    pub fn default_halo(&self) -> usize {
        self.reach().min(MAX_DEFAULT_HALO)
    }

    /// Runs the network once on `x` (`[N, 3, H, W]`, H and W multiples of `4 / scale`).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_device(&self.device)?.to_dtype(self.dtype)?;
        match &self.net {
            Net::Rrdb(n) => n.forward(&x),
            Net::Compact(n) => n.forward(&x),
        }
    }

    /// `img` (`[1, 3, H, W]` RGB in 0..1) upscaled by [`Esrgan::scale`], as f32 in 0..1 on the
    /// model's device. `progress(done, total)` is called after each tile; it returns `false`
    /// to stop (the result is then [`PostError::Cancelled`]).
    pub fn upscale(
        &self,
        img: &Tensor,
        tiling: &Tiling,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Tensor> {
        let (n, c, h, w) = img.dims4()?;
        if c != 3 || n == 0 || h == 0 || w == 0 {
            return Err(PostError::Input(format!(
                "expected [N, 3, H, W] pictures, got {:?}",
                img.dims()
            )));
        }
        let x = img.to_device(&self.device)?.to_dtype(self.dtype)?;
        // Reflect padding needs at least one more pixel than it adds.
        let pre = tiling.pre_pad.min(h - 1).min(w - 1);
        let x = pad::reflect_right_bottom(&x, pre, pre)?;
        let m = 4 / self.scale();
        let (ph, pw) = (x.dim(2)?, x.dim(3)?);
        let (mh, mw) = ((m - ph % m) % m, (m - pw % m) % m);
        let x = pad::reflect_right_bottom(&x, mh, mw)?;
        let halo = tiling.halo.unwrap_or_else(|| self.default_halo());
        let out = pad::tiled(&x, tiling.tile, halo, m, self.scale(), progress, &|t| {
            self.forward(t)
        })?;
        let s = self.scale();
        let out = out.narrow(2, 0, h * s)?.narrow(3, 0, w * s)?;
        Ok(out.to_dtype(DType::F32)?.clamp(0f32, 1f32)?)
    }
}

/// BasicSR names for an ncnn Real-ESRGAN graph's weights, and the factor it is published as.
pub fn from_ncnn(model: &ncnn::Model) -> std::result::Result<(Tensors, usize), String> {
    let convs: Vec<&ncnn::Layer> = model.of_kind("Convolution").collect();
    let prelus: Vec<&ncnn::Layer> = model.of_kind("PReLU").collect();
    let mut t = Tensors::new();
    let mut put = |name: &str, l: &ncnn::Layer| -> std::result::Result<(), String> {
        match l.weights.as_slice() {
            [w, b] => {
                t.insert(format!("{name}.weight"), w.clone());
                t.insert(format!("{name}.bias"), b.clone());
                Ok(())
            }
            _ => Err(format!("convolution `{}` has no bias", l.name)),
        }
    };
    if let Some(shuffle) = model.of_kind("PixelShuffle").next() {
        let s = shuffle.int(0, 0).max(1) as usize;
        if convs.len() < 2 || prelus.len() + 1 != convs.len() {
            return Err(format!(
                "a PixelShuffle graph with {} convolutions and {} PReLUs is not SRVGGNetCompact",
                convs.len(),
                prelus.len()
            ));
        }
        for (i, c) in convs.iter().enumerate() {
            put(&format!("body.{}", 2 * i), c)?;
        }
        for (i, p) in prelus.iter().enumerate() {
            t.insert(format!("body.{}.weight", 2 * i + 1), p.weights[0].clone());
        }
        // A trailing Interp that shrinks (scale < 1) makes the published factor smaller.
        let shrink = model
            .layers
            .iter()
            .skip_while(|l| l.kind != "PixelShuffle")
            .filter(|l| l.kind == "Interp")
            .map(|l| l.float(1, 1.0))
            .find(|&f| f < 1.0)
            .unwrap_or(1.0);
        let nominal = (s as f32 * shrink).round().max(1.0) as usize;
        return Ok((t, nominal));
    }
    if model.of_kind("Eltwise").next().is_some() || model.of_kind("Concat").next().is_some() {
        let n = convs.len();
        if n < 21 || !(n - 6).is_multiple_of(15) {
            return Err(format!("{n} convolutions: an RRDBNet has 6 + 15 per block"));
        }
        let blocks = (n - 6) / 15;
        let mut it = convs.iter();
        let mut next = |name: String| -> std::result::Result<(), String> {
            let l = it.next().ok_or("ran out of convolutions")?;
            put(&name, l)
        };
        next("conv_first".into())?;
        for b in 0..blocks {
            for r in 1..=3 {
                for k in 1..=5 {
                    next(format!("body.{b}.rdb{r}.conv{k}"))?;
                }
            }
        }
        for name in ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"] {
            next(name.into())?;
        }
        let scale = match Arch::detect(&t)? {
            Arch::Rrdb(s) => s.scale,
            Arch::Compact(s) => s.scale,
        };
        return Ok((t, scale));
    }
    Err("neither an SRVGGNetCompact (PixelShuffle) nor an RRDBNet (Concat/Eltwise) graph".into())
}
