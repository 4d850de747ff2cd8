//! The durable queue, driven through the real binary: live pickup from another process, the
//! inbox, the lock, cancellation latency, pause/resume, retry, crash recovery (the crash-loop
//! limit and stage workers are tested in `workers.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A tiny script (two short scenes) whose text differs by `n`.
fn tiny_script(dir: &Path, n: usize) -> PathBuf {
    let p = dir.join(format!("clip-{n}.yaml"));
    let body = format!(
        "title: Clip {n}\nchannel: explainer\nscenes:\n  - prompt: a calm sea number {n}\n    duration: 2\n    lines:\n      - text: This is clip number {n}.\n  - prompt: a mountain at dawn\n    duration: 2\n    lines:\n      - text: It ends here.\n"
    );
    std::fs::write(&p, body).unwrap();
    p
}

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    cfg: PathBuf,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        Self {
            data: root.join("data"),
            cfg: root.join("cfg"),
            root,
            _tmp: tmp,
        }
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        reelsmith(&self.data, &self.cfg, args)
    }

    fn spawn_run(&self, extra: &[&str]) -> Child {
        Command::new(bin())
            .arg("run")
            .args(extra)
            .env("REELSMITH_DATA_DIR", &self.data)
            .env("REELSMITH_CONFIG_DIR", &self.cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn status(&self) -> serde_json::Value {
        let o = self.cmd(&["status", "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn job_status(&self, id: i64) -> String {
        let s = self.status();
        s["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id)
            .map(|j| j["status"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }

    fn add(&self, script: &Path) -> i64 {
        let out = self.root.join("out");
        let o = self.cmd(&[
            "add",
            script.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let s = String::from_utf8_lossy(&o.stdout);
        s.split_whitespace()
            .nth(1)
            .unwrap()
            .trim_end_matches(':')
            .parse()
            .unwrap()
    }

    fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
        let t0 = Instant::now();
        while !f() {
            assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
        t0.elapsed()
    }
}

fn stop(mut child: Child) {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("scheduler did not stop within 20 s of SIGTERM");
}

#[test]
fn live_pickup_lock_inbox_pause_and_cancel() {
    let env = Env::new();
    let runner = env.spawn_run(&[]);
    // The scheduler holds the lock: a second one is refused with exit 2, naming the pid.
    env.wait_for("the lock file", Duration::from_secs(10), || {
        env.data.join("scheduler.lock").exists()
    });
    std::thread::sleep(Duration::from_millis(300));
    let second = env.cmd(&["run", "--exit-when-idle"]);
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&runner.id().to_string()), "{err}");

    // A job added from another process is picked up within 2 s and finishes.
    let id = env.add(&tiny_script(&env.root, 1));
    let picked = env.wait_for("pickup", Duration::from_secs(5), || {
        env.job_status(id) != "queued"
    });
    assert!(
        picked < Duration::from_secs(2) + Duration::from_millis(500),
        "picked up after {picked:?}"
    );
    env.wait_for("job 1 done", Duration::from_secs(120), || {
        env.job_status(id) == "done"
    });
    assert!(env.root.join("out/clip-1/en/final.mp4").exists());

    // The inbox: a good script becomes a job and moves to done/, a bad one to rejected/.
    let inbox = env.data.join("inbox");
    std::fs::copy(tiny_script(&env.root, 2), inbox.join("clip-2.yaml")).unwrap();
    std::fs::write(
        inbox.join("broken.yaml"),
        "title: T\nscenes:\n  - duration: -1\n",
    )
    .unwrap();
    env.wait_for("inbox accept", Duration::from_secs(4), || {
        inbox.join("done/clip-2.yaml").exists()
    });
    env.wait_for("inbox reject", Duration::from_secs(4), || {
        inbox.join("rejected/broken.yaml").exists()
    });
    let why = std::fs::read_to_string(inbox.join("rejected/broken.yaml.error.txt")).unwrap();
    assert!(why.contains("scenes[0].duration"), "{why}");
    let jobs = env.status()["jobs"].as_array().unwrap().len();
    assert_eq!(jobs, 2, "the inbox script became a job");

    // Pausing the queue starts nothing new; resuming does.
    env.wait_for("inbox job done", Duration::from_secs(120), || {
        env.job_status(2) == "done"
    });
    assert!(env.cmd(&["queue", "pause"]).status.success());
    let id3 = env.add(&tiny_script(&env.root, 3));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        env.job_status(id3),
        "queued",
        "a paused queue started a job"
    );
    assert!(env.cmd(&["queue", "resume"]).status.success());

    // Cancelling a running job stops it within about a second.
    env.wait_for("job 3 running", Duration::from_secs(10), || {
        env.job_status(id3) == "running"
    });
    let t0 = Instant::now();
    let o = env.cmd(&["cancel", &id3.to_string()]);
    assert!(o.status.success());
    env.wait_for("cancel", Duration::from_secs(5), || {
        env.job_status(id3) == "cancelled"
    });
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "cancel took {:?}",
        t0.elapsed()
    );

    // Retry runs it again, reusing what was finished.
    assert!(env.cmd(&["retry", &id3.to_string()]).status.success());
    env.wait_for("retried job done", Duration::from_secs(120), || {
        env.job_status(id3) == "done"
    });
    let logs = String::from_utf8_lossy(&env.cmd(&["logs", &id3.to_string()]).stdout).into_owned();
    assert!(
        logs.contains("cancelled") && logs.contains("done"),
        "{logs}"
    );

    stop(runner);
    let o = env.cmd(&["status"]);
    assert!(o.status.success());
}

/// Renders `n` tiny jobs with `run --exit-when-idle`, killing the scheduler with SIGKILL at
/// random moments `kills` times first. Returns sha256 of every final.mp4 by project.
fn render_queue(env: &Env, n: usize, kills: usize, seed: u64) -> Vec<(String, String)> {
    for i in 0..n {
        env.add(&tiny_script(&env.root, 100 + i));
    }
    let mut rng = seed;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..kills {
        // The default crash limit: the studio's own death never counts against a stage.
        let mut child = env.spawn_run(&["--exit-when-idle", "--no-inbox"]);
        let wait = Duration::from_millis(200 + next() % 2500);
        let t0 = Instant::now();
        while t0.elapsed() < wait && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Its stage workers die with it: none is left holding memory or a GPU.
        let t0 = Instant::now();
        while !stage_workers(&env.data).is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "stage workers outlived the studio: {:?}",
                stage_workers(&env.data)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let o = Command::new(bin())
        .args(["run", "--exit-when-idle", "--no-inbox"])
        .env("REELSMITH_DATA_DIR", &env.data)
        .env("REELSMITH_CONFIG_DIR", &env.cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let status = env.status();
    for j in status["jobs"].as_array().unwrap() {
        assert_eq!(j["status"], "done", "job not done: {j}");
    }
    (0..n)
        .map(|i| {
            use sha2::Digest;
            let name = format!("clip-{}", 100 + i);
            let bytes =
                std::fs::read(env.root.join("out").join(&name).join("en/final.mp4")).unwrap();
            (name, hex::encode(sha2::Sha256::digest(bytes)))
        })
        .collect()
}

/// Live (not zombie) stage workers of the data dir `data`.
fn stage_workers(data: &Path) -> Vec<u32> {
    let data = data.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim()
            .starts_with('Z');
        if !zombie && args.iter().any(|a| a == "worker") && args.contains(&data) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn twenty_sigkills_lose_nothing_and_change_no_byte() {
    let clean = Env::new();
    let expected = render_queue(&clean, 5, 0, 1);
    let crashy = Env::new();
    let got = render_queue(&crashy, 5, 20, 0x9e37_79b9_7f4a_7c15);
    assert_eq!(got, expected);
    // The store is intact and no temp dirs are left.
    let store = reelsmith::store::Store::open(&crashy.data.join("reelsmith.db")).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let left: Vec<_> = std::fs::read_dir(crashy.data.join("tmp"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "temp dirs left: {left:?}");
    // No task counted the studio's deaths as its crashes.
    let o = crashy.cmd(&["status", "--json", "--stages"]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for j in s["jobs"].as_array().unwrap() {
        for t in j["stages"].as_array().unwrap() {
            assert_eq!(t["crashes"], 0, "{t}");
        }
    }
}
