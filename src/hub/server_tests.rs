//! End-to-end tests against a loopback HTTP/1.1 server that speaks the hub
//! protocol: revision API, `resolve` with LFS redirects to a `/cdn/` route,
//! `Range`/206, bearer auth, gated repos, seeded connection cuts and a
//! request log.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::*;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const MB: usize = 1_000_000;

/// A repo the server knows: (path, bytes, stored in LFS).
pub(crate) struct Fixture {
    repo: String,
    files: Vec<(String, Vec<u8>, bool)>,
}

/// How the server misbehaves or guards access.
#[derive(Default)]
pub(crate) struct Behaviour {
    token: Option<String>,
    gated: Vec<String>,
    /// sha256 of an LFS file → ascending byte offsets at which to drop the connection.
    cuts: HashMap<String, VecDeque<u64>>,
    ignore_range: bool,
    corrupt: bool,
    chunk_delay: Duration,
}

#[derive(Debug, Clone)]
struct Logged {
    method: String,
    path: String,
    range: Option<String>,
    status: u16,
    sent: u64,
    start: Instant,
    end: Instant,
}

struct Hub {
    addr: SocketAddr,
    repos: Vec<Fixture>,
    behaviour: Mutex<Behaviour>,
    log: Mutex<Vec<Logged>>,
    /// Requests read but not yet logged (a request is logged after its last byte is sent, so
    /// a client can be done with one before the server has written it down).
    in_flight: std::sync::atomic::AtomicUsize,
    stop: AtomicBool,
}

pub(crate) struct Server {
    hub: Arc<Hub>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start(repos: Vec<Fixture>, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hub = Arc::new(Hub {
            addr,
            repos,
            behaviour: Mutex::new(behaviour),
            log: Mutex::new(Vec::new()),
            in_flight: Default::default(),
            stop: AtomicBool::new(false),
        });
        let h = hub.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if h.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let h = h.clone();
                    std::thread::spawn(move || h.serve(stream));
                }
            }
        });
        Self {
            hub,
            thread: Some(thread),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.hub.addr)
    }

    /// The requests served so far, once those being answered are written down (waiting at
    /// most 10 s for them: a loaded machine lags).
    fn log(&self) -> Vec<Logged> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.hub.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.hub.log.lock().unwrap().clone()
    }

    /// Logged GETs of LFS content.
    fn cdn_gets(&self) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.method == "GET" && l.path.starts_with("/cdn/"))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.hub.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.hub.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Hub {
    fn serve(&self, mut stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let mut words = line.split_whitespace();
        let (method, path) = (
            words.next().unwrap_or("").to_string(),
            words.next().unwrap_or("").to_string(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut l = String::new();
            if reader.read_line(&mut l).unwrap_or(0) == 0 || l.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let start = Instant::now();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let (status, sent) = self.respond(&mut stream, &method, &path, &headers);
        let range = headers.get("range").cloned();
        let end = Instant::now();
        self.log.lock().unwrap().push(Logged {
            method,
            path,
            range,
            status,
            sent,
            start,
            end,
        });
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    fn respond(
        &self,
        s: &mut TcpStream,
        method: &str,
        path: &str,
        headers: &HashMap<String, String>,
    ) -> (u16, u64) {
        let files = self.repos.iter().flat_map(|r| r.files.iter());
        if let Some(sha) = path.strip_prefix("/cdn/") {
            return match files.filter(|f| f.2).find(|f| sha256(&f.1) == sha) {
                Some(f) => self.send_bytes(s, method, headers, &f.1, sha, "\"s3-etag-1\"", ""),
                None => reply(s, 404, "", ""),
            };
        }
        let (token, gated) = {
            let b = self.behaviour.lock().unwrap();
            (b.token.clone(), b.gated.clone())
        };
        let (repo_id, rest, api) = if let Some(rest) = path.strip_prefix("/api/models/") {
            let (repo, rev) = rest.split_once("/revision/").unwrap_or((rest, ""));
            (repo, rev.to_string(), true)
        } else {
            let (repo, rest) = path[1..].split_once("/resolve/").unwrap_or(("", ""));
            (repo, rest.to_string(), false)
        };
        if token.is_some_and(|t| headers.get("authorization") != Some(&format!("Bearer {t}"))) {
            return reply(s, 401, "", "{\"error\":\"Invalid credentials\"}");
        }
        if gated.iter().any(|g| g == repo_id) {
            return reply(s, 403, "", "{\"error\":\"gated repo\"}");
        }
        let Some(repo) = self.repos.iter().find(|r| r.repo == repo_id) else {
            return reply(s, 404, "", "{\"error\":\"Repository not found\"}");
        };
        let (rev, file) = rest.split_once('/').unwrap_or((&rest, ""));
        if rev != "main" && rev != COMMIT {
            return reply(s, 404, "", "{\"error\":\"Revision not found\"}");
        }
        let commit = format!("X-Repo-Commit: {COMMIT}\r\n");
        if api {
            let siblings: Vec<_> = repo
                .files
                .iter()
                .map(|f| format!("{{\"rfilename\":\"{}\"}}", f.0))
                .collect();
            let body = format!(
                "{{\"id\":\"{}\",\"sha\":\"{COMMIT}\",\"siblings\":[{}]}}",
                repo.repo,
                siblings.join(",")
            );
            return reply(s, 200, "Content-Type: application/json\r\n", &body);
        }
        match repo.files.iter().find(|f| f.0 == file) {
            None => reply(s, 404, &commit, "{\"error\":\"Entry not found\"}"),
            Some((_, data, true)) => {
                let sha = sha256(data);
                let extra = format!(
                    "{commit}Location: http://{}/cdn/{sha}\r\nX-Linked-Etag: \"{sha}\"\r\nX-Linked-Size: {}\r\nETag: \"hub-redirect\"\r\n",
                    self.addr,
                    data.len()
                );
                reply(s, 302, &extra, "")
            }
            Some((_, data, false)) => {
                let etag = format!("\"{}\"", &sha256(data)[..40]);
                self.send_bytes(s, method, headers, data, "", &etag, &commit)
            }
        }
    }

    /// Serves `data` honouring `Range`, dropping the connection at the next cut.
    #[allow(clippy::too_many_arguments)]
    fn send_bytes(
        &self,
        s: &mut TcpStream,
        method: &str,
        headers: &HashMap<String, String>,
        data: &[u8],
        cut_key: &str,
        etag: &str,
        extra: &str,
    ) -> (u16, u64) {
        let len = data.len() as u64;
        let mut b = self.behaviour.lock().unwrap();
        let range = headers
            .get("range")
            .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok());
        let start: u64 = if b.ignore_range {
            0
        } else {
            range.unwrap_or(0)
        };
        if start >= len && start > 0 {
            return reply(s, 416, &format!("Content-Range: bytes */{len}\r\n"), "");
        }
        let status = if start > 0 { 206 } else { 200 };
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nETag: {etag}\r\n{extra}Connection: close\r\n",
            len - start
        );
        if status == 206 {
            head += &format!("Content-Range: bytes {start}-{}/{len}\r\n", len - 1);
        }
        if s.write_all(format!("{head}\r\n").as_bytes()).is_err() || method == "HEAD" {
            return (status, 0);
        }
        let cuts = b.cuts.entry(cut_key.to_string()).or_default();
        while cuts.front().is_some_and(|c| *c <= start) {
            cuts.pop_front();
        }
        let end = cuts.pop_front().unwrap_or(len);
        let (delay, corrupt) = (b.chunk_delay, b.corrupt);
        drop(b);
        let mut body = data[start as usize..end as usize].to_vec();
        if corrupt && !body.is_empty() {
            body[0] ^= 0xff;
        }
        let mut sent = 0;
        for chunk in body.chunks(64 * 1024) {
            std::thread::sleep(delay);
            if s.write_all(chunk).is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        let _ = s.flush();
        (status, sent)
    }
}

fn reply(s: &mut TcpStream, status: u16, extra: &str, body: &str) -> (u16, u64) {
    let msg = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(msg.as_bytes());
    (status, body.len() as u64)
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Seeded xorshift64* generator.
fn rng(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut next = rng(seed);
    (0..len).map(|_| next() as u8).collect()
}

pub(crate) fn fixture(repo: &str, files: &[(&str, &[u8], bool)]) -> Fixture {
    let files = files
        .iter()
        .map(|(p, d, lfs)| (p.to_string(), d.to_vec(), *lfs))
        .collect();
    Fixture {
        repo: repo.into(),
        files,
    }
}

pub(crate) fn config(server: &Server, dir: &Path) -> HubConfig {
    let mut cfg = HubConfig::new(server.url(), dir.join("hub"));
    cfg.retry_delay = Duration::from_millis(5);
    cfg.read_timeout = Duration::from_secs(10);
    cfg.parallel = 2;
    cfg
}

fn spec(repo: &str, files: &[&str]) -> ModelSpec {
    ModelSpec {
        repo: repo.into(),
        revision: "main".into(),
        files: files.iter().map(|f| FileSpec::new(*f)).collect(),
    }
}

/// Pulls, collecting the progress events.
fn pull_logged(
    cfg: &HubConfig,
    spec: &ModelSpec,
) -> (Result<PulledModel, HubError>, Vec<ProgressEvent>) {
    let events = Mutex::new(Vec::new());
    let result = pull(
        cfg,
        spec,
        &|e: &ProgressEvent| events.lock().unwrap().push(e.clone()),
        &AtomicBool::new(false),
    );
    (result, events.into_inner().unwrap())
}

fn repo_dir(cfg: &HubConfig, repo: &str) -> PathBuf {
    cfg.cache_dir
        .join(format!("models--{}", repo.replace('/', "--")))
}

fn blob_names(cfg: &HubConfig, repo: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(repo_dir(cfg, repo).join("blobs")) else {
        return Vec::new();
    };
    dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn assert_nothing_registered(cfg: &HubConfig, repo: &str) {
    let dir = repo_dir(cfg, repo);
    assert!(!dir.join("snapshots").exists(), "no snapshot may be linked");
    assert!(!dir.join("refs").exists(), "no ref may be written");
    let blobs = blob_names(cfg, repo);
    assert!(
        blobs.iter().all(|b| b.ends_with(".incomplete")),
        "no finished blob: {blobs:?}"
    );
}

fn tiny_repo() -> (Vec<u8>, Fixture) {
    let big = random_bytes(3 * MB, 1);
    let fx = fixture(
        "acme/tiny",
        &[
            ("model.safetensors", &big, true),
            ("config.json", b"{\"hidden\": 8}", false),
            ("tok/sub/vocab.txt", b"a\nb\n", false),
        ],
    );
    (big, fx)
}

#[test]
fn pulls_into_the_standard_cache_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, fx) = tiny_repo();
    let wanted: Vec<_> = fx
        .files
        .iter()
        .map(|f| (f.0.clone(), f.1.clone(), f.2))
        .collect();
    let server = Server::start(vec![fx], Behaviour::default());
    let cfg = config(&server, tmp.path());
    let spec = spec(
        "acme/tiny",
        &["model.safetensors", "config.json", "tok/sub/vocab.txt"],
    );
    let (model, events) = pull_logged(&cfg, &spec);
    let model = model.unwrap();

    let dir = repo_dir(&cfg, "acme/tiny");
    assert_eq!(model.commit, COMMIT);
    assert_eq!(model.dir, dir.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read_to_string(dir.join("refs/main")).unwrap(),
        COMMIT
    );
    for (i, (path, data, lfs)) in wanted.iter().enumerate() {
        let etag = if *lfs {
            sha256(data)
        } else {
            sha256(data)[..40].to_string()
        };
        let link = model.dir.join(path);
        assert_eq!(model.files[i], link);
        assert!(
            link.symlink_metadata().unwrap().file_type().is_symlink(),
            "{path} is a symlink"
        );
        let ups = "../".repeat(path.matches('/').count() + 2);
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from(format!("{ups}blobs/{etag}"))
        );
        assert_eq!(
            link.canonicalize().unwrap(),
            dir.join("blobs").join(&etag).canonicalize().unwrap()
        );
        assert_eq!(
            &std::fs::read(&link).unwrap(),
            data,
            "{path} is byte-identical"
        );

        let bytes: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ProgressEvent::Bytes { file, done, total } if file == path => Some((*done, *total)),
                _ => None,
            })
            .collect();
        assert!(
            bytes.windows(2).all(|w| w[0].0 <= w[1].0),
            "{path}: monotonic {bytes:?}"
        );
        let len = data.len() as u64;
        assert_eq!(
            bytes.last(),
            Some(&(len, Some(len))),
            "{path} ends at its total"
        );
        assert!(events.contains(&ProgressEvent::Verified { file: path.clone() }));
    }
    assert_eq!(
        blob_names(&cfg, "acme/tiny").len(),
        3,
        "three blobs, no .incomplete left"
    );
    let mut tracker = ProgressTracker::new(Duration::from_secs(5));
    events.iter().for_each(|e| tracker.observe(e));
    let sum: u64 = wanted.iter().map(|f| f.1.len() as u64).sum();
    assert_eq!((tracker.done(), tracker.total()), (sum, Some(sum)));

    // A second pull finds every blob in place and transfers nothing.
    let before = server.log().len();
    assert_eq!(pull_logged(&cfg, &spec).0.unwrap(), model);
    assert!(server.log()[before..]
        .iter()
        .all(|l| l.method == "HEAD" || l.path.starts_with("/api/")));
}

#[test]
fn resumes_after_the_connection_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let big = random_bytes(3 * MB, 2);
    let mut next = rng(42);
    let mut cuts: Vec<u64> = (0..3)
        .map(|_| 1 + next() % (big.len() as u64 - 1))
        .collect();
    cuts.sort_unstable();
    let behaviour = Behaviour {
        cuts: HashMap::from([(sha256(&big), cuts.clone().into())]),
        ..Default::default()
    };
    let server = Server::start(
        vec![fixture("acme/cut", &[("w.bin", &big, true)])],
        behaviour,
    );
    let mut cfg = config(&server, tmp.path());
    cfg.retries = 2;
    let (model, events) = pull_logged(&cfg, &spec("acme/cut", &["w.bin"]));
    assert_eq!(std::fs::read(&model.unwrap().files[0]).unwrap(), big);

    let gets = server.cdn_gets();
    let starts: Vec<u64> = gets
        .iter()
        .filter_map(|g| {
            g.range
                .as_ref()?
                .strip_prefix("bytes=")?
                .trim_end_matches('-')
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(gets.len(), 4, "one request plus one per cut: {gets:?}");
    assert_eq!(starts.len(), 3, "every retry resumed with Range");
    for (start, cut) in starts.iter().zip(&cuts) {
        assert!(
            *start > 0 && start <= cut,
            "resumed at {start}, cut at {cut}"
        );
    }
    let sent: u64 = gets.iter().map(|g| g.sent).sum();
    assert!(sent < 2 * big.len() as u64, "sent {sent} bytes");
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ProgressEvent::Retrying { .. }))
            .count(),
        3
    );
}

#[test]
fn resumes_a_partial_file_left_by_an_earlier_run() {
    let tmp = tempfile::tempdir().unwrap();
    let big = random_bytes(3 * MB, 3);
    let server = Server::start(
        vec![fixture("acme/part", &[("w.bin", &big, true)])],
        Behaviour::default(),
    );
    let cfg = config(&server, tmp.path());
    let part = repo_dir(&cfg, "acme/part")
        .join("blobs")
        .join(format!("{}.incomplete", sha256(&big)));
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, &big[..MB]).unwrap();

    let (model, events) = pull_logged(&cfg, &spec("acme/part", &["w.bin"]));
    assert_eq!(std::fs::read(&model.unwrap().files[0]).unwrap(), big);
    let gets = server.cdn_gets();
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].range.as_deref(), Some("bytes=1000000-"));
    assert_eq!(
        (gets[0].status, gets[0].sent),
        (206, (big.len() - MB) as u64)
    );
    assert!(events.iter().any(|e| matches!(
        e,
        ProgressEvent::Started {
            resumed_from: 1_000_000,
            ..
        }
    )));

    // A server that ignores Range answers 200: the garbage part is discarded.
    let tmp = tempfile::tempdir().unwrap();
    let behaviour = Behaviour {
        ignore_range: true,
        ..Default::default()
    };
    let server = Server::start(
        vec![fixture("acme/part", &[("w.bin", &big, true)])],
        behaviour,
    );
    let cfg = config(&server, tmp.path());
    let part = repo_dir(&cfg, "acme/part")
        .join("blobs")
        .join(format!("{}.incomplete", sha256(&big)));
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, vec![7u8; MB]).unwrap();
    let model = pull_logged(&cfg, &spec("acme/part", &["w.bin"])).0.unwrap();
    assert_eq!(std::fs::read(&model.files[0]).unwrap(), big);
    assert_eq!(server.cdn_gets()[0].status, 200);
}

#[test]
fn cancel_keeps_the_partial_file_for_a_later_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let big = random_bytes(3 * MB, 4);
    let behaviour = Behaviour {
        chunk_delay: Duration::from_millis(2),
        ..Default::default()
    };
    let server = Server::start(
        vec![fixture("acme/stop", &[("w.bin", &big, true)])],
        behaviour,
    );
    let cfg = config(&server, tmp.path());
    let cancel = AtomicBool::new(false);
    let on_event = |e: &ProgressEvent| {
        if matches!(e, ProgressEvent::Bytes { done, .. } if *done >= MB as u64) {
            cancel.store(true, Ordering::SeqCst);
        }
    };
    let err = pull(&cfg, &spec("acme/stop", &["w.bin"]), &on_event, &cancel).unwrap_err();
    assert!(matches!(err, HubError::Cancelled), "{err}");
    assert_nothing_registered(&cfg, "acme/stop");
    let part = repo_dir(&cfg, "acme/stop")
        .join("blobs")
        .join(format!("{}.incomplete", sha256(&big)));
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept >= MB as u64 && kept < big.len() as u64, "kept {kept}");

    let model = pull_logged(&cfg, &spec("acme/stop", &["w.bin"])).0.unwrap();
    assert_eq!(std::fs::read(&model.files[0]).unwrap(), big);
    assert_eq!(
        server.cdn_gets().last().unwrap().range,
        Some(format!("bytes={kept}-"))
    );
}

#[test]
fn checksum_mismatch_registers_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let big = random_bytes(3 * MB, 5);
    let fx = || {
        fixture(
            "acme/bad",
            &[("w.bin", &big, true), ("config.json", b"{}", false)],
        )
    };
    let server = Server::start(vec![fx()], Behaviour::default());
    let cfg = config(&server, tmp.path());
    let mut wanted = spec("acme/bad", &["w.bin", "config.json"]);
    let expected = sha256(b"the bytes the caller expected");
    wanted.files[0].sha256 = Some(expected.clone());
    let err = pull_logged(&cfg, &wanted).0.unwrap_err();
    let actual = sha256(&big);
    match &err {
        HubError::Checksum {
            file,
            expected: e,
            actual: a,
        } => assert_eq!((file, e, a), (&"w.bin".into(), &expected, &actual)),
        other => panic!("expected a checksum error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("w.bin") && text.contains(&expected) && text.contains(&actual),
        "{text}"
    );
    assert_nothing_registered(&cfg, "acme/bad");
    assert!(
        !blob_names(&cfg, "acme/bad")
            .iter()
            .any(|b| b.starts_with(&actual)),
        "bad bytes deleted"
    );

    // Without a spec checksum the LFS ETag (sha256) catches corrupted bytes.
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        vec![fx()],
        Behaviour {
            corrupt: true,
            ..Default::default()
        },
    );
    let cfg = config(&server, tmp.path());
    let err = pull_logged(&cfg, &spec("acme/bad", &["w.bin"]))
        .0
        .unwrap_err();
    assert!(
        matches!(&err, HubError::Checksum { expected, .. } if *expected == actual),
        "{err}"
    );
    assert_nothing_registered(&cfg, "acme/bad");
}

#[test]
fn auth_errors_explain_the_token_and_never_show_it() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = "hf_s3cr3tT0ken";
    let behaviour = Behaviour {
        token: Some(secret.into()),
        gated: vec!["acme/gated".into()],
        ..Default::default()
    };
    let repos = vec![
        fixture("acme/private", &[("config.json", b"{}", false)]),
        fixture("acme/gated", &[]),
    ];
    let server = Server::start(repos, behaviour);
    let mut cfg = config(&server, tmp.path());
    let wanted = spec("acme/private", &["config.json"]);

    let err = pull_logged(&cfg, &wanted).0.unwrap_err();
    assert!(
        matches!(
            err,
            HubError::Unauthorized {
                token_sent: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("HF_TOKEN") && err.to_string().contains("401"),
        "{err}"
    );

    cfg.token = Some("hf_wrong_one".into());
    let err = pull_logged(&cfg, &wanted).0.unwrap_err();
    assert!(
        err.to_string().contains("lacks access")
            && !format!("{err} {err:?}").contains("hf_wrong_one")
    );

    cfg.token = Some(secret.into());
    assert!(pull_logged(&cfg, &wanted).0.is_ok());
    let err = pull_logged(&cfg, &spec("acme/gated", &[])).0.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, HubError::Forbidden { .. })
            && text.contains("HF_TOKEN")
            && text.contains("license")
    );
    assert!(
        text.contains(&format!("{}/acme/gated", server.url())),
        "names the model page: {text}"
    );
    let debug = format!("{cfg:?}");
    assert!(
        !debug.contains(secret) && debug.contains("<redacted>"),
        "{debug}"
    );
    for shown in [format!("{err}"), format!("{err:?}")] {
        assert!(!shown.contains(secret));
    }

    let err = pull_logged(&cfg, &spec("acme/nope", &[])).0.unwrap_err();
    assert!(
        matches!(err, HubError::NotFound { .. }) && err.to_string().contains("acme/nope"),
        "{err}"
    );
    let err = pull_logged(&cfg, &spec("acme/private", &["missing.bin"]))
        .0
        .unwrap_err();
    assert!(
        matches!(err, HubError::NotFound { .. }) && err.to_string().contains("missing.bin"),
        "{err}"
    );
}

#[test]
fn offline_mode_uses_only_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (big, fx) = tiny_repo();
    let server = Server::start(vec![fx], Behaviour::default());
    let mut cfg = config(&server, tmp.path());
    let wanted = spec("acme/tiny", &["model.safetensors", "config.json"]);
    let online = pull_logged(&cfg, &wanted).0.unwrap();

    cfg.offline = true;
    let requests = server.log().len();
    assert_eq!(pull_logged(&cfg, &wanted).0.unwrap(), online);
    assert_eq!(server.log().len(), requests, "offline mode sent a request");
    drop(server);
    let offline = pull_logged(&cfg, &wanted).0.unwrap();
    assert_eq!(offline, online);
    assert_eq!(std::fs::read(&offline.files[0]).unwrap(), big);
    assert_eq!(installed(&cfg, &wanted), Some(online.clone()));
    let all = pull_logged(&cfg, &spec("acme/tiny", &[])).0.unwrap();
    assert_eq!(
        all.files.len(),
        2,
        "every file of the snapshot: {:?}",
        all.files
    );

    let err = pull_logged(&cfg, &spec("acme/never", &["config.json"]))
        .0
        .unwrap_err();
    assert!(
        matches!(err, HubError::NotCached { .. }) && err.to_string().contains("offline mode"),
        "{err}"
    );
    let err = pull_logged(&cfg, &spec("acme/tiny", &["tok/sub/vocab.txt"]))
        .0
        .unwrap_err();
    assert!(
        err.to_string().contains("tok/sub/vocab.txt is missing"),
        "{err}"
    );
    assert_eq!(installed(&cfg, &spec("acme/never", &[])), None);

    // verify re-hashes: a flipped byte in the blob is reported for that file only.
    assert!(verify(&cfg, &wanted)
        .unwrap()
        .iter()
        .all(|(_, r)| r.is_ok()));
    let mut bytes = big.clone();
    bytes[7] ^= 1;
    let blob = online.files[0].canonicalize().unwrap();
    std::fs::write(&blob, &bytes).unwrap();
    let report = verify(&cfg, &wanted).unwrap();
    assert!(
        report[0]
            .1
            .as_ref()
            .is_err_and(|e| e.contains(&sha256(&big))),
        "{report:?}"
    );
    assert!(report[1].1.is_ok());
}

#[test]
fn refuses_when_free_space_is_short() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, fx) = tiny_repo();
    let server = Server::start(vec![fx], Behaviour::default());
    let mut cfg = config(&server, tmp.path());
    cfg.free_space = |_| Ok(1_000);
    let err = pull_logged(&cfg, &spec("acme/tiny", &[])).0.unwrap_err();
    match &err {
        HubError::DiskSpace { needed, free, .. } => {
            assert_eq!((*needed, *free), (3 * MB as u64 + 17, 1_000))
        }
        other => panic!("expected a disk-space error, got {other:?}"),
    }
    assert!(
        err.to_string().contains("3.0 MB more needed, 1.0 kB free"),
        "{err}"
    );
    assert!(server.cdn_gets().is_empty(), "nothing downloaded");
    cfg.free_space = |_| Ok(u64::MAX);
    assert!(pull_logged(&cfg, &spec("acme/tiny", &[])).0.is_ok());
}

#[test]
fn downloads_files_in_parallel() {
    let (a, b) = (random_bytes(2 * MB, 6), random_bytes(2 * MB, 7));
    let overlaps = |parallel: usize| {
        let tmp = tempfile::tempdir().unwrap();
        let behaviour = Behaviour {
            chunk_delay: Duration::from_millis(3),
            ..Default::default()
        };
        let server = Server::start(
            vec![fixture(
                "acme/two",
                &[("a.bin", &a, true), ("b.bin", &b, true)],
            )],
            behaviour,
        );
        let mut cfg = config(&server, tmp.path());
        cfg.parallel = parallel;
        let model = pull_logged(&cfg, &spec("acme/two", &["a.bin", "b.bin"]))
            .0
            .unwrap();
        assert_eq!(std::fs::read(&model.files[1]).unwrap(), b);
        // Per file, the span from its first request to its last (a loaded machine may make a
        // transfer time out and resume: more than one request per file is fine).
        let gets = server.cdn_gets();
        // LFS content is served from /cdn/<sha256>.
        let span = |data: &[u8]| {
            let name = sha256(data);
            let mine: Vec<_> = gets.iter().filter(|g| g.path.ends_with(&name)).collect();
            assert!(!mine.is_empty(), "{name} was fetched: {gets:?}");
            (
                mine.iter().map(|g| g.start).min().unwrap(),
                mine.iter().map(|g| g.end).max().unwrap(),
            )
        };
        let (a0, a1) = span(&a);
        let (b0, b1) = span(&b);
        // The server stamps a request's end after its last write returns, which on a loaded
        // machine can be after the client has started the next file: count as overlapping only
        // transfers that share more than half of the shorter one's time.
        let shared = a1.min(b1).saturating_duration_since(a0.max(b0));
        let shorter = (a1 - a0).min(b1 - b0);
        shared > shorter / 2
    };
    assert!(overlaps(2), "two workers fetch both files at once");
    assert!(!overlaps(1), "one worker fetches them one after the other");
}

#[test]
fn remove_deletes_the_repo_and_reports_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, fx) = tiny_repo();
    let sum: u64 = fx.files.iter().map(|f| f.1.len() as u64).sum();
    let server = Server::start(vec![fx], Behaviour::default());
    let cfg = config(&server, tmp.path());
    let wanted = spec("acme/tiny", &[]);
    pull_logged(&cfg, &wanted).0.unwrap();
    assert_eq!(
        remove(&cfg, "acme/tiny").unwrap(),
        sum + COMMIT.len() as u64,
        "blobs plus the ref"
    );
    assert!(!repo_dir(&cfg, "acme/tiny").exists());
    assert_eq!(installed(&cfg, &wanted), None);
    assert_eq!(remove(&cfg, "acme/tiny").unwrap(), 0);
}

mod queue {
    //! The download queue (`pulls` in the store) against the loopback hub.
    use super::*;
    use crate::hub::queue::{PullReport, PullRunner};
    use crate::store::{PullEnd, PullStatus, Store};

    pub(super) fn registry(repo: &str, bytes: &[u8]) -> Registry {
        let mut reg = Registry::embedded().unwrap();
        reg.add_file(
            Path::new("test.toml"),
            &format!(
                "[[model]]\nid = \"queued-model\"\nname = \"Q\"\nkind = \"asr\"\nrepo = \"{repo}\"\n\
                 license = \"mit\"\narch = \"whisper\"\nformat = \"safetensors\"\ndtype = \"f16\"\n\
                 tier = \"low\"\n[[model.files]]\npath = \"w.bin\"\nsize = {}\nsha256 = \"{}\"\n",
                bytes.len(),
                sha256(bytes)
            ),
        )
        .unwrap();
        reg
    }

    /// Ticks until `until` holds or 30 s pass; returns every report.
    fn tick_until(
        runner: &mut PullRunner,
        store: &Store,
        mut until: impl FnMut(&Store, &[PullReport]) -> bool,
    ) -> Vec<PullReport> {
        let t0 = Instant::now();
        let mut all = Vec::new();
        loop {
            all.extend(runner.tick(store, true).unwrap());
            if until(store, &all) {
                return all;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "stuck: {all:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_queued_pull_survives_its_runner_dying_and_resumes() {
        let tmp = tempfile::tempdir().unwrap();
        let big = random_bytes(3 * MB, 21);
        let server = Server::start(
            vec![fixture("acme/queued", &[("w.bin", &big, true)])],
            Behaviour {
                chunk_delay: Duration::from_millis(40),
                ..Default::default()
            },
        );
        let cfg = config(&server, tmp.path());
        let db = tmp.path().join("reelsmith.db");
        let store = Store::open(&db).unwrap();
        let (row, new) = store.enqueue_pull("queued-model").unwrap();
        assert!(new && row.status == PullStatus::Queued);
        // Asking again gives the same pull.
        let (again, new) = store.enqueue_pull("queued-model").unwrap();
        assert!(!new && again.id == row.id);

        let mut first = PullRunner::new(cfg.clone(), registry("acme/queued", &big), 2);
        let reports = tick_until(&mut first, &store, |s, _| {
            s.pull(row.id).unwrap().unwrap().bytes_done >= MB as u64
        });
        assert!(reports.contains(&PullReport::Started {
            id: row.id,
            model: "queued-model".into()
        }));
        let during = store.pull(row.id).unwrap().unwrap();
        assert_eq!(during.status, PullStatus::Running);
        assert_eq!(during.owner_pid, Some(std::process::id()));
        assert_eq!(during.bytes_total, Some(big.len() as u64));
        // The runner dies without a word to the store.
        drop(first);
        assert_eq!(
            store.pull(row.id).unwrap().unwrap().status,
            PullStatus::Running
        );

        let mut second = PullRunner::new(cfg.clone(), registry("acme/queued", &big), 2);
        let reports = tick_until(&mut second, &store, |_, r| {
            r.iter()
                .any(|r| matches!(r, PullReport::Finished { id, .. } if *id == row.id))
        });
        assert!(
            reports.contains(&PullReport::Recovered {
                id: row.id,
                model: "queued-model".into()
            }),
            "{reports:?}"
        );
        let done = store.pull(row.id).unwrap().unwrap();
        assert_eq!(done.status, PullStatus::Done, "{done:?}");
        assert_eq!(done.attempts, 2);
        assert_eq!(done.bytes_done, big.len() as u64);
        let installed = installed(
            &cfg,
            &registry("acme/queued", &big)
                .get("queued-model")
                .unwrap()
                .spec(),
        )
        .expect("installed");
        assert_eq!(done.path.as_deref(), Some(installed.dir.to_str().unwrap()));
        assert_eq!(std::fs::read(&installed.files[0]).unwrap(), big);
        // The second runner resumed from what the first left on disk.
        let range = server.cdn_gets().last().unwrap().range.clone().unwrap();
        let from: u64 = range
            .trim_start_matches("bytes=")
            .trim_end_matches('-')
            .parse()
            .unwrap();
        assert!(from >= MB as u64, "resumed from {range}");
        assert!(second.is_idle());
    }

    #[test]
    fn cancels_reach_queued_and_running_pulls_from_any_connection() {
        let tmp = tempfile::tempdir().unwrap();
        let big = random_bytes(4 * MB, 22);
        let server = Server::start(
            vec![fixture("acme/cancel", &[("w.bin", &big, true)])],
            Behaviour {
                chunk_delay: Duration::from_millis(60),
                ..Default::default()
            },
        );
        let cfg = config(&server, tmp.path());
        let db = tmp.path().join("reelsmith.db");
        let store = Store::open(&db).unwrap();
        let other = Store::open(&db).unwrap();

        // Queued: cancelled on the spot, nothing runs it.
        let (q, _) = store.enqueue_pull("queued-model").unwrap();
        let after = other.cancel_pull(q.id).unwrap();
        assert_eq!(after.status, PullStatus::Cancelled);
        let mut runner = PullRunner::new(cfg.clone(), registry("acme/cancel", &big), 1);
        assert!(runner.tick(&store, true).unwrap().is_empty());
        assert!(runner.is_idle());

        // Running: the runner stops it at its next write, the partial file stays.
        let (r, new) = store.enqueue_pull("queued-model").unwrap();
        assert!(new, "a cancelled pull does not block a new one");
        tick_until(&mut runner, &store, |s, _| {
            s.pull(r.id).unwrap().unwrap().bytes_done >= 500_000
        });
        let flagged = other.cancel_pull(r.id).unwrap();
        assert!(flagged.cancel_requested && flagged.status == PullStatus::Running);
        let reports = tick_until(&mut runner, &store, |s, _| {
            !s.pull(r.id).unwrap().unwrap().status.is_active()
        });
        assert!(reports.contains(&PullReport::Finished {
            id: r.id,
            model: "queued-model".into(),
            end: PullEnd::Cancelled
        }));
        assert_nothing_registered(&cfg, "acme/cancel");
        let part = repo_dir(&cfg, "acme/cancel")
            .join("blobs")
            .join(format!("{}.incomplete", sha256(&big)));
        assert!(std::fs::metadata(&part).unwrap().len() >= 500_000);

        // A model the registry does not know fails with a reason instead of running.
        let (u, _) = store.enqueue_pull("no-such-model").unwrap();
        let reports = runner.tick(&store, true).unwrap();
        let failed = store.pull(u.id).unwrap().unwrap();
        assert_eq!(failed.status, PullStatus::Failed, "{reports:?}");
        assert!(failed.error.unwrap().contains("not in the registry"));

        // Listing: every pull, oldest first.
        let ids: Vec<_> = other.pulls(10).unwrap().iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![q.id, r.id, u.id]);
    }

    #[test]
    fn shutdown_puts_running_pulls_back_and_a_second_process_waits_its_turn() {
        let tmp = tempfile::tempdir().unwrap();
        let big = random_bytes(2 * MB, 23);
        let server = Server::start(
            vec![fixture("acme/stop2", &[("w.bin", &big, true)])],
            Behaviour {
                chunk_delay: Duration::from_millis(40),
                ..Default::default()
            },
        );
        let cfg = config(&server, tmp.path());
        let db = tmp.path().join("reelsmith.db");
        let store = Store::open(&db).unwrap();
        let mut runner = PullRunner::new(cfg, registry("acme/stop2", &big), 1);
        let row = match store
            .start_pull_now("queued-model", std::process::id())
            .unwrap()
        {
            crate::store::PullStart::Started(r) => r,
            other => panic!("{other:?}"),
        };
        runner.adopt(&store, row.clone()).unwrap();
        // Another process asking for the same model is told who runs it.
        match store
            .start_pull_now("queued-model", std::process::id() + 1)
            .unwrap()
        {
            crate::store::PullStart::Busy(b) => {
                assert_eq!(b.id, row.id);
                assert_eq!(b.owner_pid, Some(std::process::id()));
            }
            other => panic!("{other:?}"),
        }
        let reports = runner.shutdown(&store).unwrap();
        assert_eq!(
            reports,
            vec![PullReport::Finished {
                id: row.id,
                model: "queued-model".into(),
                end: PullEnd::Requeue
            }]
        );
        let back = store.pull(row.id).unwrap().unwrap();
        assert_eq!(back.status, PullStatus::Queued);
        assert_eq!(back.owner_pid, None);
    }
}

#[test]
fn the_scheduler_downloads_queued_models_before_it_goes_idle() {
    use crate::scheduler::{Scheduler, SchedulerConfig};
    use crate::store::{PullStatus, Store};
    let tmp = tempfile::tempdir().unwrap();
    let weights = random_bytes(700_000, 24);
    let server = Server::start(
        vec![fixture("acme/sched", &[("w.bin", &weights, true)])],
        Behaviour::default(),
    );
    let dirs = crate::config::Dirs {
        data: tmp.path().join("data"),
        config: tmp.path().join("config"),
    };
    std::fs::create_dir_all(&dirs.data).unwrap();
    let store = Store::open(&dirs.db_path()).unwrap();
    let (row, _) = store.enqueue_pull("queued-model").unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let cfg = SchedulerConfig {
        inbox: false,
        exit_when_idle: true,
        export: false,
        poll: Duration::from_millis(50),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut s = Scheduler::new(
            dirs.clone(),
            crate::stages::registry(),
            cfg,
            tokio_util::sync::CancellationToken::new(),
            Box::new(move |l| sink.lock().unwrap().push(l.to_string())),
        )
        .unwrap();
        s.set_hub(
            config(&server, tmp.path()),
            queue::registry("acme/sched", &weights),
        );
        s.run().await.unwrap()
    });
    let done = store.pull(row.id).unwrap().unwrap();
    assert_eq!(done.status, PullStatus::Done, "{done:?}");
    let log = lines.lock().unwrap().join("\n");
    assert!(
        log.contains(&format!("pull {}: queued-model installed in", row.id)),
        "{log}"
    );
}
