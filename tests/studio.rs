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
        let socket = format!("reelsmith-test-{}", std::process::id());
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
