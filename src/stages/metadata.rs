//! metadata: YouTube-ready title, description with chapters, and tags, per language. The rules
//! build them from the script; with an LLM set up, the model also writes (in the language) a
//! description when the script has none, extra tags, and alternative titles.

use reelsmith_llm::llm::{Message, Schema};

use crate::engines::llm::{self as llm_engine, language_name, tidy, wordy};
use crate::pipeline::{
    read_json, write_json, JobSpec, Resources, Stage, StageCtx, StageError, StageKind,
};

use super::model::{Chapter, Metadata, Plan, Texts, Timeline};

pub struct MetadataStage;

/// `M:SS` or `H:MM:SS`, as YouTube reads chapter timestamps.
pub fn timestamp(seconds: f64) -> String {
    let t = seconds.max(0.0).floor() as u64;
    let (h, m, s) = (t / 3600, (t / 60) % 60, t % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// A short chapter title from a text: its first clause, at most ~48 characters.
fn headline(text: &str) -> String {
    let first = text
        .split(['.', '!', '?', '。', '！', '？', '؟', '।'])
        .next()
        .unwrap_or(text)
        .trim();
    let mut out: String = first.chars().take(48).collect();
    if first.chars().count() > 48 {
        if let Some(i) = out.rfind(' ') {
            out.truncate(i);
        }
        out.push('…');
    }
    out
}

/// YouTube shows chapters only if the first starts at 0:00, there are at least three, and each
/// lasts at least ten seconds.
pub fn youtube_accepts(chapters: &[Chapter], total: f64) -> bool {
    chapters.len() >= 3
        && chapters.first().is_some_and(|c| c.start == 0.0)
        && chapters.iter().enumerate().all(|(i, c)| {
            let end = chapters.get(i + 1).map(|n| n.start).unwrap_or(total);
            end - c.start >= 10.0
        })
}

fn category(channel: &str) -> &'static str {
    match channel {
        "gaming" => "Gaming",
        "explainer" => "Education",
        _ => "Film & Animation",
    }
}

impl Stage for MetadataStage {
    fn kind(&self) -> StageKind {
        StageKind::Metadata
    }

    fn builtin_engine(&self) -> String {
        RULES.into()
    }

    fn engine(&self, job: &JobSpec) -> String {
        match &job.models.llm {
            Some(m) => llm_engine::engine_id(m),
            None => RULES.into(),
        }
    }

    fn params(&self, job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        let llm = job.models.llm.as_ref().map(|m| (&m.id, &m.fingerprint));
        serde_json::json!({ "lang": lang, "llm": llm, "seed": llm.map(|_| job.settings.seed) })
    }

    fn resources(&self, job: &JobSpec) -> Resources {
        job.models
            .llm
            .as_ref()
            .map(llm_engine::resources)
            .unwrap_or_default()
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let lang = ctx.lang()?;
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let texts: Texts = read_json(&ctx.input(StageKind::Translate)?.file("text.json"))?;
        let timeline: Timeline = read_json(&ctx.input(StageKind::Align)?.file("timeline.json"))?;
        let mut chapters = Vec::new();
        for (i, slot) in timeline.scenes.iter().enumerate() {
            let st = texts.scenes.get(i);
            let title = st
                .and_then(|s| s.title.clone())
                .or_else(|| st.and_then(|s| s.lines.first()).map(|l| headline(l)))
                .unwrap_or_else(|| format!("{}", i + 1));
            chapters.push(Chapter {
                start: slot.start,
                timestamp: timestamp(slot.start),
                title,
            });
        }
        let youtube_chapters = youtube_accepts(&chapters, timeline.total);
        let written = match &ctx.job.models.llm {
            Some(_) => write(ctx, lang, &plan, &texts)?,
            None => None,
        };
        let mut description = texts
            .description
            .clone()
            .or_else(|| written.as_ref().and_then(|w| w.description.clone()))
            .unwrap_or_else(|| texts.title.clone());
        if youtube_chapters {
            description.push_str("\n\n");
            for c in &chapters {
                description.push_str(&format!("{} {}\n", c.timestamp, c.title));
            }
        }
        // Tags: at most 500 characters in all, as YouTube allows.
        let mut tags = Vec::new();
        let mut budget = 500usize;
        let more = written.as_ref().map(|w| w.tags.clone()).unwrap_or_default();
        for t in plan.tags.iter().chain(&more) {
            let cost = t.chars().count() + 1;
            if cost <= budget && !tags.iter().any(|x: &String| x.eq_ignore_ascii_case(t)) {
                budget -= cost;
                tags.push(t.clone());
            }
        }
        let hashtags: Vec<String> = tags
            .iter()
            .take(3)
            .map(|t| format!("#{}", t.replace(' ', "")))
            .collect();
        if !hashtags.is_empty() {
            description.push('\n');
            description.push_str(&hashtags.join(" "));
        }
        // Titles are limited to 100 characters.
        let title: String = texts.title.chars().take(100).collect();
        let title_alternatives: Vec<String> = written
            .as_ref()
            .map(|w| w.titles.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !t.eq_ignore_ascii_case(&title))
            .collect();
        write_json(
            &ctx.out.join("metadata.json"),
            &Metadata {
                lang: lang.to_string(),
                title,
                title_alternatives,
                writer: self.engine(ctx.job),
                description: description.trim_end().to_string(),
                tags,
                chapters,
                youtube_chapters,
                duration: timeline.total,
                category: category(&plan.channel).into(),
                default_language: lang.to_string(),
            },
        )
    }
}

const RULES: &str = "rules/metadata@1";
const ATTEMPTS: u64 = 3;

/// What the LLM wrote for one language.
struct Written {
    description: Option<String>,
    tags: Vec<String>,
    titles: Vec<String>,
}

/// Asks the LLM for a description, tags and titles in `lang`; `None` (with a note) when it gave
/// nothing usable, so the rules' metadata stands.
fn write(
    ctx: &StageCtx,
    lang: &str,
    plan: &Plan,
    texts: &Texts,
) -> Result<Option<Written>, StageError> {
    let Some(m) = &ctx.job.models.llm else {
        return Ok(None);
    };
    let llm = llm_engine::load(m).map_err(|e| StageError::Engine(e.to_string()))?;
    let mut story: String = texts
        .scenes
        .iter()
        .flat_map(|s| s.lines.iter())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    if story.chars().count() > 800 {
        story = story.chars().take(800).collect::<String>() + "…";
    }
    let language = language_name(lang);
    let messages = [
        Message::system(format!(
            "You write YouTube metadata in {language} for a {} video: a description of two or \
             three sentences that makes people want to watch, search tags, and catchy titles. \
             Answer only with JSON like {{\"description\": \"...\", \"tags\": [\"...\"], \
             \"titles\": [\"...\"]}}",
            plan.channel
        )),
        Message::user(format!("Title: {}\nStory: {story}", texts.title)),
    ];
    let schema = Schema::object([
        ("description", Schema::string(40, 500)),
        ("tags", Schema::array(Schema::string(2, 30), 3, 8)),
        ("titles", Schema::array(Schema::string(8, 90), 1, 3)),
    ]);
    let engine_id = llm_engine::engine_id(m);
    let mut why = String::new();
    for attempt in 0..ATTEMPTS {
        ctx.check_cancel()?;
        let seed = super::plan::stable_hash(&[
            &ctx.job.settings.seed.to_string(),
            "metadata",
            lang,
            &attempt.to_string(),
        ]);
        let out = llm_engine::ask(&llm, &messages, &schema, seed, 0.7, &mut |n| {
            ctx.progress(n as f32 / 200.0);
            ctx.flow()
        });
        ctx.check_cancel()?;
        let v = match out {
            Ok(o) => o.value,
            Err(e) => {
                why = e;
                continue;
            }
        };
        let list = |k: &str, min_words: usize| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for t in v[k].as_array().into_iter().flatten() {
                let t = tidy(t.as_str().unwrap_or_default())
                    .trim_start_matches('#')
                    .to_string();
                if wordy(&t, min_words) && !out.iter().any(|x| x.eq_ignore_ascii_case(&t)) {
                    out.push(t);
                }
            }
            out
        };
        let description = tidy(v["description"].as_str().unwrap_or_default());
        let tags = list("tags", 1);
        if texts.description.is_none() && !wordy(&description, 5) {
            why = format!("description {description:?} is not prose");
            ctx.note(format!(
                "{engine_id} ({lang}): attempt {}: {why}; retrying",
                attempt + 1
            ));
            continue;
        }
        if tags.is_empty() {
            why = "no usable tags".into();
            ctx.note(format!(
                "{engine_id} ({lang}): attempt {}: {why}; retrying",
                attempt + 1
            ));
            continue;
        }
        return Ok(Some(Written {
            description: wordy(&description, 5).then_some(description),
            tags,
            titles: list("titles", 2),
        }));
    }
    ctx.note(format!(
        "{engine_id} ({lang}) gave no usable metadata after {ATTEMPTS} tries ({why}); the \
         rule-based metadata stands"
    ));
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_like_youtube() {
        assert_eq!(timestamp(0.0), "0:00");
        assert_eq!(timestamp(65.9), "1:05");
        assert_eq!(timestamp(3723.0), "1:02:03");
    }

    #[test]
    fn youtube_rules_for_chapters() {
        let ch = |s: f64| Chapter {
            start: s,
            timestamp: timestamp(s),
            title: "x".into(),
        };
        assert!(youtube_accepts(&[ch(0.0), ch(10.0), ch(20.0)], 30.0));
        assert!(!youtube_accepts(&[ch(0.0), ch(10.0), ch(15.0)], 30.0));
        assert!(!youtube_accepts(&[ch(0.0), ch(10.0)], 30.0));
    }
}
