//! HTML5 named character references and the numeric-reference rules of Python's `html.unescape`
//! (CPython 3 `html/__init__.py`, `html/entities.py`), generated from Python 3.11.7.
//! Generated data: do not edit by hand.
//!
//! The named references are in `html5_entities.tsv`, read in when first used: one line per
//! entry of `html.entities.html5`, sorted by name (byte order), holding the name, a tab and the
//! code points of its replacement in hex, separated by spaces (`NotEqualTilde;<TAB>2242 338`).

use std::sync::LazyLock;

/// The named references: `name<TAB>hex code points`, one per line, sorted by name.
const HTML5_TSV: &str = include_str!("html5_entities.tsv");

/// `html.entities.html5`, sorted by name (names with and without the `;`).
pub(super) static HTML5: LazyLock<Vec<(&'static str, &'static str)>> =
    LazyLock::new(|| parse_html5(HTML5_TSV));

/// The entries of `html5_entities.tsv`. The replacements are decoded into one string that is
/// leaked once, so that the table hands out `&'static str`s like the literals it replaces did.
fn parse_html5(tsv: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut text = String::new();
    let mut spans = Vec::new();
    for (n, line) in tsv.lines().enumerate() {
        let Some((name, code_points)) = line.split_once('\t') else {
            bad_line(n, line)
        };
        let start = text.len();
        for hex in code_points.split(' ') {
            match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                Some(c) => text.push(c),
                None => bad_line(n, line),
            }
        }
        spans.push((name, start, text.len()));
    }
    let text: &'static str = String::leak(text);
    spans
        .into_iter()
        .map(|(name, start, end)| (name, &text[start..end]))
        .collect()
}

fn bad_line(n: usize, line: &str) -> ! {
    panic!("html5_entities.tsv line {}: {line:?}", n + 1)
}

/// `html._invalid_charrefs`: numeric references replaced by a fixed string.
pub(super) static INVALID_CHARREFS: [(u32, &str); 34] = [
    (0x0, "\u{fffd}"),
    (0xd, "\u{d}"),
    (0x80, "\u{20ac}"),
    (0x81, "\u{81}"),
    (0x82, "\u{201a}"),
    (0x83, "\u{192}"),
    (0x84, "\u{201e}"),
    (0x85, "\u{2026}"),
    (0x86, "\u{2020}"),
    (0x87, "\u{2021}"),
    (0x88, "\u{2c6}"),
    (0x89, "\u{2030}"),
    (0x8a, "\u{160}"),
    (0x8b, "\u{2039}"),
    (0x8c, "\u{152}"),
    (0x8d, "\u{8d}"),
    (0x8e, "\u{17d}"),
    (0x8f, "\u{8f}"),
    (0x90, "\u{90}"),
    (0x91, "\u{2018}"),
    (0x92, "\u{2019}"),
    (0x93, "\u{201c}"),
    (0x94, "\u{201d}"),
    (0x95, "\u{2022}"),
    (0x96, "\u{2013}"),
    (0x97, "\u{2014}"),
    (0x98, "\u{2dc}"),
    (0x99, "\u{2122}"),
    (0x9a, "\u{161}"),
    (0x9b, "\u{203a}"),
    (0x9c, "\u{153}"),
    (0x9d, "\u{9d}"),
    (0x9e, "\u{17e}"),
    (0x9f, "\u{178}"),
];

/// `html._invalid_codepoints` as inclusive ranges: numeric references that unescape to nothing.
pub(super) static INVALID_CODEPOINTS: [(u32, u32); 22] = [
    (0x1, 0x8),
    (0xb, 0xb),
    (0xe, 0x1f),
    (0x7f, 0x9f),
    (0xfdd0, 0xfdef),
    (0xfffe, 0xffff),
    (0x1fffe, 0x1ffff),
    (0x2fffe, 0x2ffff),
    (0x3fffe, 0x3ffff),
    (0x4fffe, 0x4ffff),
    (0x5fffe, 0x5ffff),
    (0x6fffe, 0x6ffff),
    (0x7fffe, 0x7ffff),
    (0x8fffe, 0x8ffff),
    (0x9fffe, 0x9ffff),
    (0xafffe, 0xaffff),
    (0xbfffe, 0xbffff),
    (0xcfffe, 0xcffff),
    (0xdfffe, 0xdffff),
    (0xefffe, 0xeffff),
    (0xffffe, 0xfffff),
    (0x10fffe, 0x10ffff),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html5_table_is_python_html5() {
        // `len(html.entities.html5)` in Python 3.11.7, as many as the generated literal table had.
        assert_eq!(HTML5.len(), 2231);
        assert!(
            HTML5.windows(2).all(|w| w[0].0 < w[1].0),
            "names sorted and unique"
        );
        let get = |name: &str| {
            HTML5
                .binary_search_by(|(k, _)| k.cmp(&name))
                .ok()
                .map(|i| HTML5[i].1)
        };
        assert_eq!(get("amp;"), Some("&"));
        assert_eq!(get("amp"), Some("&"));
        assert_eq!(get("AElig"), Some("\u{c6}"));
        assert_eq!(get("NotEqualTilde;"), Some("\u{2242}\u{338}"));
        assert_eq!(get("fjlig;"), Some("fj"));
        assert_eq!(get("Tab;"), Some("\t"));
        assert_eq!(get("NewLine;"), Some("\n"));
        assert_eq!(get("Afr;"), Some("\u{1d504}"));
        assert_eq!(get("zwnj;"), Some("\u{200c}"));
        assert_eq!(get("notit;"), None);
    }
}
