//! Display-width and grapheme helpers (a small, dependency-free subset of
//! Unicode East Asian Width and extended grapheme cluster rules, tuned for
//! the scripts reelsmith captions: Latin, Cyrillic, CJK, Devanagari,
//! Bengali and Arabic).

/// Inclusive code point ranges that render with zero advance: combining
/// marks (including Indic vowel signs and viramas and Arabic harakat),
/// joiners, bidi controls and variation selectors.
const ZERO_WIDTH: &[(u32, u32)] = &[
    (0x0300, 0x036F), // combining diacritical marks
    (0x0483, 0x0489), // Cyrillic combining marks
    (0x0591, 0x05BD), // Hebrew points
    (0x05BF, 0x05BF),
    (0x05C1, 0x05C2),
    (0x05C4, 0x05C5),
    (0x05C7, 0x05C7),
    (0x0610, 0x061A), // Arabic marks
    (0x061C, 0x061C), // Arabic letter mark
    (0x064B, 0x065F), // Arabic harakat
    (0x0670, 0x0670),
    (0x06D6, 0x06DC),
    (0x06DF, 0x06E4),
    (0x06E7, 0x06E8),
    (0x06EA, 0x06ED),
    (0x08D3, 0x08FF), // Arabic extended-A marks
    (0x0900, 0x0903), // Devanagari signs
    (0x093A, 0x093C),
    (0x093E, 0x094F), // Devanagari vowel signs + virama
    (0x0951, 0x0957),
    (0x0962, 0x0963),
    (0x0981, 0x0983), // Bengali signs
    (0x09BC, 0x09BC),
    (0x09BE, 0x09C4), // Bengali vowel signs
    (0x09C7, 0x09C8),
    (0x09CB, 0x09CD), // ... + virama (hasanta)
    (0x09D7, 0x09D7),
    (0x09E2, 0x09E3),
    (0x09FE, 0x09FE),
    (0x1160, 0x11FF),   // Hangul conjoining vowels / finals
    (0x1AB0, 0x1AFF),   // combining diacritical marks extended
    (0x1DC0, 0x1DFF),   // combining diacritical marks supplement
    (0x200B, 0x200F),   // ZWSP, ZWNJ, ZWJ, LRM, RLM
    (0x202A, 0x202E),   // bidi embeddings / overrides
    (0x2060, 0x2064),   // word joiner, invisible operators
    (0x2066, 0x2069),   // bidi isolates
    (0x20D0, 0x20FF),   // combining marks for symbols
    (0x3099, 0x309A),   // combining kana voiced marks
    (0xFE00, 0xFE0F),   // variation selectors
    (0xFE20, 0xFE2F),   // combining half marks
    (0xFEFF, 0xFEFF),   // BOM / ZWNBSP
    (0xFF9E, 0xFF9F),   // halfwidth katakana voiced marks (grapheme extenders)
    (0x1F3FB, 0x1F3FF), // emoji skin-tone modifiers
    (0xE0000, 0xE007F), // tags
    (0xE0100, 0xE01EF), // variation selectors supplement
];

/// Inclusive code point ranges that are East Asian Wide or Fullwidth.
const WIDE: &[(u32, u32)] = &[
    (0x1100, 0x115F),   // Hangul Jamo leading consonants
    (0x2E80, 0x303E),   // CJK radicals, Kangxi, ideographic description, CJK symbols & punctuation
    (0x3041, 0x3096),   // Hiragana
    (0x309B, 0x33FF), // kana marks, Katakana, Bopomofo, Hangul compat Jamo, Kanbun, CJK strokes, enclosed CJK, CJK compat
    (0x3400, 0x4DBF), // CJK extension A
    (0x4E00, 0x9FFF), // CJK unified ideographs
    (0xA000, 0xA4CF), // Yi
    (0xA960, 0xA97F), // Hangul Jamo extended-A
    (0xAC00, 0xD7A3), // Hangul syllables
    (0xF900, 0xFAFF), // CJK compatibility ideographs
    (0xFE10, 0xFE19), // vertical forms
    (0xFE30, 0xFE6F), // CJK compatibility forms, small form variants
    (0xFF00, 0xFF60), // fullwidth forms
    (0xFFE0, 0xFFE6), // fullwidth signs
    (0x1F300, 0x1F64F), // emoji
    (0x1F680, 0x1F6FF),
    (0x1F900, 0x1F9FF),
    (0x1FA70, 0x1FAFF),
    (0x20000, 0x2FFFD), // CJK extensions B..F, compatibility supplement
    (0x30000, 0x3FFFD), // CJK extension G..
];

fn in_ranges(c: char, ranges: &[(u32, u32)]) -> bool {
    let cp = c as u32;
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// True for characters with no advance of their own (combining marks,
/// joiners, variation selectors, bidi controls).
pub(crate) fn is_zero_width(c: char) -> bool {
    in_ranges(c, ZERO_WIDTH)
}

/// True for East Asian Wide / Fullwidth characters.
pub(crate) fn is_wide(c: char) -> bool {
    in_ranges(c, WIDE)
}

/// Terminal-style column width of one character: 0, 1 or 2.
pub fn char_width(c: char) -> usize {
    if c.is_control() || is_zero_width(c) {
        0
    } else if is_wide(c) {
        2
    } else {
        1
    }
}

/// Display width of `s`: wide/fullwidth characters count 2, combining marks
/// and other zero-width characters 0, everything else 1. Emoji joined into a
/// ZWJ sequence count once.
pub fn display_width(s: &str) -> usize {
    graphemes(s).map(grapheme_width).sum()
}

/// Width of one grapheme cluster.
pub(crate) fn grapheme_width(g: &str) -> usize {
    let mut width = 0;
    let mut after_zwj = false;
    for c in g.chars() {
        // An emoji glued on with a ZWJ draws inside the previous one.
        if !(after_zwj && is_emoji(c)) {
            width += char_width(c);
        }
        after_zwj = c == ZWJ;
    }
    width
}

const ZWJ: char = '\u{200D}';

fn is_emoji(c: char) -> bool {
    let cp = c as u32;
    (0x1F000..=0x1FAFF).contains(&cp) || (0x2600..=0x27BF).contains(&cp)
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

fn is_virama(c: char) -> bool {
    matches!(c, '\u{094D}' | '\u{09CD}')
}

/// Consonants that a preceding virama glues into a conjunct cluster.
fn is_indic_consonant(c: char) -> bool {
    matches!(c,
        '\u{0915}'..='\u{0939}' | '\u{0958}'..='\u{095F}' | '\u{0978}'..='\u{097F}'
        | '\u{0995}'..='\u{09B9}' | '\u{09DC}'..='\u{09DF}' | '\u{09F0}'..='\u{09F1}')
}

/// Does `c` continue the grapheme cluster whose previous char is `prev`?
fn extends(prev: char, c: char, ri_run: usize) -> bool {
    if prev == '\r' && c == '\n' {
        return true;
    }
    if prev.is_control() || c.is_control() {
        return false;
    }
    if c == ZWJ
        || c == '\u{200C}'
        || (is_zero_width(c)
            && !matches!(c, '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'))
    {
        return true;
    }
    if prev == ZWJ && (is_emoji(c) || is_indic_consonant(c)) {
        return true;
    }
    if is_virama(prev) && is_indic_consonant(c) {
        return true;
    }
    is_regional_indicator(prev) && is_regional_indicator(c) && ri_run % 2 == 1
}

/// Iterator over (approximate) extended grapheme clusters of `s`.
pub(crate) fn graphemes(s: &str) -> Graphemes<'_> {
    Graphemes { s, pos: 0 }
}

pub(crate) struct Graphemes<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Iterator for Graphemes<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = &self.s[self.pos..];
        let mut chars = rest.char_indices();
        let (_, first) = chars.next()?;
        let mut prev = first;
        let mut ri_run = usize::from(is_regional_indicator(first));
        let mut end = rest.len();
        for (i, c) in chars {
            if !extends(prev, c, ri_run) {
                end = i;
                break;
            }
            ri_run = if is_regional_indicator(c) {
                ri_run + 1
            } else {
                0
            };
            prev = c;
        }
        let g = &rest[..end];
        self.pos += end;
        Some(g)
    }
}
