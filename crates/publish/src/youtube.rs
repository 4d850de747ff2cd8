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

/// `videos.insert`: 1 call of its own daily bucket (not of the 10,000 units).
pub const VIDEOS_INSERT: u32 = 1;
/// `videos.insert` calls a project may make a day by default (their own bucket).
pub const VIDEOS_INSERT_PER_DAY: u32 = 100;
/// Units a project may spend a day by default on every other method.
pub const DAILY_UNITS: u32 = 10_000;
/// `captions.insert` cost in units.
pub const CAPTIONS_INSERT: u32 = 400;
/// `thumbnails.set` cost in units (YouTube says "approximately").
pub const THUMBNAILS_SET: u32 = 50;
/// `videos.list` cost in units (a [`processing`] poll).
pub const VIDEOS_LIST: u32 = 1;
/// `playlistItems.insert` cost in units.
pub const PLAYLIST_ITEMS_INSERT: u32 = 50;

/// Every chunk but the last is a multiple of this (256 KiB).
pub const CHUNK_UNIT: u64 = 256 * 1024;
/// The chunk size [`upload_video`] uses unless `REELSMITH_YOUTUBE_CHUNK_KIB` says otherwise.
pub const DEFAULT_CHUNK: u64 = 8 * 1024 * 1024;
/// The largest thumbnail `thumbnails.set` takes (the API reference says 50MB; Google's media
/// sizes are binary).
pub const THUMBNAIL_MAX_BYTES: u64 = 50 * 1024 * 1024;
/// The largest caption file `captions.insert` takes (100MB).
pub const CAPTION_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// The longest video that can be a Short (3 minutes, since 15 October 2024).
pub const SHORT_MAX_SECONDS: f64 = 180.0;

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

/// How an upload is cut and retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadOptions {
    /// Bytes per PUT: a multiple of [`CHUNK_UNIT`] (rounded down, at least one unit).
    pub chunk: u64,
    /// Failed requests in a row (lost connections, transient statuses) before giving up with
    /// [`YouTubeError::Unavailable`]; reset whenever YouTube acknowledges bytes.
    pub max_attempts: u32,
    /// Sessions that may expire (404/410) in one call before giving up.
    pub max_restarts: u32,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            chunk: DEFAULT_CHUNK,
            max_attempts: 8,
            max_restarts: 3,
        }
    }
}

impl UploadOptions {
    /// The defaults, with `REELSMITH_YOUTUBE_CHUNK_KIB` (a multiple of 256) as the chunk size
    /// when set — tests make it small so a killed upload stops between many chunks.
    pub fn from_env() -> Self {
        let mut o = Self::default();
        if let Some(kib) = std::env::var("REELSMITH_YOUTUBE_CHUNK_KIB")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            o.chunk = kib.saturating_mul(1024);
        }
        o
    }

    fn chunk_bytes(&self) -> u64 {
        (self.chunk / CHUNK_UNIT).max(1) * CHUNK_UNIT
    }
}

/// The MIME type of a video file, from its extension (`video/*` types YouTube takes, else
/// `application/octet-stream`, which it also takes).
pub fn video_content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "avi" => "video/x-msvideo",
        "mpg" | "mpeg" => "video/mpeg",
        _ => "application/octet-stream",
    }
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> YouTubeError {
    YouTubeError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// SHA-256 (hex) and size of a file.
pub fn file_sha256(path: &Path) -> Result<(String, u64), YouTubeError> {
    let mut f = File::open(path).map_err(|e| file_err(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| file_err(path, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// `bytes=0-N` (or `0-N`) → N+1.
fn range_end(resp: &Response) -> Option<u64> {
    let r = resp.header("range")?;
    let r = r.trim().trim_start_matches("bytes=");
    let (_, end) = r.split_once('-')?;
    end.trim().parse::<u64>().ok().map(|n| n + 1)
}

fn video_id_of(resp: &Response) -> Result<String, YouTubeError> {
    resp.json()["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            YouTubeError::Protocol(format!(
                "the upload finished ({}) without a video id",
                resp.status
            ))
        })
}

/// Uploads `file` with [`UploadOptions::from_env`]; see [`upload_video_with`].
#[allow(clippy::too_many_arguments)]
pub fn upload_video(
    client: &Client,
    endpoints: &Endpoints,
    access_token: &str,
    meta: &VideoMeta,
    file: &Path,
    state: &mut UploadState,
    persist: &mut dyn FnMut(&UploadState) -> Result<(), String>,
    progress: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<String, YouTubeError> {
    upload_video_with(
        client,
        endpoints,
        access_token,
        meta,
        file,
        state,
        persist,
        progress,
        &UploadOptions::from_env(),
    )
}

/// Uploads `file` as a YouTube video with `meta` (the protocol is in the module's docs) and
/// returns its id.
///
/// `state` is where the upload stands: [`UploadState::default`] for a new upload, or what
/// `persist` last saved — from this process or a killed one. `persist` is called after every
/// change (session started, bytes acknowledged, session expired, finished); an `Err` stops the
/// upload ([`YouTubeError::Persist`]). `progress(sent, total)` is called as bytes are
/// acknowledged; `false` stops it ([`YouTubeError::Cancelled`]). A state whose `sha256` is not
/// the file's is refused ([`YouTubeError::FileChanged`]); a state with a `video_id` returns it
/// without sending anything.
#[allow(clippy::too_many_arguments)]
pub fn upload_video_with(
    client: &Client,
    endpoints: &Endpoints,
    access_token: &str,
    meta: &VideoMeta,
    file: &Path,
    state: &mut UploadState,
    persist: &mut dyn FnMut(&UploadState) -> Result<(), String>,
    progress: &mut dyn FnMut(u64, u64) -> bool,
    options: &UploadOptions,
) -> Result<String, YouTubeError> {
    if let Some(id) = &state.video_id {
        return Ok(id.clone());
    }
    let body = meta.body()?;
    let (sha, total) = file_sha256(file)?;
    if total == 0 {
        return Err(YouTubeError::Invalid(format!(
            "{} is empty: there is no video to upload",
            file.display()
        )));
    }
    if !state.sha256.is_empty()
        && (state.sha256 != sha || (state.total != 0 && state.total != total))
    {
        return Err(YouTubeError::FileChanged {
            path: file.display().to_string(),
            expected: state.sha256.clone(),
            actual: sha,
        });
    }
    state.sha256 = sha;
    state.total = total;

    let mut up = Uploader {
        client,
        endpoints,
        auth: format!("Bearer {access_token}"),
        content_type: video_content_type(file),
        meta,
        body,
        file,
        total,
        chunk: options.chunk_bytes(),
        opts: options,
        failures: 0,
        restarts: 0,
        last_failure: String::new(),
    };
    up.run(state, persist, progress)
}

struct Uploader<'a> {
    client: &'a Client,
    endpoints: &'a Endpoints,
    auth: String,
    content_type: &'static str,
    meta: &'a VideoMeta,
    body: serde_json::Value,
    file: &'a Path,
    total: u64,
    chunk: u64,
    opts: &'a UploadOptions,
    failures: u32,
    restarts: u32,
    last_failure: String,
}

/// What became of one request.
enum Step {
    /// YouTube holds this many bytes.
    At(u64),
    /// The upload is finished: the video id.
    Done(String),
    /// The session is gone (404/410).
    Expired,
    /// No useful answer (lost connection, transient status): pause and ask again.
    Retry(String),
}

impl Uploader<'_> {
    fn run(
        &mut self,
        state: &mut UploadState,
        persist: &mut dyn FnMut(&UploadState) -> Result<(), String>,
        progress: &mut dyn FnMut(u64, u64) -> bool,
    ) -> Result<String, YouTubeError> {
        let save =
            |s: &UploadState, persist: &mut dyn FnMut(&UploadState) -> Result<(), String>| {
                persist(s).map_err(YouTubeError::Persist)
            };
        let mut file = File::open(self.file).map_err(|e| file_err(self.file, e))?;
        // Whether YouTube's offset must be asked before sending (a persisted session, a failure).
        let mut ask = state.session_uri.is_some();
        loop {
            let Some(uri) = state.session_uri.clone() else {
                match self.start()? {
                    Ok(uri) => {
                        state.session_uri = Some(uri);
                        state.offset = 0;
                        save(state, persist)?;
                        ask = false;
                    }
                    Err(why) => self.pause(why)?,
                }
                continue;
            };
            let step = if ask {
                self.query(&uri)?
            } else {
                self.send_chunk(&uri, &mut file, state.offset)?
            };
            match step {
                Step::At(n) => {
                    if n > self.total {
                        return Err(YouTubeError::Protocol(format!(
                            "YouTube says it holds {n} bytes of a {}-byte file",
                            self.total
                        )));
                    }
                    if n > state.offset {
                        // Bytes were acknowledged: the failures so far are behind us.
                        self.failures = 0;
                    }
                    state.offset = n;
                    save(state, persist)?;
                    ask = false;
                    if !progress(n, self.total) {
                        return Err(YouTubeError::Cancelled);
                    }
                    if n == self.total {
                        // Everything is there but no 201 was seen: ask for the video.
                        ask = true;
                        self.pause("all bytes acknowledged without the video".into())?;
                    }
                }
                Step::Done(id) => {
                    state.offset = self.total;
                    state.video_id = Some(id.clone());
                    save(state, persist)?;
                    progress(self.total, self.total);
                    return Ok(id);
                }
                Step::Expired => {
                    self.restarts += 1;
                    if self.restarts > self.opts.max_restarts {
                        return Err(YouTubeError::Unavailable {
                            attempts: self.restarts,
                            last: "every upload session expired".into(),
                        });
                    }
                    state.session_uri = None;
                    state.offset = 0;
                    save(state, persist)?;
                    ask = false;
                }
                Step::Retry(why) => {
                    ask = true;
                    self.pause(why)?;
                }
            }
        }
    }

    /// One more failure in a row: pause, or give up when there were too many.
    fn pause(&mut self, why: String) -> Result<(), YouTubeError> {
        self.last_failure = why;
        if self.failures + 1 >= self.opts.max_attempts {
            return Err(YouTubeError::Unavailable {
                attempts: self.failures + 1,
                last: self.last_failure.clone(),
            });
        }
        std::thread::sleep(self.client.backoff(self.failures));
        self.failures += 1;
        Ok(())
    }

    /// Starts a session: `Ok(Ok(uri))`, `Ok(Err(why))` to retry, `Err` to stop.
    fn start(&mut self) -> Result<Result<String, String>, YouTubeError> {
        let url = format!(
            "{}/upload/youtube/v3/videos?{}",
            self.endpoints.youtube_api,
            http::query(&[("uploadType", "resumable"), ("part", &self.meta.parts())])
        );
        let total = self.total.to_string();
        let headers = [
            ("Authorization", self.auth.as_str()),
            ("X-Upload-Content-Length", total.as_str()),
            ("X-Upload-Content-Type", self.content_type),
        ];
        match self
            .client
            .send("POST", &url, &headers, Body::Json(self.body.clone()))
        {
            Err(e) => Ok(Err(e.to_string())),
            Ok(r) if r.ok() => match r.header("location") {
                Some(loc) if !loc.trim().is_empty() => {
                    let loc = loc.trim();
                    Ok(Ok(if loc.starts_with('/') {
                        format!("{}{loc}", self.endpoints.youtube_api)
                    } else {
                        loc.to_string()
                    }))
                }
                _ => Err(YouTubeError::Protocol(format!(
                    "the upload session started ({}) without a Location",
                    r.status
                ))),
            },
            Ok(r) if http::transient(r.status) => Ok(Err(format!("HTTP {}", r.status))),
            Ok(r) => Err(classify(&r)),
        }
    }

    /// Reads an answer to a PUT on the session.
    fn step(&self, r: Result<Response, http::HttpError>) -> Result<Step, YouTubeError> {
        let r = match r {
            Err(e) => return Ok(Step::Retry(e.to_string())),
            Ok(r) => r,
        };
        match r.status {
            200 | 201 => Ok(Step::Done(video_id_of(&r)?)),
            308 => Ok(Step::At(range_end(&r).unwrap_or(0))),
            404 | 410 => Ok(Step::Expired),
            s if http::transient(s) => Ok(Step::Retry(format!("HTTP {s}"))),
            _ => Err(classify(&r)),
        }
    }

    /// `PUT` empty, `Content-Range: bytes */TOTAL`: where the session stands.
    fn query(&self, uri: &str) -> Result<Step, YouTubeError> {
        let range = format!("bytes */{}", self.total);
        let r = self.client.send(
            "PUT",
            uri,
            &[
                ("Authorization", self.auth.as_str()),
                ("Content-Range", range.as_str()),
            ],
            Body::Empty,
        );
        self.step(r)
    }

    /// `PUT` the chunk that starts at `offset`.
    fn send_chunk(&self, uri: &str, file: &mut File, offset: u64) -> Result<Step, YouTubeError> {
        let len = self.chunk.min(self.total - offset);
        let mut data = vec![0u8; len as usize];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut data))
            .map_err(|e| file_err(self.file, e))?;
        let range = format!("bytes {}-{}/{}", offset, offset + len - 1, self.total);
        let r = self.client.send(
            "PUT",
            uri,
            &[
                ("Authorization", self.auth.as_str()),
                ("Content-Range", range.as_str()),
            ],
            Body::Bytes {
                content_type: self.content_type.into(),
                data,
            },
        );
        self.step(r)
    }
}

/// Sends a small request, retrying lost connections and transient statuses a few times.
fn send_retrying(
    client: &Client,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> Result<Response, YouTubeError> {
    const ATTEMPTS: u32 = 5;
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(client.backoff(attempt - 1));
        }
        match client.send(method, url, headers, body.clone()) {
            Err(e) => last = e.to_string(),
            Ok(r) if http::transient(r.status) => last = format!("HTTP {}", r.status),
            Ok(r) if r.ok() => return Ok(r),
            Ok(r) => return Err(classify(&r)),
        }
    }
    Err(YouTubeError::Unavailable {
        attempts: ATTEMPTS,
        last,
    })
}

/// The image type of a thumbnail, from its first bytes (PNG or JPEG).
fn image_type(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else {
        None
    }
}

/// Sets a video's custom thumbnail (`thumbnails.set`, [`THUMBNAILS_SET`] units): a PNG or JPEG
/// of at most [`THUMBNAIL_MAX_BYTES`]; a larger or other file is refused before anything is sent.
pub fn set_thumbnail(
    client: &Client,
    endpoints: &Endpoints,
    access_token: &str,
    video_id: &str,
    file: &Path,
) -> Result<(), YouTubeError> {
    let size = std::fs::metadata(file)
        .map_err(|e| file_err(file, e))?
        .len();
    if size > THUMBNAIL_MAX_BYTES {
        return Err(YouTubeError::Invalid(format!(
            "thumbnail {} is {size} bytes; YouTube takes at most {THUMBNAIL_MAX_BYTES} (50 MB)",
            file.display()
        )));
    }
    let data = std::fs::read(file).map_err(|e| file_err(file, e))?;
    let Some(ct) = image_type(&data) else {
        return Err(YouTubeError::Invalid(format!(
            "thumbnail {} is not a PNG or JPEG image",
            file.display()
        )));
    };
    let url = format!(
        "{}/upload/youtube/v3/thumbnails/set?{}",
        endpoints.youtube_api,
        http::query(&[("videoId", video_id), ("uploadType", "media")])
    );
    let auth = format!("Bearer {access_token}");
    send_retrying(
        client,
        "POST",
        &url,
        &[("Authorization", &auth)],
        Body::Bytes {
            content_type: ct.into(),
            data,
        },
    )?;
    Ok(())
}

/// A `multipart/related` body: a JSON part and a media part, with a boundary found in neither.
pub fn multipart_related(
    json: &serde_json::Value,
    media_type: &str,
    media: &[u8],
) -> (String, Vec<u8>) {
    let json = json.to_string();
    let mut n = 0u32;
    let boundary = loop {
        let b = format!(
            "reelsmith_{}",
            &hex::encode(Sha256::digest(format!("{n}{}", media.len())))[..24]
        );
        let needle = format!("--{b}");
        let clash =
            json.contains(&needle) || media.windows(needle.len()).any(|w| w == needle.as_bytes());
        if !clash {
            break b;
        }
        n += 1;
    };
    let mut body = Vec::with_capacity(media.len() + json.len() + 256);
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json}\r\n--{boundary}\r\nContent-Type: {media_type}\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(media);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/related; boundary={boundary}"), body)
}

/// Uploads a caption track (`captions.insert`, [`CAPTIONS_INSERT`] units) for `video_id`:
/// a SubRip (`.srt`) or WebVTT (`.vtt`) file, published (not a draft), in `language` (BCP-47)
/// and shown as `name`. Returns the caption track's id.
#[allow(clippy::too_many_arguments)]
pub fn insert_caption(
    client: &Client,
    endpoints: &Endpoints,
    access_token: &str,
    video_id: &str,
    language: &str,
    name: &str,
    file: &Path,
) -> Result<String, YouTubeError> {
    let size = std::fs::metadata(file)
        .map_err(|e| file_err(file, e))?
        .len();
    if size > CAPTION_MAX_BYTES {
        return Err(YouTubeError::Invalid(format!(
            "caption file {} is {size} bytes; YouTube takes at most {CAPTION_MAX_BYTES} (100 MB)",
            file.display()
        )));
    }
    if !is_language(language.trim()) {
        return Err(YouTubeError::Invalid(format!(
            "caption language {language:?} is not a language code"
        )));
    }
    let data = std::fs::read(file).map_err(|e| file_err(file, e))?;
    let text = std::str::from_utf8(&data).map_err(|_| {
        YouTubeError::Invalid(format!("caption file {} is not UTF-8 text", file.display()))
    })?;
    if !text.contains("-->") {
        return Err(YouTubeError::Invalid(format!(
            "caption file {} is not SubRip or WebVTT (no cue times)",
            file.display()
        )));
    }
    let snippet = serde_json::json!({
        "snippet": {
            "videoId": video_id,
            "language": language.trim(),
            "name": name,
            "isDraft": false,
        }
    });
    let (ct, body) = multipart_related(&snippet, "application/octet-stream", &data);
    let url = format!(
        "{}/upload/youtube/v3/captions?{}",
        endpoints.youtube_api,
        http::query(&[("uploadType", "multipart"), ("part", "snippet")])
    );
    let auth = format!("Bearer {access_token}");
    let r = send_retrying(
        client,
        "POST",
        &url,
        &[("Authorization", &auth)],
        Body::Bytes {
            content_type: ct,
            data: body,
        },
    )?;
    r.json()["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| YouTubeError::Protocol("captions.insert answered without an id".into()))
}

/// Where YouTube's processing of an uploaded video stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessingStatus {
    Processing,
    Succeeded,
    Failed,
    Terminated,
}

/// A video's processing and status, from `videos.list` ([`VIDEOS_LIST`] unit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processing {
    pub status: ProcessingStatus,
    /// `processingDetails.processingFailureReason` (`uploadFailed`, `transcodeFailed`,
    /// `streamingFailed`, `other`), or `status.failureReason` / `rejectionReason`.
    pub failure_reason: Option<String>,
    /// `status.uploadStatus`: `uploaded`, `processed`, `failed`, `rejected`, `deleted`.
    pub upload_status: String,
    /// `status.privacyStatus`.
    pub privacy: String,
}

/// Asks how the processing of `video_id` goes (`GET /youtube/v3/videos?part=status,processingDetails`).
/// A video YouTube does not list (deleted, not this account's) is
/// [`YouTubeError::Rejected`] with status 404 and reason `videoNotFound`.
pub fn processing(
    client: &Client,
    endpoints: &Endpoints,
    access_token: &str,
    video_id: &str,
) -> Result<Processing, YouTubeError> {
    let url = format!(
        "{}/youtube/v3/videos?{}",
        endpoints.youtube_api,
        http::query(&[("part", "status,processingDetails"), ("id", video_id)])
    );
    let auth = format!("Bearer {access_token}");
    let r = send_retrying(
        client,
        "GET",
        &url,
        &[("Authorization", &auth)],
        Body::Empty,
    )?;
    let j = r.json();
    let Some(v) = j["items"].as_array().and_then(|a| a.first()) else {
        return Err(YouTubeError::Rejected {
            status: 404,
            reason: "videoNotFound".into(),
            message: format!("YouTube lists no video {video_id}"),
            hint: hint(404, "videoNotFound"),
        });
    };
    let upload_status = v["status"]["uploadStatus"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let pd = &v["processingDetails"];
    let status = match pd["processingStatus"].as_str() {
        Some("succeeded") => ProcessingStatus::Succeeded,
        Some("failed") => ProcessingStatus::Failed,
        Some("terminated") => ProcessingStatus::Terminated,
        Some(_) => ProcessingStatus::Processing,
        None => match upload_status.as_str() {
            "processed" => ProcessingStatus::Succeeded,
            "failed" | "rejected" | "deleted" => ProcessingStatus::Failed,
            _ => ProcessingStatus::Processing,
        },
    };
    let failure_reason = pd["processingFailureReason"]
        .as_str()
        .or_else(|| v["status"]["failureReason"].as_str())
        .or_else(|| v["status"]["rejectionReason"].as_str())
        .map(str::to_string);
    Ok(Processing {
        status,
        failure_reason,
        upload_status,
        privacy: v["status"]["privacyStatus"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    })
}

/// Adds `video_id` to `playlist_id` (`playlistItems.insert`, [`PLAYLIST_ITEMS_INSERT`] units);
/// returns the playlist item's id.
pub fn add_to_playlist(
    client: &Client,
    endpoints: &Endpoints,
    access_token: &str,
    playlist_id: &str,
    video_id: &str,
) -> Result<String, YouTubeError> {
    let url = format!(
        "{}/youtube/v3/playlistItems?part=snippet",
        endpoints.youtube_api
    );
    let auth = format!("Bearer {access_token}");
    let body = serde_json::json!({
        "snippet": {
            "playlistId": playlist_id,
            "resourceId": { "kind": "youtube#video", "videoId": video_id },
        }
    });
    let r = send_retrying(
        client,
        "POST",
        &url,
        &[("Authorization", &auth)],
        Body::Json(body),
    )?;
    r.json()["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| YouTubeError::Protocol("playlistItems.insert answered without an id".into()))
}

/// Whether YouTube makes a video a Short: square or taller, and at most 3 minutes.
pub fn is_short(width: u32, height: u32, seconds: f64) -> bool {
    width > 0 && height >= width && seconds > 0.0 && seconds <= SHORT_MAX_SECONDS
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of a day since 1970-01-01.
fn year_of(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(m <= 2)
}

/// The day (since 1970-01-01) of the `n`th Sunday of a month.
fn nth_sunday(y: i64, m: i64, n: i64) -> i64 {
    let first = days_from_civil(y, m, 1);
    // 1970-01-01 was a Thursday: weekday 0 = Sunday.
    let wd = (first + 4).rem_euclid(7);
    first + (7 - wd) % 7 + 7 * (n - 1)
}

/// Pacific Time's offset from UTC at a UTC instant, by the US rule (since 2007): daylight time
/// (UTC−7) from 02:00 PST on the second Sunday of March (10:00 UTC) to 02:00 PDT on the first
/// Sunday of November (09:00 UTC), standard time (UTC−8) otherwise.
pub fn pacific_offset_ms(utc_ms: i64) -> i64 {
    let y = year_of(utc_ms.div_euclid(DAY_MS));
    let start = nth_sunday(y, 3, 2) * DAY_MS + 10 * HOUR_MS;
    let end = nth_sunday(y, 11, 1) * DAY_MS + 9 * HOUR_MS;
    if (start..end).contains(&utc_ms) {
        -7 * HOUR_MS
    } else {
        -8 * HOUR_MS
    }
}

/// The next midnight Pacific Time after `now_utc_ms`, in UTC milliseconds: when YouTube's daily
/// quotas reset.
pub fn next_quota_reset(now_utc_ms: i64) -> i64 {
    let local = now_utc_ms + pacific_offset_ms(now_utc_ms);
    let midnight = (local.div_euclid(DAY_MS) + 1) * DAY_MS;
    // Midnight is never in a transition (they happen at 2 a.m.): one offset fits.
    let daylight = midnight + 7 * HOUR_MS;
    if pacific_offset_ms(daylight) == -7 * HOUR_MS {
        daylight
    } else {
        midnight + 8 * HOUR_MS
    }
}

/// Milliseconds from `now_utc_ms` until YouTube's daily quotas reset (midnight Pacific Time):
/// between 1 ms and 25 hours.
pub fn quota_reset_after(now_utc_ms: i64) -> i64 {
    next_quota_reset(now_utc_ms) - now_utc_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> VideoMeta {
        VideoMeta {
            title: "A <b> title".into(),
            description: "line\r\nline".into(),
            tags: vec!["one".into(), "One".into(), "two words".into()],
            ..VideoMeta::default()
        }
    }

    #[test]
    fn bodies_always_carry_privacy_and_the_declarations() {
        let b = meta().body().unwrap();
        assert_eq!(b["snippet"]["title"], "A \u{2039}b\u{203A} title");
        assert_eq!(b["snippet"]["description"], "line\nline");
        assert_eq!(
            b["snippet"]["tags"],
            serde_json::json!(["one", "two words"])
        );
        assert_eq!(b["snippet"]["categoryId"], "22");
        assert!(b["snippet"].get("defaultLanguage").is_none());
        assert_eq!(b["status"]["privacyStatus"], "private");
        assert_eq!(b["status"]["containsSyntheticMedia"], false);
        assert_eq!(b["status"]["selfDeclaredMadeForKids"], false);
        assert!(b["status"].get("publishAt").is_none());
        assert!(b.get("localizations").is_none());
        assert_eq!(meta().parts(), "snippet,status");

        let m = VideoMeta {
            privacy: Privacy::Public,
            synthetic: true,
            made_for_kids: true,
            ..meta()
        };
        let b = m.body().unwrap();
        assert_eq!(b["status"]["privacyStatus"], "public");
        assert_eq!(b["status"]["containsSyntheticMedia"], true);
        assert_eq!(b["status"]["selfDeclaredMadeForKids"], true);
    }

    #[test]
    fn publish_at_only_with_private_and_well_formed() {
        let mut m = meta();
        m.publish_at = Some("2030-01-02T03:04:05Z".into());
        assert_eq!(
            m.body().unwrap()["status"]["publishAt"],
            "2030-01-02T03:04:05Z"
        );
        m.publish_at = Some("2030-01-02T03:04:05.250+01:00".into());
        assert!(m.body().is_ok());
        for bad in [
            "tomorrow",
            "2030-13-02T03:04:05Z",
            "2030-01-02 03:04:05Z",
            "2030-01-02T03:04:05",
        ] {
            m.publish_at = Some(bad.into());
            assert!(matches!(m.body(), Err(YouTubeError::Invalid(_))), "{bad}");
        }
        m.publish_at = Some("2030-01-02T03:04:05Z".into());
        for p in [Privacy::Public, Privacy::Unlisted] {
            m.privacy = p;
            let e = m.body().unwrap_err();
            assert!(e.to_string().contains("needs privacy private"), "{e}");
        }
    }

    #[test]
    fn localizations_need_a_default_language_and_fit_the_limits() {
        let mut m = meta();
        m.localizations
            .insert("ja".into(), ("日本語".repeat(50), "<説明>".into()));
        let e = m.body().unwrap_err();
        assert!(e.to_string().contains("default language"), "{e}");
        m.default_language = "en".into();
        let b = m.body().unwrap();
        assert_eq!(b["snippet"]["defaultLanguage"], "en");
        assert_eq!(
            b["localizations"]["ja"]["title"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            100
        );
        assert_eq!(
            b["localizations"]["ja"]["description"],
            "\u{2039}説明\u{203A}"
        );
        assert_eq!(m.parts(), "snippet,status,localizations");
        m.localizations
            .insert("fr".into(), (" ".into(), String::new()));
        assert!(m.body().is_err());
        m.localizations.remove("fr");
        m.localizations
            .insert("not a code".into(), ("t".into(), String::new()));
        assert!(m.body().is_err());
    }

    #[test]
    fn an_empty_title_is_refused() {
        let m = VideoMeta {
            title: " \n".into(),
            ..meta()
        };
        assert!(matches!(m.body(), Err(YouTubeError::Invalid(_))));
    }

    #[test]
    fn errors_are_read_from_youtubes_json() {
        let resp = |status: u16, body: &str| Response {
            status,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        };
        let r = resp(
            403,
            r#"{"error":{"code":403,"message":"The request cannot be completed because you have exceeded your quota.","errors":[{"reason":"quotaExceeded","domain":"youtube.quota","message":"…"}]}}"#,
        );
        assert!(
            matches!(classify(&r), YouTubeError::Quota { reason, .. } if reason == "quotaExceeded")
        );
        let r = resp(
            400,
            r#"{"error":{"code":400,"message":"The user has exceeded the number of videos they may upload.","errors":[{"reason":"uploadLimitExceeded","domain":"youtube.video"}]}}"#,
        );
        assert!(
            matches!(classify(&r), YouTubeError::Quota { reason, .. } if reason == "uploadLimitExceeded")
        );
        let r = resp(
            400,
            r#"{"error":{"code":400,"message":"The request metadata specifies an invalid video title.","errors":[{"reason":"invalidTitle"}]}}"#,
        );
        match classify(&r) {
            YouTubeError::Rejected {
                status,
                reason,
                message,
                hint,
            } => {
                assert_eq!((status, reason.as_str()), (400, "invalidTitle"));
                assert!(message.contains("invalid video title"));
                assert!(hint.contains("title"));
            }
            e => panic!("{e:?}"),
        }
        let r = resp(
            403,
            r#"{"error":{"code":403,"message":"Insufficient Permission","errors":[{"reason":"insufficientPermissions"}]}}"#,
        );
        assert!(classify(&r).to_string().contains("scopes"));
        assert_eq!(classify(&resp(401, "")), YouTubeError::Unauthorized);
        let (reason, message) = api_error(&resp(502, "<html>bad gateway</html>"));
        assert_eq!(
            (reason.as_str(), message.as_str()),
            ("", "<html>bad gateway</html>")
        );
    }

    #[test]
    fn shorts_are_square_or_taller_and_at_most_three_minutes() {
        assert!(is_short(1080, 1920, 59.0));
        assert!(is_short(1080, 1080, 180.0));
        assert!(!is_short(1080, 1920, 180.5));
        assert!(!is_short(1920, 1080, 30.0));
        assert!(!is_short(1081, 1080, 30.0));
        assert!(!is_short(0, 0, 10.0));
    }

    /// UTC milliseconds of a civil UTC time.
    fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64) -> i64 {
        days_from_civil(y, mo, d) * DAY_MS + h * HOUR_MS + mi * 60_000
    }

    #[test]
    fn quotas_reset_at_midnight_pacific_time_across_dst() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(year_of(days_from_civil(2024, 2, 29)), 2024);
        assert_eq!(year_of(days_from_civil(2023, 12, 31)), 2023);
        assert_eq!(year_of(-1), 1969);
        // DST 2025: 9 March to 2 November; 2024: 10 March to 3 November.
        assert_eq!(nth_sunday(2025, 3, 2), days_from_civil(2025, 3, 9));
        assert_eq!(nth_sunday(2025, 11, 1), days_from_civil(2025, 11, 2));
        assert_eq!(nth_sunday(2024, 3, 2), days_from_civil(2024, 3, 10));
        assert_eq!(nth_sunday(2024, 11, 1), days_from_civil(2024, 11, 3));
        assert_eq!(nth_sunday(2026, 11, 1), days_from_civil(2026, 11, 1));

        // Winter: midnight PST is 08:00 UTC.
        let now = utc(2025, 1, 15, 12, 0);
        assert_eq!(next_quota_reset(now), utc(2025, 1, 16, 8, 0));
        // Summer: midnight PDT is 07:00 UTC.
        let now = utc(2025, 7, 1, 6, 59);
        assert_eq!(next_quota_reset(now), utc(2025, 7, 1, 7, 0));
        assert_eq!(quota_reset_after(now), 60_000);
        assert_eq!(
            next_quota_reset(utc(2025, 7, 1, 7, 0)),
            utc(2025, 7, 2, 7, 0)
        );
        // Spring forward (Sun 9 March 2025): at 01:00 PST on the 9th (09:00 UTC) the next
        // midnight is 10 March 00:00 PDT = 07:00 UTC — a 23-hour day.
        let now = utc(2025, 3, 9, 8, 0); // 00:00 PST exactly
        assert_eq!(next_quota_reset(now), utc(2025, 3, 10, 7, 0));
        assert_eq!(quota_reset_after(now), 23 * HOUR_MS);
        assert_eq!(pacific_offset_ms(utc(2025, 3, 9, 9, 59)), -8 * HOUR_MS);
        assert_eq!(pacific_offset_ms(utc(2025, 3, 9, 10, 0)), -7 * HOUR_MS);
        // The evening before: 8 March 23:30 PST → 9 March 00:00 PST = 08:00 UTC.
        assert_eq!(
            next_quota_reset(utc(2025, 3, 9, 7, 30)),
            utc(2025, 3, 9, 8, 0)
        );
        // Fall back (Sun 2 November 2025): 00:00 PDT on the 2nd is 07:00 UTC; the next
        // midnight, 3 November 00:00 PST, is 08:00 UTC — a 25-hour day.
        let now = utc(2025, 11, 2, 7, 0);
        assert_eq!(quota_reset_after(now), 25 * HOUR_MS);
        assert_eq!(pacific_offset_ms(utc(2025, 11, 2, 8, 59)), -7 * HOUR_MS);
        assert_eq!(pacific_offset_ms(utc(2025, 11, 2, 9, 0)), -8 * HOUR_MS);
        // New Year's Eve across the UTC year boundary: 31 Dec 20:00 PST is 1 Jan 04:00 UTC.
        assert_eq!(
            next_quota_reset(utc(2026, 1, 1, 4, 0)),
            utc(2026, 1, 1, 8, 0)
        );
        for h in 0..(24 * 400) {
            let now = utc(2024, 1, 1, 0, 0) + h * HOUR_MS + 1234;
            let d = quota_reset_after(now);
            assert!(d > 0 && d <= 25 * HOUR_MS, "{h}: {d}");
        }
    }

    #[test]
    fn rfc3339_and_language_checks() {
        assert!(is_rfc3339("2025-06-01T18:00:00Z"));
        assert!(is_rfc3339("2025-06-01T18:00:00-07:00"));
        assert!(!is_rfc3339("2025-06-01T18:00Z"));
        assert!(!is_rfc3339("2025-06-01T18:00:00+0700"));
        assert!(is_language("en") && is_language("pt-BR") && is_language("zh-Hans"));
        assert!(!is_language("") && !is_language("e n") && !is_language("-en"));
    }

    #[test]
    fn multipart_bodies_have_a_boundary_found_in_neither_part() {
        let (ct, body) = multipart_related(
            &serde_json::json!({"a": 1}),
            "application/octet-stream",
            b"1\n00:00:01,000 --> 00:00:02,000\nhi\n",
        );
        let b = ct.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{b}\r\nContent-Type: application/json")));
        assert!(text.ends_with(&format!("\r\n--{b}--\r\n")));
        assert_eq!(text.matches(&format!("--{b}")).count(), 3);
    }
}
