//! Helpers shared by the integration tests and the benchmark example:
#![allow(dead_code)]
//! locating the real test model, synthesising speech with espeak-ng,
//! resampling, and word error rate.

use std::path::PathBuf;
use std::process::Command;

/// Command that downloads the test model.
pub const FETCH_HINT: &str = "run `bash scripts/fetch-test-models.sh` (downloads Whisper base, \
     ~145 MB, into ${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}/whisper-base)";

/// Folder of the Whisper base test model.
///
/// Returns `None` (the caller skips) only when the model is absent and
/// `REELSMITH_TEST_MODELS_OPTIONAL=1`; panics with the fetch command when it
/// is absent otherwise.
pub fn model_dir() -> Option<PathBuf> {
    let root = std::env::var_os("REELSMITH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/reelsmith/test-models")
        });
    let dir = root.join("whisper-base");
    if dir.join("model.bin").is_file() {
        return Some(dir);
    }
    if std::env::var("REELSMITH_TEST_MODELS_OPTIONAL").as_deref() == Ok("1") {
        eprintln!("skipping: {} missing; {FETCH_HINT}", dir.display());
        return None;
    }
    panic!("test model missing at {}: {FETCH_HINT}", dir.display());
}

/// Windowed-sinc resampler (Blackman window, 32 zero crossings), with the
/// cut-off at the lower Nyquist frequency.
pub fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || x.is_empty() {
        return x.to_vec();
    }
    let ratio = to as f64 / from as f64;
    let cutoff = ratio.min(1.0) * 0.97;
    let half_width = 32.0 / cutoff;
    let n_out = ((x.len() as f64) * ratio).floor() as usize;
    let mut out = Vec::with_capacity(n_out);
    for i in 0..n_out {
        let t = i as f64 / ratio;
        let lo = (t - half_width).ceil().max(0.0) as usize;
        let hi = ((t + half_width).floor() as usize).min(x.len() - 1);
        let mut acc = 0.0;
        for (k, &v) in x.iter().enumerate().take(hi + 1).skip(lo) {
            let d = t - k as f64;
            let arg = std::f64::consts::PI * cutoff * d;
            let sinc = if arg.abs() < 1e-12 {
                1.0
            } else {
                arg.sin() / arg
            };
            let w = d / half_width; // in [-1, 1]
            let blackman = 0.42
                + 0.5 * (std::f64::consts::PI * w).cos()
                + 0.08 * (2.0 * std::f64::consts::PI * w).cos();
            acc += v as f64 * cutoff * sinc * blackman;
        }
        out.push(acc as f32);
    }
    out
}

/// Reads a WAV file as mono f32 plus its sample rate.
pub fn read_wav(path: &std::path::Path) -> (Vec<f32>, u32) {
    let mut r = hound::WavReader::open(path).expect("open wav");
    let spec = r.spec();
    let ch = spec.channels as usize;
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.expect("sample") as f32 / scale)
                .collect()
        }
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.expect("sample")).collect(),
    };
    let mono = samples
        .chunks(ch)
        .map(|c| c.iter().sum::<f32>() / ch as f32)
        .collect();
    (mono, spec.sample_rate)
}

/// Speaks `text` with espeak-ng voice `voice`, returned as 16 kHz mono.
pub fn espeak(voice: &str, text: &str) -> Vec<f32> {
    // A folder of its own: tests run in parallel, and two may speak texts of one length.
    let dir = tempfile::Builder::new()
        .prefix(&format!("whisper-test-{voice}-"))
        .tempdir()
        .expect("temp dir");
    let wav = dir.path().join("speech.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng must be installed (apt-get install espeak-ng)");
    assert!(status.success(), "espeak-ng failed");
    let (x, rate) = read_wav(&wav);
    resample(&x, rate, 16_000)
}

fn normalise(s: &str) -> Vec<String> {
    s.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate: word-level Levenshtein distance over the reference
/// length, on lowercased words without punctuation.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let r = normalise(reference);
    let h = normalise(hypothesis);
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}
