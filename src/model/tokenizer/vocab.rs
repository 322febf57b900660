//! The vocabulary a tokenizer is built from: a plain struct, filled from GGUF metadata by
//! [`vocab_from_gguf`](super::vocab_from_gguf) or by hand in tests.

/// GGUF's `tokenizer.ggml.token_type` value for an ordinary token.
pub const TOKEN_TYPE_NORMAL: i32 = 1;
/// GGUF's token type for a control token (`<|im_start|>`, `<|eot_id|>`): matched whole in text,
/// decoded as its own text.
pub const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF's token type for a user-defined added token (`<think>`): matched whole in text.
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Everything a tokenizer needs, under the names of llama.cpp's `tokenizer.*` GGUF keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vocab {
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE) or `"llama"` (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: selects the pre-tokenizer regex (`"smollm"`, `"llama-bpe"`, ...).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`: token text by id, in the byte-level spelling for `gpt2`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`: one per token, or empty (all normal).
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`: `"left right"` rules, best (lowest rank) first.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.scores`: one per token, or empty (used by SentencePiece vocabularies).
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`: prepend BOS when encoding.
    pub add_bos: bool,
    /// `tokenizer.chat_template`: the model's Jinja chat template.
    pub chat_template: Option<String>,
}
