//! A render job end to end: validate the script against the channels, run the graph, record
//! every state change in the store, and export the outputs atomically with a report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::runner::{self, NodeReport, NodeStatus, RunEvent, RunSummary};
use super::{ArtifactCache, JobSpec, Quality, RenderSettings, StageKind};
use crate::config::{ChannelSet, Dirs};
use crate::engines::models::StageModels;
use crate::engines::procedural::music;
use crate::script::{self, ValidateOptions};
use crate::store::{EventLevel, JobStatus, Store, TaskStatus};

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct RenderRequest {
    pub script: PathBuf,
    pub channel: Option<String>,
    pub languages: Option<Vec<String>>,
    pub out: PathBuf,
    pub quality: Quality,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Bad input: the script, a channel, an option. Exit code 2; nothing was written.
    #[error("{0}")]
    Input(String),
    /// The render ran and failed.
    #[error("{0}")]
    Failed(String),
}

impl JobError {
    pub fn exit_code(&self) -> i32 {
        match self {
            JobError::Input(_) => 2,
            JobError::Failed(_) => 1,
        }
    }
}

/// A lower-case file-name-safe slug.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "video".into()
    } else {
        out
    }
}

/// Loads channels and the script, validates everything the render will rely on, and builds the
/// job. Every problem here is the user's input: `JobError::Input`.
pub fn prepare(req: &RenderRequest, dirs: &Dirs) -> Result<JobSpec, JobError> {
    let channels =
        ChannelSet::load(Some(&dirs.config)).map_err(|e| JobError::Input(e.to_string()))?;
    let text = script::read_text(&req.script).map_err(|e| JobError::Input(e.to_string()))?;
    let models = StageModels::resolve(dirs).map_err(JobError::Input)?;
    prepare_text(req, &text, &channels, &models)
}

/// Like [`prepare`], for script text read earlier from `req.script` (a queued job's snapshot;
/// relative paths in it still resolve against the script's directory).
pub fn prepare_text(
    req: &RenderRequest,
    text: &str,
    channels: &ChannelSet,
    models: &StageModels,
) -> Result<JobSpec, JobError> {
    let names = channels.names();
    let opts = ValidateOptions {
        known_channels: &names,
        channel_override: req.channel.as_deref(),
        languages_override: req.languages.as_deref(),
        machine_translation: models.llm.is_some(),
    };
    let script =
        script::load_text(text, &req.script, &opts).map_err(|e| JobError::Input(e.to_string()))?;
    let channel_name = script
        .channel
        .clone()
        .unwrap_or_else(|| script::DEFAULT_CHANNEL.into());
    let channel = channels
        .get(&channel_name)
        .map_err(|e| JobError::Input(format!("{}: {e}", req.script.display())))?
        .clone();
    for (i, s) in script.scenes.iter().enumerate() {
        if let Some(m) = &s.music {
            if !music::moods().contains(&m.as_str()) {
                return Err(JobError::Input(format!(
                    "{}: scenes[{i}].music: unknown mood `{m}`; use one of: {}",
                    req.script.display(),
                    music::moods().join(", ")
                )));
            }
        }
    }
    let settings = RenderSettings::new(&script, &channel, req.quality, req.seed);
    let project = req
        .script
        .file_stem()
        .map(|s| slug(&s.to_string_lossy()))
        .unwrap_or_else(|| "video".into());
    Ok(JobSpec {
        project,
        script_path: std::fs::canonicalize(&req.script).unwrap_or_else(|_| req.script.clone()),
        languages: script.languages.clone(),
        script,
        channel,
        settings,
        models: models.clone(),
    })
}

/// Files produced for one language.
#[derive(Clone, Debug, Serialize)]
pub struct LanguageOutputs {
    pub final_mp4: PathBuf,
    pub short_mp4: PathBuf,
    pub captions_srt: PathBuf,
    pub captions_vtt: PathBuf,
    pub metadata_json: PathBuf,
    pub thumbnail_png: PathBuf,
}

/// The outcome of a render.
#[derive(Clone, Debug)]
pub struct RenderOutcome {
    pub project_dir: PathBuf,
    pub report: PathBuf,
    pub outputs: BTreeMap<String, LanguageOutputs>,
    pub summary: RunSummary,
}

/// Something to tell the user while the job runs.
pub trait Progress: Send {
    fn event(&mut self, event: &RunEvent);
}

/// Copies `src` to `dst` through a temp file in the same directory, so `dst` is whole or absent.
fn copy_atomic(src: &Path, dst: &Path) -> std::io::Result<()> {
    let tmp = dst.with_extension(format!(
        "{}.part",
        dst.extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    std::fs::copy(src, &tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dst)
}

#[derive(Serialize)]
struct Report<'a> {
    reelsmith: &'static str,
    pipeline_version: u32,
    project: &'a str,
    script: &'a Path,
    channel: &'a str,
    languages: &'a [String],
    settings: &'a RenderSettings,
    seconds: f64,
    stages: &'a [NodeReport],
    outputs: &'a BTreeMap<String, LanguageOutputs>,
    /// Per scene: the seed, prompt, motion and mood the plan chose.
    scenes: Vec<serde_json::Value>,
    timelines: BTreeMap<String, serde_json::Value>,
    mixes: BTreeMap<String, serde_json::Value>,
    /// Engines that voiced each language (`piper/ID`, or espeak-ng when no voice is installed).
    voices: BTreeMap<String, Vec<String>>,
}

/// Runs the job: records it in the store, runs the graph, exports outputs and the report.
pub async fn execute(
    job: JobSpec,
    dirs: &Dirs,
    out_root: &Path,
    parallelism: usize,
    cancel: CancellationToken,
    mut progress: Box<dyn Progress>,
) -> Result<RenderOutcome, JobError> {
    let failed = |m: String| JobError::Failed(m);
    std::fs::create_dir_all(&dirs.data)
        .map_err(|e| failed(format!("{}: {e}", dirs.data.display())))?;
    let store = Store::open(&dirs.db_path()).map_err(|e| failed(e.to_string()))?;
    let cache = Arc::new(
        ArtifactCache::open(&dirs.artifacts(), &dirs.tmp())
            .map_err(|e| failed(format!("{}: {e}", dirs.artifacts().display())))?,
    );
    let graph = job
        .channel
        .graph()
        .map_err(|e| JobError::Input(format!("channel {}: {e}", job.channel.name)))?;
    let project_id = store
        .upsert_project(
            &job.project,
            &job.script_path.to_string_lossy(),
            &job.channel.name,
        )
        .map_err(|e| failed(e.to_string()))?;
    let project_dir = out_root.join(&job.project);
    let params = serde_json::json!({
        "languages": job.languages, "quality": job.settings.quality, "seed": job.settings.seed,
    });
    let job_id = store
        .create_job(
            project_id,
            "render",
            &params,
            &project_dir.to_string_lossy(),
            0,
            JobStatus::Running,
        )
        .map_err(|e| failed(e.to_string()))?;
    let mut tasks = BTreeMap::new();
    for (node, _) in graph.expand(&job.languages) {
        let id = store
            .upsert_task(
                job_id,
                &node.name(),
                node.kind.as_str(),
                node.lang.as_deref(),
            )
            .map_err(|e| failed(e.to_string()))?;
        tasks.insert(node.name(), id);
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    let job = Arc::new(job);
    let stages = crate::stages::registry();
    let run = {
        let job = job.clone();
        let cache = cache.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            runner::run(job, &graph, &stages, cache, parallelism, cancel, tx).await
        })
    };
    // The single writer of this job's state: every event goes to the store, then to the user.
    let mut last_progress: BTreeMap<String, Instant> = BTreeMap::new();
    while let Some(ev) = rx.recv().await {
        let res = match &ev {
            RunEvent::Planned { .. } => Ok(()),
            RunEvent::Started { node, engine } => match tasks.get(node) {
                Some(&t) => store.task_started(t, engine),
                None => Ok(()),
            },
            RunEvent::Progress { node, fraction } => {
                let due = last_progress
                    .get(node)
                    .is_none_or(|t| t.elapsed().as_secs_f64() >= 1.0);
                match (due, tasks.get(node)) {
                    (true, Some(&t)) => {
                        last_progress.insert(node.clone(), Instant::now());
                        store.task_progress(t, *fraction as f64)
                    }
                    _ => Ok(()),
                }
            }
            RunEvent::Finished(r) => {
                let status = match r.status {
                    NodeStatus::Done => TaskStatus::Done,
                    NodeStatus::Cached => TaskStatus::Cached,
                    NodeStatus::Failed => TaskStatus::Failed,
                    NodeStatus::Cancelled => TaskStatus::Cancelled,
                    NodeStatus::Skipped => TaskStatus::Skipped,
                };
                let t = tasks.get(&r.node).copied();
                let mut res = Ok(());
                if let Some(t) = t {
                    let key = matches!(r.status, NodeStatus::Done | NodeStatus::Cached)
                        .then_some(r.key.as_str());
                    res = store.task_finished(
                        t,
                        status,
                        key,
                        r.error.as_deref(),
                        (r.seconds * 1000.0) as i64,
                    );
                }
                if r.status == NodeStatus::Done {
                    if let Some(dir) = cache.get(&r.key) {
                        let bytes = super::cache::dir_size(&dir).unwrap_or(0);
                        res =
                            res.and_then(|_| store.record_artifact(&r.key, r.kind.as_str(), bytes));
                    }
                }
                for n in &r.notes {
                    res = res.and_then(|_| store.add_event(Some(job_id), t, EventLevel::Warn, n));
                }
                if let Some(e) = &r.error {
                    if r.status == NodeStatus::Failed {
                        res = res.and_then(|_| {
                            store.add_event(
                                Some(job_id),
                                t,
                                EventLevel::Error,
                                &format!("{}: {e}", r.node),
                            )
                        });
                    }
                }
                res
            }
        };
        if let Err(e) = res {
            tracing::error!("store: {e}");
        }
        progress.event(&ev);
    }
    let summary = run
        .await
        .map_err(|e| failed(format!("the pipeline task was lost: {e}")))?
        .map_err(|e| failed(e.to_string()))?;

    let problems: Vec<String> = summary
        .failed()
        .iter()
        .map(|n| format!("{}: {}", n.node, n.error.clone().unwrap_or_default()))
        .collect();
    if !problems.is_empty() {
        let cancelled = cancel.is_cancelled();
        let msg = if cancelled {
            "cancelled; run the same command again to resume (finished stages are kept)".to_string()
        } else {
            problems.join("\n")
        };
        let _ = store.set_job_status(
            job_id,
            if cancelled {
                JobStatus::Cancelled
            } else {
                JobStatus::Failed
            },
            Some(&msg),
        );
        return Err(failed(msg));
    }

    // Export: every file lands whole (temp name, then rename); the report goes last.
    let exported = export(&job, &summary, &project_dir)
        .map_err(|e| failed(format!("exporting to {}: {e}", project_dir.display())));
    let (outputs, report) = match exported {
        Ok(v) => v,
        Err(e) => {
            let _ = store.set_job_status(job_id, JobStatus::Failed, Some(&e.to_string()));
            return Err(e);
        }
    };
    store
        .set_job_status(job_id, JobStatus::Done, None)
        .map_err(|e| failed(e.to_string()))?;
    Ok(RenderOutcome {
        project_dir,
        report,
        outputs,
        summary,
    })
}

/// Copies a finished job's outputs into `<out>/<project>/<lang>/` and writes `report.json`.
pub fn export(
    job: &JobSpec,
    summary: &RunSummary,
    project_dir: &Path,
) -> std::io::Result<(BTreeMap<String, LanguageOutputs>, PathBuf)> {
    let missing = |what: &str| {
        std::io::Error::new(std::io::ErrorKind::NotFound, format!("no {what} artifact"))
    };
    let mut outputs = BTreeMap::new();
    let mut timelines = BTreeMap::new();
    let mut mixes = BTreeMap::new();
    let mut voices = BTreeMap::new();
    for lang in &job.languages {
        let dir = project_dir.join(lang);
        std::fs::create_dir_all(&dir)?;
        let art = |k: StageKind| {
            summary
                .artifact(k, Some(lang))
                .ok_or_else(|| missing(k.as_str()))
        };
        let files = [
            (StageKind::Assemble, "final.mp4"),
            (StageKind::Shorts, "short.mp4"),
            (StageKind::Captions, "captions.srt"),
            (StageKind::Captions, "captions.vtt"),
            (StageKind::Metadata, "metadata.json"),
            (StageKind::Thumbnail, "thumbnail.png"),
        ];
        for (kind, name) in files {
            copy_atomic(&art(kind)?.file(name), &dir.join(name))?;
        }
        let read = |p: PathBuf| -> serde_json::Value {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(serde_json::Value::Null)
        };
        timelines.insert(
            lang.clone(),
            read(art(StageKind::Align)?.file("timeline.json")),
        );
        mixes.insert(lang.clone(), read(art(StageKind::Mix)?.file("mix.json")));
        // Which engines spoke this language (a Piper voice, or the espeak-ng fallback).
        let voice = read(art(StageKind::Voice)?.file("voice.json"));
        let mut engines: Vec<String> = voice["lines"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|x| x["engine"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        engines.sort();
        engines.dedup();
        voices.insert(lang.clone(), engines);
        outputs.insert(
            lang.clone(),
            LanguageOutputs {
                final_mp4: dir.join("final.mp4"),
                short_mp4: dir.join("short.mp4"),
                captions_srt: dir.join("captions.srt"),
                captions_vtt: dir.join("captions.vtt"),
                metadata_json: dir.join("metadata.json"),
                thumbnail_png: dir.join("thumbnail.png"),
            },
        );
    }
    let plan = summary
        .artifact(StageKind::Plan, None)
        .and_then(|a| std::fs::read_to_string(a.file("plan.json")).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    let scenes = plan["scenes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    serde_json::json!({
                        "id": s["id"], "seed": s["seed"], "prompt": s["prompt"],
                        "motion": s["motion"], "music": s["music"], "transition": s["transition"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let report = Report {
        reelsmith: env!("CARGO_PKG_VERSION"),
        pipeline_version: runner::PIPELINE_VERSION,
        project: &job.project,
        script: &job.script_path,
        channel: &job.channel.name,
        languages: &job.languages,
        settings: &job.settings,
        seconds: summary.seconds,
        stages: &summary.nodes,
        outputs: &outputs,
        scenes,
        timelines,
        mixes,
        voices,
    };
    let path = project_dir.join("report.json");
    let tmp = project_dir.join("report.json.part");
    let text = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, &path)?;
    Ok((outputs, path))
}
