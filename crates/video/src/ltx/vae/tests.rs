//! The VAE on tiny random weights in the three layouts: shapes, the encoder's causality, and
//! the streamed and tiled decode against the single pass.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use reelsmith_kit::noise::{Noise, Seeded};

use super::*;

fn tiny_0_9_0() -> LtxVaeConfig {
    LtxVaeConfig {
        latent_channels: 4,
        block_out_channels: vec![8, 16, 16, 16],
        decoder_block_out_channels: vec![8, 16, 16, 16],
        layers_per_block: vec![1, 1, 1, 1, 1],
        decoder_layers_per_block: vec![1, 1, 1, 1, 1],
        patch_size: 2,
        ..LtxVaeConfig::v0_9_0()
    }
}

fn tiny_0_9_1() -> LtxVaeConfig {
    LtxVaeConfig {
        latent_channels: 4,
        block_out_channels: vec![8, 16, 16, 16],
        decoder_block_out_channels: vec![8, 16, 32],
        layers_per_block: vec![1, 1, 1, 1, 1],
        decoder_layers_per_block: vec![1, 1, 1, 2],
        patch_size: 2,
        ..LtxVaeConfig::v0_9_1()
    }
}

fn tiny_0_9_5() -> LtxVaeConfig {
    LtxVaeConfig {
        latent_channels: 4,
        block_out_channels: vec![8, 16, 32, 64, 128],
        decoder_block_out_channels: vec![8, 16, 32],
        layers_per_block: vec![1, 1, 1, 1, 1],
        decoder_layers_per_block: vec![1, 1, 1, 1],
        patch_size: 2,
        spatial_compression_ratio: Some(16),
        temporal_compression_ratio: Some(8),
        ..LtxVaeConfig::v0_9_5()
    }
}

fn layouts() -> Vec<(&'static str, LtxVaeConfig)> {
    vec![
        ("0.9.0", tiny_0_9_0()),
        ("0.9.1", tiny_0_9_1()),
        ("0.9.5", tiny_0_9_5()),
    ]
}

fn rand(shape: &[usize], seed: u64) -> Tensor {
    Seeded::new(seed).draw(shape, &Device::Cpu).unwrap()
}

/// Random weights of the right shapes for `cfg`: the names and shapes are what building the
/// VAE asks a `VarMap` for; the values are scaled like an initialised network's.
fn random_weights(cfg: &LtxVaeConfig, seed: u64) -> HashMap<String, Tensor> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    LtxVae::new(vb, cfg).unwrap();
    let data = vm.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut out = HashMap::new();
    for (i, name) in names.into_iter().enumerate() {
        let shape = data[name].as_tensor().dims().to_vec();
        let r = rand(&shape, seed * 7919 + i as u64);
        let t = if name.ends_with("latents_std") {
            (r.abs().unwrap() + 0.5).unwrap()
        } else if name.ends_with("timestep_scale_multiplier") {
            Tensor::new(1000f32, &Device::Cpu).unwrap()
        } else if name.ends_with("norm3.weight") {
            ((r * 0.1).unwrap() + 1.0).unwrap()
        } else if name.ends_with(".weight") && shape.len() >= 2 {
            let fan_in: usize = shape[1..].iter().product();
            (r / (fan_in as f64).sqrt()).unwrap()
        } else if name.contains("scale_shift_table") {
            (r / (shape[1] as f64).sqrt()).unwrap()
        } else {
            (r * 0.1).unwrap()
        };
        out.insert(name.clone(), t);
    }
    out
}

fn build(cfg: &LtxVaeConfig, seed: u64) -> LtxVae {
    let vb = VarBuilder::from_tensors(random_weights(cfg, seed), DType::F32, &Device::Cpu);
    LtxVae::new(vb, cfg).unwrap()
}

fn rel_l2(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.dims(), want.dims());
    let g = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let w = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (mut num, mut den) = (0f64, 0f64);
    for (a, b) in g.iter().zip(&w) {
        num += (*a as f64 - *b as f64).powi(2);
        den += (*b as f64).powi(2);
    }
    (num / den.max(1e-30)).sqrt()
}

fn timestep(cfg: &LtxVaeConfig) -> Option<Tensor> {
    cfg.timestep_conditioning
        .then(|| Tensor::new(&[0.05f32], &Device::Cpu).unwrap())
}

/// Decodes with a fresh seeded noise stream (the same draws every call).
fn decode(vae: &LtxVae, z: &Tensor, tile: Option<TileConfig>) -> (Tensor, Vec<usize>) {
    let temb = timestep(vae.config());
    let mut noise = Seeded::new(99);
    let mut runs = Vec::new();
    let out = match tile {
        None => vae.decode(z, temb.as_ref(), Some(&mut noise)).unwrap(),
        Some(t) => {
            let mut parts = Vec::new();
            vae.decode_streamed(z, temb.as_ref(), Some(&mut noise), t, &mut |x| {
                runs.push(x.dim(2)?);
                parts.push(x);
                Ok(())
            })
            .unwrap();
            Tensor::cat(&parts, 2).unwrap()
        }
    };
    (out, runs)
}

#[test]
fn encodes_to_the_latent_grid_in_every_layout() {
    for (name, cfg) in layouts() {
        let vae = build(&cfg, 1);
        let video = rand(&[2, 3, 9, 32, 48], 2);
        let moments = vae.encode_raw(&video).unwrap();
        assert_eq!(moments.dims(), &[2, 8, 2, 2, 3], "{name}");
        let (mean, logvar) = vae.encode_moments(&video).unwrap();
        assert_eq!(mean.dims(), &[2, 4, 2, 2, 3], "{name}");
        // One log-variance channel, repeated.
        let d = logvar
            .broadcast_sub(&logvar.narrow(1, 0, 1).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "{name}");
        assert!(
            vae.encode(&rand(&[1, 3, 9, 31, 48], 3)).is_err(),
            "{name}: odd size"
        );
    }
}

#[test]
fn the_encoder_is_causal() {
    for (name, cfg) in layouts() {
        let vae = build(&cfg, 4);
        let video = rand(&[1, 3, 17, 16, 32], 5);
        let whole = vae.encode_raw(&video).unwrap();
        assert_eq!(whole.dim(2).unwrap(), 3);
        for (frames, latents) in [(1, 1), (9, 2)] {
            let prefix = vae
                .encode_raw(&video.narrow(2, 0, frames).unwrap())
                .unwrap();
            let e = rel_l2(&prefix, &whole.narrow(2, 0, latents).unwrap());
            assert!(e < 1e-6, "{name}: the first {frames} frames: rel-L2 {e}");
        }
    }
}

#[test]
fn decodes_to_the_video_grid_in_every_layout() {
    for (name, cfg) in layouts() {
        let vae = build(&cfg, 6);
        let z = rand(&[1, 4, 3, 2, 3], 7);
        let (video, _) = decode(&vae, &z, None);
        assert_eq!(video.dims(), &[1, 3, 17, 32, 48], "{name}");
        assert_eq!(vae.decoded_frames(3), 17);
        let v = video.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{name}");
    }
}

#[test]
fn a_batch_decodes_like_its_items() {
    for (name, cfg) in layouts() {
        let vae = build(&cfg, 26);
        let z = rand(&[2, 4, 2, 2, 3], 27);
        let (both, _) = decode(&vae, &z, Some(TileConfig::tiled(1, (1, 2), 12, 0)));
        for b in 0..2 {
            let (one, _) = decode(&vae, &z.narrow(0, b, 1).unwrap(), None);
            let e = rel_l2(&both.narrow(0, b, 1).unwrap(), &one);
            assert!(e <= 1e-5, "{name}: item {b}: rel-L2 {e}");
        }
    }
}

#[test]
fn streamed_decode_equals_the_single_pass() {
    for (name, cfg) in layouts() {
        let vae = build(&cfg, 8);
        let z = rand(&[1, 4, 5, 2, 3], 9);
        let (whole, _) = decode(&vae, &z, None);
        for frames in [1, 2, 3] {
            let (streamed, runs) = decode(&vae, &z, Some(TileConfig::frames(frames)));
            let e = rel_l2(&streamed, &whole);
            eprintln!("{name}: streamed, {frames} latent frames a step: rel-L2 {e:.2e}");
            assert!(
                e <= 1e-5,
                "{name}, {frames} latent frames a step: rel-L2 {e}"
            );
            if frames == 1 {
                assert!(runs.len() > 1, "{name}: one run {runs:?}");
            }
        }
    }
}

#[test]
fn tiled_decode_with_the_receptive_halo_equals_the_single_pass() {
    for (name, cfg) in layouts() {
        let vae = build(&cfg, 10);
        let r = vae.receptive_radius();
        assert!(r >= 2, "{name}: radius {r}");
        let z = rand(&[1, 4, 3, 5, 6], 11);
        let (whole, _) = decode(&vae, &z, None);
        let exact = TileConfig::tiled(1, (2, 3), r, 0);
        let (tiled, _) = decode(&vae, &z, Some(exact));
        let e = rel_l2(&tiled, &whole);
        eprintln!("{name}: cropped tiles, halo {r}: rel-L2 {e:.2e}");
        assert!(e <= 1e-5, "{name}: cropped tiles: rel-L2 {e}");
        let faded = TileConfig::tiled(2, (2, 2), r + 1, 1);
        let (tiled, _) = decode(&vae, &z, Some(faded));
        let e = rel_l2(&tiled, &whole);
        eprintln!("{name}: cross-faded tiles: rel-L2 {e:.2e}");
        assert!(e <= 1e-5, "{name}: cross-faded tiles: rel-L2 {e}");
        // Too little context shows: the halo is what makes tiles exact.
        let (short, _) = decode(&vae, &z, Some(TileConfig::tiled(1, (2, 3), 0, 0)));
        assert!(
            rel_l2(&short, &whole) > 1e-3,
            "{name}: tiles without context"
        );
    }
}

#[test]
fn a_long_clip_is_handed_over_in_bounded_runs() {
    let cfg = tiny_0_9_0();
    let vae = build(&cfg, 12);
    let z = rand(&[1, 4, 12, 1, 1], 13);
    let (whole, _) = decode(&vae, &z, None);
    let (streamed, runs) = decode(&vae, &z, Some(TileConfig::frames(1)));
    assert!(rel_l2(&streamed, &whole) <= 1e-5);
    assert_eq!(runs.iter().sum::<usize>(), 89);
    // Eight video frames a latent frame: no run holds much more than a step's worth.
    assert!(runs.iter().all(|&n| n <= 24), "{runs:?}");
    assert!(runs.len() >= 4, "{runs:?}");
}

/// Counts the draws and their shapes.
struct Counting(Seeded, Vec<Vec<usize>>);

impl Noise for Counting {
    fn draw(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        self.1.push(shape.to_vec());
        self.0.draw(shape, device)
    }
}

#[test]
fn the_0_9_1_decoder_draws_its_noise_in_order_once() {
    let cfg = tiny_0_9_1();
    let vae = build(&cfg, 14);
    let z = rand(&[1, 4, 2, 2, 3], 15);
    let t = timestep(&cfg);
    let mut n = Counting(Seeded::new(1), Vec::new());
    vae.decode(&z, t.as_ref(), Some(&mut n)).unwrap();
    // No noise in the mid block; one resnet per up block at 2×, 4× and 8× the latent size,
    // two draws each.
    let want: Vec<Vec<usize>> = [(4, 6), (4, 6), (8, 12), (8, 12), (16, 24), (16, 24)]
        .iter()
        .map(|&(h, w)| vec![h, w])
        .collect();
    assert_eq!(n.1, want);
    let mut m = Counting(Seeded::new(1), Vec::new());
    vae.decode_streamed(
        &z,
        t.as_ref(),
        Some(&mut m),
        TileConfig::tiled(1, (1, 2), 9, 0),
        &mut |_| Ok(()),
    )
    .unwrap();
    assert_eq!(m.1, want);
}

#[test]
fn missing_conditioning_is_an_error() {
    let vae = build(&tiny_0_9_1(), 16);
    let z = rand(&[1, 4, 2, 2, 3], 17);
    let t = Tensor::new(&[0.05f32], &Device::Cpu).unwrap();
    assert!(vae.decode(&z, None, Some(&mut Seeded::new(1))).is_err());
    assert!(vae.decode(&z, Some(&t), None).is_err());
    assert!(vae
        .decode(
            &rand(&[1, 5, 2, 2, 3], 1),
            Some(&t),
            Some(&mut Seeded::new(1))
        )
        .is_err());
    // 0.9.5 injects no noise and needs none.
    let vae = build(&tiny_0_9_5(), 18);
    assert!(vae.decode(&z, Some(&t), None).is_ok());
}

#[test]
fn normalisation_round_trips() {
    let vae = build(&tiny_0_9_0(), 19);
    let z = rand(&[1, 4, 2, 2, 3], 20);
    let n = vae.normalize(&z, 1.5).unwrap();
    let back = vae.denormalize(&n, 1.5).unwrap();
    assert!(rel_l2(&back, &z) < 1e-6);
    let mean = vae.latents_mean().to_vec1::<f32>().unwrap();
    let std = vae.latents_std().to_vec1::<f32>().unwrap();
    let z0 = z.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    let n0 = n.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    assert!((n0 - (z0 - mean[0]) * 1.5 / std[0]).abs() < 1e-5);
}

#[test]
fn a_causal_decoder_streams_without_lag() {
    let cfg = LtxVaeConfig {
        decoder_causal: true,
        ..tiny_0_9_0()
    };
    let vae = build(&cfg, 21);
    let z = rand(&[1, 4, 4, 2, 2], 22);
    let (whole, _) = decode(&vae, &z, None);
    let (streamed, runs) = decode(&vae, &z, Some(TileConfig::frames(1)));
    assert!(rel_l2(&streamed, &whole) <= 1e-5);
    // Every latent frame comes out as soon as it goes in: 1, then 8 video frames.
    assert_eq!(runs, vec![1, 8, 8, 8]);
}

#[test]
fn diffusers_tiling_draws_noise_per_tile_and_is_plain_below_a_tile() {
    let cfg = tiny_0_9_1();
    let vae = build(&cfg, 23);
    let z = rand(&[1, 4, 2, 2, 3], 24);
    let t = timestep(&cfg);
    // 32-pixel tiles every 16 pixels: 2 rows × 3 columns of latent tiles on a 2×3 grid.
    let tiling = DiffusersTiling {
        tile_sample_min_height: 32,
        tile_sample_min_width: 32,
        tile_sample_stride_height: 16,
        tile_sample_stride_width: 16,
    };
    let mut n = Counting(Seeded::new(1), Vec::new());
    let tiled = vae
        .decode_diffusers_tiled(&z, t.as_ref(), Some(&mut n), &tiling)
        .unwrap();
    assert_eq!(tiled.dims(), &[1, 3, 9, 32, 48]);
    assert_eq!(n.1.len(), 6 * 6);
    assert_eq!(n.1[0], vec![4, 4]);
    // A frame no larger than a tile decodes plainly.
    let big = DiffusersTiling::default();
    let (plain, _) = decode(&vae, &z, None);
    let mut s = Seeded::new(99);
    let same = vae
        .decode_diffusers_tiled(&z, t.as_ref(), Some(&mut s), &big)
        .unwrap();
    assert_eq!(rel_l2(&same, &plain), 0.0);
    let moments = vae.encode_raw(&rand(&[1, 3, 9, 32, 48], 25)).unwrap();
    let tiled = vae
        .encode_raw_diffusers_tiled(&rand(&[1, 3, 9, 32, 48], 25), &big)
        .unwrap();
    assert_eq!(rel_l2(&tiled, &moments), 0.0);
}
