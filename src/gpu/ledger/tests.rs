use super::*;
use crate::gpu::fake::{FakeGpuSpec, FakeGpus};
use crate::gpu::monitor::GpuMonitor;
use std::collections::{BTreeMap, VecDeque};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A flat 512 MiB margin keeps the hand-worked numbers simple.
fn flat() -> LedgerConfig {
    LedgerConfig {
        margin_bytes: 512 * MIB,
        margin_fraction: 0.0,
    }
}

fn fakes(sizes_gib: &[u64]) -> FakeGpus {
    FakeGpus::from_specs(
        sizes_gib
            .iter()
            .enumerate()
            .map(|(i, &g)| FakeGpuSpec::new(i, g * GIB))
            .collect(),
    )
}

fn device_of(admission: &Admission) -> u32 {
    match admission {
        Admission::Admitted(r) => r.device,
        other => panic!("expected Admitted, got {other:?}"),
    }
}

#[test]
fn margin_is_the_larger_of_bytes_and_fraction() {
    let gpus = fakes(&[24, 8]);
    let ledger = Ledger::new(&gpus.sample(), LedgerConfig::default());
    assert_eq!(ledger.margin(0), (24 * GIB) / 20 + 1); // ceil(5 % of 24 GiB)
    assert_eq!(ledger.margin(1), 512 * MIB); // 5 % of 8 GiB is only 410 MiB
    assert_eq!(ledger.capacity(0), 24 * GIB);
    assert_eq!(ledger.capacity(9), 0);
}

#[test]
fn capacity_rule_never_overcommits() {
    let gpus = fakes(&[10]);
    let mut ledger = Ledger::new(&gpus.sample(), flat());
    assert_eq!(device_of(&ledger.try_admit(1, 5 * GIB, None)), 0);
    gpus.allocate(0, 5 * GIB).unwrap();
    ledger.update_samples(&gpus.sample());
    assert_eq!(device_of(&ledger.try_admit(2, 4 * GIB, None)), 0);
    assert_eq!(ledger.reserved(0), 9 * GIB);
    // 9 GiB + 1 GiB > 10 GiB − 512 MiB, even though nothing measured says so
    // for task 2 (it has not allocated yet and the sample is fresh).
    ledger.update_samples(&gpus.sample());
    assert!(matches!(
        ledger.try_admit(3, GIB, None),
        Admission::Wait { .. }
    ));
    assert_eq!(device_of(&ledger.try_admit(4, 512 * MIB, None)), 0);
    ledger.release(2);
    assert_eq!(ledger.reserved(0), 5 * GIB + 512 * MIB);
    assert_eq!(device_of(&ledger.try_admit(3, GIB, None)), 0);
}

#[test]
fn measured_rule_sees_other_processes_and_pending_admissions() {
    let gpus = fakes(&[20]);
    gpus.set_other_use(0, 14 * GIB);
    let mut ledger = Ledger::new(&gpus.sample(), flat());
    // 6 GiB free − 512 MiB margin = 5.5 GiB.
    match ledger.try_admit(1, 6 * GIB, None) {
        Admission::Wait { reason } => assert!(reason.contains("needs 6.0 GiB"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(device_of(&ledger.try_admit(2, 3 * GIB, None)), 0);
    // Same stale sample: 3 GiB already promised from it, 2.5 GiB left.
    assert!(matches!(
        ledger.try_admit(3, 3 * GIB, None),
        Admission::Wait { .. }
    ));
    assert_eq!(ledger.snapshot()[0].pending, 3 * GIB);
    gpus.allocate(0, 3 * GIB).unwrap();
    ledger.update_samples(&gpus.sample());
    assert_eq!(ledger.snapshot()[0].pending, 0);
    assert!(matches!(
        ledger.try_admit(3, 3 * GIB, None),
        Admission::Wait { .. }
    ));
    gpus.set_other_use(0, 0);
    ledger.update_samples(&gpus.sample());
    assert_eq!(device_of(&ledger.try_admit(3, 3 * GIB, None)), 0);
}

#[test]
fn never_cpu_only_and_idempotent_admission() {
    let gpus = fakes(&[8, 24]);
    let mut ledger = Ledger::new(&gpus.sample(), LedgerConfig::default());
    let usable = 24 * GIB - ledger.margin(1);
    match ledger.try_admit(1, usable + 1, None) {
        Admission::Never { reason } => assert!(reason.contains("largest GPU offers"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(device_of(&ledger.try_admit(2, usable, None)), 1);
    assert_eq!(ledger.try_admit(3, 0, Some("tts")), Admission::CpuOnly);
    assert_eq!(ledger.reservation(3), None);
    assert_eq!(
        ledger.try_admit(2, 5, None),
        Admission::Admitted(Reservation {
            device: 1,
            bytes: usable,
            task: 2
        })
    );
    let mut empty = Ledger::new(&[], LedgerConfig::default());
    match empty.try_admit(1, 1, None) {
        Admission::Never { reason } => assert!(reason.contains("no GPUs"), "{reason}"),
        other => panic!("{other:?}"),
    }
    ledger.release(99); // unknown: no-op
}

#[test]
fn best_fit_picks_the_tightest_device() {
    let gpus = fakes(&[80, 24, 48]);
    let mut ledger = Ledger::new(&gpus.sample(), flat());
    assert_eq!(device_of(&ledger.try_admit(1, 10 * GIB, None)), 1);
    assert_eq!(device_of(&ledger.try_admit(2, 30 * GIB, None)), 2);
    assert_eq!(device_of(&ledger.try_admit(3, 60 * GIB, None)), 0);
}

#[test]
fn affinity_beats_headroom() {
    // As in the brief: device 0 has far more headroom.
    let gpus = fakes(&[80, 24]);
    let mut ledger = Ledger::new(&gpus.sample(), flat());
    gpus.allocate(1, 4 * GIB).unwrap();
    ledger.note_loaded(1, "tts", 4 * GIB);
    ledger.update_samples(&gpus.sample());
    assert_eq!(device_of(&ledger.try_admit(1, 6 * GIB, Some("tts"))), 1);

    // And affinity beats best fit: device 0 is the tighter fit, but the
    // model sits on device 1.
    let gpus = fakes(&[24, 80]);
    let mut ledger = Ledger::new(&gpus.sample(), flat());
    gpus.allocate(1, 4 * GIB).unwrap();
    ledger.note_loaded(1, "video", 4 * GIB);
    ledger.update_samples(&gpus.sample());
    assert_eq!(device_of(&ledger.try_admit(1, 6 * GIB, Some("video"))), 1);
    assert_eq!(device_of(&ledger.try_admit(2, 6 * GIB, Some("other"))), 0);
    assert_eq!(device_of(&ledger.try_admit(3, 6 * GIB, None)), 0);
    // Affinity yields when the model's device cannot take the task.
    gpus.set_other_use(1, 75 * GIB);
    ledger.update_samples(&gpus.sample());
    assert_eq!(device_of(&ledger.try_admit(4, 6 * GIB, Some("video"))), 0);
}

#[test]
fn resident_model_is_reused_not_double_counted() {
    let gpus = fakes(&[24]);
    let mut ledger = Ledger::new(&gpus.sample(), flat());
    gpus.allocate(0, 20 * GIB).unwrap();
    ledger.note_loaded(0, "big", 20 * GIB);
    ledger.update_samples(&gpus.sample());
    assert_eq!(ledger.idle_loaded(0), 20 * GIB);
    // 22 GiB including the resident 20 GiB: needs 2 GiB more, 3.5 GiB free.
    assert_eq!(device_of(&ledger.try_admit(1, 22 * GIB, Some("big"))), 0);
    let snap = &ledger.snapshot()[0];
    assert_eq!(
        (snap.reserved, snap.idle_loaded, snap.pending),
        (22 * GIB, 0, 2 * GIB)
    );
    assert!(snap.loaded[0].in_use);
    ledger.release(1);
    assert_eq!(ledger.idle_loaded(0), 20 * GIB);
    // Another model must evict it first.
    assert_eq!(
        ledger.try_admit(2, 6 * GIB, Some("small")),
        Admission::AfterEvicting {
            device: 0,
            models: vec!["big".to_string()]
        }
    );
}

#[test]
fn eviction_is_lru_only_when_needed_and_spares_models_in_use() {
    let gpus = fakes(&[24]);
    let mut ledger = Ledger::new(&gpus.sample(), flat());
    for name in ["a", "b", "c", "d"] {
        gpus.allocate(0, 4 * GIB).unwrap();
        ledger.note_loaded(0, name, 4 * GIB);
    }
    ledger.update_samples(&gpus.sample());
    // Task 1 runs with model d (6 GiB including d's 4 GiB).
    assert_eq!(device_of(&ledger.try_admit(1, 6 * GIB, Some("d"))), 0);
    gpus.allocate(0, 2 * GIB).unwrap();
    ledger.update_samples(&gpus.sample());
    // Promised: 6 reserved + 12 idle = 18 of 23.5 usable; measured 6 − 0.5.
    assert_eq!(
        ledger.evictable(0, 5 * GIB),
        Vec::<String>::new(),
        "fits already"
    );
    assert!(matches!(
        ledger.try_admit(2, 5 * GIB, None),
        Admission::Admitted(_)
    ));
    ledger.release(2);
    // Task 2's pending 5 GiB stays until a sample shows it gone.
    assert_eq!(ledger.snapshot()[0].pending, 5 * GIB);
    ledger.update_samples(&gpus.sample());
    assert_eq!(ledger.evictable(0, 9 * GIB), vec!["a"]);
    assert_eq!(ledger.evictable(0, 13 * GIB), vec!["a", "b"]);
    assert_eq!(
        ledger.evictable(0, 17 * GIB + 512 * MIB),
        vec!["a", "b", "c"]
    );
    assert_eq!(
        ledger.evictable(0, 18 * GIB),
        Vec::<String>::new(),
        "d is in use"
    );
    assert_eq!(ledger.evictable(0, 30 * GIB), Vec::<String>::new());

    // Using "a" makes it the most recent; "b" is now the LRU.
    assert_eq!(device_of(&ledger.try_admit(3, 4 * GIB, Some("a"))), 0);
    assert_eq!(ledger.evictable(0, 9 * GIB), vec!["b"], "a is in use");
    ledger.release(3);
    assert_eq!(ledger.evictable(0, 9 * GIB), vec!["b"]);
    assert_eq!(ledger.evictable(0, 13 * GIB), vec!["b", "c"]);
    assert_eq!(
        ledger.try_admit(4, 9 * GIB, None),
        Admission::AfterEvicting {
            device: 0,
            models: vec!["b".to_string()]
        }
    );
    // The scheduler unloads b, tells the ledger, and retries after a sample.
    gpus.free(0, 4 * GIB);
    ledger.evict(0, "b");
    ledger.update_samples(&gpus.sample());
    assert_eq!(device_of(&ledger.try_admit(4, 9 * GIB, None)), 0);
    let loaded: Vec<String> = ledger.snapshot()[0]
        .loaded
        .iter()
        .map(|m| m.model.clone())
        .collect();
    assert_eq!(loaded, vec!["a", "c", "d"]);
}

#[test]
fn snapshot_serializes() {
    let gpus = fakes(&[8]);
    let mut ledger = Ledger::new(&gpus.sample(), LedgerConfig::default());
    ledger.note_loaded(0, "m", GIB);
    assert!(matches!(
        ledger.try_admit(7, 2 * GIB, Some("m")),
        Admission::Admitted(_)
    ));
    let json = serde_json::to_value(ledger.snapshot()).unwrap();
    assert_eq!(json[0]["reservations"][0]["task"], 7);
    assert_eq!(json[0]["loaded"][0]["in_use"], true);
    assert_eq!(json[0]["usable"], 8 * GIB - 512 * MIB);
}

// ---------------------------------------------------------------------------
// Randomized workload.

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[derive(Clone, Debug)]
struct Task {
    id: u64,
    estimate: u64,
    model: Option<String>,
    arrived: usize,
}

#[derive(Clone, Debug)]
struct Running {
    id: u64,
    device: u32,
    estimate: u64,
    model: Option<String>,
    own: u64,
    ends_at: usize,
}

#[derive(Default, Debug)]
struct Stats {
    steps: usize,
    tasks: u64,
    admitted: u64,
    waits: u64,
    evictions: u64,
    never: u64,
    cpu_only: u64,
    affinity_hits: u64,
    max_wait: usize,
}

/// Independent re-statement of the margin: max(512 MiB, ceil(5 %)).
fn indep_margin(capacity: u64) -> u64 {
    (512 * MIB).max((capacity as f64 * 0.05).ceil() as u64)
}

fn run_workload(seed: u64, stats: &mut Stats) {
    const ARRIVAL_STEPS: usize = 2000;
    const DRAIN_LIMIT: usize = 20_000;
    let mut rng = SplitMix64(seed);
    let sizes = [8u64, 12, 16, 24, 40, 48, 80];
    let count = 1 + (seed % 3) as usize;
    let specs: Vec<FakeGpuSpec> = (0..count)
        .map(|i| FakeGpuSpec::new(i, sizes[rng.below(sizes.len() as u64) as usize] * GIB))
        .collect();
    let totals: Vec<u64> = specs.iter().map(|s| s.total).collect();
    let usable: Vec<u64> = totals.iter().map(|&t| t - indep_margin(t)).collect();
    let largest_usable = usable.iter().copied().max().unwrap_or(0);
    let largest = totals.iter().copied().max().unwrap_or(0);
    let model_sizes: Vec<(String, u64)> = [3u64, 8, 15, 25, 45]
        .iter()
        .enumerate()
        .map(|(i, pct)| (format!("m{i}"), largest * pct / 100))
        .collect();

    let gpus = FakeGpus::from_specs(specs);
    let monitor = GpuMonitor::with_fakes(gpus.clone());
    let mut last_sample = monitor.sample();
    let mut ledger = Ledger::new(&last_sample, LedgerConfig::default());
    let mut unsampled = vec![0u64; count]; // admitted need since last sample
    let mut resident: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); count];
    let mut queue: VecDeque<Task> = VecDeque::new();
    let mut running: Vec<Running> = Vec::new();
    let mut trace: Vec<Vec<DeviceLedger>> = Vec::new();
    let mut next_id = 0u64;
    let mut never_ids: Vec<u64> = Vec::new();
    let mut finished: Vec<u64> = Vec::new();

    let mut step = 0usize;
    loop {
        let arriving = step < ARRIVAL_STEPS;
        if !arriving && queue.is_empty() && running.is_empty() {
            break;
        }
        assert!(
            step < ARRIVAL_STEPS + DRAIN_LIMIT,
            "seed {seed}: no progress; {} queued, head {:?}, ledger {:?}",
            queue.len(),
            queue.front(),
            ledger.snapshot()
        );

        // Other processes change only right before a sample, so a sample is
        // never stale about them (it is stale about our own admissions,
        // which the ledger's pending figure covers).
        if rng.chance(0.6) {
            for d in 0..count as u32 {
                let target = if !arriving {
                    Some(0)
                } else if rng.chance(0.03) {
                    Some(if rng.chance(0.4) {
                        0
                    } else {
                        rng.below(totals[d as usize] / 2)
                    })
                } else {
                    None
                };
                if let Some(target) = target {
                    // A process cannot take memory that is not free.
                    let room = totals[d as usize] - gpus.allocated(d);
                    gpus.set_other_use(d, target.min(room));
                }
            }
            last_sample = monitor.sample();
            ledger.update_samples(&last_sample);
            unsampled.iter_mut().for_each(|u| *u = 0);
        }

        // Finish tasks.
        running.retain(|r| {
            if r.ends_at <= step {
                gpus.free(r.device, r.own);
                ledger.release(r.id);
                finished.push(r.id);
                false
            } else {
                true
            }
        });

        // Arrivals.
        if arriving && rng.chance(0.25) {
            let roll = rng.below(100);
            let (estimate, model) = if roll < 2 {
                (0, None)
            } else if roll < 4 {
                (largest_usable + rng.range(1, GIB), None)
            } else if roll < 6 {
                (largest_usable, None)
            } else if roll < 55 {
                let (name, size) = &model_sizes[rng.below(model_sizes.len() as u64) as usize];
                (size + rng.below(largest / 5), Some(name.clone()))
            } else {
                (rng.range(MIB, largest * 3 / 5), None)
            };
            queue.push_back(Task {
                id: next_id,
                estimate,
                model,
                arrived: step,
            });
            next_id += 1;
            stats.tasks += 1;
        }

        // Scheduler pass: FIFO, and a head that has waited long blocks the rest.
        let head_only = queue.front().is_some_and(|t| step - t.arrived > 300);
        let mut kept = VecDeque::new();
        let mut tried = 0;
        while let Some(task) = queue.pop_front() {
            if head_only && tried > 0 {
                kept.push_back(task);
                continue;
            }
            tried += 1;
            let admission = ledger.try_admit(task.id, task.estimate, task.model.as_deref());
            if task.estimate > largest_usable {
                assert!(
                    matches!(admission, Admission::Never { .. }),
                    "seed {seed}: {task:?} can never fit but got {admission:?}"
                );
            }
            match admission {
                Admission::Admitted(r) => {
                    assert_eq!((r.task, r.bytes), (task.id, task.estimate));
                    let d = r.device as usize;
                    let reused = task
                        .model
                        .as_ref()
                        .and_then(|m| resident[d].get(m).copied());
                    let need = task.estimate - reused.unwrap_or(0);
                    // Fit the measured free memory at admission time,
                    // together with what was admitted since that sample.
                    let room = last_sample[d].free.saturating_sub(indep_margin(totals[d]));
                    assert!(
                        need + unsampled[d] <= room,
                        "seed {seed} step {step}: {task:?} needs {need} + {} pending, measured room {room}",
                        unsampled[d]
                    );
                    unsampled[d] += need;
                    // Physically allocate: must never run out of memory.
                    if let Err(oom) = gpus.allocate(r.device, need) {
                        panic!("seed {seed} step {step}: {task:?}: {oom}");
                    }
                    let mut own = need;
                    if let Some(m) = &task.model {
                        if reused.is_some() {
                            stats.affinity_hits += 1;
                        } else {
                            let size = model_sizes.iter().find(|(n, _)| n == m).map_or(0, |x| x.1);
                            own -= size.min(need);
                            resident[d].insert(m.clone(), size.min(need));
                            ledger.note_loaded(r.device, m, size.min(need));
                        }
                    }
                    stats.admitted += 1;
                    stats.max_wait = stats.max_wait.max(step - task.arrived);
                    running.push(Running {
                        id: task.id,
                        device: r.device,
                        estimate: task.estimate,
                        model: task.model.clone(),
                        own,
                        ends_at: step + rng.range(1, 40) as usize,
                    });
                }
                Admission::AfterEvicting { device, models } => {
                    assert!(!models.is_empty());
                    let d = device as usize;
                    for m in &models {
                        let in_use = running
                            .iter()
                            .any(|r| r.device == device && r.model.as_deref() == Some(m.as_str()));
                        assert!(
                            !in_use,
                            "seed {seed}: proposed evicting {m} in use on {device}"
                        );
                        assert_ne!(Some(m), task.model.as_ref());
                        let size = resident[d].remove(m).expect("proposed model is resident");
                        gpus.free(device, size);
                        ledger.evict(device, m);
                    }
                    stats.evictions += models.len() as u64;
                    kept.push_back(task);
                }
                Admission::Wait { reason } => {
                    assert!(!reason.is_empty());
                    stats.waits += 1;
                    kept.push_back(task);
                }
                Admission::Never { .. } => {
                    assert!(
                        task.estimate > largest_usable,
                        "seed {seed}: {task:?} wrongly Never"
                    );
                    stats.never += 1;
                    never_ids.push(task.id);
                }
                Admission::CpuOnly => {
                    assert_eq!(task.estimate, 0);
                    stats.cpu_only += 1;
                    finished.push(task.id);
                }
            }
        }
        queue = kept;

        // Record and check the ledger after every step.
        let snapshot = ledger.snapshot();
        for dev in &snapshot {
            let d = dev.index as usize;
            let reserved: u64 = running
                .iter()
                .filter(|r| r.device == dev.index)
                .map(|r| r.estimate)
                .sum();
            let idle: u64 = resident[d]
                .iter()
                .filter(|(m, _)| {
                    !running
                        .iter()
                        .any(|r| r.device == dev.index && r.model.as_deref() == Some(m.as_str()))
                })
                .map(|(_, b)| b)
                .sum();
            assert_eq!(
                (dev.reserved, dev.idle_loaded, dev.usable),
                (reserved, idle, usable[d])
            );
            if reserved + idle > usable[d] {
                let tail = serde_json::to_string_pretty(&trace[trace.len().saturating_sub(2)..])
                    .unwrap_or_default();
                panic!(
                    "seed {seed} step {step} device {d}: {reserved} + {idle} > {}\n{tail}",
                    usable[d]
                );
            }
            let s = &monitor.sample()[d];
            assert!(
                s.used + s.free == s.total
                    && gpus.allocated(dev.index) + gpus.other_use(dev.index) <= s.total
            );
        }
        trace.push(snapshot);
        step += 1;
    }
    // Liveness: every task either ran to completion or was Never (exactly
    // those that exceed the largest device).
    assert_eq!(trace.len(), step);
    assert_eq!(
        finished.len() as u64 + never_ids.len() as u64,
        next_id,
        "seed {seed}"
    );
    stats.steps += step;
}

#[test]
fn randomized_admission_workload() {
    let mut stats = Stats::default();
    for seed in 0..12u64 {
        run_workload(0x5EED_0000 + seed, &mut stats);
    }
    eprintln!("{stats:?}");
    assert!(stats.steps >= 12 * 2000);
    assert!(stats.admitted > 1000 && stats.waits > 100 && stats.evictions > 10);
    assert!(stats.never > 10 && stats.cpu_only > 10 && stats.affinity_hits > 100);
}
