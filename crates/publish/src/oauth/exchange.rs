//! Code exchange and token refresh.

use super::*;

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
