//! The drop-folder inbox: `<data>/inbox/`.
//!
//! A user, a script or `scp` drops a script file into the inbox; [`Inbox::scan`] hands every file
//! that has stopped changing to an `accept` callback (which validates and enqueues it) and then
//! moves it to `done/` (accepted) or `rejected/` (with a sibling `<name>.error.txt` explaining
//! what is wrong and what to do). Files are never deleted or overwritten.
//!
//! [`Inbox::watch`] starts a file-system watcher whose only job is to say "look now"; the scan is
//! the single place that decides anything, so a missed event costs at most one safety-net scan
//! period.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode};
use notify::{Config, Event, EventKind, PollWatcher, RecursiveMode, Watcher};

/// Extensions (compared case-insensitively) the inbox takes as scripts. Anything else that is not
/// ignored is rejected with an explanation, without calling `accept`.
pub const SCRIPT_EXTENSIONS: &[&str] = &["yaml", "yml", "json", "txt", "md"];

/// Name suffixes (lowercased) of files that are still being written or are not ours: left alone.
const IGNORED_SUFFIXES: &[&str] = &[
    "~",
    ".swp",
    ".swo",
    ".swx",
    ".kate-swp",
    ".part",
    ".partial",
    ".filepart",
    ".tmp",
    ".temp",
    ".crdownload",
    ".download",
    // Our own error notes, in case someone moves a whole rejected/ folder back in.
    ".error.txt",
];

/// A file whose size and mtime stayed the same for this long (across two scans) is complete.
const STABLE_FOR: Duration = Duration::from_millis(300);
/// A file whose mtime is at least this old when first seen is taken at once.
const OLD_ENOUGH: Duration = Duration::from_secs(1);
/// Poll period of the fallback watcher.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// After the last raw event, extra wake-ups so a file that was still settling gets picked up
/// without waiting for the caller's safety-net scan.
const FOLLOW_UPS: [Duration; 2] = [Duration::from_millis(400), Duration::from_millis(1200)];
/// Give up looking for a free `<stem>.<n>.<ext>` after this many tries.
const MAX_SUFFIX: u32 = 100_000;

#[cfg(target_os = "linux")]
const NATIVE_MODE: &str = "inotify";
#[cfg(not(target_os = "linux"))]
const NATIVE_MODE: &str = "native";

/// What one scan did with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `accept` returned `Ok`; the file now lives at `moved_to` (in `done/`).
    Accepted { from: PathBuf, moved_to: PathBuf },
    /// `accept` (or the inbox itself, for an unsupported extension or an empty file) refused the
    /// file; it now lives at `moved_to` (in `rejected/`) next to `error_file`, which holds
    /// `message` plus what to do.
    Rejected {
        from: PathBuf,
        moved_to: PathBuf,
        error_file: PathBuf,
        message: String,
    },
    /// The verdict was reached (`accepted: true` means the job IS queued) but the file could not
    /// be moved out of the inbox. It stays where it is; later scans retry the move without calling
    /// `accept` again and report `Accepted`/`Rejected` once it succeeds. Reported once per file.
    Stuck {
        from: PathBuf,
        accepted: bool,
        error: String,
    },
}

/// Why [`Inbox::watch`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch the inbox {}: {reason}", dir.display())]
    Unavailable { dir: PathBuf, reason: String },
    #[error("cannot start the inbox watch thread: {0}")]
    Thread(#[source] io::Error),
}

/// Size and mtime: what "unchanged" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    size: u64,
    mtime: Option<SystemTime>,
}

#[derive(Debug)]
struct Sighting {
    fp: Fingerprint,
    since: Instant,
}

#[derive(Debug, Clone)]
enum Verdict {
    Accept,
    Reject(String),
}

#[derive(Debug)]
struct Unmoved {
    fp: Fingerprint,
    verdict: Verdict,
}

enum Ready {
    New(Fingerprint),
    Retry,
}

/// The inbox folder and what the scans remember between passes.
pub struct Inbox {
    dir: PathBuf,
    done: PathBuf,
    rejected: PathBuf,
    /// Files seen but not yet stable.
    seen: HashMap<PathBuf, Sighting>,
    /// Files whose verdict is final but whose move failed; retried without calling `accept`.
    unmoved: HashMap<PathBuf, Unmoved>,
    watcher: Option<Box<dyn Watcher + Send>>,
    mode: &'static str,
    fallback_reason: Option<String>,
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("dir", &self.dir)
            .field("mode", &self.mode)
            .field("settling", &self.seen.len())
            .field("unmoved", &self.unmoved.len())
            .finish()
    }
}

impl Inbox {
    /// Opens (creating if needed) `dir`, `dir/done/` and `dir/rejected/`.
    pub fn open(dir: &Path) -> io::Result<Inbox> {
        let done = dir.join("done");
        let rejected = dir.join("rejected");
        fs::create_dir_all(&done)?;
        fs::create_dir_all(&rejected)?;
        Ok(Inbox {
            dir: dir.to_path_buf(),
            done,
            rejected,
            seen: HashMap::new(),
            unmoved: HashMap::new(),
            watcher: None,
            mode: "off",
            fallback_reason: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One pass over the inbox (a single `read_dir`; files are only `stat`ed if their name makes
    /// them candidates).
    ///
    /// Every stable candidate is handed to `accept`, which validates and enqueues it (returning
    /// `Err(message)` for bad input; the message should say what is wrong and what to do). `accept`
    /// sees the file at its inbox path and must copy what it needs. The file is then moved to
    /// `done/` or `rejected/`. Returns what happened, in file-name order.
    ///
    /// Only an unreadable inbox directory is an `Err`; trouble with one file never hides the
    /// outcomes of the others (see [`Outcome::Stuck`]).
    pub fn scan(
        &mut self,
        accept: &mut dyn FnMut(&Path) -> Result<(), String>,
    ) -> io::Result<Vec<Outcome>> {
        let now = Instant::now();
        let wall_now = SystemTime::now();
        let mut present: Vec<PathBuf> = Vec::new();
        let mut ready: Vec<(OsString, PathBuf, Ready)> = Vec::new();

        for entry in fs::read_dir(&self.dir)? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            if is_ignored(&name) {
                continue;
            }
            // Not followed: symlinks, directories, fifos and sockets are all left alone.
            match entry.file_type() {
                Ok(ft) if ft.is_file() => {}
                _ => continue,
            }
            // Vanished or unreadable right now: look again next pass.
            let Ok(meta) = entry.metadata() else { continue };
            let fp = Fingerprint {
                size: meta.len(),
                mtime: meta.modified().ok(),
            };
            let path = entry.path();
            present.push(path.clone());

            if let Some(unmoved) = self.unmoved.get(&path) {
                if unmoved.fp == fp {
                    ready.push((name, path, Ready::Retry));
                    continue;
                }
                // Replaced by a different file since the verdict: treat it as new.
                self.unmoved.remove(&path);
            }

            let stable = match self.seen.get_mut(&path) {
                None => {
                    let old = fp.mtime.is_some_and(|m| {
                        wall_now
                            .duration_since(m)
                            .is_ok_and(|age| age >= OLD_ENOUGH)
                    });
                    if !old {
                        self.seen.insert(path.clone(), Sighting { fp, since: now });
                    }
                    old
                }
                Some(sighting) if sighting.fp == fp => {
                    now.saturating_duration_since(sighting.since) >= STABLE_FOR
                }
                Some(sighting) => {
                    sighting.fp = fp;
                    sighting.since = now;
                    false
                }
            };
            if stable {
                ready.push((name, path, Ready::New(fp)));
            }
        }

        if !self.seen.is_empty() || !self.unmoved.is_empty() {
            self.seen.retain(|p, _| present.contains(p));
            self.unmoved.retain(|p, _| present.contains(p));
        }
        if ready.is_empty() {
            return Ok(Vec::new());
        }

        ready.sort_by(|a, b| a.0.cmp(&b.0));
        let mut outcomes = Vec::with_capacity(ready.len());
        for (name, path, kind) in ready {
            match kind {
                Ready::New(fp) => {
                    self.seen.remove(&path);
                    let verdict = match precheck(&name, fp) {
                        Some(message) => Verdict::Reject(message),
                        None => match accept(&path) {
                            Ok(()) => Verdict::Accept,
                            Err(message) => Verdict::Reject(message),
                        },
                    };
                    match self.settle(&path, &name, &verdict) {
                        Ok(outcome) => outcomes.push(outcome),
                        Err(e) => {
                            outcomes.push(Outcome::Stuck {
                                from: path.clone(),
                                accepted: matches!(verdict, Verdict::Accept),
                                error: format!(
                                    "could not move {} out of the inbox: {e}",
                                    path.display()
                                ),
                            });
                            self.unmoved.insert(path, Unmoved { fp, verdict });
                        }
                    }
                }
                Ready::Retry => {
                    let Some(unmoved) = self.unmoved.get(&path) else {
                        continue;
                    };
                    let verdict = unmoved.verdict.clone();
                    if let Ok(outcome) = self.settle(&path, &name, &verdict) {
                        self.unmoved.remove(&path);
                        outcomes.push(outcome);
                    }
                }
            }
        }
        Ok(outcomes)
    }

    /// Starts watching the inbox directory and returns a receiver that gets a `()` whenever
    /// something changed (coalesced: at most one is ever waiting) plus two follow-ups 0.4 s and
    /// 1.2 s after the last change, so files that were still settling get picked up promptly. The
    /// caller then calls [`Inbox::scan`].
    ///
    /// Uses the native watcher (inotify on Linux); if it cannot start (e.g. inotify limits) falls
    /// back to polling every second, see [`Inbox::watch_mode`] and [`Inbox::fallback_reason`].
    /// Calling it again replaces the previous watcher (whose receiver then disconnects).
    pub fn watch(&mut self) -> Result<Receiver<()>, WatchError> {
        self.start_watch(true)
    }

    /// Like [`Inbox::watch`] but always polls (every second). For inboxes on network file systems,
    /// where inotify does not see changes made by other machines.
    pub fn watch_polling(&mut self) -> Result<Receiver<()>, WatchError> {
        self.start_watch(false)
    }

    /// `"inotify"` (`"native"` off Linux), `"poll"`, or `"off"` before a watch was started.
    pub fn watch_mode(&self) -> &'static str {
        self.mode
    }

    /// Why the native watcher could not be used, when [`Inbox::watch`] fell back to polling.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    fn start_watch(&mut self, native: bool) -> Result<Receiver<()>, WatchError> {
        // Drop the old watcher first so a replaced receiver disconnects.
        self.watcher = None;
        self.mode = "off";
        self.fallback_reason = None;

        let (raw_tx, raw_rx) = mpsc::channel::<()>();
        let (out_tx, out_rx) = mpsc::sync_channel::<()>(1);

        let native_result = native.then(|| start_native(&self.dir, raw_tx.clone()));
        let (watcher, mode, fallback_reason) = match native_result {
            Some(Ok(w)) => {
                drop(raw_tx);
                (w, NATIVE_MODE, None)
            }
            other => {
                let native_err = match other {
                    Some(Err(e)) => Some(format!("{NATIVE_MODE} watcher unavailable: {e}")),
                    _ => None,
                };
                match start_poll(&self.dir, raw_tx) {
                    Ok(w) => (w, "poll", native_err),
                    Err(e) => {
                        let reason = match native_err {
                            Some(n) => format!("{n}; polling failed too: {e}"),
                            None => format!("polling failed: {e}"),
                        };
                        return Err(WatchError::Unavailable {
                            dir: self.dir.clone(),
                            reason,
                        });
                    }
                }
            }
        };

        thread::Builder::new()
            .name("reelsmith-inbox-watch".into())
            .spawn(move || forward(raw_rx, out_tx))
            .map_err(WatchError::Thread)?;

        self.watcher = Some(watcher);
        self.mode = mode;
        self.fallback_reason = fallback_reason;
        Ok(out_rx)
    }

    /// Moves the file according to the verdict.
    fn settle(&self, path: &Path, name: &OsStr, verdict: &Verdict) -> io::Result<Outcome> {
        match verdict {
            Verdict::Accept => {
                let moved_to = self.move_to_done(path, name)?;
                Ok(Outcome::Accepted {
                    from: path.to_path_buf(),
                    moved_to,
                })
            }
            Verdict::Reject(message) => {
                let (moved_to, error_file) = self.move_to_rejected(path, name, message)?;
                Ok(Outcome::Rejected {
                    from: path.to_path_buf(),
                    moved_to,
                    error_file,
                    message: message.clone(),
                })
            }
        }
    }

    fn move_to_done(&self, path: &Path, name: &OsStr) -> io::Result<PathBuf> {
        fs::create_dir_all(&self.done)?;
        for n in 0..=MAX_SUFFIX {
            let target = self.done.join(numbered(name, n));
            match move_no_clobber(path, &target) {
                Ok(()) => return Ok(target),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(no_free_name(&self.done, name))
    }

    fn move_to_rejected(
        &self,
        path: &Path,
        name: &OsStr,
        message: &str,
    ) -> io::Result<(PathBuf, PathBuf)> {
        fs::create_dir_all(&self.rejected)?;
        for n in 0..=MAX_SUFFIX {
            let target = self.rejected.join(numbered(name, n));
            let error_file = error_file_for(&target);
            if exists(&target) {
                continue;
            }
            // Claim the error file name first; it is ours from here on.
            let mut file = match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&error_file)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            let text = error_text(name, &self.dir, message);
            if let Err(e) = file
                .write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
            {
                drop(file);
                let _ = fs::remove_file(&error_file);
                return Err(e);
            }
            drop(file);
            match move_no_clobber(path, &target) {
                Ok(()) => return Ok((target, error_file)),
                Err(e) => {
                    let _ = fs::remove_file(&error_file);
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        Err(no_free_name(&self.rejected, name))
    }
}

/// Names the inbox leaves alone: dotfiles, editor/download temp files, our own error notes.
fn is_ignored(name: &OsStr) -> bool {
    let lower = name.to_string_lossy().to_lowercase();
    lower.starts_with('.')
        || (lower.len() > 1 && lower.starts_with('#') && lower.ends_with('#'))
        || IGNORED_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// Rejections the inbox makes itself, before `accept` is bothered.
fn precheck(name: &OsStr, fp: Fingerprint) -> Option<String> {
    let ext = Path::new(name)
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase());
    let supported = ext.as_deref().is_some_and(|e| {
        SCRIPT_EXTENSIONS.contains(&e) || crate::script::RECORDING_EXTENSIONS.contains(&e)
    });
    if !supported {
        let what = match ext.as_deref() {
            Some(e) => format!("files ending in .{e} are not scripts"),
            None => "a file without an extension is not recognised as a script".to_string(),
        };
        return Some(format!(
            "{what}. The inbox takes script files ending in {} and gameplay recordings ending \
             in {}. Save the file with one of those extensions and drop it into the inbox again.",
            SCRIPT_EXTENSIONS
                .iter()
                .map(|e| format!(".{e}"))
                .collect::<Vec<_>>()
                .join(", "),
            crate::script::RECORDING_EXTENSIONS
                .iter()
                .map(|e| format!(".{e}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if fp.size == 0 {
        return Some(
            "the file is empty. Write the script first (or copy it in when it is finished), \
             then drop it into the inbox again."
                .to_string(),
        );
    }
    None
}

fn error_text(name: &OsStr, inbox: &Path, message: &str) -> String {
    format!(
        "reelsmith could not accept \"{}\" from the inbox.\n\n\
         What is wrong:\n{}\n\n\
         What to do: fix the script and drop it into {} again. This copy stays in rejected/ \
         for reference and is never picked up again.\n",
        name.to_string_lossy(),
        indent(message),
        inbox.display()
    )
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `name` for n = 0, else `<stem>.<n>.<ext>` (or `<name>.<n>` without an extension).
fn numbered(name: &OsStr, n: u32) -> OsString {
    if n == 0 {
        return name.to_os_string();
    }
    let p = Path::new(name);
    let mut out = OsString::new();
    match (p.file_stem(), p.extension()) {
        (Some(stem), Some(ext)) => {
            out.push(stem);
            out.push(format!(".{n}."));
            out.push(ext);
        }
        _ => {
            out.push(name);
            out.push(format!(".{n}"));
        }
    }
    out
}

fn error_file_for(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_os_string();
    s.push(".error.txt");
    PathBuf::from(s)
}

fn exists(path: &Path) -> bool {
    // A dangling symlink counts as taken too.
    fs::symlink_metadata(path).is_ok()
}

fn no_free_name(dir: &Path, name: &OsStr) -> io::Error {
    io::Error::other(format!(
        "no free name for {} in {} after {MAX_SUFFIX} tries",
        name.to_string_lossy(),
        dir.display()
    ))
}

/// Moves `from` to `to` without ever replacing an existing `to` (`AlreadyExists` instead).
///
/// A hard link fails atomically if `to` exists; where links are not possible (some file systems,
/// `fs.protected_hardlinks` with a file owned by someone else) it falls back to check-then-rename,
/// which is only racy against another process writing into the same folder.
fn move_no_clobber(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => match fs::remove_file(from) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Undo: `to` is our own second name for the same file, nothing is lost.
                let _ = fs::remove_file(to);
                Err(e)
            }
        },
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
        Err(_) => {
            if exists(to) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} already exists", to.display()),
                ));
            }
            fs::rename(from, to)
        }
    }
}

/// The raw notify callback: any event that may mean "a file appeared or changed" (and any
/// watcher error, since events may have been lost) becomes a wake-up.
fn raw_handler(tx: Sender<()>) -> impl FnMut(notify::Result<Event>) + Send + 'static {
    move |res: notify::Result<Event>| {
        let wanted = match &res {
            Ok(ev) => !matches!(
                ev.kind,
                EventKind::Access(AccessKind::Open(_))
                    | EventKind::Access(AccessKind::Read)
                    | EventKind::Access(AccessKind::Close(AccessMode::Read))
            ),
            Err(_) => true,
        };
        if wanted {
            let _ = tx.send(());
        }
    }
}

fn start_native(dir: &Path, tx: Sender<()>) -> notify::Result<Box<dyn Watcher + Send>> {
    let mut w = notify::recommended_watcher(raw_handler(tx))?;
    w.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(Box::new(w))
}

fn start_poll(dir: &Path, tx: Sender<()>) -> notify::Result<Box<dyn Watcher + Send>> {
    // PollWatcher::watch silently skips a path it cannot stat; check ourselves.
    fs::metadata(dir).map_err(notify::Error::io)?;
    let config = Config::default().with_poll_interval(POLL_INTERVAL);
    let mut w = PollWatcher::new(raw_handler(tx), config)?;
    w.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(Box::new(w))
}

/// Coalesces raw events into wake-ups on `out` (capacity 1) and adds the follow-ups. Ends when
/// the watcher (every raw sender) or the caller's receiver goes away.
fn forward(raw: Receiver<()>, out: SyncSender<()>) {
    let mut follow_ups: Vec<Instant> = Vec::new();
    loop {
        let got = match follow_ups.first() {
            Some(&at) => raw.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => raw.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(()) => {
                while raw.try_recv().is_ok() {}
                let now = Instant::now();
                follow_ups = FOLLOW_UPS.iter().map(|d| now + *d).collect();
            }
            Err(RecvTimeoutError::Timeout) => {
                follow_ups.remove(0);
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if let Err(TrySendError::Disconnected(())) = out.try_send(()) {
            return;
        }
    }
}
