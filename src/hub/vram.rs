//! GPU memory estimates: a formula of the stored dtype, the architecture and the job's size,
//! used by the scheduler's admission and by `reelsmith models recommend`.
//!
//! estimate = runtime overhead (CUDA context, allocator slack)
//!          + weights at the dtype they run in
//!          + activations for the job: KV cache per context token for LLMs; per megapixel ×
//!            batch (× frames for video) for diffusion; a fixed working set for the rest.
//! The coefficients are per architecture family, measured orders of magnitude from the
//! reference implementations (fp16 on CUDA); they are deliberately on the safe side, because
//! admission that overestimates only waits, while underestimating runs out of memory.
//!
//! Video models with a `[model.video]` table get a formula of their own, in two phases
//! ([`video_estimate`]): the transformer pass (weights + activations per latent token +
//! one layer's attention scores) and the VAE decode (streamed in time, tiled in space: its
//! memory depends on the tile, not on the clip's length).

use serde::Deserialize;

use super::registry::{ModelEntry, ModelKind, VideoFacts};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;
/// CUDA context, allocator slack and the engine's own buffers.
const OVERHEAD: u64 = 400 * MIB;

/// GPU classes by memory: low 4–8 GiB, medium 8–16, high 16–24, extreme 24+.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Low,
    Medium,
    High,
    Extreme,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Low, Tier::Medium, Tier::High, Tier::Extreme];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Low => "low",
            Tier::Medium => "medium",
            Tier::High => "high",
            Tier::Extreme => "extreme",
        }
    }

    /// The memory range, in GiB (`None` = no upper bound).
    pub fn range_gib(self) -> (u64, Option<u64>) {
        match self {
            Tier::Low => (4, Some(8)),
            Tier::Medium => (8, Some(16)),
            Tier::High => (16, Some(24)),
            Tier::Extreme => (24, None),
        }
    }

    /// The class of a GPU with this much memory (`None` below 4 GiB).
    pub fn of_memory(bytes: u64) -> Option<Tier> {
        // Cards are sold as "8 GB" and report a little less.
        let gib = (bytes + GIB / 2) / GIB;
        match gib {
            0..=3 => None,
            4..=7 => Some(Tier::Low),
            8..=15 => Some(Tier::Medium),
            16..=23 => Some(Tier::High),
            _ => Some(Tier::Extreme),
        }
    }
}

/// The size of a job as far as memory is concerned.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JobSize {
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub batch: u32,
    /// LLM context (prompt + answer) in tokens.
    pub context: u32,
}

impl Default for JobSize {
    /// What our stages ask of each kind by default: 1024×576 keyframes, 49-frame clips,
    /// batch 1, 4096-token contexts.
    fn default() -> Self {
        JobSize {
            width: 1024,
            height: 576,
            frames: 49,
            batch: 1,
            context: 4096,
        }
    }
}

/// Bytes per parameter of a stored dtype (GGUF block formats include their scales).
pub fn bytes_per_param(dtype: &str) -> f64 {
    match dtype.to_lowercase().as_str() {
        "f32" | "fp32" => 4.0,
        "f16" | "fp16" | "bf16" => 2.0,
        "q8_0" | "int8" | "fp8" => 1.0625,
        "q6_k" => 0.8203,
        "q5_0" | "q5_1" | "q5_k_m" | "q5_k" => 0.6875,
        "q4_1" => 0.625,
        "q4_0" | "q4_k_m" | "q4_k" | "q4_k_s" => 0.5625,
        "q3_k_m" | "q3_k" => 0.4297,
        "q2_k" => 0.3281,
        _ => 2.0,
    }
}

/// Weights as they sit on the GPU: quantized formats stay packed; f32 checkpoints run in f16.
fn weights_on_gpu(m: &ModelEntry) -> u64 {
    let w = m.weight_bytes();
    match m.dtype.to_lowercase().as_str() {
        "f32" | "fp32" => w / 2,
        _ => w,
    }
}

/// Activation memory per megapixel of output per image, by architecture (fp16).
fn act_per_megapixel(arch: &str) -> u64 {
    match arch {
        "sd15" | "sd21" | "sd-turbo" => 1600 * MIB,
        "sdxl" | "sdxl-turbo" | "sdxl-refiner" => 2200 * MIB,
        "flux" => 3500 * MIB,
        // Video diffusion works on a latent per frame; per frame megapixel.
        "ltxv" => 180 * MIB,
        "wan" => 400 * MIB,
        "animatediff" => 900 * MIB,
        "svd" => 600 * MIB,
        "realesrgan" => 700 * MIB,
        // SRVGGNetCompact: 64 channels at the input's resolution, upsampled only at the end.
        "realesrgan-compact" => 200 * MIB,
        "rife" => 300 * MIB,
        _ => 1500 * MIB,
    }
}

/// GPU memory for `m` running a job of size `job`.
pub fn estimate(m: &ModelEntry, job: &JobSize) -> u64 {
    if let (ModelKind::Video, Some(v)) = (m.kind, &m.video) {
        let guided = guided_by_default(m);
        let (transformer, decode) = video_estimate_facts(
            v,
            guided,
            job.frames,
            job.width,
            job.height,
            Some(DecodeTiling::DEFAULT),
        );
        return video_peak(v, transformer, decode);
    }
    let overhead = OVERHEAD;
    let weights = weights_on_gpu(m);
    let mp = f64::from(job.width) * f64::from(job.height) / 1.0e6;
    let batch = u64::from(job.batch.max(1));
    let act = match m.kind {
        ModelKind::Llm | ModelKind::Vlm => {
            // K and V (f16) per layer per token ≈ 16 KiB per billion parameters with
            // grouped-query attention, plus the prompt's activations.
            let billions = m.params.unwrap_or(weights) as f64 / 1.0e9;
            let kv = (16.0 * 1024.0 * billions.max(0.1)) as u64 * u64::from(job.context);
            kv * batch + 256 * MIB
        }
        ModelKind::Image | ModelKind::Upscale => {
            (act_per_megapixel(&m.arch) as f64 * mp) as u64 * batch
        }
        ModelKind::Video => {
            (act_per_megapixel(&m.arch) as f64 * mp) as u64 * u64::from(job.frames.max(1)) * batch
        }
        // Interpolation looks at one pair of frames at a time.
        ModelKind::Interpolation => (act_per_megapixel(&m.arch) as f64 * mp) as u64 * 2 * batch,
        ModelKind::Asr => 600 * MIB * batch,
        ModelKind::Tts => 200 * MIB * batch,
    };
    overhead + weights + act
}

/// How the VAE decode is cut: windows of `frames` output frames decoded one after the other
/// (the causal decoder carries its state across windows) and, in space, `tile`×`tile`-pixel
/// tiles (blended at their overlap) or whole frames (`tile: None`). Memory follows the window
/// and the tile, not the clip's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeTiling {
    /// Tile side in output pixels (`None`: whole frames).
    pub tile: Option<u32>,
    /// Output frames decoded at once.
    pub frames: u32,
}

impl DecodeTiling {
    /// What the video engine decodes with by default (`reelsmith_video`'s
    /// `TileConfig::default()`): two latent frames (16 output frames) at a time, whole frames.
    /// Change it together with the engine's tiling.
    pub const DEFAULT: DecodeTiling = DecodeTiling {
        tile: None,
        frames: 16,
    };
}

/// The engine's attention processes the queries in chunks whose scores (batch × heads × chunk
/// × keys, in bf16) stay under this budget (`reelsmith_video`'s `DEFAULT_ATTENTION_BUDGET`).
const ATTENTION_BUDGET: u64 = 512 * MIB;
/// Bytes of one attention score in the compute dtype (bf16).
const SCORE_BYTES: u64 = 2;
/// Copies of a chunk's scores alive at once: QKᵀ, QKᵀ + mask, its softmax.
const SCORE_COPIES: u64 = 3;

/// Transformer tokens of a clip: `((frames − 1) / temporal + 1) × ⌈H / (spatial·patch)⌉ ×
/// ⌈W / (spatial·patch)⌉` (LTX: 121 frames at 768×512 → 16 × 16 × 24 = 6144; Wan, patch 2:
/// 81 frames at 832×480 → 21 × 30 × 52 = 32760). Frame counts off the rule round up.
pub fn video_tokens(v: &VideoFacts, frames: u32, width: u32, height: u32) -> u64 {
    let t = u64::from(frames.max(1) - 1).div_ceil(u64::from(v.temporal_compression.max(1))) + 1;
    let s = u64::from(v.spatial_compression.max(1)) * u64::from(v.patch.max(1));
    t * u64::from(height).div_ceil(s) * u64::from(width).div_ceil(s)
}

/// Whether a model runs with classifier-free guidance by default (two branches per step):
/// yes unless its registry sampling says cfg ≤ 1 (distilled models). Unknown: yes.
fn guided_by_default(m: &ModelEntry) -> bool {
    m.sampling.as_ref().is_none_or(|s| s.cfg > 1.0)
}

/// GPU memory of a video model in its two phases, for a clip of `frames` at `width`×`height`
/// with the model's default guidance and the engine's decode tiling:
/// `(transformer pass, VAE decode)` in bytes; `None` for an entry without `[model.video]`.
///
/// Transformer pass (the T5 prompt encoding runs before it, and is not counted):
/// ```text
///   400 MiB overhead
/// + transformer_base_gb                        weights as they run (bf16)
/// + B × tokens × transformer_per_token_kib     one block's activations (blocks run in turn)
/// + 3 × min(B × heads × tokens² × 2 B, 512 MiB) one layer's attention scores: QKᵀ, masked,
///                                              softmax, in query chunks under the budget
/// ```
/// with `tokens` from [`video_tokens`] and `B` = 2 with classifier-free guidance (conditional
/// and unconditional branches batched), else 1.
///
/// VAE decode:
/// ```text
///   400 MiB overhead + decode_base_gb
/// + decode_per_pixel_frame_bytes × min(W, tile) × min(H, tile) × min(frames, window)
/// ```
/// [`DecodeTiling::DEFAULT`] decodes whole frames 16 at a time (no spatial tile); untiled
/// (`tiling: None` in [`video_estimate_with`]) the last factor is the whole clip.
///
/// Examples (768×512, 121 frames = 6144 tokens; scores over budget, so 1.5 GiB; the base is
/// every resident weight: transformer bf16 + T5-XXL bf16 + VAE f32):
/// transformer: LTX 2B distilled ≈ 0.4 + 17.2 + 0.375 + 1.5 = 19.5 GiB; 2B 0.9.5 with CFG
/// ≈ 19.8 GiB; 13B distilled ≈ 40.5 GiB; 13B dev with CFG ≈ 41.3 GiB. Decode, any of them:
/// ≈ 0.4 + 0.3 + 2.3 = 3.0 GiB (768×512 × 16 frames × 400 bytes) beyond the weights.
/// Peak ([`video_peak`]) of the 2B: 17.2 + 3.0 = 20.2 GiB.
pub fn video_estimate(m: &ModelEntry, frames: u32, width: u32, height: u32) -> Option<(u64, u64)> {
    video_estimate_with(
        m,
        frames,
        width,
        height,
        guided_by_default(m),
        Some(DecodeTiling::DEFAULT),
    )
}

/// [`video_estimate`] with the guidance and the decode tiling said.
pub fn video_estimate_with(
    m: &ModelEntry,
    frames: u32,
    width: u32,
    height: u32,
    guided: bool,
    tiling: Option<DecodeTiling>,
) -> Option<(u64, u64)> {
    let v = m.video.as_ref()?;
    Some(video_estimate_facts(
        v, guided, frames, width, height, tiling,
    ))
}

/// The formula of [`video_estimate`] on a model's facts (what a job's model reference
/// carries).
pub fn video_estimate_facts(
    v: &VideoFacts,
    guided: bool,
    frames: u32,
    width: u32,
    height: u32,
    tiling: Option<DecodeTiling>,
) -> (u64, u64) {
    let r = &v.vram;
    let branches: u64 = if guided && !v.sequential_guidance {
        2
    } else {
        1
    };
    let tokens = video_tokens(v, frames, width, height);
    let weights = (r.transformer_base_gb * GIB as f64) as u64;
    let per_token = (r.transformer_per_token_kib * KIB as f64) as u64;
    let activations = branches.saturating_mul(tokens).saturating_mul(per_token);
    let scores = branches
        .saturating_mul(u64::from(v.heads))
        .saturating_mul(tokens.saturating_mul(tokens))
        .saturating_mul(SCORE_BYTES)
        .min(ATTENTION_BUDGET)
        .saturating_mul(SCORE_COPIES);
    let transformer = OVERHEAD
        .saturating_add(weights)
        .saturating_add(activations)
        .saturating_add(scores);
    let (w, h, f) = match tiling {
        Some(t) => {
            let side = |x: u32| t.tile.map_or(x, |tile| x.min(tile.max(1)));
            (
                side(width),
                side(height),
                frames.max(1).min(t.frames.max(1)),
            )
        }
        None => (width, height, frames.max(1)),
    };
    // A decoder that streams latent frame by latent frame holds its own window, tiled or not.
    let f = r.decode_frames.map_or(f, |d| f.min(d.max(1)));
    let pixel_frames = u64::from(w) * u64::from(h) * u64::from(f);
    let decode = OVERHEAD
        + (r.decode_base_gb * GIB as f64) as u64
        + (r.decode_per_pixel_frame_bytes * pixel_frames as f64) as u64;
    (transformer, decode)
}

/// The most a video job holds at once: the transformer pass, or the decode while the
/// transformer's weights stay loaded (the loaded-model cache keeps them for the next clip) —
/// or, for a model whose components load one at a time, beside the VAE alone.
pub fn video_peak(v: &VideoFacts, transformer: u64, decode: u64) -> u64 {
    transformer.max(decode_holds(v).saturating_add(decode))
}

/// The weights on the device through the decode: the VAE's alone when the components are
/// loaded one at a time (`vram.vae_gb`), else every resident weight.
fn decode_holds(v: &VideoFacts) -> u64 {
    let gib = v.vram.vae_gb.unwrap_or(v.vram.transformer_base_gb);
    (gib * GIB as f64) as u64
}

/// Where a video model's transformer blocks live while it samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residency {
    /// Every weight on the device.
    Resident,
    /// `resident_blocks` of the transformer's blocks stay on the device; the others are kept
    /// in host memory and copied in one at a time, the next one while the current one runs.
    Streamed { resident_blocks: u32 },
}

/// How a video model runs on a device of a given capacity, and what it then needs at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoPlan {
    pub residency: Residency,
    /// Peak bytes on the device (transformer pass or decode, whichever is larger).
    pub peak: u64,
}

impl VideoPlan {
    /// "resident", or "streams 22 of 40 blocks from host memory".
    pub fn describe(&self, layers: u32) -> String {
        match self.residency {
            Residency::Resident => "resident".into(),
            Residency::Streamed { resident_blocks } => format!(
                "streams {} of {layers} blocks from host memory",
                layers.saturating_sub(resident_blocks)
            ),
        }
    }
}

/// How a video model runs within `capacity` bytes for a clip of `frames` at `width`×`height`:
/// resident when [`video_peak`] fits; otherwise, for a model whose blocks can stream
/// (`vram.block_gb`), as many blocks resident as fit beside two in flight (the one running and
/// the one being copied in); `None` when even a fully streamed transformer does not fit.
///
/// Streamed with `k` of `L` blocks resident, the transformer pass needs its resident estimate
/// less `(L − k)` blocks plus two blocks in flight; the decode is as in [`video_peak`] (block
/// streaming is for models whose components load one at a time, so it holds the VAE alone).
pub fn video_plan(
    v: &VideoFacts,
    guided: bool,
    frames: u32,
    width: u32,
    height: u32,
    capacity: u64,
) -> Option<VideoPlan> {
    let (transformer, decode) = video_estimate_facts(
        v,
        guided,
        frames,
        width,
        height,
        Some(DecodeTiling::DEFAULT),
    );
    let resident = video_peak(v, transformer, decode);
    if resident <= capacity {
        return Some(VideoPlan {
            residency: Residency::Resident,
            peak: resident,
        });
    }
    let block = (v.vram.block_gb? * GIB as f64) as u64;
    let layers = v.layers;
    let decode_peak = decode_holds(v).saturating_add(decode);
    let peak_with = |k: u32| {
        let streamed = u64::from(layers - k) * block;
        let in_flight = 2 * block.min(streamed);
        (transformer - streamed + in_flight).max(decode_peak)
    };
    (0..layers)
        .rev()
        .map(|k| (k, peak_with(k)))
        .find(|&(_, peak)| peak <= capacity)
        .map(|(k, peak)| VideoPlan {
            residency: Residency::Streamed { resident_blocks: k },
            peak,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::registry::ModelFile;

    fn entry(kind: ModelKind, arch: &str, dtype: &str, bytes: u64) -> ModelEntry {
        ModelEntry {
            id: "x".into(),
            name: "x".into(),
            kind,
            repo: "a/b".into(),
            revision: "main".into(),
            license: "mit".into(),
            arch: arch.into(),
            format: "safetensors".into(),
            params: None,
            dtype: dtype.into(),
            tier: Tier::Low,
            languages: vec![],
            source: String::new(),
            files: vec![ModelFile {
                path: "w".into(),
                size: Some(bytes),
                sha256: None,
            }],
            local: None,
            variant: None,
            requires: Vec::new(),
            sampling: None,
            video: None,
        }
    }

    #[test]
    fn tiers_follow_the_memory_classes() {
        assert_eq!(Tier::of_memory(2 * GIB), None);
        assert_eq!(Tier::of_memory(6 * GIB), Some(Tier::Low));
        assert_eq!(Tier::of_memory(8 * GIB - 300 * MIB), Some(Tier::Medium));
        assert_eq!(Tier::of_memory(12 * GIB), Some(Tier::Medium));
        assert_eq!(Tier::of_memory(24 * GIB - 500 * MIB), Some(Tier::Extreme));
        assert_eq!(Tier::of_memory(80 * GIB), Some(Tier::Extreme));
    }

    #[test]
    fn estimates_grow_with_the_job() {
        let sdxl = entry(ModelKind::Image, "sdxl", "f16", 6_900_000_000);
        let small = estimate(
            &sdxl,
            &JobSize {
                width: 512,
                height: 512,
                ..JobSize::default()
            },
        );
        let big = estimate(
            &sdxl,
            &JobSize {
                width: 1024,
                height: 1024,
                ..JobSize::default()
            },
        );
        let batch = estimate(
            &sdxl,
            &JobSize {
                width: 1024,
                height: 1024,
                batch: 4,
                ..JobSize::default()
            },
        );
        assert!(small > 6_900_000_000 && small < big && big < batch);
        // SDXL at 1024² in fp16 needs roughly 9–12 GiB.
        assert!((9 * GIB..13 * GIB).contains(&big), "{}", big / MIB);

        let llm = entry(ModelKind::Llm, "llama", "q4_k_m", 4_900_000_000);
        let short = estimate(
            &llm,
            &JobSize {
                context: 1024,
                ..JobSize::default()
            },
        );
        let long = estimate(
            &llm,
            &JobSize {
                context: 32768,
                ..JobSize::default()
            },
        );
        assert!(short < long);
        let f32w = entry(ModelKind::Asr, "whisper", "f32", 290_000_000);
        assert!(
            estimate(&f32w, &JobSize::default()) < 290_000_000 + GIB,
            "f32 runs as f16"
        );
    }

    #[test]
    fn recommendations_fit_the_gpu_and_prefer_the_largest() {
        let reg = crate::hub::Registry::embedded().unwrap();
        let job = JobSize::default();
        let small = recommend(reg.models(), Some(8 * GIB), &job);
        let big = recommend(reg.models(), Some(80 * GIB), &job);
        for r in &small {
            for (m, need, _) in &r.models {
                assert!(
                    *need <= 8 * GIB - 8 * GIB / 10,
                    "{} needs {} MiB",
                    m.id,
                    need / MIB
                );
                assert_eq!(m.kind, r.kind);
            }
            assert!(
                r.models.windows(2).all(|w| w[0].1 >= w[1].1),
                "largest first"
            );
        }
        let llm = |rs: &[Recommendation]| {
            rs.iter()
                .find(|r| r.kind == ModelKind::Llm)
                .and_then(|r| r.models.first().map(|(_, n, _)| *n))
                .unwrap_or(0)
        };
        let tiny = recommend(reg.models(), Some(4 * GIB), &job);
        assert!(
            llm(&big) > llm(&tiny),
            "an 80 GiB GPU gets a bigger LLM than a 4 GiB one"
        );
        let cpu = recommend(reg.models(), None, &job);
        let image = cpu.iter().find(|r| r.kind == ModelKind::Image).unwrap();
        assert!(image.models.is_empty() && image.note.is_some());
        let asr = cpu.iter().find(|r| r.kind == ModelKind::Asr).unwrap();
        assert!(
            !asr.models.is_empty(),
            "small Whisper models run on the CPU"
        );
    }

    fn wan(id: &str) -> ModelEntry {
        crate::hub::Registry::embedded()
            .unwrap()
            .get(id)
            .unwrap_or_else(|| panic!("{id} in the registry"))
            .clone()
    }

    #[test]
    fn wan_estimates_count_patches_and_one_branch_at_a_time() {
        let m = wan("wan2.1-t2v-1.3b");
        let v = m.video.as_ref().unwrap();
        // 81 frames at 832×480: 21 latent frames × 30 × 52 tokens (VAE 8×, patch 2×2).
        assert_eq!(video_tokens(v, 81, 832, 480), 21 * 30 * 52);
        let (t, d) = video_estimate(&m, 81, 832, 480).unwrap();
        let peak = video_peak(v, t, d) as f64 / GIB as f64;
        // The Wan2.1 README: 8.19 GB (7.63 GiB) for the 1.3B at 480p on an RTX 4090.
        assert!(
            (7.0..8.5).contains(&peak),
            "1.3B 832×480×81 peak {peak:.2} GiB"
        );
        // Guidance does not double the activations: the branches run in turn.
        let (solo, _) =
            video_estimate_with(&m, 81, 832, 480, false, Some(DecodeTiling::DEFAULT)).unwrap();
        assert_eq!(t, solo);
        // The decoder makes 4 frames at a time whatever the clip's length.
        let (_, d_long) = video_estimate(&m, 161, 832, 480).unwrap();
        assert_eq!(d, d_long);
    }

    #[test]
    fn a_14b_that_does_not_fit_streams_its_blocks() {
        let m = wan("wan2.1-i2v-14b-480p");
        let v = m.video.as_ref().unwrap();
        let on = |gib: u64| video_plan(v, true, 81, 832, 480, gib * GIB);
        let big = on(80).unwrap();
        assert_eq!(big.residency, Residency::Resident);
        let card = on(24).unwrap();
        let Residency::Streamed { resident_blocks } = card.residency else {
            panic!("a 24 GiB card streams the 14B: {card:?}");
        };
        assert!(
            card.peak <= 24 * GIB && resident_blocks < v.layers,
            "{card:?}"
        );
        assert!(card.describe(v.layers).contains("of 40 blocks"));
        // Less memory keeps fewer blocks resident; too little runs nothing.
        let small = on(16).unwrap();
        let Residency::Streamed {
            resident_blocks: fewer,
        } = small.residency
        else {
            panic!("{small:?}");
        };
        assert!(fewer < resident_blocks);
        assert!(on(4).is_none());
        // An LTX model has no streamable blocks: it fits or it does not.
        let ltx = ltx("ltxv-13b-0.9.8-distilled");
        assert!(video_plan(ltx.video.as_ref().unwrap(), false, 121, 768, 512, 24 * GIB).is_none());
    }

    #[test]
    fn recommend_says_how_a_wan_model_runs() {
        let reg = crate::hub::Registry::embedded().unwrap();
        let job = JobSize {
            width: 832,
            height: 480,
            frames: 81,
            ..JobSize::default()
        };
        let recs = recommend(reg.models(), Some(24 * GIB), &job);
        let video = recs.iter().find(|r| r.kind == ModelKind::Video).unwrap();
        assert!(!video.models.is_empty());
        for (m, need, how) in &video.models {
            assert!(m.video.is_some(), "{} generates nothing on its own", m.id);
            assert!(*need <= 24 * GIB - 24 * GIB / 10, "{}", m.id);
            if m.arch == "wan" && m.video.as_ref().unwrap().hidden >= 5120 {
                assert!(
                    how.as_deref().is_some_and(|h| h.contains("streams")),
                    "{}",
                    m.id
                );
            }
        }
        assert!(
            video
                .models
                .iter()
                .any(|(m, _, how)| m.arch == "wan" && how.is_some()),
            "a 24 GiB card runs a 14B Wan by streaming: {:?}",
            video
                .models
                .iter()
                .map(|(m, _, h)| (&m.id, h))
                .collect::<Vec<_>>()
        );
    }

    fn ltx(id: &str) -> ModelEntry {
        crate::hub::Registry::embedded()
            .unwrap()
            .get(id)
            .unwrap_or_else(|| panic!("{id} is in the registry"))
            .clone()
    }

    #[test]
    fn the_transformer_estimate_grows_with_frames_and_area() {
        let m = ltx("ltxv-2b-0.9.8-distilled");
        let est = |f, w, h| video_estimate(&m, f, w, h).unwrap();
        let mut last = 0;
        for frames in [9, 17, 49, 97, 121, 257] {
            let (t, _) = est(frames, 768, 512);
            assert!(t > last, "{frames} frames: {t} after {last}");
            last = t;
        }
        let mut last = 0;
        for (w, h) in [(256, 256), (512, 320), (768, 512), (1216, 704), (1280, 720)] {
            let (t, _) = est(49, w, h);
            assert!(t > last, "{w}×{h}: {t} after {last}");
            last = t;
        }
        // The weights alone are a floor; guidance doubles the activations.
        let (t, _) = est(9, 32, 32);
        assert!(t > 17 * GIB && t < 19 * GIB, "{}", t / MIB);
        let (plain, _) = video_estimate_with(&m, 121, 768, 512, false, None).unwrap();
        let (guided, _) = video_estimate_with(&m, 121, 768, 512, true, None).unwrap();
        assert!(guided > plain, "{} vs {}", guided / MIB, plain / MIB);
        // The attention scores are chunked under the engine's budget: long clips grow by their
        // activations, not by tokens².
        let (t121, _) = est(121, 768, 512);
        let (t241, _) = est(241, 768, 512);
        assert!(t241 - t121 < GIB, "{}", (t241 - t121) / MIB);
        // Tokens: (121 − 1)/8 + 1 = 16 latent frames of 16 × 24.
        assert_eq!(video_tokens(m.video.as_ref().unwrap(), 121, 768, 512), 6144);
        assert_eq!(video_tokens(m.video.as_ref().unwrap(), 120, 768, 500), 6144);
    }

    #[test]
    fn the_tiled_decode_is_bounded_by_the_tile_not_the_clip() {
        let m = ltx("ltxv-13b-0.9.8-distilled");
        let decode = |f, w, h, tiling| video_estimate_with(&m, f, w, h, false, tiling).unwrap().1;
        let tiles = Some(DecodeTiling {
            tile: Some(512),
            frames: 16,
        });
        let whole_frames = Some(DecodeTiling::DEFAULT);
        // Streamed in time: the clip's length does not count.
        for tiling in [tiles, whole_frames] {
            assert_eq!(decode(121, 768, 512, tiling), decode(257, 768, 512, tiling));
        }
        // Tiled in space: nor does its area; whole frames do grow with it.
        assert_eq!(decode(121, 768, 512, tiles), decode(121, 1280, 720, tiles));
        assert!(decode(121, 1280, 720, whole_frames) > decode(121, 768, 512, whole_frames));
        // Untiled grows with both.
        assert!(decode(257, 768, 512, None) > decode(121, 768, 512, None));
        assert!(decode(121, 1280, 720, None) > decode(121, 768, 512, None));
        // Small clips fit in one tile: the same as untiled.
        assert_eq!(decode(9, 256, 256, tiles), decode(9, 256, 256, None));
        let bound = decode(1000, 4096, 4096, tiles);
        assert!(bound < 4 * GIB, "{}", bound / MIB);
        assert!(decode(121, 768, 512, None) > 3 * bound);
    }

    #[test]
    fn ltx_examples_at_768x512x121() {
        let gib = |b: u64| b as f64 / GIB as f64;
        let cases = [
            ("ltxv-2b-0.9.8-distilled", 19.0, 20.0),
            ("ltx-video-2b", 19.3, 20.5),
            ("ltxv-13b-0.9.8-distilled", 40.0, 41.5),
            ("ltxv-13b-0.9.8-dev", 40.5, 42.5),
        ];
        for (id, lo, hi) in cases {
            let (t, d) = video_estimate(&ltx(id), 121, 768, 512).unwrap();
            assert!(
                (lo..hi).contains(&gib(t)),
                "{id}: transformer {:.2} GiB",
                gib(t)
            );
            assert!(
                (2.5..4.0).contains(&gib(d)),
                "{id}: decode {:.2} GiB",
                gib(d)
            );
        }
        // Resident weights (transformer bf16, T5-XXL bf16, VAE f32): 2B ~17.2 GiB, 13B ~37.9 GiB.
        let small = ltx("ltxv-2b-0.9.8-distilled").video.unwrap().vram;
        let big = ltx("ltxv-13b-0.9.8-dev").video.unwrap().vram;
        assert!(small.transformer_base_gb < 18.0 && big.transformer_base_gb > 35.0);
        // What admission uses: the larger of the two phases, with the weights resident.
        let m = ltx("ltxv-2b-0.9.8-distilled");
        let job = JobSize {
            width: 768,
            height: 512,
            frames: 121,
            ..JobSize::default()
        };
        let (t, d) = video_estimate(&m, 121, 768, 512).unwrap();
        assert_eq!(estimate(&m, &job), t.max(d + (17.2 * GIB as f64) as u64));
        // Without a [model.video] table: None, and the per-frame formula for `estimate`.
        let fp8 = ltx("ltx-video-2b-distilled-fp8");
        assert!(video_estimate(&fp8, 121, 768, 512).is_none());
        assert!(estimate(&fp8, &job) > fp8.weight_bytes());
    }

    #[test]
    fn dtype_widths() {
        assert_eq!(bytes_per_param("F16"), 2.0);
        assert!(bytes_per_param("q4_1") > bytes_per_param("q4_0"));
        assert!(bytes_per_param("q8_0") > 1.0);
    }
}

/// What to run on a machine: per kind, the models that fit, best (largest) first.
#[derive(Clone, Debug)]
pub struct Recommendation<'a> {
    pub kind: ModelKind,
    /// `(model, estimated bytes, how it runs)`, at most three; `how` is said only where it
    /// is not plain (a video model streaming its blocks from host memory).
    pub models: Vec<(&'a ModelEntry, u64, Option<String>)>,
    /// Why nothing fits, when nothing does.
    pub note: Option<String>,
}

/// Models that fit a GPU with `gpu_memory` bytes (the largest device; `None` = CPU only), for a
/// job of `job`'s size. A tenth of the memory is kept free as margin. On the CPU only small
/// quantized LLMs, Whisper up to small and TTS voices are practical.
pub fn recommend<'a>(
    models: &'a [ModelEntry],
    gpu_memory: Option<u64>,
    job: &JobSize,
) -> Vec<Recommendation<'a>> {
    ModelKind::ALL
        .iter()
        .map(|&kind| {
            let mut fits: Vec<(&ModelEntry, u64, Option<String>)> = models
                .iter()
                .filter(|m| m.kind == kind)
                .filter_map(|m| match gpu_memory {
                    Some(total) => fit_on(m, job, total - total / 10),
                    None => cpu_practical(m).then(|| (m, estimate(m, job), None)),
                })
                .collect();
            fits.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.id.cmp(&b.0.id)));
            fits.truncate(3);
            let note = fits.is_empty().then(|| match gpu_memory {
                Some(total) => format!(
                    "nothing in the registry fits {} GiB; the built-in engine runs instead",
                    total / GIB
                ),
                None => "needs a GPU; the built-in engine runs on the CPU instead".to_string(),
            });
            Recommendation {
                kind,
                models: fits,
                note,
            }
        })
        .collect()
}

/// Whether `m` runs a job of `job`'s size within `capacity` bytes, with what it then needs and,
/// for a video model that only fits by streaming its blocks, how.
fn fit_on<'a>(
    m: &'a ModelEntry,
    job: &JobSize,
    capacity: u64,
) -> Option<(&'a ModelEntry, u64, Option<String>)> {
    if m.kind == ModelKind::Video && m.video.is_none() {
        // Parts (encoders, tokenizers) and files the engines do not run (GGUF video
        // transformers) generate nothing on their own.
        return None;
    }
    if let (ModelKind::Video, Some(v)) = (m.kind, &m.video) {
        let plan = video_plan(
            v,
            guided_by_default(m),
            job.frames,
            job.width,
            job.height,
            capacity,
        )?;
        let how = (plan.residency != Residency::Resident).then(|| plan.describe(v.layers));
        return Some((m, plan.peak, how));
    }
    let need = estimate(m, job);
    (need <= capacity).then_some((m, need, None))
}

fn cpu_practical(m: &ModelEntry) -> bool {
    let w = m.weight_bytes();
    match m.kind {
        ModelKind::Llm => w <= 2 * GIB,
        ModelKind::Asr => w <= GIB,
        ModelKind::Tts => true,
        _ => false,
    }
}
