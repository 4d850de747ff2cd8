//! LTX weights as users have them: the official single files (`ltxv-*.safetensors`,
//! `ltx-video-*.safetensors`: transformer under `model.diffusion_model.`, VAE under `vae.`, in
//! Lightricks' own names) and diffusers folders (`transformer/`, `vae/`, `scheduler/`), plus the
//! T5 encoder from a diffusers `text_encoder` folder.
//!
//! A single file says which release it is by its keys (as diffusers tells them apart): a 48th
//! transformer block = 13B (0.9.7+); a VAE encoder whose last conv takes 2048 channels = the
//! 0.9.5+ layout; a time embedder in the decoder = 0.9.1; otherwise 0.9.0. The networks' configs
//! for a release are the ones diffusers' conversion script states; a `config` JSON in the file's
//! header metadata (with `transformer`/`vae`/`scheduler` objects in diffusers' field names)
//! overrides them, which is how the test fixtures carry their tiny configs.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde_json::Value;

use super::original;
use super::schedule::ScheduleConfig;
use super::transformer::{ltx_transformer_key_from_original, LtxTransformer, LtxTransformerConfig};
use super::vae::{ltx_vae_key_from_original, LtxVae, LtxVaeConfig, LtxVaeLayout};
use crate::VideoError;

type Result<T> = std::result::Result<T, VideoError>;

/// The release a set of LTX weights belongs to, as far as the networks differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// 0.9.0: the first VAE.
    V090,
    /// 0.9.1: the timestep-conditioned decoder.
    V091,
    /// 0.9.5 and later 2B (0.9.6, 0.9.8 2B): deeper encoder, residual upsampling.
    V095,
    /// 0.9.7 / 0.9.8 13B: the 0.9.5 VAE with a 48-layer, 4096-wide transformer.
    V097,
}

impl Release {
    pub fn name(self) -> &'static str {
        match self {
            Release::V090 => "0.9.0",
            Release::V091 => "0.9.1",
            Release::V095 => "0.9.5+",
            Release::V097 => "0.9.7+ 13B",
        }
    }

    /// The transformer config of this release (diffusers' conversion script).
    pub fn transformer_config(self) -> LtxTransformerConfig {
        match self {
            Release::V097 => LtxTransformerConfig::ltxv_13b(),
            _ => LtxTransformerConfig::ltxv_2b(),
        }
    }

    /// The VAE layout of this release.
    pub fn vae_layout(self) -> LtxVaeLayout {
        match self {
            Release::V090 => LtxVaeLayout::V0_9_0,
            Release::V091 => LtxVaeLayout::V0_9_1,
            Release::V095 | Release::V097 => LtxVaeLayout::V0_9_5,
        }
    }

    /// The scheduler diffusers' conversion script saves with this release: 0.9.0/0.9.1 shift by
    /// the sequence length and stretch to 0.1; 0.9.5+ use the plain schedule.
    pub fn schedule_config(self) -> ScheduleConfig {
        match self {
            Release::V090 | Release::V091 => ScheduleConfig {
                use_dynamic_shifting: true,
                base_shift: 0.95,
                max_shift: 2.05,
                base_image_seq_len: 1024,
                max_image_seq_len: 4096,
                shift_terminal: Some(0.1),
                ..ScheduleConfig::default()
            },
            Release::V095 | Release::V097 => ScheduleConfig::default(),
        }
    }

    /// The release whose VAE layout a diffusers VAE config describes (13B kept from `guess`).
    pub fn from_vae_config(vae: &Value, guess: Release) -> Release {
        let is_095 = vae
            .get("down_block_types")
            .and_then(|d| d.as_array())
            .is_some_and(|d| {
                d.iter()
                    .any(|t| t.as_str() == Some("LTXVideo095DownBlock3D"))
            });
        let timestep = vae
            .get("timestep_conditioning")
            .and_then(|t| t.as_bool())
            .unwrap_or(false);
        match (is_095, timestep, guess) {
            (true, _, Release::V097) => Release::V097,
            (true, _, _) => Release::V095,
            (false, true, _) => Release::V091,
            (false, false, _) => Release::V090,
        }
    }

    /// Tells the release from a single file's tensor names and shapes.
    pub fn detect(shapes: &HashMap<String, Vec<usize>>) -> Option<Release> {
        let is_ltx = shapes.contains_key("model.diffusion_model.patchify_proj.weight")
            || shapes.contains_key("patchify_proj.weight");
        if !is_ltx {
            return None;
        }
        if shapes
            .keys()
            .any(|k| k.ends_with("transformer_blocks.47.scale_shift_table"))
        {
            return Some(Release::V097);
        }
        if shapes
            .get("vae.encoder.conv_out.conv.weight")
            .is_some_and(|s| s.get(1) == Some(&2048))
        {
            return Some(Release::V095);
        }
        if shapes.contains_key("vae.decoder.last_time_embedder.timestep_embedder.linear_1.weight") {
            return Some(Release::V091);
        }
        Some(Release::V090)
    }
}

/// Where an LTX model's transformer and VAE come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LtxSource {
    /// An official single file (transformer + VAE).
    SingleFile(PathBuf),
    /// A diffusers folder with `transformer/`, `vae/` (and `scheduler/`).
    Diffusers(PathBuf),
}

/// The configs of one model's networks.
#[derive(Clone, Debug)]
pub struct LtxConfigs {
    pub release: Option<Release>,
    pub transformer: LtxTransformerConfig,
    pub vae: LtxVaeConfig,
    pub schedule: ScheduleConfig,
}

fn weights_err(path: &Path, message: impl Into<String>) -> VideoError {
    VideoError::Weights {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// The JSON header of a safetensors file (tensor entries and `__metadata__`).
pub fn safetensors_header(path: &Path) -> Result<serde_json::Map<String, Value>> {
    let mut f = std::fs::File::open(path).map_err(|e| weights_err(path, e.to_string()))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| weights_err(path, "not a safetensors file: too short"))?;
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        return Err(weights_err(
            path,
            "not a safetensors file: bad header length",
        ));
    }
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf)
        .map_err(|_| weights_err(path, "not a safetensors file: truncated header"))?;
    match serde_json::from_slice(&buf) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(weights_err(
            path,
            "not a safetensors file: the header is not a JSON object",
        )),
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: Value, path: &Path, what: &str) -> Result<T> {
    serde_json::from_value(v).map_err(|e| weights_err(path, format!("{what} config: {e}")))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| weights_err(path, e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| weights_err(path, format!("not valid JSON: {e}")))
}

/// The safetensors files of a diffusers component folder (sharded or not).
fn component_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| weights_err(dir, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(weights_err(dir, "no .safetensors weights in this folder"));
    }
    // Prefer the full-precision file when variants sit side by side.
    let plain: Vec<PathBuf> = files
        .iter()
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !n.contains(".fp16.") && !n.contains(".bf16.")
        })
        .cloned()
        .collect();
    Ok(if plain.is_empty() { files } else { plain })
}

/// Tensors of some files under names chosen by `rename` (file name → network name).
struct Renamed {
    mmaps: Vec<MmapedSafetensors>,
    /// network name → (file, stored name).
    index: HashMap<String, (usize, String)>,
    origin: String,
}

impl Renamed {
    fn open(paths: &[PathBuf], rename: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let mut mmaps = Vec::new();
        let mut index = HashMap::new();
        for (i, p) in paths.iter().enumerate() {
            // SAFETY: mapped read-only; like every mmap loader we rely on nobody rewriting the
            // weights while they are open.
            let st = unsafe { MmapedSafetensors::new(p) }
                .map_err(|e| weights_err(p, format!("cannot read the weights: {e}")))?;
            for (name, _) in st.tensors() {
                if let Some(net) = rename(&name) {
                    index.insert(net, (i, name));
                }
            }
            mmaps.push(st);
        }
        let origin = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self {
            mmaps,
            index,
            origin,
        })
    }

    fn load(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let (i, stored) = self
            .index
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("{}: no tensor {name}", self.origin)))?;
        self.mmaps[*i].load(stored, dev)?.to_dtype(dtype)
    }
}

impl SimpleBackend for Renamed {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.load(name, dtype, dev)?;
        if t.shape() != &s {
            candle_core::bail!(
                "{}: {name} has shape {:?}, the network expects {:?}",
                self.origin,
                t.dims(),
                s.dims()
            );
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.load(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

/// An LTX model's networks, loaded.
pub struct LtxNetworks {
    pub transformer: LtxTransformer,
    pub vae: LtxVae,
    pub configs: LtxConfigs,
}

/// Reads the configs of `source` without loading weights (the CLI checks arguments with them).
pub fn configs(source: &LtxSource) -> Result<LtxConfigs> {
    match source {
        LtxSource::SingleFile(path) => {
            let header = safetensors_header(path)?;
            let shapes: HashMap<String, Vec<usize>> = header
                .iter()
                .filter(|(k, _)| k.as_str() != "__metadata__")
                .filter_map(|(k, v)| {
                    let shape = v.get("shape")?.as_array()?;
                    Some((
                        k.clone(),
                        shape
                            .iter()
                            .filter_map(|d| d.as_u64())
                            .map(|d| d as usize)
                            .collect(),
                    ))
                })
                .collect();
            let detected = Release::detect(&shapes).ok_or_else(|| {
                weights_err(
                    path,
                    "not an LTX-Video checkpoint (no patchify_proj / transformer_blocks keys)",
                )
            })?;
            if !shapes.contains_key("vae.encoder.conv_in.conv.weight")
                && !shapes.contains_key("vae.encoder.conv_in.conv.bias")
            {
                return Err(weights_err(
                    path,
                    "this LTX file holds no VAE (`vae.` keys); use the full single file or a diffusers folder",
                ));
            }
            // An embedded config (diffusers field names) overrides the release's defaults.
            let embedded: Option<Value> = header
                .get("__metadata__")
                .and_then(|m| m.get("config"))
                .and_then(|c| c.as_str())
                .and_then(|s| serde_json::from_str(s).ok());
            // Parts in diffusers' terms are taken as they are; Lightricks' own are translated.
            let embedded_part = |key: &str| {
                let part = embedded
                    .as_ref()
                    .and_then(|e| e.get(key))
                    .filter(|v| v.is_object())?;
                if original::is_diffusers(part) || key == "scheduler" {
                    return Some(part.clone());
                }
                match key {
                    "vae" => original::vae_config(part),
                    "transformer" => original::transformer_config(part),
                    _ => None,
                }
            };
            // diffusers tells 0.9.5 by the real encoder's width (2048), which a file with other
            // widths lacks: an embedded VAE config says its layout outright.
            let release = match embedded_part("vae") {
                Some(v) => Release::from_vae_config(&v, detected),
                None => detected,
            };
            let schedule = match embedded_part("scheduler") {
                Some(v) => parse(v, path, "scheduler")?,
                None => release.schedule_config(),
            };
            let transformer = match embedded_part("transformer") {
                Some(v) => parse(v, path, "transformer")?,
                None => release.transformer_config(),
            };
            let vae = match embedded_part("vae") {
                Some(v) => parse(v, path, "VAE")?,
                None => release.vae_layout().config(),
            };
            Ok(LtxConfigs {
                release: Some(release),
                transformer,
                vae,
                schedule,
            })
        }
        LtxSource::Diffusers(dir) => {
            let schedule_path = dir.join("scheduler/scheduler_config.json");
            let schedule = if schedule_path.is_file() {
                parse(read_json(&schedule_path)?, &schedule_path, "scheduler")?
            } else {
                ScheduleConfig::default()
            };
            let tp = dir.join("transformer/config.json");
            let vp = dir.join("vae/config.json");
            Ok(LtxConfigs {
                release: None,
                transformer: parse(read_json(&tp)?, &tp, "transformer")?,
                vae: parse(read_json(&vp)?, &vp, "VAE")?,
                schedule,
            })
        }
    }
}

/// Loads the transformer in `dtype` (bf16 on CUDA, f32 on the CPU) and the VAE in f32.
pub fn load(source: &LtxSource, dtype: DType, device: &Device) -> Result<LtxNetworks> {
    let configs = configs(source)?;
    let (tb, vb): (Renamed, Renamed) = match source {
        LtxSource::SingleFile(path) => {
            let files = [path.clone()];
            let t = Renamed::open(&files, &|k: &str| {
                k.strip_prefix("model.diffusion_model.")
                    .map(ltx_transformer_key_from_original)
            })?;
            let layout = configs
                .release
                .map(Release::vae_layout)
                .unwrap_or(LtxVaeLayout::V0_9_5);
            let v = Renamed::open(&files, &|k: &str| {
                k.strip_prefix("vae.")
                    .and_then(|k| ltx_vae_key_from_original(k, layout))
            })?;
            (t, v)
        }
        LtxSource::Diffusers(dir) => {
            let keep = |k: &str| Some(k.to_string());
            (
                Renamed::open(&component_files(&dir.join("transformer"))?, &keep)?,
                Renamed::open(&component_files(&dir.join("vae"))?, &keep)?,
            )
        }
    };
    let tvb = VarBuilder::from_backend(Box::new(tb), dtype, device.clone());
    let vvb = VarBuilder::from_backend(Box::new(vb), DType::F32, device.clone());
    let transformer = LtxTransformer::new(tvb, &configs.transformer)?;
    let vae = LtxVae::new(vvb, &configs.vae)?;
    Ok(LtxNetworks {
        transformer,
        vae,
        configs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[(&str, &[usize])]) -> HashMap<String, Vec<usize>> {
        names
            .iter()
            .map(|(k, s)| (k.to_string(), s.to_vec()))
            .collect()
    }

    #[test]
    fn releases_are_told_apart_by_their_keys() {
        let base: &[(&str, &[usize])] =
            &[("model.diffusion_model.patchify_proj.weight", &[2048, 128])];
        assert_eq!(Release::detect(&keys(base)), Some(Release::V090));
        let mut k = keys(base);
        k.insert(
            "vae.decoder.last_time_embedder.timestep_embedder.linear_1.weight".into(),
            vec![1],
        );
        assert_eq!(Release::detect(&k), Some(Release::V091));
        k.insert(
            "vae.encoder.conv_out.conv.weight".into(),
            vec![129, 2048, 3, 3, 3],
        );
        assert_eq!(Release::detect(&k), Some(Release::V095));
        k.insert(
            "model.diffusion_model.transformer_blocks.47.scale_shift_table".into(),
            vec![6, 4096],
        );
        assert_eq!(Release::detect(&k), Some(Release::V097));
        assert_eq!(Release::detect(&keys(&[("unet.x", &[1])])), None);
    }

    #[test]
    fn release_configs_parse() {
        assert_eq!(Release::V097.transformer_config().num_layers, 48);
        assert_eq!(Release::V095.transformer_config().num_layers, 28);
        assert_eq!(Release::V091.vae_layout(), LtxVaeLayout::V0_9_1);
        assert!(Release::V091.schedule_config().use_dynamic_shifting);
        assert!(!Release::V095.schedule_config().use_dynamic_shifting);
    }
}
