//! Plain-text scripts: optional `# Title`, paragraphs become scenes.

use std::path::Path;

use super::error::ScriptError;
use super::model::{Line, Localized, Motion, Scene, Script};

fn syntax(origin: &Path, line: usize, message: String) -> ScriptError {
    ScriptError::Syntax {
        path: origin.to_path_buf(),
        location: Some((line, 1)),
        message,
    }
}

/// Title derived from a file name: `my-first_video` -> `My first video`.
pub(crate) fn title_from_stem(origin: &Path) -> String {
    let stem = origin
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let spaced: String = stem
        .chars()
        .map(|c| if c == '-' || c == '_' { ' ' } else { c })
        .collect();
    let spaced = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Untitled".to_string(),
    }
}

/// Parses a motion marker line such as `[zoom-in]`; `Ok(None)` if the line
/// is not a marker at all.
fn motion_marker(line: &str) -> Result<Option<Motion>, String> {
    let Some(inner) = line.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return Ok(None);
    };
    let name = inner.trim();
    // Only treat `[word-word]` as a marker; anything else is spoken text.
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphabetic() || c == '-') {
        return Ok(None);
    }
    match Motion::parse(&name.to_ascii_lowercase()) {
        Some(m) => Ok(Some(m)),
        None => {
            let known: Vec<&str> = Motion::ALL.iter().map(|m| m.as_str()).collect();
            Err(format!(
                "unknown motion `[{name}]`; use one of: {}",
                known.join(", ")
            ))
        }
    }
}

pub(crate) fn parse_text(text: &str, origin: &Path) -> Result<Script, ScriptError> {
    let mut title: Option<String> = None;
    let mut scenes: Vec<Scene> = Vec::new();
    let mut current: Option<(Scene, usize)> = None; // scene and the line number it started on
    let mut seen_content = false;

    let finish = |current: &mut Option<(Scene, usize)>,
                  scenes: &mut Vec<Scene>|
     -> Result<(), ScriptError> {
        if let Some((scene, start)) = current.take() {
            if scene.lines.is_empty() {
                return Err(syntax(
                    origin,
                    start,
                    "motion marker with no text after it; write the scene's lines below it".into(),
                ));
            }
            scenes.push(scene);
        }
        Ok(())
    };

    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.trim();
        if line.is_empty() {
            finish(&mut current, &mut scenes)?;
            continue;
        }
        if line.starts_with('#') {
            if !seen_content && title.is_none() {
                if let Some(t) = line.strip_prefix("# ") {
                    let t = t.trim();
                    if t.is_empty() {
                        return Err(syntax(
                            origin,
                            lineno,
                            "empty title; write it after `# `".into(),
                        ));
                    }
                    title = Some(t.to_string());
                    seen_content = true;
                    continue;
                }
            }
            return Err(syntax(
                origin,
                lineno,
                "line starts with `#`; only the first line may be a `# Title` heading \
                 (write the title as `# Title`, or reword this line so it does not start with `#`)"
                    .to_string(),
            ));
        }
        seen_content = true;
        match current.as_mut() {
            None => {
                let mut scene = Scene {
                    id: format!("scene-{}", scenes.len() + 1),
                    title: None,
                    prompt: None,
                    duration: None,
                    motion: None,
                    lines: Vec::new(),
                    music: None,
                    transition: None,
                    image: None,
                };
                match motion_marker(line) {
                    Ok(Some(m)) => scene.motion = Some(m),
                    Ok(None) => scene.lines.push(narration(line)),
                    Err(msg) => return Err(syntax(origin, lineno, msg)),
                }
                current = Some((scene, lineno));
            }
            Some((scene, _)) => scene.lines.push(narration(line)),
        }
    }
    finish(&mut current, &mut scenes)?;

    if scenes.is_empty() {
        return Err(ScriptError::Syntax {
            path: origin.to_path_buf(),
            location: None,
            message: "no text found; write at least one paragraph (paragraphs become scenes)"
                .into(),
        });
    }

    Ok(Script {
        title: Localized::One(title.unwrap_or_else(|| title_from_stem(origin))),
        language: "en".to_string(),
        channel: None,
        languages: Vec::new(),
        aspect: None,
        fps: None,
        description: None,
        tags: Vec::new(),
        characters: Vec::new(),
        scenes,
        recordings: Vec::new(),
        highlights: None,
        publish: None,
    })
}

fn narration(text: &str) -> Line {
    Line {
        speaker: super::NARRATOR.to_string(),
        text: Localized::One(text.to_string()),
    }
}
