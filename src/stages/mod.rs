//! One file per stage. Each picks an engine, reads its inputs' artifacts and writes its own.

pub mod align;
pub mod animate;
pub mod assemble;
pub mod captions;
pub mod keyframes;
pub mod metadata;
pub mod mix;
pub mod model;
pub mod music;
pub mod plan;
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
        Arc::new(plan::PlanStage),
        Arc::new(translate::TranslateStage),
        Arc::new(keyframes::KeyframesStage),
        Arc::new(animate::AnimateStage),
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

/// A stage that does nothing: what is left is the scheduler's own cost (`bench queue`).
struct Noop(StageKind);

impl Stage for Noop {
    fn kind(&self) -> StageKind {
        self.0
    }
    fn builtin_engine(&self) -> String {
        "noop@1".into()
    }
    fn params(&self, job: &crate::pipeline::JobSpec, lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({ "lang": lang, "seed": job.settings.seed })
    }
    fn run(&self, _ctx: &crate::pipeline::StageCtx) -> Result<(), crate::pipeline::StageError> {
        Ok(())
    }
}

/// Every stage kind as a no-op.
pub fn noop_registry() -> Stages {
    StageKind::ALL
        .into_iter()
        .map(|k| (k, Arc::new(Noop(k)) as Arc<dyn Stage>))
        .collect()
}

/// The registry a worker started with `--stages name` runs: `default` or `noop`.
pub fn registry_named(name: &str) -> Option<Stages> {
    match name {
        "default" => Some(registry()),
        "noop" => Some(noop_registry()),
        _ => None,
    }
}
