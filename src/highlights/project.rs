//! Projects made from recordings alone (`reelsmith highlights`, recordings dropped into the
//! inbox): a gaming script beside the recordings that names them.

use std::path::{Path, PathBuf};

use crate::script::{HighlightsSpec, Localized, Script};

/// First line of the scripts written here: only those are ever overwritten.
pub const MARKER: &str = "# reelsmith highlights:";

/// Whether `path` is free, or a script written here before (and so may be replaced).
pub fn may_write(path: &Path) -> bool {
    match std::fs::read_to_string(path) {
        Ok(old) => old.starts_with(MARKER),
        Err(_) => !path.exists(),
    }
}

/// Writes (atomically) the script `path`: title "Highlights: `name`" in every language,
/// `channel`, the recordings relative to the script's directory (each must lie under it) and
/// the `highlights:` block.
pub fn write_script(
    path: &Path,
    recordings: &[PathBuf],
    name: &str,
    langs: &[String],
    channel: &str,
    spec: HighlightsSpec,
) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut title = std::collections::BTreeMap::new();
    for l in langs {
        title.insert(
            l.clone(),
            format!("{}: {name}", crate::stages::recorded::highlights_word(l)),
        );
    }
    let mut rel = Vec::new();
    for p in recordings {
        let r = p.strip_prefix(dir).map_err(|_| {
            format!(
                "{}: lies outside {}, the project's directory",
                p.display(),
                dir.display()
            )
        })?;
        rel.push(r.to_path_buf());
    }
    let script = Script {
        title: Localized::Many(title),
        language: langs.first().cloned().unwrap_or_else(|| "en".into()),
        channel: Some(channel.to_string()),
        languages: langs.to_vec(),
        aspect: None,
        fps: None,
        description: None,
        tags: Vec::new(),
        characters: Vec::new(),
        scenes: Vec::new(),
        recordings: rel,
        highlights: Some(spec),
        publish: None,
    };
    let yaml = serde_norway::to_string(&script).map_err(|e| e.to_string())?;
    let text = format!(
        "{MARKER} {} recording(s); edit `highlights:` (or the selection it names) and \
         `reelsmith render` this file again.\n{yaml}",
        recordings.len()
    );
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A recording dropped into the inbox becomes a project in `<projects>/<stem>/`: the recording
/// hard-linked there (copied where links are refused) and a script naming it. Returns the
/// script. Refuses (with what to do) a file that is not a usable recording.
pub fn inbox_project(recording: &Path, projects: &Path) -> Result<PathBuf, String> {
    crate::highlights::analyze::check_recording(recording).map_err(|e| e.to_string())?;
    let file = recording
        .file_name()
        .ok_or_else(|| format!("{}: no file name", recording.display()))?;
    let stem = recording
        .file_stem()
        .map(|s| crate::pipeline::job::slug(&s.to_string_lossy()))
        .unwrap_or_else(|| "recording".into());
    // A free project folder: <stem>, <stem>-2, …
    let mut dir = projects.join(&stem);
    let mut n = 2;
    while dir.exists() {
        dir = projects.join(format!("{stem}-{n}"));
        n += 1;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dest = dir.join(file);
    if std::fs::hard_link(recording, &dest).is_err() {
        std::fs::copy(recording, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    let script = dir.join(format!("{stem}.highlights.yaml"));
    write_script(
        &script,
        &[dest],
        &stem,
        &["en".to_string()],
        "gaming",
        HighlightsSpec::default(),
    )?;
    Ok(script)
}
