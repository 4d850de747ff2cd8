//! The loopback redirect flow.

use super::*;

// ---------------------------------------------------------------------------------------------
// The loopback redirect flow

/// An authorization-code login with a loopback redirect: a listener on `127.0.0.1:PORT`, the
/// consent URL to open ([`auth_url`](Self::auth_url), with `state` and PKCE), and the code the
/// browser brings back ([`wait`](Self::wait)) or the user pastes
/// ([`code_from_pasted`](Self::code_from_pasted)).
///
/// Redirect URIs (register them with the platform):
/// - YouTube: `http://127.0.0.1:PORT/` (Desktop clients accept any loopback port);
/// - TikTok: `http://127.0.0.1:PORT/callback/` (register `http://127.0.0.1:*/callback/` in
///   Login Kit for Desktop for any port);
/// - Instagram: `http://localhost:PORT/callback/` (Facebook matches redirect URIs exactly, so
///   use a fixed port — [`needs_fixed_port`] — and add it to Facebook Login › Settings › Valid
///   OAuth Redirect URIs).
pub struct LoopbackFlow {
    platform: Platform,
    listener: TcpListener,
    port: u16,
    state: String,
    verifier: String,
    redirect_uri: String,
    auth_url: String,
    scopes: Vec<String>,
}

impl fmt::Debug for LoopbackFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopbackFlow")
            .field("platform", &self.platform)
            .field("port", &self.port)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// Whether `platform` needs the same redirect port every time (Facebook matches redirect URIs
/// exactly; Google and TikTok accept any loopback port).
pub fn needs_fixed_port(platform: Platform) -> bool {
    platform == Platform::Instagram
}

/// The redirect URI of a loopback flow on `port`.
pub fn redirect_uri(platform: Platform, port: u16) -> String {
    match platform {
        Platform::YouTube => format!("http://127.0.0.1:{port}/"),
        Platform::TikTok => format!("http://127.0.0.1:{port}/callback/"),
        Platform::Instagram => format!("http://localhost:{port}/callback/"),
    }
}

impl LoopbackFlow {
    /// Listens on `127.0.0.1:port` (`None` or 0: a free port) and prepares the consent URL.
    pub fn start(
        platform: Platform,
        endpoints: &Endpoints,
        secrets: &ClientSecrets,
        scopes: &[&str],
        port: Option<u16>,
    ) -> Result<LoopbackFlow, OAuthError> {
        secrets.check(platform)?;
        let want = port.unwrap_or(0);
        let listener = TcpListener::bind(("127.0.0.1", want)).map_err(|e| OAuthError::Listen {
            platform,
            port: want,
            message: e.to_string(),
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| OAuthError::Listen {
                platform,
                port: want,
                message: e.to_string(),
            })?
            .port();
        let state = new_state();
        let verifier = new_verifier();
        let redirect = redirect_uri(platform, port);
        let auth_url = match platform {
            Platform::YouTube => {
                let scope = scopes.join(" ");
                let challenge = challenge_for(platform, &verifier);
                format!(
                    "{}?{}",
                    endpoints.google_auth,
                    http::query(&[
                        ("client_id", &secrets.client_id),
                        ("redirect_uri", &redirect),
                        ("response_type", "code"),
                        ("scope", &scope),
                        ("state", &state),
                        ("code_challenge", &challenge),
                        ("code_challenge_method", "S256"),
                        ("access_type", "offline"),
                        ("prompt", "consent"),
                    ])
                )
            }
            Platform::TikTok => {
                let scope = scopes.join(",");
                let challenge = challenge_for(platform, &verifier);
                format!(
                    "{}?{}",
                    endpoints.tiktok_auth,
                    http::query(&[
                        ("client_key", &secrets.client_id),
                        ("response_type", "code"),
                        ("scope", &scope),
                        ("redirect_uri", &redirect),
                        ("state", &state),
                        ("code_challenge", &challenge),
                        ("code_challenge_method", "S256"),
                    ])
                )
            }
            Platform::Instagram => {
                let scope = scopes.join(",");
                format!(
                    "{}?{}",
                    endpoints.facebook_auth,
                    http::query(&[
                        ("client_id", &secrets.client_id),
                        ("redirect_uri", &redirect),
                        ("state", &state),
                        ("response_type", "code"),
                        ("scope", &scope),
                    ])
                )
            }
        };
        Ok(LoopbackFlow {
            platform,
            listener,
            port,
            state,
            verifier,
            redirect_uri: redirect,
            auth_url,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        })
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The consent page to open in a browser.
    pub fn auth_url(&self) -> &str {
        &self.auth_url
    }

    /// The redirect URI sent (the code exchange repeats it).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The PKCE code verifier (the code exchange sends it).
    pub fn verifier(&self) -> &str {
        &self.verifier
    }

    /// The `state` sent.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// `ssh -L PORT:127.0.0.1:PORT destination`: the tunnel to open from the laptop whose
    /// browser signs in.
    pub fn ssh_command(&self, destination: &str) -> String {
        format!("ssh -L {0}:127.0.0.1:{0} {destination}", self.port)
    }

    /// Serves the browser's redirect: answers other requests (a favicon) with 404 and keeps
    /// waiting; a redirect with the wrong `state` → [`OAuthError::StateMismatch`];
    /// `error=access_denied` → [`OAuthError::Denied`]; a code → the code, after a "you can
    /// close this tab" page. Nothing within `timeout` → [`OAuthError::Timeout`].
    pub fn wait(&self, timeout: Duration) -> Result<String, OAuthError> {
        let platform = self.platform;
        let listen_err = |e: std::io::Error| OAuthError::Listen {
            platform,
            port: self.port,
            message: e.to_string(),
        };
        self.listener.set_nonblocking(true).map_err(listen_err)?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Some(result) = self.serve(stream) {
                        return result;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(OAuthError::Timeout {
                            platform,
                            port: self.port,
                            secs: timeout.as_secs(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(listen_err(e)),
            }
        }
    }

    /// One connection: `None` to keep waiting, `Some` with the outcome.
    fn serve(&self, mut stream: TcpStream) -> Option<Result<String, OAuthError>> {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 2048];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("");
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let pairs = query_pairs(query.split('#').next().unwrap_or(""));
        let has = |k: &str| param(&pairs, k).is_some();
        if !(has("code") || has("error") || has("state")) {
            respond(
                &mut stream,
                404,
                "reelsmith is waiting for the sign-in redirect here.",
            );
            return None;
        }
        let outcome = self.outcome(&pairs);
        let page = match &outcome {
            Ok(_) => format!(
                "Signed in to {}. You can close this tab and go back to the terminal.",
                self.platform
            ),
            Err(OAuthError::Denied { .. }) => {
                "Access was denied. You can close this tab; run `reelsmith accounts add` again to retry."
                    .to_string()
            }
            Err(OAuthError::StateMismatch { .. }) => {
                "This sign-in does not belong to the login reelsmith is waiting for; nothing was accepted. Start again from the terminal."
                    .to_string()
            }
            Err(_) => "The sign-in failed; see the terminal.".to_string(),
        };
        respond(&mut stream, if outcome.is_ok() { 200 } else { 400 }, &page);
        Some(outcome)
    }

    fn outcome(&self, pairs: &[(String, String)]) -> Result<String, OAuthError> {
        let platform = self.platform;
        let state = param(pairs, "state");
        if state.is_some_and(|s| s != self.state) {
            return Err(OAuthError::StateMismatch { platform });
        }
        if let Some(error) = param(pairs, "error") {
            return Err(redirect_error(platform, error, pairs));
        }
        if state.is_none() {
            // The platforms all echo `state`: a code without it is not this login's.
            return Err(OAuthError::StateMismatch { platform });
        }
        match param(pairs, "code") {
            Some(c) if !c.is_empty() => Ok(c.to_string()),
            _ => Err(OAuthError::Failed {
                platform,
                message: "the redirect carried no `code`".into(),
            }),
        }
    }

    /// The code from what the user pasted: the address the browser was sent to
    /// (`…?code=…&state=…`, its `state` checked) or the bare code.
    pub fn code_from_pasted(&self, text: &str) -> Result<String, OAuthError> {
        let platform = self.platform;
        let t = text.trim();
        if t.is_empty() {
            return Err(OAuthError::BadPaste {
                platform,
                message: "nothing was pasted".into(),
            });
        }
        let looks_like_url = t.contains("://") || t.contains('?') || t.contains("code=");
        if !looks_like_url {
            if t.contains(char::is_whitespace) {
                return Err(OAuthError::BadPaste {
                    platform,
                    message: "the pasted text is neither an address nor a code; paste the whole address the browser was sent to".into(),
                });
            }
            return Ok(percent_decode(t));
        }
        let after = t.split_once('?').map_or(t, |(_, q)| q);
        let query = after.split('#').next().unwrap_or("");
        let pairs = query_pairs(query);
        if let Some(state) = param(&pairs, "state") {
            if state != self.state {
                return Err(OAuthError::StateMismatch { platform });
            }
        }
        if let Some(error) = param(&pairs, "error") {
            return Err(redirect_error(platform, error, &pairs));
        }
        match param(&pairs, "code") {
            Some(c) if !c.is_empty() => Ok(c.to_string()),
            _ => Err(OAuthError::BadPaste {
                platform,
                message: "the pasted address has no `code=`; paste the whole address the browser was sent to after allowing access".into(),
            }),
        }
    }

    /// [`exchange_code`] with this flow's redirect URI and verifier; a token whose answer named
    /// no scopes (Facebook's) gets the scopes asked for.
    pub fn exchange(
        &self,
        client: &Client,
        endpoints: &Endpoints,
        secrets: &ClientSecrets,
        code: &str,
    ) -> Result<Token, OAuthError> {
        let mut token = exchange_code(
            client,
            endpoints,
            self.platform,
            secrets,
            code,
            &self.redirect_uri,
            &self.verifier,
        )?;
        if token.scopes.is_empty() {
            token.scopes = self.scopes.clone();
        }
        Ok(token)
    }
}

fn redirect_error(platform: Platform, error: &str, pairs: &[(String, String)]) -> OAuthError {
    if error == "access_denied" || param(pairs, "error_reason") == Some("user_denied") {
        return OAuthError::Denied { platform };
    }
    let desc = param(pairs, "error_description").unwrap_or("");
    OAuthError::Failed {
        platform,
        message: format!("the consent page answered {}", describe(error, desc)),
    }
}

fn respond(stream: &mut TcpStream, status: u16, text: &str) {
    let reason = if status == 200 {
        "OK"
    } else if status == 404 {
        "Not Found"
    } else {
        "Bad Request"
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>reelsmith</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><p>{}</p></body></html>",
        text.replace('&', "&amp;").replace('<', "&lt;")
    );
    let out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.flush();
}
