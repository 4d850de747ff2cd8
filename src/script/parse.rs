//! YAML and JSON parsing with file:line:col and field paths in errors.

use std::path::Path;

use super::error::ScriptError;
use super::model::Script;

/// Removes serde_norway's ` at line N column M` / ` at position N` suffixes.
fn strip_positions(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(idx) = rest.find(" at ") {
        out.push_str(&rest[..idx]);
        let after = &rest[idx + 4..];
        if let Some(skip) = position_len(after) {
            rest = &after[skip..];
        } else {
            out.push_str(" at ");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Length of `line N column M` or `position N` at the start of `s`.
fn position_len(s: &str) -> Option<usize> {
    fn digits(s: &str) -> usize {
        s.bytes().take_while(u8::is_ascii_digit).count()
    }
    if let Some(r) = s.strip_prefix("line ") {
        let n = digits(r);
        let r2 = r[n..].strip_prefix(" column ")?;
        let m = digits(r2);
        if n == 0 || m == 0 {
            return None;
        }
        return Some("line ".len() + n + " column ".len() + m);
    }
    if let Some(r) = s.strip_prefix("position ") {
        let n = digits(r);
        if n == 0 {
            return None;
        }
        return Some("position ".len() + n);
    }
    None
}

/// Field path from serde_path_to_error; `None` at the root.
fn field_path(path: &serde_path_to_error::Path) -> Option<String> {
    let s = path.to_string();
    (s != "." && !s.is_empty()).then_some(s)
}

/// Whether a serde message is about the document's shape rather than its syntax.
fn is_schema_message(msg: &str) -> bool {
    msg.starts_with("unknown field")
        || msg.starts_with("missing field")
        || msg.starts_with("invalid type")
        || msg.starts_with("invalid value")
        || msg.starts_with("invalid length")
        || msg.starts_with("unknown variant")
        || msg.starts_with("duplicate field")
        || msg.starts_with("duplicate language")
        || msg.contains("duplicate entry")
}

fn make_error(
    origin: &Path,
    location: Option<(usize, usize)>,
    field: Option<String>,
    message: String,
) -> ScriptError {
    if field.is_some() || is_schema_message(&message) {
        ScriptError::Schema {
            path: origin.to_path_buf(),
            location,
            field,
            message,
        }
    } else {
        ScriptError::Syntax {
            path: origin.to_path_buf(),
            location,
            message,
        }
    }
}

pub(crate) fn parse_yaml(text: &str, origin: &Path) -> Result<Script, ScriptError> {
    if text.trim().is_empty() {
        return Err(ScriptError::Syntax {
            path: origin.to_path_buf(),
            location: None,
            message: "the file is empty; a script needs at least `title` and `scenes`".into(),
        });
    }
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, Script>(de).map_err(|err| {
        let field = field_path(err.path());
        let inner = err.inner();
        let location = inner.location().map(|l| (l.line(), l.column()));
        let mut message = strip_positions(&inner.to_string());
        // serde_norway prefixes its own path; we print ours instead.
        if let Some(f) = &field {
            if let Some((prefix, rest)) = message.split_once(": ") {
                if !prefix.is_empty() && !prefix.contains(' ') && f.starts_with(prefix) {
                    message = rest.to_string();
                }
            }
        }
        make_error(origin, location, field, message)
    })
}

pub(crate) fn parse_json(text: &str, origin: &Path) -> Result<Script, ScriptError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let script: Script = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let field = field_path(err.path());
        let inner = err.inner();
        let location = (inner.line() > 0).then(|| (inner.line(), inner.column().max(1)));
        let message = strip_json_position(&inner.to_string());
        if inner.is_eof() && field.is_none() && text.trim().is_empty() {
            return ScriptError::Syntax {
                path: origin.to_path_buf(),
                location: None,
                message: "the file is empty; a script needs at least `title` and `scenes`".into(),
            };
        }
        if inner.is_syntax() || inner.is_eof() {
            ScriptError::Syntax {
                path: origin.to_path_buf(),
                location,
                message,
            }
        } else {
            make_error(origin, location, field, message)
        }
    })?;
    de.end().map_err(|inner| ScriptError::Syntax {
        path: origin.to_path_buf(),
        location: Some((inner.line(), inner.column().max(1))),
        message: strip_json_position(&inner.to_string()),
    })?;
    Ok(script)
}

/// serde_json appends ` at line N column M`.
fn strip_json_position(msg: &str) -> String {
    strip_positions(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_positions() {
        assert_eq!(strip_positions("bad at line 3 column 4"), "bad");
        assert_eq!(
            strip_positions("x at line 3 column 4, while y at line 1 column 1"),
            "x, while y"
        );
        assert_eq!(strip_positions("look at this"), "look at this");
        assert_eq!(strip_positions("eof at position 0"), "eof");
    }
}
