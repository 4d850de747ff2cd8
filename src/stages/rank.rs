//! rank: with an LLM set up, the model re-ranks the highlights the rules chose (from their
//! features: where and how long, score and reasons) and writes a title and a one-line hook per
//! highlight, as schema-guided JSON that is validated strictly and retried with another seed
//! (after three tries the rules' ranking, titles and hooks stand, with a note in the job log).
//! The windows stay the rules'; only which ones make the compilation and the shorts, and their
//! texts, change.

use std::collections::BTreeMap;

use reelsmith_llm::llm::{Message, Schema};

use crate::engines::llm::{self as llm_engine, tidy, wordy};
use crate::engines::models::ModelRef;
use crate::highlights::select::{Highlight, Selection, ShortPick};
use crate::pipeline::{write_json, StageCtx, StageError};

use super::metadata::timestamp;
use super::plan::stable_hash;

/// Longest title, characters.
pub const TITLE_MAX: usize = 60;
/// Longest hook, characters.
pub const HOOK_MAX: usize = 120;
/// Tries before the rules' ranking stands.
const ATTEMPTS: u64 = 3;

const SYSTEM: &str = "You are the editor of a gaming channel. You get the candidate highlights \
of gameplay recordings: where each one is, how long it lasts, its score and what the analysis \
heard and saw there. Rank all of them, best first: the moments a viewer most wants to see. For \
each write a short catchy title (at most 60 characters) and a hook: one line (at most 120 \
characters) the commentator says over the clip. Claim nothing the clues don't support. Answer \
only with JSON like this example:
{\"highlights\": {\"h1\": {\"title\": \"Out of nowhere\", \"hook\": \"One sudden blast and the \
whole fight turns around.\"}, \"h2\": {\"title\": \"Full throttle\", \"hook\": \"Hold on, this \
chase never slows down.\"}}, \"order\": [\"h2\", \"h1\"]}";

/// What the model decided, checked: every candidate's id once, best first, and its texts.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranking {
    pub order: Vec<String>,
    /// Title and hook per id.
    pub texts: BTreeMap<String, (String, String)>,
}

/// The schema of the answer: a title and hook under every id, then the order of all ids.
pub fn rank_schema(ids: &[String]) -> Schema {
    Schema::object([
        (
            "highlights",
            Schema::Object(
                ids.iter()
                    .map(|id| {
                        (
                            id.clone(),
                            Schema::object([
                                ("title", Schema::string(3, TITLE_MAX)),
                                ("hook", Schema::string(10, HOOK_MAX)),
                            ]),
                        )
                    })
                    .collect(),
            ),
        ),
        (
            "order",
            Schema::Tuple(vec![Schema::Enum(ids.to_vec()); ids.len()]),
        ),
    ])
}

/// The candidates as the model reads them.
pub fn brief(selection: &Selection) -> String {
    let name = |i: usize| {
        selection
            .recordings
            .get(i)
            .and_then(|r| r.path.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("recording {}", i + 1))
    };
    let mut out = String::from("Recordings:\n");
    for (i, r) in selection.recordings.iter().enumerate() {
        out.push_str(&format!("- {} ({} long)\n", name(i), timestamp(r.duration)));
    }
    out.push_str("Candidates:\n");
    for h in &selection.highlights {
        let reasons = if h.reasons.is_empty() {
            "nothing stands out".to_string()
        } else {
            h.reasons.join("; ")
        };
        out.push_str(&format!(
            "- {}: {} {}–{}, {:.0} s, score {:.2}; {reasons}\n",
            h.id,
            name(h.recording),
            timestamp(h.start),
            timestamp(h.end),
            h.seconds(),
            h.score,
        ));
    }
    out
}

fn has_letters(s: &str) -> bool {
    s.chars().any(char::is_alphabetic)
}

/// Reads and checks an answer against the candidates' `ids`; `Err` says what is wrong.
pub fn read_ranking(v: &serde_json::Value, ids: &[String]) -> Result<Ranking, String> {
    let list = v["order"]
        .as_array()
        .ok_or_else(|| "the answer has no `order` list".to_string())?;
    let mut order: Vec<String> = Vec::with_capacity(list.len());
    for x in list {
        let id = x
            .as_str()
            .map(tidy)
            .ok_or_else(|| format!("order: {x} is not an id"))?;
        if !ids.contains(&id) {
            return Err(format!("order: `{id}` is no candidate"));
        }
        if order.contains(&id) {
            return Err(format!("order: `{id}` is listed twice"));
        }
        order.push(id);
    }
    if let Some(missing) = ids.iter().find(|id| !order.contains(id)) {
        return Err(format!("order: `{missing}` is missing"));
    }
    let texts_in = v["highlights"]
        .as_object()
        .ok_or_else(|| "the answer has no `highlights` object".to_string())?;
    if let Some(extra) = texts_in.keys().find(|k| !ids.contains(k)) {
        return Err(format!("highlights: `{extra}` is no candidate"));
    }
    let mut texts = BTreeMap::new();
    for id in ids {
        let h = texts_in
            .get(id)
            .ok_or_else(|| format!("highlights: `{id}` has no title and hook"))?;
        let title = tidy(h["title"].as_str().unwrap_or_default());
        let hook = tidy(h["hook"].as_str().unwrap_or_default());
        if title.is_empty() || !has_letters(&title) {
            return Err(format!("{id}: title {title:?} is empty"));
        }
        if title.chars().count() > TITLE_MAX {
            return Err(format!(
                "{id}: title {title:?} is over {TITLE_MAX} characters"
            ));
        }
        if !wordy(&hook, 2) {
            return Err(format!("{id}: hook {hook:?} is not a sentence"));
        }
        if hook.chars().count() > HOOK_MAX {
            return Err(format!("{id}: hook {hook:?} is over {HOOK_MAX} characters"));
        }
        texts.insert(id.clone(), (title, hook));
    }
    Ok(Ranking { order, texts })
}

/// A short of `h`: all of it, or `short_max` seconds around its peak inside it.
fn short_window(h: &Highlight, short_max: f64) -> ShortPick {
    let (mut s, mut e) = (h.start, h.end);
    if e - s > short_max {
        s = (h.peak - short_max / 2.0).clamp(h.start, h.end - short_max);
        e = s + short_max;
    }
    ShortPick {
        highlight: h.id.clone(),
        start: s,
        end: e,
    }
}

/// Applies a checked ranking: the first `count` by the model's order form the compilation (in
/// play order: recording, then start), the rest follow in play order; the shorts are the model's
/// best as many as before (a highlight that had a short keeps its window, others get theirs as
/// `select` cuts them, at most `short_max` seconds); titles, hooks and the ranker are set.
pub fn apply(
    selection: &mut Selection,
    ranking: &Ranking,
    count: usize,
    short_max: f64,
    ranker: String,
) {
    let rank_of = |id: &str| {
        ranking
            .order
            .iter()
            .position(|x| x == id)
            .unwrap_or(usize::MAX)
    };
    for h in &mut selection.highlights {
        if let Some((title, hook)) = ranking.texts.get(&h.id) {
            h.title = title.clone();
            h.hook = hook.clone();
        }
    }
    let before = std::mem::take(&mut selection.shorts);
    let mut by_rank: Vec<&Highlight> = selection.highlights.iter().collect();
    by_rank.sort_by_key(|h| rank_of(&h.id));
    selection.shorts = by_rank
        .iter()
        .take(before.len())
        .map(|h| {
            before
                .iter()
                .find(|s| s.highlight == h.id)
                .cloned()
                .unwrap_or_else(|| short_window(h, short_max))
        })
        .collect();
    selection.highlights.sort_by(|a, b| {
        let ca = rank_of(&a.id) < count;
        let cb = rank_of(&b.id) < count;
        cb.cmp(&ca)
            .then(a.recording.cmp(&b.recording))
            .then(a.start.total_cmp(&b.start))
    });
    selection.ranker = ranker;
}

/// Lets `model` rank `selection`'s highlights and write their titles and hooks, in place;
/// `count` highlights form the compilation. An unusable answer three times over leaves the
/// rules' selection as it was, with a note.
pub fn rank_with_llm(
    ctx: &StageCtx,
    model: &ModelRef,
    selection: &mut Selection,
    count: usize,
) -> Result<(), StageError> {
    if selection.highlights.is_empty() {
        return Ok(());
    }
    let engine_id = llm_engine::engine_id(model);
    let llm = llm_engine::load(model).map_err(|e| StageError::Engine(e.to_string()))?;
    let ids: Vec<String> = selection.highlights.iter().map(|h| h.id.clone()).collect();
    let schema = rank_schema(&ids);
    let messages = vec![
        Message::system(SYSTEM),
        Message::user(format!(
            "{}\nWrite the JSON: a title and a hook for each of {}, and the order of all {} \
             candidates, best first.",
            brief(selection),
            ids.join(", "),
            ids.len()
        )),
    ];
    let mut raw = Vec::new();
    let mut why = String::new();
    let mut ranking = None;
    for attempt in 0..ATTEMPTS {
        ctx.check_cancel()?;
        let seed = stable_hash(&[
            &ctx.job.settings.seed.to_string(),
            "rank",
            &attempt.to_string(),
        ]);
        let out = llm_engine::ask(&llm, &messages, &schema, seed, 0.7, &mut |_| ctx.flow());
        ctx.check_cancel()?;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                why = e;
                continue;
            }
        };
        raw.push(out.value.clone());
        match read_ranking(&out.value, &ids) {
            Ok(r) => {
                ranking = Some(r);
                break;
            }
            Err(e) => {
                ctx.note(format!(
                    "{engine_id}: ranking attempt {}: {e}; retrying",
                    attempt + 1
                ));
                why = e;
            }
        }
    }
    // Keep what the model wrote next to the selection.
    if !raw.is_empty() {
        write_json(&ctx.out.join("llm-rank.json"), &raw)?;
    }
    let Some(ranking) = ranking else {
        ctx.note(format!(
            "{engine_id} gave no usable ranking of the highlights after {ATTEMPTS} tries ({why}); \
             the rules' ranking, titles and hooks stand"
        ));
        return Ok(());
    };
    let short_max = super::analyze::settings(ctx.job).select.short_max;
    apply(selection, &ranking, count, short_max, engine_id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::highlights::select::RecordingRef;

    fn hl(id: &str, recording: usize, start: f64, score: f64) -> Highlight {
        Highlight {
            id: id.into(),
            recording,
            start,
            end: start + 12.0,
            peak: start + 7.0,
            score,
            reasons: vec!["loud: +9 dB over the room".into(), "a sudden sound".into()],
            snapped: [true, true],
            title: format!("#{} The loudest moment", &id[1..]),
            hook: "rules".into(),
        }
    }

    fn rec(name: &str) -> RecordingRef {
        RecordingRef {
            path: PathBuf::from(format!("/games/{name}")),
            key: name.into(),
            duration: 600.0,
            fps: 60.0,
            width: 1920,
            height: 1080,
            has_audio: true,
        }
    }

    /// Four candidates h1..h4 by score: h1–h3 the compilation in play order, h4 after it; h1
    /// and h2 have shorts.
    fn selection() -> Selection {
        Selection {
            version: 1,
            recordings: vec![rec("a.mkv"), rec("b.mkv")],
            highlights: vec![
                hl("h2", 0, 100.0, 2.0),
                hl("h3", 0, 300.0, 1.5),
                hl("h1", 1, 50.0, 3.0),
                hl("h4", 1, 20.0, 1.0),
            ],
            shorts: vec![
                ShortPick {
                    highlight: "h1".into(),
                    start: 50.0,
                    end: 62.0,
                },
                ShortPick {
                    highlight: "h2".into(),
                    start: 101.0,
                    end: 110.0,
                },
            ],
            ranker: "rules@1".into(),
        }
    }

    fn ids() -> Vec<String> {
        ["h2", "h3", "h1", "h4"].map(String::from).to_vec()
    }

    fn answer(order: &[&str]) -> serde_json::Value {
        let mut texts = serde_json::Map::new();
        for id in ["h1", "h2", "h3", "h4"] {
            texts.insert(
                id.into(),
                json!({"title": format!(" \"Title {id}\" "), "hook": format!("Watch what happens in {id} here,")}),
            );
        }
        json!({"highlights": texts, "order": order})
    }

    #[test]
    fn reads_a_valid_answer_and_tidies_texts() {
        let r = read_ranking(&answer(&["h4", "h2", "h1", "h3"]), &ids()).unwrap();
        assert_eq!(r.order, ["h4", "h2", "h1", "h3"]);
        assert_eq!(
            r.texts["h4"],
            (
                "Title h4".to_string(),
                "Watch what happens in h4 here".to_string()
            )
        );
        // The schema it answers to lists every id and a slot per candidate.
        assert!(rank_schema(&ids())
            .validate(&answer(&["h4", "h2", "h1", "h3"]))
            .is_ok());
    }

    #[test]
    fn rejects_orders_that_are_not_permutations() {
        let e = read_ranking(&answer(&["h4", "h2", "h2", "h3"]), &ids()).unwrap_err();
        assert!(e.contains("`h2` is listed twice"), "{e}");
        let e = read_ranking(&answer(&["h4", "h2", "h1"]), &ids()).unwrap_err();
        assert!(e.contains("`h3` is missing"), "{e}");
        let e = read_ranking(&answer(&["h4", "h2", "h1", "h9"]), &ids()).unwrap_err();
        assert!(e.contains("`h9` is no candidate"), "{e}");
        let e = read_ranking(&json!({"highlights": {}}), &ids()).unwrap_err();
        assert!(e.contains("no `order`"), "{e}");
    }

    #[test]
    fn rejects_empty_long_or_missing_texts() {
        let order = ["h1", "h2", "h3", "h4"];
        let mut v = answer(&order);
        v["highlights"]["h3"]["title"] = json!(" \"\" ");
        assert!(read_ranking(&v, &ids()).unwrap_err().contains("h3: title"));
        let mut v = answer(&order);
        v["highlights"]["h3"]["title"] = json!("x".repeat(TITLE_MAX + 1));
        assert!(read_ranking(&v, &ids()).unwrap_err().contains("over 60"));
        let mut v = answer(&order);
        v["highlights"]["h1"]["hook"] = json!(format!("{} end", "word ".repeat(30)));
        assert!(read_ranking(&v, &ids()).unwrap_err().contains("over 120"));
        let mut v = answer(&order);
        v["highlights"]["h1"]["hook"] = json!("!!! 123 ???");
        assert!(read_ranking(&v, &ids())
            .unwrap_err()
            .contains("not a sentence"));
        let mut v = answer(&order);
        v["highlights"].as_object_mut().unwrap().remove("h2");
        assert!(read_ranking(&v, &ids())
            .unwrap_err()
            .contains("`h2` has no title"));
        let mut v = answer(&order);
        v["highlights"]["h7"] = json!({"title": "Extra", "hook": "An extra one here"});
        assert!(read_ranking(&v, &ids())
            .unwrap_err()
            .contains("`h7` is no candidate"));
    }

    #[test]
    fn applies_order_to_compilation_shorts_and_texts() {
        let mut sel = selection();
        let r = read_ranking(&answer(&["h4", "h3", "h1", "h2"]), &ids()).unwrap();
        apply(&mut sel, &r, 3, 60.0, "llm/m@1".into());
        // Compilation h4, h3, h1 in play order (recording, start), h2 after it.
        let order: Vec<&str> = sel.highlights.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(order, ["h3", "h4", "h1", "h2"]);
        // Shorts: the model's best two, h1's window (it had none) cut like `select` cuts it.
        assert_eq!(
            sel.shorts,
            vec![
                ShortPick {
                    highlight: "h4".into(),
                    start: 20.0,
                    end: 32.0
                },
                ShortPick {
                    highlight: "h3".into(),
                    start: 300.0,
                    end: 312.0
                },
            ]
        );
        assert!(sel
            .highlights
            .iter()
            .all(|h| h.title == format!("Title {}", h.id)));
        assert_eq!(sel.ranker, "llm/m@1");
        // Windows, scores and reasons are the rules'.
        let before = selection();
        for h in &sel.highlights {
            let b = before.highlights.iter().find(|x| x.id == h.id).unwrap();
            assert_eq!((h.start, h.end, h.score), (b.start, b.end, b.score));
        }
        sel.validate(60.0).unwrap();
    }

    #[test]
    fn shorts_keep_their_windows_and_new_ones_fit_short_max() {
        let mut sel = selection();
        sel.highlights[3].end = 120.0; // h4: 20–120 s, peak at 27 s.
        let r = read_ranking(&answer(&["h2", "h4", "h1", "h3"]), &ids()).unwrap();
        apply(&mut sel, &r, 3, 60.0, "llm/m@1".into());
        assert_eq!(sel.shorts[0], selection().shorts[1]);
        assert_eq!(
            (sel.shorts[1].start, sel.shorts[1].end),
            (20.0, 80.0),
            "a window inside the highlight"
        );
        let mut h = hl("h9", 0, 0.0, 1.0);
        (h.end, h.peak) = (100.0, 95.0);
        let s = short_window(&h, 60.0);
        assert_eq!((s.start, s.end), (40.0, 100.0));
        sel.validate(60.0).unwrap();
    }

    #[test]
    fn brief_lists_every_candidate_with_times_and_reasons() {
        let b = brief(&selection());
        assert!(b.contains("- a.mkv (10:00 long)"), "{b}");
        assert!(
            b.contains("- h1: b.mkv 0:50–1:02, 12 s, score 3.00; loud: +9 dB over the room; a sudden sound"),
            "{b}"
        );
        assert_eq!(b.matches("\n- h").count(), 4);
    }

    /// The tiny real model (SmolLM2-135M, see `scripts/fetch-llm-test-model.sh`): its texts may
    /// be poor, but what comes out is either a checked ranking or the rules' selection and a
    /// note.
    #[test]
    fn real_model_ranks_or_falls_back() {
        use crate::config::ChannelSet;
        use crate::engines::models::StageModels;
        use crate::pipeline::job::{prepare_text, RenderRequest};
        use crate::pipeline::{ArtifactCache, Quality};
        use tokio_util::sync::CancellationToken;

        let root = std::env::var_os("REELSMITH_TEST_MODELS")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".cache/reelsmith/test-models"))
            })
            .expect("HOME or REELSMITH_TEST_MODELS is set");
        let gguf = root.join("smollm2-135m-instruct-q4_1.gguf");
        if !gguf.is_file() {
            if std::env::var("REELSMITH_TEST_MODELS_OPTIONAL").as_deref() == Ok("1") {
                return;
            }
            panic!(
                "{} is missing: run `bash scripts/fetch-llm-test-model.sh`",
                gguf.display()
            );
        }
        let model = ModelRef {
            id: "smollm2-test".into(),
            path: gguf,
            fingerprint: "test".into(),
            params: Some(135_000_000),
        };
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/examples/explainer.yaml");
        let tmp = tempfile::tempdir().unwrap();
        let req = RenderRequest {
            script: script.clone(),
            channel: None,
            languages: None,
            out: tmp.path().join("out"),
            quality: Quality::Draft,
            seed: 1,
        };
        let models = StageModels {
            llm: Some(model.clone()),
            ..Default::default()
        };
        let text = std::fs::read_to_string(&script).unwrap();
        let job = prepare_text(&req, &text, &ChannelSet::load(None).unwrap(), &models).unwrap();
        let out = tmp.path().join("stage");
        std::fs::create_dir_all(&out).unwrap();
        let cache =
            ArtifactCache::open(&tmp.path().join("cache"), &tmp.path().join("tmp")).unwrap();
        let inputs = BTreeMap::new();
        let cancel = CancellationToken::new();
        let progress = |_: f32| {};
        let ctx = StageCtx::new(&job, None, &inputs, &out, &cancel, &cache, &progress);
        let mut sel = selection();
        rank_with_llm(&ctx, &model, &mut sel, 3).unwrap();
        let (_, notes) = ctx.into_parts();
        if sel.ranker == "rules@1" {
            assert_eq!(
                sel,
                selection(),
                "a fallback leaves the selection as it was"
            );
            assert!(
                notes.iter().any(|n| n.contains("rules' ranking")),
                "{notes:?}"
            );
            return;
        }
        assert_eq!(sel.ranker, "llm/smollm2-test@1");
        let mut got: Vec<&str> = sel.highlights.iter().map(|h| h.id.as_str()).collect();
        got.sort();
        assert_eq!(got, ["h1", "h2", "h3", "h4"]);
        for h in &sel.highlights {
            assert!(
                !h.title.is_empty() && h.title.chars().count() <= TITLE_MAX,
                "{h:?}"
            );
            assert!(
                !h.hook.is_empty() && h.hook.chars().count() <= HOOK_MAX,
                "{h:?}"
            );
        }
        // The compilation (first three) plays in order.
        let play: Vec<(usize, f64)> = sel.highlights[..3]
            .iter()
            .map(|h| (h.recording, h.start))
            .collect();
        assert!(play.windows(2).all(|w| w[0] <= w[1]), "{play:?}");
        assert_eq!(sel.shorts.len(), 2);
        sel.validate(60.0).unwrap();
        assert!(out.join("llm-rank.json").is_file());
    }
}
