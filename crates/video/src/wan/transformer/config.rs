//! The transformer's configuration: diffusers' `WanTransformer3DModel` config (the field names
//! of `transformer/config.json`), the released sizes, the official Wan-AI `config.json`
//! (`WanModel`) and the inference of a config from a checkpoint's tensor shapes.

use std::collections::HashMap;

use serde::Deserialize;

/// diffusers `WanTransformer3DModel` config; absent fields take diffusers' defaults (the 14B
/// text-to-video model's).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct WanTransformerConfig {
    /// (t, h, w) patch: (1, 2, 2) in every release.
    pub patch_size: (usize, usize, usize),
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    pub in_channels: usize,
    /// `None` (JSON null) means `in_channels`.
    pub out_channels: Option<usize>,
    /// Width of the text states (umT5-XXL: 4096).
    pub text_dim: usize,
    /// Width of the sinusoidal timestep features.
    pub freq_dim: usize,
    pub ffn_dim: usize,
    pub num_layers: usize,
    /// An affine LayerNorm before the cross-attention (every release).
    pub cross_attn_norm: bool,
    /// diffusers accepts the field and normalises q/k (RMS across heads) whatever it says.
    pub qk_norm: Option<String>,
    pub eps: f64,
    /// Width of the CLIP image states (1280) for the image-conditioned models.
    pub image_dim: Option<usize>,
    /// Input width of the image keys/values (`add_k_proj`, `add_v_proj`): the inner width.
    pub added_kv_proj_dim: Option<usize>,
    /// Length of the rotary tables per axis: latent grids may not exceed it.
    pub rope_max_seq_len: usize,
    /// FLF2V: a learned position embedding over both images' tokens (514).
    pub pos_embed_seq_len: Option<usize>,
}

impl Default for WanTransformerConfig {
    fn default() -> Self {
        Self {
            patch_size: (1, 2, 2),
            num_attention_heads: 40,
            attention_head_dim: 128,
            in_channels: 16,
            out_channels: Some(16),
            text_dim: 4096,
            freq_dim: 256,
            ffn_dim: 13824,
            num_layers: 40,
            cross_attn_norm: true,
            qk_norm: Some("rms_norm_across_heads".into()),
            eps: 1e-6,
            image_dim: None,
            added_kv_proj_dim: None,
            rope_max_seq_len: 1024,
            pos_embed_seq_len: None,
        }
    }
}

/// Image tokens of one CLIP ViT-H/14 image (256 patches + the class token).
pub const IMAGE_TOKENS: usize = 257;

impl WanTransformerConfig {
    /// Wan2.1 T2V-1.3B: 30 layers, 12 heads × 128 = 1536, FFN 8960.
    pub fn t2v_1_3b() -> Self {
        Self {
            num_attention_heads: 12,
            ffn_dim: 8960,
            num_layers: 30,
            ..Self::default()
        }
    }

    /// Wan2.1 T2V-14B: 40 layers, 40 heads × 128 = 5120, FFN 13824.
    pub fn t2v_14b() -> Self {
        Self::default()
    }

    /// Wan2.1 I2V-14B (480p and 720p): 36 input channels (noise 16 + mask 4 + image latents
    /// 16) and the CLIP image states through `add_k_proj`/`add_v_proj`.
    pub fn i2v_14b() -> Self {
        Self {
            in_channels: 36,
            image_dim: Some(1280),
            added_kv_proj_dim: Some(5120),
            ..Self::default()
        }
    }

    /// Wan2.1 FLF2V-14B: I2V plus a learned position embedding over the two images' tokens.
    pub fn flf2v_14b() -> Self {
        Self {
            pos_embed_seq_len: Some(2 * IMAGE_TOKENS),
            ..Self::i2v_14b()
        }
    }

    /// Reads a diffusers `transformer/config.json`.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    pub fn patch_volume(&self) -> usize {
        self.patch_size.0 * self.patch_size.1 * self.patch_size.2
    }

    /// Whether the model takes CLIP image states.
    pub fn has_image_input(&self) -> bool {
        self.image_dim.is_some()
    }

    /// Head channels per rotary axis (t, h, w): h = w = 2·⌊d/6⌋, t the rest (44/42/42 at 128).
    pub fn rope_split(&self) -> (usize, usize, usize) {
        let hw = 2 * (self.attention_head_dim / 6);
        (self.attention_head_dim - 2 * hw, hw, hw)
    }

    /// Every tensor of a diffusers `WanTransformer3DModel` checkpoint of this config, name and
    /// shape, in the model's `state_dict` order (a module's own parameters before its
    /// children's): what a random-weight stand-in must hold to load as the real model does.
    pub fn diffusers_tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let d = self.inner_dim();
        let (pt, ph, pw) = self.patch_size;
        let mut v: Vec<(String, Vec<usize>)> = Vec::new();
        fn put(v: &mut Vec<(String, Vec<usize>)>, name: String, shape: Vec<usize>) {
            v.push((name, shape));
        }
        fn linear(v: &mut Vec<(String, Vec<usize>)>, name: &str, out: usize, inp: usize) {
            put(v, format!("{name}.weight"), vec![out, inp]);
            put(v, format!("{name}.bias"), vec![out]);
        }
        put(&mut v, "scale_shift_table".into(), vec![1, 2, d]);
        put(
            &mut v,
            "patch_embedding.weight".into(),
            vec![d, self.in_channels, pt, ph, pw],
        );
        put(&mut v, "patch_embedding.bias".into(), vec![d]);
        let ce = "condition_embedder";
        linear(
            &mut v,
            &format!("{ce}.time_embedder.linear_1"),
            d,
            self.freq_dim,
        );
        linear(&mut v, &format!("{ce}.time_embedder.linear_2"), d, d);
        linear(&mut v, &format!("{ce}.time_proj"), 6 * d, d);
        linear(
            &mut v,
            &format!("{ce}.text_embedder.linear_1"),
            d,
            self.text_dim,
        );
        linear(&mut v, &format!("{ce}.text_embedder.linear_2"), d, d);
        if let Some(i) = self.image_dim {
            let p = format!("{ce}.image_embedder");
            if let Some(n) = self.pos_embed_seq_len {
                put(&mut v, format!("{p}.pos_embed"), vec![1, n, i]);
            }
            put(&mut v, format!("{p}.norm1.weight"), vec![i]);
            put(&mut v, format!("{p}.norm1.bias"), vec![i]);
            linear(&mut v, &format!("{p}.ff.net.0.proj"), i, i);
            linear(&mut v, &format!("{p}.ff.net.2"), d, i);
            put(&mut v, format!("{p}.norm2.weight"), vec![d]);
            put(&mut v, format!("{p}.norm2.bias"), vec![d]);
        }
        for b in 0..self.num_layers {
            let p = format!("blocks.{b}");
            put(&mut v, format!("{p}.scale_shift_table"), vec![1, 6, d]);
            for a in ["attn1", "attn2"] {
                for m in ["to_q", "to_k", "to_v", "to_out.0"] {
                    linear(&mut v, &format!("{p}.{a}.{m}"), d, d);
                }
                put(&mut v, format!("{p}.{a}.norm_q.weight"), vec![d]);
                put(&mut v, format!("{p}.{a}.norm_k.weight"), vec![d]);
                if let ("attn2", Some(kv)) = (a, self.added_kv_proj_dim) {
                    linear(&mut v, &format!("{p}.{a}.add_k_proj"), d, kv);
                    linear(&mut v, &format!("{p}.{a}.add_v_proj"), d, kv);
                    put(&mut v, format!("{p}.{a}.norm_added_k.weight"), vec![d]);
                }
            }
            if self.cross_attn_norm {
                put(&mut v, format!("{p}.norm2.weight"), vec![d]);
                put(&mut v, format!("{p}.norm2.bias"), vec![d]);
            }
            linear(&mut v, &format!("{p}.ffn.net.0.proj"), self.ffn_dim, d);
            linear(&mut v, &format!("{p}.ffn.net.2"), d, self.ffn_dim);
        }
        let head = self.out_channels() * self.patch_volume();
        linear(&mut v, "proj_out", head, d);
        v
    }

    /// Rejects what diffusers would reject or fail on at the first call.
    pub fn validate(&self) -> Result<(), String> {
        let (pt, ph, pw) = self.patch_size;
        if self.inner_dim() == 0
            || self.in_channels == 0
            || self.out_channels() == 0
            || self.ffn_dim == 0
            || self.text_dim == 0
            || pt * ph * pw == 0
        {
            return Err(format!("zero-sized config {self:?}"));
        }
        if self.freq_dim < 2 || !self.freq_dim.is_multiple_of(2) {
            return Err(format!("freq_dim {} must be even", self.freq_dim));
        }
        if self.attention_head_dim < 6 || !self.attention_head_dim.is_multiple_of(2) {
            return Err(format!(
                "attention_head_dim {} must be even and at least 6 (three rotary axes)",
                self.attention_head_dim
            ));
        }
        match (self.image_dim, self.added_kv_proj_dim) {
            (None, None) => {}
            (Some(_), Some(kv)) if kv == self.inner_dim() => {}
            (Some(_), Some(kv)) => {
                return Err(format!(
                    "added_kv_proj_dim {kv} differs from the inner width {} (the image states \
                     reach add_k_proj at that width)",
                    self.inner_dim()
                ))
            }
            _ => return Err("image_dim and added_kv_proj_dim come together".into()),
        }
        if self.pos_embed_seq_len.is_some() && self.image_dim.is_none() {
            return Err("pos_embed_seq_len needs image_dim".into());
        }
        Ok(())
    }
}

/// The official Wan-AI `config.json` (`WanModel`): the fields the releases hold.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OfficialConfig {
    pub dim: Option<usize>,
    pub ffn_dim: Option<usize>,
    pub freq_dim: Option<usize>,
    pub in_dim: Option<usize>,
    pub out_dim: Option<usize>,
    pub num_heads: Option<usize>,
    pub num_layers: Option<usize>,
    pub text_dim: Option<usize>,
    pub eps: Option<f64>,
}

/// What a checkpoint says of itself beyond its shapes: the official config's fields or, in a
/// file's header, diffusers' (the head count is the one thing shapes cannot tell).
#[derive(Clone, Debug, Default)]
pub(crate) struct ConfigHint {
    pub official: OfficialConfig,
    /// `num_attention_heads` of a diffusers-named hint.
    pub heads: Option<usize>,
}

impl ConfigHint {
    pub(crate) fn from_value(v: &serde_json::Value) -> Result<Self, String> {
        let official: OfficialConfig =
            serde_json::from_value(v.clone()).map_err(|e| format!("config: {e}"))?;
        let heads = v
            .get("num_attention_heads")
            .and_then(|h| h.as_u64())
            .map(|h| h as usize);
        Ok(Self { official, heads })
    }
}

/// The head width every release uses; a checkpoint without a config is read with it.
pub const HEAD_DIM: usize = 128;

/// Infers the config from tensor shapes under diffusers names (the official names are mapped
/// first), checked against what `hint` states.
pub(crate) fn infer_config(
    shapes: &HashMap<String, Vec<usize>>,
    hint: &ConfigHint,
) -> Result<WanTransformerConfig, String> {
    let shape = |k: &str| -> Result<&Vec<usize>, String> {
        shapes.get(k).ok_or_else(|| format!("no tensor {k}"))
    };
    let dim_at = |k: &str, i: usize, rank: usize| -> Result<usize, String> {
        let s = shape(k)?;
        if s.len() != rank {
            return Err(format!("{k} has shape {s:?}, expected rank {rank}"));
        }
        Ok(s[i])
    };
    let pe = shape("patch_embedding.weight")?;
    if pe.len() != 5 {
        return Err(format!(
            "patch_embedding.weight has shape {pe:?}, expected [dim, C, t, h, w]"
        ));
    }
    let (dim, in_channels, patch) = (pe[0], pe[1], (pe[2], pe[3], pe[4]));
    let num_layers = shapes
        .keys()
        .filter_map(|k| {
            k.strip_prefix("blocks.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |n| n + 1);
    let ffn_dim = dim_at("blocks.0.ffn.net.0.proj.weight", 0, 2)?;
    let text_dim = dim_at("condition_embedder.text_embedder.linear_1.weight", 1, 2)?;
    let freq_dim = dim_at("condition_embedder.time_embedder.linear_1.weight", 1, 2)?;
    let head_out = dim_at("proj_out.weight", 0, 2)?;
    let volume = patch.0 * patch.1 * patch.2;
    if volume == 0 || !head_out.is_multiple_of(volume) {
        return Err(format!(
            "proj_out.weight has {head_out} rows, not a multiple of the patch volume {volume}"
        ));
    }
    let image_dim = match shapes.get("condition_embedder.image_embedder.norm1.weight") {
        Some(s) => Some(*s.first().ok_or("empty image norm")?),
        None => None,
    };
    let added_kv_proj_dim = match shapes.get("blocks.0.attn2.add_k_proj.weight") {
        Some(s) if s.len() == 2 => Some(s[1]),
        Some(s) => return Err(format!("blocks.0.attn2.add_k_proj.weight has shape {s:?}")),
        None => None,
    };
    let pos_embed_seq_len = match shapes.get("condition_embedder.image_embedder.pos_embed") {
        Some(s) if s.len() == 3 => Some(s[1]),
        Some(s) => return Err(format!("image pos_embed has shape {s:?}")),
        None => None,
    };
    let heads = match (hint.heads, hint.official.num_heads) {
        (Some(h), _) | (None, Some(h)) => h,
        (None, None) if dim.is_multiple_of(HEAD_DIM) => dim / HEAD_DIM,
        (None, None) => {
            return Err(format!(
                "width {dim} is not a multiple of {HEAD_DIM} and no config gives the head count"
            ))
        }
    };
    if heads == 0 || !dim.is_multiple_of(heads) {
        return Err(format!("{heads} heads do not divide the width {dim}"));
    }
    let cfg = WanTransformerConfig {
        patch_size: patch,
        num_attention_heads: heads,
        attention_head_dim: dim / heads,
        in_channels,
        out_channels: Some(head_out / volume),
        text_dim,
        freq_dim,
        ffn_dim,
        num_layers,
        cross_attn_norm: shapes.contains_key("blocks.0.norm2.weight"),
        qk_norm: Some("rms_norm_across_heads".into()),
        eps: hint.official.eps.unwrap_or(1e-6),
        image_dim,
        added_kv_proj_dim,
        rope_max_seq_len: 1024,
        pos_embed_seq_len,
    };
    let o = &hint.official;
    let stated = [
        ("dim", o.dim, dim),
        ("ffn_dim", o.ffn_dim, ffn_dim),
        ("freq_dim", o.freq_dim, freq_dim),
        ("in_dim", o.in_dim, in_channels),
        ("out_dim", o.out_dim, cfg.out_channels()),
        ("num_layers", o.num_layers, num_layers),
        ("text_dim", o.text_dim, text_dim),
    ];
    for (field, said, found) in stated {
        if let Some(said) = said {
            if said != found {
                return Err(format!(
                    "the config says {field} {said}, the weights have {found}"
                ));
            }
        }
    }
    cfg.validate()?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shapes a checkpoint of `cfg` holds (diffusers names; the ones inference reads).
    fn shapes_of(cfg: &WanTransformerConfig) -> HashMap<String, Vec<usize>> {
        let d = cfg.inner_dim();
        let (pt, ph, pw) = cfg.patch_size;
        let mut s: HashMap<String, Vec<usize>> = HashMap::new();
        s.insert(
            "patch_embedding.weight".into(),
            vec![d, cfg.in_channels, pt, ph, pw],
        );
        for i in 0..cfg.num_layers {
            s.insert(format!("blocks.{i}.scale_shift_table"), vec![1, 6, d]);
        }
        s.insert(
            "blocks.0.ffn.net.0.proj.weight".into(),
            vec![cfg.ffn_dim, d],
        );
        s.insert("blocks.0.norm2.weight".into(), vec![d]);
        s.insert(
            "condition_embedder.text_embedder.linear_1.weight".into(),
            vec![d, cfg.text_dim],
        );
        s.insert(
            "condition_embedder.time_embedder.linear_1.weight".into(),
            vec![d, cfg.freq_dim],
        );
        s.insert(
            "proj_out.weight".into(),
            vec![cfg.out_channels() * cfg.patch_volume(), d],
        );
        if let Some(i) = cfg.image_dim {
            s.insert(
                "condition_embedder.image_embedder.norm1.weight".into(),
                vec![i],
            );
            s.insert("blocks.0.attn2.add_k_proj.weight".into(), vec![d, d]);
        }
        if let Some(p) = cfg.pos_embed_seq_len {
            s.insert(
                "condition_embedder.image_embedder.pos_embed".into(),
                vec![1, p, cfg.image_dim.unwrap_or(0)],
            );
        }
        s
    }

    #[test]
    fn released_sizes_are_inferred_from_shapes_alone() {
        for cfg in [
            WanTransformerConfig::t2v_1_3b(),
            WanTransformerConfig::t2v_14b(),
            WanTransformerConfig::i2v_14b(),
            WanTransformerConfig::flf2v_14b(),
        ] {
            cfg.validate().unwrap();
            let got = infer_config(&shapes_of(&cfg), &ConfigHint::default()).unwrap();
            assert_eq!(got, cfg);
        }
        assert_eq!(WanTransformerConfig::t2v_1_3b().inner_dim(), 1536);
        assert_eq!(WanTransformerConfig::t2v_1_3b().rope_split(), (44, 42, 42));
    }

    #[test]
    fn a_config_that_disagrees_with_the_weights_is_refused() {
        let cfg = WanTransformerConfig::t2v_1_3b();
        let hint = ConfigHint {
            official: OfficialConfig {
                num_layers: Some(40),
                ..OfficialConfig::default()
            },
            heads: None,
        };
        let err = infer_config(&shapes_of(&cfg), &hint).unwrap_err();
        assert!(err.contains("num_layers 40"), "{err}");
    }

    /// The tiny diffusers checkpoints of the fixtures (one file, a sharded folder, an FLF2V
    /// image model with its position embedding) hold exactly the tensors
    /// `diffusers_tensor_shapes` names for their config.json.
    #[test]
    fn diffusers_tensor_shapes_are_the_fixtures_tensors() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/wan");
        for dir in [
            "transformer/diffusers-t2v",
            "transformer/diffusers-i2v",
            "pipeline/transformer-flf2v",
        ] {
            let path = root.join(dir);
            let json = std::fs::read_to_string(path.join("config.json")).unwrap();
            let cfg = WanTransformerConfig::from_json(&json).unwrap();
            let stored = super::super::load::Store::open(&path)
                .unwrap()
                .shapes()
                .unwrap();
            let listed = cfg.diffusers_tensor_shapes();
            let ours: HashMap<String, Vec<usize>> = listed.iter().cloned().collect();
            assert_eq!(ours.len(), listed.len(), "{dir}: a name listed twice");
            let mut missing: Vec<_> = stored.keys().filter(|k| !ours.contains_key(*k)).collect();
            let mut extra: Vec<_> = ours.keys().filter(|k| !stored.contains_key(*k)).collect();
            missing.sort();
            extra.sort();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{dir}: not listed {missing:?}, not stored {extra:?}"
            );
            assert_eq!(ours, stored, "{dir}");
            let hint = ConfigHint {
                heads: Some(cfg.num_attention_heads),
                ..ConfigHint::default()
            };
            assert_eq!(infer_config(&ours, &hint).unwrap(), cfg, "{dir}");
        }
        // The released sizes: inference from the listed shapes gives the config back.
        for cfg in [
            WanTransformerConfig::t2v_1_3b(),
            WanTransformerConfig::t2v_14b(),
            WanTransformerConfig::flf2v_14b(),
        ] {
            let shapes: HashMap<_, _> = cfg.diffusers_tensor_shapes().into_iter().collect();
            assert_eq!(infer_config(&shapes, &ConfigHint::default()).unwrap(), cfg);
        }
        let params: usize = WanTransformerConfig::t2v_1_3b()
            .diffusers_tensor_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(params, 1_418_996_800);
    }

    #[test]
    fn diffusers_config_json_parses() {
        let cfg = WanTransformerConfig::from_json(
            r#"{"_class_name": "WanTransformer3DModel", "added_kv_proj_dim": 5120,
                "attention_head_dim": 128, "cross_attn_norm": true, "eps": 1e-06,
                "ffn_dim": 13824, "freq_dim": 256, "image_dim": 1280, "in_channels": 36,
                "num_attention_heads": 40, "num_layers": 40, "out_channels": 16,
                "patch_size": [1, 2, 2], "qk_norm": "rms_norm_across_heads",
                "rope_max_seq_len": 1024, "text_dim": 4096}"#,
        )
        .unwrap();
        assert_eq!(cfg, WanTransformerConfig::i2v_14b());
    }
}
