//! What this build can do on NVIDIA GPUs, checked against the driver and the devices: whether it
//! has CUDA at all, the toolkit its kernels were compiled with, the compute capability they
//! target, and for each GPU whether it can run them. `reelsmith doctor` prints it.

use std::fmt;

/// How this binary was built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildCuda {
    /// Built with `--features cuda`.
    pub enabled: bool,
    /// The CUDA toolkit release nvcc reported at build time (`13.5`).
    pub toolkit: Option<String>,
    /// The compute capability candle's kernels were compiled for, times ten (`90` = 9.0).
    pub kernels_cc: Option<u32>,
}

impl BuildCuda {
    /// This binary.
    pub fn current() -> Self {
        Self {
            enabled: cfg!(feature = "cuda"),
            toolkit: option_env!("REELSMITH_CUDA_TOOLKIT").map(str::to_string),
            kernels_cc: option_env!("REELSMITH_CUDA_COMPUTE_CAP").and_then(|c| c.parse().ok()),
        }
    }
}

/// What the driver says (through NVML).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriverCuda {
    /// The driver's version (`580.65.06`).
    pub driver: Option<String>,
    /// The newest CUDA version the driver supports, as NVML encodes it (`13000` = 13.0).
    pub cuda: Option<i32>,
    /// Compute capability (major, minor) of each visible GPU, with its name.
    pub gpus: Vec<(String, (u32, u32))>,
}

impl DriverCuda {
    /// Reads the driver and the GPUs through NVML (empty when there is no driver).
    pub fn probe() -> Result<Self, String> {
        let nvml = nvml_wrapper::Nvml::init().map_err(|e| e.to_string())?;
        let mut out = DriverCuda {
            driver: nvml.sys_driver_version().ok(),
            cuda: nvml.sys_cuda_driver_version().ok(),
            gpus: Vec::new(),
        };
        let n = nvml.device_count().map_err(|e| e.to_string())?;
        for i in 0..n {
            if let Ok(d) = nvml.device_by_index(i) {
                let name = d.name().unwrap_or_else(|_| format!("GPU {i}"));
                if let Ok(cc) = d.cuda_compute_capability() {
                    out.gpus
                        .push((name, (cc.major.max(0) as u32, cc.minor.max(0) as u32)));
                }
            }
        }
        Ok(out)
    }
}

/// One line of the report: fine, a warning, or a problem that stops GPU work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    Ok(String),
    Info(String),
    Problem(String),
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Ok(s) => write!(f, "ok   {s}"),
            Check::Info(s) => write!(f, "--   {s}"),
            Check::Problem(s) => write!(f, "MISS {s}"),
        }
    }
}

/// `13000` → `13.0`.
fn cuda_version(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// `"13.5"` → 13050.
fn parse_release(r: &str) -> Option<i32> {
    let (maj, min) = r.split_once('.')?;
    Some(maj.trim().parse::<i32>().ok()? * 1000 + min.trim().parse::<i32>().ok()? * 10)
}

/// The lines `doctor` prints about CUDA.
pub fn report(build: &BuildCuda, driver: Result<&DriverCuda, &str>) -> Vec<Check> {
    let mut out = Vec::new();
    if !build.enabled {
        out.push(Check::Info(
            "this build has no CUDA: model engines run on the CPU; rebuild with \
             `cargo build --release --features cuda` on a machine with the CUDA toolkit"
                .into(),
        ));
    } else {
        let kernels = build
            .kernels_cc
            .map(|c| format!("kernels for compute capability {}.{}", c / 10, c % 10))
            .unwrap_or_else(|| "kernels for an unrecorded compute capability".into());
        let toolkit = build
            .toolkit
            .as_deref()
            .map(|t| format!("CUDA {t}"))
            .unwrap_or_else(|| "an unrecorded CUDA toolkit".into());
        out.push(Check::Ok(format!("built with CUDA: {toolkit}, {kernels}")));
    }
    let driver = match driver {
        Ok(d) => d,
        Err(e) => {
            out.push(if build.enabled {
                Check::Problem(format!(
                    "no NVIDIA driver ({e}): this CUDA build needs one to start GPU work"
                ))
            } else {
                Check::Info(format!("no NVIDIA driver ({e})"))
            });
            return out;
        }
    };
    let supported = driver.cuda;
    let line = format!(
        "driver {}{}",
        driver.driver.as_deref().unwrap_or("?"),
        supported
            .map(|v| format!(", supports CUDA up to {}", cuda_version(v)))
            .unwrap_or_default()
    );
    let toolkit = build.toolkit.as_deref().and_then(parse_release);
    match (build.enabled, supported, toolkit) {
        (true, Some(have), Some(need)) if have / 1000 < need / 1000 => {
            out.push(Check::Problem(format!(
                "{line}, older than this build's CUDA {}: update the driver (CUDA 12 needs ≥ 525, \
                 CUDA 13 ≥ 580) or build with a CUDA {} toolkit",
                cuda_version(need),
                have / 1000
            )));
        }
        _ => out.push(Check::Ok(line)),
    }
    for (i, (name, (maj, min))) in driver.gpus.iter().enumerate() {
        let cc = maj * 10 + min;
        let what = format!("GPU {i} {name}: compute capability {maj}.{min}");
        if !build.enabled {
            out.push(Check::Info(what));
            continue;
        }
        match build.kernels_cc {
            Some(k) if cc < k => out.push(Check::Problem(format!(
                "{what}, below the {}.{} this build's kernels need: rebuild with \
                 CUDA_COMPUTE_CAP={cc}",
                k / 10,
                k % 10
            ))),
            Some(k) if cc > k => out.push(Check::Ok(format!(
                "{what} (kernels built for {}.{} are JIT-compiled for it at first use; \
                 CUDA_COMPUTE_CAP={cc} builds them natively)",
                k / 10,
                k % 10
            ))),
            _ => out.push(Check::Ok(what)),
        }
        if cc < 80 {
            out.push(Check::Info(format!(
                "GPU {i}: no bf16 below compute capability 8.0: engines that run in bf16 on CUDA \
                 (FLUX, safetensors LLMs) fail there; SD, Whisper and Piper run in f16"
            )));
        }
    }
    if driver.gpus.is_empty() {
        out.push(Check::Info("the driver sees no GPU".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(cc: u32) -> BuildCuda {
        BuildCuda {
            enabled: true,
            toolkit: Some("13.5".into()),
            kernels_cc: Some(cc),
        }
    }

    fn driver(cuda: i32, gpus: &[(u32, u32)]) -> DriverCuda {
        DriverCuda {
            driver: Some("580.65.06".into()),
            cuda: Some(cuda),
            gpus: gpus
                .iter()
                .enumerate()
                .map(|(i, &c)| (format!("G{i}"), c))
                .collect(),
        }
    }

    fn problems(v: &[Check]) -> Vec<String> {
        v.iter()
            .filter_map(|c| match c {
                Check::Problem(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_gpu_below_the_kernels_capability_is_a_problem() {
        let r = report(&build(90), Ok(&driver(13000, &[(9, 0), (8, 6), (10, 0)])));
        let p = problems(&r);
        assert_eq!(p.len(), 1, "{r:?}");
        assert!(p[0].contains("GPU 1 G1: compute capability 8.6"), "{p:?}");
        assert!(p[0].contains("CUDA_COMPUTE_CAP=86"), "{p:?}");
        let text: Vec<String> = r.iter().map(|c| c.to_string()).collect();
        assert!(
            text.iter()
                .any(|l| l.contains("JIT") && l.contains("GPU 2")),
            "{text:?}"
        );
        assert!(
            text[0].contains("CUDA 13.5") && text[0].contains("9.0"),
            "{text:?}"
        );
    }

    #[test]
    fn a_driver_older_than_the_toolkit_is_a_problem() {
        let r = report(&build(80), Ok(&driver(12040, &[(8, 0)])));
        let p = problems(&r);
        assert_eq!(p.len(), 1, "{r:?}");
        assert!(
            p[0].contains("supports CUDA up to 12.4") && p[0].contains("13.5"),
            "{p:?}"
        );
        assert!(problems(&report(&build(80), Ok(&driver(13000, &[(8, 0)])))).is_empty());
    }

    #[test]
    fn without_cuda_or_a_driver() {
        let cpu = BuildCuda {
            enabled: false,
            toolkit: None,
            kernels_cc: None,
        };
        let r = report(&cpu, Err("NVML not found"));
        assert!(problems(&r).is_empty(), "{r:?}");
        assert!(r[0].to_string().contains("--features cuda"));
        let r = report(&build(90), Err("NVML not found"));
        assert_eq!(problems(&r).len(), 1, "{r:?}");
        assert_eq!(cuda_version(12040), "12.4");
        assert_eq!(parse_release("13.5"), Some(13050));
    }

    #[test]
    fn this_build_reports_itself() {
        let b = BuildCuda::current();
        assert_eq!(b.enabled, cfg!(feature = "cuda"));
        if !b.enabled {
            assert_eq!(b.kernels_cc, None);
        }
    }
}
