//! Instagram Reels through the Instagram Graph API's content publishing (Instagram API with
//! Facebook Login: `graph.facebook.com`, replaceable with `REELSMITH_INSTAGRAM_API`, and
//! `rupload.facebook.com`, replaceable with `REELSMITH_INSTAGRAM_UPLOAD`).
//!
//! A Reel is published in three steps:
//!
//! 1. **A container** (`POST /{version}/{ig-user-id}/media`, `media_type=REELS`) with the
//!    caption and options ([`ReelMeta`]), made one of two ways by [`upload`]:
//!    - from a public URL (`video_url`): Instagram fetches the file itself ("we cURL media used
//!      in publishing attempts, so the media must be hosted on a publicly accessible server");
//!    - or with `upload_type=resumable` (apps with Facebook Login for Business), then the file's
//!      bytes are sent to `POST {rupload}/ig-api-upload/{version}/{container-id}` with the
//!      headers `Authorization: OAuth {token}`, `offset` (the first byte sent) and `file_size`
//!      (the whole file's size), the body running from `offset` to the end. The URL is built
//!      from [`Endpoints::instagram_upload`] (it is the `uri` the container answer carries when
//!      the default host is used), so `REELSMITH_INSTAGRAM_UPLOAD` moves it.
//! 2. **Processing**: [`container_status`] (`GET /{version}/{container-id}?fields=status_code,status`)
//!    until `FINISHED` (or `ERROR`, with the reason in `status`, or `EXPIRED`: a container not
//!    published within 24 hours); Meta suggests polling once a minute for at most five minutes
//!    ([`wait_for_container`]).
//! 3. **Publishing** ([`publish`], `POST /{version}/{ig-user-id}/media_publish?creation_id=…`),
//!    which answers the new media's id.
//!
//! The publishing limit is asked, not assumed ([`publishing_limit`],
//! `GET /{version}/{ig-user-id}/content_publishing_limit?fields=quota_usage,config`: posts
//! published through the API in the moving window, the limit and the window's length; the
//! guide says 100 posts in 24 hours, older pages said 25 or 50). [`upload`] checks it before
//! making a container (a container left unpublished expires after 24 hours) and [`publish`]
//! before publishing.
//!
//! **Resuming.** The resumable upload's state ([`UploadState`]) is saved after the container is
//! made and after the upload; a process killed in between resumes with the same container. Meta
//! documents the `offset` header but not how to ask rupload how much of a file it kept: after a
//! break [`upload`] asks with a `GET` on the upload URL and takes an `offset` (or the
//! `bytes_transfered` Facebook's video uploads report) from the answer; when the answer has none
//! it sends the file again from byte 0, which is always a correct request. A refused upload
//! (`ProcessingFailedError`: "initialize a new upload session") or an expired or failed
//! container starts over with a new container. A file that changed since its upload began
//! (sha256) is refused.
//!
//! **Privacy and disclosure.** The API has no privacy setting for a Reel: an Instagram
//! professional account's posts are public. `share_to_feed` shows the Reel in the profile's feed
//! grid as well as the Reels tab. AI-generated content is disclosed with `is_ai_generated`
//! (Meta's "AI info" label, added to the API on 22 June 2026 for all versions), a paid
//! partnership with `is_paid_partnership`.
//!
//! Platform errors are data ([`InstagramError`]): code 190 is a token to renew, the rate limits
//! (codes 4, 17, 32, 613) and the publishing limit (code 9, subcode 2207042) say how long to
//! wait, other refusals carry Meta's message and what to do.

use crate::http::{self, Body, Client, Response};
use crate::Endpoints;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod container;
#[cfg(test)]
mod tests;
mod upload;

pub use container::*;
pub use upload::*;

/// The Graph API version every path starts with.
pub const GRAPH_VERSION: &str = "v24.0";
/// How long a container lives unpublished.
pub const CONTAINER_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// A saved container older than its lifetime minus this is replaced rather than raced.
const CONTAINER_MARGIN: Duration = Duration::from_secs(3600);
/// Failures in a row (no answer, 5xx, retriable refusals) before giving up for now.
const MAX_FAILURES: u32 = 8;
/// New containers one call may make before giving up.
const MAX_CONTAINERS: u32 = 3;
/// How long to wait before looking at an exhausted publishing limit again: the window moves,
/// so a slot frees when the oldest post in it turns 24 hours old, which the API does not say.
pub const LIMIT_RECHECK: Duration = Duration::from_secs(3600);

/// What went wrong, as data the studio can store and act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstagramError {
    /// The video file: unreadable, empty, or changed since its upload began.
    #[error("{0}")]
    File(String),
    /// Meta refused the access token (code 190): renew it / reconnect the account.
    #[error("Instagram refused the access token (code {code}): {message} — reconnect the Instagram account")]
    Unauthorized { code: i64, message: String },
    /// A rate limit or the publishing limit: try again after `retry_after`.
    #[error("Instagram limit reached (code {code}): {message} — trying again in {}", crate::time::fmt_wait(*retry_after))]
    Quota {
        code: i64,
        message: String,
        retry_after: Duration,
    },
    /// Refused for good: Meta's code, subcode and message, and what to do.
    #[error("Instagram refused (code {code}{}): {message} — {hint}", subcode.map(|s| format!("/{s}")).unwrap_or_default())]
    Rejected {
        code: i64,
        subcode: Option<i64>,
        message: String,
        hint: String,
    },
    /// The container ended in `ERROR` (Meta's reason in `status`) or `EXPIRED`.
    #[error(
        "Instagram could not process container {container_id} ({status_code}): {status} — {hint}"
    )]
    ContainerFailed {
        container_id: String,
        status_code: String,
        status: String,
        hint: String,
    },
    /// The container is still being processed: look again later.
    #[error("Instagram is still processing container {container_id}; look again in a minute")]
    Processing { container_id: String },
    /// Meta could not be reached, or kept failing; the state is saved and a later call goes on.
    #[error("Instagram is not answering properly: {0} — the upload goes on from where it stopped on the next try")]
    Transient(String),
    /// `progress` asked to stop; the state is saved.
    #[error("upload cancelled")]
    Cancelled,
    /// `persist` failed: the upload stops rather than run ahead of what is saved.
    #[error("could not save the upload state: {0}")]
    Persist(String),
}

impl InstagramError {
    /// How long to wait before trying again, for a [`Quota`](Self::Quota).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            InstagramError::Quota { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// A Reel's caption and options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReelMeta {
    /// Fitted by [`crate::limits::instagram_caption`] (2200 characters, 30 hashtags, 20
    /// mentions) before it is sent.
    pub caption: String,
    /// Also show the Reel in the profile's feed grid, not only in the Reels tab.
    pub share_to_feed: bool,
    /// A cover image for the Reels tab, from a public URL.
    pub cover_url: Option<String>,
    /// The frame used as thumbnail, in milliseconds (ignored by Meta when `cover_url` is set).
    pub thumb_offset_ms: Option<u64>,
    /// AI-generated content disclosure (`is_ai_generated`, Meta's "AI info" label).
    pub is_ai_generated: bool,
    /// The "Paid partnership" label (`is_paid_partnership`).
    pub is_paid_partnership: bool,
    /// The file is publicly reachable here: Instagram fetches it (`video_url`) and nothing is
    /// uploaded. None: the file is uploaded (resumable upload).
    pub video_url: Option<String>,
}

impl ReelMeta {
    /// A Reel shared to the feed too, with the AI-generated disclosure on (reelsmith's videos
    /// are made by generative models unless the studio says otherwise), uploaded from the file.
    pub fn new(caption: impl Into<String>) -> Self {
        Self {
            caption: caption.into(),
            share_to_feed: true,
            cover_url: None,
            thumb_offset_ms: None,
            is_ai_generated: true,
            is_paid_partnership: false,
            video_url: None,
        }
    }

    /// The container's parameters (`media_type=REELS` and either `video_url` or
    /// `upload_type=resumable`).
    pub fn params(&self) -> Vec<(String, String)> {
        let mut p = vec![("media_type".to_string(), "REELS".to_string())];
        match &self.video_url {
            Some(url) => p.push(("video_url".into(), url.clone())),
            None => p.push(("upload_type".into(), "resumable".into())),
        }
        let caption = crate::limits::instagram_caption(&self.caption);
        if !caption.is_empty() {
            p.push(("caption".into(), caption));
        }
        p.push(("share_to_feed".into(), self.share_to_feed.to_string()));
        if let Some(c) = &self.cover_url {
            p.push(("cover_url".into(), c.clone()));
        }
        if let Some(ms) = self.thumb_offset_ms {
            p.push(("thumb_offset".into(), ms.to_string()));
        }
        if self.is_ai_generated {
            p.push(("is_ai_generated".into(), "true".into()));
        }
        if self.is_paid_partnership {
            p.push(("is_paid_partnership".into(), "true".into()));
        }
        p
    }
}

/// The account's publishing limit now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishingLimit {
    /// Posts published through the API in the window (`quota_usage`).
    pub used: u64,
    /// The most the window allows (`config.quota_total`).
    pub limit: u64,
    /// The window's length in seconds (`config.quota_duration`).
    pub window_s: u64,
}

impl PublishingLimit {
    pub fn exhausted(&self) -> bool {
        self.used >= self.limit
    }

    fn quota_error(&self) -> InstagramError {
        InstagramError::Quota {
            code: 9,
            message: format!(
                "{} of {} posts allowed through the API in a moving {} h window are used; a slot frees as the oldest post leaves the window",
                self.used,
                self.limit,
                self.window_s / 3600
            ),
            retry_after: LIMIT_RECHECK,
        }
    }
}

/// A Graph API request with `Authorization: Bearer`; the answer's JSON, or the error as data.
/// No answer, 5xx and errors Meta marks transient are retried with backoff when `retry`, else
/// returned as [`InstagramError::Transient`] at once.
fn graph(
    client: &Client,
    method: &str,
    url: &str,
    token: &str,
    form: Option<Vec<(String, String)>>,
    retry: bool,
) -> Result<Value, InstagramError> {
    let auth = format!("Bearer {token}");
    let mut attempt = 0;
    loop {
        let body = form.clone().map(Body::Form).unwrap_or_default();
        let failure = match client.send(method, url, &[("Authorization", &auth)], body) {
            Ok(r) => {
                let j = r.json();
                if r.ok() && j["error"].is_null() {
                    return Ok(j);
                }
                let e = &j["error"];
                let code = e["code"].as_i64().unwrap_or(0);
                let transient = r.status >= 500
                    || e["is_transient"].as_bool() == Some(true)
                    || matches!(code, 1 | 2);
                if !transient {
                    return Err(graph_error(&r, &j));
                }
                format!(
                    "{method} {}: HTTP {} {}",
                    crate::http::shown_url(url),
                    r.status,
                    e["message"].as_str().unwrap_or_default()
                )
            }
            Err(e) => e.to_string(),
        };
        attempt += 1;
        if !retry || attempt >= MAX_FAILURES {
            return Err(InstagramError::Transient(failure));
        }
        std::thread::sleep(client.backoff(attempt - 1));
    }
}

/// Meta's `{"error": {"message", "type", "code", "error_subcode", "error_user_msg",
/// "fbtrace_id"}}` as an [`InstagramError`].
fn graph_error(r: &Response, j: &Value) -> InstagramError {
    let e = &j["error"];
    let code = e["code"].as_i64().unwrap_or(0);
    let subcode = e["error_subcode"].as_i64();
    let mut message = e["error_user_msg"]
        .as_str()
        .or_else(|| e["message"].as_str())
        .filter(|m| !m.is_empty())
        .map(String::from)
        .unwrap_or_else(|| format!("HTTP {} {}", r.status, r.text()));
    if let Some(t) = e["fbtrace_id"].as_str().filter(|t| !t.is_empty()) {
        message = format!("{message} (fbtrace_id {t})");
    }
    let rejected = |hint: &str| InstagramError::Rejected {
        code,
        subcode,
        message: message.clone(),
        hint: hint.into(),
    };
    match (code, subcode) {
        (190 | 102, _) => InstagramError::Unauthorized { code, message },
        (4, Some(2207051)) => rejected(
            "Instagram took the post for spam; wait, change the caption, and publish again by hand if it persists",
        ),
        (9, _) => InstagramError::Quota {
            code,
            message: format!("{message}; the publishing limit counts posts in a moving 24-hour window"),
            retry_after: LIMIT_RECHECK,
        },
        (4 | 17 | 32 | 613, _) => InstagramError::Quota {
            code,
            message,
            retry_after: regain_access(r).unwrap_or(LIMIT_RECHECK),
        },
        (10 | 200..=299, _) => rejected(
            "a permission is missing: reconnect the account granting instagram_basic, instagram_content_publish and pages_read_engagement",
        ),
        (_, Some(2207020)) => rejected("the container expired: publish again (a new one is made)"),
        (_, Some(2207026)) => rejected(
            "Instagram refused the video format: render MP4 (H.264, AAC) within the Reels specifications",
        ),
        (_, Some(2207057)) => rejected("the thumbnail offset is outside the video: use a smaller thumb_offset"),
        (_, Some(2207027)) => rejected("the container is not ready: wait until it is FINISHED"),
        _ => rejected("see Meta's message"),
    }
}

/// The wait a rate-limited answer announces (`estimated_time_to_regain_access`, minutes, in
/// `X-Business-Use-Case-Usage`).
fn regain_access(r: &Response) -> Option<Duration> {
    let v: Value = serde_json::from_str(r.header("x-business-use-case-usage")?).ok()?;
    fn max_minutes(v: &Value) -> Option<u64> {
        match v {
            Value::Object(m) => {
                let here = m
                    .get("estimated_time_to_regain_access")
                    .and_then(Value::as_u64);
                m.values().filter_map(max_minutes).chain(here).max()
            }
            Value::Array(a) => a.iter().filter_map(max_minutes).max(),
            _ => None,
        }
    }
    max_minutes(&v)
        .filter(|m| *m > 0)
        .map(|m| Duration::from_secs(m * 60))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

/// The file's size and sha256 (hex).
fn digest(path: &Path) -> Result<(u64, String), InstagramError> {
    crate::files::digest(path)
        .map_err(|e| InstagramError::File(format!("cannot read {}: {e}", path.display())))
}

/// Whether the file can still be read (before it is streamed to the platform).
fn readable(path: &Path) -> Result<(), InstagramError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| InstagramError::File(format!("cannot read {}: {e}", path.display())))
}
