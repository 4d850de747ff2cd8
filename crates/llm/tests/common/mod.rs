//! Shared helpers for the LLM integration tests (real GGUF weights).

use std::path::PathBuf;

/// File name of the pinned SmolLM2 test model.
#[allow(dead_code)]
pub const MODEL_FILE: &str = "smollm2-135m-instruct-q4_1.gguf";
/// Its pinned sha256.
#[allow(dead_code)]
pub const MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Path of the test model, or `None` when it is absent and
/// `REELSMITH_TEST_MODELS_OPTIONAL=1` allows skipping. Panics otherwise.
#[allow(dead_code)]
pub fn model_path() -> Option<PathBuf> {
    test_model(MODEL_FILE, "scripts/fetch-llm-test-model.sh")
}

/// Gemma 3 270M base (gemma3 architecture, SentencePiece vocabulary), Q4_K_M.
#[allow(dead_code)]
pub fn gemma_path() -> Option<PathBuf> {
    test_model(
        "gemma-3-270m-q4_k_m.gguf",
        "scripts/fetch-gemma-test-model.sh",
    )
}

fn test_model(file: &str, script: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("REELSMITH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/reelsmith/test-models")
        });
    let path = dir.join(file);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("REELSMITH_TEST_MODELS_OPTIONAL").as_deref() == Ok("1") {
        eprintln!(
            "skipping: {} is absent (REELSMITH_TEST_MODELS_OPTIONAL=1)",
            path.display()
        );
        return None;
    }
    panic!(
        "test model {} is missing; fetch it with: bash {script}",
        path.display()
    );
}
