//! Errors for script loading. Every one of them is bad user input.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Broad category of a [`ScriptError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// The file is not UTF-8.
    Encoding,
    /// YAML/JSON/text syntax error.
    Syntax,
    /// Unknown field, wrong type, missing field.
    Schema,
    /// Values that parse but are not acceptable.
    Invalid,
}

/// A problem with a script. All variants are input errors (CLI exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// `path: cannot read: <io error>`
    #[error("{}: cannot read: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `path: not valid UTF-8 ...`
    #[error(
        "{}: not valid UTF-8 (bad byte at line {line}, byte offset {offset}); save the file as UTF-8",
        .path.display()
    )]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        offset: usize,
    },
    /// `path:LINE:COL: message`
    #[error("{}", render(.path, *.location, None, .message))]
    Syntax {
        path: PathBuf,
        /// 1-based (line, column).
        location: Option<(usize, usize)>,
        message: String,
    },
    /// `path:LINE:COL: field.path: message`
    #[error("{}", render(.path, *.location, .field.as_deref(), .message))]
    Schema {
        path: PathBuf,
        /// 1-based (line, column).
        location: Option<(usize, usize)>,
        /// e.g. `scenes[1].duration`; `None` at the top level.
        field: Option<String>,
        message: String,
    },
    /// `path: field.path: what is wrong; what to do`
    #[error("{}: {field}: {message}", .path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

fn render(path: &Path, location: Option<(usize, usize)>, field: Option<&str>, msg: &str) -> String {
    let mut out = path.display().to_string();
    if let Some((line, col)) = location {
        let _ = write!(out, ":{line}:{col}");
    }
    out.push_str(": ");
    if let Some(field) = field {
        out.push_str(field);
        out.push_str(": ");
    }
    out.push_str(msg);
    out
}

impl ScriptError {
    /// Category of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ScriptError::Io { .. } => ErrorKind::Io,
            ScriptError::NotUtf8 { .. } => ErrorKind::Encoding,
            ScriptError::Syntax { .. } => ErrorKind::Syntax,
            ScriptError::Schema { .. } => ErrorKind::Schema,
            ScriptError::Invalid { .. } => ErrorKind::Invalid,
        }
    }

    /// Always true: every script error is caused by the user's input.
    pub fn is_input_error(&self) -> bool {
        true
    }

    /// Process exit code the CLI should use (2 = bad input).
    pub fn exit_code(&self) -> i32 {
        2
    }

    /// The script file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ScriptError::Io { path, .. }
            | ScriptError::NotUtf8 { path, .. }
            | ScriptError::Syntax { path, .. }
            | ScriptError::Schema { path, .. }
            | ScriptError::Invalid { path, .. } => path,
        }
    }

    pub(crate) fn invalid(
        path: &Path,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ScriptError::Invalid {
            path: path.to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }
}
