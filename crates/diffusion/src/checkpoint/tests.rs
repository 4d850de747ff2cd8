use super::*;

pub(crate) const FAMILIES: [&str; 5] = ["sd15", "sd21", "sdxl", "sdxl_refiner", "flux"];

/// tests/fixtures/diffusion (made by scripts/make-diffusion-fixture.py and
/// scripts/make-diffusion-keys.py); `REELSMITH_DIFFUSION_FIXTURES` points elsewhere.
pub(crate) fn fixture_dir() -> PathBuf {
    std::env::var_os("REELSMITH_DIFFUSION_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/diffusion")
        })
}

pub(crate) fn fixture(name: &str) -> PathBuf {
    let p = fixture_dir().join(name);
    assert!(
        p.exists(),
        "missing fixture {} (scripts/make-diffusion-fixture.py, scripts/make-diffusion-keys.py)",
        p.display()
    );
    p
}

/// A fixture JSON; Python's json writes `-Infinity`/`NaN` (scheduler configs), read as null.
pub(crate) fn read_json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let text = regex::Regex::new(r"-?\bInfinity\b|\bNaN\b")
        .unwrap()
        .replace_all(&text, "null");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub(crate) fn family_files(family: &str) -> Vec<PathBuf> {
    match family {
        "flux" => [
            "flux1-schnell.safetensors",
            "ae.safetensors",
            "clip_l.safetensors",
            "t5xxl.safetensors",
        ]
        .iter()
        .map(|f| fixture(f))
        .collect(),
        f => vec![fixture(&format!("{f}.safetensors"))],
    }
}

pub(crate) fn open(family: &str) -> Checkpoint {
    Checkpoint::open(&family_files(family)).unwrap()
}

/// The part's config from `<family>.json` (diffusers pipeline component names).
pub(crate) fn config(meta: &Value, part: Part) -> Value {
    let field = match part {
        Part::Unet => "unet",
        Part::Vae | Part::FluxVae => "vae",
        Part::TextEncoder => "text_encoder",
        Part::TextEncoder2 | Part::T5 => "text_encoder_2",
        Part::FluxTransformer => "transformer",
    };
    meta.get(field).cloned().unwrap_or(Value::Null)
}

pub(crate) fn part_named(name: &str) -> Part {
    *Part::ALL
        .iter()
        .find(|p| p.name() == name)
        .unwrap_or_else(|| panic!("unknown part {name}"))
}

/// `<family>.keys.json`: {part: {name: shape}} from diffusers'/transformers' converters.
fn expected_keys(family: &str) -> BTreeMap<Part, BTreeMap<String, Vec<usize>>> {
    let mut v = read_json(&format!("{family}.keys.json"));
    v.as_object_mut().unwrap().remove("fingerprint");
    let v: BTreeMap<String, BTreeMap<String, Vec<usize>>> = serde_json::from_value(v).unwrap();
    v.into_iter()
        .map(|(p, names)| (part_named(&p), names))
        .collect()
}

/// `<family>.keys.json` "fingerprint": {part: {name: Σ x_i·((i mod 97)/97 − 1/2)}}.
fn expected_fingerprints(family: &str) -> BTreeMap<Part, BTreeMap<String, f64>> {
    let v = read_json(&format!("{family}.keys.json"))["fingerprint"].clone();
    let v: BTreeMap<String, BTreeMap<String, f64>> = serde_json::from_value(v).unwrap();
    v.into_iter()
        .map(|(p, names)| (part_named(&p), names))
        .collect()
}

/// (fingerprint, Σ |x_i·w_i|) of a tensor, as scripts/make-diffusion-keys.py computes it.
fn fingerprint(t: &Tensor) -> (f64, f64) {
    let v: Vec<f64> = t
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    v.iter().enumerate().fold((0.0, 0.0), |(s, a), (i, x)| {
        let w = (i % 97) as f64 / 97.0 - 0.5;
        (s + x * w, a + (x * w).abs())
    })
}

pub(crate) fn rel_max(got: &Tensor, want: &Tensor) -> f32 {
    let d = (got - want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let m = want
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    d / m.max(f32::MIN_POSITIVE)
}

/// The f32 CPU weights of `part`, configured from the family's JSON, without LoRAs.
fn part_vb(ck: &Checkpoint, meta: &Value, part: Part) -> VarBuilder<'static> {
    ck.var_builder(part, &config(meta, part), &[], DType::F32, &Device::Cpu)
        .unwrap()
}

fn raw(ck: &Checkpoint, key: &str) -> Tensor {
    let (file, _) = ck.files.index[key];
    ck.files.mmaps[file]
        .load(key, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
}

/// Tensors no network uses, per family: the CLIP `position_ids` buffer, OpenCLIP's
/// `logit_scale`, and SD 2.x's last resblock and text_projection (diffusers drops them too).
fn expected_unused(family: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    match family {
        "sd15" => {
            out.insert(
                "cond_stage_model.transformer.text_model.embeddings.position_ids".to_string(),
            );
        }
        "sd21" => {
            let p = "cond_stage_model.model.";
            out.insert(format!("{p}logit_scale"));
            out.insert(format!("{p}text_projection"));
            for w in ["weight", "bias"] {
                for m in [
                    "attn.in_proj",
                    "attn.out_proj",
                    "ln_1",
                    "ln_2",
                    "mlp.c_fc",
                    "mlp.c_proj",
                ] {
                    let key = if m == "attn.in_proj" {
                        format!("{p}transformer.resblocks.23.attn.in_proj_{w}")
                    } else {
                        format!("{p}transformer.resblocks.23.{m}.{w}")
                    };
                    out.insert(key);
                }
            }
        }
        "sdxl" => {
            out.insert(
                "conditioner.embedders.0.transformer.text_model.embeddings.position_ids"
                    .to_string(),
            );
            out.insert("conditioner.embedders.1.model.logit_scale".to_string());
        }
        "sdxl_refiner" => {
            out.insert("conditioner.embedders.0.model.logit_scale".to_string());
        }
        _ => {}
    }
    out
}

#[test]
fn served_names_and_shapes_equal_the_diffusers_converters() {
    for family in FAMILIES {
        let ck = open(family);
        let meta = read_json(&format!("{family}.json"));
        let expected = expected_keys(family);
        for (part, want) in &expected {
            let map = ck.part_map(*part, &config(&meta, *part)).unwrap();
            let got: BTreeMap<String, Vec<usize>> = map
                .served
                .iter()
                .map(|(n, s)| (n.clone(), s.shape.clone()))
                .collect();
            let missing: Vec<_> = want
                .keys()
                .filter(|k| !got.contains_key(*k))
                .take(5)
                .collect();
            let extra: Vec<_> = got
                .keys()
                .filter(|k| !want.contains_key(*k))
                .take(5)
                .collect();
            let shapes: Vec<_> = want
                .iter()
                .filter(|(k, s)| got.get(*k).is_some_and(|g| g != *s))
                .map(|(k, s)| format!("{k}: want {s:?} got {:?}", got[k]))
                .take(5)
                .collect();
            assert!(
                missing.is_empty() && extra.is_empty() && shapes.is_empty(),
                "{family} {part}: missing {missing:?}, extra {extra:?}, shapes {shapes:?}"
            );
            assert_eq!(&got, want);
        }
        let parts: BTreeSet<Part> = ck.parts().into_iter().collect();
        let want: BTreeSet<Part> = expected.keys().copied().collect();
        assert_eq!(parts, want, "{family}: parts()");
    }
}

#[test]
fn every_checkpoint_tensor_is_used_by_some_part() {
    for family in FAMILIES {
        let ck = open(family);
        let meta = read_json(&format!("{family}.json"));
        let mut used = BTreeSet::new();
        for part in ck.parts() {
            let map = ck.part_map(part, &config(&meta, part)).unwrap();
            used.extend(map.served.values().map(|s| s.key.clone()));
        }
        let unused: BTreeSet<String> = ck
            .files
            .index
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect();
        assert_eq!(
            unused,
            expected_unused(family),
            "{family}: tensors no part serves"
        );
    }
}

#[test]
fn reverse_map_gives_the_source_key_of_every_served_name() {
    for family in FAMILIES {
        let ck = open(family);
        let meta = read_json(&format!("{family}.json"));
        for part in ck.parts() {
            let map = ck.part_map(part, &config(&meta, part)).unwrap();
            for (name, s) in &map.served {
                assert_eq!(
                    map.expected_key(&ck.files, name).as_deref(),
                    Some(s.key.as_str()),
                    "{family} {part} {name}"
                );
            }
        }
    }
}

#[test]
fn every_served_tensor_loads_with_the_requested_shape_and_the_source_values() {
    for family in FAMILIES {
        let ck = open(family);
        let meta = read_json(&format!("{family}.json"));
        for (part, names) in expected_keys(family) {
            let cfg = config(&meta, part);
            let map = ck.part_map(part, &cfg).unwrap();
            let vb = ck
                .var_builder(part, &cfg, &[], DType::F32, &Device::Cpu)
                .unwrap();
            for (name, shape) in names {
                let t = vb.get(shape.clone(), &name).unwrap();
                assert_eq!(t.dims(), shape.as_slice());
                assert_eq!(t.dtype(), DType::F32);
                let src = &map.served[&name];
                let r = raw(&ck, &src.key);
                let want = match src.op {
                    Op::Whole => r.reshape(shape.clone()).unwrap(),
                    Op::Rows { start, len } => r.narrow(0, start, len).unwrap(),
                    Op::Transpose => r.t().unwrap(),
                };
                assert_eq!(
                    (&t - &want)
                        .unwrap()
                        .abs()
                        .unwrap()
                        .max_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap(),
                    0.0,
                    "{family} {part} {name}"
                );
            }
        }
    }
}

#[test]
fn served_values_equal_the_diffusers_converters() {
    for family in FAMILIES {
        let ck = open(family);
        let meta = read_json(&format!("{family}.json"));
        let shapes = expected_keys(family);
        for (part, prints) in expected_fingerprints(family) {
            let cfg = config(&meta, part);
            let vb = ck
                .var_builder(part, &cfg, &[], DType::F32, &Device::Cpu)
                .unwrap();
            assert_eq!(prints.len(), shapes[&part].len());
            for (name, want) in prints {
                let t = vb.get(shapes[&part][&name].clone(), &name).unwrap();
                let (got, scale) = fingerprint(&t);
                assert!(
                    (got - want).abs() <= 1e-9 * scale + 1e-12,
                    "{family} {part} {name}: fingerprint {got} (diffusers {want})"
                );
            }
        }
    }
}

#[test]
fn open_clip_fused_qkv_is_split_and_text_projection_transposed() {
    let ck = open("sdxl");
    let meta = read_json("sdxl.json");
    let vb = part_vb(&ck, &meta, Part::TextEncoder2);
    let l = "text_model.encoder.layers.1.self_attn";
    let q = vb.get((32, 32), &format!("{l}.q_proj.weight")).unwrap();
    let k = vb.get((32, 32), &format!("{l}.k_proj.weight")).unwrap();
    let v = vb.get((32, 32), &format!("{l}.v_proj.weight")).unwrap();
    let fused = raw(
        &ck,
        "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight",
    );
    assert_eq!(rel_max(&Tensor::cat(&[q, k, v], 0).unwrap(), &fused), 0.0);
    let qb = vb.get(32, &format!("{l}.q_proj.bias")).unwrap();
    let vb_ = vb.get(32, &format!("{l}.v_proj.bias")).unwrap();
    let fused_b = raw(
        &ck,
        "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_bias",
    );
    assert_eq!(rel_max(&qb, &fused_b.narrow(0, 0, 32).unwrap()), 0.0);
    assert_eq!(rel_max(&vb_, &fused_b.narrow(0, 64, 32).unwrap()), 0.0);
    // OpenCLIP stores the projection for x @ P; the HF Linear weight is its transpose.
    let p = vb.get((32, 32), "text_projection.weight").unwrap();
    let stored = raw(&ck, "conditioner.embedders.1.model.text_projection");
    assert_eq!(rel_max(&p, &stored.t().unwrap()), 0.0);
    assert!(
        rel_max(&p, &stored) > 0.1,
        "the tiny projection is not symmetric"
    );
}

#[test]
fn vae_attention_weights_are_served_as_linear_or_as_1x1_conv() {
    let ck = open("sd15");
    let meta = read_json("sd15.json");
    let vb = part_vb(&ck, &meta, Part::Vae);
    let name = "decoder.mid_block.attentions.0.to_q.weight";
    let lin = vb.get((32, 32), name).unwrap();
    let conv = vb.get((32, 32, 1, 1), name).unwrap();
    assert_eq!(rel_max(&conv.reshape((32, 32)).unwrap(), &lin), 0.0);
    let stored = raw(&ck, "first_stage_model.decoder.mid.attn_1.q.weight");
    assert_eq!(stored.dims(), &[32, 32, 1, 1]);
    assert_eq!(rel_max(&conv, &stored), 0.0);
    // the same element count in another arrangement is a shape error, not a silent reshape
    let err = vb.get((16, 64), name).unwrap_err().to_string();
    assert!(
        err.contains("[16, 64]") && err.contains("[32, 32]"),
        "{err}"
    );
}

#[test]
fn wrong_shape_error_names_network_name_key_and_file() {
    let ck = open("sd15");
    let meta = read_json("sd15.json");
    let vb = part_vb(&ck, &meta, Part::Unet);
    let err = vb
        .get((64, 4, 3, 3), "conv_in.weight")
        .unwrap_err()
        .to_string();
    for want in [
        "unet",
        "`conv_in.weight`",
        "model.diffusion_model.input_blocks.0.0.weight",
        "sd15.safetensors",
        "[64, 4, 3, 3]",
        "[32, 4, 3, 3]",
    ] {
        assert!(err.contains(want), "`{want}` not in: {err}");
    }
}

#[test]
fn missing_tensor_error_names_the_key_it_was_looked_up_as() {
    let ck = open("sd15");
    let meta = read_json("sd15.json");
    let vb = part_vb(&ck, &meta, Part::Unet);
    // an SDXL-only tensor asked of an SD 1.5 file
    let err = vb
        .get((1280, 2816), "add_embedding.linear_1.weight")
        .unwrap_err()
        .to_string();
    for want in [
        "unet",
        "`add_embedding.linear_1.weight`",
        "`model.diffusion_model.label_emb.0.0.weight`",
        "sd15.safetensors",
    ] {
        assert!(err.contains(want), "`{want}` not in: {err}");
    }
    let err = vb
        .get((64, 64), "down_blocks.3.attentions.0.proj_in.weight")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.diffusion_model.input_blocks.7.1.proj_in.weight"),
        "{err}"
    );
    let vb = part_vb(&ck, &meta, Part::TextEncoder);
    assert!(!vb.contains_tensor("text_projection.weight"));
    let err = vb
        .get((32, 32), "text_model.encoder.layers.7.mlp.fc1.weight")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cond_stage_model.transformer.text_model.encoder.layers.7.mlp.fc1.weight"),
        "{err}"
    );
}

#[test]
fn asking_for_a_part_the_files_do_not_hold_says_what_to_ask_for() {
    let sd21 = open("sd21");
    let err = sd21
        .part_map(Part::TextEncoder2, &Value::Null)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("SD 2.x has a single text encoder: ask for text_encoder"),
        "{err}"
    );
    let refiner = open("sdxl_refiner");
    let err = refiner
        .part_map(Part::TextEncoder, &Value::Null)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("text_encoder_2"), "{err}");
    let flux = Checkpoint::open(&[fixture("flux1-schnell.safetensors")]).unwrap();
    let err = flux
        .part_map(Part::Unet, &Value::Null)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("flux_transformer") && err.contains("flux1-schnell.safetensors"),
        "{err}"
    );
    let sd15 = open("sd15");
    let err = sd15
        .part_map(Part::T5, &Value::Null)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("t5") && err.contains("sd15.safetensors"),
        "{err}"
    );
    assert_eq!(sd15.parts(), vec![Part::Unet, Part::Vae, Part::TextEncoder]);
    assert_eq!(
        open("flux").parts(),
        vec![
            Part::TextEncoder,
            Part::FluxTransformer,
            Part::FluxVae,
            Part::T5
        ]
    );
}

#[test]
fn a_key_in_two_files_is_rejected() {
    let f = fixture("sd15.safetensors");
    let err = Checkpoint::open(&[f.clone(), f]).err().unwrap().to_string();
    assert!(err.contains("is in both"), "{err}");
    assert!(matches!(
        Checkpoint::open::<PathBuf>(&[]),
        Err(CheckpointError::NoFiles)
    ));
}

#[test]
fn structure_is_inferred_from_the_keys_without_a_config() {
    for family in ["sd15", "sdxl", "sdxl_refiner"] {
        let ck = open(family);
        let meta = read_json(&format!("{family}.json"));
        for part in [Part::Unet, Part::Vae] {
            let with = ck.part_map(part, &config(&meta, part)).unwrap();
            let without = ck.part_map(part, &Value::Null).unwrap();
            let names = |m: &PartMap| {
                m.served
                    .iter()
                    .map(|(n, s)| (n.clone(), s.key.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(names(&with), names(&without), "{family} {part}");
            for name in with.served.keys() {
                assert_eq!(
                    with.expected_key(&ck.files, name),
                    without.expected_key(&ck.files, name)
                );
            }
        }
    }
}

/// Writes every served tensor of `part` under its served name (optionally renamed) to a file.
fn write_served(
    ck: &Checkpoint,
    part: Part,
    cfg: &Value,
    rename: impl Fn(&str) -> String,
    path: &Path,
) {
    let map = ck.part_map(part, cfg).unwrap();
    let vb = ck
        .var_builder(part, cfg, &[], DType::F16, &Device::Cpu)
        .unwrap();
    let tensors: HashMap<String, Tensor> = map
        .served
        .iter()
        .map(|(n, s)| (rename(n), vb.get(s.shape.clone(), n).unwrap()))
        .collect();
    candle_core::safetensors::save(&tensors, path).unwrap();
}

#[test]
fn diffusers_and_transformers_layout_files_are_served_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let meta = read_json("sdxl.json");
    let ck = open("sdxl");
    let cases = [
        (
            Part::Unet,
            "unet.safetensors",
            (|n: &str| n.to_string()) as fn(&str) -> String,
        ),
        (Part::Vae, "vae.safetensors", |n: &str| n.to_string()),
        // transformers 5 saves CLIPTextModel without `text_model.`
        (Part::TextEncoder, "te.safetensors", |n: &str| {
            n.trim_start_matches("text_model.").to_string()
        }),
        (Part::TextEncoder2, "te2.safetensors", |n: &str| {
            n.to_string()
        }),
    ];
    for (part, file, rename) in cases {
        let cfg = config(&meta, part);
        let path = dir.path().join(file);
        write_served(&ck, part, &cfg, rename, &path);
        let other = Checkpoint::open(&[&path]).unwrap();
        let a = ck.part_map(part, &cfg).unwrap();
        let b = other.part_map(part, &cfg).unwrap();
        let shapes = |m: &PartMap| {
            m.served
                .iter()
                .map(|(n, s)| (n.clone(), s.shape.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(shapes(&a), shapes(&b), "{part} from {file}");
        let vb = other
            .var_builder(part, &cfg, &[], DType::F32, &Device::Cpu)
            .unwrap();
        let vb0 = ck
            .var_builder(part, &cfg, &[], DType::F32, &Device::Cpu)
            .unwrap();
        for (n, s) in a.served.iter().take(20) {
            let x = vb.get(s.shape.clone(), n).unwrap();
            assert_eq!(
                rel_max(&x, &vb0.get(s.shape.clone(), n).unwrap()),
                0.0,
                "{part} {n}"
            );
        }
    }
}

/// `torch.tensor([[0.5, -1.75, 448, -2**-9], [3, 0, 240, -0.0625]]).to(torch.float8_e4m3fn)`
/// saved by safetensors.torch.save_file (torch 2.15.0, safetensors 0.8.0): the exact bytes.
const TORCH_F8_FILE_HEADER: &str = r#"{"encoder.block.0.layer.0.SelfAttention.q.weight":{"dtype":"F8_E4M3","shape":[2,4],"data_offsets":[0,8]}}       "#;
const TORCH_F8_DATA: [u8; 8] = [0x30, 0xbe, 0x7e, 0x81, 0x44, 0x00, 0x77, 0x98];

#[test]
fn f8_e4m3_weights_load_converted_to_the_requested_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t5xxl_fp8_e4m3fn.safetensors");
    let mut bytes = (TORCH_F8_FILE_HEADER.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(TORCH_F8_FILE_HEADER.as_bytes());
    bytes.extend_from_slice(&TORCH_F8_DATA);
    assert_eq!(bytes.len(), 128, "the size torch wrote");
    std::fs::write(&path, bytes).unwrap();
    let ck = Checkpoint::open(&[&path]).unwrap();
    assert_eq!(ck.parts(), vec![Part::T5]);
    let want = [0.5f32, -1.75, 448.0, -1.0 / 512.0, 3.0, 0.0, 240.0, -0.0625];
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let vb = ck
            .var_builder(Part::T5, &Value::Null, &[], dtype, &Device::Cpu)
            .unwrap();
        let t = vb
            .get((2, 4), "encoder.block.0.layer.0.SelfAttention.q.weight")
            .unwrap();
        assert_eq!(t.dtype(), dtype);
        let got: Vec<f32> = t
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(got, want, "{dtype:?}");
    }
    // ComfyUI "scaled fp8": a scale per weight, refused rather than served unscaled
    let scaled = dir.path().join("t5xxl_fp8_e4m3fn_scaled.safetensors");
    let tensors: HashMap<String, Tensor> = [
        (
            "encoder.block.0.layer.0.SelfAttention.q.weight",
            Tensor::new(&[[1f32, 2.0]], &Device::Cpu).unwrap(),
        ),
        (
            "encoder.block.0.layer.0.SelfAttention.q.scale_weight",
            Tensor::new(&[0.5f32], &Device::Cpu).unwrap(),
        ),
        ("scaled_fp8", Tensor::new(&[0f32], &Device::Cpu).unwrap()),
    ]
    .into_iter()
    .map(|(k, t)| (k.to_string(), t.to_dtype(DType::F8E4M3).unwrap()))
    .collect();
    candle_core::safetensors::save(&tensors, &scaled).unwrap();
    let ck = Checkpoint::open(&[&scaled]).unwrap();
    let err = ck
        .var_builder(Part::T5, &Value::Null, &[], DType::F32, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("scaled fp8") && err.contains("t5xxl_fp8_e4m3fn_scaled.safetensors"),
        "{err}"
    );
}
