//! Models: the GGUF reader and writer, dequantisation, model configuration, tokenizer, synthetic models.
pub mod quant;
