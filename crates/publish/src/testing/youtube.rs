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

impl State {
    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:09}", self.next_id)
    }

    fn authorized(&self, head: &Head) -> bool {
        bearer(head).is_some_and(|t| self.tokens.contains(t))
    }

    fn route(&mut self, req: &Request) -> Reply {
        let head = &req.head;
        if !req.complete && !is_chunk(head) {
            return Reply::Close;
        }
        if !self.authorized(head) {
            return Reply::json(
                401,
                &json!({"error": {
                    "code": 401,
                    "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                    "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError", "location": "Authorization", "locationType": "header"}],
                    "status": "UNAUTHENTICATED",
                }}),
            );
        }
        let upload = head.path() == VIDEOS_UPLOAD;
        if upload && self.burst.1 > 0 {
            self.burst.1 -= 1;
            return error_reply(self.burst.0, "backendError", "Backend Error");
        }
        match (head.method.as_str(), head.path()) {
            ("POST", VIDEOS_UPLOAD) => self.start(req),
            ("PUT", VIDEOS_UPLOAD) => self.put(req),
            ("GET", VIDEOS) => self.list(req),
            ("POST", THUMBNAILS) => self.thumbnail(req),
            ("POST", CAPTIONS) => self.caption(req),
            ("POST", PLAYLIST_ITEMS) => self.playlist_item(req),
            _ => error_reply(404, "notFound", "Not Found"),
        }
    }

    fn start(&mut self, req: &Request) -> Reply {
        let head = &req.head;
        if let Some((status, reason, message)) = &self.insert_error {
            return error_reply(*status, reason, message);
        }
        if head.query("uploadType").as_deref() != Some("resumable") {
            return bad(
                "invalidParameter",
                "this fake takes uploadType=resumable only",
            );
        }
        let parts: BTreeSet<String> = head
            .query("part")
            .unwrap_or_default()
            .split(',')
            .map(|p| p.trim().to_string())
            .collect();
        if !parts.contains("snippet") || !parts.contains("status") {
            return bad("invalidPart", "part must name snippet and status");
        }
        let total: u64 = match head
            .header("x-upload-content-length")
            .and_then(|v| v.trim().parse().ok())
        {
            Some(n) if n > 0 => n,
            _ => {
                return bad(
                    "invalidUploadLength",
                    "X-Upload-Content-Length is missing or 0",
                )
            }
        };
        let content_type = head.header("x-upload-content-type").unwrap_or("").trim();
        if !(content_type.starts_with("video/") || content_type == "application/octet-stream") {
            return bad(
                "invalidContentType",
                "X-Upload-Content-Type must be video/* or application/octet-stream",
            );
        }
        let v = req.json();
        if let Err(reply) = check_resource(&v, &parts) {
            return reply;
        }
        let id = self.new_id("up");
        let expire_after = self.expire_next.take();
        self.sessions.insert(
            id.clone(),
            Session {
                total,
                content_type: content_type.to_string(),
                resource: v,
                parts: head.query("part").unwrap_or_default(),
                data: Vec::new(),
                requests: 0,
                expire_after,
                expired: false,
                video: None,
            },
        );
        self.session_order.push(id.clone());
        let host = head.header("host").unwrap_or("127.0.0.1");
        Reply::status(200).with_header(
            "Location",
            &format!("http://{host}{VIDEOS_UPLOAD}?uploadType=resumable&upload_id={id}"),
        )
    }

    fn put(&mut self, req: &Request) -> Reply {
        let head = &req.head;
        let granularity = self.granularity;
        let Some(sid) = head.query("upload_id") else {
            return error_reply(404, "notFound", "Not Found");
        };
        let Some(session) = self.sessions.get_mut(&sid) else {
            return error_reply(404, "notFound", "Not Found");
        };
        if !session.expired {
            session.requests += 1;
            if session.expire_after.is_some_and(|m| session.requests > m) {
                session.expired = true;
            }
        }
        if session.expired {
            return error_reply(404, "notFound", "The upload session has expired");
        }
        let range = match head.header("content-range") {
            Some(v) => match parse_range(v) {
                Some(r) => r,
                None => return bad("badContentRange", &format!("Content-Range {v:?}")),
            },
            // A whole file in one PUT.
            None if session.data.is_empty() => Range::Chunk {
                first: 0,
                last: (head.content_length().unwrap_or(0) as u64).saturating_sub(1),
                total: session.total,
            },
            None => return bad("badContentRange", "Content-Range is missing"),
        };
        let held = session.data.len() as u64;
        match range {
            Range::Query(total) => {
                if total != session.total {
                    return bad("badContentRange", "the total is not the announced length");
                }
                if !req.body.is_empty() {
                    return bad("badContentRange", "a status query has an empty body");
                }
                if let Some(id) = &session.video {
                    let id = id.clone();
                    return Reply::json(200, &self.resource_of(&id));
                }
                resume_incomplete(held)
            }
            Range::Chunk { first, last, total } => {
                if let Some(id) = &session.video {
                    let id = id.clone();
                    return Reply::json(200, &self.resource_of(&id));
                }
                if total != session.total || last < first || last >= total {
                    return bad(
                        "badContentRange",
                        &format!(
                            "bytes {first}-{last}/{total} for a {}-byte upload",
                            session.total
                        ),
                    );
                }
                if first != held {
                    return bad(
                        "badContentRange",
                        &format!("the chunk starts at {first} but the upload holds {held} bytes"),
                    );
                }
                let ct = head
                    .header("content-type")
                    .unwrap_or("")
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim();
                if ct != session.content_type {
                    return bad(
                        "invalidContentType",
                        &format!("Content-Type {ct:?}, announced {:?}", session.content_type),
                    );
                }
                let len = last - first + 1;
                if !req.complete {
                    // The connection dropped: keep what arrived (to the granularity).
                    let got = (req.body.len() as u64).min(len);
                    let g = granularity as u64;
                    let keep = ((first + got) / g * g).saturating_sub(first);
                    session.data.extend_from_slice(&req.body[..keep as usize]);
                    return Reply::Close;
                }
                if req.body.len() as u64 != len {
                    return bad(
                        "badContentRange",
                        &format!("bytes {first}-{last} announced, {} sent", req.body.len()),
                    );
                }
                if last + 1 < total && len % UNIT as u64 != 0 {
                    return bad(
                        "invalidChunkSize",
                        &format!(
                            "a chunk that does not end the file is a multiple of 256 KiB ({len})"
                        ),
                    );
                }
                session.data.extend_from_slice(&req.body);
                if (session.data.len() as u64) < session.total {
                    return resume_incomplete(session.data.len() as u64);
                }
                let video = FakeVideo {
                    id: String::new(),
                    bytes: std::mem::take(&mut session.data),
                    resource: session.resource.clone(),
                    parts: session.parts.clone(),
                    content_type: session.content_type.clone(),
                    polls: 0,
                };
                let id = self.new_id("vid");
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.video = Some(id.clone());
                    s.data = video.bytes.clone();
                }
                self.videos.insert(
                    id.clone(),
                    FakeVideo {
                        id: id.clone(),
                        ..video
                    },
                );
                self.video_order.push(id.clone());
                Reply::json(201, &self.resource_of(&id))
            }
        }
    }

    fn resource_of(&self, id: &str) -> Value {
        let Some(v) = self.videos.get(id) else {
            return json!({"id": id});
        };
        let mut status = v.resource["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        status["uploadStatus"] = "uploaded".into();
        json!({
            "kind": "youtube#video",
            "id": id,
            "snippet": v.resource["snippet"],
            "status": status,
        })
    }

    fn list(&mut self, req: &Request) -> Reply {
        let ids = req.head.query("id").unwrap_or_default();
        let (polls, failure) = (self.processing_polls, self.processing_failure.clone());
        let mut items = Vec::new();
        for id in ids.split(',').map(str::trim) {
            let Some(v) = self.videos.get_mut(id) else {
                continue;
            };
            v.polls += 1;
            let privacy = v.resource["status"]["privacyStatus"].clone();
            let (upload, processing) = if v.polls <= polls {
                ("uploaded", json!({"processingStatus": "processing"}))
            } else if let Some(f) = &failure {
                (
                    "failed",
                    json!({"processingStatus": "failed", "processingFailureReason": f}),
                )
            } else {
                ("processed", json!({"processingStatus": "succeeded"}))
            };
            items.push(json!({
                "kind": "youtube#video",
                "id": id,
                "status": {"uploadStatus": upload, "privacyStatus": privacy},
                "processingDetails": processing,
            }));
        }
        Reply::json(
            200,
            &json!({"kind": "youtube#videoListResponse", "items": items}),
        )
    }

    fn thumbnail(&mut self, req: &Request) -> Reply {
        let video_id = req.head.query("videoId").unwrap_or_default();
        if !self.videos.contains_key(&video_id) {
            return error_reply(
                404,
                "videoNotFound",
                "The video that you are trying to update cannot be found.",
            );
        }
        let ct = req
            .head
            .header("content-type")
            .unwrap_or("")
            .trim()
            .to_string();
        if !matches!(
            ct.as_str(),
            "image/png" | "image/jpeg" | "application/octet-stream"
        ) {
            return bad(
                "invalidImage",
                &format!("Content-Type {ct:?} is not an image"),
            );
        }
        if req.body.is_empty() {
            return bad(
                "mediaBodyRequired",
                "The request does not include the image content.",
            );
        }
        if req.body.len() > THUMBNAIL_MAX {
            return error_reply(413, "mediaBodyTooLarge", "The image is larger than 50 MB.");
        }
        let png = req.body.starts_with(b"\x89PNG\r\n\x1a\n");
        let jpeg = req.body.starts_with(&[0xFF, 0xD8, 0xFF]);
        if !(png || jpeg) {
            return bad("invalidImage", "The provided image content is invalid.");
        }
        self.thumbnails.push(FakeThumbnail {
            video_id: video_id.clone(),
            content_type: ct,
            data: req.body.clone(),
        });
        Reply::json(
            200,
            &json!({"kind": "youtube#thumbnailSetResponse", "items": [{"default": {
                "url": format!("https://i.ytimg.com/vi/{video_id}/default.jpg"), "width": 120, "height": 90}}]}),
        )
    }

    fn caption(&mut self, req: &Request) -> Reply {
        let head = &req.head;
        if head.query("uploadType").as_deref() != Some("multipart") {
            return bad(
                "invalidParameter",
                "this fake takes uploadType=multipart captions",
            );
        }
        if head.query("part").as_deref() != Some("snippet") {
            return bad("invalidPart", "part must be snippet");
        }
        let ct = head.header("content-type").unwrap_or("");
        let Some(boundary) = ct
            .strip_prefix("multipart/related")
            .and_then(|rest| rest.split("boundary=").nth(1))
            .map(|b| {
                b.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
            .filter(|b| !b.is_empty())
        else {
            return bad(
                "invalidMultipart",
                &format!("Content-Type {ct:?} is not multipart/related with a boundary"),
            );
        };
        let Some(parts) = parse_multipart(&req.body, &boundary) else {
            return bad("invalidMultipart", "the multipart body is malformed");
        };
        let [(h1, json_part), (h2, media)] = parts.as_slice() else {
            return bad(
                "invalidMultipart",
                &format!("{} parts, want 2", parts.len()),
            );
        };
        if !h1
            .get("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
        {
            return bad("invalidMultipart", "the first part is not JSON");
        }
        let meta: Value = serde_json::from_slice(json_part).unwrap_or(Value::Null);
        let s = &meta["snippet"];
        let video_id = s["videoId"].as_str().unwrap_or("").to_string();
        if !self.videos.contains_key(&video_id) {
            return error_reply(
                404,
                "videoNotFound",
                "The video identified by the videoId parameter could not be found.",
            );
        }
        let (Some(language), Some(name), Some(is_draft)) = (
            s["language"].as_str(),
            s["name"].as_str(),
            s["isDraft"].as_bool(),
        ) else {
            return bad(
                "invalidMetadata",
                "snippet needs language, name and isDraft",
            );
        };
        if language.trim().is_empty() {
            return bad("invalidMetadata", "snippet.language is empty");
        }
        if media.is_empty() {
            return bad(
                "contentRequired",
                "The request does not contain the caption track contents.",
            );
        }
        if !String::from_utf8_lossy(media).contains("-->") {
            return bad("invalidMetadata", "the caption track has no cue times");
        }
        let id = self.new_id("cap");
        self.captions.push(FakeCaption {
            id: id.clone(),
            video_id: video_id.clone(),
            language: language.to_string(),
            name: name.to_string(),
            is_draft,
            media_type: h2.get("content-type").cloned().unwrap_or_default(),
            data: media.clone(),
        });
        Reply::json(
            200,
            &json!({"kind": "youtube#caption", "id": id, "snippet": {
                "videoId": video_id, "language": language, "name": name, "isDraft": is_draft,
                "trackKind": "standard", "status": "serving"}}),
        )
    }

    fn playlist_item(&mut self, req: &Request) -> Reply {
        if req.head.query("part").as_deref() != Some("snippet") {
            return bad("invalidPart", "part must be snippet");
        }
        let v = req.json();
        let s = &v["snippet"];
        let playlist = s["playlistId"].as_str().unwrap_or("").to_string();
        if playlist.is_empty() {
            return bad(
                "playlistIdRequired",
                "The request does not specify a playlist ID.",
            );
        }
        if s["resourceId"]["kind"] != "youtube#video" {
            return bad(
                "invalidResourceType",
                "resourceId.kind must be youtube#video",
            );
        }
        let video = s["resourceId"]["videoId"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if !self.videos.contains_key(&video) {
            return error_reply(
                404,
                "videoNotFound",
                "The video that you are trying to add cannot be found.",
            );
        }
        self.playlist_items.push((playlist.clone(), video.clone()));
        let id = self.new_id("pli");
        Reply::json(
            200,
            &json!({"kind": "youtube#playlistItem", "id": id, "snippet": {
                "playlistId": playlist, "resourceId": {"kind": "youtube#video", "videoId": video}}}),
        )
    }
}

fn resume_incomplete(held: u64) -> Reply {
    let r = Reply::status(308);
    if held == 0 {
        r
    } else {
        r.with_header("Range", &format!("bytes=0-{}", held - 1))
    }
}

/// Checks a video resource as YouTube would (see the module's documentation).
fn check_resource(v: &Value, parts: &BTreeSet<String>) -> Result<(), Reply> {
    let snippet = &v["snippet"];
    let title = snippet["title"].as_str().unwrap_or("");
    let angle = |s: &str| s.contains('<') || s.contains('>');
    let title_ok = |t: &str| !t.trim().is_empty() && utf16(t) <= 100 && !angle(t);
    let description_ok = |d: &str| d.len() <= 5000 && !angle(d);
    if !title_ok(title) {
        return Err(bad(
            "invalidTitle",
            "The request metadata specifies an invalid or empty video title.",
        ));
    }
    if !description_ok(snippet["description"].as_str().unwrap_or("")) {
        return Err(bad(
            "invalidDescription",
            "The request metadata specifies an invalid video description.",
        ));
    }
    if let Some(tags) = snippet.get("tags") {
        let Some(tags) = tags.as_array() else {
            return Err(bad("invalidTags", "snippet.tags is not a list"));
        };
        let mut len = tags.len().saturating_sub(1);
        for t in tags {
            let t = t.as_str().unwrap_or("<");
            if angle(t) || t.contains(',') || t.trim().is_empty() {
                return Err(bad(
                    "invalidTags",
                    "The request metadata specifies invalid video keywords.",
                ));
            }
            len += utf16(t) + if t.contains(' ') { 2 } else { 0 };
        }
        if len > 500 {
            return Err(bad("invalidTags", &format!("The request metadata specifies invalid video keywords ({len} characters, counted with quotes and commas; at most 500).")));
        }
    }
    let cat = snippet["categoryId"].as_str().unwrap_or("");
    if cat.is_empty() || !cat.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "invalidCategoryId",
            "The snippet.categoryId property specifies an invalid category ID.",
        ));
    }
    let status = &v["status"];
    let privacy = status["privacyStatus"].as_str().unwrap_or("");
    if !matches!(privacy, "private" | "unlisted" | "public") {
        return Err(bad(
            "invalidVideoMetadata",
            "status.privacyStatus is missing (YouTube would publish the video publicly)",
        ));
    }
    if let Some(at) = status.get("publishAt") {
        let ok = at
            .as_str()
            .is_some_and(|s| s.len() >= 20 && s.as_bytes().get(10) == Some(&b'T'));
        if privacy != "private" || !ok {
            return Err(bad("invalidPublishAt", "The request metadata specifies an invalid scheduled publishing time (it needs privacyStatus private)."));
        }
    }
    for key in ["containsSyntheticMedia", "selfDeclaredMadeForKids"] {
        if status.get(key).is_some_and(|b| !b.is_boolean()) {
            return Err(bad(
                "invalidVideoMetadata",
                &format!("status.{key} is not a boolean"),
            ));
        }
    }
    if let Some(locs) = v.get("localizations") {
        if !parts.contains("localizations") {
            return Err(bad(
                "invalidPart",
                "localizations sent without part=localizations",
            ));
        }
        if snippet["defaultLanguage"].as_str().unwrap_or("").is_empty() {
            return Err(bad("defaultLanguageNotSet", "The request is trying to add localized video details without specifying the default language of the video details."));
        }
        let Some(locs) = locs.as_object() else {
            return Err(bad(
                "invalidVideoMetadata",
                "localizations is not an object",
            ));
        };
        for (lang, l) in locs {
            if !title_ok(l["title"].as_str().unwrap_or(""))
                || !description_ok(l["description"].as_str().unwrap_or(""))
            {
                return Err(bad(
                    "invalidLocalizedVideoMetadata",
                    &format!("the {lang} localization is invalid"),
                ));
            }
        }
    }
    Ok(())
}

type Part = (BTreeMap<String, String>, Vec<u8>);

/// The parts of a multipart body: (headers with lower-case names, data).
pub fn parse_multipart(body: &[u8], boundary: &str) -> Option<Vec<Part>> {
    let delim = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], from: usize| -> Option<usize> {
        hay.get(from..)?
            .windows(delim.len())
            .position(|w| w == delim.as_slice())
            .map(|p| p + from)
    };
    let mut at = find(body, 0)?;
    let mut parts = Vec::new();
    loop {
        let after = at + delim.len();
        if body.get(after..after + 2) == Some(b"--") {
            return Some(parts);
        }
        if body.get(after..after + 2) != Some(b"\r\n") {
            return None;
        }
        let start = after + 2;
        let head_end = body
            .get(start..)?
            .windows(4)
            .position(|w| w == b"\r\n\r\n")?
            + start;
        let mut headers = BTreeMap::new();
        for line in String::from_utf8_lossy(&body[start..head_end]).split("\r\n") {
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let data_start = head_end + 4;
        let next = find(body, data_start)?;
        // The data ends before the CRLF that precedes the next delimiter.
        if next < data_start + 2 || &body[next - 2..next] != b"\r\n" {
            return None;
        }
        parts.push((headers, body[data_start..next - 2].to_vec()));
        at = next;
    }
}
