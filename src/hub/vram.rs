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

use super::registry::{ModelEntry, ModelKind};

mod video;
use video::guided_by_default;
pub use video::{
    video_estimate, video_estimate_facts, video_estimate_with, video_peak, video_plan,
    video_tokens, DecodeTiling, Residency, VideoPlan,
};

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
