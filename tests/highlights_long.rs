//! Highlights from a long recording through the real binary: a 2-hour synthetic recording (low
//! resolution, so it is quick to make) is analysed in two passes with bounded memory, the loud
//! events end up in the chosen highlights, and an analysis killed part-way resumes from the
//! chunk files it had finished (left as they were) and finds the same highlights.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use reelsmith::highlights::synth::{self, AudioEvent, AudioSpec, Container, Segment, SynthSpec};

const SECONDS_PER_SEGMENT: f64 = 200.0;
/// 8 kHz mono, as cheap voice-chat captures have.
const AUDIO_RATE: u32 = 8_000;
/// Loud events (start, seconds), each inside a busy segment.
const EVENTS: [(f64, f64); 3] = [(1510.0, 3.0), (3720.0, 3.0), (6130.0, 3.0)];

/// 2 hours, 64×36 at 10 fps, 36 shots of 200 s from different lavfi sources, 8 kHz mono audio
/// with three loud events.
fn long_recording(dir: &Path) -> PathBuf {
    let busy_at = |t: f64| (t / SECONDS_PER_SEGMENT) as usize;
    let event_segments: Vec<usize> = EVENTS.iter().map(|(t, _)| busy_at(*t)).collect();
    let quiet = [
        "color=c=0x203040",
        "smptebars",
        "color=c=0x402020",
        "color=c=0x204020",
        "rgbtestsrc",
        "color=c=0x303030",
        "smptehdbars",
        "color=c=0x101840",
        "testsrc2", // busy but silent
    ];
    let segments = (0..36)
        .map(|i| {
            let source = if event_segments.contains(&i) {
                if i.is_multiple_of(2) {
                    "mandelbrot"
                } else {
                    "testsrc2"
                }
            } else {
                quiet[i % quiet.len()]
            };
            Segment::cut(source, SECONDS_PER_SEGMENT)
        })
        .collect();
    let spec = SynthSpec {
        width: 64,
        height: 36,
        fps: 10,
        segments,
        flashes: vec![],
        audio: Some(AudioSpec {
            rate: AUDIO_RATE,
            channels: 1,
            base_db: -34.0,
            events: EVENTS
                .iter()
                .map(|&(at, seconds)| AudioEvent {
                    at,
                    seconds,
                    gain_db: -4.0,
                })
                .collect(),
        }),
        container: Container::Mp4,
        crf: 30,
        gop: 50,
    };
    let path = dir.join("two-hours.mp4");
    synth::write(&path, &spec).expect("synthetic 2-hour recording");
    path
}

/// `reelsmith ARGS` with a private data dir, spawned (stdout and stderr piped).
fn spawn(data: &Path, args: &[&str]) -> Child {
    let config = data.join("config");
    Command::new(common::bin())
        .args(args)
        .env("REELSMITH_DATA_DIR", data)
        .env("REELSMITH_CONFIG_DIR", &config)
        .env("HF_HOME", config.join("hf-home"))
        .env_remove("HF_HUB_CACHE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the reelsmith binary starts")
}

struct Finished {
    ok: bool,
    stdout: String,
    stderr: String,
    seconds: f64,
    /// Peak resident memory of the child, MB.
    peak_mb: f64,
}

/// Waits for `child` with wait4, which reports the peak RSS of that child alone.
fn finish(mut child: Child, started: Instant) -> Finished {
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills; the child is ours and not yet reaped.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    Finished {
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        seconds: started.elapsed().as_secs_f64(),
        // ru_maxrss is in KiB on Linux.
        peak_mb: ru.ru_maxrss as f64 * 1024.0 / 1e6,
    }
}

fn json_of(f: &Finished) -> serde_json::Value {
    assert!(f.ok, "stdout: {}\nstderr: {}", f.stdout, f.stderr);
    serde_json::from_str(&f.stdout).expect("JSON on stdout")
}

/// `analysis: resumed N finished chunk(s)` from stderr.
fn resumed(stderr: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("analysis: resumed "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `analysis: resumed N` line in:\n{stderr}"))
}

/// The keyframe-pass chunk files in `<data>/analysis/*/`: name → (mtime, bytes).
fn chunk_files(data: &Path) -> BTreeMap<String, (SystemTime, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let Ok(dirs) = std::fs::read_dir(data.join("analysis")) else {
        return out;
    };
    for d in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(d.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("keys-") && name.ends_with(".json")) {
                continue;
            }
            if let (Ok(meta), Ok(bytes)) = (f.metadata(), std::fs::read(f.path())) {
                if let Ok(m) = meta.modified() {
                    out.insert(name, (m, bytes));
                }
            }
        }
    }
    out
}

#[test]
fn two_hour_recording_bounded_memory_and_resumes_after_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let rec = long_recording(tmp.path());
    let generation = t.elapsed().as_secs_f64();
    let rec_s = rec.to_str().unwrap();
    let args = ["highlights", rec_s, "--dry-run", "--json", "--count", "3"];

    // (a) The whole analysis: peak memory bounded, the loud events chosen.
    let data_a = tmp.path().join("data-a");
    let t = Instant::now();
    let full = finish(spawn(&data_a, &args), t);
    let j = json_of(&full);
    assert_eq!(
        j["recordings"][0]["full_decode"], false,
        "two passes expected"
    );
    let highlights: Vec<(f64, f64)> = j["selection"]["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["start"].as_f64().unwrap(), h["end"].as_f64().unwrap()))
        .collect();
    for &(at, seconds) in &EVENTS {
        assert!(
            highlights
                .iter()
                .any(|&(a, b)| a <= at + 0.5 && b >= at + seconds - 0.5),
            "the loud event at {at} s is in no highlight: {highlights:?}"
        );
    }
    assert!(
        full.peak_mb < 400.0,
        "peak RSS {:.0} MB analysing a 2-hour recording",
        full.peak_mb
    );
    let total_chunks = chunk_files(&data_a).len();
    assert_eq!(total_chunks, 60, "120 s overview chunks of 7200 s");

    // (b) Killed part-way through the overview pass, then run again.
    let data_b = tmp.path().join("data-b");
    let t = Instant::now();
    let mut child = spawn(&data_b, &args);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = chunk_files(&data_b).len();
        if n >= 3 {
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the analysis ended ({st}) before 3 overview chunks were seen ({n})");
        }
        assert!(Instant::now() < deadline, "no overview chunks after 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    let killed = finish(child, t);
    assert!(!killed.ok, "the analysis finished before the kill");
    let before = chunk_files(&data_b);
    assert!(
        before.len() >= 3 && before.len() < total_chunks,
        "{} of {total_chunks} chunks at the kill",
        before.len()
    );

    let t = Instant::now();
    let again = finish(spawn(&data_b, &args), t);
    let j2 = json_of(&again);
    let reused = resumed(&again.stderr);
    assert!(
        reused >= before.len(),
        "resumed {reused} chunk(s); {} were finished before the kill",
        before.len()
    );
    assert_eq!(
        resumed(&full.stderr),
        0,
        "a fresh analysis resumed something"
    );
    let after = chunk_files(&data_b);
    assert_eq!(after.len(), total_chunks);
    for (name, (mtime, bytes)) in &before {
        let (m2, b2) = &after[name];
        assert!(
            m2 == mtime && b2 == bytes,
            "{name} was written again by the resumed run"
        );
    }
    // The resumed analysis finds what the uninterrupted one did.
    assert_eq!(j2["selection"], j["selection"]);
    assert_eq!(j2["recordings"][0]["cuts"], j["recordings"][0]["cuts"]);

    eprintln!(
        "2-hour 64×36 10 fps recording: generated in {generation:.1} s; analysis {:.1} s, \
         peak RSS {:.0} MB; killed after {:.2} s with {}/{total_chunks} overview chunks \
         (peak RSS {:.0} MB); resumed run {:.1} s, peak RSS {:.0} MB, resumed {reused} \
         chunk file(s) (audio, overview chunks and spans)",
        full.seconds,
        full.peak_mb,
        killed.seconds,
        before.len(),
        killed.peak_mb,
        again.seconds,
        again.peak_mb
    );
}

/// `bench highlights` on a tiny generated recording prints both CPU ratios and, where the
/// PySceneDetect venv is installed, the speed ratio against it.
#[test]
fn bench_highlights_prints_its_ratios() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = common::reelsmith(
        &data,
        &data.join("config"),
        &["bench", "highlights", "--seconds", "2"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    eprintln!("{stdout}");
    assert!(stdout.contains("whole decode (default)"), "{stdout}");
    assert!(stdout.contains("two passes (forced)"), "{stdout}");
    assert_eq!(
        stdout.matches("× CPU per recording second").count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("cut detection, ours"), "{stdout}");
    assert!(
        stdout.contains("ratio (ours / theirs time)") || stdout.contains("skipped: no venv"),
        "{stdout}"
    );
    // The generated recording is kept for the next run.
    assert_eq!(
        std::fs::read_dir(data.join("bench")).unwrap().count(),
        1,
        "one cached recording"
    );
}
