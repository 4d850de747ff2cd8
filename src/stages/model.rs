//! The artifacts stages hand each other, as JSON files in their artifact directories.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::channel::{CaptionStyle, VoiceDefault};
use crate::engines::Clip;
use crate::media::compose::Blend;
use crate::script::Localized;

/// `plan.json`: everything downstream stages need from the script and the channel.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub title: Localized,
    pub description: Option<Localized>,
    pub source_language: String,
    pub channel: String,
    pub look: String,
    pub palette: Vec<[u8; 3]>,
    pub negative_prompt: String,
    pub tags: Vec<String>,
    pub characters: Vec<PlannedCharacter>,
    pub scenes: Vec<PlannedScene>,
    pub timing: Timing,
    pub captions: CaptionStyle,
    pub voices: BTreeMap<String, VoiceDefault>,
    /// The engine that planned (`rules/planner@1`, `llm/<model>@1`).
    #[serde(default)]
    pub planner: String,
    /// Present when the scenes are highlights of recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<RecordedPlan>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Timing {
    pub lead_in: f64,
    pub tail: f64,
    pub line_gap: f64,
    pub min_scene_seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlannedCharacter {
    pub id: String,
    pub name: String,
    pub description: String,
    pub variant: String,
    /// Pitch and rate overrides; the language's narrator defaults apply when absent.
    pub pitch: Option<u8>,
    pub rate: Option<u16>,
    /// Piper speaker (name or number) and scale overrides, as the script gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_scale: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_scale: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_w: Option<f32>,
    /// Character sheet: how the character looks, added to the prompts of the scenes they are
    /// in so every keyframe draws them alike (written by the LLM planner).
    #[serde(default)]
    pub look: Option<String>,
    /// Character sheet: a picture of the character; image models draw the scenes the character
    /// leads from it (image-to-image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<std::path::PathBuf>,
    /// Character sheet: the noise seed of the scenes the character leads (same seed, similar
    /// drawing), instead of the scene's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlannedScene {
    pub id: String,
    pub index: usize,
    pub title: Option<Localized>,
    /// The full image prompt: channel prefix + scene prompt + channel suffix.
    pub prompt: String,
    pub motifs: Vec<String>,
    pub seed: u64,
    pub motion: String,
    pub transition: Blend,
    pub transition_seconds: f64,
    pub min_duration: Option<f64>,
    pub music: String,
    pub image: Option<PathBuf>,
    pub lines: Vec<PlannedLine>,
    /// The shot list (LLM planner; empty with the rules).
    #[serde(default)]
    pub shots: Vec<Shot>,
    /// A stretch of a recording this scene shows instead of a picture (highlights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceClip>,
}

/// A stretch of a recording.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SourceClip {
    pub path: PathBuf,
    /// The recording's content key (what caches of it are named by).
    pub key: String,
    /// Seconds in the recording.
    pub start: f64,
    pub end: f64,
    /// The best moment (the thumbnail's frame).
    pub peak: f64,
    pub has_audio: bool,
}

impl SourceClip {
    pub fn seconds(&self) -> f64 {
        self.end - self.start
    }
}

/// What a plan made from recordings adds: the shorts and how they are laid out, and how the game
/// audio dips under the commentary.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecordedPlan {
    pub shorts: Vec<PlannedShort>,
    pub layout: crate::media::vertical::Layout,
    /// Fraction the game audio dips under speech, and the dip's attack and release in seconds.
    pub duck: f64,
    pub duck_attack: f64,
    pub duck_release: f64,
}

/// One vertical short: a stretch of the recording behind scene `scene`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlannedShort {
    pub scene: usize,
    pub id: String,
    pub source: SourceClip,
}

/// One shot of a scene.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Shot {
    /// wide, medium, close-up, …
    pub framing: String,
    /// A camera move the animate stage knows (zoom-in, pan-left, …).
    pub camera: String,
    /// What happens.
    pub action: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlannedLine {
    pub speaker: String,
    pub text: Localized,
}

/// `text.json` (translate): one language's texts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Texts {
    pub lang: String,
    /// Texts the LLM translated (`scenes[i].lines[j]`, `title`, …); empty when the script had
    /// them all.
    #[serde(default)]
    pub machine_translated: Vec<String>,
    pub title: String,
    pub description: Option<String>,
    pub scenes: Vec<SceneTexts>,
}

impl Texts {
    /// Text of line `line` of scene `scene`.
    pub fn line(&self, scene: usize, line: usize) -> Option<&String> {
        self.scenes.get(scene).and_then(|s| s.lines.get(line))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SceneTexts {
    pub id: String,
    pub title: Option<String>,
    pub lines: Vec<String>,
}

/// `voice.json`: one WAV per spoken line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Voices {
    pub lang: String,
    pub rate: u32,
    pub lines: Vec<VoicedLine>,
}

impl Voices {
    /// The voiced line `line` of scene `scene`.
    pub fn line(&self, scene: usize, line: usize) -> Option<&VoicedLine> {
        self.lines
            .iter()
            .find(|l| l.scene == scene && l.line == line)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VoicedLine {
    pub scene: usize,
    pub line: usize,
    pub speaker: String,
    pub file: String,
    pub seconds: f64,
    pub engine: String,
}

/// `timeline.json` (align): where every scene and line sits, per language.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Timeline {
    pub lang: String,
    pub fps: u32,
    pub total: f64,
    pub scenes: Vec<SceneSlot>,
    pub lines: Vec<LineSlot>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SceneSlot {
    pub id: String,
    pub start: f64,
    pub duration: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LineSlot {
    pub scene: usize,
    pub line: usize,
    pub start: f64,
    pub end: f64,
    /// Where each word is spoken, on the video's clock (Whisper alignment; empty without it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<WordSlot>,
}

/// One aligned word.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WordSlot {
    pub text: String,
    pub start: f64,
    pub end: f64,
}

/// `keyframes.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Keyframes {
    pub engine: String,
    pub frames: Vec<KeyframeInfo>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeyframeInfo {
    pub scene: usize,
    pub file: String,
    pub width: u32,
    pub height: u32,
    pub strength: f64,
    pub source: String,
}

/// `clips.json` (animate).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Clips {
    pub engine: String,
    pub clips: Vec<SceneClip>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SceneClip {
    pub scene: usize,
    pub clip: Clip,
    pub blend_out: Blend,
    pub blend_seconds: f64,
    /// The generated transition into the next scene (a [`Clip::Frames`] from this scene's last
    /// frame to the next one's keyframe), drawn over the transition window when `blend_out` is
    /// [`Blend::Morph`]; without it a morph is a crossfade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub morph: Option<Clip>,
    /// The clip's own sound (a recording's game audio): a WAV in the animate stage's artifact,
    /// interleaved stereo at the job's audio rate, as long as the clip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<String>,
}

/// `music.json`: one loop per mood used.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Music {
    pub engine: String,
    pub rate: u32,
    pub loops: BTreeMap<String, String>,
}

/// `mix.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MixInfo {
    pub lang: String,
    pub seconds: f64,
    pub input_lufs: Option<f64>,
    pub output_lufs: Option<f64>,
    pub true_peak_dbtp: f64,
}

/// `metadata.json`: YouTube-ready metadata for one language.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Metadata {
    pub lang: String,
    pub title: String,
    /// Other titles to A/B test (LLM; empty with the rules).
    #[serde(default)]
    pub title_alternatives: Vec<String>,
    /// The engine that wrote the texts.
    #[serde(default)]
    pub writer: String,
    pub description: String,
    pub tags: Vec<String>,
    pub chapters: Vec<Chapter>,
    /// Whether the chapters meet YouTube's rules (first at 0:00, at least 3, each ≥ 10 s), so
    /// YouTube will show them from the description.
    pub youtube_chapters: bool,
    pub duration: f64,
    pub category: String,
    pub default_language: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Chapter {
    pub start: f64,
    pub timestamp: String,
    pub title: String,
}
