//! The fake's `videos.list`, `thumbnails.set`, `captions.insert` and `playlistItems.insert`, and multipart bodies.

use super::*;

impl State {
    pub(super) fn list(&mut self, req: &Request) -> Reply {
        let ids = req.head.query("id").unwrap_or_default();
        let (polls, failure) = (self.processing_polls, self.processing_failure.clone());
        let mut items = Vec::new();
        for id in ids.split(',').map(str::trim) {
            let Some(v) = self.videos.get_mut(id) else {
                continue;
            };
            v.polls += 1;
            let privacy = v.resource["status"]["privacyStatus"].clone();
            let (upload, processing) = if v.polls <= polls {
                ("uploaded", json!({"processingStatus": "processing"}))
            } else if let Some(f) = &failure {
                (
                    "failed",
                    json!({"processingStatus": "failed", "processingFailureReason": f}),
                )
            } else {
                ("processed", json!({"processingStatus": "succeeded"}))
            };
            items.push(json!({
                "kind": "youtube#video",
                "id": id,
                "status": {"uploadStatus": upload, "privacyStatus": privacy},
                "processingDetails": processing,
            }));
        }
        Reply::json(
            200,
            &json!({"kind": "youtube#videoListResponse", "items": items}),
        )
    }

    pub(super) fn thumbnail(&mut self, req: &Request) -> Reply {
        let video_id = req.head.query("videoId").unwrap_or_default();
        if !self.videos.contains_key(&video_id) {
            return error_reply(
                404,
                "videoNotFound",
                "The video that you are trying to update cannot be found.",
            );
        }
        let ct = req
            .head
            .header("content-type")
            .unwrap_or("")
            .trim()
            .to_string();
        if !matches!(
            ct.as_str(),
            "image/png" | "image/jpeg" | "application/octet-stream"
        ) {
            return bad(
                "invalidImage",
                &format!("Content-Type {ct:?} is not an image"),
            );
        }
        if req.body.is_empty() {
            return bad(
                "mediaBodyRequired",
                "The request does not include the image content.",
            );
        }
        if req.body.len() > THUMBNAIL_MAX {
            return error_reply(413, "mediaBodyTooLarge", "The image is larger than 50 MB.");
        }
        let png = req.body.starts_with(b"\x89PNG\r\n\x1a\n");
        let jpeg = req.body.starts_with(&[0xFF, 0xD8, 0xFF]);
        if !(png || jpeg) {
            return bad("invalidImage", "The provided image content is invalid.");
        }
        self.thumbnails.push(FakeThumbnail {
            video_id: video_id.clone(),
            content_type: ct,
            data: req.body.clone(),
        });
        Reply::json(
            200,
            &json!({"kind": "youtube#thumbnailSetResponse", "items": [{"default": {
                "url": format!("https://i.ytimg.com/vi/{video_id}/default.jpg"), "width": 120, "height": 90}}]}),
        )
    }

    pub(super) fn caption(&mut self, req: &Request) -> Reply {
        let head = &req.head;
        if head.query("uploadType").as_deref() != Some("multipart") {
            return bad(
                "invalidParameter",
                "this fake takes uploadType=multipart captions",
            );
        }
        if head.query("part").as_deref() != Some("snippet") {
            return bad("invalidPart", "part must be snippet");
        }
        let ct = head.header("content-type").unwrap_or("");
        let Some(boundary) = ct
            .strip_prefix("multipart/related")
            .and_then(|rest| rest.split("boundary=").nth(1))
            .map(|b| {
                b.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
            .filter(|b| !b.is_empty())
        else {
            return bad(
                "invalidMultipart",
                &format!("Content-Type {ct:?} is not multipart/related with a boundary"),
            );
        };
        let Some(parts) = parse_multipart(&req.body, &boundary) else {
            return bad("invalidMultipart", "the multipart body is malformed");
        };
        let [(h1, json_part), (h2, media)] = parts.as_slice() else {
            return bad(
                "invalidMultipart",
                &format!("{} parts, want 2", parts.len()),
            );
        };
        if !h1
            .get("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
        {
            return bad("invalidMultipart", "the first part is not JSON");
        }
        let meta: Value = serde_json::from_slice(json_part).unwrap_or(Value::Null);
        let s = &meta["snippet"];
        let video_id = s["videoId"].as_str().unwrap_or("").to_string();
        if !self.videos.contains_key(&video_id) {
            return error_reply(
                404,
                "videoNotFound",
                "The video identified by the videoId parameter could not be found.",
            );
        }
        let (Some(language), Some(name), Some(is_draft)) = (
            s["language"].as_str(),
            s["name"].as_str(),
            s["isDraft"].as_bool(),
        ) else {
            return bad(
                "invalidMetadata",
                "snippet needs language, name and isDraft",
            );
        };
        if language.trim().is_empty() {
            return bad("invalidMetadata", "snippet.language is empty");
        }
        if media.is_empty() {
            return bad(
                "contentRequired",
                "The request does not contain the caption track contents.",
            );
        }
        if !String::from_utf8_lossy(media).contains("-->") {
            return bad("invalidMetadata", "the caption track has no cue times");
        }
        let id = self.new_id("cap");
        self.captions.push(FakeCaption {
            id: id.clone(),
            video_id: video_id.clone(),
            language: language.to_string(),
            name: name.to_string(),
            is_draft,
            media_type: h2.get("content-type").cloned().unwrap_or_default(),
            data: media.clone(),
        });
        Reply::json(
            200,
            &json!({"kind": "youtube#caption", "id": id, "snippet": {
                "videoId": video_id, "language": language, "name": name, "isDraft": is_draft,
                "trackKind": "standard", "status": "serving"}}),
        )
    }

    pub(super) fn playlist_item(&mut self, req: &Request) -> Reply {
        if req.head.query("part").as_deref() != Some("snippet") {
            return bad("invalidPart", "part must be snippet");
        }
        let v = req.json();
        let s = &v["snippet"];
        let playlist = s["playlistId"].as_str().unwrap_or("").to_string();
        if playlist.is_empty() {
            return bad(
                "playlistIdRequired",
                "The request does not specify a playlist ID.",
            );
        }
        if s["resourceId"]["kind"] != "youtube#video" {
            return bad(
                "invalidResourceType",
                "resourceId.kind must be youtube#video",
            );
        }
        let video = s["resourceId"]["videoId"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if !self.videos.contains_key(&video) {
            return error_reply(
                404,
                "videoNotFound",
                "The video that you are trying to add cannot be found.",
            );
        }
        self.playlist_items.push((playlist.clone(), video.clone()));
        let id = self.new_id("pli");
        Reply::json(
            200,
            &json!({"kind": "youtube#playlistItem", "id": id, "snippet": {
                "playlistId": playlist, "resourceId": {"kind": "youtube#video", "videoId": video}}}),
        )
    }
}

type Part = (BTreeMap<String, String>, Vec<u8>);

/// The parts of a multipart body: (headers with lower-case names, data).
pub fn parse_multipart(body: &[u8], boundary: &str) -> Option<Vec<Part>> {
    let delim = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], from: usize| -> Option<usize> {
        hay.get(from..)?
            .windows(delim.len())
            .position(|w| w == delim.as_slice())
            .map(|p| p + from)
    };
    let mut at = find(body, 0)?;
    let mut parts = Vec::new();
    loop {
        let after = at + delim.len();
        if body.get(after..after + 2) == Some(b"--") {
            return Some(parts);
        }
        if body.get(after..after + 2) != Some(b"\r\n") {
            return None;
        }
        let start = after + 2;
        let head_end = body
            .get(start..)?
            .windows(4)
            .position(|w| w == b"\r\n\r\n")?
            + start;
        let mut headers = BTreeMap::new();
        for line in String::from_utf8_lossy(&body[start..head_end]).split("\r\n") {
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let data_start = head_end + 4;
        let next = find(body, data_start)?;
        // The data ends before the CRLF that precedes the next delimiter.
        if next < data_start + 2 || &body[next - 2..next] != b"\r\n" {
            return None;
        }
        parts.push((headers, body[data_start..next - 2].to_vec()));
        at = next;
    }
}
