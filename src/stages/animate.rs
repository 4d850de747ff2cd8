//! animate: how each still moves. The embedded engine plans a Ken Burns camera move from the
//! scene's motion hint; the frames are drawn at assembly, exactly at the output rate.

use crate::engines::procedural::kenburns::KenBurns;
use crate::engines::VideoEngine;
use crate::media::image::RgbImage;
use crate::pipeline::{read_json, write_json, JobSpec, Stage, StageCtx, StageError, StageKind};

use super::model::{Clips, Plan, SceneClip};

pub struct AnimateStage;

impl Stage for AnimateStage {
    fn kind(&self) -> StageKind {
        StageKind::Animate
    }

    fn builtin_engine(&self) -> String {
        KenBurns.id()
    }

    fn params(&self, _job: &JobSpec, _lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({})
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let engine = KenBurns;
        // The camera engine does not look at pixels; a model engine reads the keyframe files.
        let still = RgbImage::new(1, 1);
        let mut clips = Vec::new();
        for s in &plan.scenes {
            let clip = engine
                .animate(&still, &s.motion, s.seed)
                .map_err(|e| StageError::Engine(format!("scene `{}`: {e}", s.id)))?;
            clips.push(SceneClip {
                scene: s.index,
                clip,
                blend_out: s.transition,
                blend_seconds: s.transition_seconds,
                morph: None,
            });
        }
        write_json(
            &ctx.out.join("clips.json"),
            &Clips {
                engine: engine.id(),
                clips,
            },
        )
    }
}
