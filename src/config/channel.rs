//! Channels: a look, defaults and a stage graph per kind of video. Seven ship embedded in the
//! binary (`channels/*.toml`); a file of the same name in `<config>/channels/` is merged over the
//! embedded one key by key, and a new name adds a channel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pipeline::graph::{GraphError, StageGraph};

/// The channels compiled into the binary, as (file stem, TOML text).
pub const EMBEDDED: &[(&str, &str)] = &[
    ("anime", include_str!("../../channels/anime.toml")),
    ("gaming", include_str!("../../channels/gaming.toml")),
    ("superhero", include_str!("../../channels/superhero.toml")),
    ("manga", include_str!("../../channels/manga.toml")),
    ("marvel_dc", include_str!("../../channels/marvel_dc.toml")),
    (
        "original_manga",
        include_str!("../../channels/original_manga.toml"),
    ),
    ("explainer", include_str!("../../channels/explainer.toml")),
];

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub name: String,
    pub display_name: String,
    pub style: Style,
    pub defaults: Defaults,
    /// Stage kind → the stages it runs after.
    pub stages: BTreeMap<String, StageDecl>,
    /// How highlights are cut from recordings (scripts with `recordings`).
    #[serde(default)]
    pub highlights: HighlightDefaults,
    /// `[publish]`: where every render of the channel goes by itself (the same keys as a
    /// script's `publish:` block, which overrides them; none in the embedded channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<crate::script::PublishSpec>,
}

/// `[highlights]`: how a channel cuts highlights from recordings; a script's `highlights:`
/// block overrides each field.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HighlightDefaults {
    /// Highlights in the compilation.
    pub count: usize,
    /// Target seconds per highlight.
    pub length: f64,
    /// Vertical shorts made from the best highlights.
    pub shorts: usize,
    /// Seconds added around a window before it is snapped to the shots.
    pub pad: f64,
    /// Least seconds between two highlights of one recording.
    pub gap: f64,
    /// Layout of the shorts.
    pub layout: crate::media::vertical::Layout,
    /// The cut detector.
    pub detector: crate::highlights::analyze::DetectorChoice,
    /// Spoken commentary over each highlight.
    pub commentary: bool,
    /// How far the game audio dips under the commentary (0.85 = −85 %, auto-editor's).
    pub duck: f64,
    /// Seconds the dip takes to come in and to go.
    pub duck_attack: f64,
    pub duck_release: f64,
    /// How much each signal counts.
    pub weights: crate::highlights::select::Weights,
}

impl Default for HighlightDefaults {
    fn default() -> Self {
        let p = crate::highlights::select::SelectParams::default();
        Self {
            count: p.count,
            length: p.length,
            shorts: p.shorts,
            pad: p.pad,
            gap: p.gap,
            layout: crate::media::vertical::Layout::BlurredFill,
            detector: crate::highlights::analyze::DetectorChoice::Adaptive,
            commentary: true,
            duck: 0.85,
            duck_attack: 0.1,
            duck_release: 0.5,
            weights: p.weights,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Style {
    /// Which procedural painter draws keyframes when no image model is installed.
    pub look: String,
    pub prompt_prefix: String,
    pub prompt_suffix: String,
    pub negative_prompt: String,
    /// 3–8 colours as `#rrggbb`.
    pub palette: Vec<String>,
    /// Style LoRAs merged into the image model (those made for its architecture).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loras: Vec<StyleLora>,
}

/// A channel's style LoRA.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StyleLora {
    /// A kohya or diffusers LoRA `.safetensors`: absolute, or relative to `<models>/loras/`.
    pub file: std::path::PathBuf,
    /// Strength (1 = as trained).
    #[serde(default = "one")]
    pub weight: f32,
    /// Architectures it is for (`sd15`, `sd21`, `sdxl`, `flux`); empty = any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch: Vec<String>,
}

fn one() -> f32 {
    1.0
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Final-quality frame size (draft renders scale it to 720 lines).
    pub width: u32,
    pub height: u32,
    /// Native animation rate of generated clips (video models); the embedded engine draws
    /// motion analytically at `output_fps` directly.
    pub fps: u32,
    pub output_fps: u32,
    pub aspect: String,
    pub music_mood: String,
    pub transition: String,
    pub transition_seconds: f64,
    /// Camera moves cycled over scenes that don't name one.
    pub motions: Vec<String>,
    /// Silence before the first line and after the last line of a scene, and between lines.
    pub lead_in: f64,
    pub tail: f64,
    pub line_gap: f64,
    pub min_scene_seconds: f64,
    pub tags: Vec<String>,
    pub captions: CaptionStyle,
    /// Narrator voice per language.
    pub voices: BTreeMap<String, VoiceDefault>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaptionStyle {
    /// Font size in pixels at 1080 lines (scaled with the frame).
    pub font_size: u32,
    pub primary: String,
    pub outline: String,
    pub outline_width: f32,
    pub shadow: f32,
    pub bold: bool,
    pub boxed: bool,
    /// `#rrggbbaa` box colour when `boxed`.
    pub box_colour: String,
    /// Bottom margin in pixels at 1080 lines.
    pub margin_v: u32,
    /// Draw captions into the picture. With `false` only the subtitle files are written
    /// (for uploading as closed captions).
    #[serde(default = "yes")]
    pub burn_in: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VoiceDefault {
    /// espeak-ng voice name (e.g. `en-us`, `cmn`).
    pub espeak: String,
    /// espeak-ng variant (`m1`…`m7`, `f1`…`f5`).
    pub variant: String,
    pub pitch: u8,
    pub rate: u16,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct StageDecl {
    #[serde(default)]
    pub after: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {field}: {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
    #[error("{origin}: stage graph: {source}")]
    Graph {
        origin: String,
        #[source]
        source: GraphError,
    },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown channel `{name}`; known channels: {known}")]
    Unknown { name: String, known: String },
}

/// Parses `#rrggbb` (or `#rrggbbaa`, alpha returned separately).
pub fn parse_hex(s: &str) -> Option<([u8; 3], u8)> {
    let h = s.strip_prefix('#')?;
    if !(h.len() == 6 || h.len() == 8) || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let b = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
    let a = if h.len() == 8 { b(6)? } else { 255 };
    Some(([b(0)?, b(2)?, b(4)?], a))
}

impl Channel {
    /// The stage graph, validated.
    pub fn graph(&self) -> Result<StageGraph, GraphError> {
        StageGraph::from_decls(&self.stages)
    }

    pub fn palette(&self) -> Vec<[u8; 3]> {
        self.style
            .palette
            .iter()
            .filter_map(|c| parse_hex(c).map(|p| p.0))
            .collect()
    }

    fn check(&self, origin: &str) -> Result<(), ChannelError> {
        let bad = |field: &str, message: String| ChannelError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            message,
        };
        if let Some(p) = &self.publish {
            if let Some((field, message)) = crate::script::publish_problem(p) {
                return Err(bad(&format!("publish.{field}"), message));
            }
            if p.at.is_some() {
                return Err(bad(
                    "publish.at",
                    "a channel publishes every render: a fixed time belongs in one script's \
                     publish: block"
                        .into(),
                ));
            }
        }
        if crate::engines::procedural::paint::Look::parse(&self.style.look).is_none() {
            return Err(bad(
                "style.look",
                format!(
                    "unknown look `{}`; use one of anime, gaming, superhero, manga, comic, ink, flat",
                    self.style.look
                ),
            ));
        }
        if !(3..=8).contains(&self.style.palette.len()) {
            return Err(bad("style.palette", "give 3 to 8 colours".into()));
        }
        for (i, c) in self.style.palette.iter().enumerate() {
            if parse_hex(c).is_none() {
                return Err(bad(
                    &format!("style.palette[{i}]"),
                    format!("`{c}` is not a #rrggbb colour"),
                ));
            }
        }
        for (i, l) in self.style.loras.iter().enumerate() {
            if !l.weight.is_finite() || !(-4.0..=4.0).contains(&l.weight) {
                return Err(bad(
                    &format!("style.loras[{i}].weight"),
                    format!("{} is outside -4..=4", l.weight),
                ));
            }
            if l.file.extension().is_none_or(|e| e != "safetensors") {
                return Err(bad(
                    &format!("style.loras[{i}].file"),
                    format!("{} is not a .safetensors LoRA", l.file.display()),
                ));
            }
        }
        let d = &self.defaults;
        if d.width < 64
            || d.height < 64
            || d.width > 7680
            || d.height > 4320
            || d.width % 2 == 1
            || d.height % 2 == 1
        {
            return Err(bad(
                "defaults.width/height",
                format!(
                    "{}x{} is not an even size between 64x64 and 7680x4320",
                    d.width, d.height
                ),
            ));
        }
        for (f, v) in [
            ("defaults.fps", d.fps),
            ("defaults.output_fps", d.output_fps),
        ] {
            if !(1..=120).contains(&v) {
                return Err(bad(f, format!("{v} is outside 1..=120")));
            }
        }
        // Clips are made at `fps` and interpolated up to `output_fps`; going down would
        // throw generated frames away.
        if d.output_fps < d.fps {
            return Err(bad(
                "defaults.output_fps",
                format!(
                    "{} is below defaults.fps ({}), the rate clips are rendered at; raise \
                     output_fps or lower fps",
                    d.output_fps, d.fps
                ),
            ));
        }
        if crate::engines::procedural::music::moods()
            .iter()
            .all(|m| *m != d.music_mood)
        {
            return Err(bad(
                "defaults.music_mood",
                format!(
                    "unknown mood `{}`; known: {}",
                    d.music_mood,
                    crate::engines::procedural::music::moods().join(", ")
                ),
            ));
        }
        if !(0.0..=3.0).contains(&d.transition_seconds) {
            return Err(bad(
                "defaults.transition_seconds",
                "must be between 0 and 3".into(),
            ));
        }
        for (i, m) in d.motions.iter().enumerate() {
            if crate::script::Motion::parse(m).is_none() {
                return Err(bad(
                    &format!("defaults.motions[{i}]"),
                    format!("unknown motion `{m}`"),
                ));
            }
        }
        if crate::script::Transition::parse(&d.transition).is_none() {
            return Err(bad(
                "defaults.transition",
                format!("unknown transition `{}`", d.transition),
            ));
        }
        for (k, c) in [
            ("defaults.captions.primary", &d.captions.primary),
            ("defaults.captions.outline", &d.captions.outline),
            ("defaults.captions.box_colour", &d.captions.box_colour),
        ] {
            if parse_hex(c).is_none() {
                return Err(bad(
                    k,
                    format!("`{c}` is not a #rrggbb or #rrggbbaa colour"),
                ));
            }
        }
        for lang in crate::script::LANGUAGES {
            if !d.voices.contains_key(lang) {
                return Err(bad(
                    &format!("defaults.voices.{lang}"),
                    "missing: every channel names a narrator voice for each of the 11 languages"
                        .into(),
                ));
            }
        }
        self.graph().map_err(|source| ChannelError::Graph {
            origin: origin.to_string(),
            source,
        })?;
        Ok(())
    }
}

/// Merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// All channels known to this run: embedded ones with the user's overlay applied.
#[derive(Clone, Debug)]
pub struct ChannelSet {
    channels: BTreeMap<String, Channel>,
}

impl ChannelSet {
    /// Loads the embedded channels only.
    pub fn embedded() -> Result<Self, ChannelError> {
        Self::load(None)
    }

    /// Loads the embedded channels and merges `<config_dir>/channels/*.toml` over them.
    pub fn load(config_dir: Option<&Path>) -> Result<Self, ChannelError> {
        let mut values: BTreeMap<String, (toml::Value, String)> = BTreeMap::new();
        for (name, text) in EMBEDDED {
            let origin = format!("channels/{name}.toml (embedded)");
            let v: toml::Value = toml::from_str(text).map_err(|e| ChannelError::Parse {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
            values.insert(name.to_string(), (v, origin));
        }
        if let Some(dir) = config_dir {
            let dir = dir.join("channels");
            if let Ok(rd) = std::fs::read_dir(&dir) {
                let mut files: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect();
                files.sort();
                for path in files {
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| ChannelError::Io {
                            path: path.clone(),
                            source,
                        })?;
                    let origin = path.display().to_string();
                    let v: toml::Value =
                        toml::from_str(&text).map_err(|e| ChannelError::Parse {
                            origin: origin.clone(),
                            message: e.to_string(),
                        })?;
                    let stem = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    match values.get_mut(&stem) {
                        Some((base, o)) => {
                            merge(base, v);
                            *o = format!("{origin} (over the embedded {stem})");
                        }
                        None => {
                            values.insert(stem, (v, origin));
                        }
                    }
                }
            }
        }
        let mut channels = BTreeMap::new();
        for (stem, (value, origin)) in values {
            let ch: Channel =
                value
                    .try_into()
                    .map_err(|e: toml::de::Error| ChannelError::Parse {
                        origin: origin.clone(),
                        message: e.to_string(),
                    })?;
            if ch.name != stem {
                return Err(ChannelError::Invalid {
                    origin,
                    field: "name".into(),
                    message: format!("`{}` must match the file name `{stem}`", ch.name),
                });
            }
            ch.check(&origin)?;
            channels.insert(stem, ch);
        }
        Ok(Self { channels })
    }

    pub fn names(&self) -> Vec<String> {
        self.channels.keys().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Result<&Channel, ChannelError> {
        self.channels
            .get(name)
            .ok_or_else(|| ChannelError::Unknown {
                name: name.to_string(),
                known: self.names().join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_seven_embedded_channels_load_and_validate() {
        let set = ChannelSet::embedded().expect("embedded channels are valid");
        assert_eq!(
            set.names(),
            [
                "anime",
                "explainer",
                "gaming",
                "manga",
                "marvel_dc",
                "original_manga",
                "superhero"
            ]
        );
    }

    #[test]
    fn user_overlay_merges_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("channels")).unwrap();
        std::fs::write(
            dir.path().join("channels/anime.toml"),
            "[defaults]\nmusic_mood = \"calm\"\n",
        )
        .unwrap();
        let set = ChannelSet::load(Some(dir.path())).unwrap();
        let anime = set.get("anime").unwrap();
        assert_eq!(anime.defaults.music_mood, "calm");
        assert_eq!(
            anime.style.look, "anime",
            "untouched keys keep the embedded value"
        );
    }

    #[test]
    fn a_channels_publish_defaults_are_read_checked_and_resolved_under_the_script() {
        use crate::pipeline::job::{prepare_text, RenderRequest};
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("channels")).unwrap();
        let write = |text: &str| {
            std::fs::write(dir.path().join("channels/explainer.toml"), text).unwrap();
            ChannelSet::load(Some(dir.path()))
        };
        // The embedded channels publish nothing by themselves.
        assert!(ChannelSet::embedded()
            .unwrap()
            .get("explainer")
            .unwrap()
            .publish
            .is_none());
        for (text, field) in [
            ("[publish]\nto = [\"vimeo\"]\n", "publish.to[0]"),
            ("[publish]\nprivacy = \"secret\"\n", "publish.privacy"),
            (
                "[publish]\nto = [\"youtube\"]\nat = \"2030-01-01T00:00:00Z\"\n",
                "publish.at",
            ),
            ("[publish]\nto = [\"youtube\"]\ncolour = 1\n", "colour"),
        ] {
            let e = write(text).unwrap_err().to_string();
            assert!(
                e.contains("explainer.toml") && e.contains(field),
                "{text}: {e}"
            );
        }
        let set = write(
            "[publish]\nto = [\"youtube\", \"tiktok\"]\nprivacy = \"unlisted\"\n\
             account = \"studio\"\nshort = true\n",
        )
        .unwrap();
        let base = "title: T\nchannel: explainer\nlanguage: en\nscenes:\n  - prompt: p\n    \
                    lines:\n      - text: Hi.\n";
        let req = RenderRequest {
            script: dir.path().join("t.yaml"),
            channel: None,
            languages: None,
            out: dir.path().join("out"),
            quality: crate::pipeline::Quality::Draft,
            seed: 1,
        };
        let resolve = |block: &str| {
            prepare_text(
                &req,
                &format!("{base}{block}"),
                &set,
                &crate::engines::models::StageModels::default(),
            )
            .map(|j| j.script.publish)
        };
        // No block: the channel's, whole.
        let p = resolve("").unwrap().unwrap();
        assert_eq!(p.platforms(), ["youtube", "tiktok"]);
        assert_eq!(
            (p.privacy.as_deref(), p.account.as_deref(), p.short),
            (Some("unlisted"), Some("studio"), Some(true))
        );
        // The script's fields win; what it leaves out comes from the channel.
        let p = resolve("publish:\n  privacy: public\n  short: false\n")
            .unwrap()
            .unwrap();
        assert_eq!(p.platforms(), ["youtube", "tiktok"]);
        assert_eq!(
            (p.privacy.as_deref(), p.account.as_deref(), p.short),
            (Some("public"), Some("studio"), Some(false))
        );
        let p = resolve("publish:\n  to: [instagram]\n  privacy: public\n")
            .unwrap()
            .unwrap();
        assert_eq!(p.platforms(), ["instagram"]);
        // The channel's unlisted under the script's Instagram is not what Instagram can do.
        let e = resolve("publish:\n  to: [instagram]\n").unwrap_err();
        assert!(
            e.to_string().contains("publish.privacy: Instagram Reels"),
            "{e}"
        );
        // `to: []` opts out.
        assert_eq!(resolve("publish:\n  to: []\n").unwrap(), None);
        // A block without platforms under a channel without them is refused, as is a
        // language that is not rendered.
        let bare = ChannelSet::embedded().unwrap();
        let e = prepare_text(
            &req,
            &format!("{base}publish:\n  privacy: public\n"),
            &bare,
            &crate::engines::models::StageModels::default(),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("publish.to"), "{e}");
        // The channel's languages are narrowed to those rendered; none left is refused.
        let set = write("[publish]\nto = [\"youtube\"]\nlanguages = [\"en\", \"de\"]\n").unwrap();
        let p = prepare_text(
            &req,
            base,
            &set,
            &crate::engines::models::StageModels::default(),
        )
        .unwrap()
        .script
        .publish
        .unwrap();
        assert_eq!(p.languages, ["en"]);
        let set = write("[publish]\nto = [\"youtube\"]\nlanguages = [\"de\"]\n").unwrap();
        let e = prepare_text(
            &req,
            base,
            &set,
            &crate::engines::models::StageModels::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("publishes only de"), "{e}");
        // The merged block is checked again: the channel's privacy with the script's time.
        let e = resolve("publish:\n  to: [youtube]\n  at: 2030-01-01T00:00:00Z\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("publish.at: a scheduled video stays private"),
            "{e}"
        );
        let e = resolve("publish:\n  languages: [de]\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("publish.languages[0]: de is not rendered"),
            "{e}"
        );
    }

    #[test]
    fn style_loras_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("channels")).unwrap();
        let write = |text: &str| {
            std::fs::write(dir.path().join("channels/anime.toml"), text).unwrap();
            ChannelSet::load(Some(dir.path()))
        };
        let set =
            write("[[style.loras]]\nfile = \"ink.safetensors\"\nweight = 0.6\narch = [\"sd15\"]\n")
                .unwrap();
        let l = &set.get("anime").unwrap().style.loras;
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].weight, l[0].arch.as_slice()),
            (0.6, &["sd15".to_string()][..])
        );
        let err = write("[[style.loras]]\nfile = \"ink.safetensors\"\nweight = 9.0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("style.loras[0].weight"), "{err}");
        let err = write("[[style.loras]]\nfile = \"ink.ckpt\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("style.loras[0].file"), "{err}");
    }

    #[test]
    fn a_channel_may_name_the_morph_transition() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("channels")).unwrap();
        let write = |text: &str| {
            std::fs::write(dir.path().join("channels/anime.toml"), text).unwrap();
            ChannelSet::load(Some(dir.path()))
        };
        let set = write("[defaults]\ntransition = \"morph\"\n").unwrap();
        assert_eq!(set.get("anime").unwrap().defaults.transition, "morph");
        let err = write("[defaults]\ntransition = \"swirl\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown transition `swirl`"), "{err}");
    }

    #[test]
    fn overlay_with_a_cycle_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("channels")).unwrap();
        std::fs::write(
            dir.path().join("channels/gaming.toml"),
            "[stages.plan]\nafter = [\"metadata\"]\n",
        )
        .unwrap();
        let err = ChannelSet::load(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("gaming.toml"), "{err}");
        assert!(err.contains("cycle"), "{err}");
    }

    #[test]
    fn unknown_channel_lists_known_ones() {
        let set = ChannelSet::embedded().unwrap();
        let err = set.get("cooking").unwrap_err().to_string();
        assert!(
            err.contains("unknown channel `cooking`") && err.contains("explainer"),
            "{err}"
        );
    }
}
