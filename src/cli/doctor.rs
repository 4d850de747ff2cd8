//! `reelsmith doctor`: what this machine can do, and what to install when it can't.

use std::process::Command;

use crate::config::{ChannelSet, Dirs};
use crate::engines::procedural::espeak::Espeak;
use crate::media;
use crate::script::LANGUAGES;

fn mark(ok: bool) -> &'static str {
    if ok {
        "ok  "
    } else {
        "MISS"
    }
}

/// The family fontconfig picks for `family`, if fontconfig is there.
fn fc_match(family: &str) -> Option<String> {
    let out = Command::new("fc-match")
        .args(["-f", "%{family}", family])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// Free bytes on the file system holding `path`.
fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

pub fn run(dirs: &Dirs) -> i32 {
    let mut problems = 0;
    println!("reelsmith {}", env!("CARGO_PKG_VERSION"));

    println!("\nmedia libraries");
    match media::init() {
        Ok(()) => {
            for (lib, v) in media::versions() {
                println!("  ok   {lib} {v}");
            }
            for (what, ok) in media::capabilities() {
                println!("  {} {what}", mark(ok));
                problems += usize::from(!ok);
            }
        }
        Err(e) => {
            println!("  MISS {e}");
            problems += 1;
        }
    }

    println!("\nvoices (espeak-ng)");
    let espeak = Espeak::default();
    match espeak.version() {
        Some(v) => println!("  ok   {v}"),
        None => {
            println!("  MISS espeak-ng is not installed: apt-get install espeak-ng");
            problems += 1;
        }
    }
    let channels = ChannelSet::load(Some(&dirs.config));
    if let (Some(_), Ok(set)) = (espeak.version(), &channels) {
        if let Ok(ch) = set.get("explainer") {
            for lang in LANGUAGES {
                if let Some(v) = ch.defaults.voices.get(lang) {
                    let ok = espeak.has_voice(&v.espeak);
                    problems += usize::from(!ok);
                    println!("  {} {lang}: {}", mark(ok), v.espeak);
                }
            }
        }
    }

    println!("\nfonts (captions, titles)");
    for lang in LANGUAGES {
        let want = crate::captions::font_for_language(lang);
        match fc_match(want) {
            Some(got) => {
                let ok = got.split(',').any(|f| f.trim() == want);
                problems += usize::from(!ok);
                let hint = if ok {
                    String::new()
                } else {
                    format!(" (fontconfig picks {got}; install fonts-noto-core fonts-noto-cjk)")
                };
                println!("  {} {lang}: {want}{hint}", mark(ok));
            }
            None => {
                problems += 1;
                println!("  MISS {lang}: {want} (fontconfig's fc-match is not installed)");
            }
        }
    }

    println!("\nGPUs");
    match nvml_wrapper::Nvml::init() {
        Ok(nvml) => match nvml.device_count() {
            Ok(n) => {
                for i in 0..n {
                    match nvml.device_by_index(i) {
                        Ok(d) => {
                            let name = d.name().unwrap_or_else(|_| "?".into());
                            let mem = d.memory_info().map(|m| m.total / (1 << 20)).unwrap_or(0);
                            println!("  ok   GPU {i}: {name}, {mem} MiB");
                        }
                        Err(e) => println!("  MISS GPU {i}: {e}"),
                    }
                }
                if n == 0 {
                    println!("  --   NVML found no GPUs: CPU-only mode");
                }
            }
            Err(e) => println!("  --   NVML error ({e}): CPU-only mode"),
        },
        Err(_) => println!(
            "  --   no NVIDIA driver (NVML not found): CPU-only mode, embedded engines only"
        ),
    }

    println!("\nCUDA");
    let build = crate::gpu::cuda::BuildCuda::current();
    let driver = crate::gpu::cuda::DriverCuda::probe();
    for check in crate::gpu::cuda::report(&build, driver.as_ref().map_err(String::as_str)) {
        problems += usize::from(matches!(check, crate::gpu::cuda::Check::Problem(_)));
        println!("  {check}");
    }

    println!("\ndata");
    println!("  data dir:   {}", dirs.data.display());
    println!("  config dir: {}", dirs.config.display());
    let probe = std::fs::create_dir_all(&dirs.data).and_then(|_| {
        let p = dirs.data.join(".doctor-write-test");
        std::fs::write(&p, b"ok")?;
        std::fs::remove_file(&p)
    });
    match probe {
        Ok(()) => {
            let free = free_bytes(&dirs.data)
                .map(|b| format!("{:.1} GiB free", b as f64 / (1u64 << 30) as f64));
            println!(
                "  ok   writable{}",
                free.map(|f| format!(", {f}")).unwrap_or_default()
            );
        }
        Err(e) => {
            problems += 1;
            println!("  MISS not writable: {e}");
        }
    }
    match &channels {
        Ok(set) => println!("  ok   channels: {}", set.names().join(", ")),
        Err(e) => {
            problems += 1;
            println!("  MISS channels: {e}");
        }
    }

    println!("\nengines (built in)");
    for (kind, stage) in crate::stages::registry() {
        println!("  {:>10}  {}", kind.as_str(), stage.builtin_engine());
    }
    println!(
        "\nmodels the stages use ({})",
        crate::engines::models::engines_file(dirs).display()
    );
    match crate::engines::models::StageModels::resolve(dirs) {
        Ok(m) => {
            let show =
                |what: &str, r: &Option<crate::engines::models::ModelRef>, uses: &str| match r {
                    Some(r) => {
                        println!("  ok   {what}: {} ({}) for {uses}", r.id, r.path.display())
                    }
                    None => println!("  --   {what}: none; {uses} use the built-in engines"),
                };
            show("llm", &m.llm, "plan, translate, metadata");
            show("asr", &m.asr, "align (word timing)");
            // Piper voices per language; the others speak with espeak-ng.
            for lang in LANGUAGES {
                match m.tts.get(lang) {
                    Some(r) => println!("  ok   tts {lang}: {} ({})", r.id, r.path.display()),
                    None => println!("  --   tts {lang}: no Piper voice; espeak-ng speaks {lang}"),
                }
            }
            match &m.image {
                Some(r) => {
                    let files = crate::engines::diffusion::model_files(r);
                    match files {
                        Ok((arch, _)) => println!(
                            "  ok   image: {} ({}, {}) for keyframes{}",
                            r.id,
                            arch.name,
                            r.dir.display(),
                            match &m.refiner {
                                Some(x) => format!(", refined by {}", x.id),
                                None => String::new(),
                            }
                        ),
                        Err(e) => {
                            problems += 1;
                            println!("  MISS image: {e}");
                        }
                    }
                }
                None => println!(
                    "  --   image: none; keyframes are painted (`reelsmith models pull sd-turbo` \
                     for a model that runs on the CPU)"
                ),
            }
            // The Piper phonemizer is espeak-ng's library, opened at run time.
            if !m.tts.is_empty() {
                match crate::engines::vits::phonemize::phonemize("ok", "en-us") {
                    Ok(_) => println!("  ok   libespeak-ng (Piper phonemes)"),
                    Err(e) => {
                        problems += 1;
                        println!("  MISS {e}");
                    }
                }
            }
        }
        Err(e) => {
            problems += 1;
            println!("  MISS {e}");
        }
    }

    println!();
    if problems == 0 {
        println!("all good");
        0
    } else {
        println!("{problems} problem(s) above");
        1
    }
}
