//! Loopback HTTP servers for tests: [`Server`] speaks plain HTTP/1.1 on 127.0.0.1 (keep-alive,
//! `Content-Length` and chunked bodies) and hands each request to a [`Handler`], which can also
//! cut a request off mid-body and close the connection without an answer (a dropped network).
//! The platform fakes built on it live beside it.

pub mod instagram;
pub mod oauth;
pub mod tiktok;
pub mod youtube;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A request's line and headers (names in lower case).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: BTreeMap<String, String>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// A query parameter, decoded.
    pub fn query(&self, key: &str) -> Option<String> {
        let q = self.target.split_once('?')?.1;
        form_value(q, key)
    }

    /// The announced body length.
    pub fn content_length(&self) -> Option<usize> {
        self.header("content-length")?.trim().parse().ok()
    }
}

/// A value of an `application/x-www-form-urlencoded` string, decoded.
pub fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (decode(k) == key).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request as the server read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub head: Head,
    pub body: Vec<u8>,
    /// False when the handler asked to stop reading before the body's end (see
    /// [`Handler::read_limit`]) or the client went away mid-body.
    pub complete: bool,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A field of a form body.
    pub fn form(&self, key: &str) -> Option<String> {
        form_value(&String::from_utf8_lossy(&self.body), key)
    }
}

/// What the server does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Answers.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Closes the connection without answering.
    Close,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply::Respond {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }

    /// Adds a header to an answer.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

/// Serves requests.
pub trait Handler: Send + Sync + 'static {
    /// How much of the body to read before [`handle`](Self::handle) (None: all of it). Less
    /// than the body: `handle` sees the part (`complete` false) and the connection is closed
    /// afterwards whatever it replies — a network that dropped mid-upload.
    fn read_limit(&self, _head: &Head) -> Option<usize> {
        None
    }

    fn handle(&self, req: &Request) -> Reply;
}

impl<F> Handler for F
where
    F: Fn(&Request) -> Reply + Send + Sync + 'static,
{
    fn handle(&self, req: &Request) -> Reply {
        self(req)
    }
}

/// A loopback server; stops when dropped.
pub struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on an ephemeral 127.0.0.1 port.
    pub fn start(handler: impl Handler) -> Server {
        Self::start_arc(Arc::new(handler))
    }

    pub fn start_arc(handler: Arc<dyn Handler>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                let h = handler.clone();
                std::thread::spawn(move || serve(stream, h.as_ref()));
            }
        });
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_head(r: &mut BufReader<TcpStream>) -> Option<Head> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Some(Head {
        method,
        target,
        headers,
    })
}

/// Reads up to `limit` bytes of the body; (bytes, whether the whole body was read).
fn read_body(r: &mut BufReader<TcpStream>, head: &Head, limit: Option<usize>) -> (Vec<u8>, bool) {
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                return (body, false);
            }
            let n =
                usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).unwrap_or(0);
            if n == 0 {
                let mut end = String::new();
                let _ = r.read_line(&mut end);
                return (body, true);
            }
            let mut chunk = vec![0u8; n];
            if r.read_exact(&mut chunk).is_err() {
                return (body, false);
            }
            body.extend_from_slice(&chunk);
            let mut crlf = [0u8; 2];
            let _ = r.read_exact(&mut crlf);
            if limit.is_some_and(|l| body.len() >= l) {
                body.truncate(limit.unwrap_or(0));
                return (body, false);
            }
        }
    }
    let len = head.content_length().unwrap_or(0);
    let want = limit.map_or(len, |l| l.min(len));
    body.resize(want, 0);
    let mut got = 0;
    while got < want {
        match r.read(&mut body[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    body.truncate(got);
    (body, got == len)
}

fn serve(stream: TcpStream, handler: &dyn Handler) {
    let Ok(write) = stream.try_clone() else {
        return;
    };
    let mut write = write;
    let mut r = BufReader::new(stream);
    while let Some(head) = read_head(&mut r) {
        let limit = handler.read_limit(&head);
        let (body, complete) = read_body(&mut r, &head, limit);
        let req = Request {
            head,
            body,
            complete,
        };
        let reply = handler.handle(&req);
        if !req.complete {
            let _ = write.shutdown(Shutdown::Both);
            return;
        }
        match reply {
            Reply::Close => {
                let _ = write.shutdown(Shutdown::Both);
                return;
            }
            Reply::Respond {
                status,
                headers,
                body,
            } => {
                let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
                for (k, v) in &headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                if write.write_all(out.as_bytes()).is_err() || write.write_all(&body).is_err() {
                    return;
                }
                let _ = write.flush();
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        308 => "Resume Incomplete",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Body, Client};
    use std::time::Duration;

    struct Cut;
    impl Handler for Cut {
        fn read_limit(&self, head: &Head) -> Option<usize> {
            (head.path() == "/cut").then_some(3)
        }
        fn handle(&self, req: &Request) -> Reply {
            Reply::json(
                200,
                &serde_json::json!({
                    "path": req.head.path(),
                    "q": req.head.query("a"),
                    "len": req.body.len(),
                    "complete": req.complete,
                }),
            )
        }
    }

    #[test]
    fn answers_requests_and_cuts_bodies_off_on_request() {
        let s = Server::start(Cut);
        let c = Client::new(Duration::from_secs(5), Duration::from_millis(1));
        let r = c
            .send(
                "PUT",
                &format!("{}/x?a=b%20c", s.url()),
                &[],
                Body::Bytes {
                    content_type: "application/octet-stream".into(),
                    data: vec![7; 1000],
                },
            )
            .unwrap();
        assert_eq!(r.status, 200);
        let j = r.json();
        assert_eq!(
            (j["len"].as_u64(), j["complete"].as_bool()),
            (Some(1000), Some(true))
        );
        assert_eq!(j["q"], "b c");
        // A second request on the same connection, then a cut one: no answer.
        assert_eq!(
            c.send("GET", &format!("{}/y", s.url()), &[], Body::Empty)
                .unwrap()
                .status,
            200
        );
        let e = c
            .send(
                "PUT",
                &format!("{}/cut", s.url()),
                &[],
                Body::Bytes {
                    content_type: "application/octet-stream".into(),
                    data: vec![7; 100_000],
                },
            )
            .unwrap_err();
        assert!(e.message.contains("no answer"), "{e}");
    }
}
