//! `render` is a one-job foreground run of the scheduler: a killed render is picked up again as
//! the same job (not queued twice), and with a studio or `reelsmith run` already running on the
//! data dir, the job is handed to it and followed to the end.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn status_json(data: &Path, cfg: &Path) -> serde_json::Value {
    let o = reelsmith(data, cfg, &["status", "--json", "--stages"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The `final.mp4` path `render` printed for English.
fn printed_final(stdout: &[u8]) -> std::path::PathBuf {
    let stdout = String::from_utf8_lossy(stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("en: ").filter(|p| p.ends_with("final.mp4")))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no final.mp4 line in {stdout}"))
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_render_resumes_as_the_same_job() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, cfg, out) = (
        tmp.path().join("data"),
        tmp.path().join("cfg"),
        tmp.path().join("out"),
    );
    let script = example("notes.txt");
    let mut child = Command::new(bin())
        .args(["render", script.to_str().unwrap(), "--out"])
        .arg(&out)
        .env("REELSMITH_DATA_DIR", &data)
        .env("REELSMITH_CONFIG_DIR", &cfg)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the first artifacts", || {
        std::fs::read_dir(data.join("artifacts"))
            .map(|r| r.count() >= 3)
            .unwrap_or(false)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let jobs = status_json(&data, &cfg);
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{jobs}");
    assert_ne!(jobs["jobs"][0]["status"], "done", "killed too late: {jobs}");

    let o = render(&data, &cfg, &script, &out, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("resuming job 1"), "{err}");
    let jobs = status_json(&data, &cfg);
    let list = jobs["jobs"].as_array().unwrap();
    assert_eq!(
        list.len(),
        1,
        "the resumed render queued a second job: {jobs}"
    );
    assert_eq!(list[0]["status"], "done", "{jobs}");
    for st in list[0]["stages"].as_array().unwrap() {
        assert!(
            st["status"] == "done" || st["status"] == "cached",
            "stage not finished: {st}"
        );
    }
    // The outputs printed are the files written.
    let final_mp4 = printed_final(&o.stdout);
    assert!(final_mp4.is_file(), "{}", final_mp4.display());
    assert!(final_mp4.starts_with(&out), "{}", final_mp4.display());
    let project = final_mp4.parent().unwrap().parent().unwrap().to_path_buf();

    // A finished job is not adopted again: the same command is a new job of cache hits.
    let o = render(&data, &cfg, &script, &out, &[]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("resuming"));
    let jobs = status_json(&data, &cfg);
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2, "{jobs}");
    let report = read_json(&project.join("report.json"));
    assert!(report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "cached"));
}

#[test]
fn render_hands_its_job_to_a_running_scheduler_and_follows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, cfg, out) = (
        tmp.path().join("data"),
        tmp.path().join("cfg"),
        tmp.path().join("out"),
    );
    let mut studio = Command::new(bin())
        .args(["run", "--no-inbox"])
        .env("REELSMITH_DATA_DIR", &data)
        .env("REELSMITH_CONFIG_DIR", &cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = data.join("scheduler.lock");
    wait_for("the scheduler's lock", || {
        std::fs::read_to_string(&lock)
            .map(|t| t.trim() == studio.id().to_string())
            .unwrap_or(false)
    });
    let o = reelsmith(
        &data,
        &cfg,
        &[
            "render",
            example("notes.txt").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let _ = studio.kill();
    let _ = studio.wait();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("following it"), "{err}");
    assert!(err.contains(&format!("pid {}", studio.id())), "{err}");
    let final_mp4 = printed_final(&o.stdout);
    assert!(final_mp4.is_file(), "{}", final_mp4.display());
    assert!(final_mp4
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("report.json")
        .is_file());
}
