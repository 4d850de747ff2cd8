//! music: one seamless loop per mood the plan uses; the mix lays them under the voice.

use std::collections::BTreeMap;

use crate::engines::procedural::SynthEngine;
use crate::engines::MusicEngine;
use crate::media::wav;
use crate::pipeline::{read_json, write_json, JobSpec, Stage, StageCtx, StageError, StageKind};

use super::model::{Music, Plan};
use super::plan::stable_hash;
use super::voice::place;

pub struct MusicStage;

impl Stage for MusicStage {
    fn kind(&self) -> StageKind {
        StageKind::Music
    }

    fn builtin_engine(&self) -> String {
        SynthEngine.id()
    }

    fn params(&self, job: &JobSpec, _lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({ "rate": job.settings.audio_rate })
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let rate = ctx.job.settings.audio_rate;
        let engine = SynthEngine;
        let mut moods: Vec<String> = plan.scenes.iter().map(|s| s.music.clone()).collect();
        moods.sort();
        moods.dedup();
        let mut loops = BTreeMap::new();
        for (i, mood) in moods.iter().enumerate() {
            ctx.check_cancel()?;
            let seed = stable_hash(&[&ctx.job.settings.seed.to_string(), mood]);
            let params = serde_json::json!({ "engine": engine.id(), "mood": mood, "rate": rate, "seed": seed });
            let item = ctx.item("music-loop", &params, |dir| {
                let audio = engine
                    .compose_loop(mood, rate, seed)
                    .map_err(|e| StageError::Engine(e.to_string()))?;
                wav::write_f32(&dir.join("loop.wav"), &audio)?;
                Ok(())
            })?;
            let file = format!("{mood}.wav");
            place(&item.join("loop.wav"), &ctx.out.join(&file))?;
            loops.insert(mood.clone(), file);
            ctx.progress((i + 1) as f32 / moods.len() as f32);
        }
        write_json(
            &ctx.out.join("music.json"),
            &Music {
                engine: engine.id(),
                rate,
                loops,
            },
        )
    }
}
