//! Google's device flow.

use super::*;

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
pub(super) fn google_token(
    v: &Value,
    asked: &[String],
    old: Option<&Token>,
) -> Result<Token, OAuthError> {
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
