//! TikTok's Content Posting API: a local file posted straight to the creator's profile
//! ([`PostMode::Direct`], scope `video.publish`) or sent to their TikTok inbox to finish in the
//! app ([`PostMode::Inbox`], scope `video.upload`).
//!
//! The order TikTok asks for, and what this module does at each step:
//!
//! 1. **Creator info** ([`creator_info`], `POST /v2/post/publish/creator_info/query/`): the
//!    privacy levels this creator may use *now*, whether comments, Duets and Stitches are off
//!    for them, the longest video they may post. A direct post is checked against it before
//!    anything is sent ([`check_post`]): a privacy level that is not offered is refused with the
//!    offered ones listed. An unaudited API client is offered only `SELF_ONLY` (TikTok: "All
//!    content posted by unaudited clients will be restricted to private viewing mode"), and its
//!    init is refused with `unaudited_client_can_only_post_to_private_accounts` for a public
//!    account. Inbox uploads skip this step: TikTok takes no caption or privacy with them, the
//!    creator sets both in the app.
//! 2. **Init** (`POST /v2/post/publish/video/init/` for a direct post, with `post_info`;
//!    `POST /v2/post/publish/inbox/video/init/` for the inbox) with `source_info` `FILE_UPLOAD`,
//!    `video_size`, `chunk_size`, `total_chunk_count` ([`chunk_plan`]); TikTok answers a
//!    `publish_id` and an `upload_url`, valid for one hour, used exactly as returned (query
//!    included; `REELSMITH_TIKTOK_API` changes where the API is, never the upload URL).
//! 3. **Chunks**, in order: `PUT {upload_url}` with `Content-Type: video/mp4` (or
//!    `video/quicktime`, `video/webm`), `Content-Range: bytes FIRST-LAST/TOTAL` (LAST
//!    inclusive). `206 Partial Content` acknowledges a chunk, `201 Created` the whole file.
//! 4. **Status** ([`status`], `POST /v2/post/publish/status/fetch/`) until `PUBLISH_COMPLETE`,
//!    `SEND_TO_USER_INBOX` or `FAILED` with a `fail_reason`.
//!
//! Chunk rules (media transfer guide): each chunk 5 MB to 64 MB, except the last, which takes
//! the trailing bytes and may reach 128 MB; `total_chunk_count` is `video_size / chunk_size`
//! rounded down; a video under 5 MB goes whole (`chunk_size` = its size), one over 64 MB in
//! several chunks; 1 to 1000 chunks, sent sequentially. TikTok writes "MB" without saying which;
//! [`chunk_plan`] keeps to both readings (chunks of at least 5 MiB, at most 64,000,000 bytes, a
//! last one of at most 128,000,000).
//!
//! [`upload`] is resumable from a persisted [`UploadState`]: the state is saved after the init
//! and after every acknowledged chunk, so a process killed at any point resumes with the chunk
//! that was not yet acknowledged. A chunk whose answer never came (a dropped connection, a
//! killed process) may or may not have landed; TikTok takes chunks strictly in order, so the
//! next try of that chunk is either accepted or refused as out of order (416), which proves it
//! landed, and the upload goes on with the one after it. A refused or expired upload URL, or a
//! state older than the URL's hour, starts a new upload (a new `publish_id`) from the first
//! chunk. A file that changed since its upload began (sha256) is refused.
//!
//! Platform errors are data ([`TikTokError`]): a refused token asks for a reconnection, the
//! daily caps and the rate limit say how long to wait, anything else permanent carries TikTok's
//! message and what to do about it.

use crate::http::{self, Body, Client, Response};
use crate::Endpoints;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod post;
#[cfg(test)]
mod tests;
mod upload;

pub use post::*;
pub use upload::*;

/// The smallest chunk: 5 MiB, which is at least 5 MB in either reading of "MB".
pub const MIN_CHUNK: u64 = 5 * 1024 * 1024;
/// The largest chunk but the last: 64,000,000 bytes, at most 64 MB in either reading.
pub const MAX_CHUNK: u64 = 64_000_000;
/// The largest last chunk: 128,000,000 bytes.
pub const MAX_LAST_CHUNK: u64 = 128_000_000;
/// At most this many chunks.
pub const MAX_CHUNKS: u64 = 1000;
/// The chunk size [`chunk_plan`] uses when the file allows it (TikTok's own example).
pub const PREFERRED_CHUNK: u64 = 10_000_000;
/// How long an `upload_url` is valid after the init that returned it.
pub const UPLOAD_URL_VALIDITY: Duration = Duration::from_secs(3600);
/// A state whose upload URL is older than the validity minus this starts a new upload rather
/// than racing the expiry.
const URL_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Answers in a row that are failures (no answer, 5xx) before giving up for now.
const MAX_FAILURES: u32 = 8;
/// New uploads (inits) one call may start before giving up.
const MAX_INITS: u32 = 3;

/// The privacy levels TikTok knows (what [`CreatorInfo::privacy_level_options`] lists from).
pub const PRIVACY_LEVELS: [&str; 4] = [
    "PUBLIC_TO_EVERYONE",
    "MUTUAL_FOLLOW_FRIENDS",
    "FOLLOWER_OF_CREATOR",
    "SELF_ONLY",
];

/// What went wrong, as data the studio can store and act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TikTokError {
    /// The video file: unreadable, empty, too large, or changed since its upload began.
    #[error("{0}")]
    File(String),
    /// TikTok refused the access token (`access_token_invalid`, `scope_not_authorized`).
    #[error("TikTok refused the access token ({code}): {message} — reconnect the TikTok account (and grant video.publish / video.upload)")]
    Unauthorized { code: String, message: String },
    /// A cap or rate limit: try again after `retry_after`.
    #[error("TikTok limit reached ({code}): {message} — trying again in {}", crate::time::fmt_wait(*retry_after))]
    Quota {
        code: String,
        message: String,
        retry_after: Duration,
    },
    /// Refused for good (by TikTok, or here before sending what TikTok would refuse):
    /// TikTok's code and message and what to do.
    #[error("TikTok refused the post ({code}): {message} — {hint}")]
    Rejected {
        code: String,
        message: String,
        hint: String,
    },
    /// TikTok could not be reached, or kept failing; the state is saved and a later call goes
    /// on from it.
    #[error("TikTok is not answering properly: {0} — the upload goes on from where it stopped on the next try")]
    Transient(String),
    /// `progress` asked to stop; the state is saved.
    #[error("upload cancelled")]
    Cancelled,
    /// `persist` failed: the upload stops rather than run ahead of what is saved.
    #[error("could not save the upload state: {0}")]
    Persist(String),
}

impl TikTokError {
    /// How long to wait before trying again, for a [`Quota`](Self::Quota).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TikTokError::Quota { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// How a video reaches TikTok.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PostMode {
    /// Posted to the profile with the caption and settings given (`video.publish`).
    #[default]
    Direct,
    /// Sent to the creator's TikTok inbox; they add caption and settings and post it in the app
    /// (`video.upload`). TikTok allows at most 5 such pending uploads in 24 hours.
    Inbox,
}

/// A post's caption, privacy and disclosure settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostMeta {
    /// The caption (`post_info.title`; hashtags and mentions included), cut to
    /// [`crate::limits::TIKTOK_CAPTION_MAX`] UTF-16 units by [`crate::limits::tiktok_caption`].
    pub title: String,
    /// One of the creator's [`CreatorInfo::privacy_level_options`].
    pub privacy_level: String,
    pub disable_comment: bool,
    pub disable_duet: bool,
    pub disable_stitch: bool,
    /// AI-generated content disclosure (`is_aigc`): TikTok labels the post "Creator labeled as
    /// AI-generated".
    pub is_aigc: bool,
    /// Paid partnership promoting a third party ("Paid partnership" label). Not allowed with
    /// `SELF_ONLY`.
    pub brand_content_toggle: bool,
    /// Promotes the creator's own business ("Promotional content" label).
    pub brand_organic_toggle: bool,
    /// The frame used as cover, in milliseconds (TikTok's default: the first frame).
    pub video_cover_timestamp_ms: Option<u32>,
    pub mode: PostMode,
    /// The video's length, when known: checked against the creator's longest allowed post.
    pub duration_s: Option<f64>,
}

impl PostMeta {
    /// A direct post with everything allowed and the AI-generated disclosure on (reelsmith's
    /// videos are made by generative models unless the studio says otherwise).
    pub fn new(title: impl Into<String>, privacy_level: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            privacy_level: privacy_level.into(),
            disable_comment: false,
            disable_duet: false,
            disable_stitch: false,
            is_aigc: true,
            brand_content_toggle: false,
            brand_organic_toggle: false,
            video_cover_timestamp_ms: None,
            mode: PostMode::Direct,
            duration_s: None,
        }
    }

    /// The `post_info` object of a direct post's init, with the creator's switched-off
    /// interactions kept off.
    pub fn post_info(&self, creator: &CreatorInfo) -> Value {
        let mut info = json!({
            "title": crate::limits::tiktok_caption(&self.title),
            "privacy_level": self.privacy_level,
            "disable_comment": self.disable_comment || creator.comment_disabled,
            "disable_duet": self.disable_duet || creator.duet_disabled,
            "disable_stitch": self.disable_stitch || creator.stitch_disabled,
            "brand_content_toggle": self.brand_content_toggle,
            "brand_organic_toggle": self.brand_organic_toggle,
            "is_aigc": self.is_aigc,
        });
        if let Some(ms) = self.video_cover_timestamp_ms {
            info["video_cover_timestamp_ms"] = json!(ms);
        }
        info
    }
}

/// A POST of `body` to `path` on the API; the answer's `data`, or the error as data. No answer
/// and 5xx are retried with backoff.
fn call(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    path: &str,
    body: Value,
) -> Result<Value, TikTokError> {
    let url = format!("{}{path}", endpoints.tiktok_api);
    let auth = format!("Bearer {token}");
    let mut attempt = 0;
    loop {
        let failure = match client.send(
            "POST",
            &url,
            &[("Authorization", &auth)],
            Body::Json(body.clone()),
        ) {
            Ok(r) => {
                let j = r.json();
                let code = j["error"]["code"].as_str().unwrap_or_default();
                if r.ok() && (code.is_empty() || code == "ok") {
                    return Ok(j["data"].clone());
                }
                if !(r.status >= 500 || code == "internal_error") {
                    return Err(api_error(&r, &j));
                }
                format!("{path} answered HTTP {} {}", r.status, r.text())
            }
            Err(e) => e.to_string(),
        };
        if attempt + 1 >= MAX_FAILURES {
            return Err(TikTokError::Transient(failure));
        }
        std::thread::sleep(client.backoff(attempt));
        attempt += 1;
    }
}

/// TikTok's `{"error": {"code", "message", "log_id"}}` as a [`TikTokError`].
fn api_error(r: &Response, j: &Value) -> TikTokError {
    let code = j["error"]["code"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(String::from)
        .unwrap_or_else(|| format!("http_{}", r.status));
    let mut message = j["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if message.is_empty() {
        message = format!("HTTP {}", r.status);
    }
    if let Some(log_id) = j["error"]["log_id"].as_str().filter(|l| !l.is_empty()) {
        message = format!("{message} (log_id {log_id})");
    }
    let day = Duration::from_secs(24 * 3600);
    let quota = |retry_after: Duration| TikTokError::Quota {
        code: code.clone(),
        message: message.clone(),
        retry_after,
    };
    let rejected = |hint: &str| TikTokError::Rejected {
        code: code.clone(),
        message: message.clone(),
        hint: hint.into(),
    };
    match code.as_str() {
        "access_token_invalid" | "scope_not_authorized" | "scope_permission_missed" => {
            TikTokError::Unauthorized {
                code: code.clone(),
                message: message.clone(),
            }
        }
        // TikTok says "daily" without saying when the day turns: wait a whole one.
        "spam_risk_too_many_posts" | "reached_active_user_cap" => quota(day),
        "spam_risk_too_many_pending_share" => TikTokError::Quota {
            code: code.clone(),
            message: format!("{message}; at most 5 inbox uploads may wait in 24 h — post or delete the waiting ones in the TikTok app"),
            retry_after: day,
        },
        // 6 inits a minute, 30 status fetches a minute per token.
        "rate_limit_exceeded" => quota(Duration::from_secs(60)),
        "unaudited_client_can_only_post_to_private_accounts" => rejected(
            "reelsmith's TikTok app is not audited yet: it may only post to a private account — make the account private or use SELF_ONLY until the audit",
        ),
        "privacy_level_option_mismatch" => {
            rejected("choose a privacy level creator_info offers (reelsmith checks them first; the creator's settings changed)")
        }
        "spam_risk_user_banned_from_posting" => {
            rejected("the TikTok account is banned from posting; nothing reelsmith can do")
        }
        "url_ownership_unverified" => rejected("verify the URL prefix or domain in the TikTok developer portal"),
        "invalid_file_upload" => rejected("the file does not meet TikTok's specifications: render MP4/H.264, 23–60 fps, 360–4096 px a side"),
        "invalid_params" | "invalid_param" => rejected("TikTok refused a field; see its message"),
        _ if r.status == 429 => quota(Duration::from_secs(60)),
        _ if r.status == 401 => TikTokError::Unauthorized {
            code: code.clone(),
            message: message.clone(),
        },
        _ => rejected("see TikTok's message"),
    }
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

fn mime_of(file: &Path) -> &'static str {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("mov") => "video/quicktime",
        Some("webm") => "video/webm",
        _ => "video/mp4",
    }
}

/// The file's size and sha256 (hex).
fn digest(path: &Path) -> Result<(u64, String), TikTokError> {
    crate::files::digest(path)
        .map_err(|e| TikTokError::File(format!("cannot read {}: {e}", path.display())))
}

/// Whether the file can still be read (before it is streamed to the platform).
fn readable(path: &Path) -> Result<(), TikTokError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| TikTokError::File(format!("cannot read {}: {e}", path.display())))
}
