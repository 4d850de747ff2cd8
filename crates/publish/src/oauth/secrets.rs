//! Client secrets files, tokens, and the random values of PKCE.

use super::*;

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

    pub(super) fn check(&self, platform: Platform) -> Result<(), OAuthError> {
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

    pub(super) fn secrets(&self) -> Vec<&str> {
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
