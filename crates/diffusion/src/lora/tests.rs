use super::*;
use crate::checkpoint::tests::{config, fixture, open, read_json, rel_max};
use crate::checkpoint::Checkpoint;
use std::collections::BTreeSet;

/// A deterministic tensor with values in [-0.5, 0.5).
fn det(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Writes f32 tensors (and header metadata) as safetensors.
fn write_st(path: &Path, tensors: &[(String, Tensor)], metadata: &[(&str, String)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, t) in tensors {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let start = data.len();
        for x in v {
            data.extend_from_slice(&x.to_le_bytes());
        }
        header.insert(
                name.clone(),
                serde_json::json!({"dtype": "F32", "shape": t.dims(), "data_offsets": [start, data.len()]}),
            );
    }
    if !metadata.is_empty() {
        let m: serde_json::Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
            .collect();
        header.insert("__metadata__".into(), Value::Object(m));
    }
    let mut h = serde_json::to_vec(&Value::Object(header)).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend(h);
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

fn deltas(
    ck: &Checkpoint,
    meta: &Value,
    part: Part,
    loras: &[LoraSpec],
) -> Result<HashMap<String, Vec<LoraDelta>>, LoraError> {
    resolve(loras, &ck.part_map(part, &config(meta, part)).unwrap())
}

fn weight(ck: &Checkpoint, meta: &Value, part: Part, loras: &[LoraSpec], name: &str) -> Tensor {
    let cfg = config(meta, part);
    let shape = ck.part_map(part, &cfg).unwrap().served[name].shape.clone();
    let vb = ck
        .var_builder(part, &cfg, loras, DType::F32, &Device::Cpu)
        .unwrap();
    vb.get(shape, name).unwrap()
}

fn sd15_scale(meta: &Value) -> f32 {
    meta["lora"]["scale"].as_f64().unwrap() as f32
}

#[test]
fn kohya_and_peft_files_of_one_adapter_merge_identically() {
    let ck = open("sd15");
    let meta = read_json("sd15.json");
    let w = sd15_scale(&meta);
    let kohya = [LoraSpec::new(fixture("sd15_lora_kohya.safetensors"), w)];
    let peft = [LoraSpec::new(fixture("sd15_lora_peft.safetensors"), w)];
    for (part, count) in [
        (Part::Unet, "unet_modules"),
        (Part::TextEncoder, "te_modules"),
    ] {
        let dk = deltas(&ck, &meta, part, &kohya).unwrap();
        let dp = deltas(&ck, &meta, part, &peft).unwrap();
        let targets: BTreeSet<&String> = dk.keys().collect();
        assert_eq!(
            targets,
            dp.keys().collect::<BTreeSet<_>>(),
            "{part}: kohya and peft targets"
        );
        assert_eq!(
            targets.len() as u64,
            meta["lora"][count].as_u64().unwrap(),
            "{part}: targets"
        );
        assert!(dk.values().chain(dp.values()).all(|d| d.len() == 1));
        for d in dk.values().chain(dp.values()) {
            assert!(
                (d[0].scale - w as f64 * 8.0 / 4.0).abs() < 1e-6,
                "{part}: scale {}",
                d[0].scale
            );
        }
        for name in &targets {
            let base = weight(&ck, &meta, part, &[], name);
            let a = weight(&ck, &meta, part, &kohya, name);
            let b = weight(&ck, &meta, part, &peft, name);
            assert!(
                rel_max(&a, &b) <= 1e-6,
                "{part} {name}: kohya vs peft {}",
                rel_max(&a, &b)
            );
            assert!(
                rel_max(&a, &base) > 1e-2,
                "{part} {name}: the LoRA changes it"
            );
        }
    }
    // a weight no module adapts is served untouched
    let n = "down_blocks.0.resnets.0.conv1.weight";
    assert_eq!(
        rel_max(
            &weight(&ck, &meta, Part::Unet, &kohya, n),
            &weight(&ck, &meta, Part::Unet, &[], n)
        ),
        0.0
    );
}

#[test]
fn merged_weights_equal_peft_merge_reference() {
    let ck = open("sd15");
    let meta = read_json("sd15.json");
    let w = sd15_scale(&meta);
    let path = fixture("sd15_lora_merged.safetensors");
    let file_scale: f32 = read_metadata(&path).unwrap()["lora_scale"].parse().unwrap();
    assert_eq!(file_scale, w);
    let reference = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    assert!(reference.len() >= 2);
    for file in ["sd15_lora_peft.safetensors", "sd15_lora_kohya.safetensors"] {
        let loras = [LoraSpec::new(fixture(file), w)];
        for (key, want) in &reference {
            let (part, name) = key.split_once('.').unwrap();
            let part = if part == "unet" {
                Part::Unet
            } else {
                Part::TextEncoder
            };
            let got = weight(&ck, &meta, part, &loras, name);
            let base = weight(&ck, &meta, part, &[], name);
            assert!(
                rel_max(&got, want) <= 1e-6,
                "{file} {key}: rel {}",
                rel_max(&got, want)
            );
            assert!(
                rel_max(&base, want) > 1e-2,
                "{key}: the reference is merged"
            );
        }
    }
}

#[test]
fn sdxl_kohya_sgm_lora_maps_every_key_to_its_diffusers_module() {
    let ck = open("sdxl");
    let meta = read_json("sdxl.json");
    let spec = [LoraSpec::new(fixture("sdxl_lora_kohya.safetensors"), 0.8)];
    let d = deltas(&ck, &meta, Part::Unet, &spec).unwrap();
    assert_eq!(
        d.len() as u64,
        meta["lora"]["unet_modules"].as_u64().unwrap()
    );
    // the fixture script's SGM → diffusers names (checked there against diffusers' loader)
    let sgm: &serde_json::Map<String, Value> = meta["lora"]["sgm_names"].as_object().unwrap();
    assert_eq!(sgm.len(), d.len());
    for (target, list) in &d {
        assert_eq!(list.len(), 1);
        let key = list[0].key.strip_prefix("lora_unet_").unwrap();
        let (_, diffusers) = sgm
            .iter()
            .find(|(s, _)| s.replace('.', "_") == key)
            .unwrap_or_else(|| panic!("{key} is not an SGM name of the adapter"));
        assert_eq!(format!("{}.weight", diffusers.as_str().unwrap()), *target);
    }
    // text encoders: nothing aimed at them, nothing merged
    for part in [Part::TextEncoder, Part::TextEncoder2] {
        assert!(deltas(&ck, &meta, part, &spec).unwrap().is_empty());
    }
}

#[test]
fn a_lora_of_another_family_is_an_error_naming_the_file() {
    let sd15 = open("sd15");
    let meta15 = read_json("sd15.json");
    let sdxl_lora = [LoraSpec::new(fixture("sdxl_lora_kohya.safetensors"), 1.0)];
    let err = deltas(&sd15, &meta15, Part::Unet, &sdxl_lora)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sdxl_lora_kohya.safetensors") && err.contains("another model family"),
        "{err}"
    );
    let sdxl = open("sdxl");
    let meta_xl = read_json("sdxl.json");
    let sd15_lora = [LoraSpec::new(fixture("sd15_lora_peft.safetensors"), 1.0)];
    let err = deltas(&sdxl, &meta_xl, Part::Unet, &sd15_lora)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sd15_lora_peft.safetensors") && err.contains("another model family"),
        "{err}"
    );
    // a Flux LoRA (diffusers names) on an SD UNet
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("flux_lora.safetensors");
    let m = "transformer.transformer_blocks.0.attn.to_q";
    write_st(
        &p,
        &[
            (format!("{m}.lora_A.weight"), det(&[2, 32], 1)),
            (format!("{m}.lora_B.weight"), det(&[32, 2], 2)),
        ],
        &[],
    );
    let err = deltas(&sd15, &meta15, Part::Unet, &[LoraSpec::new(&p, 1.0)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("flux_lora.safetensors") && err.contains("another model family"),
        "{err}"
    );
    // and var_builder reports it
    let err = sd15
        .var_builder(
            Part::Unet,
            &config(&meta15, Part::Unet),
            &sdxl_lora,
            DType::F32,
            &Device::Cpu,
        )
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("sdxl_lora_kohya.safetensors"), "{err}");
}

#[test]
fn unknown_and_partly_unmatched_keys_are_reported() {
    let ck = open("sd15");
    let meta = read_json("sd15.json");
    let dir = tempfile::tempdir().unwrap();
    let good = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
    let pair = |m: &str| {
        vec![
            (format!("{m}.lora_down.weight"), det(&[2, 32], 3)),
            (format!("{m}.lora_up.weight"), det(&[32, 2], 4)),
        ]
    };
    // LoHa keys: not LoRA
    let p = dir.path().join("loha.safetensors");
    let mut t = pair(good);
    t.push((format!("{good}.hada_w1_a"), det(&[2, 32], 5)));
    write_st(&p, &t, &[]);
    let err = deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 1.0)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("loha.safetensors") && err.contains("hada_w1_a"),
        "{err}"
    );
    // DoRA
    let p = dir.path().join("dora.safetensors");
    let mut t = pair(good);
    t.push((format!("{good}.dora_scale"), det(&[32, 1], 5)));
    write_st(&p, &t, &[]);
    let err = deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 1.0)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("dora_scale"), "{err}");
    // one good module, one that names nothing of the UNet
    let p = dir.path().join("partly.safetensors");
    let mut t = pair(good);
    t.extend(pair(
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn9_to_q",
    ));
    write_st(&p, &t, &[]);
    let err = deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 1.0)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("partly.safetensors")
            && err.contains("attn9_to_q")
            && !err.contains("attn1_to_q"),
        "{err}"
    );
    // a module whose matrices do not fit the weight
    let p = dir.path().join("shape.safetensors");
    write_st(
        &p,
        &[
            (format!("{good}.lora_down.weight"), det(&[2, 31], 3)),
            (format!("{good}.lora_up.weight"), det(&[32, 2], 4)),
        ],
        &[],
    );
    let err = deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 1.0)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shape.safetensors") && err.contains("[2, 31]"),
        "{err}"
    );
    // half a pair
    let p = dir.path().join("half.safetensors");
    write_st(&p, &pair(good)[..1], &[]);
    let err = deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 1.0)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("only one of its down/up"), "{err}");
}

#[test]
fn locon_conv_lora_merges_as_a_convolution_under_diffusers_or_ldm_names() {
    let ck = open("sd15");
    let meta = read_json("sd15.json");
    let dir = tempfile::tempdir().unwrap();
    let (down, up) = (det(&[2, 32, 3, 3], 11), det(&[32, 2, 1, 1], 12));
    let name = "down_blocks.0.resnets.0.conv1.weight";
    let base = weight(&ck, &meta, Part::Unet, &[], name);
    // W[o,i,y,x] + w·alpha/r·Σ_r up[o,r]·down[r,i,y,x], by hand
    let (b, d, u): (Vec<f32>, Vec<f32>, Vec<f32>) = (
        base.flatten_all().unwrap().to_vec1().unwrap(),
        down.flatten_all().unwrap().to_vec1().unwrap(),
        up.flatten_all().unwrap().to_vec1().unwrap(),
    );
    let scale = 0.7f32 * 1.0 / 2.0;
    let want: Vec<f32> = (0..b.len())
        .map(|idx| {
            let (o, rest) = (idx / 288, idx % 288);
            b[idx]
                + scale
                    * (0..2)
                        .map(|r| u[o * 2 + r] * d[r * 288 + rest])
                        .sum::<f32>()
        })
        .collect();
    let want = Tensor::from_vec(want, (32, 32, 3, 3), &Device::Cpu).unwrap();
    for module in [
        "lora_unet_down_blocks_0_resnets_0_conv1",
        "lora_unet_input_blocks_1_0_in_layers_2",
    ] {
        let p = dir.path().join(format!("{module}.safetensors"));
        write_st(
            &p,
            &[
                (format!("{module}.lora_down.weight"), down.clone()),
                (format!("{module}.lora_up.weight"), up.clone()),
                (
                    format!("{module}.alpha"),
                    Tensor::new(1f32, &Device::Cpu).unwrap(),
                ),
            ],
            &[],
        );
        let got = weight(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 0.7)], name);
        assert!(
            rel_max(&got, &want) <= 1e-6,
            "{module}: rel {}",
            rel_max(&got, &want)
        );
    }
}

#[test]
fn modules_on_weights_the_network_does_not_use_are_skipped() {
    // SD 2.x: the last OpenCLIP block is in the file, the 23-layer text encoder skips it
    let ck = open("sd21");
    let meta = read_json("sd21.json");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sd2_te.safetensors");
    let mut t = vec![];
    for (i, m) in [
        "lora_te_text_model_encoder_layers_0_mlp_fc1",
        "lora_te_text_model_encoder_layers_23_mlp_fc1",
    ]
    .iter()
    .enumerate()
    {
        t.push((format!("{m}.lora_down.weight"), det(&[2, 32], i as u64)));
        t.push((format!("{m}.lora_up.weight"), det(&[37, 2], 9 + i as u64)));
    }
    write_st(&p, &t, &[]);
    let d = deltas(&ck, &meta, Part::TextEncoder, &[LoraSpec::new(&p, 1.0)]).unwrap();
    assert_eq!(
        d.keys().collect::<Vec<_>>(),
        vec!["text_model.encoder.layers.0.mlp.fc1.weight"]
    );
    // a layer the file does not have at all is still an error
    let p = dir.path().join("sd2_te_bad.safetensors");
    let m = "lora_te_text_model_encoder_layers_24_mlp_fc1";
    write_st(
        &p,
        &[
            (format!("{m}.lora_down.weight"), det(&[2, 32], 1)),
            (format!("{m}.lora_up.weight"), det(&[37, 2], 2)),
        ],
        &[],
    );
    assert!(deltas(&ck, &meta, Part::TextEncoder, &[LoraSpec::new(&p, 1.0)]).is_err());
}

#[test]
fn several_loras_add_up() {
    let ck = open("sd15");
    let meta = read_json("sd15.json");
    let k = fixture("sd15_lora_kohya.safetensors");
    let p = fixture("sd15_lora_peft.safetensors");
    let name = "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.weight";
    let one = weight(&ck, &meta, Part::Unet, &[LoraSpec::new(&k, 0.8)], name);
    let two = weight(
        &ck,
        &meta,
        Part::Unet,
        &[LoraSpec::new(&k, 0.5), LoraSpec::new(&p, 0.3)],
        name,
    );
    assert!(rel_max(&two, &one) <= 1e-6, "rel {}", rel_max(&two, &one));
}

#[test]
fn alpha_comes_from_tensors_then_peft_metadata_then_the_rank() {
    let ck = open("sd15");
    let meta = read_json("sd15.json");
    let dir = tempfile::tempdir().unwrap();
    let q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
    let k = "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k";
    let mut t = vec![];
    for (m, cols) in [(q, 32), (k, 32)] {
        t.push((format!("unet.{m}.lora_A.weight"), det(&[2, cols], 1)));
        t.push((format!("unet.{m}.lora_B.weight"), det(&[32, 2], 2)));
    }
    let scales = |path: &Path| -> HashMap<String, f64> {
        deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(path, 0.5)])
            .unwrap()
            .into_iter()
            .map(|(n, d)| (n, d[0].scale))
            .collect()
    };
    let plain = dir.path().join("plain.safetensors");
    write_st(&plain, &t, &[]);
    let s = scales(&plain);
    assert_eq!(
        (s[&format!("{q}.weight")], s[&format!("{k}.weight")]),
        (0.5, 0.5),
        "alpha = rank"
    );
    let with_meta = dir.path().join("meta.safetensors");
    let lam = serde_json::json!({"unet.lora_alpha": 6, "unet.r": 2, "unet.alpha_pattern": {"attn2.to_k": 1}});
    write_st(
        &with_meta,
        &t,
        &[("lora_adapter_metadata", lam.to_string())],
    );
    let s = scales(&with_meta);
    assert_eq!(s[&format!("{q}.weight")], 0.5 * 6.0 / 2.0);
    assert_eq!(s[&format!("{k}.weight")], 0.5 * 1.0 / 2.0, "alpha_pattern");
    let with_tensor = dir.path().join("tensor.safetensors");
    let mut t2 = t.clone();
    t2.push((
        format!("unet.{q}.alpha"),
        Tensor::new(3f32, &Device::Cpu).unwrap(),
    ));
    write_st(
        &with_tensor,
        &t2,
        &[("lora_adapter_metadata", lam.to_string())],
    );
    assert_eq!(
        scales(&with_tensor)[&format!("{q}.weight")],
        0.5 * 3.0 / 2.0
    );
}

#[test]
fn text_encoder_modules_match_with_or_without_text_model() {
    let ck = open("sd15");
    let meta = read_json("sd15.json");
    let dir = tempfile::tempdir().unwrap();
    let mut merged = vec![];
    for (i, m) in [
        "text_model.encoder.layers.0.self_attn.q_proj",
        "encoder.layers.0.self_attn.q_proj",
    ]
    .iter()
    .enumerate()
    {
        let p = dir.path().join(format!("te{i}.safetensors"));
        write_st(
            &p,
            &[
                (format!("text_encoder.{m}.lora_A.weight"), det(&[2, 32], 7)),
                (format!("text_encoder.{m}.lora_B.weight"), det(&[32, 2], 8)),
            ],
            &[],
        );
        let name = "text_model.encoder.layers.0.self_attn.q_proj.weight";
        merged.push(weight(
            &ck,
            &meta,
            Part::TextEncoder,
            &[LoraSpec::new(&p, 1.0)],
            name,
        ));
        // and nothing of it goes to the UNet
        assert!(deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 1.0)])
            .unwrap()
            .is_empty());
    }
    assert_eq!(rel_max(&merged[0], &merged[1]), 0.0);
}

#[test]
fn flux_diffusers_lora_adds_into_the_rows_of_fused_bfl_weights() {
    let ck = open("flux");
    let meta = read_json("flux.json");
    let dir = tempfile::tempdir().unwrap();
    let a = |seed| det(&[2, 32], seed);
    // diffusers modules (rank 2, no alpha: scale = weight)
    let (qa, qb) = (a(1), det(&[32, 2], 2)); // transformer_blocks.0.attn.to_k
    let (va, vb) = (a(3), det(&[32, 2], 4)); // transformer_blocks.0.attn.add_v_proj
    let (ma, mb) = (a(5), det(&[128, 2], 6)); // single_transformer_blocks.0.proj_mlp
    let (sa, sb) = (a(7), det(&[32, 2], 8)); // single_transformer_blocks.0.attn.to_q
    let (na, nb) = (a(9), det(&[64, 2], 10)); // norm_out.linear (scale, shift)
    let diff = dir.path().join("flux_diffusers.safetensors");
    let mut t = vec![];
    for (m, da, db) in [
        ("transformer_blocks.0.attn.to_k", &qa, &qb),
        ("transformer_blocks.0.attn.add_v_proj", &va, &vb),
        ("single_transformer_blocks.0.proj_mlp", &ma, &mb),
        ("single_transformer_blocks.0.attn.to_q", &sa, &sb),
        ("norm_out.linear", &na, &nb),
    ] {
        t.push((format!("transformer.{m}.lora_A.weight"), da.clone()));
        t.push((format!("transformer.{m}.lora_B.weight"), db.clone()));
    }
    write_st(&diff, &t, &[]);
    // the same adapter on BFL's fused weights (kohya), zero rows elsewhere
    let z =
        |rows: usize, cols: usize| Tensor::zeros((rows, cols), DType::F32, &Device::Cpu).unwrap();
    let cat0 = |ts: &[Tensor]| Tensor::cat(ts, 0).unwrap();
    let cat1 = |ts: &[Tensor]| Tensor::cat(ts, 1).unwrap();
    let kohya = dir.path().join("flux_kohya.safetensors");
    let mut t = vec![];
    let mut add = |m: &str, down: Tensor, up: Tensor| {
        let rank = down.dim(0).unwrap() as f32;
        t.push((format!("lora_unet_{m}.lora_down.weight"), down));
        t.push((format!("lora_unet_{m}.lora_up.weight"), up));
        t.push((
            format!("lora_unet_{m}.alpha"),
            Tensor::new(rank, &Device::Cpu).unwrap(),
        ));
    };
    add(
        "double_blocks_0_img_attn_qkv",
        qa.clone(),
        cat0(&[z(32, 2), qb.clone(), z(32, 2)]),
    );
    add(
        "double_blocks_0_txt_attn_qkv",
        va.clone(),
        cat0(&[z(64, 2), vb.clone()]),
    );
    add(
        "single_blocks_0_linear1",
        cat0(&[ma.clone(), sa.clone()]),
        cat0(&[
            cat1(&[z(32, 2), sb.clone()]),
            z(64, 4),
            cat1(&[mb.clone(), z(128, 2)]),
        ]),
    );
    add(
        "final_layer_adaLN_modulation_1",
        na.clone(),
        cat0(&[nb.narrow(0, 32, 32).unwrap(), nb.narrow(0, 0, 32).unwrap()]),
    );
    write_st(&kohya, &t, &[]);
    let part = Part::FluxTransformer;
    for name in [
        "double_blocks.0.img_attn.qkv.weight",
        "double_blocks.0.txt_attn.qkv.weight",
        "single_blocks.0.linear1.weight",
        "final_layer.adaLN_modulation.1.weight",
    ] {
        let base = weight(&ck, &meta, part, &[], name);
        let d = weight(&ck, &meta, part, &[LoraSpec::new(&diff, 0.9)], name);
        let k = weight(&ck, &meta, part, &[LoraSpec::new(&kohya, 0.9)], name);
        assert!(
            rel_max(&d, &k) <= 1e-6,
            "{name}: diffusers vs kohya rel {}",
            rel_max(&d, &k)
        );
        assert!(rel_max(&d, &base) > 1e-2, "{name}: changed");
    }
    // rows outside the slices are untouched: q and v of img qkv
    let name = "double_blocks.0.img_attn.qkv.weight";
    let base = weight(&ck, &meta, part, &[], name);
    let d = weight(&ck, &meta, part, &[LoraSpec::new(&diff, 0.9)], name);
    for start in [0, 64] {
        assert_eq!(
            rel_max(
                &d.narrow(0, start, 32).unwrap(),
                &base.narrow(0, start, 32).unwrap()
            ),
            0.0
        );
    }
    // the delta of the k slice is exactly 0.9 · B @ A
    let want =
        (base.narrow(0, 32, 32).unwrap() + (qb.matmul(&qa).unwrap() * 0.9).unwrap()).unwrap();
    assert!(rel_max(&d.narrow(0, 32, 32).unwrap(), &want) <= 1e-6);
    // and a diffusers Flux LoRA is no LoRA of the CLIP/T5 encoders
    for p in [Part::TextEncoder, Part::T5] {
        assert!(deltas(&ck, &meta, p, &[LoraSpec::new(&diff, 1.0)])
            .unwrap()
            .is_empty());
    }
}
