//! The resumable upload of a Reel's video.

use super::*;

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
        // The rest of the file goes in one request, streamed from the disk.
        readable(file)?;
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
            Body::File {
                content_type: "application/octet-stream".into(),
                path: file.to_path_buf(),
                start: state.offset,
                len: total - state.offset,
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
