//! Argument checks and checkpoint shapes of the Wan bench.

use super::*;

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
        wan: WanBenchArgs::default(),
    }
}

#[test]
fn arguments_are_checked_and_errors_name_the_nearest_valid_values() {
    let reg = Registry::load(None).unwrap();
    let p = check(&args("wan2.1-t2v-1.3b", "832x480", 81), &reg).unwrap();
    assert_eq!((p.width, p.height, p.frames), (832, 480, 81));
    assert_eq!(p.config, WanTransformerConfig::t2v_1_3b());
    assert_eq!(p.grid(), (21, 60, 104));
    assert_eq!(p.tokens(), (21, 30, 52));
    assert_eq!(p.net.shift, 8.0);

    let e = check(&args("wan-1.3b", "832x480", 80), &reg).unwrap_err();
    assert!(
        e.contains("77") && e.contains("81") && e.contains("4k+1"),
        "{e}"
    );
    let e = check(&args("wan-1.3b", "832x480", 2), &reg).unwrap_err();
    assert!(e.contains("nearest valid counts are 5"), "{e}");
    let e = check(&args("wan-1.3b", "830x470", 5), &reg).unwrap_err();
    assert!(
        e.contains("multiples of 16") && e.contains("832×464"),
        "{e}"
    );
    let e = check(&args("wan-1.3b", "wide", 5), &reg).unwrap_err();
    assert!(e.contains("WIDTHxHEIGHT") && e.contains("16"), "{e}");
    let e = check(&args("wan-1.3c", "64x64", 5), &reg).unwrap_err();
    assert!(e.contains("did you mean wan-1.3b?"), "{e}");
    assert!(
        e.contains("wan-tiny") && e.contains("wan2.1-t2v-14b"),
        "{e}"
    );
    let e = check(&args("wan2.1-clip-vision-h", "64x64", 5), &reg).unwrap_err();
    assert!(e.contains("not a Wan2.1 transformer"), "{e}");
    let mut a = args("wan-tiny", "64x64", 5);
    a.steps = 0;
    assert!(check(&a, &reg).unwrap_err().contains("--steps"));

    // --layers: a 14B builds 2 blocks unless told; never more than it has.
    let p = check(&args("wan2.1-t2v-14b", "832x480", 5), &reg).unwrap();
    assert_eq!(p.config.num_layers, 2);
    assert_eq!(p.net.config, WanTransformerConfig::t2v_14b());
    let mut a = args("wan-14b", "832x480", 5);
    a.wan.layers = Some(41);
    let e = check(&a, &reg).unwrap_err();
    assert!(e.contains("40 blocks") && e.contains("1 to 40"), "{e}");
    a.wan.layers = Some(0);
    assert!(check(&a, &reg).is_err());
    a.wan.layers = Some(40);
    assert_eq!(
        check(&a, &reg).unwrap().config,
        WanTransformerConfig::t2v_14b()
    );
    a.wan.memory_cap = Some(24.0);
    assert_eq!(check(&a, &reg).unwrap().memory_cap, Some(24 << 30));
    a.wan.memory_cap = Some(-1.0);
    assert!(check(&a, &reg).unwrap_err().contains("--memory-cap"));
    assert!(refuse_for_ltx(&a.wan).is_err());
    assert!(refuse_for_ltx(&WanBenchArgs::default()).is_ok());
}

#[test]
fn wan_names_are_claimed_and_registry_ids_map_to_the_releases() {
    let reg = Registry::load(None).unwrap();
    for m in [
        "wan-1.3b",
        "wan-14b",
        "wan-tiny",
        "wan2.1-t2v-14b",
        "wan-typo",
    ] {
        assert!(claims(m, &reg), "{m}");
    }
    for m in ["ltxv-2b", "tiny", "ltx-video-2b", "sd15"] {
        assert!(!claims(m, &reg), "{m}");
    }
    let cfg = |id: &str| resolve_model(id, &reg).unwrap().config;
    assert_eq!(cfg("wan2.1-t2v-1.3b"), WanTransformerConfig::t2v_1_3b());
    assert_eq!(
        cfg("wan2.1-t2v-1.3b-official"),
        WanTransformerConfig::t2v_1_3b()
    );
    assert_eq!(cfg("wan2.1-t2v-14b-fp8"), WanTransformerConfig::t2v_14b());
    assert_eq!(cfg("wan2.1-i2v-14b-480p"), WanTransformerConfig::i2v_14b());
    assert_eq!(
        cfg("wan2.1-flf2v-14b-720p"),
        WanTransformerConfig::flf2v_14b()
    );
    assert_eq!(
        resolve_model("wan2.1-i2v-14b-480p", &reg).unwrap().shift,
        3.0
    );
}

#[test]
fn the_tiny_config_is_the_fixtures_and_configs_read_back() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wan/transformer/diffusers-t2v/config.json");
    let fx = WanTransformerConfig::from_json(&std::fs::read_to_string(path).unwrap()).unwrap();
    let reg = Registry::load(None).unwrap();
    assert_eq!(resolve_model("wan-tiny", &reg).unwrap().config, fx);
    for c in [
        fx,
        WanTransformerConfig::t2v_1_3b(),
        WanTransformerConfig::t2v_14b(),
        WanTransformerConfig::i2v_14b(),
        WanTransformerConfig::flf2v_14b(),
    ] {
        let back = WanTransformerConfig::from_json(&config_json(&c).to_string()).unwrap();
        assert_eq!(back, c);
    }
}

#[test]
fn bf16_rounds_to_nearest_even() {
    assert_eq!(bf16_bits(1.0), 0x3f80);
    assert_eq!(bf16_bits(-2.0), 0xc000);
    assert_eq!(bf16_bits(0.0), 0);
    // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa (1.0).
    assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
    assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
}

/// The whole of ours on the tiny model: the checkpoint written loads as a diffusers folder
/// (every tensor used), both residencies run the timed steps.
#[test]
fn the_random_checkpoint_loads_and_steps_in_both_residencies() {
    let reg = Registry::load(None).unwrap();
    let mut a = args("wan-tiny", "32x32", 5);
    a.steps = 2;
    let plan = check(&a, &reg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let written = write_checkpoint(dir.path(), &plan.config, 2).unwrap();
    let params = count_params(&plan.config);
    assert!(written > 2 * params && written < 2 * params + 65536);
    let run = Run {
        plan: &plan,
        dev: Device::Cpu,
        device: "cpu",
        dtype: DType::F32,
        dir: dir.path().to_path_buf(),
        threads: 2,
    };
    for residency in [
        Residency::Resident,
        Residency::Streamed { resident_blocks: 0 },
    ] {
        let r = ours_round(&run, residency).unwrap();
        assert_eq!(r.steps.len(), 2, "{residency:?}");
        assert!(r.steps.iter().all(|&t| t > 0.0));
        assert!(r.block_bytes > 0 && r.resident_bytes > 0);
    }
    let net =
        WanTransformer::load(dir.path(), DType::F32, &Device::Cpu, Residency::Resident).unwrap();
    assert_eq!(net.config(), &plan.config);
}
