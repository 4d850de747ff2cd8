//! One file per stage. Each picks an engine, reads its inputs' artifacts and writes its own.

pub mod align;
pub mod analyze;
pub mod animate;
pub mod assemble;
pub mod captions;
pub mod keyframes;
pub mod metadata;
pub mod mix;
pub mod model;
pub mod music;
pub mod plan;
pub mod post;
pub mod rank;
pub mod recorded;
pub mod recorded_shorts;
pub mod shorts;
pub mod thumbnail;
pub mod translate;
pub mod voice;

use std::sync::Arc;

use crate::pipeline::runner::Stages;
use crate::pipeline::{Stage, StageKind};

/// Every stage implementation, by kind.
pub fn registry() -> Stages {
    let all: Vec<Arc<dyn Stage>> = vec![
        Arc::new(analyze::AnalyzeStage),
        Arc::new(plan::PlanStage),
        Arc::new(translate::TranslateStage),
        Arc::new(keyframes::KeyframesStage),
        Arc::new(animate::AnimateStage),
        Arc::new(post::PostStage),
        Arc::new(voice::VoiceStage),
        Arc::new(align::AlignStage),
        Arc::new(captions::CaptionsStage),
        Arc::new(music::MusicStage),
        Arc::new(mix::MixStage),
        Arc::new(assemble::AssembleStage),
        Arc::new(shorts::ShortsStage),
        Arc::new(metadata::MetadataStage),
        Arc::new(thumbnail::ThumbnailStage),
    ];
    all.into_iter().map(|s| (s.kind(), s)).collect()
}

/// A stage that does nothing: what is left is the scheduler's own cost (`bench queue`). With
/// `gpu`, it declares 1 GiB of GPU memory (model `noop-model`) and writes where it ran
/// (`where.json`: GPU index, process id, the worker's own GPU) into its artifact, so tests and
/// benchmarks can follow GPU placement through the workers.
struct Noop {
    kind: StageKind,
    gpu: bool,
}

impl Stage for Noop {
    fn kind(&self) -> StageKind {
        self.kind
    }
    fn builtin_engine(&self) -> String {
        "noop@1".into()
    }
    fn params(&self, job: &crate::pipeline::JobSpec, lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({ "lang": lang, "seed": job.settings.seed })
    }
    fn run(&self, ctx: &crate::pipeline::StageCtx) -> Result<(), crate::pipeline::StageError> {
        if self.gpu {
            let path = ctx.out.join("where.json");
            let here = serde_json::json!({
                "device": ctx.device,
                "pid": std::process::id(),
                "worker_gpu": std::env::var(crate::scheduler::worker::WORKER_GPU_ENV).ok(),
            });
            crate::pipeline::write_json(&path, &here)?;
        }
        Ok(())
    }
    fn resources(&self, _job: &crate::pipeline::JobSpec) -> crate::pipeline::Resources {
        crate::pipeline::Resources {
            vram_bytes: if self.gpu { 1 << 30 } else { 0 },
            model: self.gpu.then(|| "noop-model".to_string()),
            ..Default::default()
        }
    }
}

/// Every stage kind as a no-op; with `gpu`, keyframes and animate need a GPU.
pub fn noop_registry(gpu: bool) -> Stages {
    StageKind::ALL
        .into_iter()
        .map(|kind| {
            let gpu = gpu && matches!(kind, StageKind::Keyframes | StageKind::Animate);
            (kind, Arc::new(Noop { kind, gpu }) as Arc<dyn Stage>)
        })
        .collect()
}

/// The registry a worker started with `--stages name` runs: `default`, `noop` or `noop-gpu`.
pub fn registry_named(name: &str) -> Option<Stages> {
    match name {
        "default" => Some(registry()),
        "noop" => Some(noop_registry(false)),
        "noop-gpu" => Some(noop_registry(true)),
        _ => None,
    }
}
