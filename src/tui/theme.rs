//! Colour themes for the terminal UI.
//!
//! A [`Theme`] maps every semantic [`Role`] (body text, selection, job
//! status, gauge segments, ...) to a ratatui [`Style`]. Widgets never pick
//! colours themselves; they ask the theme with [`Theme::style`].
//!
//! # Theme files
//!
//! Themes are TOML files. A few are built into the binary (see
//! [`theme_names`]); users can add their own, or override parts of a
//! built-in one, in `<config_dir>/themes/<name>.toml`:
//!
//! ```toml
//! name = "dark"
//! description = "What this theme looks like"
//!
//! [palette]            # optional named colours
//! bg = "#1e1e2e"
//! accent = "#89b4fa"
//!
//! [styles]             # one entry per role: { fg, bg, modifiers }, all optional
//! text = { fg = "fg" }
//! selection = { fg = "bg", bg = "accent", modifiers = ["bold"] }
//! ```
//!
//! A colour is written as
//!
//! * a palette name (palette names shadow the built-in names below),
//! * `#rrggbb`,
//! * one of the 16 ANSI names: `black red green yellow blue magenta cyan gray
//!   darkgray lightred lightgreen lightyellow lightblue lightmagenta lightcyan
//!   white`,
//! * `reset` (the terminal's default colour), or
//! * `indexed:N` for entry `N` (0–255) of the terminal's 256-colour palette.
//!
//! Palette entries themselves must be one of the literal forms (not another
//! palette name). Modifiers are `bold`, `dim`, `italic`, `underlined`,
//! `reversed` and `crossed_out`.
//!
//! # Layering
//!
//! A user theme is laid over a built-in base theme: the built-in theme of the
//! same name when there is one, otherwise `dark`. Palette entries override
//! the base entry by entry, and roles override it role by role (a role given
//! in the user file replaces the base role completely). Because colour names
//! are resolved after layering, overriding a palette entry such as `accent`
//! recolours every base role that refers to it.
//!
//! # Colour support
//!
//! Colours are adapted to what the terminal can show ([`ColorSupport`]):
//! RGB colours are mapped to the nearest 256- or 16-colour entry, and with
//! [`ColorSupport::NoColor`] all colours are dropped and roles that stand out
//! through their background are shown reversed instead.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use toml::{Table, Value};

// ---------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------

/// Declares [`Role`] together with its `ALL` table and its TOML names, so the
/// three can never drift apart.
macro_rules! roles {
    ($($(#[doc = $doc:literal])+ $variant:ident = $name:literal,)+) => {
        /// A semantic place in the UI that a theme gives a style to.
        ///
        /// The TOML name of each role (see [`Role::as_str`]) is the key used
        /// under `[styles]` in a theme file.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Role {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Role {
            /// Every role, in declaration order.
            pub const ALL: [Role; Role::COUNT] = [$(Role::$variant,)+];

            /// The role's name in theme files, e.g. `"border_focus"`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Role::$variant => $name,)+
                }
            }
        }
    };
}

roles! {
    /// Ordinary body text.
    Text = "text",
    /// Secondary text: hints, timestamps, placeholders.
    Dim = "dim",
    /// Panel and popup titles.
    Title = "title",
    /// Borders of unfocused panels.
    Border = "border",
    /// Border of the focused panel.
    BorderFocus = "border_focus",
    /// The selected row of a list or table.
    Selection = "selection",
    /// Table column headers.
    Header = "header",
    /// Highlighted values that should draw the eye.
    Accent = "accent",
    /// Key names in help bars and help screens.
    KeyHint = "key_hint",
    /// Inactive tab labels.
    Tab = "tab",
    /// The active tab label.
    TabActive = "tab_active",
    /// The body of popups and dialogs.
    Overlay = "overlay",
    /// Success messages.
    Ok = "ok",
    /// Warnings.
    Warn = "warn",
    /// Errors.
    Error = "error",
    /// Informational messages.
    Info = "info",
    /// A job waiting in the queue.
    StatusQueued = "status_queued",
    /// A job that is running.
    StatusRunning = "status_running",
    /// A paused job.
    StatusPaused = "status_paused",
    /// A job that finished successfully.
    StatusDone = "status_done",
    /// A job that failed.
    StatusFailed = "status_failed",
    /// A job that was cancelled.
    StatusCancelled = "status_cancelled",
    /// Gauge segment: capacity reserved by reelsmith.
    GaugeReserved = "gauge_reserved",
    /// Gauge segment: capacity in use by reelsmith.
    GaugeUsed = "gauge_used",
    /// Gauge segment: capacity used by other processes.
    GaugeOther = "gauge_other",
    /// Gauge segment: free capacity.
    GaugeFree = "gauge_free",
    /// Sparkline charts.
    Sparkline = "sparkline",
    /// The completed part of a progress bar.
    ProgressDone = "progress_done",
    /// The remaining part of a progress bar.
    ProgressTodo = "progress_todo",
}

impl Role {
    /// Number of roles.
    pub const COUNT: usize = 29;

    /// Looks a role up by its theme-file name (see [`Role::as_str`]).
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// Roles whose look depends on a background colour; without colour they
    /// are shown reversed so they stay visible.
    const fn needs_reverse_without_color(self) -> bool {
        matches!(
            self,
            Role::Selection
                | Role::TabActive
                | Role::GaugeReserved
                | Role::GaugeUsed
                | Role::GaugeOther
                | Role::ProgressDone
        )
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------
// Colour support and downsampling
// ---------------------------------------------------------------------------

/// How many colours the terminal can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColorSupport {
    /// No colour at all (`NO_COLOR`, `TERM=dumb`): only modifiers are used.
    NoColor,
    /// The 16 named ANSI colours.
    Ansi16,
    /// The xterm 256-colour palette.
    Ansi256,
    /// 24-bit RGB colour.
    TrueColor,
}

impl ColorSupport {
    /// Detects colour support from environment variables, read through `get`
    /// (pass `|k| std::env::var(k).ok()` for the real environment, or see
    /// [`ColorSupport::from_env`]).
    ///
    /// In order of precedence:
    /// 1. `NO_COLOR` set to a non-empty value → [`NoColor`](Self::NoColor)
    ///    (<https://no-color.org>);
    /// 2. `REELSMITH_COLORS` = `none` | `16` | `256` | `truecolor` forces that
    ///    level (other values are ignored);
    /// 3. `TERM=dumb` → [`NoColor`](Self::NoColor);
    /// 4. `COLORTERM` = `truecolor` | `24bit` → [`TrueColor`](Self::TrueColor);
    /// 5. `TERM` containing `256color` → [`Ansi256`](Self::Ansi256);
    /// 6. otherwise [`Ansi16`](Self::Ansi16).
    pub fn detect(get: impl Fn(&str) -> Option<String>) -> ColorSupport {
        if get("NO_COLOR").is_some_and(|value| !value.is_empty()) {
            return ColorSupport::NoColor;
        }
        if let Some(forced) = get("REELSMITH_COLORS").and_then(|v| ColorSupport::from_name(&v)) {
            return forced;
        }
        let term = get("TERM").unwrap_or_default();
        if term.trim().eq_ignore_ascii_case("dumb") {
            return ColorSupport::NoColor;
        }
        let colorterm = get("COLORTERM").unwrap_or_default();
        let colorterm = colorterm.trim();
        if colorterm.eq_ignore_ascii_case("truecolor") || colorterm.eq_ignore_ascii_case("24bit") {
            return ColorSupport::TrueColor;
        }
        if term.contains("256color") {
            return ColorSupport::Ansi256;
        }
        ColorSupport::Ansi16
    }

    /// [`ColorSupport::detect`] on the process environment.
    pub fn from_env() -> ColorSupport {
        ColorSupport::detect(|key| std::env::var(key).ok())
    }

    /// Parses the names used by `REELSMITH_COLORS`: `none`, `16`, `256`,
    /// `truecolor` (also `24bit`), ignoring case and surrounding spaces.
    pub fn from_name(name: &str) -> Option<ColorSupport> {
        match name.trim().to_ascii_lowercase().as_str() {
            "none" => Some(ColorSupport::NoColor),
            "16" => Some(ColorSupport::Ansi16),
            "256" => Some(ColorSupport::Ansi256),
            "truecolor" | "24bit" => Some(ColorSupport::TrueColor),
            _ => None,
        }
    }

    /// The canonical name, as accepted by [`ColorSupport::from_name`].
    pub const fn as_str(self) -> &'static str {
        match self {
            ColorSupport::NoColor => "none",
            ColorSupport::Ansi16 => "16",
            ColorSupport::Ansi256 => "256",
            ColorSupport::TrueColor => "truecolor",
        }
    }

    /// Adapts `color` to this level of support; `None` means "no colour".
    ///
    /// RGB colours become the nearest xterm-256 entry under
    /// [`Ansi256`](Self::Ansi256) and the nearest ANSI colour under
    /// [`Ansi16`](Self::Ansi16) (which also maps indexed colours). Named ANSI
    /// colours and `Reset` are kept unchanged except under
    /// [`NoColor`](Self::NoColor).
    pub fn adapt(self, color: Color) -> Option<Color> {
        match self {
            ColorSupport::NoColor => None,
            ColorSupport::TrueColor => Some(color),
            ColorSupport::Ansi256 => Some(match color {
                Color::Rgb(r, g, b) => Color::Indexed(rgb_to_ansi256(r, g, b)),
                other => other,
            }),
            ColorSupport::Ansi16 => Some(match color {
                Color::Rgb(r, g, b) => rgb_to_ansi16(r, g, b),
                Color::Indexed(index) => ansi256_to_ansi16(index),
                other => other,
            }),
        }
    }
}

impl fmt::Display for ColorSupport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The 16 ANSI colours with their theme-file names and xterm's default RGB
/// values, in palette order (index 0–15).
const ANSI16: [(&str, Color, [u8; 3]); 16] = [
    ("black", Color::Black, [0, 0, 0]),
    ("red", Color::Red, [205, 0, 0]),
    ("green", Color::Green, [0, 205, 0]),
    ("yellow", Color::Yellow, [205, 205, 0]),
    ("blue", Color::Blue, [0, 0, 238]),
    ("magenta", Color::Magenta, [205, 0, 205]),
    ("cyan", Color::Cyan, [0, 205, 205]),
    ("gray", Color::Gray, [229, 229, 229]),
    ("darkgray", Color::DarkGray, [127, 127, 127]),
    ("lightred", Color::LightRed, [255, 0, 0]),
    ("lightgreen", Color::LightGreen, [0, 255, 0]),
    ("lightyellow", Color::LightYellow, [255, 255, 0]),
    ("lightblue", Color::LightBlue, [92, 92, 255]),
    ("lightmagenta", Color::LightMagenta, [255, 0, 255]),
    ("lightcyan", Color::LightCyan, [0, 255, 255]),
    ("white", Color::White, [255, 255, 255]),
];

/// Channel levels of the xterm 6×6×6 colour cube (indices 16–231).
const CUBE_LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];

fn distance_sq(a: [u8; 3], b: [u8; 3]) -> u32 {
    a.iter()
        .zip(b)
        .map(|(&x, y)| {
            let d = i32::from(x) - i32::from(y);
            d.unsigned_abs() * d.unsigned_abs()
        })
        .sum()
}

/// The xterm-256 index nearest to an RGB colour: the closest entry of the
/// 6×6×6 cube (16–231) or of the gray ramp (232–255), whichever is nearer by
/// squared RGB distance (the cube wins ties).
pub fn rgb_to_ansi256(r: u8, g: u8, b: u8) -> u8 {
    let rgb = [r, g, b];
    let level = |value: u8| -> usize {
        (0..CUBE_LEVELS.len())
            .min_by_key(|&i| CUBE_LEVELS[i].abs_diff(value))
            .unwrap_or(0)
    };
    let (ri, gi, bi) = (level(r), level(g), level(b));
    let cube = [CUBE_LEVELS[ri], CUBE_LEVELS[gi], CUBE_LEVELS[bi]];
    // Each index is below 6, so this stays within 16..=231.
    let cube_index = (16 + 36 * ri + 6 * gi + bi) as u8;

    let (gray_step, gray_distance) = (0u8..24)
        .map(|step| {
            let v = 8 + 10 * step;
            (step, distance_sq(rgb, [v, v, v]))
        })
        .min_by_key(|&(_, d)| d)
        .unwrap_or((0, u32::MAX));

    if gray_distance < distance_sq(rgb, cube) {
        232 + gray_step
    } else {
        cube_index
    }
}

/// The ANSI colour nearest to an RGB colour, by squared distance to xterm's
/// default values for the 16 colours (for example `#ff0000` is exactly
/// [`Color::LightRed`] and `#cd0000` is [`Color::Red`]).
pub fn rgb_to_ansi16(r: u8, g: u8, b: u8) -> Color {
    ANSI16
        .iter()
        .min_by_key(|(_, _, value)| distance_sq([r, g, b], *value))
        .map_or(Color::Reset, |&(_, color, _)| color)
}

/// The RGB value xterm uses for a 256-colour palette index.
fn ansi256_to_rgb(index: u8) -> [u8; 3] {
    match index {
        0..=15 => ANSI16[usize::from(index)].2,
        16..=231 => {
            let i = usize::from(index - 16);
            [
                CUBE_LEVELS[i / 36],
                CUBE_LEVELS[(i / 6) % 6],
                CUBE_LEVELS[i % 6],
            ]
        }
        232..=255 => {
            let v = 8 + 10 * (index - 232);
            [v, v, v]
        }
    }
}

/// Maps a 256-colour palette index to an ANSI colour: 0–15 are the ANSI
/// colours themselves, the others go to the nearest one.
fn ansi256_to_ansi16(index: u8) -> Color {
    if let Some(&(_, color, _)) = ANSI16.get(usize::from(index)) {
        return color;
    }
    let [r, g, b] = ansi256_to_rgb(index);
    rgb_to_ansi16(r, g, b)
}

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

fn colour_reference_hint(palette: &BTreeMap<String, Color>) -> String {
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
fn parse_literal_colour(text: &str) -> Result<Color, String> {
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
struct RawStyle {
    fg: Option<String>,
    bg: Option<String>,
    modifiers: Modifier,
}

/// One parsed theme file.
#[derive(Debug)]
struct Layer {
    file: String,
    description: Option<String>,
    palette: BTreeMap<String, Color>,
    styles: BTreeMap<Role, RawStyle>,
}

/// Builds errors that name one file.
struct FileContext<'a> {
    file: &'a str,
}

impl FileContext<'_> {
    fn invalid(
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

    fn modifiers(&self, value: &Value, field: &str) -> Result<Modifier, ThemeError> {
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

    fn style(&self, value: &Value, field: &str) -> Result<RawStyle, ThemeError> {
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
    fn parse(file: String, text: &str) -> Result<Layer, ThemeError> {
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

// ---------------------------------------------------------------------------
// Built-in themes and discovery
// ---------------------------------------------------------------------------

/// A theme compiled into the binary.
struct Embedded {
    name: &'static str,
    source: &'static str,
}

impl Embedded {
    fn label(&self) -> String {
        format!("built-in theme file themes/{}.toml", self.name)
    }

    fn layer(&self) -> Result<Layer, ThemeError> {
        Layer::parse(self.label(), self.source)
    }
}

macro_rules! embedded {
    ($name:literal) => {
        Embedded {
            name: $name,
            source: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/themes/",
                $name,
                ".toml"
            )),
        }
    };
}

/// Built-in themes; the first is the base for user themes without a
/// built-in namesake.
static EMBEDDED: [Embedded; 5] = [
    embedded!("dark"),
    embedded!("light"),
    embedded!("high-contrast"),
    embedded!("catppuccin-mocha"),
    embedded!("gruvbox-dark"),
];

/// The name of the theme used when none is configured.
pub const DEFAULT_THEME: &str = "dark";

fn embedded(name: &str) -> Option<&'static Embedded> {
    EMBEDDED.iter().find(|theme| theme.name == name)
}

/// Whether `name` can name a theme file: not empty, no path separators, no
/// leading dot.
fn is_valid_theme_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.trim() == name
}

fn user_theme_path(config_dir: &Path, name: &str) -> PathBuf {
    config_dir.join("themes").join(format!("{name}.toml"))
}

/// Names of every available theme: the built-in ones plus each
/// `<config_dir>/themes/*.toml`, sorted and without duplicates.
pub fn theme_names(config_dir: Option<&Path>) -> Vec<String> {
    let mut names: Vec<String> = EMBEDDED.iter().map(|theme| theme.name.to_owned()).collect();
    let entries = config_dir.and_then(|dir| fs::read_dir(dir.join("themes")).ok());
    for entry in entries.into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
            if let Some(stem) = path.file_stem().and_then(|stem| stem.to_str()) {
                if is_valid_theme_name(stem) {
                    names.push(stem.to_owned());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

// ---------------------------------------------------------------------------
// Theme
// ---------------------------------------------------------------------------

/// A loaded theme: one resolved [`Style`] per [`Role`], already adapted to
/// the terminal's [`ColorSupport`].
#[derive(Clone, Debug, PartialEq)]
pub struct Theme {
    /// The theme's name (its file name without `.toml`).
    pub name: String,
    /// One-line description from the theme file (may be empty).
    pub description: String,
    /// The colour support the styles were adapted to.
    pub support: ColorSupport,
    styles: [Style; Role::COUNT],
}

impl Theme {
    /// Loads the theme `name`.
    ///
    /// With a `config_dir`, a user file `<config_dir>/themes/<name>.toml`
    /// is layered over the built-in theme of the same name, or over `dark`
    /// when there is none (see the [module docs](self)). Colours are then
    /// adapted to `support`.
    ///
    /// # Errors
    ///
    /// [`ThemeError::Unknown`] (listing the available names) when neither a
    /// built-in nor a user theme has this name, [`ThemeError::Read`] when
    /// the user file exists but cannot be read, and [`ThemeError::Syntax`]
    /// or [`ThemeError::Invalid`] when its content is wrong.
    pub fn load(
        name: &str,
        config_dir: Option<&Path>,
        support: ColorSupport,
    ) -> Result<Theme, ThemeError> {
        let unknown = || ThemeError::Unknown {
            name: name.to_owned(),
            available: theme_names(config_dir),
        };
        if !is_valid_theme_name(name) {
            return Err(unknown());
        }
        let user = match config_dir {
            Some(dir) => read_user_theme(&user_theme_path(dir, name))?,
            None => None,
        };
        let base = match (embedded(name), &user) {
            (Some(builtin), _) => builtin,
            (None, Some(_)) => &EMBEDDED[0],
            (None, None) => return Err(unknown()),
        };
        let mut layers = vec![base.layer()?];
        if let Some((path, text)) = user {
            layers.push(Layer::parse(path.display().to_string(), &text)?);
        }
        Theme::from_layers(name, &layers, support)
    }

    /// The built-in `dark` theme in true colour. Never fails.
    pub fn default_dark() -> Theme {
        Theme::load(DEFAULT_THEME, None, ColorSupport::TrueColor)
            .expect("the built-in dark theme is valid (checked by tests)")
    }

    /// The style for `role`.
    pub fn style(&self, role: Role) -> Style {
        self.styles[role.index()]
    }

    /// Merges `layers` (later ones win) and resolves every role.
    fn from_layers(
        name: &str,
        layers: &[Layer],
        support: ColorSupport,
    ) -> Result<Theme, ThemeError> {
        let mut palette = BTreeMap::new();
        let mut roles: BTreeMap<Role, (&RawStyle, &str)> = BTreeMap::new();
        let mut description = String::new();
        for layer in layers {
            palette.extend(layer.palette.iter().map(|(k, v)| (k.clone(), *v)));
            for (role, style) in &layer.styles {
                roles.insert(*role, (style, layer.file.as_str()));
            }
            if let Some(text) = &layer.description {
                description.clone_from(text);
            }
        }

        let mut styles = [Style::new(); Role::COUNT];
        for role in Role::ALL {
            let Some(&(raw, file)) = roles.get(&role) else {
                let file = layers.first().map_or("", |layer| layer.file.as_str());
                return Err(FileContext { file }.invalid(
                    &format!("styles.{role}"),
                    "missing role",
                    format!("add {role} = {{ fg = \"...\" }} under [styles]"),
                ));
            };
            let cx = FileContext { file };
            let resolve =
                |reference: &Option<String>, key: &str| -> Result<Option<Color>, ThemeError> {
                    let Some(reference) = reference else {
                        return Ok(None);
                    };
                    if let Some(colour) = palette.get(reference) {
                        return Ok(Some(*colour));
                    }
                    parse_literal_colour(reference)
                        .map(Some)
                        .map_err(|problem| {
                            cx.invalid(
                                &format!("styles.{role}.{key}"),
                                problem,
                                colour_reference_hint(&palette),
                            )
                        })
                };
            let fg = resolve(&raw.fg, "fg")?;
            let bg = resolve(&raw.bg, "bg")?;
            styles[role.index()] = finish_style(role, fg, bg, raw.modifiers, support);
        }

        Ok(Theme {
            name: name.to_owned(),
            description,
            support,
            styles,
        })
    }
}

impl Default for Theme {
    fn default() -> Self {
        Theme::default_dark()
    }
}

/// Reads a user theme file; `Ok(None)` when it does not exist.
fn read_user_theme(path: &Path) -> Result<Option<(PathBuf, String)>, ThemeError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some((path.to_owned(), text))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ThemeError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Builds the final style of a role for the given colour support.
fn finish_style(
    role: Role,
    fg: Option<Color>,
    bg: Option<Color>,
    mut modifiers: Modifier,
    support: ColorSupport,
) -> Style {
    if support == ColorSupport::NoColor {
        if role.needs_reverse_without_color() {
            modifiers.insert(Modifier::REVERSED);
        }
        match role {
            // Background-only parts: plain, so the filled parts stand out.
            Role::GaugeFree | Role::ProgressTodo => modifiers.remove(Modifier::REVERSED),
            // Without a gray, secondary text can only be told apart by DIM.
            Role::Dim => modifiers.insert(Modifier::DIM),
            _ => {}
        }
        return Style::new().add_modifier(modifiers);
    }
    let mut style = Style::new().add_modifier(modifiers);
    if let Some(fg) = fg.and_then(|c| support.adapt(c)) {
        style = style.fg(fg);
    }
    if let Some(bg) = bg.and_then(|c| support.adapt(c)) {
        style = style.bg(bg);
    }
    style
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_SUPPORT: [ColorSupport; 4] = [
        ColorSupport::NoColor,
        ColorSupport::Ansi16,
        ColorSupport::Ansi256,
        ColorSupport::TrueColor,
    ];

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn write_user_theme(dir: &Path, name: &str, text: &str) -> PathBuf {
        let themes = dir.join("themes");
        fs::create_dir_all(&themes).unwrap();
        let path = themes.join(format!("{name}.toml"));
        fs::write(&path, text).unwrap();
        path
    }

    fn colours(style: Style) -> [Option<Color>; 2] {
        [style.fg, style.bg]
    }

    #[test]
    fn role_names_are_unique_and_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::from_name(role.as_str()), Some(role));
            assert_eq!(Role::ALL[role.index()], role);
        }
        let mut names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Role::COUNT);
        assert_eq!(Role::from_name("nope"), None);
    }

    #[test]
    fn every_embedded_theme_defines_every_role() {
        for theme in &EMBEDDED {
            let layer = theme.layer().unwrap_or_else(|e| panic!("{e}"));
            for role in Role::ALL {
                assert!(
                    layer.styles.contains_key(&role),
                    "{} does not define {role}",
                    theme.name
                );
            }
            assert!(
                layer.description.is_some(),
                "{} has no description",
                theme.name
            );
        }
    }

    #[test]
    fn every_embedded_theme_loads_in_every_colour_mode() {
        for theme in &EMBEDDED {
            for support in ALL_SUPPORT {
                let loaded = Theme::load(theme.name, None, support)
                    .unwrap_or_else(|e| panic!("{} / {support}: {e}", theme.name));
                assert_eq!(loaded.name, theme.name);
                assert_eq!(loaded.support, support);
                for role in Role::ALL {
                    for colour in colours(loaded.style(role)).into_iter().flatten() {
                        match support {
                            ColorSupport::NoColor => {
                                panic!("{}: colour left in {role}", theme.name)
                            }
                            ColorSupport::Ansi16 => assert!(
                                !matches!(colour, Color::Rgb(..) | Color::Indexed(_)),
                                "{} {role}: {colour:?} in 16-colour mode",
                                theme.name
                            ),
                            ColorSupport::Ansi256 => assert!(
                                !matches!(colour, Color::Rgb(..)),
                                "{} {role}: {colour:?} in 256-colour mode",
                                theme.name
                            ),
                            ColorSupport::TrueColor => {}
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn high_contrast_uses_only_named_colours() {
        let theme = Theme::load("high-contrast", None, ColorSupport::TrueColor).unwrap();
        for role in Role::ALL {
            for colour in colours(theme.style(role)).into_iter().flatten() {
                assert!(
                    !matches!(colour, Color::Rgb(..) | Color::Indexed(_)),
                    "{role} uses {colour:?}"
                );
            }
        }
    }

    /// WCAG relative luminance of an sRGB colour.
    fn luminance([r, g, b]: [u8; 3]) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    }

    fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    fn rgb(colour: Color) -> [u8; 3] {
        match colour {
            Color::Rgb(r, g, b) => [r, g, b],
            other => panic!("expected an RGB colour, got {other:?}"),
        }
    }

    /// The RGB themes stay legible: text meets WCAG AA (4.5:1) against the
    /// background it is drawn on, short status labels 4:1, empty bar parts
    /// and cancelled jobs 3:1, and borders 2:1.
    #[test]
    fn rgb_themes_have_legible_contrast() {
        for (name, background) in [
            ("dark", "#16181d"),
            ("light", "#fafafa"),
            ("catppuccin-mocha", "#1e1e2e"),
            ("gruvbox-dark", "#282828"),
        ] {
            let theme = Theme::load(name, None, ColorSupport::TrueColor).unwrap();
            let Ok(Color::Rgb(r, g, b)) = parse_literal_colour(background) else {
                unreachable!()
            };
            let background = [r, g, b];
            for role in Role::ALL {
                let style = theme.style(role);
                let Some(fg) = style.fg.map(rgb) else {
                    continue;
                };
                let on = style.bg.map_or(background, rgb);
                let needed = match role {
                    Role::Border => 2.0,
                    Role::GaugeFree | Role::ProgressTodo | Role::StatusCancelled => 3.0,
                    // Short coloured labels, usually bold (gruvbox's own
                    // bright red is 4.3:1 on its background).
                    Role::Ok
                    | Role::Warn
                    | Role::Error
                    | Role::Info
                    | Role::StatusQueued
                    | Role::StatusRunning
                    | Role::StatusPaused
                    | Role::StatusDone
                    | Role::StatusFailed => 4.0,
                    _ => 4.5,
                };
                let ratio = contrast(fg, on);
                assert!(
                    ratio >= needed,
                    "{name} {role}: contrast {ratio:.2} below {needed}"
                );
            }
        }
    }

    #[test]
    fn detection_table() {
        let cases: &[(&[(&str, &str)], ColorSupport)] = &[
            (&[], ColorSupport::Ansi16),
            (&[("TERM", "xterm")], ColorSupport::Ansi16),
            (&[("TERM", "xterm-256color")], ColorSupport::Ansi256),
            (&[("TERM", "tmux-256color")], ColorSupport::Ansi256),
            (
                &[("TERM", "xterm-256color"), ("COLORTERM", "truecolor")],
                ColorSupport::TrueColor,
            ),
            (
                &[("TERM", "xterm"), ("COLORTERM", "24bit")],
                ColorSupport::TrueColor,
            ),
            (
                &[("TERM", "xterm"), ("COLORTERM", "yes")],
                ColorSupport::Ansi16,
            ),
            (&[("TERM", "dumb")], ColorSupport::NoColor),
            (
                &[("TERM", "dumb"), ("COLORTERM", "truecolor")],
                ColorSupport::NoColor,
            ),
            (
                &[("NO_COLOR", "1"), ("COLORTERM", "truecolor")],
                ColorSupport::NoColor,
            ),
            (
                &[("NO_COLOR", ""), ("TERM", "xterm-256color")],
                ColorSupport::Ansi256,
            ),
            (
                &[("NO_COLOR", "1"), ("REELSMITH_COLORS", "truecolor")],
                ColorSupport::NoColor,
            ),
            (
                &[("REELSMITH_COLORS", "truecolor"), ("TERM", "dumb")],
                ColorSupport::TrueColor,
            ),
            (&[("REELSMITH_COLORS", "256")], ColorSupport::Ansi256),
            (
                &[("REELSMITH_COLORS", "16"), ("COLORTERM", "truecolor")],
                ColorSupport::Ansi16,
            ),
            (
                &[("REELSMITH_COLORS", "none"), ("COLORTERM", "truecolor")],
                ColorSupport::NoColor,
            ),
            (
                &[("REELSMITH_COLORS", "bogus"), ("TERM", "xterm-256color")],
                ColorSupport::Ansi256,
            ),
        ];
        for (vars, expected) in cases {
            assert_eq!(ColorSupport::detect(env(vars)), *expected, "env {vars:?}");
        }
    }

    #[test]
    fn colour_support_names_round_trip() {
        for support in ALL_SUPPORT {
            assert_eq!(ColorSupport::from_name(support.as_str()), Some(support));
        }
        assert_eq!(
            ColorSupport::from_name(" TrueColor "),
            Some(ColorSupport::TrueColor)
        );
        assert_eq!(ColorSupport::from_name("lots"), None);
    }

    #[test]
    fn downsampling_examples() {
        let red = Color::Rgb(255, 0, 0);
        assert_eq!(ColorSupport::TrueColor.adapt(red), Some(red));
        assert_eq!(ColorSupport::Ansi256.adapt(red), Some(Color::Indexed(196)));
        // xterm's bright red is exactly #ff0000; its normal red is #cd0000.
        assert_eq!(ColorSupport::Ansi16.adapt(red), Some(Color::LightRed));
        assert_eq!(
            ColorSupport::Ansi16.adapt(Color::Rgb(205, 0, 0)),
            Some(Color::Red)
        );
        assert_eq!(
            ColorSupport::Ansi16.adapt(Color::Rgb(180, 20, 20)),
            Some(Color::Red)
        );
        assert_eq!(ColorSupport::NoColor.adapt(red), None);

        // Gray ramp versus cube.
        assert_eq!(rgb_to_ansi256(0x80, 0x80, 0x80), 244);
        assert_eq!(rgb_to_ansi256(0x08, 0x08, 0x08), 232);
        assert_eq!(rgb_to_ansi256(0xee, 0xee, 0xee), 255);
        assert_eq!(rgb_to_ansi256(0, 0, 0), 16);
        assert_eq!(rgb_to_ansi256(255, 255, 255), 231);
        assert_eq!(rgb_to_ansi256(0x5f, 0x87, 0xaf), 67);
        assert_eq!(rgb_to_ansi256(0x1e, 0x1e, 0x2e), 235);

        // Indexed colours in 16-colour mode.
        assert_eq!(
            ColorSupport::Ansi16.adapt(Color::Indexed(1)),
            Some(Color::Red)
        );
        assert_eq!(
            ColorSupport::Ansi16.adapt(Color::Indexed(196)),
            Some(Color::LightRed)
        );
        assert_eq!(
            ColorSupport::Ansi16.adapt(Color::Indexed(232)),
            Some(Color::Black)
        );
        assert_eq!(
            ColorSupport::Ansi16.adapt(Color::Indexed(255)),
            Some(Color::Gray)
        );
        assert_eq!(
            ColorSupport::Ansi256.adapt(Color::Indexed(42)),
            Some(Color::Indexed(42))
        );
        assert_eq!(
            ColorSupport::Ansi16.adapt(Color::Rgb(0x1e, 0x1e, 0x2e)),
            Some(Color::Black)
        );
        assert_eq!(
            ColorSupport::Ansi16.adapt(Color::Rgb(250, 250, 250)),
            Some(Color::White)
        );

        // Named colours pass through untouched.
        for support in [
            ColorSupport::Ansi16,
            ColorSupport::Ansi256,
            ColorSupport::TrueColor,
        ] {
            for (_, named, _) in ANSI16 {
                assert_eq!(support.adapt(named), Some(named));
            }
            assert_eq!(support.adapt(Color::Reset), Some(Color::Reset));
        }
    }

    #[test]
    fn ansi256_table_matches_xterm() {
        assert_eq!(ansi256_to_rgb(16), [0, 0, 0]);
        assert_eq!(ansi256_to_rgb(196), [255, 0, 0]);
        assert_eq!(ansi256_to_rgb(67), [0x5f, 0x87, 0xaf]);
        assert_eq!(ansi256_to_rgb(244), [128, 128, 128]);
        // Every cube and ramp entry maps back to itself.
        for index in 16..=255u8 {
            let [r, g, b] = ansi256_to_rgb(index);
            assert_eq!(rgb_to_ansi256(r, g, b), index);
        }
    }

    #[test]
    fn literal_colours() {
        assert_eq!(
            parse_literal_colour("#89b4fa"),
            Ok(Color::Rgb(0x89, 0xb4, 0xfa))
        );
        assert_eq!(
            parse_literal_colour("#89B4FA"),
            Ok(Color::Rgb(0x89, 0xb4, 0xfa))
        );
        assert_eq!(parse_literal_colour("indexed:0"), Ok(Color::Indexed(0)));
        assert_eq!(parse_literal_colour("indexed:255"), Ok(Color::Indexed(255)));
        assert_eq!(parse_literal_colour("reset"), Ok(Color::Reset));
        assert_eq!(parse_literal_colour("LightBlue"), Ok(Color::LightBlue));
        assert_eq!(parse_literal_colour("dark_grey"), Ok(Color::DarkGray));
        assert_eq!(parse_literal_colour("gray"), Ok(Color::Gray));
        assert!(parse_literal_colour("indexed:256").is_err());
        assert!(parse_literal_colour("indexed:+1").is_err());
        assert!(parse_literal_colour("#12345").is_err());
        assert!(parse_literal_colour("#+12345").is_err());
        assert!(parse_literal_colour("blurple").is_err());
    }

    #[test]
    fn no_color_strips_colours_and_reverses_background_roles() {
        let theme = Theme::load("dark", None, ColorSupport::NoColor).unwrap();
        for role in Role::ALL {
            let style = theme.style(role);
            assert_eq!(colours(style), [None, None], "{role}");
        }
        let selection = theme.style(Role::Selection);
        assert!(selection.add_modifier.contains(Modifier::REVERSED));
        assert!(
            selection.add_modifier.contains(Modifier::BOLD),
            "modifiers are kept"
        );
        for role in [
            Role::TabActive,
            Role::GaugeReserved,
            Role::GaugeUsed,
            Role::GaugeOther,
            Role::ProgressDone,
        ] {
            assert!(
                theme.style(role).add_modifier.contains(Modifier::REVERSED),
                "{role}"
            );
        }
        for role in [Role::GaugeFree, Role::ProgressTodo] {
            assert_eq!(theme.style(role), Style::new(), "{role}");
        }
        assert!(theme
            .style(Role::Error)
            .add_modifier
            .contains(Modifier::BOLD));
        assert!(theme.style(Role::Dim).add_modifier.contains(Modifier::DIM));
    }

    #[test]
    fn default_dark_is_true_colour_dark() {
        let theme = Theme::default_dark();
        assert_eq!(theme.name, "dark");
        assert_eq!(theme.support, ColorSupport::TrueColor);
        assert_eq!(
            theme.style(Role::Text).fg,
            Some(Color::Rgb(0xd7, 0xda, 0xe0))
        );
        assert_eq!(Theme::default(), theme);
    }

    #[test]
    fn theme_names_include_user_themes() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            theme_names(Some(dir.path())),
            [
                "catppuccin-mocha",
                "dark",
                "gruvbox-dark",
                "high-contrast",
                "light"
            ]
        );
        write_user_theme(dir.path(), "sunset", "");
        write_user_theme(dir.path(), "dark", "");
        fs::write(dir.path().join("themes/notes.txt"), "not a theme").unwrap();
        fs::create_dir(dir.path().join("themes/folder.toml")).unwrap();
        assert_eq!(
            theme_names(Some(dir.path())),
            [
                "catppuccin-mocha",
                "dark",
                "gruvbox-dark",
                "high-contrast",
                "light",
                "sunset"
            ]
        );
        assert_eq!(theme_names(None).len(), EMBEDDED.len());
    }

    #[test]
    fn user_file_overrides_one_role_of_a_builtin_theme() {
        let dir = tempfile::tempdir().unwrap();
        write_user_theme(
            dir.path(),
            "dark",
            "[styles]\nselection = { fg = \"black\", bg = \"#ffcc00\", modifiers = [\"italic\"] }\n",
        );
        let builtin = Theme::default_dark();
        let theme = Theme::load("dark", Some(dir.path()), ColorSupport::TrueColor).unwrap();
        let selection = theme.style(Role::Selection);
        assert_eq!(selection.fg, Some(Color::Black));
        assert_eq!(selection.bg, Some(Color::Rgb(0xff, 0xcc, 0x00)));
        assert_eq!(selection.add_modifier, Modifier::ITALIC);
        for role in Role::ALL.into_iter().filter(|r| *r != Role::Selection) {
            assert_eq!(theme.style(role), builtin.style(role), "{role}");
        }
        assert_eq!(theme.description, builtin.description);
    }

    #[test]
    fn user_palette_override_recolours_builtin_roles() {
        let dir = tempfile::tempdir().unwrap();
        write_user_theme(
            dir.path(),
            "catppuccin-mocha",
            "description = \"mine\"\n[palette]\nlavender = \"#ff00ff\"\n",
        );
        let theme = Theme::load(
            "catppuccin-mocha",
            Some(dir.path()),
            ColorSupport::TrueColor,
        )
        .unwrap();
        assert_eq!(
            theme.style(Role::BorderFocus).fg,
            Some(Color::Rgb(255, 0, 255))
        );
        assert_eq!(theme.style(Role::Title).fg, Some(Color::Rgb(255, 0, 255)));
        assert_eq!(theme.description, "mine");
    }

    #[test]
    fn new_user_theme_inherits_missing_roles_from_dark() {
        let dir = tempfile::tempdir().unwrap();
        write_user_theme(
            dir.path(),
            "sunset",
            "name = \"sunset\"\n[palette]\nsun = \"#ff8800\"\n[styles]\ntitle = { fg = \"sun\" }\nborder = { fg = \"blue\" }\n",
        );
        let dark = Theme::load("dark", None, ColorSupport::Ansi256).unwrap();
        let theme = Theme::load("sunset", Some(dir.path()), ColorSupport::Ansi256).unwrap();
        assert_eq!(theme.name, "sunset");
        assert_eq!(theme.style(Role::Title).fg, Some(Color::Indexed(208)));
        // The palette name "blue" from dark shadows the ANSI colour.
        assert_eq!(theme.style(Role::Border).fg, dark.style(Role::Accent).fg);
        assert_eq!(theme.style(Role::Selection), dark.style(Role::Selection));
    }

    #[test]
    fn unknown_theme_lists_the_choices() {
        let dir = tempfile::tempdir().unwrap();
        write_user_theme(dir.path(), "sunset", "");
        let err = Theme::load("nope", Some(dir.path()), ColorSupport::TrueColor).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ThemeError::Unknown { .. }));
        for name in [
            "catppuccin-mocha",
            "dark",
            "gruvbox-dark",
            "high-contrast",
            "light",
            "sunset",
        ] {
            assert!(message.contains(name), "{message}");
        }
        assert!(message.contains("\"nope\""), "{message}");
        // Names that would escape the themes folder are never looked up.
        let err = Theme::load("../secrets", Some(dir.path()), ColorSupport::TrueColor).unwrap_err();
        assert!(matches!(err, ThemeError::Unknown { .. }));
    }

    /// Loads `text` as user theme "mine" and returns the error message.
    fn user_error(text: &str) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = write_user_theme(dir.path(), "mine", text);
        let err = Theme::load("mine", Some(dir.path()), ColorSupport::TrueColor).unwrap_err();
        (err.to_string(), path.display().to_string())
    }

    #[test]
    fn errors_name_file_field_and_choices() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "[styles]\nselection = { fg = \"blurple\" }\n",
                "styles.selection.fg",
                &[
                    "\"blurple\"",
                    "#rrggbb",
                    "indexed:N",
                    "lightmagenta",
                    "reset",
                ],
            ),
            (
                "[palette]\nhot = \"#ff00\"\n[styles]\ntext = { fg = \"hot\" }\n",
                "palette.hot",
                &["#rrggbb", "darkgray"],
            ),
            (
                "[palette]\nhot = \"#ff0000\"\n[styles]\ntext = { bg = \"cold\" }\n",
                "styles.text.bg",
                &["\"cold\"", "palette name (", "hot", "bg, blue"],
            ),
            (
                "[styles]\nsparkles = { fg = \"red\" }\n",
                "styles.sparkles",
                &["unknown role", "valid roles: text, dim,", "progress_todo"],
            ),
            (
                "[styles]\ntitle = { fg = \"red\", modifiers = [\"blink\"] }\n",
                "styles.title.modifiers",
                &[
                    "\"blink\"",
                    "bold, dim, italic, underlined, reversed, crossed_out",
                ],
            ),
            (
                "[styles]\ntitle = { fg = \"red\", modifiers = \"bold\" }\n",
                "styles.title.modifiers",
                &["expected a list", "[\"bold\", \"italic\"]"],
            ),
            (
                "[styles]\ntitle = { colour = \"red\" }\n",
                "styles.title.colour",
                &["unknown key", "fg, bg and modifiers"],
            ),
            (
                "[styles]\ntitle = \"red\"\n",
                "styles.title",
                &["expected a table", "fg, bg and modifiers"],
            ),
            (
                "[styles]\ntitle = { fg = 12 }\n",
                "styles.title.fg",
                &["expected a string, found integer"],
            ),
            (
                "colours = 1\n",
                "colours",
                &["name, description, [palette] and [styles]"],
            ),
        ];
        for (text, field, needles) in cases {
            let (message, path) = user_error(text);
            assert!(message.starts_with(&path), "{message}");
            assert!(
                message.contains(&format!(": {field}: ")),
                "{field}: {message}"
            );
            for needle in *needles {
                assert!(
                    message.contains(needle),
                    "{needle:?} missing from: {message}"
                );
            }
        }
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let (message, path) = user_error("[styles]\ntext = { fg = \"red\"\n");
        assert!(message.starts_with(&path), "{message}");
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("a theme file looks like"), "{message}");
    }

    #[test]
    fn unreadable_user_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("themes/odd.toml")).unwrap();
        let err = Theme::load("odd", Some(dir.path()), ColorSupport::TrueColor).unwrap_err();
        assert!(matches!(err, ThemeError::Read { .. }), "{err}");
        assert!(err.to_string().contains("odd.toml"), "{err}");
    }
}
