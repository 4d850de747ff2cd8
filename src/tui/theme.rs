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

mod color;
mod parse;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use toml::{Table, Value};

pub use color::{rgb_to_ansi16, rgb_to_ansi256, ColorSupport};
pub use parse::ThemeError;

// The parts see each other as if they were still one file: each one `use super::*`.
use color::*;
use parse::*;

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
