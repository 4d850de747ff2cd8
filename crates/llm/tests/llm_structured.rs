//! Schema-guided JSON generation with the SmolLM2-135M test model.

mod common;

use std::ops::ControlFlow;

use reelsmith_llm::llm::{
    generate_json, LlmEngine, LoadOptions, Message, Schema, StructuredOptions,
};

fn schema() -> Schema {
    let scene = |id: &str| {
        Schema::object([
            ("id", Schema::Const(id.into())),
            ("prompt", Schema::string(12, 160)),
            (
                "shots",
                Schema::array(
                    Schema::object([
                        (
                            "camera",
                            Schema::Enum(vec![
                                "zoom-in".into(),
                                "pan-left".into(),
                                "static".into(),
                            ]),
                        ),
                        ("action", Schema::string(4, 80)),
                    ]),
                    1,
                    3,
                ),
            ),
        ])
    };
    Schema::object([
        ("title", Schema::string(3, 60)),
        (
            "scenes",
            Schema::Tuple(vec![scene("dawn"), scene("storm"), scene("calm")]),
        ),
        ("tags", Schema::array(Schema::string(2, 24), 3, 6)),
    ])
}

fn prompt(engine: &LlmEngine) -> String {
    engine.render_chat(&[
        Message::system("You plan short videos. Answer in JSON."),
        Message::user(
            "A video about a lighthouse keeper: dawn over the sea, a storm at night, calm \
             morning after. Write an image prompt and shots for each scene, a title and tags.",
        ),
    ])
}

#[test]
fn output_parses_matches_the_schema_and_repeats_for_a_seed() {
    let Some(path) = common::model_path() else {
        return;
    };
    let mut engine = LlmEngine::load(&path, &LoadOptions::default()).unwrap();
    let s = schema();
    let p = prompt(&engine);
    let opts = StructuredOptions {
        seed: 7,
        ..StructuredOptions::default()
    };
    let mut calls = 0;
    let a = generate_json(&mut engine, &p, &s, &opts, &mut |_| {
        calls += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    eprintln!("{}", a.text);
    eprintln!(
        "{} sampled, {} fed, {:.2} s",
        a.sampled_tokens,
        a.fed_tokens,
        a.elapsed.as_secs_f64()
    );
    assert_eq!(calls, a.sampled_tokens);
    s.validate(&a.value).unwrap();
    // An independent parse, and the constants in place.
    let v: serde_json::Value = serde_json::from_str(&a.text).unwrap();
    let ids: Vec<&str> = v["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["dawn", "storm", "calm"]);
    for sc in v["scenes"].as_array().unwrap() {
        let p = sc["prompt"].as_str().unwrap();
        assert!(p.chars().count() >= 12 && !p.starts_with(' '), "{p:?}");
    }
    // Same seed, same document (the KV cache prefix is reused the second time).
    let b = generate_json(&mut engine, &p, &s, &opts, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(a.text, b.text);
    // Another seed samples differently.
    let c = generate_json(
        &mut engine,
        &p,
        &s,
        &StructuredOptions {
            seed: 8,
            ..opts.clone()
        },
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    s.validate(&c.value).unwrap();
    assert_ne!(a.text, c.text);
}

#[test]
fn the_callback_cancels() {
    let Some(path) = common::model_path() else {
        return;
    };
    let mut engine = LlmEngine::load(&path, &LoadOptions::default()).unwrap();
    let p = prompt(&engine);
    let e = generate_json(
        &mut engine,
        &p,
        &schema(),
        &StructuredOptions::default(),
        &mut |n| {
            if n >= 5 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("cancelled"), "{e}");
}
