//! The plan of a highlights job: each highlight of the selection becomes a scene that shows its
//! stretch of the recording (no picture to draw), titled for its chapter, with one commentary
//! line in every output language (the rules' lines; the LLM's when one ranked the selection);
//! the best highlights become the shorts.

use std::collections::BTreeMap;

use crate::highlights::select::{Highlight, Selection};
use crate::media::compose::Blend;
use crate::pipeline::JobSpec;
use crate::script::Localized;

use super::analyze::HighlightSettings;
use super::model::{Plan, PlannedLine, PlannedScene, PlannedShort, RecordedPlan, SourceClip};
use super::plan::stable_hash;

/// What a highlight is about, from its strongest reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Loud,
    Sudden,
    Motion,
    Cuts,
    Flash,
    Other,
}

fn kind_of(h: &Highlight) -> Kind {
    let first = h.reasons.first().map(String::as_str).unwrap_or("");
    if first.starts_with("loud") {
        Kind::Loud
    } else if first.starts_with("a sudden") {
        Kind::Sudden
    } else if first.starts_with("fast motion") {
        Kind::Motion
    } else if first.starts_with("quick cuts") {
        Kind::Cuts
    } else if first.starts_with("flashes") {
        Kind::Flash
    } else {
        Kind::Other
    }
}

/// The rules' commentary line for a kind of highlight in `lang` (English for a language without
/// its own lines).
fn commentary(kind: Kind, lang: &str) -> &'static str {
    let row: [&str; 6] = match lang {
        "es" => [
            "¡Sube el volumen, esto se pone intenso!",
            "¡De la nada!",
            "Mira qué rápido va esto.",
            "Si parpadeas, te lo pierdes.",
            "¡Bum! ¿Lo viste?",
            "Mira esto.",
        ],
        "fr" => [
            "Montez le son, ça devient intense !",
            "Sorti de nulle part !",
            "Regardez la vitesse de cette action.",
            "Un clignement d'œil et c'est fini.",
            "Boum ! Vous avez vu ça ?",
            "Regardez ça.",
        ],
        "de" => [
            "Lauter machen, jetzt wird es heftig!",
            "Aus dem Nichts!",
            "Schau, wie schnell das geht.",
            "Einmal blinzeln und es ist vorbei.",
            "Bumm! Hast du das gesehen?",
            "Schau dir das an.",
        ],
        "pt" => [
            "Aumenta o som, isso fica intenso!",
            "Do nada!",
            "Olha a velocidade disso.",
            "Piscou, perdeu.",
            "Bum! Você viu isso?",
            "Olha só isso.",
        ],
        "ru" => [
            "Сделайте погромче, сейчас будет жарко!",
            "Откуда ни возьмись!",
            "Смотрите, как быстро всё происходит.",
            "Моргнёшь — и пропустишь.",
            "Бум! Видели?",
            "Зацените.",
        ],
        "ja" => [
            "音量を上げて、ここから熱くなる!",
            "まさかの不意打ち!",
            "このスピードを見て。",
            "まばたき厳禁。",
            "ドカン!見た?",
            "これを見て。",
        ],
        "zh" => [
            "把音量调大，这一段太燃了！",
            "毫无预兆！",
            "看看这速度。",
            "一眨眼就错过了。",
            "砰！看到了吗？",
            "看这个。",
        ],
        "hi" => [
            "आवाज़ बढ़ाइए, यहाँ माहौल गरम है!",
            "अचानक से!",
            "देखिए कितनी तेज़ी से होता है।",
            "पलक झपकी और सब खत्म।",
            "धमाका! आपने देखा?",
            "यह देखिए।",
        ],
        "ar" => [
            "ارفع الصوت، هنا تشتعل اللعبة!",
            "من حيث لا تتوقع!",
            "انظر إلى هذه السرعة.",
            "رمشة عين وتفوتك.",
            "بووم! هل رأيت ذلك؟",
            "شاهد هذا.",
        ],
        "bn" => [
            "ভলিউম বাড়ান, এখানে জমে উঠেছে!",
            "হঠাৎ করেই!",
            "দেখুন কত দ্রুত ঘটছে।",
            "চোখের পলকে শেষ।",
            "বুম! দেখলেন?",
            "এটা দেখুন।",
        ],
        _ => [
            "Turn it up, this one gets loud!",
            "Out of nowhere!",
            "Watch how fast this gets.",
            "Blink and you miss it.",
            "Boom. Did you see that?",
            "Check this out.",
        ],
    };
    row[match kind {
        Kind::Loud => 0,
        Kind::Sudden => 1,
        Kind::Motion => 2,
        Kind::Cuts => 3,
        Kind::Flash => 4,
        Kind::Other => 5,
    }]
}

/// "Highlights" in `lang`, for the titles the `highlights` command writes.
pub fn highlights_word(lang: &str) -> &'static str {
    match lang {
        "es" => "Mejores momentos",
        "fr" => "Meilleurs moments",
        "de" => "Highlights",
        "pt" => "Melhores momentos",
        "ru" => "Лучшие моменты",
        "ja" => "ハイライト",
        "zh" => "精彩集锦",
        "hi" => "हाइलाइट्स",
        "ar" => "أبرز اللقطات",
        "bn" => "সেরা মুহূর্ত",
        _ => "Highlights",
    }
}

/// The scenes, shorts and audio rules of a plan made from `selection`; `base` is the rules'
/// plan of the script (title, timing, captions, voices).
pub fn recorded_plan(
    job: &JobSpec,
    hs: &HighlightSettings,
    selection: &Selection,
    mut base: Plan,
) -> Plan {
    let d = &job.channel.defaults;
    let hd = &job.channel.highlights;
    let src = job.script.language.clone();
    let langs: Vec<String> = job.languages.clone();
    let many = |f: &dyn Fn(&str) -> String| -> Localized {
        let mut m = BTreeMap::new();
        for l in langs.iter().chain(std::iter::once(&src)) {
            m.insert(l.clone(), f(l));
        }
        Localized::Many(m)
    };
    let transition = super::plan::blend_named(&d.transition).unwrap_or(Blend::Crossfade);
    // The compilation: the highlights the selection plays, in its order.
    let shown: Vec<&Highlight> = selection
        .highlights
        .iter()
        .take(hs.select.count.max(1))
        .collect();
    let n = shown.len();
    let mut scenes = Vec::with_capacity(n);
    for (i, h) in shown.iter().enumerate() {
        let r = &selection.recordings[h.recording];
        let kind = kind_of(h);
        let lines = if hs.commentary {
            let text = match (&h.hook, kind) {
                // An LLM's (or the user's) hook speaks in the source language; other
                // languages get the rules' line.
                (hook, _) if !hook.is_empty() && selection.ranker.starts_with("llm/") => {
                    let hook = hook.clone();
                    many(&|l: &str| {
                        if l == src {
                            hook.clone()
                        } else {
                            commentary(kind, l).to_string()
                        }
                    })
                }
                _ => many(&|l: &str| commentary(kind, l).to_string()),
            };
            vec![PlannedLine {
                speaker: crate::script::NARRATOR.into(),
                text,
            }]
        } else {
            Vec::new()
        };
        let title = {
            let t = h.title.clone();
            let num = i + 1;
            many(&|l: &str| {
                if l == src && !t.is_empty() {
                    t.clone()
                } else {
                    format!("#{num} {}", commentary(kind, l))
                }
            })
        };
        let blend = if i + 1 == n { Blend::Cut } else { transition };
        scenes.push(PlannedScene {
            id: h.id.clone(),
            index: i,
            title: Some(title),
            prompt: String::new(),
            motifs: Vec::new(),
            seed: stable_hash(&[&job.settings.seed.to_string(), &h.id]),
            motion: "none".into(),
            transition: blend,
            transition_seconds: if blend == Blend::Cut {
                0.0
            } else {
                d.transition_seconds
            },
            min_duration: Some(h.seconds()),
            music: d.music_mood.clone(),
            image: None,
            lines,
            shots: Vec::new(),
            source: Some(SourceClip {
                path: r.path.clone(),
                key: r.key.clone(),
                start: h.start,
                end: h.end,
                peak: h.peak,
                has_audio: r.has_audio,
            }),
        });
    }
    let shorts = selection
        .shorts
        .iter()
        .filter_map(|s| {
            let (si, h) = shown
                .iter()
                .enumerate()
                .find(|(_, h)| h.id == s.highlight)?;
            let r = &selection.recordings[h.recording];
            Some(PlannedShort {
                scene: si,
                id: s.highlight.clone(),
                source: SourceClip {
                    path: r.path.clone(),
                    key: r.key.clone(),
                    start: s.start,
                    end: s.end,
                    peak: h.peak,
                    has_audio: r.has_audio,
                },
            })
        })
        .collect();
    base.scenes = scenes;
    // A highlight is as long as its stretch: no extra lead-in or minimum.
    base.timing.min_scene_seconds = 0.5;
    base.recorded = Some(RecordedPlan {
        shorts,
        layout: hs.layout.clone(),
        duck: hd.duck,
        duck_attack: hd.duck_attack,
        duck_release: hd.duck_release,
    });
    base.planner = selection.ranker.clone();
    base
}
