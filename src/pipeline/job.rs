//! A render job: validate the script against the channels and build the job, and export a
//! finished job's outputs atomically with a report. The scheduler runs it (`scheduler`), for
//! the queue and for `render` in the foreground alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::runner::{self, NodeReport, RunSummary};
use super::{JobSpec, Quality, RenderSettings, StageKind};
use crate::config::{ChannelSet, Dirs};
use crate::engines::models::StageModels;
use crate::engines::procedural::music;
use crate::script::{self, ValidateOptions};

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
    let mut script =
        script::load_text(text, &req.script, &opts).map_err(|e| JobError::Input(e.to_string()))?;
    let channel_name = script
        .channel
        .clone()
        .unwrap_or_else(|| script::DEFAULT_CHANNEL.into());
    let channel = channels
        .get(&channel_name)
        .map_err(|e| JobError::Input(format!("{}: {e}", req.script.display())))?
        .clone();
    // Where it is published: the script's block over the channel's `[publish]`.
    if script.publish.as_ref().is_some_and(|p| p.to.is_none())
        && channel.publish.as_ref().is_none_or(|c| c.to.is_none())
    {
        return Err(JobError::Input(format!(
            "{}: publish.to: name the platforms (youtube, tiktok, instagram); the channel {} \
             has no [publish] to = [...] to take them from",
            req.script.display(),
            channel.name
        )));
    }
    let own_languages = script
        .publish
        .as_ref()
        .is_some_and(|p| !p.languages.is_empty());
    script.publish =
        script::PublishSpec::resolve(script.publish.as_ref(), channel.publish.as_ref());
    if let Some((field, message)) = script.publish.as_ref().and_then(script::publish_problem) {
        return Err(JobError::Input(format!(
            "{}: publish.{field}: {message} (the script's publish: block over the channel {}'s \
             [publish])",
            req.script.display(),
            channel.name
        )));
    }
    let rendered = script.languages.clone();
    if let Some(p) = &mut script.publish {
        if own_languages {
            if let Some(i) = p.languages.iter().position(|l| !rendered.contains(l)) {
                return Err(JobError::Input(format!(
                    "{}: publish.languages[{i}]: {} is not rendered (languages: {}); publish \
                     only rendered languages",
                    req.script.display(),
                    p.languages[i],
                    rendered.join(", ")
                )));
            }
        } else if !p.languages.is_empty() {
            // The channel's languages: those this script renders.
            let wanted = std::mem::take(&mut p.languages);
            p.languages = wanted
                .iter()
                .filter(|l| rendered.contains(l))
                .cloned()
                .collect();
            if p.languages.is_empty() {
                return Err(JobError::Input(format!(
                    "{}: the channel {} publishes only {} and the script renders {}: add \
                     `publish: {{languages: [...]}}` or `publish: {{to: []}}` to the script",
                    req.script.display(),
                    channel.name,
                    wanted.join(", "),
                    rendered.join(", ")
                )));
            }
        }
    }
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
    /// The characters that depict real people, as consent records name them (publishing
    /// needs a consent record for each).
    real_people: Vec<&'a str>,
    /// The script's `publish:` block (where the video goes by itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    publish: Option<&'a crate::script::PublishSpec>,
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
        // Every short of a highlights job (short.mp4 is the best of them).
        let shorts = art(StageKind::Shorts)?.file("shorts");
        if shorts.is_dir() {
            let mut names: Vec<PathBuf> = std::fs::read_dir(&shorts)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
                .collect();
            names.sort();
            if !names.is_empty() {
                std::fs::create_dir_all(dir.join("shorts"))?;
            }
            for p in names {
                if let Some(n) = p.file_name() {
                    copy_atomic(&p, &dir.join("shorts").join(n))?;
                }
            }
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
    // The highlights a job chose, to edit and render again from (`highlights.selection`).
    if let Some(a) = summary.artifact(StageKind::Analyze, None) {
        let sel = a.file("selection.json");
        if sel.is_file() {
            copy_atomic(&sel, &project_dir.join("selection.json"))?;
        }
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
        real_people: job
            .script
            .characters
            .iter()
            .filter(|c| c.real_person)
            .map(|c| c.person())
            .collect(),
        publish: job.script.publish.as_ref(),
    };
    let path = project_dir.join("report.json");
    let tmp = project_dir.join("report.json.part");
    let text = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, &path)?;
    Ok((outputs, path))
}
