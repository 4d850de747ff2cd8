//! `reelsmith transcribe AUDIO`: Whisper on candle — prints the text, optionally writes SRT/VTT
//! (with word timestamps in JSON).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::Dirs;
use crate::engines::whisper::{to_srt, to_vtt, TranscribeOptions, Whisper};
use crate::hub::{HubConfig, ModelKind, Registry};

#[derive(Args, Debug)]
pub struct TranscribeArgs {
    /// Any audio or video file ffmpeg reads.
    pub audio: PathBuf,
    /// A faster-whisper (CTranslate2) or Hugging Face Whisper folder, or the id of an installed
    /// or imported model.
    #[arg(long)]
    pub model: Option<String>,
    /// Spoken language (two letters); detected when not given.
    #[arg(long)]
    pub lang: Option<String>,
    #[arg(long)]
    pub srt: Option<PathBuf>,
    #[arg(long)]
    pub vtt: Option<PathBuf>,
    /// Print the whole transcript (segments and words with times) as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// cpu, cuda or cuda:N (CUDA needs a `--features cuda` build).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The model folder: `--model` as a folder, or a registry id (imported or in the cache), or the
/// first installed CTranslate2 Whisper.
pub(crate) fn model_dir(arg: Option<&str>, dirs: &Dirs) -> Result<PathBuf, String> {
    if let Some(a) = arg {
        let p = Path::new(a);
        if p.is_dir() {
            return Ok(p.to_path_buf());
        }
    }
    let reg = Registry::load(Some(&dirs.config)).map_err(|e| e.to_string())?;
    let cfg = HubConfig::from_env(|k| std::env::var(k).ok());
    crate::hub::import::pick(
        &reg,
        &cfg,
        arg,
        ModelKind::Asr,
        &["ct2", "safetensors"],
        "no Whisper model installed: `reelsmith models pull faster-whisper-base` (CTranslate2), \
         `reelsmith models import DIR` a faster-whisper folder (model.bin, config.json, \
         vocabulary), or pass --model DIR",
    )
    .map(|(_, dir)| dir)
}

pub fn run(args: TranscribeArgs, dirs: &Dirs) -> i32 {
    let device = match crate::engines::models::parse_device(&args.device) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let dir = match model_dir(args.model.as_deref(), dirs) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mono = match crate::media::decode::decode_audio_mono(&args.audio, 16_000) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut w = match Whisper::load(&dir, &device) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let opts = TranscribeOptions {
        language: args.lang.clone(),
        word_timestamps: args.json,
        ..TranscribeOptions::default()
    };
    let t = match w.transcribe(&mono, &opts) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    for (path, text) in [(&args.srt, to_srt(&t)), (&args.vtt, to_vtt(&t))] {
        if let Some(p) = path {
            let tmp = p.with_extension("tmp~");
            if let Err(e) = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, p)) {
                eprintln!("error: {}: {e}", p.display());
                return 1;
            }
        }
    }
    if args.json {
        match serde_json::to_string_pretty(&t) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
    } else {
        println!("{}", t.text.trim());
        eprintln!(
            "language: {} ({:.0} %)",
            t.language,
            t.language_prob * 100.0
        );
    }
    0
}
