//! `reelsmith models list|recommend|pull|verify|rm`: the registry and the local model cache
//! (the standard Hugging Face cache, shared with Python tools).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::config::Dirs;
use crate::gpu::GpuMonitor;
use crate::hub::{self, HubConfig, JobSize, ModelEntry, ProgressEvent, ProgressTracker, Registry};

#[derive(Args, Debug)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub what: ModelsCmd,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCmd {
    /// Every model in the registry with its size, VRAM need and whether it is installed.
    List {
        /// Only this kind: llm, image, video, asr, tts, vlm, upscale, interpolation.
        #[arg(long)]
        kind: Option<String>,
        /// Only installed models.
        #[arg(long)]
        installed: bool,
        #[arg(long)]
        json: bool,
    },
    /// The models that fit this machine's GPUs, per kind.
    Recommend {
        #[arg(long)]
        json: bool,
    },
    /// Download models into the Hugging Face cache (resumable; sha256-checked).
    Pull {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Re-hash an installed model's files.
    Verify {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete a model's files from the cache.
    Rm {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Register a model already on disk: a .gguf file, a safetensors folder, a faster-whisper
    /// (CTranslate2) folder, or a Piper voice (.onnx + .onnx.json). Nothing is copied.
    Import {
        path: std::path::PathBuf,
        /// The id to use (default: the file or folder name).
        #[arg(long)]
        id: Option<String>,
    },
}

fn entries<'a>(reg: &'a Registry, ids: &[String]) -> Result<Vec<&'a ModelEntry>, String> {
    ids.iter()
        .map(|id| {
            reg.get(id).ok_or_else(|| {
                let near = reg.suggest(id);
                if near.is_empty() {
                    format!("{id}: no such model; `reelsmith models list` shows them all")
                } else {
                    format!("{id}: no such model; did you mean {}?", near.join(", "))
                }
            })
        })
        .collect()
}

pub fn run(args: ModelsArgs, dirs: &Dirs) -> i32 {
    let reg = match Registry::load(Some(&dirs.config)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let cfg = HubConfig::from_env(|k| std::env::var(k).ok());
    match args.what {
        ModelsCmd::List {
            kind,
            installed,
            json,
        } => list(&reg, &cfg, kind.as_deref(), installed, json),
        ModelsCmd::Recommend { json } => recommend(&reg, json),
        ModelsCmd::Pull { ids } => match entries(&reg, &ids) {
            Ok(ms) => pull(&cfg, &ms),
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
        ModelsCmd::Verify { ids } => match entries(&reg, &ids) {
            Ok(ms) => verify(&cfg, &ms),
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
        ModelsCmd::Import { path, id } => import(&path, id, dirs),
        ModelsCmd::Rm { ids } => match entries(&reg, &ids) {
            Ok(ms) => rm(&cfg, &ms),
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
    }
}

fn list(reg: &Registry, cfg: &HubConfig, kind: Option<&str>, only: bool, json: bool) -> i32 {
    if let Some(k) = kind {
        if !hub::ModelKind::ALL.iter().any(|x| x.as_str() == k) {
            eprintln!(
                "error: --kind {k}: use one of {}",
                hub::ModelKind::ALL.map(|k| k.as_str()).join(", ")
            );
            return 2;
        }
    }
    let job = JobSize::default();
    let rows: Vec<(&ModelEntry, bool, u64)> = reg
        .models()
        .iter()
        .filter(|m| kind.is_none_or(|k| m.kind.as_str() == k))
        .map(|m| {
            let inst = match &m.local {
                Some(l) => l.exists(),
                None => hub::installed(cfg, &m.spec()).is_some(),
            };
            (m, inst, m.vram(&job))
        })
        .filter(|(_, inst, _)| !only || *inst)
        .collect();
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(m, inst, vram)| {
                serde_json::json!({
                    "id": m.id, "name": m.name, "kind": m.kind.as_str(), "repo": m.repo,
                    "revision": m.revision, "license": m.license, "tier": m.tier.as_str(),
                    "size": m.download_size(), "vram": vram, "installed": inst,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return 0;
    }
    println!(
        "{:<34} {:<6} {:<8} {:>10} {:>10}  {:<9} LICENSE",
        "ID", "KIND", "TIER", "SIZE", "VRAM", "STATE"
    );
    for (m, inst, vram) in &rows {
        println!(
            "{:<34} {:<6} {:<8} {:>10} {:>10}  {:<9} {}",
            m.id,
            m.kind.as_str(),
            m.tier.as_str(),
            m.download_size().map_or("?".into(), hub::human),
            hub::human(*vram),
            if *inst { "installed" } else { "-" },
            m.license
        );
    }
    println!(
        "{} model(s); cache: {} (VRAM for a 1024×576 image, 49 frames, 4096 tokens)",
        rows.len(),
        cfg.cache_dir.display()
    );
    0
}

fn recommend(reg: &Registry, json: bool) -> i32 {
    let gpus = GpuMonitor::from_env();
    let samples = gpus.sample();
    let biggest = samples.iter().map(|s| s.total).max();
    let recs = hub::vram::recommend(reg.models(), biggest, &JobSize::default());
    if json {
        let v: Vec<serde_json::Value> = recs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "kind": r.kind.as_str(),
                    "models": r.models.iter().map(|(m, n)| serde_json::json!({"id": m.id, "vram": n})).collect::<Vec<_>>(),
                    "note": r.note,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"gpu": gpus.describe(), "tier": biggest.and_then(hub::Tier::of_memory).map(|t| t.as_str()), "kinds": v})
        );
        return 0;
    }
    match biggest {
        Some(b) => println!(
            "{} — largest {} ({} tier)",
            gpus.describe(),
            hub::human(b),
            hub::Tier::of_memory(b).map_or("below low", |t| t.as_str())
        ),
        None => println!("{}", gpus.describe()),
    }
    for r in recs {
        if r.models.is_empty() {
            println!("  {:<14} {}", r.kind.as_str(), r.note.unwrap_or_default());
        } else {
            let list: Vec<String> = r
                .models
                .iter()
                .map(|(m, n)| format!("{} ({})", m.id, hub::human(*n)))
                .collect();
            println!("  {:<14} {}", r.kind.as_str(), list.join(", "));
        }
    }
    0
}

fn pull(cfg: &HubConfig, models: &[&ModelEntry]) -> i32 {
    if let Some(m) = models.iter().find(|m| m.local.is_some()) {
        eprintln!(
            "error: {}: imported from local files; nothing to download",
            m.id
        );
        return 2;
    }
    let cancel = Arc::new(AtomicBool::new(false));
    ctrl_c_sets(cancel.clone());
    for m in models {
        let bar = indicatif::ProgressBar::new(m.download_size().unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(m.id.clone());
        let tracker = Mutex::new(ProgressTracker::new(Duration::from_secs(5)));
        let progress = |e: &ProgressEvent| {
            if let Ok(mut t) = tracker.lock() {
                t.observe(e);
                if let Some(total) = t.total() {
                    bar.set_length(total);
                }
                bar.set_position(t.done());
            }
            if let ProgressEvent::Retrying { file, error, .. } = e {
                bar.set_message(format!("retrying {file}: {error}"));
            }
        };
        match hub::pull(cfg, &m.spec(), &progress, &cancel) {
            Ok(p) => {
                bar.finish_and_clear();
                println!("{}: installed in {}", m.id, p.dir.display());
            }
            Err(e) => {
                bar.abandon();
                eprintln!("error: {}: {e}", m.id);
                return if cancel.load(Ordering::Relaxed) {
                    130
                } else {
                    1
                };
            }
        }
    }
    0
}

/// Ctrl-C asks the download to stop (the partial file stays for a later resume).
fn ctrl_c_sets(flag: Arc<AtomicBool>) {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    let _ = FLAG.set(flag);
    extern "C" fn on_int(_: libc::c_int) {
        if let Some(f) = FLAG.get() {
            f.store(true, Ordering::Relaxed);
        }
    }
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_int as *const () as libc::sighandler_t);
    }
}

fn verify(cfg: &HubConfig, models: &[&ModelEntry]) -> i32 {
    let mut bad = 0;
    for m in models {
        match hub::verify(cfg, &m.spec()) {
            Ok(checks) => {
                for (file, r) in checks {
                    match r {
                        Ok(()) => println!("{}: {file}: ok", m.id),
                        Err(e) => {
                            bad += 1;
                            println!("{}: {file}: {e}", m.id);
                        }
                    }
                }
            }
            Err(e) => {
                bad += 1;
                eprintln!("error: {}: {e}", m.id);
            }
        }
    }
    i32::from(bad > 0)
}

fn import(path: &std::path::Path, id: Option<String>, dirs: &Dirs) -> i32 {
    let d = match hub::import::detect(path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let id = id.unwrap_or_else(|| {
        let stem = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "imported".into());
        let stem = stem
            .trim_end_matches(".gguf")
            .trim_end_matches(".json")
            .trim_end_matches(".onnx")
            .to_string();
        stem.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect()
    });
    let entry = hub::import::entry(&d, &id);
    match hub::import::register(&dirs.config, &entry) {
        Ok(file) => {
            println!(
                "{id}: {} {} ({}, {}) from {} — registered in {}",
                d.kind.as_str(),
                d.format,
                d.arch,
                hub::human(d.files.iter().map(|f| f.1).sum()),
                d.root.display(),
                file.display()
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

fn rm(cfg: &HubConfig, models: &[&ModelEntry]) -> i32 {
    for m in models {
        if let Some(l) = &m.local {
            println!(
                "{}: imported from {}; its files are yours and stay (remove the entry from                  <config>/models/imported.toml to forget it)",
                m.id,
                l.display()
            );
            continue;
        }
        match hub::remove(cfg, &m.repo) {
            Ok(0) => println!("{}: not installed", m.id),
            Ok(n) => println!("{}: removed {} ({})", m.id, hub::human(n), m.repo),
            Err(e) => {
                eprintln!("error: {}: {e}", m.id);
                return 1;
            }
        }
    }
    0
}
