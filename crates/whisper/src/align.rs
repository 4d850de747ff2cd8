//! Word-level timestamps from cross-attention.
//!
//! The method of the reference implementation: run the decoder over
//! `[sot sequence, <|notimestamps|>, text tokens, <|endoftext|>]`, take the
//! cross-attention of the model's *alignment heads* (heads known to track
//! the audio position), softmax them over the window's real frames,
//! standardise each frame column over the tokens, median-filter along time
//! (width 7), average the heads, and find the monotonic token→frame path
//! with dynamic time warping. A word starts at the first frame its first
//! token is aligned to (each encoder frame is 20 ms).

/// Seconds per encoder frame.
pub const SECONDS_PER_FRAME: f64 = 0.02;

/// Median filter width along the time axis.
pub const MEDIAN_FILTER_WIDTH: usize = 7;

/// Punctuation merged into the following word.
const PREPEND_PUNCTUATION: &str = "\"'“¿([{-";
/// Punctuation merged into the preceding word.
const APPEND_PUNCTUATION: &str = "\"'.。,，!！?？:：”)]}、";

/// Timing of one word inside a window (seconds from the window start).
#[derive(Debug, Clone, PartialEq)]
pub struct WordTiming {
    /// The word text, with its leading space when it has one.
    pub word: String,
    /// Its tokens.
    pub tokens: Vec<u32>,
    /// Start in seconds.
    pub start: f64,
    /// End in seconds.
    pub end: f64,
    /// Mean token probability.
    pub prob: f32,
}

/// Numerically stable in-place softmax.
fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    if sum > 0.0 {
        row.iter_mut().for_each(|v| *v /= sum);
    }
}

/// Median filter of each row with reflection padding, as the reference's
/// `median_filter` (rows no longer than half the width are left as is).
pub fn median_filter_rows(rows: &mut [Vec<f32>], width: usize) {
    let pad = width / 2;
    let mut window = vec![0f32; width];
    for row in rows.iter_mut() {
        let n = row.len();
        if n <= pad {
            continue;
        }
        let src = row.clone();
        let at = |i: isize| -> f32 {
            let mut j = i;
            if j < 0 {
                j = -j;
            }
            if j >= n as isize {
                j = 2 * (n as isize - 1) - j;
            }
            src[j.clamp(0, n as isize - 1) as usize]
        };
        for (i, out) in row.iter_mut().enumerate() {
            for (k, w) in window.iter_mut().enumerate() {
                *w = at(i as isize + k as isize - pad as isize);
            }
            window.sort_unstable_by(f32::total_cmp);
            *out = window[pad];
        }
    }
}

/// Dynamic time warping over a cost matrix `cost[row][col]`; returns the
/// monotonic path from `(0, 0)` to `(rows-1, cols-1)` as
/// `(row indices, column indices)`.
pub fn dtw(cost: &[Vec<f32>]) -> (Vec<usize>, Vec<usize>) {
    let n = cost.len();
    let m = cost.first().map_or(0, Vec::len);
    if n == 0 || m == 0 {
        return (Vec::new(), Vec::new());
    }
    let w = m + 1;
    let mut acc = vec![f32::INFINITY; (n + 1) * w];
    // 0: diagonal, 1: from the row above, 2: from the left.
    let mut trace = vec![-1i8; (n + 1) * w];
    acc[0] = 0.0;
    for j in 1..=m {
        for i in 1..=n {
            let c0 = acc[(i - 1) * w + j - 1];
            let c1 = acc[(i - 1) * w + j];
            let c2 = acc[i * w + j - 1];
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            acc[i * w + j] = cost[i - 1][j - 1] + c;
            trace[i * w + j] = t;
        }
    }
    trace[..w].fill(2);
    for i in 0..=n {
        trace[i * w] = 1;
    }
    let (mut i, mut j) = (n, m);
    let mut rows = Vec::with_capacity(n + m);
    let mut cols = Vec::with_capacity(n + m);
    while i > 0 || j > 0 {
        rows.push(i.saturating_sub(1));
        cols.push(j.saturating_sub(1));
        match trace[i * w + j] {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    rows.reverse();
    cols.reverse();
    (rows, cols)
}

/// Builds the alignment matrix from per-head cross-attention scores.
///
/// `scores[h][t]` are the pre-softmax scores of head `h` for token position
/// `t` over all encoder frames; only the first `n_frames` are used.
/// Returns `matrix[t][frame]` for every token position.
pub fn attention_matrix(scores: &[Vec<Vec<f32>>], n_frames: usize) -> Vec<Vec<f32>> {
    let Some(first) = scores.first() else {
        return Vec::new();
    };
    let tokens = first.len();
    let mut sum = vec![vec![0f32; n_frames]; tokens];
    for head in scores {
        let mut w: Vec<Vec<f32>> = head
            .iter()
            .map(|r| {
                let mut r = r[..n_frames.min(r.len())].to_vec();
                r.resize(n_frames, f32::NEG_INFINITY);
                softmax_in_place(&mut r);
                r
            })
            .collect();
        // Standardise every frame column over the tokens.
        for f in 0..n_frames {
            let mean = w.iter().map(|r| r[f]).sum::<f32>() / tokens as f32;
            let var = w.iter().map(|r| (r[f] - mean).powi(2)).sum::<f32>() / tokens as f32;
            let std = var.sqrt();
            for r in w.iter_mut() {
                r[f] = if std > 0.0 { (r[f] - mean) / std } else { 0.0 };
            }
        }
        median_filter_rows(&mut w, MEDIAN_FILTER_WIDTH);
        for (s, r) in sum.iter_mut().zip(&w) {
            for (a, b) in s.iter_mut().zip(r) {
                *a += b;
            }
        }
    }
    let heads = scores.len() as f32;
    for r in sum.iter_mut() {
        r.iter_mut().for_each(|v| *v /= heads);
    }
    sum
}

/// Times words from an alignment matrix.
///
/// `matrix` has one row per predicted token: the text tokens then
/// `<|endoftext|>`; `words` splits those same tokens (the last word being
/// `<|endoftext|>`); `token_probs` gives each text token's probability.
pub fn time_words(
    matrix: &[Vec<f32>],
    words: &[(String, Vec<u32>)],
    token_probs: &[f32],
) -> Vec<WordTiming> {
    if words.len() <= 1 || matrix.is_empty() {
        return Vec::new();
    }
    let neg: Vec<Vec<f32>> = matrix
        .iter()
        .map(|r| r.iter().map(|v| -v).collect())
        .collect();
    let (text_idx, time_idx) = dtw(&neg);
    // The frame at which each token row is first reached.
    let mut jump_times = Vec::with_capacity(matrix.len());
    for (k, (&t, &f)) in text_idx.iter().zip(&time_idx).enumerate() {
        if k == 0 || t != text_idx[k - 1] {
            jump_times.push(f as f64 * SECONDS_PER_FRAME);
        }
    }
    let mut boundaries = vec![0usize];
    for (_, toks) in &words[..words.len() - 1] {
        boundaries.push(boundaries.last().copied().unwrap_or(0) + toks.len());
    }
    let mut out = Vec::with_capacity(words.len() - 1);
    for (wi, (word, toks)) in words[..words.len() - 1].iter().enumerate() {
        let (a, b) = (boundaries[wi], boundaries[wi + 1]);
        let start = jump_times.get(a).copied().unwrap_or(0.0);
        let end = jump_times.get(b).copied().unwrap_or(start);
        let probs = &token_probs[a.min(token_probs.len())..b.min(token_probs.len())];
        let prob = if probs.is_empty() {
            0.0
        } else {
            probs.iter().sum::<f32>() / probs.len() as f32
        };
        out.push(WordTiming {
            word: word.clone(),
            tokens: toks.clone(),
            start,
            end,
            prob,
        });
    }
    out
}

/// Shortens over-long words around sentence ends, then merges leading and
/// trailing punctuation into the neighbouring words. Returns the median word
/// duration (capped at 0.7 s) used by the segment-boundary heuristics.
pub fn post_process(words: &mut [WordTiming]) -> f64 {
    let mut durations: Vec<f64> = words
        .iter()
        .map(|w| w.end - w.start)
        .filter(|&d| d > 0.0)
        .collect();
    let median = if durations.is_empty() {
        0.0
    } else {
        durations.sort_by(f64::total_cmp);
        let n = durations.len();
        if n % 2 == 1 {
            durations[n / 2]
        } else {
            (durations[n / 2 - 1] + durations[n / 2]) / 2.0
        }
    };
    let median = median.min(0.7);
    let max_duration = median * 2.0;
    if !durations.is_empty() {
        let sentence_end = |s: &str| ".。!！?？".contains(s);
        for i in 1..words.len() {
            if words[i].end - words[i].start > max_duration {
                if sentence_end(&words[i].word) {
                    words[i].end = words[i].start + max_duration;
                } else if sentence_end(&words[i - 1].word) {
                    words[i].start = words[i].end - max_duration;
                }
            }
        }
    }
    merge_punctuation(words);
    median
}

/// Merges punctuation-only words into their neighbours, keeping the
/// timing of the word they join. Emptied words stay in place (their tokens
/// moved) so that token counts per segment still add up; callers skip
/// words whose text is empty.
fn merge_punctuation(words: &mut [WordTiming]) {
    if words.len() < 2 {
        return;
    }
    // Leading punctuation (" (", " \"", ...) joins the following word.
    let mut following = words.len() - 1;
    for prev in (0..words.len() - 1).rev() {
        let w = &words[prev].word;
        // Substring test as in the reference: `w.strip() in prepended`.
        if w.starts_with(' ') && PREPEND_PUNCTUATION.contains(w.trim()) {
            let word = std::mem::take(&mut words[prev].word);
            let mut tokens = std::mem::take(&mut words[prev].tokens);
            tokens.append(&mut words[following].tokens);
            words[following].tokens = tokens;
            words[following].word = word + &words[following].word;
        } else {
            following = prev;
        }
    }
    // Trailing punctuation (".", ",", ...) joins the preceding word.
    let mut previous = 0;
    for next in 1..words.len() {
        if !words[previous].word.ends_with(' ')
            && APPEND_PUNCTUATION.contains(words[next].word.as_str())
        {
            let word = std::mem::take(&mut words[next].word);
            let mut tokens = std::mem::take(&mut words[next].tokens);
            words[previous].word.push_str(&word);
            words[previous].tokens.append(&mut tokens);
        } else {
            previous = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtw_follows_diagonal() {
        let cost: Vec<Vec<f32>> = (0..3)
            .map(|i| (0..3).map(|j| if i == j { 0.0 } else { 1.0 }).collect())
            .collect();
        let (r, c) = dtw(&cost);
        assert_eq!(r, vec![0, 1, 2]);
        assert_eq!(c, vec![0, 1, 2]);
    }

    #[test]
    fn median_filter_removes_spike() {
        let mut rows = vec![vec![0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0]];
        median_filter_rows(&mut rows, 7);
        assert!(rows[0].iter().all(|&v| v == 0.0));
    }
}
