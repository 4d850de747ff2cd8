//! End-to-end renders of the shipped examples, decoded and measured with our own media module.

mod common;

use std::path::Path;

use common::*;
use reelsmith::media::{decode, loudness, stills};

/// Every property the issue asks of a finished render, for one language of one example.
fn check_language(project: &Path, lang: &str, report: &serde_json::Value, size: (u32, u32)) {
    let dir = project.join(lang);
    let timeline = &report["timelines"][lang];
    let total = timeline["total"].as_f64().unwrap();
    let scene_sum: f64 = timeline["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["duration"].as_f64().unwrap())
        .sum();
    assert!((total - scene_sum).abs() < 1e-6);

    // Streams, size, rate, duration.
    let fin = dir.join("final.mp4");
    let info = decode::probe(&fin).unwrap();
    let v = info.video.as_ref().expect("video stream");
    let a = info.audio.as_ref().expect("audio stream");
    assert_eq!(v.codec, "h264");
    assert_eq!(a.codec, "aac");
    assert_eq!((v.width, v.height), size);
    assert!((v.fps - 30.0).abs() < 1e-6, "fps {}", v.fps);
    assert!(
        (v.duration - scene_sum).abs() <= 0.1,
        "video {} s vs scenes {} s",
        v.duration,
        scene_sum
    );
    assert!(
        (a.duration - scene_sum).abs() <= 0.1,
        "audio {} s vs scenes {} s",
        a.duration,
        scene_sum
    );
    assert_eq!(v.frames, (scene_sum * 30.0).round() as u64);

    // Loudness of the decoded AAC, and speech where lines are spoken.
    let audio = decode::decode_audio(&fin, 48_000).unwrap();
    let lufs = loudness::integrated_loudness(&audio, 2, 48_000).unwrap();
    assert!(
        (lufs + 14.0).abs() <= 1.0,
        "{lang}: integrated loudness {lufs:.2} LUFS"
    );
    let tp = loudness::true_peak_dbtp(&audio, 2, 48_000);
    assert!(tp <= 0.0, "{lang}: true peak {tp:.2} dBTP clips");
    for line in timeline["lines"].as_array().unwrap() {
        let (s, e) = (
            line["start"].as_f64().unwrap(),
            line["end"].as_f64().unwrap(),
        );
        let db = rms_db(&audio, 48_000, s, e);
        assert!(
            db > -30.0,
            "{lang}: line at {s:.2}-{e:.2} s is silent ({db:.1} dBFS)"
        );
    }

    // Captions: parse, monotonic, non-overlapping, inside the video.
    let cues = ordered_cues(&dir, lang);
    assert!(cues.last().unwrap().end <= total + 1e-6);
    for c in &cues {
        assert!(
            c.lines.len() <= 2,
            "{lang}: cue with {} lines",
            c.lines.len()
        );
        for l in &c.lines {
            assert!(
                reelsmith::captions::display_width(l) <= 42,
                "{lang}: line too wide: {l}"
            );
        }
    }

    // Metadata chapters match the scene starts.
    let meta = read_json(&dir.join("metadata.json"));
    let chapters = meta["chapters"].as_array().unwrap();
    let scenes = timeline["scenes"].as_array().unwrap();
    assert_eq!(chapters.len(), scenes.len());
    for (c, s) in chapters.iter().zip(scenes) {
        assert!((c["start"].as_f64().unwrap() - s["start"].as_f64().unwrap()).abs() < 1e-9);
    }
    assert!(!meta["title"].as_str().unwrap().is_empty());
    assert!(!meta["tags"].as_array().unwrap().is_empty());

    // The vertical short.
    let short = decode::probe(&dir.join("short.mp4")).unwrap();
    let sv = short.video.as_ref().unwrap();
    assert_eq!((sv.width, sv.height), (1080, 1920));
    assert!(
        sv.duration <= 60.0 + 1e-6 && sv.duration > 1.0,
        "short lasts {} s",
        sv.duration
    );
    assert_eq!(short.audio.as_ref().unwrap().codec, "aac");

    // The thumbnail.
    let thumb = stills::read_png(&dir.join("thumbnail.png")).unwrap();
    assert_eq!((thumb.width, thumb.height), (1280, 720));
}

#[test]
fn renders_every_example_with_all_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, langs, size) in [
        ("explainer.yaml", vec!["en"], (1280, 720)),
        ("anime-duel.yaml", vec!["en"], (1280, 720)),
        ("multilingual.json", vec!["en", "ja", "ar"], (720, 1280)),
        ("notes.txt", vec!["en"], (1280, 720)),
    ] {
        let data = tmp.path().join("data");
        let out = tmp.path().join("out");
        let o = render(&data, &tmp.path().join("cfg"), &example(name), &out, &[]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        let project = out.join(Path::new(name).file_stem().unwrap().to_str().unwrap());
        assert!(stdout.contains("final.mp4"), "{stdout}");
        let report = read_json(&project.join("report.json"));
        for lang in langs {
            check_language(&project, lang, &report, size);
        }
    }
}

#[test]
fn captions_are_burned_in_during_lines_and_absent_in_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let script = example("explainer.yaml");
    render(
        &tmp.path().join("d1"),
        &tmp.path().join("c1"),
        &script,
        &tmp.path().join("with"),
        &[],
    );
    // The same video without burned-in captions, through a user channel overlay.
    let cfg = tmp.path().join("c2");
    std::fs::create_dir_all(cfg.join("channels")).unwrap();
    std::fs::write(
        cfg.join("channels/explainer.toml"),
        "[defaults.captions]\nburn_in = false\n",
    )
    .unwrap();
    render(
        &tmp.path().join("d2"),
        &cfg,
        &script,
        &tmp.path().join("without"),
        &[],
    );

    let with = tmp.path().join("with/explainer/en/final.mp4");
    let without = tmp.path().join("without/explainer/en/final.mp4");
    let report = read_json(&tmp.path().join("with/explainer/report.json"));
    let lines = report["timelines"]["en"]["lines"]
        .as_array()
        .unwrap()
        .clone();
    let line_t =
        |i: usize| (lines[i]["start"].as_f64().unwrap() + lines[i]["end"].as_f64().unwrap()) / 2.0;
    // The widest silence between two lines.
    let (gap_t, _) = lines
        .windows(2)
        .map(|w| {
            let (e, s) = (
                w[0]["end"].as_f64().unwrap(),
                w[1]["start"].as_f64().unwrap(),
            );
            ((e + s) / 2.0, s - e)
        })
        .fold((0.0, 0.0), |best, g| if g.1 > best.1 { g } else { best });
    let band = |t: f64| {
        let a = decode::frame_at(&with, t).unwrap();
        let b = decode::frame_at(&without, t).unwrap();
        band_diff(&a, &b, a.height * 2 / 3, a.height)
    };
    let during = band(line_t(0));
    let during2 = band(line_t(lines.len() - 1));
    let gap = band(gap_t);
    assert!(
        during > 3.0 && during2 > 3.0,
        "no caption pixels during lines: {during:.2}, {during2:.2}"
    );
    assert!(gap < 1.0, "caption pixels in a gap: {gap:.2}");
}
