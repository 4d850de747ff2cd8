//! `reelsmith bench llm|asr`: our LLM and Whisper engines against the established engines
//! (llama.cpp through llama-cpp-python, faster-whisper), on the same file, input and thread
//! count, in the same run; prints the ratios. The reference engines live in a private Python
//! venv that `scripts/bench-refs.sh` builds on first use (benchmark only; `--no-reference`
//! skips them). The machines here are noisy (other tenants take whole cores for seconds), so the
//! two engines run in alternating rounds and the best round of each is compared.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::config::Dirs;
use crate::engines::whisper::{TranscribeOptions, Whisper};
use reelsmith_llm::llm::{sample, LlmEngine, LoadOptions};

const REFS_SH: &str = include_str!("../../scripts/bench-refs.sh");
const REF_PY: &str = include_str!("../../scripts/bench_ref.py");

/// The prompt text (the same paragraph the reference script repeats).
const PARAGRAPH: &str =
    "The old lighthouse keeper climbed the spiral staircase every evening at dusk, \
carrying a lantern and a notebook in which he recorded the weather, the ships \
that passed, and the birds that rested on the railing. Over forty years he \
filled more than two hundred notebooks, and when the light was finally automated \
the town library asked to keep them, because together they formed the most \
complete record of the coast that anyone had ever made. ";

/// Peak resident memory of this process (VmHWM), bytes.
fn peak_rss() -> u64 {
    crate::rt::memory_of(None).1
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

/// The venv python with the reference engines (building it the first time).
fn reference_python(work: &Path) -> Result<PathBuf, String> {
    let sh = work.join("bench-refs.sh");
    std::fs::write(&sh, REFS_SH).map_err(|e| format!("{}: {e}", sh.display()))?;
    eprintln!("preparing the reference engines (the first time builds llama.cpp: ~6 min)…");
    let out = Command::new("bash")
        .arg(&sh)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("bash {}: {e}", sh.display()))?;
    if !out.status.success() {
        return Err(format!(
            "setting up the reference engines failed ({}); rerun with --no-reference to \
             measure ours alone",
            out.status
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let py = text.lines().last().unwrap_or_default().trim();
    if py.is_empty() {
        return Err("bench-refs.sh printed no python path".into());
    }
    Ok(PathBuf::from(py))
}

/// Runs the reference script; returns its JSON line.
fn reference(work: &Path, args: &[String]) -> Result<serde_json::Value, String> {
    static PYTHON: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let py = PYTHON.get_or_init(|| reference_python(work)).clone()?;
    let script = work.join("bench_ref.py");
    std::fs::write(&script, REF_PY).map_err(|e| format!("{}: {e}", script.display()))?;
    let out = Command::new(&py)
        .arg(&script)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", py.display()))?;
    if !out.status.success() {
        return Err(format!("the reference run failed ({})", out.status));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).map_err(|e| format!("reference output {line:?}: {e}"))
}

/// `--model` as a path or the id of an installed model; by default the test model when it is
/// there, else the first installed one.
fn model_path(arg: Option<&str>, dirs: &Dirs, asr: bool) -> Result<PathBuf, String> {
    if let Some(a) = arg.filter(|a| Path::new(a).exists()) {
        return Ok(PathBuf::from(a));
    }
    if arg.is_none() {
        let test = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/reelsmith/test-models"))
            .map(|d| {
                if asr {
                    d.join("whisper-base")
                } else {
                    d.join("smollm2-135m-instruct-q4_1.gguf")
                }
            })
            .filter(|t| t.join("model.bin").is_file() || t.is_file());
        if let Some(t) = test {
            return Ok(t);
        }
    }
    if asr {
        crate::cli::transcribe::model_dir(arg, dirs)
    } else {
        crate::cli::chat::model_path(arg, dirs)
    }
}

/// Our engine's prefill and decode speed on exactly `p` prompt tokens and `g` greedy tokens
/// (end-of-sequence ignored), after one untimed warm-up run.
fn ours_llm(model: &Path, threads: usize, p: usize, g: usize) -> Result<(f64, f64), String> {
    let mut engine = LlmEngine::load(
        model,
        &LoadOptions {
            threads: Some(threads),
            max_context: p + g + 16,
            ..LoadOptions::default()
        },
    )
    .map_err(|e| format!("{}: {e}", model.display()))?;
    let mut text = PARAGRAPH.to_string();
    let prompt = loop {
        let ids = engine.tokenize_prompt(&text);
        if ids.len() >= p {
            break ids[..p].to_vec();
        }
        text.push_str(PARAGRAPH);
    };
    let mut run = || -> Result<(f64, f64), String> {
        engine.reset().map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let mut next = sample::argmax(engine.forward(&prompt).map_err(|e| e.to_string())?);
        let prefill = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        for _ in 0..g {
            next = sample::argmax(engine.forward(&[next]).map_err(|e| e.to_string())?);
        }
        Ok((prefill, t1.elapsed().as_secs_f64()))
    };
    run()?;
    let (prefill, decode) = run()?;
    Ok((p as f64 / prefill, g as f64 / decode))
}

/// What `bench llm` runs.
pub struct LlmBench<'a> {
    pub model: Option<&'a str>,
    pub threads: usize,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub rounds: usize,
    pub with_reference: bool,
}

pub fn bench_llm(work: &Path, dirs: &Dirs, b: LlmBench) -> Result<(), String> {
    let (threads, p, g, rounds, with_reference) = (
        b.threads.max(1),
        b.prompt_tokens.max(1),
        b.gen_tokens.max(1),
        b.rounds.max(1),
        b.with_reference,
    );
    let model = model_path(b.model, dirs, false)?;
    println!(
        "bench llm: {} — {p} prompt tokens, {g} greedy tokens, {threads} threads, best of {rounds} alternating rounds",
        model.display()
    );
    let (mut prefill, mut decode) = (0f64, 0f64);
    let (mut rp, mut rd) = (0f64, 0f64);
    let mut r = serde_json::Value::Null;
    for round in 0..rounds {
        let (a, b) = ours_llm(&model, threads, p, g)?;
        prefill = prefill.max(a);
        decode = decode.max(b);
        eprintln!(
            "  round {}: reelsmith prefill {a:.1} decode {b:.1} tok/s",
            round + 1
        );
        if with_reference {
            let x = reference(
                work,
                &[
                    "llm".into(),
                    "--model".into(),
                    model.display().to_string(),
                    "--threads".into(),
                    threads.to_string(),
                    "--prompt-tokens".into(),
                    p.to_string(),
                    "--gen-tokens".into(),
                    g.to_string(),
                ],
            )?;
            let (xp, xd) = (
                x["prefill_tok_s"].as_f64().unwrap_or(0.0),
                x["decode_tok_s"].as_f64().unwrap_or(0.0),
            );
            eprintln!(
                "  round {}: llama.cpp prefill {xp:.1} decode {xd:.1} tok/s",
                round + 1
            );
            rp = rp.max(xp);
            rd = rd.max(xd);
            r = x;
        }
    }
    println!(
        "  reelsmith   prefill {prefill:8.1} tok/s   decode {decode:8.1} tok/s   peak RSS {:.0} MiB",
        mib(peak_rss())
    );
    if !with_reference {
        return Ok(());
    }
    println!(
        "  llama.cpp   prefill {rp:8.1} tok/s   decode {rd:8.1} tok/s   peak RSS {:.0} MiB   ({} {})",
        mib(r["peak_rss_bytes"].as_u64().unwrap_or(0)),
        r["engine"].as_str().unwrap_or_default(),
        r["version"].as_str().unwrap_or_default()
    );
    println!(
        "  ratio (ours / llama.cpp): prefill {:.2}× (target ≥ 0.5)   decode {:.2}× (target ≥ 0.8)",
        prefill / rp.max(1e-9),
        decode / rd.max(1e-9)
    );
    Ok(())
}

/// A speech WAV for the benchmark: espeak-ng reading the paragraph a few times (~45 s).
fn speech_wav(work: &Path) -> Result<PathBuf, String> {
    let wav = work.join("speech.wav");
    let text = PARAGRAPH.repeat(2);
    let out = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "165", "-w"])
        .arg(&wav)
        .arg(&text)
        .output()
        .map_err(|e| format!("espeak-ng: {e} (install espeak-ng or pass --audio FILE)"))?;
    if !out.status.success() {
        return Err(format!(
            "espeak-ng failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(wav)
}

/// What `bench asr` measures.
pub struct AsrBench<'a> {
    pub model: Option<&'a str>,
    pub audio: Option<&'a Path>,
    pub threads: usize,
    pub rounds: usize,
    /// cpu, cuda or cuda:N (both engines).
    pub device: &'a str,
    pub with_reference: bool,
}

pub fn bench_asr(work: &Path, dirs: &Dirs, b: AsrBench) -> Result<(), String> {
    let AsrBench {
        model,
        audio,
        threads,
        rounds,
        device,
        with_reference,
    } = b;
    let dev = crate::engines::models::parse_device(device)?;
    let model = model_path(model, dirs, true)?;
    let audio = match audio {
        Some(a) => a.to_path_buf(),
        None => speech_wav(work)?,
    };
    let mono =
        crate::media::decode::decode_audio_mono(&audio, 16_000).map_err(|e| e.to_string())?;
    let seconds = mono.len() as f64 / 16_000.0;
    println!(
        "bench asr: {} on {} ({seconds:.1} s), beam 1, {threads} threads, {device}",
        model.display(),
        audio.display()
    );
    let mut w = Whisper::load(&model, &dev).map_err(|e| e.to_string())?;
    let opts = TranscribeOptions {
        language: Some("en".into()),
        ..TranscribeOptions::default()
    };
    // Warm-up on the first 5 s, as the reference does.
    w.transcribe(&mono[..mono.len().min(5 * 16_000)], &opts)
        .map_err(|e| e.to_string())?;
    let (mut wall, mut cpu) = (f64::MAX, f64::MAX);
    let (mut rw, mut rc) = (f64::MAX, f64::MAX);
    let mut r = serde_json::Value::Null;
    let mut t = None;
    for round in 0..rounds {
        let (t0, c0) = (Instant::now(), super::bench::cpu_seconds());
        t = Some(w.transcribe(&mono, &opts).map_err(|e| e.to_string())?);
        let (a, b) = (t0.elapsed().as_secs_f64(), super::bench::cpu_seconds() - c0);
        eprintln!(
            "  round {}: reelsmith wall {a:.2} s CPU {b:.2} s",
            round + 1
        );
        wall = wall.min(a);
        cpu = cpu.min(b);
        if with_reference {
            let x = reference(
                work,
                &[
                    "asr".into(),
                    "--model".into(),
                    model.display().to_string(),
                    "--audio".into(),
                    audio.display().to_string(),
                    "--threads".into(),
                    threads.to_string(),
                    "--beam".into(),
                    "1".into(),
                    "--language".into(),
                    "en".into(),
                    "--device".into(),
                    device.to_string(),
                ],
            )?;
            let (xa, xb) = (
                x["wall_s"].as_f64().unwrap_or(f64::MAX),
                x["cpu_s"].as_f64().unwrap_or(f64::MAX),
            );
            eprintln!(
                "  round {}: faster-whisper wall {xa:.2} s CPU {xb:.2} s",
                round + 1
            );
            rw = rw.min(xa);
            rc = rc.min(xb);
            r = x;
        }
    }
    let t = t.ok_or("no rounds")?;
    println!(
        "  reelsmith        wall {wall:6.2} s   RTF {:.3}   CPU {cpu:6.2} s   peak RSS {:.0} MiB",
        wall / seconds,
        mib(peak_rss())
    );
    println!("    text: {}", t.text.chars().take(120).collect::<String>());
    if !with_reference {
        return Ok(());
    }
    println!(
        "  faster-whisper   wall {rw:6.2} s   RTF {:.3}   CPU {rc:6.2} s   peak RSS {:.0} MiB   ({})",
        rw / seconds,
        mib(r["peak_rss_bytes"].as_u64().unwrap_or(0)),
        r["version"].as_str().unwrap_or_default()
    );
    println!(
        "  ratio (ours / faster-whisper float32): time {:.2}× (target ≤ 1.5)   CPU {:.2}×",
        wall / rw.max(1e-9),
        cpu / rc.max(1e-9)
    );
    Ok(())
}

/// Options of `bench tts`.
pub struct TtsBench<'a> {
    pub voice: Option<&'a str>,
    pub threads: usize,
    pub rounds: usize,
    pub with_reference: bool,
}

/// The voice: `--voice` (id or .onnx), else the test voice, else the installed English one.
fn bench_voice(arg: Option<&str>, dirs: &Dirs) -> Result<PathBuf, String> {
    let reg = crate::hub::Registry::load(Some(&dirs.config)).map_err(|e| e.to_string())?;
    let cfg = crate::hub::HubConfig::from_env(|k| std::env::var(k).ok());
    if let Some(a) = arg {
        return crate::engines::models::find_voice(a, "--voice", &reg, &cfg).map(|m| m.path);
    }
    let test = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/reelsmith/test-models/piper/en_US-joe-medium.onnx"))
        .filter(|p| p.is_file());
    if let Some(t) = test {
        return Ok(t);
    }
    crate::engines::models::auto_voice(&reg, &cfg, "en")
        .map(|m| m.path)
        .ok_or_else(|| {
            "no Piper voice: pass --voice NAME.onnx or `reelsmith models pull piper-en_US-joe-medium`"
                .into()
        })
}

/// Our VITS against Piper's runtime (onnxruntime) on the same voice, the same phoneme ids
/// (one run per sentence, as Piper does) and thread count; prints both realtime factors and
/// the ratio (target ≤ 1.5×).
pub fn bench_tts(work: &Path, dirs: &Dirs, b: TtsBench) -> Result<(), String> {
    use crate::engines::vits::model::Seeded;
    use crate::engines::vits::phonemize::{phoneme_ids, phonemize};
    use crate::engines::vits::speak::PiperEngine;

    let onnx = bench_voice(b.voice, dirs)?;
    let engine = PiperEngine::open(&onnx, &candle_core::Device::Cpu).map_err(|e| e.to_string())?;
    let cfg = &engine.voice.config;
    let t0 = Instant::now();
    let sentences: Vec<Vec<i64>> = phonemize(PARAGRAPH, &cfg.espeak_voice)
        .map_err(|e| e.to_string())?
        .iter()
        .map(|s| phoneme_ids(&s.phonemes, &cfg.phoneme_ids).0)
        .collect();
    let phonemize_s = t0.elapsed().as_secs_f64();
    let scales = cfg.scales;
    let ids_file = work.join("tts-ids.json");
    std::fs::write(
        &ids_file,
        serde_json::json!({
            "sentences": sentences,
            "scales": [scales.noise_scale, scales.length_scale, scales.noise_w],
            "sample_rate": cfg.sample_rate,
        })
        .to_string(),
    )
    .map_err(|e| format!("{}: {e}", ids_file.display()))?;
    println!(
        "bench tts: {} ({} sentences, {} phoneme ids), {} threads",
        onnx.display(),
        sentences.len(),
        sentences.iter().map(Vec::len).sum::<usize>(),
        b.threads
    );
    let speak = |seed: u64, all: bool| -> Result<usize, String> {
        let mut noise = Seeded::new(seed);
        let mut n = 0;
        for ids in sentences.iter().take(if all { usize::MAX } else { 1 }) {
            n += engine
                .vits
                .synthesize(ids, scales, None, &mut noise)
                .map_err(|e| e.to_string())?
                .samples
                .len();
        }
        Ok(n)
    };
    speak(0, false)?; // warm-up
    let rate = cfg.sample_rate as f64;
    let (mut ours, mut ours_cpu) = (f64::MAX, f64::MAX);
    let (mut theirs, mut theirs_cpu) = (f64::MAX, f64::MAX);
    let mut r = serde_json::Value::Null;
    for round in 0..b.rounds {
        let (t0, c0) = (Instant::now(), super::bench::cpu_seconds());
        let samples = speak(round as u64, true)?;
        let (wall, cpu) = (t0.elapsed().as_secs_f64(), super::bench::cpu_seconds() - c0);
        let audio = samples as f64 / rate;
        eprintln!(
            "  round {}: reelsmith {audio:.1} s of audio in {wall:.2} s (RTF {:.3}, CPU {cpu:.2} s)",
            round + 1,
            wall / audio
        );
        ours = ours.min(wall / audio);
        ours_cpu = ours_cpu.min(cpu / audio);
        if b.with_reference {
            let x = reference(
                work,
                &[
                    "tts".into(),
                    "--model".into(),
                    onnx.display().to_string(),
                    "--ids".into(),
                    ids_file.display().to_string(),
                    "--threads".into(),
                    b.threads.to_string(),
                ],
            )?;
            let audio = x["audio_s"].as_f64().unwrap_or(f64::NAN);
            let rtf = x["rtf"].as_f64().unwrap_or(f64::MAX);
            let cpu = x["cpu_s"].as_f64().unwrap_or(f64::MAX) / audio;
            eprintln!(
                "  round {}: onnxruntime {audio:.1} s of audio, RTF {rtf:.3}",
                round + 1
            );
            theirs = theirs.min(rtf);
            theirs_cpu = theirs_cpu.min(cpu);
            r = x;
        }
    }
    println!(
        "  reelsmith (candle)  RTF {ours:.3}   CPU/audio-second {ours_cpu:.3}   (phonemizing {:.0} ms, not timed in the RTF)",
        phonemize_s * 1000.0
    );
    if !b.with_reference {
        return Ok(());
    }
    println!(
        "  onnxruntime         RTF {theirs:.3}   CPU/audio-second {theirs_cpu:.3}   ({})",
        r["version"].as_str().unwrap_or_default()
    );
    println!(
        "  ratio (ours / onnxruntime): time {:.2}× (target ≤ 1.5, goal 1.0)   CPU {:.2}×",
        ours / theirs.max(1e-9),
        ours_cpu / theirs_cpu.max(1e-9)
    );
    Ok(())
}

/// Options of `bench image`.
pub struct ImageBench<'a> {
    /// A registry id or an architecture (`sd15`, `sd21`, `sd-turbo`, `sdxl`, `sdxl-turbo`,
    /// `sdxl-refiner`, `flux`).
    pub model: &'a str,
    pub width: usize,
    pub height: usize,
    pub batch: usize,
    pub steps: usize,
    pub device: &'a str,
    /// Python with torch + diffusers for the reference (`None`: ours only).
    pub reference_python: Option<PathBuf>,
}

/// Architecture and variant of `--model`: a registry entry's, else the name itself.
fn image_arch(model: &str, dirs: &Dirs) -> Result<(String, Option<String>), String> {
    let reg = crate::hub::Registry::load(Some(&dirs.config)).map_err(|e| e.to_string())?;
    if let Some(m) = reg.get(model) {
        return Ok((m.arch.clone(), m.variant.clone()));
    }
    Ok(match model {
        "sd-turbo" => ("sd21".into(), Some("turbo".into())),
        "sdxl-turbo" => ("sdxl".into(), Some("turbo".into())),
        "sd21-v" => ("sd21".into(), Some("v".into())),
        other => (other.to_string(), None),
    })
}

/// Parameters of the full-size networks (denoiser + text encoders + VAE), to refuse a run
/// that cannot fit in memory before allocating it.
fn image_params(arch: &str) -> u64 {
    match arch {
        "sd15" => 1_066_000_000,
        "sd21" => 1_290_000_000,
        "sdxl" => 3_470_000_000,
        "sdxl-refiner" => 3_100_000_000,
        _ => 16_870_000_000,
    }
}

fn mem_available() -> Option<u64> {
    let t = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = t
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb << 10)
}

/// Full-size random-weight networks (they time like the real ones): seconds per sampling step
/// (the denoiser with guidance where the model's default uses it, plus the sampler update) at
/// a size and batch, the VAE decode, and peak memory; with a reference python, diffusers'
/// eager step time on the same architecture, size, batch and device, and the ratio.
pub fn bench_image(work: &Path, dirs: &Dirs, b: ImageBench) -> Result<(), String> {
    use reelsmith_diffusion::{arch, build, model, noise, pipeline};

    let (arch_name, variant) = image_arch(b.model, dirs)?;
    let arch = arch::builtin(&arch_name, variant.as_deref()).ok_or_else(|| {
        format!(
            "--model {}: not an image model or architecture (sd15, sd21, sd-turbo, sdxl, sdxl-turbo, sdxl-refiner, flux, or a registry id)",
            b.model
        )
    })?;
    let device = crate::engines::models::parse_device(b.device)?;
    let dtype = model::run_dtype(arch.family, &device);
    if device.is_cpu() {
        let need = image_params(&arch_name) * 4;
        if let Some(avail) = mem_available().filter(|&a| a < need + (need >> 2)) {
            return Err(format!(
                "{} needs ~{:.1} GiB for f32 weights on the CPU; {:.1} GiB is available (use --device cuda, or a smaller model)",
                arch.name,
                need as f64 / (1u64 << 30) as f64,
                avail as f64 / (1u64 << 30) as f64
            ));
        }
    }
    let cfg = if arch.defaults.cfg > 1.0 {
        arch.defaults.cfg
    } else {
        0.0
    };
    println!(
        "bench image: {} ({}) {}x{} batch {} {} steps, {} {:?}, random weights{}",
        arch.name,
        arch_name,
        b.width,
        b.height,
        b.batch,
        arch.defaults.sampler.name(),
        b.device,
        dtype,
        if cfg > 0.0 {
            format!(", CFG {cfg}")
        } else {
            String::new()
        }
    );
    let t0 = Instant::now();
    let p = build::random(&arch, dtype, &device).map_err(|e| e.to_string())?;
    let load_s = t0.elapsed().as_secs_f64();
    // A CLIP-like prompt: bos, some tokens, eos, padding.
    let mut clip: Vec<u32> = vec![49406, 320, 1125, 539, 320, 2368, 49407];
    clip.resize(77, 49407);
    let mut t5: Vec<u32> = (0..12).map(|i| 100 + i).collect();
    t5.push(1);
    t5.resize(256, 0);
    let ids = pipeline::TokenIds {
        clip: Some(clip.clone()),
        clip2: Some(clip),
        t5: Some(t5),
    };
    let t1 = Instant::now();
    let cond = p.encode(&ids).map_err(|e| e.to_string())?;
    let encode_s = t1.elapsed().as_secs_f64();
    let uncond = p.uses_guidance(cfg).then(|| cond.clone());
    let params = pipeline::Params {
        sampler: arch.defaults.sampler,
        // One more than measured: the first step warms up.
        steps: b.steps + 1,
        cfg,
        width: b.width,
        height: b.height,
        batch: b.batch,
        aesthetic: (6.0, 2.5),
    };
    let mut marks = vec![Instant::now()];
    let start = Instant::now();
    let _image = p
        .generate(
            &cond,
            uncond.as_ref(),
            &params,
            None,
            &mut noise::Seeded::new(0),
            &mut |s: pipeline::Step| {
                // Wait for the device so the step's time is its own.
                let _ = s.latents.device().synchronize();
                marks.push(Instant::now());
                true
            },
        )
        .map_err(|e| e.to_string())?;
    let end = Instant::now();
    // marks[0] is taken before sampling starts: the first window is the warm-up step.
    let steps: Vec<f64> = marks
        .windows(2)
        .skip(1)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let first = (marks[1] - start).as_secs_f64();
    let decode_s = (end - *marks.last().unwrap_or(&start)).as_secs_f64();
    let ours = steps.iter().sum::<f64>() / steps.len().max(1) as f64;
    println!(
        "  reelsmith (candle)  {:.3} s/step (median of {}: {:.3}; first step {:.2} s)   VAE decode {:.2} s   text encoders {:.2} s   build {:.1} s   peak RSS {:.0} MiB",
        ours,
        steps.len(),
        median(&steps),
        first,
        decode_s,
        encode_s,
        load_s,
        mib(peak_rss())
    );
    let Some(py) = b.reference_python else {
        return Ok(());
    };
    drop(p);
    let cfg_file = work.join("image-configs.json");
    std::fs::write(&cfg_file, arch.configs.to_string())
        .map_err(|e| format!("{}: {e}", cfg_file.display()))?;
    let script = work.join("bench_ref.py");
    std::fs::write(&script, REF_PY).map_err(|e| format!("{}: {e}", script.display()))?;
    let out = Command::new(&py)
        .arg(&script)
        .args([
            "image",
            "--configs",
            &cfg_file.display().to_string(),
            "--family",
            match arch.family {
                pipeline::Family::Flux => "flux",
                _ => "unet",
            },
            "--size",
            &format!("{}x{}", b.width, b.height),
            "--batch",
            &b.batch.to_string(),
            "--steps",
            &b.steps.to_string(),
            "--cfg",
            &cfg.to_string(),
            "--device",
            if device.is_cpu() { "cpu" } else { "cuda" },
            "--dtype",
            match dtype {
                candle_core::DType::F16 => "float16",
                candle_core::DType::BF16 => "bfloat16",
                _ => "float32",
            },
            "--threads",
            &std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "2".into()),
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", py.display()))?;
    if !out.status.success() {
        return Err(format!(
            "the diffusers reference run failed ({})",
            out.status
        ));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let x: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|e| format!("reference output {line:?}: {e}"))?;
    let theirs = x["step_s"].as_f64().unwrap_or(f64::NAN);
    println!(
        "  diffusers (eager)   {:.3} s/step   peak {:.0} MiB   (diffusers {}, torch {})",
        theirs,
        mib(x["peak_bytes"].as_u64().unwrap_or(0)),
        x["diffusers"].as_str().unwrap_or("?"),
        x["torch"].as_str().unwrap_or("?")
    );
    println!(
        "  ratio (ours / diffusers): step time {:.2}× (target ≤ 1.2)",
        ours / theirs
    );
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}
