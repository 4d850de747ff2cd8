//! Media: everything that touches libav* (decode, encode, filter graphs, mux) plus the pixel and
//! sample work around it. Stages call this module; they never call ffmpeg themselves.

pub mod clip;
pub mod compose;
pub mod decode;
pub mod encode;
pub mod frames;
pub mod image;
pub mod jpeg;
pub mod loudness;
pub mod minterp;
pub mod mix;
pub mod overlay;
pub mod resample;
pub mod rewrite;
pub mod scan;
pub mod stills;
pub mod timeline;
pub mod vertical;
pub mod wav;

use std::path::PathBuf;
use std::sync::OnceLock;

use ffmpeg_next as ff;

/// Errors from media work; each names the file or operation and, where useful, what to do.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{what}: {source}")]
    Ffmpeg {
        what: String,
        #[source]
        source: ff::Error,
    },
    #[error("{what} is not available: {hint}")]
    Missing { what: String, hint: String },
    #[error("{path}: no {kind} stream")]
    NoStream { path: PathBuf, kind: &'static str },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("internal media error: {0}")]
    Internal(String),
}

static INIT: OnceLock<Result<(), String>> = OnceLock::new();

/// Initialises libav* once per process and silences its logging (we report errors ourselves).
pub fn init() -> Result<(), MediaError> {
    INIT.get_or_init(|| {
        ff::init().map_err(|e| e.to_string())?;
        ff::util::log::set_level(ff::util::log::Level::Error);
        Ok(())
    })
    .clone()
    .map_err(|e| MediaError::Missing {
        what: "libavformat".into(),
        hint: e,
    })
}

/// Library versions for `reelsmith doctor`.
pub fn versions() -> Vec<(&'static str, String)> {
    fn v(n: u32) -> String {
        format!("{}.{}.{}", n >> 16, (n >> 8) & 0xff, n & 0xff)
    }
    vec![
        ("libavcodec", v(ff::codec::version())),
        ("libavformat", v(ff::format::version())),
        ("libavfilter", v(ff::filter::version())),
        ("libavutil", v(ff::util::version())),
        ("libswscale", v(ff::software::scaling::version())),
        ("libswresample", v(ff::software::resampling::version())),
    ]
}

/// Whether the encoders and filters the assembly needs exist in the linked libraries.
pub fn capabilities() -> Vec<(&'static str, bool)> {
    let _ = init();
    vec![
        (
            "libx264 encoder",
            ff::encoder::find_by_name("libx264").is_some(),
        ),
        (
            "ffv1 encoder (generated clips)",
            ff::encoder::find(ff::codec::Id::FFV1).is_some(),
        ),
        (
            "aac encoder",
            ff::encoder::find(ff::codec::Id::AAC).is_some(),
        ),
        ("ass filter (libass)", ff::filter::find("ass").is_some()),
        (
            "png decoder",
            ff::decoder::find(ff::codec::Id::PNG).is_some(),
        ),
        (
            "mjpeg decoder",
            ff::decoder::find(ff::codec::Id::MJPEG).is_some(),
        ),
    ]
}
