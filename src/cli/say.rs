//! `reelsmith say TEXT --voice V -o out.wav`: speak with a Piper voice (VITS on candle), for
//! trying voices, speakers and scales. Sentences are written as they are synthesized; the file
//! appears under its name only when complete.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use crate::config::Dirs;
use crate::engines::models::{auto_voice, find_voice, parse_device};
use crate::engines::vits::speak::{PiperEngine, SpeakError};
use crate::hub::{HubConfig, Registry};

#[derive(Args, Debug)]
pub struct SayArgs {
    /// What to say (`-` reads standard input).
    pub text: String,
    /// A Piper voice: its id or name (`piper-en_US-joe-medium`, `en_US-joe-medium`, an
    /// imported voice's file name; installed voices first, case aside), a NAME.onnx file
    /// (NAME.onnx.json beside it) or a folder holding one. Default: the installed voice for
    /// --lang.
    #[arg(long)]
    pub voice: Option<String>,
    /// Language whose installed voice to use when --voice is not given.
    #[arg(long, default_value = "en")]
    pub lang: String,
    /// Output WAV (16-bit mono at the voice's rate).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Speaker of a multi-speaker voice: name or number.
    #[arg(long)]
    pub speaker: Option<String>,
    /// Slower (> 1) or faster (< 1) speech; default the voice's own.
    #[arg(long)]
    pub length_scale: Option<f32>,
    /// Variation of the voice; default the voice's own (0.667 in most).
    #[arg(long)]
    pub noise_scale: Option<f32>,
    /// Variation of the timing; default the voice's own (0.8 in most).
    #[arg(long)]
    pub noise_w: Option<f32>,
    /// Seconds of silence between sentences.
    #[arg(long, default_value_t = crate::engines::vits::speak::SENTENCE_SILENCE)]
    pub sentence_silence: f32,
    /// Seed of the noise (same seed, same audio).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda or cuda:N (CUDA needs a `--features cuda` build).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

fn scale(name: &str, v: Option<f32>, default: f32, max: f32) -> Result<f32, String> {
    match v {
        None => Ok(default),
        Some(x) if x.is_finite() && (0.0..=max).contains(&x) => Ok(x),
        Some(x) => Err(format!("--{name} {x}: use a number from 0 to {max}")),
    }
}

pub fn run(args: SayArgs, dirs: &Dirs) -> i32 {
    match say(&args, dirs) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

fn say(args: &SayArgs, dirs: &Dirs) -> Result<(), String> {
    let text = if args.text == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("standard input: {e}"))?;
        s
    } else {
        args.text.clone()
    };
    if text.trim().is_empty() {
        return Err("nothing to say: the text is empty".into());
    }
    if !(0.0..=5.0).contains(&args.sentence_silence) {
        return Err(format!(
            "--sentence-silence {}: use 0 to 5 seconds",
            args.sentence_silence
        ));
    }
    let device = parse_device(&args.device)?;
    let reg = Registry::load(Some(&dirs.config)).map_err(|e| e.to_string())?;
    let cfg = HubConfig::from_env(|k| std::env::var(k).ok());
    let voice = match &args.voice {
        Some(v) => find_voice(v, "--voice", &reg, &cfg)?,
        None => auto_voice(&reg, &cfg, &args.lang).ok_or_else(|| {
            format!(
                "no Piper voice for {} is installed: `reelsmith models list --kind tts`, then \
                 `reelsmith models pull ID`, or pass --voice NAME.onnx",
                args.lang
            )
        })?,
    };
    let engine = PiperEngine::open(&voice.path, &device).map_err(|e| e.to_string())?;
    let mut opts = engine.default_options();
    let own = opts.scales;
    opts.scales.length_scale = scale("length-scale", args.length_scale, own.length_scale, 10.0)?;
    opts.scales.noise_scale = scale("noise-scale", args.noise_scale, own.noise_scale, 2.0)?;
    opts.scales.noise_w = scale("noise-w", args.noise_w, own.noise_w, 2.0)?;
    if let Some(s) = &args.speaker {
        opts.speaker = Some(engine.speaker(s).map_err(|e| format!("--speaker: {e}"))?);
    }
    opts.sentence_silence = args.sentence_silence;
    opts.seed = args.seed;
    let rate = engine.sample_rate();
    let (written, report, seconds) = write_streaming(&args.output, rate, |sink| {
        let t0 = Instant::now();
        let report = engine.speak_streaming(&text, &opts, sink)?;
        Ok((report, t0.elapsed().as_secs_f64()))
    })?;
    if written == 0 {
        return Err("espeak-ng produced no phonemes for this text".into());
    }
    let audio = written as f64 / rate as f64;
    eprintln!(
        "{}: {} sentence(s), {audio:.2} s of audio in {seconds:.2} s (realtime factor {:.3}) with {}",
        args.output.display(),
        report.sentences,
        seconds / audio.max(1e-9),
        engine.name
    );
    if !report.unknown_phonemes.is_empty() {
        let list: String = report.unknown_phonemes.iter().collect();
        eprintln!("note: the voice has no ids for these phonemes (left out): {list}");
    }
    Ok(())
}

/// Writes 16-bit mono WAV chunks to a temporary file beside `out` and renames it when `work`
/// finished; on error nothing is left behind.
fn write_streaming<T>(
    out: &Path,
    rate: u32,
    work: impl FnOnce(
        &mut dyn FnMut(&[f32]) -> Result<(), SpeakIoError>,
    ) -> Result<(T, f64), SpeakIoError>,
) -> Result<(usize, T, f64), String> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".say-")
        .suffix(".wav.part")
        .tempfile_in(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let file = tmp
        .reopen()
        .map_err(|e| format!("{}: {e}", tmp.path().display()))?;
    let mut w = hound::WavWriter::new(std::io::BufWriter::new(file), spec)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let mut written = 0usize;
    let mut sink = |chunk: &[f32]| -> Result<(), SpeakIoError> {
        for s in chunk {
            let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            w.write_sample(v)
                .map_err(|e| SpeakIoError::Io(e.to_string()))?;
        }
        w.flush().map_err(|e| SpeakIoError::Io(e.to_string()))?;
        written += chunk.len();
        Ok(())
    };
    let (t, secs) = work(&mut sink).map_err(|e| match e {
        SpeakIoError::Speak(e) => e.to_string(),
        SpeakIoError::Io(e) => format!("{}: {e}", out.display()),
    })?;
    w.finalize()
        .map_err(|e| format!("{}: {e}", out.display()))?;
    // A temporary file is private (0600); the WAV is an ordinary output file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist(out)
        .map_err(|e| format!("{}: {}", out.display(), e.error))?;
    Ok((written, t, secs))
}

/// A synthesis error or a write error while streaming.
#[derive(Debug)]
enum SpeakIoError {
    Speak(SpeakError),
    Io(String),
}

impl From<SpeakError> for SpeakIoError {
    fn from(e: SpeakError) -> Self {
        SpeakIoError::Speak(e)
    }
}
