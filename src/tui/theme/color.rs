//! Colour support and downsampling: what the terminal can show, and RGB mapped onto it.

use super::*;

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
pub(super) const ANSI16: [(&str, Color, [u8; 3]); 16] = [
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
pub(super) fn ansi256_to_rgb(index: u8) -> [u8; 3] {
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
