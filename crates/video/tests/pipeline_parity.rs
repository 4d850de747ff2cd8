//! Whole sampling runs against diffusers 0.42.1 on the tiny LTX fixtures
//! (tests/fixtures/video, made by scripts/make-video-fixture.py; its README is the contract):
//! text-to-video (`LTXPipeline`, the 0.9.1 VAE and dynamic-shift scheduler, loaded from the
//! official single file), image-to-video (`LTXImageToVideoPipeline`), and keyframe conditioning
//! (`LTXConditionPipeline`) at the first + last frame and at a middle frame with strength 0.8
//! (the 0.9.5 VAE, from the diffusers folder). Every run replays diffusers' recorded noise and
//! must match every step's latents, the decoder's input and the decoded frames.
//!
//! Tolerance as the image crate: rel-L2 ≤ 1e-4 and max|Δ| ≤ 1e-3·max|ref| (CPU f32).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, IndexOp, Tensor};
use reelsmith_kit::noise::{Noise, Replay};
use reelsmith_kit::testing::TestDevice;
use reelsmith_kit::Precision;
use reelsmith_video::ltx::load::{self, LtxSource};
use reelsmith_video::ltx::model::{DecodeParams, LtxModel};
use reelsmith_video::ltx::pipeline::{pack, Condition, Mode, Prompt, Request};
use reelsmith_video::ltx::schedule::{ScheduleConfig, Steps};
use reelsmith_video::ltx::vae::TileConfig;
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/video")
}

fn td() -> &'static TestDevice {
    static TD: std::sync::OnceLock<TestDevice> = std::sync::OnceLock::new();
    TD.get_or_init(TestDevice::from_env)
}

struct Fixture {
    json: Value,
    io: HashMap<String, Tensor>,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let json = serde_json::from_str(&std::fs::read_to_string(dir().join("ltx.json")).unwrap())
            .unwrap();
        let io =
            candle_core::safetensors::load(dir().join("ltx.io.safetensors"), &td().device).unwrap();
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

/// Asserts `got` matches `want` (rel-L2 and max-abs relative to the reference's range).
fn close(what: &str, got: &Tensor, want: &Tensor, _dtype: DType) {
    td().assert_close(what, got, want, 1e-4, 1e-3);
}

fn model(source: LtxSource) -> LtxModel {
    let dtype = td().dtype(Precision::Bf16);
    let nets = load::load(&source, dtype, &td().device).unwrap();
    LtxModel {
        transformer: nets.transformer,
        vae: nets.vae,
        configs: nets.configs,
        text: None,
        device: td().device.clone(),
        dtype,
    }
}

fn prompts() -> (Prompt, Prompt) {
    let (h, m) = (t("t5.hidden"), t("t5.mask").to_dtype(DType::F32).unwrap());
    let row = |i: usize| Prompt {
        embeds: h.i(i..i + 1).unwrap(),
        mask: m.i(i..i + 1).unwrap(),
    };
    (row(1), row(0))
}

/// The recorded draws `<run>.noise.0…` in order.
fn replay(run: &str) -> Replay {
    let mut draws = Vec::new();
    while let Some(d) = fixture().io.get(&format!("{run}.noise.{}", draws.len())) {
        draws.push(d.clone());
    }
    Replay::new(draws)
}

/// An image `[1, 3, H, W]` in 0..1 from the fixture as the pipeline takes it: `[3, H, W]` in −1..1.
fn picture(key: &str) -> Tensor {
    ((t(key).squeeze(0).unwrap() * 2.0).unwrap() - 1.0).unwrap()
}

fn run(name: &str, m: &mut LtxModel, mode: Mode, steps: Steps) {
    let spec = &fixture().json["runs"][name];
    m.configs.schedule =
        serde_json::from_value::<ScheduleConfig>(spec["scheduler"].clone()).unwrap();
    let (prompt, negative) = prompts();
    let num = |k: &str| spec[k].as_f64().unwrap();
    let req = Request {
        prompt,
        negative: Some(negative),
        guidance: num("guidance_scale"),
        width: num("width") as usize,
        height: num("height") as usize,
        frames: num("num_frames") as usize,
        frame_rate: num("frame_rate"),
        steps,
        mode,
        cond_noise_scale: spec["image_cond_noise_scale"].as_f64().unwrap_or(0.15),
    };
    let mut noise = replay(name);
    let mut steps_seen = Vec::new();
    let mut hook = |i: usize, _: usize, x: &Tensor| {
        steps_seen.push((i, x.clone()));
        true
    };
    let latents = m.sample(&req, &mut noise, &mut hook).unwrap();
    let dtype = m.dtype;
    for (i, x) in &steps_seen {
        close(
            &format!("{name} step {}", i - 1),
            x,
            &t(&format!("{name}.step.{}", i - 1)),
            dtype,
        );
    }
    assert_eq!(steps_seen.len(), 3);
    // The final step's main-grid tokens are the latents handed to the decode.
    let main = pack(&latents).unwrap();
    let last = &steps_seen.last().unwrap().1;
    let extra = last.dim(1).unwrap() - main.dim(1).unwrap();
    close(
        &format!("{name} final"),
        &main,
        &last.i((.., extra..)).unwrap(),
        dtype,
    );
    let params = DecodeParams {
        timestep: num("decode_timestep"),
        noise_scale: num("decode_noise_scale"),
        tile: TileConfig::frames(1),
    };
    let mut frames = Vec::new();
    m.decode(&latents, &params, &mut noise, &mut |f| {
        frames.push(f);
        Ok(())
    })
    .unwrap();
    assert_eq!(noise.remaining(), 0, "{name}: recorded draws left unused");
    let video = Tensor::cat(&frames, 2).unwrap();
    close(
        &format!("{name} video"),
        &video,
        &t(&format!("{name}.video")),
        dtype,
    );
}

#[test]
fn text_to_video_from_the_single_file_matches_diffusers() {
    let mut m = model(LtxSource::SingleFile(
        dir().join("ltxv-tiny-0.9.1.safetensors"),
    ));
    run("t2v", &mut m, Mode::Text, Steps::Count(3));
}

#[test]
fn image_to_video_matches_diffusers() {
    let mut m = model(LtxSource::Diffusers(dir().join("ltx-tiny")));
    run(
        "i2v",
        &mut m,
        Mode::Image(picture("i2v.image")),
        Steps::Count(3),
    );
}

fn conditions(run: &str) -> Vec<Condition> {
    fixture().json["runs"][run]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Condition {
            media: picture(c["image"].as_str().unwrap()),
            frame: c["frame_index"].as_u64().unwrap() as usize,
            strength: c["strength"].as_f64().unwrap(),
        })
        .collect()
}

#[test]
fn keyframes_at_first_and_last_frame_match_diffusers() {
    let mut m = model(LtxSource::Diffusers(dir().join("ltx-tiny")));
    let c = conditions("cond_transition");
    run(
        "cond_transition",
        &mut m,
        Mode::Conditions(c),
        Steps::LinearQuadratic(3),
    );
}

#[test]
fn a_keyframe_in_the_middle_with_strength_matches_diffusers() {
    let mut m = model(LtxSource::Diffusers(dir().join("ltx-tiny")));
    let c = conditions("cond_middle");
    run(
        "cond_middle",
        &mut m,
        Mode::Conditions(c),
        Steps::LinearQuadratic(3),
    );
}

#[test]
fn the_schedules_match_diffusers() {
    for run in ["t2v", "i2v", "cond_transition", "cond_middle"] {
        let spec = &fixture().json["runs"][run];
        let cfg: ScheduleConfig = serde_json::from_value(spec["scheduler"].clone()).unwrap();
        let steps = if run.starts_with("cond") {
            Steps::LinearQuadratic(3)
        } else {
            Steps::Count(3)
        };
        let frames = spec["num_frames"].as_u64().unwrap() as usize;
        let seq = ((frames - 1) / 8 + 1) * 2 * 4;
        let s = reelsmith_video::ltx::schedule::Schedule::new(&cfg, &steps, seq).unwrap();
        let want: Vec<f64> = spec["timesteps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (a, b) in s.timesteps.iter().zip(&want) {
            assert!((a - b).abs() < 1e-3, "{run}: {:?} vs {want:?}", s.timesteps);
        }
    }
}

/// Bad input fails before any network runs, naming the nearest valid values.
#[test]
fn wrong_frame_counts_and_sizes_are_refused_with_the_nearest_values() {
    let mut m = model(LtxSource::Diffusers(dir().join("ltx-tiny")));
    m.configs.schedule = ScheduleConfig::default();
    let (prompt, negative) = prompts();
    let mut req = Request {
        prompt,
        negative: Some(negative),
        guidance: 3.0,
        width: 64,
        height: 32,
        frames: 12,
        frame_rate: 25.0,
        steps: Steps::Count(2),
        mode: Mode::Text,
        cond_noise_scale: 0.15,
    };
    let mut noise = reelsmith_kit::noise::Seeded::new(1);
    let e = m
        .sample(&req, &mut noise, &mut |_, _, _| true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("9 and 17"), "{e}");
    req.frames = 9;
    req.width = 70;
    let e = m
        .sample(&req, &mut noise, &mut |_, _, _| true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiples of 16"), "{e}");
    // And cancelling between steps stops the run.
    req.width = 64;
    let e = m
        .sample(&req, &mut noise, &mut |_, _, _| false)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "cancelled");
    let _ = noise.draw(&[1], &td().device);
}

/// T5 (the diffusers folder's `text_encoder` and tokenizer) against transformers: the padded
/// ids, the mask and every state.
#[test]
fn the_text_encoder_matches_transformers() {
    let f = &fixture().json["t5"];
    let mut te = reelsmith_video::ltx::text::TextEncoder::load(
        &dir().join("ltx-tiny/text_encoder"),
        &dir().join("ltx-tiny/tokenizer"),
        &td().device,
    )
    .unwrap();
    te.max_tokens = f["max_sequence_length"].as_u64().unwrap() as usize;
    let ids = t("t5.ids").to_dtype(DType::I64).unwrap();
    for (row, text) in [(0, "negative_prompt"), (1, "prompt")] {
        let (got, real, cut) = te.tokens(f[text].as_str().unwrap());
        let want: Vec<u32> = ids
            .i(row)
            .unwrap()
            .to_vec1::<i64>()
            .unwrap()
            .iter()
            .map(|&v| v as u32)
            .collect();
        assert_eq!(got, want, "{text} ids");
        assert_eq!(cut, 0);
        let p = te.encode_ids(&got, real).unwrap();
        let mask = t("t5.mask")
            .i(row..row + 1)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        assert_eq!(
            p.mask.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            mask.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        close(
            &format!("t5 {text}"),
            &p.embeds,
            &t("t5.hidden").i(row..row + 1).unwrap(),
            DType::F32,
        );
    }
}

/// A decoder that draws nothing (its last convolution zeroed, biased to black) fails the decode
/// instead of writing a black video, naming the dtypes.
#[test]
fn a_black_decode_is_an_error() {
    let mut m = model(LtxSource::Diffusers(dir().join("ltx-tiny")));
    let vae_dir = dir().join("ltx-tiny/vae");
    let cfg = reelsmith_video::ltx::vae::LtxVaeConfig::from_json(
        &std::fs::read_to_string(vae_dir.join("config.json")).unwrap(),
    )
    .unwrap();
    let mut w = candle_core::safetensors::load(
        vae_dir.join("diffusion_pytorch_model.safetensors"),
        &td().device,
    )
    .unwrap();
    for k in ["decoder.conv_out.conv.weight", "decoder.conv_out.conv.bias"] {
        let t = w[k].to_dtype(DType::F32).unwrap();
        let v = if k.ends_with("bias") {
            (t.zeros_like().unwrap() - 5.0).unwrap()
        } else {
            t.zeros_like().unwrap()
        };
        w.insert(k.to_string(), v);
    }
    let vb = candle_nn::VarBuilder::from_tensors(w, DType::F32, &td().device);
    m.vae = reelsmith_video::ltx::vae::LtxVae::new(vb, &cfg).unwrap();
    let z = Tensor::zeros((1, 8, 2, 2, 4), DType::F32, &td().device).unwrap();
    let mut noise = reelsmith_kit::noise::Seeded::new(3);
    let e = m
        .decode(&z, &DecodeParams::default(), &mut noise, &mut |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("black") && e.contains("F32"), "{e}");
}
