//! CPU slots and a RAM budget for tasks that need no GPU (estimate 0).
//!
//! Defaults: slots = `std::thread::available_parallelism()` (1 if unknown),
//! RAM = 80 % of `MemAvailable` from `/proc/meminfo` (4 GiB if unreadable,
//! e.g. off Linux). A task may hold one grant at a time.

use std::collections::BTreeMap;

/// RAM assumed when `/proc/meminfo` cannot be read.
pub const FALLBACK_RAM_BYTES: u64 = 4 << 30;

/// Counting semaphore over CPU slots and RAM bytes, keyed by task id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuBudget {
    slots: usize,
    ram_bytes: u64,
    held: BTreeMap<u64, (usize, u64)>,
}

impl Default for CpuBudget {
    fn default() -> Self {
        CpuBudget::from_system()
    }
}

impl CpuBudget {
    /// A budget of `slots` CPU slots and `ram_bytes` of RAM.
    pub fn new(slots: usize, ram_bytes: u64) -> CpuBudget {
        CpuBudget {
            slots,
            ram_bytes,
            held: BTreeMap::new(),
        }
    }

    /// Available parallelism and 80 % of `MemAvailable`.
    pub fn from_system() -> CpuBudget {
        let slots = std::thread::available_parallelism().map_or(1, |n| n.get());
        let available = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| parse_mem_available(&text));
        let ram = available.map_or(FALLBACK_RAM_BYTES, |bytes| bytes / 5 * 4);
        CpuBudget::new(slots, ram)
    }

    /// Total slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Total RAM budget in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.ram_bytes
    }

    /// Slots not held by any task.
    pub fn free_slots(&self) -> usize {
        self.slots
            .saturating_sub(self.held.values().map(|&(s, _)| s).sum())
    }

    /// RAM not held by any task.
    pub fn free_ram(&self) -> u64 {
        self.ram_bytes
            .saturating_sub(self.held.values().map(|&(_, r)| r).sum())
    }

    /// Whether a request could ever be granted (on an idle budget); a
    /// scheduler should fail such a task instead of waiting forever.
    pub fn can_ever_fit(&self, slots: usize, ram: u64) -> bool {
        slots <= self.slots && ram <= self.ram_bytes
    }

    /// Grants `slots` and `ram` to `task` if both are free now. A task that
    /// already holds a grant gets `true` without a second one.
    pub fn try_acquire(&mut self, task: u64, slots: usize, ram: u64) -> bool {
        if self.held.contains_key(&task) {
            return true;
        }
        if slots > self.free_slots() || ram > self.free_ram() {
            return false;
        }
        self.held.insert(task, (slots, ram));
        true
    }

    /// Returns `task`'s grant (no-op if it holds none).
    pub fn release(&mut self, task: u64) {
        self.held.remove(&task);
    }
}

/// `MemAvailable` from the text of `/proc/meminfo`, in bytes.
pub fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))?;
    let mut fields = line["MemAvailable:".len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    let multiplier = match fields.next() {
        Some("kB") | Some("KB") | Some("kiB") => 1024,
        None => 1,
        Some(_) => return None,
    };
    value.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo() {
        let text =
            "MemTotal:       131072000 kB\nMemFree:         1000 kB\nMemAvailable:   65536000 kB\n";
        assert_eq!(parse_mem_available(text), Some(65_536_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots kB\n"), None);
    }

    #[test]
    fn system_defaults_are_sane() {
        let budget = CpuBudget::from_system();
        assert!(budget.slots() >= 1);
        assert!(budget.ram_bytes() > 0);
        if let Some(available) = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| parse_mem_available(&t))
        {
            assert!(budget.ram_bytes() <= available);
        }
    }

    #[test]
    fn acquire_and_release() {
        let mut budget = CpuBudget::new(4, 1000);
        assert!(budget.try_acquire(1, 2, 600));
        assert!(!budget.try_acquire(2, 3, 100), "only 2 slots left");
        assert!(!budget.try_acquire(2, 1, 401), "only 400 bytes left");
        assert!(budget.try_acquire(2, 2, 400));
        assert_eq!((budget.free_slots(), budget.free_ram()), (0, 0));
        assert!(budget.try_acquire(1, 2, 600), "re-acquire is idempotent");
        assert_eq!(budget.free_slots(), 0);
        budget.release(1);
        assert_eq!((budget.free_slots(), budget.free_ram()), (2, 600));
        budget.release(1);
        assert_eq!(budget.free_slots(), 2, "double release is a no-op");
        assert!(budget.can_ever_fit(4, 1000));
        assert!(!budget.can_ever_fit(5, 1));
        assert!(!budget.can_ever_fit(1, 1001));
    }
}
