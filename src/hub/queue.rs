//! Runs the queued model downloads (`pulls` in the store).
//!
//! A [`PullRunner`] claims queued pulls (up to `max` at once), downloads each on its own thread
//! with [`super::pull`], and writes progress plus a heartbeat into the pull's row about once a
//! second; a cancel asked in the store (by any process) reaches the download through the same
//! write. Pulls whose runner died go back to the queue, and a shutdown puts its own running
//! pulls back too: the files already on disk resume next time. The scheduler (studio or
//! `reelsmith run`) ticks one; `reelsmith models pull` ticks one for the pulls it runs itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{HubConfig, ProgressEvent, ProgressTracker, Registry};
use crate::store::{PullEnd, PullId, PullRow, Store, StoreError};

/// How often a running pull's row is written (progress and heartbeat).
const WRITE_EVERY: Duration = Duration::from_secs(1);
/// How often other runners' pulls are checked for a dead owner.
const RECOVER_EVERY: Duration = Duration::from_secs(10);
/// A running pull whose heartbeat is this old has lost its runner.
pub const STALE_MS: i64 = 60_000;

/// What a tick did, for the caller's log.
#[derive(Clone, Debug, PartialEq)]
pub enum PullReport {
    Started {
        id: PullId,
        model: String,
    },
    Finished {
        id: PullId,
        model: String,
        end: PullEnd,
    },
    /// Another process died while running it; it is queued again.
    Recovered {
        id: PullId,
        model: String,
    },
}

impl std::fmt::Display for PullReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PullReport::Started { id, model } => write!(f, "pull {id}: downloading {model}"),
            PullReport::Finished { id, model, end } => match end {
                PullEnd::Done(p) => write!(f, "pull {id}: {model} installed in {p}"),
                PullEnd::Failed(e) => write!(f, "pull {id}: {model} failed: {e}"),
                PullEnd::Cancelled => write!(f, "pull {id}: {model} cancelled"),
                PullEnd::Requeue => {
                    write!(f, "pull {id}: {model} stopped; it resumes next time")
                }
            },
            PullReport::Recovered { id, model } => write!(
                f,
                "pull {id}: {model} was downloading in a process that is gone; queued again"
            ),
        }
    }
}

/// Live progress of one of this runner's downloads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveProgress {
    pub done: u64,
    pub total: Option<u64>,
    pub bytes_per_s: f64,
    /// The last retry message, if the transfer is retrying.
    pub retrying: Option<String>,
}

struct Running {
    model: String,
    cancel: Arc<AtomicBool>,
    /// Why `cancel` was raised: the end to record once the thread returns.
    stop: Option<PullEnd>,
    seen: Arc<Mutex<(ProgressTracker, Option<String>)>>,
    handle: Option<JoinHandle<Result<PathBuf, String>>>,
    last_write: Instant,
}

/// Claims and runs queued pulls. Not `Sync`: one owner ticks it.
pub struct PullRunner {
    hub: HubConfig,
    registry: Registry,
    max: usize,
    pid: u32,
    running: BTreeMap<PullId, Running>,
    last_recover: Option<Instant>,
}

/// Whether process `pid` exists (signal 0 checks without sending anything).
pub fn process_alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(p, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl PullRunner {
    /// A runner downloading into `hub`'s cache, at most `max` models at once.
    pub fn new(hub: HubConfig, registry: Registry, max: usize) -> Self {
        Self {
            hub,
            registry,
            max: max.max(1),
            pid: std::process::id(),
            running: BTreeMap::new(),
            last_recover: None,
        }
    }

    /// No download is running here.
    pub fn is_idle(&self) -> bool {
        self.running.is_empty()
    }

    /// Live progress of a download this runner is running.
    pub fn progress(&self, id: PullId) -> Option<LiveProgress> {
        let r = self.running.get(&id)?;
        let seen = r.seen.lock().ok()?;
        Some(LiveProgress {
            done: seen.0.done(),
            total: seen.0.total(),
            bytes_per_s: seen.0.speed(),
            retrying: seen.1.clone(),
        })
    }

    /// One turn: finishes what ended, writes progress, honours cancels, requeues pulls of dead
    /// processes and, when `claim`, starts queued pulls while there is room.
    pub fn tick(&mut self, store: &Store, claim: bool) -> Result<Vec<PullReport>, StoreError> {
        let mut out = Vec::new();
        self.reap(store, &mut out)?;
        let ids: Vec<PullId> = self.running.keys().copied().collect();
        for id in ids {
            self.write_progress(store, id, false)?;
        }
        if self
            .last_recover
            .is_none_or(|t| t.elapsed() >= RECOVER_EVERY)
        {
            self.last_recover = Some(Instant::now());
            let (mine, running) = (self.pid, &self.running);
            let alive = |r: &PullRow| match r.owner_pid {
                Some(p) if p == mine => running.contains_key(&r.id),
                Some(p) => process_alive(p),
                None => false,
            };
            for r in store.recover_pulls(alive, STALE_MS)? {
                out.push(PullReport::Recovered {
                    id: r.id,
                    model: r.model,
                });
            }
        }
        if claim {
            while self.running.len() < self.max {
                let Some(row) = store.claim_next_pull(self.pid)? else {
                    break;
                };
                self.start(store, row, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Starts a pull this process already claimed (`Store::start_pull_now`).
    pub fn adopt(&mut self, store: &Store, row: PullRow) -> Result<Vec<PullReport>, StoreError> {
        let mut out = Vec::new();
        self.start(store, row, &mut out)?;
        Ok(out)
    }

    /// Stops the downloads running here and puts them back on the queue; returns once their
    /// threads have ended.
    pub fn shutdown(&mut self, store: &Store) -> Result<Vec<PullReport>, StoreError> {
        for r in self.running.values_mut() {
            if r.stop.is_none() {
                r.stop = Some(PullEnd::Requeue);
            }
            r.cancel.store(true, Ordering::Relaxed);
        }
        let mut out = Vec::new();
        while !self.running.is_empty() {
            self.reap(store, &mut out)?;
            if !self.running.is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(out)
    }

    /// Cancels one of this runner's downloads (as if asked in the store).
    pub fn cancel(&mut self, id: PullId) {
        if let Some(r) = self.running.get_mut(&id) {
            r.stop = Some(PullEnd::Cancelled);
            r.cancel.store(true, Ordering::Relaxed);
        }
    }

    fn start(
        &mut self,
        store: &Store,
        row: PullRow,
        out: &mut Vec<PullReport>,
    ) -> Result<(), StoreError> {
        let entry = match self.registry.get(&row.model) {
            Some(e) if e.local.is_some() => Err(format!(
                "{} was imported from local files; there is nothing to download",
                row.model
            )),
            Some(e) => Ok(e.spec()),
            None => Err(format!(
                "{} is not in the registry (models/*.toml, or <config>/models/*.toml)",
                row.model
            )),
        };
        let spec = match entry {
            Ok(s) => s,
            Err(why) => {
                let end = PullEnd::Failed(why);
                store.finish_pull(row.id, &end)?;
                out.push(PullReport::Finished {
                    id: row.id,
                    model: row.model,
                    end,
                });
                return Ok(());
            }
        };
        let cancel = Arc::new(AtomicBool::new(row.cancel_requested));
        let seen = Arc::new(Mutex::new((
            ProgressTracker::new(Duration::from_secs(5)),
            None::<String>,
        )));
        let hub = self.hub.clone();
        let (c, s) = (cancel.clone(), seen.clone());
        let handle = std::thread::Builder::new()
            .name(format!("pull {}", row.model))
            .spawn(move || {
                let progress = |e: &ProgressEvent| {
                    if let Ok(mut t) = s.lock() {
                        t.0.observe(e);
                        t.1 = match e {
                            ProgressEvent::Retrying { file, error, .. } => {
                                Some(format!("retrying {file}: {error}"))
                            }
                            ProgressEvent::Bytes { .. } | ProgressEvent::Finished { .. } => None,
                            _ => t.1.take(),
                        };
                    }
                };
                super::pull(&hub, &spec, &progress, &c)
                    .map(|p| p.dir)
                    .map_err(|e| e.to_string())
            });
        match handle {
            Ok(h) => {
                out.push(PullReport::Started {
                    id: row.id,
                    model: row.model.clone(),
                });
                self.running.insert(
                    row.id,
                    Running {
                        model: row.model,
                        stop: row.cancel_requested.then_some(PullEnd::Cancelled),
                        cancel,
                        seen,
                        handle: Some(h),
                        last_write: Instant::now(),
                    },
                );
            }
            Err(e) => {
                let end = PullEnd::Failed(format!("cannot start a download thread: {e}"));
                store.finish_pull(row.id, &end)?;
                out.push(PullReport::Finished {
                    id: row.id,
                    model: row.model,
                    end,
                });
            }
        }
        Ok(())
    }

    /// Writes a running pull's progress (at most once a second unless `now`); a cancel asked
    /// in the store stops the download.
    fn write_progress(&mut self, store: &Store, id: PullId, now: bool) -> Result<(), StoreError> {
        let Some(p) = self.progress(id) else {
            return Ok(());
        };
        let Some(r) = self.running.get_mut(&id) else {
            return Ok(());
        };
        if !now && r.last_write.elapsed() < WRITE_EVERY {
            return Ok(());
        }
        r.last_write = Instant::now();
        if store.pull_progress(id, p.done, p.total, p.bytes_per_s)? && r.stop.is_none() {
            r.stop = Some(PullEnd::Cancelled);
            r.cancel.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn reap(&mut self, store: &Store, out: &mut Vec<PullReport>) -> Result<(), StoreError> {
        let ended: Vec<PullId> = self
            .running
            .iter()
            .filter(|(_, r)| r.handle.as_ref().is_none_or(|h| h.is_finished()))
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            self.write_progress(store, id, true)?;
            let Some(mut r) = self.running.remove(&id) else {
                continue;
            };
            let result = match r.handle.take().map(|h| h.join()) {
                Some(Ok(res)) => res,
                Some(Err(_)) => Err("the download thread panicked".to_string()),
                None => Err("the download thread is gone".to_string()),
            };
            let end = match (result, r.stop.take()) {
                (Ok(dir), _) => PullEnd::Done(dir.display().to_string()),
                (Err(_), Some(stop)) => stop,
                (Err(e), None) => PullEnd::Failed(e),
            };
            store.finish_pull(id, &end)?;
            out.push(PullReport::Finished {
                id,
                model: r.model,
                end,
            });
        }
        Ok(())
    }
}

impl Drop for PullRunner {
    /// Stops the downloads without touching the store (as a crash would): their rows stay
    /// running until a runner sees that their owner is gone and queues them again.
    fn drop(&mut self) {
        for r in self.running.values() {
            r.cancel.store(true, Ordering::Relaxed);
        }
        for r in self.running.values_mut() {
            if let Some(h) = r.handle.take() {
                let _ = h.join();
            }
        }
    }
}
