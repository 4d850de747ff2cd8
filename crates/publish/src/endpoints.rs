//! The platforms' base URLs. Each can be replaced from the environment (a test's loopback
//! server, a private gateway); a value is used as given, without a trailing slash.

/// Google's OAuth server (device codes, tokens).
pub const GOOGLE_OAUTH: &str = "https://oauth2.googleapis.com";
/// Google's consent page for the loopback (authorization code) flow.
pub const GOOGLE_AUTH: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// YouTube Data API v3 (serves `/upload/youtube/v3/…` and `/youtube/v3/…`).
pub const YOUTUBE_API: &str = "https://www.googleapis.com";
/// TikTok's open API (OAuth tokens and the Content Posting API).
pub const TIKTOK_API: &str = "https://open.tiktokapis.com";
/// TikTok's consent page.
pub const TIKTOK_AUTH: &str = "https://www.tiktok.com/v2/auth/authorize/";
/// The Graph API (Instagram content publishing, Facebook Login tokens).
pub const INSTAGRAM_API: &str = "https://graph.facebook.com";
/// Facebook's resumable upload host (Instagram Reels uploaded from a file).
pub const INSTAGRAM_UPLOAD: &str = "https://rupload.facebook.com";
/// Facebook's consent page.
pub const FACEBOOK_AUTH: &str = "https://www.facebook.com/v21.0/dialog/oauth";

/// Every base URL a client talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub google_oauth: String,
    pub google_auth: String,
    pub youtube_api: String,
    pub tiktok_api: String,
    pub tiktok_auth: String,
    pub instagram_api: String,
    pub instagram_upload: String,
    pub facebook_auth: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            google_oauth: GOOGLE_OAUTH.into(),
            google_auth: GOOGLE_AUTH.into(),
            youtube_api: YOUTUBE_API.into(),
            tiktok_api: TIKTOK_API.into(),
            tiktok_auth: TIKTOK_AUTH.into(),
            instagram_api: INSTAGRAM_API.into(),
            instagram_upload: INSTAGRAM_UPLOAD.into(),
            facebook_auth: FACEBOOK_AUTH.into(),
        }
    }
}

impl Endpoints {
    /// The defaults with the `REELSMITH_*` variables `var` knows applied:
    /// `REELSMITH_GOOGLE_OAUTH`, `REELSMITH_YOUTUBE_API`, `REELSMITH_TIKTOK_API`,
    /// `REELSMITH_INSTAGRAM_API`, `REELSMITH_INSTAGRAM_UPLOAD` (and, for the consent pages a
    /// user opens, `REELSMITH_GOOGLE_AUTH`, `REELSMITH_TIKTOK_AUTH`, `REELSMITH_FACEBOOK_AUTH`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let pick = |name: &str, default: String| {
            var(name)
                .map(|v| v.trim().trim_end_matches('/').to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or(default)
        };
        let d = Self::default();
        Self {
            google_oauth: pick("REELSMITH_GOOGLE_OAUTH", d.google_oauth),
            google_auth: pick("REELSMITH_GOOGLE_AUTH", d.google_auth),
            youtube_api: pick("REELSMITH_YOUTUBE_API", d.youtube_api),
            tiktok_api: pick("REELSMITH_TIKTOK_API", d.tiktok_api),
            tiktok_auth: pick("REELSMITH_TIKTOK_AUTH", d.tiktok_auth),
            instagram_api: pick("REELSMITH_INSTAGRAM_API", d.instagram_api),
            instagram_upload: pick("REELSMITH_INSTAGRAM_UPLOAD", d.instagram_upload),
            facebook_auth: pick("REELSMITH_FACEBOOK_AUTH", d.facebook_auth),
        }
    }

    /// [`from_vars`](Self::from_vars) over the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_replace_base_urls_without_their_trailing_slash() {
        let e = Endpoints::from_vars(|k| match k {
            "REELSMITH_YOUTUBE_API" => Some("http://127.0.0.1:9/".into()),
            "REELSMITH_TIKTOK_API" => Some("  ".into()),
            _ => None,
        });
        assert_eq!(e.youtube_api, "http://127.0.0.1:9");
        assert_eq!(e.tiktok_api, TIKTOK_API);
        assert_eq!(e.google_oauth, GOOGLE_OAUTH);
    }
}
