//! OAuth for a headless server: Google's device flow, the loopback redirect flow (Google
//! Desktop clients, TikTok Login Kit for Desktop, Facebook Login for Instagram), code exchange,
//! and token refresh. The studio stores the [`Token`]s (0600 or the keyring) and runs the
//! `accounts` commands; this module speaks the protocols.
//!
//! Which flow:
//! - **YouTube without captions**: the device flow ([`device_start`], [`device_poll`]) with a
//!   "TVs and Limited Input devices" client. Google allows [`YOUTUBE`] there (videos,
//!   thumbnails, localizations) but not [`YOUTUBE_FORCE_SSL`], which `captions.insert` needs
//!   ([`google_flow`] says which flow a scope set needs).
//! - **YouTube with captions, TikTok, Instagram**: the loopback redirect flow ([`LoopbackFlow`]):
//!   a one-request HTTP listener on `127.0.0.1:PORT` that a laptop's browser reaches through
//!   `ssh -L PORT:127.0.0.1:PORT user@server` ([`LoopbackFlow::ssh_command`]); without a tunnel,
//!   the user pastes the address the browser was redirected to
//!   ([`LoopbackFlow::code_from_pasted`]).
//!
//! Nothing here prints, logs or puts a token, a code or a client secret in an error: [`Token`],
//! [`ClientSecrets`] and [`DeviceCode`] redact them in `Debug`, and server messages are scrubbed
//! of the values a request carried.

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::endpoints::Endpoints;
use crate::http::{self, Body, Client, Response};
use crate::Platform;

/// `https://www.googleapis.com/auth/youtube`: manage the account (upload, update, thumbnails,
/// localizations). Allowed in Google's device flow.
pub const YOUTUBE: &str = "https://www.googleapis.com/auth/youtube";
/// `…/youtube.force-ssl`: everything [`YOUTUBE`] allows plus captions (`captions.insert`).
/// Not allowed in the device flow: loopback flow only.
pub const YOUTUBE_FORCE_SSL: &str = "https://www.googleapis.com/auth/youtube.force-ssl";
/// `…/youtube.readonly`: read the account. Allowed in the device flow.
pub const YOUTUBE_READONLY: &str = "https://www.googleapis.com/auth/youtube.readonly";
/// `…/youtube.upload`: upload videos only.
pub const YOUTUBE_UPLOAD: &str = "https://www.googleapis.com/auth/youtube.upload";

/// The YouTube scopes Google's device flow accepts ("Allowed scopes" of *OAuth 2.0 for TV and
/// Limited-Input Device Applications*).
pub const DEVICE_FLOW_SCOPES: [&str; 2] = [YOUTUBE, YOUTUBE_READONLY];

/// TikTok scopes (Content Posting API: direct post and upload to the inbox; `user.info.basic`
/// names the account), sent comma-separated.
pub const TIKTOK_SCOPES: [&str; 3] = ["user.info.basic", "video.publish", "video.upload"];

/// Facebook Login permissions for the Instagram API with Facebook Login, sent comma-separated:
/// `instagram_basic` + `instagram_content_publish` + `pages_read_engagement` are what content
/// publishing requires; `pages_show_list` lists the user's Pages (to find the linked Instagram
/// professional account); `business_management` is needed when the Page belongs to a business
/// portfolio.
pub const INSTAGRAM_SCOPES: [&str; 5] = [
    "instagram_basic",
    "instagram_content_publish",
    "pages_show_list",
    "pages_read_engagement",
    "business_management",
];

/// The Graph API version of the Facebook token endpoints.
pub const GRAPH_VERSION: &str = "v21.0";

/// The device-code grant type (RFC 8628).
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 §3.5: `slow_down` adds 5 seconds to the polling interval.
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// Facebook long-lived user tokens last about 60 days; used when an answer omits `expires_in`.
const FACEBOOK_LONG_LIVED: Duration = Duration::from_secs(60 * 24 * 3600);

/// The scopes reelsmith asks for on `platform`; YouTube with `captions` needs
/// [`YOUTUBE_FORCE_SSL`] (loopback flow), without it [`YOUTUBE`] (device flow allowed).
pub fn default_scopes(platform: Platform, captions: bool) -> Vec<&'static str> {
    match platform {
        Platform::YouTube if captions => vec![YOUTUBE_FORCE_SSL],
        Platform::YouTube => vec![YOUTUBE],
        Platform::TikTok => TIKTOK_SCOPES.to_vec(),
        Platform::Instagram => INSTAGRAM_SCOPES.to_vec(),
    }
}

/// How a Google account can be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoogleFlow {
    /// Every scope is allowed in the device flow ("TVs and Limited Input devices" client).
    Device,
    /// Some scope (e.g. [`YOUTUBE_FORCE_SSL`] for captions) needs the loopback redirect flow
    /// ("Desktop app" client).
    Loopback,
}

/// Which flow a Google scope set needs (`openid`, `email` and `profile` are allowed everywhere).
pub fn google_flow(scopes: &[&str]) -> GoogleFlow {
    let allowed =
        |s: &&str| DEVICE_FLOW_SCOPES.contains(s) || matches!(*s, "openid" | "email" | "profile");
    if scopes.iter().all(allowed) {
        GoogleFlow::Device
    } else {
        GoogleFlow::Loopback
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// ---------------------------------------------------------------------------------------------
// Errors

/// What went wrong. No variant's message contains a token, a code or a client secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The client secrets file is unusable; `message` names the field.
    #[error("{file}: {message}")]
    ClientSecrets { file: String, message: String },
    /// Client secrets of another platform were given.
    #[error("{platform}: these client secrets are for {given}, not {platform}; pass the right file with --client-secrets")]
    WrongSecrets { platform: Platform, given: Platform },
    /// A scope Google's device flow does not allow.
    #[error("youtube: {scope} is not allowed in Google's device flow (captions need youtube.force-ssl); use the loopback redirect flow with a \"Desktop app\" client")]
    DeviceScope { scope: String },
    /// The user refused on the consent page.
    #[error("{platform}: access was denied on the consent page; run `reelsmith accounts add {platform}` again and allow access")]
    Denied { platform: Platform },
    /// The device code expired before the user approved it.
    #[error("{platform}: the code expired before it was approved; run `reelsmith accounts add {platform}` again and enter the new code sooner")]
    Expired { platform: Platform },
    /// A redirect whose `state` is not this login's (an older tab, another login, a forgery).
    #[error("{platform}: the redirect's `state` does not belong to this login (an older browser tab or another login attempt); nothing was accepted — run `reelsmith accounts add {platform}` again")]
    StateMismatch { platform: Platform },
    /// No browser came back in time.
    #[error("{platform}: no browser reached http://127.0.0.1:{port}/ within {secs} s; is the tunnel open (`ssh -L {port}:127.0.0.1:{port} user@server`)? Or paste the address the browser was sent to")]
    Timeout {
        platform: Platform,
        port: u16,
        secs: u64,
    },
    /// The loopback listener could not be opened.
    #[error("{platform}: cannot listen on 127.0.0.1:{port}: {message}; choose another --port")]
    Listen {
        platform: Platform,
        port: u16,
        message: String,
    },
    /// Pasted text that holds no code.
    #[error("{platform}: {message}")]
    BadPaste { platform: Platform, message: String },
    /// A refresh the platform refused; `message` names the likely cause and what to do.
    #[error("{platform}: {message}")]
    Refused { platform: Platform, message: String },
    /// The platform answered with an error that retrying will not fix.
    #[error("{platform}: {message}")]
    Failed { platform: Platform, message: String },
    /// No answer, or a temporary one (5xx, 429): the caller retries later.
    #[error("{platform}: {message} (temporary; try again later)")]
    Transient { platform: Platform, message: String },
}

impl OAuthError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, OAuthError::Transient { .. })
    }

    /// Whether the user has to run `accounts add` again (or fix the app's settings).
    pub fn needs_new_login(&self) -> bool {
        matches!(
            self,
            OAuthError::Refused { .. } | OAuthError::Denied { .. } | OAuthError::Expired { .. }
        )
    }
}

fn secrets_err(file: &str, message: impl Into<String>) -> OAuthError {
    OAuthError::ClientSecrets {
        file: file.to_string(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Client secrets

/// Whose OAuth client a [`ClientSecrets`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretsKind {
    /// A Google "Desktop app" or "TVs and Limited Input devices" client (`installed`).
    Google,
    /// A TikTok app (client key and secret).
    TikTok,
    /// A Facebook (Meta) app, for Instagram (app id and secret).
    Facebook,
}

impl SecretsKind {
    pub fn platform(self) -> Platform {
        match self {
            SecretsKind::Google => Platform::YouTube,
            SecretsKind::TikTok => Platform::TikTok,
            SecretsKind::Facebook => Platform::Instagram,
        }
    }

    pub fn for_platform(platform: Platform) -> SecretsKind {
        match platform {
            Platform::YouTube => SecretsKind::Google,
            Platform::TikTok => SecretsKind::TikTok,
            Platform::Instagram => SecretsKind::Facebook,
        }
    }
}

/// An OAuth client's identity, read from a file ([`ClientSecrets::from_file`]):
///
/// - **YouTube**: the JSON Google Cloud console downloads for an OAuth client
///   (`client_secret_*.json`): `{"installed": {"client_id", "client_secret", "auth_uri",
///   "token_uri", "redirect_uris"}}`. "Desktop app" clients use the loopback flow (needed for
///   captions), "TVs and Limited Input devices" clients the device flow. A `{"web": …}` file
///   (Web application client) is refused.
/// - **TikTok**: `{"client_key": "…", "client_secret": "…"}` (Manage apps › your app ›
///   Credentials).
/// - **Instagram**: `{"app_id": "…", "app_secret": "…"}` of the Meta app with Facebook Login
///   (App settings › Basic); `app_id` may be a number.
///
/// `client_id` holds the client id, TikTok's client key or Facebook's app id. `Debug` hides
/// the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSecrets {
    pub client_id: String,
    pub client_secret: String,
    pub kind: SecretsKind,
}

impl fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecrets")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("kind", &self.kind)
            .finish()
    }
}

impl ClientSecrets {
    /// Reads `path` as `platform`'s client secrets; errors name the file and the field.
    pub fn from_file(path: &Path, platform: Platform) -> Result<ClientSecrets, OAuthError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| secrets_err(&name, format!("cannot read it: {e}")))?;
        Self::parse(&name, &text, platform)
    }

    /// Parses client secrets of `platform`; `file` names the source in errors.
    pub fn parse(file: &str, text: &str, platform: Platform) -> Result<ClientSecrets, OAuthError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| secrets_err(file, format!("not JSON ({e})")))?;
        if !v.is_object() {
            return Err(secrets_err(file, "not a JSON object"));
        }
        let field = |obj: &Value, prefix: &str, key: &str| -> Result<String, OAuthError> {
            let shown = format!("{prefix}{key}");
            match obj.get(key) {
                None | Some(Value::Null) => Err(secrets_err(file, format!("no `{shown}`"))),
                Some(Value::String(s)) if s.trim().is_empty() => {
                    Err(secrets_err(file, format!("`{shown}` is empty")))
                }
                Some(Value::String(s)) => Ok(s.trim().to_string()),
                Some(Value::Number(n)) if key == "app_id" => Ok(n.to_string()),
                Some(_) => Err(secrets_err(file, format!("`{shown}` is not a string"))),
            }
        };
        match platform {
            Platform::YouTube => {
                if v.get("installed").is_none() && v.get("web").is_some() {
                    return Err(secrets_err(
                        file,
                        "this is a \"Web application\" OAuth client (`web`); reelsmith needs a \
                         \"Desktop app\" client (loopback flow, needed for captions) or a \"TVs and \
                         Limited Input devices\" client (device flow): create one in Google Cloud \
                         console › APIs & Services › Credentials and download its JSON",
                    ));
                }
                let Some(installed) = v.get("installed").filter(|i| i.is_object()) else {
                    return Err(secrets_err(
                        file,
                        "no `installed` object (expected the client_secret_*.json Google Cloud \
                         console downloads for a Desktop or TV client)",
                    ));
                };
                Ok(ClientSecrets {
                    client_id: field(installed, "installed.", "client_id")?,
                    client_secret: field(installed, "installed.", "client_secret")?,
                    kind: SecretsKind::Google,
                })
            }
            Platform::TikTok => Ok(ClientSecrets {
                client_id: field(&v, "", "client_key")?,
                client_secret: field(&v, "", "client_secret")?,
                kind: SecretsKind::TikTok,
            }),
            Platform::Instagram => Ok(ClientSecrets {
                client_id: field(&v, "", "app_id")?,
                client_secret: field(&v, "", "app_secret")?,
                kind: SecretsKind::Facebook,
            }),
        }
    }

    fn check(&self, platform: Platform) -> Result<(), OAuthError> {
        let given = self.kind.platform();
        if given == platform {
            Ok(())
        } else {
            Err(OAuthError::WrongSecrets { platform, given })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// A platform's tokens. `extra` holds platform facts that are not secrets (TikTok's `open_id`
/// and `refresh_expires_at_ms`). `Debug` hides the token strings.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token expires (ms since the epoch); 0 when the platform did not say.
    pub expires_at_ms: i64,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub extra: Value,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at_ms", &self.expires_at_ms)
            .field("scopes", &self.scopes)
            .field("extra", &self.extra)
            .finish()
    }
}

impl Token {
    /// Whether the access token is expired `margin` before its end (refresh ahead of time).
    /// A token whose end is unknown (`expires_at_ms` ≤ 0) never counts as expired.
    pub fn expired(&self, now_ms: i64, margin: Duration) -> bool {
        self.expires_at_ms > 0
            && now_ms.saturating_add(margin.as_millis() as i64) >= self.expires_at_ms
    }

    /// Whether the token was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// TikTok's `open_id` (the user), when known.
    pub fn open_id(&self) -> Option<&str> {
        self.extra.get("open_id").and_then(Value::as_str)
    }

    fn secrets(&self) -> Vec<&str> {
        let mut v = vec![self.access_token.as_str()];
        if let Some(r) = &self.refresh_token {
            v.push(r);
        }
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Random values, PKCE

/// 32 bytes for a verifier or a state: /dev/urandom when readable, mixed with the time, the
/// process id and a counter.
fn random32(label: &str) -> [u8; 32] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let mut b = [0u8; 32];
        if f.read_exact(&mut b).is_ok() {
            h.update(b);
        }
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let local = 0u8;
    h.update((&local as *const u8 as usize).to_le_bytes());
    h.update(format!("{:?}", std::thread::current().id()).as_bytes());
    h.update(label.as_bytes());
    h.finalize().into()
}

/// Base64url without padding (RFC 4648 §5).
pub fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(chunk[0]) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A new PKCE code verifier: 86 characters of the unreserved set (RFC 7636 §4.1 allows 43–128).
pub fn new_verifier() -> String {
    format!(
        "{}{}",
        base64url(&random32("verifier-1")),
        base64url(&random32("verifier-2"))
    )
}

/// A new `state` value (43 characters).
pub fn new_state() -> String {
    base64url(&random32("state"))
}

/// RFC 7636 S256: `base64url(sha256(verifier))` (Google, and the standard).
pub fn pkce_challenge(verifier: &str) -> String {
    base64url(&Sha256::digest(verifier.as_bytes()))
}

/// TikTok Login Kit for Desktop's challenge: the **hex** encoding of `sha256(verifier)` (its
/// documentation: "You must use hex encoding of SHA256 to generate the code challenge"), still
/// announced as `code_challenge_method=S256`.
pub fn tiktok_challenge(verifier: &str) -> String {
    hex::encode(Sha256::digest(verifier.as_bytes()))
}

/// The challenge `platform` expects for `verifier` (Facebook: the standard S256).
pub fn challenge_for(platform: Platform, verifier: &str) -> String {
    match platform {
        Platform::TikTok => tiktok_challenge(verifier),
        _ => pkce_challenge(verifier),
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers: query strings, scrubbing, HTTP

/// Decodes `%XX` and `+` of a query-string or form value.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `key=value` pairs of a query string (after `?`, before `#`), decoded.
pub(crate) fn query_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Replaces every occurrence of the given secrets (and their URL-encoded forms) by
/// `[redacted]`.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "[redacted]");
        let enc = http::urlencode(s);
        if enc != *s {
            out = out.replace(&enc, "[redacted]");
        }
    }
    out
}

/// A URL without its query (which may carry secrets).
fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn send(
    client: &Client,
    platform: Platform,
    method: &str,
    url: &str,
    body: Body,
    secrets: &[&str],
) -> Result<Response, OAuthError> {
    client
        .send(method, url, &[("Accept", "application/json")], body)
        .map_err(|e| OAuthError::Transient {
            platform,
            message: format!(
                "{} did not answer: {}",
                without_query(url),
                scrub(&e.message, secrets)
            ),
        })
}

fn form(pairs: &[(&str, &str)]) -> Body {
    Body::Form(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// `(error, error_description)` of an OAuth error answer (RFC 6749 §5.2; TikTok's too).
fn oauth_error(v: &Value) -> Option<(String, String)> {
    let e = v.get("error")?;
    let code = match e {
        Value::String(s) if !s.is_empty() && s != "ok" => s.clone(),
        Value::Object(o) => {
            // TikTok's API style `{"error": {"code": "ok"}}` means no error.
            let c = o.get("code").and_then(Value::as_str)?;
            if c == "ok" {
                return None;
            }
            c.to_string()
        }
        _ => return None,
    };
    let desc = v
        .get("error_description")
        .or_else(|| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Some((code, desc))
}

/// A Graph API error: `(code, subcode, message, is_transient)`.
fn graph_error(v: &Value) -> Option<(i64, i64, String, bool)> {
    let e = v.get("error").filter(|e| e.is_object())?;
    Some((
        e.get("code").and_then(Value::as_i64).unwrap_or(0),
        e.get("error_subcode").and_then(Value::as_i64).unwrap_or(0),
        e.get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        e.get("is_transient")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    ))
}

fn describe(error: &str, desc: &str) -> String {
    if desc.is_empty() {
        error.to_string()
    } else {
        format!("{error}: {desc}")
    }
}

fn expires_at(v: &Value, now: i64) -> Option<i64> {
    let secs = v
        .get("expires_in")
        .and_then(|e| e.as_i64().or_else(|| e.as_str()?.trim().parse().ok()))?;
    Some(now.saturating_add(secs.saturating_mul(1000)))
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split([' ', ','])
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn access_token(platform: Platform, v: &Value) -> Result<String, OAuthError> {
    v.get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| OAuthError::Failed {
            platform,
            message: "the token endpoint's answer has no `access_token`".into(),
        })
}

// ---------------------------------------------------------------------------------------------
// Google's device flow

/// A device code to show the user: open `verification_url`, type `user_code`. `Debug` hides
/// `device_code` (it can be traded for tokens).
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    pub verification_url: String,
    /// Seconds between polls.
    pub interval: u64,
    /// Seconds the codes stay valid.
    pub expires_in: u64,
    /// The scopes asked for.
    pub scopes: Vec<String>,
}

impl fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCode")
            .field("device_code", &"[redacted]")
            .field("user_code", &self.user_code)
            .field("verification_url", &self.verification_url)
            .field("interval", &self.interval)
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Starts Google's device flow: `POST {google_oauth}/device/code` with `client_id` and `scope`.
/// The client must be of type "TVs and Limited Input devices"; scopes Google does not allow
/// there (captions' `youtube.force-ssl`) are refused before asking.
pub fn device_start(
    client: &Client,
    endpoints: &Endpoints,
    secrets: &ClientSecrets,
    scopes: &[&str],
) -> Result<DeviceCode, OAuthError> {
    let platform = Platform::YouTube;
    secrets.check(platform)?;
    if let Some(bad) = scopes
        .iter()
        .find(|s| google_flow(&[s]) == GoogleFlow::Loopback)
    {
        return Err(OAuthError::DeviceScope {
            scope: bad.to_string(),
        });
    }
    let scope = scopes.join(" ");
    let url = format!("{}/device/code", endpoints.google_oauth);
    let hide = [secrets.client_secret.as_str()];
    let resp = send(
        client,
        platform,
        "POST",
        &url,
        form(&[("client_id", &secrets.client_id), ("scope", &scope)]),
        &hide,
    )?;
    let v = resp.json();
    if http::transient(resp.status) {
        return Err(OAuthError::Transient {
            platform,
            message: format!("{url} answered {}", resp.status),
        });
    }
    if let Some((error, desc)) = oauth_error(&v) {
        let hint = match error.as_str() {
            "invalid_client" | "unauthorized_client" => {
                "; the device flow needs an OAuth client of type \"TVs and Limited Input devices\" \
                 (a \"Desktop app\" client works with the loopback flow instead)"
            }
            "invalid_scope" => "; Google's device flow allows only some scopes (not youtube.force-ssl: use the loopback flow for captions)",
            _ => "",
        };
        return Err(OAuthError::Failed {
            platform,
            message: format!(
                "the device code was refused ({}){hint}",
                scrub(&describe(&error, &desc), &hide)
            ),
        });
    }
    if !resp.ok() {
        return Err(OAuthError::Failed {
            platform,
            message: format!("{url} answered {}", resp.status),
        });
    }
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    let missing = |k: &str| OAuthError::Failed {
        platform,
        message: format!("the device code answer has no `{k}`"),
    };
    Ok(DeviceCode {
        device_code: s("device_code").ok_or_else(|| missing("device_code"))?,
        user_code: s("user_code").ok_or_else(|| missing("user_code"))?,
        verification_url: s("verification_url")
            .or_else(|| s("verification_uri"))
            .ok_or_else(|| missing("verification_url"))?,
        interval: n("interval").unwrap_or(5),
        expires_in: n("expires_in").unwrap_or(1800),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    })
}

/// Polls `POST {google_oauth}/token` (grant `urn:ietf:params:oauth:grant-type:device_code`)
/// until the user approves: `sleep(interval)` before each poll; `authorization_pending` →
/// poll again; `slow_down` → the interval grows by 5 s; `access_denied` → [`OAuthError::Denied`];
/// `expired_token`, or `now()` past `expires_in` → [`OAuthError::Expired`]; three transport
/// failures or 5xx answers in a row → [`OAuthError::Transient`]; other errors →
/// [`OAuthError::Failed`] with the server's `error_description`. `now` and `sleep` are injected
/// (tests use a virtual clock; [`device_wait`] uses the real ones).
pub fn device_poll(
    client: &Client,
    endpoints: &Endpoints,
    secrets: &ClientSecrets,
    code: &DeviceCode,
    now: &dyn Fn() -> Instant,
    sleep: &mut dyn FnMut(Duration),
) -> Result<Token, OAuthError> {
    let platform = Platform::YouTube;
    secrets.check(platform)?;
    let url = format!("{}/token", endpoints.google_oauth);
    let hide = [secrets.client_secret.as_str(), code.device_code.as_str()];
    let deadline = now() + Duration::from_secs(code.expires_in);
    let mut interval = Duration::from_secs(code.interval);
    let mut failures = 0;
    loop {
        sleep(interval);
        if now() >= deadline {
            return Err(OAuthError::Expired { platform });
        }
        let resp = send(
            client,
            platform,
            "POST",
            &url,
            form(&[
                ("client_id", &secrets.client_id),
                ("client_secret", &secrets.client_secret),
                ("device_code", &code.device_code),
                ("grant_type", DEVICE_GRANT),
            ]),
            &hide,
        );
        let resp = match resp {
            Ok(r) if !http::transient(r.status) => r,
            Ok(r) => {
                failures += 1;
                if failures >= 3 {
                    return Err(OAuthError::Transient {
                        platform,
                        message: format!("{url} answered {}", r.status),
                    });
                }
                continue;
            }
            Err(e) => {
                failures += 1;
                if failures >= 3 {
                    return Err(e);
                }
                continue;
            }
        };
        failures = 0;
        let v = resp.json();
        if let Some((error, desc)) = oauth_error(&v) {
            match error.as_str() {
                "authorization_pending" => continue,
                "slow_down" => {
                    interval += SLOW_DOWN_STEP;
                    continue;
                }
                "access_denied" => return Err(OAuthError::Denied { platform }),
                "expired_token" => return Err(OAuthError::Expired { platform }),
                _ => {
                    return Err(OAuthError::Failed {
                        platform,
                        message: format!(
                            "the device code was refused ({})",
                            scrub(&describe(&error, &desc), &hide)
                        ),
                    })
                }
            }
        }
        if !resp.ok() {
            return Err(OAuthError::Failed {
                platform,
                message: format!("{url} answered {}", resp.status),
            });
        }
        return google_token(&v, &code.scopes, None);
    }
}

/// [`device_poll`] on the real clock.
pub fn device_wait(
    client: &Client,
    endpoints: &Endpoints,
    secrets: &ClientSecrets,
    code: &DeviceCode,
) -> Result<Token, OAuthError> {
    device_poll(
        client,
        endpoints,
        secrets,
        code,
        &Instant::now,
        &mut std::thread::sleep,
    )
}

/// A Google token answer; `old` gives the refresh token, scopes and extra to keep.
fn google_token(v: &Value, asked: &[String], old: Option<&Token>) -> Result<Token, OAuthError> {
    let platform = Platform::YouTube;
    let now = now_ms();
    Ok(Token {
        access_token: access_token(platform, v)?,
        refresh_token: v
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| old.and_then(|t| t.refresh_token.clone())),
        expires_at_ms: expires_at(v, now).unwrap_or(0),
        scopes: v
            .get("scope")
            .and_then(Value::as_str)
            .map(split_scopes)
            .unwrap_or_else(|| old.map_or_else(|| asked.to_vec(), |t| t.scopes.clone())),
        extra: old.map_or(Value::Object(Default::default()), |t| t.extra.clone()),
    })
}

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

// ---------------------------------------------------------------------------------------------
// Code exchange

/// Trades an authorization code for tokens:
/// - YouTube: `POST {google_oauth}/token` (`grant_type=authorization_code`, `code_verifier`);
/// - TikTok: `POST {tiktok_api}/v2/oauth/token/` (`client_key`, `client_secret`, `code`,
///   `grant_type`, `redirect_uri`, `code_verifier`); `open_id` and the refresh token's end go
///   to `extra`;
/// - Instagram: `GET {instagram_api}/v21.0/oauth/access_token?client_id&redirect_uri&
///   client_secret&code`, then the long-lived token (`grant_type=fb_exchange_token`, ~60 days);
///   Facebook names no scopes, so the token's are empty ([`LoopbackFlow::exchange`] fills in
///   those asked for).
pub fn exchange_code(
    client: &Client,
    endpoints: &Endpoints,
    platform: Platform,
    secrets: &ClientSecrets,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Token, OAuthError> {
    secrets.check(platform)?;
    let hide = [secrets.client_secret.as_str(), code, verifier];
    let fail = |resp: &Response, v: &Value| -> OAuthError {
        if http::transient(resp.status) {
            return OAuthError::Transient {
                platform,
                message: format!("the token endpoint answered {}", resp.status),
            };
        }
        let what = oauth_error(v)
            .map(|(e, d)| describe(&e, &d))
            .or_else(|| graph_error(v).map(|(c, _, m, _)| format!("code {c}: {m}")))
            .unwrap_or_else(|| format!("status {}", resp.status));
        OAuthError::Failed {
            platform,
            message: format!(
                "the authorization code was refused ({}); codes are single-use and expire within minutes: run `reelsmith accounts add {platform}` again",
                scrub(&what, &hide)
            ),
        }
    };
    match platform {
        Platform::YouTube => {
            let url = format!("{}/token", endpoints.google_oauth);
            let resp = send(
                client,
                platform,
                "POST",
                &url,
                form(&[
                    ("code", code),
                    ("client_id", &secrets.client_id),
                    ("client_secret", &secrets.client_secret),
                    ("redirect_uri", redirect_uri),
                    ("grant_type", "authorization_code"),
                    ("code_verifier", verifier),
                ]),
                &hide,
            )?;
            let v = resp.json();
            if !resp.ok() || oauth_error(&v).is_some() {
                return Err(fail(&resp, &v));
            }
            google_token(&v, &[], None)
        }
        Platform::TikTok => {
            let url = format!("{}/v2/oauth/token/", endpoints.tiktok_api);
            let resp = send(
                client,
                platform,
                "POST",
                &url,
                form(&[
                    ("client_key", &secrets.client_id),
                    ("client_secret", &secrets.client_secret),
                    ("code", code),
                    ("grant_type", "authorization_code"),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", verifier),
                ]),
                &hide,
            )?;
            let v = resp.json();
            if !resp.ok() || oauth_error(&v).is_some() {
                return Err(fail(&resp, &v));
            }
            tiktok_token(&v, None)
        }
        Platform::Instagram => {
            let url = format!(
                "{}/{GRAPH_VERSION}/oauth/access_token?{}",
                endpoints.instagram_api,
                http::query(&[
                    ("client_id", &secrets.client_id),
                    ("redirect_uri", redirect_uri),
                    ("client_secret", &secrets.client_secret),
                    ("code", code),
                ])
            );
            let resp = send(client, platform, "GET", &url, Body::Empty, &hide)?;
            let v = resp.json();
            if !resp.ok() || graph_error(&v).is_some() {
                return Err(fail(&resp, &v));
            }
            let short = access_token(platform, &v)?;
            facebook_long_lived(client, endpoints, secrets, &short)
        }
    }
}

/// A TikTok token answer (code exchange or refresh).
fn tiktok_token(v: &Value, old: Option<&Token>) -> Result<Token, OAuthError> {
    let platform = Platform::TikTok;
    let now = now_ms();
    let mut extra = old
        .map(|t| t.extra.clone())
        .filter(Value::is_object)
        .unwrap_or(Value::Object(Default::default()));
    if let Some(map) = extra.as_object_mut() {
        if let Some(id) = v.get("open_id").and_then(Value::as_str) {
            map.insert("open_id".into(), Value::String(id.to_string()));
        }
        if let Some(secs) = v.get("refresh_expires_in").and_then(Value::as_i64) {
            map.insert(
                "refresh_expires_at_ms".into(),
                Value::from(now.saturating_add(secs.saturating_mul(1000))),
            );
        }
    }
    Ok(Token {
        access_token: access_token(platform, v)?,
        refresh_token: v
            .get("refresh_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| old.and_then(|t| t.refresh_token.clone())),
        expires_at_ms: expires_at(v, now).unwrap_or(0),
        scopes: v
            .get("scope")
            .and_then(Value::as_str)
            .map(split_scopes)
            .or_else(|| old.map(|t| t.scopes.clone()))
            .unwrap_or_default(),
        extra,
    })
}

/// `GET {instagram_api}/v21.0/oauth/access_token?grant_type=fb_exchange_token&…`: a long-lived
/// user token for `token`.
fn facebook_long_lived(
    client: &Client,
    endpoints: &Endpoints,
    secrets: &ClientSecrets,
    token: &str,
) -> Result<Token, OAuthError> {
    let platform = Platform::Instagram;
    let hide = [secrets.client_secret.as_str(), token];
    let url = format!(
        "{}/{GRAPH_VERSION}/oauth/access_token?{}",
        endpoints.instagram_api,
        http::query(&[
            ("grant_type", "fb_exchange_token"),
            ("client_id", &secrets.client_id),
            ("client_secret", &secrets.client_secret),
            ("fb_exchange_token", token),
        ])
    );
    let resp = send(client, platform, "GET", &url, Body::Empty, &hide)?;
    let v = resp.json();
    if let Some((code, subcode, message, transient)) = graph_error(&v) {
        let message = scrub(&message, &hide);
        if transient || http::transient(resp.status) || matches!(code, 2 | 4 | 17 | 341) {
            return Err(OAuthError::Transient {
                platform,
                message: format!("Facebook answered code {code}: {message}"),
            });
        }
        if code == 190 || code == 102 {
            return Err(OAuthError::Refused {
                platform,
                message: format!(
                    "the access token was refused (OAuthException {code}/{subcode}: {message}): Facebook long-lived tokens last about 60 days and cannot be renewed once expired, nor after the user changed their password or removed the app; run `reelsmith accounts add instagram` again"
                ),
            });
        }
        return Err(OAuthError::Failed {
            platform,
            message: format!("the token exchange was refused (code {code}: {message})"),
        });
    }
    if http::transient(resp.status) {
        return Err(OAuthError::Transient {
            platform,
            message: format!("the token endpoint answered {}", resp.status),
        });
    }
    if !resp.ok() {
        return Err(OAuthError::Failed {
            platform,
            message: format!("the token endpoint answered {}", resp.status),
        });
    }
    let now = now_ms();
    Ok(Token {
        access_token: access_token(platform, &v)?,
        refresh_token: None,
        expires_at_ms: expires_at(&v, now).unwrap_or(now + FACEBOOK_LONG_LIVED.as_millis() as i64),
        scopes: Vec::new(),
        extra: Value::Object(Default::default()),
    })
}

// ---------------------------------------------------------------------------------------------
// Refresh

/// A fresh access token for `token`:
/// - YouTube: `POST {google_oauth}/token` (`grant_type=refresh_token`); the old refresh token is
///   kept when none comes back;
/// - TikTok: `POST {tiktok_api}/v2/oauth/token/` (`grant_type=refresh_token`); the answer's
///   refresh token replaces the old one;
/// - Instagram: the long-lived token is exchanged again (`grant_type=fb_exchange_token`) while
///   it is valid; an expired one cannot be renewed.
///
/// A refusal ([`OAuthError::Refused`]) names the likely cause — for Google, apps left in
/// "Testing" whose refresh tokens expire after 7 days. No answer or a 5xx →
/// [`OAuthError::Transient`].
pub fn refresh(
    client: &Client,
    endpoints: &Endpoints,
    platform: Platform,
    secrets: &ClientSecrets,
    token: &Token,
) -> Result<Token, OAuthError> {
    secrets.check(platform)?;
    let mut hide = token.secrets();
    hide.push(&secrets.client_secret);
    if platform == Platform::Instagram {
        if token.expired(now_ms(), Duration::ZERO) {
            return Err(OAuthError::Refused {
                platform,
                message: "the long-lived access token has expired (they last about 60 days) and Facebook cannot renew an expired one; run `reelsmith accounts add instagram` again".into(),
            });
        }
        let fresh = facebook_long_lived(client, endpoints, secrets, &token.access_token)?;
        return Ok(Token {
            scopes: token.scopes.clone(),
            extra: token.extra.clone(),
            ..fresh
        });
    }
    let Some(rt) = token.refresh_token.as_deref() else {
        return Err(OAuthError::Refused {
            platform,
            message: format!(
                "no refresh token is stored for this account; run `reelsmith accounts add {platform}` again"
            ),
        });
    };
    let (url, body) = match platform {
        Platform::YouTube => (
            format!("{}/token", endpoints.google_oauth),
            form(&[
                ("client_id", &secrets.client_id),
                ("client_secret", &secrets.client_secret),
                ("refresh_token", rt),
                ("grant_type", "refresh_token"),
            ]),
        ),
        _ => (
            format!("{}/v2/oauth/token/", endpoints.tiktok_api),
            form(&[
                ("client_key", &secrets.client_id),
                ("client_secret", &secrets.client_secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
            ]),
        ),
    };
    let resp = send(client, platform, "POST", &url, body, &hide)?;
    if http::transient(resp.status) {
        return Err(OAuthError::Transient {
            platform,
            message: format!("{url} answered {}", resp.status),
        });
    }
    let v = resp.json();
    if let Some((error, desc)) = oauth_error(&v) {
        let what = scrub(&describe(&error, &desc), &hide);
        return Err(refusal(platform, &error, &what));
    }
    if !resp.ok() {
        return Err(OAuthError::Failed {
            platform,
            message: format!("{url} answered {}", resp.status),
        });
    }
    match platform {
        Platform::YouTube => google_token(&v, &[], Some(token)),
        _ => tiktok_token(&v, Some(token)),
    }
}

/// The error for a refresh the platform answered with `error` (`what`: error and description,
/// scrubbed).
fn refusal(platform: Platform, error: &str, what: &str) -> OAuthError {
    let client_problem = matches!(error, "invalid_client" | "unauthorized_client");
    let message = match platform {
        Platform::YouTube if client_problem => format!(
            "the OAuth client was refused ({what}): it was deleted or its secret was reset in the Google Cloud console; download its JSON again and run `reelsmith accounts add youtube --client-secrets FILE`"
        ),
        Platform::YouTube if error == "invalid_grant" => format!(
            "the refresh token was refused ({what}): apps whose OAuth consent screen is in \"Testing\" get refresh tokens that expire after 7 days — publish the app (In production) in the Google Cloud console, or run `reelsmith accounts add youtube` again; it also happens when the user revoked access or changed the password"
        ),
        Platform::TikTok if client_problem => format!(
            "the TikTok app was refused ({what}): its client key or secret changed in the TikTok developer portal; run `reelsmith accounts add tiktok --client-secrets FILE` with the current ones"
        ),
        Platform::TikTok if matches!(error, "invalid_grant" | "access_token_invalid" | "scope_not_authorized") => format!(
            "the refresh token was refused ({what}): TikTok refresh tokens last 365 days and stop working when the user removes the app's access (TikTok › Settings › Security › Apps and services); run `reelsmith accounts add tiktok` again"
        ),
        _ => {
            return OAuthError::Failed {
                platform,
                message: format!("the refresh was refused ({what})"),
            }
        }
    };
    OAuthError::Refused { platform, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc_4648_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xfb, 0xff, 0xbf]), "-_-_");
    }

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            pkce_challenge(v),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(
            tiktok_challenge(v),
            "13d31e961a1ad8ec2f16b10c4c982e0876a878ad6df144566ee1894acb70f9c3"
        );
        let a = new_verifier();
        let b = new_verifier();
        assert_ne!(a, b);
        assert!((43..=128).contains(&a.len()));
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c)));
        assert_ne!(new_state(), new_state());
    }

    #[test]
    fn query_decoding() {
        let p = query_pairs("code=4%2F0Ab&state=x+y&empty=&flag");
        assert_eq!(param(&p, "code"), Some("4/0Ab"));
        assert_eq!(param(&p, "state"), Some("x y"));
        assert_eq!(param(&p, "empty"), Some(""));
        assert_eq!(param(&p, "flag"), Some(""));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn scrub_hides_plain_and_encoded_secrets() {
        let s = scrub("bad 1//abc/def and 1%2F%2Fabc%2Fdef", &["1//abc/def", "ab"]);
        assert_eq!(s, "bad [redacted] and [redacted]");
    }

    #[test]
    fn token_expiry_and_debug() {
        let t = Token {
            access_token: "ya29.SECRETACCESS".into(),
            refresh_token: Some("1//SECRETREFRESH".into()),
            expires_at_ms: 10_000,
            scopes: vec![YOUTUBE.into()],
            extra: serde_json::json!({"open_id": "u1"}),
        };
        assert!(!t.expired(4_000, Duration::from_secs(5)));
        assert!(t.expired(5_000, Duration::from_secs(5)));
        assert!(t.expired(10_000, Duration::ZERO));
        let unknown = Token {
            expires_at_ms: 0,
            ..t.clone()
        };
        assert!(!unknown.expired(i64::MAX / 2, Duration::from_secs(60)));
        let d = format!("{t:?} {t:#?}");
        assert!(!d.contains("SECRET"), "{d}");
        assert!(d.contains("expires_at_ms") && d.contains("open_id"));
        assert_eq!(t.open_id(), Some("u1"));
        assert!(t.has_scope(YOUTUBE) && !t.has_scope(YOUTUBE_FORCE_SSL));
        // Serde round trip.
        let back: Token = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn flows_for_scopes() {
        assert_eq!(google_flow(&[YOUTUBE]), GoogleFlow::Device);
        assert_eq!(google_flow(&[YOUTUBE, "openid"]), GoogleFlow::Device);
        assert_eq!(google_flow(&[YOUTUBE_FORCE_SSL]), GoogleFlow::Loopback);
        assert_eq!(
            google_flow(&[YOUTUBE, YOUTUBE_UPLOAD]),
            GoogleFlow::Loopback
        );
        assert_eq!(
            google_flow(&default_scopes(Platform::YouTube, true)),
            GoogleFlow::Loopback
        );
        assert_eq!(
            google_flow(&default_scopes(Platform::YouTube, false)),
            GoogleFlow::Device
        );
        assert!(needs_fixed_port(Platform::Instagram) && !needs_fixed_port(Platform::TikTok));
    }

    #[test]
    fn client_secrets_files() {
        let google = r#"{"installed":{"client_id":"id.apps.googleusercontent.com","client_secret":"GOCSPX-s","auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token","redirect_uris":["http://localhost"]}}"#;
        let s = ClientSecrets::parse("client_secret.json", google, Platform::YouTube).unwrap();
        assert_eq!(s.client_id, "id.apps.googleusercontent.com");
        assert_eq!(s.kind, SecretsKind::Google);
        assert!(!format!("{s:?}").contains("GOCSPX"));

        let e = ClientSecrets::parse(
            "client_secret.json",
            r#"{"installed":{"client_secret":"x"}}"#,
            Platform::YouTube,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "client_secret.json: no `installed.client_id`");
        let e = ClientSecrets::parse(
            "c.json",
            r#"{"web":{"client_id":"a","client_secret":"b"}}"#,
            Platform::YouTube,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("c.json: ")
                && e.contains("Desktop app")
                && e.contains("TVs and Limited Input devices"),
            "{e}"
        );
        let e = ClientSecrets::parse("c.json", "{nope", Platform::YouTube)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.json: not JSON"), "{e}");

        let t = ClientSecrets::parse(
            "tiktok.json",
            r#"{"client_key":"k","client_secret":"s"}"#,
            Platform::TikTok,
        )
        .unwrap();
        assert_eq!((t.client_id.as_str(), t.kind), ("k", SecretsKind::TikTok));
        let e = ClientSecrets::parse("tiktok.json", r#"{"client_key":" "}"#, Platform::TikTok)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "tiktok.json: `client_key` is empty");

        let f = ClientSecrets::parse(
            "meta.json",
            r#"{"app_id": 1234567890, "app_secret": "s"}"#,
            Platform::Instagram,
        )
        .unwrap();
        assert_eq!(f.client_id, "1234567890");
        let e = ClientSecrets::parse("meta.json", r#"{"app_id":"1"}"#, Platform::Instagram)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "meta.json: no `app_secret`");
        assert!(matches!(
            f.check(Platform::TikTok),
            Err(OAuthError::WrongSecrets { .. })
        ));
    }
}
