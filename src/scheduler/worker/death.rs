//! How a worker died, in words a user can act on.

/// A worker's end as its supervisor saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Death {
    /// The raw wait status (`wait4`), or None when it could not be collected.
    pub status: Option<i32>,
    /// The worker's peak resident memory (bytes).
    pub peak_rss: u64,
    /// The last lines it wrote to stderr.
    pub stderr_tail: String,
    /// The supervisor killed it (a cancel that was not answered, a shutdown, a recycle).
    pub killed_by_us: bool,
}

impl Death {
    /// The signal that ended it, if one did.
    pub fn signal(&self) -> Option<i32> {
        let s = self.status?;
        libc::WIFSIGNALED(s).then(|| libc::WTERMSIG(s))
    }

    /// Its exit status, if it exited.
    pub fn exit_code(&self) -> Option<i32> {
        let s = self.status?;
        libc::WIFEXITED(s).then(|| libc::WEXITSTATUS(s))
    }

    /// A clean exit (asked to exit, or its stdin closed).
    pub fn clean(&self) -> bool {
        self.exit_code() == Some(0)
    }

    /// Whether memory ran out: an allocation failed (Rust aborts with "memory allocation of N
    /// bytes failed") or the kernel's OOM killer ended it (SIGKILL nobody here sent).
    pub fn out_of_memory(&self) -> bool {
        self.stderr_tail.contains("memory allocation of")
            || (self.signal() == Some(libc::SIGKILL) && !self.killed_by_us)
    }

    /// "killed by signal 9 (SIGKILL) while running keyframes — likely out of memory: the
    /// worker's peak RSS was 21.4 GB".
    pub fn describe(&self, stage: &str) -> String {
        let rss = format!("the worker's peak RSS was {}", gb(self.peak_rss));
        let how = match (self.signal(), self.exit_code()) {
            (Some(sig), _) => format!("killed by signal {sig} ({})", signal_name(sig)),
            (None, Some(code)) => format!("the worker exited with status {code}"),
            (None, None) => "the worker vanished".to_string(),
        };
        let mut msg = format!("{how} while running {stage}");
        if let Some(line) = self
            .stderr_tail
            .lines()
            .rev()
            .find(|l| l.contains("memory allocation of"))
        {
            msg.push_str(&format!(" — out of memory ({}): {rss}", line.trim()));
        } else if self.out_of_memory() {
            msg.push_str(&format!(
                " — likely out of memory (the kernel's OOM killer sends SIGKILL): {rss}"
            ));
        } else {
            match self.signal() {
                Some(libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE) => {
                    msg.push_str(" — a crash in native code (a library, a driver or a kernel)")
                }
                Some(libc::SIGABRT) => msg.push_str(" — it aborted"),
                _ => {}
            }
            msg.push_str(&format!("; {rss}"));
            if let Some(last) = self
                .stderr_tail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
            {
                msg.push_str(&format!("; its last words: {}", last.trim()));
            }
        }
        msg
    }
}

fn gb(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.0} MB", bytes as f64 / 1e6)
    }
}

/// The conventional name of a signal.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "unknown signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signalled(sig: i32) -> i32 {
        sig // a wait status for "terminated by `sig`" (no core flag)
    }

    #[test]
    fn names_the_signal_and_the_likely_cause() {
        let d = Death {
            status: Some(signalled(libc::SIGKILL)),
            peak_rss: 21_400_000_000,
            stderr_tail: String::new(),
            killed_by_us: false,
        };
        assert_eq!(d.signal(), Some(9));
        assert!(d.out_of_memory());
        assert_eq!(
            d.describe("keyframes"),
            "killed by signal 9 (SIGKILL) while running keyframes — likely out of memory \
             (the kernel's OOM killer sends SIGKILL): the worker's peak RSS was 21.4 GB"
        );
        let ours = Death {
            killed_by_us: true,
            ..d.clone()
        };
        assert!(!ours.out_of_memory());

        let segv = Death {
            status: Some(signalled(libc::SIGSEGV)),
            peak_rss: 300_000_000,
            stderr_tail: "decoding frame 12\n".into(),
            killed_by_us: false,
        };
        let m = segv.describe("assemble:en");
        assert!(
            m.starts_with("killed by signal 11 (SIGSEGV) while running assemble:en"),
            "{m}"
        );
        assert!(
            m.contains("native code") && m.contains("decoding frame 12"),
            "{m}"
        );

        let alloc = Death {
            status: Some(signalled(libc::SIGABRT)),
            peak_rss: 1 << 30,
            stderr_tail: "memory allocation of 67108864 bytes failed\n".into(),
            killed_by_us: false,
        };
        assert!(alloc.out_of_memory());
        assert!(alloc
            .describe("plan")
            .contains("out of memory (memory allocation of 67108864 bytes failed)"));

        let exited = Death {
            status: Some(3 << 8),
            peak_rss: 0,
            stderr_tail: String::new(),
            killed_by_us: false,
        };
        assert_eq!(exited.exit_code(), Some(3));
        assert!(!exited.clean());
        assert!(exited
            .describe("voice:en")
            .starts_with("the worker exited with status 3"));
    }
}
