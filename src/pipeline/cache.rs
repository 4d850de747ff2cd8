//! The content-addressed artifact cache: `<data>/artifacts/<key>/`, where the key is a hash of
//! everything the output depends on. Outputs are written to `<data>/tmp/` and renamed into place
//! only when complete, so a crash leaves temp dirs (swept on the next start), never a half
//! artifact.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// The file that marks a complete artifact.
pub const MANIFEST: &str = ".artifact.json";

/// Serialises JSON with object keys sorted at every level (independent of map implementation).
pub fn canonical(value: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String((*k).clone()).to_string());
                    out.push(':');
                    write(&m[*k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    write(value, &mut s);
    s
}

/// The cache key of a JSON description: sha256 of its canonical form, hex.
pub fn key(parts: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(canonical(parts).as_bytes()))
}

/// A directory being filled; dropped without `commit`, it is removed.
pub struct TempArtifact {
    dir: PathBuf,
    committed: bool,
}

impl TempArtifact {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempArtifact {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[derive(Debug)]
pub struct ArtifactCache {
    root: PathBuf,
    tmp: PathBuf,
    /// `<data>/checkpoints`: long tasks' saved state, removed when their artifact commits.
    checkpoints: PathBuf,
    counter: AtomicU64,
}

/// Whether process `pid` still runs. A zombie (dead, waiting for its parent to reap it, as a
/// killed studio's workers can be for a while) does not: it will never finish its temp dir.
fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold ')'.
        Ok(stat) => !stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => false,
    }
}

impl ArtifactCache {
    /// Opens (creating) the cache and sweeps temp dirs left by processes that no longer run.
    pub fn open(root: &Path, tmp: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        fs::create_dir_all(tmp)?;
        let cache = Self {
            root: root.to_path_buf(),
            tmp: tmp.to_path_buf(),
            checkpoints: root.parent().unwrap_or(root).join("checkpoints"),
            counter: AtomicU64::new(0),
        };
        cache.sweep()?;
        Ok(cache)
    }

    /// Removes temp dirs whose owning process is gone. Returns how many were removed.
    pub fn sweep(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.tmp)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
            let stale = match owner {
                Some(pid) => pid != std::process::id() && !pid_alive(pid),
                None => true,
            };
            if stale {
                let p = entry.path();
                if p.is_dir() {
                    fs::remove_dir_all(&p)?;
                } else {
                    fs::remove_file(&p)?;
                }
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The artifact's directory if it is complete.
    pub fn get(&self, key: &str) -> Option<PathBuf> {
        let d = self.dir(key);
        d.join(MANIFEST).is_file().then_some(d)
    }

    /// A fresh temp dir for building the artifact `key`.
    pub fn begin(&self, key: &str) -> io::Result<TempArtifact> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let short = &key[..key.len().min(16)];
        let dir = self.tmp.join(format!("{}-{n}-{short}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        Ok(TempArtifact {
            dir,
            committed: false,
        })
    }

    /// Marks the temp dir complete and renames it into place. If another writer got there
    /// first, theirs is kept (same key, same content) and ours is dropped.
    /// Where tasks keep checkpoints (`<data>/checkpoints`).
    pub fn checkpoints_root(&self) -> PathBuf {
        self.checkpoints.clone()
    }

    pub fn commit(&self, mut tmp: TempArtifact, key: &str, kind: &str) -> io::Result<PathBuf> {
        let bytes = dir_size(tmp.path())?;
        let manifest = serde_json::json!({ "key": key, "kind": kind, "bytes": bytes });
        fs::write(tmp.path().join(MANIFEST), manifest.to_string())?;
        let dest = self.dir(key);
        if self.get(key).is_some() {
            return Ok(dest);
        }
        if dest.exists() {
            // An incomplete directory can only come from an older crash mid-rename; replace it.
            fs::remove_dir_all(&dest)?;
        }
        match fs::rename(tmp.path(), &dest) {
            Ok(()) => {
                tmp.committed = true;
                Ok(dest)
            }
            Err(_) if self.get(key).is_some() => Ok(dest),
            Err(e) => Err(e),
        }
    }
}

/// Total size of the files under `dir`.
pub fn dir_size(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let md = entry.metadata()?;
        total += if md.is_dir() {
            dir_size(&entry.path())?
        } else {
            md.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_object_key_order() {
        let a = serde_json::json!({"b": 1, "a": {"y": [1, 2], "x": "s"}});
        let b = serde_json::json!({"a": {"x": "s", "y": [1, 2]}, "b": 1});
        assert_eq!(key(&a), key(&b));
        assert_ne!(
            key(&a),
            key(&serde_json::json!({"b": 2, "a": {"x": "s", "y": [1, 2]}}))
        );
    }

    #[test]
    fn uncommitted_work_never_appears_and_stale_temp_dirs_are_swept() {
        let d = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(&d.path().join("a"), &d.path().join("t")).unwrap();
        {
            let t = cache.begin("k1").unwrap();
            fs::write(t.path().join("x"), b"half").unwrap();
            // dropped without commit
        }
        assert!(cache.get("k1").is_none());
        assert_eq!(fs::read_dir(d.path().join("t")).unwrap().count(), 0);
        let t = cache.begin("k1").unwrap();
        fs::write(t.path().join("x"), b"whole").unwrap();
        let dir = cache.commit(t, "k1", "test").unwrap();
        assert_eq!(fs::read(dir.join("x")).unwrap(), b"whole");
        // A temp dir of a dead process (pid far beyond pid_max) is swept at open.
        fs::create_dir_all(d.path().join("t/999999999-0-k2")).unwrap();
        let cache = ArtifactCache::open(&d.path().join("a"), &d.path().join("t")).unwrap();
        assert!(!d.path().join("t/999999999-0-k2").exists());
        assert!(cache.get("k1").is_some());
    }
}
