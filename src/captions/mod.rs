//! Caption layout and subtitle formats.
//!
//! [`chunk_text`] splits narration into on-screen chunks (≤ `max_lines`
//! lines of ≤ `max_width` display columns, see [`display_width`]),
//! [`time_chunks`] spreads them over the narration's time span, and
//! [`to_srt`], [`to_vtt`] and [`to_ass`] write them out ([`parse_srt`] reads
//! SRT back). Everything is pure and dependency-free apart from `thiserror`.

mod ass;
mod chunk;
mod srt;
mod timing;
mod width;

#[cfg(test)]
mod tests;

pub use ass::{ass_time, font_for_language, is_rtl, to_ass, AssLayout};
pub use chunk::chunk_text;
pub use srt::{parse_srt, to_srt, to_vtt, SrtError};
pub use timing::{time_chunks, time_chunks_to_words, MIN_CUE_SECONDS};
pub use width::{char_width, display_width};

/// Default line width in display columns (21 fullwidth CJK characters).
pub const DEFAULT_MAX_WIDTH: usize = 42;
/// Default number of lines per caption.
pub const DEFAULT_MAX_LINES: usize = 2;

/// One caption on screen from `start` to `end` (seconds), top line first.
#[derive(Clone, Debug, PartialEq)]
pub struct Cue {
    pub start: f64,
    pub end: f64,
    pub lines: Vec<String>,
}

/// `"pt-BR"`, `"zh_Hans"`, `"JA"` → `"pt"`, `"zh"`, `"ja"`.
fn base_language(lang: &str) -> String {
    lang.trim()
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Languages written without spaces, broken between characters.
fn is_cjk_language(lang: &str) -> bool {
    matches!(base_language(lang).as_str(), "ja" | "zh")
}
