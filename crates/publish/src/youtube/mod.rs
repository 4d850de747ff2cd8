//! YouTube Data API v3: resumable video uploads that survive a killed process, thumbnails,
//! captions, processing status, playlists, and the quota arithmetic around them.
//!
//! ## The resumable upload, as [`upload_video`] drives it
//!
//! 1. **Start a session** (no `session_uri` in the [`UploadState`]):
//!    `POST {youtube_api}/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status[,localizations]`
//!    with the video resource as JSON ([`VideoMeta::body`]), `X-Upload-Content-Length` and
//!    `X-Upload-Content-Type`. The answer's `Location` is the session URI; it is persisted at
//!    once, before any byte is sent.
//! 2. **Ask where it stands** whenever the session comes from a persisted state or a request
//!    failed: `PUT <session>` with an empty body and `Content-Range: bytes */TOTAL`. `308` with
//!    `Range: bytes=0-N` means the server holds N+1 bytes (no `Range`: none); `200`/`201` means
//!    the upload had finished and the body is the video. The offset always comes from the
//!    server, never from the persisted state.
//! 3. **Send chunks**: `PUT <session>` with `Content-Range: bytes A-B/TOTAL`; every chunk but the
//!    last is a multiple of 256 KiB ([`CHUNK_UNIT`]). `308` + `Range` acknowledges (the offset
//!    and the state are persisted after each), `201` ends the upload with the video resource.
//! 4. **Failures**: a lost connection or 500/502/503/504 (and 408/429, [`crate::http::transient`])
//!    → pause ([`Client::backoff`]), ask where it stands, go on; a bounded number of attempts in
//!    a row without progress, reset whenever bytes are acknowledged. `404`/`410` on the session:
//!    it expired — drop it, start over from byte 0 (persisted). `401` →
//!    [`YouTubeError::Unauthorized`]: refresh the token and call again with the same state.
//!    Quota reasons → [`YouTubeError::Quota`]; any other 4xx → [`YouTubeError::Rejected`] with
//!    YouTube's message and what to change.
//!
//! "Uploaded" is not "processed": after the upload, poll [`processing`] until it says
//! `succeeded` (or `failed`) before announcing the video.
//!
//! Sources: developers.google.com/youtube/v3/guides/using_resumable_upload_protocol,
//! …/docs/videos (resource), …/docs/videos/insert, …/docs/thumbnails/set,
//! …/docs/captions/insert, …/docs/playlistItems/insert, …/determine_quota_cost.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::endpoints::Endpoints;
use crate::http::{self, Body, Client, Response};
use crate::limits;

mod extras;
mod quota;
#[cfg(test)]
mod tests;
mod upload;

pub use extras::*;
pub use quota::*;
pub use upload::*;

/// Every chunk but the last is a multiple of this (256 KiB).
pub const CHUNK_UNIT: u64 = 256 * 1024;
/// The chunk size [`upload_video`] uses unless `REELSMITH_YOUTUBE_CHUNK_KIB` says otherwise.
pub const DEFAULT_CHUNK: u64 = 8 * 1024 * 1024;
/// The largest thumbnail `thumbnails.set` takes (the API reference says 50MB; Google's media
/// sizes are binary).
pub const THUMBNAIL_MAX_BYTES: u64 = 50 * 1024 * 1024;
/// The largest caption file `captions.insert` takes (100MB).
pub const CAPTION_MAX_BYTES: u64 = 100 * 1024 * 1024;

/// Who can see a video.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privacy {
    /// Only the owner (the only privacy a scheduled `publish_at` works with).
    #[default]
    Private,
    Unlisted,
    Public,
}

impl Privacy {
    pub fn as_str(self) -> &'static str {
        match self {
            Privacy::Private => "private",
            Privacy::Unlisted => "unlisted",
            Privacy::Public => "public",
        }
    }
}

/// A video's metadata, as the studio knows it; [`body`](Self::body) turns it into the video
/// resource YouTube takes, within YouTube's limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VideoMeta {
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    /// A video category id ("22" People & Blogs, "1" Film & Animation, "20" Gaming, "27"
    /// Education…).
    pub category_id: String,
    /// BCP-47 language of the title and description; required when `localizations` are sent.
    pub default_language: String,
    /// Language → (title, description), each within the same limits as the main ones.
    pub localizations: BTreeMap<String, (String, String)>,
    /// Always sent: YouTube makes a video without one public.
    pub privacy: Privacy,
    /// RFC 3339 time at which a private video becomes public (only with [`Privacy::Private`]).
    pub publish_at: Option<String>,
    /// `status.containsSyntheticMedia`: the video contains realistic altered or synthetic
    /// content (the disclosure YouTube asks for).
    pub synthetic: bool,
    /// `status.selfDeclaredMadeForKids`.
    pub made_for_kids: bool,
}

impl Default for VideoMeta {
    fn default() -> Self {
        Self {
            title: String::new(),
            description: String::new(),
            tags: Vec::new(),
            category_id: "22".into(),
            default_language: String::new(),
            localizations: BTreeMap::new(),
            privacy: Privacy::Private,
            publish_at: None,
            synthetic: false,
            made_for_kids: false,
        }
    }
}

impl VideoMeta {
    /// The `part` parameter: `snippet,status`, and `localizations` when there are any.
    pub fn parts(&self) -> String {
        if self.localizations.is_empty() {
            "snippet,status".into()
        } else {
            "snippet,status,localizations".into()
        }
    }

    /// The video resource to send: title, description and tags cut to YouTube's limits
    /// ([`crate::limits`]), localizations likewise, `snippet.defaultLanguage` whenever
    /// localizations are sent, `status.privacyStatus` always, `status.publishAt` only with a
    /// private video, the synthetic-media and made-for-kids declarations.
    ///
    /// Refused ([`YouTubeError::Invalid`]): an empty title (or localized title), `publish_at`
    /// with a privacy other than private or not an RFC 3339 time, localizations without a
    /// default language, a language code that is not one.
    pub fn body(&self) -> Result<serde_json::Value, YouTubeError> {
        let invalid = |m: String| Err(YouTubeError::Invalid(m));
        let title = limits::youtube_title(&self.title);
        if title.is_empty() {
            return invalid("the video has no title: YouTube requires one".into());
        }
        let mut snippet = serde_json::json!({
            "title": title,
            "description": limits::youtube_description(&self.description),
            "categoryId": if self.category_id.trim().is_empty() { "22" } else { self.category_id.trim() },
        });
        let tags = limits::youtube_tags(&self.tags);
        if !tags.is_empty() {
            snippet["tags"] = serde_json::json!(tags);
        }
        let lang = self.default_language.trim();
        if !lang.is_empty() {
            if !is_language(lang) {
                return invalid(format!("default language {lang:?} is not a language code"));
            }
            snippet["defaultLanguage"] = lang.into();
        } else if !self.localizations.is_empty() {
            return invalid(
                "localizations need a default language (snippet.defaultLanguage)".into(),
            );
        }
        let mut status = serde_json::json!({
            "privacyStatus": self.privacy.as_str(),
            "selfDeclaredMadeForKids": self.made_for_kids,
            "containsSyntheticMedia": self.synthetic,
        });
        if let Some(at) = &self.publish_at {
            if self.privacy != Privacy::Private {
                return invalid(format!(
                    "publish_at {at} needs privacy private (it is {}): YouTube makes a private video public at that time",
                    self.privacy.as_str()
                ));
            }
            if !is_rfc3339(at.trim()) {
                return invalid(format!(
                    "publish_at {at:?} is not an RFC 3339 time (2025-06-01T18:00:00Z)"
                ));
            }
            status["publishAt"] = at.trim().into();
        }
        let mut body = serde_json::json!({ "snippet": snippet, "status": status });
        if !self.localizations.is_empty() {
            let mut locs = serde_json::Map::new();
            for (code, (t, d)) in &self.localizations {
                let code = code.trim();
                if !is_language(code) {
                    return invalid(format!("localization {code:?} is not a language code"));
                }
                let t = limits::youtube_title(t);
                if t.is_empty() {
                    return invalid(format!("the {code} localization has no title"));
                }
                locs.insert(
                    code.to_string(),
                    serde_json::json!({ "title": t, "description": limits::youtube_description(d) }),
                );
            }
            body["localizations"] = serde_json::Value::Object(locs);
        }
        Ok(body)
    }
}

/// BCP-47-looking: ASCII letters, digits and `-`, starting with a letter, at most 35 long.
fn is_language(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 35
        && code.starts_with(|c: char| c.is_ascii_alphabetic())
        && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(99);
    if !(1..=12).contains(&num(5..7))
        || !(1..=31).contains(&num(8..10))
        || num(11..13) > 23
        || num(14..16) > 59
        || num(17..19) > 60
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

/// Where an upload stands, persisted by the caller after every change so that a killed process
/// resumes where YouTube says it got to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(default)]
pub struct UploadState {
    /// The resumable session (YouTube's `Location`), once started.
    pub session_uri: Option<String>,
    /// Bytes YouTube acknowledged, as last heard (informative: a resumed upload asks YouTube).
    pub offset: u64,
    /// The file's size.
    pub total: u64,
    /// Set when the upload finished.
    pub video_id: Option<String>,
    /// SHA-256 (hex) of the file: a state for another file, or a file changed since, is refused.
    pub sha256: String,
}

/// What went wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YouTubeError {
    /// The access token was refused (401): refresh it and call again with the same state.
    #[error("YouTube refused the access token (401): refresh the token and try again")]
    Unauthorized,
    /// A quota is spent (`quotaExceeded`, `uploadLimitExceeded`, `dailyLimitExceeded`,
    /// `rateLimitExceeded`, `userRateLimitExceeded`): wait (daily quotas reset at midnight
    /// Pacific Time, see [`quota_reset_after`]; the channel upload limit after 24 hours).
    #[error("YouTube quota ({reason}): {message}; try again after the quota resets (midnight Pacific Time; the channel's daily upload limit after 24 hours)")]
    Quota { reason: String, message: String },
    /// YouTube refused the request: its status, reason and message, and what to change.
    #[error("YouTube rejected the request ({status}{}): {message}{}", if reason.is_empty() { String::new() } else { format!(" {reason}") }, if hint.is_empty() { String::new() } else { format!(" — check {hint}") })]
    Rejected {
        status: u16,
        reason: String,
        message: String,
        hint: String,
    },
    /// The metadata or file cannot be sent as it is (nothing was sent).
    #[error("{0}")]
    Invalid(String),
    /// The file could not be read.
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// The state belongs to another file, or the file changed since the upload began.
    #[error("{path} changed since its upload began (sha256 {expected}, now {actual}): start a new upload with a fresh state")]
    FileChanged {
        path: String,
        expected: String,
        actual: String,
    },
    /// YouTube did not answer usefully after every retry (network down, 5xx); the state is
    /// saved, so calling again resumes.
    #[error("YouTube unavailable after {attempts} attempts: {last}; the upload resumes where it stopped when called again")]
    Unavailable { attempts: u32, last: String },
    /// The state could not be persisted; nothing more was sent.
    #[error("could not save the upload state: {0}")]
    Persist(String),
    /// The progress callback asked to stop; the state is saved.
    #[error("upload cancelled; it resumes where it stopped when called again")]
    Cancelled,
    /// An answer YouTube's protocol does not allow (no Location, no video id…).
    #[error("unexpected answer from YouTube: {0}")]
    Protocol(String),
}

/// The reasons that mean "a quota is spent".
const QUOTA_REASONS: [&str; 5] = [
    "quotaExceeded",
    "uploadLimitExceeded",
    "dailyLimitExceeded",
    "rateLimitExceeded",
    "userRateLimitExceeded",
];

/// `(reason, message)` from `{"error":{"code","message","errors":[{"reason","domain","message"}]}}`
/// (reason empty and the body's text as the message when it is not that shape).
pub fn api_error(resp: &Response) -> (String, String) {
    let j = resp.json();
    let e = &j["error"];
    let reason = e["errors"][0]["reason"].as_str().unwrap_or("").to_string();
    let message = e["message"]
        .as_str()
        .or_else(|| e["errors"][0]["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            let t = resp.text();
            let t = t.trim();
            if t.is_empty() {
                format!("HTTP {}", resp.status)
            } else {
                t.chars().take(500).collect()
            }
        });
    (reason, message)
}

/// What to look at for a rejection.
fn hint(status: u16, reason: &str) -> String {
    let h = match reason {
        "invalidTitle" => "the title (1–100 characters, no < or >)",
        "invalidDescription" => "the description (at most 5000 bytes, no < or >)",
        "invalidTags" => "the tags (500 characters in all, counted YouTube's way)",
        "invalidCategoryId" => "the category id (videoCategories.list gives the valid ones)",
        "invalidPublishAt" => "publish_at (an RFC 3339 time in the future, with privacy private)",
        "defaultLanguageNotSet" => "the default language (required with localizations)",
        "invalidVideoMetadata" => "the video's metadata",
        "forbiddenPrivacySetting" => "the privacy setting",
        "forbiddenLicenseSetting" => "the license setting",
        "mediaBodyRequired" => "the file (it is empty)",
        "invalidImage" => "the thumbnail (a PNG or JPEG of at most 50 MB)",
        "videoNotFound" => "the video id (and that this account owns it)",
        "playlistNotFound" => "the playlist id (and that this account owns it)",
        "captionAlreadyExists" | "contentRequired" | "invalidMetadata" => {
            "the caption file and its language and name"
        }
        "youtubeSignupRequired" => "the account: it has no YouTube channel yet (create one)",
        "forbidden" | "insufficientPermissions" | "insufficientScopes" | "ACCESS_TOKEN_SCOPE_INSUFFICIENT" => {
            "the account's scopes: sign in again granting youtube.upload for uploads and thumbnails, youtube (or youtube.force-ssl) for playlists, youtube.force-ssl for captions"
        }
        _ => match status {
            400 => "the request's fields",
            403 => "the account's permissions and scopes",
            404 | 410 => "the id",
            413 => "the file's size",
            _ => "",
        },
    };
    h.to_string()
}

/// An answer that is not a success, as an error.
fn classify(resp: &Response) -> YouTubeError {
    if resp.status == 401 {
        return YouTubeError::Unauthorized;
    }
    let (reason, message) = api_error(resp);
    if QUOTA_REASONS.contains(&reason.as_str()) {
        return YouTubeError::Quota { reason, message };
    }
    YouTubeError::Rejected {
        status: resp.status,
        hint: hint(resp.status, &reason),
        reason,
        message,
    }
}
