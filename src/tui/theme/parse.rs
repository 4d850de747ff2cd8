//! Reading theme files: the errors (with their hints) and the parsing of one file into a layer.

use super::*;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a theme could not be loaded. Every message names the file, and for
/// invalid content the field and what to write instead.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    /// No built-in or user theme has this name.
    #[error("unknown theme \"{name}\"; available themes: {}", .available.join(", "))]
    Unknown {
        /// The requested name.
        name: String,
        /// Every theme that could have been loaded instead.
        available: Vec<String>,
    },
    /// A user theme file exists but could not be read.
    #[error("cannot read theme file {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not valid TOML.
    #[error("{file}: {message}\n{hint}")]
    Syntax {
        /// The file (a path, or a built-in theme's name).
        file: String,
        /// The TOML parser's message, with line and column.
        message: String,
        /// What valid content looks like.
        hint: String,
    },
    /// The TOML is valid but a field is wrong.
    #[error("{file}: {field}: {problem}; {hint}")]
    Invalid {
        /// The file (a path, or a built-in theme's name).
        file: String,
        /// Dotted path of the offending field, e.g. `styles.selection.fg`.
        field: String,
        /// What is wrong with it.
        problem: String,
        /// What to write instead, listing the valid choices.
        hint: String,
    },
}

const SYNTAX_HINT: &str = "a theme file looks like: name = \"mine\", a [palette] table of \
     colours such as accent = \"#89b4fa\", and a [styles] table of roles such as \
     selection = { fg = \"bg\", bg = \"accent\", modifiers = [\"bold\"] }";

const TOP_LEVEL_HINT: &str =
    "a theme file has only the keys name, description, [palette] and [styles]";

const STYLE_KEYS_HINT: &str = "a role is a table with the optional keys fg, bg and modifiers, \
     e.g. { fg = \"accent\", modifiers = [\"bold\"] }";

const MODIFIERS: [(&str, Modifier); 6] = [
    ("bold", Modifier::BOLD),
    ("dim", Modifier::DIM),
    ("italic", Modifier::ITALIC),
    ("underlined", Modifier::UNDERLINED),
    ("reversed", Modifier::REVERSED),
    ("crossed_out", Modifier::CROSSED_OUT),
];

fn modifier_hint() -> String {
    let names: Vec<_> = MODIFIERS.iter().map(|(name, _)| *name).collect();
    format!(
        "write a list such as [\"bold\", \"italic\"] using: {}",
        names.join(", ")
    )
}

fn role_hint() -> String {
    let names: Vec<_> = Role::ALL.iter().map(|role| role.as_str()).collect();
    format!("valid roles: {}", names.join(", "))
}

fn literal_colour_forms() -> String {
    let names: Vec<_> = ANSI16.iter().map(|(name, _, _)| *name).collect();
    format!(
        "\"#rrggbb\", \"indexed:N\" with N in 0-255, \"reset\", or an ANSI colour: {}",
        names.join(", ")
    )
}

fn palette_literal_hint() -> String {
    format!(
        "palette entries are literal colours: write {}",
        literal_colour_forms()
    )
}

pub(super) fn colour_reference_hint(palette: &BTreeMap<String, Color>) -> String {
    if palette.is_empty() {
        format!("write {}", literal_colour_forms())
    } else {
        let names: Vec<_> = palette.keys().map(String::as_str).collect();
        format!(
            "write a palette name ({}), {}",
            names.join(", "),
            literal_colour_forms()
        )
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// Parses a literal colour (everything but palette names).
///
/// ANSI names ignore case, `_`, `-` and spaces, and accept `grey` for `gray`.
/// On failure the error describes the problem.
pub(super) fn parse_literal_colour(text: &str) -> Result<Color, String> {
    let trimmed = text.trim();
    if let Some(hex) = trimmed.strip_prefix('#') {
        return match (hex.len(), u32::from_str_radix(hex, 16)) {
            (6, Ok(value)) if hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                let [_, r, g, b] = value.to_be_bytes();
                Ok(Color::Rgb(r, g, b))
            }
            _ => Err(format!(
                "\"{text}\" is not a hex colour (expected # followed by 6 hex digits)"
            )),
        };
    }
    let lowered = trimmed.to_ascii_lowercase();
    if let Some(digits) = lowered.strip_prefix("indexed:") {
        let digits = digits.trim();
        return match digits.parse::<u8>() {
            Ok(index) if digits.bytes().all(|b| b.is_ascii_digit()) => Ok(Color::Indexed(index)),
            _ => Err(format!(
                "\"{text}\" is not a palette index (expected indexed:N with N in 0-255)"
            )),
        };
    }
    let normalised: String = lowered
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .collect::<String>()
        .replace("grey", "gray");
    if normalised == "reset" {
        return Ok(Color::Reset);
    }
    ANSI16
        .iter()
        .find(|(name, _, _)| *name == normalised)
        .map(|&(_, color, _)| color)
        .ok_or_else(|| format!("unknown colour \"{text}\""))
}

/// A role as written in a file, before colour names are resolved.
#[derive(Clone, Debug, Default)]
pub(super) struct RawStyle {
    pub(super) fg: Option<String>,
    pub(super) bg: Option<String>,
    pub(super) modifiers: Modifier,
}

/// One parsed theme file.
#[derive(Debug)]
pub(super) struct Layer {
    pub(super) file: String,
    pub(super) description: Option<String>,
    pub(super) palette: BTreeMap<String, Color>,
    pub(super) styles: BTreeMap<Role, RawStyle>,
}

/// Builds errors that name one file.
pub(super) struct FileContext<'a> {
    pub(super) file: &'a str,
}

impl FileContext<'_> {
    pub(super) fn invalid(
        &self,
        field: &str,
        problem: impl Into<String>,
        hint: impl Into<String>,
    ) -> ThemeError {
        ThemeError::Invalid {
            file: self.file.to_owned(),
            field: field.to_owned(),
            problem: problem.into(),
            hint: hint.into(),
        }
    }

    fn string<'v>(&self, value: &'v Value, field: &str) -> Result<&'v str, ThemeError> {
        value.as_str().ok_or_else(|| {
            self.invalid(
                field,
                format!("expected a string, found {}", value.type_str()),
                "put the value in double quotes",
            )
        })
    }

    fn table<'v>(
        &self,
        value: &'v Value,
        field: &str,
        hint: &str,
    ) -> Result<&'v Table, ThemeError> {
        value.as_table().ok_or_else(|| {
            self.invalid(
                field,
                format!("expected a table, found {}", value.type_str()),
                hint,
            )
        })
    }

    pub(super) fn modifiers(&self, value: &Value, field: &str) -> Result<Modifier, ThemeError> {
        let items = value.as_array().ok_or_else(|| {
            self.invalid(
                field,
                format!("expected a list, found {}", value.type_str()),
                modifier_hint(),
            )
        })?;
        let mut modifiers = Modifier::empty();
        for item in items {
            let name = self.string(item, field)?;
            let lowered = name.trim().to_ascii_lowercase();
            let (_, modifier) = MODIFIERS
                .iter()
                .find(|(known, _)| *known == lowered)
                .ok_or_else(|| {
                    self.invalid(
                        field,
                        format!("unknown modifier \"{name}\""),
                        modifier_hint(),
                    )
                })?;
            modifiers.insert(*modifier);
        }
        Ok(modifiers)
    }

    pub(super) fn style(&self, value: &Value, field: &str) -> Result<RawStyle, ThemeError> {
        let table = self.table(value, field, STYLE_KEYS_HINT)?;
        let mut style = RawStyle::default();
        for (key, value) in table {
            let field = format!("{field}.{key}");
            match key.as_str() {
                "fg" => style.fg = Some(self.string(value, &field)?.to_owned()),
                "bg" => style.bg = Some(self.string(value, &field)?.to_owned()),
                "modifiers" => style.modifiers = self.modifiers(value, &field)?,
                _ => {
                    return Err(self.invalid(
                        &field,
                        format!("unknown key \"{key}\""),
                        STYLE_KEYS_HINT,
                    ))
                }
            }
        }
        Ok(style)
    }
}

impl Layer {
    /// Parses and validates one theme file. Colour references in styles are
    /// only checked later, once the palettes of all layers are merged.
    pub(super) fn parse(file: String, text: &str) -> Result<Layer, ThemeError> {
        let table: Table = toml::from_str(text).map_err(|err| ThemeError::Syntax {
            file: file.clone(),
            message: err.to_string().trim_end().to_owned(),
            hint: SYNTAX_HINT.to_owned(),
        })?;
        let cx = FileContext { file: &file };
        let mut description = None;
        let mut palette = BTreeMap::new();
        let mut styles = BTreeMap::new();
        for (key, value) in &table {
            match key.as_str() {
                "name" => {
                    // Informational only: a theme is named after its file.
                    cx.string(value, key)?;
                }
                "description" => description = Some(cx.string(value, key)?.to_owned()),
                "palette" => {
                    let entries = cx.table(
                        value,
                        key,
                        "write [palette] followed by lines such as accent = \"#89b4fa\"",
                    )?;
                    for (name, value) in entries {
                        let field = format!("palette.{name}");
                        let text = cx.string(value, &field)?;
                        let colour = parse_literal_colour(text).map_err(|problem| {
                            cx.invalid(&field, problem, palette_literal_hint())
                        })?;
                        palette.insert(name.clone(), colour);
                    }
                }
                "styles" => {
                    let entries = cx.table(
                        value,
                        key,
                        "write [styles] followed by lines such as text = { fg = \"fg\" }",
                    )?;
                    for (name, value) in entries {
                        let field = format!("styles.{name}");
                        let role = Role::from_name(name).ok_or_else(|| {
                            cx.invalid(&field, format!("unknown role \"{name}\""), role_hint())
                        })?;
                        styles.insert(role, cx.style(value, &field)?);
                    }
                }
                _ => return Err(cx.invalid(key, format!("unknown key \"{key}\""), TOP_LEVEL_HINT)),
            }
        }
        Ok(Layer {
            file,
            description,
            palette,
            styles,
        })
    }
}
