//! Bad input: a clear message naming the file, line or field, exit code 2, and nothing written.

mod common;

use std::path::Path;

use common::*;

/// Writes `body` as `name` in a fresh project dir, renders it, and returns (exit code, stderr).
fn render_bad(name: &str, body: &str, extra: &[&str]) -> (i32, String, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("project").join(name);
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(&script, body).unwrap();
    let out = tmp.path().join("out");
    let mut args = vec![
        "render",
        script.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = reelsmith(&tmp.path().join("data"), &tmp.path().join("cfg"), &args);
    assert!(!out.exists(), "{name}: output written despite the error");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        tmp,
    )
}

fn expect(name: &str, body: &str, extra: &[&str], needles: &[&str]) {
    let (code, err, _tmp) = render_bad(name, body, extra);
    assert_eq!(code, 2, "{name}: exit code {code}, stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "{name}: stderr lacks {n:?}:\n{err}");
    }
}

const OK_SCENE: &str = "scenes:\n  - lines:\n      - text: Hello there.\n";

#[test]
fn yaml_syntax_error_names_line_and_column() {
    expect(
        "s.yaml",
        "title: T\nscenes:\n  - lines: [\n",
        &[],
        &["s.yaml:4:1:", "scenes[0].lines"],
    );
}

#[test]
fn json_syntax_error_names_line_and_column() {
    expect(
        "s.json",
        "{\n  \"title\": \"T\",\n  \"scenes\": [,]\n}\n",
        &[],
        &["s.json:3:"],
    );
}

#[test]
fn unknown_field_is_named_with_its_path() {
    expect(
        "s.yaml",
        &format!("title: T\n{OK_SCENE}    colour: red\n"),
        &[],
        &["scenes[0]", "unknown field `colour`"],
    );
}

#[test]
fn wrong_type_is_named_with_its_path() {
    expect(
        "s.yaml",
        "title: T\nscenes:\n  - duration: soon\n    lines:\n      - text: Hi.\n",
        &[],
        &["scenes[0].duration", "invalid type"],
    );
}

#[test]
fn negative_and_nan_durations_are_refused() {
    expect(
        "s.yaml",
        &format!("title: T\n{OK_SCENE}    duration: -3\n"),
        &[],
        &["scenes[0].duration", "positive"],
    );
    expect(
        "s.yaml",
        &format!("title: T\n{OK_SCENE}    duration: .nan\n"),
        &[],
        &["scenes[0].duration"],
    );
}

#[test]
fn empty_scene_is_refused() {
    expect(
        "s.yaml",
        "title: T\nscenes:\n  - prompt: nothing happens\n",
        &[],
        &["scenes[0]", "empty"],
    );
}

#[test]
fn unknown_channel_lists_the_known_ones() {
    expect(
        "s.yaml",
        &format!("title: T\nchannel: cooking\n{OK_SCENE}"),
        &[],
        &["cooking", "explainer", "anime"],
    );
    expect(
        "s.txt",
        "Hello.\n",
        &["--channel", "cooking"],
        &["cooking", "explainer"],
    );
}

#[test]
fn unknown_language_is_refused() {
    expect(
        "s.yaml",
        &format!("title: T\n{OK_SCENE}"),
        &["--lang", "en,xx"],
        &["xx", "ja"],
    );
}

#[test]
fn missing_translation_is_named() {
    expect(
        "s.yaml",
        &format!("title: T\n{OK_SCENE}"),
        &["--lang", "en,ja"],
        &["\"ja\""],
    );
}

#[test]
fn unknown_speaker_is_refused() {
    expect(
        "s.yaml",
        "title: T\ncharacters:\n  - id: aki\nscenes:\n  - lines:\n      - speaker: ren\n        text: Hi.\n",
        &[],
        &["scenes[0].lines[0].speaker", "ren", "aki"],
    );
}

#[test]
fn a_path_escaping_the_project_is_refused() {
    expect(
        "s.yaml",
        &format!("title: T\n{OK_SCENE}    image: ../../etc/passwd\n"),
        &[],
        &["scenes[0].image", "inside the project directory"],
    );
}

#[test]
fn too_many_scenes_are_refused_with_the_limit() {
    let mut body = String::from("title: T\nscenes:\n");
    for _ in 0..201 {
        body.push_str("  - lines:\n      - text: Hi.\n");
    }
    expect("s.yaml", &body, &[], &["200"]);
}

#[test]
fn unknown_music_mood_is_refused() {
    expect(
        "s.yaml",
        &format!("title: T\n{OK_SCENE}    music: polka\n"),
        &[],
        &["scenes[0].music", "polka", "calm"],
    );
}

#[test]
fn a_missing_script_is_an_input_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = reelsmith(
        &tmp.path().join("d"),
        &tmp.path().join("c"),
        &["render", "/nonexistent/x.yaml"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/x.yaml"));
    assert!(!Path::new("out/x").exists());
}

#[test]
fn the_studio_reports_config_mistakes_and_a_missing_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, cfg) = (tmp.path().join("data"), tmp.path().join("cfg"));
    std::fs::create_dir_all(&cfg).unwrap();
    let run = |args: &[&str]| {
        let o = reelsmith(&data, &cfg, args);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // No terminal (a test's stdout is a pipe): say what to use instead.
    let (code, err) = run(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("needs a terminal") && err.contains("reelsmith run"),
        "{err}"
    );
    // An unknown theme lists the real ones.
    let (code, err) = run(&["studio", "--theme", "solarised"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("solarised") && err.contains("catppuccin-mocha"),
        "{err}"
    );
    // A keymap mistake names the file and the field.
    std::fs::write(cfg.join("keymap.toml"), "[queue]\ncancle_job = [\"x\"]\n").unwrap();
    let (code, err) = run(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("keymap.toml") && err.contains("queue.cancle_job"),
        "{err}"
    );
    std::fs::remove_file(cfg.join("keymap.toml")).unwrap();
    // So does a studio.toml mistake.
    std::fs::write(cfg.join("studio.toml"), "colour = \"dark\"\n").unwrap();
    let (code, err) = run(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("studio.toml") && err.contains("colour"),
        "{err}"
    );
    assert!(!data.join("scheduler.lock").exists(), "nothing started");
}

#[test]
fn models_commands_name_mistakes_and_work_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, cfg) = (tmp.path().join("data"), tmp.path().join("cfg"));
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = std::process::Command::new(bin());
        c.args(args)
            .env("REELSMITH_DATA_DIR", &data)
            .env("REELSMITH_CONFIG_DIR", &cfg)
            .env("HF_HUB_CACHE", tmp.path().join("hub"));
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&["models", "pull", "smollm"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("smollm") && err.contains("smollm2-135m-instruct-q4"),
        "{err}"
    );
    let (code, out, err) = run(&["models", "list", "--kind", "asr", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let list = v.as_array().unwrap();
    assert!(
        !list.is_empty()
            && list
                .iter()
                .all(|m| m["kind"] == "asr" && m["installed"] == false)
    );
    let (code, _, err) = run(&["models", "list", "--kind", "sound"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--kind sound") && err.contains("interpolation"),
        "{err}"
    );
    // Offline with an empty cache: a clear error, nothing downloaded.
    let (code, _, err) = run(
        &["models", "pull", "smollm2-135m-instruct-q4"],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("offline"), "{err}");
    // Every pull is a job in the store, listed with how it ended.
    let (code, out, err) = run(&["models", "pulls", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let failed = &v.as_array().unwrap()[0];
    assert_eq!(failed["model"], "smollm2-135m-instruct-q4");
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"].as_str().unwrap().contains("offline"),
        "{failed}"
    );
    // Queued for the studio / `reelsmith run`; asking twice keeps one; cancel by model id.
    let (code, out, err) = run(
        &["models", "pull", "--queue", "smollm2-135m-instruct-q4"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("download queued (pull 2)") && out.contains("no scheduler is running"),
        "{out}"
    );
    let (_, out, _) = run(
        &["models", "pull", "--queue", "smollm2-135m-instruct-q4"],
        &[],
    );
    assert!(out.contains("already queued (pull 2)"), "{out}");
    let (code, out, _) = run(&["models", "pulls"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.contains("queued") && l.contains("smollm2-135m-instruct-q4")),
        "{out}"
    );
    let (code, out, err) = run(
        &["models", "pulls", "--cancel", "smollm2-135m-instruct-q4"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("pull 2: smollm2-135m-instruct-q4 cancelled"),
        "{out}"
    );
    let (code, _, err) = run(&["models", "pulls", "--cancel", "2"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("already cancelled"), "{err}");
    let (code, _, err) = run(&["models", "pulls", "--cancel", "77"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no such download"), "{err}");
    // Recommendations follow the GPUs.
    let (code, out, err) = run(
        &["models", "recommend", "--json"],
        &[("REELSMITH_FAKE_GPUS", "24GiB")],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tier"], "extreme");
    let llm = v["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "llm")
        .unwrap();
    assert!(!llm["models"].as_array().unwrap().is_empty());
    // A broken user registry file is named.
    std::fs::create_dir_all(cfg.join("models")).unwrap();
    std::fs::write(cfg.join("models/mine.toml"), "[[model]]\nid = \"x\"\n").unwrap();
    let (code, _, err) = run(&["models", "list"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("mine.toml"), "{err}");
}

#[test]
fn engine_settings_mistakes_exit_2_naming_the_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, cfg, out) = (
        tmp.path().join("data"),
        tmp.path().join("cfg"),
        tmp.path().join("out"),
    );
    std::fs::create_dir_all(&cfg).unwrap();
    let script = example("notes.txt");
    let args = [
        "render",
        script.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    std::fs::write(cfg.join("engines.toml"), "llm = \"auto\"\nspeech = \"x\"\n").unwrap();
    let o = reelsmith(&data, &cfg, &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("engines.toml") && err.contains("unknown field `speech`"),
        "{err}"
    );
    std::fs::write(cfg.join("engines.toml"), "asr = \"/no/such/whisper\"\n").unwrap();
    let o = reelsmith(&data, &cfg, &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("engines.toml: asr") && err.contains("CTranslate2"),
        "{err}"
    );
    for (toml, needles) in [
        (
            "[tts]\nxx = \"auto\"\n",
            &["engines.toml: tts.xx", "not one of reelsmith's languages"][..],
        ),
        (
            "[tts]\nen = \"/no/such/voice.onnx\"\n",
            &["engines.toml: tts.en", "/no/such/voice.onnx does not exist"][..],
        ),
        (
            "tts = \"piper-en_US-joe-medium\"\n",
            &[
                "engines.toml: tts",
                "not installed",
                "models pull piper-en_US-joe-medium",
            ][..],
        ),
        (
            "tts = \"no-such-voice\"\n",
            &["engines.toml: tts", "no-such-voice"][..],
        ),
    ] {
        std::fs::write(cfg.join("engines.toml"), toml).unwrap();
        let o = reelsmith(&data, &cfg, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{toml}: {err}");
        for n in needles {
            assert!(err.contains(n), "{toml}: stderr lacks {n:?}: {err}");
        }
    }
    // Without an LLM, a language the script has no text for is the script's error.
    std::fs::remove_file(cfg.join("engines.toml")).unwrap();
    let o = reelsmith(&data, &cfg, &[&args[..], &["--lang", "en,de"]].concat());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no \"de\" text") && err.contains("installed LLM"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}

#[test]
fn a_device_this_build_cannot_use_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["chat", "--device", "cuda", "hi"][..],
        &["transcribe", "--device", "cuda:1", "nothing.wav"][..],
    ] {
        let o = std::process::Command::new(bin())
            .args(args)
            .env("REELSMITH_DATA_DIR", tmp.path().join("data"))
            .env("REELSMITH_CONFIG_DIR", tmp.path().join("cfg"))
            .env("HF_HUB_CACHE", tmp.path().join("hub"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("--features cuda"), "{err}");
    }
    let o = std::process::Command::new(bin())
        .args(["chat", "--device", "tpu", "hi"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cpu, cuda or cuda:N"));
}

#[test]
fn say_speaks_with_a_piper_voice_and_refuses_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, cfg) = (tmp.path().join("data"), tmp.path().join("cfg"));
    let wav = tmp.path().join("hello.wav");
    let run = |args: &[&str]| {
        let o = reelsmith(&data, &cfg, args);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let w = wav.to_str().unwrap();
    // No voice installed in this private cache.
    let (code, err) = run(&["say", "Hello.", "-o", w]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no Piper voice for en") && err.contains("models pull"),
        "{err}"
    );
    let (code, err) = run(&["say", "Hello.", "--voice", "/no/such.onnx", "-o", w]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/no/such.onnx does not exist"), "{err}");
    assert!(!wav.exists());
    let Some(onnx) = piper_voice() else {
        return;
    };
    let v = onnx.to_str().unwrap();
    for (extra, needle) in [
        (&["--length-scale", "20"][..], "--length-scale 20"),
        (&["--speaker", "2"][..], "single speaker"),
        (&["--device", "tpu"][..], "tpu"),
    ] {
        let (code, err) = run(&[&["say", "Hello.", "--voice", v, "-o", w][..], extra].concat());
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!wav.exists(), "{extra:?} left a file");
    }
    let (code, err) = run(&["say", "", "--voice", v, "-o", w]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("empty"), "{err}");
    // A cut-off voice file is named, and nothing is written.
    let broken = tmp.path().join("broken.onnx");
    let bytes = std::fs::read(&onnx).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 3]).unwrap();
    std::fs::copy(format!("{v}.json"), format!("{}.json", broken.display())).unwrap();
    let (code, err) = run(&["say", "Hi.", "--voice", broken.to_str().unwrap(), "-o", w]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken.onnx"), "{err}");
    assert!(!wav.exists());

    let (code, err) = run(&[
        "say",
        "Good morning. The weather is lovely, isn't it?",
        "--voice",
        v,
        "-o",
        w,
        "--length-scale",
        "1.2",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 sentence(s)"), "{err}");
    let mut r = hound::WavReader::open(&wav).unwrap();
    let spec = r.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (22_050, 1, 16)
    );
    let samples: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let seconds = samples.len() as f64 / 22_050.0;
    assert!((2.0..8.0).contains(&seconds), "{seconds} s");
    let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 25_000, "peak {peak}");
    // No temporary files left beside the output.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".part")), "{names:?}");
}
