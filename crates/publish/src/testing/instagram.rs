//! [`FakeInstagram`]: loopback stand-ins for the Graph API's Instagram content publishing and
//! for the resumable upload host, on two servers (so a request sent to the wrong host fails),
//! for this crate's tests and the studio's end-to-end tests (which point
//! `REELSMITH_INSTAGRAM_API` at [`FakeInstagram::graph_url`], `REELSMITH_INSTAGRAM_UPLOAD` at
//! [`FakeInstagram::upload_url`], and SIGKILL the uploading process).
//!
//! Graph host (`/{vN.M}/…`, token as `Authorization: Bearer` or `access_token`; a wrong one is
//! `{"error": {"code": 190, "type": "OAuthException", …}}`):
//! - `POST /{v}/{ig-user-id}/media`: `media_type=REELS` with `video_url` (fetched, like Meta's
//!   cURL, on the first status poll) or `upload_type=resumable` (answers `id` and `uri`);
//!   captions over 2200 UTF-16 units or 30 hashtags are refused (code 100).
//! - `GET /{v}/me/accounts`: two Pages, one linked to the Instagram account
//!   [`FakeInstagram::USER_ID`] (username `tidepools`).
//! - `GET /{v}/{container-id}?fields=status_code,status`: `IN_PROGRESS` until the file is in,
//!   then for [`set_polls_to_finish`](FakeInstagram::set_polls_to_finish) more polls, then
//!   `FINISHED`, or `ERROR` with the text given to
//!   [`fail_processing`](FakeInstagram::fail_processing) in `status`; `PUBLISHED` once published;
//!   `EXPIRED` after [`expire_containers`](FakeInstagram::expire_containers).
//! - `POST /{v}/{ig-user-id}/media_publish` (`creation_id`): the container must be `FINISHED`
//!   (else code 9007, subcode 2207027); the publishing limit must have room (else code 9,
//!   subcode 2207042); answers the media `id`. Publishing an already published container is
//!   refused (code 100): Meta does not document that answer, and the client does not rely on it.
//! - `GET /{v}/{ig-user-id}/content_publishing_limit`: `{"data": [{"quota_usage", "config":
//!   {"quota_total", "quota_duration": 86400}}]}` ([`set_quota`](FakeInstagram::set_quota)).
//!
//! Upload host (`/ig-api-upload/{v}/{container-id}`, `Authorization: OAuth {token}`; errors as
//! `{"debug_info": {"retriable", "type", "message"}}`):
//! - `POST` with headers `offset` and `file_size`, the body from `offset` to the end. `offset`
//!   must be what the fake holds (or 0, which starts the file again), else `OffsetInvalidError`;
//!   a body that ends short of `file_size` is kept and answered `PartialRequestError`; a request
//!   cut off mid-body keeps the bytes that arrived. Complete: `{"success": true, "message":
//!   "Upload successful."}`.
//! - `GET`: `{"offset": N}`, the bytes held — the fake's answer to a question Meta does not
//!   document; [`set_reports_offset(false)`](FakeInstagram::set_reports_offset) makes it refuse
//!   the GET, and the client must then start again from byte 0.

use super::{Handler, Head, Reply, Request, Server};
use crate::http::Client;
use crate::Endpoints;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A container as the fake holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeContainer {
    pub id: String,
    /// The parameters it was made with (`caption`, `share_to_feed`, `is_ai_generated`, …).
    pub params: BTreeMap<String, String>,
    /// The bytes received (uploaded, or fetched from `video_url`).
    pub bytes: Vec<u8>,
    /// The `file_size` the upload announced.
    pub file_size: Option<u64>,
    /// The whole file is in.
    pub complete: bool,
    pub status_code: String,
    pub status: Option<String>,
    /// Status polls since the file was complete.
    pub polls: u32,
    pub media_id: Option<String>,
}

struct State {
    upload_base: String,
    next_id: u64,
    containers: BTreeMap<String, FakeContainer>,
    polls_to_finish: u32,
    fail_processing: Option<String>,
    quota_used: u64,
    quota_total: u64,
    reports_offset: bool,
    cut_next_upload: Option<usize>,
    drop_next_upload_answer: bool,
    fail_next_uploads: u32,
    fail_next_graph: u32,
    drop_next_publish_answer: bool,
    published: Vec<(String, String)>,
    upload_requests: Vec<(u64, usize, bool)>,
    created: usize,
}

#[derive(Clone)]
struct Shared(Arc<Mutex<State>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Graph(Shared);
struct Upload(Shared);

/// The fake Graph API and upload host; both stop when dropped.
pub struct FakeInstagram {
    shared: Shared,
    graph: Server,
    upload: Server,
}

impl FakeInstagram {
    /// The only access token it accepts.
    pub const TOKEN: &'static str = "instagram-test-token";
    /// The Instagram professional account's id.
    pub const USER_ID: &'static str = "17841400000000001";

    /// Two polls to finish processing, a limit of 100 posts with none used, offsets reported.
    pub fn start() -> FakeInstagram {
        let shared = Shared(Arc::new(Mutex::new(State {
            upload_base: String::new(),
            next_id: 17_900_000_000_000_000,
            containers: BTreeMap::new(),
            polls_to_finish: 2,
            fail_processing: None,
            quota_used: 0,
            quota_total: 100,
            reports_offset: true,
            cut_next_upload: None,
            drop_next_upload_answer: false,
            fail_next_uploads: 0,
            fail_next_graph: 0,
            drop_next_publish_answer: false,
            published: Vec::new(),
            upload_requests: Vec::new(),
            created: 0,
        })));
        let graph = Server::start(Graph(shared.clone()));
        let upload = Server::start(Upload(shared.clone()));
        shared.lock().upload_base = upload.url();
        FakeInstagram {
            shared,
            graph,
            upload,
        }
    }

    /// The Graph API's base URL: the value for `REELSMITH_INSTAGRAM_API`.
    pub fn graph_url(&self) -> String {
        self.graph.url()
    }

    /// The upload host's base URL: the value for `REELSMITH_INSTAGRAM_UPLOAD`.
    pub fn upload_url(&self) -> String {
        self.upload.url()
    }

    /// Default endpoints with both Instagram hosts here.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            instagram_api: self.graph_url(),
            instagram_upload: self.upload_url(),
            ..Endpoints::default()
        }
    }

    /// Status polls, after the file is in, before `FINISHED` (or `ERROR`).
    pub fn set_polls_to_finish(&self, polls: u32) {
        self.shared.lock().polls_to_finish = polls;
    }

    /// Processing ends in `ERROR` with this `status` text.
    pub fn fail_processing(&self, status: &str) {
        self.shared.lock().fail_processing = Some(status.into());
    }

    /// The publishing limit: `used` of `total` in the window.
    pub fn set_quota(&self, used: u64, total: u64) {
        let mut s = self.shared.lock();
        s.quota_used = used;
        s.quota_total = total;
    }

    /// Whether a `GET` on an upload URL reports the bytes held.
    pub fn set_reports_offset(&self, reports: bool) {
        self.shared.lock().reports_offset = reports;
    }

    /// The next upload request is cut off after `bytes` bytes of its body (connection closed,
    /// no answer); what arrived is kept.
    pub fn cut_next_upload(&self, bytes: usize) {
        self.shared.lock().cut_next_upload = Some(bytes);
    }

    /// The next upload request is received and kept whole, then the connection is closed
    /// without an answer.
    pub fn drop_next_upload_answer(&self) {
        self.shared.lock().drop_next_upload_answer = true;
    }

    /// The next `n` upload requests answer 503 `{"debug_info": {"retriable": true, …}}`
    /// without keeping anything.
    pub fn fail_next_uploads(&self, n: u32) {
        self.shared.lock().fail_next_uploads = n;
    }

    /// The next `n` Graph requests answer 500 with a transient error (code 2).
    pub fn fail_next_graph(&self, n: u32) {
        self.shared.lock().fail_next_graph = n;
    }

    /// The next media_publish publishes, then closes the connection without an answer.
    pub fn drop_next_publish_answer(&self) {
        self.shared.lock().drop_next_publish_answer = true;
    }

    /// Every container not yet published expires.
    pub fn expire_containers(&self) {
        for c in self.shared.lock().containers.values_mut() {
            if c.status_code != "PUBLISHED" {
                c.status_code = "EXPIRED".into();
            }
        }
    }

    /// A container.
    pub fn container(&self, id: &str) -> Option<FakeContainer> {
        self.shared.lock().containers.get(id).cloned()
    }

    /// How many containers were made.
    pub fn containers_made(&self) -> usize {
        self.shared.lock().created
    }

    /// A container's complete file.
    pub fn video(&self, container_id: &str) -> Option<Vec<u8>> {
        self.container(container_id)
            .filter(|c| c.complete)
            .map(|c| c.bytes)
    }

    /// (media id, container id) of every publication, oldest first.
    pub fn published(&self) -> Vec<(String, String)> {
        self.shared.lock().published.clone()
    }

    /// The published file of a media.
    pub fn published_video(&self, media_id: &str) -> Option<Vec<u8>> {
        let s = self.shared.lock();
        let (_, cid) = s.published.iter().find(|(m, _)| m == media_id)?;
        s.containers.get(cid).map(|c| c.bytes.clone())
    }

    /// (offset, body bytes received, complete) of every upload POST.
    pub fn upload_requests(&self) -> Vec<(u64, usize, bool)> {
        self.shared.lock().upload_requests.clone()
    }

    /// The publishing limit's used count.
    pub fn quota_used(&self) -> u64 {
        self.shared.lock().quota_used
    }
}

fn graph_error(status: u16, code: i64, subcode: Option<i64>, message: &str) -> Reply {
    let mut e = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AFakeTraceId",
    });
    if let Some(s) = subcode {
        e["error_subcode"] = json!(s);
    }
    if code == 2 {
        e["is_transient"] = json!(true);
    }
    Reply::json(status, &json!({ "error": e }))
}

fn debug_info(status: u16, retriable: bool, kind: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"debug_info": {"retriable": retriable, "type": kind, "message": message}}),
    )
}

fn is_version(s: &str) -> bool {
    s.strip_prefix('v')
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

fn hashtags(s: &str) -> usize {
    let mut n = 0;
    let mut prev: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '#'
            && !prev.is_some_and(|p| p.is_alphanumeric() || p == '_')
            && chars
                .peek()
                .is_some_and(|d| d.is_alphanumeric() || *d == '_')
        {
            n += 1;
        }
        prev = Some(c);
    }
    n
}

impl State {
    fn params(req: &Request) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        let mut add = |s: &str| {
            for kv in s.split('&').filter(|kv| !kv.is_empty()) {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                p.insert(pct_decode(k), pct_decode(v));
            }
        };
        if let Some((_, q)) = req.head.target.split_once('?') {
            add(q);
        }
        let ct = req.head.header("content-type").unwrap_or("");
        if ct.starts_with("application/x-www-form-urlencoded") {
            add(&String::from_utf8_lossy(&req.body));
        } else if ct.starts_with("application/json") {
            if let Some(o) = req.json().as_object() {
                for (k, v) in o {
                    let v = v
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string());
                    p.insert(k.clone(), v);
                }
            }
        }
        p
    }

    fn authorized(req: &Request, params: &BTreeMap<String, String>) -> bool {
        let bearer = format!("Bearer {}", FakeInstagram::TOKEN);
        let oauth = format!("OAuth {}", FakeInstagram::TOKEN);
        let h = req.head.header("authorization");
        h == Some(bearer.as_str())
            || h == Some(oauth.as_str())
            || params.get("access_token").map(String::as_str) == Some(FakeInstagram::TOKEN)
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    fn graph(&mut self, req: &Request) -> Reply {
        if self.fail_next_graph > 0 {
            self.fail_next_graph -= 1;
            return graph_error(
                500,
                2,
                None,
                "An unexpected error has occurred. Please retry your request later.",
            );
        }
        let params = Self::params(req);
        let parts: Vec<&str> = req
            .head
            .path()
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        if !parts.first().is_some_and(|v| is_version(v)) {
            return graph_error(400, 2635, None, "Unknown or missing API version");
        }
        if !Self::authorized(req, &params) {
            return graph_error(
                400,
                190,
                None,
                "Invalid OAuth access token - Cannot parse access token",
            );
        }
        let method = req.head.method.as_str();
        match (method, &parts[1..]) {
            ("POST", [user, "media"]) if *user == FakeInstagram::USER_ID => self.create(&params),
            ("POST", [user, "media_publish"]) if *user == FakeInstagram::USER_ID => {
                self.publish(&params)
            }
            ("GET", [user, "content_publishing_limit"]) if *user == FakeInstagram::USER_ID => {
                Reply::json(
                    200,
                    &json!({"data": [{
                        "quota_usage": self.quota_used,
                        "config": {"quota_total": self.quota_total, "quota_duration": 86400},
                    }]}),
                )
            }
            ("GET", ["me", "accounts"]) => Reply::json(
                200,
                &json!({"data": [
                    {"id": "1040000000000001", "name": "Page without Instagram"},
                    {"id": "1040000000000002", "name": "Tide Pools",
                     "instagram_business_account": {
                         "id": FakeInstagram::USER_ID, "username": "tidepools"}},
                ]}),
            ),
            ("GET", [id]) if self.containers.contains_key(*id) => self.status(id),
            _ => graph_error(
                400,
                100,
                Some(33),
                "Unsupported request. Object does not exist, cannot be loaded due to missing permissions, or does not support this operation.",
            ),
        }
    }

    fn create(&mut self, p: &BTreeMap<String, String>) -> Reply {
        if p.get("media_type").map(String::as_str) != Some("REELS") {
            return graph_error(400, 100, None, "The fake takes media_type=REELS only");
        }
        let resumable = p.get("upload_type").map(String::as_str) == Some("resumable");
        if resumable == p.contains_key("video_url") {
            return graph_error(
                400,
                100,
                None,
                "Give either video_url or upload_type=resumable",
            );
        }
        let caption = p.get("caption").map(String::as_str).unwrap_or("");
        if crate::limits::utf16_len(caption) > 2200 || hashtags(caption) > 30 {
            return graph_error(
                400,
                100,
                Some(2207028),
                "The caption is too long or has too many hashtags",
            );
        }
        let id = self.new_id();
        self.created += 1;
        self.containers.insert(
            id.clone(),
            FakeContainer {
                id: id.clone(),
                params: p.clone(),
                bytes: Vec::new(),
                file_size: None,
                complete: false,
                status_code: "IN_PROGRESS".into(),
                status: None,
                polls: 0,
                media_id: None,
            },
        );
        if resumable {
            let uri = format!(
                "{}/ig-api-upload/{}/{id}",
                self.upload_base,
                crate::instagram::GRAPH_VERSION
            );
            return Reply::json(200, &json!({ "id": id, "uri": uri }));
        }
        Reply::json(200, &json!({ "id": id }))
    }

    fn status(&mut self, id: &str) -> Reply {
        let (polls, fail) = (self.polls_to_finish, self.fail_processing.clone());
        let Some(c) = self.containers.get_mut(id) else {
            return graph_error(400, 100, None, "no such container");
        };
        if c.status_code == "IN_PROGRESS" && !c.complete {
            if let Some(url) = c.params.get("video_url").cloned() {
                // Meta cURLs the video; so does the fake, when first asked.
                let client = Client::new(Duration::from_secs(10), Duration::from_millis(1));
                match client.send("GET", &url, &[], crate::http::Body::Empty) {
                    Ok(r) if r.ok() => {
                        c.bytes = r.body;
                        c.complete = true;
                    }
                    Ok(r) => {
                        c.status_code = "ERROR".into();
                        c.status = Some(format!(
                            "Error: the video could not be downloaded from video_url (HTTP {})",
                            r.status
                        ));
                    }
                    Err(e) => {
                        c.status_code = "ERROR".into();
                        c.status = Some(format!(
                            "Error: the video could not be downloaded from video_url ({})",
                            e.message
                        ));
                    }
                }
            }
        }
        if c.status_code == "IN_PROGRESS" && c.complete {
            c.polls += 1;
            if c.polls > polls {
                match fail {
                    Some(text) => {
                        c.status_code = "ERROR".into();
                        c.status = Some(text);
                    }
                    None => c.status_code = "FINISHED".into(),
                }
            }
        }
        let mut j = json!({"id": c.id, "status_code": c.status_code});
        if let Some(s) = &c.status {
            j["status"] = json!(s);
        } else if c.status_code == "FINISHED" {
            j["status"] =
                json!("Finished: Media has been uploaded and it is ready to be published.");
        }
        Reply::json(200, &j)
    }

    fn publish(&mut self, p: &BTreeMap<String, String>) -> Reply {
        let cid = p.get("creation_id").cloned().unwrap_or_default();
        let (used, total) = (self.quota_used, self.quota_total);
        let media = self.new_id();
        let Some(c) = self.containers.get_mut(&cid) else {
            return graph_error(400, 100, None, "Invalid parameter: creation_id");
        };
        match c.status_code.as_str() {
            "FINISHED" => {}
            "PUBLISHED" => {
                return graph_error(400, 100, None, "This container has already been published")
            }
            "EXPIRED" => {
                return graph_error(
                    400,
                    -2,
                    Some(2207020),
                    "The media you are trying to access has expired. Please try to upload again.",
                )
            }
            _ => {
                return graph_error(
                    400,
                    9007,
                    Some(2207027),
                    "Media ID is not available: the media is not ready for publishing, please wait for a moment",
                )
            }
        }
        if used >= total {
            return graph_error(
                400,
                9,
                Some(2207042),
                "You reached maximum number of posts that is allowed to be published by Content Publishing API.",
            );
        }
        c.status_code = "PUBLISHED".into();
        c.media_id = Some(media.clone());
        self.quota_used += 1;
        self.published.push((media.clone(), cid));
        if std::mem::take(&mut self.drop_next_publish_answer) {
            return Reply::Close;
        }
        Reply::json(200, &json!({ "id": media }))
    }

    fn upload(&mut self, req: &Request) -> Reply {
        let parts: Vec<&str> = req
            .head
            .path()
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let ["ig-api-upload", version, id] = parts.as_slice() else {
            return debug_info(404, false, "NotFound", "Unknown path");
        };
        if !is_version(version) {
            return debug_info(
                400,
                false,
                "InvalidRequest",
                "Unknown or missing API version",
            );
        }
        let auth = req.head.header("authorization");
        if auth != Some(format!("OAuth {}", FakeInstagram::TOKEN).as_str()) {
            return debug_info(
                400,
                false,
                "ProcessingFailedError",
                "{\"success\":false,\"error\":{\"message\":\"unauthorized user request\"}}",
            );
        }
        let reports = self.reports_offset;
        let Some(c) = self.containers.get_mut(*id) else {
            return debug_info(400, false, "InvalidRequest", "Invalid container id");
        };
        if c.params.get("upload_type").map(String::as_str) != Some("resumable") {
            return debug_info(
                400,
                false,
                "InvalidRequest",
                "Not a resumable upload container",
            );
        }
        if req.head.method == "GET" {
            if !reports {
                return debug_info(400, false, "InvalidRequest", "Unsupported request");
            }
            return Reply::json(200, &json!({ "id": c.id, "offset": c.bytes.len() }));
        }
        if req.head.method != "POST" {
            return debug_info(405, false, "InvalidRequest", "Method not allowed");
        }
        let offset = req
            .head
            .header("offset")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let size = req
            .head
            .header("file_size")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let (Some(offset), Some(size)) = (offset, size) else {
            return debug_info(
                400,
                false,
                "InvalidRequest",
                "offset and file_size headers are required",
            );
        };
        self.upload_requests
            .push((offset, req.body.len(), req.complete));
        if self.fail_next_uploads > 0 && req.complete {
            self.fail_next_uploads -= 1;
            return debug_info(
                503,
                true,
                "ServiceUnavailable",
                "Upload service busy, please retry",
            );
        }
        let Some(c) = self.containers.get_mut(*id) else {
            return debug_info(400, false, "InvalidRequest", "Invalid container id");
        };
        if c.file_size.is_some_and(|f| f != size) {
            return debug_info(
                400,
                false,
                "InvalidRequest",
                "file_size does not match the upload",
            );
        }
        if offset == 0 {
            c.bytes.clear();
            c.complete = false;
        } else if offset != c.bytes.len() as u64 {
            return debug_info(
                400,
                false,
                "OffsetInvalidError",
                "Request starting offset is invalid",
            );
        }
        if offset > size {
            return debug_info(
                400,
                false,
                "OffsetInvalidError",
                "Request starting offset is invalid",
            );
        }
        c.file_size = Some(size);
        let room = (size - offset) as usize;
        c.bytes
            .extend_from_slice(&req.body[..req.body.len().min(room)]);
        if !req.complete {
            return Reply::Close;
        }
        if (c.bytes.len() as u64) < size {
            return debug_info(
                400,
                false,
                "PartialRequestError",
                "Partial request (did not match length of file)",
            );
        }
        c.complete = true;
        if std::mem::take(&mut self.drop_next_upload_answer) {
            return Reply::Close;
        }
        Reply::json(
            200,
            &json!({"success": true, "message": "Upload successful."}),
        )
    }
}

/// `application/x-www-form-urlencoded` decoding of one key or value.
fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Handler for Graph {
    fn handle(&self, req: &Request) -> Reply {
        self.0.lock().graph(req)
    }
}

impl Handler for Upload {
    fn read_limit(&self, head: &Head) -> Option<usize> {
        if head.method == "POST" {
            return self.0.lock().cut_next_upload.take();
        }
        None
    }

    fn handle(&self, req: &Request) -> Reply {
        self.0.lock().upload(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hashtags_and_versions() {
        assert_eq!(hashtags("#a #b c#d # #_e"), 3);
        assert!(is_version("v24.0") && !is_version("v24") && !is_version("x1.0"));
    }
}
