//! Model engines for post-processing, from `reelsmith-post`: Real-ESRGAN as an [`Upscaler`],
//! RIFE as a [`PairInterpolator`] (retimed by [`super::post::retime_pairwise`]), and how a
//! setting (`upscale = …`, `interpolate = …`, `--model`) names one: a registry id of an
//! installed or imported model, or a path to its weights.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use reelsmith_post::esrgan::{Esrgan, Tiling};
use reelsmith_post::rife::Rife;
use serde::{Deserialize, Serialize};

use super::post::{PairInterpolator, Upscaler};
use super::procedural::post::Lanczos;
use super::EngineError;
use crate::hub::{import, HubConfig, ModelEntry, ModelKind, Registry};
use crate::media::image::RgbImage;

/// A post model a job or command runs, pinned by a fingerprint of its weights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostModelRef {
    pub id: String,
    pub kind: ModelKind,
    /// `realesrgan`, `realesrgan-compact` or `rife`.
    pub arch: String,
    /// The weights: a `.pth`/`.pt`/`.pkl`/`.safetensors` file or an ncnn `.param`.
    pub path: PathBuf,
    pub fingerprint: String,
}

impl PostModelRef {
    /// An anime-trained upscaler (the anime channels prefer one).
    pub fn is_anime(&self) -> bool {
        let id = self.id.to_ascii_lowercase();
        id.contains("anime")
    }
}

/// What a post capability runs for a job (`engines.toml` `upscale`/`interpolate`,
/// `REELSMITH_UPSCALE`/`REELSMITH_INTERPOLATE`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum PostSetting {
    /// The embedded engine (Lanczos, minterpolate): the default.
    #[default]
    Embedded,
    /// Nothing: clips and stills go to assembly as the earlier stages made them.
    Off,
    /// A named model.
    Model { model: PostModelRef },
    /// `auto` with CUDA: the installed models found, one general and one anime-trained; the
    /// channel decides which runs ([`PostSetting::pick`]).
    Auto {
        general: Option<PostModelRef>,
        anime: Option<PostModelRef>,
    },
}

impl PostSetting {
    pub fn is_embedded(&self) -> bool {
        *self == PostSetting::Embedded
    }

    /// For a channel (`anime`: an anime or manga look): `None` = off, `Some(None)` = the
    /// embedded engine, `Some(Some(m))` = model `m`. Auto prefers the model trained for the
    /// channel's material and takes the other when it is the only one installed.
    pub fn pick(&self, anime: bool) -> Option<Option<&PostModelRef>> {
        match self {
            PostSetting::Off => None,
            PostSetting::Embedded => Some(None),
            PostSetting::Model { model } => Some(Some(model)),
            PostSetting::Auto { general, anime: a } => Some(if anime {
                a.as_ref().or(general.as_ref())
            } else {
                general.as_ref().or(a.as_ref())
            }),
        }
    }
}

/// Reads one post setting: `none`/`off`, `auto` (installed models, with CUDA only: on a CPU a
/// network upscaling every frame of every clip takes hours, so the embedded engines run unless
/// a model is named), the embedded engine's name (`lanczos`, `minterpolate`, `embedded`), a
/// registry id or a path. Errors name `field`.
pub fn resolve_post_setting(
    reg: &Registry,
    cfg: &HubConfig,
    value: &str,
    field: &str,
    kind: ModelKind,
    cuda: bool,
) -> Result<PostSetting, String> {
    let v = value.trim();
    match v.to_ascii_lowercase().as_str() {
        "none" | "off" => Ok(PostSetting::Off),
        "embedded" | "lanczos" | "minterpolate" => Ok(PostSetting::Embedded),
        "auto" | "" if !cuda => Ok(PostSetting::Embedded),
        "auto" | "" => {
            let found = installed_post_models(reg, cfg, kind, false);
            let general = found.iter().find(|m| !m.is_anime()).cloned();
            let anime = found.iter().find(|m| m.is_anime()).cloned();
            if general.is_none() && anime.is_none() {
                Ok(PostSetting::Embedded)
            } else {
                Ok(PostSetting::Auto { general, anime })
            }
        }
        _ => Ok(PostSetting::Model {
            model: find_post_model(reg, cfg, v, field, kind)?,
        }),
    }
}

/// The weights file of an installed entry: the first file of a format the crate reads.
fn weights_file(m: &ModelEntry, dir: &Path) -> Option<PathBuf> {
    let ok = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["pth", "pt", "pkl", "safetensors", "param"].contains(&e))
    };
    m.files
        .iter()
        .map(|f| dir.join(&f.path))
        .find(|p| ok(p) && p.is_file())
}

fn reference(m: &ModelEntry, dir: &Path, kind: ModelKind) -> Result<PostModelRef, String> {
    let path = weights_file(m, dir).ok_or_else(|| {
        format!(
            "{}: no .pth, .safetensors or ncnn .param among its files in {}",
            m.id,
            dir.display()
        )
    })?;
    let parts: Vec<String> = m
        .files
        .iter()
        .map(|f| {
            f.sha256
                .clone()
                .unwrap_or_else(|| super::models::fingerprint_of(&dir.join(&f.path)))
        })
        .collect();
    let digest = <sha2::Sha256 as sha2::Digest>::digest(parts.join(",").as_bytes());
    Ok(PostModelRef {
        id: m.id.clone(),
        kind,
        arch: m.arch.clone(),
        path,
        fingerprint: hex::encode(&digest[..12]),
    })
}

/// The model `value` (a registry id or a path) of `kind`; errors name `field`.
pub fn find_post_model(
    reg: &Registry,
    cfg: &HubConfig,
    value: &str,
    field: &str,
    kind: ModelKind,
) -> Result<PostModelRef, String> {
    let path = Path::new(value);
    if value.contains('/') || path.exists() {
        let d = import::detect(path).map_err(|e| format!("{field}: {e}"))?;
        if d.kind != kind {
            return Err(format!(
                "{field}: {value} holds a model of kind {} ({}), not {}",
                d.kind.as_str(),
                d.arch,
                kind.as_str()
            ));
        }
        let id = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| value.to_string());
        let m = import::entry(&d, &id);
        return reference(&m, &d.root, kind).map_err(|e| format!("{field}: {e}"));
    }
    let r = import::resolve(reg, cfg, value, kind, &["pth", "safetensors", "ncnn"])
        .map_err(|e| format!("{field}: {e}"))?;
    let dir = r.dir.ok_or_else(|| {
        format!(
            "{field}: {} is not installed: `reelsmith models pull {}` (or `reelsmith models \
             import FILE` for weights you have)",
            r.entry.id, r.entry.id
        )
    })?;
    reference(r.entry, &dir, kind).map_err(|e| format!("{field}: {e}"))
}

/// The installed models of `kind`, anime-trained ones first when `anime`.
pub fn installed_post_models(
    reg: &Registry,
    cfg: &HubConfig,
    kind: ModelKind,
    anime: bool,
) -> Vec<PostModelRef> {
    let mut found: Vec<PostModelRef> = reg
        .models()
        .iter()
        .filter(|m| m.kind == kind)
        .filter_map(|m| {
            let dir = import::local_dir(cfg, m)?;
            reference(m, &dir, kind).ok()
        })
        .collect();
    found.sort_by_key(|m| m.is_anime() != anime);
    found
}

/// Where post models run and in which dtype: f16 on a GPU like the references (`half=True`
/// in Real-ESRGAN, `--fp16` in Practical-RIFE), f32 on the CPU.
fn dtype_for(device: &Device) -> DType {
    reelsmith_kit::compute_dtype(device, reelsmith_kit::Precision::F16)
}

fn failed(id: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Failed {
        engine: id.to_string(),
        message: e.to_string(),
    }
}

/// `[1, 3, H, W]` f32 in 0..1 on `device`.
pub fn to_tensor(img: &RgbImage, device: &Device) -> candle_core::Result<Tensor> {
    let (w, h) = (img.width as usize, img.height as usize);
    Tensor::from_vec(img.data.clone(), (h, w, 3), &Device::Cpu)?
        .permute((2, 0, 1))?
        .to_dtype(DType::F32)?
        .affine(1.0 / 255.0, 0.0)?
        .unsqueeze(0)?
        .to_device(device)
}

/// The picture of a `[1, 3, H, W]` tensor in 0..1 (rounded, clamped).
pub fn from_tensor(t: &Tensor) -> candle_core::Result<RgbImage> {
    let (_, _, h, w) = t.dims4()?;
    let data = t
        .squeeze(0)?
        .to_dtype(DType::F32)?
        .clamp(0f32, 1f32)?
        .affine(255.0, 0.5)?
        .floor()?
        .permute((1, 2, 0))?
        .to_dtype(DType::U8)?
        .flatten_all()?
        .to_device(&Device::Cpu)?
        .to_vec1::<u8>()?;
    Ok(RgbImage {
        width: w as u32,
        height: h as u32,
        data,
    })
}

/// Tile edge (input pixels) when none is asked for: whole frames up to this area, else tiles
/// that keep activations to a few hundred MB (RRDBNet keeps 64–192 channels at 16× the area
/// after its upsampling).
fn default_tile(e: &Esrgan, w: u32, h: u32) -> usize {
    let whole_up_to = match e.arch() {
        reelsmith_post::esrgan::Arch::Rrdb(_) => 256 * 256,
        reelsmith_post::esrgan::Arch::Compact(_) => 720 * 480,
    };
    if (w * h) as usize <= whole_up_to {
        0
    } else if matches!(e.arch(), reelsmith_post::esrgan::Arch::Rrdb(_)) {
        192
    } else {
        480
    }
}

/// A Real-ESRGAN network as an [`Upscaler`]: one pass of the network when the target is
/// larger than the picture, then Lanczos to the exact size (the reference's `outscale` does
/// the same with cv2's Lanczos); pictures already as large as the target only go through
/// Lanczos.
pub struct EsrganUpscaler {
    id: String,
    model: Esrgan,
    tile: usize,
    lanczos: Lanczos,
}

impl EsrganUpscaler {
    /// Loads `m` on `device`; `tile` 0 picks tiles by frame size.
    pub fn load(m: &PostModelRef, device: &Device, tile: usize) -> Result<Self, EngineError> {
        let model =
            Esrgan::load(&m.path, dtype_for(device), device).map_err(|e| failed(&m.id, e))?;
        Ok(EsrganUpscaler {
            id: format!("{}@{}", m.id, &m.fingerprint[..m.fingerprint.len().min(12)]),
            model,
            tile,
            lanczos: Lanczos::new(),
        })
    }

    pub fn model(&self) -> &Esrgan {
        &self.model
    }
}

impl Upscaler for EsrganUpscaler {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn upscale(
        &mut self,
        img: &RgbImage,
        width: u32,
        height: u32,
    ) -> Result<RgbImage, EngineError> {
        if width <= img.width && height <= img.height {
            return self.lanczos.upscale(img, width, height);
        }
        let tile = match self.tile {
            0 => default_tile(&self.model, img.width, img.height),
            t => t,
        };
        let tiling = Tiling {
            tile,
            ..Tiling::default()
        };
        let x = to_tensor(img, self.model.device()).map_err(|e| failed(&self.id, e))?;
        let y = self
            .model
            .upscale(&x, &tiling, &mut |_, _| true)
            .map_err(|e| failed(&self.id, e))?;
        let up = from_tensor(&y).map_err(|e| failed(&self.id, e))?;
        if up.width == width && up.height == height {
            return Ok(up);
        }
        self.lanczos.upscale(&up, width, height)
    }
}

/// RIFE as a [`PairInterpolator`].
pub struct RifePair {
    id: String,
    model: Rife,
    device: Device,
}

impl RifePair {
    pub fn load(m: &PostModelRef, device: &Device) -> Result<Self, EngineError> {
        let t = reelsmith_post::weights::read_tensors(&m.path, &Device::Cpu)
            .map_err(|e| failed(&m.id, e))?;
        let model =
            Rife::from_tensors(&t, device, dtype_for(device)).map_err(|e| failed(&m.id, e))?;
        Ok(RifePair {
            id: format!("{}@{}", m.id, &m.fingerprint[..m.fingerprint.len().min(12)]),
            model,
            device: device.clone(),
        })
    }

    pub fn model(&self) -> &Rife {
        &self.model
    }
}

impl PairInterpolator for RifePair {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn between(&mut self, a: &RgbImage, b: &RgbImage, t: f64) -> Result<RgbImage, EngineError> {
        let ta = to_tensor(a, &self.device).map_err(|e| failed(&self.id, e))?;
        let tb = to_tensor(b, &self.device).map_err(|e| failed(&self.id, e))?;
        let y = self
            .model
            .interpolate(&ta, &tb, t)
            .map_err(|e| failed(&self.id, e))?;
        from_tensor(&y).map_err(|e| failed(&self.id, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_round_trip_through_tensors() {
        let mut img = RgbImage::new(5, 3);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = (i * 17 % 256) as u8;
        }
        let t = to_tensor(&img, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[1, 3, 3, 5]);
        assert_eq!(from_tensor(&t).unwrap(), img);
    }
}
