//! Text tokenizers of the diffusion text encoders, matching HuggingFace id for id.
//!
//! - [`ClipTokenizer`]: CLIP's byte-level BPE (SD 1.5 / 2.x, SDXL's two encoders, FLUX's CLIP-L).
//!   Loads a diffusers repo's `tokenizer/` folder (`vocab.json` + `merges.txt`, the pad token from
//!   `special_tokens_map.json` / `tokenizer_config.json`) or OpenAI's `bpe_simple_vocab_16e6.txt(.gz)`.
//! - [`T5Tokenizer`]: the SentencePiece unigram tokenizer of T5 v1.1 (FLUX's T5-XXL). Loads
//!   `spiece.model` (parsed by hand: a minimal protobuf reader) or `tokenizer.json`.
//!
//! Both follow a named reference implementation exactly, chosen with a *flavor*:
//!
//! | tokenizer | flavor | reference |
//! |---|---|---|
//! | CLIP | [`ClipFlavor::TransformersSlow`] (default) | transformers 4.x `CLIPTokenizer` (Python) without `ftfy` |
//! | CLIP | [`ClipFlavor::Tokenizers`] | transformers 5.x `CLIPTokenizer` / 4.x `CLIPTokenizerFast` (the `tokenizers` library) |
//! | T5 | [`T5Flavor::Tokenizers`] (default) | transformers `T5Tokenizer` (5.x) / `T5TokenizerFast` (4.x), which diffusers' FLUX pipeline uses |
//! | T5 | [`T5Flavor::SentencePiece`] | the `sentencepiece` library (`SentencePieceProcessor.encode`) |
//!
//! The two CLIP references agree on ordinary prompts; they differ (both are reproduced here) on:
//! - CJK ideographs: the slow tokenizer puts spaces around each one (BERT's BasicTokenizer), so
//!   `"一只猫"` is three words; `tokenizers` keeps the run as one word.
//! - Characters of general category C (Cc, Cf, Co, Cn) and U+FFFD: removed by the slow one, kept by
//!   `tokenizers` (e.g. the zero-width joiner inside emoji sequences, soft hyphens, U+200B).
//! - Lowercasing: Python's `str.lower` maps a word-final `Σ` to `ς`; `tokenizers` lowercases char by
//!   char (`σ`).
//! - `<|ENDOFTEXT|>` typed in upper case: the slow one lowercases it and its BPE cache turns it into
//!   the special token; `tokenizers` byte-pair-encodes it as text.
//!
//! In both, the special tokens (bos, eos, unk, *pad*) are cut out of the raw text first, which
//! means that with pad token `"!"` (SD 2.x, SDXL's second tokenizer) every `!` in a prompt becomes
//! its own token: `"wow!!!"` is `[wow, !, !, !]` there and `[wow, !!!]` with the SD 1.5 tokenizer.
//!
//! Known differences from the references:
//! - Unicode versions. The slow CLIP tokenizer classifies characters with the running Python's
//!   `unicodedata` (Python 3.11: Unicode 14), this code with the `regex` crate and `std`
//!   (Unicode 16): a character assigned since, e.g. U+1FAE8 🫨 (Unicode 15), is unassigned (Cn)
//!   for Python 3.11 and dropped there (`"shaking 🫨 face"` → `[shaking, face]`), but kept and
//!   byte-pair-encoded here (Python ≥ 3.12 keeps it too). The same holds for NFC, lowercasing and
//!   `\p{L}`/`\p{N}` of characters newer than the reference's tables.
//! - Added tokens of `tokenizer_config.json` are matched in the raw text, case-sensitively; their
//!   `single_word` and `normalized` flags are ignored (no CLIP/T5 repo sets them in a way that
//!   matters: the special tokens are matched raw in both references).
//!
//! T5: see [`T5Tokenizer`] for the normalization and the differences between the flavors.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// What went wrong loading a tokenizer; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: bad JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: bad merges line {line}: {what}", path.display())]
    MergesLine {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error("{}: truncated or malformed protobuf at byte {offset}: {what}", path.display())]
    Protobuf {
        path: PathBuf,
        offset: usize,
        what: String,
    },
    #[error("{}: {what}", path.display())]
    Invalid { path: PathBuf, what: String },
    #[error("{}: not supported: {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
    #[error("token {token:?} is not in the vocabulary")]
    UnknownToken { token: String },
}

type Result<T, E = TokenizerError> = std::result::Result<T, E>;

fn invalid(path: &Path, what: impl Into<String>) -> TokenizerError {
    TokenizerError::Invalid {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn unsupported(path: &Path, what: impl Into<String>) -> TokenizerError {
    TokenizerError::Unsupported {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        invalid(
            path,
            format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

fn read_text(path: &Path) -> Result<String> {
    utf8(path, read_bytes(path)?)
}

fn read_json(path: &Path) -> Result<Value> {
    serde_json::from_str(&read_text(path)?).map_err(|source| TokenizerError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// A tokenized prompt padded/truncated to the model's sequence length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaddedIds {
    /// Exactly `max_len` ids.
    pub ids: Vec<u32>,
    /// Positions holding real tokens (special tokens included); the rest is padding.
    pub len: usize,
    /// Tokens of the prompt that did not fit and were dropped (warn the user when > 0).
    pub truncated: usize,
}

/// Which id fills the positions after the end-of-text token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pad {
    /// The tokenizer's pad token (read from the repo's files; eos when they name none).
    #[default]
    Configured,
    /// The eos id (SD 1.5, CLIP-L of SDXL and FLUX).
    Eos,
    /// This id (0 = `"!"` for SD 2.x and SDXL's OpenCLIP-bigG tokenizer).
    Id(u32),
}

// -------------------------------------------------------------------------------------------
// Added/special tokens: cut out of the raw text before anything else (both references do).

#[derive(Debug, Clone, PartialEq)]
struct SpecialToken {
    content: String,
    id: u32,
    /// Eats the whitespace on its left.
    lstrip: bool,
    /// Eats the whitespace on its right.
    rstrip: bool,
}

enum Segment<'a> {
    Text(&'a str),
    Special(u32),
}

/// Splits `text` at the special tokens: leftmost match first, the longest at that position.
fn split_specials<'a>(text: &'a str, specials: &[SpecialToken]) -> Vec<Segment<'a>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut eat_left = false;
    while i < text.len() {
        let rest = &text[i..];
        let found = specials
            .iter()
            .filter(|s| !s.content.is_empty() && rest.starts_with(s.content.as_str()))
            .max_by_key(|s| s.content.len());
        match found {
            Some(sp) => {
                let mut before = &text[start..i];
                if eat_left {
                    before = before.trim_start();
                }
                if sp.lstrip {
                    before = before.trim_end();
                }
                if !before.is_empty() {
                    out.push(Segment::Text(before));
                }
                out.push(Segment::Special(sp.id));
                eat_left = sp.rstrip;
                i += sp.content.len();
                start = i;
            }
            None => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    let mut tail = &text[start..];
    if eat_left {
        tail = tail.trim_start();
    }
    if !tail.is_empty() {
        out.push(Segment::Text(tail));
    }
    out
}

/// `bos + ids[..max_len - 2] + eos + pad…` (CLIP) or `ids[..max_len - 1] + eos + pad…` (T5):
/// HF's `padding="max_length", truncation=True`.
fn pad_ids(bos: Option<u32>, ids: &[u32], eos: u32, pad: u32, max_len: usize) -> PaddedIds {
    let specials = 1 + usize::from(bos.is_some());
    let max_len = max_len.max(specials);
    let keep = ids.len().min(max_len - specials);
    let mut out = Vec::with_capacity(max_len);
    out.extend(bos);
    out.extend_from_slice(&ids[..keep]);
    out.push(eos);
    let len = out.len();
    out.resize(max_len, pad);
    PaddedIds {
        ids: out,
        len,
        truncated: ids.len() - keep,
    }
}

mod clip;
mod spm;
mod t5;

pub use clip::*;
use spm::*;
pub use t5::*;

#[cfg(test)]
mod tests;
