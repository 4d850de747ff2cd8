//! [`FakeYouTube`]: the YouTube Data API v3 as reelsmith uses it — resumable video uploads,
//! `thumbnails.set`, `captions.insert` (multipart), `videos.list` processing details,
//! `playlistItems.insert` — served on a loopback [`Server`], checking what it is sent the way
//! YouTube documents it, with faults a test injects.
//!
//! ```no_run
//! use reelsmith_publish::testing::youtube::FakeYouTube;
//! let yt = FakeYouTube::new(&["token-1"]);
//! let server = yt.serve();                     // REELSMITH_YOUTUBE_API = server.url()
//! yt.cut_next_put(300_000);                    // the next chunk's connection drops mid-body
//! yt.fail_next(503, 3);                        // then three 503s
//! // … upload; then:
//! let v = &yt.videos()[0];                     // v.bytes, v.resource (the JSON it was sent)
//! ```
//!
//! The state sits behind one mutex in an `Arc`, so a test keeps a handle while the server
//! serves, and a test of the studio can point a child process at [`Server::url`], SIGKILL it,
//! start another, and look at what arrived ([`FakeYouTube::wait_idle`] first: a killed
//! client's last request may still be in the server's hands).
//!
//! What it checks (a 400 with YouTube's error shape, `{"error":{"code","message","errors":[{"reason","domain","message"}]}}`,
//! when it is not so):
//! - every request: `Authorization: Bearer T` with T accepted ([`accept_token`](FakeYouTube::accept_token)),
//!   else 401;
//! - starting an upload: `uploadType=resumable`, `part` with `snippet` and `status` (and
//!   `localizations` when they are sent), `X-Upload-Content-Length` > 0, `X-Upload-Content-Type`
//!   `video/*` or `application/octet-stream`, a title of 1–100 characters (UTF-16 units) without
//!   `<` `>`, a description of at most 5000 bytes without `<` `>`, tags of at most 500
//!   characters counted YouTube's way (a tag with a space counts its 2 quotes, commas count),
//!   a numeric `categoryId`, `status.privacyStatus` present (YouTube would make the video
//!   public without it; reelsmith always sends it), `status.publishAt` only with `private`,
//!   `snippet.defaultLanguage` whenever `localizations` are sent. It answers 200 with
//!   `Location: http://<Host>/upload/youtube/v3/videos?uploadType=resumable&upload_id=ID`;
//! - a chunk (`Content-Range: bytes A-B/TOTAL`): TOTAL is the announced length, A is exactly
//!   what the session holds, the body is B−A+1 bytes, a chunk that does not end the file is a
//!   multiple of 256 KiB, `Content-Type` is the announced one; 308 + `Range: bytes=0-N`, or 201
//!   with the video resource for the last one;
//! - a status query (`Content-Range: bytes */TOTAL`, empty body): 308 with `Range` (none when
//!   nothing is held) or, once finished, 200 with the video resource;
//! - `thumbnails.set`: an existing video, a PNG or JPEG body of at most 50 MB;
//! - `captions.insert`: `multipart/related` with a JSON `snippet` (`videoId` of an existing
//!   video, `language`, `name`, `isDraft`) and a caption file with cue times (`-->`);
//! - `playlistItems.insert`: `snippet.playlistId` and a `youtube#video` `resourceId` of an
//!   existing video.
//!
//! A connection that drops mid-chunk (a cut, or a killed client) keeps what was received, as
//! YouTube may: all of it by default, or only up to a 256 KiB boundary with
//! [`keep_partial_bytes`](FakeYouTube::keep_partial_bytes)`(UNIT)` — a client must take the
//! offset from `Range` either way.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Handler, Head, Reply, Request, Server};

mod extras;
mod upload;

pub use extras::*;

/// 256 KiB: every chunk but the last is a multiple of it.
pub const UNIT: usize = 256 * 1024;
/// The largest thumbnail taken.
pub const THUMBNAIL_MAX: usize = 50 * 1024 * 1024;

const VIDEOS_UPLOAD: &str = "/upload/youtube/v3/videos";
const VIDEOS: &str = "/youtube/v3/videos";
const THUMBNAILS: &str = "/upload/youtube/v3/thumbnails/set";
const CAPTIONS: &str = "/upload/youtube/v3/captions";
const PLAYLIST_ITEMS: &str = "/youtube/v3/playlistItems";

/// A finished upload.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeVideo {
    pub id: String,
    pub bytes: Vec<u8>,
    /// The video resource the upload was started with.
    pub resource: Value,
    /// The `part` parameter it was started with.
    pub parts: String,
    /// `X-Upload-Content-Type`.
    pub content_type: String,
    /// `videos.list` polls seen.
    pub polls: usize,
}

/// A caption track received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeCaption {
    pub id: String,
    pub video_id: String,
    pub language: String,
    pub name: String,
    pub is_draft: bool,
    /// The media part's `Content-Type`.
    pub media_type: String,
    pub data: Vec<u8>,
}

/// A thumbnail received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeThumbnail {
    pub video_id: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// One request, as served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    /// Path and query.
    pub target: String,
    /// The bearer token, if any.
    pub token: Option<String>,
    pub content_range: Option<String>,
    /// The `Content-Length` header as sent.
    pub content_length: Option<String>,
    /// Body bytes received.
    pub body_len: usize,
    /// False when the body was cut off (a fault or a client that went away).
    pub complete: bool,
    /// The answer's status; None when the connection was closed without one.
    pub status: Option<u16>,
}

struct Session {
    total: u64,
    content_type: String,
    resource: Value,
    parts: String,
    data: Vec<u8>,
    requests: usize,
    expire_after: Option<usize>,
    expired: bool,
    video: Option<String>,
}

#[derive(Default)]
struct State {
    tokens: BTreeSet<String>,
    sessions: BTreeMap<String, Session>,
    session_order: Vec<String>,
    videos: BTreeMap<String, FakeVideo>,
    video_order: Vec<String>,
    cuts: VecDeque<usize>,
    burst: (u16, usize),
    expire_next: Option<usize>,
    insert_error: Option<(u16, String, String)>,
    processing_polls: usize,
    processing_failure: Option<String>,
    granularity: usize,
    put_delay: Duration,
    log: Vec<Logged>,
    thumbnails: Vec<FakeThumbnail>,
    captions: Vec<FakeCaption>,
    playlist_items: Vec<(String, String)>,
    next_id: u64,
    in_flight: usize,
    bytes_received: u64,
}

/// A fake YouTube; see the module's documentation. Share it as `Arc<FakeYouTube>`.
pub struct FakeYouTube {
    state: Mutex<State>,
}

/// A YouTube-shaped error answer.
pub fn error_reply(status: u16, reason: &str, message: &str) -> Reply {
    let domain = match reason {
        "quotaExceeded" | "rateLimitExceeded" => "youtube.quota",
        "authError" | "backendError" => "global",
        _ => "youtube.video",
    };
    Reply::json(
        status,
        &json!({"error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }}),
    )
}

fn bad(reason: &str, message: &str) -> Reply {
    error_reply(400, reason, message)
}

fn utf16(s: &str) -> usize {
    s.encode_utf16().count()
}

impl FakeYouTube {
    /// A fake that accepts these bearer tokens.
    pub fn new(tokens: &[&str]) -> Arc<FakeYouTube> {
        let state = State {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            granularity: 1,
            ..State::default()
        };
        Arc::new(FakeYouTube {
            state: Mutex::new(state),
        })
    }

    /// Serves it on a loopback port (stops when the server is dropped).
    pub fn serve(self: &Arc<Self>) -> Server {
        Server::start_arc(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Accepts another bearer token.
    pub fn accept_token(&self, token: &str) {
        self.lock().tokens.insert(token.to_string());
    }

    /// Stops accepting a token (an expired access token): its requests get 401.
    pub fn revoke_token(&self, token: &str) {
        self.lock().tokens.remove(token);
    }

    /// The next chunk PUT longer than `after` bytes is cut after `after` bytes of its body and
    /// its connection closed without an answer (faults queue up in order).
    pub fn cut_next_put(&self, after: usize) {
        self.lock().cuts.push_back(after);
    }

    /// The next `count` upload requests (starting a session, chunks, status queries) answer
    /// `status` (a 503 burst) without storing anything.
    pub fn fail_next(&self, status: u16, count: usize) {
        self.lock().burst = (status, count);
    }

    /// The next session started expires after `requests` requests on it: later ones get 404.
    pub fn expire_next_session_after(&self, requests: usize) {
        self.lock().expire_next = Some(requests);
    }

    /// Every session started so far expires now.
    pub fn expire_all_sessions(&self) {
        for s in self.lock().sessions.values_mut() {
            s.expired = true;
        }
    }

    /// Starting an upload answers this error until [`clear_insert_failure`](Self::clear_insert_failure).
    pub fn fail_inserts(&self, status: u16, reason: &str, message: &str) {
        self.lock().insert_error = Some((status, reason.into(), message.into()));
    }

    /// Starting an upload answers 403 `quotaExceeded`.
    pub fn quota_exceeded(&self) {
        self.fail_inserts(
            403,
            "quotaExceeded",
            "The request cannot be completed because you have exceeded your quota.",
        );
    }

    pub fn clear_insert_failure(&self) {
        self.lock().insert_error = None;
    }

    /// `videos.list` says `processing` for the first `polls` polls of a video, then
    /// `succeeded` — or `failed` with `failure` as the reason.
    pub fn set_processing(&self, polls: usize, failure: Option<&str>) {
        let mut s = self.lock();
        s.processing_polls = polls;
        s.processing_failure = failure.map(str::to_string);
    }

    /// What a dropped chunk keeps: the bytes received rounded down to a multiple of
    /// `granularity` of the file's offset (1, the default: all of them; [`UNIT`]: whole 256 KiB
    /// units).
    pub fn keep_partial_bytes(&self, granularity: usize) {
        self.lock().granularity = granularity.max(1);
    }

    /// A pause before answering each chunk (after reading it), so a test can kill a client
    /// while its chunk is in the server's hands.
    pub fn set_put_delay(&self, delay: Duration) {
        self.lock().put_delay = delay;
    }

    /// Finished uploads, in order.
    pub fn videos(&self) -> Vec<FakeVideo> {
        let s = self.lock();
        s.video_order
            .iter()
            .filter_map(|id| s.videos.get(id).cloned())
            .collect()
    }

    pub fn video(&self, id: &str) -> Option<FakeVideo> {
        self.lock().videos.get(id).cloned()
    }

    /// Sessions started.
    pub fn sessions_started(&self) -> usize {
        self.lock().session_order.len()
    }

    /// (bytes held, total) of each session, in the order they were started.
    pub fn session_progress(&self) -> Vec<(u64, u64)> {
        let s = self.lock();
        s.session_order
            .iter()
            .filter_map(|id| s.sessions.get(id))
            .map(|x| (x.data.len() as u64, x.total))
            .collect()
    }

    /// Chunk bytes received so far, kept or not (grows as uploads go on).
    pub fn bytes_received(&self) -> u64 {
        self.lock().bytes_received
    }

    /// Every request served, in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// Requests served with this method and path.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.lock()
            .log
            .iter()
            .filter(|l| l.method == method && l.path == path)
            .count()
    }

    pub fn thumbnails(&self) -> Vec<FakeThumbnail> {
        self.lock().thumbnails.clone()
    }

    pub fn captions(&self) -> Vec<FakeCaption> {
        self.lock().captions.clone()
    }

    /// (playlist id, video id) of each item added.
    pub fn playlist_items(&self) -> Vec<(String, String)> {
        self.lock().playlist_items.clone()
    }

    /// Waits until no request is being served (at most `timeout`); whether it got there.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.lock().in_flight == 0 {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn is_chunk(head: &Head) -> bool {
    head.method == "PUT" && head.path() == VIDEOS_UPLOAD
}

impl Handler for FakeYouTube {
    fn read_limit(&self, head: &Head) -> Option<usize> {
        let mut s = self.lock();
        s.in_flight += 1;
        let len = head.content_length().unwrap_or(0);
        if is_chunk(head) && len > 0 {
            if let Some(&n) = s.cuts.front() {
                if n < len {
                    s.cuts.pop_front();
                    return Some(n);
                }
            }
        }
        None
    }

    fn handle(&self, req: &Request) -> Reply {
        if is_chunk(&req.head) && req.complete && !req.body.is_empty() {
            let delay = self.lock().put_delay;
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
        }
        let mut s = self.lock();
        if is_chunk(&req.head) {
            s.bytes_received += req.body.len() as u64;
        }
        let reply = s.route(req);
        let status = match (&reply, req.complete) {
            (Reply::Respond { status, .. }, true) => Some(*status),
            _ => None,
        };
        s.log.push(Logged {
            method: req.head.method.clone(),
            path: req.head.path().to_string(),
            target: req.head.target.clone(),
            token: bearer(&req.head).map(str::to_string),
            content_range: req.head.header("content-range").map(str::to_string),
            content_length: req.head.header("content-length").map(str::to_string),
            body_len: req.body.len(),
            complete: req.complete,
            status,
        });
        s.in_flight = s.in_flight.saturating_sub(1);
        reply
    }
}

fn bearer(head: &Head) -> Option<&str> {
    head.header("authorization")?.strip_prefix("Bearer ")
}

/// What a `Content-Range` asks.
enum Range {
    Query(u64),
    Chunk { first: u64, last: u64, total: u64 },
}

fn parse_range(v: &str) -> Option<Range> {
    let v = v.trim().strip_prefix("bytes ")?;
    let (range, total) = v.split_once('/')?;
    let total = total.trim().parse().ok()?;
    if range.trim() == "*" {
        return Some(Range::Query(total));
    }
    let (a, b) = range.split_once('-')?;
    Some(Range::Chunk {
        first: a.trim().parse().ok()?,
        last: b.trim().parse().ok()?,
        total,
    })
}
