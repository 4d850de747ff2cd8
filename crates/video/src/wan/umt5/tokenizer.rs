//! The prompt side of Wan: diffusers' `prompt_clean` and the umT5 tokenizer, padded to 512.
//!
//! umT5's tokenizer (`google/umt5-xxl`'s `tokenizer.json`) is a SentencePiece unigram with
//! `byte_fallback` set. transformers 5.23's `T5Tokenizer`, which diffusers and the official Wan
//! code reach through `AutoTokenizer`, rebuilds that model **without** byte fallback: characters
//! outside the vocabulary become `<unk>` (id 2), not `<0xNN>` pieces (measured by
//! scripts/make-wan-encoders-fixture.py). [`WanTokenizer`] reproduces the reference: it reads the
//! file with the shared T5 tokenizer of the image crate with the flag cleared.

use std::path::Path;

use reelsmith_diffusion::tokenizer::T5Tokenizer;
use serde_json::Value;

use super::html_entities::{HTML5, INVALID_CHARREFS, INVALID_CODEPOINTS};
use super::weights::weights_err;
use crate::VideoError;

type Result<T> = std::result::Result<T, VideoError>;

/// The Wan pipelines' `max_sequence_length`.
pub const WAN_MAX_TOKENS: usize = 512;

/// A tokenized prompt: `ids` padded to the sequence length, `len` of them real (`</s>`
/// included), `truncated` prompt tokens dropped to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanPromptTokens {
    pub ids: Vec<u32>,
    pub len: usize,
    pub truncated: usize,
}

/// umT5's tokenizer as the Wan pipelines call it.
pub struct WanTokenizer {
    inner: T5Tokenizer,
    /// Padded length (512).
    pub max_tokens: usize,
}

impl WanTokenizer {
    /// A `tokenizer.json` (or a folder holding one, as `google/umt5-xxl` and the Wan diffusers
    /// repos' `tokenizer/`), or a folder/file with only `spiece.model` (read as the
    /// `sentencepiece`-free transformers path would; models with byte fallback are refused
    /// there, use the `tokenizer.json`).
    pub fn from_path(path: &Path) -> Result<Self> {
        let json = if path.is_dir() {
            path.join("tokenizer.json")
        } else {
            path.to_path_buf()
        };
        let inner = if json.extension().is_some_and(|x| x == "json") && json.is_file() {
            Self::read_json(&json)?
        } else {
            let spm = if path.is_dir() {
                path.join("spiece.model")
            } else {
                path.to_path_buf()
            };
            T5Tokenizer::from_spiece_model(&spm)
                .map_err(|e| weights_err(spm.display(), format!("umT5 tokenizer: {e}")))?
        };
        Ok(Self {
            inner,
            max_tokens: WAN_MAX_TOKENS,
        })
    }

    fn read_json(path: &Path) -> Result<T5Tokenizer> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| weights_err(path.display(), e.to_string()))?;
        let mut json: Value = serde_json::from_str(&text)
            .map_err(|e| weights_err(path.display(), format!("not JSON: {e}")))?;
        let fallback = json
            .pointer("/model/byte_fallback")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // As transformers 5 does: the same model without byte fallback.
        if fallback {
            if let Some(m) = json.get_mut("model").and_then(Value::as_object_mut) {
                m.insert("byte_fallback".into(), Value::Bool(false));
            }
        }
        T5Tokenizer::from_tokenizer_json_value(&json, path)
            .map_err(|e| weights_err(path.display(), format!("umT5 tokenizer: {e}")))
    }

    pub fn inner(&self) -> &T5Tokenizer {
        &self.inner
    }

    /// The ids of an already-cleaned text with `</s>` (HF `add_special_tokens=True`), uncut.
    pub fn encode_clean(&self, text: &str) -> Vec<u32> {
        let mut ids = self.inner.encode(text);
        ids.push(self.inner.eos_id());
        ids
    }

    /// diffusers' `_get_t5_prompt_embeds` tokenization: [`prompt_clean`], then
    /// `padding="max_length", max_length=512, truncation=True, add_special_tokens=True`.
    pub fn tokenize(&self, prompt: &str) -> WanPromptTokens {
        let r = self
            .inner
            .encode_padded_report(&prompt_clean(prompt), self.max_tokens.max(1));
        WanPromptTokens {
            ids: r.ids,
            len: r.len,
            truncated: r.truncated,
        }
    }
}

/// Python's `str.isspace` (what `re`'s `\s` and `str.strip()` use): Rust's White_Space plus
/// the information separators U+001C–U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// diffusers' Wan `prompt_clean`: `whitespace_clean(basic_clean(text))`, i.e.
/// `html.unescape` twice, strip, every whitespace run to one space, strip.
///
/// Skipped: `ftfy.fix_text`, which `basic_clean` applies only when ftfy is installed (it is
/// not a dependency of diffusers, and not installed in the reference environment); texts
/// that ftfy would repair (mojibake, HTML-escaped quotes in odd encodings) differ.
pub fn prompt_clean(text: &str) -> String {
    let t = html_unescape(&html_unescape(text));
    let mut out = String::with_capacity(t.len());
    let mut pending_space = false;
    for c in t.trim_matches(py_space).chars() {
        if py_space(c) {
            pending_space = true;
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    out
}

/// Python's `html.unescape`: named references (all of HTML5, the legacy ones also without
/// `;`, the longest known prefix otherwise), decimal and hex references with its rules for
/// invalid code points.
pub(crate) fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match charref(after) {
            Some((replacement, used)) => {
                out.push_str(&replacement);
                rest = &after[used..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The match of `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)` at the start of `s`
/// (after the `&`): its replacement and the bytes it used.
fn charref(s: &str) -> Option<(String, usize)> {
    if let Some(num) = s.strip_prefix('#') {
        let (hex, digits) = match num.strip_prefix(['x', 'X']) {
            Some(h) => (true, h),
            None => (false, num),
        };
        let n = digits
            .bytes()
            .take_while(|b| {
                if hex {
                    b.is_ascii_hexdigit()
                } else {
                    b.is_ascii_digit()
                }
            })
            .count();
        if n == 0 {
            return None;
        }
        let semi = usize::from(digits[n..].starts_with(';'));
        let used = 1 + usize::from(hex) + n + semi;
        let value = u32::from_str_radix(&digits[..n], if hex { 16 } else { 10 }).ok();
        let text = match value {
            None => "\u{fffd}".to_string(), // beyond u32: > 0x10FFFF
            Some(v) => numeric(v),
        };
        return Some((text, used));
    }
    let mut name_end = 0;
    let mut count = 0;
    for (i, c) in s.char_indices() {
        if matches!(c, '\t' | '\n' | '\u{c}' | ' ' | '<' | '&' | '#' | ';') || count == 32 {
            break;
        }
        name_end = i + c.len_utf8();
        count += 1;
    }
    if count == 0 {
        return None;
    }
    let semi = usize::from(s[name_end..].starts_with(';'));
    let whole = &s[..name_end + semi];
    if let Some(v) = lookup(whole) {
        return Some((v.to_string(), whole.len()));
    }
    // The longest prefix that is a known name (at least 2 characters), the rest kept.
    let bounds: Vec<usize> = whole.char_indices().map(|(i, _)| i).skip(2).collect();
    for &x in bounds.iter().rev() {
        if let Some(v) = lookup(&whole[..x]) {
            return Some((format!("{v}{}", &whole[x..]), whole.len()));
        }
    }
    // Python returns '&' + the match.
    Some((format!("&{whole}"), whole.len()))
}

fn lookup(name: &str) -> Option<&'static str> {
    HTML5
        .binary_search_by(|(k, _)| k.cmp(&name))
        .ok()
        .map(|i| HTML5[i].1)
}

fn numeric(v: u32) -> String {
    if let Ok(i) = INVALID_CHARREFS.binary_search_by(|(k, _)| k.cmp(&v)) {
        return INVALID_CHARREFS[i].1.to_string();
    }
    if (0xD800..=0xDFFF).contains(&v) || v > 0x10FFFF {
        return "\u{fffd}".into();
    }
    if INVALID_CODEPOINTS
        .iter()
        .any(|&(a, b)| (a..=b).contains(&v))
    {
        return String::new();
    }
    char::from_u32(v).map_or_else(|| "\u{fffd}".into(), String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_follows_python() {
        assert_eq!(html_unescape("&amp;lt;"), "&lt;");
        assert_eq!(html_unescape("&amp &ampx &notit; &notin;"), "& &x ¬it; ∉");
        assert_eq!(
            html_unescape("&#65;&#x42;&#0;&#128;&#xD800;"),
            "AB\u{fffd}€\u{fffd}"
        );
        assert_eq!(html_unescape("&#1;x&#65"), "xA");
        assert_eq!(html_unescape("& &; &#; &zz;"), "& &; &#; &zz;");
    }

    #[test]
    fn clean_collapses_python_whitespace() {
        assert_eq!(prompt_clean("  a \u{1c}b\u{3000}\n c  "), "a b c");
        assert_eq!(prompt_clean("&amp;amp; x"), "& x");
    }
}
