//! A data dir for driving the queue through the real binary (`add`, `run`, `status`, `logs`,
//! `cancel`), with fault injection for stage workers and a look at the workers still alive.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{bin, reelsmith};

/// A tiny script (two short scenes) whose text differs by `n`; its project is `clip-<n>`.
pub fn tiny_script(dir: &Path, n: usize) -> PathBuf {
    let p = dir.join(format!("clip-{n}.yaml"));
    let body = format!(
        "title: Clip {n}\nchannel: explainer\nscenes:\n  - prompt: a calm sea number {n}\n    duration: 2\n    lines:\n      - text: This is clip number {n}.\n  - prompt: a mountain at dawn\n    duration: 2\n    lines:\n      - text: It ends here.\n"
    );
    std::fs::write(&p, body).unwrap();
    p
}

/// A data dir with one render job queued per seed (a one-line script); returns the job ids.
pub fn queue_render_jobs(
    root: &Path,
    seeds: &[u64],
) -> (reelsmith::config::Dirs, reelsmith::store::Store, Vec<i64>) {
    let dirs = reelsmith::config::Dirs {
        data: root.join("data"),
        config: root.join("cfg"),
    };
    std::fs::create_dir_all(&dirs.data).unwrap();
    let script = root.join("s.yaml");
    std::fs::write(
        &script,
        "title: T\nscenes:\n  - lines:\n      - text: Hello.\n",
    )
    .unwrap();
    let channels = reelsmith::config::ChannelSet::embedded().unwrap();
    let store = reelsmith::store::Store::open(&dirs.db_path()).unwrap();
    let ids = seeds
        .iter()
        .map(|&seed| {
            let req = reelsmith::pipeline::job::RenderRequest {
                script: script.clone(),
                channel: None,
                languages: None,
                out: root.join("out"),
                quality: reelsmith::pipeline::Quality::Draft,
                seed,
            };
            reelsmith::scheduler::enqueue(&store, &channels, &req, 0, &Default::default()).unwrap()
        })
        .collect();
    (dirs, store, ids)
}

pub struct QueueEnv {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub data: PathBuf,
    pub cfg: PathBuf,
}

impl QueueEnv {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        Self {
            data: root.join("data"),
            cfg: root.join("cfg"),
            root,
            _tmp: tmp,
        }
    }

    /// The binary with this data dir; `fault` sets `REELSMITH_TEST_FAULT` for its workers.
    pub fn command(&self, args: &[&str], fault: Option<&str>) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env("REELSMITH_DATA_DIR", &self.data)
            .env("REELSMITH_CONFIG_DIR", &self.cfg)
            .env_remove("REELSMITH_TEST_FAULT");
        if let Some(f) = fault {
            c.env("REELSMITH_TEST_FAULT", f);
        }
        c
    }

    pub fn cmd(&self, args: &[&str]) -> std::process::Output {
        reelsmith(&self.data, &self.cfg, args)
    }

    /// Starts the binary in the background, output discarded.
    pub fn spawn(&self, args: &[&str], fault: Option<&str>) -> Child {
        self.command(args, fault)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    pub fn status(&self) -> serde_json::Value {
        let o = self.cmd(&["status", "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// Job `id` as `status --json` shows it (null when absent).
    pub fn job(&self, id: i64) -> serde_json::Value {
        self.status()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id)
            .cloned()
            .unwrap_or_default()
    }

    /// Stage `stage` of job `id`, with its status, attempts and crashes (null when absent).
    pub fn task(&self, id: i64, stage: &str) -> serde_json::Value {
        let o = self.cmd(&["status", "--json", "--stages"]);
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        s["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id)
            .and_then(|j| {
                j["stages"]
                    .as_array()?
                    .iter()
                    .find(|t| t["stage"] == stage)
                    .cloned()
            })
            .unwrap_or_default()
    }

    pub fn logs(&self, id: i64) -> String {
        let o = self.cmd(&["logs", &id.to_string()]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Queues `script` (outputs under `<root>/out`); returns the job id.
    pub fn add(&self, script: &Path) -> i64 {
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

    /// Stage workers of this data dir still alive (zombies, which hold nothing, left out).
    pub fn workers(&self) -> Vec<u32> {
        let data = self.data.to_string_lossy().into_owned();
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

    /// Polls `f` every 50 ms until it holds; panics after `timeout`. Returns the wait.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
        let t0 = Instant::now();
        while !f() {
            assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
        t0.elapsed()
    }
}

/// Stops a background `run` with SIGTERM (a graceful stop); panics if it takes over 20 s.
pub fn stop(mut child: Child) {
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
