//! `reelsmith models import PATH`: registers a model that is already on disk — a GGUF file, a
//! safetensors folder (transformers or diffusers), a single-file image checkpoint (or a folder
//! holding one), a faster-whisper (CTranslate2) Whisper folder, or a Piper voice (`.onnx` +
//! `.onnx.json`). Nothing is copied: the entry points at the files, which are checked (format
//! magic, headers, configs) and measured first.
//!
//! Image checkpoints are recognised by their tensor names (only the safetensors header is
//! read): `model.diffusion_model.*` with `conditioner.embedders.1.*` is SDXL, with only
//! `conditioner.embedders.0.model.*` the SDXL refiner, with `cond_stage_model.model.*` SD 2.x,
//! with `cond_stage_model.transformer.*` SD 1.x; `double_blocks.*` is a FLUX transformer (its
//! autoencoder and text encoders in the same folder). Diffusers folders are recognised by
//! `model_index.json` (`StableDiffusionPipeline` + the UNet's `cross_attention_dim`: 768 SD 1.x,
//! 1024 SD 2.x; `StableDiffusionXLPipeline`; `FluxPipeline`). Either way the folder must hold
//! the CLIP tokenizer (`tokenizer/vocab.json` + `merges.txt`; FLUX also `tokenizer_2/`), and
//! the entry gets kind `image`, format `safetensors` and the registry architecture, so the
//! image engine runs it. Folder configs (`unet/config.json`, …) travel with the entry.
//!
//! LTX-Video (kind `video`, arch `ltxv`) comes as an official single file (transformer under
//! `model.diffusion_model.` with `adaln_single` and `scale_shift_table`, VAE under `vae.`) or a
//! diffusers folder (`model_index.json` of `LTXPipeline`, `LTXConditionPipeline` or
//! `LTXImageToVideoPipeline`); the entry gets a `[model.video]` table with the release, layout
//! and size class it was recognised as (see [`video`]).
//!
//! Wan2.1 (kind `video`, arch `wan`, variant `t2v`/`i2v`/`flf2v`) comes as a diffusers folder
//! (`WanPipeline`, `WanImageToVideoPipeline`), the official Wan-AI folder or ComfyUI files (a
//! transformer with its VAE, umT5 and CLIP vision files beside it); see [`wan`].
//!
//! Post-processing weights (kind `upscale` or `interpolation`, see [`post`]) come as torch
//! pickles (`.pth`/`.pt`/`.pkl`), `.safetensors` conversions or ncnn `.param`/`.bin` pairs:
//! Real-ESRGAN (arch `realesrgan` for RRDBNet, `realesrgan-compact` for SRVGGNetCompact) and
//! RIFE (`rife`), the architecture and its variant read from the tensors.
//!
//! CTranslate2 Whisper folders are read natively by the Whisper engine (its loader splits the
//! fused attention weights into the layout candle uses), so importing one needs no conversion
//! and no second copy on disk.

mod image;
mod installed;
mod piper;
mod post;
pub mod video;
pub mod wan;

use std::io::Read;
use std::path::{Path, PathBuf};

use super::registry::{ModelEntry, ModelFile, ModelKind};
use super::vram::Tier;
pub use image::runnable_image;
use image::{check_safetensors, detect_checkpoint, diffusers_arch, image_extras};
pub use installed::{companion_dirs, local_dir, pick, resolve, NameError, Resolved};
pub use piper::voice_language;
pub use video::DetectedVideo;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct ImportError {
    pub path: PathBuf,
    pub msg: String,
}

fn err(path: &Path, msg: impl Into<String>) -> ImportError {
    ImportError {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// What an import found.
#[derive(Clone, Debug, PartialEq)]
pub struct Detected {
    pub kind: ModelKind,
    pub format: &'static str,
    pub arch: String,
    /// Registry variant (`v` for SD 2.x v-prediction checkpoints that say so).
    pub variant: Option<String>,
    pub languages: Vec<String>,
    pub files: Vec<(String, u64)>,
    /// The folder (or file) the entry points at.
    pub root: PathBuf,
    /// Video models: what the video engine needs to know (`[model.video]`).
    pub video: Option<DetectedVideo>,
}

/// Reads the `general.architecture` of a GGUF file (walking its metadata header).
pub fn gguf_architecture(path: &Path) -> Result<String, ImportError> {
    let mut f = std::fs::File::open(path).map_err(|e| err(path, e.to_string()))?;
    let mut r = std::io::BufReader::new(&mut f);
    let mut u32b = [0u8; 4];
    let mut u64b = [0u8; 8];
    let bad = |m: &str| err(path, format!("not a valid GGUF file: {m}"));
    r.read_exact(&mut u32b).map_err(|_| bad("too short"))?;
    if &u32b != b"GGUF" {
        return Err(bad("missing the GGUF magic"));
    }
    r.read_exact(&mut u32b).map_err(|_| bad("no version"))?;
    let version = u32::from_le_bytes(u32b);
    if !(2..=3).contains(&version) {
        return Err(bad(&format!("unsupported version {version}")));
    }
    r.read_exact(&mut u64b)
        .map_err(|_| bad("no tensor count"))?;
    r.read_exact(&mut u64b)
        .map_err(|_| bad("no metadata count"))?;
    let kv = u64::from_le_bytes(u64b);
    fn read_u64(r: &mut impl Read) -> Option<u64> {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).ok()?;
        Some(u64::from_le_bytes(b))
    }
    fn read_u32(r: &mut impl Read) -> Option<u32> {
        let mut b = [0u8; 4];
        r.read_exact(&mut b).ok()?;
        Some(u32::from_le_bytes(b))
    }
    fn read_string(r: &mut impl Read) -> Option<String> {
        let n = read_u64(r)?;
        if n > 1 << 24 {
            return None;
        }
        let mut b = vec![0u8; n as usize];
        r.read_exact(&mut b).ok()?;
        String::from_utf8(b).ok()
    }
    fn skip(r: &mut impl Read, ty: u32) -> Option<()> {
        let width = match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => {
                read_string(r)?;
                return Some(());
            }
            9 => {
                let inner = read_u32(r)?;
                let n = read_u64(r)?;
                for _ in 0..n {
                    skip(r, inner)?;
                }
                return Some(());
            }
            _ => return None,
        };
        let mut b = [0u8; 8];
        r.read_exact(&mut b[..width]).ok()
    }
    for _ in 0..kv.min(100_000) {
        let key = read_string(&mut r).ok_or_else(|| bad("truncated metadata"))?;
        let ty = read_u32(&mut r).ok_or_else(|| bad("truncated metadata"))?;
        if key == "general.architecture" && ty == 8 {
            return read_string(&mut r).ok_or_else(|| bad("truncated architecture"));
        }
        skip(&mut r, ty).ok_or_else(|| bad(&format!("bad value for {key}")))?;
    }
    Err(bad("no general.architecture"))
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn read_json(p: &Path) -> Result<serde_json::Value, ImportError> {
    let text = std::fs::read_to_string(p).map_err(|e| err(p, e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(p, format!("not valid JSON: {e}")))
}

/// Looks at `path` and says what model it is.
pub fn detect(path: &Path) -> Result<Detected, ImportError> {
    let path = std::fs::canonicalize(path).map_err(|e| err(path, e.to_string()))?;
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if path.is_file() {
        let n = name(&path).to_lowercase();
        if n.ends_with(".gguf") {
            let arch = gguf_architecture(&path)?;
            return Ok(Detected {
                kind: ModelKind::Llm,
                format: "gguf",
                arch,
                variant: None,
                languages: vec![],
                files: vec![(name(&path), size(&path))],
                root: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                video: None,
            });
        }
        if n.ends_with(".safetensors") {
            let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
            check_safetensors(&path)?;
            if let Some(d) = post::detect_safetensors(&path)? {
                return Ok(d);
            }
            if let Some(d) = video::detect_file(&path)? {
                return Ok(d);
            }
            if let Some(d) = wan::detect_file(&path)? {
                return Ok(d);
            }
            return detect_checkpoint(&root, Some(&path))?.ok_or_else(|| {
                err(
                    &path,
                    "not a single-file diffusion checkpoint (no model.diffusion_model.* or FLUX \
                     double_blocks.* tensors); import the folder that holds it with its config.json",
                )
            });
        }
        if let Some(d) = post::detect_file(&path)? {
            return Ok(d);
        }
        let onnx = if n.ends_with(".onnx.json") {
            path.with_extension("")
        } else if n.ends_with(".onnx") {
            path.clone()
        } else {
            return Err(err(
                &path,
                "not a model file: expected .gguf, a single-file .safetensors checkpoint, a Piper \
                 .onnx (with its .onnx.json), Real-ESRGAN/RIFE weights (.pth, .pt, .pkl, an ncnn \
                 .param with its .bin), or a folder",
            ));
        };
        let json = PathBuf::from(format!("{}.json", onnx.display()));
        if !onnx.is_file() || !json.is_file() {
            return Err(err(
                &onnx,
                "a Piper voice needs both NAME.onnx and NAME.onnx.json side by side",
            ));
        }
        let cfg = read_json(&json)?;
        let rate = cfg["audio"]["sample_rate"].as_u64();
        let map = cfg["phoneme_id_map"].as_object();
        if rate.is_none() || map.is_none() {
            return Err(err(
                &json,
                "not a Piper voice config: audio.sample_rate and phoneme_id_map are required",
            ));
        }
        let mut head = [0u8; 2];
        std::fs::File::open(&onnx)
            .and_then(|mut f| f.read_exact(&mut head))
            .map_err(|e| err(&onnx, e.to_string()))?;
        // An ONNX model is a protobuf ModelProto; its first field is ir_version (tag 0x08).
        if head[0] != 0x08 {
            return Err(err(&onnx, "not an ONNX model (no ir_version field first)"));
        }
        let lang = voice_language(&onnx).unwrap_or_default();
        return Ok(Detected {
            kind: ModelKind::Tts,
            format: "onnx",
            arch: "vits".into(),
            variant: None,
            languages: if lang.is_empty() { vec![] } else { vec![lang] },
            files: vec![(name(&onnx), size(&onnx)), (name(&json), size(&json))],
            root: onnx.parent().map(Path::to_path_buf).unwrap_or_default(),
            video: None,
        });
    }
    if !path.is_dir() {
        return Err(err(&path, "no such file or folder"));
    }
    let has = |f: &str| path.join(f).is_file();
    if has("model.bin") && has("config.json") {
        let mut head = [0u8; 4];
        std::fs::File::open(path.join("model.bin"))
            .and_then(|mut f| f.read_exact(&mut head))
            .map_err(|e| err(&path.join("model.bin"), e.to_string()))?;
        let version = u32::from_le_bytes(head);
        if !(1..=10).contains(&version) {
            return Err(err(
                &path.join("model.bin"),
                format!("not a CTranslate2 model (binary version {version})"),
            ));
        }
        let vocab = ["vocabulary.txt", "vocabulary.json", "tokenizer.json"]
            .into_iter()
            .find(|f| has(f))
            .ok_or_else(|| {
                err(
                    &path,
                    "a faster-whisper folder needs vocabulary.txt, vocabulary.json or tokenizer.json",
                )
            })?;
        let mut files = vec![
            ("model.bin".to_string(), size(&path.join("model.bin"))),
            ("config.json".to_string(), size(&path.join("config.json"))),
            (vocab.to_string(), size(&path.join(vocab))),
        ];
        if vocab != "tokenizer.json" && has("tokenizer.json") {
            files.push(("tokenizer.json".into(), size(&path.join("tokenizer.json"))));
        }
        return Ok(Detected {
            kind: ModelKind::Asr,
            format: "ct2",
            arch: "whisper".into(),
            variant: None,
            languages: vec![],
            files,
            root: path,
            video: None,
        });
    }
    // safetensors: a transformers folder (config.json) or a diffusers pipeline
    // (model_index.json with one folder per component).
    let mut tensors = Vec::new();
    for entry in walk(&path, 2) {
        if entry.extension().is_some_and(|x| x == "safetensors") {
            check_safetensors(&entry)?;
            let rel = entry
                .strip_prefix(&path)
                .unwrap_or(&entry)
                .to_string_lossy()
                .into_owned();
            tensors.push((rel, size(&entry)));
        }
    }
    if tensors.is_empty() {
        return Err(err(
            &path,
            "no model here: expected *.safetensors, a faster-whisper folder (model.bin + config.json) or a .gguf file",
        ));
    }
    tensors.sort();
    let mut files = tensors;
    let (kind, arch, variant) = if has("model_index.json") {
        let idx = read_json(&path.join("model_index.json"))?;
        let class = idx["_class_name"].as_str().unwrap_or("");
        if video::is_ltx_pipeline(class) {
            return video::detect_diffusers(&path, class, files);
        }
        if wan::is_wan_pipeline(class) {
            return wan::detect_diffusers(&path, class);
        }
        let (kind, arch, variant) = diffusers_arch(&path, &idx)?;
        if kind == ModelKind::Image {
            files.extend(image_extras(&path));
        }
        (kind, arch, variant)
    } else if let Some(d) = video::detect_folder(&path)? {
        return Ok(d);
    } else if let Some(d) = wan::detect_folder(&path)? {
        return Ok(d);
    } else if let Some(d) = detect_checkpoint(&path, None)? {
        return Ok(d);
    } else if has("config.json") {
        let cfg = read_json(&path.join("config.json"))?;
        let arch = cfg["architectures"][0]
            .as_str()
            .or(cfg["model_type"].as_str())
            .unwrap_or("unknown")
            .to_string();
        let lower = arch.to_lowercase();
        let kind = if lower.contains("whisper") {
            ModelKind::Asr
        } else if lower.contains("vits") || lower.contains("parler") {
            ModelKind::Tts
        } else {
            ModelKind::Llm
        };
        (kind, arch, None)
    } else {
        return Err(err(
            &path,
            "safetensors without config.json or model_index.json, and no single-file diffusion \
             checkpoint: cannot tell what model it is",
        ));
    };
    Ok(Detected {
        kind,
        format: "safetensors",
        arch,
        variant,
        languages: vec![],
        files,
        root: path,
        video: None,
    })
}

fn walk(dir: &Path, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        if p.is_dir() && depth > 0 {
            out.extend(walk(&p, depth - 1));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

/// The registry entry for an imported model (its files are local: `local` is set).
pub fn entry(d: &Detected, id: &str) -> ModelEntry {
    let weights: u64 = d.files.iter().map(|f| f.1).sum();
    let tier = match Tier::of_memory(weights.saturating_mul(2)) {
        None | Some(Tier::Low) => Tier::Low,
        Some(t) => t,
    };
    let mut e = ModelEntry {
        id: id.to_string(),
        name: format!("{id} (imported)"),
        kind: d.kind,
        repo: format!("local/{id}"),
        revision: "local".into(),
        license: "unknown".into(),
        arch: d.arch.clone(),
        format: d.format.into(),
        params: None,
        dtype: match (d.format, d.kind) {
            ("gguf", _) => "q4_0",
            // Real-ESRGAN and RIFE publish f32 weights; ncnn graphs carry f16 kernels.
            (f, ModelKind::Upscale | ModelKind::Interpolation) if f != "ncnn" => "f32",
            _ => "f16",
        }
        .into(),
        tier,
        languages: d.languages.clone(),
        source: format!("imported from {}", d.root.display()),
        files: d
            .files
            .iter()
            .map(|(p, s)| ModelFile {
                path: p.clone(),
                size: Some(*s),
                sha256: None,
            })
            .collect(),
        local: Some(d.root.clone()),
        variant: d.variant.clone(),
        requires: d
            .video
            .as_ref()
            .map(|v| v.requires.clone())
            .unwrap_or_default(),
        sampling: d.video.as_ref().map(|v| v.sampling.clone()),
        video: d.video.as_ref().map(|v| v.facts.clone()),
    };
    if let Some(v) = &d.video {
        // "my-ltx (imported: LTX-Video 2B 0.9.8 distilled, single-file)"
        e.name = format!(
            "{id} (imported: LTX-Video {} {} {}, {}{})",
            v.facts.size_class(),
            v.facts.version,
            if v.distilled { "distilled" } else { "dev" },
            v.facts.layout,
            v.matches
                .as_ref()
                .map(|m| format!("; registry file of {m}"))
                .unwrap_or_default()
        );
        e.dtype = "bf16".into();
        if d.arch == "wan" {
            let (name, dtype) = wan::entry_name(id, d, v);
            (e.name, e.dtype) = (name, dtype.into());
        }
        if let Some(l) = &v.license {
            e.license = l.clone();
        }
        if v.facts.size_class() == "13B" {
            e.tier = Tier::Extreme;
        }
    }
    e
}

/// Adds the entry to `<config>/models/imported.toml` (replacing one with the same id), writing
/// through a temporary file so the registry is never half written. A file the user broke by
/// hand is reported, not overwritten.
pub fn register(config_dir: &Path, e: &ModelEntry) -> Result<PathBuf, ImportError> {
    #[derive(serde::Serialize, serde::Deserialize, Default)]
    struct File {
        #[serde(default)]
        model: Vec<ModelEntry>,
    }
    let dir = config_dir.join("models");
    std::fs::create_dir_all(&dir).map_err(|x| err(&dir, x.to_string()))?;
    let file = dir.join("imported.toml");
    let mut f: File = match std::fs::read_to_string(&file) {
        Ok(old) => toml::from_str(&old).map_err(|x| {
            err(
                &file,
                format!("cannot add to it: {x}; fix or move it first"),
            )
        })?,
        Err(_) => File::default(),
    };
    f.model.retain(|m| m.id != e.id);
    f.model.push(e.clone());
    let body = toml::to_string(&f).map_err(|x| err(&file, x.to_string()))?;
    let text = format!("# Models registered by `reelsmith models import`.\n\n{body}");
    // The result must load: a broken registry file would stop every command.
    let mut probe = super::Registry::default();
    probe
        .add_file(&file, &text)
        .map_err(|x| err(&file, format!("the new entry does not validate: {x}")))?;
    let tmp = dir.join(".imported.toml.tmp");
    std::fs::write(&tmp, &text).map_err(|x| err(&tmp, x.to_string()))?;
    std::fs::rename(&tmp, &file).map_err(|x| err(&file, x.to_string()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gguf(path: &Path, arch: &str) {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&2u64.to_le_bytes());
        let s = |b: &mut Vec<u8>, t: &str| {
            b.extend_from_slice(&(t.len() as u64).to_le_bytes());
            b.extend_from_slice(t.as_bytes());
        };
        s(&mut b, "general.alignment");
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&32u32.to_le_bytes());
        s(&mut b, "general.architecture");
        b.extend_from_slice(&8u32.to_le_bytes());
        s(&mut b, arch);
        std::fs::write(path, b).unwrap();
    }

    #[test]
    fn detects_each_format_and_refuses_impostors() {
        let d = tempfile::tempdir().unwrap();
        let g = d.path().join("m.gguf");
        gguf(&g, "qwen2");
        let det = detect(&g).unwrap();
        assert_eq!(
            (det.kind, det.format, det.arch.as_str()),
            (ModelKind::Llm, "gguf", "qwen2")
        );
        std::fs::write(d.path().join("fake.gguf"), b"GGML nope").unwrap();
        let e = detect(&d.path().join("fake.gguf")).unwrap_err().to_string();
        assert!(e.contains("fake.gguf") && e.contains("GGUF"), "{e}");

        let voice = d.path().join("en_US-x-medium.onnx");
        std::fs::write(&voice, [0x08u8, 0x07, 0x00]).unwrap();
        std::fs::write(
            d.path().join("en_US-x-medium.onnx.json"),
            r#"{"audio":{"sample_rate":22050},"espeak":{"voice":"en-us"},"language":{"code":"en_US"},"phoneme_id_map":{"a":[1]}}"#,
        )
        .unwrap();
        let det = detect(&voice).unwrap();
        assert_eq!(det.kind, ModelKind::Tts);
        assert_eq!(det.languages, vec!["en".to_string()]);
        std::fs::remove_file(d.path().join("en_US-x-medium.onnx.json")).unwrap();
        assert!(detect(&voice)
            .unwrap_err()
            .to_string()
            .contains(".onnx.json"));

        let ct2 = d.path().join("whisper");
        std::fs::create_dir(&ct2).unwrap();
        std::fs::write(ct2.join("model.bin"), 6u32.to_le_bytes()).unwrap();
        std::fs::write(ct2.join("config.json"), "{}").unwrap();
        assert!(detect(&ct2).unwrap_err().to_string().contains("vocabulary"));
        std::fs::write(ct2.join("vocabulary.txt"), "a\n").unwrap();
        let det = detect(&ct2).unwrap();
        assert_eq!((det.kind, det.format), (ModelKind::Asr, "ct2"));

        let st = d.path().join("llm");
        std::fs::create_dir(&st).unwrap();
        let header = br#"{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#;
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(header);
        file.extend_from_slice(&[0u8; 4]);
        std::fs::write(st.join("model.safetensors"), &file).unwrap();
        assert!(detect(&st).unwrap_err().to_string().contains("config.json"));
        std::fs::write(
            st.join("config.json"),
            r#"{"architectures":["LlamaForCausalLM"]}"#,
        )
        .unwrap();
        let det = detect(&st).unwrap();
        assert_eq!(
            (det.kind, det.arch.as_str()),
            (ModelKind::Llm, "LlamaForCausalLM")
        );
        std::fs::write(
            st.join("model.safetensors"),
            b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk",
        )
        .unwrap();
        assert!(detect(&st).unwrap_err().to_string().contains("safetensors"));
    }

    #[test]
    fn registering_twice_replaces_and_the_registry_loads_it() {
        let d = tempfile::tempdir().unwrap();
        let g = d.path().join("m.gguf");
        gguf(&g, "llama");
        let det = detect(&g).unwrap();
        register(d.path(), &entry(&det, "mine")).unwrap();
        register(d.path(), &entry(&det, "other")).unwrap();
        register(d.path(), &entry(&det, "mine")).unwrap();
        let r = super::super::Registry::load(Some(d.path())).unwrap();
        let m = r.get("mine").unwrap();
        assert_eq!(
            m.local.as_deref(),
            Some(d.path().canonicalize().unwrap().as_path())
        );
        assert!(r.get("other").is_some());
        let text = std::fs::read_to_string(d.path().join("models/imported.toml")).unwrap();
        assert_eq!(text.matches("id = \"mine\"").count(), 1, "{text}");
    }
}
