//! [`FakeOAuth`]: one fake of the OAuth servers of all three platforms, for this crate's tests
//! and the studio's end-to-end tests. Serve it with [`Server`](super::Server) and point every
//! OAuth base URL at it ([`FakeOAuth::endpoints`]); it answers as the platforms document:
//!
//! | route | platform | what |
//! |---|---|---|
//! | `POST /device/code` | Google | device codes (TV clients; device-flow scopes only) |
//! | `POST /token` | Google | device, refresh and authorization-code grants |
//! | `GET /o/oauth2/v2/auth` | Google | the consent page: 302 to the redirect URI |
//! | `POST /v2/oauth/token/` | TikTok | authorization-code and refresh grants |
//! | `GET /v2/auth/authorize/` | TikTok | the consent page |
//! | `GET /{version}/oauth/access_token` | Facebook | code exchange, `fb_exchange_token` |
//! | `GET /{version}/dialog/oauth` | Facebook | the consent page |
//!
//! The token endpoints check the fields the real servers check (client id and secret,
//! `grant_type`, the form content type, `redirect_uri` equal to the consent's, the PKCE
//! verifier against the challenge — base64url S256 for Google, hex SHA-256 for TikTok) and
//! answer errors in each platform's shape (`{"error", "error_description"}`, or the Graph API's
//! `{"error": {"message", "type", "code"}}`). Google's device-flow statuses are those of its
//! documentation (428 `authorization_pending`, 403 `slow_down` / `access_denied`, 400
//! `expired_token`); clients should read the `error` field, as ours does.
//!
//! Everything is recorded ([`requests`](FakeOAuth::requests),
//! [`poll_times`](FakeOAuth::poll_times)) and every token minted is listed
//! ([`issued_tokens`](FakeOAuth::issued_tokens)) so a test can assert none of them leaks into
//! an output. A studio test composing several fakes on one
//! server calls [`route`](FakeOAuth::route), which answers `None` for paths it does not serve.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{Handler, Reply, Request};
use crate::endpoints::Endpoints;
use crate::http::{query, urlencode};
use crate::oauth::{
    base64url, query_pairs, ClientSecrets, SecretsKind, DEVICE_FLOW_SCOPES, DEVICE_GRANT,
};
use crate::Platform;

/// The fake's Google OAuth client id.
pub const GOOGLE_CLIENT_ID: &str = "123-fake.apps.googleusercontent.com";
/// The fake's Google client secret.
pub const GOOGLE_CLIENT_SECRET: &str = "GOCSPX-fake-google-secret";
/// The fake's TikTok client key.
pub const TIKTOK_CLIENT_KEY: &str = "awfakeclientkey";
/// The fake's TikTok client secret.
pub const TIKTOK_CLIENT_SECRET: &str = "fake-tiktok-secret";
/// The fake's Facebook app id.
pub const FACEBOOK_APP_ID: &str = "1234567890";
/// The fake's Facebook app secret.
pub const FACEBOOK_APP_SECRET: &str = "fake-facebook-secret";
/// The user code the fake shows.
pub const USER_CODE: &str = "FAKE-CODE";
/// The verification URL the fake gives.
pub const VERIFICATION_URL: &str = "https://www.google.com/device";
/// TikTok's `open_id` of the fake's user.
pub const OPEN_ID: &str = "fake-open-id-0001";

/// How the fake answers a device code's polls: `pending` × `authorization_pending`, then one
/// `slow_down` if asked, then the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceScript {
    pub pending: usize,
    pub slow_down: bool,
    pub outcome: DeviceOutcome,
}

/// The end of a device code's polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceOutcome {
    /// Tokens.
    Approve,
    /// `access_denied`.
    Deny,
    /// `expired_token`.
    Expire,
}

impl DeviceScript {
    pub fn approve_after(pending: usize) -> Self {
        Self {
            pending,
            slow_down: false,
            outcome: DeviceOutcome::Approve,
        }
    }

    pub fn deny_after(pending: usize) -> Self {
        Self {
            outcome: DeviceOutcome::Deny,
            ..Self::approve_after(pending)
        }
    }

    pub fn expire_after(pending: usize) -> Self {
        Self {
            outcome: DeviceOutcome::Expire,
            ..Self::approve_after(pending)
        }
    }

    /// One `slow_down` after the pending answers.
    pub fn with_slow_down(mut self) -> Self {
        self.slow_down = true;
        self
    }
}

/// The type of the fake's Google client: device codes are only for TV clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoogleClientType {
    /// "TVs and Limited Input devices".
    Tv,
    /// "Desktop app": `/device/code` answers 401 `invalid_client` ("Invalid client type.").
    Desktop,
}

/// What the user does on the fake's consent pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consent {
    Allow,
    Deny,
}

/// A request the fake served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The form body's fields (POST) or the query's (GET), decoded.
    pub fields: BTreeMap<String, String>,
    pub status: u16,
    pub at: Instant,
}

impl Recorded {
    pub fn field(&self, k: &str) -> Option<&str> {
        self.fields.get(k).map(String::as_str)
    }
}

#[derive(Clone, Debug)]
struct Device {
    polls: usize,
    scope: String,
    done: bool,
}

#[derive(Clone, Debug)]
struct Grant {
    platform: Platform,
    challenge: Option<String>,
    redirect_uri: String,
    scope: String,
    used: bool,
}

#[derive(Debug)]
struct Inner {
    script: DeviceScript,
    interval: u64,
    expires_in: u64,
    client_type: GoogleClientType,
    consent: Consent,
    devices: BTreeMap<String, Device>,
    grants: BTreeMap<String, Grant>,
    /// Valid refresh tokens: platform and scope.
    refresh: BTreeMap<String, (Platform, String)>,
    /// Valid access tokens.
    access: BTreeMap<String, Platform>,
    issued: Vec<String>,
    n: u64,
    log: Vec<Recorded>,
    polls: Vec<Instant>,
    faults: VecDeque<u16>,
}

impl Inner {
    fn mint(&mut self, prefix: &str) -> String {
        self.n += 1;
        let t = format!("{prefix}{:04}", self.n);
        self.issued.push(t.clone());
        t
    }
}

/// The fake OAuth servers (cheap to clone: clones share their state).
#[derive(Clone, Debug)]
pub struct FakeOAuth {
    inner: Arc<Mutex<Inner>>,
}

impl Default for FakeOAuth {
    fn default() -> Self {
        Self::new()
    }
}

fn google_err(status: u16, error: &str, desc: &str) -> Reply {
    Reply::json(status, &json!({"error": error, "error_description": desc}))
}

fn tiktok_err(error: &str, desc: &str) -> Reply {
    Reply::json(
        400,
        &json!({"error": error, "error_description": desc, "log_id": "fake-log-id"}),
    )
}

fn graph_err(code: i64, subcode: Option<i64>, message: &str) -> Reply {
    let mut e = json!({"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "FakeTrace"});
    if let Some(s) = subcode {
        e["error_subcode"] = json!(s);
    }
    Reply::json(400, &json!({ "error": e }))
}

fn loopback(uri: &str) -> bool {
    ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
        .iter()
        .any(|p| uri.starts_with(p))
}

fn s256(verifier: &str) -> String {
    base64url(&Sha256::digest(verifier.as_bytes()))
}

fn status_of(r: &Reply) -> u16 {
    match r {
        Reply::Respond { status, .. } => *status,
        Reply::Close => 0,
    }
}

impl FakeOAuth {
    /// A fake whose device codes are approved at the first poll (interval 5 s, valid 1800 s),
    /// with a TV Google client and a user who allows access.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                script: DeviceScript::approve_after(0),
                interval: 5,
                expires_in: 1800,
                client_type: GoogleClientType::Tv,
                consent: Consent::Allow,
                devices: BTreeMap::new(),
                grants: BTreeMap::new(),
                refresh: BTreeMap::new(),
                access: BTreeMap::new(),
                issued: Vec::new(),
                n: 0,
                log: Vec::new(),
                polls: Vec::new(),
                faults: VecDeque::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Endpoints whose OAuth URLs (token endpoints and consent pages) all point at `base` (the
    /// fake server's URL); the API base URLs point there too — replace them when the platform
    /// fakes run elsewhere.
    pub fn endpoints(base: &str) -> Endpoints {
        Endpoints {
            google_oauth: base.into(),
            google_auth: format!("{base}/o/oauth2/v2/auth"),
            youtube_api: base.into(),
            tiktok_api: base.into(),
            tiktok_auth: format!("{base}/v2/auth/authorize/"),
            instagram_api: base.into(),
            instagram_upload: base.into(),
            facebook_auth: format!("{base}/v21.0/dialog/oauth"),
        }
    }

    /// The client secrets the fake accepts for `platform`.
    pub fn client_secrets(platform: Platform) -> ClientSecrets {
        let (id, secret) = match platform {
            Platform::YouTube => (GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET),
            Platform::TikTok => (TIKTOK_CLIENT_KEY, TIKTOK_CLIENT_SECRET),
            Platform::Instagram => (FACEBOOK_APP_ID, FACEBOOK_APP_SECRET),
        };
        ClientSecrets {
            client_id: id.into(),
            client_secret: secret.into(),
            kind: SecretsKind::for_platform(platform),
        }
    }

    /// The content of a client secrets file for `platform`, as the user would download or
    /// write it (Google's `{"installed": …}`, TikTok's and Facebook's small JSON).
    pub fn client_secrets_json(platform: Platform) -> String {
        let v = match platform {
            Platform::YouTube => json!({"installed": {
                "client_id": GOOGLE_CLIENT_ID,
                "project_id": "fake-project",
                "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": "https://oauth2.googleapis.com/token",
                "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
                "client_secret": GOOGLE_CLIENT_SECRET,
                "redirect_uris": ["http://localhost"],
            }}),
            Platform::TikTok => {
                json!({"client_key": TIKTOK_CLIENT_KEY, "client_secret": TIKTOK_CLIENT_SECRET})
            }
            Platform::Instagram => {
                json!({"app_id": FACEBOOK_APP_ID, "app_secret": FACEBOOK_APP_SECRET})
            }
        };
        v.to_string()
    }

    /// How the next device codes' polls are answered.
    pub fn set_device_script(&self, script: DeviceScript) {
        self.lock().script = script;
    }

    /// The polling interval (seconds) the device codes announce.
    pub fn set_interval(&self, secs: u64) {
        self.lock().interval = secs;
    }

    /// How long (seconds) the device codes say they stay valid.
    pub fn set_expires_in(&self, secs: u64) {
        self.lock().expires_in = secs;
    }

    pub fn set_google_client_type(&self, t: GoogleClientType) {
        self.lock().client_type = t;
    }

    /// What the user does on the consent pages.
    pub fn set_consent(&self, c: Consent) {
        self.lock().consent = c;
    }

    /// The next `n` requests to a token endpoint answer `status` (e.g. 503).
    pub fn fail_next(&self, status: u16, n: usize) {
        let mut g = self.lock();
        for _ in 0..n {
            g.faults.push_back(status);
        }
    }

    /// Makes `token` a valid refresh token of `platform` (a token the studio stored earlier).
    pub fn add_refresh_token(&self, platform: Platform, token: &str, scope: &str) {
        let mut g = self.lock();
        g.refresh.insert(token.into(), (platform, scope.into()));
        g.issued.push(token.into());
    }

    /// Makes `token` a valid access token of `platform` (Facebook: one that can be exchanged).
    pub fn add_access_token(&self, platform: Platform, token: &str) {
        let mut g = self.lock();
        g.access.insert(token.into(), platform);
        g.issued.push(token.into());
    }

    /// Revokes a refresh or access token (the user removed the app, or 7 days passed).
    pub fn revoke(&self, token: &str) {
        let mut g = self.lock();
        g.refresh.remove(token);
        g.access.remove(token);
    }

    /// The platform of a valid access token (for API fakes checking `Authorization: Bearer`).
    pub fn access_token_platform(&self, token: &str) -> Option<Platform> {
        self.lock().access.get(token).copied()
    }

    /// Every token and code the fake minted or was given.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock().issued.clone()
    }

    /// Every request served, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().log.clone()
    }

    /// The requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// When each device-grant poll arrived (real time).
    pub fn poll_times(&self) -> Vec<Instant> {
        self.lock().polls.clone()
    }

    /// The real time between consecutive device-grant polls.
    pub fn poll_gaps(&self) -> Vec<Duration> {
        self.poll_times()
            .windows(2)
            .map(|w| w[1].duration_since(w[0]))
            .collect()
    }

    /// What the consent page at `auth_url` does with the fake's [`Consent`]: the address the
    /// browser is redirected to (`redirect_uri?code=…&state=…`, or `error=access_denied`), or
    /// why the request is refused.
    pub fn consent(&self, auth_url: &str) -> Result<String, String> {
        let (before, q) = auth_url.split_once('?').unwrap_or((auth_url, ""));
        let path = before.split_once("://").map_or(before, |(_, rest)| {
            rest.find('/').map_or("/", |i| &rest[i..])
        });
        self.consent_at(path, q).map_err(|(_, m)| m)
    }

    fn consent_at(&self, path: &str, q: &str) -> Result<String, (u16, String)> {
        let pairs: BTreeMap<String, String> = query_pairs(q).into_iter().collect();
        let get = |k: &str| pairs.get(k).map(String::as_str).unwrap_or("");
        let bad = |m: &str| Err((400u16, m.to_string()));
        let platform = if path.ends_with("/o/oauth2/v2/auth") {
            Platform::YouTube
        } else if path.ends_with("/v2/auth/authorize/") || path.ends_with("/v2/auth/authorize") {
            Platform::TikTok
        } else if path.ends_with("/dialog/oauth") {
            Platform::Instagram
        } else {
            return Err((404, format!("no consent page at {path}")));
        };
        let (id_key, id) = match platform {
            Platform::YouTube => ("client_id", GOOGLE_CLIENT_ID),
            Platform::TikTok => ("client_key", TIKTOK_CLIENT_KEY),
            Platform::Instagram => ("client_id", FACEBOOK_APP_ID),
        };
        if get(id_key) != id {
            return bad(&format!("unknown {id_key}"));
        }
        if get("response_type") != "code" {
            return bad("response_type must be code");
        }
        let redirect = get("redirect_uri").to_string();
        if !loopback(&redirect) {
            return bad("redirect_uri must be a loopback address with a port");
        }
        if get("scope").is_empty() {
            return bad("missing scope");
        }
        if get("state").is_empty() {
            return bad("missing state");
        }
        let challenge = match platform {
            Platform::Instagram => None,
            _ => {
                if get("code_challenge_method") != "S256" {
                    return bad("code_challenge_method must be S256");
                }
                let c = get("code_challenge");
                let ok = match platform {
                    // TikTok desktop: hex SHA-256.
                    Platform::TikTok => c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()),
                    _ => c.len() == 43,
                };
                if !ok {
                    return bad("malformed code_challenge");
                }
                Some(c.to_string())
            }
        };
        let state = get("state").to_string();
        let sep = if redirect.contains('?') { '&' } else { '?' };
        let fragment = if platform == Platform::Instagram {
            "#_=_"
        } else {
            ""
        };
        let mut g = self.lock();
        if g.consent == Consent::Deny {
            let q = match platform {
                Platform::Instagram => query(&[
                    ("error", "access_denied"),
                    ("error_code", "200"),
                    ("error_description", "Permissions error"),
                    ("error_reason", "user_denied"),
                    ("state", &state),
                ]),
                _ => query(&[
                    ("error", "access_denied"),
                    ("error_description", "The user denied the request"),
                    ("state", &state),
                ]),
            };
            return Ok(format!("{redirect}{sep}{q}{fragment}"));
        }
        let code = g.mint(match platform {
            Platform::YouTube => "4/0fake-code-",
            Platform::TikTok => "fake-tiktok-code-",
            Platform::Instagram => "AQfake-fb-code-",
        });
        let scope = get("scope").to_string();
        g.grants.insert(
            code.clone(),
            Grant {
                platform,
                challenge,
                redirect_uri: redirect.clone(),
                scope: scope.clone(),
                used: false,
            },
        );
        let q = match platform {
            Platform::YouTube => query(&[("state", &state), ("code", &code), ("scope", &scope)]),
            Platform::TikTok => query(&[("code", &code), ("scopes", &scope), ("state", &state)]),
            Platform::Instagram => query(&[("code", &code), ("state", &state)]),
        };
        Ok(format!("{redirect}{sep}{q}{fragment}"))
    }

    /// Answers `req` when its path is one of the fake's routes.
    pub fn route(&self, req: &Request) -> Option<Reply> {
        let path = req.head.path().to_string();
        let method = req.head.method.clone();
        let token_route = path == "/device/code"
            || path == "/token"
            || path == "/v2/oauth/token/"
            || path.ends_with("/oauth/access_token");
        let consent_route = path.ends_with("/o/oauth2/v2/auth")
            || path.starts_with("/v2/auth/authorize")
            || path.ends_with("/dialog/oauth");
        if !token_route && !consent_route {
            return None;
        }
        let body = String::from_utf8_lossy(&req.body).into_owned();
        let q = req.head.target.split_once('?').map_or("", |(_, q)| q);
        let fields: BTreeMap<String, String> = if method == "GET" {
            query_pairs(q).into_iter().collect()
        } else {
            query_pairs(&body).into_iter().collect()
        };
        let fault = if token_route {
            self.lock().faults.pop_front()
        } else {
            None
        };
        let reply = if let Some(status) = fault {
            Reply::json(status, &json!({"error": "backend_error"}))
        } else if consent_route {
            match self.consent_at(&path, q) {
                Ok(loc) => Reply::status(302).with_header("Location", &loc),
                Err((status, m)) => Reply::json(
                    status,
                    &json!({"error": "invalid_request", "error_description": m}),
                ),
            }
        } else {
            let form_ok = method == "GET"
                || req
                    .head
                    .header("content-type")
                    .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
            if !form_ok {
                google_err(
                    400,
                    "invalid_request",
                    "the body must be application/x-www-form-urlencoded",
                )
            } else {
                match (method.as_str(), path.as_str()) {
                    ("POST", "/device/code") => self.device_code(&fields),
                    ("POST", "/token") => self.google_token(&fields),
                    ("POST", "/v2/oauth/token/") => self.tiktok_token(&fields),
                    ("GET", p) if p.ends_with("/oauth/access_token") => {
                        self.facebook_token(&fields)
                    }
                    _ => google_err(405, "invalid_request", "method not allowed"),
                }
            }
        };
        self.lock().log.push(Recorded {
            method,
            path,
            fields,
            status: status_of(&reply),
            at: Instant::now(),
        });
        Some(reply)
    }

    fn device_code(&self, f: &BTreeMap<String, String>) -> Reply {
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        let mut g = self.lock();
        if get("client_id") != GOOGLE_CLIENT_ID {
            return google_err(401, "invalid_client", "The OAuth client was not found.");
        }
        if g.client_type == GoogleClientType::Desktop {
            return google_err(401, "invalid_client", "Invalid client type.");
        }
        let scope = get("scope").to_string();
        if scope.is_empty() {
            return google_err(400, "invalid_scope", "Missing required parameter: scope");
        }
        if let Some(bad) = scope.split(' ').find(|s| {
            !DEVICE_FLOW_SCOPES.contains(s) && !matches!(*s, "openid" | "email" | "profile")
        }) {
            return google_err(
                400,
                "invalid_scope",
                &format!("Some requested scopes cannot be shown: [{bad}]"),
            );
        }
        let code = g.mint("AH-fake-device-code-");
        g.devices.insert(
            code.clone(),
            Device {
                polls: 0,
                scope,
                done: false,
            },
        );
        Reply::json(
            200,
            &json!({
                "device_code": code,
                "user_code": USER_CODE,
                "verification_url": VERIFICATION_URL,
                "expires_in": g.expires_in,
                "interval": g.interval,
            }),
        )
    }

    fn google_token(&self, f: &BTreeMap<String, String>) -> Reply {
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        let mut g = self.lock();
        if get("client_id") != GOOGLE_CLIENT_ID {
            return google_err(401, "invalid_client", "The OAuth client was not found.");
        }
        if get("client_secret").is_empty() {
            return google_err(400, "invalid_request", "client_secret is missing.");
        }
        if get("client_secret") != GOOGLE_CLIENT_SECRET {
            return google_err(401, "invalid_client", "Unauthorized");
        }
        match get("grant_type") {
            DEVICE_GRANT => {
                g.polls.push(Instant::now());
                let script = g.script;
                let Some(d) = g.devices.get_mut(get("device_code")) else {
                    return google_err(400, "invalid_grant", "Malformed auth code.");
                };
                if d.done {
                    return google_err(400, "invalid_grant", "Bad Request");
                }
                d.polls += 1;
                let n = d.polls;
                let scope = d.scope.clone();
                let slow_at = script.pending + 1;
                if n <= script.pending {
                    return google_err(428, "authorization_pending", "Precondition Required");
                }
                if script.slow_down && n == slow_at {
                    return google_err(403, "slow_down", "Forbidden");
                }
                d.done = true;
                match script.outcome {
                    DeviceOutcome::Deny => google_err(403, "access_denied", "Forbidden"),
                    DeviceOutcome::Expire => google_err(400, "expired_token", "Bad Request"),
                    DeviceOutcome::Approve => google_grant(&mut g, &scope, true),
                }
            }
            "refresh_token" => match g.refresh.get(get("refresh_token")).cloned() {
                Some((Platform::YouTube, scope)) => google_grant(&mut g, &scope, false),
                _ => google_err(400, "invalid_grant", "Token has been expired or revoked."),
            },
            "authorization_code" => {
                let Some(grant) = g.grants.get(get("code")).cloned() else {
                    return google_err(400, "invalid_grant", "Malformed auth code.");
                };
                if grant.platform != Platform::YouTube || grant.used {
                    return google_err(400, "invalid_grant", "Bad Request");
                }
                if grant.redirect_uri != get("redirect_uri") {
                    return google_err(400, "redirect_uri_mismatch", "Bad Request");
                }
                if let Some(ch) = &grant.challenge {
                    let v = get("code_verifier");
                    if v.is_empty() {
                        return google_err(400, "invalid_grant", "Missing code verifier.");
                    }
                    if &s256(v) != ch {
                        return google_err(400, "invalid_grant", "Invalid code verifier.");
                    }
                }
                if let Some(gr) = g.grants.get_mut(get("code")) {
                    gr.used = true;
                }
                google_grant(&mut g, &grant.scope, true)
            }
            other => google_err(
                400,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            ),
        }
    }

    fn tiktok_token(&self, f: &BTreeMap<String, String>) -> Reply {
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        let mut g = self.lock();
        if get("client_key") != TIKTOK_CLIENT_KEY || get("client_secret") != TIKTOK_CLIENT_SECRET {
            return tiktok_err("invalid_client", "Client key or secret is incorrect.");
        }
        let scope = match get("grant_type") {
            "authorization_code" => {
                let Some(grant) = g.grants.get(get("code")).cloned() else {
                    return tiktok_err("invalid_grant", "Authorization code is expired.");
                };
                if grant.platform != Platform::TikTok || grant.used {
                    return tiktok_err("invalid_grant", "Authorization code is expired.");
                }
                if grant.redirect_uri != get("redirect_uri") {
                    return tiktok_err("invalid_request", "Redirect URI does not match.");
                }
                let v = get("code_verifier");
                let ok = grant.challenge.as_deref().is_some_and(|c| {
                    !v.is_empty() && hex::encode(Sha256::digest(v.as_bytes())) == c
                });
                if !ok {
                    return tiktok_err(
                        "invalid_request",
                        "Code verifier or code challenge is invalid.",
                    );
                }
                if let Some(gr) = g.grants.get_mut(get("code")) {
                    gr.used = true;
                }
                grant.scope
            }
            "refresh_token" => match g.refresh.get(get("refresh_token")).cloned() {
                Some((Platform::TikTok, scope)) => {
                    g.refresh.remove(get("refresh_token"));
                    scope
                }
                _ => return tiktok_err("invalid_grant", "Refresh token is invalid or expired."),
            },
            _ => return tiktok_err("invalid_request", "Unsupported grant_type."),
        };
        let access = g.mint("act.fake-access-");
        let refresh = g.mint("rft.fake-refresh-");
        g.access.insert(access.clone(), Platform::TikTok);
        g.refresh
            .insert(refresh.clone(), (Platform::TikTok, scope.clone()));
        Reply::json(
            200,
            &json!({
                "access_token": access,
                "expires_in": 86400,
                "open_id": OPEN_ID,
                "refresh_expires_in": 31_536_000,
                "refresh_token": refresh,
                "scope": scope,
                "token_type": "Bearer",
            }),
        )
    }

    fn facebook_token(&self, f: &BTreeMap<String, String>) -> Reply {
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        let mut g = self.lock();
        if get("client_id") != FACEBOOK_APP_ID {
            return graph_err(
                101,
                None,
                "Error validating application. Invalid application ID.",
            );
        }
        if get("client_secret") != FACEBOOK_APP_SECRET {
            return graph_err(1, None, "Error validating client secret.");
        }
        if get("grant_type") == "fb_exchange_token" {
            if g.access.get(get("fb_exchange_token")) != Some(&Platform::Instagram) {
                return graph_err(
                    190,
                    Some(463),
                    "Error validating access token: Session has expired.",
                );
            }
            let long = g.mint("EAAfake-long-");
            g.access.insert(long.clone(), Platform::Instagram);
            return Reply::json(
                200,
                &json!({"access_token": long, "token_type": "bearer", "expires_in": 5_183_944}),
            );
        }
        let Some(grant) = g.grants.get(get("code")).cloned() else {
            return graph_err(100, None, "Invalid verification code format.");
        };
        if grant.platform != Platform::Instagram {
            return graph_err(100, None, "Invalid verification code format.");
        }
        if grant.used {
            return graph_err(100, None, "This authorization code has been used.");
        }
        if grant.redirect_uri != get("redirect_uri") {
            return graph_err(
                100,
                None,
                "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
            );
        }
        if let Some(gr) = g.grants.get_mut(get("code")) {
            gr.used = true;
        }
        let short = g.mint("EAAfake-short-");
        g.access.insert(short.clone(), Platform::Instagram);
        Reply::json(
            200,
            &json!({"access_token": short, "token_type": "bearer", "expires_in": 5400}),
        )
    }
}

/// A Google token answer (with a refresh token when `with_refresh`).
fn google_grant(g: &mut Inner, scope: &str, with_refresh: bool) -> Reply {
    let access = g.mint("ya29.fake-access-");
    g.access.insert(access.clone(), Platform::YouTube);
    let mut v = json!({
        "access_token": access,
        "expires_in": 3599,
        "scope": scope,
        "token_type": "Bearer",
    });
    if with_refresh {
        let refresh = g.mint("1//fake-refresh-");
        g.refresh
            .insert(refresh.clone(), (Platform::YouTube, scope.to_string()));
        v["refresh_token"] = Value::String(refresh);
    }
    Reply::json(200, &v)
}

impl Handler for FakeOAuth {
    fn handle(&self, req: &Request) -> Reply {
        self.route(req).unwrap_or_else(|| {
            Reply::json(
                404,
                &json!({"error": "not_found", "error_description": format!("no route {}", urlencode(req.head.path()))}),
            )
        })
    }
}
