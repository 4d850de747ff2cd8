//! Same script, same bytes: in the same data dir (all cache hits), in a fresh data dir, and after
//! a render killed half-way is run again. Editing one line redoes only what depends on it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// sha256 of a file, so a mismatch prints two short hashes instead of megabytes of bytes.
fn digest(p: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    hex::encode(sha2::Sha256::digest(bytes))
}

fn stage_statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["node"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn same_script_same_bytes_cached_fresh_and_after_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let script = example("anime-duel.yaml");
    let cfg = tmp.path().join("cfg");
    let data1 = tmp.path().join("data1");

    let t0 = Instant::now();
    render(&data1, &cfg, &script, &tmp.path().join("a"), &[]);
    let cold = t0.elapsed();
    let first = digest(&tmp.path().join("a/anime-duel/en/final.mp4"));

    // Same data dir: every stage is a cache hit, the bytes are identical.
    let t1 = Instant::now();
    render(&data1, &cfg, &script, &tmp.path().join("b"), &[]);
    let warm = t1.elapsed();
    let report = read_json(&tmp.path().join("b/anime-duel/report.json"));
    for (node, status) in stage_statuses(&report) {
        assert_eq!(status, "cached", "{node} was not a cache hit");
    }
    assert_eq!(first, digest(&tmp.path().join("b/anime-duel/en/final.mp4")));
    assert!(warm < cold / 2, "cached render took {warm:?} vs {cold:?}");

    // A fresh data dir: everything runs again, same bytes.
    render(
        &tmp.path().join("data2"),
        &cfg,
        &script,
        &tmp.path().join("c"),
        &[],
    );
    assert_eq!(first, digest(&tmp.path().join("c/anime-duel/en/final.mp4")));
    assert_eq!(
        digest(&tmp.path().join("a/anime-duel/en/short.mp4")),
        digest(&tmp.path().join("c/anime-duel/en/short.mp4"))
    );

    // Killed half-way (SIGKILL once some stages finished), then run again: same bytes.
    let data3 = tmp.path().join("data3");
    let out3 = tmp.path().join("d");
    let mut child = Command::new(bin())
        .args([
            "render",
            script.to_str().unwrap(),
            "--out",
            out3.to_str().unwrap(),
            "--quality",
            "draft",
        ])
        .env("REELSMITH_DATA_DIR", &data3)
        .env("REELSMITH_CONFIG_DIR", &cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = std::fs::read_dir(data3.join("artifacts"))
            .map(|r| r.count())
            .unwrap_or(0);
        if n >= 12 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out3.join("anime-duel/en/final.mp4").exists(),
        "killed too late to test resuming"
    );
    let o = render(&data3, &cfg, &script, &out3, &[]);
    assert!(o.status.success());
    assert_eq!(first, digest(&out3.join("anime-duel/en/final.mp4")));
    let leftovers: Vec<_> = std::fs::read_dir(data3.join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "temp dirs left behind: {leftovers:?}");
}

#[test]
fn editing_one_line_redoes_only_that_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cfg");
    let data = tmp.path().join("data");
    let script = tmp.path().join("ep.yaml");
    let text = std::fs::read_to_string(example("explainer.yaml")).unwrap();
    std::fs::write(&script, &text).unwrap();
    render(&data, &cfg, &script, &tmp.path().join("o1"), &[]);

    // Change the text of one line (the last line of the file that has `text:`).
    let idx = text.rfind("text:").unwrap();
    let end = idx + text[idx..].find('\n').unwrap();
    let edited = format!(
        "{}text: \"And that is all there is to it.\"{}",
        &text[..idx],
        &text[end..]
    );
    std::fs::write(&script, edited).unwrap();
    render(&data, &cfg, &script, &tmp.path().join("o2"), &[]);
    let report = read_json(&tmp.path().join("o2/ep/report.json"));
    let stage = |name: &str| {
        report["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["node"] == name)
            .unwrap_or_else(|| panic!("no stage {name}"))
            .clone()
    };
    let voice = stage("voice:en");
    assert_eq!(voice["status"], "done");
    assert_eq!(
        voice["items"]["made"], 1,
        "only the edited line is voiced again: {voice}"
    );
    assert!(voice["items"]["hits"].as_u64().unwrap() >= 3);
    let kf = stage("keyframes");
    assert_eq!(kf["items"]["made"], 0, "no keyframe is painted again: {kf}");
    let music = stage("music");
    assert_eq!(music["items"]["made"], 0, "music is reused: {music}");
    assert!(Path::new(&tmp.path().join("o2/ep/en/final.mp4")).exists());
}
