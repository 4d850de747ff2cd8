//! The post model engines as the studio runs them (`reelsmith::engines::post_models`), on the
//! real weights of `scripts/fetch-post-test-models.sh` (skipped with a message when absent):
//! Real-ESRGAN named by its ncnn file upscales a picture to an exact target size (network ×4,
//! then Lanczos), and RIFE named by its pickle makes the middle of a moving picture.

use std::path::PathBuf;

use reelsmith::engines::post::{PairInterpolator, Upscaler};
use reelsmith::engines::post_models::{find_post_model, EsrganUpscaler, RifePair};
use reelsmith::hub::{HubConfig, ModelKind, Registry};
use reelsmith::media::image::RgbImage;

fn root() -> Option<PathBuf> {
    let root = std::env::var_os("REELSMITH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/reelsmith/test-models")
        });
    if root
        .join("realesrgan-ncnn/realesr-animevideov3-x4.param")
        .is_file()
        && root.join("rife-4.0/flownet.pkl").is_file()
    {
        Some(root)
    } else {
        eprintln!(
            "skipped: no post test models in {} (scripts/fetch-post-test-models.sh)",
            root.display()
        );
        None
    }
}

/// A soft disc on a gradient, centred at `cx`.
fn picture(cx: f64) -> RgbImage {
    let (w, h) = (96u32, 64u32);
    let mut img = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let d = ((x as f64 - cx).powi(2) + (y as f64 - 32.0).powi(2)).sqrt();
            let inside = (1.0 - (d - 14.0).clamp(0.0, 1.0)) as f32;
            let bg = [40.0 + x as f32, 90.0, 160.0 - y as f32];
            let fg = [240.0, 200.0, 60.0];
            let px: Vec<u8> = (0..3)
                .map(|k| (bg[k] * (1.0 - inside) + fg[k] * inside) as u8)
                .collect();
            img.put(x as i64, y as i64, [px[0], px[1], px[2]]);
        }
    }
    img
}

fn reg() -> (Registry, HubConfig) {
    (
        Registry::load(None).unwrap(),
        HubConfig::from_env(|k| std::env::var(k).ok()),
    )
}

#[test]
fn a_named_esrgan_file_upscales_to_an_exact_size() {
    let Some(root) = root() else { return };
    let (reg, cfg) = reg();
    let path = root.join("realesrgan-ncnn/realesr-animevideov3-x4.param");
    let m = find_post_model(
        &reg,
        &cfg,
        path.to_str().unwrap(),
        "--model",
        ModelKind::Upscale,
    )
    .unwrap();
    assert_eq!(m.arch, "realesrgan-compact");
    let mut up = EsrganUpscaler::load(&m, &candle_core::Device::Cpu, 0).unwrap();
    let src = picture(48.0);
    // ×4 by the network, then to 300×200 by Lanczos (not a multiple of the network's factor).
    let big = up.upscale(&src, 300, 200).unwrap();
    assert_eq!((big.width, big.height), (300, 200));
    // The disc is still where it was: its centre pixel is yellow, a corner is background.
    assert!(big.get(150, 100)[2] < 100, "{:?}", big.get(150, 100));
    assert!(big.get(5, 5)[2] > 120, "{:?}", big.get(5, 5));
    // A RIFE file is not an upscaler: the error names the flag and the kind.
    let e = find_post_model(
        &reg,
        &cfg,
        root.join("rife-4.0/flownet.pkl").to_str().unwrap(),
        "--model",
        ModelKind::Upscale,
    )
    .unwrap_err();
    assert!(e.contains("--model") && e.contains("interpolation"), "{e}");
}

#[test]
fn a_named_rife_pickle_makes_the_middle_frame() {
    let Some(root) = root() else { return };
    let (reg, cfg) = reg();
    let path = root.join("rife-4.0/flownet.pkl");
    let m = find_post_model(
        &reg,
        &cfg,
        path.to_str().unwrap(),
        "REELSMITH_INTERPOLATE",
        ModelKind::Interpolation,
    )
    .unwrap();
    assert_eq!(m.arch, "rife");
    let mut rife = RifePair::load(&m, &candle_core::Device::Cpu).unwrap();
    let (a, b, truth) = (picture(36.0), picture(60.0), picture(48.0));
    let mid = rife.between(&a, &b, 0.5).unwrap();
    let err = |x: &RgbImage| {
        x.data
            .iter()
            .zip(&truth.data)
            .map(|(p, q)| (*p as f64 - *q as f64).powi(2))
            .sum::<f64>()
            / x.data.len() as f64
    };
    let blend = RgbImage {
        width: a.width,
        height: a.height,
        data: a
            .data
            .iter()
            .zip(&b.data)
            .map(|(p, q)| (*p as u16 + *q as u16).div_ceil(2) as u8)
            .collect(),
    };
    let (e_rife, e_blend) = (err(&mid), err(&blend));
    println!("middle frame MSE: RIFE {e_rife:.1}, blend {e_blend:.1}");
    assert!(
        e_rife * 4.0 < e_blend,
        "RIFE {e_rife:.1} vs blend {e_blend:.1}"
    );
}
