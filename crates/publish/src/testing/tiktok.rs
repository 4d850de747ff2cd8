//! [`FakeTikTok`]: a loopback stand-in for TikTok's Content Posting API that speaks it as
//! documented and is strict about it, for this crate's tests and the studio's end-to-end tests
//! (which point `REELSMITH_TIKTOK_API` at [`FakeTikTok::url`] and SIGKILL the uploading
//! process).
//!
//! - `POST /v2/post/publish/creator_info/query/`: the creator's options (configurable: an
//!   unaudited client is offered only `SELF_ONLY`).
//! - `POST /v2/post/publish/video/init/` (direct, with `post_info`) and
//!   `POST /v2/post/publish/inbox/video/init/`: the chunk rules are checked exactly (sizes of 5
//!   MiB to 64,000,000 bytes, a last chunk of at most 128,000,000, `total_chunk_count` =
//!   `video_size / chunk_size` rounded down, 1 to 1000 chunks, a video under 5 MiB whole, one
//!   over 64,000,000 bytes in several chunks); the privacy level must be one creator_info
//!   offers; the caption at most 2200 UTF-16 units. The `upload_url` returned points at this
//!   server: `{url}/video/?upload_id=N&upload_token=T`.
//! - `PUT` on an upload URL: `Content-Type` video/mp4, video/quicktime or video/webm,
//!   `Content-Range: bytes A-B/TOTAL` and a body of exactly that range; chunks strictly in order.
//!   A chunk that does not start at the next expected byte (a gap, or a repeat of one already
//!   received) gets `416 Range Not Satisfiable`; a malformed or wrongly sized one `400`; an
//!   expired URL `403`. `206 Partial Content` acknowledges a chunk, `201 Created` the last one.
//!   A chunk cut off mid-body is discarded whole.
//! - `POST /v2/post/publish/status/fetch/`: `PROCESSING_UPLOAD` (with `uploaded_bytes`) until
//!   the file is complete, then after [`set_polls_to_complete`](FakeTikTok::set_polls_to_complete)
//!   more polls `PUBLISH_COMPLETE` (direct), `SEND_TO_USER_INBOX` (inbox) or `FAILED` with the
//!   reason set by [`fail_processing`](FakeTikTok::fail_processing).
//!
//! Every API call needs `Authorization: Bearer` [`FakeTikTok::TOKEN`] (else `401
//! access_token_invalid`); answers are `{"data": …, "error": {"code", "message", "log_id"}}`.
//! Faults: a chunk PUT cut off mid-body, an answer lost after the chunk was kept, bursts of
//! 5xx, an expired upload URL, and any API error on the next call to a path.

use super::{Handler, Head, Reply, Request, Server};
use crate::Endpoints;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

const MIB: u64 = 1024 * 1024;
const MIN_CHUNK: u64 = 5 * MIB;
const MAX_CHUNK: u64 = 64_000_000;
const MAX_LAST_CHUNK: u64 = 128_000_000;

/// One upload the fake knows (one init).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeUpload {
    pub publish_id: String,
    /// `"direct"` or `"inbox"`.
    pub mode: String,
    /// The init's body as received.
    pub init: Value,
    pub video_size: u64,
    pub chunk_size: u64,
    pub chunk_count: u64,
    /// The bytes received so far, in order.
    pub received: Vec<u8>,
    /// Chunks acknowledged.
    pub chunks: u64,
    pub expired: bool,
    /// Status polls since the file was complete.
    pub polls: u32,
}

impl FakeUpload {
    pub fn complete(&self) -> bool {
        self.received.len() as u64 == self.video_size
    }
}

/// A PUT as the fake saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutLog {
    pub publish_id: String,
    pub content_range: String,
    /// The answer's status (0: the connection was closed without one).
    pub status: u16,
}

struct State {
    base: String,
    creator: Value,
    unaudited: bool,
    polls_to_complete: u32,
    fail_reason: Option<String>,
    uploads: Vec<FakeUpload>,
    cut_next_put: Option<usize>,
    drop_next_put_answer: bool,
    put_errors: VecDeque<u16>,
    api_errors: Vec<(String, u16, String, String)>,
    creator_queries: usize,
    puts: Vec<PutLog>,
}

#[derive(Clone)]
struct Shared(Arc<Mutex<State>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake TikTok; stops when dropped.
pub struct FakeTikTok {
    shared: Shared,
    server: Server,
}

impl FakeTikTok {
    /// The only access token it accepts.
    pub const TOKEN: &'static str = "tiktok-test-token";

    /// An audited client and a creator offered every privacy level, 300 s videos, two polls to
    /// finish processing.
    pub fn start() -> FakeTikTok {
        let shared = Shared(Arc::new(Mutex::new(State {
            base: String::new(),
            creator: json!({
                "creator_avatar_url": "https://example.invalid/avatar.jpg",
                "creator_username": "reelsmith_test",
                "creator_nickname": "Reelsmith Test",
                "privacy_level_options": crate::tiktok::PRIVACY_LEVELS,
                "comment_disabled": false,
                "duet_disabled": false,
                "stitch_disabled": false,
                "max_video_post_duration_sec": 300,
            }),
            unaudited: false,
            polls_to_complete: 2,
            fail_reason: None,
            uploads: Vec::new(),
            cut_next_put: None,
            drop_next_put_answer: false,
            put_errors: VecDeque::new(),
            api_errors: Vec::new(),
            creator_queries: 0,
            puts: Vec::new(),
        })));
        let server = Server::start(shared.clone());
        shared.lock().base = server.url();
        FakeTikTok { shared, server }
    }

    /// `http://127.0.0.1:PORT`: the value for `REELSMITH_TIKTOK_API`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Default endpoints with the TikTok API here.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            tiktok_api: self.url(),
            ..Endpoints::default()
        }
    }

    /// The privacy levels creator_info offers.
    pub fn set_privacy_options(&self, options: &[&str]) {
        self.shared.lock().creator["privacy_level_options"] = json!(options);
    }

    /// Changes a creator_info field (`comment_disabled`, `max_video_post_duration_sec`, …).
    pub fn set_creator_field(&self, key: &str, value: Value) {
        self.shared.lock().creator[key] = value;
    }

    /// An unaudited API client: creator_info offers only `SELF_ONLY`, and a direct post's init
    /// is refused with `unaudited_client_can_only_post_to_private_accounts` unless it is
    /// `SELF_ONLY` (whatever creator_info was made to say with
    /// [`set_privacy_options`](Self::set_privacy_options) afterwards).
    pub fn set_unaudited(&self, unaudited: bool) {
        let mut s = self.shared.lock();
        s.unaudited = unaudited;
        if unaudited {
            s.creator["privacy_level_options"] = json!(["SELF_ONLY"]);
        }
    }

    /// Status polls, after the file is complete, before the final status.
    pub fn set_polls_to_complete(&self, polls: u32) {
        self.shared.lock().polls_to_complete = polls;
    }

    /// Processing ends in `FAILED` with this `fail_reason`.
    pub fn fail_processing(&self, reason: &str) {
        self.shared.lock().fail_reason = Some(reason.into());
    }

    /// The next chunk PUT is cut off after `bytes` bytes of its body (connection closed, no
    /// answer; the partial chunk is discarded).
    pub fn cut_next_chunk(&self, bytes: usize) {
        self.shared.lock().cut_next_put = Some(bytes);
    }

    /// The next chunk PUT is received and kept whole, then the connection is closed without an
    /// answer.
    pub fn drop_next_answer(&self) {
        self.shared.lock().drop_next_put_answer = true;
    }

    /// The next `n` chunk PUTs answer `status` (a 5xx) without keeping anything.
    pub fn fail_next_chunks(&self, n: usize, status: u16) {
        self.shared
            .lock()
            .put_errors
            .extend(std::iter::repeat_n(status, n));
    }

    /// The current upload URLs expire: their PUTs answer 403.
    pub fn expire_upload_urls(&self) {
        for u in &mut self.shared.lock().uploads {
            u.expired = true;
        }
    }

    /// The next call to `path` (e.g. `/v2/post/publish/video/init/`) answers HTTP `status` with
    /// TikTok error `code` and `message`.
    pub fn fail_next_call(&self, path: &str, status: u16, code: &str, message: &str) {
        self.shared
            .lock()
            .api_errors
            .push((path.into(), status, code.into(), message.into()));
    }

    /// Every upload (init) so far, oldest first.
    pub fn uploads(&self) -> Vec<FakeUpload> {
        self.shared.lock().uploads.clone()
    }

    /// How many inits were accepted.
    pub fn inits(&self) -> usize {
        self.shared.lock().uploads.len()
    }

    /// How many creator_info queries were answered.
    pub fn creator_queries(&self) -> usize {
        self.shared.lock().creator_queries
    }

    /// Every chunk PUT, in order.
    pub fn puts(&self) -> Vec<PutLog> {
        self.shared.lock().puts.clone()
    }

    /// The complete file of upload `publish_id`, once every chunk is in.
    pub fn video(&self, publish_id: &str) -> Option<Vec<u8>> {
        self.shared
            .lock()
            .uploads
            .iter()
            .find(|u| u.publish_id == publish_id && u.complete())
            .map(|u| u.received.clone())
    }

    /// The files completed so far, oldest first.
    pub fn videos(&self) -> Vec<Vec<u8>> {
        self.shared
            .lock()
            .uploads
            .iter()
            .filter(|u| u.complete())
            .map(|u| u.received.clone())
            .collect()
    }
}

fn answer(status: u16, data: Value, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({
            "data": data,
            "error": {"code": code, "message": message, "log_id": "202501010000FAKE"},
        }),
    )
}

fn ok(data: Value) -> Reply {
    answer(200, data, "ok", "")
}

fn refuse(status: u16, code: &str, message: &str) -> Reply {
    answer(status, json!({}), code, message)
}

/// Whether a declared upload follows the chunk rules; why not.
fn check_plan(size: u64, chunk: u64, count: u64) -> Result<(), String> {
    if size == 0 || chunk == 0 {
        return Err("video_size and chunk_size must be positive".into());
    }
    if count != size / chunk {
        return Err(format!(
            "total_chunk_count {count} must be video_size / chunk_size rounded down ({})",
            size / chunk
        ));
    }
    if !(1..=1000).contains(&count) {
        return Err(format!("{count} chunks: there must be 1 to 1000"));
    }
    if size < MIN_CHUNK {
        if chunk != size {
            return Err(
                "a video under 5 MB must be uploaded whole (chunk_size = video_size)".into(),
            );
        }
        return Ok(());
    }
    if !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk) {
        return Err(format!("chunk_size {chunk} must be 5 MB to 64 MB"));
    }
    if size > MAX_CHUNK && count < 2 {
        return Err("a video over 64 MB must be uploaded in several chunks".into());
    }
    let last = size - (count - 1) * chunk;
    if last > MAX_LAST_CHUNK {
        return Err(format!("the last chunk would be {last} bytes, over 128 MB"));
    }
    Ok(())
}

fn parse_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

impl State {
    fn upload_of(&mut self, req: &Request) -> Option<usize> {
        let id: usize = req.head.query("upload_id")?.parse().ok()?;
        let token = req.head.query("upload_token")?;
        (id < self.uploads.len() && token == format!("tok{id}")).then_some(id)
    }

    fn put(&mut self, req: &Request) -> Reply {
        let range = req.head.header("content-range").unwrap_or("").to_string();
        let (status, reply) = self.put_inner(req);
        let publish_id = self
            .upload_of(req)
            .map(|i| self.uploads[i].publish_id.clone())
            .unwrap_or_default();
        self.puts.push(PutLog {
            publish_id,
            content_range: range,
            status: if matches!(reply, Reply::Close) || !req.complete {
                0
            } else {
                status
            },
        });
        reply
    }

    fn put_inner(&mut self, req: &Request) -> (u16, Reply) {
        let Some(i) = self.upload_of(req) else {
            return (404, Reply::status(404));
        };
        if !req.complete {
            // Cut off mid-body: the partial chunk is not kept.
            return (0, Reply::Close);
        }
        if let Some(s) = self.put_errors.pop_front() {
            return (s, Reply::status(s));
        }
        let u = &mut self.uploads[i];
        if u.expired {
            return (403, Reply::status(403));
        }
        let ct = req.head.header("content-type").unwrap_or("");
        if !["video/mp4", "video/quicktime", "video/webm"].contains(&ct) {
            return (400, Reply::status(400));
        }
        let Some((a, b, total)) = req.head.header("content-range").and_then(parse_range) else {
            return (400, Reply::status(400));
        };
        let next = u.received.len() as u64;
        if a != next {
            return (
                416,
                Reply::status(416).with_header("Content-Range", &format!("bytes */{next}")),
            );
        }
        let index = a / u.chunk_size;
        let want_end = if index + 1 >= u.chunk_count {
            u.video_size - 1
        } else {
            a + u.chunk_size - 1
        };
        let declared = req.head.content_length();
        if total != u.video_size
            || a % u.chunk_size != 0
            || index >= u.chunk_count
            || b != want_end
            || req.body.len() as u64 != b - a + 1
            || declared != Some(req.body.len())
        {
            return (400, Reply::status(400));
        }
        u.received.extend_from_slice(&req.body);
        u.chunks += 1;
        let status = if u.complete() { 201 } else { 206 };
        if std::mem::take(&mut self.drop_next_put_answer) {
            return (status, Reply::Close);
        }
        let reply = Reply::status(status)
            .with_header("Content-Range", &format!("bytes 0-{b}/{}", u.video_size));
        (status, reply)
    }

    fn api(&mut self, req: &Request) -> Reply {
        let path = req.head.path().to_string();
        if req.head.method != "POST" {
            return refuse(404, "invalid_params", "unknown endpoint");
        }
        if req.head.header("authorization") != Some(&format!("Bearer {}", FakeTikTok::TOKEN)) {
            return refuse(
                401,
                "access_token_invalid",
                "The access token is invalid or not found in the request.",
            );
        }
        if let Some(k) = self.api_errors.iter().position(|(p, ..)| *p == path) {
            let (_, status, code, message) = self.api_errors.remove(k);
            return refuse(status, &code, &message);
        }
        let body = req.json();
        match path.as_str() {
            "/v2/post/publish/creator_info/query/" => {
                self.creator_queries += 1;
                ok(self.creator.clone())
            }
            "/v2/post/publish/video/init/" => self.init(&body, "direct"),
            "/v2/post/publish/inbox/video/init/" => self.init(&body, "inbox"),
            "/v2/post/publish/status/fetch/" => self.status(&body),
            _ => refuse(404, "invalid_params", "unknown endpoint"),
        }
    }

    fn init(&mut self, body: &Value, mode: &str) -> Reply {
        let si = &body["source_info"];
        if si["source"] != "FILE_UPLOAD" {
            return refuse(
                400,
                "invalid_params",
                "source_info.source must be FILE_UPLOAD here",
            );
        }
        let n = |k: &str| si[k].as_u64().unwrap_or(0);
        let (size, chunk, count) = (n("video_size"), n("chunk_size"), n("total_chunk_count"));
        if let Err(e) = check_plan(size, chunk, count) {
            return refuse(
                400,
                "invalid_params",
                &format!("The chunk size is invalid: {e}"),
            );
        }
        if mode == "direct" {
            let pi = &body["post_info"];
            let privacy = pi["privacy_level"].as_str().unwrap_or("");
            let offered = self.creator["privacy_level_options"]
                .as_array()
                .is_some_and(|a| a.iter().any(|o| o == privacy));
            if self.unaudited && privacy != "SELF_ONLY" {
                return refuse(
                    403,
                    "unaudited_client_can_only_post_to_private_accounts",
                    "Unaudited clients can only post to a private account.",
                );
            }
            if !offered {
                return refuse(
                    403,
                    "privacy_level_option_mismatch",
                    "privacy_level is not among the privacy_level_options.",
                );
            }
            let title = pi["title"].as_str().unwrap_or("");
            if crate::limits::utf16_len(title) > 2200 {
                return refuse(
                    400,
                    "invalid_params",
                    "title is longer than 2200 UTF-16 runes",
                );
            }
        }
        let i = self.uploads.len();
        let publish_id = format!(
            "v_{}_file~v2.{}",
            if mode == "direct" { "pub" } else { "inbox" },
            1000 + i
        );
        self.uploads.push(FakeUpload {
            publish_id: publish_id.clone(),
            mode: mode.into(),
            init: body.clone(),
            video_size: size,
            chunk_size: chunk,
            chunk_count: count,
            received: Vec::new(),
            chunks: 0,
            expired: false,
            polls: 0,
        });
        ok(json!({
            "publish_id": publish_id,
            "upload_url": format!("{}/video/?upload_id={i}&upload_token=tok{i}", self.base),
        }))
    }

    fn status(&mut self, body: &Value) -> Reply {
        let id = body["publish_id"].as_str().unwrap_or("");
        let (polls, fail) = (self.polls_to_complete, self.fail_reason.clone());
        let Some(u) = self.uploads.iter_mut().find(|u| u.publish_id == id) else {
            return refuse(400, "invalid_params", "publish_id not found");
        };
        if !u.complete() {
            return ok(json!({
                "status": "PROCESSING_UPLOAD",
                "uploaded_bytes": u.received.len(),
            }));
        }
        u.polls += 1;
        if u.polls <= polls {
            return ok(json!({"status": "PROCESSING_UPLOAD", "uploaded_bytes": u.video_size}));
        }
        if let Some(reason) = fail {
            return ok(
                json!({"status": "FAILED", "fail_reason": reason, "uploaded_bytes": u.video_size}),
            );
        }
        if u.mode == "inbox" {
            return ok(json!({"status": "SEND_TO_USER_INBOX", "uploaded_bytes": u.video_size}));
        }
        let public = u.init["post_info"]["privacy_level"] != "SELF_ONLY";
        let ids: Vec<String> = if public {
            vec![format!("7{:018}", u.video_size)]
        } else {
            Vec::new()
        };
        ok(json!({
            "status": "PUBLISH_COMPLETE",
            "publicaly_available_post_id": ids,
            "uploaded_bytes": u.video_size,
        }))
    }
}

impl Handler for Shared {
    fn read_limit(&self, head: &Head) -> Option<usize> {
        if head.method == "PUT" {
            return self.lock().cut_next_put.take();
        }
        None
    }

    fn handle(&self, req: &Request) -> Reply {
        let mut s = self.lock();
        if req.head.method == "PUT" && req.head.path().starts_with("/video") {
            return s.put(req);
        }
        s.api(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_rules() {
        assert!(check_plan(4_000_000, 4_000_000, 1).is_ok());
        assert!(check_plan(4_000_000, 2_000_000, 2).is_err());
        assert!(check_plan(50_000_123, 10_000_000, 5).is_ok());
        assert!(check_plan(50_000_123, 10_000_000, 6).is_err());
        assert!(check_plan(70_000_000, 70_000_000, 1).is_err());
        assert!(check_plan(300_000_000, 100_000_000, 3).is_err());
        assert!(check_plan(20_000_000_000, 10_000_000, 2000).is_err());
        assert!(check_plan(190_000_000, 64_000_000, 2).is_ok());
        assert!(check_plan(200_000_000, 64_000_000, 3).is_ok());
        assert!(check_plan(193_000_000, 64_000_000, 2).is_err());
        assert!(check_plan(300_000_000, 64_000_000, 4).is_ok());
        assert!(check_plan(100_000_000, 5_000_000, 20).is_err());
    }
}
