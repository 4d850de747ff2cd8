//! Random-weight checks of the transformer's invariants (parity with diffusers is in
//! `tests/transformer_parity.rs`).

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::*;

/// Deterministic normal draws (xorshift64* + Box–Muller), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((v >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }

    fn tensor(&mut self, shape: &[usize], std: f32, mean: f32) -> Result<Tensor> {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| mean + std * self.normal()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
    }
}

fn tiny() -> LtxTransformerConfig {
    LtxTransformerConfig {
        in_channels: 8,
        out_channels: Some(6),
        num_attention_heads: 2,
        attention_head_dim: 8,
        cross_attention_dim: 16,
        num_layers: 2,
        caption_channels: 12,
        ..LtxTransformerConfig::default()
    }
}

/// The diffusers-named random weights of `cfg` (linear weights scaled by 1/√fan-in, norm
/// weights around 1, the rest around 0).
fn random_weights(cfg: &LtxTransformerConfig, seed: u64) -> HashMap<String, Tensor> {
    // Build once against a VarMap to learn every name and shape the model asks for.
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    LtxTransformer::new(vb, cfg).expect("tiny model builds");
    let mut rng = Rng(seed);
    let data = map.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let dims = data[name].dims().to_vec();
            let t = if name.contains("norm") {
                rng.tensor(&dims, 0.1, 1.0)
            } else if dims.len() == 2 && name.ends_with(".weight") {
                rng.tensor(&dims, 1.0 / (dims[1] as f32).sqrt(), 0.0)
            } else {
                rng.tensor(&dims, 0.2, 0.0)
            };
            (name.clone(), t.expect("random tensor"))
        })
        .collect()
}

fn model(cfg: &LtxTransformerConfig, weights: &HashMap<String, Tensor>) -> LtxTransformer {
    let vb = VarBuilder::from_tensors(weights.clone(), DType::F32, &Device::Cpu);
    LtxTransformer::new(vb, cfg).expect("tiny model loads")
}

const B: usize = 2;
const FRAMES: usize = 2;
const HEIGHT: usize = 3;
const WIDTH: usize = 2;
const S: usize = FRAMES * HEIGHT * WIDTH;
const L: usize = 5;
const SCALE: (f64, f64, f64) = (8.0 / 25.0, 32.0, 32.0);

fn grid() -> Positions {
    Positions::Grid {
        frames: FRAMES,
        height: HEIGHT,
        width: WIDTH,
        rope_interpolation_scale: SCALE,
    }
}

struct Inputs {
    hidden: Tensor,
    caption: Tensor,
    mask: Tensor,
    timestep: Tensor,
}

fn inputs(cfg: &LtxTransformerConfig) -> Result<Inputs> {
    let mut rng = Rng(7);
    Ok(Inputs {
        hidden: rng.tensor(&[B, S, cfg.in_channels], 1.0, 0.0)?,
        caption: rng.tensor(&[B, L, cfg.caption_channels], 1.0, 0.0)?,
        mask: Tensor::new(
            &[[1f32, 1., 1., 0., 0.], [1., 1., 1., 1., 1.]],
            &Device::Cpu,
        )?,
        timestep: Tensor::new(&[950f32, 310.5], &Device::Cpu)?,
    })
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

#[test]
fn output_has_the_token_shape() -> Result<()> {
    let cfg = tiny();
    let m = model(&cfg, &random_weights(&cfg, 1));
    let x = inputs(&cfg)?;
    let out = m.forward(&x.hidden, &x.caption, &x.timestep, Some(&x.mask), &grid())?;
    assert_eq!(out.dims(), &[B, S, 6]);
    assert_eq!(out.dtype(), DType::F32);
    let v = out.flatten_all()?.to_vec1::<f32>()?;
    assert!(v.iter().all(|x| x.is_finite()));
    // [B, 1] timesteps are per sample too.
    let col = x.timestep.unsqueeze(1)?;
    let out2 = m.forward(&x.hidden, &x.caption, &col, Some(&x.mask), &grid())?;
    assert_eq!(max_diff(&out, &out2)?, 0.0);
    Ok(())
}

#[test]
fn equal_per_token_timesteps_are_a_per_sample_timestep() -> Result<()> {
    let cfg = tiny();
    let m = model(&cfg, &random_weights(&cfg, 2));
    let x = inputs(&cfg)?;
    let per_sample = m.forward(&x.hidden, &x.caption, &x.timestep, Some(&x.mask), &grid())?;
    let per_token = x
        .timestep
        .unsqueeze(1)?
        .broadcast_as((B, S))?
        .contiguous()?;
    let out = m.forward(&x.hidden, &x.caption, &per_token, Some(&x.mask), &grid())?;
    let d = max_diff(&per_sample, &out)?;
    assert!(d <= 1e-5, "max|Δ| {d}");
    // A token with its own timestep changes the output.
    let mut ts = per_token.to_vec2::<f32>()?;
    ts[0][0] = 0.0;
    let other = m.forward(
        &x.hidden,
        &x.caption,
        &Tensor::new(ts, &Device::Cpu)?,
        Some(&x.mask),
        &grid(),
    )?;
    assert!(max_diff(&per_sample, &other)? > 1e-4);
    Ok(())
}

#[test]
fn coords_of_the_grid_give_the_grid_output() -> Result<()> {
    let cfg = tiny();
    let m = model(&cfg, &random_weights(&cfg, 3));
    let x = inputs(&cfg)?;
    let want = m.forward(&x.hidden, &x.caption, &x.timestep, Some(&x.mask), &grid())?;
    // The condition pipeline's video_coords: pixel/frame units, normalised inside the model.
    let (st, sh, sw) = (SCALE.0 as f32, SCALE.1 as f32, SCALE.2 as f32);
    let mut c = vec![Vec::new(), Vec::new(), Vec::new()];
    for f in 0..FRAMES {
        for h in 0..HEIGHT {
            for w in 0..WIDTH {
                c[0].push(f as f32 * st);
                c[1].push(h as f32 * sh);
                c[2].push(w as f32 * sw);
            }
        }
    }
    let coords = Tensor::new(c, &Device::Cpu)?.unsqueeze(0)?;
    let got = m.forward(
        &x.hidden,
        &x.caption,
        &x.timestep,
        Some(&x.mask),
        &Positions::Coords(coords.clone()),
    )?;
    assert_eq!(max_diff(&want, &got)?, 0.0);
    // Per-sample coords (batch 2) are the same as one shared row.
    let both = Tensor::cat(&[&coords, &coords], 0)?;
    let got2 = m.forward(
        &x.hidden,
        &x.caption,
        &x.timestep,
        Some(&x.mask),
        &Positions::Coords(both),
    )?;
    assert_eq!(max_diff(&want, &got2)?, 0.0);
    Ok(())
}

#[test]
fn query_chunked_attention_gives_the_same_output() -> Result<()> {
    let cfg = tiny();
    let weights = random_weights(&cfg, 4);
    let whole = model(&cfg, &weights);
    let mut chunked = model(&cfg, &weights);
    // One query row of self-attention scores is B·H·S·4 = 192 bytes: chunks of 5 rows.
    chunked.set_attention_budget(5 * B * 2 * S * 4);
    let x = inputs(&cfg)?;
    let a = whole.forward(&x.hidden, &x.caption, &x.timestep, Some(&x.mask), &grid())?;
    let b = chunked.forward(&x.hidden, &x.caption, &x.timestep, Some(&x.mask), &grid())?;
    let d = max_diff(&a, &b)?;
    assert!(d <= 1e-6, "max|Δ| {d}");
    Ok(())
}

#[test]
fn padded_caption_tokens_are_ignored() -> Result<()> {
    let cfg = tiny();
    let m = model(&cfg, &random_weights(&cfg, 5));
    let x = inputs(&cfg)?;
    let want = m.forward(&x.hidden, &x.caption, &x.timestep, Some(&x.mask), &grid())?;
    // Change the two padded tokens of sample 0.
    let mut rng = Rng(99);
    let noise = rng.tensor(&[1, 2, cfg.caption_channels], 5.0, 0.0)?;
    let s0 = Tensor::cat(
        &[&x.caption.get(0)?.narrow(0, 0, 3)?.unsqueeze(0)?, &noise],
        1,
    )?;
    let caption = Tensor::cat(&[&s0, &x.caption.narrow(0, 1, 1)?], 0)?;
    let got = m.forward(&x.hidden, &caption, &x.timestep, Some(&x.mask), &grid())?;
    assert!(max_diff(&want, &got)? <= 1e-6);
    // Without the mask they count.
    let a = m.forward(&x.hidden, &x.caption, &x.timestep, None, &grid())?;
    let b = m.forward(&x.hidden, &caption, &x.timestep, None, &grid())?;
    assert!(max_diff(&a, &b)? > 1e-4);
    Ok(())
}

#[test]
fn bad_inputs_are_errors() -> Result<()> {
    let cfg = tiny();
    let m = model(&cfg, &random_weights(&cfg, 6));
    let x = inputs(&cfg)?;
    let three = Tensor::new(&[1f32, 2., 3.], &Device::Cpu)?;
    assert!(m
        .forward(&x.hidden, &x.caption, &three, Some(&x.mask), &grid())
        .is_err());
    let wrong_grid = Positions::Grid {
        frames: 3,
        height: HEIGHT,
        width: WIDTH,
        rope_interpolation_scale: SCALE,
    };
    assert!(m
        .forward(&x.hidden, &x.caption, &x.timestep, None, &wrong_grid)
        .is_err());
    let coords = Tensor::zeros((B, 2, S), DType::F32, &Device::Cpu)?;
    assert!(m
        .forward(
            &x.hidden,
            &x.caption,
            &x.timestep,
            None,
            &Positions::Coords(coords)
        )
        .is_err());
    let mask = Tensor::ones((B, L + 1), DType::F32, &Device::Cpu)?;
    assert!(m
        .forward(&x.hidden, &x.caption, &x.timestep, Some(&mask), &grid())
        .is_err());
    assert!(m
        .forward(&x.caption, &x.caption, &x.timestep, None, &grid())
        .is_err());
    Ok(())
}

#[test]
fn configs_of_the_released_models() {
    let b2 = LtxTransformerConfig::ltxv_2b();
    assert_eq!((b2.num_layers, b2.inner_dim()), (28, 2048));
    assert_eq!((b2.num_attention_heads, b2.attention_head_dim), (32, 64));
    assert_eq!(
        (b2.in_channels, b2.out_channels(), b2.caption_channels),
        (128, 128, 4096)
    );
    assert_eq!(b2.cross_attention_dim, 2048);
    b2.validate().unwrap();
    let b13 = LtxTransformerConfig::ltxv_13b();
    assert_eq!((b13.num_layers, b13.inner_dim()), (48, 4096));
    assert_eq!((b13.num_attention_heads, b13.attention_head_dim), (32, 128));
    assert_eq!(b13.cross_attention_dim, 4096);
    b13.validate().unwrap();

    // The 13B repo's config.json (fields as diffusers writes them).
    let json = r#"{"_class_name": "LTXVideoTransformer3DModel", "_diffusers_version": "0.34.0",
        "activation_fn": "gelu-approximate", "attention_bias": true, "attention_head_dim": 128,
        "attention_out_bias": true, "caption_channels": 4096, "cross_attention_dim": 4096,
        "in_channels": 128, "norm_elementwise_affine": false, "norm_eps": 1e-06,
        "num_attention_heads": 32, "num_layers": 48, "out_channels": 128, "patch_size": 1,
        "patch_size_t": 1, "qk_norm": "rms_norm_across_heads"}"#;
    assert_eq!(LtxTransformerConfig::from_json(json).unwrap(), b13);
    // Missing fields take diffusers' defaults; a null out_channels is in_channels.
    let sparse = LtxTransformerConfig::from_json(r#"{"out_channels": null}"#).unwrap();
    assert_eq!(sparse.out_channels(), 128);
    assert_eq!(sparse.num_layers, 28);

    let bad = LtxTransformerConfig {
        qk_norm: "rms_norm".into(),
        ..b2.clone()
    };
    assert!(bad.validate().is_err());
    let bad = LtxTransformerConfig {
        cross_attention_dim: 4096,
        ..b2
    };
    assert!(bad.validate().is_err());
}

#[test]
fn original_names_map_to_diffusers_names() {
    let cases = [
        (
            "model.diffusion_model.patchify_proj.weight",
            "proj_in.weight",
        ),
        ("patchify_proj.bias", "proj_in.bias"),
        (
            "model.diffusion_model.adaln_single.emb.timestep_embedder.linear_1.weight",
            "time_embed.emb.timestep_embedder.linear_1.weight",
        ),
        ("adaln_single.linear.bias", "time_embed.linear.bias"),
        (
            "transformer_blocks.27.attn1.q_norm.weight",
            "transformer_blocks.27.attn1.norm_q.weight",
        ),
        (
            "transformer_blocks.3.attn2.k_norm.weight",
            "transformer_blocks.3.attn2.norm_k.weight",
        ),
        (
            "transformer_blocks.0.attn1.to_out.0.weight",
            "transformer_blocks.0.attn1.to_out.0.weight",
        ),
        (
            "transformer_blocks.0.ff.net.0.proj.weight",
            "transformer_blocks.0.ff.net.0.proj.weight",
        ),
        (
            "caption_projection.linear_2.bias",
            "caption_projection.linear_2.bias",
        ),
        ("scale_shift_table", "scale_shift_table"),
        (
            "transformer_blocks.5.scale_shift_table",
            "transformer_blocks.5.scale_shift_table",
        ),
        ("proj_out.weight", "proj_out.weight"),
    ];
    for (original, diffusers) in cases {
        assert_eq!(
            ltx_transformer_key_from_original(original),
            diffusers,
            "{original}"
        );
    }
    assert!(is_ltx_transformer_key(
        "transformer_blocks.0.attn1.to_q.weight"
    ));
    assert!(!is_ltx_transformer_key("vae.decoder.conv_in.conv.weight"));
}

/// The inverse of the key map, as Lightricks names the tensors.
fn to_original(name: &str) -> String {
    format!(
        "model.diffusion_model.{}",
        name.replace("proj_in", "patchify_proj")
            .replace("time_embed", "adaln_single")
            .replace("norm_q", "q_norm")
            .replace("norm_k", "k_norm")
    )
}

#[test]
fn a_single_file_loads_through_the_key_map() -> Result<()> {
    let cfg = tiny();
    let weights = random_weights(&cfg, 8);
    let mut original: HashMap<String, Tensor> = weights
        .iter()
        .map(|(k, v)| (to_original(k), v.clone()))
        .collect();
    original.insert(
        "vae.decoder.conv_in.conv.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu)?,
    );
    let renamed: HashMap<String, Tensor> = original
        .into_iter()
        .filter(|(k, _)| is_ltx_transformer_key(k))
        .map(|(k, v)| (ltx_transformer_key_from_original(&k), v))
        .collect();
    assert_eq!(renamed.len(), weights.len());
    let from_file = LtxTransformer::new(
        VarBuilder::from_tensors(renamed, DType::F32, &Device::Cpu),
        &cfg,
    )?;
    let x = inputs(&cfg)?;
    let a = model(&cfg, &weights).forward(&x.hidden, &x.caption, &x.timestep, None, &grid())?;
    let b = from_file.forward(&x.hidden, &x.caption, &x.timestep, None, &grid())?;
    assert_eq!(max_diff(&a, &b)?, 0.0);
    Ok(())
}

#[test]
fn affine_norm_configs_load_their_weights() -> Result<()> {
    let cfg = LtxTransformerConfig {
        norm_elementwise_affine: true,
        ..tiny()
    };
    let weights = random_weights(&cfg, 9);
    assert!(weights.contains_key("transformer_blocks.1.norm2.weight"));
    let x = inputs(&cfg)?;
    let out = model(&cfg, &weights).forward(&x.hidden, &x.caption, &x.timestep, None, &grid())?;
    assert_eq!(out.dims(), &[B, S, 6]);
    Ok(())
}

#[test]
fn half_precision_runs_and_returns_its_dtype() -> Result<()> {
    let cfg = tiny();
    let weights = random_weights(&cfg, 10);
    let m32 = model(&cfg, &weights);
    let vb = VarBuilder::from_tensors(weights, DType::BF16, &Device::Cpu);
    let m16 = LtxTransformer::new(vb, &cfg)?;
    let x = inputs(&cfg)?;
    let a = m32.forward(&x.hidden, &x.caption, &x.timestep, Some(&x.mask), &grid())?;
    let b = m16.forward(&x.hidden, &x.caption, &x.timestep, Some(&x.mask), &grid())?;
    assert_eq!(b.dtype(), DType::BF16);
    let b = b.to_dtype(DType::F32)?;
    let rel = ((&a - &b)?.sqr()?.sum_all()?.to_scalar::<f32>()?
        / a.sqr()?.sum_all()?.to_scalar::<f32>()?)
    .sqrt();
    assert!(rel < 5e-2, "bf16 rel-L2 {rel}");
    Ok(())
}
