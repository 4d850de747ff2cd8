//! SubRip (`.srt`) and WebVTT (`.vtt`) writers, and an SRT reader.

use super::Cue;

/// Why an SRT document could not be parsed. `cue` is the 1-based position of
/// the cue block in the file, `line` the 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SrtError {
    #[error("SRT cue {cue} (line {line}): expected a numeric cue index, found {found:?}")]
    BadIndex {
        cue: usize,
        line: usize,
        found: String,
    },
    #[error("SRT cue {cue} (line {line}): missing `start --> end` timing line")]
    MissingTiming { cue: usize, line: usize },
    #[error(
        "SRT cue {cue} (line {line}): malformed timing {found:?}, expected `HH:MM:SS,mmm --> HH:MM:SS,mmm`"
    )]
    BadTiming {
        cue: usize,
        line: usize,
        found: String,
    },
    #[error("SRT cue {cue} (line {line}): end {end} is before start {start}")]
    EndBeforeStart {
        cue: usize,
        line: usize,
        start: String,
        end: String,
    },
}

impl SrtError {
    /// 1-based position of the offending cue block.
    pub fn cue(&self) -> usize {
        match self {
            SrtError::BadIndex { cue, .. }
            | SrtError::MissingTiming { cue, .. }
            | SrtError::BadTiming { cue, .. }
            | SrtError::EndBeforeStart { cue, .. } => *cue,
        }
    }

    /// 1-based line number of the offending line.
    pub fn line(&self) -> usize {
        match self {
            SrtError::BadIndex { line, .. }
            | SrtError::MissingTiming { line, .. }
            | SrtError::BadTiming { line, .. }
            | SrtError::EndBeforeStart { line, .. } => *line,
        }
    }
}

/// Whole milliseconds of a (non-negative) time in seconds.
fn millis(t: f64) -> u64 {
    if t.is_finite() && t > 0.0 {
        (t * 1000.0).round() as u64
    } else {
        0
    }
}

fn timestamp(t: f64, sep: char) -> String {
    let ms = millis(t);
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Caption lines that can be written without ending the cue block early.
fn text_lines(cue: &Cue) -> impl Iterator<Item = &str> {
    cue.lines
        .iter()
        .flat_map(|l| l.lines())
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
}

/// Renders cues as SRT: numbered blocks, `HH:MM:SS,mmm --> HH:MM:SS,mmm`,
/// one text line per caption line, blank line after each block, `\n` line
/// endings. Times are rounded to milliseconds. Blank caption lines are
/// dropped (they would end the block). Text is written verbatim.
pub fn to_srt(cues: &[Cue]) -> String {
    let mut out = String::new();
    for (k, cue) in cues.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n",
            k + 1,
            timestamp(cue.start, ','),
            timestamp(cue.end, ',')
        ));
        for line in text_lines(cue) {
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// Renders cues as WebVTT (`WEBVTT` header, `HH:MM:SS.mmm` times). `&`, `<`
/// and `>` are escaped so text is never taken for cue markup.
pub fn to_vtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for cue in cues {
        out.push_str(&format!(
            "{} --> {}\n",
            timestamp(cue.start, '.'),
            timestamp(cue.end, '.')
        ));
        for line in text_lines(cue) {
            out.push_str(
                &line
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;"),
            );
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// Parses `H+:MM:SS,mmm` (a `.` before the milliseconds is tolerated).
fn parse_timestamp(s: &str) -> Option<f64> {
    let (hms, ms) = s.split_once([',', '.'])?;
    let mut parts = hms.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let digits = |p: &str, len: Option<usize>| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && match len {
                None => true,
                Some(n) => p.len() == n,
            }
    };
    if !(digits(h, None)
        && h.len() <= 4
        && digits(m, Some(2))
        && digits(sec, Some(2))
        && digits(ms, Some(3)))
    {
        return None;
    }
    let (h, m, sec, ms): (u64, u64, u64, u64) = (
        h.parse().ok()?,
        m.parse().ok()?,
        sec.parse().ok()?,
        ms.parse().ok()?,
    );
    if m >= 60 || sec >= 60 {
        return None;
    }
    Some(((h * 3600 + m * 60 + sec) * 1000 + ms) as f64 / 1000.0)
}

/// Parses a timing line `start --> end [position settings]`.
fn parse_timing(line: &str) -> Option<(f64, f64)> {
    let (a, b) = line.split_once("-->")?;
    let end = b.split_whitespace().next()?;
    Some((parse_timestamp(a.trim())?, parse_timestamp(end)?))
}

/// Parses an SRT document. Accepts a UTF-8 BOM, `\r\n` or `\n` line endings,
/// trailing whitespace, extra blank lines and a missing cue index. Rejects
/// malformed timestamps and cues that end before they start, reporting the
/// cue number and line.
pub fn parse_srt(s: &str) -> Result<Vec<Cue>, SrtError> {
    let s = s.strip_prefix('\u{FEFF}').unwrap_or(s);
    let mut cues = Vec::new();
    let mut lines = s
        .split('\n')
        .map(|l| l.trim_end())
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .peekable();
    loop {
        // Skip blank lines between blocks.
        while lines.next_if(|(_, l)| l.is_empty()).is_some() {}
        let Some((first_no, first)) = lines.next() else {
            break;
        };
        let cue_no = cues.len() + 1;
        let (timing_no, timing) = if first.contains("-->") {
            (first_no, first)
        } else {
            let index = first.trim_start();
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SrtError::BadIndex {
                    cue: cue_no,
                    line: first_no,
                    found: first.to_string(),
                });
            }
            match lines.next_if(|(_, l)| !l.is_empty()) {
                Some(t) => t,
                None => {
                    return Err(SrtError::MissingTiming {
                        cue: cue_no,
                        line: first_no + 1,
                    })
                }
            }
        };
        if !timing.contains("-->") {
            return Err(SrtError::MissingTiming {
                cue: cue_no,
                line: timing_no,
            });
        }
        let (start, end) = parse_timing(timing.trim()).ok_or_else(|| SrtError::BadTiming {
            cue: cue_no,
            line: timing_no,
            found: timing.trim().to_string(),
        })?;
        if end < start {
            let (a, b) = timing.split_once("-->").unwrap_or_default();
            return Err(SrtError::EndBeforeStart {
                cue: cue_no,
                line: timing_no,
                start: a.trim().to_string(),
                end: b.split_whitespace().next().unwrap_or_default().to_string(),
            });
        }
        let mut text = Vec::new();
        while let Some((_, l)) = lines.next_if(|(_, l)| !l.is_empty()) {
            text.push(l.to_string());
        }
        cues.push(Cue {
            start,
            end,
            lines: text,
        });
    }
    Ok(cues)
}
