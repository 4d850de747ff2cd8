//! Models: the registry (`models/*.toml`, [`registry`]), VRAM estimates and GPU tiers
//! ([`vram`]), and the Hugging Face hub client below, writing the standard HF cache layout.
//!
//! Models land where the Python tools (`huggingface_hub`, `transformers`, …)
//! look for them, so a model fetched by one is reused by the other:
//!
//! ```text
//! {cache}/models--{org}--{name}/
//!     blobs/{etag}               file content (LFS files: etag = sha256)
//!     blobs/{etag}.incomplete    partial download, resumed with `Range`
//!     snapshots/{commit}/{path}  relative symlink to ../../blobs/{etag}
//!     refs/{revision}            the commit hash the revision resolved to
//! ```
//!
//! [`pull`] resolves a revision to a commit, asks the hub for each file's
//! metadata (`HEAD /{repo}/resolve/{commit}/{path}`: `X-Repo-Commit`,
//! `X-Linked-Etag`/`ETag`, `X-Linked-Size`/`Content-Length`), checks free disk
//! space, downloads the files in parallel with resume and retries, verifies
//! size and sha256, and only then renames the blobs into place and writes the
//! snapshot links and the ref: a model is installed completely or not at all.
//!
//! # Why the HTTP part is not `hf-hub`
//!
//! The latest `hf-hub` (1.x) is async only (tokio, reqwest, hf-xet), truncates
//! `*.incomplete` on every download instead of resuming it with `Range`,
//! retries only the start of a request (not a body cut mid-transfer), has no
//! offline mode, cancellation or retry progress, and keeps its cache-layout
//! helpers crate-private. The 0.4 line resumes (into `*.part`, a name Python
//! does not know) but has no 401/403 distinction, no checksum verification,
//! no cancellation and no retry events. So the transfer is written here on
//! blocking `ureq` 3 and std threads; `hf-hub` 0.4 (without default features,
//! so without any HTTP stack) supplies the cache naming shared with Python:
//! `Repo::folder_name` and `CacheRepo::create_ref`.
//!
//! The code is Unix-only (relative symlinks, `statvfs`).

mod cache;
mod download;
pub mod import;
pub mod queue;
pub mod registry;
#[cfg(test)]
pub(crate) mod server_tests;
pub mod vram;

pub use registry::{ModelEntry, ModelFile, ModelKind, Registry, RegistryError};
pub use vram::{JobSize, Tier};

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

pub use cache::{free_space, tree_size};

/// The public Hugging Face hub, used when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Probe for the free bytes on the file system holding a path; replaceable
/// in [`HubConfig::free_space`] so that tests need not fill a disk.
pub type FreeSpaceFn = fn(&Path) -> std::io::Result<u64>;

/// Where and how to download. The token never appears in `Debug` output.
#[derive(Clone)]
pub struct HubConfig {
    /// Hub base URL without a trailing slash (`HF_ENDPOINT`).
    pub endpoint: String,
    /// Access token sent as `Authorization: Bearer` to the endpoint's origin.
    pub token: Option<String>,
    /// Root of the cache (`HF_HUB_CACHE`, else `HF_HOME/hub`).
    pub cache_dir: PathBuf,
    /// No network at all: serve only what the cache holds (`HF_HUB_OFFLINE`).
    pub offline: bool,
    /// How many files are downloaded at once.
    pub parallel: usize,
    /// Consecutive failed attempts without progress tolerated per request.
    pub retries: u32,
    /// First retry delay; doubled for each further failure, capped at 30 s.
    pub retry_delay: Duration,
    /// Longest wait for response headers or for a single read of the body.
    pub read_timeout: Duration,
    /// Free-space probe used before downloading (default: [`free_space`]).
    pub free_space: FreeSpaceFn,
}

impl HubConfig {
    /// A configuration with default tuning and no token.
    pub fn new(endpoint: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            token: None,
            cache_dir: cache_dir.into(),
            offline: false,
            parallel: 4,
            retries: 5,
            retry_delay: Duration::from_secs(1),
            read_timeout: Duration::from_secs(60),
            free_space,
        }
    }

    /// Builds the configuration the way `huggingface_hub` does, reading
    /// variables through `get` (pass `|k| std::env::var(k).ok()` for the real
    /// environment): `HF_ENDPOINT`, `HF_TOKEN` (else the token file
    /// `HF_TOKEN_PATH` or `HF_HOME/token`), `HF_HUB_CACHE`, `HF_HOME`
    /// (default `$XDG_CACHE_HOME/huggingface` or `~/.cache/huggingface`) and
    /// `HF_HUB_OFFLINE`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let var = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let home = PathBuf::from(var("HOME").unwrap_or_else(|| ".".into()));
        let path = |v: String| match v.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => PathBuf::from(v),
        };
        let hf_home = var("HF_HOME").map(path).unwrap_or_else(|| {
            let xdg = var("XDG_CACHE_HOME")
                .map(path)
                .unwrap_or_else(|| home.join(".cache"));
            xdg.join("huggingface")
        });
        let cache_dir = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(path)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                let file = var("HF_TOKEN_PATH")
                    .map(path)
                    .unwrap_or_else(|| hf_home.join("token"));
                let text = std::fs::read_to_string(file).ok()?;
                Some(text.trim().to_string()).filter(|t| !t.is_empty())
            });
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        let mut cfg = Self::new(
            var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.into()),
            cache_dir,
        );
        cfg.token = token;
        cfg.offline = offline;
        cfg
    }
}

impl fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubConfig")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .field("parallel", &self.parallel)
            .field("retries", &self.retries)
            .field("retry_delay", &self.retry_delay)
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

/// One file wanted from a repo, with optional expectations to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Path inside the repo, `/`-separated (`config.json`, `unet/model.safetensors`).
    pub path: String,
    /// Expected size in bytes.
    pub size: Option<u64>,
    /// Expected sha256 (hex). Without it, LFS files are checked against their
    /// sha256 ETag and other files by size only.
    pub sha256: Option<String>,
}

impl FileSpec {
    /// A file with no expectations beyond what the hub reports.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            size: None,
            sha256: None,
        }
    }
}

/// A repo at a revision and the files to fetch from it (empty: every file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Repo id, `org/name`.
    pub repo: String,
    /// Branch, tag or commit hash (`main`).
    pub revision: String,
    /// Files to fetch; empty means every file of the revision.
    pub files: Vec<FileSpec>,
}

/// An installed model: its snapshot directory and the paths of its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledModel {
    /// Repo id.
    pub repo: String,
    /// Commit hash the revision resolved to.
    pub commit: String,
    /// `{cache}/models--{org}--{name}/snapshots/{commit}`.
    pub dir: PathBuf,
    /// Snapshot paths of the files, in the order of the spec.
    pub files: Vec<PathBuf>,
}

/// Progress of a [`pull`], delivered to its callback from worker threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// Metadata is known for every file: what will be fetched.
    Planned {
        /// Number of distinct blobs.
        files: usize,
        /// Sum of their sizes, if every size is known.
        total: Option<u64>,
    },
    /// A file transfer began; `resumed_from` bytes were already on disk.
    Started {
        file: String,
        total: Option<u64>,
        resumed_from: u64,
    },
    /// Bytes of `file` on disk so far.
    Bytes {
        file: String,
        done: u64,
        total: Option<u64>,
    },
    /// An attempt failed (for the revision lookup, `file` is the repo id);
    /// the request is retried after a backoff.
    Retrying {
        file: String,
        attempt: u32,
        error: String,
    },
    /// Every byte of `file` is on disk.
    Finished { file: String, bytes: u64 },
    /// `file` matched its expected size and checksum.
    Verified { file: String },
}

/// Aggregates [`ProgressEvent`]s into totals, speed over a sliding window
/// and ETA, for a progress bar.
#[derive(Debug, Clone)]
pub struct ProgressTracker {
    files: HashMap<String, (u64, Option<u64>)>,
    planned: Option<u64>,
    samples: VecDeque<(Instant, u64)>,
    window: Duration,
}

impl ProgressTracker {
    /// A tracker measuring speed over the last `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            files: HashMap::new(),
            planned: None,
            samples: VecDeque::new(),
            window,
        }
    }

    /// Records an event observed now.
    pub fn observe(&mut self, event: &ProgressEvent) {
        self.observe_at(event, Instant::now());
    }

    /// Records an event observed at `now`.
    pub fn observe_at(&mut self, event: &ProgressEvent, now: Instant) {
        match event {
            ProgressEvent::Planned { total, .. } => self.planned = *total,
            ProgressEvent::Started {
                file,
                total,
                resumed_from,
            } => {
                // Bytes already on disk are not transfer speed: shift the window.
                self.samples.iter_mut().for_each(|s| s.1 += resumed_from);
                self.files.insert(file.clone(), (*resumed_from, *total));
            }
            ProgressEvent::Bytes { file, done, total } => {
                self.files.insert(file.clone(), (*done, *total));
            }
            ProgressEvent::Finished { file, bytes } => {
                self.files.insert(file.clone(), (*bytes, Some(*bytes)));
            }
            ProgressEvent::Retrying { .. } | ProgressEvent::Verified { .. } => return,
        }
        self.samples.push_back((now, self.done()));
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= self.window {
            self.samples.pop_front();
        }
    }

    /// Bytes on disk across all files.
    pub fn done(&self) -> u64 {
        self.files.values().map(|f| f.0).sum()
    }

    /// Total bytes: the planned total, else the sum over started files if
    /// all their sizes are known.
    pub fn total(&self) -> Option<u64> {
        self.planned
            .or_else(|| self.files.values().map(|f| f.1).sum())
    }

    /// Bytes per second over the window.
    pub fn speed(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                b.1.saturating_sub(a.1) as f64 / b.0.duration_since(a.0).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// Time left at the current speed, when total and speed are known.
    pub fn eta(&self) -> Option<Duration> {
        let left = self.total()?.saturating_sub(self.done());
        let speed = self.speed();
        (speed > 0.0).then(|| Duration::from_secs_f64(left as f64 / speed))
    }
}

/// Outcome of [`verify`] for one file: its repo path and any problem found.
pub type FileCheck = (String, Result<(), String>);

/// Everything that can go wrong; messages say what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// HTTP 401.
    #[error("{what}: authentication required (HTTP 401). {}", auth_advice(*token_sent, page))]
    Unauthorized {
        what: String,
        page: String,
        token_sent: bool,
    },
    /// HTTP 403.
    #[error("{what}: access forbidden (HTTP 403), the repo is gated or private. {}", auth_advice(*token_sent, page))]
    Forbidden {
        what: String,
        page: String,
        token_sent: bool,
    },
    /// HTTP 404.
    #[error("{what}: not found (HTTP 404); check the repo id, revision and file name")]
    NotFound { what: String },
    /// Another HTTP status that retrying will not fix.
    #[error("{what}: unexpected HTTP status {status}")]
    Http { what: String, status: u16 },
    /// Network failures persisted through every retry.
    #[error("{what}: giving up after {attempts} attempts: {last_error}")]
    Transfer {
        what: String,
        attempts: u32,
        last_error: String,
    },
    /// The server answered something this client cannot use.
    #[error("{what}: invalid response from the hub: {detail}")]
    InvalidResponse { what: String, detail: String },
    /// Downloaded bytes do not hash to the expected sha256.
    #[error("checksum mismatch for {file}: expected sha256 {expected}, got {actual}")]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    /// A file's size differs from the expected one.
    #[error("size mismatch for {file}: expected {expected} bytes, got {actual}")]
    Size {
        file: String,
        expected: u64,
        actual: u64,
    },
    /// Not enough room in the cache.
    #[error("not enough disk space in {}: {} more needed, {} free", dir.display(), human(*needed), human(*free))]
    DiskSpace {
        dir: PathBuf,
        needed: u64,
        free: u64,
    },
    /// The model is not (completely) in the cache.
    #[error("{repo}@{revision} is not in the cache ({detail}){}", if *offline { " and offline mode is on (HF_HUB_OFFLINE)" } else { "" })]
    NotCached {
        repo: String,
        revision: String,
        detail: String,
        offline: bool,
    },
    /// The cancel flag was raised; partial files stay for a later resume.
    #[error("download cancelled")]
    Cancelled,
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn auth_advice(token_sent: bool, page: &str) -> String {
    let token = if token_sent {
        "The token in HF_TOKEN was sent but lacks access"
    } else {
        "No token was sent: set HF_TOKEN to a Hugging Face access token (or run `huggingface-cli login`)"
    };
    format!("{token}; for a gated model, accept its license on {page} with the same account.")
}

/// Formats a byte count for people (`3.1 MB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Downloads (or, offline, looks up) `spec` into the cache. `progress` is
/// called from worker threads; raising `cancel` stops between chunks and
/// leaves `*.incomplete` files for a later resume.
pub fn pull(
    cfg: &HubConfig,
    spec: &ModelSpec,
    progress: &(dyn Fn(&ProgressEvent) + Send + Sync),
    cancel: &AtomicBool,
) -> Result<PulledModel, HubError> {
    if cfg.offline {
        return cached(cfg, spec);
    }
    download::pull_online(cfg, spec, progress, cancel)
}

/// The installed model, if the cache holds every file of `spec` (no network).
pub fn installed(cfg: &HubConfig, spec: &ModelSpec) -> Option<PulledModel> {
    cached(cfg, spec).ok()
}

/// Re-hashes every installed file of `spec` against its expected sha256
/// (from the spec, else the blob's sha256 name) and size; one result per file.
pub fn verify(cfg: &HubConfig, spec: &ModelSpec) -> Result<Vec<FileCheck>, HubError> {
    let model = cached(cfg, spec)?;
    let names = file_names(spec, &model);
    let check = |name: &str, path: &Path| -> Result<(), String> {
        let want = spec.files.iter().find(|f| f.path == name);
        let actual = cache::sha256_file(path).map_err(|e| format!("cannot read: {e}"))?;
        let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
        if let Some(expected) = want.and_then(|f| f.size).filter(|s| *s != size) {
            return Err(format!("size {size}, expected {expected}"));
        }
        let blob = std::fs::read_link(path)
            .ok()
            .and_then(|t| Some(t.file_name()?.to_string_lossy().into_owned()));
        let expected = want
            .and_then(|f| f.sha256.clone())
            .or(blob.filter(|b| cache::is_sha256(b)));
        match expected {
            Some(e) if !e.eq_ignore_ascii_case(&actual) => {
                Err(format!("sha256 {actual}, expected {e}"))
            }
            _ => Ok(()),
        }
    };
    Ok(names
        .into_iter()
        .zip(&model.files)
        .map(|(n, p)| (n.clone(), check(&n, p)))
        .collect())
}

/// Deletes the repo's folder from the cache; returns the bytes freed (0 if absent).
pub fn remove(cfg: &HubConfig, repo: &str) -> Result<u64, HubError> {
    let dir = cache::repo_dir(&cfg.cache_dir, repo);
    if !dir.exists() {
        return Ok(0);
    }
    let io = |e| HubError::Io {
        context: format!("removing {}", dir.display()),
        source: e,
    };
    let bytes = cache::tree_size(&dir).map_err(io)?;
    std::fs::remove_dir_all(&dir).map_err(io)?;
    Ok(bytes)
}

fn file_names(spec: &ModelSpec, model: &PulledModel) -> Vec<String> {
    if spec.files.is_empty() {
        let rel = |p: &PathBuf| {
            p.strip_prefix(&model.dir)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        };
        model.files.iter().map(rel).collect()
    } else {
        spec.files.iter().map(|f| f.path.clone()).collect()
    }
}

/// Resolves `spec` from the cache alone.
fn cached(cfg: &HubConfig, spec: &ModelSpec) -> Result<PulledModel, HubError> {
    let missing = |detail: String| HubError::NotCached {
        repo: spec.repo.clone(),
        revision: spec.revision.clone(),
        detail,
        offline: cfg.offline,
    };
    let repo_dir = cache::repo_dir(&cfg.cache_dir, &spec.repo);
    let commit = cache::read_ref(&repo_dir, &spec.revision)
        .ok_or_else(|| missing("no ref for the revision".into()))?;
    let dir = cache::snapshot_dir(&repo_dir, &commit);
    let names = if spec.files.is_empty() {
        cache::list_files(&dir).map_err(|e| missing(format!("cannot list the snapshot: {e}")))?
    } else {
        spec.files.iter().map(|f| f.path.clone()).collect()
    };
    if names.is_empty() {
        return Err(missing("empty snapshot".into()));
    }
    let mut files = Vec::with_capacity(names.len());
    for name in &names {
        let path = dir.join(name);
        let meta = std::fs::metadata(&path).map_err(|_| missing(format!("{name} is missing")))?;
        if let Some(want) = spec
            .files
            .iter()
            .find(|f| &f.path == name)
            .and_then(|f| f.size)
        {
            if want != meta.len() {
                return Err(missing(format!(
                    "{name} has {} bytes, expected {want}",
                    meta.len()
                )));
            }
        }
        files.push(path);
    }
    Ok(PulledModel {
        repo: spec.repo.clone(),
        commit,
        dir,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_follows_the_huggingface_environment() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("token"), "hf_from_file\n").unwrap();
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
        };
        let cfg = HubConfig::from_env(env(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")]));
        assert_eq!(cfg.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(cfg.cache_dir, PathBuf::from("/xdg/huggingface/hub"));
        assert!(!cfg.offline && cfg.token.is_none());
        let cfg = HubConfig::from_env(env(&[
            ("HOME", "/home/u"),
            ("HF_HUB_OFFLINE", "1"),
            ("HF_ENDPOINT", "http://m/"),
        ]));
        assert_eq!(
            (cfg.cache_dir.as_path(), cfg.offline),
            (Path::new("/home/u/.cache/huggingface/hub"), true)
        );
        assert_eq!(cfg.endpoint, "http://m");
        let home = tmp.path().to_string_lossy().into_owned();
        let cfg = HubConfig::from_env(|k: &str| (k == "HF_HOME").then(|| home.clone()));
        assert_eq!(cfg.cache_dir, tmp.path().join("hub"));
        assert_eq!(cfg.token.as_deref(), Some("hf_from_file"));
        assert!(!format!("{cfg:?}").contains("hf_from_file"));
        let cfg = HubConfig::from_env(|k: &str| match k {
            "HF_HOME" => Some(home.clone()),
            "HF_HUB_CACHE" => Some("/hub-cache".into()),
            "HF_TOKEN" => Some("hf_env".into()),
            _ => None,
        });
        assert_eq!(
            (cfg.cache_dir, cfg.token.as_deref()),
            (PathBuf::from("/hub-cache"), Some("hf_env"))
        );
    }

    #[test]
    fn tracker_reports_speed_over_the_window_and_eta() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut tracker = ProgressTracker::new(Duration::from_secs(1));
        let bytes = |done| ProgressEvent::Bytes {
            file: "f".into(),
            done,
            total: Some(10_000),
        };
        tracker.observe_at(
            &ProgressEvent::Planned {
                files: 1,
                total: Some(10_000),
            },
            t0,
        );
        tracker.observe_at(
            &ProgressEvent::Started {
                file: "f".into(),
                total: Some(10_000),
                resumed_from: 2_000,
            },
            t0,
        );
        for (ms, done) in [(500, 2_500), (1_000, 3_000), (2_000, 6_000), (3_000, 8_000)] {
            tracker.observe_at(&bytes(done), at(ms));
        }
        // The window keeps the last second: 6000 → 8000 bytes over 1 s.
        assert_eq!((tracker.done(), tracker.total()), (8_000, Some(10_000)));
        assert!(
            (tracker.speed() - 2_000.0).abs() < 1e-6,
            "{}",
            tracker.speed()
        );
        assert_eq!(tracker.eta(), Some(Duration::from_secs(1)));
        assert_eq!(human(1_500_000), "1.5 MB");
    }
}
