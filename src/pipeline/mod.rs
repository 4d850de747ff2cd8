//! The pipeline: the stage graph, the Stage trait and its context, the content-addressed
//! artifact cache and the runner that executes a job's graph.

pub mod cache;
pub mod checkpoint;
pub mod graph;
pub mod job;
pub mod runner;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::Channel;
use crate::script::Script;
pub use cache::ArtifactCache;
pub use checkpoint::StageEvent;
pub use graph::{Node, StageGraph, StageKind};

/// Output quality presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// 720 lines, libx264 superfast: quick previews and overnight batches.
    Draft,
    /// The channel's full size, libx264 medium at a lower CRF.
    Final,
    /// A 4K master: the long side 3840 pixels (3840×2160 for 16:9), CRF 18 — stills and clips
    /// reach it through the post stage's upscaler.
    Master,
}

impl Quality {
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Draft => "draft",
            Quality::Final => "final",
            Quality::Master => "master",
        }
    }

    pub fn x264_preset(self) -> &'static str {
        match self {
            Quality::Draft => "superfast",
            Quality::Final | Quality::Master => "medium",
        }
    }

    pub fn aac_coder(self) -> &'static str {
        match self {
            Quality::Draft => "fast",
            Quality::Final | Quality::Master => "twoloop",
        }
    }

    pub fn crf(self) -> u8 {
        match self {
            Quality::Draft => 23,
            Quality::Final => 19,
            Quality::Master => 18,
        }
    }
}

/// The long side of a `master` frame: 3840 (UHD 4K).
pub const MASTER_LONG_SIDE: u32 = 3840;

/// Frame geometry and encoding settings of one job, derived from script, channel and quality.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenderSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub quality: Quality,
    pub seed: u64,
    /// Vertical short size.
    pub short_width: u32,
    pub short_height: u32,
    pub short_max_seconds: f64,
    pub audio_rate: u32,
}

impl RenderSettings {
    pub fn new(script: &Script, channel: &Channel, quality: Quality, seed: u64) -> Self {
        let d = &channel.defaults;
        let (aw, ah) = script.aspect.map(|a| a.ratio()).unwrap_or((16, 9));
        // The long side of the frame follows the channel size; draft caps lines at 720.
        let long = d.width.max(d.height);
        let long = match quality {
            Quality::Draft => long.min(1280),
            Quality::Final => long,
            Quality::Master => MASTER_LONG_SIDE,
        };
        let even = |v: f64| ((v / 2.0).round() as u32).max(16) * 2;
        let (width, height) = if aw >= ah {
            (even(long as f64), even(long as f64 * ah as f64 / aw as f64))
        } else {
            (even(long as f64 * aw as f64 / ah as f64), even(long as f64))
        };
        Self {
            width,
            height,
            fps: script.fps.unwrap_or(d.output_fps),
            quality,
            seed,
            short_width: 1080,
            short_height: 1920,
            short_max_seconds: 60.0,
            audio_rate: 48_000,
        }
    }
}

/// Everything a job renders from. Only the plan stage reads `script` and `channel`; every other
/// stage reads the plan artifact and `settings`, so cache keys follow what a stage really uses.
/// It travels to stage workers as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub project: String,
    pub script_path: PathBuf,
    pub script: Script,
    pub channel: Channel,
    pub languages: Vec<String>,
    pub settings: RenderSettings,
    /// Models of the model-backed stages (`None` = their rule-based engines).
    pub models: crate::engines::models::StageModels,
}

/// A finished artifact: its key and directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    pub key: String,
    pub dir: PathBuf,
}

impl ArtifactRef {
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Why a stage failed. Messages say what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Media(#[from] crate::media::MediaError),
    #[error("{0}")]
    Engine(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Data { what: String, message: String },
    #[error("missing input `{0}` (the stage graph is wrong)")]
    MissingInput(StageKind),
    /// The GPU ran out of memory; the scheduler frees cached models and retries with back-off.
    #[error("out of GPU memory: {0}")]
    OutOfMemory(String),
}

impl StageError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn data(what: impl Into<String>, message: impl Into<String>) -> Self {
        StageError::Data {
            what: what.into(),
            message: message.into(),
        }
    }
}

/// How many sub-items (scenes, lines, loops) a stage found cached or had to make.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemStats {
    pub hits: u32,
    pub made: u32,
}

/// What a stage sees while it runs.
pub struct StageCtx<'a> {
    pub job: &'a JobSpec,
    pub lang: Option<&'a str>,
    /// Artifacts of the stages this one runs after, directly or not (same language, or shared).
    pub inputs: &'a BTreeMap<StageKind, ArtifactRef>,
    /// The directory this stage writes its artifact into (renamed into the cache when done).
    pub out: &'a Path,
    pub cancel: &'a CancellationToken,
    pub cache: &'a ArtifactCache,
    /// The GPU the scheduler placed this task on (None: CPU).
    pub device: Option<u32>,
    /// The task's artifact key (names its checkpoint directory); None outside a task.
    pub key: Option<&'a str>,
    progress: &'a (dyn Fn(f32) + Send + Sync),
    events: Option<&'a (dyn Fn(StageEvent) + Send + Sync)>,
    items: Mutex<ItemStats>,
    notes: Mutex<Vec<String>>,
}

impl<'a> StageCtx<'a> {
    pub fn new(
        job: &'a JobSpec,
        lang: Option<&'a str>,
        inputs: &'a BTreeMap<StageKind, ArtifactRef>,
        out: &'a Path,
        cancel: &'a CancellationToken,
        cache: &'a ArtifactCache,
        progress: &'a (dyn Fn(f32) + Send + Sync),
    ) -> Self {
        Self {
            job,
            lang,
            inputs,
            out,
            cancel,
            cache,
            device: None,
            key: None,
            progress,
            events: None,
            items: Mutex::new(ItemStats::default()),
            notes: Mutex::new(Vec::new()),
        }
    }

    /// Sends checkpoint and resume events to `events` (the scheduler's log and crash counting).
    pub fn with_events(mut self, events: &'a (dyn Fn(StageEvent) + Send + Sync)) -> Self {
        self.events = Some(events);
        self
    }

    /// This task's checkpoint directory (`<data>/checkpoints/<key>/`, not created): what an
    /// earlier attempt of the same task saved is there. None outside a scheduled task.
    pub fn checkpoint_dir(&self) -> Option<PathBuf> {
        self.key
            .map(|k| checkpoint::dir(&self.cache.checkpoints_root(), k))
    }

    /// Saves `bytes` as checkpoint file `name` (atomically) and reports the checkpoint as
    /// `label` (e.g. "step 12/30"). Without a checkpoint directory it does nothing.
    pub fn save_checkpoint(&self, name: &str, bytes: &[u8], label: &str) -> Result<(), StageError> {
        let Some(dir) = self.checkpoint_dir() else {
            return Ok(());
        };
        checkpoint::write_atomic(&dir, name, bytes)
            .map_err(|e| StageError::io(&dir.join(name), e))?;
        self.checkpointed(label);
        Ok(())
    }

    /// Moves the finished file `file` into the checkpoint directory as `name` (atomically, same
    /// file system: write it under [`StageCtx::out`] or the checkpoint directory) and reports
    /// the checkpoint as `label`. Without a checkpoint directory the file stays where it is
    /// and its path is returned.
    pub fn adopt_checkpoint(
        &self,
        name: &str,
        file: &Path,
        label: &str,
    ) -> Result<PathBuf, StageError> {
        let Some(dir) = self.checkpoint_dir() else {
            return Ok(file.to_path_buf());
        };
        checkpoint::adopt(&dir, name, file).map_err(|e| StageError::io(file, e))?;
        self.checkpointed(label);
        Ok(dir.join(name))
    }

    /// The checkpoint file `name` an earlier attempt saved, if any.
    pub fn load_checkpoint(&self, name: &str) -> Option<Vec<u8>> {
        checkpoint::read(&self.checkpoint_dir()?, name)
    }

    /// Reports a checkpoint whose files the stage put in place itself.
    pub fn checkpointed(&self, label: &str) {
        if let Some(ev) = self.events {
            ev(StageEvent::Checkpoint(label.to_string()));
        }
    }

    /// Reports that this attempt continues from an earlier one's checkpoint `label`.
    pub fn resumed(&self, label: &str) {
        tracing::info!("resumed from checkpoint {label}");
        if let Some(ev) = self.events {
            ev(StageEvent::Resumed(label.to_string()));
        }
    }

    pub fn input(&self, kind: StageKind) -> Result<&ArtifactRef, StageError> {
        self.inputs.get(&kind).ok_or(StageError::MissingInput(kind))
    }

    pub fn optional_input(&self, kind: StageKind) -> Option<&ArtifactRef> {
        self.inputs.get(&kind)
    }

    /// The language of a per-language stage.
    pub fn lang(&self) -> Result<&'a str, StageError> {
        self.lang
            .ok_or_else(|| StageError::data("stage", "per-language stage run without a language"))
    }

    /// Reports progress in 0..=1.
    pub fn progress(&self, fraction: f32) {
        (self.progress)(fraction.clamp(0.0, 1.0));
    }

    /// Returns `Err(Cancelled)` once the job was cancelled; call between frames, lines, steps.
    /// `Break` once the task is cancelled: for engines that poll a callback.
    pub fn flow(&self) -> std::ops::ControlFlow<()> {
        if self.cancel.is_cancelled() {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    }

    pub fn check_cancel(&self) -> Result<(), StageError> {
        if self.cancel.is_cancelled() {
            Err(StageError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// A note for the job's report (e.g. a fallback taken).
    pub fn note(&self, message: impl Into<String>) {
        if let Ok(mut n) = self.notes.lock() {
            n.push(message.into());
        }
    }

    /// A memoised sub-item (one scene's image, one line's voice): returns the directory of the
    /// cached item with `params` as key, making it with `make` when absent. Items let a stage
    /// whose inputs changed redo only the parts that changed.
    pub fn item(
        &self,
        kind: &str,
        params: &serde_json::Value,
        make: impl FnOnce(&Path) -> Result<(), StageError>,
    ) -> Result<PathBuf, StageError> {
        let key = cache::key(&serde_json::json!({ "item": kind, "params": params }));
        if let Some(dir) = self.cache.get(&key) {
            if let Ok(mut s) = self.items.lock() {
                s.hits += 1;
            }
            return Ok(dir);
        }
        let tmp = self
            .cache
            .begin(&key)
            .map_err(|e| StageError::io(self.cache.root(), e))?;
        make(tmp.path())?;
        let dir = self
            .cache
            .commit(tmp, &key, kind)
            .map_err(|e| StageError::io(self.cache.root(), e))?;
        if let Ok(mut s) = self.items.lock() {
            s.made += 1;
        }
        Ok(dir)
    }

    pub fn into_parts(self) -> (ItemStats, Vec<String>) {
        (
            self.items.into_inner().unwrap_or_default(),
            self.notes.into_inner().unwrap_or_default(),
        )
    }
}

/// What a stage task needs while it runs; the scheduler starts it only when these fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    pub cpu_slots: usize,
    pub ram_bytes: u64,
    /// GPU memory, from the model registry's estimate for the job's size; 0 for CPU engines.
    pub vram_bytes: u64,
    /// The model the task loads (tasks sharing a model prefer the device that holds it).
    pub model: Option<String>,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu_slots: 1,
            ram_bytes: 0,
            vram_bytes: 0,
            model: None,
        }
    }
}

/// One kind of pipeline stage. Implementations pick an engine and produce files in `ctx.out`.
pub trait Stage: Send + Sync {
    fn kind(&self) -> StageKind;
    /// The embedded engine that needs no weights, e.g. `procedural/ken-burns@1`.
    fn builtin_engine(&self) -> String;
    /// The engine that will run for `job` (a model when one is set up); part of the cache key.
    fn engine(&self, _job: &JobSpec) -> String {
        self.builtin_engine()
    }
    /// Parameters the output depends on besides the inputs; part of the cache key.
    fn params(&self, job: &JobSpec, lang: Option<&str>) -> serde_json::Value;
    fn run(&self, ctx: &StageCtx) -> Result<(), StageError>;
    /// What one task of this stage needs (the embedded engines: one CPU slot, no GPU).
    fn resources(&self, _job: &JobSpec) -> Resources {
        Resources::default()
    }
}

/// Reads and parses a JSON file of an artifact.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StageError> {
    let text = std::fs::read_to_string(path).map_err(|e| StageError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| StageError::data(path.display().to_string(), e.to_string()))
}

/// Writes pretty JSON (stable key order) into a file.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StageError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| StageError::data(path.display().to_string(), e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| StageError::io(path, e))
}
