//! Installed models: where a registry entry's files are on this machine, and which entry a
//! command runs.

use std::path::PathBuf;

use crate::hub::registry::{ModelEntry, ModelKind};
use crate::hub::{HubConfig, Registry};

/// The local folders of `m`'s `requires` companions, in order, or which one is missing and
/// how to get it.
pub fn companion_dirs(
    reg: &Registry,
    cfg: &HubConfig,
    m: &ModelEntry,
) -> Result<Vec<PathBuf>, String> {
    m.requires
        .iter()
        .map(|id| {
            let c = reg
                .get(id)
                .ok_or_else(|| format!("{} needs {id}, which the registry does not list", m.id))?;
            local_dir(cfg, c).ok_or_else(|| {
                format!(
                    "{} needs {id} installed too: `reelsmith models pull {id}`",
                    m.id
                )
            })
        })
        .collect()
}

/// Where a model's files are on this machine: the folder it was imported from, or its
/// snapshot in the hub cache; `None` when it is not installed.
pub fn local_dir(cfg: &HubConfig, m: &ModelEntry) -> Option<PathBuf> {
    match &m.local {
        Some(l) => l.exists().then(|| l.clone()),
        None => crate::hub::installed(cfg, &m.spec()).map(|p| p.dir),
    }
}

/// Which entry a model name that a user typed (a command-line flag, `engines.toml`, a
/// `REELSMITH_*` variable) means. The rule, in order:
///
/// 1. Names match an entry's id exactly, then its id ignoring case, then another name it is
///    known by ignoring case: a Piper voice's id without `piper-`, or the name of its weights
///    file as it is on disk, with or without the extension (`en_US-joe-medium.onnx`,
///    `en_US-joe-medium`, `SmolLM2-135M-Instruct.Q4_1.gguf`).
/// 2. Only entries of `kind` match by case or file name; an exact id matches whatever its kind
///    (the caller then says why it does not fit).
/// 3. Installed entries (imported, or in the hub cache) win over entries that are not; then
///    entries stored in one of `formats`; then the closer match of rule 1.
/// 4. Several entries equally good are ambiguous; no entry at all is unknown. Both errors list
///    the candidates.
pub fn resolve<'a>(
    reg: &'a Registry,
    cfg: &HubConfig,
    name: &str,
    kind: ModelKind,
    formats: &[&str],
) -> Result<Resolved<'a>, NameError> {
    let name = name.trim();
    let mut found: Vec<((bool, bool, u8), Resolved<'a>)> = reg
        .models()
        .iter()
        .filter_map(|m| {
            let strength = name_match(m, name)?;
            if strength > 0 && m.kind != kind {
                return None;
            }
            let dir = local_dir(cfg, m);
            let key = (
                dir.is_none(),
                !formats.contains(&m.format.as_str()),
                strength,
            );
            Some((key, Resolved { entry: m, dir }))
        })
        .collect();
    found.sort_by_key(|(key, _)| *key);
    let Some(best) = found.first().map(|(key, _)| *key) else {
        return Err(NameError::Unknown {
            name: name.to_string(),
            kind,
            close: close_matches(reg, cfg, name, kind),
        });
    };
    let mut tied: Vec<Resolved<'a>> = found
        .into_iter()
        .take_while(|(key, _)| *key == best)
        .map(|(_, r)| r)
        .collect();
    if tied.len() == 1 {
        return Ok(tied.remove(0));
    }
    Err(NameError::Ambiguous {
        name: name.to_string(),
        kind,
        installed: !best.0,
        candidates: tied.iter().map(|r| describe(r.entry, &r.dir)).collect(),
    })
}

/// The entry a name resolved to, and its folder when it is installed.
#[derive(Debug)]
pub struct Resolved<'a> {
    pub entry: &'a ModelEntry,
    pub dir: Option<PathBuf>,
}

/// A model name that means no entry, or several.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "{name}: {}no {} model has this name{}; `reelsmith models list --kind {}` lists them, \
         `reelsmith models import PATH` registers one on disk",
        if NAMED_WEIGHTS.iter().any(|x| name.ends_with(x)) { "no such file here, and " } else { "" },
        kind.as_str(),
        if close.is_empty() { String::new() } else { format!(" (close: {})", close.join(", ")) },
        kind.as_str()
    )]
    Unknown {
        name: String,
        kind: ModelKind,
        /// Close names, installed ones first, each with where it is.
        close: Vec<String>,
    },
    #[error(
        "{name}: several {} {} models have this name: {}; use one of these ids",
        if *installed { "installed" } else { "registry" },
        kind.as_str(),
        candidates.join(", ")
    )]
    Ambiguous {
        name: String,
        kind: ModelKind,
        /// Whether the candidates are installed (else none of them is).
        installed: bool,
        /// Each candidate's id and where it is.
        candidates: Vec<String>,
    },
}

/// How well `name` names `m` (lower is closer); `None`: not at all.
fn name_match(m: &ModelEntry, name: &str) -> Option<u8> {
    if m.id == name {
        Some(0)
    } else if m.id.eq_ignore_ascii_case(name) {
        Some(1)
    } else if aliases(m).iter().any(|a| a.eq_ignore_ascii_case(name)) {
        Some(2)
    } else {
        None
    }
}

/// Weights files whose names users type (Piper voices, GGUF files, single-file checkpoints).
const NAMED_WEIGHTS: &[&str] = &[".onnx", ".gguf", ".safetensors"];

/// The other names an entry is known by: its id without `piper-`, and each weights file's
/// name with and without its extension. Files inside component folders (`unet/…`) do not
/// name the model; a Piper voice's file does wherever the registry keeps it.
fn aliases(m: &ModelEntry) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(rest) = m.id.strip_prefix("piper-") {
        out.push(rest.to_string());
    }
    for f in &m.files {
        let (folder, file) = match f.path.rsplit_once('/') {
            Some((d, n)) => (Some(d), n),
            None => (None, f.path.as_str()),
        };
        let Some(ext) = NAMED_WEIGHTS.iter().find(|x| file.ends_with(*x)) else {
            continue;
        };
        if folder.is_some() && *ext != ".onnx" {
            continue;
        }
        out.push(file.to_string());
        out.push(file.trim_end_matches(ext).to_string());
    }
    out
}

/// `id` and where its files are, for error messages.
fn describe(m: &ModelEntry, dir: &Option<PathBuf>) -> String {
    match (&m.local, dir) {
        (Some(l), _) => format!("{} (imported from {})", m.id, l.display()),
        (None, Some(_)) => format!("{} (installed)", m.id),
        (None, None) => format!("{} (not installed)", m.id),
    }
}

/// Entries of `kind` whose id or file names look like `name`, installed ones first.
fn close_matches(reg: &Registry, cfg: &HubConfig, name: &str, kind: ModelKind) -> Vec<String> {
    let want = name.to_lowercase();
    let suggested = reg.suggest(name);
    let mut close: Vec<(bool, String)> = reg
        .models()
        .iter()
        .filter(|m| m.kind == kind)
        .filter(|m| {
            suggested.contains(&m.id.as_str())
                || std::iter::once(m.id.clone())
                    .chain(aliases(m))
                    .map(|a| a.to_lowercase())
                    .any(|a| {
                        a.contains(&want)
                            || (a.len() >= 3 && want.contains(&a))
                            || common_prefix(&a, &want) * 3 >= want.len() * 2
                    })
        })
        .map(|m| {
            let dir = local_dir(cfg, m);
            (dir.is_none(), describe(m, &dir))
        })
        .collect();
    close.sort_by_key(|(not_installed, _)| *not_installed);
    close.into_iter().take(8).map(|(_, d)| d).collect()
}

/// How many leading characters `a` and `b` share.
fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

/// The model a command runs: the one `arg` names (see [`resolve`]), or else the first
/// installed model of `kind` stored as `format`. `none` says what to do when nothing is
/// installed.
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
        Some(name) => {
            let Resolved { entry: m, dir } =
                resolve(reg, cfg, name, kind, formats).map_err(|e| format!("--model {e}"))?;
            let id = &m.id;
            let called = if id == name.trim() {
                id.clone()
            } else {
                format!("{name} ({id})")
            };
            if !formats.contains(&m.format.as_str()) {
                return Err(format!(
                    "--model {called}: stored as {}, and this engine reads {format}; \
                     `reelsmith models import PATH` registers a {format} copy",
                    m.format
                ));
            }
            let dir = dir.ok_or_else(|| match &m.local {
                Some(l) => format!(
                    "--model {called}: imported from {}, which is gone; import it again from \
                     where it is now (`reelsmith models import PATH`)",
                    l.display()
                ),
                None => format!("--model {called}: not installed (`reelsmith models pull {id}`)"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::import::{detect, entry, register};

    /// An empty hub cache: no registry model is installed.
    fn empty_cache(root: &std::path::Path) -> HubConfig {
        let hf = root.join("hf").to_string_lossy().into_owned();
        HubConfig::from_env(|k| (k == "HF_HOME").then(|| hf.clone()))
    }

    /// A Piper voice `NAME.onnx` + `NAME.onnx.json` in `dir`, imported as `id`.
    fn import_voice(config: &std::path::Path, dir: &std::path::Path, file: &str, id: &str) {
        std::fs::create_dir_all(dir).unwrap();
        let onnx = dir.join(file);
        std::fs::write(&onnx, [0x08u8, 0x07, 0x00]).unwrap();
        std::fs::write(
            format!("{}.json", onnx.display()),
            r#"{"audio":{"sample_rate":22050},"language":{"code":"en_US"},"phoneme_id_map":{"a":[1]}}"#,
        )
        .unwrap();
        register(config, &entry(&detect(&onnx).unwrap(), id)).unwrap();
    }

    fn gguf(path: &std::path::Path) {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        for s in ["general.architecture", "llama"] {
            b.extend_from_slice(&(s.len() as u64).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
            if s == "general.architecture" {
                b.extend_from_slice(&8u32.to_le_bytes());
            }
        }
        std::fs::write(path, b).unwrap();
    }

    const TTS: ModelKind = ModelKind::Tts;

    #[test]
    fn an_imported_voice_answers_to_its_file_name_before_the_registry_voice() {
        let t = tempfile::tempdir().unwrap();
        let config = t.path().join("config");
        // What `reelsmith models import …/en_US-joe-medium.onnx` registers.
        import_voice(
            &config,
            &t.path().join("voices"),
            "en_US-joe-medium.onnx",
            "en_us-joe-medium",
        );
        let reg = Registry::load(Some(&config)).unwrap();
        assert!(reg.get("piper-en_US-joe-medium").is_some());
        let cfg = empty_cache(t.path());
        for name in [
            "en_US-joe-medium",
            "en_US-joe-medium.onnx",
            "en_us-joe-medium",
            "EN_US-JOE-MEDIUM",
            " en_US-joe-medium.ONNX ",
        ] {
            let r = resolve(&reg, &cfg, name, TTS, &["onnx"]).unwrap();
            assert_eq!(r.entry.id, "en_us-joe-medium", "{name}");
            assert_eq!(
                r.dir,
                Some(t.path().join("voices").canonicalize().unwrap()),
                "{name}"
            );
            let (m, _) = pick(&reg, &cfg, Some(name), TTS, &["onnx"], "none").unwrap();
            assert_eq!(m.id, "en_us-joe-medium", "{name}");
        }
        // The registry's own id still names the registry voice, which is not installed.
        let r = resolve(&reg, &cfg, "piper-en_US-joe-medium", TTS, &["onnx"]).unwrap();
        assert_eq!(
            (r.entry.id.as_str(), r.dir),
            ("piper-en_US-joe-medium", None)
        );
        let e = pick(
            &reg,
            &cfg,
            Some("piper-en_US-joe-medium"),
            TTS,
            &["onnx"],
            "none",
        )
        .unwrap_err();
        assert!(
            e.contains("not installed") && e.contains("models pull piper-en_US-joe-medium"),
            "{e}"
        );
    }

    #[test]
    fn without_an_import_the_short_name_means_the_registry_voice_and_says_how_to_get_it() {
        let t = tempfile::tempdir().unwrap();
        let reg = Registry::load(Some(&t.path().join("config"))).unwrap();
        let cfg = empty_cache(t.path());
        for name in [
            "en_US-joe-medium",
            "en_us-joe-medium",
            "en_US-joe-medium.onnx",
        ] {
            let e = pick(&reg, &cfg, Some(name), TTS, &["onnx"], "none").unwrap_err();
            assert!(
                e.contains(&format!("{name} (piper-en_US-joe-medium): not installed"))
                    && e.contains("`reelsmith models pull piper-en_US-joe-medium`"),
                "{e}"
            );
        }
    }

    #[test]
    fn equally_good_names_are_ambiguous_and_unknown_names_list_close_ones() {
        let t = tempfile::tempdir().unwrap();
        let config = t.path().join("config");
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        import_voice(&config, &a, "en_US-joe-medium.onnx", "en_us-joe-medium");
        import_voice(&config, &b, "en_US-joe-medium.onnx", "joe-copy");
        import_voice(&config, &b, "Voice.onnx", "Voice");
        import_voice(&config, &b, "voice2.onnx", "voice");
        let reg = Registry::load(Some(&config)).unwrap();
        let cfg = empty_cache(t.path());
        // The id (case aside) is closer than a file name.
        let r = resolve(&reg, &cfg, "EN_US-joe-medium", TTS, &["onnx"]).unwrap();
        assert_eq!(r.entry.id, "en_us-joe-medium");
        // Two installed voices from files of this name.
        let e = resolve(&reg, &cfg, "en_US-joe-medium.onnx", TTS, &["onnx"]).unwrap_err();
        let NameError::Ambiguous {
            installed,
            candidates,
            ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert!(installed);
        assert_eq!(candidates.len(), 2, "{candidates:?}");
        let text = e.to_string();
        assert!(
            text.contains("several installed tts models")
                && text.contains(&format!(
                    "en_us-joe-medium (imported from {})",
                    a.canonicalize().unwrap().display()
                ))
                && text.contains("joe-copy (imported from"),
            "{text}"
        );
        // An exact id is exact; the same id in another case is two answers.
        assert_eq!(
            resolve(&reg, &cfg, "voice", TTS, &["onnx"])
                .unwrap()
                .entry
                .id,
            "voice"
        );
        assert_eq!(
            resolve(&reg, &cfg, "Voice", TTS, &["onnx"])
                .unwrap()
                .entry
                .id,
            "Voice"
        );
        assert!(matches!(
            resolve(&reg, &cfg, "VOICE", TTS, &["onnx"]),
            Err(NameError::Ambiguous { .. })
        ));
        // A typo: nothing matches; the close names come with where they are, installed first.
        let e = resolve(&reg, &cfg, "en_US-joe", TTS, &["onnx"]).unwrap_err();
        let NameError::Unknown { close, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(close[0].contains("(imported from"), "{close:?}");
        assert!(
            close
                .iter()
                .any(|c| c == "piper-en_US-joe-medium (not installed)"),
            "{close:?}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with("en_US-joe: no tts model has this name (close: ")
                && text.contains("models list --kind tts"),
            "{text}"
        );
        let e = pick(&reg, &cfg, Some("nobody.onnx"), TTS, &["onnx"], "none").unwrap_err();
        assert!(
            e.starts_with("--model nobody.onnx: no such file here, and no tts model"),
            "{e}"
        );
    }

    #[test]
    fn names_match_models_of_the_kind_asked_for() {
        let t = tempfile::tempdir().unwrap();
        let config = t.path().join("config");
        let dir = t.path().join("llm");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
        gguf(&file);
        register(
            &config,
            &entry(&detect(&file).unwrap(), "smollm2-135m-instruct.q4_1"),
        )
        .unwrap();
        let reg = Registry::load(Some(&config)).unwrap();
        let cfg = empty_cache(t.path());
        for name in [
            "SmolLM2-135M-Instruct.Q4_1",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
        ] {
            let (m, d) = pick(&reg, &cfg, Some(name), ModelKind::Llm, &["gguf"], "-").unwrap();
            assert_eq!(m.id, "smollm2-135m-instruct.q4_1");
            assert_eq!(d, dir.canonicalize().unwrap());
            assert!(matches!(
                resolve(&reg, &cfg, name, TTS, &["onnx"]),
                Err(NameError::Unknown { .. })
            ));
        }
        // The exact id of a model of another kind says why it does not fit.
        let e = pick(
            &reg,
            &cfg,
            Some("smollm2-135m-instruct.q4_1"),
            TTS,
            &["onnx"],
            "-",
        )
        .unwrap_err();
        assert!(
            e.contains("stored as gguf, and this engine reads onnx"),
            "{e}"
        );
    }
}
