//! SentencePiece model files (protobuf, read by hand) and their precompiled character map.

use super::*;

pub(super) struct ProtoReader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    /// Offset of `buf` in the file, for error messages.
    pub(super) base: usize,
    pub(super) path: &'a Path,
}

pub(super) enum ProtoValue<'a> {
    Varint(u64),
    Fixed32(u32),
    Fixed64,
    Bytes(&'a [u8], usize),
}

impl<'a> ProtoReader<'a> {
    pub(super) fn new(buf: &'a [u8], base: usize, path: &'a Path) -> Self {
        Self {
            buf,
            pos: 0,
            base,
            path,
        }
    }

    pub(super) fn err(&self, what: impl Into<String>) -> TokenizerError {
        TokenizerError::Protobuf {
            path: self.path.to_path_buf(),
            offset: self.base + self.pos,
            what: what.into(),
        }
    }

    pub(super) fn varint(&mut self) -> Result<u64> {
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

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
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
    pub(super) fn next_field(&mut self) -> Result<Option<(u64, ProtoValue<'a>)>> {
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
pub(super) enum PieceKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

#[derive(Debug, Clone)]
pub(super) struct SpmPiece {
    pub(super) piece: String,
    pub(super) score: f32,
    pub(super) kind: PieceKind,
}

#[derive(Debug, Clone)]
pub(super) struct SpmModel {
    pub(super) pieces: Vec<SpmPiece>,
    pub(super) model_type: u64,
    pub(super) byte_fallback: bool,
    pub(super) treat_whitespace_as_suffix: bool,
    pub(super) unk_id: i64,
    pub(super) eos_id: i64,
    pub(super) pad_id: i64,
    pub(super) normalizer_name: String,
    pub(super) charsmap: Vec<u8>,
    pub(super) add_dummy_prefix: bool,
    pub(super) remove_extra_whitespaces: bool,
    pub(super) escape_whitespaces: bool,
}

pub(super) fn proto_bool(v: &ProtoValue, r: &ProtoReader, name: &str) -> Result<bool> {
    match v {
        ProtoValue::Varint(x) => Ok(*x != 0),
        _ => Err(r.err(format!("{name}: expected a varint"))),
    }
}

pub(super) fn proto_int(v: &ProtoValue, r: &ProtoReader, name: &str) -> Result<i64> {
    match v {
        // int32 is sign-extended to 64 bits on the wire.
        ProtoValue::Varint(x) => Ok(*x as i64),
        _ => Err(r.err(format!("{name}: expected a varint"))),
    }
}

pub(super) fn proto_str(v: &ProtoValue, r: &ProtoReader, name: &str) -> Result<String> {
    match v {
        ProtoValue::Bytes(b, _) => {
            String::from_utf8(b.to_vec()).map_err(|_| r.err(format!("{name}: not UTF-8")))
        }
        _ => Err(r.err(format!("{name}: expected a string"))),
    }
}

pub(super) fn parse_spm_model(bytes: &[u8], path: &Path) -> Result<SpmModel> {
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
pub(super) struct CharsMap {
    pub(super) units: Vec<u32>,
    pub(super) normalized: String,
}

impl CharsMap {
    /// `<trie size: u32 LE><trie units: u32 LE…><replacements>`.
    pub(super) fn parse(blob: &[u8], path: &Path) -> Result<Self> {
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
    pub(super) fn prefixes<'s>(&'s self, key: &[u8]) -> Vec<(usize, &'s str)> {
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
    pub(super) fn spm_prefix<'s>(&'s self, s: &'s str) -> (&'s str, usize) {
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
    pub(super) fn hf_normalize(&self, s: &str) -> String {
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
pub(super) fn nmt_nfkc_rules(s: &str) -> String {
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
