//! The model-backed stages on real weights: the LLM planner on every example script (schema-valid
//! JSON, deterministic for a seed), and a full render where the LLM plans, translates a language
//! the script lacks and writes metadata while Whisper aligns every word of the voice.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use reelsmith::config::ChannelSet;
use reelsmith::engines::models::{ModelRef, StageModels};
use reelsmith::pipeline::job::{prepare_text, RenderRequest};
use reelsmith::pipeline::{ArtifactCache, Quality, Stage, StageCtx};
use reelsmith::stages::plan::{plan_schema, PlanStage};
use reelsmith_llm::llm::Schema;
use tokio_util::sync::CancellationToken;

fn llm_ref(path: &Path) -> ModelRef {
    ModelRef {
        id: "smollm2-test".into(),
        path: path.to_path_buf(),
        fingerprint: "test".into(),
        params: Some(135_000_000),
    }
}

/// Runs the plan stage alone for `script`; returns plan.json's text and the stage's dir.
fn plan_once(script: &Path, models: &StageModels, root: &Path, tag: &str) -> String {
    let channels = ChannelSet::load(None).unwrap();
    let req = RenderRequest {
        script: script.to_path_buf(),
        channel: None,
        languages: None,
        out: root.join("out"),
        quality: Quality::Draft,
        seed: 1,
    };
    let text = std::fs::read_to_string(script).unwrap();
    let job = prepare_text(&req, &text, &channels, models).unwrap();
    let out = root.join(tag);
    std::fs::create_dir_all(&out).unwrap();
    let cache = ArtifactCache::open(&root.join("cache"), &root.join("tmp")).unwrap();
    let inputs = BTreeMap::new();
    let cancel = CancellationToken::new();
    let progress = |_: f32| {};
    let ctx = StageCtx::new(&job, None, &inputs, &out, &cancel, &cache, &progress);
    PlanStage.run(&ctx).unwrap();
    std::fs::read_to_string(out.join("plan.json")).unwrap()
}

#[test]
fn llm_plans_every_example_with_schema_valid_json() {
    let Some(gguf) = llm_model() else { return };
    let models = StageModels {
        llm: Some(llm_ref(&gguf)),
        asr: None,
        tts: Default::default(),
        image: None,
        refiner: None,
        video: None,
        ..Default::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/examples");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(names.len() >= 4);
    for script in names {
        let name = script.file_name().unwrap().to_string_lossy().into_owned();
        let root = tmp.path().join(&name);
        let text = plan_once(&script, &models, &root, "a");
        let plan: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(plan["planner"], "llm/smollm2-test@1", "{name}: {text}");

        // What the model wrote, batch by batch, against the schema it was given, and the whole
        // plan's schema document as written.
        let raw = read_json(&root.join("a/llm-plan.json"));
        let doc = read_json(&root.join("a/plan.schema.json"));
        assert_eq!(doc["type"], "object");
        let scene_ids: Vec<String> = plan["scenes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        let char_ids: Vec<String> = plan["characters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        let batches = raw.as_array().unwrap();
        let mut first = 0;
        for (b, answer) in batches.iter().enumerate() {
            let n = answer["scenes"].as_array().unwrap().len();
            let schema: Schema = plan_schema(
                if b == 0 { &char_ids } else { &[] },
                &scene_ids[first..first + n],
            );
            schema
                .validate(answer)
                .unwrap_or_else(|e| panic!("{name}: batch {b}: {e}\n{answer}"));
            first += n;
        }
        assert_eq!(first, scene_ids.len(), "{name}: every scene planned");

        // The plan uses it: shots with known framings and camera moves, character sheets, and
        // prompts with words in them.
        for s in plan["scenes"].as_array().unwrap() {
            let shots = s["shots"].as_array().unwrap();
            assert!((1..=3).contains(&shots.len()), "{name}: {s}");
            for shot in shots {
                let cam = shot["camera"].as_str().unwrap();
                assert!(
                    [
                        "zoom-in",
                        "zoom-out",
                        "pan-left",
                        "pan-right",
                        "pan-up",
                        "pan-down",
                        "static"
                    ]
                    .contains(&cam),
                    "{name}: {cam}"
                );
                assert!(!shot["action"].as_str().unwrap().trim().is_empty());
            }
            let words = s["prompt"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .filter(|w| w.chars().any(char::is_alphabetic))
                .count();
            assert!(words >= 3, "{name}: {s}");
        }
        for c in plan["characters"].as_array().unwrap() {
            let look = c["look"].as_str().unwrap_or_default();
            assert!(
                look.chars().filter(|c| c.is_alphabetic()).count() >= 4,
                "{name}: {c}"
            );
        }

        // Same seed, same plan.
        let again = plan_once(&script, &models, &root, "b");
        assert_eq!(text, again, "{name}: the LLM plan is deterministic");
    }
}

#[test]
fn render_with_llm_and_whisper_translates_aligns_and_writes_metadata() {
    let (Some(gguf), Some(whisper)) = (llm_model(), asr::model_dir()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (data, config, out) = (
        tmp.path().join("data"),
        tmp.path().join("config"),
        tmp.path().join("out"),
    );
    // The script has English only; Spanish comes from the LLM.
    let script = example("notes.txt");
    let o = reelsmith_env(
        &data,
        &config,
        &[
            "render",
            script.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quality",
            "draft",
            "--lang",
            "en,es",
        ],
        &[("REELSMITH_LLM", &gguf), ("REELSMITH_ASR", &whisper)],
    );
    assert!(
        o.status.success(),
        "render failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let project = out.join("notes");
    let report = read_json(&project.join("report.json"));
    let engines: BTreeMap<String, String> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["node"].as_str().unwrap().to_string(),
                s["engine"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        engines["plan"], "llm/smollm2-135m-instruct-q4_1.gguf@1",
        "{engines:?}"
    );
    assert!(engines["translate:es"].starts_with("llm/"), "{engines:?}");
    assert!(engines["metadata:en"].starts_with("llm/"), "{engines:?}");
    assert!(
        engines["align:en"].contains("whisper-align/whisper-base@1"),
        "{engines:?}"
    );

    for lang in ["en", "es"] {
        let dir = project.join(lang);
        let timeline = &report["timelines"][lang];
        let mut aligned = 0;
        for line in timeline["lines"].as_array().unwrap() {
            let (s, e) = (
                line["start"].as_f64().unwrap(),
                line["end"].as_f64().unwrap(),
            );
            let words = line["words"].as_array().cloned().unwrap_or_default();
            if words.is_empty() {
                continue;
            }
            aligned += 1;
            let mut prev = s;
            for w in &words {
                let (ws, we) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
                assert!(
                    ws + 1e-9 >= prev && we + 1e-9 >= ws && we <= e + 1e-9,
                    "{lang}: {line}"
                );
                prev = ws;
            }
            // The words spread over the voice rather than bunching at one end.
            let last = words.last().unwrap()["end"].as_f64().unwrap();
            if words.len() >= 3 {
                assert!(last - s > (e - s) * 0.5, "{lang}: words end early: {line}");
            }
        }
        let n_lines = timeline["lines"].as_array().unwrap().len();
        assert!(
            aligned == n_lines,
            "{lang}: {aligned} of {n_lines} lines aligned"
        );

        ordered_cues(&dir, lang);

        let meta = read_json(&dir.join("metadata.json"));
        assert!(
            meta["writer"].as_str().unwrap().starts_with("llm/"),
            "{meta}"
        );
        let tags = meta["tags"].as_array().unwrap();
        assert!(
            tags.len() > 3,
            "{lang}: LLM tags added to the script's: {meta}"
        );
        let total: usize = tags
            .iter()
            .map(|t| t.as_str().unwrap().chars().count() + 1)
            .sum();
        assert!(total <= 500);

        let info = reelsmith::media::decode::probe(&dir.join("final.mp4")).unwrap();
        assert!(info.video.is_some() && info.audio.is_some());
    }
    // Spanish texts the script lacks were written by the model.
    let es = std::fs::read_dir(data.join("artifacts"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path().join("text.json");
            p.is_file().then(|| read_json(&p))
        })
        .find(|t| t["lang"] == "es")
        .expect("a Spanish text.json");
    let translated = es["machine_translated"].as_array().unwrap();
    assert!(translated.iter().any(|f| f == "title"), "{es}");
    assert!(translated.len() >= 6, "{es}");
    for s in es["scenes"].as_array().unwrap() {
        for l in s["lines"].as_array().unwrap() {
            assert!(!l.as_str().unwrap().trim().is_empty());
        }
    }
}
