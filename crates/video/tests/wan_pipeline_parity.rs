//! Wan2.1 end to end against diffusers 0.42.1 (tests/fixtures/wan/pipeline, made by
//! scripts/make-wan-pipeline-fixture.py; its README is the contract): the real `WanPipeline`
//! (UniPC, and flow-match Euler with the default empty negative prompt) and
//! `WanImageToVideoPipeline` (image-to-video, first-last-frame) on tiny random networks (the
//! tokenizer, umT5, CLIP and T2V/I2V transformers of the other Wan fixtures; a VAE and an FLF2V
//! transformer of this fixture's own), driven here through [`WanModel`] from the same files — the tokenizer and
//! umT5 (`encode_prompt`), the CLIP processor and tower (`encode_images`), the VAE encode of the
//! condition and the transformer's loop (`sample`, from the recorded initial noise), and the
//! streamed decode (`decode`, also interrupted after the first latent frame, saved and resumed).
//! Each stage runs on this side's own output of the stage before, so the errors add up as they
//! would in use.
//!
//! Tolerance: rel-L2 ≤ 1e-4 and max|Δ| ≤ 1e-3·max|ref| for the embeddings, every step's latents
//! and the decoded frames (CPU f32; widened by the test device's dtype). Measured (CPU f32,
//! `-- --nocapture`), rel-L2 / max|Δ|/max|ref|: prompt embeddings 2.7e-7 / 3.1e-7 (negative
//! 2.6e-7 / 3.7e-7, empty negative 2.9e-7 / 2.8e-7); image states 1.9e-7 / 2.5e-7 (i2v),
//! 2.4e-7 / 5.1e-7 (flf2v); latents, worst (last) step: t2v_unipc 1.1e-6 / 1.3e-6, t2v_euler
//! 1.2e-6 / 1.5e-6, i2v 1.4e-6 / 1.9e-6, flf2v 1.5e-6 / 1.7e-6; decoded frames of this side's
//! latents: t2v_unipc 9.8e-6 / 3.8e-5, t2v_euler 5.2e-6 / 1.8e-5, i2v 4.5e-6 / 7.2e-6, flf2v
//! 5.9e-6 / 1.2e-5 (of the reference's own final latents: 2.3e-6 – 3.7e-6 / ≤ 1.2e-5). The
//! pictures the VAE encodes equal diffusers' exactly, and the resumed decode equals the
//! uninterrupted one exactly.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use reelsmith_kit::noise::Replay;
use reelsmith_kit::testing::{errors, TestDevice};
use reelsmith_kit::Precision;
use reelsmith_video::wan::model::{
    AnchorAt, AnchorPicture, DecodeOptions, ImageCondition, Picture, WanFiles, WanModel,
};
use reelsmith_video::wan::pipeline::WanRequest;
use reelsmith_video::wan::schedule::SamplerKind;
use reelsmith_video::VideoError;
use serde_json::Value;

const REL: f64 = 1e-4;
const MAX: f64 = 1e-3;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/wan/pipeline")
}

fn td() -> &'static TestDevice {
    static TD: std::sync::OnceLock<TestDevice> = std::sync::OnceLock::new();
    TD.get_or_init(TestDevice::from_env)
}

fn dev() -> &'static Device {
    &td().device
}

struct Fixture {
    json: Value,
    io: HashMap<String, Tensor>,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let json = serde_json::from_str(
            &std::fs::read_to_string(dir().join("wan_pipeline.json")).unwrap(),
        )
        .unwrap();
        let io =
            candle_core::safetensors::load(dir().join("wan_pipeline.safetensors"), &Device::Cpu)
                .unwrap();
        Fixture { json, io }
    })
}

fn t(key: &str) -> Tensor {
    fixture()
        .io
        .get(key)
        .unwrap_or_else(|| panic!("fixture tensor {key} missing"))
        .clone()
}

fn file(key: &str) -> PathBuf {
    dir().join(fixture().json["files"][key].as_str().unwrap())
}

fn model(transformer: &str) -> WanModel {
    let files = WanFiles {
        transformer: file(transformer),
        vae: file("vae"),
        text_encoder: file("text_encoder"),
        tokenizer: file("tokenizer"),
        image_encoder: Some(file("image_encoder")),
        image_processor: Some(file("image_processor")),
    };
    let mut m = WanModel::new(files, dev());
    m.dtype = td().dtype(Precision::Bf16);
    m
}

/// Asserts the limits for a result of a run whose transformer computes in `dtype`; returns the
/// rel-L2.
fn close(what: &str, got: &Tensor, want: &Tensor, dtype: DType) -> f64 {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (rel_limit, max_limit) = td().limits(dtype, REL, MAX);
    let got = got.to_device(&Device::Cpu).unwrap();
    let (r, m) = errors(&got, want).unwrap_or_else(|e| panic!("{what}: {e}"));
    println!("{what}: rel-L2 {r:.2e}, max|Δ|/max|ref| {m:.2e}");
    assert!(r <= rel_limit, "{what}: rel-L2 {r:.3e} > {rel_limit:.0e}");
    assert!(
        m <= max_limit,
        "{what}: max|Δ|/max|ref| {m:.3e} > {max_limit:.0e}"
    );
    r
}

fn rgb(key: &str) -> (Vec<u8>, usize, usize) {
    let x = t(key);
    let (h, w, c) = x.dims3().unwrap();
    assert_eq!(c, 3);
    (x.flatten_all().unwrap().to_vec1::<u8>().unwrap(), w, h)
}

fn request(run: &Value) -> WanRequest {
    WanRequest {
        frames: run["num_frames"].as_u64().unwrap() as usize,
        width: run["width"].as_u64().unwrap() as usize,
        height: run["height"].as_u64().unwrap() as usize,
        steps: run["steps"].as_u64().unwrap() as usize,
        guidance: run["guidance_scale"].as_f64().unwrap(),
        shift: run["shift"].as_f64().unwrap(),
        seed: run["seed"].as_u64().unwrap(),
        sampler: match run["sampler"].as_str().unwrap() {
            "unipc" => SamplerKind::UniPc,
            "euler" => SamplerKind::Euler,
            s => panic!("sampler {s}"),
        },
    }
}

/// Runs `name` end to end through [`WanModel`] and compares every stage.
fn run(name: &str, transformer: &str) {
    let run = &fixture().json["runs"][name];
    let m = model(transformer);
    let req = request(run);
    let negative_text = run["negative_prompt"].as_str().unwrap_or("");
    let (prompt, negative) = m
        .encode_prompt(run["prompt"].as_str().unwrap(), negative_text)
        .unwrap();
    close(
        &format!("{name}: prompt embeddings"),
        &prompt,
        &t("prompt_embeds"),
        DType::F32,
    );
    if req.guidance > 1.0 {
        close(
            &format!("{name}: negative embeddings {negative_text:?}"),
            &negative,
            &t(if negative_text.is_empty() {
                "empty_negative_embeds"
            } else {
                "negative_embeds"
            }),
            DType::F32,
        );
    }

    let pictures: Vec<(Vec<u8>, usize, usize)> = ["first", "last"]
        .iter()
        .map(|k| format!("{name}.{k}_rgb"))
        .filter(|k| fixture().io.contains_key(k))
        .map(|k| rgb(&k))
        .collect();
    let pics: Vec<Picture<'_>> = pictures
        .iter()
        .map(|(rgb, width, height)| Picture {
            rgb,
            width: *width,
            height: *height,
        })
        .collect();
    let image_states = if pics.is_empty() {
        None
    } else {
        let states = m.encode_images(&pics).unwrap();
        let want = t(&format!("{name}.image_embeds"));
        let (k, n, d) = want.dims3().unwrap();
        close(
            &format!("{name}: image states"),
            &states,
            &want.reshape((1, k * n, d)).unwrap(),
            DType::F32,
        );
        // The pictures as the VAE sees them: the first (and last) frames of diffusers' condition
        // video.
        for (p, k) in pics.iter().zip(["first", "last"]) {
            let want = t(&format!("{name}.{k}_pixels"));
            let got = p.to_tensor(&Device::Cpu).unwrap();
            let d = (got - want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(d, 0.0, "{name}: the {k} picture differs by {d}");
        }
        Some(states)
    };

    let mut noise = Replay::new(vec![t(&format!("{name}.noise.0"))
        .to_device(dev())
        .unwrap()]);
    let mut steps = Vec::new();
    let mut hook = |_i: usize, _n: usize, x: &Tensor| {
        steps.push(x.clone());
        true
    };
    let image = image_states.as_ref().map(|embeds| ImageCondition {
        embeds,
        first: pics[0],
        last: pics.get(1).copied(),
    });
    let latents = m
        .sample(&req, &prompt, Some(&negative), image, &mut noise, &mut hook)
        .unwrap();
    assert_eq!(noise.remaining(), 0, "{name}: the recorded draw was used");
    assert_eq!(steps.len(), req.steps, "{name}: steps");
    let mut worst = 0f64;
    for (i, x) in steps.iter().enumerate() {
        worst = worst.max(close(
            &format!("{name}: latents after step {i}"),
            x,
            &t(&format!("{name}.step.{i}")),
            m.dtype,
        ));
    }
    println!("{name}: worst step rel-L2 {worst:.2e}");
    let last = steps.last().unwrap();
    assert_eq!(
        (&latents - last)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0,
        "{name}: sample returns the last step's latents"
    );

    // The decode of the reference's own final latents (the decode stage alone)...
    let want_last = t(&format!("{name}.step.{}", req.steps - 1));
    let mut frames = Vec::new();
    m.decode(&want_last, &DecodeOptions::default(), &mut |_, f| {
        frames.push(f);
        Ok(())
    })
    .unwrap();
    close(
        &format!("{name}: decoded frames of the reference latents"),
        &Tensor::cat(&frames, 2).unwrap(),
        &t(&format!("{name}.decoded")),
        DType::F32,
    );
    // ...the decode of this side's latents, in one go...
    let mut frames = Vec::new();
    m.decode(&latents, &DecodeOptions::default(), &mut |_, f| {
        frames.push(f);
        Ok(())
    })
    .unwrap();
    let decoded = Tensor::cat(&frames, 2).unwrap();
    close(
        &format!("{name}: decoded frames"),
        &decoded,
        &t(&format!("{name}.decoded")),
        m.dtype,
    );
    // ...and stopped after the first latent frame (state saved), then resumed.
    let state = std::env::temp_dir().join(format!(
        "reelsmith-wan-pipeline-{name}-{}.state",
        std::process::id()
    ));
    let mut head = Vec::new();
    let stop = m.decode(&latents, &DecodeOptions::default(), &mut |dec, f| {
        head.push(f);
        dec.save(&state)?;
        Err(VideoError::Cancelled)
    });
    assert!(matches!(stop, Err(VideoError::Cancelled)), "{stop:?}");
    let resume = DecodeOptions {
        resume: Some(state.clone()),
        ..DecodeOptions::default()
    };
    let mut tail = Vec::new();
    m.decode(&latents, &resume, &mut |_, f| {
        tail.push(f);
        Ok(())
    })
    .unwrap();
    let _ = std::fs::remove_file(&state);
    assert_eq!(
        head.len() + tail.len(),
        frames.len(),
        "{name}: resumed frames"
    );
    let resumed = Tensor::cat(&[head, tail].concat(), 2).unwrap();
    let d = (resumed - &decoded)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(d, 0.0, "{name}: the resumed decode differs by {d}");
}

#[test]
fn text_to_video_unipc() {
    run("t2v_unipc", "t2v");
}

#[test]
fn text_to_video_euler_empty_negative() {
    run("t2v_euler", "t2v");
}

#[test]
fn image_to_video() {
    run("i2v", "i2v");
}

#[test]
fn first_last_frame_to_video() {
    run("flf2v", "flf2v");
}

#[test]
fn refuses_mismatched_inputs() {
    let run = &fixture().json["runs"]["t2v_unipc"];
    let req = request(run);
    let prompt = t("prompt_embeds").to_device(dev()).unwrap();
    let mut hook = |_: usize, _: usize, _: &Tensor| true;
    // A text-to-video model given an image, and an image model given none.
    let t2v = model("t2v");
    let (rgb, w, h) = rgb("i2v.first_rgb");
    let embeds = t("i2v.image_embeds").to_device(dev()).unwrap();
    let pic = Picture {
        rgb: &rgb,
        width: w,
        height: h,
    };
    let image = ImageCondition {
        embeds: &embeds,
        first: pic,
        last: None,
    };
    let mut noise = Replay::new(vec![]);
    let e = t2v
        .sample(
            &req,
            &prompt,
            Some(&prompt),
            Some(image),
            &mut noise,
            &mut hook,
        )
        .unwrap_err();
    assert!(e.to_string().contains("text-to-video"), "{e}");
    let e = model("i2v")
        .sample(&req, &prompt, Some(&prompt), None, &mut noise, &mut hook)
        .unwrap_err();
    assert!(e.to_string().contains("first frame"), "{e}");
    // Guidance without the negative embeddings; embeddings of the wrong width.
    let e = t2v
        .sample(&req, &prompt, None, None, &mut noise, &mut hook)
        .unwrap_err();
    assert!(e.to_string().contains("negative"), "{e}");
    let wide = Tensor::zeros((1, 512, 8), DType::F32, dev()).unwrap();
    let e = t2v
        .sample(&req, &wide, Some(&wide), None, &mut noise, &mut hook)
        .unwrap_err();
    assert!(e.to_string().contains("[1, L, 16]"), "{e}");
    // A picture of the wrong size.
    let small = vec![0u8; 16 * 16 * 3];
    let image = ImageCondition {
        embeds: &embeds,
        first: Picture {
            rgb: &small,
            width: 16,
            height: 16,
        },
        last: None,
    };
    let mut noise = Replay::new(vec![t("i2v.noise.0").to_device(dev()).unwrap()]);
    let e = model("i2v")
        .sample(
            &request(&fixture().json["runs"]["i2v"]),
            &prompt,
            Some(&prompt),
            Some(image),
            &mut noise,
            &mut hook,
        )
        .unwrap_err();
    assert!(e.to_string().contains("16×16"), "{e}");
}

/// The studio's anchors: a run whose first and last latent frames are held to two pictures ends
/// with exactly their latents there (the rest sampled), and its decode starts on the first
/// picture as the VAE draws it.
#[test]
fn anchored_runs_end_exactly_on_their_anchors() {
    let run = &fixture().json["runs"]["t2v_unipc"];
    let req = request(run);
    let prompt = t("prompt_embeds").to_device(dev()).unwrap();
    let m = model("t2v");
    let (rgb, w, h) = rgb("i2v.first_rgb");
    let last_rgb: Vec<u8> = rgb.iter().map(|v| 255 - v).collect();
    let shape = req.validate().unwrap();
    let anchors = m
        .encode_anchors(&[
            AnchorPicture {
                picture: Picture {
                    rgb: &rgb,
                    width: w,
                    height: h,
                },
                at: AnchorAt::First,
            },
            AnchorPicture {
                picture: Picture {
                    rgb: &last_rgb,
                    width: w,
                    height: h,
                },
                at: AnchorAt::LastOf(shape.frames),
            },
        ])
        .unwrap();
    assert_eq!(anchors[0].frame, 0);
    assert_eq!(anchors[1].frame, shape.frames - 1);
    let mut noise = reelsmith_kit::noise::Seeded::new(3);
    let steps = std::cell::Cell::new(0);
    let mut hook = |_: usize, _: usize, _: &Tensor| {
        steps.set(steps.get() + 1);
        true
    };
    let out = m
        .sample_anchored(
            &req,
            &prompt,
            Some(&prompt),
            None,
            &anchors,
            &mut noise,
            &mut hook,
        )
        .unwrap();
    assert_eq!(steps.get(), req.steps);
    for a in &anchors {
        let got = out.narrow(2, a.frame, 1).unwrap();
        let d = (got - &a.latents)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "latent frame {} is {d} from its anchor", a.frame);
    }
    // An anchor of the wrong size is refused, naming the grid.
    let mut bad = anchors[0].clone();
    bad.frame = shape.frames;
    let e = m
        .sample_anchored(
            &req,
            &prompt,
            Some(&prompt),
            None,
            &[bad],
            &mut noise,
            &mut hook,
        )
        .unwrap_err();
    assert!(e.to_string().contains("does not fit"), "{e}");
}
