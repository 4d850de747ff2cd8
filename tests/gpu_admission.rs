//! The scheduler places GPU tasks on fake devices through the VRAM ledger: a randomized
//! workload of jobs whose stages need GPU memory, over two devices of different sizes with
//! another process holding memory too. Each task really allocates its estimate on the fake
//! device it was given while it runs; the trace of allocations never exceeds capacity minus the
//! ledger's margin, and every job completes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reelsmith::config::Dirs;
use reelsmith::gpu::{FakeGpus, GpuMonitor, LedgerConfig};
use reelsmith::pipeline::runner::Stages;
use reelsmith::pipeline::{JobSpec, Resources, Stage, StageCtx, StageError, StageKind};
use reelsmith::scheduler::{RunStats, Scheduler, SchedulerConfig};
use tokio_util::sync::CancellationToken;

const GIB: u64 = 1 << 30;

struct GpuStage {
    kind: StageKind,
    fakes: FakeGpus,
    /// (device, bytes in use on it after this allocation) for every allocation made.
    trace: Arc<Mutex<Vec<(u32, u64)>>>,
}

impl GpuStage {
    fn estimate(&self, seed: u64) -> u64 {
        // 1–6 GiB depending on the job and the stage.
        let h = seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add((self.kind as u64).wrapping_mul(0x632B_E59B_D9B4_E019));
        (1 + (h >> 33) % 6) * GIB
    }
}

impl Stage for GpuStage {
    fn kind(&self) -> StageKind {
        self.kind
    }
    fn builtin_engine(&self) -> String {
        "fake-gpu@1".into()
    }
    fn params(&self, job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({ "lang": lang, "seed": job.settings.seed })
    }
    fn resources(&self, job: &JobSpec) -> Resources {
        Resources {
            vram_bytes: self.estimate(job.settings.seed),
            model: Some(format!("model-{}", job.settings.seed % 3)),
            ..Resources::default()
        }
    }
    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let device = ctx
            .device
            .ok_or_else(|| StageError::Engine("a GPU task got no device".into()))?;
        let bytes = self.estimate(ctx.job.settings.seed);
        self.fakes
            .allocate(device, bytes)
            .map_err(|e| StageError::Engine(format!("out of memory: {e:?}")))?;
        if let Ok(mut t) = self.trace.lock() {
            t.push((device, self.fakes.allocated(device)));
        }
        std::thread::sleep(Duration::from_millis(15));
        self.fakes.free(device, bytes);
        Ok(())
    }
}

/// Runs the queue to completion with `stages` on `fakes`, no inbox and no export.
fn run_on_fakes(dirs: &Dirs, stages: Stages, cfg: SchedulerConfig, fakes: FakeGpus) -> RunStats {
    let cfg = SchedulerConfig {
        inbox: false,
        exit_when_idle: true,
        export: false,
        ..cfg
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut s = Scheduler::new(
            dirs.clone(),
            stages,
            cfg,
            CancellationToken::new(),
            Box::new(|_| {}),
        )
        .unwrap();
        s.set_gpus(GpuMonitor::with_fakes(fakes));
        s.run().await.unwrap()
    })
}

#[test]
fn gpu_tasks_never_overcommit_fake_devices_and_all_jobs_finish() {
    let tmp = tempfile::tempdir().unwrap();
    // Twelve jobs with different seeds (so different estimates and models).
    let (dirs, _store, _ids) =
        common::queue_env::queue_render_jobs(tmp.path(), &(0..12).collect::<Vec<_>>());
    let fakes = FakeGpus::parse("12GiB:used=1GiB,24GiB").unwrap();
    let trace = Arc::new(Mutex::new(Vec::new()));
    let stages: Stages = StageKind::ALL
        .into_iter()
        .map(|k| {
            let s: Arc<dyn Stage> = Arc::new(GpuStage {
                kind: k,
                fakes: fakes.clone(),
                trace: trace.clone(),
            });
            (k, s)
        })
        .collect();

    let cfg = SchedulerConfig {
        cpu_slots: 6,
        window: 12,
        poll: Duration::from_millis(10),
        ..SchedulerConfig::default()
    };
    let stats = run_on_fakes(&dirs, stages, cfg, fakes.clone());
    assert_eq!(stats.jobs_done, 12, "{stats:?}");
    assert_eq!(stats.jobs_failed, 0);
    let trace = trace.lock().unwrap();
    assert!(
        trace.len() >= 12 * 13,
        "every task allocated: {}",
        trace.len()
    );
    let cfg = LedgerConfig::default();
    let cap = [12 * GIB, 24 * GIB];
    let other = [GIB, 0];
    let mut peak = [0u64; 2];
    for &(d, used) in trace.iter() {
        let c = cap[d as usize];
        let margin = cfg
            .margin_bytes
            .max((c as f64 * cfg.margin_fraction).ceil() as u64);
        assert!(
            used + other[d as usize] <= c - margin,
            "device {d}: {used} bytes in use + other process > capacity − margin"
        );
        peak[d as usize] = peak[d as usize].max(used);
    }
    // Both devices were used, and tasks ran side by side on them.
    assert!(peak[0] > 0 && peak[1] > 6 * GIB, "peaks {peak:?}");
}

/// A stage that runs out of GPU memory: once for every task of even seeds, always for seed 5's
/// keyframes.
struct FlakyGpu {
    kind: StageKind,
    tries: Arc<Mutex<std::collections::BTreeMap<(u64, StageKind), u32>>>,
}

impl Stage for FlakyGpu {
    fn kind(&self) -> StageKind {
        self.kind
    }
    fn builtin_engine(&self) -> String {
        "flaky-gpu@1".into()
    }
    fn params(&self, job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({ "lang": lang, "seed": job.settings.seed })
    }
    fn resources(&self, job: &JobSpec) -> Resources {
        Resources {
            vram_bytes: 2 * GIB,
            model: Some(format!("model-{}", job.settings.seed)),
            ..Resources::default()
        }
    }
    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let seed = ctx.job.settings.seed;
        let n = {
            let mut t = self.tries.lock().unwrap();
            let e = t.entry((seed, self.kind)).or_insert(0);
            *e += 1;
            *e
        };
        if (seed == 5 && self.kind == StageKind::Keyframes) || (seed.is_multiple_of(2) && n == 1) {
            return Err(StageError::OutOfMemory("CUDA_ERROR_OUT_OF_MEMORY".into()));
        }
        Ok(())
    }
}

#[test]
fn out_of_memory_is_retried_with_backoff_then_fails_naming_model_estimate_and_free_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let (dirs, store, ids) = common::queue_env::queue_render_jobs(tmp.path(), &[2, 3, 5]);
    let tries = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
    let stages: Stages = StageKind::ALL
        .into_iter()
        .map(|k| {
            let s: Arc<dyn Stage> = Arc::new(FlakyGpu {
                kind: k,
                tries: tries.clone(),
            });
            (k, s)
        })
        .collect();
    let cfg = SchedulerConfig {
        cpu_slots: 4,
        oom_retries: 2,
        poll: Duration::from_millis(20),
        ..SchedulerConfig::default()
    };
    let stats = run_on_fakes(&dirs, stages, cfg, FakeGpus::parse("16GiB").unwrap());
    assert_eq!((stats.jobs_done, stats.jobs_failed), (2, 1), "{stats:?}");
    let failed = store.job(ids[2]).unwrap().unwrap();
    let err = failed.error.unwrap_or_default();
    for needle in [
        "out of GPU memory",
        "model-5",
        "estimate 2048 MiB",
        "MiB free",
        "gave up after 2 retries",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    // Seed 2's stages each failed once and succeeded on the retry.
    let t = tries.lock().unwrap();
    assert_eq!(t.get(&(2, StageKind::Plan)), Some(&2));
    assert_eq!(t.get(&(5, StageKind::Keyframes)), Some(&3));
}
