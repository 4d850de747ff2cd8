//! Records what a `--features cuda` build was compiled for, so `reelsmith doctor` can compare it
//! with the GPUs and the driver it finds: the compute capability candle's kernels were built for
//! (`CUDA_COMPUTE_CAP`, as candle-kernels reads it) and the CUDA toolkit release nvcc reports.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo:rerun-if-env-changed=CUDARC_CUDA_VERSION");
    println!("cargo:rerun-if-env-changed=PATH");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    // candle-kernels falls back to nvidia-smi's answer when the variable is unset.
    let cap = std::env::var("CUDA_COMPUTE_CAP").ok().or_else(|| {
        let out = Command::new("nvidia-smi")
            .args(["--query-gpu=compute_cap", "--format=csv,noheader"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines().next().map(|l| l.trim().replace('.', ""))
    });
    if let Some(cap) = cap.filter(|c| !c.is_empty()) {
        println!("cargo:rustc-env=REELSMITH_CUDA_COMPUTE_CAP={cap}");
    }
    let nvcc = std::env::var("CUDA_ROOT")
        .or_else(|_| std::env::var("CUDA_HOME"))
        .map(|r| format!("{r}/bin/nvcc"))
        .unwrap_or_else(|_| "nvcc".into());
    if let Ok(out) = Command::new(nvcc).arg("--version").output() {
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        // "Cuda compilation tools, release 13.5, V13.5.37"
        if let Some(rel) = text
            .split("release ")
            .nth(1)
            .and_then(|r| r.split(',').next())
        {
            println!("cargo:rustc-env=REELSMITH_CUDA_TOOLKIT={}", rel.trim());
        }
    }
}
