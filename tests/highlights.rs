//! Highlights from recordings, end to end through the real binary: a synthetic recording with
//! loud, busy events at known times (made at test time from libav's test sources) → the
//! analysis finds them, `--dry-run` prints shots and highlights, the render makes a compilation
//! whose chapters point at them and shorts (1080×1920, ≤ 60 s, on shot boundaries) that show the
//! facecam where the layout asks; bad recordings exit 2 naming the file with nothing written.

mod common;

use std::path::{Path, PathBuf};

use reelsmith::highlights::synth::{self, AudioEvent, AudioSpec, Container, Segment, SynthSpec};
use reelsmith::media::decode;

/// A lime facecam in the top-right sixteenth of every frame.
const FACECAM: &str = "drawbox=x=iw*3/4:y=0:w=iw/4:h=ih/4:color=0x00ff00:t=fill";

fn seg(source: &str, seconds: f64) -> Segment {
    Segment::cut(&format!("{source},{FACECAM}"), seconds)
}

/// 80 s, 12 shots; loud bursts at 22–24 s and 61–63 s, both inside busy shots.
fn recording(dir: &Path) -> (PathBuf, synth::SynthTruth) {
    let spec = SynthSpec {
        width: 320,
        height: 180,
        fps: 30,
        segments: vec![
            seg("color=c=0x203040", 8.0),
            seg("smptebars", 7.0),
            seg("color=c=0x402020", 5.0),
            seg("testsrc2", 6.0), // 20–26: busy
            seg("color=c=0x204020", 9.0),
            seg("rgbtestsrc", 5.0),
            seg("color=c=0x303030", 10.0),
            seg("color=c=0x402040", 8.0),
            seg("mandelbrot", 6.0), // 58–64: busy
            seg("color=c=0x204040", 7.0),
            seg("smptehdbars", 5.0),
            seg("color=c=0x101840", 4.0),
        ],
        // A flash mid-shot (30 s): bright frames, then the same picture — not a cut.
        flashes: vec![synth::Flash {
            at_frame: 900,
            frames: 2,
        }],
        audio: Some(AudioSpec {
            rate: 48_000,
            channels: 2,
            base_db: -34.0,
            events: vec![
                AudioEvent {
                    at: 22.0,
                    seconds: 2.0,
                    gain_db: -4.0,
                },
                AudioEvent {
                    at: 61.0,
                    seconds: 2.0,
                    gain_db: -4.0,
                },
            ],
        }),
        container: Container::Mp4,
        crf: 28,
        gop: 60,
    };
    let path = dir.join("session.mp4");
    let truth = synth::write(&path, &spec).expect("synthetic recording");
    (path, truth)
}

fn run(data: &Path, args: &[&str]) -> std::process::Output {
    common::reelsmith(data, &data.join("config"), args)
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn highlights_find_the_events_and_render_a_compilation_and_shorts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let proj = tmp.path().join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    let (rec, truth) = recording(&proj);
    let rec_s = rec.to_str().unwrap();

    // Dry run: shots and highlights, nothing written.
    let before: Vec<_> = std::fs::read_dir(&proj).unwrap().collect();
    let j = json_of(&run(
        &data,
        &[
            "highlights",
            rec_s,
            "--dry-run",
            "--json",
            "--count",
            "2",
            "--length",
            "6",
            "--shorts",
            "1",
        ],
    ));
    assert_eq!(std::fs::read_dir(&proj).unwrap().count(), before.len());
    let cuts: Vec<u64> = j["recordings"][0]["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    for t in &truth.cuts {
        assert!(
            cuts.iter().any(|c| c.abs_diff(*t) <= 1),
            "cut {t} missing from {cuts:?}"
        );
    }
    assert!(
        cuts.len() <= truth.cuts.len() + 1,
        "{cuts:?} vs {:?}",
        truth.cuts
    );
    let shots = j["recordings"][0]["shots"].as_array().unwrap();
    assert_eq!(shots.len(), cuts.len() + 1);
    let hl = j["selection"]["highlights"].as_array().unwrap();
    assert_eq!(hl.len(), 2, "{hl:?}");
    let spans: Vec<(f64, f64)> = hl
        .iter()
        .map(|h| (h["start"].as_f64().unwrap(), h["end"].as_f64().unwrap()))
        .collect();
    for (a, b) in [(22.0, 24.0), (61.0, 63.0)] {
        assert!(
            spans.iter().any(|(s, e)| *s <= a + 0.5 && *e >= b - 0.5),
            "event {a}–{b} not in {spans:?}"
        );
    }
    // Highlight edges sit on shot boundaries.
    let bounds: Vec<f64> = std::iter::once(0.0)
        .chain(truth.cuts.iter().map(|&c| c as f64 / 30.0))
        .chain(std::iter::once(truth.frames as f64 / 30.0))
        .collect();
    let on_bound = |t: f64| bounds.iter().any(|b| (b - t).abs() <= 1.5 / 30.0);
    for h in hl {
        let (s, e) = (h["start"].as_f64().unwrap(), h["end"].as_f64().unwrap());
        assert!(on_bound(s) && on_bound(e), "{s}–{e} not on {bounds:?}");
        assert!(h["reasons"][0].as_str().unwrap().starts_with("loud"), "{h}");
    }

    // The render: a project beside the recording, a compilation, chapters, a stacked short.
    let out_dir = tmp.path().join("out");
    let out = run(
        &data,
        &[
            "highlights",
            rec_s,
            "--count",
            "2",
            "--length",
            "6",
            "--shorts",
            "1",
            "--layout",
            "stack",
            "--facecam",
            "0.75,0,0.25,0.25",
            "--out",
            out_dir.to_str().unwrap(),
            "--name",
            "session",
        ],
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("render: {}", String::from_utf8_lossy(&out.stderr));
    assert!(proj.join("session.highlights.yaml").is_file());
    assert!(proj.join("session.selection.json").is_file());
    let en = out_dir.join("session-highlights/en");
    let fin = decode::probe(&en.join("final.mp4")).unwrap();
    let total: f64 = spans.iter().map(|(s, e)| e - s).sum();
    assert!(
        (fin.duration - total).abs() < 0.5,
        "final {} s vs highlights {total} s",
        fin.duration
    );
    assert!(fin.audio.is_some());
    // Chapters: one per highlight, at its place in the compilation.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(en.join("metadata.json")).unwrap()).unwrap();
    let chapters = meta["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), 2, "{meta}");
    assert_eq!(chapters[0]["start"].as_f64().unwrap(), 0.0);
    let second = chapters[1]["start"].as_f64().unwrap();
    assert!(
        (second - (spans[0].1 - spans[0].0)).abs() < 0.1,
        "{chapters:?} {spans:?}"
    );
    // The compilation's loud moments are where the events were played.
    let audio = decode::decode_audio_mono(&en.join("final.mp4"), 16_000).unwrap();
    let rms = |a: f64, b: f64| {
        let s = &audio[(a * 16000.0) as usize..((b * 16000.0) as usize).min(audio.len())];
        (s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32).sqrt()
    };
    let ev0 = 22.0 - spans[0].0;
    assert!(rms(ev0 + 0.3, ev0 + 1.7) > 4.0 * rms(0.0, (ev0 - 0.5).max(0.2)).max(1e-4));

    // The short: portrait, ≤ 60 s, the lime facecam in its top band.
    let short = en.join("short.mp4");
    let info = decode::probe(&short).unwrap();
    let v = info.video.unwrap();
    assert_eq!((v.width, v.height), (1080, 1920));
    assert!(info.duration <= 60.0 + 0.1);
    let frame = decode::frame_at(&short, 1.0).unwrap();
    let top_green = (0..100)
        .filter(|k| {
            let (x, y) = (100 + k * 8, 100 + (k % 10) * 50);
            let p = frame.get(x, y);
            p[1] > 180 && p[0] < 90 && p[2] < 90
        })
        .count();
    assert!(top_green > 80, "facecam band: {top_green}/100 lime samples");
    let bottom_green = (0..100)
        .filter(|k| {
            let (x, y) = (100 + k * 8, 1000 + (k % 10) * 80);
            let p = frame.get(x, y);
            p[1] > 180 && p[0] < 90 && p[2] < 90
        })
        .count();
    assert!(bottom_green < 50, "gameplay band is not the facecam");
}

#[test]
fn bad_recordings_exit_2_naming_the_file_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let proj = tmp.path().join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    let text = proj.join("notes.mp4");
    std::fs::write(&text, "this is not a video\n".repeat(50)).unwrap();
    let empty = proj.join("empty.mkv");
    std::fs::write(&empty, b"").unwrap();
    // A recording without an audio stream: highlights need the game's sound.
    let silent = proj.join("silent.mp4");
    {
        let spec = SynthSpec {
            width: 64,
            height: 36,
            fps: 10,
            segments: vec![Segment::cut("color=c=red", 1.0)],
            flashes: vec![],
            audio: None,
            container: Container::Mp4,
            crf: 30,
            gop: 10,
        };
        synth::write(&silent, &spec).unwrap();
    }
    for (file, what) in [
        (&text, "not a video"),
        (&empty, "empty"),
        (&silent, "no audio"),
        (&proj.join("missing.mp4"), "no such file"),
    ] {
        let out = run(&data, &["highlights", file.to_str().unwrap(), "--dry-run"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains(file.file_name().unwrap().to_str().unwrap()),
            "{what}: {err}"
        );
    }
    // Nothing was written beside the recordings.
    let names: Vec<String> = std::fs::read_dir(&proj)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");

    // A script whose recording lies outside the project is refused, naming the field.
    let outside = tmp.path().join("elsewhere.mp4");
    std::fs::copy(&silent, &outside).unwrap();
    let script = proj.join("s.yaml");
    std::fs::write(
        &script,
        "title: T\nchannel: gaming\nrecordings: [../elsewhere.mp4]\n",
    )
    .unwrap();
    let out = run(
        &data,
        &[
            "render",
            script.to_str().unwrap(),
            "--out",
            tmp.path().join("o").to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("recordings[0]"), "{err}");
    assert!(!tmp.path().join("o").exists());
}
