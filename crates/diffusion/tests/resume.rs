//! Resuming the sampling loop from a checkpoint gives the same image, bit for bit, as a run
//! that never stopped (CPU, f32), for every sampler and for text-to-image, image-to-image,
//! inpainting and the refiner's resume without its init picture. The networks are the tiny
//! random-weight models of the parity fixtures (`tests/fixtures/diffusion`, committed), so this
//! runs everywhere without downloads.

use std::cell::RefCell;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use reelsmith_diffusion::build::build;
use reelsmith_diffusion::checkpoint::Checkpoint;
use reelsmith_diffusion::model::part_of;
use reelsmith_diffusion::noise::Seeded;
use reelsmith_diffusion::pipeline::{
    Conditioning, Error, Family, InitImage, Params, Pipeline, TokenIds,
};
use reelsmith_diffusion::resume::{LoopState, Resume};
use reelsmith_diffusion::scheduler::{SamplerKind, ScheduleConfig};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/diffusion")
}

/// A fixture's pipeline on the CPU in f32, with its io tensors.
fn fixture(name: &str, family: Family, files: &[&str]) -> (Pipeline, Value, Tensors) {
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join(format!("{name}.json"))).unwrap())
            .unwrap();
    let io =
        candle_core::safetensors::load(dir().join(format!("{name}.io.safetensors")), &Device::Cpu)
            .unwrap();
    let paths: Vec<PathBuf> = files.iter().map(|f| dir().join(f)).collect();
    let ckpt = Checkpoint::open(&paths).unwrap();
    let schedule: ScheduleConfig =
        serde_json::from_value(json["scheduler"].clone()).unwrap_or_default();
    let p = build(
        family,
        &json,
        schedule,
        DType::F32,
        &Device::Cpu,
        |net, cfg| {
            ckpt.var_builder(part_of(net, family), cfg, &[], DType::F32, &Device::Cpu)
                .map_err(|e| Error::Invalid(e.to_string()))
        },
    )
    .unwrap();
    (p, json, Tensors(io))
}

struct Tensors(std::collections::HashMap<String, Tensor>);

impl Tensors {
    fn t(&self, key: &str) -> Tensor {
        self.0[key].clone()
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
}

fn params(sampler: SamplerKind, steps: usize, cfg: f64) -> Params {
    Params {
        sampler,
        steps,
        cfg,
        width: 16,
        height: 16,
        batch: 1,
        aesthetic: (6.0, 2.5),
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// One conditioned run: what is sampled, and with what.
struct Run<'a> {
    p: &'a Pipeline,
    cond: &'a Conditioning,
    uncond: Option<&'a Conditioning>,
    params: Params,
    init: Option<&'a InitImage>,
    seed: u64,
}

impl Run<'_> {
    /// Runs from `from` (or the start) to the end; returns the image and the steps it ran.
    fn finish(&self, from: Option<LoopState>, init: Option<&InitImage>) -> (Tensor, usize) {
        let mut ran = 0;
        let image = self
            .p
            .generate_resumable(
                self.cond,
                self.uncond,
                &self.params,
                init,
                &mut Seeded::new(self.seed),
                &mut |_| {
                    ran += 1;
                    true
                },
                Resume {
                    from,
                    on_state: None,
                },
            )
            .unwrap();
        (image, ran)
    }

    /// Runs until step `stop`, where the caller "crashes" right after the checkpoint; returns
    /// the checkpoint's bytes.
    fn stop_at(&self, stop: usize) -> Vec<u8> {
        let saved = RefCell::new(None);
        let mut save = |s: &LoopState| {
            if s.done == stop {
                *saved.borrow_mut() = Some(s.encode()?);
            }
            Ok(())
        };
        let r = self.p.generate_resumable(
            self.cond,
            self.uncond,
            &self.params,
            self.init,
            &mut Seeded::new(self.seed),
            &mut |step| step.done < stop,
            Resume {
                from: None,
                on_state: Some(&mut save),
            },
        );
        assert!(matches!(r, Err(Error::Cancelled)), "stopped at {stop}");
        saved.into_inner().expect("a checkpoint at the stop")
    }

    /// For every step k: stop after k, resume from the saved bytes (with or without the init
    /// picture), and require the uninterrupted image bit for bit.
    fn check_every_step(&self, what: &str, init_on_resume: bool) {
        let (want, total) = self.finish(None, self.init);
        assert!(total >= 3, "{what}: {total} steps are too few to test");
        for k in 1..total {
            let bytes = self.stop_at(k);
            let state = LoopState::decode(&bytes, &Device::Cpu).unwrap();
            assert_eq!((state.done, state.total), (k, total), "{what}");
            let init = if init_on_resume { self.init } else { None };
            let (got, ran) = self.finish(Some(state), init);
            assert_eq!(ran, total - k, "{what}: a resumed run only runs the rest");
            assert!(
                bits(&got) == bits(&want),
                "{what}: resumed after step {k}/{total}, the image differs"
            );
        }
    }
}

fn sd15() -> (Pipeline, Conditioning, Conditioning, Tensors) {
    let (p, _, io) = fixture("sd15", Family::Sd1, &["sd15.safetensors"]);
    let ids = |row| TokenIds {
        clip: Some(io.ids("ids", row)),
        ..Default::default()
    };
    let uncond = p.encode(&ids(0)).unwrap();
    let cond = p.encode(&ids(1)).unwrap();
    (p, cond, uncond, io)
}

#[test]
fn every_sampler_resumes_bit_identically() {
    let (p, cond, uncond, _) = sd15();
    for sampler in [
        SamplerKind::Ddim,
        SamplerKind::Euler,
        SamplerKind::EulerA,
        SamplerKind::DpmPP2M,
    ] {
        let run = Run {
            p: &p,
            cond: &cond,
            uncond: Some(&uncond),
            params: params(sampler, 6, 7.5),
            init: None,
            seed: 11,
        };
        run.check_every_step(sampler.name(), true);
    }
}

#[test]
fn image_to_image_and_inpainting_resume_bit_identically() {
    let (p, cond, uncond, io) = sd15();
    let i2i = InitImage {
        image: io.t("i2i.init"),
        strength: 0.6,
        mask: None,
    };
    let inpaint = InitImage {
        image: io.t("inpaint.init"),
        strength: 0.8,
        mask: Some(io.t("inpaint.mask")),
    };
    for (what, init, sampler) in [
        ("i2i dpm++", &i2i, SamplerKind::DpmPP2M),
        ("i2i euler_a", &i2i, SamplerKind::EulerA),
        ("inpaint euler_a", &inpaint, SamplerKind::EulerA),
        ("inpaint dpm++", &inpaint, SamplerKind::DpmPP2M),
    ] {
        let run = Run {
            p: &p,
            cond: &cond,
            uncond: Some(&uncond),
            params: params(sampler, 10, 7.5),
            init: Some(init),
            seed: 5,
        };
        run.check_every_step(what, true);
        // The refiner's case: the init picture is not at hand when resuming.
        run.check_every_step(&format!("{what} without init"), false);
    }
}

#[test]
fn the_refiner_and_flux_resume_bit_identically() {
    let (p, _, io) = fixture(
        "sdxl_refiner",
        Family::SdxlRefiner,
        &["sdxl_refiner.safetensors"],
    );
    let ids = |row| TokenIds {
        clip2: Some(io.ids("ids2", row)),
        ..Default::default()
    };
    let (uncond, cond) = (p.encode(&ids(0)).unwrap(), p.encode(&ids(1)).unwrap());
    let init = InitImage {
        image: io.t("i2i.init"),
        strength: 0.5,
        mask: None,
    };
    let run = Run {
        p: &p,
        cond: &cond,
        uncond: Some(&uncond),
        params: params(SamplerKind::Euler, 8, 5.0),
        init: Some(&init),
        seed: 3,
    };
    run.check_every_step("refiner", false);

    let (p, _, io) = fixture(
        "flux",
        Family::Flux,
        &[
            "flux1-schnell.safetensors",
            "ae.safetensors",
            "clip_l.safetensors",
            "t5xxl.safetensors",
        ],
    );
    let cond = p
        .encode(&TokenIds {
            clip: Some(io.ids("clip_ids", 1)),
            t5: Some(io.ids("t5_ids", 0)),
            ..Default::default()
        })
        .unwrap();
    let run = Run {
        p: &p,
        cond: &cond,
        uncond: None,
        params: params(SamplerKind::Flow, 4, 0.0),
        init: None,
        seed: 9,
    };
    run.check_every_step("flux", true);
}

/// What the state carries matters: without DPM++'s history or the noise stream's position the
/// resumed image differs (so the tests above would catch a state that leaves them out).
#[test]
fn the_history_and_the_noise_position_are_needed() {
    let (p, cond, uncond, _) = sd15();
    for (sampler, strip) in [
        (
            SamplerKind::DpmPP2M,
            (|s: &mut LoopState| s.history.previous_x0 = None) as fn(&mut LoopState),
        ),
        (SamplerKind::EulerA, |s: &mut LoopState| {
            s.noise_draws.clear()
        }),
    ] {
        let run = Run {
            p: &p,
            cond: &cond,
            uncond: Some(&uncond),
            params: params(sampler, 6, 7.5),
            init: None,
            seed: 11,
        };
        let (want, _) = run.finish(None, None);
        let mut state = LoopState::decode(&run.stop_at(3), &Device::Cpu).unwrap();
        strip(&mut state);
        let (got, _) = run.finish(Some(state), None);
        assert!(bits(&got) != bits(&want), "{}", sampler.name());
    }
}

#[test]
fn a_checkpoint_of_another_run_is_refused_before_any_work() {
    let (p, cond, uncond, io) = sd15();
    let run = Run {
        p: &p,
        cond: &cond,
        uncond: Some(&uncond),
        params: params(SamplerKind::DpmPP2M, 6, 7.5),
        init: None,
        seed: 11,
    };
    let state = LoopState::decode(&run.stop_at(2), &Device::Cpu).unwrap();
    let refused = |params: Params, init: Option<&InitImage>| {
        let e = p.check_resume(&state, &params, init).unwrap_err();
        assert!(matches!(e, Error::Checkpoint(_)), "{e}");
        e.to_string()
    };
    assert!(p.check_resume(&state, &run.params, None).is_ok());
    assert!(refused(params(SamplerKind::Euler, 6, 7.5), None).contains("dpmpp_2m"));
    refused(params(SamplerKind::DpmPP2M, 8, 7.5), None);
    let mut big = params(SamplerKind::DpmPP2M, 6, 7.5);
    big.width = 32;
    assert!(refused(big, None).contains("latents"));
    let i2i = InitImage {
        image: io.t("i2i.init"),
        strength: 0.5,
        mask: None,
    };
    refused(params(SamplerKind::DpmPP2M, 6, 7.5), Some(&i2i));
    // The run itself refuses it too, with the same error kind.
    let e = p
        .generate_resumable(
            &cond,
            Some(&uncond),
            &params(SamplerKind::Euler, 6, 7.5),
            None,
            &mut Seeded::new(11),
            &mut |_| true,
            Resume {
                from: Some(state),
                on_state: None,
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::Checkpoint(_)), "{e}");
}
