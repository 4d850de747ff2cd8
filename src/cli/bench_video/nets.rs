//! Which networks `bench video` builds and at what size: `--model` resolved to the transformer
//! and VAE configs (built-in names, the test fixture's tiny ones, registry entries), the checked
//! arguments, the configs written for diffusers, the seeded random weights (and counting the
//! parameters without allocating them), the clip's latent grid and the memory a run needs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use reelsmith_kit::noise::{mix64, SplitMix64};
use reelsmith_video::frames::FrameRule;
use reelsmith_video::ltx::load::Release;
use reelsmith_video::ltx::transformer::{LtxTransformer, LtxTransformerConfig};
use reelsmith_video::ltx::vae::{LtxVae, LtxVaeConfig, TileConfig};
use serde_json::{json, Value};

use super::measure::TEXT_TOKENS;
use super::VideoBenchArgs;
use crate::hub::Registry;

/// Standard deviation of the random weights.
const WEIGHT_STD: f32 = 0.02;

/// The fixture's tiny transformer (tests/fixtures/video/ltx.json → `transformer`).
const TINY_TRANSFORMER: &str = r#"{"activation_fn": "gelu-approximate", "attention_bias": true,
 "attention_head_dim": 8, "attention_out_bias": true, "caption_channels": 32,
 "cross_attention_dim": 16, "in_channels": 8, "norm_elementwise_affine": false,
 "norm_eps": 1e-06, "num_attention_heads": 2, "num_layers": 2, "out_channels": 8,
 "patch_size": 1, "patch_size_t": 1, "qk_norm": "rms_norm_across_heads"}"#;

/// The fixture's tiny 0.9.5-layout VAE (tests/fixtures/video/ltx.json → `vae."0.9.5"`).
const TINY_VAE: &str = r#"{"block_out_channels": [2, 4, 8, 16, 32],
 "decoder_block_out_channels": [8, 16, 32], "decoder_causal": false,
 "decoder_inject_noise": [false, false, false, false], "decoder_layers_per_block": [2, 1, 1, 1],
 "decoder_spatio_temporal_scaling": [true, true, true],
 "down_block_types": ["LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D",
   "LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D"],
 "downsample_type": ["spatial", "temporal", "spatiotemporal", "spatiotemporal"],
 "encoder_causal": true, "in_channels": 3, "latent_channels": 8,
 "layers_per_block": [1, 1, 2, 1, 1], "out_channels": 3, "patch_size": 2, "patch_size_t": 1,
 "resnet_norm_eps": 1e-06, "scaling_factor": 1.0, "spatial_compression_ratio": 16,
 "spatio_temporal_scaling": [true, true, true, true], "temporal_compression_ratio": 8,
 "timestep_conditioning": true, "upsample_factor": [2, 2, 2],
 "upsample_residual": [true, true, true]}"#;

/// The `[model.video]` facts of registry entry `model` of architecture `arch`, or an error
/// naming the nearest name and every choice (the built-in names first).
pub(super) fn registry_facts<'a>(
    reg: &'a Registry,
    model: &str,
    arch: &str,
    builtin: &[&str],
    what: &str,
    choices: &str,
) -> Result<
    (
        &'a crate::hub::ModelEntry,
        &'a crate::hub::registry::VideoFacts,
    ),
    String,
> {
    let valid = || {
        let mut v: Vec<String> = builtin.iter().map(|s| s.to_string()).collect();
        v.extend(
            reg.models()
                .iter()
                .filter(|m| m.arch == arch && m.video.is_some())
                .map(|m| m.id.clone()),
        );
        v
    };
    let Some(m) = reg.get(model) else {
        let names = valid();
        let near = nearest(model, &names);
        return Err(format!(
            "--model {model}: unknown; {}{choices} are {}",
            near.map(|n| format!("did you mean {n}? "))
                .unwrap_or_default(),
            names.join(", ")
        ));
    };
    match (&m.video, m.arch == arch) {
        (Some(f), true) => Ok((m, f)),
        _ => Err(format!(
            "--model {model}: not {what} with [model.video] facts; {choices} are {}",
            valid().join(", ")
        )),
    }
}

/// The networks a run builds.
#[derive(Clone, Debug, PartialEq)]
pub struct Nets {
    /// What the header calls them.
    pub label: String,
    pub transformer: LtxTransformerConfig,
    pub vae: LtxVaeConfig,
}

/// A checked `bench video` invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub nets: Nets,
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    pub steps: usize,
    pub rounds: usize,
}

/// The built-in names `--model` takes besides registry ids.
pub(super) const NAMES: [&str; 3] = ["ltxv-2b", "ltxv-13b", "tiny"];

fn vae_of(release: Release) -> LtxVaeConfig {
    use reelsmith_video::ltx::vae::LtxVaeLayout;
    match release.vae_layout() {
        LtxVaeLayout::V0_9_0 => LtxVaeConfig::v0_9_0(),
        LtxVaeLayout::V0_9_1 => LtxVaeConfig::v0_9_1(),
        LtxVaeLayout::V0_9_5 => LtxVaeConfig::v0_9_5(),
    }
}

/// `--model` → the networks' configs: a built-in name, else a registry entry's `[model.video]`
/// facts (the 2B or 13B transformer by its width, the VAE layout by its release).
pub fn resolve_model(model: &str, reg: &Registry) -> Result<Nets, String> {
    let release_nets = |label: &str, r: Release| Nets {
        label: label.to_string(),
        transformer: r.transformer_config(),
        vae: vae_of(r),
    };
    match model {
        "ltxv-2b" => return Ok(release_nets("LTX-Video 2B (0.9.5)", Release::V095)),
        "ltxv-13b" => return Ok(release_nets("LTX-Video 13B (0.9.5 VAE)", Release::V097)),
        "tiny" => {
            let t = LtxTransformerConfig::from_json(TINY_TRANSFORMER)
                .map_err(|e| format!("the tiny transformer config: {e}"))?;
            let v = LtxVaeConfig::from_json(TINY_VAE)
                .map_err(|e| format!("the tiny VAE config: {e}"))?;
            return Ok(Nets {
                label: "tiny (the test fixture's LTX, 0.9.5 VAE layout)".into(),
                transformer: t,
                vae: v,
            });
        }
        _ => {}
    }
    let (m, facts) = registry_facts(
        reg,
        model,
        "ltxv",
        &NAMES,
        "an LTX-Video model",
        "the choices",
    )?;
    let release = match (facts.size_class(), facts.version.as_str()) {
        ("13B", _) => Release::V097,
        (_, "0.9.0") => Release::V090,
        (_, "0.9.1") => Release::V091,
        _ => Release::V095,
    };
    let mut nets = release_nets(
        &format!(
            "{} ({} {}, v{})",
            m.id,
            "LTX-Video",
            facts.size_class(),
            facts.version
        ),
        release,
    );
    // The facts' own shape wins over the release's (an imported model says what it holds).
    let t = &mut nets.transformer;
    if facts.heads > 0 && facts.hidden > 0 && facts.hidden % facts.heads == 0 {
        t.num_attention_heads = facts.heads as usize;
        t.attention_head_dim = (facts.hidden / facts.heads) as usize;
        t.cross_attention_dim = facts.hidden as usize;
    }
    if facts.layers > 0 {
        t.num_layers = facts.layers as usize;
    }
    Ok(nets)
}

/// The name in `names` closest to `s` by edit distance, if it is reasonably close.
pub(super) fn nearest<'a>(s: &str, names: &'a [String]) -> Option<&'a str> {
    let d = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, &cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    let s = s.to_lowercase();
    names
        .iter()
        .map(|n| (d(&s, n), n))
        .min_by_key(|(k, _)| *k)
        .filter(|(k, n)| *k <= (n.len() / 2).max(2))
        .map(|(_, n)| n.as_str())
}

/// `WxH` (also `W×H`).
fn parse_size(size: &str) -> Result<(usize, usize), String> {
    size.trim()
        .to_ascii_lowercase()
        .split_once(['x', '×'])
        .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)))
        .ok_or_else(|| format!("--size {size}: write WIDTHxHEIGHT, multiples of 32 (e.g. 768x512)"))
}

/// Checks the arguments (the frame and size rules of LTX-Video, the model, the counts); the
/// error names the nearest valid values.
pub fn check(args: &VideoBenchArgs, reg: &Registry) -> Result<Plan, String> {
    let rule = FrameRule::LTX;
    let (width, height) = parse_size(&args.size)?;
    rule.check_size(width, height)
        .map_err(|e| format!("--size {}: {e}", args.size))?;
    rule.check_frames(args.frames)
        .map_err(|e| format!("--frames {}: {e}", args.frames))?;
    if args.steps == 0 || args.rounds == 0 || args.threads == 0 {
        return Err("--steps, --rounds and --threads must be at least 1".into());
    }
    let nets = resolve_model(&args.model, reg)?;
    Ok(Plan {
        nets,
        width,
        height,
        frames: args.frames,
        steps: args.steps,
        rounds: args.rounds,
    })
}

/// diffusers' `transformer/config.json` for `c` (what `LTXVideoTransformer3DModel(**config)`
/// takes).
pub fn transformer_json(c: &LtxTransformerConfig) -> Value {
    json!({
        "in_channels": c.in_channels,
        "out_channels": c.out_channels,
        "patch_size": c.patch_size,
        "patch_size_t": c.patch_size_t,
        "num_attention_heads": c.num_attention_heads,
        "attention_head_dim": c.attention_head_dim,
        "cross_attention_dim": c.cross_attention_dim,
        "num_layers": c.num_layers,
        "activation_fn": c.activation_fn,
        "qk_norm": c.qk_norm,
        "norm_elementwise_affine": c.norm_elementwise_affine,
        "norm_eps": c.norm_eps,
        "caption_channels": c.caption_channels,
        "attention_bias": c.attention_bias,
        "attention_out_bias": c.attention_out_bias,
    })
}

/// diffusers' `vae/config.json` for `c` (what `AutoencoderKLLTXVideo(**config)` takes).
pub fn vae_json(c: &LtxVaeConfig) -> Value {
    json!({
        "in_channels": c.in_channels,
        "out_channels": c.out_channels,
        "latent_channels": c.latent_channels,
        "block_out_channels": c.block_out_channels,
        "down_block_types": c.down_block_types,
        "decoder_block_out_channels": c.decoder_block_out_channels,
        "layers_per_block": c.layers_per_block,
        "decoder_layers_per_block": c.decoder_layers_per_block,
        "spatio_temporal_scaling": c.spatio_temporal_scaling,
        "decoder_spatio_temporal_scaling": c.decoder_spatio_temporal_scaling,
        "decoder_inject_noise": c.decoder_inject_noise,
        "downsample_type": c.downsample_type,
        "upsample_residual": c.upsample_residual,
        "upsample_factor": c.upsample_factor,
        "timestep_conditioning": c.timestep_conditioning,
        "patch_size": c.patch_size,
        "patch_size_t": c.patch_size_t,
        "resnet_norm_eps": c.resnet_norm_eps,
        "scaling_factor": c.scaling_factor,
        "encoder_causal": c.encoder_causal,
        "decoder_causal": c.decoder_causal,
        "spatial_compression_ratio": c.spatial_compression_ratio,
        "temporal_compression_ratio": c.temporal_compression_ratio,
    })
}

/// Weights made as the networks ask for them: biases 0, 1-D `*.weight` (norm scales) 1,
/// everything else uniform with standard deviation 0.02 from a per-tensor seeded stream
/// (diffusers' side draws the same distribution with torch's generator). In counting mode
/// nothing is allocated: each tensor is a broadcast zero, and only the elements are counted.
struct RandomWeights {
    seed: u64,
    threads: usize,
    count_only: bool,
    elements: Arc<AtomicU64>,
}

fn name_seed(seed: u64, name: &str) -> u64 {
    name.bytes()
        .fold(mix64(seed), |h, b| mix64(h ^ u64::from(b)))
}

impl RandomWeights {
    fn uniform(&self, shape: &Shape, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        let bound = WEIGHT_STD * 3f32.sqrt();
        let seed = name_seed(self.seed, name);
        if dev.is_cpu() {
            let n = shape.elem_count();
            let mut v = vec![0f32; n];
            const CHUNK: usize = 1 << 20;
            let fill = |(i, part): (usize, &mut [f32])| {
                let mut rng = SplitMix64::from_state(mix64(seed ^ (i as u64)));
                for x in part {
                    *x = rng.bipolar_f32() * bound;
                }
            };
            if n <= CHUNK || self.threads <= 1 {
                v.chunks_mut(CHUNK).enumerate().for_each(fill);
            } else {
                let chunks: Vec<(usize, &mut [f32])> = v.chunks_mut(CHUNK).enumerate().collect();
                let per = chunks.len().div_ceil(self.threads);
                let mut groups: Vec<Vec<(usize, &mut [f32])>> = Vec::new();
                let mut it = chunks.into_iter().peekable();
                while it.peek().is_some() {
                    groups.push(it.by_ref().take(per).collect());
                }
                std::thread::scope(|s| {
                    for g in groups {
                        s.spawn(move || g.into_iter().for_each(fill));
                    }
                });
            }
            Tensor::from_vec(v, shape, dev)
        } else {
            // curand, seeded once per run (see `build`).
            Tensor::rand(-bound, bound, shape.clone(), dev)
        }
    }
}

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.elements
            .fetch_add(s.elem_count() as u64, Ordering::Relaxed);
        if self.count_only {
            // One byte, broadcast: what a constructor copies (the VAE's kernel taps) costs a
            // byte per weight, and nothing else is allocated.
            return Tensor::zeros((), DType::U8, dev)?.broadcast_as(s);
        }
        if name.ends_with("bias") {
            Tensor::zeros(s, dtype, dev)
        } else if s.rank() == 1 && name.ends_with("weight") {
            Tensor::ones(s, dtype, dev)
        } else {
            self.uniform(&s, name, dev)?.to_dtype(dtype)
        }
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights: {name} was asked for without a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        // The VAE's latent statistics default to zeros and ones when absent, as in diffusers.
        !(name.ends_with("latents_mean") || name.ends_with("latents_std"))
    }
}

pub(super) fn var_builder(
    seed: u64,
    threads: usize,
    count_only: bool,
    dtype: DType,
    dev: &Device,
) -> (VarBuilder<'static>, Arc<AtomicU64>) {
    let elements = Arc::new(AtomicU64::new(0));
    let backend = RandomWeights {
        seed,
        threads,
        count_only,
        elements: elements.clone(),
    };
    (
        VarBuilder::from_backend(Box::new(backend), dtype, dev.clone()),
        elements,
    )
}

/// Parameters of the transformer and the VAE, counted without allocating the transformer (the
/// VAE's convolutions split their kernels as they are built, so its count costs a transient
/// byte per VAE weight).
pub(super) fn count_params(nets: &Nets, dev: &Device) -> Result<(u64, u64), String> {
    let (vb, n) = var_builder(0, 1, true, DType::F32, dev);
    drop(LtxTransformer::new(vb, &nets.transformer).map_err(|e| format!("transformer: {e}"))?);
    let t = n.load(Ordering::Relaxed);
    let (vb, n) = var_builder(0, 1, true, DType::F32, dev);
    drop(LtxVae::new(vb, &nets.vae).map_err(|e| format!("VAE: {e}"))?);
    Ok((t, n.load(Ordering::Relaxed)))
}

/// The latent grid of the clip: (frames, height, width).
pub(super) fn grid(plan: &Plan) -> (usize, usize, usize) {
    let tc = plan.nets.vae.temporal_compression();
    let sc = plan.nets.vae.spatial_compression();
    (
        (plan.frames - 1) / tc + 1,
        plan.height / sc,
        plan.width / sc,
    )
}

/// Bytes a run holds at its peak: the weights plus the larger of the step's and the decode's
/// working sets (a generous estimate, to refuse a run that cannot fit before allocating it).
pub(super) fn estimate_bytes(plan: &Plan, params: (u64, u64), tdtype: DType) -> u64 {
    let tb = tdtype.size_in_bytes() as u64;
    let weights = params.0 * tb + params.1 * 4;
    let (f, h, w) = grid(plan);
    let s = (f * h * w) as u64;
    let t = &plan.nets.transformer;
    let d = t.inner_dim() as u64;
    let heads = t.num_attention_heads as u64;
    let step = 2 * s * d * tb * 24
        + (2 * heads * s * s * tb)
            .min(reelsmith_video::ltx::transformer::DEFAULT_ATTENTION_BUDGET as u64)
        + 2 * TEXT_TOKENS as u64 * (t.caption_channels as u64 + d) * tb * 4;
    // The decoder's last stage: ~800 bytes per output pixel and frame in f32, for the frames of
    // one streamed chunk (two latent frames: up to 17).
    let chunk_frames = (TileConfig::default().frames * 8 + 1).min(plan.frames) as u64;
    let decode = 800 * (plan.width * plan.height) as u64 * chunk_frames;
    weights + step.max(decode) + (512 << 20)
}

pub(super) fn mem_available() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| crate::gpu::cpu::parse_mem_available(&t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn args(model: &str, size: &str, frames: usize) -> VideoBenchArgs {
        VideoBenchArgs {
            model: model.into(),
            size: size.into(),
            frames,
            device: "cpu".into(),
            steps: 3,
            rounds: 2,
            threads: 2,
            python: None,
            no_reference: true,
            wan: Default::default(),
        }
    }

    #[test]
    fn arguments_are_checked_and_errors_name_the_nearest_valid_values() {
        let reg = Registry::load(None).unwrap();
        let p = check(&args("ltxv-2b", "768x512", 97), &reg).unwrap();
        assert_eq!((p.width, p.height, p.frames), (768, 512, 97));
        assert_eq!(p.nets.transformer, LtxTransformerConfig::ltxv_2b());
        assert_eq!(p.nets.vae, LtxVaeConfig::v0_9_5());
        assert_eq!(grid(&p), (13, 16, 24));

        let e = check(&args("ltxv-2b", "768x512", 100), &reg).unwrap_err();
        assert!(
            e.contains("97") && e.contains("105") && e.contains("8k+1"),
            "{e}"
        );
        let e = check(&args("ltxv-2b", "768x512", 4), &reg).unwrap_err();
        assert!(e.contains("nearest valid counts are 9"), "{e}");
        let e = check(&args("ltxv-2b", "770x500", 9), &reg).unwrap_err();
        assert!(
            e.contains("multiples of 32") && e.contains("768×512"),
            "{e}"
        );
        let e = check(&args("ltxv-2b", "wide", 9), &reg).unwrap_err();
        assert!(e.contains("WIDTHxHEIGHT"), "{e}");
        let e = check(&args("ltxv-2c", "64x64", 9), &reg).unwrap_err();
        assert!(e.contains("did you mean ltxv-2b?"), "{e}");
        assert!(e.contains("tiny") && e.contains("ltx-video-2b"), "{e}");
        let e = check(&args("sd15", "64x64", 9), &reg).unwrap_err();
        assert!(e.contains("not an LTX-Video model"), "{e}");
        let mut a = args("tiny", "64x64", 9);
        a.steps = 0;
        assert!(check(&a, &reg).unwrap_err().contains("--steps"));
    }

    #[test]
    fn registry_ids_map_to_the_2b_or_13b_networks() {
        let reg = Registry::load(None).unwrap();
        let two = resolve_model("ltx-video-2b", &reg).unwrap();
        assert_eq!(two.transformer, LtxTransformerConfig::ltxv_2b());
        assert_eq!(two.vae, LtxVaeConfig::v0_9_5());
        let big = resolve_model("ltxv-13b-0.9.8-dev", &reg).unwrap();
        assert_eq!(big.transformer, LtxTransformerConfig::ltxv_13b());
        assert_eq!(big.vae, LtxVaeConfig::v0_9_5());
        let d = resolve_model("ltxv-2b-0.9.8-distilled", &reg).unwrap();
        assert_eq!(d.transformer, LtxTransformerConfig::ltxv_2b());
        assert_eq!(
            resolve_model("ltxv-13b", &reg).unwrap().transformer,
            LtxTransformerConfig::ltxv_13b()
        );
    }

    #[test]
    fn the_tiny_configs_are_the_fixtures() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/video/ltx.json");
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let reg = Registry::load(None).unwrap();
        let tiny = resolve_model("tiny", &reg).unwrap();
        let t = LtxTransformerConfig::from_json(&fx["transformer"].to_string()).unwrap();
        let v = LtxVaeConfig::from_json(&fx["vae"]["0.9.5"].to_string()).unwrap();
        assert_eq!((tiny.transformer, tiny.vae), (t, v));
    }

    #[test]
    fn configs_written_for_diffusers_read_back_the_same() {
        for t in [
            LtxTransformerConfig::ltxv_2b(),
            LtxTransformerConfig::ltxv_13b(),
            LtxTransformerConfig::from_json(TINY_TRANSFORMER).unwrap(),
        ] {
            let back = LtxTransformerConfig::from_json(&transformer_json(&t).to_string()).unwrap();
            assert_eq!(back, t);
        }
        for v in [
            LtxVaeConfig::v0_9_0(),
            LtxVaeConfig::v0_9_1(),
            LtxVaeConfig::v0_9_5(),
            LtxVaeConfig::from_json(TINY_VAE).unwrap(),
        ] {
            assert_eq!(
                LtxVaeConfig::from_json(&vae_json(&v).to_string()).unwrap(),
                v
            );
        }
    }

    #[test]
    fn random_weights_are_seeded_counted_and_shaped_like_diffusers_init() {
        let dev = Device::Cpu;
        let (vb, n) = var_builder(3, 2, false, DType::F32, &dev);
        let w = vb.get((3000, 700), "a.weight").unwrap();
        let again = var_builder(3, 1, false, DType::F32, &dev)
            .0
            .get((3000, 700), "a.weight")
            .unwrap();
        let (a, b): (Vec<f32>, Vec<f32>) = (
            w.flatten_all().unwrap().to_vec1().unwrap(),
            again.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert_eq!(
            a, b,
            "the same seed gives the same weights whatever the threads"
        );
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let std = (a.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / a.len() as f32).sqrt();
        assert!(
            mean.abs() < 1e-3 && (std - WEIGHT_STD).abs() < 1e-3,
            "{mean} {std}"
        );
        let bias = vb.get(5, "a.bias").unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(bias, vec![0.0; 5]);
        let norm = vb
            .get(4, "norm_q.weight")
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(norm, vec![1.0; 4]);
        assert_eq!(n.load(Ordering::Relaxed), 3000 * 700 + 9);

        // Counting the tiny networks gives diffusers' parameter counts (the fixture's run of
        // scripts/bench_ref.py video reports 16056 and 402477).
        let reg = Registry::load(None).unwrap();
        let tiny = resolve_model("tiny", &reg).unwrap();
        assert_eq!(count_params(&tiny, &dev).unwrap(), (16_056, 402_477));
    }
}
