//! espeak-ng voices: every one of our 11 languages, a different variant and pitch per character.
//! Runs the `espeak-ng` program with an argument list (never a shell), text on stdin.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::engines::{EngineError, SpeechEngine, VoiceParams};
use crate::media::wav::{self, Audio};

pub struct Espeak {
    program: String,
}

impl Default for Espeak {
    fn default() -> Self {
        Self {
            program: std::env::var("REELSMITH_ESPEAK").unwrap_or_else(|_| "espeak-ng".into()),
        }
    }
}

impl Espeak {
    /// espeak-ng's version line, or None when it is not installed.
    pub fn version(&self) -> Option<String> {
        let out = Command::new(&self.program).arg("--version").output().ok()?;
        let s = String::from_utf8_lossy(&out.stdout);
        s.lines().next().map(|l| l.trim().to_string())
    }

    /// Whether espeak-ng has a voice called `name`.
    pub fn has_voice(&self, name: &str) -> bool {
        let Ok(out) = Command::new(&self.program).arg("--voices").output() else {
            return false;
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some(name))
    }
}

/// Removes leading and trailing silence (below −50 dBFS), keeping 30 ms of margin.
pub fn trim_silence(samples: &[f32], rate: u32) -> &[f32] {
    let thr = 10f32.powf(-50.0 / 20.0);
    let margin = (rate as usize * 30) / 1000;
    let first = samples.iter().position(|s| s.abs() > thr);
    let last = samples.iter().rposition(|s| s.abs() > thr);
    match (first, last) {
        (Some(a), Some(b)) => {
            &samples[a.saturating_sub(margin)..(b + margin + 1).min(samples.len())]
        }
        _ => &[],
    }
}

/// espeak-ng streams its WAV to stdout before it knows the length, so the RIFF and `data` chunk
/// sizes in the header are placeholders. Rewrites them from the bytes actually received.
pub fn fix_streamed_wav_sizes(bytes: &mut [u8]) {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return;
    }
    let riff = (bytes.len() - 8) as u32;
    bytes[4..8].copy_from_slice(&riff.to_le_bytes());
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = [bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]];
        if &id == b"data" {
            let size = (bytes.len() - pos - 8) as u32;
            bytes[pos + 4..pos + 8].copy_from_slice(&size.to_le_bytes());
            return;
        }
        let size = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        pos += 8 + size + (size & 1);
    }
}

impl SpeechEngine for Espeak {
    fn id(&self) -> String {
        "espeak-ng@1".into()
    }

    fn synthesize(&self, text: &str, voice: &VoiceParams) -> Result<Audio, EngineError> {
        let fail = |message: String| EngineError::Failed {
            engine: self.id(),
            message,
        };
        let v = if voice.variant.is_empty() {
            voice.voice.clone()
        } else {
            format!("{}+{}", voice.voice, voice.variant)
        };
        let mut child = Command::new(&self.program)
            .args(["-b", "1", "--stdout", "-v", &v])
            .args(["-p", &voice.pitch.min(99).to_string()])
            .args(["-s", &voice.rate.clamp(80, 450).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EngineError::Unavailable {
                engine: self.id(),
                hint: format!(
                    "cannot run `{}` ({e}); install it with `apt-get install espeak-ng`",
                    self.program
                ),
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A final newline makes espeak flush the last clause.
            stdin
                .write_all(text.as_bytes())
                .and_then(|_| stdin.write_all(b"\n"))
                .map_err(|e| fail(format!("writing text: {e}")))?;
        }
        let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
        if !out.status.success() || out.stdout.len() < 44 {
            return Err(fail(format!(
                "voice `{v}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let mut bytes = out.stdout;
        fix_streamed_wav_sizes(&mut bytes);
        let audio = wav::read_bytes(&bytes, Path::new("espeak-ng output"))
            .map_err(|e| fail(e.to_string()))?;
        let mono: Vec<f32> = if audio.channels > 1 {
            audio
                .samples
                .chunks(audio.channels as usize)
                .map(|c| c.iter().sum::<f32>() / c.len() as f32)
                .collect()
        } else {
            audio.samples
        };
        let trimmed = trim_silence(&mono, audio.rate).to_vec();
        if trimmed.is_empty() {
            return Err(fail(format!(
                "voice `{v}` produced silence for {:?}; the text may have nothing speakable in {}",
                text, voice.language
            )));
        }
        Ok(Audio {
            rate: audio.rate,
            channels: 1,
            samples: trimmed,
        })
    }
}
