//! plan: the rule-based planner (the embedded default; an LLM planner implements the same
//! output). Turns the script and channel into scene prompts, motions, transitions, moods, seeds
//! and character voices.

use crate::media::compose::Blend;
use crate::pipeline::{write_json, JobSpec, Stage, StageCtx, StageError, StageKind};
use crate::script::{Localized, Transition};

use super::model::{Plan, PlannedCharacter, PlannedLine, PlannedScene, Timing};

pub struct PlanStage;

/// Voice variants handed to characters that don't pick one, alternating female/male.
const VARIANTS: [&str; 8] = ["f2", "m3", "f4", "m1", "f1", "m4", "f3", "m2"];

/// A stable 64-bit hash (FNV-1a) for seeds; never changes between versions or machines.
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn blend_of(t: Transition) -> Blend {
    match t {
        Transition::Cut => Blend::Cut,
        Transition::Crossfade => Blend::Crossfade,
        Transition::FadeBlack => Blend::FadeBlack,
        Transition::WipeLeft => Blend::WipeLeft,
        Transition::WipeRight => Blend::WipeRight,
    }
}

/// Lower-case words of a text, for motif picking (letters of any script, deduplicated).
fn words(text: &str, out: &mut Vec<String>) {
    for w in text.split(|c: char| !c.is_alphanumeric()) {
        let w = w.to_lowercase();
        if w.chars().count() >= 3 && !out.contains(&w) && out.len() < 32 {
            out.push(w);
        }
    }
}

impl Stage for PlanStage {
    fn kind(&self) -> StageKind {
        StageKind::Plan
    }

    fn engine(&self) -> String {
        "rules/planner@1".into()
    }

    fn params(&self, job: &JobSpec, _lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "script": job.script,
            "channel": job.channel,
            "languages": job.languages,
            "seed": job.settings.seed,
        })
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let job = ctx.job;
        let s = &job.script;
        let ch = &job.channel;
        let d = &ch.defaults;
        let default_transition = Transition::parse(&d.transition).unwrap_or(Transition::Crossfade);
        let characters = s
            .characters
            .iter()
            .enumerate()
            .map(|(i, c)| PlannedCharacter {
                id: c.id.clone(),
                name: c.name.clone().unwrap_or_else(|| c.id.clone()),
                description: c.description.clone(),
                variant: c
                    .voice
                    .clone()
                    .unwrap_or_else(|| VARIANTS[i % VARIANTS.len()].to_string()),
                pitch: c.pitch,
                rate: c.rate,
            })
            .collect();
        let n = s.scenes.len();
        let mut scenes = Vec::with_capacity(n);
        for (i, sc) in s.scenes.iter().enumerate() {
            let subject = sc
                .prompt
                .clone()
                .or_else(|| {
                    sc.title
                        .as_ref()
                        .and_then(|t| t.source(&s.language))
                        .map(str::to_string)
                })
                .or_else(|| {
                    sc.lines
                        .first()
                        .and_then(|l| l.text.source(&s.language))
                        .map(str::to_string)
                })
                .unwrap_or_default();
            let prompt = format!(
                "{}{}{}",
                ch.style.prompt_prefix,
                subject.trim(),
                ch.style.prompt_suffix
            );
            let mut motifs = Vec::new();
            words(&subject, &mut motifs);
            // Pictures follow the visual description only, so rewording a line never repaints
            // a scene (the subject falls back to the title or first line when there's no prompt).
            if let Some(t) = sc.title.as_ref().and_then(|t| t.source(&s.language)) {
                words(t, &mut motifs);
            }
            let motion = sc
                .motion
                .map(|m| m.as_str().to_string())
                .unwrap_or_else(|| {
                    d.motions
                        .get(i % d.motions.len().max(1))
                        .cloned()
                        .unwrap_or_else(|| "zoom-in".into())
                });
            let transition = if i + 1 == n {
                Blend::Cut
            } else {
                blend_of(sc.transition.unwrap_or(default_transition))
            };
            let transition_seconds = if transition == Blend::Cut {
                0.0
            } else {
                d.transition_seconds
            };
            scenes.push(PlannedScene {
                id: sc.id.clone(),
                index: i,
                title: sc.title.clone(),
                prompt,
                motifs,
                seed: stable_hash(&[&job.settings.seed.to_string(), &sc.id]),
                motion,
                transition,
                transition_seconds,
                min_duration: sc.duration,
                music: sc.music.clone().unwrap_or_else(|| d.music_mood.clone()),
                image: sc.image.clone(),
                lines: sc
                    .lines
                    .iter()
                    .map(|l| PlannedLine {
                        speaker: l.speaker.clone(),
                        text: l.text.clone(),
                    })
                    .collect(),
            });
        }
        let mut tags: Vec<String> = Vec::new();
        for t in d.tags.iter().chain(&s.tags) {
            if !tags.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                tags.push(t.clone());
            }
        }
        let plan = Plan {
            title: s.title.clone(),
            description: s.description.clone(),
            source_language: s.language.clone(),
            channel: ch.name.clone(),
            look: ch.style.look.clone(),
            palette: ch.palette(),
            negative_prompt: ch.style.negative_prompt.clone(),
            tags,
            characters,
            scenes,
            timing: Timing {
                lead_in: d.lead_in,
                tail: d.tail,
                line_gap: d.line_gap,
                min_scene_seconds: d.min_scene_seconds,
            },
            captions: d.captions.clone(),
            voices: d.voices.clone(),
        };
        write_json(&ctx.out.join("plan.json"), &plan)
    }
}

/// Text of `l` in `lang`, for stages downstream of translate.
pub fn localized(l: &Localized, lang: &str, source: &str) -> Option<String> {
    l.get(lang, source).map(str::to_string)
}
