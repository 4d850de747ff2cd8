//! Paths and file operations of the Hugging Face cache layout.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};
use sha2::{Digest, Sha256};

/// `{cache}/models--{org}--{name}`, named as hf-hub and Python name it.
pub(crate) fn repo_dir(cache_dir: &Path, repo: &str) -> PathBuf {
    cache_dir.join(Repo::model(repo.to_string()).folder_name())
}

/// `blobs/{etag}`.
pub(crate) fn blob_path(repo_dir: &Path, etag: &str) -> PathBuf {
    repo_dir.join("blobs").join(etag)
}

/// `blobs/{etag}.incomplete`, the name Python also resumes from.
pub(crate) fn incomplete_path(repo_dir: &Path, etag: &str) -> PathBuf {
    repo_dir.join("blobs").join(format!("{etag}.incomplete"))
}

/// `snapshots/{commit}`.
pub(crate) fn snapshot_dir(repo_dir: &Path, commit: &str) -> PathBuf {
    repo_dir.join("snapshots").join(commit)
}

/// Writes `refs/{revision}` (nested for `refs/pr/1`) holding `commit`.
pub(crate) fn write_ref(
    cache_dir: &Path,
    repo: &str,
    revision: &str,
    commit: &str,
) -> io::Result<()> {
    let repo = Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string());
    Cache::new(cache_dir.to_path_buf())
        .repo(repo)
        .create_ref(commit)
}

/// The commit a revision points at: the ref file, or the revision itself
/// when it is a commit hash with a snapshot.
pub(crate) fn read_ref(repo_dir: &Path, revision: &str) -> Option<String> {
    if is_commit(revision) && snapshot_dir(repo_dir, revision).is_dir() {
        return Some(revision.to_string());
    }
    if !is_rel_path(revision) {
        return None;
    }
    let commit = std::fs::read_to_string(repo_dir.join("refs").join(revision)).ok()?;
    Some(commit.trim().to_string()).filter(|c| is_commit(c))
}

/// Symlink target from `snapshots/{commit}/{path}` to `blobs/{etag}`: one
/// `..` per directory level of `path`, plus two for `snapshots/{commit}`.
pub(crate) fn link_target(path: &str, etag: &str) -> PathBuf {
    let ups = path.split('/').count() + 1;
    PathBuf::from(format!("{}blobs/{etag}", "../".repeat(ups)))
}

/// Creates (or atomically replaces) the snapshot link for `path`.
pub(crate) fn link_snapshot(
    repo_dir: &Path,
    commit: &str,
    path: &str,
    etag: &str,
) -> io::Result<PathBuf> {
    let link = snapshot_dir(repo_dir, commit).join(path);
    let parent = link
        .parent()
        .ok_or_else(|| io::Error::other("snapshot link without parent"))?;
    std::fs::create_dir_all(parent)?;
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.link-tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(link_target(path, etag), &tmp)?;
    std::fs::rename(&tmp, &link)?;
    Ok(link)
}

/// A relative `/`-separated path that cannot escape its directory.
pub(crate) fn is_rel_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// An ETag usable as a blob file name.
pub(crate) fn is_safe_etag(etag: &str) -> bool {
    !etag.is_empty()
        && !etag.starts_with('.')
        && etag.len() <= 128
        && etag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// 64 hex digits.
pub(crate) fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// 40 hex digits (a git commit hash).
pub(crate) fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Feeds the first `len` bytes of `path` into `hasher`.
pub(crate) fn hash_prefix(path: &Path, len: u64, hasher: &mut Sha256) -> io::Result<()> {
    let mut reader = std::fs::File::open(path)?.take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut buf)? {
            0 => return Ok(()),
            n => hasher.update(&buf[..n]),
        }
    }
}

/// Hex sha256 of a whole file.
pub(crate) fn sha256_file(path: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    hash_prefix(path, u64::MAX, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Bytes available to unprivileged users on the file system holding `path`
/// (`statvfs`); a path that does not exist yet is measured at its nearest
/// existing ancestor.
pub fn free_space(path: &Path) -> io::Result<u64> {
    let mut probe = path;
    while !probe.exists() {
        match probe.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => probe = parent,
            _ => {
                probe = Path::new(".");
                break;
            }
        }
    }
    let c_path = CString::new(probe.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `statvfs` is plain old data; zeroed is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a valid NUL-terminated string and `st` a valid out pointer.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // The field types differ between platforms, hence the casts.
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Bytes of regular files under `dir` (symlinks are not followed).
pub fn tree_size(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.path().symlink_metadata()?;
        if meta.is_dir() {
            total += tree_size(&entry.path())?;
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

/// Relative `/`-separated paths of the files (or links) under `dir`, sorted.
pub(crate) fn list_files(dir: &Path) -> io::Result<Vec<String>> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if name.rsplit('/').next().is_some_and(|n| n.starts_with('.')) {
                continue;
            }
            if entry.path().symlink_metadata()?.is_dir() {
                walk(&entry.path(), &format!("{name}/"), out)?;
            } else {
                out.push(name);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_climb_one_level_per_directory() {
        assert_eq!(
            link_target("config.json", "e"),
            PathBuf::from("../../blobs/e")
        );
        assert_eq!(
            link_target("a/b/c.bin", "e"),
            PathBuf::from("../../../../blobs/e")
        );
    }

    #[test]
    fn rejects_escaping_paths_and_names() {
        assert!(is_rel_path("unet/model.safetensors"));
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a\\b"] {
            assert!(!is_rel_path(bad), "{bad}");
        }
        assert!(is_safe_etag("abc-12_3"));
        assert!(!is_safe_etag("../x") && !is_safe_etag(".hidden") && !is_safe_etag("a/b"));
        assert_eq!(
            repo_dir(Path::new("/c"), "org/name"),
            PathBuf::from("/c/models--org--name")
        );
    }

    #[test]
    fn free_space_measures_nearest_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_space(&dir.path().join("not/yet/there")).unwrap();
        assert!(free > 0);
    }
}
