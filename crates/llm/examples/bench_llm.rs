//! Benchmarks the native CPU engine against candle-transformers' stock
//! quantized model on the same prompt: prefill tok/s, decode tok/s (greedy)
//! and peak RSS.
//!
//! Usage: `cargo run --release --example bench_llm [MODEL.gguf] [--threads N] [--tokens N] [--skip-stock]`

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use reelsmith_llm::llm::{
    sample, Arch, Backend, CandleModel, GenerateOptions, LlmEngine, LoadOptions, SamplingParams,
};

const PROMPT: &str = "You are a careful assistant for a small video studio. The editor is preparing a \
short documentary about coastal birds: terns, gulls, oystercatchers and the plovers that nest on open \
sand. Write a calm, precise voice-over for the opening scene, which shows the beach at dawn, the tide \
going out, and the first birds landing near the water line. Mention the light, the sound of the waves, \
and why the birds arrive so early. Keep the language simple.";

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// CPU time consumed so far by all threads of this process, in seconds
/// (from `/proc/self/task/*/schedstat`, nanosecond resolution). On a busy
/// machine, wall-clock speed understates the engine; CPU time per token does
/// not.
fn cpu_secs() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum::<u64>() as f64
        / 1e9
}

fn default_model() -> PathBuf {
    let dir = std::env::var_os("REELSMITH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/reelsmith/test-models")
        });
    dir.join("smollm2-135m-instruct-q4_1.gguf")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut model = default_model();
    let mut threads = 2usize;
    let mut n_gen = 128usize;
    let mut skip_stock = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().ok_or("--threads N")?.parse()?,
            "--tokens" => n_gen = args.next().ok_or("--tokens N")?.parse()?,
            "--skip-stock" => skip_stock = true,
            other => model = PathBuf::from(other),
        }
    }
    println!("model: {}", model.display());

    let t = Instant::now();
    let mut engine = LlmEngine::load(
        &model,
        &LoadOptions {
            threads: Some(threads),
            ..LoadOptions::default()
        },
    )?;
    println!(
        "native: loaded in {:.2}s, backend {}",
        t.elapsed().as_secs_f64(),
        match engine.backend() {
            Backend::Cpu(m) => format!("cpu ({} threads)", m.threads()),
            Backend::Candle(_) => "candle".to_string(),
            Backend::Safetensors(_) => "candle (safetensors)".to_string(),
        }
    );
    let prompt = engine.tokenize_prompt(PROMPT);
    println!(
        "prompt: {} tokens, generating {n_gen} greedy tokens",
        prompt.len()
    );
    let opts = GenerateOptions {
        sampling: SamplingParams::greedy(),
        max_tokens: n_gen,
        stop: Vec::new(),
    };
    // Warm-up (page in the weights), then the measured run.
    engine.generate(
        &prompt[..8],
        &GenerateOptions {
            max_tokens: 4,
            ..opts.clone()
        },
        |_| ControlFlow::Continue(()),
    )?;
    engine.reset()?;
    // Decode with plain arg-max (ignoring end-of-turn tokens) so exactly
    // `n_gen` tokens are produced.
    let (t, c) = (Instant::now(), cpu_secs());
    let mut next = sample::argmax(engine.forward(&prompt)?);
    let prefill = t.elapsed().as_secs_f64();
    let prefill_cpu = cpu_secs() - c;
    let (t, c) = (Instant::now(), cpu_secs());
    let mut native_ids = vec![next];
    for _ in 1..n_gen {
        next = sample::argmax(engine.forward(&[next])?);
        native_ids.push(next);
    }
    let decode = t.elapsed().as_secs_f64();
    let decode_cpu = cpu_secs() - c;
    println!(
        "native: CPU time per token (all threads): prefill {:.2} ms, decode {:.2} ms",
        prefill_cpu * 1e3 / prompt.len() as f64,
        decode_cpu * 1e3 / (n_gen - 1) as f64
    );
    let native_prefill = prompt.len() as f64 / prefill;
    let native_decode = (n_gen - 1) as f64 / decode;
    println!(
        "native: prefill {native_prefill:.1} tok/s ({:.1} ms), decode {native_decode:.1} tok/s, peak RSS {:.0} MiB",
        prefill * 1e3,
        peak_rss_mib()
    );
    let text = engine.tokenizer().decode(&native_ids, false);
    println!(
        "native text: {:?}",
        text.chars().take(160).collect::<String>()
    );
    drop(engine);

    if skip_stock {
        return Ok(());
    }
    let mut stock = CandleModel::load(Arch::Llama, &model, &candle_core::Device::Cpu)?;
    let mut logits = Vec::new();
    stock.forward(&prompt[..8], &mut logits)?;
    stock.reset()?;
    let t = Instant::now();
    stock.forward(&prompt, &mut logits)?;
    let prefill = t.elapsed().as_secs_f64();
    let mut next = sample::argmax(&logits);
    let mut stock_ids = vec![next];
    let t = Instant::now();
    for _ in 1..n_gen {
        stock.forward(&[next], &mut logits)?;
        next = sample::argmax(&logits);
        stock_ids.push(next);
    }
    let decode = t.elapsed().as_secs_f64();
    let stock_prefill = prompt.len() as f64 / prefill;
    let stock_decode = (n_gen - 1) as f64 / decode;
    println!(
        "stock candle quantized_llama: prefill {stock_prefill:.1} tok/s, decode {stock_decode:.1} tok/s, peak RSS (process) {:.0} MiB",
        peak_rss_mib()
    );
    let same = native_ids
        .iter()
        .zip(&stock_ids)
        .take_while(|(a, b)| a == b)
        .count();
    println!("greedy tokens identical for the first {same} of {n_gen}");
    println!(
        "ratio native/stock: prefill {:.2}x, decode {:.2}x",
        native_prefill / stock_prefill,
        native_decode / stock_decode
    );
    Ok(())
}
