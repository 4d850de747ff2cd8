//! The LLM behind the plan, translate and metadata stages: loading through the loaded-model
//! cache, and schema-guided generation with a seed per attempt.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use reelsmith_llm::llm::{
    generate_json, LlmEngine, LoadOptions, Message, Schema, StructuredOptions, StructuredOutput,
};

use super::loaded::{self, ModelKey};
use super::models::ModelRef;
use super::EngineError;

/// A loaded LLM shared between tasks (one generation at a time).
pub type SharedLlm = Arc<Mutex<LlmEngine>>;

/// Engine id for artifact keys and reports.
pub fn engine_id(m: &ModelRef) -> String {
    format!("llm/{}@1", m.id)
}

/// Host memory the model takes while loaded: the file plus a 4k-token KV cache and scratch.
pub fn ram_bytes(m: &ModelRef) -> u64 {
    // A checkpoint folder holds its weights in *.safetensors files (run in f32 on the CPU: up to
    // twice their bf16 size).
    let file = if m.path.is_dir() {
        crate::engines::models::checkpoint_weights(&m.path)
            .iter()
            .map(|p| std::fs::metadata(p).map(|x| x.len()).unwrap_or(0))
            .sum::<u64>()
            * 2
    } else {
        std::fs::metadata(&m.path).map(|x| x.len()).unwrap_or(0)
    };
    file + file / 5 + (64 << 20)
}

/// What a task running `m` needs: its memory and both cores (the engine's own thread pool).
pub fn resources(m: &ModelRef) -> crate::pipeline::Resources {
    crate::pipeline::Resources {
        cpu_slots: 2,
        ram_bytes: ram_bytes(m),
        ..Default::default()
    }
}

/// The model, from the cache or loaded now.
pub fn load(m: &ModelRef) -> Result<SharedLlm, EngineError> {
    let key = ModelKey {
        model: format!("{}#{}", m.id, m.fingerprint),
        device: None,
        dtype: "gguf".into(),
    };
    let engine: Arc<Mutex<LlmEngine>> = loaded::shared(&key, ram_bytes(m), || {
        LlmEngine::load(&m.path, &LoadOptions::default())
            .map(Mutex::new)
            .map_err(|e| EngineError::Failed {
                engine: engine_id(m),
                message: format!("{}: {e}", m.path.display()),
            })
    })?;
    Ok(engine)
}

/// English name of a language code, for prompts.
pub fn language_name(code: &str) -> &str {
    match code {
        "en" => "English",
        "ja" => "Japanese",
        "es" => "Spanish",
        "zh" => "Chinese",
        "hi" => "Hindi",
        "ar" => "Arabic",
        "bn" => "Bengali",
        "pt" => "Portuguese",
        "ru" => "Russian",
        "fr" => "French",
        "de" => "German",
        other => other,
    }
}

/// One structured answer to `messages`. `on_token` gets the count of chosen tokens and may
/// cancel.
pub fn ask(
    llm: &SharedLlm,
    messages: &[Message],
    schema: &Schema,
    seed: u64,
    temperature: f32,
    on_token: &mut dyn FnMut(usize) -> ControlFlow<()>,
) -> Result<StructuredOutput, String> {
    let mut engine = llm.lock().unwrap_or_else(|p| p.into_inner());
    let prompt = engine.render_chat(messages);
    let opts = StructuredOptions {
        seed,
        temperature,
        ..StructuredOptions::default()
    };
    generate_json(&mut engine, &prompt, schema, &opts, on_token).map_err(|e| e.to_string())
}

/// Cleans a generated text value: collapses whitespace, drops wrapping quotes or markup and
/// dangling punctuation a small model leaves at the end.
pub fn tidy(s: &str) -> String {
    let mut out = s.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        let t = out
            .trim_matches(|c: char| {
                matches!(c, '*' | '`' | '#' | '\'' | '"' | '{' | '}' | '[' | ']')
            })
            .trim_end_matches([',', ';', ':', '-', '(', '/', '\\', '|'])
            .trim()
            .to_string();
        if t == out {
            return out;
        }
        out = t;
    }
}

/// Whether a text looks like words rather than noise: at least `min_words` words of two or
/// more letters, and letters make up most of it.
pub fn wordy(s: &str, min_words: usize) -> bool {
    let words = s
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 2)
        .count();
    let letters = s.chars().filter(|c| c.is_alphabetic()).count();
    let visible = s.chars().filter(|c| !c.is_whitespace()).count().max(1);
    // Scripts written without spaces (Chinese, Japanese) count every two letters as a word.
    let cjk = s
        .chars()
        .filter(|c| matches!(*c as u32, 0x2E80..=0x9FFF | 0xF900..=0xFAFF))
        .count();
    let words = words.max(cjk / 2);
    words >= min_words && letters * 10 >= visible * 6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_strips_markup_and_dangling_punctuation() {
        assert_eq!(tidy("  \"a  red\n fox,\" "), "a red fox");
        assert_eq!(tidy("**bold**"), "bold");
        assert_eq!(tidy("set auto}"), "set auto");
        assert_eq!(tidy("ends well."), "ends well.");
    }

    #[test]
    fn wordy_rejects_noise() {
        assert!(wordy("a lighthouse on a cliff at dawn", 3));
        assert!(!wordy("Lighthouse-Federation_2", 3));
        assert!(!wordy("12 34 56 !!", 1));
        assert!(wordy("灯台守が夜明けの海を見つめる", 3));
    }
}
