//! Renaming between the released layouts and diffusers' names: UNet (LDM/SGM), VAE, CLIP and
//! OpenCLIP text encoders.

use super::*;

// ---------------------------------------------------------------------------------------------
// UNet: LDM/SGM ↔ diffusers
// ---------------------------------------------------------------------------------------------

pub(super) const LDM_RESNET: [(&str, &str); 6] = [
    ("in_layers.0", "norm1"),
    ("in_layers.2", "conv1"),
    ("emb_layers.1", "time_emb_proj"),
    ("out_layers.0", "norm2"),
    ("out_layers.3", "conv2"),
    ("skip_connection", "conv_shortcut"),
];

pub(super) fn resnet_ldm_to_diffusers(head: &str, rest: &[&str]) -> Option<String> {
    let joined = rest.join(".");
    LDM_RESNET.iter().find_map(|(ldm, diff)| {
        let tail = joined.strip_prefix(ldm)?.strip_prefix('.')?;
        Some(format!("{head}.{diff}.{tail}"))
    })
}

pub(super) fn resnet_diffusers_to_ldm(head: &str, rest: &[&str]) -> Option<String> {
    let joined = rest.join(".");
    LDM_RESNET.iter().find_map(|(ldm, diff)| {
        let tail = joined.strip_prefix(diff)?.strip_prefix('.')?;
        Some(format!("{head}.{ldm}.{tail}"))
    })
}

pub(super) fn unet_ldm_to_diffusers(k: &[&str], s: &Structure) -> Option<String> {
    let per = s.layers_per_block + 1;
    let emb = if s.class_embedding {
        "class_embedding"
    } else {
        "add_embedding"
    };
    match k {
        ["input_blocks", "0", "0", rest @ ..] => join("conv_in", rest),
        ["time_embed", "0", rest @ ..] => join("time_embedding.linear_1", rest),
        ["time_embed", "2", rest @ ..] => join("time_embedding.linear_2", rest),
        ["label_emb", "0", "0", rest @ ..] => join(&format!("{emb}.linear_1"), rest),
        ["label_emb", "0", "2", rest @ ..] => join(&format!("{emb}.linear_2"), rest),
        ["out", "0", rest @ ..] => join("conv_norm_out", rest),
        ["out", "2", rest @ ..] => join("conv_out", rest),
        ["input_blocks", i, sub, rest @ ..] => {
            let i = index(i)?.checked_sub(1)?;
            let (b, j) = (i / per, i % per);
            match (*sub, rest) {
                ("0", ["op", tail @ ..]) => {
                    join(&format!("down_blocks.{b}.downsamplers.0.conv"), tail)
                }
                ("0", _) => resnet_ldm_to_diffusers(&format!("down_blocks.{b}.resnets.{j}"), rest),
                ("1", _) => join(&format!("down_blocks.{b}.attentions.{j}"), rest),
                _ => None,
            }
        }
        ["middle_block", "0", rest @ ..] => resnet_ldm_to_diffusers("mid_block.resnets.0", rest),
        ["middle_block", "1", rest @ ..] => join("mid_block.attentions.0", rest),
        ["middle_block", "2", rest @ ..] => resnet_ldm_to_diffusers("mid_block.resnets.1", rest),
        ["output_blocks", i, sub, rest @ ..] => {
            let i = index(i)?;
            let (b, j) = (i / per, i % per);
            match (*sub, rest) {
                ("0", _) => resnet_ldm_to_diffusers(&format!("up_blocks.{b}.resnets.{j}"), rest),
                ("1" | "2", ["conv", tail @ ..]) => {
                    join(&format!("up_blocks.{b}.upsamplers.0.conv"), tail)
                }
                ("1", _) => join(&format!("up_blocks.{b}.attentions.{j}"), rest),
                _ => None,
            }
        }
        _ => None,
    }
}

pub(super) fn unet_diffusers_to_ldm(
    n: &[&str],
    s: &Structure,
    exists: impl Fn(&str) -> bool,
) -> Option<String> {
    let l = s.layers_per_block;
    let per = l + 1;
    match n {
        ["conv_in", rest @ ..] => join("input_blocks.0.0", rest),
        ["time_embedding", "linear_1", rest @ ..] => join("time_embed.0", rest),
        ["time_embedding", "linear_2", rest @ ..] => join("time_embed.2", rest),
        ["add_embedding" | "class_embedding", "linear_1", rest @ ..] => join("label_emb.0.0", rest),
        ["add_embedding" | "class_embedding", "linear_2", rest @ ..] => join("label_emb.0.2", rest),
        ["conv_norm_out", rest @ ..] => join("out.0", rest),
        ["conv_out", rest @ ..] => join("out.2", rest),
        ["down_blocks", b, "resnets", j, rest @ ..] => {
            let i = 1 + index(b)? * per + index(j)?;
            resnet_diffusers_to_ldm(&format!("input_blocks.{i}.0"), rest)
        }
        ["down_blocks", b, "attentions", j, rest @ ..] => {
            let i = 1 + index(b)? * per + index(j)?;
            join(&format!("input_blocks.{i}.1"), rest)
        }
        ["down_blocks", b, "downsamplers", "0", "conv", rest @ ..] => {
            let i = 1 + index(b)? * per + l;
            join(&format!("input_blocks.{i}.0.op"), rest)
        }
        ["mid_block", "resnets", j, rest @ ..] => {
            resnet_diffusers_to_ldm(&format!("middle_block.{}", 2 * index(j)?), rest)
        }
        ["mid_block", "attentions", "0", rest @ ..] => join("middle_block.1", rest),
        ["up_blocks", b, "resnets", j, rest @ ..] => {
            let i = index(b)? * per + index(j)?;
            resnet_diffusers_to_ldm(&format!("output_blocks.{i}.0"), rest)
        }
        ["up_blocks", b, "attentions", j, rest @ ..] => {
            let i = index(b)? * per + index(j)?;
            join(&format!("output_blocks.{i}.1"), rest)
        }
        ["up_blocks", b, "upsamplers", "0", "conv", rest @ ..] => {
            let b = index(b)?;
            let i = b * per + l;
            let attn = match &s.up_attention {
                Some(a) => a.get(b).copied().unwrap_or(false),
                None => exists(&format!("output_blocks.{i}.2.conv.{}", rest.join("."))),
            };
            join(
                &format!("output_blocks.{i}.{}.conv", if attn { 2 } else { 1 }),
                rest,
            )
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// VAE: LDM ↔ diffusers
// ---------------------------------------------------------------------------------------------

pub(super) const VAE_ATTN: [(&str, &str); 5] = [
    ("norm", "group_norm"),
    ("q", "to_q"),
    ("k", "to_k"),
    ("v", "to_v"),
    ("proj_out", "to_out.0"),
];

pub(super) fn vae_resnet(head: &str, rest: &[&str]) -> Option<String> {
    match rest {
        ["nin_shortcut", tail @ ..] => join(&format!("{head}.conv_shortcut"), tail),
        [m @ ("norm1" | "conv1" | "norm2" | "conv2"), tail @ ..] => {
            join(&format!("{head}.{m}"), tail)
        }
        _ => None,
    }
}

pub(super) fn vae_resnet_rev(head: &str, rest: &[&str]) -> Option<String> {
    match rest {
        ["conv_shortcut", tail @ ..] => join(&format!("{head}.nin_shortcut"), tail),
        [m @ ("norm1" | "conv1" | "norm2" | "conv2"), tail @ ..] => {
            join(&format!("{head}.{m}"), tail)
        }
        _ => None,
    }
}

/// LDM VAE key → (diffusers name, whether a 1×1-conv attention weight is squeezed to 2-D).
pub(super) fn vae_ldm_to_diffusers(k: &[&str], n_up: usize) -> Option<(String, bool)> {
    let plain = |s: Option<String>| s.map(|s| (s, false));
    match k {
        [q @ ("quant_conv" | "post_quant_conv"), rest @ ..] => plain(join(q, rest)),
        [ed @ ("encoder" | "decoder"), c @ ("conv_in" | "conv_out"), rest @ ..] => {
            plain(join(&format!("{ed}.{c}"), rest))
        }
        [ed @ ("encoder" | "decoder"), "norm_out", rest @ ..] => {
            plain(join(&format!("{ed}.conv_norm_out"), rest))
        }
        ["encoder", "down", i, "block", j, rest @ ..] => plain(vae_resnet(
            &format!("encoder.down_blocks.{}.resnets.{}", index(i)?, index(j)?),
            rest,
        )),
        ["encoder", "down", i, "downsample", "conv", rest @ ..] => plain(join(
            &format!("encoder.down_blocks.{}.downsamplers.0.conv", index(i)?),
            rest,
        )),
        ["decoder", "up", i, "block", j, rest @ ..] => {
            let b = n_up.checked_sub(1)?.checked_sub(index(i)?)?;
            plain(vae_resnet(
                &format!("decoder.up_blocks.{b}.resnets.{}", index(j)?),
                rest,
            ))
        }
        ["decoder", "up", i, "upsample", "conv", rest @ ..] => {
            let b = n_up.checked_sub(1)?.checked_sub(index(i)?)?;
            plain(join(
                &format!("decoder.up_blocks.{b}.upsamplers.0.conv"),
                rest,
            ))
        }
        [ed @ ("encoder" | "decoder"), "mid", block @ ("block_1" | "block_2"), rest @ ..] => {
            let j = if *block == "block_1" { 0 } else { 1 };
            plain(vae_resnet(&format!("{ed}.mid_block.resnets.{j}"), rest))
        }
        [ed @ ("encoder" | "decoder"), "mid", "attn_1", m, rest @ ..] => {
            let (_, diff) = VAE_ATTN.iter().find(|(ldm, _)| ldm == m)?;
            let name = join(&format!("{ed}.mid_block.attentions.0.{diff}"), rest)?;
            Some((name, *m != "norm" && rest == ["weight"]))
        }
        _ => None,
    }
}

pub(super) fn vae_diffusers_to_ldm(n: &[&str], n_up: usize) -> Option<String> {
    match n {
        [q @ ("quant_conv" | "post_quant_conv"), rest @ ..] => join(q, rest),
        [ed @ ("encoder" | "decoder"), c @ ("conv_in" | "conv_out"), rest @ ..] => {
            join(&format!("{ed}.{c}"), rest)
        }
        [ed @ ("encoder" | "decoder"), "conv_norm_out", rest @ ..] => {
            join(&format!("{ed}.norm_out"), rest)
        }
        ["encoder", "down_blocks", i, "resnets", j, rest @ ..] => vae_resnet_rev(
            &format!("encoder.down.{}.block.{}", index(i)?, index(j)?),
            rest,
        ),
        ["encoder", "down_blocks", i, "downsamplers", "0", "conv", rest @ ..] => {
            join(&format!("encoder.down.{}.downsample.conv", index(i)?), rest)
        }
        ["decoder", "up_blocks", b, "resnets", j, rest @ ..] => {
            let i = n_up.checked_sub(1)?.checked_sub(index(b)?)?;
            vae_resnet_rev(&format!("decoder.up.{i}.block.{}", index(j)?), rest)
        }
        ["decoder", "up_blocks", b, "upsamplers", "0", "conv", rest @ ..] => {
            let i = n_up.checked_sub(1)?.checked_sub(index(b)?)?;
            join(&format!("decoder.up.{i}.upsample.conv"), rest)
        }
        [ed @ ("encoder" | "decoder"), "mid_block", "resnets", j @ ("0" | "1"), rest @ ..] => {
            vae_resnet_rev(&format!("{ed}.mid.block_{}", index(j)? + 1), rest)
        }
        [ed @ ("encoder" | "decoder"), "mid_block", "attentions", "0", rest @ ..] => {
            let joined = rest.join(".");
            VAE_ATTN.iter().find_map(|(ldm, diff)| {
                let tail = joined.strip_prefix(diff)?.strip_prefix('.')?;
                Some(format!("{ed}.mid.attn_1.{ldm}.{tail}"))
            })
        }
        _ => None,
    }
}

/// diffusers VAE key → served name (older diffusers files name the attention projections
/// `query`/`key`/`value`/`proj_attn`).
pub(super) fn vae_diffusers_name(k: &[&str]) -> Option<String> {
    if !matches!(
        k.first(),
        Some(&("encoder" | "decoder" | "quant_conv" | "post_quant_conv"))
    ) {
        return None;
    }
    let renamed: Vec<&str> = k
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let in_attention = i >= 3 && k[i - 2] == "attentions";
            match (*c, in_attention) {
                ("query", true) => "to_q",
                ("key", true) => "to_k",
                ("value", true) => "to_v",
                ("proj_attn", true) => "to_out.0",
                _ => c,
            }
        })
        .collect();
    Some(renamed.join("."))
}

/// `[C, C, 1, 1]` / `[C, C, 1]` → `[C, C]`.
pub(super) fn squeezed(shape: &[usize]) -> Vec<usize> {
    let mut s = shape.to_vec();
    while s.len() > 2 && s.last() == Some(&1) {
        s.pop();
    }
    s
}

/// Shapes equal once every dimension of size 1 is dropped (a 1×1 conv vs a linear).
pub(super) fn same_but_unit_dims(a: &[usize], b: &[usize]) -> bool {
    let strip = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
    strip(a) == strip(b)
}

// ---------------------------------------------------------------------------------------------
// Text encoders
// ---------------------------------------------------------------------------------------------

pub(super) fn clip_hf_name(rest: &str, text_model: bool) -> Option<String> {
    if rest == "text_projection.weight" {
        return Some(rest.to_string());
    }
    if text_model {
        rest.starts_with("text_model.").then(|| rest.to_string())
    } else {
        ["embeddings.", "encoder.layers.", "final_layer_norm."]
            .iter()
            .any(|p| rest.starts_with(p))
            .then(|| format!("text_model.{rest}"))
    }
}

/// Whether a transformers CLIP name is one the configured network has.
pub(super) fn serve_text_name(part: Part, s: &Structure, name: &str) -> bool {
    if name.ends_with("position_ids") {
        return false;
    }
    if name == "text_projection.weight" {
        return part == Part::TextEncoder2;
    }
    if let (Some(layers), Some(rest)) = (
        s.text_layers,
        name.strip_prefix("text_model.encoder.layers."),
    ) {
        if let Some(i) = rest.split('.').next().and_then(index) {
            return i < layers;
        }
    }
    true
}

pub(super) fn open_clip_forward(
    part: Part,
    s: &Structure,
    k: &[&str],
    stored: &[usize],
) -> Vec<Entry> {
    let one = |name: String| -> Vec<Entry> {
        if serve_text_name(part, s, &name) {
            whole(name, stored)
        } else {
            vec![]
        }
    };
    match k {
        ["token_embedding", "weight"] => one("text_model.embeddings.token_embedding.weight".into()),
        ["positional_embedding"] => one("text_model.embeddings.position_embedding.weight".into()),
        ["ln_final", p] => one(format!("text_model.final_layer_norm.{p}")),
        ["text_projection"] if stored.len() == 2 && part == Part::TextEncoder2 => vec![Entry {
            name: "text_projection.weight".into(),
            op: Op::Transpose,
            shape: vec![stored[1], stored[0]],
        }],
        ["transformer", "resblocks", n, rest @ ..] => {
            let Some(layer) = index(n) else {
                return vec![];
            };
            let head = format!("text_model.encoder.layers.{layer}");
            if !serve_text_name(part, s, &format!("{head}.x")) {
                return vec![];
            }
            match rest {
                ["attn", which @ ("in_proj_weight" | "in_proj_bias")]
                    if stored[0].is_multiple_of(3) =>
                {
                    let h = stored[0] / 3;
                    let p = if *which == "in_proj_weight" {
                        "weight"
                    } else {
                        "bias"
                    };
                    ["q_proj", "k_proj", "v_proj"]
                        .iter()
                        .enumerate()
                        .map(|(i, proj)| {
                            let mut shape = stored.to_vec();
                            shape[0] = h;
                            Entry {
                                name: format!("{head}.self_attn.{proj}.{p}"),
                                op: Op::Rows {
                                    start: i * h,
                                    len: h,
                                },
                                shape,
                            }
                        })
                        .collect()
                }
                ["attn", "out_proj", p] => whole(format!("{head}.self_attn.out_proj.{p}"), stored),
                ["ln_1", p] => whole(format!("{head}.layer_norm1.{p}"), stored),
                ["ln_2", p] => whole(format!("{head}.layer_norm2.{p}"), stored),
                ["mlp", "c_fc", p] => whole(format!("{head}.mlp.fc1.{p}"), stored),
                ["mlp", "c_proj", p] => whole(format!("{head}.mlp.fc2.{p}"), stored),
                _ => vec![],
            }
        }
        _ => vec![],
    }
}

pub(super) fn open_clip_key(n: &[&str]) -> Option<String> {
    match n {
        ["text_model", "embeddings", "token_embedding", "weight"] => {
            Some("token_embedding.weight".into())
        }
        ["text_model", "embeddings", "position_embedding", "weight"] => {
            Some("positional_embedding".into())
        }
        ["text_model", "final_layer_norm", p] => Some(format!("ln_final.{p}")),
        ["text_projection", "weight"] => Some("text_projection".into()),
        ["text_model", "encoder", "layers", l, rest @ ..] => {
            let head = format!("transformer.resblocks.{}", index(l)?);
            match rest {
                ["self_attn", "q_proj" | "k_proj" | "v_proj", "weight"] => {
                    Some(format!("{head}.attn.in_proj_weight"))
                }
                ["self_attn", "q_proj" | "k_proj" | "v_proj", "bias"] => {
                    Some(format!("{head}.attn.in_proj_bias"))
                }
                ["self_attn", "out_proj", p] => Some(format!("{head}.attn.out_proj.{p}")),
                ["layer_norm1", p] => Some(format!("{head}.ln_1.{p}")),
                ["layer_norm2", p] => Some(format!("{head}.ln_2.{p}")),
                ["mlp", "fc1", p] => Some(format!("{head}.mlp.c_fc.{p}")),
                ["mlp", "fc2", p] => Some(format!("{head}.mlp.c_proj.{p}")),
                _ => None,
            }
        }
        _ => None,
    }
}
