//! The resumable video upload.

use super::*;

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

pub(super) fn file_err(path: &Path, e: impl std::fmt::Display) -> YouTubeError {
    YouTubeError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// SHA-256 (hex) and size of a file.
pub fn file_sha256(path: &Path) -> Result<(String, u64), YouTubeError> {
    let (n, sha) = crate::files::digest(path).map_err(|e| file_err(path, e))?;
    Ok((sha, n))
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
pub(super) fn send_retrying(
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
