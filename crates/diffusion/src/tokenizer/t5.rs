//! T5's unigram tokenizer (SentencePiece models and tokenizer.json).

use super::*;

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
pub(super) enum Normalizer {
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
pub(super) struct VocabEntry {
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
pub(super) const T5_EXTRA_IDS: u32 = 100;

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
        Self::from_tokenizer_json_value(&read_json(path)?, path)
    }

    /// [`Self::from_tokenizer_json`] on a parsed `tokenizer.json` (`path` names it in errors):
    /// for callers that adjust the file first (umT5's `byte_fallback`, which transformers
    /// ignores for it, is cleared by the Wan tokenizer).
    pub fn from_tokenizer_json_value(json: &Value, path: &Path) -> Result<Self> {
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

pub(super) fn parse_hf_normalizer(n: &Value, path: &Path) -> Result<Normalizer> {
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
pub(super) fn parse_hf_pretokenizer(
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
pub(super) fn base64_decode(s: &str) -> Option<Vec<u8>> {
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
