//! Hugging Face Whisper checkpoints (`openai/whisper-*`, `distil-whisper/*`: `model.safetensors`,
//! `config.json`, `tokenizer.json`, `generation_config.json`) mapped onto the CTranslate2 layout
//! the engine builds its model from: self-attention Q/K/V are fused into one projection (K has
//! no bias, so its part of the fused bias is zero), cross-attention K/V likewise, layer norms
//! become `gamma`/`beta`, and the head counts come from `config.json`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::ct2::Ct2Model;
use super::WhisperError;

/// Whether `dir` holds a Hugging Face Whisper checkpoint.
pub fn is_checkpoint(dir: &Path) -> bool {
    dir.join("model.safetensors").is_file() && dir.join("config.json").is_file()
}

struct Source<'a> {
    path: &'a Path,
    tensors: HashMap<String, Tensor>,
}

impl Source<'_> {
    fn err(&self, msg: String) -> WhisperError {
        WhisperError::ModelFormat {
            path: self.path.to_path_buf(),
            msg,
        }
    }

    /// `name` as f32 values and its shape (the `model.` prefix is optional in checkpoints).
    fn get(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), WhisperError> {
        let t = self
            .tensors
            .get(&format!("model.{name}"))
            .or_else(|| self.tensors.get(name))
            .ok_or_else(|| self.err(format!("missing tensor '{name}'")))?;
        let shape = t.dims().to_vec();
        let values = t
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| self.err(format!("tensor '{name}': {e}")))?;
        Ok((shape, values))
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(&format!("model.{name}")) || self.tensors.contains_key(name)
    }
}

/// Reads a Hugging Face Whisper checkpoint folder as a CTranslate2-layout model.
pub fn load(dir: &Path) -> Result<Ct2Model, WhisperError> {
    let weights = dir.join("model.safetensors");
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|source| WhisperError::Io {
        path: config_path.clone(),
        source,
    })?;
    let cfg: serde_json::Value = serde_json::from_str(&text).map_err(|e| WhisperError::Config {
        path: config_path.clone(),
        msg: e.to_string(),
    })?;
    let heads = |k: &str| -> Result<i32, WhisperError> {
        cfg[k]
            .as_i64()
            .and_then(|h| i32::try_from(h).ok())
            .ok_or_else(|| WhisperError::Config {
                path: config_path.clone(),
                msg: format!("missing {k}"),
            })
    };
    let (enc_heads, dec_heads) = (
        heads("encoder_attention_heads")?,
        heads("decoder_attention_heads")?,
    );
    if let Some(act) = cfg["activation_function"].as_str() {
        if act != "gelu" {
            return Err(WhisperError::Config {
                path: config_path.clone(),
                msg: format!("activation_function {act:?}: only gelu Whisper models are supported"),
            });
        }
    }
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu).map_err(|e| {
        WhisperError::ModelFormat {
            path: weights.clone(),
            msg: e.to_string(),
        }
    })?;
    let src = Source {
        path: &weights,
        tensors,
    };
    let mut out: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut copy = |to: &str, from: &str| -> Result<(), WhisperError> {
        let (shape, v) = src.get(from)?;
        out.push((to.to_string(), shape, v));
        Ok(())
    };
    for conv in ["conv1", "conv2"] {
        copy(
            &format!("encoder/{conv}/weight"),
            &format!("encoder.{conv}.weight"),
        )?;
        copy(
            &format!("encoder/{conv}/bias"),
            &format!("encoder.{conv}.bias"),
        )?;
    }
    copy(
        "encoder/position_encodings/encodings",
        "encoder.embed_positions.weight",
    )?;
    copy("decoder/embeddings/weight", "decoder.embed_tokens.weight")?;
    copy(
        "decoder/position_encodings/encodings",
        "decoder.embed_positions.weight",
    )?;
    for (to, from) in [
        ("encoder/layer_norm", "encoder.layer_norm"),
        ("decoder/layer_norm", "decoder.layer_norm"),
    ] {
        copy(&format!("{to}/gamma"), &format!("{from}.weight"))?;
        copy(&format!("{to}/beta"), &format!("{from}.bias"))?;
    }
    let mut fused = Vec::new();
    for side in ["encoder", "decoder"] {
        let mut i = 0;
        while src.has(&format!("{side}.layers.{i}.fc1.weight")) {
            let hf = |s: &str| format!("{side}.layers.{i}.{s}");
            let ct = |s: &str| format!("{side}/layer_{i}/{s}");
            // Self-attention: [q; k; v] with k unbiased.
            fused.push((
                ct("self_attention/linear_0"),
                vec![
                    hf("self_attn.q_proj"),
                    hf("self_attn.k_proj"),
                    hf("self_attn.v_proj"),
                ],
            ));
            for (to, from) in [
                ("self_attention/linear_1", "self_attn.out_proj"),
                ("ffn/linear_0", "fc1"),
                ("ffn/linear_1", "fc2"),
            ] {
                copy(&ct(&format!("{to}/weight")), &hf(&format!("{from}.weight")))?;
                copy(&ct(&format!("{to}/bias")), &hf(&format!("{from}.bias")))?;
            }
            let mut norms = vec![
                ("self_attention/layer_norm", "self_attn_layer_norm"),
                ("ffn/layer_norm", "final_layer_norm"),
            ];
            if side == "decoder" {
                norms.push(("attention/layer_norm", "encoder_attn_layer_norm"));
                copy(
                    &ct("attention/linear_0/weight"),
                    &hf("encoder_attn.q_proj.weight"),
                )?;
                copy(
                    &ct("attention/linear_0/bias"),
                    &hf("encoder_attn.q_proj.bias"),
                )?;
                fused.push((
                    ct("attention/linear_1"),
                    vec![hf("encoder_attn.k_proj"), hf("encoder_attn.v_proj")],
                ));
                copy(
                    &ct("attention/linear_2/weight"),
                    &hf("encoder_attn.out_proj.weight"),
                )?;
                copy(
                    &ct("attention/linear_2/bias"),
                    &hf("encoder_attn.out_proj.bias"),
                )?;
            }
            for (to, from) in norms {
                copy(&ct(&format!("{to}/gamma")), &hf(&format!("{from}.weight")))?;
                copy(&ct(&format!("{to}/beta")), &hf(&format!("{from}.bias")))?;
            }
            i += 1;
        }
        if i == 0 {
            return Err(src.err(format!("no {side} layers ({side}.layers.0.fc1.weight)")));
        }
    }
    for (to, parts) in fused {
        let mut weight = Vec::new();
        let mut bias = Vec::new();
        let mut rows = 0;
        let mut cols = 0;
        for p in &parts {
            let (shape, w) = src.get(&format!("{p}.weight"))?;
            let [r, c] = shape[..] else {
                return Err(src.err(format!("{p}.weight has shape {shape:?}")));
            };
            cols = c;
            rows += r;
            weight.extend(w);
            if src.has(&format!("{p}.bias")) {
                bias.extend(src.get(&format!("{p}.bias"))?.1);
            } else {
                bias.extend(std::iter::repeat_n(0.0, r));
            }
        }
        out.push((format!("{to}/weight"), vec![rows, cols], weight));
        out.push((format!("{to}/bias"), vec![rows], bias));
    }
    Ok(Ct2Model::from_arrays(
        &weights,
        "WhisperSpec",
        out,
        &[
            ("encoder/num_heads", enc_heads),
            ("decoder/num_heads", dec_heads),
        ],
    ))
}

/// Alignment heads and suppressed tokens from `generation_config.json`, in the shape of
/// faster-whisper's `config.json` (`alignment_heads`, `suppress_ids`, `suppress_ids_begin`).
pub fn generation_config(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("generation_config.json")).ok()?;
    let g: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(serde_json::json!({
        "alignment_heads": g["alignment_heads"],
        "suppress_ids": g["suppress_tokens"],
        "suppress_ids_begin": g["begin_suppress_tokens"],
    }))
}
