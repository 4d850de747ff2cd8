//! The studio end to end, in a real tmux: start it, make a project from an example script with
//! keys only, wait for the render to finish on screen, check the video, quit.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A private tmux server, killed when the test ends (even when it fails).
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(dir: &Path, width: u16, height: u16, command: &str) -> Tmux {
        // One server per test: tests of this binary run in parallel.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = format!("reelsmith-test-{}-{n}", std::process::id());
        let t = Tmux { socket };
        let status = t
            .cmd()
            .args(["new-session", "-d", "-s", "studio"])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg("-c")
            .arg(dir)
            .arg(command)
            .status()
            .expect("tmux is installed (scripts/install-deps.sh installs it)");
        assert!(status.success(), "tmux new-session failed");
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c
    }

    /// Keys by tmux name (`Enter`, `Tab`, `q`), one at a time, as a person types them (an
    /// Escape followed at once by a key would read as Alt-key).
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let ok = self
                .cmd()
                .args(["send-keys", "-t", "studio", k])
                .status()
                .unwrap()
                .success();
            assert!(ok, "send-keys {k}");
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Literal text.
    fn type_text(&self, text: &str) {
        let ok = self
            .cmd()
            .args(["send-keys", "-t", "studio", "-l", text])
            .status()
            .unwrap()
            .success();
        assert!(ok, "send-keys -l {text}");
        std::thread::sleep(Duration::from_millis(150));
    }

    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "studio"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen satisfies `ok`; panics with the last screen otherwise.
    fn wait_for(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            if t0.elapsed() > timeout {
                panic!("timed out waiting for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

#[test]
fn make_a_project_with_keys_only_and_watch_it_render() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (data, config) = (dir.join("data"), dir.join("config"));
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::copy(common::example("notes.txt"), dir.join("scripts/notes.txt")).unwrap();
    let command = format!(
        "env REELSMITH_DATA_DIR={} REELSMITH_CONFIG_DIR={} TERM=xterm-256color {}; \
         echo STUDIO-EXIT=$?; sleep 60",
        shell_quote(&data),
        shell_quote(&config),
        shell_quote(Path::new(common::bin())),
    );
    let tmux = Tmux::start(dir, 110, 32, &command);
    tmux.wait_for("the studio", Duration::from_secs(20), |s| {
        s.contains("The queue is empty")
    });

    // Projects pane, new project, type part of the path, complete it, queue it.
    tmux.keys(&["1", "n"]);
    tmux.wait_for("the form", Duration::from_secs(5), |s| {
        s.contains("New project")
    });
    tmux.type_text("scripts/no");
    tmux.keys(&["Tab"]);
    tmux.wait_for("the completed path", Duration::from_secs(5), |s| {
        s.contains("scripts/notes.txt")
    });
    tmux.keys(&["Enter"]);

    // The queue shows it running, then done.
    let done = tmux.wait_for("the job to finish", Duration::from_secs(300), |s| {
        s.lines()
            .any(|l| l.contains("notes") && l.contains("done") && l.contains("100%"))
    });
    assert!(done.contains("Queue · 1 jobs"), "{done}");

    // Its detail shows every stage done and the log.
    tmux.keys(&["Enter"]);
    let detail = tmux.wait_for("the job detail", Duration::from_secs(10), |s| {
        s.contains("assemble:en") && s.contains("Log")
    });
    assert!(!detail.contains("failed"), "{detail}");
    tmux.keys(&["Escape"]);

    let video: PathBuf = dir.join("out/notes/en/final.mp4");
    let info = reelsmith::media::decode::probe(&video)
        .unwrap_or_else(|e| panic!("{}: {e}", video.display()));
    assert!(info.duration > 3.0, "{info:?}");
    assert!(info.video.is_some() && info.audio.is_some(), "{info:?}");

    // Nothing is running: q quits at once and the terminal is handed back.
    tmux.keys(&["q"]);
    let end = tmux.wait_for("the studio to exit", Duration::from_secs(20), |s| {
        s.contains("STUDIO-EXIT=")
    });
    assert!(end.contains("STUDIO-EXIT=0"), "{end}");
    assert!(!end.contains("Queue ·"), "left the alternate screen: {end}");
}

/// `reelsmith status --json` of a data dir.
fn status(data: &Path, config: &Path) -> serde_json::Value {
    let out = common::reelsmith(data, config, &["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait_status(
    data: &Path,
    config: &Path,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let s = status(data, config);
        if ok(&s) {
            return s;
        }
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}: {s}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Kills a child process when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_second_studio_attaches_as_a_monitor_and_commands_through_the_store() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (data, config) = (dir.join("data"), dir.join("config"));
    std::fs::create_dir_all(&data).unwrap();
    // Someone else runs the queue.
    let runner = Child(
        Command::new(common::bin())
            .args(["run", "--no-inbox"])
            .env("REELSMITH_DATA_DIR", &data)
            .env("REELSMITH_CONFIG_DIR", &config)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = runner.0.id();
    let command = format!(
        "env REELSMITH_DATA_DIR={} REELSMITH_CONFIG_DIR={} {}; echo STUDIO-EXIT=$?; sleep 60",
        shell_quote(&data),
        shell_quote(&config),
        shell_quote(Path::new(common::bin())),
    );
    // The runner takes its lock first.
    let t0 = Instant::now();
    while reelsmith::scheduler::SchedulerLock::holder_pid(&data) != Some(pid) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the runner never locked"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let tmux = Tmux::start(dir, 100, 24, &command);
    tmux.wait_for("the monitor badge", Duration::from_secs(20), |s| {
        s.contains(&format!("monitor of pid {pid}"))
    });
    // A job queued from a shell shows up; pausing the queue from the studio reaches the store.
    let add = common::reelsmith(
        &data,
        &config,
        &[
            "add",
            common::example("notes.txt").to_str().unwrap(),
            "--out",
            dir.join("out").to_str().unwrap(),
        ],
    );
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    tmux.wait_for(
        "the job queued from a shell",
        Duration::from_secs(20),
        |s| s.contains("Queue · 1 jobs"),
    );
    tmux.keys(&["P"]);
    wait_status(
        &data,
        &config,
        "the queue paused",
        Duration::from_secs(10),
        |s| s["queue_paused"] == true,
    );
    tmux.wait_for("the paused badge", Duration::from_secs(10), |s| {
        s.contains("queue paused")
    });
    tmux.keys(&["P"]);
    wait_status(
        &data,
        &config,
        "the job done",
        Duration::from_secs(300),
        |s| s["queue_paused"] == false && s["jobs"][0]["status"] == "done",
    );
    tmux.wait_for("done on screen", Duration::from_secs(10), |s| {
        s.lines().any(|l| l.contains("notes") && l.contains("done"))
    });
    // A monitor never asks: it leaves, and the runner keeps the queue.
    tmux.keys(&["q"]);
    tmux.wait_for("the monitor to exit", Duration::from_secs(10), |s| {
        s.contains("STUDIO-EXIT=0")
    });
    assert_eq!(
        reelsmith::scheduler::SchedulerLock::holder_pid(&data),
        Some(pid)
    );
}

#[test]
fn quitting_while_rendering_hands_the_queue_to_a_headless_scheduler() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (data, config) = (dir.join("data"), dir.join("config"));
    std::fs::create_dir_all(&data).unwrap();
    // Two jobs queued before the studio starts: it runs them.
    for name in ["explainer.yaml", "anime-duel.yaml"] {
        let add = common::reelsmith(
            &data,
            &config,
            &[
                "add",
                common::example(name).to_str().unwrap(),
                "--out",
                dir.join("out").to_str().unwrap(),
            ],
        );
        assert!(
            add.status.success(),
            "{}",
            String::from_utf8_lossy(&add.stderr)
        );
    }
    let command = format!(
        "env REELSMITH_DATA_DIR={} REELSMITH_CONFIG_DIR={} {}; echo STUDIO-EXIT=$?; sleep 120",
        shell_quote(&data),
        shell_quote(&config),
        shell_quote(Path::new(common::bin())),
    );
    let tmux = Tmux::start(dir, 100, 24, &command);
    tmux.wait_for("a running job", Duration::from_secs(30), |s| {
        s.contains("running")
    });
    tmux.keys(&["q"]);
    tmux.wait_for("the quit question", Duration::from_secs(5), |s| {
        s.contains("keep rendering headless")
    });
    tmux.keys(&["k"]);
    // The studio leaves; a headless scheduler takes over and finishes both jobs.
    tmux.wait_for("the studio to exit", Duration::from_secs(300), |s| {
        s.contains("STUDIO-EXIT=0")
    });
    let done = wait_status(
        &data,
        &config,
        "both jobs done",
        Duration::from_secs(600),
        |s| {
            s["jobs"]
                .as_array()
                .is_some_and(|j| j.len() == 2 && j.iter().all(|j| j["status"] == "done"))
        },
    );
    let log = std::fs::read_to_string(data.join("logs/headless.log")).unwrap_or_default();
    assert!(log.contains("scheduler started"), "{log}\n{done}");
    // The headless scheduler keeps the lock (it runs until stopped): stop it.
    let pid = reelsmith::scheduler::SchedulerLock::holder_pid(&data).expect("a holder");
    assert_ne!(pid, std::process::id());
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let t0 = Instant::now();
    while reelsmith::scheduler::SchedulerLock::acquire(&data).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the headless scheduler did not stop"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
