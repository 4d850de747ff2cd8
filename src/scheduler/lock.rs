//! One scheduler per data dir: an advisory lock (flock) on `<data>/scheduler.lock`, holding the
//! owner's pid. The kernel drops the lock when the process dies, however it dies.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another reelsmith scheduler (pid {pid}) is running on {dir}; stop it first, or use it: `reelsmith status`")]
    Held { pid: String, dir: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held while the scheduler runs; released on drop (or death).
#[derive(Debug)]
pub struct SchedulerLock {
    _file: File,
    path: PathBuf,
}

impl SchedulerLock {
    pub fn acquire(data_dir: &Path) -> Result<Self, LockError> {
        Self::lock(data_dir, false)
    }

    /// Waits until the lock is free, then takes it (a hand-over: the studio drains its
    /// scheduler while a headless one waits here to take the queue over).
    pub fn acquire_waiting(data_dir: &Path) -> Result<Self, LockError> {
        Self::lock(data_dir, true)
    }

    /// The pid written by whoever holds (or last held) the lock on `data_dir`.
    pub fn holder_pid(data_dir: &Path) -> Option<u32> {
        std::fs::read_to_string(data_dir.join("scheduler.lock"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn lock(data_dir: &Path, wait: bool) -> Result<Self, LockError> {
        let path = data_dir.join("scheduler.lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let op = if wait {
            libc::LOCK_EX
        } else {
            libc::LOCK_EX | libc::LOCK_NB
        };
        let rc = loop {
            // SAFETY: flock on a descriptor this function owns.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc != 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
                continue;
            }
            break rc;
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(LockError::Held {
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid.to_string()
                    },
                    dir: data_dir.to_path_buf(),
                });
            }
            return Err(io(err));
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_with_the_pid() {
        let d = tempfile::tempdir().unwrap();
        let first = SchedulerLock::acquire(d.path()).unwrap();
        let err = SchedulerLock::acquire(d.path()).unwrap_err().to_string();
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        SchedulerLock::acquire(d.path()).expect("free again after the holder is gone");
    }

    #[test]
    fn a_waiting_lock_is_taken_when_the_holder_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let first = SchedulerLock::acquire(d.path()).unwrap();
        assert_eq!(
            SchedulerLock::holder_pid(d.path()),
            Some(std::process::id())
        );
        let dir = d.path().to_path_buf();
        let waiter = std::thread::spawn(move || SchedulerLock::acquire_waiting(&dir).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!waiter.is_finished(), "waits while the lock is held");
        drop(first);
        assert!(waiter.join().unwrap(), "takes it once free");
    }
}
