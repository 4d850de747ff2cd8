//! The platforms' field limits, counted their way, applied before anything is sent so a
//! publish at 3 a.m. is never refused for a title one character too long.
//!
//! Every cut falls on a grapheme cluster boundary (an emoji with its skin tone or a ZWJ family,
//! a letter with its combining marks, stays whole or goes whole). Where a platform says
//! "characters" without saying how it counts them, the count here is the strictest reading,
//! UTF-16 code units (what a JavaScript or Java `length` gives: an emoji outside the BMP is 2):
//! a text that fits that count fits any other, so it is never too long whatever the platform
//! means.
//!
//! | field | limit | counted as | source |
//! |---|---|---|---|
//! | YouTube `snippet.title` | 100 | characters (UTF-16 units here), no `<` `>` | videos resource |
//! | YouTube `snippet.description` | 5000 | UTF-8 bytes, no `<` `>` | videos resource |
//! | YouTube `snippet.tags[]` | 500 | characters of the comma-joined list, a tag with a space counts 2 more for its quotes | videos resource |
//! | TikTok `post_info.title` (video caption) | 2200 | UTF-16 code units ("UTF-16 runes") | Content Posting API, Direct Post |
//! | Instagram `caption` | 2200 characters, 30 hashtags, 20 @ tags | UTF-16 units here | IG User Media reference |

use unicode_segmentation::UnicodeSegmentation;

/// YouTube title: at most this many characters (UTF-16 code units here).
pub const YOUTUBE_TITLE_MAX: usize = 100;
/// YouTube description: at most this many UTF-8 bytes.
pub const YOUTUBE_DESCRIPTION_MAX_BYTES: usize = 5000;
/// YouTube tags: at most this many characters counted YouTube's way ([`youtube_tags_len`]).
pub const YOUTUBE_TAGS_MAX: usize = 500;
/// TikTok video caption (`post_info.title`): at most this many UTF-16 code units.
pub const TIKTOK_CAPTION_MAX: usize = 2200;
/// Instagram caption: at most this many characters (UTF-16 code units here).
pub const INSTAGRAM_CAPTION_MAX: usize = 2200;
/// Instagram caption: at most this many `#hashtags`.
pub const INSTAGRAM_MAX_HASHTAGS: usize = 30;
/// Instagram caption: at most this many `@mentions`.
pub const INSTAGRAM_MAX_MENTIONS: usize = 20;

/// Length in UTF-16 code units.
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The longest prefix of `s` made of whole grapheme clusters whose `measure` is at most `max`
/// (`measure` must add up over clusters, as UTF-8 bytes and UTF-16 units do).
pub fn cut_graphemes(s: &str, max: usize, measure: impl Fn(&str) -> usize) -> &str {
    let mut used = 0;
    for (i, g) in s.grapheme_indices(true) {
        used += measure(g);
        if used > max {
            return &s[..i];
        }
    }
    s
}

/// `<` and `>` as the look-alike angle quotation marks `‹` `›` (YouTube refuses the former in
/// titles, descriptions and tags).
fn angles(s: &str) -> String {
    s.replace('<', "\u{2039}").replace('>', "\u{203A}")
}

/// Runs of whitespace and control characters as one space, trimmed.
fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A YouTube title: one line (newlines, tabs and runs of spaces become one space), `<` `>` as
/// `‹` `›`, at most [`YOUTUBE_TITLE_MAX`] UTF-16 units cut on a grapheme boundary, trimmed.
///
/// An empty or blank title gives an empty string: YouTube requires a title and there is no good
/// one to invent, so [`crate::youtube::VideoMeta::body`] refuses it rather than publishing an
/// "Untitled" video overnight.
pub fn youtube_title(title: &str) -> String {
    let t = one_line(&angles(title));
    cut_graphemes(&t, YOUTUBE_TITLE_MAX, utf16_len)
        .trim_end()
        .to_string()
}

/// A YouTube description: line ends as `\n`, control characters other than `\n` and `\t`
/// dropped, `<` `>` as `‹` `›`, at most [`YOUTUBE_DESCRIPTION_MAX_BYTES`] UTF-8 bytes cut on a
/// grapheme boundary.
pub fn youtube_description(description: &str) -> String {
    let d = angles(&description.replace("\r\n", "\n").replace('\r', "\n"));
    let d: String = d
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect();
    let d = d.trim_end();
    cut_graphemes(d, YOUTUBE_DESCRIPTION_MAX_BYTES, str::len)
        .trim_end()
        .to_string()
}

/// The length YouTube gives a tag list: each tag's characters (UTF-16 units here), 2 more for a
/// tag with a space (YouTube wraps it in quotation marks), and the commas between tags.
pub fn youtube_tags_len(tags: &[String]) -> usize {
    let sum: usize = tags.iter().map(|t| youtube_tag_len(t)).sum();
    sum + tags.len().saturating_sub(1)
}

fn youtube_tag_len(tag: &str) -> usize {
    utf16_len(tag) + if tag.contains(' ') { 2 } else { 0 }
}

/// YouTube tags that fit [`YOUTUBE_TAGS_MAX`] counted YouTube's way ([`youtube_tags_len`]):
/// each tag cleaned (`<` `>` and `"` removed, commas — which would split it — and runs of
/// whitespace as one space, trimmed), empty ones and case-insensitive repeats dropped, order
/// kept; a tag that does not fit in what is left is dropped and the later, shorter ones still
/// get their chance.
pub fn youtube_tags(tags: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<String> = Vec::new();
    let mut used = 0usize;
    for raw in tags {
        let cleaned: String = raw
            .chars()
            .filter(|c| !matches!(c, '<' | '>' | '"'))
            .map(|c| if c == ',' { ' ' } else { c })
            .collect();
        let tag = one_line(&cleaned);
        if tag.is_empty() || !seen.insert(tag.to_lowercase()) {
            continue;
        }
        let cost = youtube_tag_len(&tag) + usize::from(!out.is_empty());
        if used + cost <= YOUTUBE_TAGS_MAX {
            used += cost;
            out.push(tag);
        }
    }
    out
}

/// A TikTok video caption (`post_info.title`, which TikTok shows as the caption, hashtags and
/// mentions included): at most [`TIKTOK_CAPTION_MAX`] UTF-16 code units, cut on a grapheme
/// boundary and trimmed at the end; nothing else is changed.
pub fn tiktok_caption(caption: &str) -> String {
    cut_graphemes(caption.trim_end(), TIKTOK_CAPTION_MAX, utf16_len)
        .trim_end()
        .to_string()
}

/// An Instagram caption within [`INSTAGRAM_MAX_HASHTAGS`], [`INSTAGRAM_MAX_MENTIONS`] and
/// [`INSTAGRAM_CAPTION_MAX`]; see [`instagram_caption_with`].
pub fn instagram_caption(caption: &str) -> String {
    instagram_caption_with(
        caption,
        INSTAGRAM_MAX_HASHTAGS,
        INSTAGRAM_MAX_MENTIONS,
        INSTAGRAM_CAPTION_MAX,
    )
}

/// An Instagram caption with at most `max_hashtags` `#hashtags` (later ones are removed with the
/// space before them), at most `max_mentions` `@mentions` (later ones lose their `@` and stay as
/// plain words, so nobody else is notified) and at most `max_len` UTF-16 code units, cut on a
/// grapheme boundary. A hashtag or mention starts at the text's start or after a character that
/// is not a letter, digit or `_`; a hashtag is `#` and letters, digits or `_`; a mention is `@`
/// and letters, digits, `_` or `.`.
pub fn instagram_caption_with(
    caption: &str,
    max_hashtags: usize,
    max_mentions: usize,
    max_len: usize,
) -> String {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let chars: Vec<char> = caption.chars().collect();
    let mut out = String::with_capacity(caption.len());
    let (mut hashtags, mut mentions) = (0usize, 0usize);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts = i == 0 || !word(chars[i - 1]);
        if starts && (c == '#' || c == '@') {
            let body = |ch: char| word(ch) || (c == '@' && ch == '.');
            let mut j = i + 1;
            while j < chars.len() && body(chars[j]) {
                j += 1;
            }
            // A mention does not end with a dot ("thanks @ana." mentions "ana").
            if c == '@' {
                while j > i + 1 && chars[j - 1] == '.' {
                    j -= 1;
                }
            }
            if j > i + 1 {
                let token: String = chars[i..j].iter().collect();
                if c == '#' {
                    hashtags += 1;
                    if hashtags > max_hashtags {
                        let kept = out.trim_end_matches([' ', '\t']).len();
                        out.truncate(kept);
                    } else {
                        out.push_str(&token);
                    }
                } else {
                    mentions += 1;
                    out.push_str(if mentions > max_mentions {
                        &token[1..]
                    } else {
                        &token
                    });
                }
                i = j;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    cut_graphemes(out.trim_end(), max_len, utf16_len)
        .trim_end()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn titles_are_one_line_without_angle_brackets_and_cut_on_graphemes() {
        assert_eq!(youtube_title("  a <b>\n\tc  "), "a \u{2039}b\u{203A} c");
        assert_eq!(youtube_title(" \n "), "");
        let long = "x".repeat(150);
        assert_eq!(youtube_title(&long).len(), 100);
        // 99 ASCII + a 2-unit emoji: the emoji would make 101 units, so it goes whole.
        let t = format!("{}😀", "a".repeat(99));
        assert_eq!(youtube_title(&t), "a".repeat(99));
        // A ZWJ family (👨‍👩‍👧 = 8 UTF-16 units) straddling the limit is never split.
        let fam = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        let t = format!("{}{fam}", "a".repeat(95));
        assert_eq!(youtube_title(&t), "a".repeat(95));
        let t = format!("{}{fam}", "a".repeat(92));
        assert_eq!(youtube_title(&t), t);
        // Combining marks stay with their letter: e + 3 accents is one cluster of 4 units.
        let e = "e\u{301}\u{302}\u{303}";
        let t = format!("{}{e}", "a".repeat(97));
        assert_eq!(youtube_title(&t), "a".repeat(97));
        // CJK: 1 unit each.
        let t = "漢".repeat(120);
        assert_eq!(youtube_title(&t), "漢".repeat(100));
        // Flags (regional indicator pairs) are 4 units and never halved.
        let t = "🇯🇵".repeat(30);
        let cut = youtube_title(&t);
        assert_eq!(cut, "🇯🇵".repeat(25));
        assert!(utf16_len(&youtube_title(&"👍🏽".repeat(40))) <= 100);
    }

    #[test]
    fn descriptions_fit_5000_bytes_on_grapheme_boundaries() {
        assert_eq!(
            youtube_description("a\r\nb\rc<d>\u{7}"),
            "a\nb\nc\u{2039}d\u{203A}"
        );
        // 3-byte CJK: 1666 of them fill 4998 bytes; the 1667th would pass 5000.
        let d = youtube_description(&"漢".repeat(2000));
        assert_eq!(d, "漢".repeat(1666));
        // '<' becomes a 3-byte '‹' before the count.
        let d = youtube_description(&"<".repeat(2000));
        assert_eq!(d.len(), 4998);
        // ZWJ sequences (18 bytes each) are kept whole.
        let fam = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        let d = youtube_description(&format!("{}{fam}", "a".repeat(4990)));
        assert_eq!(d, "a".repeat(4990));
        let e = "e\u{301}";
        let d = youtube_description(&format!("{}{e}", "a".repeat(4999)));
        assert_eq!(d, "a".repeat(4999));
        assert!(youtube_description(&"🎬 scene\n".repeat(1000)).len() <= 5000);
    }

    #[test]
    fn tags_are_counted_youtubes_way() {
        // "Foo-Baz" is 7, "Foo Baz" is 9 (quotes), plus one comma.
        assert_eq!(youtube_tags_len(&s(&["Foo-Baz"])), 7);
        assert_eq!(youtube_tags_len(&s(&["Foo Baz"])), 9);
        assert_eq!(youtube_tags_len(&s(&["Foo-Baz", "Foo Baz"])), 17);
        assert_eq!(youtube_tags_len(&[]), 0);
        assert_eq!(
            youtube_tags(&s(&[
                " anime ",
                "Anime",
                "",
                "a<b>",
                "x,y",
                "\"q\"",
                "ANIME  edit"
            ])),
            s(&["anime", "ab", "x y", "q", "ANIME edit"])
        );
        // 49 tags of 9 chars + 48 commas = 489; a spaced 9-char tag costs 12 → 501: dropped,
        // but a later 5-char tag (6 with its comma) → 495 fits, and a 4-char one → 500.
        let mut tags: Vec<String> = (0..49).map(|i| format!("tag{i:06}")).collect();
        tags.push("abcd efgh".into());
        tags.push("xxxxx".into());
        tags.push("yyyy".into());
        tags.push("z".into());
        let kept = youtube_tags(&tags);
        assert_eq!(youtube_tags_len(&kept), 500);
        assert!(!kept.contains(&"abcd efgh".to_string()));
        assert_eq!(&kept[49..], &s(&["xxxxx", "yyyy"]));
        // Emoji tags count their UTF-16 units.
        let kept = youtube_tags(&vec!["😀".repeat(100); 1]);
        assert_eq!(youtube_tags_len(&kept), 200);
        let many: Vec<String> = (0..100).map(|i| format!("漢字{i} タグ")).collect();
        assert!(youtube_tags_len(&youtube_tags(&many)) <= 500);
    }

    #[test]
    fn tiktok_captions_count_utf16_units() {
        assert_eq!(tiktok_caption("hi #fyp \n"), "hi #fyp");
        let c = tiktok_caption(&"😀".repeat(1200));
        assert_eq!(c, "😀".repeat(1100));
        let c = tiktok_caption(&format!("{}👍🏽", "a".repeat(2198)));
        assert_eq!(c, "a".repeat(2198));
        assert_eq!(utf16_len(&tiktok_caption(&"漢".repeat(3000))), 2200);
    }

    #[test]
    fn instagram_captions_keep_30_hashtags_and_20_mentions() {
        let tags: Vec<String> = (0..35).map(|i| format!("#t{i}")).collect();
        let c = instagram_caption(&format!("Look! {}", tags.join(" ")));
        assert_eq!(c, format!("Look! {}", tags[..30].join(" ")));
        let mentions: Vec<String> = (0..22).map(|i| format!("@user.{i}")).collect();
        let c = instagram_caption(&mentions.join(" "));
        assert!(c.starts_with("@user.0 "));
        assert!(c.contains(" @user.19 user.20 user.21"), "{c}");
        // Not hashtags: inside a word, or a bare '#'.
        assert_eq!(
            instagram_caption_with("a#b c # d #e", 0, 0, 100),
            "a#b c # d"
        );
        assert_eq!(
            instagram_caption_with("thanks @ana.", 5, 0, 100),
            "thanks ana."
        );
        assert_eq!(instagram_caption_with("#日本 #東京", 1, 0, 100), "#日本");
        let c = instagram_caption(&"🎬".repeat(1500));
        assert_eq!(c, "🎬".repeat(1100));
    }
}
