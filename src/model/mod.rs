//! Models: the GGUF reader and writer, dequantisation, model configuration, tokenizer, synthetic models.
