//! `reelsmith bench post`: bad flags exit 2 naming the flag; a small real run against the
//! PyTorch reference (when its venv is installed) prints the table with a ratio.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bench_post(args: &[&str]) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_reelsmith"))
        .args(["bench", "post"])
        .args(args)
        .env("REELSMITH_DATA_DIR", tmp.path().join("data"))
        .env("REELSMITH_CONFIG_DIR", tmp.path().join("config"))
        .output()
        .expect("the reelsmith binary runs")
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let cases: [(&[&str], &str); 7] = [
        (&["--only", "esrgan"], "--only"),
        (&["--size", "854"], "--size"),
        (&["--size", "0x480"], "--size"),
        (&["--threads", "0"], "--threads"),
        (&["--rounds", "zero"], "--rounds"),
        (&["--device", "tpu"], "--device"),
        (&["--frames", "3"], "--frames"),
    ];
    for (args, flag) in cases {
        let o = bench_post(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(flag),
            "{args:?}: stderr does not name {flag}:\n{err}"
        );
        assert!(o.stdout.is_empty(), "{args:?}: measured despite the error");
    }
}

/// The fixture venv (scripts/diffusion-fixture-venv.sh) and the reference sources
/// make-esrgan-fixture.py downloads, or why the run is skipped.
fn reference_ready() -> Result<(), String> {
    let cache = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/reelsmith"))
        .ok_or("no HOME")?;
    let venv = cache.join("fixture-venv/bin/python");
    if !venv.is_file() {
        return Err(format!(
            "{} is absent (scripts/diffusion-fixture-venv.sh makes it)",
            venv.display()
        ));
    }
    let refs = std::env::var_os("REELSMITH_POST_REFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("post-refs"));
    if !refs.join("realesrgan/archs/srvgg_arch.py").is_file() {
        return Err(format!(
            "{} holds no realesrgan 0.3.0 (scripts/make-esrgan-fixture.py fetches it)",
            refs.display()
        ));
    }
    Ok(())
}

#[test]
fn a_small_compact_run_prints_the_ratio_to_pytorch() {
    if let Err(why) = reference_ready() {
        eprintln!("skipped: {why}");
        return;
    }
    let o = bench_post(&[
        "--only",
        "compact",
        "--size",
        "64x48",
        "--rounds",
        "1",
        "--threads",
        "2",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("SRVGGNetCompact x4") && l.contains("64x48 → 256x192"))
        .unwrap_or_else(|| panic!("no compact row in:\n{out}"));
    // reelsmith fps, PyTorch fps, the ratio and the difference of the outputs.
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.iter().filter(|c| **c == "fps").count(), 2, "{row}");
    let ratio = cells
        .iter()
        .find_map(|c| c.strip_suffix('×'))
        .and_then(|r| r.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no ratio in {row:?}"));
    assert!(ratio > 0.0 && ratio.is_finite(), "{row}");
    let diff: f64 = cells
        .last()
        .and_then(|d| d.parse().ok())
        .unwrap_or(f64::NAN);
    assert!(diff <= 1e-3, "outputs differ by {diff}: {row}\n{out}");
    assert!(!out.contains("warning"), "{out}");
    assert!(
        out.contains("reference: realesrgan 0.3.0 SRVGGNetCompact"),
        "{out}"
    );
}
