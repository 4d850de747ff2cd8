//! CLIP's byte-level BPE (OpenAI's SimpleTokenizer and the transformers/tokenizers flavours).

use super::*;

/// Merges of CLIP's vocabulary: `49152 - 256 - 2`. OpenAI's SimpleTokenizer and transformers'
/// slow `CLIPTokenizer` read only this many lines of the merges file.
pub const CLIP_MERGES: usize = 48_894;

pub(super) const CLIP_BOS: &str = "<|startoftext|>";
pub(super) const CLIP_EOS: &str = "<|endoftext|>";

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

/// The order OpenAI's SimpleTokenizer lists the byte characters: printable ones, then the rest.
pub(super) fn byte_chars_in_vocab_order(table: &[char; 256]) -> Vec<char> {
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
    pub(super) vocab: HashMap<String, u32>,
    /// (left id, right id) → (rank, merged id).
    pub(super) merges: HashMap<(u32, u32), (u32, u32)>,
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

pub(super) fn json_token_name(v: &Value) -> Option<&str> {
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
        let table = reelsmith_kit::bytes_bpe::byte_chars();
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
        let table = reelsmith_kit::bytes_bpe::byte_chars();
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

pub(super) fn parse_merge(path: &Path, line: usize, text: &str) -> Result<(String, String)> {
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
pub(super) fn is_cjk_ideograph(c: char) -> bool {
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
pub(super) fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}
