//! The real architectures: the diffusers/transformers configs of each released model (from
//! their repositories' `config.json` files) and the sampler settings they were made for.
//! (GPU memory for admission is estimated from the registry: `hub::vram`.)

use serde_json::{json, Value};

use crate::pipeline::Family;
use crate::scheduler::{SamplerKind, ScheduleConfig};

/// Everything needed to build and run one released model.
#[derive(Clone, Debug)]
pub struct Arch {
    pub name: &'static str,
    pub family: Family,
    /// `unet` or `transformer`, `vae`, `text_encoder`, `text_encoder_2` (as in a diffusers repo).
    pub configs: Value,
    pub schedule: ScheduleConfig,
    pub defaults: SamplingDefaults,
    /// Native training resolution (the default size).
    pub native: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingDefaults {
    pub sampler: SamplerKind,
    pub steps: usize,
    pub cfg: f64,
}

/// Turbo models: one ancestral step, no guidance.
const TURBO: SamplingDefaults = SamplingDefaults {
    sampler: SamplerKind::EulerA,
    steps: 1,
    cfg: 0.0,
};

fn clip_l() -> Value {
    json!({"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
        "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "eos_token_id": 2, "projection_dim": 768})
}

fn sd_vae(scaling: f64) -> Value {
    json!({"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
        "latent_channels": 4, "norm_num_groups": 32, "scaling_factor": scaling})
}

fn sd_unet(heads: Value, cross: usize, linear: bool) -> Value {
    json!({"block_out_channels": [320, 640, 1280, 1280],
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "layers_per_block": 2, "attention_head_dim": heads, "cross_attention_dim": cross,
        "use_linear_projection": linear})
}

fn schedule(v: Value) -> ScheduleConfig {
    serde_json::from_value(v).expect("built-in scheduler config")
}

/// The built-in architectures by registry `arch` (and `variant` for Turbo/v-prediction).
pub fn builtin(arch: &str, variant: Option<&str>) -> Option<Arch> {
    let base = json!({"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
        "steps_offset": 1});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().expect("object") {
            b[k] = v.clone();
        }
        schedule(b)
    };
    let turbo = variant == Some("turbo");
    Some(match arch {
        "sd15" => Arch {
            name: "Stable Diffusion 1.x",
            family: Family::Sd1,
            configs: json!({"unet": sd_unet(json!(8), 768, false), "vae": sd_vae(0.18215),
                "text_encoder": clip_l()}),
            schedule: with(json!({})),
            defaults: SamplingDefaults {
                sampler: SamplerKind::DpmPP2M,
                steps: 25,
                cfg: 7.0,
            },
            native: 512,
        },
        "sd21" => Arch {
            name: if turbo {
                "SD-Turbo"
            } else {
                "Stable Diffusion 2.x"
            },
            family: Family::Sd2,
            configs: json!({"unet": sd_unet(json!([5, 10, 20, 20]), 1024, true),
                "vae": sd_vae(0.18215),
                "text_encoder": {"vocab_size": 49408, "hidden_size": 1024, "intermediate_size": 4096,
                    "num_hidden_layers": 23, "num_attention_heads": 16, "max_position_embeddings": 77,
                    "hidden_act": "gelu", "layer_norm_eps": 1e-5, "eos_token_id": 2, "projection_dim": 512}}),
            schedule: if turbo {
                with(json!({"timestep_spacing": "trailing"}))
            } else if variant == Some("v") {
                with(json!({"prediction_type": "v_prediction"}))
            } else {
                with(json!({}))
            },
            defaults: if turbo {
                TURBO
            } else {
                SamplingDefaults {
                    sampler: SamplerKind::DpmPP2M,
                    steps: 25,
                    cfg: 7.0,
                }
            },
            native: if turbo || variant != Some("v") {
                512
            } else {
                768
            },
        },
        "sdxl" | "sdxl-refiner" => {
            let refiner = arch == "sdxl-refiner";
            let big_g = json!({"vocab_size": 49408, "hidden_size": 1280, "intermediate_size": 5120,
                "num_hidden_layers": 32, "num_attention_heads": 20, "max_position_embeddings": 77,
                "hidden_act": "gelu", "layer_norm_eps": 1e-5, "eos_token_id": 2, "projection_dim": 1280});
            let unet = if refiner {
                json!({"block_out_channels": [384, 768, 1536, 1536],
                    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                    "layers_per_block": 2, "attention_head_dim": [6, 12, 24, 24],
                    "transformer_layers_per_block": 4, "cross_attention_dim": 1280,
                    "use_linear_projection": true, "addition_embed_type": "text_time",
                    "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2560})
            } else {
                json!({"block_out_channels": [320, 640, 1280],
                    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                    "layers_per_block": 2, "attention_head_dim": [5, 10, 20],
                    "transformer_layers_per_block": [1, 2, 10], "cross_attention_dim": 2048,
                    "use_linear_projection": true, "addition_embed_type": "text_time",
                    "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816})
            };
            let mut configs =
                json!({"unet": unet, "vae": sd_vae(0.13025), "text_encoder_2": big_g});
            if !refiner {
                configs["text_encoder"] = clip_l();
            }
            Arch {
                name: match (refiner, turbo) {
                    (true, _) => "SDXL refiner",
                    (false, true) => "SDXL-Turbo",
                    (false, false) => "SDXL",
                },
                family: if refiner {
                    Family::SdxlRefiner
                } else {
                    Family::Sdxl
                },
                configs,
                schedule: if turbo {
                    with(json!({"timestep_spacing": "trailing"}))
                } else {
                    with(json!({"timestep_spacing": "leading"}))
                },
                defaults: if turbo {
                    TURBO
                } else {
                    SamplingDefaults {
                        sampler: SamplerKind::Euler,
                        steps: 30,
                        cfg: 6.0,
                    }
                },
                native: if turbo { 512 } else { 1024 },
            }
        }
        "flux" => Arch {
            name: "FLUX.1 [schnell]",
            family: Family::Flux,
            configs: json!({
                "transformer": {"in_channels": 64, "num_layers": 19, "num_single_layers": 38,
                    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
                    "pooled_projection_dim": 768, "guidance_embeds": false, "axes_dims_rope": [16, 56, 56]},
                "vae": {"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
                    "latent_channels": 16, "norm_num_groups": 32, "scaling_factor": 0.3611,
                    "shift_factor": 0.1159, "use_quant_conv": false, "use_post_quant_conv": false},
                "text_encoder": clip_l(),
                "text_encoder_2": {"vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240,
                    "num_layers": 24, "num_heads": 64, "relative_attention_num_buckets": 32,
                    "relative_attention_max_distance": 128, "dropout_rate": 0.1,
                    "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0,
                    "feed_forward_proj": "gated-gelu", "is_encoder_decoder": true,
                    "tie_word_embeddings": false, "use_cache": true, "pad_token_id": 0,
                    "eos_token_id": 1}}),
            schedule: schedule(json!({"shift": 1.0})),
            defaults: SamplingDefaults {
                sampler: SamplerKind::Flow,
                steps: 4,
                cfg: 0.0,
            },
            native: 1024,
        },
        _ => return None,
    })
}
