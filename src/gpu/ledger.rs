//! VRAM ledger: which of our tasks hold how much memory on which device,
//! which models sit loaded there, and whether a new task may start.
//!
//! # Admission rule
//!
//! Let, for device `d`:
//! * `usable(d) = capacity(d) − margin(d)`, `margin(d) = max(margin_bytes,
//!   margin_fraction × capacity(d))`;
//! * `reserved(d)` = sum of running reservations on `d`;
//! * `idle(d)` = bytes of models loaded on `d` that no running reservation on
//!   `d` uses (a model in use is covered by its users' estimates);
//! * `measured_free(d)` = `free` from the latest sample (this sees other
//!   processes), `pending(d)` = what tasks admitted on `d` since that sample
//!   will add (not visible in it yet).
//!
//! A task needing `estimate` bytes for `model` fits `d` iff both hold:
//! 1. **ledger**: `reserved(d) + idle'(d) + estimate ≤ usable(d)` — we never
//!    promise more than the device minus its margin. `idle'` is `idle` without
//!    `model`, which the task takes over if it is loaded on `d`.
//! 2. **measured**: `need + pending(d) ≤ measured_free(d) − margin(d)`, where
//!    `need = estimate − bytes of model if already loaded on d` (the engine
//!    reuses a resident copy; that is the point of affinity). Counting
//!    `pending` stops two tasks from being admitted against the same stale
//!    sample; it resets when [`Ledger::update_samples`] brings a new one.
//!
//! Placement among fitting devices: first the devices where `model` is
//! already loaded (affinity), then **best fit** — the device left with the
//! least headroom (smallest of the two rules' slack), ties to the lowest
//! index. Best fit keeps the big holes on big GPUs free for big models (a
//! 24 GiB TTS job should not take the 80 GiB card a video model needs),
//! which matters on the mixed-size machines this studio targets.
//!
//! If nothing fits as is but evicting idle loaded models on a device would
//! make it fit (both rules, counting the evicted bytes as freed), the answer
//! is [`Admission::AfterEvicting`] naming the device and the models in LRU
//! order: the scheduler unloads them, calls [`Ledger::evict`], and retries
//! after the next sample shows the memory free. Devices with affinity win,
//! then the plan that evicts the fewest bytes. Otherwise the task must
//! [`Admission::Wait`], or gets [`Admission::Never`] when its estimate exceeds
//! `usable` of every device. An estimate of 0 is [`Admission::CpuOnly`]: it
//! takes nothing here and belongs to [`crate::gpu::CpuBudget`].

use std::collections::BTreeMap;

use serde::Serialize;

use super::monitor::DeviceSample;
use super::units::format_bytes;

/// Safety margin kept free on every device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LedgerConfig {
    /// Absolute margin (default 512 MiB).
    pub margin_bytes: u64,
    /// Fraction of capacity (default 0.05). The margin is the larger of both.
    pub margin_fraction: f64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            margin_bytes: 512 << 20,
            margin_fraction: 0.05,
        }
    }
}

/// Memory promised to one running task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reservation {
    pub device: u32,
    pub bytes: u64,
    pub task: u64,
}

/// Answer to [`Ledger::try_admit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Start the task on `device`; call [`Ledger::release`] when it ends.
    Admitted(Reservation),
    /// Unload these idle models from `device` (LRU first), call
    /// [`Ledger::evict`] for each, then retry after the next sample.
    AfterEvicting { device: u32, models: Vec<String> },
    /// Not now; retry when memory frees up.
    Wait { reason: String },
    /// The estimate exceeds every device's capacity minus margin.
    Never { reason: String },
    /// Estimate 0: needs no GPU; nothing was reserved.
    CpuOnly,
}

/// A reservation as shown in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReservationView {
    pub task: u64,
    pub bytes: u64,
    pub model: Option<String>,
}

/// A loaded model as shown in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LoadedModelView {
    pub model: String,
    pub bytes: u64,
    /// Logical clock of last use (higher = more recent).
    pub last_used: u64,
    /// Whether a running reservation on this device uses it.
    pub in_use: bool,
}

/// One device's ledger, for the TUI and status output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DeviceLedger {
    pub index: u32,
    pub name: String,
    pub capacity: u64,
    pub margin: u64,
    /// `capacity − margin`.
    pub usable: u64,
    pub reserved: u64,
    /// Loaded models no running reservation uses.
    pub idle_loaded: u64,
    pub measured_free: u64,
    /// Admitted since the last sample, not yet visible in `measured_free`.
    pub pending: u64,
    pub reservations: Vec<ReservationView>,
    pub loaded: Vec<LoadedModelView>,
}

#[derive(Clone, Debug)]
struct TaskEntry {
    device: u32,
    bytes: u64,
    model: Option<String>,
}

#[derive(Clone, Debug)]
struct LoadedModel {
    bytes: u64,
    last_used: u64,
}

#[derive(Clone, Debug)]
struct DeviceState {
    index: u32,
    name: String,
    capacity: u64,
    measured_free: u64,
    pending: u64,
    loaded: BTreeMap<String, LoadedModel>,
}

/// The VRAM ledger. Not thread-safe by itself: the scheduler owns it (or
/// wraps it in a mutex).
#[derive(Clone, Debug)]
pub struct Ledger {
    cfg: LedgerConfig,
    devices: Vec<DeviceState>,
    tasks: BTreeMap<u64, TaskEntry>,
    clock: u64,
}

/// How a task would fit a device.
#[derive(Clone, Debug)]
struct Fit {
    position: usize,
    affinity: bool,
    headroom: u64,
    evict: Vec<String>,
    evict_bytes: u64,
}

impl Ledger {
    /// A ledger for the sampled devices, with their free memory as the first
    /// measurement.
    pub fn new(devices: &[DeviceSample], cfg: LedgerConfig) -> Ledger {
        let mut ledger = Ledger {
            cfg,
            devices: Vec::new(),
            tasks: BTreeMap::new(),
            clock: 0,
        };
        ledger.update_samples(devices);
        ledger
    }

    /// Records the latest measurement of each sampled device (a device not
    /// seen before is added). Clears `pending` for the sampled devices.
    pub fn update_samples(&mut self, devices: &[DeviceSample]) {
        for sample in devices {
            let position = match self.position(sample.index) {
                Some(position) => position,
                None => {
                    self.devices.push(DeviceState {
                        index: sample.index,
                        name: sample.name.clone(),
                        capacity: 0,
                        measured_free: 0,
                        pending: 0,
                        loaded: BTreeMap::new(),
                    });
                    self.devices.len() - 1
                }
            };
            let state = &mut self.devices[position];
            state.name.clone_from(&sample.name);
            state.capacity = sample.total;
            state.measured_free = sample.free.min(sample.total);
            state.pending = 0;
        }
    }

    fn position(&self, device: u32) -> Option<usize> {
        self.devices.iter().position(|d| d.index == device)
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn margin_of(&self, state: &DeviceState) -> u64 {
        let fraction = if self.cfg.margin_fraction.is_finite() {
            self.cfg.margin_fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let by_fraction = (state.capacity as f64 * fraction).ceil() as u64;
        self.cfg.margin_bytes.max(by_fraction)
    }

    fn usable_of(&self, state: &DeviceState) -> u64 {
        state.capacity.saturating_sub(self.margin_of(state))
    }

    fn in_use(&self, device: u32, model: &str) -> bool {
        self.tasks
            .values()
            .any(|t| t.device == device && t.model.as_deref() == Some(model))
    }

    fn idle_of(&self, state: &DeviceState) -> u64 {
        state
            .loaded
            .iter()
            .filter(|(name, _)| !self.in_use(state.index, name))
            .map(|(_, m)| m.bytes)
            .sum()
    }

    fn reserved_of(&self, device: u32) -> u64 {
        self.tasks
            .values()
            .filter(|t| t.device == device)
            .map(|t| t.bytes)
            .sum()
    }

    /// Bytes reserved by running tasks on `device`.
    pub fn reserved(&self, device: u32) -> u64 {
        self.reserved_of(device)
    }

    /// Total memory of `device` (0 if unknown).
    pub fn capacity(&self, device: u32) -> u64 {
        self.position(device)
            .map_or(0, |p| self.devices[p].capacity)
    }

    /// Safety margin of `device` (the configured minimum if unknown).
    pub fn margin(&self, device: u32) -> u64 {
        match self.position(device) {
            Some(p) => self.margin_of(&self.devices[p]),
            None => self.cfg.margin_bytes,
        }
    }

    /// Bytes of loaded models on `device` that no running task uses.
    pub fn idle_loaded(&self, device: u32) -> u64 {
        self.position(device)
            .map_or(0, |p| self.idle_of(&self.devices[p]))
    }

    /// Free memory of `device` in the latest sample (0 if unknown).
    pub fn measured_free(&self, device: u32) -> u64 {
        self.position(device)
            .map_or(0, |p| self.devices[p].measured_free)
    }

    /// The running reservation of `task`, if any.
    pub fn reservation(&self, task: u64) -> Option<Reservation> {
        self.tasks.get(&task).map(|t| Reservation {
            device: t.device,
            bytes: t.bytes,
            task,
        })
    }

    /// Checks whether the task fits `state` once `evict` (idle models,
    /// totalling `evict_bytes`) are gone; returns the headroom left.
    fn fits(
        &self,
        state: &DeviceState,
        estimate: u64,
        model: Option<&str>,
        evict_bytes: u64,
    ) -> Option<u64> {
        let margin = self.margin_of(state);
        let usable = state.capacity.saturating_sub(margin);
        let resident = model.and_then(|m| state.loaded.get(m).map(|l| (m, l.bytes)));
        let mut idle = self.idle_of(state);
        if let Some((name, bytes)) = resident {
            if !self.in_use(state.index, name) {
                idle = idle.saturating_sub(bytes); // the task takes it over
            }
        }
        let idle = idle.saturating_sub(evict_bytes);
        let committed = self
            .reserved_of(state.index)
            .checked_add(idle)?
            .checked_add(estimate)?;
        let ledger_slack = usable.checked_sub(committed)?;

        let need = estimate.saturating_sub(resident.map_or(0, |(_, bytes)| bytes));
        let measured_room = state
            .measured_free
            .saturating_add(evict_bytes)
            .saturating_sub(margin);
        let measured_slack = measured_room.checked_sub(need.checked_add(state.pending)?)?;
        Some(ledger_slack.min(measured_slack))
    }

    /// Idle models on `state` (never `keep`, never in use), least recently
    /// used first, evicted until the task fits. `None` if even evicting all
    /// of them is not enough, `Some(empty)` if it fits already.
    fn eviction_plan(
        &self,
        state: &DeviceState,
        estimate: u64,
        model: Option<&str>,
    ) -> Option<(Vec<String>, u64, u64)> {
        if let Some(headroom) = self.fits(state, estimate, model, 0) {
            return Some((Vec::new(), 0, headroom));
        }
        let mut candidates: Vec<(&String, &LoadedModel)> = state
            .loaded
            .iter()
            .filter(|(name, _)| Some(name.as_str()) != model && !self.in_use(state.index, name))
            .collect();
        candidates.sort_by_key(|(name, m)| (m.last_used, name.as_str()));
        let mut chosen = Vec::new();
        let mut bytes = 0u64;
        for (name, loaded) in candidates {
            chosen.push(name.clone());
            bytes = bytes.saturating_add(loaded.bytes);
            if let Some(headroom) = self.fits(state, estimate, model, bytes) {
                return Some((chosen, bytes, headroom));
            }
        }
        None
    }

    /// Decides whether `task` (needing `estimate` bytes, optionally for
    /// `model`) may start now; see the module docs for the rule. Admitting
    /// records the reservation. Asking again for an admitted task returns
    /// its existing reservation.
    pub fn try_admit(&mut self, task: u64, estimate: u64, model: Option<&str>) -> Admission {
        if estimate == 0 {
            return Admission::CpuOnly;
        }
        if let Some(existing) = self.reservation(task) {
            return Admission::Admitted(existing);
        }
        let largest = self
            .devices
            .iter()
            .map(|d| self.usable_of(d))
            .max()
            .unwrap_or(0);
        if estimate > largest {
            return Admission::Never {
                reason: if self.devices.is_empty() {
                    format!(
                        "needs {} of GPU memory but there are no GPUs",
                        format_bytes(estimate)
                    )
                } else {
                    format!(
                        "needs {} of GPU memory but the largest GPU offers {} (capacity minus safety margin)",
                        format_bytes(estimate),
                        format_bytes(largest)
                    )
                },
            };
        }

        let mut plans: Vec<Fit> = Vec::new();
        for (position, state) in self.devices.iter().enumerate() {
            if let Some((evict, evict_bytes, headroom)) = self.eviction_plan(state, estimate, model)
            {
                plans.push(Fit {
                    position,
                    affinity: model.is_some_and(|m| state.loaded.contains_key(m)),
                    headroom,
                    evict,
                    evict_bytes,
                });
            }
        }
        let best_now = plans
            .iter()
            .filter(|f| f.evict.is_empty())
            .min_by_key(|f| (!f.affinity, f.headroom, self.devices[f.position].index))
            .cloned();
        if let Some(fit) = best_now {
            let now = self.tick();
            let state = &mut self.devices[fit.position];
            let device = state.index;
            let resident = model.and_then(|m| state.loaded.get_mut(m));
            let need = match resident {
                Some(loaded) => {
                    loaded.last_used = now;
                    estimate.saturating_sub(loaded.bytes)
                }
                None => estimate,
            };
            state.pending = state.pending.saturating_add(need);
            self.tasks.insert(
                task,
                TaskEntry {
                    device,
                    bytes: estimate,
                    model: model.map(str::to_string),
                },
            );
            return Admission::Admitted(Reservation {
                device,
                bytes: estimate,
                task,
            });
        }
        if let Some(plan) = plans
            .iter()
            .min_by_key(|f| (!f.affinity, f.evict_bytes, self.devices[f.position].index))
        {
            return Admission::AfterEvicting {
                device: self.devices[plan.position].index,
                models: plan.evict.clone(),
            };
        }
        Admission::Wait {
            reason: self.wait_reason(estimate, model),
        }
    }

    fn wait_reason(&self, estimate: u64, model: Option<&str>) -> String {
        let per_device: Vec<String> = self
            .devices
            .iter()
            .map(|d| {
                let margin = self.margin_of(d);
                let promised = self.reserved_of(d.index) + self.idle_of(d);
                format!(
                    "GPU {} has {} unpromised and {} measured free beyond the {} margin",
                    d.index,
                    format_bytes(self.usable_of(d).saturating_sub(promised)),
                    format_bytes(
                        d.measured_free
                            .saturating_sub(margin)
                            .saturating_sub(d.pending)
                    ),
                    format_bytes(margin)
                )
            })
            .collect();
        let for_model = model.map(|m| format!(" for {m}")).unwrap_or_default();
        format!(
            "needs {}{for_model}; {}",
            format_bytes(estimate),
            per_device.join("; ")
        )
    }

    /// Ends `task`'s reservation (no-op if it has none). Its model, if
    /// loaded, stays loaded and counts as used now. `pending` is left as is
    /// until the next sample: part of what the task added (a model it
    /// loaded) may still be resident, and the sample will tell.
    pub fn release(&mut self, task: u64) {
        let Some(entry) = self.tasks.remove(&task) else {
            return;
        };
        let now = self.tick();
        if let Some(position) = self.position(entry.device) {
            let state = &mut self.devices[position];
            if let Some(loaded) = entry.model.as_deref().and_then(|m| state.loaded.get_mut(m)) {
                loaded.last_used = now;
            }
        }
    }

    /// Records that `model` now occupies `bytes` on `device` (replacing an
    /// earlier figure) and counts as used now. Unknown devices are ignored.
    pub fn note_loaded(&mut self, device: u32, model: &str, bytes: u64) {
        let now = self.tick();
        if let Some(position) = self.position(device) {
            self.devices[position].loaded.insert(
                model.to_string(),
                LoadedModel {
                    bytes,
                    last_used: now,
                },
            );
        }
    }

    /// Records that `model` was unloaded from `device`.
    pub fn evict(&mut self, device: u32, model: &str) {
        if let Some(position) = self.position(device) {
            self.devices[position].loaded.remove(model);
        }
    }

    /// Idle loaded models on `device` (least recently used first) whose
    /// eviction would let a task needing `needed` bytes fit there. Empty if
    /// it fits without evicting anything, or would not fit even after
    /// evicting every idle model. Models in use are never proposed.
    pub fn evictable(&self, device: u32, needed: u64) -> Vec<String> {
        self.position(device)
            .and_then(|p| self.eviction_plan(&self.devices[p], needed, None))
            .map(|(models, _, _)| models)
            .unwrap_or_default()
    }

    /// Serializable view of every device.
    pub fn snapshot(&self) -> Vec<DeviceLedger> {
        self.devices
            .iter()
            .map(|d| DeviceLedger {
                index: d.index,
                name: d.name.clone(),
                capacity: d.capacity,
                margin: self.margin_of(d),
                usable: self.usable_of(d),
                reserved: self.reserved_of(d.index),
                idle_loaded: self.idle_of(d),
                measured_free: d.measured_free,
                pending: d.pending,
                reservations: self
                    .tasks
                    .iter()
                    .filter(|(_, t)| t.device == d.index)
                    .map(|(&task, t)| ReservationView {
                        task,
                        bytes: t.bytes,
                        model: t.model.clone(),
                    })
                    .collect(),
                loaded: d
                    .loaded
                    .iter()
                    .map(|(name, m)| LoadedModelView {
                        model: name.clone(),
                        bytes: m.bytes,
                        last_used: m.last_used,
                        in_use: self.in_use(d.index, name),
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
