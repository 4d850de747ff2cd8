//! The HTTP client every platform client uses, and how failures are told apart.
//!
//! A request either gets an answer (any status: the platform's errors are data, read by the
//! caller) or fails in transport ([`HttpError`]): a refused or dropped connection, a timeout,
//! a broken response. Transport failures and the statuses [`transient`] names are worth
//! retrying after a pause ([`Client::backoff`]); everything else is the platform's answer.

use std::collections::BTreeMap;
use std::time::Duration;

/// A request that did not get an answer. `url` is the address without its query: upload
/// session URIs and signed upload URLs carry their credentials there, and errors are shown
/// and logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url}: {message}")]
pub struct HttpError {
    pub url: String,
    pub message: String,
}

/// `url` without its query and fragment, for messages.
pub fn shown_url(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// A body to send.
#[derive(Clone, Debug, Default)]
pub enum Body {
    #[default]
    Empty,
    /// `application/json`.
    Json(serde_json::Value),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
    /// Raw bytes with their content type.
    Bytes { content_type: String, data: Vec<u8> },
    /// `len` bytes of a file from `start`, streamed (never held in memory whole).
    File {
        content_type: String,
        path: std::path::PathBuf,
        start: u64,
        len: u64,
    },
}

/// An answer: status, headers (names in lower case) and the whole body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text, lossily.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Whether a status is worth retrying: 408, 429 and the 5xx gateway/server answers the
/// platforms document as temporary.
pub fn transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// `application/x-www-form-urlencoded` / query-string encoding of one value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `k1=v1&k2=v2`, encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The HTTP client: one connection pool, timeouts, and the pause between retries.
#[derive(Clone, Debug)]
pub struct Client {
    agent: ureq::Agent,
    /// The first pause of [`backoff`](Self::backoff); each retry doubles it (up to 64×).
    pub backoff_base: Duration,
}

impl Client {
    /// A client with `timeout` for connecting and for each read, and `backoff_base` between
    /// retries.
    pub fn new(timeout: Duration, backoff_base: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .timeout_per_read(Some(timeout))
            .max_redirects(0)
            .build()
            .into();
        Self {
            agent,
            backoff_base,
        }
    }

    /// The settings a studio uses: 60 s timeouts, 1 s first pause; `REELSMITH_PUBLISH_BACKOFF_MS`
    /// sets the first pause (tests make it short).
    pub fn from_env() -> Self {
        let base = std::env::var("REELSMITH_PUBLISH_BACKOFF_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(1));
        Self::new(Duration::from_secs(60), base)
    }

    /// The pause before retry number `attempt` (0 = the first): `base · 2^attempt`, at most
    /// `64 · base`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.backoff_base * 2u32.pow(attempt.min(6))
    }

    /// Sends a request; headers are `(name, value)` pairs.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<Response, HttpError> {
        let fail = |message: String| HttpError {
            url: shown_url(url).to_string(),
            message,
        };
        let mut b = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (content_type, data): (Option<String>, Vec<u8>) = match body {
            Body::File {
                content_type,
                path,
                start,
                len,
            } => {
                use std::io::{Read, Seek, SeekFrom};
                let f = std::fs::File::open(&path)
                    .and_then(|mut f| f.seek(SeekFrom::Start(start)).map(|_| f))
                    .map_err(|e| fail(format!("{}: {e}", path.display())))?;
                let given = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
                if !given("content-type") {
                    b = b.header("Content-Type", content_type);
                }
                b = b.header("Content-Length", len.to_string());
                let reader = Read::take(std::io::BufReader::with_capacity(1 << 20, f), len);
                let req = b
                    .body(ureq::SendBody::from_owned_reader(reader))
                    .map_err(|e| fail(format!("bad request: {e}")))?;
                let resp = self
                    .agent
                    .run(req)
                    .map_err(|e| fail(format!("no answer: {e}")))?;
                return Self::answer(resp).map_err(fail);
            }
            Body::Empty => (None, Vec::new()),
            Body::Json(v) => (
                Some("application/json; charset=UTF-8".into()),
                serde_json::to_vec(&v).map_err(|e| fail(e.to_string()))?,
            ),
            Body::Form(pairs) => {
                let p: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                (
                    Some("application/x-www-form-urlencoded".into()),
                    query(&p).into_bytes(),
                )
            }
            Body::Bytes { content_type, data } => (Some(content_type), data),
        };
        if let Some(ct) = content_type {
            let given = headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
            if !given {
                b = b.header("Content-Type", ct);
            }
        }
        let req = b
            .body(data)
            .map_err(|e| fail(format!("bad request: {e}")))?;
        let resp = self
            .agent
            .run(req)
            .map_err(|e| fail(format!("no answer: {e}")))?;
        Self::answer(resp).map_err(fail)
    }

    /// Reads an answer whole (at most 64 MiB).
    fn answer(mut resp: ureq::http::Response<ureq::Body>) -> Result<Response, String> {
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .map_err(|e| format!("the answer broke off: {e}"))?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_retry_rules() {
        assert_eq!(urlencode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(query(&[("x", "1"), ("y", "a b")]), "x=1&y=a%20b");
        assert!(transient(503) && transient(429) && !transient(404) && !transient(403));
        let c = Client::new(Duration::from_secs(1), Duration::from_millis(10));
        assert_eq!(c.backoff(0), Duration::from_millis(10));
        assert_eq!(c.backoff(3), Duration::from_millis(80));
        assert_eq!(c.backoff(30), Duration::from_millis(640));
    }

    #[test]
    fn errors_never_show_a_query() {
        assert_eq!(
            shown_url("https://h/upload/youtube/v3/videos?uploadType=resumable&upload_id=SECRET"),
            "https://h/upload/youtube/v3/videos"
        );
        assert_eq!(shown_url("https://h/a#frag"), "https://h/a");
        // Nothing listens on port 9 of loopback: the error names the path, not the query.
        let c = Client::new(Duration::from_millis(300), Duration::from_millis(1));
        let e = c
            .send(
                "GET",
                "http://127.0.0.1:9/x?access_token=SECRET",
                &[],
                Body::Empty,
            )
            .unwrap_err();
        assert!(!e.to_string().contains("SECRET"), "{e}");
    }
}
