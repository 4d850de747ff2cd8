//! reelsmith's platform clients, no store, jobs or CLI inside (those are the studio's):
//!
//! - [`endpoints`]: every base URL, replaceable from the environment so tests and private
//!   gateways can stand in (`REELSMITH_GOOGLE_OAUTH`, `REELSMITH_YOUTUBE_API`,
//!   `REELSMITH_TIKTOK_API`, `REELSMITH_INSTAGRAM_API`, `REELSMITH_INSTAGRAM_UPLOAD`);
//! - [`files`]: the uploaded file's digest and chunks;
//! - [`http`]: the HTTP client and how its failures are told apart (retry later, or give up
//!   with the platform's message);
//! - [`oauth`]: Google's device flow and the loopback redirect flow, token refresh, and the
//!   TikTok / Facebook (Instagram) code flows;
//! - [`limits`]: the platforms' field limits, counted their way;
//! - [`youtube`], [`tiktok`], [`instagram`]: the upload protocols, resumable from a
//!   persisted state after the process, the machine or the network died;
//! - [`time`]: RFC 3339 times without a calendar crate;
//! - [`testing`]: a loopback HTTP server and fakes that speak each protocol as documented,
//!   with injectable faults, for this crate's and the studio's tests.

pub mod endpoints;
pub mod files;
pub mod http;
pub mod instagram;
pub mod limits;
pub mod oauth;
pub mod testing;
pub mod tiktok;
pub mod time;
pub mod youtube;

pub use endpoints::Endpoints;
pub use http::{Client, HttpError};

/// The platforms reelsmith publishes to.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    YouTube,
    TikTok,
    Instagram,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::YouTube, Platform::TikTok, Platform::Instagram];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::YouTube => "youtube",
            Platform::TikTok => "tiktok",
            Platform::Instagram => "instagram",
        }
    }

    /// `youtube`, `tiktok`, `instagram` (case aside).
    pub fn parse(s: &str) -> Option<Platform> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
