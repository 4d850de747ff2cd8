//! Parity with diffusers/transformers on tiny random-weight models of every family
//! (tests/fixtures/diffusion, made by scripts/make-diffusion-fixture.py).
//!
//! Tolerance (f32 on the CPU; the references are f32 from the same f16-rounded weights), for
//! one network call (text encoder, UNet/transformer, VAE) and for every step's latents and the
//! decoded image of a whole sampling run alike: relative L2 error ≤ 1e-4 and
//! max |Δ| ≤ 1e-3 · max |reference|. Measured errors are printed (`-- --nocapture`): ≤ 3e-5
//! (the UNet's GEGLU uses tanh GELU where diffusers uses erf), ≤ 3e-7 for the others.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Tensor};
use reelsmith_diffusion::build::build;
use reelsmith_diffusion::checkpoint::Checkpoint;
use reelsmith_diffusion::lora::LoraSpec;
use reelsmith_diffusion::model::part_of;
use reelsmith_diffusion::noise::Replay;
use reelsmith_diffusion::pipeline::{
    pack, Conditioning, Denoiser, Family, InitImage, Params, Pipeline, TokenIds,
};
use reelsmith_diffusion::scheduler::{SamplerKind, ScheduleConfig};
use reelsmith_diffusion::unet::UNetInput;
use reelsmith_kit::testing::TestDevice;
use reelsmith_kit::Precision;
use serde_json::Value;

/// Where the networks run (`REELSMITH_TEST_DEVICE`, `REELSMITH_TEST_DTYPE`; CPU f32 by default).
fn test_device() -> &'static TestDevice {
    static TD: std::sync::OnceLock<TestDevice> = std::sync::OnceLock::new();
    TD.get_or_init(TestDevice::from_env)
}

fn precision_of(family: Family) -> Precision {
    match family {
        Family::Flux => Precision::Bf16,
        _ => Precision::F16,
    }
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/diffusion")
}

struct Fixture {
    json: Value,
    io: HashMap<String, Tensor>,
}

impl Fixture {
    fn load(family: &str) -> Self {
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(dir().join(format!("{family}.json"))).unwrap(),
        )
        .unwrap();
        let io = candle_core::safetensors::load(
            dir().join(format!("{family}.io.safetensors")),
            &test_device().device,
        )
        .unwrap();
        Self { json, io }
    }

    fn t(&self, key: &str) -> Tensor {
        self.io
            .get(key)
            .unwrap_or_else(|| panic!("fixture tensor {key} missing"))
            .clone()
    }

    fn ids(&self, key: &str, row: usize) -> Vec<u32> {
        self.t(key)
            .get(row)
            .unwrap()
            .to_dtype(DType::I64)
            .unwrap()
            .to_vec1::<i64>()
            .unwrap()
            .into_iter()
            .map(|v| v as u32)
            .collect()
    }

    fn run(&self, name: &str) -> &Value {
        &self.json["runs"][name]
    }

    fn noise(&self, run: &str) -> Replay {
        let draws = self.run(run)["noise"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| self.t(d["key"].as_str().unwrap()))
            .collect();
        Replay::new(draws)
    }
}

/// rel-L2 and max|Δ|/max|ref|, asserted against the limits (widened by the test device's
/// dtype, see `reelsmith_kit::testing`).
fn check(what: &str, got: &Tensor, want: &Tensor, rel_limit: f64, max_limit: f64) {
    test_device().assert_close(what, got, want, rel_limit, max_limit);
}

fn check_call(what: &str, got: &Tensor, want: &Tensor) {
    check(what, got, want, 1e-4, 1e-3);
}

fn check_run(what: &str, got: &Tensor, want: &Tensor) {
    check(what, got, want, 1e-4, 1e-3);
}

fn family_of(name: &str) -> Family {
    match name {
        "sd15" => Family::Sd1,
        "sd21" => Family::Sd2,
        "sdxl" => Family::Sdxl,
        "sdxl_refiner" => Family::SdxlRefiner,
        "flux" => Family::Flux,
        _ => unreachable!(),
    }
}

fn files_of(name: &str) -> Vec<PathBuf> {
    let names: Vec<&str> = match name {
        "flux" => vec![
            "flux1-schnell.safetensors",
            "ae.safetensors",
            "clip_l.safetensors",
            "t5xxl.safetensors",
        ],
        "sd15" => vec!["sd15.safetensors"],
        "sd21" => vec!["sd21.safetensors"],
        "sdxl" => vec!["sdxl.safetensors"],
        "sdxl_refiner" => vec!["sdxl_refiner.safetensors"],
        _ => unreachable!(),
    };
    names.into_iter().map(|n| dir().join(n)).collect()
}

fn pipeline(fx: &Fixture, name: &str, loras: &[LoraSpec]) -> Pipeline {
    let family = family_of(name);
    let ckpt = Checkpoint::open(&files_of(name)).unwrap();
    let td = test_device();
    let dtype = td.dtype(precision_of(family));
    let schedule: ScheduleConfig =
        serde_json::from_value(fx.json["scheduler"].clone()).unwrap_or_default();
    build(family, &fx.json, schedule, dtype, &td.device, |net, cfg| {
        ckpt.var_builder(part_of(net, family), cfg, loras, dtype, &td.device)
            .map_err(|e| reelsmith_diffusion::pipeline::Error::Invalid(e.to_string()))
    })
    .unwrap()
}

/// Runs one recorded pipeline run and checks every step and the image.
fn replay_run(
    fx: &Fixture,
    p: &mut Pipeline,
    run: &str,
    cond: &Conditioning,
    uncond: Option<&Conditioning>,
    init: Option<&InitImage>,
) {
    let r = fx.run(run);
    let sched = &r["scheduler"];
    let kind = SamplerKind::from_diffusers_class(sched["_class_name"].as_str().unwrap()).unwrap();
    p.schedule = serde_json::from_value(sched.clone()).unwrap();
    let params = Params {
        sampler: kind,
        steps: r["num_inference_steps"].as_u64().unwrap() as usize,
        cfg: r["guidance_scale"].as_f64().unwrap(),
        width: r["width"].as_u64().unwrap() as usize,
        height: r["height"].as_u64().unwrap() as usize,
        batch: 1,
        aesthetic: (
            r["aesthetic_score"].as_f64().unwrap_or(6.0),
            r["negative_aesthetic_score"].as_f64().unwrap_or(2.5),
        ),
    };
    let mut noise = fx.noise(run);
    let mut steps = Vec::new();
    let flux = p.family == Family::Flux;
    let image = p
        .generate(cond, uncond, &params, init, &mut noise, &mut |s| {
            steps.push(if flux {
                pack(s.latents).unwrap()
            } else {
                s.latents.clone()
            });
            true
        })
        .unwrap();
    assert_eq!(noise.remaining(), 0, "{run}: recorded draws left unused");
    for (i, s) in steps.iter().enumerate() {
        check_run(
            &format!("{run} step {i}"),
            s,
            &fx.t(&format!("{run}.step.{i}")),
        );
    }
    check_run(
        &format!("{run} image"),
        &image,
        &fx.t(&format!("{run}.image")),
    );
}

fn vae_roundtrip(fx: &Fixture, p: &Pipeline, name: &str) {
    let post = p.vae.encode(&fx.t("vae.image")).unwrap();
    check_call(&format!("{name} vae mean"), &post.mean, &fx.t("vae.mean"));
    let decoded = p.vae.decode(&fx.t("vae.latents")).unwrap();
    check_call(
        &format!("{name} vae decode"),
        &decoded,
        &fx.t("vae.decoded"),
    );
}

fn unet_call(fx: &Fixture, p: &Pipeline, name: &str, ctx: &Tensor, want: &Tensor) {
    let Denoiser::UNet(unet) = &p.denoiser else {
        unreachable!()
    };
    let t = fx
        .t("unet.t")
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()[0] as f64;
    let (pooled, ids) = (fx.io.get("unet.pooled"), fx.io.get("unet.time_ids"));
    let out = unet
        .forward(
            &fx.t("unet.latents"),
            t,
            &UNetInput {
                context: ctx,
                added: pooled.zip(ids),
            },
        )
        .unwrap();
    check_call(&format!("{name} unet call"), &out, want);
}

fn clip_ids(fx: &Fixture, key: &str, row: usize) -> TokenIds {
    TokenIds {
        clip: Some(fx.ids(key, row)),
        ..Default::default()
    }
}

#[test]
fn sd15_matches_diffusers() {
    let fx = Fixture::load("sd15");
    let mut p = pipeline(&fx, "sd15", &[]);
    let uncond = p.encode(&clip_ids(&fx, "ids", 0)).unwrap();
    let cond = p.encode(&clip_ids(&fx, "ids", 1)).unwrap();
    let both = Tensor::cat(&[&uncond.context, &cond.context], 0).unwrap();
    check_call("sd15 text encoder", &both, &fx.t("te.hidden"));
    unet_call(&fx, &p, "sd15", &fx.t("unet.ctx"), &fx.t("unet.out"));
    vae_roundtrip(&fx, &p, "sd15");
    for run in ["t2i.ddim", "t2i.euler", "t2i.euler_a", "t2i.dpmpp_2m"] {
        replay_run(&fx, &mut p, run, &cond, Some(&uncond), None);
    }
    let i2i = InitImage {
        image: fx.t("i2i.init"),
        strength: fx.run("i2i")["strength"].as_f64().unwrap(),
        mask: None,
    };
    replay_run(&fx, &mut p, "i2i", &cond, Some(&uncond), Some(&i2i));
    let inpaint = InitImage {
        image: fx.t("inpaint.init"),
        strength: fx.run("inpaint")["strength"].as_f64().unwrap(),
        mask: Some(fx.t("inpaint.mask")),
    };
    replay_run(&fx, &mut p, "inpaint", &cond, Some(&uncond), Some(&inpaint));
}

#[test]
fn sd15_loras_match_peft_in_both_formats() {
    let fx = Fixture::load("sd15");
    let scale = fx.json["lora"]["scale"].as_f64().unwrap() as f32;
    for file in ["sd15_lora_kohya.safetensors", "sd15_lora_peft.safetensors"] {
        let p = pipeline(&fx, "sd15", &[LoraSpec::new(dir().join(file), scale)]);
        let uncond = p.encode(&clip_ids(&fx, "ids", 0)).unwrap();
        let cond = p.encode(&clip_ids(&fx, "ids", 1)).unwrap();
        let both = Tensor::cat(&[&uncond.context, &cond.context], 0).unwrap();
        check_call(
            &format!("{file} text encoder"),
            &both,
            &fx.t("lora.te.hidden"),
        );
        unet_call(
            &fx,
            &p,
            file,
            &fx.t("lora.te.hidden"),
            &fx.t("lora.unet.out"),
        );
    }
    // Without the LoRA the outputs differ: the merge is what makes the match.
    let plain = pipeline(&fx, "sd15", &[]);
    let cond = plain.encode(&clip_ids(&fx, "ids", 1)).unwrap();
    let want = fx.t("lora.te.hidden").get(1).unwrap().unsqueeze(0).unwrap();
    let diff = (cond.context - want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        diff > 1e-3,
        "the LoRA changes the text encoder (max |Δ| {diff})"
    );
}

#[test]
fn sd21_v_prediction_and_turbo_match_diffusers() {
    let fx = Fixture::load("sd21");
    let mut p = pipeline(&fx, "sd21", &[]);
    let uncond = p.encode(&clip_ids(&fx, "ids", 0)).unwrap();
    let cond = p.encode(&clip_ids(&fx, "ids", 1)).unwrap();
    let both = Tensor::cat(&[&uncond.context, &cond.context], 0).unwrap();
    check_call("sd21 text encoder", &both, &fx.t("te.hidden"));
    unet_call(&fx, &p, "sd21", &fx.t("unet.ctx"), &fx.t("unet.out"));
    vae_roundtrip(&fx, &p, "sd21");
    replay_run(&fx, &mut p, "t2i.dpmpp_2m", &cond, Some(&uncond), None);
    replay_run(&fx, &mut p, "t2i.euler_a", &cond, None, None);
}

fn sdxl_ids(fx: &Fixture, row: usize) -> TokenIds {
    TokenIds {
        clip: Some(fx.ids("ids", row)),
        clip2: Some(fx.ids("ids2", row)),
        ..Default::default()
    }
}

#[test]
fn sdxl_and_turbo_match_diffusers() {
    let fx = Fixture::load("sdxl");
    let mut p = pipeline(&fx, "sdxl", &[]);
    let uncond = p.encode(&sdxl_ids(&fx, 0)).unwrap();
    let cond = p.encode(&sdxl_ids(&fx, 1)).unwrap();
    let ctx = Tensor::cat(&[&uncond.context, &cond.context], 0).unwrap();
    check_call("sdxl context", &ctx, &fx.t("ctx"));
    let pooled = Tensor::cat(
        &[
            uncond.pooled.as_ref().unwrap(),
            cond.pooled.as_ref().unwrap(),
        ],
        0,
    )
    .unwrap();
    check_call("sdxl pooled", &pooled, &fx.t("pooled"));
    unet_call(&fx, &p, "sdxl", &fx.t("unet.ctx"), &fx.t("unet.out"));
    vae_roundtrip(&fx, &p, "sdxl");
    replay_run(&fx, &mut p, "t2i.euler", &cond, Some(&uncond), None);
    replay_run(&fx, &mut p, "t2i.euler_a", &cond, None, None);

    let scale = fx.json["lora"]["scale"].as_f64().unwrap() as f32;
    let lora = LoraSpec::new(dir().join("sdxl_lora_kohya.safetensors"), scale);
    let p = pipeline(&fx, "sdxl", &[lora]);
    unet_call(
        &fx,
        &p,
        "sdxl kohya lora",
        &fx.t("unet.ctx"),
        &fx.t("lora.unet.out"),
    );
}

#[test]
fn sdxl_refiner_matches_diffusers() {
    let fx = Fixture::load("sdxl_refiner");
    let mut p = pipeline(&fx, "sdxl_refiner", &[]);
    let ids = |row| TokenIds {
        clip2: Some(fx.ids("ids2", row)),
        ..Default::default()
    };
    let uncond = p.encode(&ids(0)).unwrap();
    let cond = p.encode(&ids(1)).unwrap();
    let ctx = Tensor::cat(&[&uncond.context, &cond.context], 0).unwrap();
    check_call("refiner context", &ctx, &fx.t("ctx"));
    unet_call(&fx, &p, "refiner", &fx.t("unet.ctx"), &fx.t("unet.out"));
    let init = InitImage {
        image: fx.t("i2i.init"),
        strength: fx.run("i2i")["strength"].as_f64().unwrap(),
        mask: None,
    };
    replay_run(&fx, &mut p, "i2i", &cond, Some(&uncond), Some(&init));
}

#[test]
fn flux_schnell_matches_diffusers() {
    let fx = Fixture::load("flux");
    let mut p = pipeline(&fx, "flux", &[]);
    let ids = TokenIds {
        clip: Some(fx.ids("clip_ids", 1)),
        t5: Some(fx.ids("t5_ids", 0)),
        ..Default::default()
    };
    let cond = p.encode(&ids).unwrap();
    check_call("flux t5", &cond.context, &fx.t("t5.hidden"));
    let pooled = fx.t("clip.pooled");
    let want_pooled = if pooled.dim(0).unwrap() == 2 {
        pooled.get(1).unwrap().unsqueeze(0).unwrap()
    } else {
        pooled
    };
    check_call(
        "flux clip pooled",
        cond.pooled.as_ref().unwrap(),
        &want_pooled,
    );
    let Denoiser::Flux(model) = &p.denoiser else {
        unreachable!()
    };
    use candle_transformers::models::flux::WithForward;
    let out = model
        .forward(
            &fx.t("tr.x"),
            &fx.t("tr.img_ids"),
            &fx.t("tr.txt"),
            &fx.t("tr.txt_ids"),
            &fx.t("tr.t").flatten_all().unwrap(),
            &fx.t("tr.pooled"),
            None,
        )
        .unwrap();
    check_call("flux transformer call", &out, &fx.t("tr.out"));
    vae_roundtrip(&fx, &p, "flux");
    replay_run(&fx, &mut p, "t2i.flow", &cond, None, None);
}
