//! The fake's routes: the device code and token endpoints of Google, TikTok and Facebook.

use super::*;

impl FakeOAuth {
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
