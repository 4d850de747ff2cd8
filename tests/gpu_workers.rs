//! GPU placement through the stage workers: with two fake GPUs, every GPU task runs in the
//! worker of the device the ledger gave it (one long-lived worker per GPU, outside the
//! scheduler's process), CPU tasks run in the CPU pool, and no worker is left afterwards.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use reelsmith::gpu::{FakeGpus, GpuMonitor};
use reelsmith::scheduler::worker::{PoolConfig, WorkerSpawn};
use reelsmith::scheduler::{Scheduler, SchedulerConfig};
use tokio_util::sync::CancellationToken;

#[test]
fn each_gpu_task_runs_in_its_devices_worker() {
    let tmp = tempfile::tempdir().unwrap();
    let (dirs, store, jobs) = common::queue_env::queue_render_jobs(tmp.path(), &[0, 1, 2, 3, 4, 5]);
    let spawn = WorkerSpawn {
        program: env!("CARGO_BIN_EXE_reelsmith").into(),
        args: vec![
            "--data-dir".into(),
            dirs.data.to_string_lossy().into_owned(),
            "worker".into(),
            "--stages".into(),
            "noop-gpu".into(),
        ],
    };
    let cfg = SchedulerConfig {
        inbox: false,
        exit_when_idle: true,
        export: false,
        pulls: 0,
        workers: Some(PoolConfig::new(spawn)),
        ..Default::default()
    };
    // Two small fake GPUs: 1.5 GiB usable each, so one 1 GiB task at a time on each.
    let fakes = FakeGpus::parse("2GiB,2GiB").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let stats = rt.block_on(async {
        let mut s = Scheduler::new(
            dirs.clone(),
            reelsmith::stages::noop_registry(true),
            cfg,
            CancellationToken::new(),
            Box::new(|_| {}),
        )
        .unwrap();
        s.set_gpus(GpuMonitor::with_fakes(fakes));
        s.run().await.unwrap()
    });
    assert_eq!(stats.jobs_done, jobs.len(), "{stats:?}");

    // Where did each GPU task run?
    let mut pids_by_device: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    let mut gpu_tasks = 0;
    for id in &jobs {
        for t in store.tasks(*id).unwrap() {
            if t.kind != "keyframes" && t.kind != "animate" {
                continue;
            }
            let key = t
                .artifact_key
                .clone()
                .expect("a finished GPU task has an artifact");
            let text =
                std::fs::read_to_string(dirs.artifacts().join(&key).join("where.json")).unwrap();
            let here: serde_json::Value = serde_json::from_str(&text).unwrap();
            let device = here["device"].as_u64().expect("a GPU task got a device") as u32;
            assert!(device < 2, "{here}");
            assert_eq!(
                here["worker_gpu"].as_str(),
                Some(device.to_string().as_str()),
                "the task ran in the worker of its own device: {here}"
            );
            let pid = here["pid"].as_u64().unwrap();
            assert_ne!(
                pid,
                std::process::id() as u64,
                "not in the scheduler's process"
            );
            pids_by_device.entry(device).or_default().insert(pid);
            gpu_tasks += 1;
        }
    }
    assert_eq!(gpu_tasks, jobs.len() * 2);
    // One long-lived worker per device, different processes for different devices.
    for (d, pids) in &pids_by_device {
        assert_eq!(pids.len(), 1, "GPU {d} was served by {pids:?}");
    }
    if pids_by_device.len() == 2 {
        assert_ne!(pids_by_device[&0], pids_by_device[&1]);
    }
    // The published worker list is empty once the scheduler stopped.
    assert_eq!(store.setting("workers").unwrap().as_deref(), Some("[]"));
}
