//! Advanced SubStation Alpha (`.ass`) output for burning captions in with
//! libass (ffmpeg's `subtitles`/`ass` filters).

use super::Cue;

/// Look of the burned-in captions. Colours are RGB(A); sizes and margins
/// are in `play_res` pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct AssLayout {
    /// Script resolution (`PlayResX`, `PlayResY`); use the video size.
    pub play_res: (u32, u32),
    pub font: String,
    pub font_size: u32,
    /// Text colour.
    pub primary: [u8; 3],
    /// Outline colour (ignored when `boxed`: the box takes its place).
    pub outline_colour: [u8; 3],
    /// Outline thickness (box padding when `boxed`).
    pub outline: f32,
    pub shadow: f32,
    pub bold: bool,
    pub margin_v: u32,
    pub margin_h: u32,
    /// `BorderStyle 3`: draw an opaque box behind each line.
    pub boxed: bool,
    /// RGBA of the box (when `boxed`) and of the shadow; alpha 255 = opaque.
    pub box_colour: [u8; 4],
    /// Numpad alignment: 2 = bottom centre, 8 = top centre, ...
    pub alignment: u8,
}

impl AssLayout {
    /// Sensible defaults for a video of `width`×`height` in `lang`: font size
    /// about 1/18 of the shorter side, white text with a black outline,
    /// bottom centre.
    pub fn for_video(width: u32, height: u32, lang: &str) -> Self {
        let short = width.min(height).max(1);
        AssLayout {
            play_res: (width.max(1), height.max(1)),
            font: font_for_language(lang).to_string(),
            font_size: (short / 18).max(8),
            primary: [255, 255, 255],
            outline_colour: [0, 0, 0],
            outline: (short as f32 / 400.0).max(1.0),
            shadow: 0.0,
            bold: false,
            margin_v: height / 12,
            margin_h: width / 20,
            boxed: false,
            box_colour: [0, 0, 0, 160],
            alignment: 2,
        }
    }
}

impl Default for AssLayout {
    fn default() -> Self {
        AssLayout::for_video(1920, 1080, "en")
    }
}

/// Font family with coverage for `lang` (Noto families).
pub fn font_for_language(lang: &str) -> &'static str {
    match super::base_language(lang).as_str() {
        "ja" => "Noto Sans CJK JP",
        "zh" => "Noto Sans CJK SC",
        "ko" => "Noto Sans CJK KR",
        "hi" | "mr" | "ne" => "Noto Sans Devanagari",
        "bn" => "Noto Sans Bengali",
        "ar" | "fa" | "ur" => "Noto Sans Arabic",
        "he" => "Noto Sans Hebrew",
        _ => "Noto Sans",
    }
}

/// Whether `lang` is written right to left.
pub fn is_rtl(lang: &str) -> bool {
    matches!(
        super::base_language(lang).as_str(),
        "ar" | "he" | "fa" | "ur" | "yi" | "ps" | "sd" | "ug" | "dv"
    )
}

/// `H:MM:SS.cc` (centiseconds, rounded), as ASS wants.
pub fn ass_time(t: f64) -> String {
    let cs = if t.is_finite() && t > 0.0 {
        (t * 100.0).round() as u64
    } else {
        0
    };
    format!(
        "{}:{:02}:{:02}.{:02}",
        cs / 360_000,
        cs / 6000 % 60,
        cs / 100 % 60,
        cs % 100
    )
}

/// `&HAABBGGRR` with ASS alpha (00 = opaque).
fn colour(rgb: [u8; 3], alpha: u8) -> String {
    format!(
        "&H{:02X}{:02X}{:02X}{:02X}",
        255 - alpha,
        rgb[2],
        rgb[1],
        rgb[0]
    )
}

/// Escapes one caption line so it renders literally: `{`/`}` become libass's
/// `\{`/`\}` escapes, and a backslash is followed by a WORD JOINER (U+2060,
/// invisible) so `\N`, `\h`, `\n` typed by the user stay literal. Newlines
/// and tabs become spaces.
fn escape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '\\' => out.push_str("\\\u{2060}"),
            '{' => out.push_str("\\{"),
            '}' => out.push_str("\\}"),
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Renders a complete `.ass` document with one style and one `Dialogue` per
/// cue (lines joined with `\N`, top line first). Wrapping is left to
/// [`chunk_text`](super::chunk_text) (`WrapStyle: 2`). For right-to-left
/// languages the style's Encoding is `-1`, which makes libass detect the
/// paragraph direction, and every line starts with U+200F (RIGHT-TO-LEFT
/// MARK) so lines that begin with digits or Latin words still read right to
/// left; glyph shaping and bidi reordering are left to libass.
pub fn to_ass(cues: &[Cue], layout: &AssLayout, lang: &str) -> String {
    let rtl = is_rtl(lang);
    let (border_style, outline_colour, back_colour) = if layout.boxed {
        let box_colour = {
            let [r, g, b, a] = layout.box_colour;
            colour([r, g, b], a)
        };
        (3, box_colour.clone(), box_colour)
    } else {
        let [r, g, b, a] = layout.box_colour;
        (1, colour(layout.outline_colour, 255), colour([r, g, b], a))
    };
    let font = layout.font.replace(',', " ");
    let mut out = String::new();
    out.push_str("[Script Info]\n");
    out.push_str("; Generated by reelsmith\n");
    out.push_str("ScriptType: v4.00+\n");
    out.push_str(&format!("PlayResX: {}\n", layout.play_res.0));
    out.push_str(&format!("PlayResY: {}\n", layout.play_res.1));
    out.push_str("WrapStyle: 2\n");
    out.push_str("ScaledBorderAndShadow: yes\n");
    out.push_str("YCbCr Matrix: TV.709\n\n");

    out.push_str("[V4+ Styles]\n");
    out.push_str(
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, \
         BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, \
         BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n",
    );
    out.push_str(&format!(
        "Style: Default,{font},{size},{primary},{secondary},{outline_colour},{back_colour},\
         {bold},0,0,0,100,100,0,0,{border_style},{outline},{shadow},{alignment},{mh},{mh},{mv},{enc}\n\n",
        size = layout.font_size,
        primary = colour(layout.primary, 255),
        secondary = colour(layout.primary, 255),
        bold = if layout.bold { -1 } else { 0 },
        outline = number(layout.outline),
        shadow = number(layout.shadow),
        alignment = layout.alignment.clamp(1, 9),
        mh = layout.margin_h,
        mv = layout.margin_v,
        enc = if rtl { -1 } else { 1 },
    ));

    out.push_str("[Events]\n");
    out.push_str(
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n",
    );
    for cue in cues {
        let text = cue
            .lines
            .iter()
            .map(|l| {
                let l = escape(l.trim());
                if rtl {
                    format!("\u{200F}{l}")
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\\N");
        out.push_str(&format!(
            "Dialogue: 0,{},{},Default,,0,0,0,,{}\n",
            ass_time(cue.start),
            ass_time(cue.end),
            text
        ));
    }
    out
}

/// A float field without a trailing `.0` and never negative.
fn number(x: f32) -> String {
    let x = if x.is_finite() { x.max(0.0) } else { 0.0 };
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
