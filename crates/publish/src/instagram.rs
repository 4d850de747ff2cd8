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
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    #[error("Instagram limit reached (code {code}): {message} — trying again in {}", fmt_wait(*retry_after))]
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

/// `GET /{version}/{ig-user-id}/content_publishing_limit?fields=quota_usage,config`.
pub fn publishing_limit(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    ig_user_id: &str,
) -> Result<PublishingLimit, InstagramError> {
    let url = format!(
        "{}/{GRAPH_VERSION}/{ig_user_id}/content_publishing_limit?fields=quota_usage,config",
        endpoints.instagram_api
    );
    let j = graph(client, "GET", &url, token, None, true)?;
    let d = &j["data"][0];
    let n = |v: &Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    Ok(PublishingLimit {
        used: n(&d["quota_usage"]).unwrap_or(0),
        // The documented limit when the answer leaves it out.
        limit: n(&d["config"]["quota_total"]).unwrap_or(100),
        window_s: n(&d["config"]["quota_duration"]).unwrap_or(86400),
    })
}

/// A container's `status_code`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerStatus {
    InProgress,
    Finished,
    Error,
    Expired,
    Published,
    Other(String),
}

impl ContainerStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "IN_PROGRESS" => Self::InProgress,
            "FINISHED" => Self::Finished,
            "ERROR" => Self::Error,
            "EXPIRED" => Self::Expired,
            "PUBLISHED" => Self::Published,
            other => Self::Other(other.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Finished => "FINISHED",
            Self::Error => "ERROR",
            Self::Expired => "EXPIRED",
            Self::Published => "PUBLISHED",
            Self::Other(s) => s,
        }
    }
}

/// A container's state: its `status_code` and Meta's `status` text (the reason of an `ERROR`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    pub status_code: ContainerStatus,
    pub status: Option<String>,
}

impl ContainerState {
    fn failure(&self, container_id: &str) -> Option<InstagramError> {
        let hint = match self.status_code {
            ContainerStatus::Error => {
                "check the video against the Reels specifications (MP4/MOV, H.264 or HEVC, 3 s to 15 min, 9:16 recommended) and publish again"
            }
            ContainerStatus::Expired => {
                "the container was not published within 24 hours: publish again (a new container is made)"
            }
            _ => return None,
        };
        Some(InstagramError::ContainerFailed {
            container_id: container_id.into(),
            status_code: self.status_code.as_str().into(),
            status: self
                .status
                .clone()
                .unwrap_or_else(|| self.status_code.as_str().into()),
            hint: hint.into(),
        })
    }
}

/// `GET /{version}/{container-id}?fields=status_code,status`.
pub fn container_status(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    container_id: &str,
) -> Result<ContainerState, InstagramError> {
    let url = format!(
        "{}/{GRAPH_VERSION}/{container_id}?fields=status_code,status",
        endpoints.instagram_api
    );
    let j = graph(client, "GET", &url, token, None, true)?;
    Ok(ContainerState {
        status_code: ContainerStatus::parse(j["status_code"].as_str().unwrap_or_default()),
        status: j["status"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from),
    })
}

/// Polls a container every `every`, at most `polls` times, until it is `FINISHED` or
/// `PUBLISHED` (returned); `ERROR` and `EXPIRED` are [`InstagramError::ContainerFailed`] with
/// Meta's reason; still in progress after the last poll: [`InstagramError::Processing`].
pub fn wait_for_container(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    container_id: &str,
    every: Duration,
    polls: u32,
) -> Result<ContainerStatus, InstagramError> {
    for i in 0..polls.max(1) {
        if i > 0 {
            std::thread::sleep(every);
        }
        let st = container_status(client, endpoints, token, container_id)?;
        if let Some(e) = st.failure(container_id) {
            return Err(e);
        }
        if matches!(
            st.status_code,
            ContainerStatus::Finished | ContainerStatus::Published
        ) {
            return Ok(st.status_code);
        }
    }
    Err(InstagramError::Processing {
        container_id: container_id.into(),
    })
}

/// Where a Reel's upload and publication stand; persist it (it is serde) and hand it back to
/// resume. `UploadState::default()` starts a new one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    pub container_id: Option<String>,
    /// When the container was made (ms since the Unix epoch); it lives 24 hours unpublished.
    pub created_ms: u64,
    /// The byte the last upload request started at (rupload's `offset`).
    pub offset: u64,
    pub total: u64,
    /// The file's sha256 (hex) when the upload began.
    pub sha256: String,
    /// Instagram has the whole file (or fetches it from `video_url`).
    pub uploaded: bool,
    /// The container fetches a `video_url`.
    pub via_url: bool,
    /// The published media's id, once [`publish`] has it.
    pub published_media_id: Option<String>,
}

/// The upload URL of a container: `{instagram_upload}/ig-api-upload/{version}/{container-id}`.
pub fn upload_url(endpoints: &Endpoints, container_id: &str) -> String {
    format!(
        "{}/ig-api-upload/{GRAPH_VERSION}/{container_id}",
        endpoints.instagram_upload
    )
}

/// Makes the Reel's container and, unless `meta.video_url` is set, uploads `file` into it
/// (resumable, see the module docs), resuming from `state`; returns the container id, for
/// [`wait_for_container`] and [`publish`].
///
/// `persist` is called when the container is made, when the upload position changes and when
/// the file is in; `progress(sent, total)` before each upload request and at the end, returning
/// false to stop (state saved, `Cancelled`).
#[allow(clippy::too_many_arguments)]
pub fn upload(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    ig_user_id: &str,
    meta: &ReelMeta,
    file: &Path,
    state: &mut UploadState,
    persist: &mut dyn FnMut(&UploadState) -> Result<(), String>,
    progress: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<String, InstagramError> {
    let (total, sha256) = digest(file)?;
    if total == 0 {
        return Err(InstagramError::File(format!("{} is empty", file.display())));
    }
    if !state.sha256.is_empty() && (state.sha256 != sha256 || state.total != total) {
        return Err(InstagramError::File(format!(
            "{} changed since its Instagram upload began (sha256 {} then, {} now); start a new upload for the new file",
            file.display(),
            short(&state.sha256),
            short(&sha256)
        )));
    }
    let save = |s: &UploadState, persist: &mut dyn FnMut(&UploadState) -> Result<(), String>| {
        persist(s).map_err(InstagramError::Persist)
    };
    if state.uploaded && state.via_url == meta.video_url.is_some() {
        if let Some(id) = &state.container_id {
            return Ok(id.clone());
        }
    }
    // A resumed upload: ask how much of the file Instagram kept, and whether the container
    // still lives.
    let mut resumed = state.container_id.is_some();
    let mut sync = resumed;
    let mut containers = 0;
    let mut failures = 0;
    let mut last_refusal = String::new();
    loop {
        let old = now_ms().saturating_sub(state.created_ms)
            > (CONTAINER_LIFETIME - CONTAINER_MARGIN).as_millis() as u64;
        if state.container_id.is_none() || state.via_url != meta.video_url.is_some() || old {
            if containers >= MAX_CONTAINERS {
                return Err(InstagramError::Transient(format!(
                    "Instagram refused the upload {containers} times in a row ({last_refusal})"
                )));
            }
            containers += 1;
            let limit = publishing_limit(client, endpoints, token, ig_user_id)?;
            if limit.exhausted() {
                return Err(limit.quota_error());
            }
            let url = format!(
                "{}/{GRAPH_VERSION}/{ig_user_id}/media",
                endpoints.instagram_api
            );
            let j = graph(client, "POST", &url, token, Some(meta.params()), true)?;
            let Some(id) = j["id"]
                .as_str()
                .map(String::from)
                .or_else(|| j["id"].as_u64().map(|n| n.to_string()))
            else {
                return Err(InstagramError::Transient(format!(
                    "the container answer has no id: {j}"
                )));
            };
            let via_url = meta.video_url.is_some();
            *state = UploadState {
                container_id: Some(id.clone()),
                created_ms: now_ms(),
                offset: 0,
                total,
                sha256: sha256.clone(),
                uploaded: via_url,
                via_url,
                published_media_id: None,
            };
            save(state, persist)?;
            (resumed, sync) = (false, false);
            if via_url {
                progress(total, total);
                return Ok(id);
            }
        }
        let id = state.container_id.clone().unwrap_or_default();
        if resumed {
            resumed = false;
            let st = container_status(client, endpoints, token, &id)?;
            match st.status_code {
                ContainerStatus::Error | ContainerStatus::Expired => {
                    last_refusal = format!("container {id} was {}", st.status_code.as_str());
                    state.container_id = None;
                    continue;
                }
                ContainerStatus::Finished | ContainerStatus::Published => {
                    state.uploaded = true;
                    state.offset = total;
                    save(state, persist)?;
                    progress(total, total);
                    return Ok(id);
                }
                _ => {}
            }
        }
        let url = upload_url(endpoints, &id);
        let auth = format!("OAuth {token}");
        if sync {
            sync = false;
            let at = received_offset(client, &url, &auth)
                .filter(|o| *o <= total)
                .unwrap_or(0);
            if at != state.offset {
                state.offset = at;
                save(state, persist)?;
            }
        }
        if state.offset >= total {
            state.uploaded = true;
            save(state, persist)?;
            progress(total, total);
            return Ok(id);
        }
        if !progress(state.offset, total) {
            return Err(InstagramError::Cancelled);
        }
        let data = read_range(file, state.offset, total)?;
        let offset = state.offset.to_string();
        let file_size = total.to_string();
        let answer = client.send(
            "POST",
            &url,
            &[
                ("Authorization", &auth),
                ("offset", &offset),
                ("file_size", &file_size),
            ],
            Body::Bytes {
                content_type: "application/octet-stream".into(),
                data,
            },
        );
        let r = match answer {
            Ok(r) => r,
            Err(e) => {
                sync = true;
                failures += 1;
                if failures >= MAX_FAILURES {
                    return Err(InstagramError::Transient(e.to_string()));
                }
                std::thread::sleep(client.backoff(failures - 1));
                continue;
            }
        };
        let j = r.json();
        if r.ok() && j["success"].as_bool() != Some(false) && j["debug_info"].is_null() {
            state.offset = total;
            state.uploaded = true;
            save(state, persist)?;
            progress(total, total);
            return Ok(id);
        }
        let di = &j["debug_info"];
        let kind = di["type"].as_str().unwrap_or_default();
        let message = di["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("HTTP {} {}", r.status, r.text()));
        if r.status == 401
            || kind == "NotAuthorizedError"
            || message.to_ascii_lowercase().contains("unauthorized")
        {
            return Err(InstagramError::Unauthorized { code: 190, message });
        }
        let retry = di["retriable"].as_bool() == Some(true)
            || http::transient(r.status)
            || matches!(kind, "OffsetInvalidError" | "PartialRequestError");
        if retry {
            sync = true;
            failures += 1;
            if failures >= MAX_FAILURES {
                return Err(InstagramError::Transient(format!(
                    "the upload kept failing: {kind} {message}"
                )));
            }
            std::thread::sleep(client.backoff(failures - 1));
            continue;
        }
        // "If the upload does not work, initialize a new upload session."
        last_refusal = format!("{kind}: {message}");
        state.container_id = None;
    }
}

/// How much of the file rupload has, when its answer to a `GET` on the upload URL says.
fn received_offset(client: &Client, url: &str, auth: &str) -> Option<u64> {
    let r = client
        .send("GET", url, &[("Authorization", auth)], Body::Empty)
        .ok()?;
    if !r.ok() {
        return None;
    }
    fn find(v: &Value, depth: u32) -> Option<u64> {
        let num = |v: &Value| v.as_u64().or_else(|| v.as_str()?.parse().ok());
        for k in ["offset", "bytes_transfered", "bytes_transferred"] {
            if let Some(n) = num(&v[k]) {
                return Some(n);
            }
        }
        if depth == 0 {
            return None;
        }
        v.as_object()?.values().find_map(|c| find(c, depth - 1))
    }
    find(&r.json(), 3)
}

/// What [`publish`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Published {
    /// Published now (or by an earlier call that saved it): the media id.
    Media(String),
    /// The container had already been published by an earlier attempt whose answer was lost;
    /// Meta gives no way from a container to its media id, so there is none to report.
    Earlier,
}

/// Publishes the container of `state` (`POST /{version}/{ig-user-id}/media_publish`), once it is
/// `FINISHED` and the publishing limit has room; saves and returns the media id. Publishing twice
/// is harmless: a saved media id is returned as is, and a container already `PUBLISHED` is
/// [`Published::Earlier`] without another request.
pub fn publish(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    ig_user_id: &str,
    state: &mut UploadState,
    persist: &mut dyn FnMut(&UploadState) -> Result<(), String>,
) -> Result<Published, InstagramError> {
    if let Some(m) = &state.published_media_id {
        return Ok(Published::Media(m.clone()));
    }
    let Some(container_id) = state.container_id.clone() else {
        return Err(InstagramError::Rejected {
            code: 0,
            subcode: None,
            message: "nothing to publish: no container was made".into(),
            hint: "upload the video first".into(),
        });
    };
    let url = format!(
        "{}/{GRAPH_VERSION}/{ig_user_id}/media_publish",
        endpoints.instagram_api
    );
    let mut failures = 0;
    loop {
        let st = container_status(client, endpoints, token, &container_id)?;
        if let Some(e) = st.failure(&container_id) {
            return Err(e);
        }
        match st.status_code {
            ContainerStatus::Published => return Ok(Published::Earlier),
            ContainerStatus::Finished => {}
            _ => {
                return Err(InstagramError::Processing { container_id });
            }
        }
        let limit = publishing_limit(client, endpoints, token, ig_user_id)?;
        if limit.exhausted() {
            return Err(limit.quota_error());
        }
        let form = vec![("creation_id".to_string(), container_id.clone())];
        match graph(client, "POST", &url, token, Some(form), false) {
            Ok(j) => {
                let id = j["id"]
                    .as_str()
                    .map(String::from)
                    .or_else(|| j["id"].as_u64().map(|n| n.to_string()))
                    .unwrap_or_default();
                if id.is_empty() {
                    return Err(InstagramError::Transient(format!(
                        "media_publish answered without an id: {j}"
                    )));
                }
                state.published_media_id = Some(id.clone());
                persist(state).map_err(InstagramError::Persist)?;
                return Ok(Published::Media(id));
            }
            Err(InstagramError::Transient(e)) => {
                // The answer may be lost after Meta published: the next round looks first.
                failures += 1;
                if failures >= MAX_FAILURES {
                    return Err(InstagramError::Transient(e));
                }
                std::thread::sleep(client.backoff(failures - 1));
            }
            Err(e @ (InstagramError::Quota { .. } | InstagramError::Unauthorized { .. })) => {
                return Err(e)
            }
            Err(e) => {
                let again = container_status(client, endpoints, token, &container_id)?;
                if again.status_code == ContainerStatus::Published {
                    return Ok(Published::Earlier);
                }
                return Err(e);
            }
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
                    "{method} {url}: HTTP {} {}",
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
    let fail =
        |e: std::io::Error| InstagramError::File(format!("cannot read {}: {e}", path.display()));
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

fn read_range(path: &Path, start: u64, end: u64) -> Result<Vec<u8>, InstagramError> {
    let fail =
        |e: std::io::Error| InstagramError::File(format!("cannot read {}: {e}", path.display()));
    let mut f = File::open(path).map_err(fail)?;
    f.seek(SeekFrom::Start(start)).map_err(fail)?;
    let mut data = vec![0u8; (end - start) as usize];
    f.read_exact(&mut data).map_err(fail)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resp(status: u16, j: &Value, headers: &[(&str, &str)]) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: j.to_string().into_bytes(),
        }
    }

    #[test]
    fn graph_errors_are_told_apart() {
        let err = |code: i64, sub: Option<i64>, headers: &[(&str, &str)]| {
            let j = json!({"error": {"message": "m", "type": "OAuthException", "code": code,
                "error_subcode": sub, "fbtrace_id": "T"}});
            graph_error(&resp(400, &j, headers), &j)
        };
        assert!(matches!(
            err(190, None, &[]),
            InstagramError::Unauthorized { .. }
        ));
        assert_eq!(
            err(9, Some(2207042), &[]).retry_after(),
            Some(LIMIT_RECHECK)
        );
        let buc = r#"{"1784":[{"type":"instagram","call_count":100,"estimated_time_to_regain_access":7}]}"#;
        assert_eq!(
            err(4, None, &[("x-business-use-case-usage", buc)]).retry_after(),
            Some(Duration::from_secs(420))
        );
        assert_eq!(err(17, None, &[]).retry_after(), Some(LIMIT_RECHECK));
        match err(36000, Some(2207026), &[]) {
            InstagramError::Rejected { hint, message, .. } => {
                assert!(hint.contains("format") && message.contains("fbtrace_id T"))
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            err(4, Some(2207051), &[]),
            InstagramError::Rejected { .. }
        ));
    }

    #[test]
    fn reel_params() {
        let mut m = ReelMeta::new("hello #a");
        m.thumb_offset_ms = Some(1500);
        let p = m.params();
        let get = |k: &str| p.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("media_type"), Some("REELS"));
        assert_eq!(get("upload_type"), Some("resumable"));
        assert_eq!(get("video_url"), None);
        assert_eq!(get("is_ai_generated"), Some("true"));
        assert_eq!(get("thumb_offset"), Some("1500"));
        assert_eq!(get("share_to_feed"), Some("true"));
        m.is_ai_generated = false;
        m.video_url = Some("https://x/v.mp4".into());
        let p = m.params();
        assert!(!p
            .iter()
            .any(|(k, _)| k == "is_ai_generated" || k == "upload_type"));
    }
}
