//! Tokenizers rebuilt from GGUF metadata (or a Hugging Face `tokenizer.json`): byte-level BPE
//! and SentencePiece.
//!
//! GGUF files produced by llama.cpp's converter embed the full vocabulary
//! (`tokenizer.ggml.tokens`), the BPE merge list (`tokenizer.ggml.merges`) and
//! the token kinds (`tokenizer.ggml.token_type`). For the `gpt2` tokenizer model
//! (used by SmolLM2, Llama-3, Qwen2/2.5/3 and many others) that is everything
//! needed to encode and decode text without a `tokenizer.json`.
//!
//! Encoding works in three stages:
//! 1. control / user-defined tokens (e.g. `<|im_start|>`) are matched verbatim
//!    when special-token parsing is requested;
//! 2. the remaining text is pre-tokenized with the regex family named by
//!    `tokenizer.ggml.pre` (GPT-2, Llama-3 or Qwen2 flavour);
//! 3. each piece is mapped to GPT-2's printable byte alphabet and merged
//!    greedily by merge rank.
//!
//! SentencePiece vocabularies (`tokenizer.ggml.model = "llama"`: Llama-2, Gemma, Phi-3, Mistral)
//! write spaces as `▁` and fall back to `<0xNN>` byte tokens: text is split into characters and
//! the adjacent pair whose concatenation is the highest-scoring vocabulary entry is merged until
//! none is left; pieces still missing from the vocabulary become their bytes.

use std::collections::HashMap;

use candle_core::quantized::gguf_file;
use fancy_regex::Regex;

use super::{LlmError, Result};

/// GGUF token type for ordinary vocabulary entries.
const TOKEN_TYPE_NORMAL: i32 = 1;
/// GGUF token type for control tokens (`<|im_start|>`, `<|eot_id|>`, ...).
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF token type for user-defined added tokens.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;
/// GGUF token type for `<0xNN>` byte-fallback tokens (SentencePiece).
const TOKEN_TYPE_BYTE: i32 = 6;
/// SentencePiece's space marker.
const SPACE_MARK: char = '\u{2581}';

/// GPT-2's pre-tokenizer pattern.
const PAT_GPT2: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Llama-3's pre-tokenizer pattern (numbers in groups of up to three).
const PAT_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's pre-tokenizer pattern (single digits).
const PAT_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Which pre-tokenization scheme a vocabulary expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// Plain GPT-2 regex.
    Gpt2,
    /// Every digit is its own piece, then the GPT-2 regex (SmolLM, StarCoder).
    Gpt2SplitDigits,
    /// Llama-3 regex.
    Llama3,
    /// Qwen2 regex.
    Qwen2,
}

impl PreTokenizer {
    /// Maps the value of `tokenizer.ggml.pre` to a scheme (GPT-2 when unknown).
    pub fn from_gguf_name(name: &str) -> Self {
        match name {
            "smollm" | "starcoder" | "refact" | "codeshell" | "command-r" => {
                PreTokenizer::Gpt2SplitDigits
            }
            "llama3" | "llama-bpe" | "llama-v3" | "smaug-bpe" | "falcon3" | "pixtral" => {
                PreTokenizer::Llama3
            }
            "qwen2" | "deepseek-r1-qwen" | "qwen35" => PreTokenizer::Qwen2,
            _ => PreTokenizer::Gpt2,
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            PreTokenizer::Gpt2 | PreTokenizer::Gpt2SplitDigits => PAT_GPT2,
            PreTokenizer::Llama3 => PAT_LLAMA3,
            PreTokenizer::Qwen2 => PAT_QWEN2,
        }
    }
}

/// A byte-level BPE tokenizer.
#[derive(Debug)]
pub struct Tokenizer {
    /// Token id → token text (in the byte alphabet for normal tokens).
    tokens: Vec<String>,
    /// Token id → GGUF token type.
    token_types: Vec<i32>,
    /// Token text → id.
    token_to_id: HashMap<String, u32>,
    /// (left id, right id) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Special tokens matched verbatim, longest first.
    specials: Vec<(String, u32)>,
    /// Byte → id of its single-character token.
    byte_to_id: [Option<u32>; 256],
    /// Alphabet character → original byte.
    char_to_byte: HashMap<char, u8>,
    pre: PreTokenizer,
    regex: Regex,
    digit_regex: Regex,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    add_bos: bool,
    /// Set for SentencePiece vocabularies; byte-level BPE otherwise.
    spm: Option<Spm>,
}

/// What a SentencePiece vocabulary adds.
#[derive(Debug, Clone)]
struct Spm {
    /// Merge priority of each token (higher merges first).
    scores: Vec<f32>,
    /// Byte → id of its `<0xNN>` token.
    byte_ids: [Option<u32>; 256],
    unk_id: Option<u32>,
    /// Put a `▁` in front of the text (SentencePiece's "dummy prefix").
    add_space_prefix: bool,
}

/// A candidate merge of two adjacent symbols.
#[derive(Debug, PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Byte length of the merged text (to notice stale entries).
    len: usize,
}

impl Eq for Bigram {}

impl Ord for Bigram {
    /// Higher score first, then the leftmost pair.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A symbol of the SentencePiece merge: a byte range of the text in a linked list.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    end: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Tokenizer {
    /// Builds the tokenizer from GGUF metadata: byte-level BPE (`gpt2`) or SentencePiece
    /// (`llama`) vocabularies.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let md = &content.metadata;
        let model = md
            .get("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if model != "gpt2" && model != "llama" {
            return Err(LlmError::Unsupported(format!(
                "tokenizer model '{model}' (byte-level BPE 'gpt2' and SentencePiece 'llama' \
                 vocabularies are supported)"
            )));
        }
        let tokens: Vec<String> = md
            .get("tokenizer.ggml.tokens")
            .ok_or_else(|| LlmError::Format("missing tokenizer.ggml.tokens".into()))?
            .to_vec()?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<std::result::Result<_, _>>()?;
        let token_types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()?
                .iter()
                .map(|t| t.to_i32())
                .collect::<std::result::Result<_, _>>()?,
            None => vec![TOKEN_TYPE_NORMAL; tokens.len()],
        };
        let merges: Vec<String> = match md.get("tokenizer.ggml.merges") {
            Some(v) => v
                .to_vec()?
                .iter()
                .map(|m| m.to_string().cloned())
                .collect::<std::result::Result<_, _>>()?,
            None => Vec::new(),
        };
        let pre = md
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map(|s| PreTokenizer::from_gguf_name(s))
            .unwrap_or(PreTokenizer::Gpt2);
        let get_id = |key: &str| md.get(key).and_then(|v| v.to_u32().ok());
        let flag = |key: &str| md.get(key).and_then(|v| v.to_bool().ok());
        if model == "llama" {
            let scores: Vec<f32> = match md.get("tokenizer.ggml.scores") {
                Some(v) => v
                    .to_vec()?
                    .iter()
                    .map(|s| s.to_f32())
                    .collect::<std::result::Result<_, _>>()?,
                None => vec![0.0; tokens.len()],
            };
            return Self::sentencepiece(
                tokens,
                token_types,
                scores,
                SpmIds {
                    bos: get_id("tokenizer.ggml.bos_token_id"),
                    eos: get_id("tokenizer.ggml.eos_token_id"),
                    unk: get_id("tokenizer.ggml.unknown_token_id"),
                },
                flag("tokenizer.ggml.add_bos_token").unwrap_or(true),
                flag("tokenizer.ggml.add_space_prefix").unwrap_or(true),
            );
        }
        let add_bos = flag("tokenizer.ggml.add_bos_token").unwrap_or(false);
        Self::new(
            tokens,
            token_types,
            &merges,
            pre,
            get_id("tokenizer.ggml.bos_token_id"),
            get_id("tokenizer.ggml.eos_token_id"),
            add_bos,
        )
    }

    /// Builds a tokenizer from its parts.
    ///
    /// `merges` are `"left right"` strings in rank order (highest priority
    /// first). Tokens of type 3 (control) and 4 (user-defined) are matched
    /// verbatim when encoding with special-token parsing.
    pub fn new(
        tokens: Vec<String>,
        token_types: Vec<i32>,
        merges: &[String],
        pre: PreTokenizer,
        bos_id: Option<u32>,
        eos_id: Option<u32>,
        add_bos: bool,
    ) -> Result<Self> {
        if token_types.len() != tokens.len() {
            return Err(LlmError::Format(format!(
                "{} tokens but {} token types",
                tokens.len(),
                token_types.len()
            )));
        }
        let mut token_to_id = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            token_to_id.entry(t.clone()).or_insert(i as u32);
        }
        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let Some((l, r)) = m.split_once(' ') else {
                continue;
            };
            let (Some(&li), Some(&ri)) = (token_to_id.get(l), token_to_id.get(r)) else {
                continue;
            };
            let merged = format!("{l}{r}");
            if let Some(&mi) = token_to_id.get(&merged) {
                merge_map.entry((li, ri)).or_insert((rank as u32, mi));
            }
        }
        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .zip(&token_types)
            .enumerate()
            .filter(|(_, (t, ty))| {
                !t.is_empty() && (**ty == TOKEN_TYPE_CONTROL || **ty == TOKEN_TYPE_USER_DEFINED)
            })
            .map(|(i, (t, _))| (t.clone(), i as u32))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let alphabet = reelsmith_kit::bytes_bpe::byte_chars();
        let mut byte_to_id = [None; 256];
        let mut char_to_byte = HashMap::with_capacity(256);
        for (b, c) in alphabet.iter().enumerate() {
            char_to_byte.insert(*c, b as u8);
            byte_to_id[b] = token_to_id.get(&c.to_string()).copied();
        }
        let regex = Regex::new(pre.pattern())
            .map_err(|e| LlmError::Format(format!("pre-tokenizer regex: {e}")))?;
        let digit_regex =
            Regex::new(r"\p{N}").map_err(|e| LlmError::Format(format!("digit regex: {e}")))?;
        Ok(Self {
            tokens,
            token_types,
            token_to_id,
            merges: merge_map,
            specials,
            byte_to_id,
            char_to_byte,
            pre,
            regex,
            digit_regex,
            bos_id,
            eos_id,
            add_bos,
            spm: None,
        })
    }

    /// Builds a SentencePiece tokenizer: `scores` rank merges (higher first), `<0xNN>` tokens
    /// of type 6 are the byte fallback.
    pub fn sentencepiece(
        tokens: Vec<String>,
        token_types: Vec<i32>,
        scores: Vec<f32>,
        ids: SpmIds,
        add_bos: bool,
        add_space_prefix: bool,
    ) -> Result<Self> {
        if scores.len() != tokens.len() {
            return Err(LlmError::Format(format!(
                "{} tokens but {} scores",
                tokens.len(),
                scores.len()
            )));
        }
        let mut byte_ids = [None; 256];
        for (i, (t, ty)) in tokens.iter().zip(&token_types).enumerate() {
            if *ty != TOKEN_TYPE_BYTE {
                continue;
            }
            if let Some(b) = parse_byte_token(t) {
                byte_ids[b as usize].get_or_insert(i as u32);
            }
        }
        let mut t = Self::new(
            tokens,
            token_types,
            &[],
            PreTokenizer::Gpt2,
            ids.bos,
            ids.eos,
            add_bos,
        )?;
        t.spm = Some(Spm {
            scores,
            byte_ids,
            unk_id: ids.unk,
            add_space_prefix,
        });
        Ok(t)
    }

    /// Reads a Hugging Face `tokenizer.json` with a BPE model: byte-level vocabularies (GPT-2,
    /// Llama-3, Qwen2, SmolLM; the pre-tokenizer is recognised from its split pattern) and
    /// SentencePiece-converted ones (`▁` spaces, byte fallback; merge ranks become scores).
    /// `bos`/`eos` name the special tokens (from `tokenizer_config.json`).
    pub fn from_tokenizer_json(
        text: &str,
        bos: Option<&str>,
        eos: Option<&str>,
        add_bos: bool,
    ) -> Result<Self> {
        let bad = |why: String| LlmError::Format(format!("tokenizer.json: {why}"));
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let model = &v["model"];
        if model["type"].as_str() != Some("BPE") {
            return Err(LlmError::Unsupported(format!(
                "tokenizer.json model type {} (BPE vocabularies are supported)",
                model["type"]
            )));
        }
        let vocab = model["vocab"]
            .as_object()
            .ok_or_else(|| bad("model.vocab is not an object".into()))?;
        let added = v["added_tokens"].as_array().cloned().unwrap_or_default();
        let size = vocab
            .values()
            .filter_map(|i| i.as_u64())
            .chain(added.iter().filter_map(|t| t["id"].as_u64()))
            .max()
            .map_or(0, |m| m as usize + 1);
        let mut tokens = vec![String::new(); size];
        let mut types = vec![TOKEN_TYPE_NORMAL; size];
        for (t, id) in vocab {
            let id = id.as_u64().ok_or_else(|| bad(format!("id of {t:?}")))? as usize;
            tokens[id] = t.clone();
        }
        for t in &added {
            let (Some(id), Some(content)) = (t["id"].as_u64(), t["content"].as_str()) else {
                continue;
            };
            tokens[id as usize] = content.to_string();
            types[id as usize] = if t["special"].as_bool().unwrap_or(false) {
                TOKEN_TYPE_CONTROL
            } else {
                TOKEN_TYPE_USER_DEFINED
            };
        }
        let merges: Vec<String> = model["merges"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| match m {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Array(p) if p.len() == 2 => {
                            Some(format!("{} {}", p[0].as_str()?, p[1].as_str()?))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let id_of = |name: Option<&str>| {
            name.and_then(|n| tokens.iter().position(|t| t == n).map(|i| i as u32))
        };
        let (bos_id, eos_id) = (id_of(bos), id_of(eos));
        let unk = id_of(model["unk_token"].as_str());
        if model["byte_fallback"].as_bool() == Some(true) {
            // SentencePiece converted to BPE: a merge's rank is the merged token's priority.
            let mut scores = vec![0f32; tokens.len()];
            let index: HashMap<&str, usize> = tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (t.as_str(), i))
                .collect();
            for (rank, m) in merges.iter().enumerate() {
                if let Some((l, r)) = m.split_once(' ') {
                    if let Some(&i) = index.get(format!("{l}{r}").as_str()) {
                        if scores[i] == 0.0 {
                            scores[i] = -(rank as f32) - 1.0;
                        }
                    }
                }
            }
            for (i, t) in tokens.iter().enumerate() {
                if types[i] == TOKEN_TYPE_NORMAL && parse_byte_token(t).is_some() {
                    types[i] = TOKEN_TYPE_BYTE;
                }
            }
            // Metaspace's dummy prefix, in the compact form serde_json writes.
            let meta = format!("{}{}", v["pre_tokenizer"], v["normalizer"]);
            let prefix = meta.contains(r#""prepend_scheme":"first""#)
                || meta.contains(r#""add_dummy_prefix":true"#);
            return Self::sentencepiece(
                tokens,
                types,
                scores,
                SpmIds {
                    bos: bos_id,
                    eos: eos_id,
                    unk,
                },
                add_bos,
                prefix,
            );
        }
        let pre_text = v["pre_tokenizer"].to_string();
        let pre = if pre_text.contains("\\p{N}{1,3}") {
            PreTokenizer::Llama3
        } else if pre_text.contains("\\p{N}") && pre_text.contains("Split") {
            PreTokenizer::Qwen2
        } else if pre_text.contains("\"Digits\"") {
            PreTokenizer::Gpt2SplitDigits
        } else {
            PreTokenizer::Gpt2
        };
        Self::new(tokens, types, &merges, pre, bos_id, eos_id, add_bos)
    }

    /// Fills in BOS/EOS ids the vocabulary did not name (from a model's `config.json`).
    pub fn fill_special_ids(&mut self, bos: Option<u32>, eos: Option<u32>) {
        let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < self.tokens.len());
        self.bos_id = self.bos_id.or(in_range(bos));
        self.eos_id = self.eos_id.or(in_range(eos));
    }

    /// Whether this is a SentencePiece vocabulary.
    pub fn is_sentencepiece(&self) -> bool {
        self.spm.is_some()
    }

    /// Number of entries in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Beginning-of-sequence token id, if the vocabulary names one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// End-of-sequence token id, if the vocabulary names one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// Whether the model expects a BOS token in front of every prompt.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// The pre-tokenization scheme in use.
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    /// Looks up the id of a token by its exact vocabulary text.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.token_to_id.get(token).copied()
    }

    /// Raw vocabulary text of a token.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Whether `id` is a control or user-defined token.
    pub fn is_special(&self, id: u32) -> bool {
        matches!(
            self.token_types.get(id as usize),
            Some(&TOKEN_TYPE_CONTROL) | Some(&TOKEN_TYPE_USER_DEFINED)
        )
    }

    /// Encodes `text` into token ids.
    ///
    /// With `parse_special`, control and user-defined tokens written in the
    /// text (such as `<|im_start|>`) become their single id; otherwise they are
    /// tokenized as ordinary text. No BOS token is added.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 4);
        if self.specials.is_empty() {
            self.encode_plain(text, true, &mut out);
            return out;
        }
        let mut start = 0;
        let mut i = 0;
        let bytes = text.as_bytes();
        while i < bytes.len() {
            if let Some((s, id)) = self.special_at(&text[i..], parse_special) {
                if start < i {
                    self.encode_plain(&text[start..i], start == 0, &mut out);
                }
                out.push(id);
                i += s;
                start = i;
            } else {
                i += 1;
                while i < bytes.len() && !text.is_char_boundary(i) {
                    i += 1;
                }
            }
        }
        if start < bytes.len() {
            self.encode_plain(&text[start..], start == 0, &mut out);
        }
        out
    }

    /// Returns the byte length and id of a special token at the start of `s`: user-defined
    /// tokens always match, control tokens only when `parse_special`.
    fn special_at(&self, s: &str, parse_special: bool) -> Option<(usize, u32)> {
        let first = *s.as_bytes().first()?;
        self.specials
            .iter()
            .find(|(t, id)| {
                t.as_bytes()[0] == first
                    && s.starts_with(t.as_str())
                    && (parse_special
                        || self.token_types.get(*id as usize) == Some(&TOKEN_TYPE_USER_DEFINED))
            })
            .map(|(t, id)| (t.len(), *id))
    }

    /// Pre-tokenizes and BPE-encodes text without special tokens (`at_start`: the text begins
    /// the input, where SentencePiece puts its dummy prefix).
    fn encode_plain(&self, text: &str, at_start: bool, out: &mut Vec<u32>) {
        if let Some(spm) = &self.spm {
            self.spm_encode(spm, text, at_start, out);
        } else if self.pre == PreTokenizer::Gpt2SplitDigits {
            let mut last = 0;
            for m in self.digit_regex.find_iter(text).flatten() {
                if m.start() > last {
                    self.encode_regex(&text[last..m.start()], out);
                }
                self.bpe_piece(m.as_str(), out);
                last = m.end();
            }
            if last < text.len() {
                self.encode_regex(&text[last..], out);
            }
        } else {
            self.encode_regex(text, out);
        }
    }

    fn encode_regex(&self, text: &str, out: &mut Vec<u32>) {
        let mut last = 0;
        for m in self.regex.find_iter(text) {
            match m {
                Ok(m) => {
                    // Text the regex skipped (should not happen with these
                    // patterns) is still encoded so nothing is lost.
                    if m.start() > last {
                        self.bpe_piece(&text[last..m.start()], out);
                    }
                    self.bpe_piece(m.as_str(), out);
                    last = m.end();
                }
                Err(_) => break,
            }
        }
        if last < text.len() {
            self.bpe_piece(&text[last..], out);
        }
    }

    /// BPE-merges one pre-tokenized piece.
    fn bpe_piece(&self, piece: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<u32> = Vec::with_capacity(piece.len());
        for &b in piece.as_bytes() {
            match self.byte_to_id[b as usize] {
                Some(id) => symbols.push(id),
                None => {
                    // A vocabulary missing a byte token cannot represent this
                    // byte; fall back to the unknown-ish token 0 rather than panic.
                    symbols.push(0);
                }
            }
        }
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..symbols.len().saturating_sub(1) {
                if let Some(&(rank, merged)) = self.merges.get(&(symbols[i], symbols[i + 1])) {
                    if best.is_none_or(|(r, _, _)| rank < r) {
                        best = Some((rank, i, merged));
                    }
                }
            }
            let Some((rank, _, merged)) = best else {
                break;
            };
            // Apply every non-overlapping occurrence of the best pair, left to right.
            let mut next = Vec::with_capacity(symbols.len());
            let mut i = 0;
            while i < symbols.len() {
                if i + 1 < symbols.len() {
                    if let Some(&(r, m)) = self.merges.get(&(symbols[i], symbols[i + 1])) {
                        if r == rank && m == merged {
                            next.push(merged);
                            i += 2;
                            continue;
                        }
                    }
                }
                next.push(symbols[i]);
                i += 1;
            }
            symbols = next;
        }
        out.extend_from_slice(&symbols);
    }

    /// SentencePiece: merges the best-scoring adjacent pair until none is in the vocabulary.
    fn spm_encode(&self, spm: &Spm, text: &str, at_start: bool, out: &mut Vec<u32>) {
        let mut s = String::with_capacity(text.len() + 3);
        if spm.add_space_prefix && at_start {
            s.push(SPACE_MARK);
        }
        s.extend(text.chars().map(|c| if c == ' ' { SPACE_MARK } else { c }));
        let mut syms: Vec<Symbol> = Vec::with_capacity(s.len());
        for (i, (at, c)) in s.char_indices().enumerate() {
            syms.push(Symbol {
                start: at,
                end: at + c.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
            if i > 0 {
                syms[i - 1].next = Some(i);
            }
        }
        let mut heap = std::collections::BinaryHeap::new();
        let try_add =
            |heap: &mut std::collections::BinaryHeap<Bigram>, syms: &[Symbol], l: usize| {
                let Some(r) = syms[l].next else { return };
                let piece = &s[syms[l].start..syms[r].end];
                if let Some(&id) = self.token_to_id.get(piece) {
                    heap.push(Bigram {
                        score: spm.scores[id as usize],
                        left: l,
                        right: r,
                        len: piece.len(),
                    });
                }
            };
        for l in 0..syms.len() {
            try_add(&mut heap, &syms, l);
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (syms[b.left], syms[b.right]);
            // Stale: one side was merged away or grew since this pair was proposed.
            if l.next != Some(b.right) || r.end - l.start != b.len || l.start == l.end {
                continue;
            }
            syms[b.left].end = r.end;
            syms[b.left].next = r.next;
            if let Some(n) = r.next {
                syms[n].prev = Some(b.left);
            }
            syms[b.right].end = syms[b.right].start;
            if let Some(p) = syms[b.left].prev {
                try_add(&mut heap, &syms, p);
            }
            try_add(&mut heap, &syms, b.left);
        }
        let mut at = (!syms.is_empty()).then_some(0);
        while let Some(i) = at {
            let piece = &s[syms[i].start..syms[i].end];
            match self.token_to_id.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(id) = spm.byte_ids[b as usize].or(spm.unk_id) {
                            out.push(id);
                        }
                    }
                }
            }
            at = syms[i].next;
        }
    }

    /// Appends the raw bytes a token stands for.
    ///
    /// Special tokens contribute their text only when `with_special` is set.
    pub fn token_bytes(&self, id: u32, with_special: bool, out: &mut Vec<u8>) {
        let Some(text) = self.tokens.get(id as usize) else {
            return;
        };
        if self.is_special(id) {
            if with_special || self.token_types.get(id as usize) == Some(&TOKEN_TYPE_USER_DEFINED) {
                out.extend_from_slice(text.as_bytes());
            }
            return;
        }
        if self.spm.is_some() {
            if self.token_types.get(id as usize) == Some(&TOKEN_TYPE_BYTE) {
                if let Some(b) = parse_byte_token(text) {
                    out.push(b);
                    return;
                }
            }
            for c in text.chars() {
                let c = if c == SPACE_MARK { ' ' } else { c };
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            return;
        }
        for c in text.chars() {
            match self.char_to_byte.get(&c) {
                Some(&b) => out.push(b),
                None => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }

    /// Decodes ids into text; invalid UTF-8 is replaced with U+FFFD.
    pub fn decode(&self, ids: &[u32], with_special: bool) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            self.token_bytes(id, with_special, &mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Special token ids of a SentencePiece vocabulary.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpmIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
}

/// `<0x41>` → 0x41.
fn parse_byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2).then(|| u8::from_str_radix(hex, 16).ok())?
}

/// Streaming decoder that never splits a UTF-8 character between chunks.
///
/// Bytes of a character spread over several tokens are held back until the
/// character is complete; bytes that can never become valid UTF-8 are emitted
/// as U+FFFD.
#[derive(Debug, Default, Clone)]
pub struct IncrementalDecoder {
    pending: Vec<u8>,
}

impl IncrementalDecoder {
    /// Creates an empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one token and returns the text that became complete.
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32, with_special: bool) -> String {
        tokenizer.token_bytes(id, with_special, &mut self.pending);
        self.drain_complete()
    }

    /// Returns whatever is still buffered (lossily) and resets the decoder.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }

    fn drain_complete(&mut self) -> String {
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // SAFETY-free: the prefix was just validated.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        None => {
                            // Incomplete character at the end: keep it for later.
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_is_a_bijection() {
        let t = reelsmith_kit::bytes_bpe::byte_chars();
        let set: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
    }

    fn tiny() -> Tokenizer {
        let alphabet = reelsmith_kit::bytes_bpe::byte_chars();
        let mut tokens: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
        tokens.push("ab".into());
        tokens.push("abc".into());
        tokens.push("<|sp|>".into());
        let mut types = vec![TOKEN_TYPE_NORMAL; tokens.len()];
        *types.last_mut().unwrap() = TOKEN_TYPE_CONTROL;
        let merges = vec!["a b".to_string(), "ab c".to_string()];
        Tokenizer::new(
            tokens,
            types,
            &merges,
            PreTokenizer::Gpt2,
            None,
            None,
            false,
        )
        .unwrap()
    }

    #[test]
    fn merges_and_specials() {
        let t = tiny();
        let ids = t.encode("abc<|sp|>ab", true);
        assert_eq!(ids, vec![257, 258, 256]);
        assert_eq!(t.decode(&ids, true), "abc<|sp|>ab");
        assert_eq!(t.decode(&ids, false), "abcab");
        let plain = t.encode("<|sp|>", false);
        assert!(plain.len() > 1);
    }

    #[test]
    fn incremental_decoder_holds_partial_chars() {
        let t = tiny();
        let text = "é😀";
        let ids = t.encode(text, false);
        let mut dec = IncrementalDecoder::new();
        let mut out = String::new();
        for id in ids {
            let chunk = dec.push(&t, id, false);
            assert!(!chunk.contains('\u{FFFD}'));
            out.push_str(&chunk);
        }
        out.push_str(&dec.finish());
        assert_eq!(out, text);
    }
}
