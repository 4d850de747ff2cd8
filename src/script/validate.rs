//! Semantic checks, defaults and path resolution.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use super::error::ScriptError;
use super::model::{Localized, Script};
use super::{
    ValidateOptions, DEFAULT_CHANNEL, LANGUAGES, MAX_LINES_PER_SCENE, MAX_LINE_CHARS, MAX_SCENES,
    MAX_SCENE_SECONDS, NARRATOR,
};

const MAX_ID_CHARS: usize = 64;

struct Ctx<'a> {
    origin: &'a Path,
    /// Canonical script directory, computed on first use.
    base: Option<PathBuf>,
}

impl Ctx<'_> {
    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ScriptError {
        ScriptError::invalid(self.origin, field, message)
    }

    fn base_dir(&mut self) -> Result<PathBuf, ScriptError> {
        if let Some(b) = &self.base {
            return Ok(b.clone());
        }
        let dir = match self.origin.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let canon = dir.canonicalize().map_err(|source| ScriptError::Io {
            path: dir.clone(),
            source,
        })?;
        self.base = Some(canon.clone());
        Ok(canon)
    }

    /// Checks that `rel` stays inside the script directory and exists;
    /// returns its canonical absolute path.
    fn resolve(&mut self, field: &str, rel: &Path) -> Result<PathBuf, ScriptError> {
        self.resolve_entry(field, rel, false)
    }

    /// Like [`Ctx::resolve`]; with `dir_ok` a directory is accepted too.
    fn resolve_entry(
        &mut self,
        field: &str,
        rel: &Path,
        dir_ok: bool,
    ) -> Result<PathBuf, ScriptError> {
        let base = self.base_dir()?;
        let refused = || {
            format!(
                "\"{}\" refused: paths must stay inside the project directory {}; \
                 move the file there and give a relative path",
                rel.display(),
                base.display()
            )
        };
        if rel.as_os_str().is_empty() {
            return Err(self.err(
                field,
                "path is empty; give a file name relative to the script",
            ));
        }
        let mut depth: usize = 0;
        for comp in rel.components() {
            match comp {
                Component::Prefix(_) | Component::RootDir => {
                    return Err(self.err(field, refused()));
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    if depth == 0 {
                        return Err(self.err(field, refused()));
                    }
                    depth -= 1;
                }
                Component::Normal(_) => depth += 1,
            }
        }
        let joined = base.join(rel);
        let canon = match joined.canonicalize() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.err(
                    field,
                    format!(
                        "\"{}\" does not exist (looked for {}); check the path, which is relative to the script's directory",
                        rel.display(),
                        joined.display()
                    ),
                ));
            }
            Err(e) => {
                return Err(self.err(field, format!("cannot access \"{}\": {e}", rel.display())));
            }
        };
        if !canon.starts_with(&base) {
            return Err(self.err(field, refused()));
        }
        if dir_ok && canon.is_dir() {
            return Ok(canon);
        }
        if !canon.is_file() {
            return Err(self.err(
                field,
                format!(
                    "\"{}\" is not a file; point it at {}",
                    rel.display(),
                    if dir_ok {
                        "a recording or a folder of recordings"
                    } else {
                        "an image file"
                    }
                ),
            ));
        }
        Ok(canon)
    }
}

fn language_list() -> String {
    LANGUAGES.join(", ")
}

fn is_language(code: &str) -> bool {
    LANGUAGES.contains(&code)
}

fn check_id(ctx: &Ctx, field: &str, id: &str, what: &str) -> Result<(), ScriptError> {
    if id.trim().is_empty() {
        return Err(ctx.err(
            field,
            format!("{what} id is empty; give it a short name such as \"intro\""),
        ));
    }
    let ok = id.chars().count() <= MAX_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(ctx.err(
            field,
            format!(
                "invalid {what} id \"{id}\"; use up to {MAX_ID_CHARS} ASCII letters, digits, '-' or '_'"
            ),
        ));
    }
    Ok(())
}

fn check_text(ctx: &Ctx, field: &str, text: &str) -> Result<(), ScriptError> {
    if text.trim().is_empty() {
        return Err(ctx.err(field, "text is empty; write something or remove it"));
    }
    let n = text.chars().count();
    if n > MAX_LINE_CHARS {
        return Err(ctx.err(
            field,
            format!(
                "text is {n} characters, more than the limit of {MAX_LINE_CHARS}; split it into several lines"
            ),
        ));
    }
    Ok(())
}

/// Checks keys and contents of a localized text, and (when `required` is
/// given) that every output language is present.
fn check_localized(
    ctx: &Ctx,
    field: &str,
    value: &Localized,
    source_lang: &str,
    required: Option<&[String]>,
) -> Result<(), ScriptError> {
    match value {
        Localized::One(text) => check_text(ctx, field, text)?,
        Localized::Many(map) => {
            if map.is_empty() {
                return Err(ctx.err(
                    field,
                    format!("no texts given; add at least a \"{source_lang}\" entry"),
                ));
            }
            for (lang, text) in map {
                if !is_language(lang) {
                    return Err(ctx.err(
                        format!("{field}.{lang}"),
                        format!(
                            "unknown language \"{lang}\"; use one of: {}",
                            language_list()
                        ),
                    ));
                }
                check_text(ctx, &format!("{field}.{lang}"), text)?;
            }
        }
    }
    if let Some(langs) = required {
        for lang in langs {
            if value.get(lang, source_lang).is_none() {
                return Err(ctx.err(
                    field,
                    format!(
                        "no \"{lang}\" text; add a \"{lang}\" entry, or remove \"{lang}\" from languages \
                         (machine translation needs an installed LLM)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

pub(crate) fn fill_scene_ids(script: &mut Script) {
    for (i, scene) in script.scenes.iter_mut().enumerate() {
        if scene.id.is_empty() {
            scene.id = format!("scene-{}", i + 1);
        }
    }
}

pub(crate) fn validate(
    script: &mut Script,
    origin: &Path,
    opts: &ValidateOptions,
) -> Result<(), ScriptError> {
    let mut ctx = Ctx { origin, base: None };

    // Overrides from the command line.
    let channel_from_cli = opts.channel_override.is_some();
    if let Some(ch) = opts.channel_override {
        script.channel = Some(ch.to_string());
    }
    let languages_from_cli = opts.languages_override.is_some();
    if let Some(langs) = opts.languages_override {
        script.languages = langs.to_vec();
    }
    fill_scene_ids(script);

    // language
    if !is_language(&script.language) {
        return Err(ctx.err(
            "language",
            format!(
                "unknown language \"{}\"; use one of: {}",
                script.language,
                language_list()
            ),
        ));
    }

    // languages
    let langs_field = if languages_from_cli {
        "languages (from the command line)"
    } else {
        "languages"
    };
    for (i, lang) in script.languages.iter().enumerate() {
        if !is_language(lang) {
            return Err(ctx.err(
                format!("{langs_field}[{i}]"),
                format!(
                    "unknown language \"{lang}\"; use one of: {}",
                    language_list()
                ),
            ));
        }
        if let Some(first) = script.languages[..i].iter().position(|l| l == lang) {
            return Err(ctx.err(
                format!("{langs_field}[{i}]"),
                format!(
                    "duplicate language \"{lang}\" (already at [{first}]); list each language once"
                ),
            ));
        }
    }
    if script.languages.is_empty() {
        script.languages = vec![script.language.clone()];
    }

    // channel
    let channel_field = if channel_from_cli {
        "channel (from the command line)"
    } else {
        "channel"
    };
    let explicit_channel = script.channel.is_some();
    let channel = script
        .channel
        .clone()
        .unwrap_or_else(|| DEFAULT_CHANNEL.to_string());
    if channel.trim().is_empty() {
        return Err(ctx.err(
            channel_field,
            "channel is empty; name a channel or leave it out",
        ));
    }
    if !opts.known_channels.is_empty() && !opts.known_channels.contains(&channel) {
        let known = opts.known_channels.join(", ");
        let msg = if explicit_channel {
            format!("unknown channel \"{channel}\"; known channels: {known}")
        } else {
            format!(
                "no channel given and the default \"{channel}\" is not configured; set channel to one of: {known}"
            )
        };
        return Err(ctx.err(channel_field, msg));
    }
    script.channel = Some(channel);

    // fps
    if let Some(fps) = script.fps {
        if !(12..=60).contains(&fps) {
            return Err(ctx.err(
                "fps",
                format!("must be between 12 and 60, got {fps}; 24 or 30 are usual"),
            ));
        }
    }

    let source = script.language.clone();
    // With an LLM to translate, only the source language must be written out.
    let langs = if opts.machine_translation {
        vec![source.clone()]
    } else {
        script.languages.clone()
    };

    // title
    if let Localized::One(t) = &script.title {
        if t.trim().is_empty() {
            return Err(ctx.err("title", "title is empty; give the video a title"));
        }
    }
    check_localized(&ctx, "title", &script.title, &source, Some(&langs))?;

    // description
    if let Some(d) = &script.description {
        check_localized(&ctx, "description", d, &source, None)?;
    }

    // tags
    for (i, tag) in script.tags.iter().enumerate() {
        if tag.trim().is_empty() {
            return Err(ctx.err(format!("tags[{i}]"), "tag is empty; remove it"));
        }
    }

    // characters
    let mut char_ids: HashMap<String, usize> = HashMap::new();
    let n_chars = script.characters.len();
    for i in 0..n_chars {
        let field = format!("characters[{i}]");
        let ch = &script.characters[i];
        check_id(&ctx, &format!("{field}.id"), &ch.id, "character")?;
        if let Some(first) = char_ids.get(&ch.id) {
            return Err(ctx.err(
                format!("{field}.id"),
                format!(
                    "duplicate character id \"{}\" (also characters[{first}]); ids must be unique",
                    ch.id
                ),
            ));
        }
        char_ids.insert(ch.id.clone(), i);
        if let Some(name) = &ch.name {
            if name.trim().is_empty() {
                return Err(ctx.err(
                    format!("{field}.name"),
                    "name is empty; write it or remove it",
                ));
            }
        }
        if let Some(voice) = &ch.voice {
            if !valid_voice(voice) {
                return Err(ctx.err(
                    format!("{field}.voice"),
                    format!(
                        "invalid voice \"{voice}\"; use an espeak variant m1..m7 (male) or f1..f7 (female)"
                    ),
                ));
            }
        }
        if let Some(pitch) = ch.pitch {
            if pitch > 99 {
                return Err(ctx.err(
                    format!("{field}.pitch"),
                    format!("must be between 0 and 99, got {pitch}; 50 is neutral"),
                ));
            }
        }
        if let Some(rate) = ch.rate {
            if !(80..=450).contains(&rate) {
                return Err(ctx.err(
                    format!("{field}.rate"),
                    format!(
                        "must be between 80 and 450 words per minute, got {rate}; 175 is normal speed"
                    ),
                ));
            }
        }
        for (name, value, max) in [
            ("length_scale", ch.length_scale, 5.0f32),
            ("noise_scale", ch.noise_scale, 2.0),
            ("noise_w", ch.noise_w, 2.0),
        ] {
            if let Some(v) = value {
                let low = if name == "length_scale" { 0.1 } else { 0.0 };
                if !v.is_finite() || v < low || v > max {
                    return Err(ctx.err(
                        format!("{field}.{name}"),
                        format!("must be between {low} and {max}, got {v}; 1 is the voice's own speed for length_scale"),
                    ));
                }
            }
        }
        if let Some(crate::script::model::SpeakerRef::Name(s)) = &ch.speaker {
            if s.trim().is_empty() {
                return Err(ctx.err(
                    format!("{field}.speaker"),
                    "is empty; give a speaker name of the voice or a number",
                ));
            }
        }
        if let Some(rel) = script.characters[i].reference.clone() {
            let abs = ctx.resolve(&format!("{field}.reference"), &rel)?;
            script.characters[i].reference = Some(abs);
        }
    }

    if let Some(p) = &script.publish {
        check_publish(&ctx, p)?;
    }

    // recordings
    if !script.recordings.is_empty() || script.highlights.is_some() {
        check_recordings(&mut ctx, script)?;
    }

    // scenes
    if script.scenes.is_empty() && !script.recordings.is_empty() {
        return Ok(());
    }
    if script.scenes.is_empty() {
        return Err(ctx.err("scenes", "the script has no scenes; add at least one scene"));
    }
    if script.scenes.len() > MAX_SCENES {
        return Err(ctx.err(
            "scenes",
            format!(
                "{} scenes, more than the limit of {MAX_SCENES}; split the script into several videos",
                script.scenes.len()
            ),
        ));
    }
    let mut speakers: Vec<&str> = char_ids.keys().map(String::as_str).collect();
    speakers.sort_unstable();
    let speaker_hint = if speakers.is_empty() {
        format!("use \"{NARRATOR}\" or define the speaker under characters")
    } else {
        format!(
            "use \"{NARRATOR}\" or one of the character ids: {}",
            speakers.join(", ")
        )
    };
    let mut scene_ids: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..script.scenes.len() {
        let field = format!("scenes[{i}]");
        let scene = &script.scenes[i];
        check_id(&ctx, &format!("{field}.id"), &scene.id, "scene")?;
        if let Some(first) = scene_ids.get(&scene.id) {
            return Err(ctx.err(
                format!("{field}.id"),
                format!(
                    "duplicate scene id \"{}\" (also scenes[{first}]); ids must be unique",
                    scene.id
                ),
            ));
        }
        scene_ids.insert(scene.id.clone(), i);
        if let Some(t) = &scene.title {
            check_localized(&ctx, &format!("{field}.title"), t, &source, None)?;
        }
        if let Some(p) = &scene.prompt {
            if p.trim().is_empty() {
                return Err(ctx.err(
                    format!("{field}.prompt"),
                    "prompt is empty; describe the picture or remove it",
                ));
            }
        }
        if let Some(d) = scene.duration {
            if !d.is_finite() || d <= 0.0 {
                return Err(ctx.err(
                    format!("{field}.duration"),
                    format!("must be a positive number of seconds, got {d}"),
                ));
            }
            if d > MAX_SCENE_SECONDS {
                return Err(ctx.err(
                    format!("{field}.duration"),
                    format!(
                        "must be at most {MAX_SCENE_SECONDS} seconds, got {d}; split it into several scenes"
                    ),
                ));
            }
        }
        if scene.lines.is_empty() && scene.duration.is_none() {
            return Err(ctx.err(field.clone(), "scene is empty: give it lines or a duration"));
        }
        if scene.lines.len() > MAX_LINES_PER_SCENE {
            return Err(ctx.err(
                format!("{field}.lines"),
                format!(
                    "{} lines, more than the limit of {MAX_LINES_PER_SCENE}; split the scene into several scenes",
                    scene.lines.len()
                ),
            ));
        }
        for (j, line) in scene.lines.iter().enumerate() {
            let lf = format!("{field}.lines[{j}]");
            if line.speaker != NARRATOR && !char_ids.contains_key(&line.speaker) {
                return Err(ctx.err(
                    format!("{lf}.speaker"),
                    format!("unknown speaker \"{}\"; {speaker_hint}", line.speaker),
                ));
            }
            check_localized(
                &ctx,
                &format!("{lf}.text"),
                &line.text,
                &source,
                Some(&langs),
            )?;
        }
        if let Some(m) = &scene.music {
            if m.trim().is_empty() {
                return Err(ctx.err(
                    format!("{field}.music"),
                    "music mood is empty; name a mood or remove it",
                ));
            }
        }
        if let Some(rel) = script.scenes[i].image.clone() {
            let abs = ctx.resolve(&format!("{field}.image"), &rel)?;
            script.scenes[i].image = Some(abs);
        }
    }
    Ok(())
}

fn valid_voice(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 2 && matches!(b[0], b'm' | b'f') && (b'1'..=b'7').contains(&b[1])
}

/// Extensions taken from a folder of recordings.
pub const RECORDING_EXTENSIONS: [&str; 9] = [
    "mp4", "mkv", "mov", "flv", "webm", "avi", "ts", "m2ts", "m4v",
];

/// Whether `path` looks like a recording by its extension.
pub fn is_recording_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| RECORDING_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Resolves `recordings` (folders expanded, in name order) inside the project and checks each
/// is a readable video; resolves `highlights.selection`; refuses scenes beside recordings.
fn check_recordings(ctx: &mut Ctx, script: &mut Script) -> Result<(), ScriptError> {
    if script.recordings.is_empty() {
        return Err(ctx.err(
            "highlights",
            "a `highlights` block needs `recordings`; list the recordings (or a folder of them)",
        ));
    }
    if !script.scenes.is_empty() {
        return Err(ctx.err(
            "scenes",
            "a script with `recordings` takes its scenes from the highlights; remove `scenes` \
             (or `recordings` to write the scenes yourself)",
        ));
    }
    let mut out = Vec::new();
    for (i, rel) in script.recordings.clone().iter().enumerate() {
        let field = format!("recordings[{i}]");
        let abs = ctx.resolve_entry(&field, rel, true)?;
        if abs.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&abs)
                .map_err(|e| ctx.err(&field, format!("cannot list \"{}\": {e}", rel.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_recording_name(p))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(ctx.err(
                    &field,
                    format!(
                        "the folder \"{}\" holds no recordings ({})",
                        rel.display(),
                        RECORDING_EXTENSIONS.join(", ")
                    ),
                ));
            }
            out.extend(found);
        } else {
            out.push(abs);
        }
    }
    for (i, p) in out.iter().enumerate() {
        if out[..i].contains(p) {
            return Err(ctx.err("recordings", format!("\"{}\" is listed twice", p.display())));
        }
        if let Err(e) = crate::highlights::analyze::check_recording(p) {
            return Err(ctx.err(format!("recordings[{i}]"), e.to_string()));
        }
    }
    script.recordings = out;
    if let Some(h) = script.highlights.as_mut() {
        if let Some(rel) = h.selection.clone() {
            let abs = ctx.resolve("highlights.selection", &rel)?;
            h.selection = Some(abs);
        }
        if h.count == Some(0) || h.count.is_some_and(|c| c > 50) {
            return Err(ctx.err("highlights.count", "give 1 to 50 highlights"));
        }
        if h.shorts.is_some_and(|c| c > 20) {
            return Err(ctx.err("highlights.shorts", "give 0 to 20 shorts"));
        }
        if h.length.is_some_and(|l| !(2.0..=120.0).contains(&l)) {
            return Err(ctx.err("highlights.length", "a highlight lasts 2 to 120 seconds"));
        }
    }
    Ok(())
}

/// The `publish:` block: known platforms, privacy, an RFC 3339 `at` (only with a privacy
/// that allows scheduling), rendered-language codes. `to: []` is allowed: the script opts out
/// of its channel's `[publish]` defaults.
fn check_publish(ctx: &Ctx, p: &crate::script::PublishSpec) -> Result<(), ScriptError> {
    match publish_problem(p) {
        Some((field, message)) => Err(ctx.err(format!("publish.{field}"), message)),
        None => Ok(()),
    }
}

/// What is wrong with a publish block (a script's `publish:` or a channel's `[publish]`), as
/// (field under `publish.`, message).
pub fn publish_problem(p: &crate::script::PublishSpec) -> Option<(String, String)> {
    const PLATFORMS: [&str; 3] = ["youtube", "tiktok", "instagram"];
    for (i, t) in p.platforms().iter().enumerate() {
        if !PLATFORMS.contains(&t.trim().to_ascii_lowercase().as_str()) {
            return Some((
                format!("to[{i}]"),
                format!("unknown platform \"{t}\"; use youtube, tiktok or instagram"),
            ));
        }
    }
    if let Some(v) = &p.privacy {
        if !["private", "unlisted", "public"].contains(&v.as_str()) {
            return Some((
                "privacy".into(),
                format!("unknown privacy \"{v}\"; use private, unlisted or public"),
            ));
        }
    }
    if let Some(at) = &p.at {
        if reelsmith_publish::time::parse_rfc3339_ms(at).is_none() {
            return Some((
                "at".into(),
                format!("\"{at}\" is not a time; write it as RFC 3339, e.g. 2026-12-24T18:00:00Z"),
            ));
        }
        if p.privacy.as_deref().is_some_and(|v| v != "private") {
            return Some((
                "at".into(),
                "a scheduled video stays private until its time; leave out `privacy` or make it \
                 private"
                    .into(),
            ));
        }
    }
    let to: Vec<String> = p
        .platforms()
        .iter()
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    if to.iter().any(|t| t == "instagram") && p.privacy.as_deref() != Some("public") {
        return Some((
            "privacy".into(),
            "Instagram Reels posted through the API are public (there is no private or unlisted \
             Reel): set privacy: public, or publish to Instagram separately"
                .into(),
        ));
    }
    if p.at.is_some() {
        if let Some(t) = to.iter().find(|t| *t != "youtube") {
            return Some((
                "at".into(),
                format!("{t} cannot schedule a post through its API (only YouTube can)"),
            ));
        }
    }
    if let Some(m) = &p.tiktok_mode {
        if !["direct", "inbox"].contains(&m.as_str()) {
            return Some((
                "tiktok_mode".into(),
                format!("unknown TikTok mode \"{m}\"; use direct or inbox"),
            ));
        }
    }
    for (i, l) in p.languages.iter().enumerate() {
        if !is_language(l) {
            return Some((
                format!("languages[{i}]"),
                format!(
                    "unknown language \"{l}\"; use one of {}",
                    LANGUAGES.join(", ")
                ),
            ));
        }
    }
    None
}
