//! metadata: YouTube-ready title, description with chapters, and tags, per language.

use crate::pipeline::{read_json, write_json, JobSpec, Stage, StageCtx, StageError, StageKind};

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

    fn engine(&self) -> String {
        "rules/metadata@1".into()
    }

    fn params(&self, _job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({ "lang": lang })
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
        let mut description = texts
            .description
            .clone()
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
        for t in &plan.tags {
            let cost = t.chars().count() + 1;
            if cost <= budget && !tags.contains(t) {
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
        write_json(
            &ctx.out.join("metadata.json"),
            &Metadata {
                lang: lang.to_string(),
                title,
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
