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

mod consent;
mod tokens;

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
