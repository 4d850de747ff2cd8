//! The loaded-model cache: models stay in memory between tasks, keyed by (model, device,
//! dtype), least recently used first out. Host memory is bounded by a byte budget
//! (`REELSMITH_MODEL_CACHE_MB`, default half of RAM); models on a GPU leave when the scheduler's
//! admission needs their memory ([`evict`], called next to the VRAM ledger's own `evict`).
//! A task holding a model keeps it alive even if it is evicted meanwhile (`Arc`).

use std::any::Any;
use std::sync::{Arc, Mutex, OnceLock};

/// Identity of a loaded model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelKey {
    /// The model (id and weights fingerprint).
    pub model: String,
    /// `None` = host memory (CPU engines), `Some(i)` = GPU `i`.
    pub device: Option<u32>,
    /// Run dtype (`q4_1`, `f16`, …).
    pub dtype: String,
}

struct Entry {
    key: ModelKey,
    bytes: u64,
    last_used: u64,
    value: Arc<dyn Any + Send + Sync>,
}

/// An LRU set of loaded models.
pub struct ModelCache {
    entries: Vec<Entry>,
    host_budget: u64,
    clock: u64,
}

impl ModelCache {
    pub fn new(host_budget: u64) -> Self {
        Self {
            entries: Vec::new(),
            host_budget,
            clock: 0,
        }
    }

    /// The cached model, marked as just used.
    pub fn get<T: Any + Send + Sync>(&mut self, key: &ModelKey) -> Option<Arc<T>> {
        self.clock += 1;
        let now = self.clock;
        let e = self.entries.iter_mut().find(|e| &e.key == key)?;
        e.last_used = now;
        e.value.clone().downcast::<T>().ok()
    }

    /// Adds a model (replacing one with the same key), then drops the least recently used
    /// host models until the host budget holds (the new one stays even if it alone is over).
    pub fn insert<T: Any + Send + Sync>(&mut self, key: ModelKey, bytes: u64, value: Arc<T>) {
        self.clock += 1;
        self.entries.retain(|e| e.key != key);
        self.entries.push(Entry {
            key: key.clone(),
            bytes,
            last_used: self.clock,
            value,
        });
        while self.resident(None) > self.host_budget {
            let victim = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.key.device.is_none() && e.key != key)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i);
            match victim {
                Some(i) => {
                    self.entries.remove(i);
                }
                None => break,
            }
        }
    }

    /// Bytes held on `device` (`None` = host).
    pub fn resident(&self, device: Option<u32>) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.key.device == device)
            .map(|e| e.bytes)
            .sum()
    }

    /// Drops every model called `model` on `device`; returns the bytes freed.
    pub fn evict(&mut self, device: Option<u32>, model: &str) -> u64 {
        let before = self.resident(device);
        self.entries
            .retain(|e| !(e.key.device == device && e.key.model == model));
        before - self.resident(device)
    }

    /// Keys, least recently used first.
    pub fn keys(&self) -> Vec<ModelKey> {
        let mut v: Vec<&Entry> = self.entries.iter().collect();
        v.sort_by_key(|e| e.last_used);
        v.into_iter().map(|e| e.key.clone()).collect()
    }
}

fn default_host_budget() -> u64 {
    if let Some(mb) = std::env::var("REELSMITH_MODEL_CACHE_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return mb << 20;
    }
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb << 10)
    });
    total.map(|t| t / 2).unwrap_or(4 << 30)
}

fn global() -> &'static Mutex<ModelCache> {
    static CACHE: OnceLock<Mutex<ModelCache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(ModelCache::new(default_host_budget())))
}

/// The process-wide cached model for `key`, loading it with `load` on a miss (outside the
/// lock, so other stages are not held up by a slow load).
pub fn shared<T: Any + Send + Sync, E>(
    key: &ModelKey,
    bytes: u64,
    load: impl FnOnce() -> Result<T, E>,
) -> Result<Arc<T>, E> {
    if let Some(v) = global().lock().unwrap_or_else(|p| p.into_inner()).get(key) {
        return Ok(v);
    }
    let value = Arc::new(load()?);
    let mut cache = global().lock().unwrap_or_else(|p| p.into_inner());
    // Another task may have loaded it meanwhile: keep one copy.
    if let Some(v) = cache.get::<T>(key) {
        return Ok(v);
    }
    cache.insert(key.clone(), bytes, value.clone());
    Ok(value)
}

/// The models loaded in this process, as `model@device` (`cpu` for host memory), least
/// recently used first.
pub fn models() -> Vec<String> {
    global()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .into_iter()
        .map(|k| match k.device {
            Some(d) => format!("{}@gpu{d}", k.model),
            None => format!("{}@cpu", k.model),
        })
        .collect()
}

/// Drops `model` from `device` in the process-wide cache; returns the bytes freed.
pub fn evict(device: Option<u32>, model: &str) -> u64 {
    global()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .evict(device, model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(m: &str, d: Option<u32>) -> ModelKey {
        ModelKey {
            model: m.into(),
            device: d,
            dtype: "f16".into(),
        }
    }

    #[test]
    fn least_recently_used_host_model_goes_first() {
        let mut c = ModelCache::new(100);
        c.insert(key("a", None), 40, Arc::new(1u32));
        c.insert(key("b", None), 40, Arc::new(2u32));
        assert_eq!(*c.get::<u32>(&key("a", None)).unwrap(), 1);
        c.insert(key("c", None), 40, Arc::new(3u32));
        // b was the least recently used.
        assert!(c.get::<u32>(&key("b", None)).is_none());
        assert_eq!(c.resident(None), 80);
        // GPU models don't count against the host budget and stay until evicted.
        c.insert(key("g", Some(0)), 1000, Arc::new(4u32));
        assert_eq!(c.resident(Some(0)), 1000);
        assert_eq!(c.evict(Some(0), "g"), 1000);
        assert_eq!(c.evict(Some(0), "g"), 0);
        // Same model on another device or dtype is another entry.
        c.insert(key("a", Some(1)), 10, Arc::new(5u32));
        assert_eq!(*c.get::<u32>(&key("a", None)).unwrap(), 1);
        assert_eq!(*c.get::<u32>(&key("a", Some(1))).unwrap(), 5);
        // Wrong type reads as a miss rather than a panic.
        assert!(c.get::<String>(&key("a", None)).is_none());
    }

    #[test]
    fn a_model_over_budget_alone_still_loads() {
        let mut c = ModelCache::new(10);
        c.insert(key("big", None), 50, Arc::new(0u8));
        assert_eq!(c.keys(), vec![key("big", None)]);
    }

    #[test]
    fn shared_loads_once() {
        let k = key("shared-loads-once-test", None);
        let mut loads = 0;
        for _ in 0..3 {
            let v: Arc<u64> = shared(&k, 1, || {
                loads += 1;
                Ok::<_, ()>(7u64)
            })
            .unwrap();
            assert_eq!(*v, 7);
        }
        assert_eq!(loads, 1);
        assert_eq!(evict(None, "shared-loads-once-test"), 1);
    }
}
