//! Process plumbing shared by the command line and the studio: the tokio runtime, stopping on
//! signals, and this process's CPU time. It sits below `cli` and `tui` so neither imports the
//! other for it.

/// A multi-threaded tokio runtime, or the exit code after saying why there is none.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            1
        })
}

/// Cancels `token` on Ctrl-C (SIGINT) or SIGTERM, printing `message` to stderr first.
/// Must be called inside the runtime.
pub(crate) fn cancel_on_signals(token: tokio_util::sync::CancellationToken, message: &'static str) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        eprintln!("{message}");
        token.cancel();
    });
}

/// CPU seconds this process has used (user + system, all threads).
pub(crate) fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident and peak resident memory (`VmRSS`, `VmHWM`) of process `pid`, or of this process
/// when `None`, in bytes; zeros when /proc cannot tell (the process is gone, not Linux).
pub fn memory_of(pid: Option<u32>) -> (u64, u64) {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_string(),
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return (0, 0);
    };
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb << 10)
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_grows_with_work() {
        let c0 = super::cpu_seconds();
        let mut x = 0u64;
        let t0 = std::time::Instant::now();
        // Busy work until the counter shows 50 ms of it, or 20 s of wall clock pass (on a
        // machine busy with other work this thread gets only a share of a core).
        let mut used = 0.0;
        while used <= 0.05 && t0.elapsed() < std::time::Duration::from_secs(20) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            used = super::cpu_seconds() - c0;
        }
        assert!(used > 0.05, "{used} CPU-s after 20 s of busy work ({x})");
    }

    #[test]
    fn memory_of_reads_this_process_and_its_children() {
        let (rss, peak) = super::memory_of(None);
        assert!(rss > 1 << 20 && peak >= rss, "rss {rss}, peak {peak}");
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let (crss, cpeak) = super::memory_of(Some(child.id()));
        let _ = child.kill();
        let _ = child.wait();
        assert!(crss > 0 && cpeak >= crss, "rss {crss}, peak {cpeak}");
        assert_eq!(
            super::memory_of(Some(child.id())),
            (0, 0),
            "a reaped process has none"
        );
    }
}
