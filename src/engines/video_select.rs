//! Which video model animates the keyframes: `video = "auto" | "none" | <id, name or path>` in
//! `<config>/engines.toml`, or `REELSMITH_VIDEO` (which wins).
//!
//! - `none` (also `off`, `kenburns`): no model; the stills move by Ken Burns camera paths.
//! - `auto`: the first installed runnable LTX-Video model in registry order (models/video.toml
//!   lists the 2B distilled first, then 13B distilled, 13B dev, 2B 0.9.5; imported models
//!   after them) — **only on a machine with CUDA**. Without CUDA `auto` picks nothing: even the
//!   2B distilled model needs minutes per clip on a CPU (a 121-frame 768×512 clip is 6144
//!   latent tokens through 28 blocks for each of 8 steps), so Ken Burns runs unless a model is
//!   named. This mirrors `image = "auto"`, which on a CPU only picks one-step Turbo models;
//!   there is no video model quick enough on a CPU to pick by itself. Whether the model fits
//!   the GPU is the scheduler's admission (by [`VideoModelRef::vram`]), not this choice.
//! - a name: as [`import::resolve`] reads names (an id, an imported model's file name; case
//!   aside; installed first).
//! - a path (a value with a `/`, or one that exists): an LTX-Video single file, a folder
//!   holding one, or a diffusers folder, recognised as `reelsmith models import` does.
//!
//! A model runs with a T5-XXL text encoder and its tokenizer, looked for in this order:
//! 1. in the model's folder: `text_encoder/` (diffusers: `config.json` + shards), else a
//!    `t5*.safetensors` file (`t5xxl_fp16.safetensors`, …) beside the weights;
//! 2. in the folders of its `requires` companions (`flux-text-encoders`: the first
//!    `t5*.safetensors` by name, so `t5xxl_fp16` before `t5xxl_fp8_e4m3fn`).
//!
//! The tokenizer (`spiece.model` or `tokenizer.json`) likewise: the model's `tokenizer/`, its
//! folder, the companions' `tokenizer/` and `tokenizer_2/`, and then any installed LTX-Video or
//! FLUX model's (T5-v1.1-XXL's SentencePiece vocabulary is the same file in all of them).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hub::registry::{SamplingDefault, VideoFacts};
use crate::hub::{import, vram, HubConfig, ModelEntry, ModelKind, Registry};

/// An installed video model a job animates with (part of the clips' cache keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoModelRef {
    /// Registry id, or the file/folder name for a path.
    pub id: String,
    /// The architecture (`ltxv` or `wan`).
    pub arch: String,
    /// The weights: the single `.safetensors` (transformer + VAE) for layout `single-file`,
    /// the pipeline folder (`transformer/`, `vae/`) for `diffusers`.
    pub weights: PathBuf,
    /// The T5-XXL encoder: a `t5*.safetensors` file (BFL/ComfyUI layout) or a diffusers
    /// `text_encoder/` folder.
    pub text_encoder: PathBuf,
    /// The T5 tokenizer: `spiece.model` or `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// Wan: the VAE (a diffusers `vae/` folder or one file); LTX keeps it in `weights`.
    #[serde(default)]
    pub vae: Option<PathBuf>,
    /// Wan image-to-video and first-last-frame models: the CLIP vision encoder.
    #[serde(default)]
    pub image_encoder: Option<PathBuf>,
    /// Wan: the CLIP image processor's `preprocessor_config.json` (or a folder holding one).
    #[serde(default)]
    pub image_processor: Option<PathBuf>,
    /// sha256 of the weights when the registry knows it (else sizes and times), with the
    /// text encoder's and tokenizer's, hashed together.
    pub fingerprint: String,
    /// The registry's facts: release (`version`), `layout`, fps, frame rule, size multiple,
    /// compression, transformer shape, distilled `timesteps`, memory coefficients.
    pub facts: VideoFacts,
    /// Default sampler (`flow`), steps and guidance (≤ 1: none).
    pub sampling: SamplingDefault,
    /// GPU memory of the reference clip ([`REFERENCE_CLIP`]: 121 frames at 768×512) at its
    /// peak (see [`VideoModelRef::vram_peak`]); the scheduler admits by it when it knows no
    /// better size.
    #[serde(default)]
    pub vram_bytes: u64,
}

/// The clip `vram_bytes` is estimated for: `(frames, width, height)` — LTX-Video's reference
/// size (768×512) and five seconds at 24 fps.
pub const REFERENCE_CLIP: (u32, u32, u32) = (121, 768, 512);

impl VideoModelRef {
    /// Frames per second the model generates at by default.
    pub fn fps(&self) -> u32 {
        self.facts.fps
    }

    /// Default denoising steps (a distilled model: its timesteps' count).
    pub fn steps(&self) -> u32 {
        self.sampling.steps
    }

    /// Default classifier-free guidance scale (≤ 1: none).
    pub fn cfg(&self) -> f32 {
        self.sampling.cfg
    }

    /// A distilled model's fixed timesteps (sigmas from 1 down); empty: the engine's schedule
    /// for [`VideoModelRef::steps`].
    pub fn timesteps(&self) -> &[f64] {
        &self.facts.timesteps
    }

    /// `2B` or `13B`.
    pub fn size_class(&self) -> &'static str {
        self.facts.size_class()
    }

    /// Whether the default sampling uses classifier-free guidance (two branches a step).
    pub fn guided(&self) -> bool {
        self.sampling.cfg > 1.0
    }

    /// GPU memory of a clip of `frames` at `width`×`height`, `(transformer pass, decode)` in
    /// bytes, with the default guidance and the engine's decode tiling (see
    /// [`vram::video_estimate`]).
    pub fn vram(&self, frames: u32, width: u32, height: u32) -> (u64, u64) {
        vram::video_estimate_facts(
            &self.facts,
            self.guided(),
            frames,
            width,
            height,
            Some(vram::DecodeTiling::DEFAULT),
        )
    }

    /// How the model runs a clip on a device of `capacity` bytes: resident, or (Wan) with
    /// some blocks streamed from host memory; None when it cannot fit at all.
    pub fn plan(
        &self,
        frames: u32,
        width: u32,
        height: u32,
        capacity: u64,
    ) -> Option<vram::VideoPlan> {
        vram::video_plan(&self.facts, self.guided(), frames, width, height, capacity)
    }

    /// The most a clip holds at once (what admission asks for).
    pub fn vram_peak(&self, frames: u32, width: u32, height: u32) -> u64 {
        let (t, d) = self.vram(frames, width, height);
        vram::video_peak(&self.facts, t, d)
    }
}

/// Whether reelsmith's video engine runs a registry entry: an LTX-Video model stored as
/// safetensors, with a `[model.video]` table (fp8 files and other families have none).
pub fn runnable_video(m: &ModelEntry) -> bool {
    m.kind == ModelKind::Video
        && (m.arch == "ltxv" || m.arch == "wan")
        && m.format == "safetensors"
        && m.video.is_some()
}

/// A setting's value: `auto`, `none`, a name or a path; `gpu` says whether CUDA is there (see
/// the module docs). `field` names where the value came from, for errors.
pub fn choose_video(
    reg: &Registry,
    cfg: &HubConfig,
    value: &str,
    field: &str,
    gpu: bool,
) -> Result<Option<VideoModelRef>, String> {
    match value.trim() {
        "none" | "off" | "kenburns" | "ken-burns" => Ok(None),
        "auto" => Ok(auto_video_model(reg, cfg, gpu)),
        v => find_video_model(reg, cfg, v, field).map(Some),
    }
}

/// Whether a model makes clips between a first and a last picture natively (Wan2.1 FLF2V).
pub fn first_last_frame(m: &VideoModelRef) -> bool {
    m.arch == "wan" && m.facts.task == "flf2v"
}

/// The `morph` setting for a job animated by `video`: `none`, `auto` (with CUDA, the first
/// installed Wan2.1 first-last-frame model in registry order, unless `video` is one itself) or
/// a name or path, which must be a first-last-frame model.
pub fn choose_morph(
    reg: &Registry,
    cfg: &HubConfig,
    video: &VideoModelRef,
    value: &str,
    field: &str,
    gpu: bool,
) -> Result<Option<VideoModelRef>, String> {
    match value.trim() {
        "none" | "off" => Ok(None),
        "auto" => {
            if !gpu || first_last_frame(video) {
                return Ok(None);
            }
            Ok(reg
                .models()
                .iter()
                .filter(|m| runnable_video(m) && m.arch == "wan")
                .filter(|m| m.video.as_ref().is_some_and(|v| v.task == "flf2v"))
                .find_map(|m| {
                    let dir = import::local_dir(cfg, m)?;
                    reference(reg, cfg, m, &dir).ok()
                }))
        }
        v => {
            let m = find_video_model(reg, cfg, v, field)?;
            if !first_last_frame(&m) {
                return Err(format!(
                    "{field}: {} is not a first-last-frame model (a Wan2.1 FLF2V model, e.g. \
                     wan2.1-flf2v-14b-720p); `none` lets the video model make the morphs",
                    m.id
                ));
            }
            Ok(Some(m))
        }
    }
}

/// `auto`: with CUDA, the first installed runnable model in registry order; without, none.
pub fn auto_video_model(reg: &Registry, cfg: &HubConfig, gpu: bool) -> Option<VideoModelRef> {
    if !gpu {
        return None;
    }
    reg.models()
        .iter()
        .filter(|m| runnable_video(m))
        .find_map(|m| {
            let dir = import::local_dir(cfg, m)?;
            reference(reg, cfg, m, &dir).ok()
        })
}

/// The model a value names: a path (see the module docs) or a name.
pub fn find_video_model(
    reg: &Registry,
    cfg: &HubConfig,
    value: &str,
    field: &str,
) -> Result<VideoModelRef, String> {
    let path = Path::new(value);
    if value.contains('/') || path.exists() {
        let d = import::detect(path).map_err(|e| format!("{field}: {e}"))?;
        if d.video.is_none() {
            return Err(format!(
                "{field}: {value} is not a video model reelsmith runs (an LTX-Video single file \
                 or diffusers folder, or a Wan2.1 model in the diffusers, official or ComfyUI \
                 layout); it holds a model of kind {}, {}",
                d.kind.as_str(),
                d.arch
            ));
        }
        let id = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| value.to_string());
        let m = import::entry(&d, &id);
        return reference(reg, cfg, &m, &d.root).map_err(|e| format!("{field}: {e}"));
    }
    let r = import::resolve(reg, cfg, value, ModelKind::Video, &["safetensors"])
        .map_err(|e| format!("{field}: {e}"))?;
    let m = r.entry;
    if !runnable_video(m) {
        return Err(format!(
            "{field}: {} ({} {} {}) is not a video model reelsmith runs; use one of: {}",
            m.id,
            m.format,
            m.arch,
            m.dtype,
            reg.models()
                .iter()
                .filter(|m| runnable_video(m))
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let dir = r.dir.ok_or_else(|| match &m.local {
        Some(l) => format!(
            "{field}: {} was imported from {}, which is gone; import it again \
             (`reelsmith models import PATH`)",
            m.id,
            l.display()
        ),
        None => format!(
            "{field}: {} is not installed: `reelsmith models pull {}`",
            m.id, m.id
        ),
    })?;
    reference(reg, cfg, m, &dir).map_err(|e| format!("{field}: {e}"))
}

/// The first file named like a T5 encoder's weights in `dir`, by name.
fn t5_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && import::video::is_t5_file(p))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// The T5 tokenizer in a folder: `tokenizer/`, `tokenizer_2/` or the folder itself.
fn tokenizer_in(dir: &Path) -> Option<PathBuf> {
    ["tokenizer/", "tokenizer_2/", ""]
        .iter()
        .flat_map(|sub| {
            ["spiece.model", "tokenizer.json"]
                .iter()
                .map(move |f| dir.join(format!("{sub}{f}")))
        })
        .find(|p| p.is_file())
}

/// The single file of a `single-file` model: its first top-level `.safetensors` that is not a
/// T5 encoder (registry and import list the checkpoint first).
fn checkpoint_of(m: &ModelEntry, dir: &Path) -> Option<PathBuf> {
    m.files
        .iter()
        .filter(|f| !f.path.contains('/') && f.path.ends_with(".safetensors"))
        .map(|f| dir.join(&f.path))
        .find(|p| p.is_file() && !import::video::is_t5_file(p))
}

/// `size-mtime` of each `.safetensors` under `dir` (one level of folders), sorted: a folder's
/// fingerprint.
pub(super) fn folder_fingerprint(dir: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut visit = |d: &Path| {
        if let Ok(rd) = std::fs::read_dir(d) {
            for p in rd.filter_map(|e| e.ok().map(|e| e.path())) {
                if p.is_file() && p.extension().is_some_and(|x| x == "safetensors") {
                    parts.push(format!(
                        "{}:{}",
                        p.strip_prefix(dir).unwrap_or(&p).display(),
                        super::models::fingerprint_of(&p)
                    ));
                }
            }
        }
    };
    visit(dir);
    for net in ["transformer", "vae", "text_encoder"] {
        visit(&dir.join(net));
    }
    parts.sort();
    parts.join(",")
}

/// The job reference of model `m` whose files are in `dir`, or why it cannot run.
fn reference(
    reg: &Registry,
    cfg: &HubConfig,
    m: &ModelEntry,
    dir: &Path,
) -> Result<VideoModelRef, String> {
    if m.arch == "wan" {
        return super::video_wan::reference(reg, cfg, m, dir);
    }
    let facts = m
        .video
        .clone()
        .ok_or_else(|| format!("{}: the registry has no [model.video] for it", m.id))?;
    let sampling = m.sampling.clone().unwrap_or(SamplingDefault {
        sampler: "flow".into(),
        steps: facts.timesteps.len().max(40) as u32,
        cfg: if facts.distilled() { 1.0 } else { 3.0 },
    });
    let (weights, weights_fp) = if facts.layout == "diffusers" {
        (dir.to_path_buf(), folder_fingerprint(dir))
    } else {
        let file = checkpoint_of(m, dir).ok_or_else(|| {
            format!(
                "{}: the checkpoint is missing from {}; `reelsmith models verify {}`",
                m.id,
                dir.display(),
                m.id
            )
        })?;
        let fp = m
            .files
            .iter()
            .find(|f| file.ends_with(&f.path))
            .and_then(|f| f.sha256.clone())
            .unwrap_or_else(|| super::models::fingerprint_of(&file));
        (file, fp)
    };
    let mut companions = Vec::new();
    for id in &m.requires {
        let c = reg
            .get(id)
            .ok_or_else(|| format!("{} needs {id}, which the registry does not list", m.id))?;
        let cdir = import::local_dir(cfg, c).ok_or_else(|| {
            format!(
                "{} needs {id} installed too (its T5-XXL text encoder): \
                 `reelsmith models pull {id}`",
                m.id
            )
        })?;
        companions.push(cdir);
    }
    let own_te = dir.join("text_encoder");
    let text_encoder = if own_te.join("config.json").is_file() {
        Some(own_te)
    } else {
        t5_in(dir).or_else(|| companions.iter().find_map(|c| t5_in(c)))
    }
    .ok_or_else(|| {
        format!(
            "{}: no T5-XXL text encoder: put t5xxl_fp16.safetensors (or a diffusers \
             text_encoder/ folder) beside the weights in {}, or `reelsmith models pull \
             flux-text-encoders`",
            m.id,
            dir.display()
        )
    })?;
    let others = || {
        reg.models()
            .iter()
            .filter(|o| runnable_video(o) || o.arch == "flux")
            .filter_map(|o| import::local_dir(cfg, o))
    };
    let tokenizer = tokenizer_in(dir)
        .or_else(|| companions.iter().find_map(|c| tokenizer_in(c)))
        .or_else(|| others().find_map(|d| tokenizer_in(&d)))
        .ok_or_else(|| {
            format!(
                "{}: the T5 tokenizer is missing: put tokenizer/spiece.model (from \
                 Lightricks/LTX-Video) beside the weights in {}, or install any LTX-Video model \
                 of the registry (`reelsmith models pull ltxv-2b-0.9.8-distilled`)",
                m.id,
                dir.display()
            )
        })?;
    let te_fp = if text_encoder.is_dir() {
        folder_fingerprint(&text_encoder)
    } else {
        super::models::fingerprint_of(&text_encoder)
    };
    let parts = [weights_fp, te_fp, super::models::fingerprint_of(&tokenizer)];
    let digest = <sha2::Sha256 as sha2::Digest>::digest(parts.join("|").as_bytes());
    let mut r = VideoModelRef {
        id: m.id.clone(),
        arch: m.arch.clone(),
        weights,
        text_encoder,
        tokenizer,
        vae: None,
        image_encoder: None,
        image_processor: None,
        fingerprint: hex::encode(&digest[..12]),
        facts,
        sampling,
        vram_bytes: 0,
    };
    let (frames, width, height) = REFERENCE_CLIP;
    r.vram_bytes = r.vram_peak(frames, width, height);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::import::video::fixtures::{ltx_file, synthetic};
    use crate::hub::import::{detect, entry, register};

    fn empty_cache(root: &Path) -> HubConfig {
        let hf = root.join("hf").to_string_lossy().into_owned();
        HubConfig::from_env(|k| (k == "HF_HOME").then(|| hf.clone()))
    }

    /// An LTX 2B 0.9.8 distilled single file with its T5 and tokenizer, in `dir`.
    fn ltx_folder(dir: &Path) -> PathBuf {
        let file = dir.join("ltxv-2b-0.9.8-distilled.safetensors");
        ltx_file(&file, 2048, 28, Some("0.9.5"), None);
        synthetic(
            &dir.join("t5xxl_fp16.safetensors"),
            &[(
                "encoder.block.0.layer.0.SelfAttention.q.weight",
                &[4096, 4096],
            )],
            None,
        );
        std::fs::create_dir_all(dir.join("tokenizer")).unwrap();
        std::fs::write(dir.join("tokenizer/spiece.model"), b"spm").unwrap();
        file
    }

    #[test]
    fn none_and_auto_with_nothing_installed_give_ken_burns() {
        let t = tempfile::tempdir().unwrap();
        let reg = Registry::embedded().unwrap();
        let cfg = empty_cache(t.path());
        for v in ["none", "off", " kenburns "] {
            assert_eq!(choose_video(&reg, &cfg, v, "f", true).unwrap(), None, "{v}");
        }
        assert_eq!(choose_video(&reg, &cfg, "auto", "f", true).unwrap(), None);
        assert_eq!(choose_video(&reg, &cfg, "auto", "f", false).unwrap(), None);
        // The registry's LTX and Wan entries are runnable; the LTX fp8 file, GGUF files and
        // the tokenizer-only entry are not.
        assert!(runnable_video(reg.get("ltxv-2b-0.9.8-distilled").unwrap()));
        assert!(runnable_video(reg.get("ltx-video-2b").unwrap()));
        assert!(!runnable_video(
            reg.get("ltx-video-2b-distilled-fp8").unwrap()
        ));
        assert!(runnable_video(reg.get("wan2.1-t2v-1.3b").unwrap()));
        assert!(runnable_video(reg.get("wan2.1-i2v-14b-720p-fp8").unwrap()));
        assert!(!runnable_video(reg.get("wan2.1-i2v-14b-480p-q4").unwrap()));
        assert!(!runnable_video(reg.get("umt5-xxl-tokenizer").unwrap()));
    }

    #[test]
    fn unknown_or_uninstalled_names_say_which_setting_and_what_to_do() {
        let t = tempfile::tempdir().unwrap();
        let reg = Registry::embedded().unwrap();
        let cfg = empty_cache(t.path());
        let field = "/home/u/.config/reelsmith/engines.toml: video";
        let e = choose_video(&reg, &cfg, "ltx-nope", field, true).unwrap_err();
        assert!(e.starts_with(field) && e.contains("ltx-nope"), "{e}");
        let e = choose_video(&reg, &cfg, "ltxv-13b-0.9.8-dev", field, true).unwrap_err();
        assert!(
            e.contains("not installed") && e.contains("models pull ltxv-13b-0.9.8-dev"),
            "{e}"
        );
        let e = choose_video(&reg, &cfg, "ltx-video-2b-distilled-fp8", field, true).unwrap_err();
        assert!(e.contains("not a video model reelsmith runs"), "{e}");
        let e = choose_video(&reg, &cfg, "/nope/ltx.safetensors", field, true).unwrap_err();
        assert!(
            e.starts_with(field) && e.contains("/nope/ltx.safetensors"),
            "{e}"
        );
    }

    #[test]
    fn an_imported_model_is_picked_by_auto_only_with_a_gpu_and_by_name_always() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("ltx");
        let file = ltx_folder(&dir);
        let config = t.path().join("config");
        register(&config, &entry(&detect(&file).unwrap(), "my-ltx")).unwrap();
        let reg = Registry::load(Some(&config)).unwrap();
        let cfg = empty_cache(t.path());
        assert_eq!(choose_video(&reg, &cfg, "auto", "f", false).unwrap(), None);
        let m = choose_video(&reg, &cfg, "auto", "f", true)
            .unwrap()
            .unwrap();
        let dir = dir.canonicalize().unwrap();
        assert_eq!(m.id, "my-ltx");
        assert_eq!(m.weights, dir.join("ltxv-2b-0.9.8-distilled.safetensors"));
        assert_eq!(m.text_encoder, dir.join("t5xxl_fp16.safetensors"));
        assert_eq!(m.tokenizer, dir.join("tokenizer/spiece.model"));
        assert_eq!((m.facts.version.as_str(), m.size_class()), ("0.9.8", "2B"));
        assert_eq!((m.steps(), m.cfg(), m.fps()), (8, 1.0, 30));
        assert!(!m.guided() && m.timesteps().len() == 8);
        let (tr, de) = m.vram(121, 768, 512);
        assert!(tr > de && m.vram_peak(121, 768, 512) >= tr);
        assert_eq!(m.vram_bytes, m.vram_peak(121, 768, 512));
        // By name without a GPU; by the file's name; by path.
        let named = choose_video(&reg, &cfg, "my-ltx", "f", false)
            .unwrap()
            .unwrap();
        assert_eq!(named, m);
        let by_file = choose_video(
            &reg,
            &cfg,
            "ltxv-2b-0.9.8-distilled.safetensors",
            "f",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(by_file.id, "my-ltx");
        let by_path = choose_video(&reg, &cfg, file.to_str().unwrap(), "f", false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (by_path.weights, by_path.fingerprint),
            (m.weights.clone(), m.fingerprint.clone())
        );
        // The fingerprint follows the files.
        std::fs::write(dir.join("tokenizer/spiece.model"), b"another vocabulary").unwrap();
        let again = choose_video(&reg, &cfg, "my-ltx", "f", false)
            .unwrap()
            .unwrap();
        assert_ne!(again.fingerprint, m.fingerprint);
        // Without a T5 or a tokenizer it says what to fetch.
        std::fs::remove_file(dir.join("t5xxl_fp16.safetensors")).unwrap();
        let e = choose_video(&reg, &cfg, file.to_str().unwrap(), "video", false).unwrap_err();
        assert!(e.contains("flux-text-encoders"), "{e}");
    }

    #[test]
    fn an_image_model_path_is_not_a_video_model() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("sd");
        std::fs::create_dir_all(dir.join("tokenizer")).unwrap();
        std::fs::write(dir.join("tokenizer/vocab.json"), "{}").unwrap();
        std::fs::write(dir.join("tokenizer/merges.txt"), "").unwrap();
        synthetic(
            &dir.join("sd15.safetensors"),
            &[
                ("model.diffusion_model.out.0.weight", &[1]),
                (
                    "cond_stage_model.transformer.text_model.final_layer_norm.weight",
                    &[1],
                ),
            ],
            None,
        );
        let reg = Registry::embedded().unwrap();
        let cfg = empty_cache(t.path());
        let e =
            choose_video(&reg, &cfg, dir.to_str().unwrap(), "REELSMITH_VIDEO", true).unwrap_err();
        assert!(
            e.starts_with("REELSMITH_VIDEO: ") && e.contains("kind image"),
            "{e}"
        );
    }
}
