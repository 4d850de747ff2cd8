use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn channels() -> Vec<String> {
    [
        "anime",
        "gaming",
        "superhero",
        "manga",
        "marvel_dc",
        "original_manga",
        "explainer",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A fresh, empty directory under `target/test-tmp/` (not the system temp dir, which these
/// tests would otherwise litter: each run replaces its own directories).
fn temp_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-tmp")
        .join(format!("script-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, content).unwrap();
    p
}

fn load_with(name: &str, content: &str, opts: &ValidateOptions) -> Result<Script, ScriptError> {
    let dir = temp_dir();
    let p = write(&dir, name, content);
    load(&p, opts)
}

/// Loads `content` as `name` and returns the error message with the
/// directory prefix removed.
fn err_of(name: &str, content: &str) -> String {
    let known = channels();
    let opts = ValidateOptions {
        known_channels: &known,
        ..Default::default()
    };
    err_with(name, content, &opts)
}

fn err_with(name: &str, content: &str, opts: &ValidateOptions) -> String {
    let dir = temp_dir();
    let p = write(&dir, name, content);
    match load(&p, opts) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert_eq!(e.exit_code(), 2);
            let prefix = format!("{}{}", dir.display(), std::path::MAIN_SEPARATOR);
            msg.strip_prefix(&prefix).unwrap_or(&msg).to_string()
        }
    }
}

fn ok_of(name: &str, content: &str) -> Script {
    let known = channels();
    let opts = ValidateOptions {
        known_channels: &known,
        ..Default::default()
    };
    match load_with(name, content, &opts) {
        Ok(s) => s,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

const BASE: &str = "title: T\nscenes:\n  - lines:\n      - text: Hello there.\n";

// ---------- examples ----------

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/examples")
        .join(name)
}

fn load_example(name: &str) -> Script {
    let known = channels();
    let opts = ValidateOptions {
        known_channels: &known,
        ..Default::default()
    };
    match load(&example(name), &opts) {
        Ok(s) => s,
        Err(e) => panic!("{name}: {e}"),
    }
}

#[test]
fn example_explainer() {
    let s = load_example("explainer.yaml");
    assert_eq!(s.title.source("en"), Some("How Rainbows Form"));
    assert_eq!(s.channel.as_deref(), Some("explainer"));
    assert_eq!(s.languages, vec!["en".to_string()]);
    assert_eq!(s.scenes.len(), 4);
    assert!(s.scenes.iter().all(|sc| !sc.lines.is_empty()));
    assert!(s.scenes.iter().any(|sc| sc.duration == Some(6.0)));
    let transitions: Vec<_> = s.scenes.iter().filter_map(|sc| sc.transition).collect();
    assert!(transitions.contains(&Transition::Crossfade));
    assert!(transitions.contains(&Transition::FadeBlack));
    assert!(transitions.contains(&Transition::Cut));
    let words: usize = s
        .scenes
        .iter()
        .flat_map(|sc| &sc.lines)
        .filter_map(|l| l.text.source("en"))
        .map(|t| t.split_whitespace().count())
        .sum();
    // ~18-24 s at 150-175 words per minute.
    assert!((45..=70).contains(&words), "{words} words");
}

#[test]
fn example_anime_duel() {
    let s = load_example("anime-duel.yaml");
    assert_eq!(s.channel.as_deref(), Some("anime"));
    assert_eq!(s.characters.len(), 2);
    assert_eq!(s.characters[0].voice.as_deref(), Some("f2"));
    assert_eq!(s.characters[1].pitch, Some(40));
    assert!(s
        .scenes
        .iter()
        .flat_map(|sc| &sc.lines)
        .any(|l| l.speaker == NARRATOR));
    assert!(s.scenes.iter().all(|sc| sc.prompt.is_some()));
}

#[test]
fn example_multilingual() {
    let s = load_example("multilingual.json");
    assert_eq!(s.languages, vec!["en", "ja", "ar"]);
    assert_eq!(s.scenes.len(), 3);
    assert_eq!(s.title.get("ja", "en"), Some("水の循環"));
    for sc in &s.scenes {
        for l in &sc.lines {
            for lang in ["en", "ja", "ar"] {
                assert!(l.text.get(lang, "en").is_some());
            }
        }
    }
}

#[test]
fn example_notes() {
    let s = load_example("notes.txt");
    assert_eq!(s.title.source("en"), Some("Three Facts About Octopuses"));
    assert_eq!(s.scenes.len(), 3);
    assert!(s.scenes.iter().all(|sc| sc.lines.len() == 2));
    assert_eq!(s.scenes[0].motion, Some(Motion::ZoomIn));
    assert_eq!(s.scenes[1].id, "scene-2");
    assert_eq!(s.channel.as_deref(), Some("explainer"));
}

#[test]
fn serde_json_round_trip() {
    for name in [
        "explainer.yaml",
        "anime-duel.yaml",
        "multilingual.json",
        "notes.txt",
    ] {
        let s = load_example(name);
        let json = serde_json::to_string(&s).unwrap();
        let back: Script = serde_json::from_str(&json).unwrap();
        assert_eq!(s, back, "{name}");
    }
}

// ---------- model ----------

#[test]
fn localized_get_and_source() {
    let one = Localized::One("hi".into());
    assert_eq!(one.get("en", "en"), Some("hi"));
    assert_eq!(one.get("ja", "en"), None);
    assert_eq!(one.source("en"), Some("hi"));
    assert_eq!(one.source("fr"), Some("hi"));

    let mut map = std::collections::BTreeMap::new();
    map.insert("ja".to_string(), "やあ".to_string());
    map.insert("fr".to_string(), "salut".to_string());
    let many = Localized::Many(map);
    assert_eq!(many.get("ja", "en"), Some("やあ"));
    assert_eq!(many.get("en", "en"), None);
    assert_eq!(many.source("ja"), Some("やあ"));
    // no "en" entry: first entry (sorted by code)
    assert_eq!(many.source("en"), Some("salut"));
    assert_eq!(Localized::Many(Default::default()).source("en"), None);
}

#[test]
fn morph_is_a_transition() {
    assert_eq!(Transition::parse("morph"), Some(Transition::Morph));
    assert_eq!(Transition::Morph.to_string(), "morph");
    let t: Transition = serde_json::from_str("\"morph\"").unwrap();
    assert_eq!(t, Transition::Morph);
    assert!(Transition::ALL.contains(&Transition::Morph));
    let s = parse_str(
        "title: T\nscenes:\n  - transition: morph\n    lines:\n      - text: a\n  - lines:\n      - text: b\n",
        Format::Yaml,
        Path::new("s.yaml"),
    )
    .unwrap();
    assert_eq!(s.scenes[0].transition, Some(Transition::Morph));
    let msg = err_of(
        "s.yaml",
        "title: T\nscenes:\n  - transition: melt\n    lines:\n      - text: a\n",
    );
    assert!(
        msg.contains("unknown variant `melt`") && msg.contains("morph"),
        "{msg}"
    );
}

#[test]
fn enums_as_str_and_display() {
    assert_eq!(Motion::ZoomIn.as_str(), "zoom-in");
    assert_eq!(Transition::FadeBlack.to_string(), "fade-black");
    assert_eq!(Aspect::Portrait.as_str(), "9:16");
    let a: Aspect = serde_json::from_str("\"1:1\"").unwrap();
    assert_eq!(a, Aspect::Square);
    let m: Motion = serde_json::from_str("\"pan-down\"").unwrap();
    assert_eq!(m, Motion::PanDown);
}

#[test]
fn format_from_path() {
    assert_eq!(Format::from_path(Path::new("a.YAML")), Format::Yaml);
    assert_eq!(Format::from_path(Path::new("a.yml")), Format::Yaml);
    assert_eq!(Format::from_path(Path::new("a.json")), Format::Json);
    assert_eq!(Format::from_path(Path::new("a.md")), Format::Text);
    assert_eq!(Format::from_path(Path::new("a")), Format::Text);
}

// ---------- syntax and schema ----------

#[test]
fn yaml_syntax_error_has_line_and_column() {
    let msg = err_of("s.yaml", "title: T\nscenes:\n  - lines: [\n    - x\n");
    assert!(msg.starts_with("s.yaml:"), "{msg}");
    let parts: Vec<&str> = msg.splitn(4, ':').collect();
    assert!(parts[1].parse::<usize>().is_ok(), "{msg}");
    assert!(parts[2].parse::<usize>().is_ok(), "{msg}");
    assert!(!msg.contains(" at line "), "{msg}");
}

#[test]
fn yaml_wrong_type_names_field() {
    let msg = err_of(
        "script.yaml",
        "title: T\nscenes:\n  - lines:\n      - text: a\n  - duration: x\n    lines:\n      - text: b\n",
    );
    assert_eq!(
        msg,
        "script.yaml:5:15: scenes[1].duration: invalid type: string \"x\", expected f64"
    );
}

#[test]
fn yaml_unknown_field_lists_expected() {
    let msg = err_of(
        "s.yaml",
        "title: T\nscenes:\n  - lines:\n      - text: a\n        voice: m1\n",
    );
    assert!(
        msg.starts_with("s.yaml:5:9: scenes[0].lines[0].voice: unknown field `voice`"),
        "{msg}"
    );
    assert!(msg.contains("unknown field `voice`"), "{msg}");
    assert!(msg.contains("expected `speaker` or `text`"), "{msg}");
}

#[test]
fn yaml_missing_title() {
    let msg = err_of("s.yaml", "scenes:\n  - lines:\n      - text: a\n");
    assert!(msg.starts_with("s.yaml:"), "{msg}");
    assert!(msg.contains("missing field `title`"), "{msg}");
}

#[test]
fn yaml_bad_enum_and_localized() {
    let msg = err_of(
        "s.yaml",
        "title: T\nscenes:\n  - motion: spin\n    lines:\n      - text: a\n",
    );
    assert!(msg.starts_with("s.yaml:3:"), "{msg}");
    assert!(
        msg.contains("scenes[0].motion: unknown variant `spin`"),
        "{msg}"
    );
    assert!(msg.contains("zoom-in"), "{msg}");

    let msg = err_of("s.yaml", "title: [a, b]\nscenes: []\n");
    assert!(msg.starts_with("s.yaml:1:"), "{msg}");
    assert!(msg.contains("title: invalid type: sequence"), "{msg}");
    assert!(msg.contains("map of language code to text"), "{msg}");
}

#[test]
fn yaml_empty_file() {
    let msg = err_of("s.yaml", "  \n");
    assert!(msg.starts_with("s.yaml: the file is empty"), "{msg}");
}

#[test]
fn json_syntax_error_has_line_and_column() {
    let msg = err_of("s.json", "{\n  \"title\": \"T\",\n  \"scenes\": [,]\n}\n");
    assert!(msg.starts_with("s.json:3:"), "{msg}");
    assert!(!msg.contains(" at line "), "{msg}");
}

#[test]
fn json_schema_errors_name_field() {
    let msg = err_of(
        "s.json",
        "{\"title\": \"T\", \"scenes\": [{\"lines\": [{\"text\": \"a\"}], \"duration\": \"x\"}]}",
    );
    assert!(
        msg.starts_with("s.json:1:")
            && msg.contains(": scenes[0].duration: invalid type: string \"x\", expected f64"),
        "{msg}"
    );
    let msg = err_of("s.json", "{\"title\": \"T\", \"fsp\": 3}");
    assert!(
        msg.contains("unknown field `fsp`, expected one of"),
        "{msg}"
    );
    assert!(msg.contains("`fps`"), "{msg}");
    let msg = err_of("s.json", "{\"title\": \"T\", \"scenes\": []} extra");
    assert!(msg.starts_with("s.json:1:"), "{msg}");
}

#[test]
fn io_and_encoding_errors() {
    let dir = temp_dir();
    let missing = dir.join("nope.yaml");
    let e = load(&missing, &ValidateOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("nope.yaml: cannot read: "), "{e}");

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, b"title: T\nscenes: \xff\xfe\n").unwrap();
    let e = load(&bad, &ValidateOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Encoding);
    assert!(e.to_string().contains("bad.yaml: not valid UTF-8"), "{e}");
    assert!(e.to_string().contains("line 2"), "{e}");
}

// ---------- plain text ----------

#[test]
fn text_parsing() {
    let s = parse_str(
        "# My Video\n\nFirst line.\nSecond line.\n\n\n[pan-left]\nThird.\n",
        Format::Text,
        Path::new("x.txt"),
    )
    .unwrap();
    assert_eq!(s.title, Localized::One("My Video".into()));
    assert_eq!(s.scenes.len(), 2);
    assert_eq!(s.scenes[0].lines.len(), 2);
    assert_eq!(s.scenes[0].lines[1].speaker, "narrator");
    assert_eq!(s.scenes[1].motion, Some(Motion::PanLeft));
    assert_eq!(s.scenes[1].lines[0].text, Localized::One("Third.".into()));
    assert_eq!(s.scenes[1].id, "scene-2");

    // title from the file stem; CRLF; [aside] in text is just text
    let s = parse_str(
        "Hello.\r\n[laughs] ok\r\n",
        Format::Text,
        Path::new("dir/my-first_video.md"),
    )
    .unwrap();
    assert_eq!(s.title, Localized::One("My first video".into()));
    assert_eq!(
        s.scenes[0].lines[1].text,
        Localized::One("[laughs] ok".into())
    );
}

#[test]
fn text_errors() {
    let msg = err_of("t.txt", "# Title\n\nLine one.\n# not allowed\n");
    assert!(msg.starts_with("t.txt:4:1: line starts with `#`"), "{msg}");
    let msg = err_of("t.txt", "\n\n   \n");
    assert!(msg.starts_with("t.txt: no text found"), "{msg}");
    let msg = err_of("t.txt", "# Only a title\n");
    assert!(msg.starts_with("t.txt: no text found"), "{msg}");
    let msg = err_of("t.txt", "Hi.\n\n[spin-around]\nThere.\n");
    assert!(msg.starts_with("t.txt:3:1: unknown motion"), "{msg}");
    let msg = err_of("t.txt", "Hi.\n\n[zoom-in]\n\nThere.\n");
    assert!(
        msg.starts_with("t.txt:3:1: motion marker with no text"),
        "{msg}"
    );
}

#[test]
fn text_channel_from_caller() {
    let known = channels();
    let opts = ValidateOptions {
        known_channels: &known,
        channel_override: Some("manga"),
        languages_override: None,
        machine_translation: false,
    };
    let s = load_with("t.txt", "Hello.\n", &opts).unwrap();
    assert_eq!(s.channel.as_deref(), Some("manga"));
    assert_eq!(s.languages, vec!["en"]);
}

// ---------- semantic ----------

#[test]
fn defaults_after_validation() {
    let s = ok_of("s.yaml", BASE);
    assert_eq!(s.channel.as_deref(), Some("explainer"));
    assert_eq!(s.languages, vec!["en"]);
    assert_eq!(s.language, "en");
    assert_eq!(s.scenes[0].id, "scene-1");
    assert_eq!(s.scenes[0].lines[0].speaker, "narrator");
}

#[test]
fn duration_errors() {
    let scene = |d: &str| {
        format!("title: T\nscenes:\n  - lines: [{{text: a}}]\n  - duration: {d}\n    lines: [{{text: b}}]\n")
    };
    for (d, shown) in [("-3", "-3"), ("0", "0"), (".nan", "NaN"), (".inf", "inf")] {
        let msg = err_of("ep1.yaml", &scene(d));
        assert_eq!(
            msg,
            format!(
                "ep1.yaml: scenes[1].duration: must be a positive number of seconds, got {shown}"
            )
        );
    }
    let msg = err_of("ep1.yaml", &scene("900"));
    assert!(
        msg.starts_with("ep1.yaml: scenes[1].duration: must be at most 600 seconds, got 900"),
        "{msg}"
    );
    let s = ok_of("ep1.yaml", "title: T\nscenes:\n  - duration: 2.5\n");
    assert_eq!(s.scenes[0].duration, Some(2.5));
}

#[test]
fn empty_scene_and_scene_counts() {
    let msg = err_of(
        "s.yaml",
        "title: T\nscenes:\n  - lines: [{text: a}]\n  - id: x\n",
    );
    assert_eq!(
        msg,
        "s.yaml: scenes[1]: scene is empty: give it lines or a duration"
    );

    let msg = err_of("s.yaml", "title: T\nscenes: []\n");
    assert!(
        msg.starts_with("s.yaml: scenes: the script has no scenes"),
        "{msg}"
    );
    let msg = err_of("s.yaml", "title: T\n");
    assert!(
        msg.starts_with("s.yaml: scenes: the script has no scenes"),
        "{msg}"
    );

    let mut many = String::from("title: T\nscenes:\n");
    for _ in 0..=MAX_SCENES {
        many.push_str("  - duration: 1\n");
    }
    let msg = err_of("s.yaml", &many);
    assert!(
        msg.starts_with("s.yaml: scenes: 201 scenes, more than the limit of 200"),
        "{msg}"
    );

    let mut lines = String::from("title: T\nscenes:\n  - lines:\n");
    for _ in 0..=MAX_LINES_PER_SCENE {
        lines.push_str("      - text: a\n");
    }
    let msg = err_of("s.yaml", &lines);
    assert!(
        msg.starts_with("s.yaml: scenes[0].lines: 101 lines, more than the limit of 100"),
        "{msg}"
    );
}

#[test]
fn text_errors_semantic() {
    let msg = err_of(
        "s.yaml",
        "title: T\nscenes:\n  - lines:\n      - text: a\n      - text: '  '\n",
    );
    assert!(
        msg.starts_with("s.yaml: scenes[0].lines[1].text: text is empty"),
        "{msg}"
    );
    let long = "x".repeat(MAX_LINE_CHARS + 1);
    let msg = err_of(
        "s.yaml",
        &format!("title: T\nscenes:\n  - lines:\n      - text: {long}\n"),
    );
    assert!(
        msg.starts_with(
            "s.yaml: scenes[0].lines[0].text: text is 2001 characters, more than the limit of 2000"
        ),
        "{msg}"
    );
    let msg = err_of("s.yaml", "title: '  '\nscenes:\n  - lines: [{text: a}]\n");
    assert!(msg.starts_with("s.yaml: title: title is empty"), "{msg}");
}

#[test]
fn channel_errors() {
    let msg = err_of("s.yaml", &format!("channel: cooking\n{BASE}"));
    assert_eq!(
        msg,
        "s.yaml: channel: unknown channel \"cooking\"; known channels: anime, gaming, superhero, manga, marvel_dc, original_manga, explainer"
    );
    let known = channels();
    let opts = ValidateOptions {
        known_channels: &known,
        channel_override: Some("nope"),
        languages_override: None,
        machine_translation: false,
    };
    let msg = err_with("s.yaml", &format!("channel: anime\n{BASE}"), &opts);
    assert!(
        msg.starts_with("s.yaml: channel (from the command line): unknown channel \"nope\""),
        "{msg}"
    );
    // override wins
    let opts = ValidateOptions {
        known_channels: &known,
        channel_override: Some("gaming"),
        languages_override: None,
        machine_translation: false,
    };
    let s = load_with("s.yaml", &format!("channel: anime\n{BASE}"), &opts).unwrap();
    assert_eq!(s.channel.as_deref(), Some("gaming"));
}

#[test]
fn language_errors() {
    let msg = err_of("s.yaml", &format!("language: xx\n{BASE}"));
    assert_eq!(
        msg,
        "s.yaml: language: unknown language \"xx\"; use one of: en, ja, es, zh, hi, ar, bn, pt, ru, fr, de"
    );
    let msg = err_of("s.yaml", &format!("languages: [en, klingon]\n{BASE}"));
    assert!(
        msg.starts_with("s.yaml: languages[1]: unknown language \"klingon\"; use one of: en, ja"),
        "{msg}"
    );
    let msg = err_of("s.yaml", &format!("languages: [en, en]\n{BASE}"));
    assert!(
        msg.starts_with("s.yaml: languages[1]: duplicate language \"en\""),
        "{msg}"
    );
    let msg = err_of(
        "s.yaml",
        "title: T\nscenes:\n  - lines:\n      - text: {en: a, xx: b}\n",
    );
    assert!(
        msg.starts_with(
            "s.yaml: scenes[0].lines[0].text.xx: unknown language \"xx\"; use one of: en"
        ),
        "{msg}"
    );
}

#[test]
fn missing_translation() {
    let msg = err_of(
        "s.yaml",
        "title: {en: T, ja: ティー}\nlanguages: [en, ja]\nscenes:\n  - lines: [{text: {en: a, ja: あ}}]\n  - lines: [{text: b}]\n",
    );
    assert_eq!(
        msg,
        "s.yaml: scenes[1].lines[0].text: no \"ja\" text; add a \"ja\" entry, or remove \"ja\" from languages (machine translation needs an installed LLM)"
    );
    let msg = err_of("s.yaml", &format!("languages: [en, ja]\n{BASE}"));
    assert!(msg.starts_with("s.yaml: title: no \"ja\" text"), "{msg}");

    // the override replaces languages
    let known = channels();
    let langs = vec!["fr".to_string()];
    let opts = ValidateOptions {
        known_channels: &known,
        channel_override: None,
        languages_override: Some(&langs),
        machine_translation: false,
    };
    let msg = err_with("s.yaml", BASE, &opts);
    assert!(msg.starts_with("s.yaml: title: no \"fr\" text"), "{msg}");

    // with an LLM to translate, only the source language must be written out
    let opts = ValidateOptions {
        machine_translation: true,
        ..opts
    };
    let dir = temp_dir();
    let s = load(&write(&dir, "s.yaml", BASE), &opts).unwrap();
    assert_eq!(s.languages, ["fr"]);
}

#[test]
fn speaker_and_id_errors() {
    let chars = "characters:\n  - id: aki\n  - id: ren\n";
    let msg = err_of(
        "s.yaml",
        &format!("title: T\n{chars}scenes:\n  - lines:\n      - text: a\n      - speaker: bob\n        text: b\n"),
    );
    assert_eq!(
        msg,
        "s.yaml: scenes[0].lines[1].speaker: unknown speaker \"bob\"; use \"narrator\" or one of the character ids: aki, ren"
    );
    let msg = err_of(
        "s.yaml",
        &format!(
            "title: T\ncharacters:\n  - id: aki\n  - id: aki\n{}",
            &BASE[9..]
        ),
    );
    assert!(
        msg.starts_with(
            "s.yaml: characters[1].id: duplicate character id \"aki\" (also characters[0])"
        ),
        "{msg}"
    );
    let msg = err_of(
        "s.yaml",
        "title: T\nscenes:\n  - id: a\n    duration: 1\n  - id: a\n    duration: 1\n",
    );
    assert!(
        msg.starts_with("s.yaml: scenes[1].id: duplicate scene id \"a\" (also scenes[0])"),
        "{msg}"
    );
    // an explicit id that collides with a default one
    let msg = err_of(
        "s.yaml",
        "title: T\nscenes:\n  - duration: 1\n  - id: scene-1\n    duration: 1\n",
    );
    assert!(
        msg.starts_with("s.yaml: scenes[1].id: duplicate scene id \"scene-1\""),
        "{msg}"
    );
    let msg = err_of(
        "s.yaml",
        "title: T\nscenes:\n  - id: a/b\n    duration: 1\n",
    );
    assert!(
        msg.starts_with("s.yaml: scenes[0].id: invalid scene id \"a/b\""),
        "{msg}"
    );
}

#[test]
fn voice_pitch_rate_fps_errors() {
    let with_char = |c: &str| {
        format!(
            "title: T\ncharacters:\n  - id: aki\n    {c}\n{}",
            &BASE[9..]
        )
    };
    let msg = err_of("s.yaml", &with_char("voice: x9"));
    assert!(
        msg.starts_with("s.yaml: characters[0].voice: invalid voice \"x9\"; use an espeak variant"),
        "{msg}"
    );
    let msg = err_of("s.yaml", &with_char("voice: m8"));
    assert!(msg.contains("characters[0].voice"), "{msg}");
    let msg = err_of("s.yaml", &with_char("pitch: 120"));
    assert!(
        msg.starts_with("s.yaml: characters[0].pitch: must be between 0 and 99, got 120"),
        "{msg}"
    );
    let msg = err_of("s.yaml", &with_char("pitch: 300"));
    assert!(
        msg.starts_with("s.yaml:4:12: characters[0].pitch: invalid value"),
        "{msg}"
    );
    let msg = err_of("s.yaml", &with_char("rate: 50"));
    assert!(
        msg.starts_with(
            "s.yaml: characters[0].rate: must be between 80 and 450 words per minute, got 50"
        ),
        "{msg}"
    );
    let msg = err_of("s.yaml", &format!("fps: 5\n{BASE}"));
    assert!(
        msg.starts_with("s.yaml: fps: must be between 12 and 60, got 5"),
        "{msg}"
    );
    let msg = err_of("s.yaml", &format!("fps: 61\n{BASE}"));
    assert!(
        msg.starts_with("s.yaml: fps: must be between 12 and 60, got 61"),
        "{msg}"
    );
    let s = ok_of("s.yaml", &with_char("voice: f7"));
    assert_eq!(s.characters[0].voice.as_deref(), Some("f7"));
}

#[test]
fn path_checks() {
    let dir = temp_dir();
    let project = dir.join("project");
    write(&project, "img/a.png", "png");
    write(&dir, "outside.png", "png");
    let known = channels();
    let opts = ValidateOptions {
        known_channels: &known,
        ..Default::default()
    };
    let run = |image: &str| {
        let p = write(
            &project,
            "s.yaml",
            &format!("title: T\nscenes:\n  - duration: 1\n    image: {image}\n"),
        );
        load(&p, &opts)
    };
    let s = run("img/a.png").unwrap();
    let abs = s.scenes[0].image.clone().unwrap();
    assert!(abs.is_absolute());
    assert_eq!(abs, project.join("img/a.png").canonicalize().unwrap());
    assert!(run("./img/../img/a.png").is_ok());

    let canon = project.canonicalize().unwrap();
    let refused = format!(
        "refused: paths must stay inside the project directory {}",
        canon.display()
    );
    let e = run("../outside.png").unwrap_err().to_string();
    assert!(
        e.contains("scenes[0].image: \"../outside.png\" refused"),
        "{e}"
    );
    assert!(e.contains(&refused), "{e}");
    let outside_abs = dir.join("outside.png");
    let e = run(&outside_abs.display().to_string())
        .unwrap_err()
        .to_string();
    assert!(e.contains(&refused), "{e}");
    let e = run("img/missing.png").unwrap_err().to_string();
    assert!(
        e.contains("scenes[0].image: \"img/missing.png\" does not exist"),
        "{e}"
    );
    let e = run("img").unwrap_err().to_string();
    assert!(e.contains("is not a file"), "{e}");

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.join("outside.png"), project.join("link.png")).unwrap();
        let e = run("link.png").unwrap_err().to_string();
        assert!(e.contains("scenes[0].image: \"link.png\" refused"), "{e}");
    }

    // character reference
    let p = write(
        &project,
        "c.yaml",
        "title: T\ncharacters:\n  - id: aki\n    reference: ../outside.png\nscenes:\n  - duration: 1\n",
    );
    let e = load(&p, &opts).unwrap_err().to_string();
    assert!(
        e.contains("characters[0].reference: \"../outside.png\" refused"),
        "{e}"
    );
}

#[test]
fn first_error_wins() {
    // both scene 0 and scene 1 are bad: scene 0 is reported
    let msg = err_of(
        "s.yaml",
        "title: T\nscenes:\n  - duration: -1\n  - lines: [{speaker: x, text: a}]\n",
    );
    assert!(msg.starts_with("s.yaml: scenes[0].duration"), "{msg}");
}

#[test]
fn all_errors_are_input_errors() {
    let e = ScriptError::Invalid {
        path: "a".into(),
        field: "f".into(),
        message: "m".into(),
    };
    assert!(e.is_input_error());
    assert_eq!(e.exit_code(), 2);
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(e.to_string(), "a: f: m");
}

#[test]
fn publish_blocks_and_real_people_are_read_and_checked() {
    let base = "title: T\nscenes:\n  - prompt: p\n    lines:\n      - text: Hi.\n";
    let s = ok_of(
        "s.yaml",
        &format!(
            "characters:\n  - id: ada\n    name: Ada Lovelace\n    real_person: true\n{base}\
             publish:\n  to: [youtube]\n  at: 2026-12-24T18:00:00Z\n  short: true\n"
        ),
    );
    assert!(s.characters[0].real_person);
    assert_eq!(s.characters[0].person(), "Ada Lovelace");
    let p = s.publish.unwrap();
    assert_eq!(p.platforms(), ["youtube"]);
    assert_eq!(p.short, Some(true));
    for (block, says) in [
        (
            "publish:\n  to: [youtube, vimeo]\n",
            "s.yaml: publish.to[1]: unknown platform \"vimeo\"",
        ),
        (
            "publish:\n  to: [youtube]\n  privacy: secret\n",
            "s.yaml: publish.privacy: unknown privacy \"secret\"",
        ),
        (
            "publish:\n  to: [youtube]\n  at: tomorrow\n",
            "s.yaml: publish.at: \"tomorrow\" is not a time",
        ),
        (
            "publish:\n  to: [youtube]\n  privacy: public\n  at: 2026-12-24T18:00:00Z\n",
            "s.yaml: publish.at: a scheduled video stays private",
        ),
        (
            "publish:\n  to: [youtube, tiktok]\n  at: 2026-12-24T18:00:00Z\n",
            "s.yaml: publish.at: tiktok cannot schedule",
        ),
        (
            "publish:\n  to: [instagram]\n",
            "s.yaml: publish.privacy: Instagram Reels posted through the API are public",
        ),
        (
            "publish:\n  to: [youtube]\n  tiktok_mode: drafts\n",
            "s.yaml: publish.tiktok_mode: unknown TikTok mode",
        ),
        (
            "publish:\n  to: [youtube]\n  languages: [xx]\n",
            "s.yaml: publish.languages[0]: unknown language \"xx\"",
        ),
    ] {
        let msg = err_of("s.yaml", &format!("{base}{block}"));
        assert!(msg.starts_with(says), "{msg}");
    }
}
