//! `reelsmith chat [--mode general|planner|scripter|editor] [PROMPT]`: an installed LLM streams
//! its answer to stdout. The prompt comes from the argument or stdin; with neither (and a
//! terminal), an interactive session keeps the conversation until an empty line or Ctrl-D.

use std::io::{BufRead, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use reelsmith_llm::llm::{GenerateOptions, LlmEngine, LoadOptions, Message, SamplingParams};

use crate::config::Dirs;
use crate::hub::{HubConfig, ModelKind, Registry};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ChatMode {
    General,
    Planner,
    Scripter,
    Editor,
}

impl ChatMode {
    fn system(self) -> &'static str {
        match self {
            ChatMode::General => "You are a helpful assistant. Answer clearly and briefly.",
            ChatMode::Planner => {
                "You plan short videos. Given an idea or a script, answer with a shot list: for \
                 each scene a one-line visual prompt, the camera motion, the mood of the music and \
                 the narration, in order."
            }
            ChatMode::Scripter => {
                "You write narration scripts for short videos: a title, then scenes of one to \
                 three short spoken sentences each, vivid and accurate."
            }
            ChatMode::Editor => {
                "You edit video scripts: tighten the wording, fix facts and grammar, keep the \
                 structure, and say briefly what you changed."
            }
        }
    }
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    /// The prompt (default: stdin; an interactive session when stdin is a terminal).
    pub prompt: Option<String>,
    #[arg(long, value_enum, default_value = "general")]
    pub mode: ChatMode,
    /// A .gguf file, a Hugging Face checkpoint folder (config.json, *.safetensors,
    /// tokenizer.json), or the id of an installed or imported LLM (default: the first installed).
    #[arg(long)]
    pub model: Option<String>,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// cpu, cuda or cuda:N (CUDA needs a `--features cuda` build).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

fn gguf_in(dir: &Path, files: &[crate::hub::ModelFile]) -> Option<PathBuf> {
    files
        .iter()
        .map(|f| dir.join(&f.path))
        .find(|p| p.extension().is_some_and(|x| x == "gguf") && p.exists())
}

/// The model file: `--model` as a file, a registry id, or the first installed GGUF LLM.
pub fn model_path(arg: Option<&str>, dirs: &Dirs) -> Result<PathBuf, String> {
    if let Some(a) = arg {
        let p = Path::new(a);
        if p.is_file() || !crate::engines::models::checkpoint_weights(p).is_empty() {
            return Ok(p.to_path_buf());
        }
    }
    let reg = Registry::load(Some(&dirs.config)).map_err(|e| e.to_string())?;
    let cfg = HubConfig::from_env(|k| std::env::var(k).ok());
    let (m, dir) = crate::hub::import::pick(
        &reg,
        &cfg,
        arg,
        ModelKind::Llm,
        &["gguf", "safetensors"],
        "no LLM installed: `reelsmith models pull smollm2-135m-instruct-q4` (98 MB), \
         `reelsmith models import FILE.gguf`, or --model FILE.gguf",
    )?;
    gguf_in(&dir, &m.files)
        .or_else(|| {
            (!crate::engines::models::checkpoint_weights(&dir).is_empty()).then(|| dir.clone())
        })
        .ok_or_else(|| {
            format!(
                "{}: no .gguf file or checkpoint (config.json + *.safetensors) in {}",
                m.id,
                dir.display()
            )
        })
}

pub fn run(args: ChatArgs, dirs: &Dirs) -> i32 {
    let device = match crate::engines::models::parse_device(&args.device) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let path = match model_path(args.model.as_deref(), dirs) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let load = LoadOptions {
        device,
        ..LoadOptions::default()
    };
    let mut engine = match LlmEngine::load(&path, &load) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return 2;
        }
    };
    let opts = GenerateOptions {
        sampling: SamplingParams {
            temperature: args.temperature.max(0.0),
            top_p: args.top_p.clamp(0.0, 1.0),
            seed: args.seed,
            ..SamplingParams::default()
        },
        max_tokens: args.max_tokens.max(1),
        stop: Vec::new(),
    };
    let mut messages = vec![Message::system(args.mode.system())];
    let stdin = std::io::stdin();
    let one_shot = match args.prompt {
        Some(p) => Some(p),
        None if !stdin.is_terminal() => {
            let mut s = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut stdin.lock(), &mut s) {
                eprintln!("error: reading stdin: {e}");
                return 1;
            }
            Some(s)
        }
        None => None,
    };
    let answer = |messages: &mut Vec<Message>, engine: &mut LlmEngine| -> Result<(), String> {
        let mut out = std::io::stdout().lock();
        let mut text = String::new();
        let r = engine.chat(messages, &opts, |piece| {
            text.push_str(piece);
            if out
                .write_all(piece.as_bytes())
                .and_then(|_| out.flush())
                .is_err()
            {
                // stdout closed (a pipe's reader left): stop generating.
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        let _ = writeln!(out);
        r.map_err(|e| e.to_string())?;
        messages.push(Message::assistant(text));
        Ok(())
    };
    if let Some(p) = one_shot {
        if p.trim().is_empty() {
            eprintln!("error: the prompt is empty");
            return 2;
        }
        messages.push(Message::user(p.trim()));
        return match answer(&mut messages, &mut engine) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        };
    }
    eprintln!(
        "{} · {:?} mode · empty line or Ctrl-D ends",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        args.mode
    );
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("> ");
        let _ = std::io::stderr().flush();
        let Some(Ok(line)) = lines.next() else { break };
        if line.trim().is_empty() {
            break;
        }
        messages.push(Message::user(line.trim()));
        if let Err(e) = answer(&mut messages, &mut engine) {
            eprintln!("error: {e}");
            return 1;
        }
    }
    0
}
