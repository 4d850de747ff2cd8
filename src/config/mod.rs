//! Settings: where state lives (XDG), and the channel, model and theme definitions — embedded
//! defaults with an optional user overlay in the config directory.

pub mod channel;

use std::path::{Path, PathBuf};

pub use channel::{Channel, ChannelError, ChannelSet};

/// Where reelsmith keeps its state and where the user's overlays live.
#[derive(Clone, Debug)]
pub struct Dirs {
    /// `$REELSMITH_DATA_DIR`, `--data-dir`, or `$XDG_DATA_HOME/reelsmith`.
    pub data: PathBuf,
    /// `$XDG_CONFIG_HOME/reelsmith` (channels/, models/, themes/ overlays).
    pub config: PathBuf,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() && Path::new(&v).is_absolute() => PathBuf::from(v),
        _ => home().join(fallback),
    }
}

impl Dirs {
    /// Resolves the directories; `data_override` comes from `--data-dir` or `REELSMITH_DATA_DIR`.
    pub fn resolve(data_override: Option<&Path>) -> Self {
        let data = match data_override {
            Some(p) => p.to_path_buf(),
            None => xdg("XDG_DATA_HOME", ".local/share").join("reelsmith"),
        };
        let config = match std::env::var_os("REELSMITH_CONFIG_DIR") {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => xdg("XDG_CONFIG_HOME", ".config").join("reelsmith"),
        };
        Self { data, config }
    }

    pub fn db_path(&self) -> PathBuf {
        self.data.join("reelsmith.db")
    }

    pub fn artifacts(&self) -> PathBuf {
        self.data.join("artifacts")
    }

    pub fn tmp(&self) -> PathBuf {
        self.data.join("tmp")
    }

    pub fn logs(&self) -> PathBuf {
        self.data.join("logs")
    }
}
