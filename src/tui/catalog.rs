//! What the Models pane lists: the embedded engines every stage falls back to (always
//! installed, no weights), and the models found in the standard Hugging Face cache on this
//! machine (shared with Python tools), with their size on disk and a VRAM estimate.
//!
//! Registry entries (`models/*.toml`) come first with their installed state in the cache; `p`
//! queues a download (a pull job in the store, run by the scheduler; progress in the pane), `c`
//! stops it, `D` removes its files.

use std::path::{Path, PathBuf};

/// Where a model comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Embedded in reelsmith (no weights).
    BuiltIn,
    /// A registry entry (downloadable from this hub repository).
    Registry { repo: String },
    /// A repository folder in the Hugging Face cache.
    HfCache(PathBuf),
}

/// A download queued or in progress (a `pulls` row of the store).
#[derive(Clone, Debug, PartialEq)]
pub struct Download {
    pub pull: crate::store::PullId,
    /// Waiting for a runner (the studio's scheduler or `reelsmith run`).
    pub queued: bool,
    pub done: u64,
    pub total: u64,
    pub bytes_per_s: f64,
}

impl Download {
    pub fn eta_s(&self) -> Option<u64> {
        (self.bytes_per_s > 0.0 && self.total >= self.done)
            .then(|| ((self.total - self.done) as f64 / self.bytes_per_s).ceil() as u64)
    }
}

/// One row of the Models pane.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelView {
    pub id: String,
    /// `image`, `video`, `llm`, `asr`, `tts`, `music`, `upscale`, `interpolation`, `edit`, `other`.
    pub kind: String,
    /// The stage it serves (`keyframes`, `voice` …) for built-ins.
    pub stage: Option<String>,
    pub source: Source,
    pub installed: bool,
    /// Bytes on disk (`None` for built-ins).
    pub size: Option<u64>,
    /// GPU memory it needs to run (0 for CPU engines).
    pub vram: u64,
    pub download: Option<Download>,
}

/// The built-in engines, one per stage, as the stage registry reports them.
pub fn builtin() -> Vec<ModelView> {
    crate::stages::registry()
        .iter()
        .map(|(kind, stage)| ModelView {
            id: stage.builtin_engine(),
            kind: kind_of_stage(kind.as_str()).into(),
            stage: Some(kind.as_str().to_string()),
            source: Source::BuiltIn,
            installed: true,
            size: None,
            vram: 0,
            download: None,
        })
        .collect()
}

fn kind_of_stage(stage: &str) -> &'static str {
    match stage {
        "plan" | "translate" | "metadata" => "llm",
        "keyframes" | "thumbnail" => "image",
        "animate" => "video",
        "post" => "upscale",
        "voice" => "tts",
        "music" => "music",
        "align" | "captions" => "asr",
        _ => "edit",
    }
}

/// A guess of what a repository holds from its name.
pub fn kind_of_repo(repo: &str) -> &'static str {
    let r = repo.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| r.contains(w));
    if has(&["whisper"]) {
        "asr"
    } else if has(&["piper", "parler", "tts", "vits", "kokoro"]) {
        "tts"
    } else if has(&["ltx-video", "wan2", "animatediff", "video-diffusion", "svd"]) {
        "video"
    } else if has(&["stable-diffusion", "sdxl", "sd-turbo", "flux", "diffusion"]) {
        "image"
    } else if has(&["esrgan", "upscal"]) {
        "upscale"
    } else if has(&["rife", "interpol"]) {
        "interpolation"
    } else if has(&["musicgen", "audioldm", "music"]) {
        "music"
    } else if has(&[
        "llama",
        "qwen",
        "smollm",
        "phi",
        "gemma",
        "mistral",
        "gguf",
        "moondream",
    ]) {
        "llm"
    } else {
        "other"
    }
}

/// Models in a hub cache folder (`models--org--name/blobs/*`), sorted by id. A repository with
/// no complete blob (only `.incomplete` files) is listed as not installed.
pub fn scan_hf_cache(dir: &Path) -> Vec<ModelView> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<ModelView> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let repo = name.strip_prefix("models--")?.replacen("--", "/", 1);
            let (mut complete, mut partial) = (0u64, 0u64);
            if let Ok(blobs) = std::fs::read_dir(e.path().join("blobs")) {
                for b in blobs.filter_map(|b| b.ok()) {
                    let len = b.metadata().map(|m| m.len()).unwrap_or(0);
                    if b.file_name().to_string_lossy().ends_with(".incomplete") {
                        partial += len;
                    } else {
                        complete += len;
                    }
                }
            }
            let kind = kind_of_repo(&repo);
            Some(ModelView {
                vram: vram_estimate(kind, complete),
                id: repo,
                kind: kind.into(),
                stage: None,
                source: Source::HfCache(e.path()),
                installed: complete > 0 && partial == 0,
                size: Some(complete + partial),
                download: None,
            })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// GPU memory to run a model whose weights take `weights` bytes: the weights plus what its
/// kind needs for activations at our job sizes (a rough rule until the registry's per-model
/// formulas arrive).
pub fn vram_estimate(kind: &str, weights: u64) -> u64 {
    let overhead = match kind {
        "image" => 1.5,
        "video" => 2.0,
        "llm" => 1.2,
        _ => 1.15,
    };
    (weights as f64 * overhead) as u64
}

/// Everything the pane lists: the built-in engines, the registry (installed or not), then
/// anything else found in the hub cache.
pub fn scan(cfg: &crate::hub::HubConfig, registry: &crate::hub::Registry) -> Vec<ModelView> {
    let job = crate::hub::JobSize::default();
    let mut all = builtin();
    for m in registry.models() {
        let installed = match &m.local {
            Some(l) => l.exists(),
            None => crate::hub::installed(cfg, &m.spec()).is_some(),
        };
        all.push(ModelView {
            id: m.id.clone(),
            kind: m.kind.as_str().into(),
            stage: None,
            source: Source::Registry {
                repo: m.repo.clone(),
            },
            installed,
            size: m.download_size().or(Some(m.weight_bytes())),
            vram: m.vram(&job),
            download: None,
        });
    }
    let known: std::collections::BTreeSet<&str> =
        registry.models().iter().map(|m| m.repo.as_str()).collect();
    all.extend(
        scan_hf_cache(&cfg.cache_dir)
            .into_iter()
            .filter(|m| !known.contains(m.id.as_str())),
    );
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_repositories_are_listed_with_their_sizes() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("models--openai--whisper-base/blobs");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("abc"), vec![0u8; 1000]).unwrap();
        let part = d
            .path()
            .join("models--black-forest-labs--FLUX.1-schnell/blobs");
        std::fs::create_dir_all(&part).unwrap();
        std::fs::write(part.join("def.incomplete"), vec![0u8; 10]).unwrap();
        std::fs::create_dir_all(d.path().join("datasets--x--y")).unwrap();
        let got = scan_hf_cache(d.path());
        assert_eq!(got.len(), 2, "datasets are not models");
        assert_eq!(got[0].id, "black-forest-labs/FLUX.1-schnell");
        assert!(!got[0].installed, "only a partial file");
        assert_eq!(got[0].kind, "image");
        assert_eq!(got[1].id, "openai/whisper-base");
        assert!(got[1].installed);
        assert_eq!(got[1].size, Some(1000));
        assert_eq!(got[1].kind, "asr");
        assert!(got[1].vram >= 1000);
    }

    #[test]
    fn every_stage_has_a_builtin_engine() {
        let b = builtin();
        assert!(b.len() >= 10);
        assert!(b.iter().all(|m| m.installed && m.vram == 0));
        assert!(b.iter().any(|m| m.stage.as_deref() == Some("voice")));
    }
}
