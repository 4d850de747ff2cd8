//! Fake GPUs for tests, demos and machines without NVIDIA hardware.
//!
//! `REELSMITH_FAKE_GPUS="24GiB,80GiB:used=2GiB:name=A100"` describes one
//! device per comma-separated entry: `SIZE[:used=SIZE][:name=TEXT]`, where
//! `used` is memory held by *other* processes and `name` defaults to
//! `Fake GPU <n>`. Sizes follow [`crate::gpu::units::parse_size`] (`24G` and
//! `24GiB` are binary, `24GB` decimal).
//!
//! A [`FakeGpus`] is a cheap handle on shared state (`Arc<Mutex<…>>`): clones
//! see the same devices, so a test or a fake engine can [`FakeGpus::allocate`]
//! memory and the monitor's next sample reports it.

use std::sync::{Arc, Mutex, MutexGuard};

use super::monitor::{DeviceSample, GpuProcess};
use super::units::{format_bytes, parse_size};

const SYNTAX: &str = "expected a comma list of SIZE[:used=SIZE][:name=TEXT], \
e.g. REELSMITH_FAKE_GPUS=\"24GiB,80GiB:used=2GiB:name=A100\" \
(SIZE like 24GiB, 24G, 24576MiB or 512MB; G/GiB/M/MiB are binary, GB/MB decimal)";

/// A fake-GPU specification entry could not be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad fake GPU entry {entry:?}: {problem}; {SYNTAX}")]
pub struct FakeGpuError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub problem: String,
}

/// An allocation on a fake GPU did not fit (or the device does not exist:
/// then `free` is 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("fake GPU {device}: out of memory allocating {} ({} free)", format_bytes(*.requested), format_bytes(*.free))]
pub struct Oom {
    /// Fake device index.
    pub device: u32,
    /// Bytes asked for.
    pub requested: u64,
    /// Bytes that were free.
    pub free: u64,
}

/// One fake device, as described by a spec entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeGpuSpec {
    /// Display name.
    pub name: String,
    /// Total memory in bytes.
    pub total: u64,
    /// Memory held by other processes, in bytes.
    pub other_use: u64,
}

impl FakeGpuSpec {
    /// A device of `total` bytes named `Fake GPU <index>` with no other use.
    pub fn new(index: usize, total: u64) -> FakeGpuSpec {
        FakeGpuSpec {
            name: format!("Fake GPU {index}"),
            total,
            other_use: 0,
        }
    }
}

#[derive(Clone, Debug)]
struct FakeDevice {
    name: String,
    uuid: String,
    total: u64,
    other_use: u64,
    allocated: u64,
}

impl FakeDevice {
    fn used(&self) -> u64 {
        self.other_use
            .saturating_add(self.allocated)
            .min(self.total)
    }
}

/// Shared, thread-safe fake GPUs. Indices are positions in the list.
#[derive(Clone, Debug, Default)]
pub struct FakeGpus {
    inner: Arc<Mutex<Vec<FakeDevice>>>,
}

/// A deterministic, valid-looking UUID for fake device `index`.
fn fake_uuid(index: usize) -> String {
    format!("GPU-fa4e{index:04x}-0000-4000-8000-{index:012x}")
}

impl FakeGpus {
    /// Parses a `REELSMITH_FAKE_GPUS` value. An empty (or blank) value
    /// yields no devices.
    pub fn parse(spec: &str) -> Result<FakeGpus, FakeGpuError> {
        if spec.trim().is_empty() {
            return Ok(FakeGpus::from_specs(Vec::new()));
        }
        let mut specs = Vec::new();
        for (index, entry) in spec.split(',').enumerate() {
            specs.push(parse_entry(index, entry)?);
        }
        Ok(FakeGpus::from_specs(specs))
    }

    /// Builds fake GPUs from explicit specs (device `i` gets a fixed UUID
    /// derived from `i`).
    pub fn from_specs(specs: Vec<FakeGpuSpec>) -> FakeGpus {
        let devices = specs
            .into_iter()
            .enumerate()
            .map(|(index, spec)| FakeDevice {
                name: spec.name,
                uuid: fake_uuid(index),
                total: spec.total,
                other_use: spec.other_use,
                allocated: 0,
            })
            .collect();
        FakeGpus {
            inner: Arc::new(Mutex::new(devices)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<FakeDevice>> {
        // A panic while holding the lock cannot leave the plain counters in
        // an inconsistent state, so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are no devices.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// UUIDs of all devices, in index order.
    pub fn uuids(&self) -> Vec<String> {
        self.lock().iter().map(|d| d.uuid.clone()).collect()
    }

    /// A new, independent set holding copies of the devices at `order`
    /// (in that order, re-indexed `0..n`; names and UUIDs are kept).
    /// Out-of-range indices are skipped.
    pub fn select(&self, order: &[u32]) -> FakeGpus {
        let devices = self.lock();
        let picked = order
            .iter()
            .filter_map(|&i| devices.get(i as usize).cloned())
            .collect();
        FakeGpus {
            inner: Arc::new(Mutex::new(picked)),
        }
    }

    /// Simulates other processes holding `bytes` on device `index` (replacing
    /// the previous figure; capped at the device's total). Returns false if
    /// there is no such device.
    pub fn set_other_use(&self, index: u32, bytes: u64) -> bool {
        let mut devices = self.lock();
        match devices.get_mut(index as usize) {
            Some(device) => {
                device.other_use = bytes.min(device.total);
                true
            }
            None => false,
        }
    }

    /// Memory held by other processes on device `index` (0 if none).
    pub fn other_use(&self, index: u32) -> u64 {
        self.lock().get(index as usize).map_or(0, |d| d.other_use)
    }

    /// Memory allocated by our own tasks on device `index` (0 if none).
    pub fn allocated(&self, index: u32) -> u64 {
        self.lock().get(index as usize).map_or(0, |d| d.allocated)
    }

    /// Simulates one of our tasks allocating `bytes` on device `index`;
    /// fails, changing nothing, if it does not fit in what is free.
    pub fn allocate(&self, index: u32, bytes: u64) -> Result<(), Oom> {
        let mut devices = self.lock();
        let Some(device) = devices.get_mut(index as usize) else {
            return Err(Oom {
                device: index,
                requested: bytes,
                free: 0,
            });
        };
        let free = device.total.saturating_sub(device.used());
        if bytes > free {
            return Err(Oom {
                device: index,
                requested: bytes,
                free,
            });
        }
        device.allocated += bytes;
        Ok(())
    }

    /// Simulates our tasks freeing `bytes` on device `index` (saturating at
    /// zero; unknown devices are ignored).
    pub fn free(&self, index: u32, bytes: u64) {
        if let Some(device) = self.lock().get_mut(index as usize) {
            device.allocated = device.allocated.saturating_sub(bytes);
        }
    }

    /// Current state of every device, indexed by position. Fakes have no
    /// sensors: utilization, temperature and power are `None`. Our own
    /// allocations show up as one process with this process's PID; other
    /// use has no process entry.
    pub fn sample(&self) -> Vec<DeviceSample> {
        let pid = std::process::id();
        self.lock()
            .iter()
            .enumerate()
            .map(|(index, device)| {
                let used = device.used();
                let processes = if device.allocated > 0 {
                    vec![GpuProcess {
                        pid,
                        used: device.allocated,
                    }]
                } else {
                    Vec::new()
                };
                DeviceSample {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    name: device.name.clone(),
                    uuid: device.uuid.clone(),
                    total: device.total,
                    used,
                    free: device.total - used,
                    utilization: None,
                    temperature: None,
                    power_watts: None,
                    processes,
                }
            })
            .collect()
    }
}

fn parse_entry(index: usize, entry: &str) -> Result<FakeGpuSpec, FakeGpuError> {
    let bad = |problem: String| FakeGpuError {
        entry: entry.to_string(),
        problem,
    };
    if entry.trim().is_empty() {
        return Err(bad("empty entry".to_string()));
    }
    let mut parts = entry.split(':');
    let size = parts.next().unwrap_or_default();
    let total = parse_size(size).map_err(|e| bad(format!("size: {e}")))?;
    if total == 0 {
        return Err(bad("size must be more than 0 bytes".to_string()));
    }
    let mut spec = FakeGpuSpec::new(index, total);
    let (mut saw_used, mut saw_name) = (false, false);
    for option in parts {
        let (key, value) = option
            .split_once('=')
            .ok_or_else(|| bad(format!("option {option:?} is not key=value")))?;
        match key.trim() {
            "used" if !saw_used => {
                saw_used = true;
                spec.other_use = parse_size(value).map_err(|e| bad(format!("used: {e}")))?;
                if spec.other_use > total {
                    return Err(bad(format!(
                        "used={} is more than the size {}",
                        value.trim(),
                        size.trim()
                    )));
                }
            }
            "name" if !saw_name => {
                saw_name = true;
                let name = value.trim();
                if name.is_empty() {
                    return Err(bad("name is empty".to_string()));
                }
                spec.name = name.to_string();
            }
            "used" | "name" => return Err(bad(format!("{} given twice", key.trim()))),
            other => {
                return Err(bad(format!(
                    "unknown option {other:?} (use used= or name=)"
                )))
            }
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    #[test]
    fn parses_good_specs() {
        let fakes = FakeGpus::parse("24GiB, 80G:used=2GiB:name=A100 80GB ,24576MiB,512MB").unwrap();
        let s = fakes.sample();
        assert_eq!(s.len(), 4);
        assert_eq!(
            (s[0].name.as_str(), s[0].total, s[0].used),
            ("Fake GPU 0", 24 * GIB, 0)
        );
        assert_eq!(s[1].name, "A100 80GB");
        assert_eq!(
            (s[1].total, s[1].used, s[1].free),
            (80 * GIB, 2 * GIB, 78 * GIB)
        );
        assert_eq!(s[2].total, 24 * GIB);
        assert_eq!(s[3].total, 512_000_000);
        assert_eq!(s[3].name, "Fake GPU 3");
        let indices: Vec<u32> = s.iter().map(|d| d.index).collect();
        assert_eq!(indices, vec![0, 1, 2, 3]);
        assert_ne!(s[0].uuid, s[1].uuid);
        assert!(s[0].uuid.starts_with("GPU-"));
        assert!(FakeGpus::parse("").unwrap().is_empty());
        assert_eq!(
            FakeGpus::parse("1G:name=x:used=1G").unwrap().other_use(0),
            GIB
        );
    }

    #[test]
    fn rejects_bad_specs_naming_the_entry_and_syntax() {
        let cases = [
            ("24GiB,abc", "abc", "does not start with a number"),
            ("24GiB,,8G", "", "empty entry"),
            ("24XB", "24XB", "unknown unit"),
            ("0G", "0G", "more than 0 bytes"),
            ("8G:used=9G", "8G:used=9G", "more than the size"),
            ("8G:foo=1", "8G:foo=1", "unknown option"),
            ("8G:used", "8G:used", "not key=value"),
            ("8G:name=", "8G:name=", "name is empty"),
            ("8G:used=1G:used=2G", "8G:used=1G:used=2G", "given twice"),
        ];
        for (spec, entry, problem) in cases {
            let err = FakeGpus::parse(spec).unwrap_err();
            assert_eq!(err.entry, entry, "{spec}");
            let text = err.to_string();
            assert!(text.contains(problem), "{spec}: {text}");
            assert!(text.contains(&format!("{entry:?}")), "{text}");
            assert!(text.contains("SIZE[:used=SIZE][:name=TEXT]"), "{text}");
        }
    }

    #[test]
    fn sample_reflects_allocations_and_other_use() {
        let fakes = FakeGpus::parse("8GiB,4GiB").unwrap();
        let handle = fakes.clone();
        handle.allocate(0, 3 * GIB).unwrap();
        assert!(handle.set_other_use(0, GIB));
        let s = fakes.sample();
        assert_eq!((s[0].used, s[0].free), (4 * GIB, 4 * GIB));
        assert_eq!(
            s[0].processes,
            vec![GpuProcess {
                pid: std::process::id(),
                used: 3 * GIB
            }]
        );
        assert_eq!((s[1].used, s[1].free), (0, 4 * GIB));
        assert!(s[1].processes.is_empty());

        let oom = handle.allocate(0, 4 * GIB + 1).unwrap_err();
        assert_eq!(
            oom,
            Oom {
                device: 0,
                requested: 4 * GIB + 1,
                free: 4 * GIB
            }
        );
        assert!(oom.to_string().contains("out of memory"));
        handle.allocate(0, 4 * GIB).unwrap();
        assert_eq!(fakes.sample()[0].free, 0);

        handle.free(0, 5 * GIB);
        handle.set_other_use(0, 512 * MIB);
        let s = fakes.sample();
        assert_eq!(s[0].used, 2 * GIB + 512 * MIB);
        assert_eq!(s[0].free, 5 * GIB + 512 * MIB);
        handle.free(0, u64::MAX);
        assert_eq!(fakes.allocated(0), 0);

        // Other use can exceed what is free (a process we do not control);
        // the sample saturates rather than underflowing.
        handle.allocate(1, 3 * GIB).unwrap();
        handle.set_other_use(1, 3 * GIB);
        let s = fakes.sample();
        assert_eq!((s[1].used, s[1].free), (4 * GIB, 0));
        assert!(handle.allocate(1, 1).is_err());
        assert!(handle.allocate(7, 1).is_err());
        assert!(!handle.set_other_use(7, 1));
    }

    #[test]
    fn select_reindexes_and_keeps_identity() {
        let fakes = FakeGpus::parse("1G,2G,3G").unwrap();
        let uuids = fakes.uuids();
        let picked = fakes.select(&[2, 0]);
        let s = picked.sample();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].index, s[0].total, s[0].name.as_str()),
            (0, 3 * GIB, "Fake GPU 2")
        );
        assert_eq!(s[0].uuid, uuids[2]);
        assert_eq!((s[1].index, s[1].total), (1, GIB));
    }
}
