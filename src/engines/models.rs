//! Which installed models the model-backed stages use: `<config>/engines.toml` and the
//! `REELSMITH_LLM` / `REELSMITH_ASR` variables (which win) say `auto`, `none`, a model's name
//! or a path. `auto` picks an installed model; with none installed the rule-based engines run.
//! A name is read by [`import::resolve`]: an id, or an imported model's file name, case aside;
//! installed and imported models first, then the registry's.
//!
//! ```toml
//! llm = "auto"                      # auto | none | registry id | path to a .gguf or a checkpoint folder
//! asr = "whisper-base-ct2"          # auto | none | registry id | CTranslate2 Whisper folder
//! tts = "auto"                      # auto | none | a Piper voice (registry id or NAME.onnx) …
//! # … or per language (languages not named are `auto`):
//! # [tts]
//! # en = "piper-en_US-joe-medium"
//! # de = "none"                     # espeak-ng for German
//! image = "auto"                    # auto | none | an image model's registry id (sd15, sdxl-turbo, flux1-schnell, …)
//! refiner = "auto"                  # auto (sdxl-refiner over SDXL base when installed) | none | id
//! video = "auto"                    # auto | none (Ken Burns) | a video model id (ltxv-2b-0.9.8-distilled,
//!                                   #   wan2.1-t2v-1.3b, …) or a path: an LTX-Video single file or
//!                                   #   diffusers folder, a Wan2.1 diffusers/official folder or ComfyUI file
//! morph = "auto"                    # auto (an installed Wan2.1 first-last-frame model, with CUDA) | none
//!                                   #   (the video model makes morphs too) | a Wan2.1 FLF2V id or path
//! upscale = "auto"                  # auto | none | lanczos | a Real-ESRGAN id or weights path
//! interpolate = "auto"              # auto | none | minterpolate | a RIFE id or weights path
//! ```
//!
//! `REELSMITH_UPSCALE` and `REELSMITH_INTERPOLATE` override `upscale` and `interpolate`. Their
//! `auto` runs installed models only with CUDA (an anime-trained upscaler for anime and manga
//! looks), else the embedded engines (Lanczos, libav's `minterpolate`); see
//! [`super::post_models`].
//!
//! `REELSMITH_IMAGE` overrides `image`. `auto` picks the first installed image model; on a
//! machine without CUDA only Turbo models (one or a few steps) are picked automatically.
//!
//! `REELSMITH_VIDEO` overrides `video`, `REELSMITH_MORPH` `morph`. `auto` picks the first
//! installed video model (LTX-Video, then Wan2.1, in registry order), and
//! only on a machine with CUDA: on a CPU even the 2B distilled model takes minutes per clip,
//! so the stills move by Ken Burns unless a model is named (see [`video_select`]).
//!
//! `REELSMITH_TTS` overrides `tts` with one value. Languages with no Piper voice speak with
//! espeak-ng, and the voice stage says so in the job's notes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Dirs;
use crate::hub::{import, HubConfig, ModelEntry, ModelKind, Registry};

use super::post_models::{resolve_post_setting, PostSetting};
use super::video_select;
pub use super::video_select::VideoModelRef;

/// One model a stage runs, pinned by a fingerprint of its weights (part of artifact keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Registry id, or the file/folder name for a path.
    pub id: String,
    /// The `.gguf` file (LLM) or the CTranslate2 folder (Whisper).
    pub path: PathBuf,
    /// sha256 of the weights when the registry knows it, else `size-mtime`.
    pub fingerprint: String,
    /// Parameter count when known.
    pub params: Option<u64>,
}

/// The models of one job; `None` = the rule-based engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageModels {
    pub llm: Option<ModelRef>,
    pub asr: Option<ModelRef>,
    /// Piper voice per language (`path` is the voice's `.onnx`); absent languages use espeak-ng.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tts: BTreeMap<String, ModelRef>,
    /// The image model that draws keyframes (`None`: the procedural painter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<super::diffusion::ImageModelRef>,
    /// SDXL refiner run over the image model's drawings (SDXL base only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refiner: Option<super::diffusion::ImageModelRef>,
    /// The video model that animates the keyframes (`None`: Ken Burns camera moves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoModelRef>,
    /// A Wan2.1 first-last-frame model that makes the `morph` transitions (`None`: the video
    /// model makes them). Only set when `video` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub morph: Option<VideoModelRef>,
    /// What brings stills and clips to the output size (post stage).
    #[serde(default, skip_serializing_if = "PostSetting::is_embedded")]
    pub upscale: PostSetting,
    /// What brings generated clips to the output frame rate (post stage).
    #[serde(default, skip_serializing_if = "PostSetting::is_embedded")]
    pub interpolate: PostSetting,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnginesFile {
    llm: Option<String>,
    asr: Option<String>,
    tts: Option<TtsSetting>,
    image: Option<String>,
    refiner: Option<String>,
    video: Option<String>,
    morph: Option<String>,
    upscale: Option<String>,
    interpolate: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TtsSetting {
    One(String),
    PerLanguage(BTreeMap<String, String>),
}

/// The settings file.
pub fn engines_file(dirs: &Dirs) -> PathBuf {
    dirs.config.join("engines.toml")
}

/// LLMs larger than this are not picked by `auto` on the CPU (too slow to plan with).
const CPU_AUTO_MAX_PARAMS: u64 = 2_000_000_000;

impl StageModels {
    /// Reads the settings and finds the models. Errors name the file or variable and the field.
    pub fn resolve(dirs: &Dirs) -> Result<StageModels, String> {
        let file = engines_file(dirs);
        let settings: EnginesFile = match std::fs::read_to_string(&file) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => EnginesFile::default(),
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let llm = match var("REELSMITH_LLM") {
            Some(v) => (v, "REELSMITH_LLM".to_string()),
            None => (
                settings.llm.unwrap_or_else(|| "auto".into()),
                format!("{}: llm", file.display()),
            ),
        };
        let asr = match var("REELSMITH_ASR") {
            Some(v) => (v, "REELSMITH_ASR".to_string()),
            None => (
                settings.asr.unwrap_or_else(|| "auto".into()),
                format!("{}: asr", file.display()),
            ),
        };
        let reg = Registry::load(Some(&dirs.config)).map_err(|e| e.to_string())?;
        let cfg = HubConfig::from_env(|k| std::env::var(k).ok());
        let tts = match (var("REELSMITH_TTS"), settings.tts) {
            (Some(v), _) => {
                choose_voices(&reg, &cfg, &BTreeMap::new(), Some((&v, "REELSMITH_TTS")))?
            }
            (None, Some(TtsSetting::One(v))) => choose_voices(
                &reg,
                &cfg,
                &BTreeMap::new(),
                Some((&v, &format!("{}: tts", file.display()))),
            )?,
            (None, Some(TtsSetting::PerLanguage(map))) => {
                let field = format!("{}: tts", file.display());
                for lang in map.keys() {
                    if !crate::script::LANGUAGES.contains(&lang.as_str()) {
                        return Err(format!(
                            "{field}.{lang}: not one of reelsmith's languages ({})",
                            crate::script::LANGUAGES.join(", ")
                        ));
                    }
                }
                choose_voices(&reg, &cfg, &map, None)
                    .map_err(|e| e.replace("tts.", &format!("{field}.")))?
            }
            (None, None) => choose_voices(&reg, &cfg, &BTreeMap::new(), None)?,
        };
        let image = match var("REELSMITH_IMAGE") {
            Some(v) => (v, "REELSMITH_IMAGE".to_string()),
            None => (
                settings.image.unwrap_or_else(|| "auto".into()),
                format!("{}: image", file.display()),
            ),
        };
        let image = match image.0.trim() {
            "none" | "off" | "paint" => None,
            "auto" => super::diffusion::auto_image_model(
                &reg,
                &cfg,
                candle_core::utils::cuda_is_available(),
            ),
            v => Some(super::diffusion::find_image_model(&reg, &cfg, v, &image.1)?),
        };
        let refiner_field = format!("{}: refiner", file.display());
        let refiner = match settings.refiner.as_deref().map(str::trim).unwrap_or("auto") {
            "none" | "off" => None,
            "auto" => image
                .as_ref()
                .filter(|m| m.arch == "sdxl" && m.variant.is_none())
                .and_then(|_| {
                    super::diffusion::find_image_model(&reg, &cfg, "sdxl-refiner", &refiner_field)
                        .ok()
                }),
            v => {
                let r = super::diffusion::find_image_model(&reg, &cfg, v, &refiner_field)?;
                if r.arch != "sdxl-refiner" {
                    return Err(format!(
                        "{refiner_field}: {} is not an SDXL refiner (arch {})",
                        r.id, r.arch
                    ));
                }
                Some(r)
            }
        };
        let (video_value, video_field) =
            video_setting(var("REELSMITH_VIDEO"), settings.video.as_deref(), &file);
        let video = video_select::choose_video(
            &reg,
            &cfg,
            &video_value,
            &video_field,
            candle_core::utils::cuda_is_available(),
        )?;
        let cuda = candle_core::utils::cuda_is_available();
        let morph = match &video {
            None => None,
            Some(v) => {
                let (value, field) = match var("REELSMITH_MORPH") {
                    Some(m) => (m, "REELSMITH_MORPH".to_string()),
                    None => (
                        settings.morph.clone().unwrap_or_else(|| "auto".into()),
                        format!("{}: morph", file.display()),
                    ),
                };
                video_select::choose_morph(&reg, &cfg, v, &value, &field, cuda)?
            }
        };
        let post = |env: &str, value: &Option<String>, name: &str, kind| match var(env) {
            Some(v) => resolve_post_setting(&reg, &cfg, &v, env, kind, cuda),
            None => resolve_post_setting(
                &reg,
                &cfg,
                value.as_deref().unwrap_or("auto"),
                &format!("{}: {name}", file.display()),
                kind,
                cuda,
            ),
        };
        let upscale = post(
            "REELSMITH_UPSCALE",
            &settings.upscale,
            "upscale",
            ModelKind::Upscale,
        )?;
        let interpolate = post(
            "REELSMITH_INTERPOLATE",
            &settings.interpolate,
            "interpolate",
            ModelKind::Interpolation,
        )?;
        Ok(StageModels {
            llm: choose(&reg, &cfg, &llm.0, &llm.1, ModelKind::Llm)?,
            asr: choose(&reg, &cfg, &asr.0, &asr.1, ModelKind::Asr)?,
            tts,
            image,
            refiner,
            video,
            morph,
            upscale,
            interpolate,
        })
    }
}

/// The `video` setting and where it came from: `REELSMITH_VIDEO` when set, else the file's
/// `video`, else `auto`.
fn video_setting(env: Option<String>, file_value: Option<&str>, file: &Path) -> (String, String) {
    match env {
        Some(v) => (v, "REELSMITH_VIDEO".to_string()),
        None => (
            file_value.unwrap_or("auto").to_string(),
            format!("{}: video", file.display()),
        ),
    }
}

/// The `.onnx` of an installed Piper voice (the registry's file, else the one in the folder).
pub fn piper_onnx(m: &ModelEntry, dir: &Path) -> Option<PathBuf> {
    m.files
        .iter()
        .map(|f| dir.join(&f.path))
        .find(|p| p.extension().is_some_and(|x| x == "onnx") && p.is_file())
        .or_else(|| onnx_in(dir))
}

/// The single `.onnx` file of a folder.
fn onnx_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx") && p.is_file())
        .collect();
    (found.len() == 1).then(|| found.pop()).flatten()
}

/// One voice from a setting value: a `.onnx` file or a folder holding one (a value with a `/`,
/// or one that exists on disk), else a voice's name as [`import::resolve`] reads it: its id
/// (`piper-en_US-joe-medium`, `en_us-joe-medium`), the id without `piper-`, or its file's name
/// (`en_US-joe-medium`, `en_US-joe-medium.onnx`), case aside; installed voices first.
pub fn find_voice(
    value: &str,
    field: &str,
    reg: &Registry,
    cfg: &HubConfig,
) -> Result<ModelRef, String> {
    let path = Path::new(value);
    if value.contains('/') || path.exists() {
        let onnx = if path.is_dir() {
            onnx_in(path).ok_or_else(|| {
                format!("{field}: {value} holds no single .onnx voice (NAME.onnx + NAME.onnx.json)")
            })?
        } else {
            path.to_path_buf()
        };
        if !onnx.is_file() {
            return Err(format!("{field}: {} does not exist", onnx.display()));
        }
        return Ok(ModelRef {
            id: onnx
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| value.into()),
            fingerprint: fingerprint_of(&onnx),
            path: std::fs::canonicalize(&onnx).unwrap_or(onnx),
            params: None,
        });
    }
    let none = format!("{field}: no voice `{value}`");
    let (m, dir) = import::pick(reg, cfg, Some(value), ModelKind::Tts, &["onnx"], &none)
        .map_err(|e| format!("{field}: {}", e.trim_start_matches("--model ")))?;
    let onnx = piper_onnx(m, &dir).ok_or_else(|| {
        format!(
            "{field}: {} is installed in {} but its .onnx is missing; `reelsmith models verify {}`",
            m.id,
            dir.display(),
            m.id
        )
    })?;
    Ok(installed_voice(m, onnx))
}

/// An installed registry voice: pinned by the `.onnx`'s sha256 when the registry has it.
fn installed_voice(m: &ModelEntry, onnx: PathBuf) -> ModelRef {
    let fingerprint = m
        .files
        .iter()
        .find(|f| onnx.ends_with(&f.path))
        .and_then(|f| f.sha256.clone())
        .unwrap_or_else(|| fingerprint_of(&onnx));
    ModelRef {
        id: m.id.clone(),
        path: onnx,
        fingerprint,
        params: m.params,
    }
}

/// The first installed Piper voice for `lang` (registry order).
pub fn auto_voice(reg: &Registry, cfg: &HubConfig, lang: &str) -> Option<ModelRef> {
    reg.models()
        .iter()
        .filter(|m| m.kind == ModelKind::Tts && m.format == "onnx")
        .filter(|m| m.languages.iter().any(|l| l == lang))
        .find_map(|m| {
            let dir = import::local_dir(cfg, m)?;
            Some(installed_voice(m, piper_onnx(m, &dir)?))
        })
}

/// Voices per language: `per_lang` values first (`auto`/`none`/voice), then `one` (a single
/// setting for every language: `auto`, `none`, or one voice for its own language), then auto.
fn choose_voices(
    reg: &Registry,
    cfg: &HubConfig,
    per_lang: &BTreeMap<String, String>,
    one: Option<(&str, &str)>,
) -> Result<BTreeMap<String, ModelRef>, String> {
    let mut out = BTreeMap::new();
    let mut fallback_auto = true;
    if let Some((v, field)) = one {
        match v.trim() {
            "auto" => {}
            "none" | "off" | "espeak" | "espeak-ng" => fallback_auto = false,
            v => {
                let voice = find_voice(v, field, reg, cfg)?;
                let lang = import::voice_language(&voice.path).ok_or_else(|| {
                    format!(
                        "{field}: {} does not say its language (language.family in its .onnx.json)",
                        voice.path.display()
                    )
                })?;
                out.insert(lang, voice);
            }
        }
    }
    for (lang, v) in per_lang {
        let field = format!("tts.{lang}");
        match v.trim() {
            "auto" => {
                if let Some(m) = auto_voice(reg, cfg, lang) {
                    out.insert(lang.clone(), m);
                }
            }
            "none" | "off" | "espeak" | "espeak-ng" => {}
            v => {
                out.insert(lang.clone(), find_voice(v, &field, reg, cfg)?);
            }
        }
    }
    if fallback_auto {
        for lang in crate::script::LANGUAGES {
            if out.contains_key(lang) || per_lang.contains_key(lang) {
                continue;
            }
            if let Some(m) = auto_voice(reg, cfg, lang) {
                out.insert(lang.to_string(), m);
            }
        }
    }
    Ok(out)
}

/// The stored formats the engines run: CTranslate2 or Hugging Face Whisper; GGUF or Hugging
/// Face checkpoint LLMs.
fn formats_of(kind: ModelKind) -> &'static [&'static str] {
    match kind {
        ModelKind::Asr => &["ct2", "safetensors"],
        _ => &["gguf", "safetensors"],
    }
}

/// `size-mtime` of a file: a cheap fingerprint for weights the registry has no hash for.
pub(crate) fn fingerprint_of(path: &Path) -> String {
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{size}-{mtime}")
}

/// The `*.safetensors` files of a Hugging Face checkpoint folder, as the LLM engine loads them
/// (empty when `dir` is not one: it needs a `config.json` too).
pub fn checkpoint_weights(dir: &Path) -> Vec<PathBuf> {
    if !dir.join("config.json").is_file() {
        return Vec::new();
    }
    reelsmith_llm::llm::safetensors_model::weight_files(dir).unwrap_or_default()
}

/// The weights inside an installed model: the `.gguf` file, or the CTranslate2 folder.
fn weights(m: &ModelEntry, dir: &Path, kind: ModelKind) -> Option<(PathBuf, String)> {
    match kind {
        ModelKind::Asr => {
            let bin = ["model.bin", "model.safetensors"]
                .iter()
                .map(|f| dir.join(f))
                .find(|p| p.is_file())?;
            let name = bin.file_name()?.to_string_lossy().into_owned();
            let fp = m
                .files
                .iter()
                .find(|f| f.path.ends_with(&name))
                .and_then(|f| f.sha256.clone())
                .unwrap_or_else(|| fingerprint_of(&bin));
            Some((dir.to_path_buf(), fp))
        }
        _ => m
            .files
            .iter()
            .find_map(|f| {
                let p = dir.join(&f.path);
                (p.extension().is_some_and(|x| x == "gguf") && p.is_file()).then(|| {
                    let fp = f.sha256.clone().unwrap_or_else(|| fingerprint_of(&p));
                    (p, fp)
                })
            })
            .or_else(|| {
                // A checkpoint folder: the engine loads the folder.
                let last = checkpoint_weights(dir).pop()?;
                Some((dir.to_path_buf(), fingerprint_of(&last)))
            }),
    }
}

fn choose(
    reg: &Registry,
    cfg: &HubConfig,
    value: &str,
    field: &str,
    kind: ModelKind,
) -> Result<Option<ModelRef>, String> {
    let value = value.trim();
    let formats = formats_of(kind);
    match value {
        "none" | "rules" | "off" => return Ok(None),
        "auto" => {
            let mut found: Vec<ModelRef> = reg
                .models()
                .iter()
                .filter(|m| m.kind == kind && formats.contains(&m.format.as_str()))
                .filter_map(|m| {
                    let dir = import::local_dir(cfg, m)?;
                    let (path, fingerprint) = weights(m, &dir, kind)?;
                    Some(ModelRef {
                        id: m.id.clone(),
                        path,
                        fingerprint,
                        params: m.params,
                    })
                })
                .collect();
            // The engines run on the CPU: the largest model that is still quick there, else the
            // smallest installed. Ties keep registry order (stable sort).
            found.sort_by_key(|m| {
                let p = m.params.unwrap_or(u64::MAX / 2);
                if p <= CPU_AUTO_MAX_PARAMS {
                    (0, u64::MAX - p)
                } else {
                    (1, p)
                }
            });
            return Ok(found.into_iter().next());
        }
        _ => {}
    }
    let path = Path::new(value);
    let is_path = value.contains('/') || path.exists();
    if is_path {
        let checkpoint = checkpoint_weights(path);
        let ok = match kind {
            ModelKind::Asr => {
                path.join("model.bin").is_file() || crate::engines::whisper::hf::is_checkpoint(path)
            }
            _ => {
                (path.is_file() && path.extension().is_some_and(|x| x == "gguf"))
                    || !checkpoint.is_empty()
            }
        };
        if !ok {
            let want = match kind {
                ModelKind::Asr => {
                    "a Whisper folder: CTranslate2 (model.bin, config.json, vocabulary) or \
                     Hugging Face (model.safetensors, config.json, tokenizer.json)"
                }
                _ => {
                    "a .gguf file or a Hugging Face checkpoint folder \
                     (config.json, *.safetensors, tokenizer.json)"
                }
            };
            return Err(format!("{field}: {value:?} is not {want}"));
        }
        let weights = match kind {
            ModelKind::Asr if path.join("model.bin").is_file() => path.join("model.bin"),
            ModelKind::Asr => path.join("model.safetensors"),
            _ => checkpoint
                .last()
                .cloned()
                .unwrap_or_else(|| path.to_path_buf()),
        };
        return Ok(Some(ModelRef {
            id: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| value.to_string()),
            path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            fingerprint: fingerprint_of(&weights),
            params: None,
        }));
    }
    let none = format!("{field}: no model `{value}`");
    let (m, dir) = import::pick(reg, cfg, Some(value), kind, formats, &none)
        .map_err(|e| format!("{field}: {}", e.trim_start_matches("--model ")))?;
    let (path, fingerprint) = weights(m, &dir, kind).ok_or_else(|| {
        format!(
            "{field}: {} is installed in {} but its weights are missing; \
             `reelsmith models verify {}`",
            m.id,
            dir.display(),
            m.id
        )
    })?;
    Ok(Some(ModelRef {
        id: m.id.clone(),
        path,
        fingerprint,
        params: m.params,
    }))
}

/// Parses a `--device` value: `cpu`, `cuda` (GPU 0) or `cuda:N`. A CUDA device needs a build
/// with `--features cuda` and a working driver; the error says which is missing.
pub fn parse_device(value: &str) -> Result<candle_core::Device, String> {
    reelsmith_kit::parse_device(value).map_err(|e| format!("--device {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path) -> Dirs {
        Dirs {
            data: root.join("data"),
            config: root.join("config"),
        }
    }

    #[test]
    fn device_values_are_checked() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device("CPU").unwrap().is_cpu());
        let e = parse_device("tpu").unwrap_err();
        assert!(e.contains("cpu, cuda or cuda:N"), "{e}");
        let e = parse_device("cuda:x").unwrap_err();
        assert!(e.contains("cuda:N"), "{e}");
        if !candle_core::utils::cuda_is_available() {
            let e = parse_device("cuda:0").unwrap_err();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }

    #[test]
    fn settings_file_errors_name_the_file_and_field() {
        let t = tempfile::tempdir().unwrap();
        let d = dirs(t.path());
        std::fs::create_dir_all(&d.config).unwrap();
        std::fs::write(engines_file(&d), "lm = \"auto\"\n").unwrap();
        let e = StageModels::resolve(&d).unwrap_err();
        assert!(
            e.contains("engines.toml") && e.contains("unknown field `lm`"),
            "{e}"
        );
        std::fs::write(engines_file(&d), "llm = \"/nope/model.gguf\"\n").unwrap();
        let e = StageModels::resolve(&d).unwrap_err();
        assert!(
            e.contains("engines.toml: llm") && e.contains("not a .gguf file"),
            "{e}"
        );
        std::fs::write(engines_file(&d), "asr = \"no-such-whisper\"\n").unwrap();
        let e = StageModels::resolve(&d).unwrap_err();
        assert!(
            e.contains("engines.toml: asr") && e.contains("no-such-whisper"),
            "{e}"
        );
    }

    #[test]
    fn the_video_setting_comes_from_the_variable_then_the_file() {
        let file = Path::new("/c/engines.toml");
        assert_eq!(
            video_setting(Some("none".into()), Some("ltxv-13b-0.9.8-dev"), file),
            ("none".to_string(), "REELSMITH_VIDEO".to_string())
        );
        assert_eq!(
            video_setting(None, Some("ltxv-13b-0.9.8-dev"), file),
            (
                "ltxv-13b-0.9.8-dev".to_string(),
                "/c/engines.toml: video".to_string()
            )
        );
        assert_eq!(video_setting(None, None, file).0, "auto");
    }

    #[test]
    fn the_video_field_of_engines_toml_is_read_and_checked() {
        let t = tempfile::tempdir().unwrap();
        let d = dirs(t.path());
        std::fs::create_dir_all(&d.config).unwrap();
        // Only when the variable does not decide (it wins over the file).
        if std::env::var("REELSMITH_VIDEO").is_ok_and(|v| !v.trim().is_empty()) {
            return;
        }
        std::fs::write(engines_file(&d), "video = \"none\"\n").unwrap();
        let m = StageModels::resolve(&d).unwrap();
        assert_eq!(m.video, None);
        std::fs::write(engines_file(&d), "video = \"ltx-unknown\"\n").unwrap();
        let e = StageModels::resolve(&d).unwrap_err();
        assert!(
            e.contains("engines.toml: video") && e.contains("ltx-unknown"),
            "{e}"
        );
        // Old job specs (no `video`) still parse; `None` is not written.
        let old: StageModels = serde_json::from_str(r#"{"llm":null,"asr":null}"#).unwrap();
        assert_eq!(old.video, None);
        let text = serde_json::to_string(&old).unwrap();
        assert!(!text.contains("video"), "{text}");
    }

    #[test]
    fn an_imported_voice_is_found_by_the_name_of_its_file() {
        let t = tempfile::tempdir().unwrap();
        let (config, voices) = (t.path().join("config"), t.path().join("voices"));
        std::fs::create_dir_all(&voices).unwrap();
        let onnx = voices.join("en_US-joe-medium.onnx");
        std::fs::write(&onnx, [0x08u8, 0x07, 0x00]).unwrap();
        std::fs::write(
            voices.join("en_US-joe-medium.onnx.json"),
            r#"{"audio":{"sample_rate":22050},"language":{"family":"en"},"phoneme_id_map":{"a":[1]}}"#,
        )
        .unwrap();
        let d = import::detect(&onnx).unwrap();
        // What `reelsmith models import` registers for this file.
        import::register(&config, &import::entry(&d, "en_us-joe-medium")).unwrap();
        let reg = Registry::load(Some(&config)).unwrap();
        let hf = t.path().join("hf").to_string_lossy().into_owned();
        let cfg = HubConfig::from_env(|k| (k == "HF_HOME").then(|| hf.clone()));
        let onnx = onnx.canonicalize().unwrap();
        // Not a file in the working directory: the names of the imported voice.
        for name in [
            "en_US-joe-medium",
            "en_US-joe-medium.onnx",
            "EN_us-JOE-medium",
        ] {
            let v = find_voice(name, "--voice", &reg, &cfg).unwrap();
            assert_eq!(
                (v.id.as_str(), &v.path),
                ("en_us-joe-medium", &onnx),
                "{name}"
            );
        }
        let per_lang = BTreeMap::from([("en".to_string(), "en_US-joe-medium".to_string())]);
        let voices = choose_voices(&reg, &cfg, &per_lang, None).unwrap();
        assert_eq!(voices["en"].path, onnx);
        let one = choose_voices(
            &reg,
            &cfg,
            &BTreeMap::new(),
            Some(("en_US-joe-medium.onnx", "tts")),
        )
        .unwrap();
        assert_eq!(one["en"].id, "en_us-joe-medium");
        // A name nothing has: the field, the name and the close ones.
        let e = find_voice("en_US-joe-high", "engines.toml: tts", &reg, &cfg).unwrap_err();
        assert!(
            e.starts_with("engines.toml: tts: en_US-joe-high: no tts model has this name")
                && e.contains("en_us-joe-medium (imported from"),
            "{e}"
        );
    }

    #[test]
    fn paths_and_none_resolve_without_the_registry() {
        let t = tempfile::tempdir().unwrap();
        let reg = Registry::embedded().unwrap();
        let cfg = HubConfig::from_env(|k| {
            (k == "HF_HOME").then(|| t.path().join("hf").to_string_lossy().into_owned())
        });
        let gguf = t.path().join("m.gguf");
        std::fs::write(&gguf, b"GGUF").unwrap();
        let r = choose(&reg, &cfg, gguf.to_str().unwrap(), "f", ModelKind::Llm)
            .unwrap()
            .unwrap();
        assert_eq!(r.id, "m.gguf");
        assert!(r.fingerprint.starts_with("4-"), "{}", r.fingerprint);
        assert_eq!(
            choose(&reg, &cfg, "none", "f", ModelKind::Llm).unwrap(),
            None
        );
        // Nothing installed in an empty cache: auto falls back to the rules.
        assert_eq!(
            choose(&reg, &cfg, "auto", "f", ModelKind::Llm).unwrap(),
            None
        );
        assert_eq!(
            choose(&reg, &cfg, "auto", "f", ModelKind::Asr).unwrap(),
            None
        );
        let w = t.path().join("whisper");
        std::fs::create_dir_all(&w).unwrap();
        let e = choose(&reg, &cfg, w.to_str().unwrap(), "f", ModelKind::Asr).unwrap_err();
        assert!(e.contains("CTranslate2"), "{e}");
        std::fs::write(w.join("model.bin"), b"x").unwrap();
        assert!(choose(&reg, &cfg, w.to_str().unwrap(), "f", ModelKind::Asr)
            .unwrap()
            .is_some());
    }
}
