//! Models: the GGUF reader and writer, dequantisation, model configuration, tokenizer, synthetic models.
//!
//! - [`gguf`]: the GGUF v2/v3 reader on memmap2 (tensors are views into the mapping), with its
//!   defensive header parser ([`parse`]), metadata values ([`value`]), GGML type ids ([`ggml`]) and
//!   typed errors ([`error`]);
//! - [`writer`]: the GGUF v3 writer (synthetic models built from [`synth_weights`] and [`synth_vocab`]);
//! - [`quant`]: dequantisation to f32, bit-exact with the `gguf` Python package;
//! - [`arch`]: what the forward pass does per layer for each family (llama, qwen2, qwen3, gemma3);
//! - [`config`]: hyper-parameters from GGUF metadata, validated against the tensors;
//! - [`synth`]: deterministic synthetic llama models written as real GGUF files.
//! - [`tokenizer`]: byte-level BPE tokenizer from the GGUF vocabulary, as llama.cpp tokenizes.

pub mod arch;
pub mod config;
mod cursor;
pub mod error;
pub mod ggml;
pub mod gguf;
pub mod parse;
pub mod quant;
pub mod synth;
pub mod synth_vocab;
pub mod synth_weights;
pub mod tokenizer;
pub mod value;
pub mod writer;
