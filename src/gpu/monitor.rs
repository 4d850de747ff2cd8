//! Device discovery and sampling: NVML, fake GPUs, or CPU-only mode.
//!
//! Like `nvitop` and `bottom`, a machine without an NVIDIA driver is not an
//! error: the monitor reports CPU-only mode with a plain reason, samples
//! nothing, and never panics. Per-field NVML failures (a sensor a board lacks,
//! a query a driver refuses) become `None` for that field only.

use std::sync::mpsc::Sender;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::Duration;

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;

use super::fake::FakeGpus;
use super::visible::resolve_visible_devices;

/// Environment variable listing fake GPUs (see [`FakeGpus::parse`]).
pub const FAKE_GPUS_ENV: &str = "REELSMITH_FAKE_GPUS";
/// The CUDA device filter (see [`crate::gpu::visible`]).
pub const CUDA_VISIBLE_DEVICES_ENV: &str = "CUDA_VISIBLE_DEVICES";

/// One device at one moment. Memory figures are bytes; `used + free == total`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeviceSample {
    /// Index as the scheduler sees it (after `CUDA_VISIBLE_DEVICES`).
    pub index: u32,
    pub name: String,
    pub uuid: String,
    /// Total memory (0 when the driver would not say).
    pub total: u64,
    /// Memory in use by anyone, including driver-reserved memory.
    pub used: u64,
    pub free: u64,
    /// GPU busy percentage over the driver's last sample period.
    pub utilization: Option<u32>,
    /// Die temperature in °C.
    pub temperature: Option<u32>,
    pub power_watts: Option<f64>,
    /// Processes holding memory on this device.
    pub processes: Vec<GpuProcess>,
}

/// A process holding device memory.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GpuProcess {
    pub pid: u32,
    /// Bytes (0 when the driver does not report it).
    pub used: u64,
}

/// Where samples come from.
#[derive(Clone, Debug)]
pub enum Backend {
    /// A loaded NVIDIA driver.
    Nvml(NvmlBackend),
    /// Fake devices (already filtered by `CUDA_VISIBLE_DEVICES`).
    Fake(FakeGpus),
    /// No usable GPU; `reason` says why in plain words.
    None { reason: String },
}

/// NVML handle plus the physical devices the scheduler may use.
#[derive(Clone, Debug)]
pub struct NvmlBackend {
    nvml: &'static Nvml,
    /// `visible[i]` is the NVML index of scheduler device `i`.
    visible: Vec<u32>,
}

impl NvmlBackend {
    /// NVML indices of the scheduler's devices, in scheduler order.
    pub fn visible(&self) -> &[u32] {
        &self.visible
    }
}

/// Samples the GPUs the scheduler may use.
#[derive(Clone, Debug)]
pub struct GpuMonitor {
    backend: Backend,
}

/// NVML is initialised at most once per process, on first use.
static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();

fn shared_nvml() -> Result<&'static Nvml, String> {
    NVML.get_or_init(|| Nvml::init().map_err(|e| init_failure_reason(&e)))
        .as_ref()
        .map_err(Clone::clone)
}

fn init_failure_reason(error: &NvmlError) -> String {
    match error {
        NvmlError::LibloadingError(_) => {
            "no NVIDIA driver (libnvidia-ml.so not found): CPU-only mode".to_string()
        }
        NvmlError::DriverNotLoaded => {
            "NVIDIA driver installed but not loaded: CPU-only mode".to_string()
        }
        NvmlError::NoPermission => {
            "no permission to talk to the NVIDIA driver: CPU-only mode".to_string()
        }
        other => format!("NVML failed to start ({other}): CPU-only mode"),
    }
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        format!("1 {word}")
    } else {
        format!("{count} {word}s")
    }
}

impl GpuMonitor {
    /// Chooses a backend from the environment: `REELSMITH_FAKE_GPUS` set →
    /// fakes (a malformed value → CPU-only, with the parse error as reason);
    /// otherwise NVML (initialised once per process); failure → CPU-only.
    /// `CUDA_VISIBLE_DEVICES` filters and re-indexes either kind.
    pub fn from_env() -> GpuMonitor {
        let read =
            |name: &str| std::env::var_os(name).map(|value| value.to_string_lossy().into_owned());
        GpuMonitor::from_settings(
            read(FAKE_GPUS_ENV).as_deref(),
            read(CUDA_VISIBLE_DEVICES_ENV).as_deref(),
        )
    }

    /// [`GpuMonitor::from_env`] with the two variables passed in
    /// (`None` = unset), so callers and tests need not touch the process
    /// environment.
    pub fn from_settings(fake_gpus: Option<&str>, cuda_visible: Option<&str>) -> GpuMonitor {
        if let Some(spec) = fake_gpus {
            return match FakeGpus::parse(spec) {
                Ok(fakes) => GpuMonitor::with_fakes_visible(fakes, cuda_visible),
                Err(e) => GpuMonitor::cpu_only(format!("{FAKE_GPUS_ENV}: {e}: CPU-only mode")),
            };
        }
        let nvml = match shared_nvml() {
            Ok(nvml) => nvml,
            Err(reason) => return GpuMonitor::cpu_only(reason),
        };
        let count = match nvml.device_count() {
            Ok(count) => count,
            Err(e) => {
                return GpuMonitor::cpu_only(format!(
                    "NVML could not count GPUs ({e}): CPU-only mode"
                ))
            }
        };
        let uuids: Vec<String> = (0..count)
            .map(|i| {
                nvml.device_by_index(i)
                    .and_then(|d| d.uuid())
                    .unwrap_or_default()
            })
            .collect();
        let visible = resolve_visible_devices(cuda_visible, &uuids);
        if visible.is_empty() {
            return GpuMonitor::cpu_only(if count == 0 {
                "NVML found no GPUs: CPU-only mode".to_string()
            } else {
                hidden_reason(cuda_visible, count as usize, "GPU")
            });
        }
        GpuMonitor {
            backend: Backend::Nvml(NvmlBackend { nvml, visible }),
        }
    }

    /// Fake GPUs, all visible (the process's `CUDA_VISIBLE_DEVICES` is not
    /// consulted). The monitor shares state with `fakes`. No devices →
    /// CPU-only.
    pub fn with_fakes(fakes: FakeGpus) -> GpuMonitor {
        GpuMonitor::with_fakes_visible(fakes, None)
    }

    /// Fake GPUs filtered by a `CUDA_VISIBLE_DEVICES` value (`None` = unset).
    /// When the filter keeps every device in order, the monitor shares state
    /// with `fakes`; otherwise it holds a re-indexed copy, reachable through
    /// [`GpuMonitor::fakes`].
    pub fn with_fakes_visible(fakes: FakeGpus, cuda_visible: Option<&str>) -> GpuMonitor {
        let count = fakes.len();
        let visible = resolve_visible_devices(cuda_visible, &fakes.uuids());
        if visible.is_empty() {
            return GpuMonitor::cpu_only(if count == 0 {
                format!("{FAKE_GPUS_ENV} lists no GPUs: CPU-only mode")
            } else {
                hidden_reason(cuda_visible, count, "fake GPU")
            });
        }
        let all_in_order = visible.iter().copied().eq(0..count as u32);
        let fakes = if all_in_order {
            fakes
        } else {
            fakes.select(&visible)
        };
        GpuMonitor {
            backend: Backend::Fake(fakes),
        }
    }

    /// No GPUs, for the given reason.
    pub fn cpu_only(reason: impl Into<String>) -> GpuMonitor {
        GpuMonitor {
            backend: Backend::None {
                reason: reason.into(),
            },
        }
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The fake devices, indexed as the scheduler sees them, when faking.
    pub fn fakes(&self) -> Option<&FakeGpus> {
        match &self.backend {
            Backend::Fake(fakes) => Some(fakes),
            _ => None,
        }
    }

    pub fn is_cpu_only(&self) -> bool {
        matches!(self.backend, Backend::None { .. })
    }

    /// Every visible device now, indexed `0..n`. Empty in CPU-only mode.
    /// Never panics.
    pub fn sample(&self) -> Vec<DeviceSample> {
        match &self.backend {
            Backend::Nvml(nvml) => nvml
                .visible
                .iter()
                .enumerate()
                .map(|(index, &physical)| {
                    sample_nvml_device(
                        nvml.nvml,
                        physical,
                        u32::try_from(index).unwrap_or(u32::MAX),
                    )
                })
                .collect(),
            Backend::Fake(fakes) => fakes.sample(),
            Backend::None { .. } => Vec::new(),
        }
    }

    /// One line for logs and the status bar: `2 fake GPUs`,
    /// `NVML: 1 GPU (NVIDIA H100 80GB HBM3)`, `CPU only: <reason>`.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Nvml(nvml) => {
                let names: Vec<String> = nvml
                    .visible
                    .iter()
                    .map(|&i| {
                        nvml.nvml
                            .device_by_index(i)
                            .and_then(|d| d.name())
                            .unwrap_or_else(|_| "unknown GPU".to_string())
                    })
                    .collect();
                format!(
                    "NVML: {} ({})",
                    plural(names.len(), "GPU"),
                    names.join(", ")
                )
            }
            Backend::Fake(fakes) => plural(fakes.len(), "fake GPU"),
            Backend::None { reason } => format!("CPU only: {reason}"),
        }
    }
}

fn hidden_reason(cuda_visible: Option<&str>, count: usize, word: &str) -> String {
    format!(
        "{CUDA_VISIBLE_DEVICES_ENV}={:?} hides all {}: CPU-only mode",
        cuda_visible.unwrap_or_default(),
        plural(count, word)
    )
}

fn sample_nvml_device(nvml: &Nvml, physical: u32, index: u32) -> DeviceSample {
    let device = match nvml.device_by_index(physical) {
        Ok(device) => device,
        Err(e) => {
            // Keep the slot so scheduler indices stay stable; zero memory
            // means the ledger will place nothing here.
            return DeviceSample {
                index,
                name: format!("GPU {physical} (unavailable: {e})"),
                uuid: String::new(),
                total: 0,
                used: 0,
                free: 0,
                utilization: None,
                temperature: None,
                power_watts: None,
                processes: Vec::new(),
            };
        }
    };
    let (total, free) = device
        .memory_info()
        .map(|m| (m.total, m.free.min(m.total)))
        .unwrap_or((0, 0));
    let mut processes: Vec<GpuProcess> = Vec::new();
    let lists = [
        device.running_compute_processes(),
        device.running_graphics_processes(),
    ];
    for info in lists.into_iter().flatten().flatten() {
        let used = match info.used_gpu_memory {
            UsedGpuMemory::Used(bytes) => bytes,
            UsedGpuMemory::Unavailable => 0,
        };
        // A process can appear in both lists; keep one entry per PID.
        match processes.iter_mut().find(|p| p.pid == info.pid) {
            Some(existing) => existing.used = existing.used.max(used),
            None => processes.push(GpuProcess {
                pid: info.pid,
                used,
            }),
        }
    }
    DeviceSample {
        index,
        name: device.name().unwrap_or_else(|_| format!("GPU {physical}")),
        uuid: device.uuid().unwrap_or_default(),
        total,
        used: total - free,
        free,
        utilization: device.utilization_rates().ok().map(|u| u.gpu),
        temperature: device.temperature(TemperatureSensor::Gpu).ok(),
        power_watts: device.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
        processes,
    }
}

/// Samples `monitor` every `interval` (at least one second, so at most
/// 1 Hz) on a background thread and sends each sample to `tx`. The thread
/// ends once the receiver is dropped (noticed at the next send).
pub fn spawn_sampler(
    monitor: GpuMonitor,
    interval: Duration,
    tx: Sender<Vec<DeviceSample>>,
) -> std::io::Result<JoinHandle<()>> {
    let interval = interval.max(Duration::from_secs(1));
    std::thread::Builder::new()
        .name("gpu-sampler".to_string())
        .spawn(move || {
            while tx.send(monitor.sample()).is_ok() {
                std::thread::sleep(interval);
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    const GIB: u64 = 1 << 30;

    #[test]
    fn no_nvml_means_plain_cpu_only() {
        let monitor = GpuMonitor::from_settings(None, None);
        if monitor.is_cpu_only() {
            let line = monitor.describe();
            assert!(line.starts_with("CPU only: "), "{line}");
            assert!(line.ends_with("CPU-only mode"), "{line}");
            assert!(!line.contains("Libloading"), "not plain: {line}");
            if std::path::Path::new("/proc/driver/nvidia").exists() {
                eprintln!("driver present but NVML unusable: {line}");
            } else {
                assert!(line.contains("no NVIDIA driver"), "{line}");
            }
            assert!(monitor.sample().is_empty());
        } else {
            // NVML loaded on this machine: only check that nothing panics.
            let samples = monitor.sample();
            let _ = monitor.describe();
            for (i, s) in samples.iter().enumerate() {
                assert_eq!(s.index as usize, i);
                assert_eq!(s.used + s.free, s.total);
            }
        }
        // The real environment must not panic either, whatever it holds.
        let _ = GpuMonitor::from_env().sample();
    }

    #[test]
    fn fakes_from_settings_and_describe() {
        let monitor = GpuMonitor::from_settings(Some("24GiB,80GiB"), None);
        assert!(!monitor.is_cpu_only());
        assert_eq!(monitor.describe(), "2 fake GPUs");
        assert_eq!(monitor.sample().len(), 2);

        let one = GpuMonitor::from_settings(Some("8G"), None);
        assert_eq!(one.describe(), "1 fake GPU");

        let bad = GpuMonitor::from_settings(Some("24GiB,huge"), None);
        assert!(bad.is_cpu_only());
        assert!(bad.describe().contains("\"huge\""), "{}", bad.describe());
        assert!(bad.sample().is_empty());

        let empty = GpuMonitor::from_settings(Some(""), None);
        assert!(empty.is_cpu_only());
        assert!(empty.describe().contains("lists no GPUs"));
    }

    #[test]
    fn cuda_visible_devices_applies_to_fakes() {
        let fakes = FakeGpus::parse("8GiB,16GiB:name=Mid,24GiB").unwrap();
        let uuid2 = fakes.uuids()[2].clone();

        let monitor = GpuMonitor::with_fakes_visible(fakes.clone(), Some("2,0"));
        let s = monitor.sample();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].index, s[0].total, s[0].uuid.as_str()),
            (0, 24 * GIB, uuid2.as_str())
        );
        assert_eq!((s[1].index, s[1].total), (1, 8 * GIB));
        // The monitor's handle is indexed like the scheduler sees devices.
        let handle = monitor.fakes().unwrap();
        handle.allocate(0, GIB).unwrap();
        assert_eq!(monitor.sample()[0].used, GIB);

        let by_uuid = GpuMonitor::with_fakes_visible(fakes.clone(), Some(&uuid2[..12]));
        assert_eq!(by_uuid.sample().len(), 1);
        assert_eq!(by_uuid.sample()[0].total, 24 * GIB);

        let stops = GpuMonitor::with_fakes_visible(fakes.clone(), Some("1,9,0"));
        let s = stops.sample();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, "Mid");

        let hidden = GpuMonitor::with_fakes_visible(fakes.clone(), Some(""));
        assert!(hidden.is_cpu_only());
        assert!(
            hidden.describe().contains("hides all 3 fake GPUs"),
            "{}",
            hidden.describe()
        );
        assert!(GpuMonitor::with_fakes_visible(fakes.clone(), Some("-1")).is_cpu_only());

        // All visible in order: state is shared with the caller's handle.
        let all = GpuMonitor::with_fakes_visible(fakes.clone(), Some("0,1,2"));
        fakes.set_other_use(1, 3 * GIB);
        assert_eq!(all.sample()[1].used, 3 * GIB);
        assert_eq!(GpuMonitor::with_fakes(fakes).sample()[1].free, 13 * GIB);
    }

    #[test]
    fn samples_serialize() {
        let monitor = GpuMonitor::with_fakes(FakeGpus::parse("1GiB").unwrap());
        let json = serde_json::to_value(monitor.sample()).unwrap();
        assert_eq!(json[0]["total"], 1u64 << 30);
        assert_eq!(json[0]["utilization"], serde_json::Value::Null);
    }

    #[test]
    fn sampler_clamps_interval_and_stops_when_receiver_drops() {
        let fakes = FakeGpus::parse("1GiB").unwrap();
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        let handle = spawn_sampler(GpuMonitor::with_fakes(fakes), Duration::ZERO, tx).unwrap();
        assert_eq!(rx.recv().unwrap().len(), 1);
        assert_eq!(rx.recv().unwrap().len(), 1);
        assert!(
            started.elapsed() >= Duration::from_millis(990),
            "not clamped to 1 s"
        );
        drop(rx);
        handle.join().unwrap();
    }
}
