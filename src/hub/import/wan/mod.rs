//! Wan2.1 video models on disk (kind `video`, arch `wan`), in the layouts users have them:
//!
//! - `diffusers`: a pipeline folder, `model_index.json` of `WanPipeline` (text-to-video) or
//!   `WanImageToVideoPipeline` (image-to-video; first-last-frame when the transformer has
//!   `pos_embed_seq_len`) with `transformer/`, `vae/`, `text_encoder/`, `tokenizer/` and, for the
//!   image tasks, `image_encoder/` (and `image_processor/`);
//! - `official`: the Wan-AI release folder, a `WanModel` `config.json` beside the transformer's
//!   `diffusion_pytorch_model*.safetensors`, `Wan2.1_VAE.pth`, `models_t5_umt5-xxl-enc-bf16.pth`,
//!   the tokenizer in `google/umt5-xxl/` and, for the image tasks,
//!   `models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`;
//! - `comfyui`: one transformer `.safetensors` (official names, maybe under
//!   `model.diffusion_model.`) with its companions beside it — a VAE (`*vae*`), the umT5 encoder
//!   (`umt5*`), `clip_vision_h.safetensors` for the image tasks, maybe a `tokenizer.json` — or in
//!   the part folders of ComfyUI's `models/` and of the registry's downloads
//!   (`[split_files/]{diffusion_models,text_encoders,vae,clip_vision}/`).
//!
//! reelsmith_video reads the transformer's config (config.json or tensor shapes, no weights),
//! which says the task: image input is i2v, with an image position embedding flf2v. A transformer
//! file of the registry (its name, and size where the registry knows it) takes that entry's
//! facts, sampling and licence; otherwise they are derived ([`facts_for`]).

use std::path::{Path, PathBuf};

use reelsmith_video::wan::transformer::{WanTransformer, WanTransformerConfig, COMFY_PREFIX};

use super::image::safetensors_header;
use super::video::DetectedVideo;
use super::{err, read_json, size, Detected, ImportError};
use crate::hub::registry::{ModelKind, SamplingDefault, VideoFacts, VideoVram};

/// The files of a Wan2.1 model found in `root` (a folder of any of the layouts; for a single
/// transformer file pass the file itself): each part a folder or a single file as
/// reelsmith_video's loaders take them.
#[derive(Clone, Debug, PartialEq)]
pub struct WanParts {
    pub transformer: PathBuf,
    pub vae: Option<PathBuf>,
    pub text_encoder: Option<PathBuf>,
    /// A tokenizer.json file or a folder holding one.
    pub tokenizer: Option<PathBuf>,
    pub image_encoder: Option<PathBuf>,
    /// preprocessor_config.json or a folder holding one.
    pub image_processor: Option<PathBuf>,
}

/// What [`locate`] finds: the layout (`[model.video] layout`), the folder the entry points at,
/// and the parts.
type Found = (&'static str, PathBuf, WanParts);

/// The part folders of ComfyUI's `models/` and of the registry's downloads (`split_files/`).
const COMFY_DIRS: &str = "diffusion_models unet text_encoders clip vae clip_vision";

fn name_of(p: &Path) -> String {
    let n = p.file_name().map(|n| n.to_string_lossy().to_lowercase());
    n.unwrap_or_default()
}

fn is_weights(n: &str) -> bool {
    n.ends_with(".safetensors") || n.ends_with(".pth") || n.ends_with(".pt")
}

fn is_vae(n: &str) -> bool {
    n.contains("vae") && is_weights(n)
}

fn is_umt5(n: &str) -> bool {
    (n.starts_with("umt5") || n.starts_with("models_t5")) && is_weights(n)
}

fn is_clip(n: &str) -> bool {
    (n.contains("clip_vision") || n.starts_with("models_clip")) && is_weights(n)
}

/// Whether a safetensors header is a Wan2.1 transformer's (official, ComfyUI or diffusers names).
fn is_transformer(header: &serde_json::Map<String, serde_json::Value>) -> bool {
    let has = |n: &str| (header.keys()).any(|k| k.strip_prefix(COMFY_PREFIX).unwrap_or(k) == n);
    has("patch_embedding.weight")
        && (has("blocks.0.self_attn.q.weight") || has("blocks.0.attn1.to_q.weight"))
}

fn is_transformer_file(p: &Path) -> bool {
    name_of(p).ends_with(".safetensors") && safetensors_header(p).is_ok_and(|h| is_transformer(&h))
}

/// The regular, visible files of a folder, sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file() && !name_of(p).starts_with('.'));
    files.sort();
    files
}

/// `base` and the ComfyUI / `split_files` part folders in it.
fn comfy_dirs(base: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![base.to_path_buf()];
    for b in [base.to_path_buf(), base.join("split_files")] {
        dirs.extend(
            COMFY_DIRS
                .split(' ')
                .map(|d| b.join(d))
                .filter(|d| d.is_dir()),
        );
    }
    dirs
}

/// A folder holding `config.json` and `.safetensors` weights (a transformers/diffusers part).
fn model_dir(d: &Path) -> Option<PathBuf> {
    let weights = files_in(d)
        .iter()
        .any(|p| name_of(p).ends_with(".safetensors"));
    (weights && d.join("config.json").is_file()).then(|| d.to_path_buf())
}

/// One of `found` (`what` names them), narrowed by each preference that leaves any; several
/// left is ambiguous.
fn pick(
    what: &str,
    mut found: Vec<PathBuf>,
    prefer: &[fn(&str) -> bool],
) -> Result<Option<PathBuf>, String> {
    for p in prefer {
        let kept: Vec<PathBuf> = found.iter().filter(|f| p(&name_of(f))).cloned().collect();
        if !kept.is_empty() {
            found = kept;
        }
    }
    if found.len() > 1 {
        let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
        let names = names.join(", ");
        return Err(format!(
            "several {what} ({names}): keep the one this model uses"
        ));
    }
    Ok(found.pop())
}

/// Whether a folder holds a tokenizer for umT5: tokenizer.json in it, in tokenizer/ or
/// google/umt5-xxl/.
pub fn tokenizer_in(dir: &Path) -> Option<PathBuf> {
    let at = [
        "tokenizer.json",
        "tokenizer/tokenizer.json",
        "google/umt5-xxl/tokenizer.json",
    ];
    at.iter().map(|f| dir.join(f)).find(|p| p.is_file())
}

fn image_encoder_search(dir: &Path) -> Result<Option<PathBuf>, String> {
    if let Some(d) = model_dir(&dir.join("image_encoder")) {
        return Ok(Some(d));
    }
    let found = comfy_dirs(dir).into_iter().flat_map(|d| files_in(&d));
    let found = found.filter(|p| is_clip(&name_of(p))).collect();
    pick(
        "CLIP vision encoders",
        found,
        &[|n| n.contains("clip_vision_h")],
    )
}

/// Same for a CLIP vision encoder file/folder (clip_vision*.safetensors, image_encoder/,
/// models_clip_*.pth).
pub fn image_encoder_in(dir: &Path) -> Option<PathBuf> {
    image_encoder_search(dir).ok().flatten()
}

fn image_processor_in(dir: &Path) -> Option<PathBuf> {
    let at = [
        "image_processor/preprocessor_config.json",
        "preprocessor_config.json",
    ];
    at.iter().map(|f| dir.join(f)).find(|p| p.is_file())
}

/// The parts beside a transformer (official and ComfyUI layouts), looked for in `base` and its
/// part folders. Several candidates: a name with `wan` and without `2.2` is the VAE; the
/// 16-bit umT5 is preferred to the fp8 one (both run in f32); `clip_vision_h` is the encoder.
fn companions(base: &Path, transformer: PathBuf) -> Result<WanParts, String> {
    let files: Vec<PathBuf> = comfy_dirs(base).iter().flat_map(|d| files_in(d)).collect();
    let of = |f: fn(&str) -> bool| -> Vec<PathBuf> {
        let found = files
            .iter()
            .filter(|p| **p != transformer && f(&name_of(p)));
        found.cloned().collect()
    };
    let vae = pick(
        "VAE files",
        of(is_vae),
        &[|n| n.contains("wan"), |n| !n.contains("2.2")],
    )?;
    let text_encoder = pick("umT5 encoders", of(is_umt5), &[|n| !n.contains("fp8")])?;
    Ok(WanParts {
        tokenizer: comfy_dirs(base).iter().find_map(|d| tokenizer_in(d)),
        image_encoder: image_encoder_search(base)?,
        image_processor: image_processor_in(base),
        transformer,
        vae,
        text_encoder,
    })
}

/// The `_class_name` in a folder's JSON file.
fn class_of(dir: &Path, file: &str) -> Option<String> {
    let v = read_json(&dir.join(file)).ok()?;
    v["_class_name"].as_str().map(str::to_string)
}

/// The diffusers pipelines of Wan2.1 this import recognises.
pub(super) fn is_wan_pipeline(class: &str) -> bool {
    matches!(class, "WanPipeline" | "WanImageToVideoPipeline")
}

/// The official or diffusers transformer folder a weights file is (a shard of).
fn shard_of(file: &Path) -> Option<PathBuf> {
    let parent = file.parent()?;
    let class = class_of(parent, "config.json");
    let wan = matches!(class.as_deref(), Some("WanModel" | "WanTransformer3DModel"));
    (wan && name_of(file).ends_with(".safetensors")).then(|| parent.to_path_buf())
}

fn diffusers(root: &Path) -> Result<Found, String> {
    let Some(transformer) = model_dir(&root.join("transformer")) else {
        return Err("a Wan pipeline needs transformer/ (config.json and *.safetensors)".into());
    };
    let parts = WanParts {
        transformer,
        vae: model_dir(&root.join("vae")),
        text_encoder: model_dir(&root.join("text_encoder")),
        tokenizer: tokenizer_in(root),
        image_encoder: model_dir(&root.join("image_encoder")),
        image_processor: image_processor_in(root),
    };
    Ok(("diffusers", root.to_path_buf(), parts))
}

/// Where the companions of the transformers in `dir` are: ComfyUI's `models/` (or
/// `split_files/`) for its `diffusion_models/` (or `unet/`), else `dir`.
fn comfy_base(dir: &Path) -> &Path {
    let up = matches!(name_of(dir).as_str(), "diffusion_models" | "unet");
    dir.parent().filter(|_| up).unwrap_or(dir)
}

/// The Wan model at `path` (file or folder); `Ok(None)` when it holds no Wan transformer.
fn locate(path: &Path) -> Result<Option<Found>, String> {
    if path.is_file() {
        if let Some(folder) = shard_of(path) {
            return locate(&folder);
        }
        if !is_transformer_file(path) {
            return Ok(None);
        }
        let base = comfy_base(path.parent().unwrap_or(Path::new("/")));
        let parts = companions(base, path.to_path_buf())?;
        return Ok(Some(("comfyui", base.to_path_buf(), parts)));
    }
    if !path.is_dir() {
        return Err(format!("{}: no such file or folder", path.display()));
    }
    if class_of(path, "model_index.json").is_some_and(|c| is_wan_pipeline(&c)) {
        return diffusers(path).map(Some);
    }
    match class_of(path, "config.json").as_deref() {
        Some("WanModel") => {
            let parts = companions(path, path.to_path_buf())?;
            return Ok(Some(("official", path.to_path_buf(), parts)));
        }
        Some("WanTransformer3DModel") => {
            let up = path.parent().unwrap_or(path);
            if class_of(up, "model_index.json").is_some_and(|c| is_wan_pipeline(&c)) {
                return diffusers(up).map(Some);
            }
            return Err(
                "a diffusers Wan transformer alone: import the pipeline folder that holds \
                        it (model_index.json, transformer/, vae/, text_encoder/, tokenizer/)"
                    .into(),
            );
        }
        _ => {}
    }
    let base = comfy_base(path);
    let found = comfy_dirs(base).into_iter().flat_map(|d| files_in(&d));
    let found: Vec<PathBuf> = found.filter(|p| is_transformer_file(p)).collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => {
            let parts = companions(base, one.clone())?;
            Ok(Some(("comfyui", base.to_path_buf(), parts)))
        }
        many => {
            let names: Vec<String> = many.iter().map(|p| name_of(p)).collect();
            let names = names.join(", ");
            Err(format!(
                "several Wan2.1 transformers ({names}): import the file you mean"
            ))
        }
    }
}

/// The parts of the Wan2.1 model at `path`; the error names what is missing or ambiguous.
pub fn parts_in(path: &Path) -> Result<WanParts, String> {
    match locate(path) {
        Ok(Some((_, _, parts))) => Ok(parts),
        Ok(None) => Err(format!(
            "{}: no Wan2.1 transformer here (a diffusers WanPipeline folder, an official Wan-AI \
             folder or a ComfyUI transformer .safetensors)",
            path.display()
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The safetensors files of the transformer part.
fn transformer_files(t: &Path) -> Vec<PathBuf> {
    if t.is_file() {
        return vec![t.to_path_buf()];
    }
    let mut files = files_in(t);
    files.retain(|p| name_of(p).ends_with(".safetensors"));
    files
}

/// Bytes of the transformer's weights as they run (fp8 stays 1 byte a parameter, the rest runs
/// in 16 bits) and the registry dtype they are stored in (`f8_e4m3`, `f16`, `bf16`, `f32`).
fn weight_bytes(t: &Path) -> Result<(u64, &'static str), ImportError> {
    let (mut bytes, mut dtypes) = (0u64, Vec::new());
    for f in transformer_files(t) {
        for (k, v) in safetensors_header(&f)? {
            let dims = v["shape"].as_array().filter(|_| k != "__metadata__");
            let n: u64 = dims.map_or(0, |s| s.iter().filter_map(|x| x.as_u64()).product());
            let dtype = v["dtype"].as_str().unwrap_or("");
            bytes += n * if dtype.starts_with("F8") { 1 } else { 2 };
            dtypes.push(dtype.to_string());
        }
    }
    let has = |d: &str| dtypes.iter().any(|x| x.starts_with(d));
    let dtype = match () {
        _ if has("F8") => "f8_e4m3",
        _ if has("F16") => "f16",
        _ if has("BF16") => "bf16",
        _ => "f32",
    };
    Ok((bytes, dtype))
}

/// GiB of the Wan2.1 VAE as it runs (f32).
const VAE_GIB: f64 = 0.47;

/// Facts of a Wan2.1 model the registry does not list (formulas of models/video.toml's Wan
/// comment): the shape rules of every Wan2.1 (4k+1 frames, multiples of 16, VAE 4×8×8, 16 latent
/// channels, patch 2), 16 fps; shift 16 for FLF2V, 3 for an I2V named 480p, 8 for the 1.3B T2V,
/// else 5; UniPC, 50 steps (I2V 40), guidance 5 (1.3B T2V 6); memory: the transformer as it
/// runs plus the VAE, one block as stored for streaming, 10·dim + 3·ffn 16-bit activations a
/// token.
fn facts_for(
    cfg: &WanTransformerConfig,
    task: &str,
    layout: &str,
    (bytes, dtype): (u64, &str),
    name: &str,
) -> (VideoFacts, SamplingDefault) {
    let (dim, ffn) = (cfg.inner_dim() as f64, cfg.ffn_dim as f64);
    let gib = (1u64 << 30) as f64;
    let small = task == "t2v" && dim <= 1536.0;
    let shift = match task {
        "flf2v" => 16.0,
        "i2v" if name.contains("480") => 3.0,
        _ if small => 8.0,
        _ => 5.0,
    };
    // Attention (self, cross and the image keys/values), FFN, and biases, norms, modulation.
    let kv = if cfg.has_image_input() { 2.0 } else { 0.0 };
    let block = (8.0 + kv) * dim * dim + 2.0 * dim * ffn + ffn + (21.0 + kv) * dim;
    let block_gb = block * if dtype == "f8_e4m3" { 1.0 } else { 2.0 } / gib;
    let facts = VideoFacts {
        version: "2.1".into(),
        layout: layout.into(),
        fps: 16,
        frame_rule: "4k+1".into(),
        size_multiple: 16,
        temporal_compression: 4,
        spatial_compression: 8,
        latent_channels: 16,
        hidden: cfg.inner_dim() as u32,
        layers: cfg.num_layers as u32,
        heads: cfg.num_attention_heads as u32,
        timesteps: Vec::new(),
        task: task.into(),
        patch: 2,
        shift: Some(shift),
        sequential_guidance: true,
        vram: VideoVram {
            transformer_base_gb: ((bytes as f64 / gib + VAE_GIB) * 10.0).round() / 10.0,
            transformer_per_token_kib: (10.0 * dim * 2.0 + 3.0 * ffn * 2.0) / 1024.0,
            decode_base_gb: 0.2,
            decode_per_pixel_frame_bytes: 4096.0,
            // Three significant digits.
            block_gb: Some({
                let m = 10f64.powi(3 - block_gb.log10().ceil() as i32);
                (block_gb * m).round() / m
            }),
            decode_frames: Some(4),
            vae_gb: Some(VAE_GIB),
        },
    };
    let steps = if task == "i2v" { 40 } else { 50 };
    let cfg = if small { 6.0 } else { 5.0 };
    let sampler = "unipc".into();
    (
        facts,
        SamplingDefault {
            sampler,
            steps,
            cfg,
        },
    )
}

/// The embedded registry's Wan entry with a transformer file of this name and size, and the
/// same layout, task and shape.
fn registry_match(file: &str, bytes: u64, f: &VideoFacts) -> Option<crate::hub::ModelEntry> {
    let reg = crate::hub::Registry::embedded().ok()?;
    let same = |v: &VideoFacts| {
        (v.layout == f.layout && v.task == f.task) && (v.hidden, v.layers) == (f.hidden, f.layers)
    };
    let ours = |p: &str, s: Option<u64>| {
        p.rsplit('/').next() == Some(file) && s.is_none_or(|s| s == bytes)
    };
    let mut wan = reg
        .models()
        .iter()
        .filter(|m| m.arch == "wan" && m.sampling.is_some());
    let found = wan.find(|m| {
        m.video.as_ref().is_some_and(same) && m.files.iter().any(|x| ours(&x.path, x.size))
    });
    found.cloned()
}

/// What each layout names for the VAE, the umT5 encoder and the CLIP vision encoder.
const WHERE: [(&str, [&str; 3]); 3] = [
    (
        "diffusers",
        [
            "vae/ (config.json and *.safetensors)",
            "text_encoder/ (config.json and *.safetensors)",
            "image_encoder/ (config.json and *.safetensors)",
        ],
    ),
    (
        "official",
        [
            "Wan2.1_VAE.pth (the Wan-AI/Wan2.1-* repo)",
            "models_t5_umt5-xxl-enc-bf16.pth (the Wan-AI/Wan2.1-* repo)",
            "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth (the Wan-AI/Wan2.1-I2V-* \
             repo)",
        ],
    ),
    (
        "comfyui",
        [
            "wan_2.1_vae.safetensors (Comfy-Org/Wan_2.1_ComfyUI_repackaged split_files/vae)",
            "umt5_xxl_fp16.safetensors or umt5_xxl_fp8_e4m3fn_scaled.safetensors \
             (Comfy-Org/Wan_2.1_ComfyUI_repackaged split_files/text_encoders)",
            "clip_vision_h.safetensors (Comfy-Org/Wan_2.1_ComfyUI_repackaged \
             split_files/clip_vision, or `reelsmith models pull wan2.1-clip-vision-h`)",
        ],
    ),
];

/// What a layout lacks beside the transformer, and where it comes from.
fn missing(layout: &str, p: &WanParts, image: bool) -> Vec<String> {
    let files = WHERE
        .iter()
        .find(|w| w.0 == layout)
        .map_or(WHERE[2].1, |w| w.1);
    let what = [
        "the VAE",
        "the umT5 text encoder",
        "the CLIP vision encoder",
    ];
    let has = [
        p.vae.is_some(),
        p.text_encoder.is_some(),
        !image || p.image_encoder.is_some(),
    ];
    let lacks = (0..3).filter(|&i| !has[i]);
    lacks
        .map(|i| format!("{}: {}", what[i], files[i]))
        .collect()
}

/// Every file of the model relative to `root`, the transformer's first.
fn model_files(root: &Path, p: &WanParts, layout: &str) -> Vec<(String, u64)> {
    let mut first = transformer_files(&p.transformer);
    if p.transformer.is_dir() {
        let meta = |f: &PathBuf| name_of(f) == "config.json" || name_of(f).ends_with(".index.json");
        first.extend(files_in(&p.transformer).into_iter().filter(meta));
    }
    let parts = [
        &p.vae,
        &p.text_encoder,
        &p.image_encoder,
        &p.image_processor,
    ];
    let mut rest: Vec<PathBuf> = (parts.into_iter().flatten())
        .flat_map(|x| {
            if x.is_dir() {
                files_in(x)
            } else {
                vec![x.clone()]
            }
        })
        .collect();
    if let Some(dir) = p.tokenizer.as_ref().and_then(|t| t.parent()) {
        let known = "tokenizer.json tokenizer_config.json special_tokens_map.json spiece.model";
        rest.extend(known.split(' ').map(|f| dir.join(f)));
    }
    if layout == "diffusers" {
        rest.extend([
            root.join("model_index.json"),
            root.join("scheduler/scheduler_config.json"),
        ]);
    }
    rest.sort();
    let mut out: Vec<(String, u64)> = Vec::new();
    for f in first.into_iter().chain(rest).filter(|f| f.is_file()) {
        let rel = f
            .strip_prefix(root)
            .unwrap_or(&f)
            .to_string_lossy()
            .into_owned();
        if !out.iter().any(|(r, _)| *r == rel) {
            out.push((rel, size(&f)));
        }
    }
    out
}

fn detect_found(path: &Path, (layout, root, parts): Found) -> Result<Detected, ImportError> {
    let t = &parts.transformer;
    let (cfg, _) = WanTransformer::read_config(t)
        .map_err(|e| err(t, format!("a Wan2.1 transformer that cannot be read: {e}")))?;
    let task = match (cfg.has_image_input(), cfg.pos_embed_seq_len.is_some()) {
        (false, _) => "t2v",
        (true, false) => "i2v",
        (true, true) => "flf2v",
    };
    let class = class_of(&root, "model_index.json").unwrap_or_default();
    if layout == "diffusers" && (class == "WanPipeline") != (task == "t2v") {
        return Err(err(
            &root,
            format!("a {class} whose transformer is a {task} model"),
        ));
    }
    let lacks = missing(layout, &parts, task != "t2v");
    if !lacks.is_empty() {
        let lacks = lacks.join("; ");
        let task = task.to_uppercase();
        let msg = format!("a Wan2.1 {task} transformer without its parts; put beside it {lacks}");
        return Err(err(path, msg));
    }
    let weights = weight_bytes(t)?;
    let name = name_of(if t.is_file() { t } else { &root });
    let (mut facts, mut sampling) = facts_for(&cfg, task, layout, weights, &name);
    let main = transformer_files(t).into_iter().next().unwrap_or_default();
    let file = main.file_name().map(|n| n.to_string_lossy().into_owned());
    let matched = registry_match(&file.unwrap_or_default(), size(&main), &facts);
    if let Some(m) = &matched {
        facts = m.video.clone().unwrap_or(facts);
        sampling = m.sampling.clone().unwrap_or(sampling);
    }
    let requires = match parts.tokenizer {
        None => vec!["umt5-xxl-tokenizer".to_string()],
        Some(_) => Vec::new(),
    };
    Ok(Detected {
        kind: ModelKind::Video,
        format: "safetensors",
        arch: "wan".into(),
        variant: Some(task.to_string()),
        languages: vec![],
        files: model_files(&root, &parts, layout),
        root,
        video: Some(DetectedVideo {
            facts,
            sampling,
            distilled: false,
            requires,
            license: matched.as_ref().map(|m| m.license.clone()),
            matches: matched.map(|m| m.id),
        }),
    })
}

/// A single `.safetensors` file: a Wan2.1 transformer (`Ok(Some)`), not one (`Ok(None)`), one
/// that cannot run for what is missing beside it, or a companion file alone (`Err`).
pub(super) fn detect_file(path: &Path) -> Result<Option<Detected>, ImportError> {
    let header = safetensors_header(path)?;
    if !is_transformer(&header) && shard_of(path).is_none() {
        let n = name_of(path);
        let what = match () {
            _ if is_umt5(&n) => "the umT5 text encoder",
            _ if is_vae(&n) && n.contains("wan") => "the VAE",
            _ if n.starts_with("clip_vision_h") => "the CLIP vision encoder",
            _ => return Ok(None),
        };
        let msg = format!(
            "{what} of Wan2.1, not a model by itself: import the transformer beside it (or the \
             folder holding all its parts)"
        );
        return Err(err(path, msg));
    }
    match locate(path).map_err(|e| err(path, e))? {
        Some(found) => detect_found(path, found).map(Some),
        None => Ok(None),
    }
}

/// A folder holding a Wan2.1 model (official or ComfyUI layout; diffusers pipelines come
/// through [`detect_diffusers`]): `Ok(None)` when it holds no Wan transformer.
pub(super) fn detect_folder(root: &Path) -> Result<Option<Detected>, ImportError> {
    match locate(root).map_err(|e| err(root, e))? {
        Some(found) => detect_found(root, found).map(Some),
        None => Ok(None),
    }
}

/// A diffusers Wan pipeline folder (`model_index.json` of `class`, see [`is_wan_pipeline`]).
pub(super) fn detect_diffusers(root: &Path, class: &str) -> Result<Detected, ImportError> {
    let found = diffusers(root).map_err(|e| err(root, format!("{class}: {e}")))?;
    detect_found(root, found)
}

/// The name and dtype of an imported Wan entry ("my-wan (imported: Wan2.1 I2V 14B, comfyui)").
pub(super) fn entry_name(id: &str, d: &Detected, v: &DetectedVideo) -> (String, &'static str) {
    let first = d
        .files
        .first()
        .map(|f| d.root.join(&f.0))
        .unwrap_or_default();
    let dtype = parts_in(&first)
        .ok()
        .and_then(|p| weight_bytes(&p.transformer).ok())
        .map_or("bf16", |w| w.1);
    let f = &v.facts;
    let of = v
        .matches
        .as_ref()
        .map(|m| format!("; registry file of {m}"));
    let (task, class) = (f.task.to_uppercase(), f.size_class());
    let name = format!(
        "{id} (imported: Wan2.1 {task} {class}, {}{})",
        f.layout,
        of.unwrap_or_default()
    );
    (name, dtype)
}

#[cfg(test)]
mod tests;
