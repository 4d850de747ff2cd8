//! analyze: the recordings of a highlights script, analysed (cached per recording content,
//! resumable chunk by chunk, see [`crate::highlights::analyze`]) and the highlights chosen —
//! or the user's edited `selection.json` checked against the recordings. Writes
//! `selection.json` and `analysis.json` (per recording: what was found, for the report and
//! `--dry-run`). A script without recordings gets an empty selection.

use std::path::{Path, PathBuf};

use crate::config::channel::HighlightDefaults;
use crate::highlights::analyze::{
    self as an, content_key, Analysis, AnalysisError, AnalysisParams, Progress,
};
use crate::highlights::select::{self, SelectParams, Selection};
use crate::media::vertical::Layout;
use crate::pipeline::{
    read_json, write_json, JobSpec, Resources, Stage, StageCtx, StageError, StageKind,
};
use crate::script::HighlightsSpec;

pub struct AnalyzeStage;

/// Everything that decides a highlights job's analysis and selection: the channel's
/// `[highlights]` with the script's `highlights:` over it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HighlightSettings {
    pub analysis: AnalysisParams,
    pub select: SelectParams,
    pub layout: Layout,
    pub commentary: bool,
    pub selection: Option<PathBuf>,
}

/// The settings of `job`.
pub fn settings(job: &JobSpec) -> HighlightSettings {
    settings_from(
        &job.channel.highlights,
        &job.script.highlights.clone().unwrap_or_default(),
        job.settings.short_max_seconds,
    )
}

/// The channel's `[highlights]` with a script's `highlights:` block over it.
pub fn settings_from(
    d: &HighlightDefaults,
    spec: &HighlightsSpec,
    short_max: f64,
) -> HighlightSettings {
    let layout = match (&spec.layout, &spec.facecam) {
        (Some(l), _) => l.clone(),
        (None, Some(cam)) => Layout::Stack {
            facecam: *cam,
            gameplay: None,
            facecam_share: 0.35,
        },
        (None, None) => d.layout.clone(),
    };
    HighlightSettings {
        analysis: AnalysisParams {
            detector: spec.detector.unwrap_or(d.detector),
            roi: spec.region.map(|r| [r.x, r.y, r.w, r.h]),
            ..AnalysisParams::default()
        },
        select: SelectParams {
            count: spec.count.unwrap_or(d.count),
            length: spec.length.unwrap_or(d.length),
            shorts: spec.shorts.unwrap_or(d.shorts),
            short_max,
            pad: d.pad,
            gap: d.gap,
            weights: d.weights.clone(),
        },
        layout,
        commentary: spec.commentary.unwrap_or(d.commentary),
        selection: spec.selection.clone(),
    }
}

/// Where analyses are kept, shared by every job and `reelsmith highlights`: `<data>/analysis`.
pub fn analysis_root(checkpoints_root: &Path) -> PathBuf {
    checkpoints_root.with_file_name("analysis")
}

/// A region of interest as fractions of the frame, from a rectangle given in fractions or
/// pixels.
pub fn roi_fractions(roi: [f64; 4], width: u32, height: u32) -> [f64; 4] {
    let frac = |v: f64, full: u32| if v <= 1.0 { v } else { v / full.max(1) as f64 };
    [
        frac(roi[0], width),
        frac(roi[1], height),
        frac(roi[2], width),
        frac(roi[3], height),
    ]
}

/// Analyses every recording (reporting progress through `progress`) and selects highlights.
pub fn analyse_all(
    recordings: &[PathBuf],
    cache_root: &Path,
    hs: &HighlightSettings,
    progress: &Progress,
) -> Result<(Vec<Analysis>, Selection), AnalysisError> {
    let mut analyses = Vec::new();
    let n = recordings.len().max(1);
    for (i, path) in recordings.iter().enumerate() {
        let info = an::check_recording(path)?;
        let mut params = hs.analysis.clone();
        params.roi = params
            .roi
            .map(|r| roi_fractions(r, info.width, info.height));
        let report = |f: f32, what: &str| (progress.report)((i as f32 + f) / n as f32, what);
        let inner = Progress {
            report: &report,
            cancelled: progress.cancelled,
            resumed: progress.resumed,
        };
        let sp = hs.select.clone();
        let windows = move |info: &_, audio: Option<&_>, keys: &[_]| {
            select::candidate_windows(info, audio, keys, &sp)
        };
        analyses.push(an::analyse(path, cache_root, &params, &windows, &inner)?);
    }
    let selection = select::select(&analyses, &hs.select);
    Ok((analyses, selection))
}

/// What `analysis.json` holds per recording: the findings, not the per-frame samples.
pub fn summary(a: &Analysis) -> serde_json::Value {
    let fps = a.info.fps.max(1.0);
    serde_json::json!({
        "path": a.path,
        "key": a.key,
        "info": a.info,
        "full_decode": a.full,
        "decoded_seconds": a.decoded_seconds,
        "cuts": a.cuts(),
        "cut_times": a.cuts().iter().map(|&c| (c as f64 / fps * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        "flashes": a.flashes(),
        "black": a.black(),
    })
}

/// Reads an edited selection and checks it against the recordings as they are now.
pub fn load_selection(
    path: &Path,
    recordings: &[PathBuf],
    short_max: f64,
) -> Result<Selection, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot be read ({e})", path.display()))?;
    let sel: Selection = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: line {}, column {}: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    if sel.recordings.len() != recordings.len() {
        return Err(format!(
            "{}: made for {} recording(s), the script has {}; make it again with `reelsmith highlights`",
            path.display(),
            sel.recordings.len(),
            recordings.len()
        ));
    }
    for (i, (r, p)) in sel.recordings.iter().zip(recordings).enumerate() {
        let key = content_key(p).map_err(|e| e.to_string())?;
        if r.key != key {
            return Err(format!(
                "{}: recordings[{i}] was made for other contents than {} (the file changed); \
                 make the selection again with `reelsmith highlights`",
                path.display(),
                p.display()
            ));
        }
    }
    sel.validate(short_max)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(sel)
}

impl Stage for AnalyzeStage {
    fn kind(&self) -> StageKind {
        StageKind::Analyze
    }

    fn builtin_engine(&self) -> String {
        format!("highlights@{}", an::ANALYSIS_VERSION)
    }

    fn params(&self, job: &JobSpec, _lang: Option<&str>) -> serde_json::Value {
        let keys: Vec<(String, String)> = job
            .script
            .recordings
            .iter()
            .map(|p| {
                (
                    p.display().to_string(),
                    content_key(p).unwrap_or_else(|e| format!("unreadable: {e}")),
                )
            })
            .collect();
        let hs = settings(job);
        let edited = hs
            .selection
            .as_ref()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default());
        serde_json::json!({
            "recordings": keys,
            "settings": hs,
            "edited": edited,
            "llm": job.models.llm.as_ref().map(|m| (&m.id, &m.fingerprint)),
        })
    }

    fn resources(&self, job: &JobSpec) -> Resources {
        job.models
            .llm
            .as_ref()
            .map(crate::engines::llm::resources)
            .unwrap_or_default()
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let job = ctx.job;
        let hs = settings(job);
        let recordings = &job.script.recordings;
        let (summaries, selection) = if recordings.is_empty() {
            (Vec::new(), select::select(&[], &hs.select))
        } else if let Some(edited) = &hs.selection {
            let sel = load_selection(edited, recordings, hs.select.short_max)
                .map_err(|m| StageError::data("highlights.selection", m))?;
            ctx.note(format!("highlights from the edited {}", edited.display()));
            (Vec::new(), sel)
        } else {
            let root = analysis_root(&ctx.cache.checkpoints_root());
            let report = |f: f32, _: &str| ctx.progress(f);
            let cancelled = || ctx.cancel.is_cancelled();
            let resumed = |what: &str| ctx.resumed(what);
            let progress = Progress {
                report: &report,
                cancelled: &cancelled,
                resumed: &resumed,
            };
            let (analyses, mut sel) =
                analyse_all(recordings, &root, &hs, &progress).map_err(|e| match e {
                    AnalysisError::Cancelled => StageError::Cancelled,
                    e => StageError::Engine(e.to_string()),
                })?;
            if let Some(m) = &job.models.llm {
                super::rank::rank_with_llm(ctx, m, &mut sel, hs.select.count)?;
            }
            (analyses.iter().map(summary).collect(), sel)
        };
        if !recordings.is_empty() && selection.highlights.is_empty() {
            return Err(StageError::data(
                "highlights",
                "no highlight was found in the recordings (all silent, black or still?)",
            ));
        }
        write_json(
            &ctx.out.join("analysis.json"),
            &serde_json::json!({ "recordings": summaries }),
        )?;
        write_json(&ctx.out.join("selection.json"), &selection)
    }
}

/// The selection an analyze artifact holds.
pub fn read_selection(dir: &Path) -> Result<Selection, StageError> {
    read_json(&dir.join("selection.json"))
}
