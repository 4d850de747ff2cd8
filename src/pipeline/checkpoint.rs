//! Checkpoints of long stages: state a task saves while it runs (the denoising loop's latents
//! every few steps, the finished segments of an encode) so that an attempt cut short by a crash,
//! a kill or a graceful stop continues where the last one left off.
//!
//! A task's checkpoints live in `<data>/checkpoints/<key>/`, keyed by the task's artifact key:
//! the same inputs find the same checkpoints, other inputs never see them. Files are written
//! atomically (temp file, fsync, rename), so a checkpoint is either whole or absent. The
//! directory is removed once the task's artifact is committed.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What a stage reports about its checkpoints (the scheduler logs both; a checkpoint counts
/// as progress, so crashes between checkpoints are not a crash loop).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StageEvent {
    /// A checkpoint was saved, e.g. "step 12/30".
    Checkpoint(String),
    /// The task continued from a checkpoint of an earlier attempt, e.g. "step 12/30".
    Resumed(String),
}

/// The checkpoint directory of the task with artifact `key` under `root`.
pub fn dir(root: &Path, key: &str) -> PathBuf {
    root.join(key)
}

/// Writes `bytes` to `dir/name` atomically; creates `dir`.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    check_name(name)?;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.{}.part", std::process::id()));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    Ok(())
}

/// Moves a finished file (written elsewhere on the same file system) to `dir/name` atomically.
pub fn adopt(dir: &Path, name: &str, file: &Path) -> io::Result<()> {
    check_name(name)?;
    fs::create_dir_all(dir)?;
    fs::File::open(file)?.sync_all()?;
    fs::rename(file, dir.join(name))
}

/// The bytes of `dir/name`, if a whole checkpoint file is there.
pub fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
    check_name(name).ok()?;
    fs::read(dir.join(name)).ok()
}

/// Removes a task's checkpoints (its artifact is committed).
pub fn clear(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("checkpoint name `{name}` must be a plain file name"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_clears_them() {
        let root = tempfile::tempdir().unwrap();
        let d = dir(root.path(), "abc");
        assert_eq!(read(&d, "latents.bin"), None);
        write_atomic(&d, "latents.bin", b"one").unwrap();
        write_atomic(&d, "latents.bin", b"two").unwrap();
        assert_eq!(read(&d, "latents.bin").as_deref(), Some(&b"two"[..]));
        // No temp file is left beside it.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        let seg = root.path().join("seg.tmp");
        fs::write(&seg, b"segment").unwrap();
        adopt(&d, "seg-0001.mp4", &seg).unwrap();
        assert!(!seg.exists());
        assert_eq!(read(&d, "seg-0001.mp4").as_deref(), Some(&b"segment"[..]));
        assert!(write_atomic(&d, "../escape", b"x").is_err());
        assert!(write_atomic(&d, ".hidden", b"x").is_err());
        clear(&d).unwrap();
        assert!(!d.exists());
        clear(&d).unwrap();
    }
}
