//! thumbnail: 1280×720 PNG from the most striking keyframe, with the title in the language's font.

use crate::captions::{self, AssLayout};
use crate::media::stills;
use crate::pipeline::{read_json, JobSpec, Stage, StageCtx, StageError, StageKind};

use super::model::{Keyframes, Plan, Texts};

pub struct ThumbnailStage;

pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 720;

impl Stage for ThumbnailStage {
    fn kind(&self) -> StageKind {
        StageKind::Thumbnail
    }

    fn builtin_engine(&self) -> String {
        "libass-title@1".into()
    }

    fn params(&self, _job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({ "lang": lang, "size": [WIDTH, HEIGHT] })
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let lang = ctx.lang()?;
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let texts: Texts = read_json(&ctx.input(StageKind::Translate)?.file("text.json"))?;
        let kf_art = ctx.input(StageKind::Keyframes)?;
        let kf: Keyframes = read_json(&kf_art.file("keyframes.json"))?;
        let best = kf
            .frames
            .iter()
            .max_by(|a, b| a.strength.total_cmp(&b.strength))
            .ok_or_else(|| StageError::data("keyframes.json", "has no keyframes"))?;
        let img = stills::cover(&stills::read_png(&kf_art.file(&best.file))?, WIDTH, HEIGHT);
        let mut layout = AssLayout::for_video(WIDTH, HEIGHT, lang);
        layout.font_size = 84;
        layout.bold = true;
        layout.primary = [255, 255, 255];
        layout.outline_colour = plan
            .palette
            .iter()
            .copied()
            .min_by_key(|c| c.iter().map(|&v| v as u32).sum::<u32>())
            .unwrap_or([0, 0, 0]);
        layout.outline = 6.0;
        layout.shadow = 3.0;
        layout.boxed = false;
        layout.alignment = 2;
        layout.margin_v = 56;
        let chunks = captions::chunk_text(&texts.title, lang, 24, 3);
        let lines: Vec<String> = chunks.into_iter().flatten().take(3).collect();
        let cue = captions::Cue {
            start: 0.0,
            end: 10.0,
            lines,
        };
        let ass = ctx.out.join("title.ass");
        std::fs::write(&ass, captions::to_ass(&[cue], &layout, lang))
            .map_err(|e| StageError::io(&ass, e))?;
        let out = stills::draw_ass(&img, &ass)?;
        std::fs::remove_file(&ass).map_err(|e| StageError::io(&ass, e))?;
        stills::write_png(&out, &ctx.out.join("thumbnail.png"))?;
        Ok(())
    }
}
