//! Spreading caption chunks over a narration time span.

use super::{display_width, Cue};

/// Minimum on-screen time for a chunk, when the span allows it.
pub const MIN_CUE_SECONDS: f64 = 0.6;

/// Rounds seconds to whole milliseconds (the precision SRT can carry).
pub(crate) fn round_ms(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

/// Distributes `[start, end]` over `chunks` in proportion to their display
/// width, giving every chunk at least [`MIN_CUE_SECONDS`] when the span is
/// long enough for that. Cues are contiguous (each starts where the previous
/// ends), cover the span exactly and have millisecond-rounded times, so they
/// survive an SRT round trip unchanged. `start`/`end` themselves are rounded
/// to milliseconds; an `end` before `start` is treated as `start`.
pub fn time_chunks(chunks: &[Vec<String>], start: f64, end: f64) -> Vec<Cue> {
    if chunks.is_empty() {
        return Vec::new();
    }
    let start = round_ms(if start.is_finite() { start } else { 0.0 });
    let end = round_ms(if end.is_finite() {
        end.max(start)
    } else {
        start
    });
    let total = end - start;

    let weights: Vec<f64> = chunks
        .iter()
        .map(|lines| lines.iter().map(|l| display_width(l)).sum::<usize>().max(1) as f64)
        .collect();
    let durations = allocate(&weights, total, MIN_CUE_SECONDS);

    let mut ends = Vec::with_capacity(chunks.len());
    let mut acc = 0.0;
    let mut prev = start;
    for d in &durations {
        acc += d;
        prev = round_ms(start + acc).clamp(prev, end);
        ends.push(prev);
    }
    contiguous(chunks, start, end, &ends)
}

/// Cues for `chunks` back to back from `start`, chunk `k` ending at `ends[k]` and the last one
/// at `end` exactly.
fn contiguous(chunks: &[Vec<String>], start: f64, end: f64, ends: &[f64]) -> Vec<Cue> {
    let mut prev = start;
    chunks
        .iter()
        .zip(ends)
        .enumerate()
        .map(|(k, (lines, &e))| {
            let t_end = if k + 1 == chunks.len() { end } else { e };
            let cue = Cue {
                start: prev,
                end: t_end,
                lines: lines.clone(),
            };
            prev = t_end;
            cue
        })
        .collect()
}

/// Like [`time_chunks`], but each boundary between chunks is placed where the voice reaches the
/// chunk's first character, from aligned `words` (text, start, end; on the same clock). Words
/// and chunks are matched by counting non-space characters, so it works for any script. Falls
/// back to [`time_chunks`] when the words don't cover the same text or give no usable order.
pub fn time_chunks_to_words(
    chunks: &[Vec<String>],
    words: &[(String, f64, f64)],
    start: f64,
    end: f64,
) -> Vec<Cue> {
    let visible = |s: &str| s.chars().filter(|c| !c.is_whitespace()).count();
    let chunk_chars: Vec<usize> = chunks
        .iter()
        .map(|lines| lines.iter().map(|l| visible(l)).sum())
        .collect();
    let total_chars: usize = chunk_chars.iter().sum();
    let word_chars: Vec<usize> = words.iter().map(|w| visible(&w.0)).collect();
    if chunks.len() < 2 || words.is_empty() || word_chars.iter().sum::<usize>() != total_chars {
        return time_chunks(chunks, start, end);
    }
    let start = round_ms(start);
    let end = round_ms(end.max(start));
    // Time at which the voice reaches character `offset` of the text.
    let time_at = |offset: usize| -> f64 {
        let mut before = 0;
        for (w, &n) in words.iter().zip(&word_chars) {
            if offset < before + n {
                let f = (offset - before) as f64 / n.max(1) as f64;
                return w.1 + (w.2 - w.1) * f;
            }
            before += n;
        }
        words.last().map(|w| w.2).unwrap_or(end)
    };
    // Each chunk ends where the voice reaches the next one's first character.
    let mut ends = Vec::with_capacity(chunks.len());
    let mut prev = start;
    let mut offset = 0;
    for (k, n) in chunk_chars.iter().enumerate() {
        offset += n;
        let t_end = if k + 1 == chunks.len() {
            end
        } else {
            round_ms(time_at(offset))
        };
        // Out of order or squeezed to nothing: the proportional timing is safer.
        if t_end <= prev || t_end > end {
            return time_chunks(chunks, start, end);
        }
        ends.push(t_end);
        prev = t_end;
    }
    contiguous(chunks, start, end, &ends)
}

/// Splits `total` proportionally to `weights`, raising shares below `floor`
/// to `floor` (and shrinking the rest proportionally) when
/// `floor * weights.len() <= total`.
fn allocate(weights: &[f64], total: f64, floor: f64) -> Vec<f64> {
    let n = weights.len();
    if floor * n as f64 > total {
        let sum: f64 = weights.iter().sum();
        return weights.iter().map(|w| total * w / sum).collect();
    }
    let mut fixed = vec![false; n];
    loop {
        let free_time = total - floor * fixed.iter().filter(|&&f| f).count() as f64;
        let free_weight: f64 = weights
            .iter()
            .zip(&fixed)
            .filter(|(_, &f)| !f)
            .map(|(w, _)| w)
            .sum();
        let mut changed = false;
        let shares: Vec<f64> = weights
            .iter()
            .zip(fixed.iter_mut())
            .map(|(w, f)| {
                if *f {
                    floor
                } else {
                    let share = free_time * w / free_weight;
                    if share < floor {
                        *f = true;
                        changed = true;
                    }
                    share
                }
            })
            .collect();
        if !changed {
            return shares;
        }
    }
}
