//! Data model of a video script.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

fn default_language() -> String {
    "en".to_string()
}

fn default_speaker() -> String {
    crate::script::NARRATOR.to_string()
}

/// A whole video script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Title of the video (required in YAML/JSON).
    pub title: Localized,
    /// Source language of `Localized::One` texts; default `"en"`.
    #[serde(default = "default_language")]
    pub language: String,
    /// Channel style; after validation always `Some`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Output languages; after validation never empty.
    #[serde(default)]
    pub languages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspect: Option<Aspect>,
    /// Frames per second, 12..=60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Localized>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub characters: Vec<Character>,
    #[serde(default)]
    pub scenes: Vec<Scene>,
    /// Gameplay recordings to cut highlights from: files, or folders whose recordings are taken
    /// in name order; relative to the script, inside the project. Absolute (and folders expanded)
    /// after validation. A script with recordings has no `scenes`: the highlights are its scenes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recordings: Vec<PathBuf>,
    /// How highlights are chosen from the recordings (the channel's `[highlights]` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highlights: Option<HighlightsSpec>,
    /// Where the finished video is published by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishSpec>,
}

/// The `highlights:` block of a script with recordings; every field falls back to the channel's
/// `[highlights]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HighlightsSpec {
    /// Highlights in the compilation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Target seconds per highlight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<f64>,
    /// Vertical shorts made from the best highlights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shorts: Option<usize>,
    /// Layout of the shorts: `{kind: blurred_fill}`, `{kind: crop, follow: true}` or
    /// `{kind: stack, facecam: {x, y, w, h}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<crate::media::vertical::Layout>,
    /// Where the player's camera is in the recording (fractions ≤ 1 or pixels): shorts stack it
    /// over the gameplay unless `layout` says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facecam: Option<crate::media::vertical::Rect>,
    /// A region of interest (a HUD corner, the arena): motion is measured there only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<crate::media::vertical::Rect>,
    /// The cut detector: `adaptive` (default) or `content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<crate::highlights::analyze::DetectorChoice>,
    /// An edited `selection.json` to render from instead of choosing again (relative to the
    /// script).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<PathBuf>,
    /// Spoken commentary over each highlight (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commentary: Option<bool>,
}

/// A Piper speaker: a name from the voice's speaker list or a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SpeakerRef {
    Number(u32),
    Name(String),
}

impl std::fmt::Display for SpeakerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpeakerRef::Number(n) => write!(f, "{n}"),
            SpeakerRef::Name(s) => f.write_str(s),
        }
    }
}

/// A speaking character.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Character {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    /// espeak variant such as `m3` or `f2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// 0..=99.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitch: Option<u8>,
    /// Words per minute, 80..=450.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u16>,
    /// Speaker of a multi-speaker Piper voice: its name or number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<SpeakerRef>,
    /// Piper voices: slowness of speech (1 = as the voice was trained; overrides `rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_scale: Option<f32>,
    /// Piper voices: variation of the voice (the voice's own when absent, 0.667 in most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_scale: Option<f32>,
    /// Piper voices: variation of the timing (0.8 in most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_w: Option<f32>,
    /// Reference image; absolute after validation. Image models draw the scenes this
    /// character leads from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<PathBuf>,
    /// Noise seed of the scenes this character leads (the same seed keeps a drawing alike).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The character depicts a real person: publishing the video needs a consent record
    /// naming them (`reelsmith consent add NAME …`), matched on `name` (else `id`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub real_person: bool,
}

impl Character {
    /// How consent records name the character: its `name`, else its id.
    pub fn person(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// The `publish:` block of a script: where a finished render goes by itself (queued as
/// publications when the job finishes; `reelsmith publish` takes the same options).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PublishSpec {
    /// Platforms: youtube, tiktok, instagram. Left out: the channel's; `[]`: not published
    /// (a script opting out of its channel's `[publish]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
    /// private, unlisted or public (default private).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<String>,
    /// When it goes public (RFC 3339, e.g. 2026-12-24T18:00:00Z; YouTube: private until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Publish the vertical short (short.mp4) as well (YouTube Shorts, and what TikTok and
    /// Instagram get).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short: Option<bool>,
    /// Disclose the video as altered or synthetic content (default yes: it is generated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<bool>,
    /// Languages to publish (default: every rendered one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    /// The account per platform (default: the platform's only or first account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// A YouTube playlist id to add the video to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playlist: Option<String>,
    /// How TikTok gets it: `direct` (posted with its caption and privacy, scope
    /// `video.publish`; the default) or `inbox` (sent to the creator's TikTok inbox to finish
    /// in the app, scope `video.upload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiktok_mode: Option<String>,
}

impl PublishSpec {
    /// The platforms named (none when left out).
    pub fn platforms(&self) -> &[String] {
        self.to.as_deref().unwrap_or_default()
    }

    /// Where a render goes: the script's `publish:` block over its channel's `[publish]`
    /// defaults (each field the script leaves out comes from the channel). A script with
    /// `to: []` opts out of the channel's publishing; none at all when neither names a
    /// platform.
    pub fn resolve(
        script: Option<&PublishSpec>,
        channel: Option<&PublishSpec>,
    ) -> Option<PublishSpec> {
        let out = match (script, channel) {
            (None, c) => c.cloned()?,
            (Some(s), None) => s.clone(),
            (Some(s), Some(c)) => PublishSpec {
                to: s.to.clone().or_else(|| c.to.clone()),
                privacy: s.privacy.clone().or_else(|| c.privacy.clone()),
                at: s.at.clone(),
                short: s.short.or(c.short),
                synthetic: s.synthetic.or(c.synthetic),
                languages: if s.languages.is_empty() {
                    c.languages.clone()
                } else {
                    s.languages.clone()
                },
                account: s.account.clone().or_else(|| c.account.clone()),
                playlist: s.playlist.clone().or_else(|| c.playlist.clone()),
                tiktok_mode: s.tiktok_mode.clone().or_else(|| c.tiktok_mode.clone()),
            },
        };
        (!out.platforms().is_empty()).then_some(out)
    }
}

/// One scene (shot) of the video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    /// Default `scene-N` (1-based), filled in by parsing/validation.
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Localized>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion: Option<Motion>,
    #[serde(default)]
    pub lines: Vec<Line>,
    /// Music mood.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub music: Option<String>,
    /// Transition into the next scene.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<Transition>,
    /// Image to use instead of generating one; absolute after validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<PathBuf>,
}

/// One spoken line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// `"narrator"` or a character id.
    #[serde(default = "default_speaker")]
    pub speaker: String,
    pub text: Localized,
}

/// Text in the source language, or a map language code -> text.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Localized {
    One(String),
    Many(BTreeMap<String, String>),
}

impl Localized {
    /// Text for `lang`. `One` only answers for the source language.
    pub fn get(&self, lang: &str, source_lang: &str) -> Option<&str> {
        match self {
            Localized::One(text) => (lang == source_lang).then_some(text.as_str()),
            Localized::Many(map) => map.get(lang).map(String::as_str),
        }
    }

    /// Text in the source language, or else the first entry.
    pub fn source(&self, source_lang: &str) -> Option<&str> {
        match self {
            Localized::One(text) => Some(text),
            Localized::Many(map) => map
                .get(source_lang)
                .or_else(|| map.values().next())
                .map(String::as_str),
        }
    }
}

impl From<&str> for Localized {
    fn from(text: &str) -> Self {
        Localized::One(text.to_string())
    }
}

impl From<String> for Localized {
    fn from(text: String) -> Self {
        Localized::One(text)
    }
}

impl<'de> Deserialize<'de> for Localized {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LocalizedVisitor;

        impl<'de> Visitor<'de> for LocalizedVisitor {
            type Value = Localized;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text, or a map of language code to text (e.g. {en: ..., ja: ...})")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Localized, E> {
                Ok(Localized::One(v.to_string()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Localized, E> {
                Ok(Localized::One(v))
            }

            // Unquoted YAML scalars such as `1984` or `3.5` are accepted as text.
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Localized, E> {
                Ok(Localized::One(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Localized, E> {
                Ok(Localized::One(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Localized, E> {
                Ok(Localized::One(v.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Localized, A::Error> {
                let mut map = BTreeMap::new();
                while let Some(key) = access.next_key::<String>()? {
                    let value: String = access.next_value()?;
                    if map.contains_key(&key) {
                        return Err(de::Error::custom(format!("duplicate language `{key}`")));
                    }
                    map.insert(key, value);
                }
                Ok(Localized::Many(map))
            }
        }

        deserializer.deserialize_any(LocalizedVisitor)
    }
}

macro_rules! str_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(
                #[serde(rename = $text $(, alias = $alias)*)]
                $variant,
            )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used in script files.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Parses the file spelling, e.g. `"zoom-in"`.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|m| m.as_str() == s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// Camera motion over a scene's image.
    Motion {
        Static = "static",
        ZoomIn = "zoom-in",
        ZoomOut = "zoom-out",
        PanLeft = "pan-left",
        PanRight = "pan-right",
        PanUp = "pan-up",
        PanDown = "pan-down",
    }
);

str_enum!(
    /// Transition from a scene into the next one. `morph` is a generated clip that turns the
    /// scene into the next (made by the animate stage's video model from the scene's last frame
    /// and the next keyframe); where no video model is used (the Ken Burns engine) there is no
    /// such clip and a morph falls back to a crossfade.
    Transition {
        Cut = "cut",
        Crossfade = "crossfade",
        FadeBlack = "fade-black",
        WipeLeft = "wipe-left",
        WipeRight = "wipe-right",
        Morph = "morph",
    }
);

str_enum!(
    /// Frame shape.
    Aspect {
        Landscape = "16:9" | "landscape",
        Portrait = "9:16" | "portrait",
        Square = "1:1" | "square",
    }
);

impl Aspect {
    /// Width:height ratio as a pair, e.g. (16, 9).
    pub fn ratio(self) -> (u32, u32) {
        match self {
            Aspect::Landscape => (16, 9),
            Aspect::Portrait => (9, 16),
            Aspect::Square => (1, 1),
        }
    }
}
