//! The fake's consent page: what a browser sent to an authorization address is redirected to.

use super::*;

impl FakeOAuth {
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

    pub(super) fn consent_at(&self, path: &str, q: &str) -> Result<String, (u16, String)> {
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
}
