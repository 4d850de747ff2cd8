//! Whisper token ids ↔ text.
//!
//! Whisper uses GPT-2's byte-level BPE. Decoding only needs the vocabulary:
//! each token string is written with GPT-2's printable "byte ↔ unicode" map,
//! so mapping its characters back to bytes and concatenating gives UTF-8.
//! Special tokens (`<|en|>`, `<|0.00|>`, ...) are looked up by their text.
//!
//! The vocabulary comes from the model folder's `vocabulary.txt` (one token
//! per line, line number = id, as CTranslate2 writes it), or from
//! `tokenizer.json` when there is no `vocabulary.txt`.

use std::collections::HashMap;
use std::path::Path;

use super::WhisperError;

/// Languages whose words are not separated by spaces: word timestamps split
/// them on Unicode characters instead of on spaces.
const NO_SPACE_LANGUAGES: &[&str] = &["zh", "ja", "th", "lo", "my", "yue"];

/// Punctuation that counts as a word of its own when splitting on spaces.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Whisper vocabulary plus the ids of its special tokens.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    /// Decoded bytes of each token (special tokens keep their text).
    bytes: Vec<Vec<u8>>,
    /// `<|endoftext|>`; ids below it are text tokens.
    pub eot: u32,
    /// `<|startoftranscript|>`.
    pub sot: u32,
    /// `<|translate|>`.
    pub translate: u32,
    /// `<|transcribe|>`.
    pub transcribe: u32,
    /// `<|startofprev|>` (introduces the previous-text prompt).
    pub sot_prev: u32,
    /// `<|nocaptions|>` / `<|nospeech|>` (no-speech probability).
    pub no_speech: Option<u32>,
    /// `<|notimestamps|>`.
    pub no_timestamps: u32,
    /// `<|0.00|>`; every id from here on is a timestamp (20 ms steps).
    pub timestamp_begin: u32,
    /// Language codes and their token ids, in vocabulary order.
    pub languages: Vec<(String, u32)>,
    /// Text token bytes → id (the id is also the BPE merge rank, as in tiktoken).
    ranks: HashMap<Vec<u8>, u32>,
}

/// GPT-2's pre-tokenizer: contractions, ` ?letters`, ` ?digits`, ` ?other symbols`, and
/// whitespace (a space before a word goes with the word).
fn pre_tokenize(text: &str) -> Vec<&str> {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Letter,
        Digit,
        Space,
        Other,
    }
    let class = |c: char| {
        if c.is_alphabetic() {
            Class::Letter
        } else if c.is_numeric() {
            Class::Digit
        } else if c.is_whitespace() {
            Class::Space
        } else {
            Class::Other
        }
    };
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = chars[i].0;
        let rest = &text[start..];
        if let Some(c) = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
            .iter()
            .find(|c| rest.starts_with(**c))
        {
            out.push(&text[start..start + c.len()]);
            i += c.chars().count();
            continue;
        }
        let mut j = i;
        let mut k = class(chars[i].1);
        if chars[i].1 == ' ' && i + 1 < chars.len() && class(chars[i + 1].1) != Class::Space {
            j += 1;
            k = class(chars[j].1);
        }
        if k == Class::Space {
            // A run of spaces, leaving the last one to the next word.
            while j + 1 < chars.len() && class(chars[j + 1].1) == Class::Space {
                j += 1;
            }
            if j + 1 < chars.len() && j > i && chars[j].1 == ' ' {
                j -= 1;
            }
        } else {
            while j + 1 < chars.len() && class(chars[j + 1].1) == k {
                j += 1;
            }
        }
        let end = chars.get(j + 1).map(|c| c.0).unwrap_or(text.len());
        out.push(&text[start..end]);
        i = j + 1;
    }
    out
}

fn is_special(s: &str) -> bool {
    s.starts_with("<|") && s.ends_with("|>")
}

impl Tokenizer {
    /// Loads the vocabulary from `dir/vocabulary.txt`, or else from
    /// `dir/tokenizer.json`. `vocab_size` is the model's embedding count:
    /// missing trailing timestamp tokens are synthesised up to it.
    pub fn load(dir: &Path, vocab_size: usize) -> Result<Self, WhisperError> {
        let txt = dir.join("vocabulary.txt");
        let json = dir.join("tokenizer.json");
        let (strings, path) = if txt.is_file() {
            let s = std::fs::read_to_string(&txt).map_err(|source| WhisperError::Io {
                path: txt.clone(),
                source,
            })?;
            let mut lines: Vec<String> = s
                .split('\n')
                .map(|l| l.trim_end_matches('\r').to_string())
                .collect();
            if lines.last().is_some_and(|l| l.is_empty()) {
                lines.pop();
            }
            (lines, txt)
        } else if json.is_file() {
            (Self::strings_from_json(&json)?, json)
        } else {
            return Err(WhisperError::Tokenizer {
                path: dir.to_path_buf(),
                msg: "neither vocabulary.txt nor tokenizer.json found".into(),
            });
        };
        Self::from_strings(strings, vocab_size, &path)
    }

    fn strings_from_json(path: &Path) -> Result<Vec<String>, WhisperError> {
        let err = |msg: String| WhisperError::Tokenizer {
            path: path.to_path_buf(),
            msg,
        };
        let text = std::fs::read_to_string(path).map_err(|source| WhisperError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| err(format!("invalid JSON: {e}")))?;
        let mut by_id: HashMap<u64, String> = HashMap::new();
        let vocab = v
            .pointer("/model/vocab")
            .and_then(|x| x.as_object())
            .ok_or_else(|| err("no model.vocab object".into()))?;
        for (tok, id) in vocab {
            let id = id
                .as_u64()
                .ok_or_else(|| err(format!("vocab id of {tok:?} is not an integer")))?;
            by_id.insert(id, tok.clone());
        }
        if let Some(added) = v.get("added_tokens").and_then(|x| x.as_array()) {
            for t in added {
                if let (Some(id), Some(content)) = (
                    t.get("id").and_then(|x| x.as_u64()),
                    t.get("content").and_then(|x| x.as_str()),
                ) {
                    by_id.insert(id, content.to_string());
                }
            }
        }
        let n = by_id.keys().max().map_or(0, |m| m + 1);
        (0..n)
            .map(|id| {
                by_id
                    .remove(&id)
                    .ok_or_else(|| err(format!("token id {id} missing from vocabulary")))
            })
            .collect()
    }

    /// Builds the tokenizer from token strings in id order.
    pub fn from_strings(
        mut strings: Vec<String>,
        vocab_size: usize,
        path: &Path,
    ) -> Result<Self, WhisperError> {
        let err = |msg: String| WhisperError::Tokenizer {
            path: path.to_path_buf(),
            msg,
        };
        let find = |strings: &[String], s: &str| -> Option<u32> {
            strings.iter().position(|t| t == s).map(|i| i as u32)
        };
        let no_timestamps = find(&strings, "<|notimestamps|>")
            .ok_or_else(|| err("no <|notimestamps|> token".into()))?;
        // Timestamps follow <|notimestamps|>; synthesise them if the list
        // stops short of the model's vocabulary size.
        if strings.len() < vocab_size {
            let first_ts = no_timestamps as usize + 1;
            for id in strings.len()..vocab_size {
                let steps = id.checked_sub(first_ts).ok_or_else(|| {
                    err(format!("token {id} missing before the timestamp tokens"))
                })?;
                strings.push(format!("<|{:.2}|>", steps as f64 * 0.02));
            }
        }
        if strings.len() != vocab_size {
            return Err(err(format!(
                "vocabulary has {} tokens but the model has {vocab_size} embeddings",
                strings.len()
            )));
        }
        let required = |s: &str| find(&strings, s).ok_or_else(|| err(format!("no {s} token")));
        let eot = required("<|endoftext|>")?;
        let sot = required("<|startoftranscript|>")?;
        let translate = required("<|translate|>")?;
        let transcribe = required("<|transcribe|>")?;
        let sot_prev = required("<|startofprev|>")?;
        let no_speech = find(&strings, "<|nospeech|>").or_else(|| find(&strings, "<|nocaptions|>"));
        let timestamp_begin = no_timestamps + 1;
        if strings.get(timestamp_begin as usize).map(String::as_str) != Some("<|0.00|>") {
            return Err(err("<|0.00|> does not follow <|notimestamps|>".into()));
        }
        let languages = strings[(sot as usize + 1)..(translate as usize)]
            .iter()
            .enumerate()
            .filter(|(_, s)| is_special(s))
            .map(|(i, s)| (s[2..s.len() - 2].to_string(), sot + 1 + i as u32))
            .collect();
        let map = reelsmith_kit::bytes_bpe::char_bytes();
        let bytes = strings
            .iter()
            .enumerate()
            .map(|(id, s)| {
                if id as u32 >= eot {
                    s.as_bytes().to_vec()
                } else {
                    // Characters outside the table (never in a real GPT-2
                    // vocabulary) are kept as their UTF-8 bytes.
                    let mut out = Vec::with_capacity(s.len());
                    for ch in s.chars() {
                        match map.get(&ch) {
                            Some(&b) => out.push(b),
                            None => {
                                let mut buf = [0u8; 4];
                                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                            }
                        }
                    }
                    out
                }
            })
            .collect::<Vec<Vec<u8>>>();
        let ranks = bytes[..eot as usize]
            .iter()
            .enumerate()
            .map(|(id, b)| (b.clone(), id as u32))
            .collect();
        Ok(Self {
            ranks,
            bytes,
            eot,
            sot,
            translate,
            transcribe,
            sot_prev,
            no_speech,
            no_timestamps,
            timestamp_begin,
            languages,
        })
    }

    /// Text → token ids with Whisper's byte-level BPE: GPT-2's pre-tokenizer splits words,
    /// then each word's bytes are merged pair by pair, lowest rank (= id) first, as tiktoken
    /// does. Used to force known text through the decoder (alignment).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for piece in pre_tokenize(text) {
            self.bpe(piece.as_bytes(), &mut out);
        }
        out
    }

    fn bpe(&self, piece: &[u8], out: &mut Vec<u32>) {
        if let Some(&id) = self.ranks.get(piece) {
            out.push(id);
            return;
        }
        // Parts as byte ranges; merge the adjacent pair with the lowest rank until none is known.
        let mut parts: Vec<(usize, usize)> = (0..piece.len()).map(|i| (i, i + 1)).collect();
        loop {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| self.ranks.get(&piece[w[0].0..w[1].1]).map(|&r| (r, i)))
                .min();
            let Some((_, i)) = best else { break };
            parts[i].1 = parts[i + 1].1;
            parts.remove(i + 1);
        }
        for (a, b) in parts {
            // Every single byte is a token in a byte-level vocabulary.
            if let Some(&id) = self.ranks.get(&piece[a..b]) {
                out.push(id);
            }
        }
    }

    /// Number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.bytes.len()
    }

    /// Token id of a language code (`"en"`).
    pub fn language_token(&self, code: &str) -> Option<u32> {
        self.languages
            .iter()
            .find(|(c, _)| c == code)
            .map(|&(_, id)| id)
    }

    /// Language code of a language token.
    pub fn language_code(&self, token: u32) -> Option<&str> {
        self.languages
            .iter()
            .find(|&&(_, id)| id == token)
            .map(|(c, _)| c.as_str())
    }

    /// Whether `token` is a timestamp token.
    pub fn is_timestamp(&self, token: u32) -> bool {
        token >= self.timestamp_begin
    }

    /// Raw bytes of a token.
    pub fn token_bytes(&self, token: u32) -> &[u8] {
        self.bytes.get(token as usize).map_or(&[], Vec::as_slice)
    }

    /// Decodes text tokens (special tokens are skipped).
    pub fn decode(&self, tokens: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &t in tokens.iter().filter(|&&t| t < self.eot) {
            bytes.extend_from_slice(self.token_bytes(t));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Groups tokens into the smallest runs that decode to complete UTF-8
    /// text.
    fn split_on_unicode(&self, tokens: &[u32]) -> Vec<(String, Vec<u32>)> {
        let mut out = Vec::new();
        let mut current: Vec<u32> = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for &t in tokens {
            current.push(t);
            if t >= self.eot {
                // A special token always stands alone.
                let text = String::from_utf8_lossy(&pending).into_owned();
                let special = current.pop();
                if !current.is_empty() {
                    out.push((text, std::mem::take(&mut current)));
                }
                pending.clear();
                out.push((String::new(), special.into_iter().collect()));
                continue;
            }
            pending.extend_from_slice(self.token_bytes(t));
            if let Ok(s) = std::str::from_utf8(&pending) {
                out.push((s.to_string(), std::mem::take(&mut current)));
                pending.clear();
            }
        }
        if !current.is_empty() {
            out.push((
                String::from_utf8_lossy(&pending).into_owned(),
                std::mem::take(&mut current),
            ));
        }
        out
    }

    /// Splits tokens into words (each with its tokens), the way word-level
    /// timestamps need them: on spaces and punctuation for most languages,
    /// on Unicode characters for languages written without spaces. Special
    /// tokens (such as the final `<|endoftext|>`) become words of their own.
    pub fn split_to_words(&self, tokens: &[u32], language: &str) -> Vec<(String, Vec<u32>)> {
        let pieces = self.split_on_unicode(tokens);
        if NO_SPACE_LANGUAGES.contains(&language) {
            return pieces;
        }
        let mut words: Vec<(String, Vec<u32>)> = Vec::new();
        for (text, toks) in pieces {
            let special = toks.first().is_some_and(|&t| t >= self.eot);
            let with_space = text.starts_with(' ');
            let trimmed = text.trim();
            // Same test as the reference: the stripped text is a substring of
            // the ASCII punctuation list (the empty string included).
            let punctuation = PUNCTUATION.contains(trimmed);
            let previous_special = words
                .last()
                .and_then(|(_, t)| t.first())
                .is_some_and(|&t| t >= self.eot);
            if special || with_space || punctuation || words.is_empty() || previous_special {
                words.push((text, toks));
            } else if let Some(last) = words.last_mut() {
                last.0.push_str(&text);
                last.1.extend(toks);
            }
        }
        words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_a_bijection() {
        let m = reelsmith_kit::bytes_bpe::char_bytes();
        assert_eq!(m.len(), 256);
        let mut seen = [false; 256];
        for &b in m.values() {
            seen[b as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(m[&'Ġ'], b' ');
        assert_eq!(m[&'Ċ'], b'\n');
        assert_eq!(m[&'A'], b'A');
    }

    #[test]
    fn pre_tokenizer_splits_like_gpt2() {
        assert_eq!(
            pre_tokenize("Hello world, it's 2024!"),
            ["Hello", " world", ",", " it", "'s", " 2024", "!"]
        );
        assert_eq!(pre_tokenize("a  b"), ["a", " ", " b"]);
        assert_eq!(pre_tokenize("end  "), ["end", "  "]);
        assert_eq!(pre_tokenize("日本語 です"), ["日本語", " です"]);
    }

    #[test]
    fn bpe_merges_by_lowest_rank() {
        // ids: bytes first, then merges in rank order.
        let mut strings: Vec<String> = ["h", "e", "l", "o", "Ġ", "he", "ll", "hell", "Ġh"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        strings.extend(
            [
                "<|endoftext|>",
                "<|startoftranscript|>",
                "<|en|>",
                "<|translate|>",
                "<|transcribe|>",
                "<|startofprev|>",
                "<|notimestamps|>",
                "<|0.00|>",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let n = strings.len();
        let t = Tokenizer::from_strings(strings, n, Path::new("v")).unwrap();
        assert_eq!(t.encode("hello"), [7, 3]); // "hell" + "o"
                                               // "he" (rank 5) merges before "Ġh" (rank 8); "Ġhe" is unknown.
        assert_eq!(t.encode(" he"), [4, 5]);
    }
}
