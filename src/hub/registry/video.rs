//! A video model's `[model.video]` table: the shape rules, frame rate, schedule and memory
//! coefficients the video engine and the scheduler read, and their consistency checks.

use serde::{Deserialize, Serialize};

use super::{ModelEntry, ModelKind};

/// What the video engine and the scheduler need to know of a video model (`[model.video]`).
///
/// ```toml
/// [model.video]
/// version = "0.9.8"            # the release; "0.9.5+" when only the VAE layout told
/// layout = "single-file"       # single-file (transformer + VAE in one file) | diffusers
/// fps = 24                     # the frame rate it generates at by default
/// frame_rule = "8k+1"          # frame counts it generates: temporal_compression·k + 1
/// size_multiple = 32           # width and height are multiples of this
/// temporal_compression = 8     # frames per latent frame (after the first)
/// spatial_compression = 32     # pixels per latent pixel, each way
/// latent_channels = 128
/// hidden = 2048                # transformer width: 2048 (2B) or 4096 (13B)
/// layers = 28                  # transformer blocks: 28 (2B) or 48 (13B)
/// heads = 32                   # attention heads
/// timesteps = [1.0, 0.9937]    # distilled models: the fixed schedule (sampling.steps = its length)
/// [model.video.vram]           # see hub::vram::video_estimate
/// transformer_base_gb = 17.2     # every resident weight: transformer, T5, VAE
/// transformer_per_token_kib = 64
/// decode_base_gb = 0.3            # the decoder's workspace beyond its weights
/// decode_per_pixel_frame_bytes = 400
/// ```
///
/// Wan2.1 entries add what tells the family apart:
///
/// ```toml
/// [model.video]
/// version = "2.1"
/// layout = "comfyui"           # comfyui (split files) | official (Wan-AI release) | diffusers
/// task = "i2v"                 # t2v | i2v | flf2v (LTX: any)
/// patch = 2                    # latent pixels per transformer token each way
/// shift = 3.0                  # the makers' flow shift
/// sequential_guidance = true   # the two guidance branches run one after the other
/// [model.video.vram]
/// block_gb = 0.752             # one transformer block as stored: what streaming moves
/// decode_frames = 4            # output frames the decoder makes at once
/// vae_gb = 0.47                # the decode holds only the VAE (the transformer has left)
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VideoFacts {
    /// The release: `0.9.0`, `0.9.1`, `0.9.5`, `0.9.8`; an import that could not read the
    /// number from the file name says what the tensors told: `0.9.5+` (the 0.9.5 VAE layout,
    /// 2B) or `0.9.7+` (the 13B transformer).
    pub version: String,
    /// How the weights are stored: `single-file` (one `.safetensors` with
    /// `model.diffusion_model.*` transformer and `vae.*` autoencoder tensors, the official
    /// release format) or `diffusers` (a pipeline folder: `transformer/`, `vae/`,
    /// `text_encoder/`, `tokenizer/`).
    #[serde(default = "single_file")]
    pub layout: String,
    /// Frames per second the model generates at by default.
    pub fps: u32,
    /// The frame counts it generates, `{temporal_compression}k+1` (LTX: `8k+1`).
    pub frame_rule: String,
    /// Width and height must be multiples of this.
    pub size_multiple: u32,
    /// Frames per latent frame after the first.
    pub temporal_compression: u32,
    /// Pixels per latent pixel, each way.
    pub spatial_compression: u32,
    pub latent_channels: u32,
    /// The transformer's width (2048 for the 2B models, 4096 for the 13B).
    pub hidden: u32,
    /// Transformer blocks (28 for 2B, 48 for 13B).
    pub layers: u32,
    /// Attention heads per block.
    pub heads: u32,
    /// Distilled models: the fixed timesteps (sigmas, from 1 down) they were distilled for,
    /// run without classifier-free guidance; `sampling.steps` is their count. Empty: the
    /// engine's own schedule for `sampling.steps`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timesteps: Vec<f64>,
    /// What the checkpoint generates from: `t2v` (text), `i2v` (a first picture), `flf2v`
    /// (first and last pictures), or `any` (LTX: text, and pictures at any frame).
    #[serde(default = "any_task")]
    pub task: String,
    /// Latent pixels per transformer token, each way (Wan's (1,2,2) patch embedding: 2; LTX: 1).
    #[serde(default = "one")]
    pub patch: u32,
    /// The flow shift of the sampling schedule the makers use (Wan: 3.0 at 480p, 5.0 at 720p,
    /// 8–12 suggested for the 1.3B, 16 for FLF2V); absent: the engine's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<f64>,
    /// The conditional and unconditional branches of guidance run one after the other
    /// (Wan's pipelines), not as one batch of two (LTX): the activations are one branch's.
    #[serde(default)]
    pub sequential_guidance: bool,
    /// Coefficients of the memory estimate ([`crate::hub::vram::video_estimate`]).
    pub vram: VideoVram,
}

/// The tasks a `[model.video]` table may name.
pub const VIDEO_TASKS: [&str; 4] = ["any", "t2v", "i2v", "flf2v"];

fn any_task() -> String {
    "any".into()
}

fn one() -> u32 {
    1
}

/// The coefficients of a video model's memory estimate (see [`crate::hub::vram::video_estimate`]).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VideoVram {
    /// GiB of transformer weights as they run (bf16): the checkpoint's size less its VAE.
    pub transformer_base_gb: f64,
    /// KiB of activations per latent token per guidance branch: one block's working set
    /// (`hidden` × 2 bytes × ~16 live tensors) — blocks run one after the other.
    pub transformer_per_token_kib: f64,
    /// GiB the decode needs whatever the clip: the VAE's weights as they run (bf16) and its
    /// latents.
    pub decode_base_gb: f64,
    /// Bytes per output pixel per frame being decoded at once (the decoder's last stage).
    pub decode_per_pixel_frame_bytes: f64,
    /// GiB of one transformer block as stored (bf16, or fp8 for fp8 files): what block
    /// streaming moves from host memory per block. Absent: the model only runs resident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_gb: Option<f64>,
    /// Output frames the decoder makes at once whatever the engine's window (Wan decodes one
    /// latent frame, 4 output frames, at a time). Absent: the engine's decode window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_frames: Option<u32>,
    /// GiB of the VAE's weights as they run. Set: the components are loaded one at a time
    /// (Wan), so the transformer leaves memory before the decode, which holds only these.
    /// Absent: the transformer's weights stay loaded through the decode (LTX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vae_gb: Option<f64>,
}

fn single_file() -> String {
    "single-file".into()
}

impl VideoFacts {
    /// `2B` or `13B` for LTX, `1.3B` or `14B` for Wan, from the transformer's width.
    pub fn size_class(&self) -> &'static str {
        match (self.patch > 1, self.hidden >= 4096) {
            (false, true) => "13B",
            (false, false) => "2B",
            (true, true) => "14B",
            (true, false) => "1.3B",
        }
    }

    /// Whether the model is guidance-distilled (fixed timesteps, no CFG).
    pub fn distilled(&self) -> bool {
        !self.timesteps.is_empty()
    }
}

// Floats from a registry file the loader checked finite: equality is an equivalence.
impl Eq for VideoFacts {}
impl Eq for VideoVram {}

/// A `[model.video]` table's consistency: the frame rule matches the compression, sizes are
/// whole latents, a distilled schedule runs its own step count without guidance.
pub(super) fn check_video(m: &ModelEntry, v: &VideoFacts) -> Result<(), String> {
    if m.kind != ModelKind::Video {
        return Err(format!(
            "only video models have one (kind is {})",
            m.kind.as_str()
        ));
    }
    if v.version.trim().is_empty() {
        return Err("version: say which release (0.9.5, 0.9.8, …)".into());
    }
    const LAYOUTS: [&str; 4] = ["single-file", "diffusers", "comfyui", "official"];
    if !LAYOUTS.contains(&v.layout.as_str()) {
        return Err(format!(
            "layout: {:?} is not one of {}",
            v.layout,
            LAYOUTS.join(", ")
        ));
    }
    if !VIDEO_TASKS.contains(&v.task.as_str()) {
        return Err(format!(
            "task: {:?} is not one of {}",
            v.task,
            VIDEO_TASKS.join(", ")
        ));
    }
    if let Some(shift) = v.shift {
        if !shift.is_finite() || shift <= 0.0 || shift > 100.0 {
            return Err(format!("shift: a number in (0, 100] (got {shift})"));
        }
    }
    let positive = [
        ("fps", v.fps),
        ("temporal_compression", v.temporal_compression),
        ("spatial_compression", v.spatial_compression),
        ("size_multiple", v.size_multiple),
        ("latent_channels", v.latent_channels),
        ("hidden", v.hidden),
        ("layers", v.layers),
        ("heads", v.heads),
        ("patch", v.patch),
    ];
    if let Some((name, _)) = positive.iter().find(|(_, x)| *x == 0) {
        return Err(format!("{name}: must be at least 1"));
    }
    let rule = format!("{}k+1", v.temporal_compression);
    if v.frame_rule != rule {
        return Err(format!(
            "frame_rule: {:?} does not match temporal_compression {} (expected {rule:?})",
            v.frame_rule, v.temporal_compression
        ));
    }
    if !v.size_multiple.is_multiple_of(v.spatial_compression) {
        return Err(format!(
            "size_multiple {} is not a multiple of spatial_compression {}",
            v.size_multiple, v.spatial_compression
        ));
    }
    if !v.hidden.is_multiple_of(v.heads) {
        return Err(format!(
            "hidden {} is not a multiple of heads {}",
            v.hidden, v.heads
        ));
    }
    if !v.timesteps.is_empty() {
        let ok = v
            .timesteps
            .iter()
            .all(|t| t.is_finite() && *t > 0.0 && *t <= 1.0)
            && v.timesteps.windows(2).all(|w| w[0] > w[1]);
        if !ok {
            return Err("timesteps: decreasing values in (0, 1]".into());
        }
        match &m.sampling {
            Some(s) if s.steps as usize == v.timesteps.len() && s.cfg <= 1.0 => {}
            _ => {
                return Err(format!(
                    "timesteps: a distilled schedule of {} steps needs \
                     sampling = {{ sampler = \"flow\", steps = {}, cfg = 1.0 }}",
                    v.timesteps.len(),
                    v.timesteps.len()
                ))
            }
        }
    }
    let r = &v.vram;
    let coefficients = [
        ("transformer_base_gb", r.transformer_base_gb),
        ("transformer_per_token_kib", r.transformer_per_token_kib),
        ("decode_base_gb", r.decode_base_gb),
        (
            "decode_per_pixel_frame_bytes",
            r.decode_per_pixel_frame_bytes,
        ),
    ];
    if let Some((name, x)) = coefficients
        .iter()
        .find(|(_, x)| !x.is_finite() || *x < 0.0 || *x > 1.0e6)
    {
        return Err(format!(
            "vram.{name}: a finite, non-negative number (got {x})"
        ));
    }
    if let Some(block) = r.block_gb {
        let all_blocks = block * f64::from(v.layers);
        if !block.is_finite() || block <= 0.0 || all_blocks > r.transformer_base_gb * 1.01 {
            return Err(format!(
                "vram.block_gb: one block's GiB, more than 0 and at most transformer_base_gb / \
                 layers ({:.3}); got {block}",
                r.transformer_base_gb / f64::from(v.layers)
            ));
        }
    }
    if r.block_gb.is_some() && r.vae_gb.is_none() {
        return Err(
            "vram.block_gb: streaming blocks needs vram.vae_gb (the components load one at a \
             time, so the decode holds only the VAE)"
                .into(),
        );
    }
    if let Some(vae) = r.vae_gb {
        if !vae.is_finite() || vae <= 0.0 || vae > r.transformer_base_gb {
            return Err(format!(
                "vram.vae_gb: the VAE's GiB, more than 0 and at most transformer_base_gb; got {vae}"
            ));
        }
    }
    if r.decode_frames == Some(0) {
        return Err("vram.decode_frames: at least 1".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Registry;
    use super::*;
    use std::path::Path;

    #[test]
    fn video_tables_are_checked_and_name_the_field() {
        let r = Registry::embedded().unwrap();
        let ltx: Vec<&ModelEntry> = r
            .models()
            .iter()
            .filter(|m| m.video.is_some() && m.arch != "wan")
            .collect();
        assert!(ltx.len() >= 4, "the LTX-Video entries carry [model.video]");
        for m in &ltx {
            let v = m.video.as_ref().unwrap();
            assert_eq!(
                (m.kind, m.arch.as_str()),
                (ModelKind::Video, "ltxv"),
                "{}",
                m.id
            );
            assert_eq!(
                m.requires,
                vec!["flux-text-encoders".to_string()],
                "{}",
                m.id
            );
            assert!(r.get("flux-text-encoders").is_some());
            let s = m.sampling.as_ref().unwrap();
            assert_eq!(v.distilled(), s.cfg <= 1.0, "{}", m.id);
        }
        let d = r
            .get("ltxv-2b-0.9.8-distilled")
            .unwrap()
            .video
            .clone()
            .unwrap();
        assert_eq!((d.size_class(), d.timesteps.len(), d.fps), ("2B", 8, 30));
        let big = r.get("ltxv-13b-0.9.8-dev").unwrap().video.clone().unwrap();
        assert_eq!(
            (big.size_class(), big.layers, big.distilled()),
            ("13B", 48, false)
        );

        let base = r#"
[[model]]
id = "v"
name = "v"
kind = "video"
repo = "a/b"
license = "x"
arch = "ltxv"
format = "safetensors"
dtype = "bf16"
tier = "medium"
SAMPLING
[[model.files]]
path = "v.safetensors"
[model.video]
version = "0.9.8"
fps = 24
frame_rule = "RULE"
size_multiple = 32
temporal_compression = 8
spatial_compression = 32
latent_channels = 128
hidden = 2048
layers = 28
heads = 32
TIMESTEPS
vram = { transformer_base_gb = 3.6, transformer_per_token_kib = 64, decode_base_gb = 1.2, decode_per_pixel_frame_bytes = 400 }
"#;
        let load = |sampling: &str, rule: &str, timesteps: &str| {
            let text = base
                .replace("SAMPLING", sampling)
                .replace("RULE", rule)
                .replace("TIMESTEPS", timesteps);
            Registry::default().add_file(Path::new("mine.toml"), &text)
        };
        let steps2 = "sampling = { sampler = \"flow\", steps = 2, cfg = 1.0 }";
        load(steps2, "8k+1", "timesteps = [1.0, 0.5]").unwrap();
        load("", "8k+1", "").unwrap();
        let e = load("", "4k+1", "").unwrap_err().to_string();
        assert!(
            e.contains("mine.toml") && e.contains("video: frame_rule"),
            "{e}"
        );
        let e = load("", "8k+1", "timesteps = [1.0, 0.5]")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("video: timesteps") && e.contains("steps = 2"),
            "{e}"
        );
        let e = load(steps2, "8k+1", "timesteps = [0.5, 1.0]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("decreasing"), "{e}");
        let e = load("", "8k+1", "")
            .and_then(|_| {
                Registry::default().add_file(
                    Path::new("mine.toml"),
                    &base
                        .replace("kind = \"video\"", "kind = \"image\"")
                        .replace("SAMPLING", "")
                        .replace("RULE", "8k+1")
                        .replace("TIMESTEPS", ""),
                )
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("only video models"), "{e}");
    }

    #[test]
    fn wan_entries_say_their_task_files_and_blocks() {
        let r = Registry::embedded().unwrap();
        let wan: Vec<&ModelEntry> = r
            .models()
            .iter()
            .filter(|m| m.arch == "wan" && m.video.is_some())
            .collect();
        assert!(wan.len() >= 8, "{} Wan entries", wan.len());
        for m in &wan {
            let v = m.video.as_ref().unwrap();
            assert_eq!(
                (v.frame_rule.as_str(), v.size_multiple, v.patch, v.fps),
                ("4k+1", 16, 2, 16),
                "{}",
                m.id
            );
            assert!(v.sequential_guidance && v.shift.is_some(), "{}", m.id);
            let block = v.vram.block_gb.expect("Wan blocks stream");
            assert!(block * f64::from(v.layers) <= v.vram.transformer_base_gb);
            let has = |s: &str| m.files.iter().any(|f| f.path.contains(s));
            assert!(has("umt5") && (has("vae") || has("VAE")), "{}", m.id);
            assert_eq!(
                has("clip"),
                v.task != "t2v",
                "{}: the image tasks need CLIP vision H",
                m.id
            );
            if v.layout == "comfyui" {
                assert_eq!(m.requires, vec!["umt5-xxl-tokenizer".to_string()]);
                assert!(r.get("umt5-xxl-tokenizer").is_some());
            }
            assert_eq!(m.sampling.as_ref().unwrap().sampler, "unipc");
        }
        let small = r.get("wan2.1-t2v-1.3b").unwrap().video.clone().unwrap();
        assert_eq!((small.size_class(), small.task.as_str()), ("1.3B", "t2v"));
        let flf = r
            .get("wan2.1-flf2v-14b-720p")
            .unwrap()
            .video
            .clone()
            .unwrap();
        assert_eq!((flf.size_class(), flf.shift), ("14B", Some(16.0)));
        // A bad task or block size names the field; a good table loads.
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("models")).unwrap();
        let load = |task: &str, block: &str| {
            std::fs::write(d.path().join("models/mine.toml"), wan_toml(task, block)).unwrap();
            Registry::load(Some(d.path())).map_err(|e| e.to_string())
        };
        let e = load("task = \"v2v\"", "block_gb = 0.1").unwrap_err();
        assert!(e.contains("mine.toml") && e.contains("video: task"), "{e}");
        let e = load("task = \"t2v\"", "block_gb = 5.0").unwrap_err();
        assert!(e.contains("vram.block_gb"), "{e}");
        let e = load("task = \"t2v\"\nshift = -1.0", "block_gb = 0.1").unwrap_err();
        assert!(e.contains("video: shift"), "{e}");
        let r = load("task = \"t2v\"", "block_gb = 0.1").unwrap();
        assert_eq!(r.get("mine").unwrap().video.as_ref().unwrap().task, "t2v");
    }

    fn wan_toml(task: &str, block: &str) -> String {
        format!(
            "[[model]]\nid = \"mine\"\nname = \"x\"\nkind = \"video\"\nrepo = \"a/b\"\n\
             license = \"apache-2.0\"\narch = \"wan\"\nformat = \"safetensors\"\ndtype = \"bf16\"\n\
             tier = \"low\"\nsampling = {{ sampler = \"unipc\", steps = 50, cfg = 6.0 }}\n\
             [[model.files]]\npath = \"t.safetensors\"\n[model.video]\nversion = \"2.1\"\n\
             layout = \"comfyui\"\n{task}\nfps = 16\nframe_rule = \"4k+1\"\nsize_multiple = 16\n\
             temporal_compression = 4\nspatial_compression = 8\npatch = 2\nlatent_channels = 16\n\
             hidden = 1536\nlayers = 30\nheads = 12\n\
             vram = {{ transformer_base_gb = 3.1, transformer_per_token_kib = 82, \
             decode_base_gb = 0.2, decode_per_pixel_frame_bytes = 4096, vae_gb = 0.47, {block} }}\n"
        )
    }
}
