//! Shared helpers for the integration tests: run the real binary, read its outputs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_reelsmith")
}

pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/examples")
        .join(name)
}

/// Runs `reelsmith` with a private data and config dir, and an empty model cache (so models a
/// developer installed don't change what the tests render).
pub fn reelsmith(data: &Path, config: &Path, args: &[&str]) -> Output {
    reelsmith_env(data, config, args, &[])
}

/// [`reelsmith`] with extra environment variables.
pub fn reelsmith_env(data: &Path, config: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args)
        .env("REELSMITH_DATA_DIR", data)
        .env("REELSMITH_CONFIG_DIR", config)
        .env("HF_HOME", config.join("hf-home"))
        .env_remove("HF_HUB_CACHE")
        .env_remove("REELSMITH_LLM")
        .env_remove("REELSMITH_ASR")
        .env_remove("REELSMITH_TTS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the reelsmith binary runs")
}

/// The SmolLM2-135M-Instruct test model (see `scripts/fetch-llm-test-model.sh`); `None` only
/// when it is absent and `REELSMITH_TEST_MODELS_OPTIONAL=1`.
pub fn llm_model() -> Option<PathBuf> {
    test_model(
        "smollm2-135m-instruct-q4_1.gguf",
        "scripts/fetch-llm-test-model.sh",
    )
}

/// The Piper voice en_US-joe-medium (see `scripts/fetch-piper-test-voice.sh`).
pub fn piper_voice() -> Option<PathBuf> {
    test_model(
        "piper/en_US-joe-medium.onnx",
        "scripts/fetch-piper-test-voice.sh",
    )
}

fn test_model(rel: &str, script: &str) -> Option<PathBuf> {
    let root = std::env::var_os("REELSMITH_TEST_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/reelsmith/test-models"))
        })?;
    let p = root.join(rel);
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("REELSMITH_TEST_MODELS_OPTIONAL").as_deref() == Ok("1") {
        return None;
    }
    panic!("{} is missing: run `bash {script}`", p.display());
}

/// Renders `script` into `out` (draft), asserting success.
pub fn render(data: &Path, config: &Path, script: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "render",
        script.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quality",
        "draft",
    ];
    args.extend_from_slice(extra);
    let o = reelsmith(data, config, &args);
    assert!(
        o.status.success(),
        "render {} failed ({}):\n{}",
        script.display(),
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The cues of `dir/captions.srt`, asserting there are some and that they are in order and
/// don't overlap.
pub fn ordered_cues(dir: &Path, lang: &str) -> Vec<reelsmith::captions::Cue> {
    let srt = std::fs::read_to_string(dir.join("captions.srt")).unwrap();
    let cues = reelsmith::captions::parse_srt(&srt).unwrap();
    assert!(!cues.is_empty());
    for w in cues.windows(2) {
        assert!(
            w[0].start < w[0].end && w[0].end <= w[1].start + 1e-9,
            "{lang}: cues overlap: {w:?}"
        );
    }
    cues
}

pub fn read_json(p: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Mean absolute luma-ish difference (mean of RGB) over the rows `y0..y1` of two images.
pub fn band_diff(
    a: &reelsmith::media::image::RgbImage,
    b: &reelsmith::media::image::RgbImage,
    y0: u32,
    y1: u32,
) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let row = a.width as usize * 3;
    let (s, e) = (y0 as usize * row, y1 as usize * row);
    let sum: u64 = a.data[s..e]
        .iter()
        .zip(&b.data[s..e])
        .map(|(&x, &y)| (x as i32 - y as i32).unsigned_abs() as u64)
        .sum();
    sum as f64 / (e - s) as f64
}

/// RMS level in dBFS of interleaved stereo between two times.
pub fn rms_db(stereo: &[f32], rate: u32, from: f64, to: f64) -> f64 {
    let a = ((from * rate as f64) as usize * 2).min(stereo.len());
    let b = ((to * rate as f64) as usize * 2).min(stereo.len());
    let s = &stereo[a..b];
    let ms = s.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>() / s.len().max(1) as f64;
    10.0 * ms.max(1e-20).log10()
}
pub mod asr;
pub mod queue_env;
