//! GPU discovery, sampling and VRAM admission for the in-process scheduler.
//!
//! * [`monitor`]: [`GpuMonitor`] samples devices through NVML, through fake GPUs
//!   (`REELSMITH_FAKE_GPUS`), or reports CPU-only mode with a plain reason.
//!   `CUDA_VISIBLE_DEVICES` is honoured for both ([`visible`]).
//! * [`fake`]: [`FakeGpus`], shared fake devices whose memory tests and the
//!   fake engines can allocate and free.
//! * [`ledger`]: [`Ledger`], the VRAM reservation ledger that decides whether a
//!   task may start on a device (never over-committing).
//! * [`cpu`]: [`CpuBudget`], CPU slots and a RAM budget for tasks that need no GPU.
//!
//! Sizes are bytes everywhere. Size strings use binary units for `K/M/G/T`,
//! `KiB/MiB/GiB/TiB` and decimal units for `KB/MB/GB/TB` (see [`units`]).

pub mod cpu;
pub mod cuda;
pub mod fake;
pub mod ledger;
pub mod monitor;
pub mod units;
pub mod visible;

pub use cpu::CpuBudget;
pub use fake::{FakeGpuError, FakeGpuSpec, FakeGpus, Oom};
pub use ledger::{
    Admission, DeviceLedger, Ledger, LedgerConfig, LoadedModelView, Reservation, ReservationView,
};
pub use monitor::{spawn_sampler, Backend, DeviceSample, GpuMonitor, GpuProcess, NvmlBackend};
pub use units::{format_bytes, parse_size};
pub use visible::{parse_visible_devices, resolve_visible_devices, VisibleEntry};
