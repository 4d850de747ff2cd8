//! Video scripts: data model, parsing (YAML, JSON, plain text) and validation.
//!
//! Call [`load`] from the CLI; every [`ScriptError`] is bad input (exit code 2).

mod error;
mod model;
mod parse;
mod text;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::{ErrorKind, ScriptError};
pub use model::{
    Aspect, Character, HighlightsSpec, Line, Localized, Motion, PublishSpec, Scene, Script,
    Transition,
};
pub use validate::publish_problem;
pub use validate::{is_recording_name, RECORDING_EXTENSIONS};

/// Languages a script may use.
pub const LANGUAGES: [&str; 11] = [
    "en", "ja", "es", "zh", "hi", "ar", "bn", "pt", "ru", "fr", "de",
];
/// Most scenes in one script.
pub const MAX_SCENES: usize = 200;
/// Most characters in one line's text (per language).
pub const MAX_LINE_CHARS: usize = 2000;
/// Longest explicit scene duration, in seconds.
pub const MAX_SCENE_SECONDS: f64 = 600.0;
/// Most lines in one scene.
pub const MAX_LINES_PER_SCENE: usize = 100;
/// Speaker id of the narrator (always valid, needs no character entry).
pub const NARRATOR: &str = "narrator";
/// Channel used when neither the script nor the command line names one.
pub const DEFAULT_CHANNEL: &str = "explainer";

/// Script file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Text,
}

impl Format {
    /// `.yaml`/`.yml` -> Yaml, `.json` -> Json, anything else -> Text
    /// (case-insensitive).
    pub fn from_path(p: &Path) -> Format {
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "yaml" | "yml" => Format::Yaml,
            "json" => Format::Json,
            _ => Format::Text,
        }
    }
}

/// What validation checks against, and command-line overrides.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidateOptions<'a> {
    /// Channels that exist; empty = accept any channel name.
    pub known_channels: &'a [String],
    /// Replaces `script.channel` (e.g. `--channel`).
    pub channel_override: Option<&'a str>,
    /// Replaces `script.languages` (e.g. `--languages`).
    pub languages_override: Option<&'a [String]>,
    /// An LLM will translate texts missing in an output language (so they are not errors).
    pub machine_translation: bool,
}

/// Reads, parses, applies overrides and validates a script file.
pub fn load(path: &Path, opts: &ValidateOptions) -> Result<Script, ScriptError> {
    let text = read_text(path)?;
    load_text(&text, path, opts)
}

/// Parses and validates script text that was read from `origin` (relative paths in it resolve
/// against `origin`'s directory) — e.g. a snapshot kept in the job queue.
pub fn load_text(text: &str, origin: &Path, opts: &ValidateOptions) -> Result<Script, ScriptError> {
    let mut script = parse_str(text, Format::from_path(origin), origin)?;
    validate(&mut script, origin, opts)?;
    Ok(script)
}

/// Reads a script file as UTF-8 text, with errors that name the file (and the bad line).
pub fn read_text(path: &Path) -> Result<String, ScriptError> {
    let bytes = std::fs::read(path).map_err(|source| ScriptError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Err(ScriptError::NotUtf8 {
                path: path.to_path_buf(),
                line,
                offset,
            });
        }
    };
    Ok(text)
}

/// Parses script text (syntax and schema only; no semantic checks, no
/// defaults besides serde's and scene ids). `origin` is used in messages and,
/// for plain text, for the default title.
pub fn parse_str(text: &str, format: Format, origin: &Path) -> Result<Script, ScriptError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut script = match format {
        Format::Yaml => parse::parse_yaml(text, origin)?,
        Format::Json => parse::parse_json(text, origin)?,
        Format::Text => text::parse_text(text, origin)?,
    };
    validate::fill_scene_ids(&mut script);
    Ok(script)
}

/// Applies overrides and defaults, checks everything, and makes `image` /
/// `reference` paths absolute (relative to `origin`'s directory). Reports the
/// first problem found.
pub fn validate(
    script: &mut Script,
    origin: &Path,
    opts: &ValidateOptions,
) -> Result<(), ScriptError> {
    validate::validate(script, origin, opts)
}
