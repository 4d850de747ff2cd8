//! Gemma 3 270M (gemma3 architecture on the native CPU path, SentencePiece vocabulary rebuilt
//! from the GGUF) against llama.cpp (llama-cpp-python 0.3.36 on the same file): token ids,
//! next-token logits, greedy continuations, sliding-window attention past the window.

mod common;

use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;

use candle_core::quantized::gguf_file;
use reelsmith_llm::llm::{
    Arch, Backend, ChatTemplate, GenerateOptions, IncrementalDecoder, LlmEngine, LoadOptions,
    Message, SamplingParams, Tokenizer,
};

fn tokenizer() -> Option<Tokenizer> {
    let path = common::gemma_path()?;
    let mut r = BufReader::new(File::open(path).unwrap());
    let content = gguf_file::Content::read(&mut r).unwrap();
    Some(Tokenizer::from_gguf(&content).unwrap())
}

/// Token ids llama.cpp (llama-cpp-python 0.3.36, `tokenize(text, add_bos=False, special=True)`)
/// gives for the same GGUF.
const LLAMA_CPP: &[(&str, &[u32])] = &[
    ("Hello world", &[9259, 1902]),
    (
        "The quick brown fox jumps over the lazy dog.",
        &[
            818, 3823, 8864, 37423, 38167, 1024, 506, 31770, 4799, 236761,
        ],
    ),
    (
        "  two  spaces\nand a newline\n\nparagraph",
        &[138, 13498, 138, 35220, 107, 624, 496, 100837, 108, 35781],
    ),
    (
        "Café naïve 日本語のテキスト 123456 ✓ 🎬",
        &[
            160319, 236859, 120362, 33375, 238582, 236945, 95830, 236743, 236770, 236778, 236800,
            236812, 236810, 236825, 71201, 236743, 245357,
        ],
    ),
    (
        "<start_of_turn>user\nHi<end_of_turn>\n",
        &[105, 2364, 107, 10979, 106, 107],
    ),
    (
        "ʕ•ᴥ•ʔ \x07 zzqx",
        &[
            249744, 237213, 250008, 237213, 246332, 236743, 245, 206247, 203221,
        ],
    ),
];

#[test]
fn sentencepiece_ids_match_llama_cpp() {
    let Some(tok) = tokenizer() else { return };
    assert!(tok.is_sentencepiece());
    assert_eq!(tok.vocab_size(), 262_144);
    assert_eq!(tok.bos_id(), Some(2));
    assert!(tok.add_bos());
    for (text, want) in LLAMA_CPP {
        let got = tok.encode(text, true);
        assert_eq!(&got, want, "{text:?}");
        assert_eq!(tok.decode(&got, true), *text, "round trip of {text:?}");
    }
    // Without special-token parsing, control tokens are text (llama.cpp: the same ids).
    let plain = tok.encode("<start_of_turn>user\nHi<end_of_turn>\n", false);
    assert_eq!(
        plain,
        [
            236820, 3041, 236779, 1340, 236779, 887, 236813, 2364, 107, 10979, 236820, 643, 236779,
            1340, 236779, 887, 236813, 107
        ]
    );
    // Byte fallback (the BEL above is <0x07>) streams back without splitting characters.
    let text = "日本語 ʕ•ᴥ•ʔ 🎬 \x07";
    let mut dec = IncrementalDecoder::new();
    let mut out = String::new();
    for id in tok.encode(text, false) {
        let piece = dec.push(&tok, id, false);
        assert!(!piece.contains('\u{FFFD}'), "{piece:?}");
        out.push_str(&piece);
    }
    out.push_str(&dec.finish());
    assert_eq!(out, text);
}

/// llama.cpp's greedy continuations of these prompts (12 tokens, BOS added).
const LLAMA_CPP_GREEDY: &[(&str, &[u32])] = &[
    (
        "The capital of France is",
        &[
            506, 5279, 529, 506, 2891, 529, 7001, 236761, 1030, 563, 506, 7488,
        ],
    ),
    (
        "Water boils at a temperature of",
        &[
            236743, 236770, 236771, 236771, 10674, 57356, 236761, 108, 17390, 104264, 657, 496,
        ],
    ),
    (
        "Once upon a time, there was a little",
        &[
            3953, 7489, 60708, 236761, 2625, 691, 496, 1401, 6538, 3953, 236764, 532,
        ],
    ),
];

fn top(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|a, b| logits[*b].total_cmp(&logits[*a]));
    idx[..k].iter().map(|&i| (i as u32, logits[i])).collect()
}

/// The same best token, the same set of top ids, and each logit within `tol` of llama.cpp's
/// (ids closer than `tol` may swap places: the engines round k-quant dot products differently).
fn assert_top_matches(ours: &[(u32, f32)], reference: &[(u32, f32)], tol: f32) {
    assert_eq!(
        ours[0].0, reference[0].0,
        "ours {ours:?}, llama.cpp {reference:?}"
    );
    for (id, want) in reference {
        let got = ours.iter().find(|x| x.0 == *id);
        assert!(
            got.is_some_and(|(_, v)| (v - want).abs() < tol),
            "token {id}: ours {ours:?}, llama.cpp {reference:?}"
        );
    }
}

#[test]
fn gemma3_runs_natively_and_agrees_with_llama_cpp() {
    let Some(path) = common::gemma_path() else {
        return;
    };
    let mut engine = LlmEngine::load(&path, &LoadOptions::default()).expect("loads");
    assert_eq!(engine.config().arch, Arch::Gemma3);
    assert!(matches!(engine.backend(), Backend::Cpu(_)));
    assert!(matches!(engine.chat_template(), ChatTemplate::Gemma));
    let prompt = engine.render_chat(&[Message::system("Be brief."), Message::user("Hi")]);
    assert_eq!(
        prompt,
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    );
    let ids = engine.tokenize_prompt(&prompt);
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 1, "one BOS");
    let end_of_turn = engine.tokenizer().token_id("<end_of_turn>").unwrap();
    assert!(engine.stop_token_ids().contains(&end_of_turn));

    // Next-token logits after "The capital of France is" (llama.cpp: logits_all).
    let ids = engine.tokenize_prompt("The capital of France is");
    assert_eq!(ids, [2, 818, 5279, 529, 7001, 563]);
    engine.reset().unwrap();
    let l = engine.forward(&ids).unwrap().to_vec();
    assert_top_matches(
        &top(&l, 4),
        &[(506, 18.999), (496, 18.492), (9079, 18.324), (886, 18.103)],
        0.35,
    );

    // Greedy continuations: the first 10 tokens are llama.cpp's (later ones may part on
    // near-ties: the two engines round their k-quant dot products differently).
    let greedy = GenerateOptions {
        sampling: SamplingParams::greedy(),
        max_tokens: 10,
        stop: Vec::new(),
    };
    for (prompt, want) in LLAMA_CPP_GREEDY {
        let g = engine
            .complete(prompt, &greedy, |_| ControlFlow::Continue(()))
            .unwrap();
        assert_eq!(g.tokens, want[..10], "{prompt:?} → {:?}", g.text);
    }
    let g = engine
        .complete("Water boils at a temperature of", &greedy, |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(g.text.starts_with(" 100 degrees Celsius."), "{:?}", g.text);
}

#[test]
fn gemma3_sliding_window_layers_match_llama_cpp_past_the_window() {
    let Some(path) = common::gemma_path() else {
        return;
    };
    let mut engine = LlmEngine::load(&path, &LoadOptions::default()).expect("loads");
    assert_eq!(engine.config().sliding_window, Some(512));
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra",
        "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
    ];
    let filler: Vec<&str> = (0..400).map(|i| words[i % 26]).collect();
    let text = format!(
        "The secret word is zebra. {}. The secret word is",
        filler.join(" ")
    );
    let ids = engine.tokenize_prompt(&text);
    assert_eq!(ids.len(), 551, "llama.cpp counts 551 tokens");
    // In one batch, and as a prefix plus single steps across the window edge.
    let batch = engine.forward(&ids).unwrap().to_vec();
    let reference = [
        (78328, 17.668),
        (904, 15.242),
        (14434, 15.031),
        (496, 13.947),
        (506, 13.712),
    ];
    assert_top_matches(&top(&batch, 5), &reference, 0.5);
    engine.reset().unwrap();
    engine.forward(&ids[..505]).unwrap();
    let mut stepped = Vec::new();
    for t in &ids[505..] {
        stepped = engine.forward(std::slice::from_ref(t)).unwrap().to_vec();
    }
    assert_top_matches(&top(&stepped, 5), &reference, 0.5);
}
