//! Installed models: where a registry entry's files are on this machine, and which entry a
//! command runs.

use std::path::PathBuf;

use crate::hub::registry::{ModelEntry, ModelKind};
use crate::hub::{HubConfig, Registry};

/// Where a model's files are on this machine: the folder it was imported from, or its
/// snapshot in the hub cache; `None` when it is not installed.
pub fn local_dir(cfg: &HubConfig, m: &ModelEntry) -> Option<PathBuf> {
    match &m.local {
        Some(l) => l.exists().then(|| l.clone()),
        None => crate::hub::installed(cfg, &m.spec()).map(|p| p.dir),
    }
}

/// The model a command runs: the registry id `arg`, or else the first installed model of
/// `kind` stored as `format`. `none` says what to do when nothing is installed.
pub fn pick<'a>(
    reg: &'a Registry,
    cfg: &HubConfig,
    arg: Option<&str>,
    kind: ModelKind,
    formats: &[&str],
    none: &str,
) -> Result<(&'a ModelEntry, PathBuf), String> {
    let format = formats.join(" or ");
    match arg {
        Some(id) => {
            let m = reg.get(id).ok_or_else(|| {
                format!(
                    "--model {id}: neither a path nor a model id (`reelsmith models list --kind {}`)",
                    kind.as_str()
                )
            })?;
            if !formats.contains(&m.format.as_str()) {
                return Err(format!(
                    "--model {id}: stored as {}, and this engine reads {format}; \
                     `reelsmith models import PATH` registers a {format} copy",
                    m.format
                ));
            }
            let dir = local_dir(cfg, m).ok_or_else(|| {
                format!("--model {id}: not installed (`reelsmith models pull {id}`)")
            })?;
            Ok((m, dir))
        }
        None => reg
            .models()
            .iter()
            .filter(|m| m.kind == kind && formats.contains(&m.format.as_str()))
            .find_map(|m| local_dir(cfg, m).map(|d| (m, d)))
            .ok_or_else(|| none.to_string()),
    }
}
