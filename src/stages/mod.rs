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
use crate::pipeline::Stage;

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
