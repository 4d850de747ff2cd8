//! The model registry: `models/*.toml` (embedded) overlaid by `<config>/models/*.toml`.
//!
//! Each entry names a real published model: its hub repository and revision, the files a
//! pipeline needs (with sizes and sha256 where known — the downloader checks them), license,
//! architecture, stored dtype and the smallest GPU class it runs on. A user file adds models or
//! replaces an embedded entry with the same `id` as a whole.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::vram::{self, JobSize, Tier};

mod video;
use video::check_video;
pub use video::{VideoFacts, VideoVram, VIDEO_TASKS};

/// What a model does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Llm,
    Image,
    Video,
    Asr,
    Tts,
    Vlm,
    Upscale,
    Interpolation,
}

impl ModelKind {
    pub const ALL: [ModelKind; 8] = [
        ModelKind::Llm,
        ModelKind::Image,
        ModelKind::Video,
        ModelKind::Asr,
        ModelKind::Tts,
        ModelKind::Vlm,
        ModelKind::Upscale,
        ModelKind::Interpolation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Llm => "llm",
            ModelKind::Image => "image",
            ModelKind::Video => "video",
            ModelKind::Asr => "asr",
            ModelKind::Tts => "tts",
            ModelKind::Vlm => "vlm",
            ModelKind::Upscale => "upscale",
            ModelKind::Interpolation => "interpolation",
        }
    }
}

/// One file of a model.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Path inside the repository.
    pub path: String,
    pub size: Option<u64>,
    /// The LFS object id (sha256 of the content), lowercase hex.
    pub sha256: Option<String>,
}

/// One registry entry.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub id: String,
    pub name: String,
    pub kind: ModelKind,
    pub repo: String,
    #[serde(default = "main")]
    pub revision: String,
    pub license: String,
    pub arch: String,
    pub format: String,
    pub params: Option<u64>,
    pub dtype: String,
    pub tier: Tier,
    #[serde(default)]
    pub languages: Vec<String>,
    /// Where the facts were looked up.
    #[serde(default)]
    pub source: String,
    pub files: Vec<ModelFile>,
    /// Files already on this machine (`reelsmith models import`): nothing to download.
    #[serde(default)]
    pub local: Option<PathBuf>,
    /// Which release of the architecture, where that changes how it is run: image models
    /// `turbo` (few steps, no guidance, trailing timesteps) or `v` (v-prediction). Upscalers
    /// and interpolators say what their tensors are, as `models import` reads them:
    /// `x4-23b` (RRDBNet, scale and blocks), `x4-compact-16` (SRVGGNetCompact, scale and body
    /// convolutions), `4.25/4.26` (the RIFE releases sharing that layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Registry ids of companion entries this model needs installed too (FLUX's text
    /// encoders).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// Image and video models: how the model is sampled by default (its makers'
    /// recommendation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<SamplingDefault>,
    /// Video models: shape rules, frame rate, fixed timesteps and memory model
    /// (`[model.video]`); entries without it are not run by the video engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoFacts>,
}

/// An image model's default sampler, step count and guidance scale.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingDefault {
    /// ddim, euler, euler_a, dpmpp_2m or flow.
    pub sampler: String,
    pub steps: u32,
    /// Classifier-free guidance scale (≤ 1: off).
    pub cfg: f32,
}

// `cfg` is a finite number from the registry file (TOML has no NaN literal in our files and
// the loader rejects non-finite values), so equality is an equivalence.
impl Eq for SamplingDefault {}

fn main() -> String {
    "main".into()
}

impl ModelEntry {
    /// Bytes to download (the sum of known file sizes; `None` if any is unknown).
    pub fn download_size(&self) -> Option<u64> {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Bytes of weights: known sizes, or parameters × the dtype's width.
    pub fn weight_bytes(&self) -> u64 {
        let known: u64 = self.files.iter().filter_map(|f| f.size).sum();
        if known > 0 {
            return known;
        }
        self.params
            .map(|p| (p as f64 * vram::bytes_per_param(&self.dtype)) as u64)
            .unwrap_or(0)
    }

    /// GPU memory to run it for a job of this size (see [`vram::estimate`]).
    pub fn vram(&self, job: &JobSize) -> u64 {
        vram::estimate(self, job)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {msg}")]
pub struct RegistryError {
    pub file: PathBuf,
    pub msg: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    model: Vec<ModelEntry>,
}

/// The registry files shipped in the binary.
const EMBEDDED: &[(&str, &str)] = &[
    ("models/llm.toml", include_str!("../../models/llm.toml")),
    ("models/image.toml", include_str!("../../models/image.toml")),
    ("models/video.toml", include_str!("../../models/video.toml")),
    ("models/asr.toml", include_str!("../../models/asr.toml")),
    ("models/tts.toml", include_str!("../../models/tts.toml")),
    ("models/vlm.toml", include_str!("../../models/vlm.toml")),
    (
        "models/upscale.toml",
        include_str!("../../models/upscale.toml"),
    ),
    (
        "models/interpolation.toml",
        include_str!("../../models/interpolation.toml"),
    ),
];

/// Every known model.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    models: Vec<ModelEntry>,
}

impl Registry {
    pub fn embedded() -> Result<Registry, RegistryError> {
        let mut r = Registry::default();
        for (name, text) in EMBEDDED {
            r.add_file(Path::new(name), text)?;
        }
        Ok(r)
    }

    /// The embedded registry overlaid by `<config_dir>/models/*.toml`.
    pub fn load(config_dir: Option<&Path>) -> Result<Registry, RegistryError> {
        let mut r = Registry::embedded()?;
        let Some(dir) = config_dir.map(|d| d.join("models")) else {
            return Ok(r);
        };
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Ok(r);
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| RegistryError {
                file: f.clone(),
                msg: e.to_string(),
            })?;
            r.add_file(&f, &text)?;
        }
        Ok(r)
    }

    /// Parses and validates one file; entries replace earlier ones with the same id.
    pub fn add_file(&mut self, file: &Path, text: &str) -> Result<(), RegistryError> {
        let err = |msg: String| RegistryError {
            file: file.to_path_buf(),
            msg,
        };
        let parsed: RegistryFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, m) in parsed.model.iter().enumerate() {
            let at = format!("model[{i}] ({})", m.id);
            if m.id.is_empty()
                || !m
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(err(format!(
                    "{at}: id must be letters, digits, '-', '_' or '.'"
                )));
            }
            if !seen.insert(m.id.clone()) {
                return Err(err(format!("{at}: the id is used twice in this file")));
            }
            if m.repo.split('/').count() != 2 {
                return Err(err(format!(
                    "{at}.repo: expected \"org/name\", got {:?}",
                    m.repo
                )));
            }
            if m.files.is_empty() {
                return Err(err(format!("{at}.files: list at least one file")));
            }
            if let Some(s) = &m.sampling {
                const SAMPLERS: [&str; 6] =
                    ["ddim", "euler", "euler_a", "dpmpp_2m", "flow", "unipc"];
                if !SAMPLERS.contains(&s.sampler.as_str()) {
                    return Err(err(format!(
                        "{at}.sampling.sampler: {:?} is not one of {}",
                        s.sampler,
                        SAMPLERS.join(", ")
                    )));
                }
                if s.steps == 0
                    || s.steps > 1000
                    || !s.cfg.is_finite()
                    || !(0.0..=30.0).contains(&s.cfg)
                {
                    return Err(err(format!(
                        "{at}.sampling: steps 1..=1000 and cfg 0..=30 (got {} and {})",
                        s.steps, s.cfg
                    )));
                }
            }
            if let Some(v) = &m.video {
                check_video(m, v).map_err(|e| err(format!("{at}.video: {e}")))?;
            }
            for (j, f) in m.files.iter().enumerate() {
                if f.path.is_empty() || f.path.starts_with('/') || f.path.contains("..") {
                    return Err(err(format!(
                        "{at}.files[{j}].path: a relative path inside the repository"
                    )));
                }
                if let Some(h) = &f.sha256 {
                    if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                        return Err(err(format!(
                            "{at}.files[{j}].sha256: 64 hex digits (the LFS oid), got {h:?}"
                        )));
                    }
                }
            }
        }
        for m in parsed.model {
            match self.models.iter_mut().find(|x| x.id == m.id) {
                Some(slot) => *slot = m,
                None => self.models.push(m),
            }
        }
        Ok(())
    }

    pub fn models(&self) -> &[ModelEntry] {
        &self.models
    }

    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.id == id)
    }

    /// The closest ids to a mistyped one, for error messages.
    pub fn suggest(&self, id: &str) -> Vec<&str> {
        let id = id.to_lowercase();
        let mut v: Vec<&str> = self
            .models
            .iter()
            .map(|m| m.id.as_str())
            .filter(|m| {
                let m = m.to_lowercase();
                let head: String = id.chars().take(4).collect();
                m.contains(&id)
                    || id.contains(&m)
                    || m.split('-').next() == id.split('-').next()
                    || (head.chars().count() == 4 && m.starts_with(&head))
            })
            .collect();
        v.truncate(8);
        v
    }
}

impl ModelEntry {
    /// What the hub client fetches for this entry.
    pub fn spec(&self) -> super::ModelSpec {
        super::ModelSpec {
            repo: self.repo.clone(),
            revision: self.revision.clone(),
            files: self
                .files
                .iter()
                .map(|f| super::FileSpec {
                    path: f.path.clone(),
                    size: f.size,
                    sha256: f.sha256.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_registry_is_valid_and_covers_every_kind() {
        let r = Registry::embedded().unwrap();
        for k in ModelKind::ALL {
            assert!(
                r.models().iter().any(|m| m.kind == k),
                "no {} model in the registry",
                k.as_str()
            );
        }
        let ids: std::collections::BTreeSet<_> = r.models().iter().map(|m| &m.id).collect();
        assert_eq!(ids.len(), r.models().len(), "ids are unique across files");
        let smol = r
            .models()
            .iter()
            .find(|m| m.repo.to_lowercase().contains("smollm2-135m"))
            .expect("SmolLM2 135M is listed");
        assert!(smol.weight_bytes() > 50_000_000);
    }

    #[test]
    fn a_user_file_adds_and_replaces_and_mistakes_name_the_field() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("models")).unwrap();
        std::fs::write(
            d.path().join("models/mine.toml"),
            r#"
[[model]]
id = "my-llm"
name = "Mine"
kind = "llm"
repo = "me/my-llm"
license = "mit"
arch = "llama"
format = "gguf"
dtype = "q4_0"
tier = "low"
params = 1_000_000_000
[[model.files]]
path = "my.gguf"
"#,
        )
        .unwrap();
        let r = Registry::load(Some(d.path())).unwrap();
        let m = r.get("my-llm").unwrap();
        assert_eq!(m.revision, "main");
        assert!(m.weight_bytes() > 500_000_000, "from params × q4_0 width");
        std::fs::write(
            d.path().join("models/bad.toml"),
            "[[model]]\nid = \"x\"\nname = \"x\"\nkind = \"llm\"\nrepo = \"a/b\"\nlicense = \"\"\narch = \"\"\nformat = \"\"\ndtype = \"f16\"\ntier = \"low\"\n[[model.files]]\npath = \"f\"\nsha256 = \"abc\"\n",
        )
        .unwrap();
        let e = Registry::load(Some(d.path())).unwrap_err().to_string();
        assert!(
            e.contains("bad.toml") && e.contains("files[0].sha256"),
            "{e}"
        );
        std::fs::write(d.path().join("models/bad.toml"), "[[model]]\nid = 3\n").unwrap();
        let e = Registry::load(Some(d.path())).unwrap_err().to_string();
        assert!(e.contains("bad.toml"), "{e}");
    }
}
