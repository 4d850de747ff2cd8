//! The durable queue, driven through the real binary: live pickup from another process, the
//! inbox, the lock, cancellation latency, pause/resume, retry, crash recovery (the crash-loop
//! limit and stage workers are tested in `workers.rs`).

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::queue_env::{stop, tiny_script, QueueEnv};
use common::*;

type Env = QueueEnv;

trait QueueExt {
    fn spawn_run(&self, extra: &[&str]) -> Child;
    fn job_status(&self, id: i64) -> String;
}

impl QueueExt for QueueEnv {
    fn spawn_run(&self, extra: &[&str]) -> Child {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        self.spawn(&args, None)
    }

    fn job_status(&self, id: i64) -> String {
        self.job(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
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
        while !env.workers().is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "stage workers outlived the studio: {:?}",
                env.workers()
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
