//! Online pull: revision lookup, file metadata, parallel resumable transfers
//! with retries, verification, and the final all-or-nothing registration.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use ureq::http::Response;
use ureq::Body;

use super::{cache, FileSpec, HubConfig, HubError, ModelSpec, ProgressEvent, PulledModel};

/// Read buffer, and the granularity of [`ProgressEvent::Bytes`].
const CHUNK: usize = 256 * 1024;
/// Redirects followed per request.
const MAX_HOPS: usize = 10;
/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why an attempt failed: worth retrying, or final.
enum Fail {
    Retry(String),
    Fatal(HubError),
}

/// What the hub says about one file.
struct Meta {
    etag: String,
    size: Option<u64>,
    /// Where the bytes are (the CDN location of an LFS redirect, or the resolve URL).
    url: String,
}

/// One blob to fetch, and the specs of every repo path whose content it is.
struct Job {
    meta: Meta,
    files: Vec<FileSpec>,
    part: PathBuf,
    blob: PathBuf,
}

impl Job {
    fn total(&self) -> Option<u64> {
        self.files[0].size.or(self.meta.size)
    }
}

/// Running sha256 of the first `len` bytes of a partial file.
struct PartHash {
    hasher: Sha256,
    len: u64,
}

#[derive(serde::Deserialize)]
struct RepoInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(serde::Deserialize)]
struct Sibling {
    rfilename: String,
}

/// State shared by the worker threads of one pull.
struct Ctx<'a> {
    cfg: &'a HubConfig,
    repo: &'a str,
    agent: ureq::Agent,
    progress: &'a (dyn Fn(&ProgressEvent) + Send + Sync),
    cancel: &'a AtomicBool,
    /// Raised when one file failed, so the others stop early.
    abort: AtomicBool,
}

/// [`super::pull`] with network access.
pub(crate) fn pull_online(
    cfg: &HubConfig,
    spec: &ModelSpec,
    progress: &(dyn Fn(&ProgressEvent) + Send + Sync),
    cancel: &AtomicBool,
) -> Result<PulledModel, HubError> {
    if !cache::is_rel_path(&spec.repo) {
        return Err(HubError::NotFound {
            what: format!("invalid repo id {:?}", spec.repo),
        });
    }
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(cfg.read_timeout))
        .timeout_per_read(Some(cfg.read_timeout))
        .user_agent(concat!("reelsmith-hub/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let ctx = Ctx {
        cfg,
        repo: &spec.repo,
        agent,
        progress,
        cancel,
        abort: AtomicBool::new(false),
    };
    let (commit, siblings) = ctx.resolve(&spec.revision)?;

    let files: Vec<FileSpec> = if spec.files.is_empty() {
        siblings.iter().map(FileSpec::new).collect()
    } else {
        spec.files.clone()
    };
    for f in &files {
        let listed = siblings.is_empty() || siblings.contains(&f.path);
        if !cache::is_rel_path(&f.path) || !listed {
            let what = format!("file {:?} in {}@{}", f.path, spec.repo, spec.revision);
            return Err(HubError::NotFound { what });
        }
    }

    let metas = run_parallel(&files, cfg.parallel, |f| {
        ctx.retrying(&f.path, |_| ctx.head(&commit, &f.path))
    });
    let repo_dir = cache::repo_dir(&cfg.cache_dir, &spec.repo);
    let mut jobs: Vec<Job> = Vec::new();
    for (file, meta) in files.iter().zip(metas) {
        let meta = meta?;
        if let (Some(expected), Some(actual)) = (file.size, meta.size) {
            if expected != actual {
                return Err(HubError::Size {
                    file: file.path.clone(),
                    expected,
                    actual,
                });
            }
        }
        match jobs.iter_mut().find(|j| j.meta.etag == meta.etag) {
            Some(job) => job.files.push(file.clone()),
            None => jobs.push(Job {
                part: cache::incomplete_path(&repo_dir, &meta.etag),
                blob: cache::blob_path(&repo_dir, &meta.etag),
                files: vec![file.clone()],
                meta,
            }),
        }
    }

    let on_disk = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let needed: u64 = jobs
        .iter()
        .filter(|j| !j.blob.exists())
        .map(|j| j.total().unwrap_or(0).saturating_sub(on_disk(&j.part)))
        .sum();
    let free = (cfg.free_space)(&cfg.cache_dir).map_err(|e| {
        io_err(
            format!("measuring free space in {}", cfg.cache_dir.display()),
            e,
        )
    })?;
    if needed > free {
        return Err(HubError::DiskSpace {
            dir: cfg.cache_dir.clone(),
            needed,
            free,
        });
    }
    let total = jobs.iter().map(Job::total).sum();
    progress(&ProgressEvent::Planned {
        files: jobs.len(),
        total,
    });
    let blobs = repo_dir.join("blobs");
    std::fs::create_dir_all(&blobs)
        .map_err(|e| io_err(format!("creating {}", blobs.display()), e))?;

    let results = run_parallel(&jobs, cfg.parallel, |job| {
        let result = ctx.fetch(job);
        if result.is_err() {
            ctx.abort.store(true, Ordering::SeqCst);
        }
        result
    });
    let mut errors = results
        .into_iter()
        .filter_map(Result::err)
        .collect::<Vec<_>>();
    if !errors.is_empty() {
        let real = errors
            .iter()
            .position(|e| !matches!(e, HubError::Cancelled));
        return Err(errors.swap_remove(real.unwrap_or(0)));
    }

    // Every blob is verified: only now does anything become visible.
    for job in &jobs {
        if !job.blob.exists() {
            std::fs::rename(&job.part, &job.blob)
                .map_err(|e| io_err(format!("moving {} into place", job.part.display()), e))?;
        }
    }
    let mut paths = Vec::with_capacity(files.len());
    for file in &files {
        let job = jobs
            .iter()
            .find(|j| j.files.iter().any(|f| f.path == file.path));
        let etag = job.map(|j| j.meta.etag.as_str()).unwrap_or_default();
        let link = cache::link_snapshot(&repo_dir, &commit, &file.path, etag)
            .map_err(|e| io_err(format!("linking {} into the snapshot", file.path), e))?;
        paths.push(link);
    }
    if spec.revision != commit {
        cache::write_ref(&cfg.cache_dir, &spec.repo, &spec.revision, &commit)
            .map_err(|e| io_err(format!("writing ref {}", spec.revision), e))?;
    }
    let dir = cache::snapshot_dir(&repo_dir, &commit);
    Ok(PulledModel {
        repo: spec.repo.clone(),
        commit,
        dir,
        files: paths,
    })
}

impl Ctx<'_> {
    fn emit(&self, event: ProgressEvent) {
        (self.progress)(&event);
    }

    fn stopped(&self) -> bool {
        self.cancel.load(Ordering::SeqCst) || self.abort.load(Ordering::SeqCst)
    }

    /// Runs `op` until it succeeds, fails for good, or fails `retries + 1`
    /// times in a row without progress (`op` sets its flag when it made some).
    fn retrying<T>(
        &self,
        what: &str,
        mut op: impl FnMut(&mut bool) -> Result<T, Fail>,
    ) -> Result<T, HubError> {
        let mut failures = 0u32;
        loop {
            if self.stopped() {
                return Err(HubError::Cancelled);
            }
            let mut progressed = false;
            match op(&mut progressed) {
                Ok(value) => return Ok(value),
                Err(Fail::Fatal(e)) => return Err(e),
                Err(Fail::Retry(error)) => {
                    failures = if progressed { 1 } else { failures + 1 };
                    if failures > self.cfg.retries {
                        return Err(HubError::Transfer {
                            what: what.into(),
                            attempts: failures,
                            last_error: error,
                        });
                    }
                    self.emit(ProgressEvent::Retrying {
                        file: what.into(),
                        attempt: failures,
                        error,
                    });
                    let delay = self
                        .cfg
                        .retry_delay
                        .saturating_mul(1 << (failures - 1).min(16))
                        .min(MAX_BACKOFF);
                    let until = Instant::now() + delay;
                    while Instant::now() < until && !self.stopped() {
                        std::thread::sleep(Duration::from_millis(20).min(delay));
                    }
                }
            }
        }
    }

    /// One request; the token goes only to the hub's own origin, never to a CDN.
    fn request(
        &self,
        head: bool,
        url: &str,
        offset: u64,
        what: &str,
    ) -> Result<Response<Body>, Fail> {
        let mut req = if head {
            self.agent.head(url)
        } else {
            self.agent.get(url)
        };
        req = req.header("Accept-Encoding", "identity");
        if offset > 0 {
            req = req.header("Range", format!("bytes={offset}-"));
        }
        if let Some(token) = self
            .cfg
            .token
            .as_deref()
            .filter(|_| origin(url) == origin(&self.cfg.endpoint))
        {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        req.call().map_err(|e| match e {
            ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_) => Fail::Retry(e.to_string()),
            e => Fail::Fatal(HubError::Transfer {
                what: what.into(),
                attempts: 1,
                last_error: e.to_string(),
            }),
        })
    }

    /// GET following every redirect.
    fn get(&self, url: &str, offset: u64, what: &str) -> Result<Response<Body>, Fail> {
        let mut url = url.to_string();
        for _ in 0..MAX_HOPS {
            let resp = self.request(false, &url, offset, what)?;
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            url = join_url(
                &url,
                &header(&resp, "location")
                    .ok_or_else(|| invalid(what, "redirect without Location"))?,
            );
        }
        Err(invalid(what, "too many redirects"))
    }

    /// Maps an HTTP status to a final error, or a retry for transient ones.
    fn status_fail(&self, status: u16, what: &str) -> Fail {
        let page = format!("{}/{}", self.cfg.endpoint, self.repo);
        let (what, token_sent) = (what.to_string(), self.cfg.token.is_some());
        Fail::Fatal(match status {
            401 => HubError::Unauthorized {
                what,
                page,
                token_sent,
            },
            403 => HubError::Forbidden {
                what,
                page,
                token_sent,
            },
            404 => HubError::NotFound { what },
            408 | 429 | 500..=599 => return Fail::Retry(format!("HTTP {status}")),
            _ => HubError::Http { what, status },
        })
    }

    /// `GET /api/models/{repo}/revision/{revision}` → commit and file list.
    fn resolve(&self, revision: &str) -> Result<(String, Vec<String>), HubError> {
        let what = format!("model {}@{}", self.repo, revision);
        let url = format!(
            "{}/api/models/{}/revision/{}",
            self.cfg.endpoint,
            self.repo,
            encode(revision, false)
        );
        self.retrying(self.repo, |_| {
            let mut resp = self.get(&url, 0, &what)?;
            let status = resp.status().as_u16();
            if status != 200 {
                return Err(self.status_fail(status, &what));
            }
            let text = resp
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string();
            let text = text.map_err(|e| Fail::Retry(format!("reading repo info: {e}")))?;
            let info: RepoInfo =
                serde_json::from_str(&text).map_err(|e| invalid(&what, &e.to_string()))?;
            if !cache::is_commit(&info.sha) {
                return Err(invalid(
                    &what,
                    &format!("{:?} is not a commit hash", info.sha),
                ));
            }
            Ok((
                info.sha,
                info.siblings.into_iter().map(|s| s.rfilename).collect(),
            ))
        })
    }

    /// `HEAD /{repo}/resolve/{commit}/{path}`, following only the hub's own
    /// relative redirects: the metadata is on the hub's answer, not the CDN's.
    fn head(&self, commit: &str, path: &str) -> Result<Meta, Fail> {
        let what = format!("{}/{} at {}", self.repo, path, &commit[..12]);
        let mut url = format!(
            "{}/{}/resolve/{commit}/{}",
            self.cfg.endpoint,
            self.repo,
            encode(path, true)
        );
        for _ in 0..MAX_HOPS {
            let resp = self.request(true, &url, 0, &what)?;
            let status = resp.status();
            if status.is_redirection() {
                let loc = header(&resp, "location")
                    .ok_or_else(|| invalid(&what, "redirect without Location"))?;
                url = join_url(&url, &loc);
                if loc.starts_with('/') {
                    // The hub itself moved (renamed repo): ask again there.
                    continue;
                }
                // Otherwise the bytes are on a CDN; the metadata is on this answer.
            } else if !status.is_success() {
                return Err(self.status_fail(status.as_u16(), &what));
            }
            if header(&resp, "x-repo-commit").is_some_and(|c| c != commit) {
                return Err(invalid(
                    &what,
                    "X-Repo-Commit differs from the requested commit",
                ));
            }
            let etag = header(&resp, "x-linked-etag").or_else(|| header(&resp, "etag"));
            let etag = etag.map(|e| {
                e.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .to_string()
            });
            let etag = etag
                .filter(|e| cache::is_safe_etag(e))
                .ok_or_else(|| invalid(&what, "no usable ETag"))?;
            let size = header(&resp, "x-linked-size").or_else(|| header(&resp, "content-length"));
            return Ok(Meta {
                etag,
                size: size.and_then(|s| s.parse().ok()),
                url,
            });
        }
        Err(invalid(&what, "too many redirects"))
    }

    /// Downloads and verifies one blob into its `.incomplete` file.
    fn fetch(&self, job: &Job) -> Result<(), HubError> {
        let file = job.files[0].path.clone();
        let total = job.total();
        if let Ok(meta) = std::fs::metadata(&job.blob) {
            if total.is_none_or(|t| t == meta.len()) {
                // Verified when it was stored: nothing to transfer.
                self.emit(ProgressEvent::Started {
                    file: file.clone(),
                    total,
                    resumed_from: meta.len(),
                });
                self.emit(ProgressEvent::Finished {
                    file: file.clone(),
                    bytes: meta.len(),
                });
                self.emit(ProgressEvent::Verified { file });
                return Ok(());
            }
            std::fs::remove_file(&job.blob)
                .map_err(|e| io_err(format!("removing {}", job.blob.display()), e))?;
        }
        let resumed_from = std::fs::metadata(&job.part).map(|m| m.len()).unwrap_or(0);
        self.emit(ProgressEvent::Started {
            file: file.clone(),
            total,
            resumed_from,
        });
        let mut hash = PartHash {
            hasher: Sha256::new(),
            len: 0,
        };
        self.retrying(&file, |progressed| self.attempt(job, &mut hash, progressed))?;
        self.emit(ProgressEvent::Finished {
            file: file.clone(),
            bytes: hash.len,
        });

        let reject = |e: HubError| {
            let _ = std::fs::remove_file(&job.part);
            Err(e)
        };
        if let Some(expected) = total.filter(|t| *t != hash.len) {
            return reject(HubError::Size {
                file,
                expected,
                actual: hash.len,
            });
        }
        let actual = hex::encode(hash.hasher.finalize());
        let etag_sha = cache::is_sha256(&job.meta.etag).then(|| job.meta.etag.clone());
        for spec in &job.files {
            let expected = spec.sha256.clone().or_else(|| etag_sha.clone());
            if let Some(expected) = expected.filter(|e| !e.eq_ignore_ascii_case(&actual)) {
                return reject(HubError::Checksum {
                    file: spec.path.clone(),
                    expected,
                    actual,
                });
            }
        }
        self.emit(ProgressEvent::Verified { file });
        Ok(())
    }

    /// One transfer attempt, appending to the `.incomplete` file from its
    /// current length (`Range`), or from 0 if the server ignores the range.
    fn attempt(&self, job: &Job, hash: &mut PartHash, progressed: &mut bool) -> Result<(), Fail> {
        let file = job.files[0].path.as_str();
        let total = job.total();
        let io = |e| Fail::Fatal(io_err(format!("writing {}", job.part.display()), e));
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&job.part)
            .map_err(io)?;
        let mut offset = out.metadata().map_err(io)?.len();
        if total.is_some_and(|t| offset > t) {
            out.set_len(0).map_err(io)?;
            offset = 0;
        }
        if hash.len != offset {
            // Resuming a partial file: hash what is already there first.
            hash.hasher = Sha256::new();
            cache::hash_prefix(&job.part, offset, &mut hash.hasher).map_err(io)?;
            hash.len = offset;
        }
        if total == Some(offset) {
            return Ok(());
        }
        let mut resp = self.get(&job.meta.url, offset, file)?;
        let restart = match resp.status().as_u16() {
            206 if content_range_start(&resp) == Some(offset) => None,
            206 => Some("server sent a different range"),
            416 if offset > 0 => Some("range not satisfiable"),
            // The server ignored `Range`: take the full body from the start.
            200 if offset > 0 => Some(""),
            200 => None,
            status => return Err(self.status_fail(status, file)),
        };
        if let Some(why) = restart {
            out.set_len(0).map_err(io)?;
            (hash.hasher, hash.len, offset) = (Sha256::new(), 0, 0);
            if !why.is_empty() {
                return Err(Fail::Retry(format!("{why}; restarting from 0")));
            }
        }
        let mut reader = resp.body_mut().as_reader();
        let mut buf = vec![0u8; CHUNK];
        let (mut done, mut reported) = (offset, offset);
        let result = loop {
            if self.stopped() {
                break Err(Fail::Fatal(HubError::Cancelled));
            }
            match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    out.write_all(&buf[..n]).map_err(io)?;
                    hash.hasher.update(&buf[..n]);
                    hash.len += n as u64;
                    done += n as u64;
                    *progressed = true;
                    if done - reported >= CHUNK as u64 {
                        self.emit(ProgressEvent::Bytes {
                            file: file.into(),
                            done,
                            total,
                        });
                        reported = done;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    break Err(Fail::Retry(format!(
                        "connection lost after {done} bytes: {e}"
                    )))
                }
            }
        };
        out.flush().map_err(io)?;
        if done != reported || done == 0 {
            self.emit(ProgressEvent::Bytes {
                file: file.into(),
                done,
                total,
            });
        }
        result?;
        match total {
            Some(t) if done < t => Err(Fail::Retry(format!(
                "connection closed after {done} of {t} bytes"
            ))),
            _ => Ok(()),
        }
    }
}

/// Applies `f` to every item on up to `threads` scoped threads, keeping order.
fn run_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let result = f(item);
                slots.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
            });
        }
    });
    let slots = slots.into_inner().unwrap_or_else(|e| e.into_inner());
    slots
        .into_iter()
        .map(|r| r.expect("every item was processed"))
        .collect()
}

fn io_err(context: String, source: std::io::Error) -> HubError {
    HubError::Io { context, source }
}

fn invalid(what: &str, detail: &str) -> Fail {
    Fail::Fatal(HubError::InvalidResponse {
        what: what.into(),
        detail: detail.into(),
    })
}

fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers().get(name)?.to_str().ok().map(str::to_string)
}

/// Start offset of `Content-Range: bytes {start}-{end}/{size}`.
fn content_range_start(resp: &Response<Body>) -> Option<u64> {
    header(resp, "content-range")?
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Percent-encodes a URL path segment (keeping `/` when asked).
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    url[start..].find('/').map_or(url, |i| &url[..start + i])
}

/// Resolves a `Location` header against the URL that returned it.
fn join_url(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{}{location}", origin(base))
    } else {
        let dir = base
            .rfind('/')
            .filter(|i| *i > origin(base).len())
            .map_or(base, |i| &base[..i]);
        format!("{dir}/{location}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_encoded_and_joined() {
        assert_eq!(encode("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(encode("a b/c.json", true), "a%20b/c.json");
        assert_eq!(origin("http://h:1/a/b"), "http://h:1");
        assert_eq!(join_url("http://h:1/a/b", "/x"), "http://h:1/x");
        assert_eq!(join_url("http://h:1/a/b", "c"), "http://h:1/a/c");
        assert_eq!(join_url("http://h:1/a", "https://cdn/z"), "https://cdn/z");
    }
}
