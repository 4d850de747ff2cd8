//! Hugging Face checkpoints: the SmolLM2 test GGUF is turned into the folder a user would
//! download from the hub (HF tensor names and layout, `config.json`, `tokenizer.json`,
//! `tokenizer_config.json`), then loaded through the safetensors path and compared with the
//! GGUF it came from.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use reelsmith_llm::llm::{
    Arch, Backend, GenerateOptions, LlmEngine, LoadOptions, Message, ModelConfig, SamplingParams,
    Tokenizer,
};
use serde_json::json;

fn gguf_str(c: &gguf_file::Content, k: &str) -> Option<String> {
    c.metadata.get(k).and_then(|v| v.to_string().ok()).cloned()
}

/// Writes the HF folder for `gguf` into `dir`.
fn export(gguf: &Path, dir: &Path) {
    let mut r = BufReader::new(File::open(gguf).unwrap());
    let c = gguf_file::Content::read(&mut r).unwrap();
    let cfg = ModelConfig::from_gguf(&c).unwrap();
    let dev = Device::Cpu;
    let mut get = |name: &str| -> Tensor {
        c.tensor(&mut r, name, &dev)
            .unwrap()
            .dequantize(&dev)
            .unwrap()
    };
    // llama.cpp's converter interleaves the RoPE halves of Q and K rows; undo it.
    let unpermute = |t: Tensor, heads: usize| -> Tensor {
        let (rows, cols) = t.dims2().unwrap();
        t.reshape((heads, rows / heads / 2, 2, cols))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((rows, cols))
            .unwrap()
    };
    let mut w: HashMap<String, Tensor> = HashMap::new();
    w.insert("model.embed_tokens.weight".into(), get("token_embd.weight"));
    w.insert("model.norm.weight".into(), get("output_norm.weight"));
    let tied = !c.tensor_infos.contains_key("output.weight");
    if !tied {
        w.insert("lm_head.weight".into(), get("output.weight"));
    }
    for i in 0..cfg.n_layers {
        let hf = |s: &str| format!("model.layers.{i}.{s}");
        let gg = |s: &str| format!("blk.{i}.{s}.weight");
        let q = unpermute(get(&gg("attn_q")), cfg.n_heads);
        let k = unpermute(get(&gg("attn_k")), cfg.n_kv_heads);
        w.insert(hf("self_attn.q_proj.weight"), q);
        w.insert(hf("self_attn.k_proj.weight"), k);
        for (h, g) in [
            ("self_attn.v_proj.weight", "attn_v"),
            ("self_attn.o_proj.weight", "attn_output"),
            ("mlp.gate_proj.weight", "ffn_gate"),
            ("mlp.up_proj.weight", "ffn_up"),
            ("mlp.down_proj.weight", "ffn_down"),
            ("input_layernorm.weight", "attn_norm"),
            ("post_attention_layernorm.weight", "ffn_norm"),
        ] {
            w.insert(hf(h), get(&gg(g)));
        }
    }
    candle_core::safetensors::save(&w, dir.join("model.safetensors")).unwrap();
    let md = &c.metadata;
    let id = |k: &str| md.get(k).and_then(|v| v.to_u32().ok());
    std::fs::write(
        dir.join("config.json"),
        json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": cfg.dim,
            "intermediate_size": cfg.ffn_dim,
            "num_hidden_layers": cfg.n_layers,
            "num_attention_heads": cfg.n_heads,
            "num_key_value_heads": cfg.n_kv_heads,
            "rms_norm_eps": cfg.rms_eps,
            "rope_theta": cfg.rope_theta,
            "max_position_embeddings": cfg.context_length,
            "vocab_size": cfg.vocab_size,
            "tie_word_embeddings": tied,
            "bos_token_id": id("tokenizer.ggml.bos_token_id"),
            "eos_token_id": id("tokenizer.ggml.eos_token_id"),
        })
        .to_string(),
    )
    .unwrap();
    let list = |k: &str| -> Vec<gguf_file::Value> { md.get(k).unwrap().to_vec().unwrap().clone() };
    let tokens: Vec<String> = list("tokenizer.ggml.tokens")
        .iter()
        .map(|v| v.to_string().unwrap().clone())
        .collect();
    let types: Vec<i32> = list("tokenizer.ggml.token_type")
        .iter()
        .map(|v| v.to_i32().unwrap())
        .collect();
    let merges: Vec<String> = list("tokenizer.ggml.merges")
        .iter()
        .map(|v| v.to_string().unwrap().clone())
        .collect();
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| types[*i] != 3)
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<serde_json::Value> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| types[*i] == 3)
        .map(|(i, t)| json!({"id": i, "content": t, "special": true, "normalized": false}))
        .collect();
    std::fs::write(
        dir.join("tokenizer.json"),
        json!({
            "version": "1.0",
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
            ]},
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "byte_fallback": false,
                      "vocab": vocab, "merges": merges}
        })
        .to_string(),
    )
    .unwrap();
    let name = |k: &str| tokens[id(k).unwrap() as usize].clone();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        json!({
            "bos_token": name("tokenizer.ggml.bos_token_id"),
            "eos_token": {"content": name("tokenizer.ggml.eos_token_id")},
            "add_bos_token": false,
            "chat_template": gguf_str(&c, "tokenizer.chat_template"),
        })
        .to_string(),
    )
    .unwrap();
}

#[test]
fn a_hub_checkpoint_folder_runs_like_the_gguf_it_came_from() {
    let Some(gguf) = common::model_path() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    export(&gguf, tmp.path());

    // tokenizer.json gives the ids the GGUF vocabulary gives.
    let mut r = BufReader::new(File::open(&gguf).unwrap());
    let from_gguf = Tokenizer::from_gguf(&gguf_file::Content::read(&mut r).unwrap()).unwrap();
    let text = "Hello, world! Ça va? 日本語 12345 <|im_start|>user\n  spaces\tand tabs 😀";
    let mut ckpt = LlmEngine::load(tmp.path(), &LoadOptions::default()).expect("loads");
    assert_eq!(ckpt.config().arch, Arch::Llama);
    assert!(matches!(ckpt.backend(), Backend::Safetensors(_)));
    assert_eq!(
        ckpt.tokenizer().encode(text, true),
        from_gguf.encode(text, true)
    );
    assert_eq!(ckpt.tokenizer().eos_id(), from_gguf.eos_id());

    // Same chat template, same prompt tokens, and next-token logits that agree.
    let mut native = LlmEngine::load(&gguf, &LoadOptions::default()).unwrap();
    let msgs = [Message::user(
        "What is the capital of France? Answer briefly.",
    )];
    assert_eq!(ckpt.render_chat(&msgs), native.render_chat(&msgs));
    assert_eq!(ckpt.stop_token_ids(), native.stop_token_ids());
    let ids = native.tokenize_prompt(&native.render_chat(&msgs));
    let a = ckpt.forward(&ids).unwrap().to_vec();
    let b = native.forward(&ids).unwrap().to_vec();
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1))
            .unwrap()
            .0
    };
    assert_eq!(argmax(&a), argmax(&b));
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    // The native path quantizes activations to 8 bits; the checkpoint runs in f32.
    assert!(diff < 0.1 * scale, "max |Δlogit| {diff} of {scale}");

    // It answers, and greedy decoding repeats itself (prefix cache reset each time).
    let opts = GenerateOptions {
        sampling: SamplingParams::greedy(),
        max_tokens: 24,
        stop: Vec::new(),
    };
    let g = ckpt
        .chat(&msgs, &opts, |_| ControlFlow::Continue(()))
        .unwrap();
    assert!(g.text.contains("Paris"), "{:?}", g.text);
    let again = ckpt
        .chat(&msgs, &opts, |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(g.tokens, again.tokens);
}

#[test]
fn a_folder_without_its_config_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("model.safetensors"), b"").unwrap();
    let err = LlmEngine::load(tmp.path(), &LoadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("config.json"), "{msg}");
    std::fs::write(
        tmp.path().join("config.json"),
        r#"{"model_type": "mamba", "hidden_size": 8}"#,
    )
    .unwrap();
    let msg = LlmEngine::load(tmp.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("mamba") && msg.contains("GGUF"), "{msg}");
}
