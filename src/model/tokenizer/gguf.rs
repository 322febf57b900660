//! Reading a [`Vocab`] out of GGUF metadata (llama.cpp's `tokenizer.*` keys).
//!
//! Only `tokenizer.ggml.model` and `tokenizer.ggml.tokens` are required; every other key has
//! llama.cpp's default when absent (no merges, all tokens normal, no BOS/EOS, no template).
//! A key that is present with the wrong type is an error naming the key, never a silent default.

use super::{TokenizerError, Vocab};
use crate::model::gguf::{Gguf, Value};

/// The tokenizer vocabulary stored in a GGUF file's metadata.
pub fn vocab_from_gguf(gguf: &Gguf) -> Result<Vocab, TokenizerError> {
    Ok(Vocab {
        model: required_str(gguf, "tokenizer.ggml.model")?,
        pre: optional(gguf, "tokenizer.ggml.pre", "a string", |v| {
            v.as_str().map(String::from)
        })?,
        tokens: strings(gguf, "tokenizer.ggml.tokens")?
            .ok_or_else(|| TokenizerError::MissingKey("tokenizer.ggml.tokens".into()))?,
        token_types: array(gguf, "tokenizer.ggml.token_type", "an integer array", |v| {
            v.as_i64().and_then(|x| i32::try_from(x).ok())
        })?
        .unwrap_or_default(),
        merges: strings(gguf, "tokenizer.ggml.merges")?.unwrap_or_default(),
        scores: array(gguf, "tokenizer.ggml.scores", "a float array", |v| {
            v.as_f64().map(|x| x as f32)
        })?
        .unwrap_or_default(),
        bos: id(gguf, "tokenizer.ggml.bos_token_id")?,
        eos: id(gguf, "tokenizer.ggml.eos_token_id")?,
        add_bos: optional(
            gguf,
            "tokenizer.ggml.add_bos_token",
            "a bool",
            Value::as_bool,
        )?
        .unwrap_or(false),
        chat_template: optional(gguf, "tokenizer.chat_template", "a string", |v| {
            v.as_str().map(String::from)
        })?,
    })
}

/// `Ok(None)` if absent, `Err(WrongType)` if present but `convert` rejects it.
fn optional<T>(
    gguf: &Gguf,
    key: &str,
    expected: &'static str,
    convert: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, TokenizerError> {
    match gguf.get(key) {
        None => Ok(None),
        Some(v) => convert(v)
            .map(Some)
            .ok_or_else(|| TokenizerError::WrongType {
                key: key.into(),
                expected,
            }),
    }
}

fn required_str(gguf: &Gguf, key: &str) -> Result<String, TokenizerError> {
    optional(gguf, key, "a string", |v| v.as_str().map(String::from))?
        .ok_or_else(|| TokenizerError::MissingKey(key.into()))
}

/// An array key whose every element `convert` accepts.
fn array<T>(
    gguf: &Gguf,
    key: &str,
    expected: &'static str,
    convert: impl Fn(&Value) -> Option<T>,
) -> Result<Option<Vec<T>>, TokenizerError> {
    optional(gguf, key, expected, |v| {
        v.as_array()?.iter().map(&convert).collect()
    })
}

fn strings(gguf: &Gguf, key: &str) -> Result<Option<Vec<String>>, TokenizerError> {
    array(gguf, key, "a string array", |v| {
        v.as_str().map(String::from)
    })
}

fn id(gguf: &Gguf, key: &str) -> Result<Option<u32>, TokenizerError> {
    optional(gguf, key, "a token id", |v| {
        v.as_u64().and_then(|x| u32::try_from(x).ok())
    })
}
