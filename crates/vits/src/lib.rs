//! Piper voices (VITS): the voice files and what they say about the network.
//!
//! A voice is `NAME.onnx` (the weights, read as ONNX initializers: see [`onnx`]) plus
//! `NAME.onnx.json` (sample rate, espeak-ng voice, noise/length scales, speakers and the
//! phoneme → id table). [`PiperVoice::open`] reads both, checks that they belong together and
//! that every tensor the VITS modules need is there with a consistent shape, and infers the
//! hyper-parameters (hidden size, layers, heads, relative-attention window, flows, upsampling).

pub mod cpu;
pub mod model;
pub mod onnx;
pub mod phonemize;
pub mod speak;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use onnx::{OnnxError, OnnxWeights, Weight};

/// Why a voice could not be used.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Weights { path: PathBuf, msg: String },
}

/// `inference` of the `.onnx.json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scales {
    /// Noise of the prior (0.667 in most voices).
    pub noise_scale: f32,
    /// Speaking slowness (1 = as trained).
    pub length_scale: f32,
    /// Noise of the stochastic duration predictor (0.8).
    pub noise_w: f32,
}

/// What the `.onnx.json` says.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceConfig {
    pub sample_rate: u32,
    /// espeak-ng voice for phonemization (`en-us`).
    pub espeak_voice: String,
    pub scales: Scales,
    pub num_speakers: usize,
    /// Speaker name → id (multi-speaker voices).
    pub speakers: BTreeMap<String, usize>,
    /// Phoneme (one character, as espeak-ng writes IPA) → ids.
    pub phoneme_ids: BTreeMap<String, Vec<i64>>,
    pub num_symbols: usize,
}

impl VoiceConfig {
    /// Parses the `.onnx.json` text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, VoiceError> {
        let bad = |msg: String| VoiceError::Config {
            path: path.to_path_buf(),
            msg,
        };
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let num = |ptr: &str| v.pointer(ptr).and_then(|x| x.as_f64());
        let sample_rate = num("/audio/sample_rate")
            .filter(|r| *r >= 8000.0 && *r <= 96_000.0)
            .ok_or_else(|| bad("audio.sample_rate: missing or not a sample rate".into()))?
            as u32;
        let espeak_voice = v
            .pointer("/espeak/voice")
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                bad("espeak.voice: missing (the espeak-ng voice to phonemize with)".into())
            })?
            .to_string();
        let scale = |k: &str, default: f64| -> Result<f32, VoiceError> {
            match v.pointer(&format!("/inference/{k}")) {
                None => Ok(default as f32),
                Some(x) => x
                    .as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as f32)
                    .ok_or_else(|| bad(format!("inference.{k}: {x} is not a number ≥ 0"))),
            }
        };
        let scales = Scales {
            noise_scale: scale("noise_scale", 0.667)?,
            length_scale: scale("length_scale", 1.0)?,
            noise_w: scale("noise_w", 0.8)?,
        };
        let map = v
            .get("phoneme_id_map")
            .and_then(|m| m.as_object())
            .filter(|m| !m.is_empty())
            .ok_or_else(|| bad("phoneme_id_map: missing or empty".into()))?;
        let mut phoneme_ids = BTreeMap::new();
        for (p, ids) in map {
            let ids: Vec<i64> = ids
                .as_array()
                .map(|a| a.iter().filter_map(|i| i.as_i64()).collect())
                .filter(|a: &Vec<i64>| !a.is_empty() && a.iter().all(|&i| i >= 0))
                .ok_or_else(|| bad(format!("phoneme_id_map[{p:?}]: expected a list of ids")))?;
            phoneme_ids.insert(p.clone(), ids);
        }
        for needed in ["^", "$", "_"] {
            if !phoneme_ids.contains_key(needed) {
                return Err(bad(format!(
                    "phoneme_id_map: no {needed:?} (Piper's begin/end/pad symbols)"
                )));
            }
        }
        let max_id = phoneme_ids.values().flatten().copied().max().unwrap_or(0) as usize;
        let num_symbols = num("/num_symbols").map_or(max_id + 1, |n| n as usize);
        if max_id >= num_symbols {
            return Err(bad(format!(
                "phoneme_id_map uses id {max_id} but num_symbols is {num_symbols}"
            )));
        }
        let speakers: BTreeMap<String, usize> = v
            .get("speaker_id_map")
            .and_then(|m| m.as_object())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, id)| Some((k.clone(), id.as_u64()? as usize)))
                    .collect()
            })
            .unwrap_or_default();
        let num_speakers = num("/num_speakers").map_or(1, |n| (n as usize).max(1));
        if let Some((name, id)) = speakers.iter().find(|(_, id)| **id >= num_speakers) {
            return Err(bad(format!(
                "speaker_id_map[{name:?}] = {id} but num_speakers is {num_speakers}"
            )));
        }
        Ok(Self {
            sample_rate,
            espeak_voice,
            scales,
            num_speakers,
            speakers,
            phoneme_ids,
            num_symbols,
        })
    }
}

/// VITS hyper-parameters, read off the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct VitsDims {
    pub n_symbols: usize,
    pub hidden: usize,
    pub filter: usize,
    pub n_heads: usize,
    pub n_layers: usize,
    /// Relative attention reaches this many positions each way.
    pub window: usize,
    /// Channels of the latent (`enc_p.proj` outputs mean and log-scale of this many).
    pub inter: usize,
    /// Coupling layers of the flow (`flow.flows.{0,2,4,…}`).
    pub flows: usize,
    /// Whether the duration predictor is the stochastic one (`dp.flows`).
    pub stochastic_duration: bool,
    /// Upsampling factors of the decoder, e.g. [8, 8, 4] (their product is the hop size).
    pub upsample_rates: Vec<usize>,
    /// Kernel sizes of the decoder's residual blocks, e.g. [3, 5, 7].
    pub resblock_kernels: Vec<usize>,
    /// Speaker embedding size (multi-speaker voices), 0 otherwise.
    pub speaker_channels: usize,
}

/// A Piper voice: its config and weights.
#[derive(Debug, Clone)]
pub struct PiperVoice {
    pub onnx: PathBuf,
    pub config: VoiceConfig,
    pub dims: VitsDims,
    pub weights: OnnxWeights,
}

impl PiperVoice {
    /// Reads `NAME.onnx` and `NAME.onnx.json`.
    pub fn open(onnx: &Path) -> Result<Self, VoiceError> {
        let json = PathBuf::from(format!("{}.json", onnx.display()));
        let text = std::fs::read_to_string(&json).map_err(|source| VoiceError::Io {
            path: json.clone(),
            source,
        })?;
        let config = VoiceConfig::parse(&text, &json)?;
        let weights = OnnxWeights::open(onnx)?;
        let dims = dims_of(&weights, onnx)?;
        if dims.n_symbols != config.num_symbols {
            return Err(VoiceError::Config {
                path: json,
                msg: format!(
                    "num_symbols is {} but {} embeds {} symbols: the two files are from \
                     different voices",
                    config.num_symbols,
                    onnx.display(),
                    dims.n_symbols
                ),
            });
        }
        if (config.num_speakers > 1) != (dims.speaker_channels > 0) {
            return Err(VoiceError::Config {
                path: json,
                msg: format!(
                    "num_speakers is {} but {} {} a speaker embedding",
                    config.num_speakers,
                    onnx.display(),
                    if dims.speaker_channels > 0 {
                        "has"
                    } else {
                        "has no"
                    }
                ),
            });
        }
        Ok(Self {
            onnx: onnx.to_path_buf(),
            config,
            dims,
            weights,
        })
    }
}

/// Infers the hyper-parameters and checks every tensor inference needs.
fn dims_of(w: &OnnxWeights, path: &Path) -> Result<VitsDims, VoiceError> {
    let err = |msg: String| VoiceError::Weights {
        path: path.to_path_buf(),
        msg,
    };
    let shape = |name: &str| -> Result<&[usize], VoiceError> {
        w.get(name)
            .map(|t| t.shape.as_slice())
            .ok_or_else(|| err(format!("no tensor {name}: not a Piper/VITS voice")))
    };
    let count = |f: &dyn Fn(usize) -> String| (0..).take_while(|&i| w.get(&f(i)).is_some()).count();
    let emb = shape("enc_p.emb.weight")?;
    let [n_symbols, hidden] = emb[..] else {
        return Err(err(format!("enc_p.emb.weight has shape {emb:?}")));
    };
    let n_layers = count(&|i| format!("enc_p.encoder.attn_layers.{i}.conv_q.weight"));
    if n_layers == 0 {
        return Err(err(
            "no text-encoder layers (enc_p.encoder.attn_layers.0)".into()
        ));
    }
    let rel = shape("enc_p.encoder.attn_layers.0.emb_rel_k")?;
    let [_, span, head_dim] = rel[..] else {
        return Err(err(format!("emb_rel_k has shape {rel:?}")));
    };
    if head_dim == 0 || hidden % head_dim != 0 || span % 2 == 0 {
        return Err(err(format!(
            "emb_rel_k shape {rel:?} does not fit hidden size {hidden}"
        )));
    }
    let filter = shape("enc_p.encoder.ffn_layers.0.conv_1.weight")?[0];
    for i in 0..n_layers {
        for t in ["conv_q", "conv_k", "conv_v", "conv_o"] {
            let s = shape(&format!("enc_p.encoder.attn_layers.{i}.{t}.weight"))?;
            if s[..2] != [hidden, hidden] {
                return Err(err(format!(
                    "enc_p.encoder.attn_layers.{i}.{t}.weight has shape {s:?}"
                )));
            }
        }
        shape(&format!("enc_p.encoder.ffn_layers.{i}.conv_2.weight"))?;
        shape(&format!("enc_p.encoder.norm_layers_1.{i}.gamma"))?;
        shape(&format!("enc_p.encoder.norm_layers_2.{i}.gamma"))?;
    }
    let proj = shape("enc_p.proj.weight")?;
    if proj[0] % 2 != 0 {
        return Err(err(format!("enc_p.proj.weight has shape {proj:?}")));
    }
    let inter = proj[0] / 2;
    // Coupling layers sit at even indices; odd ones are flips without weights.
    let flows = count(&|i| format!("flow.flows.{}.pre.weight", 2 * i));
    if flows == 0 {
        return Err(err("no flow layers (flow.flows.0.pre.weight)".into()));
    }
    for f in 0..flows {
        let p = format!("flow.flows.{}", 2 * f);
        shape(&format!("{p}.post.weight"))?;
        if count(&|i| format!("{p}.enc.in_layers.{i}.weight")) == 0 {
            return Err(err(format!("{p}.enc has no layers")));
        }
    }
    let stochastic_duration = w.get("dp.flows.0.m").is_some();
    shape("dp.proj.weight")?;
    let ups = count(&|i| format!("dec.ups.{i}.weight"));
    if ups == 0 {
        return Err(err("no decoder upsampling layers (dec.ups.0.weight)".into()));
    }
    let upsample_rates = (0..ups)
        .map(|i| shape(&format!("dec.ups.{i}.weight")).map(|s| s[2] / 2))
        .collect::<Result<Vec<_>, _>>()?;
    // ResBlock2 has `convs`, ResBlock1 (high-quality voices) `convs1`/`convs2`.
    let first_conv = |i: usize| {
        let two = format!("dec.resblocks.{i}.convs.0.weight");
        if w.get(&two).is_some() {
            two
        } else {
            format!("dec.resblocks.{i}.convs1.0.weight")
        }
    };
    let resblocks = count(&|i| first_conv(i));
    if resblocks == 0 || resblocks % ups != 0 {
        return Err(err(format!(
            "{resblocks} decoder residual blocks for {ups} upsampling layers"
        )));
    }
    let resblock_kernels = (0..resblocks / ups)
        .map(|i| shape(&first_conv(i)).map(|s| s[2]))
        .collect::<Result<Vec<_>, _>>()?;
    shape("dec.conv_pre.weight")?;
    shape("dec.conv_post.weight")?;
    let speaker_channels = w.get("emb_g.weight").map_or(0, |t| t.shape[1]);
    Ok(VitsDims {
        n_symbols,
        hidden,
        filter,
        n_heads: hidden / head_dim,
        n_layers,
        window: (span - 1) / 2,
        inter,
        flows,
        stochastic_duration,
        upsample_rates,
        resblock_kernels,
        speaker_channels,
    })
}
