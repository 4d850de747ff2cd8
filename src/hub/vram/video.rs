//! The memory model of a video model with a `[model.video]` table, in two phases: the
//! transformer pass (weights + activations per token + one layer's attention scores) and the
//! VAE decode (streamed in time, tiled in space: its memory follows the tile, not the clip's
//! length); and, for models whose blocks can stream from host memory, how many stay resident.

use super::{GIB, KIB, MIB, OVERHEAD};
use crate::hub::registry::{ModelEntry, VideoFacts};

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
pub(super) fn guided_by_default(m: &ModelEntry) -> bool {
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

    fn entry(id: &str) -> ModelEntry {
        crate::hub::Registry::embedded()
            .unwrap()
            .get(id)
            .unwrap_or_else(|| panic!("{id} is in the registry"))
            .clone()
    }

    #[test]
    fn wan_estimates_count_patches_and_one_branch_at_a_time() {
        let m = entry("wan2.1-t2v-1.3b");
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
        let m = entry("wan2.1-i2v-14b-480p");
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
        let ltx = entry("ltxv-13b-0.9.8-distilled");
        assert!(video_plan(ltx.video.as_ref().unwrap(), false, 121, 768, 512, 24 * GIB).is_none());
    }

    #[test]
    fn the_transformer_estimate_grows_with_frames_and_area() {
        let m = entry("ltxv-2b-0.9.8-distilled");
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
        let m = entry("ltxv-13b-0.9.8-distilled");
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
}
