//! LTX-Video weights on disk, as users have them:
//!
//! - an official single file (`ltxv-2b-0.9.8-distilled.safetensors`,
//!   `ltx-video-2b-v0.9.5.safetensors`, …): the transformer under `model.diffusion_model.`
//!   (`patchify_proj`, `adaln_single`, `scale_shift_table`, `transformer_blocks.N`) and the VAE
//!   under `vae.`, with a JSON `config` in the header's metadata (its `transformer`, `vae`,
//!   `scheduler` configs and, in distilled files, `allowed_inference_steps`);
//! - a diffusers pipeline folder (`model_index.json` of `LTXPipeline`,
//!   `LTXConditionPipeline` or `LTXImageToVideoPipeline`, with `transformer/`, `vae/`,
//!   `text_encoder/`, `tokenizer/`).
//!
//! The release is told apart the way diffusers' `infer_diffusers_model_type` does: 48 blocks
//! (`transformer_blocks.47`) is the 13B of 0.9.7 and later; a VAE encoder whose `conv_out`
//! takes 2048 channels is the 0.9.5 layout (0.9.5 to 0.9.8 2B); a decoder with
//! `last_time_embedder` is 0.9.1; else 0.9.0. A version in the file (or folder) name that agrees
//! with the tensors (`0.9.8` in `ltxv-2b-0.9.8-distilled`) makes it exact; otherwise the entry
//! says `0.9.5+` or `0.9.7+`. The size class comes from the transformer's width: 2048 is the
//! 2B, 4096 the 13B. Only the safetensors headers are read.
//!
//! A file of the registry (same name, and size where the registry knows it) takes that entry's
//! facts: frame rate, sampling, timesteps, licence and memory model. Otherwise they are
//! derived from what was recognised (see [`facts_for`]).

use std::path::{Path, PathBuf};

use super::image::safetensors_header;
use super::{err, read_json, size, Detected, ImportError};
use crate::hub::registry::{ModelKind, SamplingDefault, VideoFacts, VideoVram};

type Header = serde_json::Map<String, serde_json::Value>;

/// What an import recognised of a video model, beyond [`Detected`]'s common fields.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectedVideo {
    /// The facts the video engine runs it with (`[model.video]` of the entry).
    pub facts: VideoFacts,
    pub sampling: SamplingDefault,
    /// Guidance-distilled (fixed timesteps, no CFG).
    pub distilled: bool,
    /// Registry companions it needs: `flux-text-encoders` (T5-XXL) for a single file with no
    /// T5 beside it.
    pub requires: Vec<String>,
    /// The registry entry whose file this is, if any.
    pub matches: Option<String>,
    /// The licence, when the registry entry says it.
    pub license: Option<String>,
}

/// What the tensors of an LTX-Video single file say.
#[derive(Clone, Debug, PartialEq)]
struct LtxTensors {
    hidden: u32,
    layers: u32,
    heads: u32,
    /// `0.9.0`, `0.9.1`, `0.9.5+` or `0.9.7+` (see the module docs).
    class: &'static str,
    has_vae: bool,
    /// `allowed_inference_steps` from the metadata config (distilled files).
    timesteps: Vec<f64>,
}

fn shape(header: &Header, key: &str) -> Option<Vec<u64>> {
    header
        .get(key)?
        .get("shape")?
        .as_array()?
        .iter()
        .map(|v| v.as_u64())
        .collect()
}

/// The JSON `config` a Lightricks file carries in its metadata (a string holding JSON).
fn metadata_config(header: &Header) -> Option<serde_json::Value> {
    let text = header.get("__metadata__")?.get("config")?.as_str()?;
    serde_json::from_str(text).ok()
}

/// LTX-2 (audio + video) checkpoints share some names with LTX-Video; they are another model.
fn is_ltx2(header: &Header) -> bool {
    header
        .keys()
        .any(|k| k.starts_with("audio_vae.") || k.contains(".av_ca_"))
}

/// Recognises an LTX-Video transformer by its tensor names; `None`: not one.
fn classify(header: &Header) -> Option<LtxTensors> {
    let prefix = ["model.diffusion_model.", ""]
        .into_iter()
        .find(|p| header.contains_key(&format!("{p}patchify_proj.weight")))?;
    let has = |k: &str| {
        let k = format!("{prefix}{k}");
        header.keys().any(|x| x.starts_with(&k))
    };
    if !has("adaln_single.")
        || !(has("scale_shift_table") || has("transformer_blocks.0.scale_shift_table"))
    {
        return None;
    }
    let hidden = shape(header, &format!("{prefix}patchify_proj.weight"))
        .and_then(|s| s.first().copied())
        .or_else(|| {
            shape(header, &format!("{prefix}scale_shift_table")).and_then(|s| s.get(1).copied())
        })? as u32;
    let blocks = format!("{prefix}transformer_blocks.");
    let layers = header
        .keys()
        .filter_map(|k| {
            k.strip_prefix(&blocks)?
                .split('.')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .max()
        .map_or(0, |n| n + 1);
    let config = metadata_config(header);
    let heads = config
        .as_ref()
        .and_then(|c| c["transformer"]["num_attention_heads"].as_u64())
        .unwrap_or(32) as u32;
    let timesteps = config
        .as_ref()
        .and_then(|c| c["allowed_inference_steps"].as_array().cloned())
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    let has_vae = header.keys().any(|k| k.starts_with("vae."));
    let class = if layers >= 48 {
        "0.9.7+"
    } else if shape(header, "vae.encoder.conv_out.conv.weight").and_then(|s| s.get(1).copied())
        == Some(2048)
    {
        "0.9.5+"
    } else if header
        .contains_key("vae.decoder.last_time_embedder.timestep_embedder.linear_1.weight")
    {
        "0.9.1"
    } else {
        "0.9.0"
    };
    Some(LtxTensors {
        hidden,
        layers,
        heads,
        class,
        has_vae,
        timesteps,
    })
}

/// The `0.9.N` a file or folder name carries (`ltxv-2b-0.9.8-distilled` → 0.9.8,
/// `ltx-video-2b-v0.9.5` → 0.9.5).
fn version_in_name(name: &str) -> Option<u32> {
    let at = name.find("0.9.")?;
    let digits: String = name[at + 4..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The release: the name's when the tensors agree with it, else what the tensors say.
fn version(class: &str, name: &str) -> String {
    let (min, exact) = match class {
        "0.9.0" => (0, true),
        "0.9.1" => (1, true),
        "0.9.5+" => (5, false),
        _ => (7, false),
    };
    match version_in_name(name) {
        Some(n) if n == min || (!exact && n > min && n < 10) => format!("0.9.{n}"),
        _ => class.to_string(),
    }
}

/// The minor release a version string names (`0.9.5+` → 5).
fn minor(version: &str) -> u32 {
    version
        .trim_start_matches("0.9.")
        .trim_end_matches('+')
        .parse()
        .unwrap_or(0)
}

/// The official single-pass schedule of the 0.9.8 distilled models (their checkpoints'
/// `allowed_inference_steps`; see models/video.toml).
const DISTILLED_098: [f64; 8] = [1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219];

/// Facts for a model the registry does not list, from what was recognised:
///
/// - shape rules of every LTX-Video 0.9.x: 8k+1 frames, multiples of 32, VAE 8×32×32, 128
///   latent channels;
/// - fps 24 up to 0.9.5, 30 from 0.9.6 (the README's new default then);
/// - sampling: distilled → its metadata's `allowed_inference_steps` (or the 0.9.8 list for a
///   0.9.8 file, else 8 steps of the engine's schedule), cfg 1; 13B dev → 30 steps, cfg 5;
///   2B → 40 steps, cfg 3 (configs/ltxv-2b-0.9.1.yaml and -0.9.5.yaml);
/// - memory: transformer weights ≈ 16·hidden²·layers parameters × 2 bytes (+2 % for
///   embeddings), `hidden / 32` KiB of activations per token; decode as the registry's LTX
///   entries (1.2 GiB + 400 bytes per pixel-frame).
pub(super) fn facts_for(
    hidden: u32,
    layers: u32,
    heads: u32,
    version: &str,
    layout: &str,
    distilled: bool,
    timesteps: Vec<f64>,
) -> (VideoFacts, SamplingDefault) {
    let minor = minor(version);
    let timesteps = if !distilled {
        Vec::new()
    } else if !timesteps.is_empty() {
        timesteps
    } else if minor == 8 {
        DISTILLED_098.to_vec()
    } else {
        Vec::new()
    };
    let sampling = if distilled {
        SamplingDefault {
            sampler: "flow".into(),
            steps: if timesteps.is_empty() {
                8
            } else {
                timesteps.len() as u32
            },
            cfg: 1.0,
        }
    } else if hidden >= 4096 {
        SamplingDefault {
            sampler: "flow".into(),
            steps: 30,
            cfg: 5.0,
        }
    } else {
        SamplingDefault {
            sampler: "flow".into(),
            steps: 40,
            cfg: 3.0,
        }
    };
    let params = 16.0 * f64::from(hidden).powi(2) * f64::from(layers) * 1.02;
    let facts = VideoFacts {
        version: version.to_string(),
        layout: layout.to_string(),
        fps: if minor >= 6 { 30 } else { 24 },
        frame_rule: "8k+1".into(),
        size_multiple: 32,
        temporal_compression: 8,
        spatial_compression: 32,
        latent_channels: 128,
        hidden,
        layers,
        heads: heads.max(1),
        timesteps,
        task: "any".into(),
        patch: 1,
        shift: None,
        sequential_guidance: false,
        vram: VideoVram {
            // Every resident weight: the transformer in bf16, T5-XXL in bf16 (8.9 GiB) and the
            // VAE in f32 (4.7 GiB), as in models/video.toml.
            transformer_base_gb: (params * 2.0 / (1u64 << 30) as f64 * 10.0).ceil() / 10.0
                + T5_AND_VAE_GIB,
            transformer_per_token_kib: f64::from(hidden) / 32.0,
            decode_base_gb: 0.3,
            decode_per_pixel_frame_bytes: 400.0,
            block_gb: None,
            decode_frames: None,
            vae_gb: None,
        },
    };
    (facts, sampling)
}

/// GPU memory of the T5-XXL encoder (bf16) and the LTX VAE (f32) an LTX model keeps loaded.
const T5_AND_VAE_GIB: f64 = 13.6;

/// The embedded registry's entry for a weights file of this name and size.
fn registry_match(file: &str, bytes: u64) -> Option<crate::hub::ModelEntry> {
    let reg = crate::hub::Registry::embedded().ok()?;
    reg.models()
        .iter()
        .filter(|m| m.kind == ModelKind::Video && m.video.is_some())
        .find(|m| {
            m.files.iter().any(|f| {
                f.path.rsplit('/').next() == Some(file) && f.size.is_none_or(|s| s == bytes)
            })
        })
        .cloned()
}

/// Tokenizer and config files a video model folder may carry (part of the entry).
const VIDEO_EXTRAS: &[&str] = &[
    "model_index.json",
    "scheduler/scheduler_config.json",
    "transformer/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "tokenizer/spiece.model",
    "tokenizer/tokenizer.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/special_tokens_map.json",
    "tokenizer/added_tokens.json",
    "spiece.model",
];

fn video_extras(root: &Path) -> Vec<(String, u64)> {
    VIDEO_EXTRAS
        .iter()
        .filter(|f| root.join(f).is_file())
        .map(|f| (f.to_string(), size(&root.join(f))))
        .collect()
}

/// T5-XXL weights beside a single file: `t5*.safetensors` (t5xxl_fp16, t5xxl_fp8_e4m3fn, …).
fn t5_files(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_t5_file(p))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Whether a file is named like a T5 encoder's weights (`t5xxl_fp16.safetensors`, …).
pub(crate) fn is_t5_file(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.starts_with("t5") && name.ends_with(".safetensors")
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A single `.safetensors` file: an LTX-Video checkpoint (`Ok(Some)`), not one (`Ok(None)`),
/// or one that cannot run (transformer without its VAE, LTX-2).
pub(super) fn detect_file(path: &Path) -> Result<Option<Detected>, ImportError> {
    let header = safetensors_header(path)?;
    let Some(t) = classify(&header) else {
        return Ok(None);
    };
    if is_ltx2(&header) {
        return Err(err(
            path,
            "an LTX-2 checkpoint (audio + video): reelsmith runs LTX-Video 0.9.x",
        ));
    }
    if !t.has_vae {
        return Err(err(
            path,
            "an LTX-Video transformer without its VAE (no vae.* tensors); import the official \
             single file (ltxv-*.safetensors, which holds both) or a diffusers folder",
        ));
    }
    let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = file_name(path);
    let bytes = size(path);
    let version = version(t.class, &name);
    let distilled = !t.timesteps.is_empty() || name.to_lowercase().contains("distilled");
    let (mut facts, mut sampling) = facts_for(
        t.hidden,
        t.layers,
        t.heads,
        &version,
        "single-file",
        distilled,
        t.timesteps,
    );
    let matched = registry_match(&name, bytes);
    let mut license = None;
    if let Some(m) = &matched {
        if let (Some(v), Some(s)) = (&m.video, &m.sampling) {
            if v.hidden == facts.hidden && v.layers == facts.layers {
                facts = v.clone();
                sampling = s.clone();
                license = Some(m.license.clone());
            }
        }
    }
    let t5 = t5_files(&root);
    let mut files = vec![(name, bytes)];
    files.extend(t5.iter().map(|p| (file_name(p), size(p))));
    files.extend(video_extras(&root));
    let requires = if t5.is_empty() && !root.join("text_encoder/config.json").is_file() {
        vec!["flux-text-encoders".to_string()]
    } else {
        Vec::new()
    };
    Ok(Some(Detected {
        kind: ModelKind::Video,
        format: "safetensors",
        arch: "ltxv".into(),
        variant: Some(if facts.distilled() || sampling.cfg <= 1.0 {
            "distilled".to_string()
        } else {
            "dev".to_string()
        }),
        languages: vec![],
        files,
        root,
        video: Some(DetectedVideo {
            distilled: facts.distilled() || sampling.cfg <= 1.0,
            facts,
            sampling,
            requires,
            matches: matched.filter(|_| license.is_some()).map(|m| m.id),
            license,
        }),
    }))
}

/// A folder holding one LTX-Video single file (and maybe its T5 and tokenizer):
/// `Ok(None)` when it holds none.
pub(super) fn detect_folder(root: &Path) -> Result<Option<Detected>, ImportError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| err(root, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "safetensors"))
        .filter(|p| !is_t5_file(p))
        .collect();
    files.sort();
    let mut found = Vec::new();
    for f in &files {
        let header = safetensors_header(f)?;
        if classify(&header).is_some() {
            found.push(f.clone());
        }
    }
    match found.as_slice() {
        [] => Ok(None),
        [one] => detect_file(one),
        many => Err(err(
            root,
            format!(
                "several LTX-Video checkpoints in one folder ({}): import each file by itself",
                many.iter()
                    .map(|p| file_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The diffusers pipelines of LTX-Video.
pub(super) fn is_ltx_pipeline(class: &str) -> bool {
    matches!(
        class,
        "LTXPipeline" | "LTXConditionPipeline" | "LTXImageToVideoPipeline" | "LTXVideoPipeline"
    )
}

/// A diffusers LTX-Video folder: the transformer's and VAE's configs say the size class and
/// release; `files` are its safetensors (relative paths and sizes).
pub(super) fn detect_diffusers(
    root: &Path,
    class: &str,
    mut files: Vec<(String, u64)>,
) -> Result<Detected, ImportError> {
    let has_weights = |dir: &str| files.iter().any(|(p, _)| p.starts_with(&format!("{dir}/")));
    let mut missing = Vec::new();
    for net in ["transformer", "vae"] {
        if !root.join(net).join("config.json").is_file() || !has_weights(net) {
            missing.push(format!("{net}/ (config.json and *.safetensors)"));
        }
    }
    if !missing.is_empty() {
        return Err(err(
            root,
            format!(
                "a {class} folder needs its parts; missing: {}",
                missing.join(", ")
            ),
        ));
    }
    let transformer = read_json(&root.join("transformer/config.json"))?;
    let vae = read_json(&root.join("vae/config.json"))?;
    let heads = transformer["num_attention_heads"].as_u64().unwrap_or(32) as u32;
    let head_dim = transformer["attention_head_dim"].as_u64().unwrap_or(64) as u32;
    let layers = transformer["num_layers"].as_u64().unwrap_or(28) as u32;
    let hidden = heads * head_dim;
    let flag = |key: &str| {
        vae[key]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_bool() == Some(true)))
    };
    let class_of = if layers >= 48 {
        "0.9.7+"
    } else if flag("upsample_residual")
        || vae["block_out_channels"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_u64() == Some(1024)))
    {
        "0.9.5+"
    } else if vae["timestep_conditioning"].as_bool() == Some(true) {
        "0.9.1"
    } else {
        "0.9.0"
    };
    let name = file_name(root);
    let version = version(class_of, &name);
    let distilled = name.to_lowercase().contains("distilled");
    let (facts, sampling) = facts_for(
        hidden,
        layers,
        heads,
        &version,
        "diffusers",
        distilled,
        Vec::new(),
    );
    let requires = if root.join("text_encoder/config.json").is_file() {
        Vec::new()
    } else {
        vec!["flux-text-encoders".to_string()]
    };
    files.extend(video_extras(root));
    files.sort();
    files.dedup();
    Ok(Detected {
        kind: ModelKind::Video,
        format: "safetensors",
        arch: "ltxv".into(),
        variant: Some(if distilled { "distilled" } else { "dev" }.to_string()),
        languages: vec![],
        files,
        root: root.to_path_buf(),
        video: Some(DetectedVideo {
            distilled,
            facts,
            sampling,
            requires,
            matches: None,
            license: None,
        }),
    })
}

/// Synthetic LTX-Video weights for tests (headers only), here and in the engines' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::path::Path;

    /// A safetensors file with these tensors (`name`, shape) and metadata; the data are zeros.
    pub fn synthetic(path: &Path, tensors: &[(&str, &[u64])], meta: Option<serde_json::Value>) {
        let mut h = serde_json::Map::new();
        for (k, shape) in tensors {
            h.insert(
                k.to_string(),
                serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [0, 2]}),
            );
        }
        if let Some(m) = meta {
            h.insert("__metadata__".into(), m);
        }
        let header = serde_json::Value::Object(h).to_string();
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(&[0u8; 2]);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b).unwrap();
    }

    /// The tensor names of an official LTX-Video single file: `hidden` wide, `layers` blocks,
    /// and a VAE of `vae` layout (`0.9.0`, `0.9.1`, `0.9.5`; `None`: no VAE).
    pub fn ltx_names(hidden: u64, layers: u32, vae: Option<&str>) -> Vec<(String, Vec<u64>)> {
        let p = "model.diffusion_model.";
        let mut names: Vec<(String, Vec<u64>)> = vec![
            (format!("{p}patchify_proj.weight"), vec![hidden, 128]),
            (format!("{p}patchify_proj.bias"), vec![hidden]),
            (
                format!("{p}adaln_single.linear.weight"),
                vec![6 * hidden, hidden],
            ),
            (format!("{p}scale_shift_table"), vec![2, hidden]),
            (format!("{p}proj_out.weight"), vec![128, hidden]),
        ];
        for i in 0..layers {
            names.push((
                format!("{p}transformer_blocks.{i}.scale_shift_table"),
                vec![6, hidden],
            ));
            names.push((
                format!("{p}transformer_blocks.{i}.attn1.to_q.weight"),
                vec![hidden, hidden],
            ));
        }
        let conv_out = |c: u64| {
            (
                "vae.encoder.conv_out.conv.weight".to_string(),
                vec![129, c, 3, 3, 3],
            )
        };
        match vae {
            Some("0.9.5") => {
                names.push(conv_out(2048));
                names.push(("vae.decoder.last_scale_shift_table".into(), vec![2, 128]));
            }
            Some("0.9.1") => {
                names.push(conv_out(512));
                names.push((
                    "vae.decoder.last_time_embedder.timestep_embedder.linear_1.weight".into(),
                    vec![256, 256],
                ));
            }
            Some(_) => {
                names.push(conv_out(512));
                names.push((
                    "vae.decoder.up_blocks.9.res_blocks.0.conv1.conv.weight".into(),
                    vec![128, 128, 3, 3, 3],
                ));
            }
            None => {}
        }
        names
    }

    pub fn write(path: &Path, names: &[(String, Vec<u64>)], meta: Option<serde_json::Value>) {
        let refs: Vec<(&str, &[u64])> = names
            .iter()
            .map(|(k, s)| (k.as_str(), s.as_slice()))
            .collect();
        synthetic(path, &refs, meta);
    }

    /// An LTX-Video single file (see [`ltx_names`]).
    pub fn ltx_file(
        path: &Path,
        hidden: u64,
        layers: u32,
        vae: Option<&str>,
        meta: Option<serde_json::Value>,
    ) {
        write(path, &ltx_names(hidden, layers, vae), meta);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{detect, entry, register};
    use super::fixtures::{ltx_file, ltx_names, synthetic, write};
    use super::*;

    fn video(d: &Detected) -> &DetectedVideo {
        d.video.as_ref().expect("a video model")
    }

    #[test]
    fn official_single_files_are_told_apart_by_their_tensors_and_names() {
        let t = tempfile::tempdir().unwrap();
        let cases: [(&str, u64, u32, &str, &str, &str); 5] = [
            (
                "ltxv-2b-0.9.8-distilled.safetensors",
                2048,
                28,
                "0.9.5",
                "0.9.8",
                "2B",
            ),
            (
                "ltx-video-2b-v0.9.5.safetensors",
                2048,
                28,
                "0.9.5",
                "0.9.5",
                "2B",
            ),
            (
                "ltxv-13b-0.9.8-dev.safetensors",
                4096,
                48,
                "0.9.5",
                "0.9.8",
                "13B",
            ),
            (
                "ltx-video-2b-v0.9.1.safetensors",
                2048,
                28,
                "0.9.1",
                "0.9.1",
                "2B",
            ),
            ("my-ltx.safetensors", 2048, 28, "0.9.5", "0.9.5+", "2B"),
        ];
        for (i, (file, hidden, layers, vae, version, class)) in cases.into_iter().enumerate() {
            let path = t.path().join(format!("m{i}")).join(file);
            ltx_file(&path, hidden, layers, Some(vae), None);
            let d = detect(&path).unwrap();
            assert_eq!(
                (d.kind, d.format, d.arch.as_str()),
                (ModelKind::Video, "safetensors", "ltxv"),
                "{file}"
            );
            let v = video(&d);
            assert_eq!(v.facts.version, version, "{file}");
            assert_eq!(v.facts.size_class(), class, "{file}");
            assert_eq!(v.facts.layout, "single-file");
            assert_eq!(v.facts.layers, layers);
            assert_eq!(v.requires, vec!["flux-text-encoders".to_string()], "{file}");
            assert_eq!(d.files[0].0, file);
        }
        // A version in the name that the tensors contradict is not believed.
        let odd = t.path().join("odd/ltx-video-2b-v0.9.5.safetensors");
        ltx_file(&odd, 2048, 28, Some("0.9.0"), None);
        assert_eq!(video(&detect(&odd).unwrap()).facts.version, "0.9.0");
        let big = t.path().join("big/ltxv-13b.safetensors");
        ltx_file(&big, 4096, 48, Some("0.9.5"), None);
        assert_eq!(video(&detect(&big).unwrap()).facts.version, "0.9.7+");
    }

    #[test]
    fn distilled_files_take_their_schedule_from_metadata_or_the_registry() {
        let t = tempfile::tempdir().unwrap();
        // Metadata: the config JSON with allowed_inference_steps (as Lightricks writes it).
        let config = serde_json::json!({
            "transformer": {"num_attention_heads": 32},
            "allowed_inference_steps": [1.0, 0.9, 0.5]
        });
        let meta = serde_json::json!({"config": config.to_string()});
        let path = t.path().join("a/custom.safetensors");
        ltx_file(&path, 2048, 28, Some("0.9.5"), Some(meta));
        let d = detect(&path).unwrap();
        let v = video(&d);
        assert!(v.distilled && v.facts.distilled());
        assert_eq!(v.facts.timesteps, vec![1.0, 0.9, 0.5]);
        assert_eq!((v.sampling.steps, v.sampling.cfg), (3, 1.0));
        assert_eq!(d.variant.as_deref(), Some("distilled"));
        // A file named like a registry file but of another size: derived facts, the 0.9.8
        // distilled schedule from its name.
        let path = t.path().join("b/ltxv-2b-0.9.8-distilled.safetensors");
        ltx_file(&path, 2048, 28, Some("0.9.5"), None);
        let d = detect(&path).unwrap();
        let v = video(&d);
        assert_eq!(v.matches, None);
        assert_eq!(v.facts.timesteps.len(), 8);
        assert_eq!(v.facts.fps, 30);
        // Undistilled 2B: 40 steps at cfg 3; 13B dev: 30 at 5.
        let path = t.path().join("c/ltx-video-2b-v0.9.5.safetensors");
        ltx_file(&path, 2048, 28, Some("0.9.5"), None);
        let v = video(&detect(&path).unwrap()).clone();
        assert!(!v.distilled);
        assert_eq!(
            (v.sampling.steps, v.sampling.cfg, v.facts.fps),
            (40, 3.0, 24)
        );
        let path = t.path().join("d/ltxv-13b-0.9.8-dev.safetensors");
        ltx_file(&path, 4096, 48, Some("0.9.5"), None);
        let v = video(&detect(&path).unwrap()).clone();
        assert_eq!((v.sampling.steps, v.sampling.cfg), (30, 5.0));
        let base = v.facts.vram.transformer_base_gb;
        assert!(base > 35.0 && base < 42.0, "{base}");
    }

    #[test]
    fn a_file_of_the_registry_takes_its_entry() {
        // The facts of a registry file travel with the import when name and size agree.
        let m = registry_match("ltx-video-2b-v0.9.5.safetensors", 6_340_729_500).unwrap();
        assert_eq!(m.id, "ltx-video-2b");
        assert!(registry_match("ltx-video-2b-v0.9.5.safetensors", 12).is_none());
        // 13B dev has a size in the registry; another size is another file.
        assert!(registry_match("ltxv-13b-0.9.8-dev.safetensors", 28_579_183_340).is_some());
    }

    #[test]
    fn incomplete_or_foreign_files_are_refused_with_the_reason() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("a/ltxv-transformer.safetensors");
        ltx_file(&path, 2048, 28, None, None);
        let e = detect(&path).unwrap_err().to_string();
        assert!(e.contains("without its VAE"), "{e}");
        let path = t.path().join("b/ltx-2.safetensors");
        let mut names = ltx_names(2048, 28, Some("0.9.5"));
        names.push(("audio_vae.decoder.conv_in.weight".into(), vec![1]));
        write(&path, &names, None);
        let e = detect(&path).unwrap_err().to_string();
        assert!(e.contains("LTX-2"), "{e}");
        // Two checkpoints in one folder.
        let two = t.path().join("two");
        ltx_file(&two.join("x.safetensors"), 2048, 28, Some("0.9.5"), None);
        ltx_file(&two.join("y.safetensors"), 2048, 28, Some("0.9.5"), None);
        let e = detect(&two).unwrap_err().to_string();
        assert!(e.contains("several LTX-Video checkpoints"), "{e}");
    }

    #[test]
    fn a_folder_with_its_t5_and_tokenizer_needs_no_companion() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("ltx");
        ltx_file(
            &dir.join("ltxv-2b-0.9.8-distilled.safetensors"),
            2048,
            28,
            Some("0.9.5"),
            None,
        );
        synthetic(
            &dir.join("t5xxl_fp16.safetensors"),
            &[(
                "encoder.block.0.layer.0.SelfAttention.q.weight",
                &[4096, 4096],
            )],
            None,
        );
        std::fs::create_dir_all(dir.join("tokenizer")).unwrap();
        std::fs::write(dir.join("tokenizer/spiece.model"), b"x").unwrap();
        let d = detect(&dir).unwrap();
        let v = video(&d);
        assert!(v.requires.is_empty());
        let names: Vec<&str> = d.files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "ltxv-2b-0.9.8-distilled.safetensors",
                "t5xxl_fp16.safetensors",
                "tokenizer/spiece.model"
            ]
        );
        // What `reelsmith models import` registers loads back with its [model.video].
        let config = t.path().join("config");
        register(&config, &entry(&d, "my-ltx")).unwrap();
        let reg = crate::hub::Registry::load(Some(&config)).unwrap();
        let m = reg.get("my-ltx").unwrap();
        assert_eq!((m.kind, m.arch.as_str()), (ModelKind::Video, "ltxv"));
        let facts = m.video.as_ref().unwrap();
        assert_eq!(
            (facts.version.as_str(), facts.size_class()),
            ("0.9.8", "2B")
        );
        assert_eq!(m.sampling.as_ref().unwrap().steps, 8);
        assert!(m.requires.is_empty());
        assert_eq!(m.variant.as_deref(), Some("distilled"));
    }

    #[test]
    fn diffusers_folders_are_recognised_by_their_pipeline_and_configs() {
        let t = tempfile::tempdir().unwrap();
        let folder = |name: &str,
                      class: &str,
                      heads: u64,
                      dim: u64,
                      layers: u64,
                      vae: serde_json::Value| {
            let dir = t.path().join(name);
            for net in ["transformer", "vae", "text_encoder"] {
                synthetic(
                    &dir.join(net).join("diffusion_pytorch_model.safetensors"),
                    &[("w", &[1])],
                    None,
                );
            }
            std::fs::write(
                dir.join("model_index.json"),
                serde_json::json!({"_class_name": class}).to_string(),
            )
            .unwrap();
            std::fs::write(
                dir.join("transformer/config.json"),
                serde_json::json!({"num_attention_heads": heads, "attention_head_dim": dim, "num_layers": layers}).to_string(),
            )
            .unwrap();
            std::fs::write(dir.join("vae/config.json"), vae.to_string()).unwrap();
            std::fs::write(dir.join("text_encoder/config.json"), "{}").unwrap();
            std::fs::create_dir_all(dir.join("tokenizer")).unwrap();
            std::fs::write(dir.join("tokenizer/spiece.model"), b"x").unwrap();
            dir
        };
        let v095 = serde_json::json!({"block_out_channels": [128, 256, 512, 1024],
            "upsample_residual": [true, true, true], "timestep_conditioning": true});
        let dir = folder(
            "LTX-Video-0.9.5",
            "LTXConditionPipeline",
            32,
            64,
            28,
            v095.clone(),
        );
        let d = detect(&dir).unwrap();
        assert_eq!((d.kind, d.arch.as_str()), (ModelKind::Video, "ltxv"));
        let v = video(&d);
        assert_eq!(
            (
                v.facts.version.as_str(),
                v.facts.layout.as_str(),
                v.facts.size_class()
            ),
            ("0.9.5", "diffusers", "2B")
        );
        assert!(v.requires.is_empty(), "the folder has its text_encoder/");
        assert!(d.files.iter().any(|f| f.0 == "tokenizer/spiece.model"));
        assert!(d
            .files
            .iter()
            .any(|f| f.0 == "transformer/diffusion_pytorch_model.safetensors"));

        let dir = folder("ltx-13b-distilled", "LTXPipeline", 32, 128, 48, v095);
        let v = video(&detect(&dir).unwrap()).clone();
        assert_eq!(
            (v.facts.version.as_str(), v.facts.size_class()),
            ("0.9.7+", "13B")
        );
        assert!(v.distilled && v.sampling.cfg <= 1.0);

        let v091 = serde_json::json!({"block_out_channels": [128, 256, 512, 512], "timestep_conditioning": true});
        let dir = folder("ltx-old", "LTXImageToVideoPipeline", 32, 64, 28, v091);
        assert_eq!(video(&detect(&dir).unwrap()).facts.version, "0.9.1");

        // A pipeline folder without its VAE says what is missing.
        let dir = folder("broken", "LTXPipeline", 32, 64, 28, serde_json::json!({}));
        std::fs::remove_dir_all(dir.join("vae")).unwrap();
        let e = detect(&dir).unwrap_err().to_string();
        assert!(e.contains("missing: vae/"), "{e}");
    }
}
