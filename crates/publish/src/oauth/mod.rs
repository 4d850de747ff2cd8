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

mod device;
mod exchange;
mod loopback;
mod secrets;
#[cfg(test)]
mod tests;

pub use device::*;
pub use exchange::*;
pub use loopback::*;
pub use secrets::*;

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
                crate::http::shown_url(url),
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
