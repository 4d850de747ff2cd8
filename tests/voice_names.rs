//! A Piper voice imported from its files answers to the names a user knows it by — its file
//! name with or without `.onnx`, in any case — in `say --voice`, `engines.toml` and
//! `REELSMITH_TTS`, before the registry's entry of the same voice (which is not installed).
//! Uses the real en_US-joe-medium voice (`scripts/fetch-piper-test-voice.sh`).

mod common;

use std::path::Path;

#[test]
fn an_imported_voice_is_found_by_its_file_name_everywhere_a_voice_is_named() {
    let Some(src) = common::piper_voice() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (data, config) = (tmp.path().join("data"), tmp.path().join("config"));
    let voices = tmp.path().join("voices");
    std::fs::create_dir_all(&voices).unwrap();
    let onnx = voices.join("en_US-joe-medium.onnx");
    std::fs::copy(&src, &onnx).unwrap();
    std::fs::copy(
        format!("{}.json", src.display()),
        voices.join("en_US-joe-medium.onnx.json"),
    )
    .unwrap();
    let o = common::reelsmith(
        &data,
        &config,
        &["models", "import", onnx.to_str().unwrap()],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The id is lower-cased on import: the names below differ from it.
    assert!(out.starts_with("en_us-joe-medium: tts onnx"), "{out}");

    for (i, name) in [
        "en_US-joe-medium",
        "en_US-joe-medium.onnx",
        "EN_US-JOE-MEDIUM",
    ]
    .into_iter()
    .enumerate()
    {
        let wav = tmp.path().join(format!("say-{i}.wav"));
        let o = common::reelsmith(
            &data,
            &config,
            &[
                "say",
                "The bridge opens at noon.",
                "--voice",
                name,
                "-o",
                wav.to_str().unwrap(),
            ],
        );
        assert!(
            o.status.success(),
            "--voice {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let audio = reelsmith::media::wav::read(&wav).unwrap();
        assert_eq!(audio.rate, 22_050, "{name}");
        let seconds = audio.samples.len() as f64 / 22_050.0;
        assert!((0.8..5.0).contains(&seconds), "{name}: {seconds:.2} s");
    }

    // The stages' settings read names the same way; `doctor` says which voice they use.
    let uses_the_import = |o: std::process::Output, how: &str| {
        let out = String::from_utf8_lossy(&o.stdout);
        let want = format!(
            "ok   tts en: en_us-joe-medium ({})",
            onnx.canonicalize().unwrap().display()
        );
        assert!(
            out.contains(&want),
            "{how}: {out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let engines = config.join("engines.toml");
    std::fs::write(&engines, "[tts]\nen = \"en_US-joe-medium\"\n").unwrap();
    uses_the_import(
        common::reelsmith(&data, &config, &["doctor"]),
        "engines.toml",
    );
    std::fs::remove_file(&engines).unwrap();
    uses_the_import(
        common::reelsmith_env(
            &data,
            &config,
            &["doctor"],
            &[("REELSMITH_TTS", Path::new("En_US-Joe-Medium.onnx"))],
        ),
        "REELSMITH_TTS",
    );

    // A typo is bad input: the error names the flag and the voices it may have meant.
    let o = common::reelsmith(
        &data,
        &config,
        &[
            "say",
            "Hello.",
            "--voice",
            "en_US-joe-meduim",
            "-o",
            tmp.path().join("typo.wav").to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--voice: en_US-joe-meduim: no tts model has this name")
            && err.contains("en_us-joe-medium (imported from")
            && err.contains("piper-en_US-joe-medium (not installed)"),
        "{err}"
    );
    assert!(!tmp.path().join("typo.wav").exists());
}
