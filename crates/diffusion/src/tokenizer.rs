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

// -------------------------------------------------------------------------------------------
// CLIP

/// Merges of CLIP's vocabulary: `49152 - 256 - 2`. OpenAI's SimpleTokenizer and transformers'
/// slow `CLIPTokenizer` read only this many lines of the merges file.
pub const CLIP_MERGES: usize = 48_894;

const CLIP_BOS: &str = "<|startoftext|>";
const CLIP_EOS: &str = "<|endoftext|>";

/// Which implementation [`ClipTokenizer`] reproduces (see the module docs for the differences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClipFlavor {
    /// transformers 4.x `CLIPTokenizer` without ftfy: BERT BasicTokenizer clean-up (drop category C
    /// characters, whitespace to spaces, spaces around CJK ideographs, NFC, split on whitespace,
    /// Python `str.lower` per word), the CLIP regex (case-insensitive), BPE with `</w>`.
    #[default]
    TransformersSlow,
    /// The `tokenizers` pipeline of transformers 5.x `CLIPTokenizer` / 4.x `CLIPTokenizerFast`:
    /// NFC, `\s+` → `" "`, per-character lowercase, the CLIP regex, then the byte-level
    /// pre-tokenizer's GPT-2 regex on each piece, BPE with `</w>`.
    Tokenizers,
}

/// GPT-2's byte → printable character table (`bytes_to_unicode`).
fn byte_chars() -> [char; 256] {
    reelsmith_kit::bytes_bpe::byte_chars()
}

/// The order OpenAI's SimpleTokenizer lists the byte characters: printable ones, then the rest.
fn byte_chars_in_vocab_order(table: &[char; 256]) -> Vec<char> {
    let mut v: Vec<char> = table
        .iter()
        .copied()
        .filter(|&c| (c as u32) < 256)
        .collect();
    v.extend(table.iter().copied().filter(|&c| (c as u32) >= 256));
    v
}

/// The CLIP BPE tokenizer of Stable Diffusion / SDXL / FLUX.
#[derive(Clone)]
pub struct ClipTokenizer {
    vocab: HashMap<String, u32>,
    /// (left id, right id) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Vocab id of each byte's character, without and with `</w>`.
    byte_ids: [Option<u32>; 256],
    byte_ids_end: [Option<u32>; 256],
    specials: Vec<SpecialToken>,
    bos: u32,
    eos: u32,
    unk: u32,
    pad: u32,
    flavor: ClipFlavor,
    slow_pattern: Regex,
    fast_pattern: Regex,
    gpt2_pattern: Regex,
    drop_chars: Regex,
    space_chars: Regex,
    space_runs: Regex,
}

impl fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("vocab_size", &self.vocab.len())
            .field("merges", &self.merges.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("pad", &self.pad)
            .field("flavor", &self.flavor)
            .finish()
    }
}

fn json_token_name(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("content").and_then(Value::as_str),
        _ => None,
    }
}

impl ClipTokenizer {
    /// A diffusers repo's tokenizer folder (`tokenizer/`, `tokenizer_2/`): `vocab.json`,
    /// `merges.txt` and, when present, `special_tokens_map.json` / `tokenizer_config.json`
    /// (bos/eos/unk/pad token names, `added_tokens_decoder`) and `added_tokens.json`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let mut tok = Self::from_files(dir.join("vocab.json"), dir.join("merges.txt"))?;
        let mut names: HashMap<&'static str, String> = HashMap::new();
        let mut added: Vec<SpecialToken> = Vec::new();
        let config = dir.join("tokenizer_config.json");
        let map = dir.join("special_tokens_map.json");
        // special_tokens_map.json wins over tokenizer_config.json, as in transformers.
        for path in [&config, &map] {
            if !path.exists() {
                continue;
            }
            let json = read_json(path)?;
            for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
                if let Some(name) = json.get(key).and_then(json_token_name) {
                    names.insert(key, name.to_string());
                }
            }
            if let Some(decoder) = json.get("added_tokens_decoder").and_then(Value::as_object) {
                for (id, tok) in decoder {
                    let id: u32 = id.parse().map_err(|_| {
                        invalid(path, format!("added_tokens_decoder: bad id {id:?}"))
                    })?;
                    let content = json_token_name(tok).ok_or_else(|| {
                        invalid(path, format!("added_tokens_decoder.{id}: no content"))
                    })?;
                    let flag = |k: &str| tok.get(k).and_then(Value::as_bool).unwrap_or(false);
                    added.push(SpecialToken {
                        content: content.to_string(),
                        id,
                        lstrip: flag("lstrip"),
                        rstrip: flag("rstrip"),
                    });
                }
            }
        }
        let added_json = dir.join("added_tokens.json");
        if added_json.exists() {
            let json = read_json(&added_json)?;
            let obj = json
                .as_object()
                .ok_or_else(|| invalid(&added_json, "expected an object {token: id}"))?;
            for (content, id) in obj {
                let id = id
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| invalid(&added_json, format!("{content:?}: bad id")))?;
                added.push(SpecialToken {
                    content: content.clone(),
                    id,
                    lstrip: false,
                    rstrip: false,
                });
            }
        }
        for sp in &added {
            tok.vocab.entry(sp.content.clone()).or_insert(sp.id);
        }
        let vocab_path = dir.join("vocab.json");
        let lookup = |tok: &Self, key: &str| -> Result<Option<u32>> {
            match names.get(key) {
                None => Ok(None),
                Some(name) => tok.vocab.get(name).copied().map(Some).ok_or_else(|| {
                    invalid(
                        &vocab_path,
                        format!("{key} {name:?} is not in the vocabulary"),
                    )
                }),
            }
        };
        if let Some(id) = lookup(&tok, "bos_token")? {
            tok.bos = id;
        }
        if let Some(id) = lookup(&tok, "eos_token")? {
            tok.eos = id;
        }
        if let Some(id) = lookup(&tok, "unk_token")? {
            tok.unk = id;
        }
        tok.pad = lookup(&tok, "pad_token")?.unwrap_or(tok.eos);
        tok.specials.clear();
        for (key, id) in [
            ("bos_token", tok.bos),
            ("eos_token", tok.eos),
            ("unk_token", tok.unk),
            ("pad_token", tok.pad),
        ] {
            let default = if key == "bos_token" {
                CLIP_BOS
            } else {
                CLIP_EOS
            };
            let content = names.get(key).map_or(default, String::as_str).to_string();
            tok.add_special(SpecialToken {
                content,
                id,
                lstrip: false,
                rstrip: false,
            });
        }
        for sp in added {
            tok.add_special(sp);
        }
        Ok(tok)
    }

    /// `vocab.json` + `merges.txt` (first line `#version: …`, then `left right` per line).
    /// Pad token = eos (SD 1.5); see [`ClipTokenizer::with_pad_token`].
    pub fn from_files(vocab: impl AsRef<Path>, merges: impl AsRef<Path>) -> Result<Self> {
        let vocab_path = vocab.as_ref();
        let merges_path = merges.as_ref();
        let vocab: HashMap<String, u32> =
            serde_json::from_str(&read_text(vocab_path)?).map_err(|source| {
                TokenizerError::Json {
                    path: vocab_path.to_path_buf(),
                    source,
                }
            })?;
        let text = read_text(merges_path)?;
        let mut pairs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if (i == 0 && line.starts_with("#version")) || line.trim().is_empty() {
                continue;
            }
            pairs.push((i + 1, parse_merge(merges_path, i + 1, line)?));
        }
        Self::build(vocab, pairs, vocab_path, merges_path)
    }

    /// OpenAI's `bpe_simple_vocab_16e6.txt.gz` (gzip detected by its magic bytes; plain text is
    /// accepted too). As OpenAI's SimpleTokenizer: line 1 is a header, the next
    /// [`CLIP_MERGES`] lines are the merges, the vocabulary is the 256 byte characters, the same
    /// with `</w>`, one token per merge, `<|startoftext|>`, `<|endoftext|>` (49408 for CLIP).
    pub fn from_openai_bpe(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let raw = read_bytes(path)?;
        let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw.as_slice())
                .read_to_end(&mut out)
                .map_err(|source| TokenizerError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
            out
        } else {
            raw
        };
        let text = utf8(path, bytes)?;
        let mut pairs = Vec::new();
        for (i, line) in text.split('\n').enumerate().skip(1).take(CLIP_MERGES) {
            if line.trim().is_empty() {
                continue;
            }
            pairs.push((i + 1, parse_merge(path, i + 1, line)?));
        }
        let table = byte_chars();
        let mut tokens: Vec<String> = Vec::with_capacity(2 * 256 + pairs.len() + 2);
        let order = byte_chars_in_vocab_order(&table);
        tokens.extend(order.iter().map(|c| c.to_string()));
        tokens.extend(order.iter().map(|c| format!("{c}</w>")));
        tokens.extend(pairs.iter().map(|(_, (a, b))| format!("{a}{b}")));
        tokens.push(CLIP_BOS.to_string());
        tokens.push(CLIP_EOS.to_string());
        let mut vocab = HashMap::with_capacity(tokens.len());
        for (id, t) in tokens.into_iter().enumerate() {
            vocab.entry(t).or_insert(id as u32);
        }
        Self::build(vocab, pairs, path, path)
    }

    fn build(
        vocab: HashMap<String, u32>,
        pairs: Vec<(usize, (String, String))>,
        vocab_path: &Path,
        merges_path: &Path,
    ) -> Result<Self> {
        let id_of = |t: &str| vocab.get(t).copied();
        let mut merges = HashMap::with_capacity(pairs.len());
        for (rank, (line, (a, b))) in pairs.iter().enumerate() {
            let missing = |t: &str| TokenizerError::MergesLine {
                path: merges_path.to_path_buf(),
                line: *line,
                what: format!("{t:?} is not in the vocabulary"),
            };
            let ia = id_of(a).ok_or_else(|| missing(a))?;
            let ib = id_of(b).ok_or_else(|| missing(b))?;
            let merged = format!("{a}{b}");
            let im = id_of(&merged).ok_or_else(|| missing(&merged))?;
            // A repeated pair takes its last rank, as both references' maps built in order do.
            merges.insert((ia, ib), (rank as u32, im));
        }
        let table = byte_chars();
        let mut byte_ids = [None; 256];
        let mut byte_ids_end = [None; 256];
        for b in 0..256 {
            byte_ids[b] = id_of(&table[b].to_string());
            byte_ids_end[b] = id_of(&format!("{}</w>", table[b]));
        }
        let eos = id_of(CLIP_EOS)
            .ok_or_else(|| invalid(vocab_path, format!("{CLIP_EOS} is not in the vocabulary")))?;
        let bos = id_of(CLIP_BOS)
            .ok_or_else(|| invalid(vocab_path, format!("{CLIP_BOS} is not in the vocabulary")))?;
        let clip = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
        let re = |p: &str| Regex::new(p).expect("static regex");
        let mut tok = Self {
            vocab,
            merges,
            byte_ids,
            byte_ids_end,
            specials: Vec::new(),
            bos,
            eos,
            unk: eos,
            pad: eos,
            flavor: ClipFlavor::default(),
            slow_pattern: re(&format!("(?i){clip}")),
            fast_pattern: re(clip),
            // GPT-2's pattern as the byte-level pre-tokenizer applies it to one CLIP piece, which
            // never holds whitespace (so its `\s+(?!\S)|\s+` branches cannot match).
            gpt2_pattern: re(r"'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}+|[^\s\p{L}\p{N}]+"),
            drop_chars: re(r"[\x00\x{FFFD}]|[\p{C}&&[^\t\n\r]]"),
            space_chars: re(r"[\t\n\r\p{Zs}]"),
            space_runs: re(r"\s+"),
        };
        for (content, id) in [(CLIP_BOS, bos), (CLIP_EOS, eos)] {
            tok.add_special(SpecialToken {
                content: content.to_string(),
                id,
                lstrip: false,
                rstrip: false,
            });
        }
        Ok(tok)
    }

    fn add_special(&mut self, sp: SpecialToken) {
        if !self.specials.iter().any(|s| s.content == sp.content) {
            self.specials.push(sp);
        }
    }

    /// Reproduce another implementation (default: [`ClipFlavor::TransformersSlow`]).
    pub fn with_flavor(mut self, flavor: ClipFlavor) -> Self {
        self.flavor = flavor;
        self
    }

    /// Sets the pad token (`"!"` for SD 2.x / SDXL's tokenizer_2, `"<|endoftext|>"` otherwise).
    /// As in transformers, the pad token then also becomes a special token cut out of prompts.
    pub fn with_pad_token(mut self, token: &str) -> Result<Self> {
        let id = self
            .vocab
            .get(token)
            .copied()
            .ok_or_else(|| TokenizerError::UnknownToken {
                token: token.to_string(),
            })?;
        self.pad = id;
        self.add_special(SpecialToken {
            content: token.to_string(),
            id,
            lstrip: false,
            rstrip: false,
        });
        Ok(self)
    }

    pub fn flavor(&self) -> ClipFlavor {
        self.flavor
    }

    pub fn bos_id(&self) -> u32 {
        self.bos
    }

    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// The configured pad id ([`Pad::Configured`]).
    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// Base vocabulary plus added tokens.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    /// The ids of `text` without bos/eos (HF `add_special_tokens=False`), never truncated.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for seg in split_specials(text, &self.specials) {
            match seg {
                Segment::Special(id) => out.push(id),
                Segment::Text(t) => match self.flavor {
                    ClipFlavor::TransformersSlow => self.encode_slow(t, &mut out),
                    ClipFlavor::Tokenizers => self.encode_fast(t, &mut out),
                },
            }
        }
        out
    }

    /// `bos + tokens + eos + padding`, the tokens cut to `max_len - 2` (77 for every CLIP text
    /// encoder); HF `padding="max_length", max_length=max_len, truncation=True`. A `max_len`
    /// below 2 is taken as 2.
    pub fn encode_padded(&self, text: &str, max_len: usize, pad: Pad) -> Vec<u32> {
        self.encode_padded_report(text, max_len, pad).ids
    }

    /// [`ClipTokenizer::encode_padded`] that also says how many tokens were cut.
    pub fn encode_padded_report(&self, text: &str, max_len: usize, pad: Pad) -> PaddedIds {
        let pad = match pad {
            Pad::Configured => self.pad,
            Pad::Eos => self.eos,
            Pad::Id(id) => id,
        };
        pad_ids(Some(self.bos), &self.encode(text), self.eos, pad, max_len)
    }

    fn encode_slow(&self, text: &str, out: &mut Vec<u32>) {
        // BasicTokenizer._clean_text: drop NUL, U+FFFD and category C except \t\n\r; \t\n\r and
        // Zs become spaces. (The two sets are disjoint, so two passes equal the Python loop.)
        let cleaned = self.drop_chars.replace_all(text, "");
        let cleaned = self.space_chars.replace_all(&cleaned, " ");
        let mut spaced = String::with_capacity(cleaned.len());
        for c in cleaned.chars() {
            if is_cjk_ideograph(c) {
                spaced.push(' ');
                spaced.push(c);
                spaced.push(' ');
            } else {
                spaced.push(c);
            }
        }
        let nfc: String = spaced.nfc().collect();
        let words: Vec<String> = nfc
            .split(is_python_space)
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let joined = words.join(" ");
        for piece in self.slow_pattern.find_iter(&joined) {
            let piece = piece.as_str();
            // The slow tokenizer's BPE cache is seeded with the two special strings.
            if piece == CLIP_BOS || piece == CLIP_EOS {
                out.push(self.vocab.get(piece).copied().unwrap_or(self.unk));
            } else {
                self.bpe(piece, CLIP_MERGES, out);
            }
        }
    }

    fn encode_fast(&self, text: &str, out: &mut Vec<u32>) {
        let nfc: String = text.nfc().collect();
        let spaced = self.space_runs.replace_all(&nfc, " ");
        let lower: String = spaced.chars().flat_map(char::to_lowercase).collect();
        for piece in self.fast_pattern.find_iter(&lower) {
            for sub in self.gpt2_pattern.find_iter(piece.as_str()) {
                self.bpe(sub.as_str(), usize::MAX, out);
            }
        }
    }

    /// Byte-level BPE of one word; the last symbol carries `</w>`. Merges of rank `>= limit`
    /// are ignored.
    fn bpe(&self, word: &str, limit: usize, out: &mut Vec<u32>) {
        const UNKNOWN: u32 = u32::MAX;
        let bytes = word.as_bytes();
        let Some((&last, init)) = bytes.split_last() else {
            return;
        };
        let mut syms: Vec<u32> = init
            .iter()
            .map(|&b| self.byte_ids[b as usize].unwrap_or(UNKNOWN))
            .collect();
        syms.push(self.byte_ids_end[last as usize].unwrap_or(UNKNOWN));
        while syms.len() > 1 {
            let mut best: Option<(u32, u32, u32, u32)> = None;
            for w in syms.windows(2) {
                if let Some(&(rank, merged)) = self.merges.get(&(w[0], w[1])) {
                    if (rank as usize) < limit && best.is_none_or(|b| rank < b.0) {
                        best = Some((rank, w[0], w[1], merged));
                    }
                }
            }
            let Some((_, a, b, merged)) = best else {
                break;
            };
            let mut next = Vec::with_capacity(syms.len());
            let mut i = 0;
            while i < syms.len() {
                if i + 1 < syms.len() && syms[i] == a && syms[i + 1] == b {
                    next.push(merged);
                    i += 2;
                } else {
                    next.push(syms[i]);
                    i += 1;
                }
            }
            syms = next;
        }
        out.extend(
            syms.into_iter()
                .map(|s| if s == UNKNOWN { self.unk } else { s }),
        );
    }
}

fn parse_merge(path: &Path, line: usize, text: &str) -> Result<(String, String)> {
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), None) => Ok((a.to_string(), b.to_string())),
        _ => Err(TokenizerError::MergesLine {
            path: path.to_path_buf(),
            line,
            what: format!("expected two tokens separated by a space, got {text:?}"),
        }),
    }
}

/// BERT's `_is_chinese_char`: the CJK Unified Ideographs blocks (not kana, not hangul).
fn is_cjk_ideograph(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B820..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

/// Python's `str.isspace` (what `str.split()` splits on): Unicode White_Space plus the
/// information separators U+001C..U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

// -------------------------------------------------------------------------------------------
// SentencePiece model file (protobuf), read by hand.

struct ProtoReader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the file, for error messages.
    base: usize,
    path: &'a Path,
}

enum ProtoValue<'a> {
    Varint(u64),
    Fixed32(u32),
    Fixed64,
    Bytes(&'a [u8], usize),
}

impl<'a> ProtoReader<'a> {
    fn new(buf: &'a [u8], base: usize, path: &'a Path) -> Self {
        Self {
            buf,
            pos: 0,
            base,
            path,
        }
    }

    fn err(&self, what: impl Into<String>) -> TokenizerError {
        TokenizerError::Protobuf {
            path: self.path.to_path_buf(),
            offset: self.base + self.pos,
            what: what.into(),
        }
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("varint runs past the end"));
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.err(format!(
                "field of {n} bytes runs past the end ({} left)",
                self.buf.len() - self.pos
            )));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next (field number, value), or None at the end.
    fn next_field(&mut self) -> Result<Option<(u64, ProtoValue<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        let value = match key & 7 {
            0 => ProtoValue::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                ProtoValue::Fixed64
            }
            2 => {
                let n = self.varint()?;
                let n = usize::try_from(n).map_err(|_| self.err("length too large"))?;
                let at = self.base + self.pos;
                ProtoValue::Bytes(self.take(n)?, at)
            }
            5 => ProtoValue::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().expect("4"))),
            w => return Err(self.err(format!("unsupported wire type {w} (field {field})"))),
        };
        Ok(Some((field, value)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

#[derive(Debug, Clone)]
struct SpmPiece {
    piece: String,
    score: f32,
    kind: PieceKind,
}

#[derive(Debug, Clone)]
struct SpmModel {
    pieces: Vec<SpmPiece>,
    model_type: u64,
    byte_fallback: bool,
    treat_whitespace_as_suffix: bool,
    unk_id: i64,
    eos_id: i64,
    pad_id: i64,
    normalizer_name: String,
    charsmap: Vec<u8>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
}

fn proto_bool(v: &ProtoValue, r: &ProtoReader, name: &str) -> Result<bool> {
    match v {
        ProtoValue::Varint(x) => Ok(*x != 0),
        _ => Err(r.err(format!("{name}: expected a varint"))),
    }
}

fn proto_int(v: &ProtoValue, r: &ProtoReader, name: &str) -> Result<i64> {
    match v {
        // int32 is sign-extended to 64 bits on the wire.
        ProtoValue::Varint(x) => Ok(*x as i64),
        _ => Err(r.err(format!("{name}: expected a varint"))),
    }
}

fn proto_str(v: &ProtoValue, r: &ProtoReader, name: &str) -> Result<String> {
    match v {
        ProtoValue::Bytes(b, _) => {
            String::from_utf8(b.to_vec()).map_err(|_| r.err(format!("{name}: not UTF-8")))
        }
        _ => Err(r.err(format!("{name}: expected a string"))),
    }
}

fn parse_spm_model(bytes: &[u8], path: &Path) -> Result<SpmModel> {
    let mut m = SpmModel {
        pieces: Vec::new(),
        model_type: 1,
        byte_fallback: false,
        treat_whitespace_as_suffix: false,
        unk_id: 0,
        eos_id: 2,
        pad_id: -1,
        normalizer_name: String::new(),
        charsmap: Vec::new(),
        add_dummy_prefix: true,
        remove_extra_whitespaces: true,
        escape_whitespaces: true,
    };
    let mut top = ProtoReader::new(bytes, 0, path);
    while let Some((field, value)) = top.next_field()? {
        let ProtoValue::Bytes(body, at) = value else {
            continue;
        };
        let mut r = ProtoReader::new(body, at, path);
        match field {
            1 => {
                let mut p = SpmPiece {
                    piece: String::new(),
                    score: 0.0,
                    kind: PieceKind::Normal,
                };
                while let Some((f, v)) = r.next_field()? {
                    match (f, &v) {
                        (1, _) => p.piece = proto_str(&v, &r, "piece")?,
                        (2, ProtoValue::Fixed32(bits)) => p.score = f32::from_bits(*bits),
                        (3, _) => {
                            p.kind = match proto_int(&v, &r, "type")? {
                                1 => PieceKind::Normal,
                                2 => PieceKind::Unknown,
                                3 => PieceKind::Control,
                                4 => PieceKind::UserDefined,
                                5 => PieceKind::Unused,
                                6 => PieceKind::Byte,
                                t => return Err(r.err(format!("unknown piece type {t}"))),
                            }
                        }
                        (2, _) => return Err(r.err("score: expected a fixed32 float")),
                        _ => {}
                    }
                }
                if p.piece.is_empty() {
                    return Err(r.err(format!("piece {} is empty", m.pieces.len())));
                }
                m.pieces.push(p);
            }
            2 => {
                while let Some((f, v)) = r.next_field()? {
                    match f {
                        3 => m.model_type = proto_int(&v, &r, "model_type")? as u64,
                        24 => {
                            m.treat_whitespace_as_suffix =
                                proto_bool(&v, &r, "treat_whitespace_as_suffix")?
                        }
                        35 => m.byte_fallback = proto_bool(&v, &r, "byte_fallback")?,
                        40 => m.unk_id = proto_int(&v, &r, "unk_id")?,
                        42 => m.eos_id = proto_int(&v, &r, "eos_id")?,
                        43 => m.pad_id = proto_int(&v, &r, "pad_id")?,
                        _ => {}
                    }
                }
            }
            3 => {
                while let Some((f, v)) = r.next_field()? {
                    match f {
                        1 => m.normalizer_name = proto_str(&v, &r, "name")?,
                        2 => match v {
                            ProtoValue::Bytes(b, _) => m.charsmap = b.to_vec(),
                            _ => return Err(r.err("precompiled_charsmap: expected bytes")),
                        },
                        3 => m.add_dummy_prefix = proto_bool(&v, &r, "add_dummy_prefix")?,
                        4 => {
                            m.remove_extra_whitespaces =
                                proto_bool(&v, &r, "remove_extra_whitespaces")?
                        }
                        5 => m.escape_whitespaces = proto_bool(&v, &r, "escape_whitespaces")?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if m.pieces.is_empty() {
        return Err(invalid(path, "the model has no pieces"));
    }
    Ok(m)
}

// -------------------------------------------------------------------------------------------
// SentencePiece's precompiled character map: a darts-clone double-array trie over UTF-8 byte
// strings whose values are offsets into a blob of NUL-terminated replacement strings.

#[derive(Clone)]
struct CharsMap {
    units: Vec<u32>,
    normalized: String,
}

impl CharsMap {
    /// `<trie size: u32 LE><trie units: u32 LE…><replacements>`.
    fn parse(blob: &[u8], path: &Path) -> Result<Self> {
        let bad = |what: &str| invalid(path, format!("precompiled_charsmap: {what}"));
        if blob.len() < 4 {
            return Err(bad("shorter than its header"));
        }
        let size = u32::from_le_bytes(blob[..4].try_into().expect("4")) as usize;
        if !size.is_multiple_of(4) || 4 + size > blob.len() {
            return Err(bad("trie size does not fit the blob"));
        }
        let units = blob[4..4 + size]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
            .collect();
        let normalized = String::from_utf8(blob[4 + size..].to_vec())
            .map_err(|_| bad("replacement strings are not UTF-8"))?;
        Ok(Self { units, normalized })
    }

    /// Every key that is a prefix of `key`, shortest first: (length, replacement).
    fn prefixes<'s>(&'s self, key: &[u8]) -> Vec<(usize, &'s str)> {
        let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
        let has_leaf = |u: u32| (u >> 8) & 1 == 1;
        let label = |u: u32| u & ((1 << 31) | 0xff);
        let mut found = Vec::new();
        let Some(&root) = self.units.first() else {
            return found;
        };
        let mut node = offset(root);
        for (i, &c) in key.iter().enumerate() {
            node ^= c as usize;
            let Some(&unit) = self.units.get(node) else {
                break;
            };
            if label(unit) != u32::from(c) {
                break;
            }
            node ^= offset(unit);
            if has_leaf(unit) {
                let Some(&leaf) = self.units.get(node) else {
                    break;
                };
                let at = (leaf & 0x7fff_ffff) as usize;
                if let Some(rest) = self.normalized.get(at..) {
                    let end = rest.find('\0').unwrap_or(rest.len());
                    found.push((i + 1, &rest[..end]));
                }
            }
        }
        found
    }

    /// sentencepiece's `NormalizePrefix`: the longest rule at the start of `s`, else the first
    /// character unchanged. Returns (replacement, bytes consumed).
    fn spm_prefix<'s>(&'s self, s: &'s str) -> (&'s str, usize) {
        match self.prefixes(s.as_bytes()).last() {
            Some(&(len, rep)) => (rep, len),
            None => {
                let n = s.chars().next().map_or(0, char::len_utf8);
                (&s[..n], n)
            }
        }
    }

    /// The `tokenizers` `Precompiled` normalizer: per extended grapheme cluster shorter than 6
    /// bytes, the *first* (shortest) rule matching its start replaces the whole cluster; else
    /// each character by its own rule.
    fn hf_normalize(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for g in s.graphemes(true) {
            if g.len() < 6 {
                if let Some(&(_, rep)) = self.prefixes(g.as_bytes()).first() {
                    out.push_str(rep);
                    continue;
                }
            }
            for (i, c) in g.char_indices() {
                let part = &g[i..i + c.len_utf8()];
                match self.prefixes(part.as_bytes()).first() {
                    Some(&(_, rep)) => out.push_str(rep),
                    None => out.push(c),
                }
            }
        }
        out
    }
}

/// sentencepiece's `nmt_nfkc` rule without its table: the NMT whitespace/control rules, U+FF5E
/// kept, NFKC (`unicode-normalization`) on everything else, applied to each maximal run of
/// other characters.
fn nmt_nfkc_rules(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        out.extend(run.nfkc());
        run.clear();
    };
    for c in s.chars() {
        match c {
            '\t' | '\n' | '\u{0C}' | '\r' | '\u{1680}' | '\u{200B}' | '\u{200C}' | '\u{200E}'
            | '\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{2581}' | '\u{FEFF}' | '\u{FFFD}' => {
                flush(&mut run, &mut out);
                out.push(' ');
            }
            '\u{01}'..='\u{08}'
            | '\u{0B}'
            | '\u{0E}'..='\u{1F}'
            | '\u{7F}'
            | '\u{8F}'
            | '\u{9F}' => {
                flush(&mut run, &mut out);
            }
            '\u{FF5E}' => {
                flush(&mut run, &mut out);
                out.push(c);
            }
            _ => run.push(c),
        }
    }
    flush(&mut run, &mut out);
    out
}

// -------------------------------------------------------------------------------------------
// T5

/// Which implementation [`T5Tokenizer`] reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum T5Flavor {
    /// transformers' T5 tokenizer on the `tokenizers` library (what diffusers' FLUX pipeline runs).
    #[default]
    Tokenizers,
    /// The `sentencepiece` library itself.
    SentencePiece,
}

#[derive(Clone)]
enum Normalizer {
    Identity,
    CharsMap(CharsMap),
    /// [`nmt_nfkc_rules`].
    NmtNfkcRules,
    Nfkc,
    Nfc,
    Lowercase,
    Strip {
        left: bool,
        right: bool,
    },
    Replace {
        pattern: Regex,
        content: String,
    },
    Sequence(Vec<Normalizer>),
}

impl Normalizer {
    /// As the `tokenizers` normalizers do.
    fn hf(&self, s: &str) -> String {
        match self {
            Self::Identity => s.to_string(),
            Self::CharsMap(m) => m.hf_normalize(s),
            Self::NmtNfkcRules => nmt_nfkc_rules(s),
            Self::Nfkc => s.nfkc().collect(),
            Self::Nfc => s.nfc().collect(),
            Self::Lowercase => s.chars().flat_map(char::to_lowercase).collect(),
            Self::Strip { left, right } => {
                let mut t = s;
                if *left {
                    t = t.trim_start();
                }
                if *right {
                    t = t.trim_end();
                }
                t.to_string()
            }
            Self::Replace { pattern, content } => pattern
                .replace_all(s, regex::NoExpand(content))
                .into_owned(),
            Self::Sequence(v) => v.iter().fold(s.to_string(), |acc, n| n.hf(&acc)),
        }
    }
}

#[derive(Clone)]
struct VocabEntry {
    id: u32,
    score: f64,
    kind: PieceKind,
}

/// The T5 v1.1 SentencePiece unigram tokenizer (FLUX's T5-XXL; pad 0, eos `</s>` 1, unk 2).
///
/// Pipeline of [`T5Flavor::Tokenizers`] (transformers' `T5Tokenizer`/`T5TokenizerFast`):
/// special tokens (`<pad>`, `</s>`, `<unk>`, `<extra_id_0..99>` – from spiece.model the extra
/// ids are added after the pieces as transformers does, `<extra_id_0>` last) are cut out of the
/// raw text; each remaining segment is normalized with the model's precompiled charsmap the way
/// `tokenizers`' `Precompiled` does it (per grapheme cluster < 6 bytes: the shortest rule
/// matching its start replaces the whole cluster), split on Unicode whitespace, each word gets
/// `▁` in front and is split before every `▁`, and every piece is segmented by Viterbi over the
/// vocabulary (f64 scores, all vocabulary entries, unknown characters scored `min - 10` and runs
/// of them fused into one `<unk>`).
///
/// [`T5Flavor::SentencePiece`] (the `sentencepiece` library): no special tokens; the charsmap
/// applied by longest match at each position; whitespace runs collapsed, leading/trailing
/// whitespace removed, a dummy `▁` prefix, spaces as `▁` (per `remove_extra_whitespaces`,
/// `add_dummy_prefix` in the model); one Viterbi over the whole string (f32 scores, only normal
/// pieces). Differences between the two references (both reproduced here), e.g.:
/// - `"</s> <pad>"` is `[1, 0]` with transformers and plain text with sentencepiece;
/// - U+0085 (NEL) is whitespace for `tokenizers`' split, an unknown character for sentencepiece;
/// - `"a\u{300}\u{301}"` (one grapheme) is `à` for `tokenizers` (the U+0301 is dropped, see
///   above) and `à` + `<unk>` for sentencepiece.
///
/// Normalization: by default the model's own precompiled charsmap (the `nmt_nfkc` table in T5's
/// `spiece.model`, base64 in `tokenizer.json`) is decoded and applied exactly as the reference
/// does. [`T5Tokenizer::with_rule_normalizer`] computes `nmt_nfkc` instead of looking it up: the
/// NMT rules (TAB, LF, FF, CR, U+1680, U+200B, U+200C, U+200E, U+200F, U+2028, U+2029, U+2581,
/// U+FEFF, U+FFFD → space; U+0001–U+0008, U+000B, U+000E–U+001F, U+007F, U+008F, U+009F removed;
/// U+FF5E kept) and Unicode NFKC (`unicode-normalization`, Unicode 16) on each run of other
/// characters. What differs from the table (all checked by the tests):
/// - The table is a longest-match rewrite of single code points and of the sequences that NFKC
///   composes; outside those it neither reorders combining marks nor composes across an
///   expansion, NFKC does both: `"q\u{307}\u{323}"` stays with the table, becomes
///   `"q\u{323}\u{307}"` with rules; `"ﬁ\u{301}"` → `"fi\u{301}"` vs `"fí"`; `"ẛ\u{323}"` →
///   `"ṡ\u{323}"` vs `"ṩ"`.
/// - The table knows the Unicode version it was built with (ICU of sentencepiece's builder):
///   69 code points differ from Unicode 16 NFKC in the test model's table, e.g. U+061C (Arabic
///   letter mark) is a space in the table and kept by rules, U+209D (subscript w, Unicode 15)
///   is kept by the table and `w` with rules; likewise U+0558, U+058B/C, U+107BB–U+107BF,
///   U+1B123–U+1B126, U+1D6A6, U+1DF95–U+1DFF6.
/// - The `tokenizers` grapheme rule above is a property of the table lookup, so with rules
///   `"a\u{300}\u{301}"` gives `"à\u{301}"` where transformers gives `"à"`, and
///   `"a\u{308}\u{304}"` gives `"ǟ"` where transformers gives `"ä"`.
///
/// A model whose normalizer is named `identity` (or any other name without a charsmap) is not
/// normalized, as in sentencepiece. BPE-type SentencePiece models, byte fallback, user-defined
/// symbols and `treat_whitespace_as_suffix` are rejected (T5 uses none of them).
#[derive(Clone)]
pub struct T5Tokenizer {
    vocab: HashMap<String, VocabEntry>,
    vocab_size: usize,
    max_piece_len: usize,
    unk: u32,
    eos: u32,
    pad: u32,
    /// Over all vocabulary entries (tokenizers).
    min_score_all: f64,
    /// Over normal pieces (sentencepiece); max starts at FLT_MIN as there.
    min_score_normal: f32,
    normalizer: Normalizer,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    whitespace_split: bool,
    metaspace_prepend: bool,
    metaspace_split: bool,
    replacement: char,
    specials: Vec<SpecialToken>,
    flavor: T5Flavor,
}

impl fmt::Debug for T5Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("T5Tokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("unk", &self.unk)
            .field("eos", &self.eos)
            .field("pad", &self.pad)
            .field("specials", &self.specials.len())
            .field("flavor", &self.flavor)
            .finish()
    }
}

/// T5's sentinel tokens, as transformers adds them (`extra_ids=100`).
const T5_EXTRA_IDS: u32 = 100;

impl T5Tokenizer {
    /// A repo's `tokenizer_2/` folder: `tokenizer.json` when present (what transformers loads),
    /// else `spiece.model`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let json = dir.join("tokenizer.json");
        if json.exists() {
            Self::from_tokenizer_json(json)
        } else {
            Self::from_spiece_model(dir.join("spiece.model"))
        }
    }

    /// A SentencePiece `spiece.model` (ModelProto).
    pub fn from_spiece_model(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let m = parse_spm_model(&read_bytes(path)?, path)?;
        if m.model_type != 1 {
            return Err(unsupported(
                path,
                format!("model_type {} (only UNIGRAM = 1)", m.model_type),
            ));
        }
        if m.byte_fallback {
            return Err(unsupported(path, "byte_fallback"));
        }
        if m.treat_whitespace_as_suffix {
            return Err(unsupported(path, "treat_whitespace_as_suffix"));
        }
        if !m.escape_whitespaces {
            return Err(unsupported(path, "escape_whitespaces = false"));
        }
        if let Some(p) = m.pieces.iter().find(|p| p.kind == PieceKind::UserDefined) {
            return Err(unsupported(
                path,
                format!("user-defined symbol {:?}", p.piece),
            ));
        }
        let normalizer = if !m.charsmap.is_empty() {
            Normalizer::CharsMap(CharsMap::parse(&m.charsmap, path)?)
        } else {
            Normalizer::Identity
        };
        let mut vocab = HashMap::with_capacity(m.pieces.len() + T5_EXTRA_IDS as usize);
        let mut specials = Vec::new();
        for (id, p) in m.pieces.iter().enumerate() {
            let entry = VocabEntry {
                id: id as u32,
                score: f64::from(p.score),
                kind: p.kind,
            };
            if vocab.insert(p.piece.clone(), entry).is_some() {
                return Err(invalid(
                    path,
                    format!("piece {:?} is defined twice", p.piece),
                ));
            }
            if matches!(p.kind, PieceKind::Control | PieceKind::Unknown) {
                specials.push(SpecialToken {
                    content: p.piece.clone(),
                    id: id as u32,
                    lstrip: false,
                    rstrip: false,
                });
            }
        }
        let n = m.pieces.len() as u32;
        for i in 0..T5_EXTRA_IDS {
            let content = format!("<extra_id_{i}>");
            let id = n + T5_EXTRA_IDS - 1 - i;
            vocab.entry(content.clone()).or_insert(VocabEntry {
                id,
                score: 0.0,
                kind: PieceKind::Control,
            });
            specials.push(SpecialToken {
                content,
                id,
                lstrip: false,
                rstrip: false,
            });
        }
        let piece_id = |name: &str| {
            m.pieces
                .iter()
                .position(|p| p.piece == name)
                .map(|i| i as u32)
        };
        let resolve = |id: i64, name: &str| -> Result<u32> {
            if id >= 0 && (id as usize) < m.pieces.len() {
                Ok(id as u32)
            } else {
                piece_id(name).ok_or_else(|| invalid(path, format!("no {name} piece")))
            }
        };
        let unk = match m.pieces.iter().position(|p| p.kind == PieceKind::Unknown) {
            Some(i) => i as u32,
            None => resolve(m.unk_id, "<unk>")?,
        };
        let eos = resolve(m.eos_id, "</s>")?;
        let pad = resolve(m.pad_id, "<pad>")?;
        let normal = m.pieces.iter().filter(|p| p.kind == PieceKind::Normal);
        let min_score_normal = normal.map(|p| p.score).fold(f32::MAX, f32::min);
        Ok(Self::assemble(
            vocab,
            m.pieces.len() + T5_EXTRA_IDS as usize,
            unk,
            eos,
            pad,
            min_score_normal,
            normalizer,
            (m.add_dummy_prefix, m.remove_extra_whitespaces),
            (true, true, true, '▁'),
            specials,
        ))
    }

    /// A `tokenizers` `tokenizer.json` with a `Unigram` model.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let json = read_json(path)?;
        let model = json
            .get("model")
            .ok_or_else(|| invalid(path, "no \"model\""))?;
        let kind = model.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "Unigram" {
            return Err(unsupported(
                path,
                format!("model type {kind:?} (only Unigram)"),
            ));
        }
        if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
            return Err(unsupported(path, "byte_fallback"));
        }
        let list = model
            .get("vocab")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(path, "model.vocab: expected [[piece, score], …]"))?;
        let mut vocab = HashMap::with_capacity(list.len());
        let mut min_normal = f32::MAX;
        for (id, e) in list.iter().enumerate() {
            let bad = || invalid(path, format!("model.vocab[{id}]: expected [piece, score]"));
            let arr = e.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
            let piece = arr[0].as_str().ok_or_else(bad)?;
            let score = arr[1].as_f64().ok_or_else(bad)?;
            min_normal = min_normal.min(score as f32);
            vocab.insert(
                piece.to_string(),
                VocabEntry {
                    id: id as u32,
                    score,
                    kind: PieceKind::Normal,
                },
            );
        }
        let unk = model
            .get("unk_id")
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid(path, "model.unk_id: missing"))? as u32;
        let mut specials = Vec::new();
        for t in json
            .get("added_tokens")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let content = t.get("content").and_then(Value::as_str);
            let id = t.get("id").and_then(Value::as_u64);
            let (Some(content), Some(id)) = (content, id) else {
                return Err(invalid(path, "added_tokens: entry without content/id"));
            };
            let flag = |k: &str| t.get(k).and_then(Value::as_bool).unwrap_or(false);
            specials.push(SpecialToken {
                content: content.to_string(),
                id: id as u32,
                lstrip: flag("lstrip"),
                rstrip: flag("rstrip"),
            });
            // Control pieces are not normal pieces for the sentencepiece flavor.
            if let Some(e) = vocab.get_mut(content) {
                e.kind = PieceKind::Control;
            }
        }
        let normalizer = match json.get("normalizer") {
            None | Some(Value::Null) => Normalizer::Identity,
            Some(n) => parse_hf_normalizer(n, path)?,
        };
        let mut pre = (false, true, true, '▁');
        let mut seen_metaspace = false;
        match json.get("pre_tokenizer") {
            None | Some(Value::Null) => {}
            Some(p) => parse_hf_pretokenizer(p, path, &mut pre, &mut seen_metaspace)?,
        }
        if !seen_metaspace {
            return Err(unsupported(path, "a pre_tokenizer without Metaspace"));
        }
        let id_of = |name: &str| -> Result<u32> {
            specials
                .iter()
                .find(|s| s.content == name)
                .map(|s| s.id)
                .or_else(|| vocab.get(name).map(|e| e.id))
                .ok_or_else(|| invalid(path, format!("no {name} token")))
        };
        let eos = id_of("</s>")?;
        let pad = id_of("<pad>")?;
        let size = specials
            .iter()
            .map(|s| s.id as usize + 1)
            .chain([list.len()])
            .max()
            .unwrap_or(0);
        for s in &specials {
            vocab.entry(s.content.clone()).or_insert(VocabEntry {
                id: s.id,
                score: 0.0,
                kind: PieceKind::Control,
            });
        }
        Ok(Self::assemble(
            vocab,
            size,
            unk,
            eos,
            pad,
            min_normal,
            normalizer,
            (true, true),
            pre,
            specials,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        vocab: HashMap<String, VocabEntry>,
        vocab_size: usize,
        unk: u32,
        eos: u32,
        pad: u32,
        min_score_normal: f32,
        normalizer: Normalizer,
        (add_dummy_prefix, remove_extra_whitespaces): (bool, bool),
        (whitespace_split, metaspace_prepend, metaspace_split, replacement): (
            bool,
            bool,
            bool,
            char,
        ),
        specials: Vec<SpecialToken>,
    ) -> Self {
        let max_piece_len = vocab.keys().map(String::len).max().unwrap_or(1);
        let min_score_all = vocab
            .values()
            .map(|e| e.score)
            .fold(f64::INFINITY, f64::min);
        Self {
            vocab,
            vocab_size,
            max_piece_len,
            unk,
            eos,
            pad,
            min_score_all,
            min_score_normal,
            normalizer,
            add_dummy_prefix,
            remove_extra_whitespaces,
            whitespace_split,
            metaspace_prepend,
            metaspace_split,
            replacement,
            specials,
            flavor: T5Flavor::default(),
        }
    }

    /// Reproduce another implementation (default: [`T5Flavor::Tokenizers`]).
    pub fn with_flavor(mut self, flavor: T5Flavor) -> Self {
        self.flavor = flavor;
        self
    }

    /// Compute `nmt_nfkc` (NMT rules + NFKC) instead of using the model's charsmap; see the type
    /// docs for what differs.
    pub fn with_rule_normalizer(mut self) -> Self {
        self.normalizer = Normalizer::NmtNfkcRules;
        self
    }

    pub fn flavor(&self) -> T5Flavor {
        self.flavor
    }

    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    pub fn unk_id(&self) -> u32 {
        self.unk
    }

    /// Pieces plus added tokens (32100 for T5 v1.1; the XXL embedding has 32128 rows).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).map(|e| e.id)
    }

    /// The ids of `text` without `</s>` (HF `add_special_tokens=False`), never truncated.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        match self.flavor {
            T5Flavor::SentencePiece => {
                let normalized = self.spm_normalize(text);
                self.viterbi(&normalized, true, &mut out);
            }
            T5Flavor::Tokenizers => {
                for seg in split_specials(text, &self.specials) {
                    match seg {
                        Segment::Special(id) => out.push(id),
                        Segment::Text(t) => self.encode_hf_segment(t, &mut out),
                    }
                }
            }
        }
        out
    }

    /// `tokens[..max_len - 1] + </s> + <pad>…` (FLUX.1-schnell: 256, dev: 512); HF
    /// `padding="max_length", max_length=max_len, truncation=True`. A `max_len` of 0 is taken
    /// as 1.
    pub fn encode_padded(&self, text: &str, max_len: usize) -> Vec<u32> {
        self.encode_padded_report(text, max_len).ids
    }

    /// [`T5Tokenizer::encode_padded`] that also says how many tokens were cut.
    pub fn encode_padded_report(&self, text: &str, max_len: usize) -> PaddedIds {
        pad_ids(None, &self.encode(text), self.eos, self.pad, max_len)
    }

    fn encode_hf_segment(&self, text: &str, out: &mut Vec<u32>) {
        let normalized = self.normalizer.hf(text);
        let words: Vec<&str> = if self.whitespace_split {
            normalized
                .split(char::is_whitespace)
                .filter(|w| !w.is_empty())
                .collect()
        } else {
            vec![normalized.as_str()]
        };
        let rep = self.replacement;
        for word in words {
            let mut w: String = word
                .chars()
                .map(|c| if c == ' ' { rep } else { c })
                .collect();
            if self.metaspace_prepend && !w.starts_with(rep) {
                w.insert(0, rep);
            }
            if !self.metaspace_split {
                self.viterbi(&w, false, out);
                continue;
            }
            // Split before every replacement character (MergedWithNext).
            let mut start = 0;
            for (i, _) in w.match_indices(rep) {
                if i > start {
                    self.viterbi(&w[start..i], false, out);
                }
                start = i;
            }
            if start < w.len() {
                self.viterbi(&w[start..], false, out);
            }
        }
    }

    /// sentencepiece's `Normalizer::Normalize` (with `escape_whitespaces`).
    fn spm_normalize(&self, text: &str) -> String {
        // The normalized chunks, as NormalizePrefix yields them.
        let mut chunks: Vec<std::borrow::Cow<str>> = Vec::new();
        match &self.normalizer {
            Normalizer::CharsMap(m) => {
                let mut rest = text;
                while !rest.is_empty() {
                    let (rep, used) = m.spm_prefix(rest);
                    chunks.push(rep.into());
                    rest = &rest[used..];
                }
            }
            other => {
                let normalized = other.hf(text);
                chunks.extend(normalized.chars().map(|c| c.to_string().into()));
            }
        }
        let mut chunks = chunks.into_iter().peekable();
        if self.remove_extra_whitespaces {
            while chunks.peek().is_some_and(|c| c == " ") {
                chunks.next();
            }
        }
        let mut out = String::new();
        if chunks.peek().is_none() {
            return out;
        }
        if self.add_dummy_prefix {
            out.push('▁');
        }
        let mut prev_space = self.remove_extra_whitespaces;
        for chunk in chunks {
            let mut sp: &str = &chunk;
            if prev_space {
                sp = sp.trim_start_matches(' ');
            }
            if sp.is_empty() {
                continue;
            }
            for c in sp.chars() {
                out.push(if c == ' ' { '▁' } else { c });
            }
            prev_space = self.remove_extra_whitespaces && sp.ends_with(' ');
        }
        if self.remove_extra_whitespaces {
            while out.ends_with('▁') {
                out.pop();
            }
        }
        out
    }

    /// Best segmentation of `s` (sentencepiece's `EncodeOptimized`, which `tokenizers` copies):
    /// for each end position the best path, the first candidate kept on ties; single characters
    /// without a piece are `<unk>` scored `min_score - 10`; runs of `<unk>` fused.
    fn viterbi(&self, s: &str, spm: bool, out: &mut Vec<u32>) {
        #[derive(Clone, Copy)]
        struct Best {
            score: f64,
            start: usize,
            id: u32,
        }
        const NONE: usize = usize::MAX;
        if s.is_empty() {
            return;
        }
        let unk_score = if spm {
            f64::from(self.min_score_normal - 10.0)
        } else {
            self.min_score_all - 10.0
        };
        let mut best = vec![
            Best {
                score: 0.0,
                start: NONE,
                id: 0,
            };
            s.len() + 1
        ];
        let mut pos = 0;
        while pos < s.len() {
            let here = best[pos].score;
            let char_len = s[pos..].chars().next().map_or(1, char::len_utf8);
            let mut has_single = false;
            let consider = |end: usize, piece_score: f64, id: u32, best: &mut Vec<Best>| {
                let score = if spm {
                    f64::from(here as f32 + piece_score as f32)
                } else {
                    here + piece_score
                };
                let target = &mut best[end];
                if target.start == NONE || score > target.score {
                    *target = Best {
                        score,
                        start: pos,
                        id,
                    };
                }
            };
            let mut end = pos;
            for c in s[pos..].chars() {
                end += c.len_utf8();
                if end - pos > self.max_piece_len {
                    break;
                }
                let Some(e) = self.vocab.get(&s[pos..end]) else {
                    continue;
                };
                if spm && e.kind != PieceKind::Normal {
                    continue;
                }
                consider(end, e.score, e.id, &mut best);
                if end - pos == char_len {
                    has_single = true;
                }
            }
            if !has_single {
                consider(pos + char_len, unk_score, self.unk, &mut best);
            }
            pos += char_len;
        }
        let mut ids = Vec::new();
        let mut end = s.len();
        while end > 0 {
            let b = best[end];
            ids.push(b.id);
            end = b.start;
        }
        ids.reverse();
        let mut prev_unk = false;
        for id in ids {
            let is_unk = id == self.unk;
            if !(is_unk && prev_unk) {
                out.push(id);
            }
            prev_unk = is_unk;
        }
    }
}

fn parse_hf_normalizer(n: &Value, path: &Path) -> Result<Normalizer> {
    let kind = n.get("type").and_then(Value::as_str).unwrap_or("");
    Ok(match kind {
        "Precompiled" => {
            let b64 = n
                .get("precompiled_charsmap")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(path, "Precompiled: no precompiled_charsmap"))?;
            let blob = base64_decode(b64)
                .ok_or_else(|| invalid(path, "Precompiled: precompiled_charsmap is not base64"))?;
            if blob.is_empty() {
                Normalizer::Identity
            } else {
                Normalizer::CharsMap(CharsMap::parse(&blob, path)?)
            }
        }
        "NFKC" => Normalizer::Nfkc,
        "NFC" => Normalizer::Nfc,
        "Lowercase" => Normalizer::Lowercase,
        "Strip" => Normalizer::Strip {
            left: n.get("strip_left").and_then(Value::as_bool).unwrap_or(true),
            right: n
                .get("strip_right")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        },
        "Replace" => {
            let content = n
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let pat = n.get("pattern");
            let pattern = if let Some(s) = pat.and_then(|p| p.get("String")).and_then(Value::as_str)
            {
                regex::escape(s)
            } else if let Some(r) = pat.and_then(|p| p.get("Regex")).and_then(Value::as_str) {
                r.to_string()
            } else {
                return Err(invalid(
                    path,
                    "Replace: pattern is neither String nor Regex",
                ));
            };
            let pattern = Regex::new(&pattern)
                .map_err(|e| unsupported(path, format!("Replace pattern {pattern:?}: {e}")))?;
            Normalizer::Replace { pattern, content }
        }
        "Sequence" => Normalizer::Sequence(
            n.get("normalizers")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(path, "Sequence: no normalizers"))?
                .iter()
                .map(|x| parse_hf_normalizer(x, path))
                .collect::<Result<_>>()?,
        ),
        other => return Err(unsupported(path, format!("normalizer {other:?}"))),
    })
}

/// (whitespace_split, prepend, split, replacement).
fn parse_hf_pretokenizer(
    p: &Value,
    path: &Path,
    pre: &mut (bool, bool, bool, char),
    seen_metaspace: &mut bool,
) -> Result<()> {
    match p.get("type").and_then(Value::as_str).unwrap_or("") {
        "Sequence" => {
            let list = p
                .get("pretokenizers")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(path, "pre_tokenizer Sequence: no pretokenizers"))?;
            if *seen_metaspace {
                return Err(unsupported(path, "nested pre_tokenizers after Metaspace"));
            }
            for x in list {
                parse_hf_pretokenizer(x, path, pre, seen_metaspace)?;
            }
        }
        "WhitespaceSplit" if !*seen_metaspace => pre.0 = true,
        "Metaspace" if !*seen_metaspace => {
            *seen_metaspace = true;
            if let Some(r) = p.get("replacement").and_then(Value::as_str) {
                let mut chars = r.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => pre.3 = c,
                    _ => return Err(invalid(path, "Metaspace: replacement is not one character")),
                }
            }
            let legacy = p.get("add_prefix_space").and_then(Value::as_bool);
            pre.1 = match p.get("prepend_scheme").and_then(Value::as_str) {
                Some("always") => legacy != Some(false),
                Some("never") => false,
                Some(other) => {
                    return Err(unsupported(
                        path,
                        format!("Metaspace prepend_scheme {other:?}"),
                    ))
                }
                None => legacy.unwrap_or(true),
            };
            pre.2 = p.get("split").and_then(Value::as_bool).unwrap_or(true);
        }
        other => return Err(unsupported(path, format!("pre_tokenizer {other:?} here"))),
    }
    Ok(())
}

/// Standard base64 (with or without padding); None on a bad character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in s.as_bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\n' | b'\r' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/diffusion/tokenizer")
    }

    fn expected() -> Value {
        let path = fixtures().join("expected.json");
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn ids(v: &Value) -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    }

    fn gunzip_to(src: &Path, dst: &Path) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(src).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        std::fs::write(dst, out).unwrap();
    }

    /// A diffusers-style `tokenizer/` folder: the HF-written vocab.json/merges.txt plus the
    /// config files of `variant` (sd15: pad eos, sd2: pad "!").
    fn clip_repo_dir(variant: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let clip = fixtures().join("clip");
        gunzip_to(&clip.join("vocab.json.gz"), &dir.path().join("vocab.json"));
        gunzip_to(&clip.join("merges.txt.gz"), &dir.path().join("merges.txt"));
        for f in ["special_tokens_map.json", "tokenizer_config.json"] {
            std::fs::copy(clip.join(variant).join(f), dir.path().join(f)).unwrap();
        }
        dir
    }

    fn short(text: &str) -> String {
        let s: String = text.chars().take(50).collect();
        format!("{s:?}")
    }

    /// Every CLIP case: `field` = ids without specials, `field_padded` = the 77-long input.
    fn check_clip(tok: &ClipTokenizer, field: &str) -> usize {
        let exp = expected();
        let max_len = exp["clip"]["max_length"].as_u64().unwrap() as usize;
        let cases = exp["clip"]["cases"].as_array().unwrap();
        let mut bad = Vec::new();
        for c in cases {
            let text = c["text"].as_str().unwrap();
            let want = ids(&c[field]);
            let got = tok.encode(text);
            if got != want {
                bad.push(format!(
                    "{} {field}: got {got:?}, want {want:?}",
                    short(text)
                ));
            }
            let want = ids(&c[format!("{field}_padded")]);
            let got = tok.encode_padded(text, max_len, Pad::Configured);
            if got != want {
                bad.push(format!(
                    "{} {field}_padded: got {got:?}, want {want:?}",
                    short(text)
                ));
            }
        }
        assert!(
            bad.is_empty(),
            "{} mismatches:\n{}",
            bad.len(),
            bad.join("\n")
        );
        cases.len()
    }

    #[test]
    fn clip_openai_merges_give_the_hf_vocabulary() {
        let openai = ClipTokenizer::from_openai_bpe(
            fixtures().join("clip/bpe_simple_vocab_16e6.head.txt.gz"),
        )
        .unwrap();
        let dir = clip_repo_dir("sd15");
        let hf = ClipTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(openai.vocab_size(), 49408);
        assert_eq!(hf.vocab_size(), 49408);
        assert_eq!(openai.merges.len(), CLIP_MERGES);
        assert!(
            openai.vocab == hf.vocab,
            "vocab.json differs from the merges-built vocabulary"
        );
        assert!(
            openai.merges == hf.merges,
            "merges.txt differs from OpenAI's merges"
        );
        assert_eq!(
            (openai.bos_id(), openai.eos_id(), openai.pad_id()),
            (49406, 49407, 49407)
        );
        assert_eq!(
            (hf.bos_id(), hf.eos_id(), hf.pad_id()),
            (49406, 49407, 49407)
        );
        assert_eq!(hf.token_to_id("a</w>"), Some(320));
        assert_eq!(
            hf.encode_padded("a photo of a cat", 9, Pad::Eos),
            [49406, 320, 1125, 539, 320, 2368, 49407, 49407, 49407]
        );
    }

    #[test]
    fn clip_matches_transformers_4_slow_tokenizer() {
        let sd15 = ClipTokenizer::from_dir(clip_repo_dir("sd15").path()).unwrap();
        assert_eq!(sd15.flavor(), ClipFlavor::TransformersSlow);
        assert!(check_clip(&sd15, "slow") >= 40);
        let sd2 = ClipTokenizer::from_dir(clip_repo_dir("sd2").path()).unwrap();
        assert_eq!(sd2.pad_id(), 0);
        check_clip(&sd2, "slow_sd2");
        // Older repos: only special_tokens_map.json names the pad token "!" (no
        // added_tokens_decoder); it must still be cut out of prompts.
        let old = clip_repo_dir("sd2");
        std::fs::remove_file(old.path().join("tokenizer_config.json")).unwrap();
        check_clip(&ClipTokenizer::from_dir(old.path()).unwrap(), "slow_sd2");
        // The OpenAI merges file gives the same ids.
        let openai = ClipTokenizer::from_openai_bpe(
            fixtures().join("clip/bpe_simple_vocab_16e6.head.txt.gz"),
        )
        .unwrap();
        check_clip(&openai, "slow");
        check_clip(&openai.with_pad_token("!").unwrap(), "slow_sd2");
    }

    #[test]
    fn clip_matches_transformers_5_tokenizers() {
        let sd15 = ClipTokenizer::from_dir(clip_repo_dir("sd15").path())
            .unwrap()
            .with_flavor(ClipFlavor::Tokenizers);
        check_clip(&sd15, "fast");
        let sd2 = ClipTokenizer::from_dir(clip_repo_dir("sd2").path())
            .unwrap()
            .with_flavor(ClipFlavor::Tokenizers);
        check_clip(&sd2, "fast_sd2");
    }

    /// The prompts on which transformers 4 (slow) and 5 (tokenizers) disagree: the cases listed
    /// in the module docs, nothing else.
    #[test]
    fn clip_flavors_differ_where_documented() {
        let exp = expected();
        let differ: Vec<&str> = exp["clip"]["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["slow"] != c["fast"])
            .map(|c| c["text"].as_str().unwrap())
            .collect();
        let documented = [
            "\u{65e5}\u{672c}\u{306e}\u{732b}",
            "\u{4e00}\u{53ea}\u{53ef}\u{7231}\u{7684}\u{732b}\u{5728}\u{82b1}\u{56ed}\u{91cc}",
            "\u{3a3} \u{39f}\u{394}\u{39f}\u{3a3} \u{3c3}\u{3bf}\u{3c6}\u{3cc}\u{3c2} \u{3a3}\u{391}\u{3a3}",
            "family \u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467} emoji with ZWJ",
            "zero\u{200b}width space and soft\u{ad}hyphen",
            "control\u{7}chars\u{0}and\u{fffd}replacement",
            "\u{85} NEL and \u{1c} file sep",
            "<|ENDOFTEXT|> x <|endoftext|>!!",
        ];
        assert_eq!(differ, documented);
    }

    #[test]
    fn clip_truncation_is_reported() {
        let tok = ClipTokenizer::from_dir(clip_repo_dir("sd15").path()).unwrap();
        let exp = expected();
        let mut seen_cut = false;
        for c in exp["clip"]["cases"].as_array().unwrap() {
            let text = c["text"].as_str().unwrap();
            let n = ids(&c["slow"]).len();
            let r = tok.encode_padded_report(text, 77, Pad::Configured);
            assert_eq!(r.ids.len(), 77);
            assert_eq!(r.truncated, n.saturating_sub(75), "{}", short(text));
            assert_eq!(r.len, n.min(75) + 2);
            assert_eq!(r.ids[r.len - 1], tok.eos_id());
            seen_cut |= r.truncated > 0;
        }
        assert!(seen_cut, "the fixture has a prompt longer than 77 tokens");
        let a75 = vec!["a"; 75].join(" ");
        assert_eq!(tok.encode_padded_report(&a75, 77, Pad::Eos).truncated, 0);
        let a76 = vec!["a"; 76].join(" ");
        let r = tok.encode_padded_report(&a76, 77, Pad::Eos);
        assert_eq!((r.truncated, r.len, r.ids[76]), (1, 77, 49407));
        let r = tok.encode_padded_report("a cat", 6, Pad::Id(0));
        assert_eq!(r.ids, [49406, 320, 2368, 49407, 0, 0]);
        assert_eq!(
            tok.encode_padded("", 3, Pad::Configured),
            [49406, 49407, 49407]
        );
    }

    fn t5_check(tok: &T5Tokenizer, field: &str, padded: Option<&str>) -> usize {
        let exp = expected();
        let max_len = exp["t5"]["max_length"].as_u64().unwrap() as usize;
        let cases = exp["t5"]["cases"].as_array().unwrap();
        let mut bad = Vec::new();
        for c in cases {
            let text = c["text"].as_str().unwrap();
            let want = ids(&c[field]);
            let got = tok.encode(text);
            if got != want {
                bad.push(format!(
                    "{} {field}: got {got:?}, want {want:?}",
                    short(text)
                ));
            }
            let want = match padded {
                Some(f) => ids(&c[f]),
                None => pad_ids(None, &want, 1, 0, max_len).ids,
            };
            let got = tok.encode_padded(text, max_len);
            if got != want {
                bad.push(format!(
                    "{} padded: got {got:?}, want {want:?}",
                    short(text)
                ));
            }
        }
        assert!(
            bad.is_empty(),
            "{} mismatches:\n{}",
            bad.len(),
            bad.join("\n")
        );
        cases.len()
    }

    #[test]
    fn t5_spiece_model_fields() {
        let path = fixtures().join("t5/spiece.model");
        let m = parse_spm_model(&std::fs::read(&path).unwrap(), &path).unwrap();
        assert_eq!(m.pieces.len(), 800);
        assert_eq!(m.model_type, 1);
        assert_eq!((m.pad_id, m.eos_id, m.unk_id), (0, 1, 2));
        assert_eq!(m.normalizer_name, "nmt_nfkc");
        assert!(m.add_dummy_prefix && m.remove_extra_whitespaces && m.escape_whitespaces);
        assert!(!m.charsmap.is_empty());
        assert_eq!(m.pieces[1].piece, "</s>");
        assert_eq!(m.pieces[1].kind, PieceKind::Control);
        assert_eq!(m.pieces[2].kind, PieceKind::Unknown);
        assert!(m.pieces[5].score < 0.0);
        let tok = T5Tokenizer::from_spiece_model(&path).unwrap();
        assert_eq!((tok.pad_id(), tok.eos_id(), tok.unk_id()), (0, 1, 2));
        assert_eq!(tok.vocab_size(), 900);
        assert_eq!(tok.token_to_id("<extra_id_0>"), Some(899));
        assert_eq!(tok.token_to_id("<extra_id_99>"), Some(800));
    }

    #[test]
    fn t5_matches_sentencepiece() {
        let tok = T5Tokenizer::from_spiece_model(fixtures().join("t5/spiece.model"))
            .unwrap()
            .with_flavor(T5Flavor::SentencePiece);
        assert!(t5_check(&tok, "spm", None) >= 30);
    }

    #[test]
    fn t5_matches_transformers() {
        let tok = T5Tokenizer::from_spiece_model(fixtures().join("t5/spiece.model")).unwrap();
        assert_eq!(tok.flavor(), T5Flavor::Tokenizers);
        t5_check(&tok, "hf", Some("hf_padded"));
        let dir = tempfile::tempdir().unwrap();
        gunzip_to(
            &fixtures().join("t5/tokenizer.json.gz"),
            &dir.path().join("tokenizer.json"),
        );
        let tok = T5Tokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tok.vocab_size(), 900);
        t5_check(&tok, "hf", Some("hf_padded"));
    }

    /// Equal scores: the first candidate found for an end position stays (`▁ab` = -2 against
    /// `▁a` + `b` = -1 + -1); runs of unknown characters are one `<unk>`. Expected ids from
    /// `tokenizers` 0.23.3 with this vocabulary.
    #[test]
    fn t5_viterbi_keeps_the_first_best_on_ties() {
        let dir = tempfile::tempdir().unwrap();
        let json = r#"{"added_tokens": [], "normalizer": null,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
                {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true}]},
            "model": {"type": "Unigram", "unk_id": 2, "byte_fallback": false, "vocab": [
                ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0], ["\u2581", -3.0], ["\u2581a", -1.0],
                ["b", -1.0], ["\u2581ab", -2.0], ["a", -4.0], ["c", -4.0]]}}"#;
        std::fs::write(dir.path().join("tokenizer.json"), json).unwrap();
        let tok = T5Tokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tok.encode("ab"), [6]);
        assert_eq!(tok.encode("ab ab"), [6, 6]);
        assert_eq!(tok.encode("abc"), [6, 8]);
        assert_eq!(tok.encode("xyz ab"), [3, 2, 6]);
        assert_eq!(tok.encode("a\u{2603}\u{2603}b"), [4, 2, 5]);
    }

    #[test]
    fn t5_truncation_is_reported() {
        let tok = T5Tokenizer::from_spiece_model(fixtures().join("t5/spiece.model")).unwrap();
        let exp = expected();
        let long = exp["t5"]["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| ids(&c["hf"]).len() > 256)
            .expect("a string longer than 256 tokens");
        let n = ids(&long["hf"]).len();
        let r = tok.encode_padded_report(long["text"].as_str().unwrap(), 256);
        assert_eq!((r.ids.len(), r.len, r.truncated), (256, 256, n - 255));
        assert_eq!(r.ids[255], 1);
        let r = tok.encode_padded_report("a photo of a cat", 10);
        assert_eq!(r.ids, [6, 79, 5, 51, 6, 300, 1, 0, 0, 0]);
        assert_eq!((r.len, r.truncated), (7, 0));
    }

    /// The examples of the T5 docs: charsmap (sentencepiece), charsmap (tokenizers), rules.
    #[test]
    fn t5_charsmap_versus_rules_examples() {
        let path = fixtures().join("t5/spiece.model");
        let m = parse_spm_model(&std::fs::read(&path).unwrap(), &path).unwrap();
        let table = CharsMap::parse(&m.charsmap, &path).unwrap();
        let spm = |s: &str| {
            let mut out = String::new();
            let mut rest = s;
            while !rest.is_empty() {
                let (rep, used) = table.spm_prefix(rest);
                out.push_str(rep);
                rest = &rest[used..];
            }
            out
        };
        let cases = [
            // input, sentencepiece, tokenizers, rules
            (
                "A\u{30a} \u{212b}",
                "\u{c5} \u{c5}",
                "\u{c5} \u{c5}",
                "\u{c5} \u{c5}",
            ),
            ("\u{ff21}\u{2460}\u{fb01}", "A1fi", "A1fi", "A1fi"),
            ("\u{ff5e}\t\u{7}x", "\u{ff5e} x", "\u{ff5e} x", "\u{ff5e} x"),
            (
                "a\u{300}\u{301}",
                "\u{e0}\u{301}",
                "\u{e0}",
                "\u{e0}\u{301}",
            ),
            ("a\u{308}\u{304}", "\u{1df}", "\u{e4}", "\u{1df}"),
            (
                "\u{3b1}\u{313}\u{301}\u{345}",
                "\u{1f84}",
                "\u{3b1}\u{313}\u{301}\u{345}",
                "\u{1f84}",
            ),
            (
                "q\u{307}\u{323}",
                "q\u{307}\u{323}",
                "q\u{307}\u{323}",
                "q\u{323}\u{307}",
            ),
            ("\u{fb01}\u{301}", "fi\u{301}", "fi", "f\u{ed}"),
            ("\u{1e9b}\u{323}", "\u{1e61}\u{323}", "\u{1e61}", "\u{1e69}"),
            ("\u{61c}", " ", " ", "\u{61c}"),
            ("\u{209d}", "\u{209d}", "\u{209d}", "w"),
        ];
        for (input, want_spm, want_hf, want_rules) in cases {
            let got = (spm(input), table.hf_normalize(input), nmt_nfkc_rules(input));
            assert_eq!(
                got,
                (
                    want_spm.to_string(),
                    want_hf.to_string(),
                    want_rules.to_string()
                ),
                "{input:?}"
            );
        }
    }

    /// NFKC + NMT rules instead of the charsmap: equal except where documented.
    #[test]
    fn t5_rule_normalizer_differs_only_where_documented() {
        let exp = expected();
        let path = fixtures().join("t5/spiece.model");
        let hf = T5Tokenizer::from_spiece_model(&path)
            .unwrap()
            .with_rule_normalizer();
        let spm = T5Tokenizer::from_spiece_model(&path)
            .unwrap()
            .with_rule_normalizer()
            .with_flavor(T5Flavor::SentencePiece);
        let mut differ = Vec::new();
        for c in exp["t5"]["cases"].as_array().unwrap() {
            let text = c["text"].as_str().unwrap();
            if hf.encode(text) != ids(&c["hf"]) {
                differ.push(format!("hf {text:?}"));
            }
            if spm.encode(text) != ids(&c["spm"]) {
                differ.push(format!("spm {text:?}"));
            }
        }
        // The one fixture string hit by the grapheme rule of `tokenizers` (see the T5 docs).
        assert_eq!(differ, ["hf \"a\\u{300}\\u{301} q\\u{323}\\u{307}\""]);
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Missing file.
        let err = ClipTokenizer::from_dir(d).unwrap_err();
        assert!(matches!(err, TokenizerError::Io { .. }), "{err}");
        assert!(err.to_string().contains("vocab.json"), "{err}");
        // Bad JSON.
        std::fs::write(d.join("vocab.json"), "{\"a\": 1,").unwrap();
        std::fs::write(d.join("merges.txt"), "#version: 0.2\n").unwrap();
        let err = ClipTokenizer::from_dir(d).unwrap_err();
        assert!(matches!(err, TokenizerError::Json { .. }), "{err}");
        assert!(err.to_string().contains("vocab.json: bad JSON"), "{err}");
        // Bad merges line 3 (1-based, the header is line 1).
        let vocab = r#"{"a": 0, "b": 1, "ab": 2, "<|startoftext|>": 3, "<|endoftext|>": 4}"#;
        std::fs::write(d.join("vocab.json"), vocab).unwrap();
        std::fs::write(d.join("merges.txt"), "#version: 0.2\na b\nab\n").unwrap();
        let err = ClipTokenizer::from_dir(d).unwrap_err();
        assert!(
            matches!(err, TokenizerError::MergesLine { line: 3, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("merges.txt: bad merges line 3"),
            "{err}"
        );
        std::fs::write(d.join("merges.txt"), "#version: 0.2\na b\nb c\n").unwrap();
        let err = ClipTokenizer::from_dir(d).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 3: \"c\" is not in the vocabulary"),
            "{err}"
        );
        // A pad token that is not in the vocabulary.
        std::fs::write(d.join("merges.txt"), "#version: 0.2\na b\n").unwrap();
        std::fs::write(d.join("special_tokens_map.json"), r#"{"pad_token": "!"}"#).unwrap();
        let err = ClipTokenizer::from_dir(d).unwrap_err();
        assert!(
            err.to_string()
                .contains("pad_token \"!\" is not in the vocabulary"),
            "{err}"
        );
        // A pad token that is not in the vocabulary, set by hand.
        let tok = ClipTokenizer::from_openai_bpe(
            fixtures().join("clip/bpe_simple_vocab_16e6.head.txt.gz"),
        )
        .unwrap();
        let err = tok.with_pad_token("no such token").unwrap_err();
        assert!(matches!(err, TokenizerError::UnknownToken { .. }), "{err}");
        // Truncated protobuf.
        let model = std::fs::read(fixtures().join("t5/spiece.model")).unwrap();
        let cut = d.join("cut.model");
        std::fs::write(&cut, &model[..model.len() / 2]).unwrap();
        let err = T5Tokenizer::from_spiece_model(&cut).unwrap_err();
        assert!(matches!(err, TokenizerError::Protobuf { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("cut.model: truncated or malformed protobuf"),
            "{err}"
        );
        let err = T5Tokenizer::from_spiece_model(d.join("none.model")).unwrap_err();
        assert!(err.to_string().contains("none.model"), "{err}");
        // Bad tokenizer.json.
        std::fs::write(d.join("tokenizer.json"), r#"{"model": {"type": "BPE"}}"#).unwrap();
        let err = T5Tokenizer::from_dir(d).unwrap_err();
        assert!(err.to_string().contains("model type \"BPE\""), "{err}");
    }

    #[test]
    fn special_tokens_split_leftmost_longest_and_strip() {
        let sp = |c: &str, id, lstrip, rstrip| SpecialToken {
            content: c.to_string(),
            id,
            lstrip,
            rstrip,
        };
        let specials = [
            sp("<a>", 1, false, false),
            sp("<a><b>", 2, false, false),
            sp("!", 3, true, true),
        ];
        let show = |t: &str| -> Vec<String> {
            split_specials(t, &specials)
                .into_iter()
                .map(|s| match s {
                    Segment::Text(t) => format!("{t:?}"),
                    Segment::Special(id) => id.to_string(),
                })
                .collect()
        };
        assert_eq!(
            show("x<a><b>y<a> z"),
            ["\"x\"", "2", "\"y\"", "1", "\" z\""]
        );
        assert_eq!(show("x  !  y!"), ["\"x\"", "3", "\"y\"", "3"]);
        assert_eq!(show(""), Vec::<String>::new());
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert_eq!(base64_decode("AAEC/w==").unwrap(), [0, 1, 2, 255]);
        assert!(base64_decode("a*b").is_none());
    }
}
