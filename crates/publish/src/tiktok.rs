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
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    #[error("TikTok limit reached ({code}): {message} — trying again in {}", fmt_wait(*retry_after))]
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

fn fmt_wait(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{} h {} min", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{} min", s.div_ceil(60))
    } else {
        format!("{s} s")
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

/// What `creator_info/query` says about the creator right now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatorInfo {
    pub creator_username: String,
    pub creator_nickname: String,
    pub creator_avatar_url: String,
    pub privacy_level_options: Vec<String>,
    pub comment_disabled: bool,
    pub duet_disabled: bool,
    pub stitch_disabled: bool,
    pub max_video_post_duration_sec: u64,
}

/// How a file is cut into chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlan {
    /// The file's size (`video_size`).
    pub total: u64,
    /// `chunk_size`: every chunk's size but the last's.
    pub chunk_size: u64,
    /// `total_chunk_count` = `total / chunk_size`, rounded down.
    pub count: u64,
}

impl ChunkPlan {
    /// Chunk `i`'s bytes, `start..end` (the last chunk runs to the end of the file).
    pub fn range(&self, i: u64) -> (u64, u64) {
        let start = i * self.chunk_size;
        let end = if i + 1 >= self.count {
            self.total
        } else {
            start + self.chunk_size
        };
        (start, end)
    }

    /// Chunk `i`'s `Content-Range` value: `bytes FIRST-LAST/TOTAL`, LAST inclusive.
    pub fn content_range(&self, i: u64) -> String {
        let (a, b) = self.range(i);
        format!("bytes {a}-{}/{}", b - 1, self.total)
    }
}

/// The chunks of a `total`-byte file under TikTok's rules: one chunk of the whole file under
/// [`MIN_CHUNK`] (and under [`PREFERRED_CHUNK`]), else chunks of [`PREFERRED_CHUNK`] bytes, or
/// larger ones when that would make more than [`MAX_CHUNKS`]; the last chunk takes the
/// remainder (less than two chunks). None for an empty file or one too large for 1000 chunks of
/// [`MAX_CHUNK`] (TikTok takes videos of up to 4 GB anyway).
pub fn chunk_plan(total: u64) -> Option<ChunkPlan> {
    if total == 0 {
        return None;
    }
    let whole = ChunkPlan {
        total,
        chunk_size: total,
        count: 1,
    };
    if total < PREFERRED_CHUNK {
        // Under 5 MB it must go whole; up to 10 MB one chunk of 5 to 10 MB is as good.
        return Some(whole);
    }
    let mut chunk = PREFERRED_CHUNK;
    if total / chunk > MAX_CHUNKS {
        chunk = total.div_ceil(MAX_CHUNKS);
    }
    if chunk > MAX_CHUNK {
        return None;
    }
    let plan = ChunkPlan {
        total,
        chunk_size: chunk,
        count: total / chunk,
    };
    let (a, b) = plan.range(plan.count - 1);
    (b - a <= MAX_LAST_CHUNK).then_some(plan)
}

/// Where a [`upload`] stands; persist it (it is serde) and hand it back to resume.
/// `UploadState::default()` starts a new upload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    /// TikTok's id of the post being uploaded, for [`status`].
    pub publish_id: Option<String>,
    /// Where the chunks go, exactly as TikTok returned it.
    pub upload_url: Option<String>,
    /// When the upload URL was issued (ms since the Unix epoch); it is valid for an hour.
    pub url_created_ms: u64,
    pub chunk_size: u64,
    pub total: u64,
    /// The first chunk TikTok has not acknowledged.
    pub next_chunk: u64,
    /// The file's sha256 (hex) when the upload began.
    pub sha256: String,
    /// TikTok has the whole file.
    pub done: bool,
    #[serde(default)]
    pub mode: PostMode,
}

/// The creator's current posting options (`POST /v2/post/publish/creator_info/query/`).
pub fn creator_info(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
) -> Result<CreatorInfo, TikTokError> {
    let data = call(
        client,
        endpoints,
        token,
        "/v2/post/publish/creator_info/query/",
        json!({}),
    )?;
    let s = |k: &str| data[k].as_str().unwrap_or_default().to_string();
    let b = |k: &str| data[k].as_bool().unwrap_or(false);
    Ok(CreatorInfo {
        creator_username: s("creator_username"),
        creator_nickname: s("creator_nickname"),
        creator_avatar_url: s("creator_avatar_url"),
        privacy_level_options: data["privacy_level_options"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        comment_disabled: b("comment_disabled"),
        duet_disabled: b("duet_disabled"),
        stitch_disabled: b("stitch_disabled"),
        max_video_post_duration_sec: data["max_video_post_duration_sec"].as_u64().unwrap_or(0),
    })
}

/// Whether a direct post fits what the creator may do now: the privacy level among the offered
/// ones, branded content not private, the video not longer than the creator's limit.
pub fn check_post(meta: &PostMeta, creator: &CreatorInfo) -> Result<(), TikTokError> {
    if !creator.privacy_level_options.contains(&meta.privacy_level) {
        let offered = creator.privacy_level_options.join(", ");
        let unaudited = creator.privacy_level_options == ["SELF_ONLY"];
        return Err(TikTokError::Rejected {
            code: "privacy_level_option_mismatch".into(),
            message: format!(
                "privacy level {:?} is not offered to @{}; offered now: {}",
                meta.privacy_level,
                creator.creator_username,
                if offered.is_empty() { "none" } else { &offered }
            ),
            hint: if unaudited {
                "choose SELF_ONLY: an unaudited TikTok API client may only post privately until TikTok audits it".into()
            } else {
                format!("choose one of: {offered}")
            },
        });
    }
    if meta.brand_content_toggle && meta.privacy_level == "SELF_ONLY" {
        return Err(TikTokError::Rejected {
            code: "branded_content_private".into(),
            message: "branded content (paid partnership) cannot be posted with SELF_ONLY".into(),
            hint: "choose a public or followers privacy level, or turn the paid partnership off"
                .into(),
        });
    }
    if let Some(d) = meta.duration_s {
        let max = creator.max_video_post_duration_sec;
        if max > 0 && d > max as f64 {
            return Err(TikTokError::Rejected {
                code: "duration_too_long".into(),
                message: format!(
                    "the video lasts {d:.1} s; @{} may post at most {max} s",
                    creator.creator_username
                ),
                hint: "shorten the video, or send it to the inbox instead".into(),
            });
        }
    }
    Ok(())
}

/// Uploads `file` as a post (see the module docs for the protocol), resuming from `state`;
/// returns the `publish_id` to follow with [`status`].
///
/// `persist` is called after the init and after every acknowledged chunk; `progress(sent,
/// total)` before each chunk and at the end, returning false to stop (state saved, `Cancelled`).
#[allow(clippy::too_many_arguments)]
pub fn upload(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    meta: &PostMeta,
    file: &Path,
    state: &mut UploadState,
    persist: &mut dyn FnMut(&UploadState) -> Result<(), String>,
    progress: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<String, TikTokError> {
    let (total, sha256) = digest(file)?;
    if !state.sha256.is_empty() && (state.sha256 != sha256 || state.total != total) {
        return Err(TikTokError::File(format!(
            "{} changed since its TikTok upload began (sha256 {} then, {} now); start a new upload for the new file",
            file.display(),
            short(&state.sha256),
            short(&sha256)
        )));
    }
    if state.done {
        if let Some(id) = &state.publish_id {
            return Ok(id.clone());
        }
    }
    let plan = chunk_plan(total).ok_or_else(|| {
        TikTokError::File(format!(
            "{} has {total} bytes: TikTok takes a non-empty file of at most {} bytes",
            file.display(),
            MAX_CHUNK * MAX_CHUNKS
        ))
    })?;
    let save = |s: &UploadState, persist: &mut dyn FnMut(&UploadState) -> Result<(), String>| {
        persist(s).map_err(TikTokError::Persist)
    };
    // A resumed upload's next chunk may have landed without its answer being saved.
    let mut unsure = state.publish_id.is_some();
    let mut inits = 0;
    let mut failures = 0;
    let mut last_refusal = String::new();
    loop {
        let stale = state.publish_id.is_none()
            || state.upload_url.is_none()
            || state.mode != meta.mode
            || state.chunk_size != plan.chunk_size
            || now_ms().saturating_sub(state.url_created_ms)
                > (UPLOAD_URL_VALIDITY - URL_MARGIN).as_millis() as u64;
        if stale {
            if inits >= MAX_INITS {
                return Err(TikTokError::Transient(format!(
                    "TikTok refused the upload {inits} times in a row ({last_refusal})"
                )));
            }
            inits += 1;
            let (publish_id, upload_url) = init(client, endpoints, token, meta, &plan)?;
            *state = UploadState {
                publish_id: Some(publish_id),
                upload_url: Some(upload_url),
                url_created_ms: now_ms(),
                chunk_size: plan.chunk_size,
                total,
                next_chunk: 0,
                sha256: sha256.clone(),
                done: false,
                mode: meta.mode,
            };
            save(state, persist)?;
            unsure = false;
        }
        let publish_id = state.publish_id.clone().unwrap_or_default();
        if state.next_chunk >= plan.count {
            state.done = true;
            save(state, persist)?;
            progress(total, total);
            return Ok(publish_id);
        }
        let (start, end) = plan.range(state.next_chunk);
        if !progress(start, total) {
            return Err(TikTokError::Cancelled);
        }
        let data = read_range(file, start, end)?;
        let url = state.upload_url.clone().unwrap_or_default();
        let content_range = plan.content_range(state.next_chunk);
        let mime = mime_of(file);
        let answer = client.send(
            "PUT",
            &url,
            &[("Content-Range", &content_range)],
            Body::Bytes {
                content_type: mime.into(),
                data,
            },
        );
        let status = match answer {
            Ok(r) => r.status,
            Err(e) => {
                unsure = true;
                failures += 1;
                if failures >= MAX_FAILURES {
                    return Err(TikTokError::Transient(e.to_string()));
                }
                std::thread::sleep(client.backoff(failures - 1));
                continue;
            }
        };
        match status {
            201 => {
                state.next_chunk = plan.count;
                failures = 0;
            }
            200..=299 => {
                state.next_chunk += 1;
                unsure = false;
                failures = 0;
                save(state, persist)?;
            }
            s if http::transient(s) => {
                unsure = true;
                failures += 1;
                if failures >= MAX_FAILURES {
                    return Err(TikTokError::Transient(format!(
                        "the upload URL answered HTTP {s} {failures} times"
                    )));
                }
                std::thread::sleep(client.backoff(failures - 1));
            }
            400 | 416 if unsure => {
                // Out of order: the chunk whose answer was lost had landed.
                state.next_chunk += 1;
                unsure = false;
                save(state, persist)?;
            }
            s => {
                // Expired or refused upload URL, or an upload out of step: start anew.
                last_refusal = format!("{content_range} answered HTTP {s}");
                state.publish_id = None;
                state.upload_url = None;
            }
        }
    }
}

fn init(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    meta: &PostMeta,
    plan: &ChunkPlan,
) -> Result<(String, String), TikTokError> {
    let source_info = json!({
        "source": "FILE_UPLOAD",
        "video_size": plan.total,
        "chunk_size": plan.chunk_size,
        "total_chunk_count": plan.count,
    });
    let (path, body) = match meta.mode {
        PostMode::Direct => {
            let creator = creator_info(client, endpoints, token)?;
            check_post(meta, &creator)?;
            (
                "/v2/post/publish/video/init/",
                json!({"post_info": meta.post_info(&creator), "source_info": source_info}),
            )
        }
        PostMode::Inbox => (
            "/v2/post/publish/inbox/video/init/",
            json!({ "source_info": source_info }),
        ),
    };
    let data = call(client, endpoints, token, path, body)?;
    let publish_id = data["publish_id"].as_str().unwrap_or_default();
    let upload_url = data["upload_url"].as_str().unwrap_or_default();
    if publish_id.is_empty() || upload_url.is_empty() {
        return Err(TikTokError::Transient(format!(
            "{path} answered without publish_id or upload_url: {data}"
        )));
    }
    Ok((publish_id.to_string(), upload_url.to_string()))
}

/// Where a post stands (`status/fetch`'s `status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PublishStatus {
    /// TikTok is receiving or processing an uploaded file.
    ProcessingUpload,
    /// TikTok is fetching a `PULL_FROM_URL` video.
    ProcessingDownload,
    /// In the creator's inbox, waiting for them to post it (final for an inbox upload).
    SendToUserInbox,
    /// Posted (final for a direct post; a public one may still be in moderation).
    PublishComplete,
    /// Failed: see [`PostStatus::fail_reason`].
    Failed,
    /// A status this client does not know.
    Other(String),
}

impl PublishStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "PROCESSING_UPLOAD" => Self::ProcessingUpload,
            "PROCESSING_DOWNLOAD" => Self::ProcessingDownload,
            "SEND_TO_USER_INBOX" => Self::SendToUserInbox,
            "PUBLISH_COMPLETE" => Self::PublishComplete,
            "FAILED" => Self::Failed,
            other => Self::Other(other.to_string()),
        }
    }

    /// No further change is coming.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::SendToUserInbox | Self::PublishComplete | Self::Failed
        )
    }
}

/// A post's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostStatus {
    pub status: PublishStatus,
    /// Why it failed, in TikTok's words (`file_format_check_failed`, …).
    pub fail_reason: Option<String>,
    /// The public post's id(s), once moderation is done (`publicaly_available_post_id`).
    pub post_ids: Vec<String>,
    /// How much of an uploaded file TikTok has.
    pub uploaded_bytes: Option<u64>,
}

impl PostStatus {
    /// What to do about a failure, when TikTok's reason is one this client knows.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self.fail_reason.as_deref()? {
            "file_format_check_failed" => {
                "TikTok cannot read the file: render MP4 (H.264) or WebM and publish again"
            }
            "duration_check_failed" => {
                "the video is too long or too short for this creator: check creator_info's limit"
            }
            "frame_rate_check_failed" => "TikTok takes 23 to 60 fps: render at 30 fps",
            "picture_size_check_failed" => {
                "TikTok takes 360 to 4096 pixels a side: render at 1080x1920"
            }
            "internal" => "TikTok failed internally: publish again later",
            "publish_cancelled" => "the creator cancelled the post",
            "auth_removed" => "the creator removed reelsmith's access: reconnect the account",
            "spam_risk_too_many_posts" => "the creator's daily cap is reached: publish tomorrow",
            "spam_risk_user_banned_from_posting" => "the account is banned from posting",
            "spam_risk_text" | "spam_risk" => {
                "TikTok took the caption or post for spam: change the caption"
            }
            _ => return None,
        })
    }
}

/// A post's status (`POST /v2/post/publish/status/fetch/`).
pub fn status(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    publish_id: &str,
) -> Result<PostStatus, TikTokError> {
    let data = call(
        client,
        endpoints,
        token,
        "/v2/post/publish/status/fetch/",
        json!({ "publish_id": publish_id }),
    )?;
    Ok(PostStatus {
        status: PublishStatus::parse(data["status"].as_str().unwrap_or_default()),
        fail_reason: data["fail_reason"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from),
        post_ids: data["publicaly_available_post_id"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| {
                        v.as_str()
                            .map(String::from)
                            .or_else(|| v.as_u64().map(|n| n.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        uploaded_bytes: data["uploaded_bytes"].as_u64(),
    })
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
    let fail =
        |e: std::io::Error| TikTokError::File(format!("cannot read {}: {e}", path.display()));
    let mut f = File::open(path).map_err(fail)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(fail)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

fn read_range(path: &Path, start: u64, end: u64) -> Result<Vec<u8>, TikTokError> {
    let fail =
        |e: std::io::Error| TikTokError::File(format!("cannot read {}: {e}", path.display()));
    let mut f = File::open(path).map_err(fail)?;
    f.seek(SeekFrom::Start(start)).map_err(fail)?;
    let mut data = vec![0u8; (end - start) as usize];
    f.read_exact(&mut data).map_err(fail)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_example_plan_and_ranges() {
        let p = chunk_plan(50_000_123).unwrap();
        assert_eq!((p.chunk_size, p.count), (10_000_000, 5));
        assert_eq!(p.content_range(0), "bytes 0-9999999/50000123");
        assert_eq!(p.content_range(4), "bytes 40000000-50000122/50000123");
    }

    #[test]
    fn quota_and_auth_errors_are_told_apart() {
        let r = |status: u16, code: &str| {
            let j = json!({"error": {"code": code, "message": "m", "log_id": "L"}});
            let resp = Response {
                status,
                headers: Default::default(),
                body: j.to_string().into_bytes(),
            };
            api_error(&resp, &j)
        };
        assert_eq!(
            r(403, "spam_risk_too_many_posts").retry_after(),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            r(429, "rate_limit_exceeded").retry_after(),
            Some(Duration::from_secs(60))
        );
        assert!(matches!(
            r(401, "access_token_invalid"),
            TikTokError::Unauthorized { .. }
        ));
        match r(403, "unaudited_client_can_only_post_to_private_accounts") {
            TikTokError::Rejected { hint, message, .. } => {
                assert!(hint.contains("private") && message.contains("log_id L"))
            }
            e => panic!("{e:?}"),
        }
    }
}
