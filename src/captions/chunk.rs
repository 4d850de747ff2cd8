//! Splitting narration text into on-screen caption chunks.
//!
//! The text is first cut into unbreakable *atoms* (words, single CJK
//! characters with their kinsoku neighbours, grapheme pieces of over-long
//! words) separated by break opportunities of different strength. A dynamic
//! program then picks chunk boundaries and, inside each chunk, line breaks,
//! minimising a cost that prefers strong breaks (sentence > clause > space),
//! full but balanced chunks and lines of similar width.

use super::width::{grapheme_width, graphemes, is_wide};

/// Strength of a break opportunity between two atoms; later variants are
/// stronger (better places to break).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum BreakKind {
    /// Inside a word that is wider than a whole line.
    Hard,
    /// After a hyphen or slash inside an over-long word.
    Hyphen,
    /// Between two CJK characters (or a CJK character and a Latin word).
    Char,
    /// At a space.
    Space,
    /// After clause punctuation (`,` `、` `،` ...).
    Clause,
    /// After sentence punctuation (`.` `。` `।` `؟` ...).
    Sentence,
    /// A blank line in the source: always ends a chunk.
    Paragraph,
}

#[derive(Clone, Copy, Debug)]
struct Break {
    kind: BreakKind,
    /// Whether a space separates the atoms when they share a line.
    space: bool,
    /// Extra cost of breaking here (Japanese word-boundary heuristic).
    bias: f64,
}

#[derive(Clone, Debug)]
struct Atom {
    text: String,
    width: usize,
}

/// Whitespace between two units in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gap {
    None,
    Space,
    Paragraph,
}

#[derive(Clone, Debug)]
struct Unit {
    text: String,
    width: usize,
    /// A CJK character that may be broken around (ideograph, kana, CJK punctuation).
    cjk: bool,
}

/// Characters that may be broken around individually (Chinese/Japanese).
/// Hangul is deliberately excluded: Korean breaks at spaces.
fn is_cjk_breakable(c: char) -> bool {
    matches!(c,
        '\u{2E80}'..='\u{2FDF}'     // radicals
        | '\u{3000}'..='\u{303F}'   // CJK symbols and punctuation
        | '\u{3040}'..='\u{30FF}'   // hiragana, katakana
        | '\u{3100}'..='\u{312F}'   // bopomofo
        | '\u{31F0}'..='\u{31FF}'   // katakana phonetic extensions
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{FE30}'..='\u{FE4F}'
        | '\u{FF01}'..='\u{FF60}'   // fullwidth forms
        | '\u{FF61}'..='\u{FF9F}'   // halfwidth katakana and punctuation
        | '\u{20000}'..='\u{3FFFD}')
}

/// Kinsoku: characters that must not start a line in Japanese/Chinese.
fn cjk_no_line_start(c: char) -> bool {
    matches!(
        c,
        '、' | '。' | '，' | '．' | '！' | '？' | '：' | '；' | '」' | '』' | '）' | '】' | '〉'
            | '》' | '〕' | '〗' | '〙' | '〛' | '］' | '｝' | '｣' | '､' | '｡' | '･' | '・'
            | 'ー' | 'ｰ' | '゛' | '゜' | 'ヽ' | 'ヾ' | 'ゝ' | 'ゞ' | '々' | '〻' | '〜' | '～'
            | 'ぁ' | 'ぃ' | 'ぅ' | 'ぇ' | 'ぉ' | 'っ' | 'ゃ' | 'ゅ' | 'ょ' | 'ゎ' | 'ゕ' | 'ゖ'
            | 'ァ' | 'ィ' | 'ゥ' | 'ェ' | 'ォ' | 'ッ' | 'ャ' | 'ュ' | 'ョ' | 'ヮ' | 'ヵ' | 'ヶ'
            | 'ㇰ'..='ㇿ' | 'ｧ'..='ｯ' | '‥' | '…' | '”' | '’' | '‼' | '⁇' | '⁈' | '⁉'
    )
}

/// Kinsoku: characters that must not end a line in Japanese/Chinese.
fn cjk_no_line_end(c: char) -> bool {
    matches!(
        c,
        '「' | '『'
            | '（'
            | '【'
            | '〈'
            | '《'
            | '〔'
            | '〖'
            | '〘'
            | '〚'
            | '［'
            | '｛'
            | '｢'
            | '“'
            | '‘'
    )
}

/// Punctuation that, standing alone between spaces, belongs to the previous
/// word (French `Bonjour !`, `mot »`, Hindi `है ।`, dashes).
fn is_trailing_punct(c: char) -> bool {
    matches!(
        c,
        '.' | ','
            | ';'
            | ':'
            | '!'
            | '?'
            | '…'
            | '»'
            | '›'
            | ')'
            | ']'
            | '}'
            | '”'
            | '’'
            | '%'
            | '।'
            | '॥'
            | '،'
            | '؛'
            | '؟'
            | '۔'
            | '-'
            | '–'
            | '—'
    )
}

/// Punctuation that, standing alone, belongs to the next word (`« mot`).
fn is_leading_punct(c: char) -> bool {
    matches!(
        c,
        '«' | '‹' | '(' | '[' | '{' | '“' | '‘' | '„' | '‚' | '¿' | '¡'
    )
}

/// Closing quotes/brackets skipped when looking for the punctuation that
/// ends a unit (`"Done."` ends a sentence).
fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | '”'
            | '’'
            | '»'
            | '›'
            | ')'
            | ']'
            | '}'
            | '」'
            | '』'
            | '）'
            | '］'
            | '｝'
            | '】'
            | '〉'
            | '》'
            | '〕'
            | '｣'
    )
}

fn is_sentence_end(c: char) -> bool {
    matches!(
        c,
        '.' | '!'
            | '?'
            | '。'
            | '！'
            | '？'
            | '．'
            | '｡'
            | '।'
            | '॥'
            | '؟'
            | '۔'
            | '‼'
            | '⁇'
            | '⁈'
            | '⁉'
    )
}

fn is_clause_end(c: char) -> bool {
    matches!(
        c,
        ',' | ';'
            | ':'
            | '、'
            | '，'
            | '；'
            | '：'
            | '､'
            | '،'
            | '؛'
            | '…'
            | '‥'
            | '–'
            | '—'
            | '﹐'
            | '﹑'
    )
}

fn all_chars(s: &str, pred: fn(char) -> bool) -> bool {
    let mut any = false;
    for c in s.chars() {
        if c.is_whitespace() {
            continue;
        }
        if !pred(c) {
            return false;
        }
        any = true;
    }
    any
}

/// Cuts `text` into units separated by gaps: runs of non-space, non-CJK
/// graphemes form one unit (a word); each CJK grapheme is its own unit.
fn units(text: &str) -> (Vec<Unit>, Vec<Gap>) {
    let mut units: Vec<Unit> = Vec::new();
    let mut gaps: Vec<Gap> = Vec::new();
    let mut pending: Option<Gap> = None;
    let mut newlines = 0usize;
    for g in graphemes(text) {
        let first = g.chars().next().unwrap_or(' ');
        if first.is_whitespace() {
            newlines +=
                g.matches('\n').count() + g.matches('\r').count() - g.matches("\r\n").count();
            pending = Some(if newlines >= 2 {
                Gap::Paragraph
            } else {
                Gap::Space
            });
            continue;
        }
        if first.is_control() {
            continue;
        }
        let cjk = is_cjk_breakable(first);
        let width = grapheme_width(g);
        match units.last_mut() {
            Some(last) if pending.is_none() && !cjk && !last.cjk => {
                last.text.push_str(g);
                last.width += width;
            }
            _ => {
                if !units.is_empty() {
                    gaps.push(pending.unwrap_or(Gap::None));
                }
                units.push(Unit {
                    text: g.to_string(),
                    width,
                    cjk,
                });
            }
        }
        pending = None;
        newlines = 0;
    }
    (units, gaps)
}

/// May a line break fall between units `a` and `b`?
fn can_break(a: &Unit, gap: Gap, b: &Unit) -> bool {
    if gap == Gap::Paragraph {
        return true;
    }
    let b_first = b.text.chars().next().unwrap_or(' ');
    let a_last = a.text.chars().next_back().unwrap_or(' ');
    !(cjk_no_line_start(b_first)
        || cjk_no_line_end(a_last)
        || all_chars(&b.text, is_trailing_punct)
        || all_chars(&a.text, is_leading_punct))
}

/// The punctuation-derived strength of a break after `text`, if any.
fn punct_kind(text: &str, next: &str) -> Option<BreakKind> {
    let last = text.chars().rev().find(|&c| !is_closer(c))?;
    if is_sentence_end(last) {
        // "e.g. this": a full stop followed by a lowercase word is probably
        // an abbreviation rather than the end of a sentence.
        let next_lower = next.chars().next().is_some_and(char::is_lowercase);
        if last == '.' && next_lower {
            return None;
        }
        return Some(BreakKind::Sentence);
    }
    is_clause_end(last).then_some(BreakKind::Clause)
}

/// Turns text into atoms and the breaks between them.
fn atomize(text: &str, max_width: usize) -> (Vec<Atom>, Vec<Break>) {
    let (raw, raw_gaps) = units(text);
    // Apply kinsoku / punctuation attachment by merging units.
    let mut merged: Vec<Unit> = Vec::new();
    let mut gaps: Vec<Gap> = Vec::new();
    for (k, unit) in raw.into_iter().enumerate() {
        if k == 0 {
            merged.push(unit);
            continue;
        }
        let gap = raw_gaps[k - 1];
        let prev = merged.last_mut().expect("non-empty");
        if can_break(prev, gap, &unit) {
            gaps.push(gap);
            merged.push(unit);
        } else {
            if gap == Gap::Space {
                prev.text.push(' ');
                prev.width += 1;
            }
            prev.text.push_str(&unit.text);
            prev.width += unit.width;
            prev.cjk |= unit.cjk;
        }
    }

    let mut atoms = Vec::new();
    let mut breaks = Vec::new();
    for (k, unit) in merged.iter().enumerate() {
        if unit.width > max_width {
            split_long(unit, &mut atoms, &mut breaks);
        } else {
            atoms.push(Atom {
                text: unit.text.clone(),
                width: unit.width,
            });
        }
        if let Some(&gap) = gaps.get(k) {
            let next = &merged[k + 1].text;
            let base = match gap {
                Gap::Paragraph => BreakKind::Paragraph,
                Gap::Space => BreakKind::Space,
                Gap::None => BreakKind::Char,
            };
            let kind = match punct_kind(&unit.text, next) {
                Some(p) if base != BreakKind::Paragraph => p,
                _ => base,
            };
            let bias = if kind == BreakKind::Char {
                char_break_bias(&unit.text, next)
            } else {
                0.0
            };
            breaks.push(Break {
                kind,
                space: gap != Gap::None,
                bias,
            });
        }
    }
    (atoms, breaks)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Hiragana,
    Katakana,
    Han,
    Other,
}

fn script(c: char) -> Script {
    match c {
        '\u{3041}'..='\u{309F}' => Script::Hiragana,
        '\u{30A0}'..='\u{30FF}' | '\u{31F0}'..='\u{31FF}' | '\u{FF66}'..='\u{FF9F}' => {
            Script::Katakana
        }
        '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '々' => {
            Script::Han
        }
        _ => Script::Other,
    }
}

/// Cost adjustment for breaking between two CJK units, approximating
/// Japanese phrase (bunsetsu) boundaries from script changes: a break after
/// kana particles/endings before a kanji, katakana or Latin word is good;
/// breaking inside a kanji compound or a katakana word is worse.
fn char_break_bias(before: &str, after: &str) -> f64 {
    let (Some(a), Some(b)) = (before.chars().next_back(), after.chars().next()) else {
        return 0.0;
    };
    match (script(a), script(b)) {
        (Script::Hiragana, Script::Han | Script::Katakana | Script::Other) => -100.0,
        (Script::Katakana, Script::Katakana) => 350.0,
        (Script::Han, Script::Han) => 150.0,
        (Script::Hiragana, Script::Hiragana) => 50.0,
        _ => 0.0,
    }
}

/// Splits an over-long unit into grapheme atoms joined by hard breaks
/// (cheaper after a hyphen or slash); the line-breaking pass then picks
/// where to cut, balancing the pieces.
fn split_long(unit: &Unit, atoms: &mut Vec<Atom>, breaks: &mut Vec<Break>) {
    let mut first = true;
    let mut prev_hyphen = false;
    let mut prev_space = false;
    for g in graphemes(&unit.text) {
        if g == " " {
            // Space kept inside a merged unit ("mot !"): breaking there is
            // discouraged but better than cutting a word.
            prev_space = true;
            continue;
        }
        if !first {
            let kind = if prev_hyphen || prev_space {
                BreakKind::Hyphen
            } else if is_wide(g.chars().next().unwrap_or(' ')) {
                BreakKind::Char
            } else {
                BreakKind::Hard
            };
            breaks.push(Break {
                kind,
                space: prev_space,
                bias: 0.0,
            });
        }
        prev_hyphen = matches!(g, "-" | "/" | "‐" | "‑");
        prev_space = false;
        first = false;
        atoms.push(Atom {
            text: g.to_string(),
            width: grapheme_width(g),
        });
    }
}

/// Break penalties for line breaks inside a chunk and for chunk boundaries.
struct Penalties {
    cjk_lang: bool,
}

impl Penalties {
    fn line(&self, b: Break) -> f64 {
        b.bias
            + match b.kind {
                BreakKind::Paragraph | BreakKind::Sentence => 0.0,
                BreakKind::Clause => 60.0,
                BreakKind::Space => 250.0,
                BreakKind::Char if self.cjk_lang => 250.0,
                BreakKind::Char => 1200.0,
                BreakKind::Hyphen => 2500.0,
                BreakKind::Hard => 6000.0,
            }
    }

    fn chunk(&self, b: Break) -> f64 {
        4.0 * b.bias
            + match b.kind {
                BreakKind::Paragraph | BreakKind::Sentence => 0.0,
                BreakKind::Clause => 800.0,
                BreakKind::Space => 3000.0,
                BreakKind::Char if self.cjk_lang => 3000.0,
                BreakKind::Char => 4000.0,
                BreakKind::Hyphen => 6000.0,
                BreakKind::Hard => 12000.0,
            }
    }
}

/// Line-breaking tables for chunks starting at atom `start`.
struct LineTable {
    start: usize,
    /// `best[l][jj]`: cost of atoms `start..=start+jj` on exactly `l + 1` lines.
    best: Vec<Vec<f64>>,
    /// `from[l][jj]`: first atom of the last line in that optimum.
    from: Vec<Vec<usize>>,
}

struct Layout<'a> {
    atoms: &'a [Atom],
    breaks: &'a [Break],
    max_width: usize,
    max_lines: usize,
    pen: Penalties,
    /// `pw[k]`: total atom width before atom `k`.
    pw: Vec<usize>,
    /// `ps[k]`: number of space breaks among `breaks[..k]`.
    ps: Vec<usize>,
}

impl<'a> Layout<'a> {
    fn new(
        atoms: &'a [Atom],
        breaks: &'a [Break],
        max_width: usize,
        max_lines: usize,
        pen: Penalties,
    ) -> Self {
        let mut pw = vec![0; atoms.len() + 1];
        for (k, a) in atoms.iter().enumerate() {
            pw[k + 1] = pw[k] + a.width;
        }
        let mut ps = vec![0; breaks.len() + 1];
        for (k, b) in breaks.iter().enumerate() {
            ps[k + 1] = ps[k] + usize::from(b.space);
        }
        Layout {
            atoms,
            breaks,
            max_width,
            max_lines,
            pen,
            pw,
            ps,
        }
    }

    /// Width of atoms `m..=j` set on one line.
    fn width(&self, m: usize, j: usize) -> usize {
        self.pw[j + 1] - self.pw[m] + self.ps[j] - self.ps[m]
    }

    fn fits(&self, m: usize, j: usize) -> bool {
        m == j || self.width(m, j) <= self.max_width
    }

    /// Last atom a chunk starting at `start` could possibly reach.
    fn reach(&self, start: usize) -> usize {
        let limit = self.max_lines * (self.max_width + 1);
        let mut j = start;
        while j + 1 < self.atoms.len()
            && self.breaks[j].kind != BreakKind::Paragraph
            && self.width(start, j + 1) <= limit
        {
            j += 1;
        }
        j
    }

    fn line_table(&self, start: usize) -> LineTable {
        let end = self.reach(start);
        let len = end - start + 1;
        let mut best = vec![vec![f64::INFINITY; len]; self.max_lines];
        let mut from = vec![vec![start; len]; self.max_lines];
        for (j, cost) in (start..=end).zip(best[0].iter_mut()) {
            if self.fits(start, j) {
                let w = self.width(start, j) as f64;
                *cost = w * w;
            }
        }
        for l in 1..self.max_lines {
            for jj in 1..len {
                let j = start + jj;
                // `m` = first atom of the last line.
                let mut m = j;
                while m > start && self.fits(m, j) {
                    let prev = best[l - 1][m - 1 - start];
                    if prev.is_finite() {
                        let w = self.width(m, j) as f64;
                        let cost = prev + self.pen.line(self.breaks[m - 1]) + w * w;
                        if cost < best[l][jj] {
                            best[l][jj] = cost;
                            from[l][jj] = m;
                        }
                    }
                    m -= 1;
                }
            }
        }
        LineTable { start, best, from }
    }

    /// Fewest lines that can hold atoms `table.start..=j`, and the quality
    /// cost (line imbalance plus line-break penalties) of the best such split.
    fn chunk_lines(&self, table: &LineTable, j: usize) -> Option<(usize, f64)> {
        let jj = j - table.start;
        let l = (0..self.max_lines).find(|&l| table.best[l][jj].is_finite())?;
        let n = (l + 1) as f64;
        let total = self.width(table.start, j).saturating_sub(l) as f64;
        let imbalance = (table.best[l][jj] - total * total / n).max(0.0);
        Some((l, imbalance))
    }

    /// Chooses chunk boundaries; returns inclusive atom ranges.
    fn chunks(&self) -> Vec<(usize, usize)> {
        let n = self.atoms.len();
        let cap = (self.max_lines * self.max_width) as f64;
        let mut cost = vec![f64::INFINITY; n + 1];
        let mut back = vec![0usize; n + 1];
        cost[0] = 0.0;
        for i in 0..n {
            if !cost[i].is_finite() {
                continue;
            }
            let table = self.line_table(i);
            let end = i + table.best[0].len() - 1;
            for j in i..=end {
                let Some((_, quality)) = self.chunk_lines(&table, j) else {
                    continue;
                };
                let slack = (cap - self.width(i, j) as f64).max(0.0);
                let boundary = if j + 1 < n {
                    self.pen.chunk(self.breaks[j])
                } else {
                    0.0
                };
                let c = cost[i] + slack * slack + quality + boundary;
                if c < cost[j + 1] {
                    cost[j + 1] = c;
                    back[j + 1] = i;
                }
            }
        }
        let mut ranges = Vec::new();
        let mut j = n;
        while j > 0 {
            let i = back[j];
            ranges.push((i, j - 1));
            j = i;
        }
        ranges.reverse();
        ranges
    }

    /// Text of atoms `m..=j` joined into one line.
    fn line_text(&self, m: usize, j: usize) -> String {
        let mut s = String::new();
        for k in m..=j {
            if k > m && self.breaks[k - 1].space {
                s.push(' ');
            }
            s.push_str(&self.atoms[k].text);
        }
        s.trim().to_string()
    }

    fn lines(&self, i: usize, j: usize) -> Vec<String> {
        let table = self.line_table(i);
        let Some((mut l, _)) = self.chunk_lines(&table, j) else {
            return vec![self.line_text(i, j)];
        };
        let mut lines = Vec::new();
        let mut end = j;
        loop {
            let m = if l == 0 { i } else { table.from[l][end - i] };
            lines.push(self.line_text(m, end));
            if l == 0 {
                break;
            }
            end = m - 1;
            l -= 1;
        }
        lines.reverse();
        lines.retain(|line| !line.is_empty());
        lines
    }
}

/// Splits `text` into caption chunks (one chunk = what is on screen at one
/// time) of at most `max_lines` lines, each at most `max_width` display
/// columns (see [`display_width`](super::display_width)). Breaks prefer
/// sentence ends, then clause punctuation, then spaces (or, in Japanese and
/// Chinese, any kinsoku-permitted point between characters); words are only
/// cut when wider than a whole line. Lines and chunks are balanced. A blank
/// line in `text` always starts a new chunk. Whitespace-only text gives no
/// chunks.
pub fn chunk_text(text: &str, lang: &str, max_width: usize, max_lines: usize) -> Vec<Vec<String>> {
    let max_width = max_width.max(1);
    let max_lines = max_lines.max(1);
    let (atoms, breaks) = atomize(text, max_width);
    if atoms.is_empty() {
        return Vec::new();
    }
    let pen = Penalties {
        cjk_lang: super::is_cjk_language(lang),
    };
    let layout = Layout::new(&atoms, &breaks, max_width, max_lines, pen);
    layout
        .chunks()
        .into_iter()
        .map(|(i, j)| layout.lines(i, j))
        .filter(|lines| !lines.is_empty())
        .collect()
}
