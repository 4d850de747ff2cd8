//! Tokenizer tests against the SmolLM2 vocabulary embedded in the GGUF file.

mod common;

use std::fs::File;
use std::io::BufReader;

use candle_core::quantized::gguf_file;
use reelsmith_llm::llm::{IncrementalDecoder, Tokenizer};

fn tokenizer() -> Option<Tokenizer> {
    let path = common::model_path()?;
    let mut r = BufReader::new(File::open(path).unwrap());
    let content = gguf_file::Content::read(&mut r).unwrap();
    Some(Tokenizer::from_gguf(&content).unwrap())
}

const MIXED: &str = "Hello, world! Ça va? Voilà — naïve café, Straße.\n\
日本語のテキストと中文字符。한국어도.\n\
Emoji: 😀🎬👨‍👩‍👧 ✨\n\
fn main() {\n    let x = vec![1, 22, 333];\n\tprintln!(\"{x:?}\"); // 4.5e-3\n}\n\
   multiple   spaces\t\ttabs\r\nCRLF 12345678 it's we'll they've";

#[test]
fn round_trip_mixed_text() {
    let Some(tok) = tokenizer() else { return };
    let ids = tok.encode(MIXED, true);
    assert!(ids.len() > 50, "suspiciously few tokens: {}", ids.len());
    assert_eq!(tok.decode(&ids, true), MIXED);
    // Streaming decode yields the same text and never splits a character.
    let mut dec = IncrementalDecoder::new();
    let mut streamed = String::new();
    for &id in &ids {
        let piece = dec.push(&tok, id, true);
        assert!(
            !piece.contains('\u{FFFD}'),
            "replacement char in streamed piece"
        );
        streamed.push_str(&piece);
    }
    streamed.push_str(&dec.finish());
    assert_eq!(streamed, MIXED);
}

#[test]
fn special_tokens_are_single_ids() {
    let Some(tok) = tokenizer() else { return };
    let im_start = tok.token_id("<|im_start|>").expect("<|im_start|> in vocab");
    let im_end = tok.token_id("<|im_end|>").expect("<|im_end|> in vocab");
    assert_eq!(tok.encode("<|im_start|>", true), vec![im_start]);
    let ids = tok.encode("<|im_start|>user\nHi<|im_end|>\n", true);
    assert_eq!(ids[0], im_start);
    assert!(ids.contains(&im_end));
    assert_eq!(tok.decode(&ids, true), "<|im_start|>user\nHi<|im_end|>\n");
    assert_eq!(tok.decode(&ids, false), "user\nHi\n");
    // Without special parsing the marker is spelled out with ordinary tokens.
    let plain = tok.encode("<|im_start|>", false);
    assert!(plain.len() > 1 && !plain.contains(&im_start));
}

#[test]
fn known_segmentation() {
    let Some(tok) = tokenizer() else { return };
    let pieces = |s: &str| -> Vec<String> {
        tok.encode(s, false)
            .iter()
            .map(|&id| tok.token_text(id).unwrap().to_string())
            .collect()
    };
    assert_eq!(pieces("Hello world"), ["Hello", "Ġworld"]);
    // SmolLM splits numbers into single digits.
    assert_eq!(pieces("2024"), ["2", "0", "2", "4"]);
    assert_eq!(
        pieces("The capital of France"),
        ["The", "Ġcapital", "Ġof", "ĠFrance"]
    );
}
