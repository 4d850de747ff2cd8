//! The embedded default engines: no weights, CPU only, deterministic.

pub mod espeak;
pub mod kenburns;
pub mod music;
pub mod paint;
pub mod post;

use super::{EngineError, ImageEngine, ImageRequest, MusicEngine};
use crate::media::image::RgbImage;
use crate::media::wav::Audio;

/// Procedural keyframes in the channel's look.
pub struct PaintEngine;

impl ImageEngine for PaintEngine {
    fn id(&self) -> String {
        "procedural/paint@1".into()
    }

    fn generate(&self, req: &ImageRequest) -> Result<RgbImage, EngineError> {
        let look = paint::Look::parse(&req.look).ok_or_else(|| EngineError::Failed {
            engine: self.id(),
            message: format!("unknown look `{}`", req.look),
        })?;
        Ok(paint::paint(&paint::PaintSpec {
            width: req.width,
            height: req.height,
            look,
            palette: &req.palette,
            seed: req.seed,
            scene_index: req.scene_index,
            scene_count: req.scene_count,
            motifs: &req.motifs,
        }))
    }
}

/// Synthesised music loops.
pub struct SynthEngine;

impl MusicEngine for SynthEngine {
    fn id(&self) -> String {
        "procedural/synth@1".into()
    }

    fn compose_loop(&self, mood: &str, rate: u32, seed: u64) -> Result<Audio, EngineError> {
        let samples =
            music::synthesize_loop(mood, rate, seed).map_err(|e| EngineError::Failed {
                engine: self.id(),
                message: e.to_string(),
            })?;
        Ok(Audio {
            rate,
            channels: 2,
            samples,
        })
    }
}
