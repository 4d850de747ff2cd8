//! plan: turns the script and channel into scene prompts, motions, transitions, moods, seeds
//! and character voices. The rule-based planner is the embedded default; with an LLM set up
//! (see `engines::models`) the model writes image prompts for scenes the script gives none,
//! a shot list per scene and a character sheet per character, as schema-guided JSON that is
//! validated, tidied and retried with another seed when its content is unusable (after three
//! tries the rule-based plan stands, with a note in the job log).

use reelsmith_llm::llm::{Message, Schema};

use crate::engines::llm::{self as llm_engine, tidy, wordy};
use crate::engines::models::ModelRef;
use crate::media::compose::Blend;
use crate::pipeline::{write_json, JobSpec, Resources, Stage, StageCtx, StageError, StageKind};
use crate::script::{Localized, Transition};

use super::model::{Plan, PlannedCharacter, PlannedLine, PlannedScene, Shot, Timing};

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
        Transition::Morph => Blend::Morph,
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

    fn builtin_engine(&self) -> String {
        RULES.into()
    }

    fn engine(&self, job: &JobSpec) -> String {
        match &job.models.llm {
            Some(m) => llm_engine::engine_id(m),
            None => RULES.into(),
        }
    }

    fn params(&self, job: &JobSpec, _lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "script": job.script,
            "channel": job.channel,
            "languages": job.languages,
            "seed": job.settings.seed,
            "llm": job.models.llm.as_ref().map(|m| (&m.id, &m.fingerprint)),
        })
    }

    fn resources(&self, job: &JobSpec) -> Resources {
        job.models
            .llm
            .as_ref()
            .map(llm_engine::resources)
            .unwrap_or_default()
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let mut plan = rules_plan(ctx.job);
        if let (Some(a), false) = (
            ctx.optional_input(StageKind::Analyze),
            ctx.job.script.recordings.is_empty(),
        ) {
            let selection = super::analyze::read_selection(&a.dir)?;
            let hs = super::analyze::settings(ctx.job);
            let plan = super::recorded::recorded_plan(ctx.job, &hs, &selection, plan);
            return write_json(&ctx.out.join("plan.json"), &plan);
        }
        if !ctx.job.script.recordings.is_empty() {
            return Err(StageError::data(
                "recordings",
                format!(
                    "channel `{}` has no `analyze` stage: only channels that run it (gaming) \
                     take recordings",
                    ctx.job.channel.name
                ),
            ));
        }
        if let Some(m) = &ctx.job.models.llm {
            llm_plan(ctx, &mut plan, m)?;
        }
        write_json(&ctx.out.join("plan.json"), &plan)
    }
}

const RULES: &str = "rules/planner@1";

/// The blend a transition name stands for (`crossfade`, `wipe-left`, …).
pub fn blend_named(name: &str) -> Option<Blend> {
    Transition::parse(name).map(blend_of)
}

/// Channel prefix + subject + the looks of the characters in the scene + channel suffix.
fn compose(job: &JobSpec, subject: &str, looks: &[String]) -> String {
    let ch = &job.channel;
    let mut body = subject.trim().to_string();
    for l in looks {
        body.push_str(", ");
        body.push_str(l);
    }
    format!(
        "{}{}{}",
        ch.style.prompt_prefix, body, ch.style.prompt_suffix
    )
}

/// Motifs for the procedural painter: words of the subject and the scene title.
fn motifs_of(subject: &str, title: Option<&str>) -> Vec<String> {
    let mut motifs = Vec::new();
    words(subject, &mut motifs);
    if let Some(t) = title {
        words(t, &mut motifs);
    }
    motifs
}

/// The rule-based plan.
fn rules_plan(job: &JobSpec) -> Plan {
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
            speaker: c.speaker.as_ref().map(|s| s.to_string()),
            length_scale: c.length_scale,
            noise_scale: c.noise_scale,
            noise_w: c.noise_w,
            look: None,
            reference: c.reference.clone(),
            seed: c.seed,
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
        let prompt = compose(job, &subject, &[]);
        // Pictures follow the visual description only, so rewording a line never repaints
        // a scene (the subject falls back to the title or first line when there's no prompt).
        let motifs = motifs_of(
            &subject,
            sc.title.as_ref().and_then(|t| t.source(&s.language)),
        );
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
            shots: Vec::new(),
            source: None,
        });
    }
    let mut tags: Vec<String> = Vec::new();
    for t in d.tags.iter().chain(&s.tags) {
        if !tags.iter().any(|x| x.eq_ignore_ascii_case(t)) {
            tags.push(t.clone());
        }
    }
    Plan {
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
        planner: RULES.into(),
        recorded: None,
    }
}

/// Framings the LLM picks from.
const FRAMINGS: [&str; 6] = [
    "wide",
    "medium",
    "close-up",
    "extreme close-up",
    "over-the-shoulder",
    "aerial",
];
/// Camera moves the animate stage draws.
const CAMERAS: [&str; 7] = [
    "zoom-in",
    "zoom-out",
    "pan-left",
    "pan-right",
    "pan-up",
    "pan-down",
    "static",
];
/// Scenes planned per LLM call (each call re-reads the script from the KV cache).
const SCENES_PER_CALL: usize = 6;
/// Tries before the rule-based plan stands.
const ATTEMPTS: u64 = 3;

const SYSTEM: &str = "You are the director of a short video. You write prompts for an AI \
image model: for each scene one vivid visual description (subject, setting, lighting, \
composition; no text, no camera terms), a shot list, and for each character a short \
description of how they look, so every picture draws them alike. Answer only with JSON like \
this example:
{\"characters\": [{\"id\": \"kai\", \"look\": \"young courier, short black hair, red scarf, \
worn leather jacket\"}], \"scenes\": [{\"id\": \"rooftop\", \"prompt\": \"a courier running \
across rain-soaked rooftops at dusk, neon signs glowing below, low angle\", \"shots\": \
[{\"framing\": \"wide\", \"camera\": \"pan-right\", \"action\": \"Kai leaps the gap between two \
roofs\"}]}]}";

/// The script as the model reads it: title, characters, and per scene its id, title, the
/// visual the script asks for, and the start of its narration.
fn brief(job: &JobSpec) -> String {
    let s = &job.script;
    let src = s.language.as_str();
    let mut out = String::new();
    let cut = |t: &str, n: usize| -> String {
        let mut c: String = t.chars().take(n).collect();
        if t.chars().count() > n {
            c.push('…');
        }
        c
    };
    out.push_str(&format!(
        "Channel: {} ({})\nTitle: {}\n",
        job.channel.display_name,
        job.channel.style.look,
        s.title.source(src).unwrap_or_default()
    ));
    if let Some(d) = s.description.as_ref().and_then(|d| d.source(src)) {
        out.push_str(&format!("About: {}\n", cut(d, 300)));
    }
    if !s.characters.is_empty() {
        out.push_str("Characters:\n");
        for c in &s.characters {
            out.push_str(&format!(
                "- {} ({}): {}\n",
                c.id,
                c.name.as_deref().unwrap_or(&c.id),
                cut(&c.description, 200)
            ));
        }
    }
    out.push_str("Scenes:\n");
    for sc in &s.scenes {
        out.push_str(&format!("- {}", sc.id));
        if let Some(t) = sc.title.as_ref().and_then(|t| t.source(src)) {
            out.push_str(&format!(" \"{t}\""));
        }
        out.push('\n');
        if let Some(p) = &sc.prompt {
            out.push_str(&format!("  visual: {}\n", cut(p, 200)));
        }
        let said: Vec<String> = sc
            .lines
            .iter()
            .filter_map(|l| l.text.source(src).map(|t| format!("{}: {t}", l.speaker)))
            .collect();
        if !said.is_empty() {
            out.push_str(&format!("  narration: {}\n", cut(&said.join(" "), 300)));
        }
    }
    out
}

fn shot_schema() -> Schema {
    Schema::object([
        (
            "framing",
            Schema::Enum(FRAMINGS.iter().map(|s| s.to_string()).collect()),
        ),
        (
            "camera",
            Schema::Enum(CAMERAS.iter().map(|s| s.to_string()).collect()),
        ),
        ("action", Schema::string(4, 100)),
    ])
}

/// The schema of one call: character sheets (first call only) and a batch of scenes, with the
/// ids fixed so the answer lines up with the script.
pub fn plan_schema(character_ids: &[String], scene_ids: &[String]) -> Schema {
    let mut fields = Vec::new();
    if !character_ids.is_empty() {
        fields.push((
            "characters".to_string(),
            Schema::Tuple(
                character_ids
                    .iter()
                    .map(|id| {
                        Schema::object([
                            ("id", Schema::Const(id.clone())),
                            ("look", Schema::string(8, 160)),
                        ])
                    })
                    .collect(),
            ),
        ));
    }
    fields.push((
        "scenes".to_string(),
        Schema::Tuple(
            scene_ids
                .iter()
                .map(|id| {
                    Schema::object([
                        ("id", Schema::Const(id.clone())),
                        ("prompt", Schema::string(16, 240)),
                        ("shots", Schema::array(shot_schema(), 1, 3)),
                    ])
                })
                .collect(),
        ),
    ));
    Schema::Object(fields)
}

/// What the model wrote, tidied and checked; `Err` says why it can't be used.
struct LlmAnswer {
    looks: Vec<(String, String)>,
    scenes: Vec<(String, String, Vec<Shot>)>,
}

fn read_answer(v: &serde_json::Value, scene_prompts_needed: &[bool]) -> Result<LlmAnswer, String> {
    let text = |v: &serde_json::Value| tidy(v.as_str().unwrap_or_default());
    let mut looks = Vec::new();
    for c in v["characters"].as_array().into_iter().flatten() {
        let look = text(&c["look"]);
        let id = text(&c["id"]);
        if !wordy(&look, 2) {
            return Err(format!(
                "character `{id}`: look {look:?} is not a description"
            ));
        }
        looks.push((id, look));
    }
    let mut scenes = Vec::new();
    let list = v["scenes"].as_array().cloned().unwrap_or_default();
    for (i, sc) in list.iter().enumerate() {
        let id = text(&sc["id"]);
        let prompt = text(&sc["prompt"]);
        if scene_prompts_needed.get(i).copied().unwrap_or(true) && !wordy(&prompt, 3) {
            return Err(format!(
                "scene `{id}`: prompt {prompt:?} is not a description"
            ));
        }
        let shots: Vec<Shot> = sc["shots"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| Shot {
                framing: text(&s["framing"]),
                camera: text(&s["camera"]),
                action: text(&s["action"]),
            })
            .collect();
        scenes.push((id, prompt, shots));
    }
    Ok(LlmAnswer { looks, scenes })
}

/// Runs the LLM planner over `plan` (the rule-based plan), in place.
fn llm_plan(ctx: &StageCtx, plan: &mut Plan, m: &ModelRef) -> Result<(), StageError> {
    let job = ctx.job;
    let engine_id = llm_engine::engine_id(m);
    let llm = llm_engine::load(m).map_err(|e| StageError::Engine(e.to_string()))?;
    let character_ids: Vec<String> = job.script.characters.iter().map(|c| c.id.clone()).collect();
    let batches: Vec<&[crate::script::Scene]> = job.script.scenes.chunks(SCENES_PER_CALL).collect();
    let messages = |first: usize, n: usize| {
        let ids: Vec<&str> = job.script.scenes[first..first + n]
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        vec![
            Message::system(SYSTEM),
            Message::user(format!(
                "{}\nWrite the JSON{} for the scenes {}.",
                brief(job),
                if first == 0 && !character_ids.is_empty() {
                    " with every character"
                } else {
                    ""
                },
                ids.join(", ")
            )),
        ]
    };
    // Rough token count for progress: ~60 per scene, ~30 per character.
    let expected = (job.script.scenes.len() * 60 + character_ids.len() * 30).max(1) as f32;
    let mut done_tokens = 0usize;
    let mut answers = Vec::new();
    let mut raw = Vec::new();
    let mut first = 0;
    for (b, batch) in batches.iter().enumerate() {
        let scene_ids: Vec<String> = batch.iter().map(|s| s.id.clone()).collect();
        let chars: &[String] = if b == 0 { &character_ids } else { &[] };
        let schema = plan_schema(chars, &scene_ids);
        let needed: Vec<bool> = batch.iter().map(|s| s.prompt.is_none()).collect();
        let mut why = String::new();
        let mut answer = None;
        for attempt in 0..ATTEMPTS {
            ctx.check_cancel()?;
            let seed = stable_hash(&[
                &job.settings.seed.to_string(),
                "plan",
                &b.to_string(),
                &attempt.to_string(),
            ]);
            let base = done_tokens;
            let out = llm_engine::ask(
                &llm,
                &messages(first, batch.len()),
                &schema,
                seed,
                0.7,
                &mut |n| {
                    ctx.progress((base + n) as f32 / expected * 0.95);
                    ctx.flow()
                },
            );
            ctx.check_cancel()?;
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    why = e;
                    continue;
                }
            };
            done_tokens += out.sampled_tokens;
            raw.push(out.value.clone());
            match read_answer(&out.value, &needed) {
                Ok(a) => {
                    answer = Some(a);
                    break;
                }
                Err(e) => {
                    ctx.note(format!(
                        "{engine_id}: attempt {}: {e}; retrying",
                        attempt + 1
                    ));
                    why = e;
                }
            }
        }
        match answer {
            Some(a) => answers.push(a),
            None => {
                ctx.note(format!(
                    "{engine_id} gave no usable plan for scenes {} after {ATTEMPTS} tries ({why}); \
                     the rule-based plan stands",
                    scene_ids.join(", ")
                ));
                return Ok(());
            }
        }
        first += batch.len();
    }
    // Keep what the model wrote next to the plan, with the schema it followed.
    write_json(&ctx.out.join("llm-plan.json"), &raw)?;
    write_json(
        &ctx.out.join("plan.schema.json"),
        &plan_schema(
            &character_ids,
            &job.script
                .scenes
                .iter()
                .map(|s| s.id.clone())
                .collect::<Vec<_>>(),
        )
        .to_json_schema(),
    )?;
    let looks: Vec<(String, String)> = answers.iter().flat_map(|a| a.looks.clone()).collect();
    for c in &mut plan.characters {
        c.look = looks
            .iter()
            .find(|(id, _)| *id == c.id)
            .map(|(_, l)| l.clone());
    }
    let scenes: Vec<(String, String, Vec<Shot>)> =
        answers.into_iter().flat_map(|a| a.scenes).collect();
    let src = job.script.language.clone();
    for (ps, (sc, (_, prompt, shots))) in plan
        .scenes
        .iter_mut()
        .zip(job.script.scenes.iter().zip(scenes))
    {
        // The script's own visual wins; the model fills in the rest.
        let subject = sc.prompt.clone().unwrap_or(prompt);
        let mut seen: Vec<&str> = Vec::new();
        let mut sheet = Vec::new();
        for l in &sc.lines {
            if seen.contains(&l.speaker.as_str()) {
                continue;
            }
            seen.push(&l.speaker);
            if let Some(c) = plan.characters.iter().find(|c| c.id == l.speaker) {
                if let Some(look) = &c.look {
                    sheet.push(format!("{}: {look}", c.name));
                }
            }
        }
        ps.prompt = compose(job, &subject, &sheet);
        ps.motifs = motifs_of(&subject, sc.title.as_ref().and_then(|t| t.source(&src)));
        if sc.motion.is_none() {
            if let Some(cam) = shots.first().map(|s| s.camera.clone()) {
                ps.motion = cam;
            }
        }
        ps.shots = shots;
    }
    plan.planner = engine_id;
    ctx.progress(1.0);
    Ok(())
}

/// Text of `l` in `lang`, for stages downstream of translate.
pub fn localized(l: &Localized, lang: &str, source: &str) -> Option<String> {
    l.get(lang, source).map(str::to_string)
}
