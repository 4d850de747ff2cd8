//! End-to-end generation tests with the SmolLM2-135M test model.

mod common;

use std::ops::ControlFlow;

use reelsmith_llm::llm::{
    ChatTemplate, FinishReason, GenerateOptions, LlmEngine, LoadOptions, Message, SamplingParams,
};

fn engine() -> Option<LlmEngine> {
    let path = common::model_path()?;
    Some(LlmEngine::load(&path, &LoadOptions::default()).expect("model loads"))
}

fn run(engine: &mut LlmEngine, msgs: &[Message], opts: &GenerateOptions) -> (String, Vec<u32>) {
    let mut streamed = String::new();
    let g = engine
        .chat(msgs, opts, |piece| {
            streamed.push_str(piece);
            ControlFlow::Continue(())
        })
        .expect("generation");
    assert_eq!(streamed, g.text, "streamed text equals the final text");
    (g.text, g.tokens)
}

#[test]
fn model_file_matches_pinned_hash() {
    let Some(path) = common::model_path() else {
        return;
    };
    assert_eq!(
        reelsmith_llm::llm::sha256_file(path).unwrap(),
        common::MODEL_SHA256
    );
}

#[test]
fn smollm2_chat_template_is_exact_chatml() {
    let Some(engine) = engine() else { return };
    assert!(matches!(
        engine.chat_template(),
        ChatTemplate::ChatMl { .. }
    ));
    let s = engine.render_chat(&[Message::user("What is the capital of France?")]);
    assert_eq!(
        s,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    );
    let s = engine.render_chat(&[
        Message::system("Be brief."),
        Message::user("Hi"),
        Message::assistant("Hello!"),
        Message::user("Bye"),
    ]);
    assert_eq!(
        s,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
    );
    let im_end = engine.tokenizer().token_id("<|im_end|>").unwrap();
    assert!(engine.stop_token_ids().contains(&im_end));
}

#[test]
fn greedy_answer_mentions_paris() {
    let Some(mut engine) = engine() else { return };
    let opts = GenerateOptions {
        sampling: SamplingParams::greedy(),
        max_tokens: 48,
        stop: Vec::new(),
    };
    // With the bare question "What is the capital of France?" this 135M Q4_1
    // model rambles ("L'Étoile, la Marseillaise, ...") under greedy decoding,
    // identically with candle-transformers' stock model; asking for a brief
    // answer gives "The capital of France is Paris." with both.
    let msgs = [Message::user(
        "What is the capital of France? Answer briefly.",
    )];
    let (text, tokens) = run(&mut engine, &msgs, &opts);
    assert!(text.contains("Paris"), "answer: {text:?}");
    // Greedy decoding is repeatable (second run reuses the cached prompt).
    let (text2, tokens2) = run(&mut engine, &msgs, &opts);
    assert_eq!(tokens, tokens2);
    assert_eq!(text, text2);
    // ...and also from a fresh cache.
    engine.reset().unwrap();
    let (_, tokens3) = run(&mut engine, &msgs, &opts);
    assert_eq!(tokens, tokens3);
}

#[test]
fn seeded_sampling_is_deterministic() {
    let Some(mut engine) = engine() else { return };
    let opts = |seed| GenerateOptions {
        sampling: SamplingParams {
            temperature: 0.9,
            top_k: 50,
            top_p: 0.95,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed,
        },
        max_tokens: 40,
        stop: Vec::new(),
    };
    let msgs = [Message::user("Write one sentence about the sea.")];
    let (a, ta) = run(&mut engine, &msgs, &opts(1234));
    let (b, tb) = run(&mut engine, &msgs, &opts(1234));
    assert_eq!(ta, tb);
    assert_eq!(a, b);
    assert!(!a.is_empty());
}

#[test]
fn stop_sequences_cancel_and_limits() {
    let Some(mut engine) = engine() else { return };
    let msgs = [Message::user("Count from 1 to 20, separated by commas.")];
    let base = GenerateOptions {
        sampling: SamplingParams::greedy(),
        max_tokens: 60,
        stop: Vec::new(),
    };
    let (full, _) = run(&mut engine, &msgs, &base);
    assert!(full.contains('5'), "expected counting: {full:?}");
    // A stop sequence truncates the output before it.
    let stopped = GenerateOptions {
        stop: vec!["5".to_string()],
        ..base.clone()
    };
    let mut streamed = String::new();
    let g = engine
        .chat(&msgs, &stopped, |p| {
            streamed.push_str(p);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(g.finish, FinishReason::StopSequence);
    assert!(!g.text.contains('5'));
    assert_eq!(streamed, g.text);
    assert!(full.starts_with(&g.text));
    // The callback can cancel.
    let mut calls = 0;
    let g = engine
        .chat(&msgs, &base, |_| {
            calls += 1;
            if calls == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(g.finish, FinishReason::Cancelled);
    assert_eq!(calls, 3);
    // max_tokens is honoured.
    let g = engine
        .chat(
            &msgs,
            &GenerateOptions {
                max_tokens: 5,
                ..base
            },
            |_| ControlFlow::Continue(()),
        )
        .unwrap();
    assert_eq!(g.tokens.len(), 5);
    assert_eq!(g.finish, FinishReason::MaxTokens);
}
