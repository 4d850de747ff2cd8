//! translate: one language's texts. The script's own translations come first; texts it lacks
//! in this language are translated by the LLM when one is set up (validation lets a script
//! leave them out only then). Each translation is schema-guided JSON, checked and retried with
//! another seed; the texts the model wrote are listed in `text.json`.

use reelsmith_llm::llm::{Message, Schema};

use crate::engines::llm::{self as llm_engine, language_name, tidy, wordy, SharedLlm};
use crate::pipeline::{
    read_json, write_json, JobSpec, Resources, Stage, StageCtx, StageError, StageKind,
};
use crate::script::Localized;

use super::model::{Plan, SceneTexts, Texts};
use super::plan::{localized, stable_hash};

pub struct TranslateStage;

const BUILTIN: &str = "script-texts@1";

/// Whether the script lacks any text in `lang` that the video needs.
fn lacks(job: &JobSpec, lang: &str) -> bool {
    let s = &job.script;
    let src = s.language.as_str();
    let missing = |l: &Localized| l.get(lang, src).is_none();
    missing(&s.title)
        || s.description.as_ref().is_some_and(missing)
        || s.scenes.iter().any(|sc| {
            sc.title.as_ref().is_some_and(missing) || sc.lines.iter().any(|l| missing(&l.text))
        })
}

impl Stage for TranslateStage {
    fn kind(&self) -> StageKind {
        StageKind::Translate
    }

    fn builtin_engine(&self) -> String {
        BUILTIN.into()
    }

    fn engine(&self, job: &JobSpec) -> String {
        match &job.models.llm {
            Some(m) if job.languages.iter().any(|l| lacks(job, l)) => llm_engine::engine_id(m),
            _ => BUILTIN.into(),
        }
    }

    fn params(&self, job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        // The model matters only for a language the script doesn't fully provide.
        let llm = match (&job.models.llm, lang) {
            (Some(m), Some(l)) if lacks(job, l) => Some((&m.id, &m.fingerprint)),
            _ => None,
        };
        serde_json::json!({ "lang": lang, "llm": llm, "seed": llm.map(|_| job.settings.seed) })
    }

    fn resources(&self, job: &JobSpec) -> Resources {
        match &job.models.llm {
            Some(m) if job.languages.iter().any(|l| lacks(job, l)) => llm_engine::resources(m),
            _ => Resources::default(),
        }
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let lang = ctx.lang()?;
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let src = plan.source_language.clone();
        let mut tr = Translator::new(ctx, lang, &src)?;
        let title = tr.text(&plan.title, "title", true)?;
        let description = match &plan.description {
            Some(d) => Some(tr.text(d, "description", false)?),
            None => None,
        };
        let mut scenes = Vec::new();
        for s in &plan.scenes {
            let mut lines = Vec::new();
            for (i, l) in s.lines.iter().enumerate() {
                lines.push(tr.text(
                    &l.text,
                    &format!("scenes[{}].lines[{i}].text", s.index),
                    true,
                )?);
            }
            let title = match &s.title {
                Some(t) => Some(tr.text(t, &format!("scenes[{}].title", s.index), false)?),
                None => None,
            };
            scenes.push(SceneTexts {
                id: s.id.clone(),
                title,
                lines,
            });
        }
        write_json(
            &ctx.out.join("text.json"),
            &Texts {
                lang: lang.to_string(),
                machine_translated: tr.translated,
                title,
                description,
                scenes,
            },
        )
    }
}

/// Fills in texts: the script's, else the LLM's.
struct Translator<'c, 'a> {
    ctx: &'c StageCtx<'a>,
    lang: &'c str,
    src: &'c str,
    llm: Option<SharedLlm>,
    translated: Vec<String>,
    total: usize,
}

/// Tries per text before giving up.
const ATTEMPTS: u64 = 3;

impl<'c, 'a> Translator<'c, 'a> {
    fn new(ctx: &'c StageCtx<'a>, lang: &'c str, src: &'c str) -> Result<Self, StageError> {
        let llm = match &ctx.job.models.llm {
            Some(m) if lacks(ctx.job, lang) => {
                Some(llm_engine::load(m).map_err(|e| StageError::Engine(e.to_string()))?)
            }
            _ => None,
        };
        let s = &ctx.job.script;
        let total = 2 + s.scenes.iter().map(|sc| sc.lines.len() + 1).sum::<usize>();
        Ok(Self {
            ctx,
            lang,
            src,
            llm,
            translated: Vec::new(),
            total,
        })
    }

    /// The text of `l` in this language. `required` texts that can't be had fail the stage;
    /// optional ones fall back to the source language.
    fn text(&mut self, l: &Localized, field: &str, required: bool) -> Result<String, StageError> {
        self.ctx.check_cancel()?;
        if let Some(t) = localized(l, self.lang, self.src) {
            return Ok(t);
        }
        let source = l.source(self.src).map(str::to_string);
        let (Some(llm), Some(source)) = (self.llm.clone(), source.clone()) else {
            return match (required, source) {
                (false, Some(s)) => Ok(s),
                _ => Err(StageError::data(
                    field.to_string(),
                    format!(
                        "has no {:?} text; add it to the script or install a translation model",
                        self.lang
                    ),
                )),
            };
        };
        let t = self.translate(&llm, field, &source)?;
        self.translated.push(field.to_string());
        self.ctx
            .progress(self.translated.len() as f32 / self.total.max(1) as f32);
        Ok(t)
    }

    fn translate(&self, llm: &SharedLlm, field: &str, source: &str) -> Result<String, StageError> {
        let (from, to) = (language_name(self.src), language_name(self.lang));
        let messages = [
            Message::system(format!(
                "You translate the narration of a video from {from} to {to}. Keep the meaning, \
                 the tone and the names. Answer only with JSON: {{\"translation\": \"...\"}}"
            )),
            Message::user(source.to_string()),
        ];
        // Room for scripts that take more characters than the source.
        let max = source.chars().count() * 3 + 40;
        let schema = Schema::object([("translation", Schema::string(1, max))]);
        let words_in_source = source.split_whitespace().count();
        let mut fallback: Option<String> = None;
        let mut why = String::new();
        for attempt in 0..ATTEMPTS {
            let seed = stable_hash(&[
                &self.ctx.job.settings.seed.to_string(),
                "translate",
                self.lang,
                field,
                &attempt.to_string(),
            ]);
            let out = llm_engine::ask(llm, &messages, &schema, seed, 0.3, &mut |_| self.ctx.flow());
            self.ctx.check_cancel()?;
            let t = match out {
                Ok(o) => tidy(o.value["translation"].as_str().unwrap_or_default()),
                Err(e) => {
                    why = e;
                    continue;
                }
            };
            if !wordy(&t, 1) {
                why = format!("{t:?} is not text");
                continue;
            }
            // A sentence doesn't translate to a word: compare lengths (scripts without spaces
            // write the same thing in far fewer characters).
            let dense = |l: &str| matches!(l, "ja" | "zh");
            let ratio = t.chars().count() as f64 / source.chars().count().max(1) as f64;
            let floor = match (dense(self.src), dense(self.lang)) {
                (false, true) => 0.15,
                (true, false) => 0.8,
                _ => 0.35,
            };
            if ratio < floor {
                why = format!("{t:?} is too short for the source");
                if fallback
                    .as_ref()
                    .is_none_or(|f| f.chars().count() < t.chars().count())
                {
                    fallback = Some(t);
                }
                continue;
            }
            // A copy of the source is a failed translation unless the text is a name or two.
            if t.eq_ignore_ascii_case(source.trim()) && words_in_source > 2 {
                why = "the model copied the source".into();
                fallback.get_or_insert(t);
                continue;
            }
            return Ok(t);
        }
        match fallback {
            Some(t) => {
                self.ctx.note(format!(
                    "{field} ({}): kept a doubtful translation {t:?} after {ATTEMPTS} tries \
                     ({why}); check it or add the text to the script",
                    self.lang
                ));
                Ok(t)
            }
            None => Err(StageError::Engine(format!(
                "{field}: no usable {to} translation after {ATTEMPTS} tries ({why}); add the \
                 text to the script"
            ))),
        }
    }
}
