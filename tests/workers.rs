//! Stage workers, driven through the real binary: a crash in a stage never takes the studio
//! down, an outside kill of the studio never fails a job, a hung stage is ended by `cancel`,
//! no worker outlives the studio.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::queue_env::{stop, tiny_script, QueueEnv};

type Env = QueueEnv;

#[test]
fn killing_the_studio_in_its_longest_stage_never_fails_the_job_or_leaves_a_worker() {
    let env = Env::new();
    let long = env.root.join("long.yaml");
    std::fs::write(
        &long,
        "title: Long\nchannel: explainer\nscenes:\n  - prompt: a long calm sea\n    duration: 30\n    lines:\n      - text: A long scene.\n",
    )
    .unwrap();
    let long_id = env.add(&long);
    let short_id = env.add(&tiny_script(&env.root, 7));
    // More kills than the crash limit (3), each while the assembly is running.
    for round in 0..4 {
        let mut child = env.spawn(
            &["run", "--exit-when-idle", "--no-inbox", "--jobs", "1"],
            None,
        );
        env.wait_for("assemble running", Duration::from_secs(120), || {
            let t = env.task(long_id, "assemble:en");
            t["status"] == "running" && t["attempts"] == round + 1
        });
        assert!(!env.workers().is_empty(), "the assembly runs in a worker");
        let _ = child.kill(); // SIGKILL, as the OOM killer would
        let _ = child.wait();
        env.wait_for("its workers to exit", Duration::from_secs(5), || {
            env.workers().is_empty()
        });
    }
    let o = env.cmd(&["run", "--exit-when-idle", "--no-inbox"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(env.job(long_id)["status"], "done", "{}", env.job(long_id));
    assert_eq!(env.job(short_id)["status"], "done");
    let t = env.task(long_id, "assemble:en");
    assert_eq!(
        t["crashes"], 0,
        "the studio's death is not the stage's fault: {t}"
    );
    assert!(
        env.workers().is_empty(),
        "workers left after the run: {:?}",
        env.workers()
    );
}

#[test]
fn a_segfaulting_stage_fails_at_the_crash_limit_with_the_signal_named_and_the_queue_goes_on() {
    let env = Env::new();
    let bad = env.add(&tiny_script(&env.root, 1));
    let good = env.add(&tiny_script(&env.root, 2));
    // One run of the scheduler, start to end: the crashes never take it down.
    let o = env
        .command(
            &["run", "--exit-when-idle", "--no-inbox"],
            Some("segv:captions:en@clip-1"),
        )
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("1 job(s) done, 1 failed"), "{out}");
    let j = env.job(bad);
    assert_eq!(j["status"], "failed", "{j}");
    let err = j["error"].as_str().unwrap();
    assert!(
        err.contains("killed by signal 11 (SIGSEGV) while running captions:en"),
        "{err}"
    );
    assert!(
        err.contains("crashed 3 times in a row without progress"),
        "{err}"
    );
    let t = env.task(bad, "captions:en");
    assert_eq!(
        (t["status"].as_str(), t["crashes"].as_i64()),
        (Some("failed"), Some(3)),
        "{t}"
    );
    assert_eq!(env.job(good)["status"], "done");
    assert!(env.root.join("out/clip-2/en/final.mp4").exists());
    // Each crash is in the job's log with its cause.
    let logs = env.logs(bad);
    assert!(logs.matches("SIGSEGV").count() >= 3, "{logs}");
}

#[test]
fn a_stage_that_exhausts_its_memory_is_reported_as_out_of_memory() {
    let env = Env::new();
    let id = env.add(&tiny_script(&env.root, 3));
    let o = env
        .command(
            &[
                "run",
                "--exit-when-idle",
                "--no-inbox",
                "--crash-limit",
                "1",
                "--worker-memory-limit",
                "3GiB",
            ],
            Some("oom:plan"),
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = env.job(id);
    assert_eq!(j["status"], "failed", "{j}");
    let err = j["error"].as_str().unwrap();
    assert!(err.contains("while running plan"), "{err}");
    assert!(err.contains("out of memory"), "{err}");
    assert!(err.contains("peak RSS"), "{err}");
}

#[test]
fn a_hung_stage_is_reported_and_cancel_ends_it_within_seconds() {
    let env = Env::new();
    let hung = env.add(&tiny_script(&env.root, 4));
    let other = env.add(&tiny_script(&env.root, 5));
    let runner = env.spawn(
        &["run", "--no-inbox", "--stall-after", "1s"],
        Some("hang:voice:en@clip-4"),
    );
    env.wait_for("the stall report", Duration::from_secs(120), || {
        env.logs(hung).contains("has made no progress for 1 s")
    });
    assert_eq!(env.task(hung, "voice:en")["status"], "running");
    // The queue says so too, with the worker that runs it.
    env.wait_for(
        "the stalled flag in status",
        Duration::from_secs(10),
        || {
            let o = env.cmd(&["status"]);
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.contains("voice:en (stalled")
                && text.contains("STALLED")
                && text.contains("stage workers:")
        },
    );
    let o = env.cmd(&["cancel", &hung.to_string()]);
    assert!(o.status.success());
    let took = env.wait_for("the cancel", Duration::from_secs(15), || {
        env.job(hung)["status"] == "cancelled"
    });
    assert!(took < Duration::from_secs(8), "cancel took {took:?}");
    assert!(
        env.logs(hung).contains("did not answer the cancel"),
        "{}",
        env.logs(hung)
    );
    env.wait_for("the other job", Duration::from_secs(180), || {
        env.job(other)["status"] == "done"
    });
    stop(runner);
    assert!(env.workers().is_empty());
}

#[test]
fn status_json_lists_the_workers_while_they_run() {
    let env = Env::new();
    let id = env.add(&tiny_script(&env.root, 6));
    let runner = env.spawn(
        &["run", "--no-inbox", "--stall-after", "1s"],
        Some("hang:voice:en@clip-6"),
    );
    env.wait_for("a worker in status", Duration::from_secs(120), || {
        let s = env.status();
        s["workers"].as_array().is_some_and(|w| {
            w.iter().any(|w| {
                w["tasks"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t["job"] == id && t["stage"] == "voice:en"))
            })
        })
    });
    let s = env.status();
    let w = s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| !w["tasks"].as_array().unwrap().is_empty())
        .unwrap()
        .clone();
    let pid = w["pid"].as_u64().unwrap() as u32;
    // The hung task is flagged once its progress has not moved for the stall time.
    env.wait_for("the stalled flag", Duration::from_secs(10), || {
        env.status()["workers"].as_array().is_some_and(|ws| {
            ws.iter().any(|w| {
                w["tasks"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t["stalled"] == true))
            })
        })
    });
    assert!(env.workers().contains(&pid), "{w}");
    assert_eq!(w["device"], "cpu");
    assert!(w["rss_bytes"].as_u64().unwrap() > 1 << 20, "{w}");
    env.cmd(&["cancel", &id.to_string()]);
    stop(runner);
    assert!(env.workers().is_empty());
    // A stopped scheduler publishes no workers.
    assert_eq!(env.status()["workers"], serde_json::json!([]));
}

/// A one-scene script of `seconds` (its project is `long`).
fn long_script(dir: &Path, seconds: u32) -> PathBuf {
    let p = dir.join("long.yaml");
    std::fs::write(
        &p,
        format!(
            "title: Long\nchannel: explainer\nscenes:\n  - prompt: a long calm sea\n    duration: {seconds}\n    lines:\n      - text: A long scene over the sea.\n"
        ),
    )
    .unwrap();
    p
}

fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// The stage worker running `stage` of job `id`, from `status --json`.
fn worker_running(env: &Env, id: i64, stage: &str) -> Option<u32> {
    env.status()["workers"].as_array()?.iter().find_map(|w| {
        w["tasks"]
            .as_array()?
            .iter()
            .any(|t| t["job"] == id && t["stage"] == stage)
            .then(|| w["pid"].as_u64().map(|p| p as u32))
            .flatten()
    })
}

#[test]
fn an_assembly_killed_after_checkpoints_resumes_from_the_last_with_the_same_bytes() {
    let clean = Env::new();
    clean.add(&long_script(&clean.root, 40));
    let o = clean.cmd(&["run", "--exit-when-idle", "--no-inbox"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let expected = sha256_file(&clean.root.join("out/long/en/final.mp4"));

    let env = Env::new();
    let id = env.add(&long_script(&env.root, 40));
    let mut child = env.spawn(&["run", "--exit-when-idle", "--no-inbox"], None);
    env.wait_for("two finished segments", Duration::from_secs(300), || {
        env.logs(id)
            .contains("assemble:en: checkpoint saved (segment 2/4)")
    });
    let _ = child.kill(); // SIGKILL: the studio dies mid-assembly
    let _ = child.wait();
    env.wait_for("its workers to exit", Duration::from_secs(5), || {
        env.workers().is_empty()
    });
    let o = env.cmd(&["run", "--exit-when-idle", "--no-inbox"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(env.job(id)["status"], "done");
    let logs = env.logs(id);
    let resumed = logs
        .lines()
        .find(|l| l.contains("assemble:en: resumed from the checkpoint at segment"))
        .unwrap_or_else(|| panic!("no resume in the log:\n{logs}"));
    // It went on from segment 2 or later (one more may have finished before the kill).
    assert!(
        resumed.contains("segment 2/4") || resumed.contains("segment 3/4"),
        "{resumed}"
    );
    assert_eq!(
        logs.matches("assemble:en: checkpoint saved (segment 1/4)")
            .count(),
        1,
        "segment 1 was not drawn again:\n{logs}"
    );
    assert_eq!(
        sha256_file(&env.root.join("out/long/en/final.mp4")),
        expected
    );
    // The checkpoints are gone once the artifact is whole.
    let left: Vec<_> = std::fs::read_dir(env.data.join("checkpoints"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "checkpoints left: {left:?}");
}

#[test]
fn a_worker_killed_between_checkpoints_again_and_again_is_not_a_crash_loop() {
    let env = Env::new();
    let id = env.add(&long_script(&env.root, 60));
    let runner = env.spawn(&["run", "--no-inbox"], None);
    // Three kills (the crash limit) of the assembling worker, each after a new segment, as an
    // out-of-memory killer would (six segments: three left after the last kill, so the
    // assembly is still running when it comes).
    for k in 1..=3 {
        let mark = format!("assemble:en: checkpoint saved (segment {k}/6)");
        env.wait_for(&mark, Duration::from_secs(300), || {
            env.logs(id).contains(&mark)
        });
        let pid = worker_running(&env, id, "assemble:en").expect("the assembly runs in a worker");
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        env.wait_for("the crash to be recorded", Duration::from_secs(20), || {
            env.logs(id).matches("killed by signal 9 (SIGKILL)").count() >= k
        });
    }
    env.wait_for("the job", Duration::from_secs(300), || {
        env.job(id)["status"] == "done"
    });
    stop(runner);
    let logs = env.logs(id);
    assert_eq!(logs.matches("not a crash loop").count(), 3, "{logs}");
    assert!(
        logs.contains("resumed from the checkpoint at segment 3/6"),
        "{logs}"
    );
    assert_eq!(env.task(id, "assemble:en")["crashes"], 0);
}

#[test]
fn workers_are_recycled_after_their_quota_of_tasks() {
    let env = Env::new();
    let id = env.add(&tiny_script(&env.root, 8));
    let o = env
        .command(
            &[
                "run",
                "--exit-when-idle",
                "--no-inbox",
                "--worker-tasks",
                "2",
            ],
            None,
        )
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert_eq!(env.job(id)["status"], "done");
    // A fresh worker every 2 tasks: each recycled worker is named with its reason, and no
    // worker ran more than its quota, so the workers started cover every task run. (How many
    // end on a recycle depends on how the tasks fall between the parallel workers: with every
    // worker at exactly 2, the last one is recycled too and as many start as are recycled.)
    let tasks: usize = out
        .split_once(" task(s) run")
        .and_then(|(head, _)| head.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no task count in: {out}"));
    let recycled = out.matches("it ran 2 tasks").count();
    assert!(
        recycled >= tasks / 2 - 1,
        "{tasks} tasks, {recycled} recycled: {out}"
    );
    let log = std::fs::read_to_string(env.data.join("logs/reelsmith.log")).unwrap();
    let started = log.matches("started stage worker").count();
    assert!(
        started >= recycled && 2 * started >= tasks,
        "{started} workers started, {recycled} recycled, {tasks} tasks"
    );
    assert!(env.workers().is_empty());
}
