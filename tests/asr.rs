//! End-to-end tests on the real Whisper base weights with espeak-ng speech.
//!
//! Needs the model from `scripts/fetch-test-models.sh`; when it is absent
//! the tests fail with that command, unless REELSMITH_TEST_MODELS_OPTIONAL=1
//! (then they skip).

mod common;

use std::sync::{Mutex, OnceLock};

use candle_core::Device;
use reelsmith::engines::whisper::{
    to_srt, to_vtt, TranscribeOptions, Transcript, Whisper, WhisperError,
};

const ENGLISH: &str = "The museum opens early in the morning and closes late in the evening. \
    Visitors can buy their tickets at the front desk. \
    Please keep your bags in the lockers near the entrance.";

/// Where the model runs: `REELSMITH_TEST_DEVICE` (cpu by default; `scripts/gpu-check.sh` sets
/// cuda, where Whisper computes in f16).
fn test_device() -> Device {
    reelsmith_kit::testing::TestDevice::from_env().device
}

/// One model shared by all tests (loading takes a moment; decoding in
/// parallel would only fight over the CPU).
fn model() -> Option<&'static Mutex<Whisper>> {
    static MODEL: OnceLock<Option<Mutex<Whisper>>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            common::asr::model_dir().map(|dir| {
                Mutex::new(Whisper::load(&dir, &test_device()).expect("load whisper-base"))
            })
        })
        .as_ref()
}

fn onset_seconds(pcm: &[f32]) -> f64 {
    let i = pcm.iter().position(|v| v.abs() > 0.02).unwrap_or(0);
    i as f64 / 16_000.0
}

fn check_timeline(t: &Transcript, duration: f64) {
    let mut cursor = 0.0;
    let mut word_cursor = 0.0;
    for s in &t.segments {
        assert!(
            s.start >= cursor - 1e-9,
            "segment starts before previous end: {t:#?}"
        );
        assert!(
            s.end >= s.start && s.end <= duration + 1e-9,
            "bad segment {s:?}"
        );
        cursor = s.end;
        for w in &s.words {
            assert!(w.start >= word_cursor - 1e-9, "words overlap: {w:?}");
            assert!(
                w.start >= s.start - 1e-9 && w.end <= s.end + 1e-9,
                "word outside segment: {w:?}"
            );
            assert!(w.end >= w.start);
            assert!((0.0..=1.0).contains(&w.prob), "{w:?}");
            word_cursor = w.end;
        }
    }
}

#[test]
fn english_transcription_with_word_timestamps() {
    let Some(model) = model() else { return };
    let pcm = common::asr::espeak("en", ENGLISH);
    let duration = pcm.len() as f64 / 16_000.0;
    let opts = TranscribeOptions {
        word_timestamps: true,
        ..Default::default()
    };
    let t = model.lock().unwrap().transcribe(&pcm, &opts).unwrap();
    let wer = common::asr::wer(ENGLISH, &t.text);
    eprintln!("text: {}\nWER: {:.3}", t.text, wer);
    assert_eq!(t.language, "en");
    assert!(t.language_prob > 0.5, "{}", t.language_prob);
    assert!(wer <= 0.25, "WER {wer:.3} too high: {}", t.text);

    check_timeline(&t, duration);
    let words: Vec<_> = t.segments.iter().flat_map(|s| &s.words).collect();
    assert!(words.len() >= 20, "only {} words", words.len());
    let onset = onset_seconds(&pcm);
    assert!(
        (words[0].start - onset).abs() <= 1.0,
        "first word at {} but speech starts at {onset}",
        words[0].start
    );
    // Words are spread over the clip, not piled up at one point.
    let last = words.last().unwrap();
    assert!(last.end > duration * 0.7, "last word ends at {}", last.end);

    let srt = to_srt(&t);
    assert!(srt.starts_with("1\n00:00:0"), "{srt}");
    assert!(to_vtt(&t).starts_with("WEBVTT\n\n"));
}

#[test]
fn long_audio_uses_several_windows() {
    let Some(model) = model() else { return };
    // ~45 s: the paragraph four times with pauses.
    let one = common::asr::espeak("en", ENGLISH);
    let mut pcm = Vec::new();
    for _ in 0..4 {
        pcm.extend_from_slice(&one);
        pcm.extend(std::iter::repeat_n(0.0, 16_000));
    }
    let duration = pcm.len() as f64 / 16_000.0;
    assert!(duration > 35.0);
    let progress = std::sync::Arc::new(Mutex::new(Vec::new()));
    let sink = progress.clone();
    let opts = TranscribeOptions {
        language: Some("en".into()),
        word_timestamps: true,
        progress: Some(std::sync::Arc::new(move |f| sink.lock().unwrap().push(f))),
        ..Default::default()
    };
    let t = model.lock().unwrap().transcribe(&pcm, &opts).unwrap();
    let reference = [ENGLISH; 4].join(" ");
    let wer = common::asr::wer(&reference, &t.text);
    eprintln!("long text: {}\nWER: {wer:.3}", t.text);
    assert!(wer <= 0.25, "WER {wer:.3}: {}", t.text);
    check_timeline(&t, duration);
    assert!(t.segments.last().unwrap().end > 30.0);
    let p = progress.lock().unwrap();
    assert!(p.len() >= 3 && p.windows(2).all(|w| w[0] <= w[1]), "{p:?}");
    assert_eq!(*p.last().unwrap(), 1.0);
}

#[test]
fn detects_spanish_and_german() {
    let Some(model) = model() else { return };
    let mut m = model.lock().unwrap();
    let es = common::asr::espeak(
        "es",
        "Buenos días. Hoy vamos a hablar de la historia de la ciudad y de sus mercados antiguos.",
    );
    let (lang, p) = m.detect_language(&es).unwrap();
    eprintln!("spanish clip -> {lang} ({p:.3})");
    assert_eq!(lang, "es");
    let de = common::asr::espeak(
        "de",
        "Guten Morgen. Heute sprechen wir über die Geschichte der Stadt und ihre alten Märkte.",
    );
    let (lang, p) = m.detect_language(&de).unwrap();
    eprintln!("german clip -> {lang} ({p:.3})");
    assert_eq!(lang, "de");
    let en = common::asr::espeak("en", ENGLISH);
    let (lang, _) = m.detect_language(&en).unwrap();
    assert_eq!(lang, "en");
}

#[test]
fn cancel_flag_stops_transcription() {
    let Some(model) = model() else { return };
    let pcm = common::asr::espeak("en", ENGLISH);
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let opts = TranscribeOptions {
        cancel: Some(flag),
        ..Default::default()
    };
    let err = model.lock().unwrap().transcribe(&pcm, &opts).unwrap_err();
    assert!(matches!(err, WhisperError::Cancelled), "{err}");
}

#[test]
fn silence_gives_no_segments_inside_clip() {
    let Some(model) = model() else { return };
    let pcm = vec![0f32; 16_000 * 3];
    let opts = TranscribeOptions {
        language: Some("en".into()),
        ..Default::default()
    };
    let t = model.lock().unwrap().transcribe(&pcm, &opts).unwrap();
    check_timeline(&t, 3.0);
}

#[test]
fn truncated_or_garbage_model_bin_names_the_file() {
    let Some(dir) = common::asr::model_dir() else {
        return;
    };
    let bytes = std::fs::read(dir.join("model.bin")).unwrap();
    let tmp = std::env::temp_dir().join(format!("whisper-bad-model-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for f in ["config.json", "vocabulary.txt", "tokenizer.json"] {
        std::fs::copy(dir.join(f), tmp.join(f)).unwrap();
    }
    let bad = tmp.join("model.bin");
    for content in [
        bytes[..bytes.len() / 3].to_vec(),
        bytes[..bytes.len() - 1].to_vec(),
        b"definitely not a model".to_vec(),
        Vec::new(),
    ] {
        std::fs::write(&bad, &content).unwrap();
        let err = Whisper::load(&tmp, &Device::Cpu).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, WhisperError::ModelFormat { .. }), "{msg}");
        assert!(msg.contains(&bad.display().to_string()), "{msg}");
    }
    std::fs::remove_file(&bad).unwrap();
    let msg = Whisper::load(&tmp, &Device::Cpu).unwrap_err().to_string();
    assert!(msg.contains("model.bin"), "{msg}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// The command line: import the faster-whisper folder, then `transcribe` finds it on its own,
/// prints the text and writes captions.
#[test]
fn transcribe_command_uses_an_imported_model_and_writes_srt() {
    let Some(dir) = common::asr::model_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (data, cfg) = (tmp.path().join("data"), tmp.path().join("cfg"));
    let wav = tmp.path().join("speech.wav");
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", "en", "-w"])
        .arg(&wav)
        .arg(ENGLISH)
        .status()
        .unwrap();
    assert!(status.success());
    let run = |args: &[&str]| {
        let o = std::process::Command::new(common::bin())
            .args(args)
            .env("REELSMITH_DATA_DIR", &data)
            .env("REELSMITH_CONFIG_DIR", &cfg)
            .env("HF_HUB_CACHE", tmp.path().join("hub"))
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&["transcribe", wav.to_str().unwrap()]);
    assert_eq!(code, 2, "no model yet: {err}");
    assert!(err.contains("models import"), "{err}");
    let (code, out, err) = run(&["models", "import", dir.to_str().unwrap(), "--id", "wb"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("asr ct2"), "{out}");
    let srt = tmp.path().join("speech.srt");
    let (code, out, err) = run(&[
        "transcribe",
        wav.to_str().unwrap(),
        "--srt",
        srt.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let wer = common::asr::wer(ENGLISH, &out);
    assert!(wer <= 0.25, "WER {wer}: {out}");
    assert!(err.contains("language: en"), "{err}");
    let srt = std::fs::read_to_string(&srt).unwrap();
    assert!(srt.starts_with("1\n") && srt.contains(" --> "), "{srt}");
    let (code, out, _) = run(&["models", "list", "--kind", "asr", "--installed", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"wb\""), "{out}");
}

#[test]
fn the_llm_engine_reads_a_real_hub_tokenizer_json() {
    // Whisper's tokenizer.json was written by the Hugging Face tokenizers library (GPT-2
    // byte-level BPE). The LLM engine's reader must encode as that library does: the ids below
    // are tokenizers 0.23.3's `encode(text, add_special_tokens=False)` on this very file. (The
    // file lacks GPT-2's first merge, "Ġ t", so " the" is 220 3322 there, while Whisper's own
    // rank-by-id encoder gives 264: files are read as written, not second-guessed.)
    let Some(dir) = common::asr::model_dir() else {
        return;
    };
    let json = std::fs::read_to_string(dir.join("tokenizer.json")).unwrap();
    let llm = reelsmith_llm::llm::Tokenizer::from_tokenizer_json(
        &json,
        None,
        Some("<|endoftext|>"),
        false,
    )
    .unwrap();
    assert_eq!(llm.eos_id(), Some(50257));
    assert_eq!(llm.token_id("<|startoftranscript|>"), Some(50258));
    let cases: [(&str, &[u32]); 3] = [
        (
            ENGLISH,
            &[
                2278, 8441, 9870, 2440, 294, 220, 3322, 2446, 293, 24157, 3469, 294, 220, 3322,
                5634, 13, 10410, 9862, 393, 2256, 220, 3322, 347, 220, 83, 38748, 412, 220, 3322,
                1868, 10026, 13, 2555, 1066, 428, 10405, 294, 220, 3322, 4017, 433, 2651, 220,
                3322, 12014, 13,
            ],
        ),
        (
            " Hello, world! It's 2026 — naïve café, 日本語のテキスト; don't stop.",
            &[
                2425, 11, 1002, 0, 467, 311, 945, 10880, 3466, 1667, 15487, 303, 25118, 11, 220,
                27311, 31348, 2972, 22985, 15535, 40498, 26, 500, 380, 1590, 13,
            ],
        ),
        (
            "  leading spaces\tand\ttabs\nnew lines 12345",
            &[
                220, 5775, 7673, 197, 474, 197, 83, 17243, 198, 7686, 3876, 34466, 8465,
            ],
        ),
    ];
    for (text, want) in cases {
        let ids = llm.encode(text, false);
        assert_eq!(ids, want, "{text:?}");
        assert_eq!(llm.decode(&ids, false), text);
    }
}

/// Writes the CTranslate2 test model as the Hugging Face checkpoint `openai/whisper-base` is
/// published in (transformers' WhisperForConditionalGeneration names, separate Q/K/V,
/// `config.json` head counts, `generation_config.json`).
fn export_hf(ct2_dir: &std::path::Path, out: &std::path::Path) {
    use reelsmith::engines::whisper::ct2::Ct2Model;
    let m = Ct2Model::open(&ct2_dir.join("model.bin")).unwrap();
    let t: std::cell::RefCell<std::collections::HashMap<String, candle_core::Tensor>> =
        Default::default();
    let put = |name: String, values: Vec<f32>, shape: Vec<usize>| {
        let tensor = candle_core::Tensor::from_vec(values, shape, &Device::Cpu)
            .unwrap()
            .to_dtype(candle_core::DType::F16)
            .unwrap();
        t.borrow_mut().insert(format!("model.{name}"), tensor);
    };
    let get = |n: &str| (m.to_f32_vec(n).unwrap(), m.shape(n).unwrap());
    let copy = |to: &str, from: &str| {
        let (v, s) = get(from);
        put(to.to_string(), v, s);
    };
    for c in ["conv1", "conv2"] {
        copy(
            &format!("encoder.{c}.weight"),
            &format!("encoder/{c}/weight"),
        );
        copy(&format!("encoder.{c}.bias"), &format!("encoder/{c}/bias"));
    }
    copy(
        "encoder.embed_positions.weight",
        "encoder/position_encodings/encodings",
    );
    copy("decoder.embed_tokens.weight", "decoder/embeddings/weight");
    copy(
        "decoder.embed_positions.weight",
        "decoder/position_encodings/encodings",
    );
    for side in ["encoder", "decoder"] {
        copy(
            &format!("{side}.layer_norm.weight"),
            &format!("{side}/layer_norm/gamma"),
        );
        copy(
            &format!("{side}.layer_norm.bias"),
            &format!("{side}/layer_norm/beta"),
        );
        let mut i = 0;
        while m.contains(&format!("{side}/layer_{i}/ffn/linear_0/weight")) {
            let hf = |s: &str| format!("{side}.layers.{i}.{s}");
            let ct = |s: &str| format!("{side}/layer_{i}/{s}");
            let split = |from: &str, to: &[&str], first_bias: bool| {
                let (w, s) = get(&ct(&format!("{from}/weight")));
                let (b, _) = get(&ct(&format!("{from}/bias")));
                let rows = s[0] / to.len();
                for (k, name) in to.iter().enumerate() {
                    let wk = w[k * rows * s[1]..(k + 1) * rows * s[1]].to_vec();
                    put(hf(&format!("{name}.weight")), wk, vec![rows, s[1]]);
                    // K projections carry no bias in Whisper.
                    if !name.ends_with("k_proj") || first_bias {
                        put(
                            hf(&format!("{name}.bias")),
                            b[k * rows..(k + 1) * rows].to_vec(),
                            vec![rows],
                        );
                    }
                }
            };
            split(
                "self_attention/linear_0",
                &["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
                false,
            );
            split("self_attention/linear_1", &["self_attn.out_proj"], true);
            split("ffn/linear_0", &["fc1"], true);
            split("ffn/linear_1", &["fc2"], true);
            if side == "decoder" {
                split("attention/linear_0", &["encoder_attn.q_proj"], true);
                split(
                    "attention/linear_1",
                    &["encoder_attn.k_proj", "encoder_attn.v_proj"],
                    false,
                );
                split("attention/linear_2", &["encoder_attn.out_proj"], true);
            }
            let norm = |to: &str, from: &str| {
                let (g, s) = get(&ct(&format!("{from}/gamma")));
                put(hf(&format!("{to}.weight")), g, s.clone());
                let (b, s) = get(&ct(&format!("{from}/beta")));
                put(hf(&format!("{to}.bias")), b, s);
            };
            norm("self_attn_layer_norm", "self_attention/layer_norm");
            norm("final_layer_norm", "ffn/layer_norm");
            if side == "decoder" {
                norm("encoder_attn_layer_norm", "attention/layer_norm");
            }
            i += 1;
        }
    }
    candle_core::safetensors::save(&*t.borrow(), out.join("model.safetensors")).unwrap();
    let heads = |n: &str| m.scalar_i64(n).unwrap();
    std::fs::write(
        out.join("config.json"),
        serde_json::json!({
            "model_type": "whisper",
            "architectures": ["WhisperForConditionalGeneration"],
            "activation_function": "gelu",
            "encoder_attention_heads": heads("encoder/num_heads"),
            "decoder_attention_heads": heads("decoder/num_heads"),
        })
        .to_string(),
    )
    .unwrap();
    let fw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ct2_dir.join("config.json")).unwrap())
            .unwrap();
    std::fs::write(
        out.join("generation_config.json"),
        serde_json::json!({
            "alignment_heads": fw["alignment_heads"],
            "suppress_tokens": fw["suppress_ids"],
            "begin_suppress_tokens": fw["suppress_ids_begin"],
        })
        .to_string(),
    )
    .unwrap();
    std::fs::copy(ct2_dir.join("tokenizer.json"), out.join("tokenizer.json")).unwrap();
}

#[test]
fn a_hugging_face_whisper_checkpoint_transcribes_like_its_ctranslate2_twin() {
    let (Some(model), Some(dir)) = (model(), common::asr::model_dir()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    export_hf(&dir, tmp.path());
    let mut hf = Whisper::load(tmp.path(), &test_device()).expect("the HF checkpoint loads");
    assert_eq!(hf.dims(), model.lock().unwrap().dims());
    let pcm = common::asr::espeak("en", ENGLISH);
    let opts = TranscribeOptions {
        word_timestamps: true,
        ..Default::default()
    };
    let a = hf.transcribe(&pcm, &opts).unwrap();
    let b = model.lock().unwrap().transcribe(&pcm, &opts).unwrap();
    assert_eq!(a.language, "en");
    assert_eq!(a.text, b.text);
    let words = |t: &Transcript| -> Vec<(String, f64)> {
        t.segments
            .iter()
            .flat_map(|s| &s.words)
            .map(|w| (w.text.clone(), w.start))
            .collect()
    };
    let (wa, wb) = (words(&a), words(&b));
    assert_eq!(wa.len(), wb.len());
    for ((x, sa), (y, sb)) in wa.iter().zip(&wb) {
        assert_eq!(x, y);
        assert!((sa - sb).abs() <= 0.02, "{x}: {sa} vs {sb}");
    }
    // A checkpoint without its config says which file.
    std::fs::remove_file(tmp.path().join("config.json")).unwrap();
    std::fs::write(tmp.path().join("model.bin"), b"").unwrap();
    let err = Whisper::load(tmp.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.bin"), "{err}");
}
