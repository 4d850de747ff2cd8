//! Chunk plans and the chunked upload of a video.

use super::*;

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
        readable(file)?;
        let url = state.upload_url.clone().unwrap_or_default();
        let content_range = plan.content_range(state.next_chunk);
        let mime = mime_of(file);
        let answer = client.send(
            "PUT",
            &url,
            &[("Content-Range", &content_range)],
            Body::File {
                content_type: mime.into(),
                path: file.to_path_buf(),
                start,
                len: end - start,
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
        // The answer itself is not shown: its upload_url is a credential.
        let missing = match (publish_id.is_empty(), upload_url.is_empty()) {
            (true, true) => "publish_id and upload_url",
            (true, false) => "publish_id",
            _ => "upload_url",
        };
        return Err(TikTokError::Transient(format!(
            "{path} answered without {missing}"
        )));
    }
    Ok((publish_id.to_string(), upload_url.to_string()))
}
