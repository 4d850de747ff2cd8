//! reelsmith's LLM engine: GGUF models (llama, qwen2, qwen3; gemma3 and phi3 templates) on
//! candle, with its own tokenizer built from the GGUF vocabulary, chat templates, seeded
//! sampling, streaming, and fast CPU kernels for Q4_0/Q4_1/Q8_0. A separate crate so it builds
//! optimised in test profiles and the studio's incremental builds stay fast.

pub mod llm;
