//! After the upload: thumbnails, captions, processing status, playlists.

use super::*;

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
