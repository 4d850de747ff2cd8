//! `reelsmith models list|recommend|pull|pulls|verify|rm|import`: the registry and the local
//! model cache (the standard Hugging Face cache, shared with Python tools). Pulls are jobs in
//! the store (see [`crate::hub::queue`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::config::Dirs;
use crate::gpu::GpuMonitor;
use crate::hub::{self, HubConfig, JobSize, ModelEntry, Registry};
use crate::store::{PullEnd, PullId, PullRow, PullStart, PullStatus, Store};

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
    /// Download models into the Hugging Face cache (resumable; sha256-checked). Each pull is
    /// a job in the store: the studio shows it, and one cut short resumes where it stopped.
    Pull {
        #[arg(required = true)]
        ids: Vec<String>,
        /// Only queue the downloads; the studio or `reelsmith run` performs them.
        #[arg(long)]
        queue: bool,
    },
    /// The model downloads: queued, running and recently finished.
    Pulls {
        /// Stop this download (a pull number or a model id).
        #[arg(long, value_name = "PULL")]
        cancel: Option<String>,
        #[arg(long)]
        json: bool,
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
        ModelsCmd::Pull { ids, queue } => match entries(&reg, &ids) {
            Ok(ms) => pull(dirs, &reg, &cfg, &ms, queue),
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
        ModelsCmd::Pulls { cancel, json } => pulls(dirs, cancel.as_deref(), json),
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
                    "models": r.models.iter().map(|(m, n, how)| serde_json::json!({"id": m.id, "vram": n, "how": how})).collect::<Vec<_>>(),
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
                .map(|(m, n, how)| match how {
                    Some(how) => format!("{} ({}, {how})", m.id, hub::human(*n)),
                    None => format!("{} ({})", m.id, hub::human(*n)),
                })
                .collect();
            println!("  {:<14} {}", r.kind.as_str(), list.join(", "));
        }
    }
    0
}

fn open_store(dirs: &Dirs) -> Result<Store, String> {
    std::fs::create_dir_all(&dirs.data).map_err(|e| format!("{}: {e}", dirs.data.display()))?;
    Store::open(&dirs.db_path()).map_err(|e| e.to_string())
}

fn pull(dirs: &Dirs, reg: &Registry, cfg: &HubConfig, models: &[&ModelEntry], queue: bool) -> i32 {
    if let Some(m) = models.iter().find(|m| m.local.is_some()) {
        eprintln!(
            "error: {}: imported from local files; nothing to download",
            m.id
        );
        return 2;
    }
    let store = match open_store(dirs) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if queue {
        for m in models {
            match store.enqueue_pull(&m.id) {
                Ok((p, true)) => println!("{}: download queued (pull {})", m.id, p.id),
                Ok((p, false)) => println!("{}: already {} (pull {})", m.id, p.status, p.id),
                Err(e) => {
                    eprintln!("error: {e}");
                    return 1;
                }
            }
        }
        if crate::scheduler::lock::SchedulerLock::holder_pid(&dirs.data)
            .is_none_or(|pid| !hub::queue::process_alive(pid))
        {
            println!("no scheduler is running here: `reelsmith studio` or `reelsmith run` downloads the queue");
        }
        return 0;
    }
    let cancel = Arc::new(AtomicBool::new(false));
    ctrl_c_sets(cancel.clone());
    let mut runner = hub::queue::PullRunner::new(cfg.clone(), reg.clone(), 1);
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
        let mut ours = true;
        let end = match store.start_pull_now(&m.id, std::process::id()) {
            Ok(PullStart::Started(row)) => run_here(&store, &mut runner, row, &bar, &cancel),
            Ok(PullStart::Busy(row)) => {
                ours = false;
                bar.println(format!(
                    "{}: pull {} is running in process {}; following it (Ctrl-C leaves it running)",
                    m.id,
                    row.id,
                    row.owner_pid.map(|p| p.to_string()).unwrap_or_default()
                ));
                follow(&store, row.id, &bar, &cancel)
            }
            Err(e) => Err(e.to_string()),
        };
        match end {
            Ok(PullEnd::Done(dir)) => {
                bar.finish_and_clear();
                println!("{}: installed in {dir}", m.id);
            }
            Ok(PullEnd::Failed(e)) | Err(e) => {
                bar.abandon();
                eprintln!("error: {}: {e}", m.id);
                return 1;
            }
            Ok(PullEnd::Requeue) if !ours => {
                bar.abandon();
                eprintln!(
                    "{}: stopped watching; the download goes on in the other process",
                    m.id
                );
                return 130;
            }
            Ok(PullEnd::Cancelled) | Ok(PullEnd::Requeue) => {
                bar.abandon();
                eprintln!(
                    "{}: stopped; the files on disk resume with `reelsmith models pull {}`",
                    m.id, m.id
                );
                return 130;
            }
        }
    }
    0
}

/// Runs a pull this process claimed, drawing its progress; Ctrl-C cancels it.
fn run_here(
    store: &Store,
    runner: &mut hub::queue::PullRunner,
    row: PullRow,
    bar: &indicatif::ProgressBar,
    cancel: &AtomicBool,
) -> Result<PullEnd, String> {
    let id = row.id;
    let mut reports = runner.adopt(store, row).map_err(|e| e.to_string())?;
    loop {
        for r in reports.drain(..) {
            if let hub::queue::PullReport::Finished { id: done, end, .. } = r {
                if done == id {
                    return Ok(end);
                }
            }
        }
        if cancel.load(Ordering::Relaxed) {
            runner.cancel(id);
        }
        if let Some(p) = runner.progress(id) {
            if let Some(total) = p.total {
                bar.set_length(total);
            }
            bar.set_position(p.done);
            bar.set_message(p.retrying.unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
        reports = runner.tick(store, false).map_err(|e| e.to_string())?;
    }
}

/// Shows another process's pull until it ends (Ctrl-C stops watching, not the download).
fn follow(
    store: &Store,
    id: PullId,
    bar: &indicatif::ProgressBar,
    stop: &AtomicBool,
) -> Result<PullEnd, String> {
    loop {
        let Some(p) = store.pull(id).map_err(|e| e.to_string())? else {
            return Err(format!("pull {id} disappeared from the store"));
        };
        if let Some(total) = p.bytes_total {
            bar.set_length(total);
        }
        bar.set_position(p.bytes_done);
        match p.status {
            PullStatus::Done => return Ok(PullEnd::Done(p.path.unwrap_or_default())),
            PullStatus::Failed => return Ok(PullEnd::Failed(p.error.unwrap_or_default())),
            PullStatus::Cancelled => return Ok(PullEnd::Cancelled),
            PullStatus::Queued => bar.set_message("queued again (its runner stopped)"),
            PullStatus::Running => bar.set_message(""),
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(PullEnd::Requeue);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn pulls(dirs: &Dirs, cancel: Option<&str>, json: bool) -> i32 {
    let store = match open_store(dirs) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if let Some(what) = cancel {
        let target = match what.parse::<PullId>() {
            Ok(id) => store.pull(id),
            Err(_) => store.active_pull(what),
        };
        return match target {
            Ok(Some(p)) if p.status.is_active() => match store.cancel_pull(p.id) {
                Ok(after) if after.status.is_active() => {
                    println!("pull {}: {} stops shortly", p.id, p.model);
                    0
                }
                Ok(_) => {
                    println!("pull {}: {} cancelled", p.id, p.model);
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            },
            Ok(Some(p)) => {
                eprintln!("error: pull {} ({}) already {}", p.id, p.model, p.status);
                2
            }
            Ok(None) => {
                eprintln!(
                    "error: --cancel {what}: no such download; `reelsmith models pulls` lists them"
                );
                2
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        };
    }
    let rows = match store.pulls(20) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if json {
        return match serde_json::to_string_pretty(&rows) {
            Ok(s) => {
                println!("{s}");
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        };
    }
    if rows.is_empty() {
        println!("no model downloads yet; `reelsmith models pull ID` starts one");
        return 0;
    }
    println!(
        "{:>5}  {:<10} {:<28} {:>21}  note",
        "pull", "status", "model", "bytes"
    );
    for p in rows {
        let bytes = match p.bytes_total {
            Some(t) => format!("{}/{}", hub::human(p.bytes_done), hub::human(t)),
            None => hub::human(p.bytes_done),
        };
        let note = match p.status {
            PullStatus::Running => format!(
                "{}/s, process {}",
                hub::human(p.bytes_per_s as u64),
                p.owner_pid.map(|p| p.to_string()).unwrap_or_default()
            ),
            PullStatus::Failed => p.error.unwrap_or_default(),
            PullStatus::Done => p.path.unwrap_or_default(),
            _ => String::new(),
        };
        println!(
            "{:>5}  {:<10} {:<28} {:>21}  {note}",
            p.id, p.status, p.model, bytes
        );
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
            .trim_end_matches(".safetensors")
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
