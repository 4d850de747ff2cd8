//! translate: one language's texts. The embedded engine takes the translations the script
//! provides (validation guarantees they exist); an LLM translator fills in missing ones.

use crate::pipeline::{read_json, write_json, JobSpec, Stage, StageCtx, StageError, StageKind};

use super::model::{Plan, SceneTexts, Texts};
use super::plan::localized;

pub struct TranslateStage;

impl Stage for TranslateStage {
    fn kind(&self) -> StageKind {
        StageKind::Translate
    }

    fn engine(&self) -> String {
        "script-texts@1".into()
    }

    fn params(&self, _job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({ "lang": lang })
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let lang = ctx.lang()?;
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let src = plan.source_language.as_str();
        let missing = |what: String| {
            StageError::data(
                what,
                format!(
                    "has no {lang:?} text; add it to the script or install a translation model"
                ),
            )
        };
        let title = localized(&plan.title, lang, src).ok_or_else(|| missing("title".into()))?;
        // Optional texts fall back to the source language rather than failing the render.
        let description = plan
            .description
            .as_ref()
            .and_then(|d| localized(d, lang, src).or_else(|| d.source(src).map(str::to_string)));
        let mut scenes = Vec::new();
        for s in &plan.scenes {
            let mut lines = Vec::new();
            for (i, l) in s.lines.iter().enumerate() {
                lines.push(
                    localized(&l.text, lang, src)
                        .ok_or_else(|| missing(format!("scenes[{}].lines[{i}].text", s.index)))?,
                );
            }
            scenes.push(SceneTexts {
                id: s.id.clone(),
                title: s.title.as_ref().and_then(|t| {
                    localized(t, lang, src).or_else(|| t.source(src).map(str::to_string))
                }),
                lines,
            });
        }
        write_json(
            &ctx.out.join("text.json"),
            &Texts {
                lang: lang.to_string(),
                title,
                description,
                scenes,
            },
        )
    }
}
