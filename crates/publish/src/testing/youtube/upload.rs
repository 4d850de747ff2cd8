//! The fake's resumable uploads: starting a session, chunks, status queries, and the checks on a video resource.

use super::*;

impl State {
    pub(super) fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:09}", self.next_id)
    }

    fn authorized(&self, head: &Head) -> bool {
        bearer(head).is_some_and(|t| self.tokens.contains(t))
    }

    pub(super) fn route(&mut self, req: &Request) -> Reply {
        let head = &req.head;
        if !req.complete && !is_chunk(head) {
            return Reply::Close;
        }
        if !self.authorized(head) {
            return Reply::json(
                401,
                &json!({"error": {
                    "code": 401,
                    "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                    "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError", "location": "Authorization", "locationType": "header"}],
                    "status": "UNAUTHENTICATED",
                }}),
            );
        }
        let upload = head.path() == VIDEOS_UPLOAD;
        if upload && self.burst.1 > 0 {
            self.burst.1 -= 1;
            return error_reply(self.burst.0, "backendError", "Backend Error");
        }
        match (head.method.as_str(), head.path()) {
            ("POST", VIDEOS_UPLOAD) => self.start(req),
            ("PUT", VIDEOS_UPLOAD) => self.put(req),
            ("GET", VIDEOS) => self.list(req),
            ("POST", THUMBNAILS) => self.thumbnail(req),
            ("POST", CAPTIONS) => self.caption(req),
            ("POST", PLAYLIST_ITEMS) => self.playlist_item(req),
            _ => error_reply(404, "notFound", "Not Found"),
        }
    }

    fn start(&mut self, req: &Request) -> Reply {
        let head = &req.head;
        if let Some((status, reason, message)) = &self.insert_error {
            return error_reply(*status, reason, message);
        }
        if head.query("uploadType").as_deref() != Some("resumable") {
            return bad(
                "invalidParameter",
                "this fake takes uploadType=resumable only",
            );
        }
        let parts: BTreeSet<String> = head
            .query("part")
            .unwrap_or_default()
            .split(',')
            .map(|p| p.trim().to_string())
            .collect();
        if !parts.contains("snippet") || !parts.contains("status") {
            return bad("invalidPart", "part must name snippet and status");
        }
        let total: u64 = match head
            .header("x-upload-content-length")
            .and_then(|v| v.trim().parse().ok())
        {
            Some(n) if n > 0 => n,
            _ => {
                return bad(
                    "invalidUploadLength",
                    "X-Upload-Content-Length is missing or 0",
                )
            }
        };
        let content_type = head.header("x-upload-content-type").unwrap_or("").trim();
        if !(content_type.starts_with("video/") || content_type == "application/octet-stream") {
            return bad(
                "invalidContentType",
                "X-Upload-Content-Type must be video/* or application/octet-stream",
            );
        }
        let v = req.json();
        if let Err(reply) = check_resource(&v, &parts) {
            return reply;
        }
        let id = self.new_id("up");
        let expire_after = self.expire_next.take();
        self.sessions.insert(
            id.clone(),
            Session {
                total,
                content_type: content_type.to_string(),
                resource: v,
                parts: head.query("part").unwrap_or_default(),
                data: Vec::new(),
                requests: 0,
                expire_after,
                expired: false,
                video: None,
            },
        );
        self.session_order.push(id.clone());
        let host = head.header("host").unwrap_or("127.0.0.1");
        Reply::status(200).with_header(
            "Location",
            &format!("http://{host}{VIDEOS_UPLOAD}?uploadType=resumable&upload_id={id}"),
        )
    }

    fn put(&mut self, req: &Request) -> Reply {
        let head = &req.head;
        let granularity = self.granularity;
        let Some(sid) = head.query("upload_id") else {
            return error_reply(404, "notFound", "Not Found");
        };
        let Some(session) = self.sessions.get_mut(&sid) else {
            return error_reply(404, "notFound", "Not Found");
        };
        if !session.expired {
            session.requests += 1;
            if session.expire_after.is_some_and(|m| session.requests > m) {
                session.expired = true;
            }
        }
        if session.expired {
            return error_reply(404, "notFound", "The upload session has expired");
        }
        let range = match head.header("content-range") {
            Some(v) => match parse_range(v) {
                Some(r) => r,
                None => return bad("badContentRange", &format!("Content-Range {v:?}")),
            },
            // A whole file in one PUT.
            None if session.data.is_empty() => Range::Chunk {
                first: 0,
                last: (head.content_length().unwrap_or(0) as u64).saturating_sub(1),
                total: session.total,
            },
            None => return bad("badContentRange", "Content-Range is missing"),
        };
        let held = session.data.len() as u64;
        match range {
            Range::Query(total) => {
                if total != session.total {
                    return bad("badContentRange", "the total is not the announced length");
                }
                if !req.body.is_empty() {
                    return bad("badContentRange", "a status query has an empty body");
                }
                if let Some(id) = &session.video {
                    let id = id.clone();
                    return Reply::json(200, &self.resource_of(&id));
                }
                resume_incomplete(held)
            }
            Range::Chunk { first, last, total } => {
                if let Some(id) = &session.video {
                    let id = id.clone();
                    return Reply::json(200, &self.resource_of(&id));
                }
                if total != session.total || last < first || last >= total {
                    return bad(
                        "badContentRange",
                        &format!(
                            "bytes {first}-{last}/{total} for a {}-byte upload",
                            session.total
                        ),
                    );
                }
                if first != held {
                    return bad(
                        "badContentRange",
                        &format!("the chunk starts at {first} but the upload holds {held} bytes"),
                    );
                }
                let ct = head
                    .header("content-type")
                    .unwrap_or("")
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim();
                if ct != session.content_type {
                    return bad(
                        "invalidContentType",
                        &format!("Content-Type {ct:?}, announced {:?}", session.content_type),
                    );
                }
                let len = last - first + 1;
                if !req.complete {
                    // The connection dropped: keep what arrived (to the granularity).
                    let got = (req.body.len() as u64).min(len);
                    let g = granularity as u64;
                    let keep = ((first + got) / g * g).saturating_sub(first);
                    session.data.extend_from_slice(&req.body[..keep as usize]);
                    return Reply::Close;
                }
                if req.body.len() as u64 != len {
                    return bad(
                        "badContentRange",
                        &format!("bytes {first}-{last} announced, {} sent", req.body.len()),
                    );
                }
                if last + 1 < total && len % UNIT as u64 != 0 {
                    return bad(
                        "invalidChunkSize",
                        &format!(
                            "a chunk that does not end the file is a multiple of 256 KiB ({len})"
                        ),
                    );
                }
                session.data.extend_from_slice(&req.body);
                if (session.data.len() as u64) < session.total {
                    return resume_incomplete(session.data.len() as u64);
                }
                let video = FakeVideo {
                    id: String::new(),
                    bytes: std::mem::take(&mut session.data),
                    resource: session.resource.clone(),
                    parts: session.parts.clone(),
                    content_type: session.content_type.clone(),
                    polls: 0,
                };
                let id = self.new_id("vid");
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.video = Some(id.clone());
                    s.data = video.bytes.clone();
                }
                self.videos.insert(
                    id.clone(),
                    FakeVideo {
                        id: id.clone(),
                        ..video
                    },
                );
                self.video_order.push(id.clone());
                Reply::json(201, &self.resource_of(&id))
            }
        }
    }

    fn resource_of(&self, id: &str) -> Value {
        let Some(v) = self.videos.get(id) else {
            return json!({"id": id});
        };
        let mut status = v.resource["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        status["uploadStatus"] = "uploaded".into();
        json!({
            "kind": "youtube#video",
            "id": id,
            "snippet": v.resource["snippet"],
            "status": status,
        })
    }
}

fn resume_incomplete(held: u64) -> Reply {
    let r = Reply::status(308);
    if held == 0 {
        r
    } else {
        r.with_header("Range", &format!("bytes=0-{}", held - 1))
    }
}

/// Checks a video resource as YouTube would (see the module's documentation).
fn check_resource(v: &Value, parts: &BTreeSet<String>) -> Result<(), Reply> {
    let snippet = &v["snippet"];
    let title = snippet["title"].as_str().unwrap_or("");
    let angle = |s: &str| s.contains('<') || s.contains('>');
    let title_ok = |t: &str| !t.trim().is_empty() && utf16(t) <= 100 && !angle(t);
    let description_ok = |d: &str| d.len() <= 5000 && !angle(d);
    if !title_ok(title) {
        return Err(bad(
            "invalidTitle",
            "The request metadata specifies an invalid or empty video title.",
        ));
    }
    if !description_ok(snippet["description"].as_str().unwrap_or("")) {
        return Err(bad(
            "invalidDescription",
            "The request metadata specifies an invalid video description.",
        ));
    }
    if let Some(tags) = snippet.get("tags") {
        let Some(tags) = tags.as_array() else {
            return Err(bad("invalidTags", "snippet.tags is not a list"));
        };
        let mut len = tags.len().saturating_sub(1);
        for t in tags {
            let t = t.as_str().unwrap_or("<");
            if angle(t) || t.contains(',') || t.trim().is_empty() {
                return Err(bad(
                    "invalidTags",
                    "The request metadata specifies invalid video keywords.",
                ));
            }
            len += utf16(t) + if t.contains(' ') { 2 } else { 0 };
        }
        if len > 500 {
            return Err(bad("invalidTags", &format!("The request metadata specifies invalid video keywords ({len} characters, counted with quotes and commas; at most 500).")));
        }
    }
    let cat = snippet["categoryId"].as_str().unwrap_or("");
    if cat.is_empty() || !cat.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "invalidCategoryId",
            "The snippet.categoryId property specifies an invalid category ID.",
        ));
    }
    let status = &v["status"];
    let privacy = status["privacyStatus"].as_str().unwrap_or("");
    if !matches!(privacy, "private" | "unlisted" | "public") {
        return Err(bad(
            "invalidVideoMetadata",
            "status.privacyStatus is missing (YouTube would publish the video publicly)",
        ));
    }
    if let Some(at) = status.get("publishAt") {
        let ok = at
            .as_str()
            .is_some_and(|s| s.len() >= 20 && s.as_bytes().get(10) == Some(&b'T'));
        if privacy != "private" || !ok {
            return Err(bad("invalidPublishAt", "The request metadata specifies an invalid scheduled publishing time (it needs privacyStatus private)."));
        }
    }
    for key in ["containsSyntheticMedia", "selfDeclaredMadeForKids"] {
        if status.get(key).is_some_and(|b| !b.is_boolean()) {
            return Err(bad(
                "invalidVideoMetadata",
                &format!("status.{key} is not a boolean"),
            ));
        }
    }
    if let Some(locs) = v.get("localizations") {
        if !parts.contains("localizations") {
            return Err(bad(
                "invalidPart",
                "localizations sent without part=localizations",
            ));
        }
        if snippet["defaultLanguage"].as_str().unwrap_or("").is_empty() {
            return Err(bad("defaultLanguageNotSet", "The request is trying to add localized video details without specifying the default language of the video details."));
        }
        let Some(locs) = locs.as_object() else {
            return Err(bad(
                "invalidVideoMetadata",
                "localizations is not an object",
            ));
        };
        for (lang, l) in locs {
            if !title_ok(l["title"].as_str().unwrap_or(""))
                || !description_ok(l["description"].as_str().unwrap_or(""))
            {
                return Err(bad(
                    "invalidLocalizedVideoMetadata",
                    &format!("the {lang} localization is invalid"),
                ));
            }
        }
    }
    Ok(())
}
