//! Errors raised while building a tokenizer from a vocabulary.
//!
//! Encoding and decoding never fail: any text encodes (a byte the vocabulary has no token for is
//! dropped, as llama.cpp does) and any id list decodes (unknown ids are skipped). Only the vocabulary can be wrong,
//! and then the error names what is wrong and where, so a person can fix the file.

/// Why a [`Vocab`](super::Vocab) cannot become a [`Tokenizer`](super::Tokenizer).
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The vocabulary has no tokens.
    #[error("the vocabulary has no tokens")]
    EmptyVocab,
    /// `tokenizer.ggml.model` names a tokenizer greta does not implement.
    #[error("unsupported tokenizer model {0:?} (greta supports \"gpt2\" byte-level BPE)")]
    UnsupportedModel(String),
    /// A per-token array does not have one entry per token.
    #[error("{what} has {found} entries but the vocabulary has {expected} tokens")]
    LengthMismatch {
        /// Which array (`token_types`, `scores`).
        what: &'static str,
        /// The number of tokens.
        expected: usize,
        /// The number of entries found.
        found: usize,
    },
    /// A merge rule is not two tokens separated by one space.
    #[error("merge rule #{index} {merge:?} is not of the form \"left right\"")]
    BadMerge {
        /// Position of the rule in `tokenizer.ggml.merges`.
        index: usize,
        /// The rule as stored.
        merge: String,
    },
    /// A special token id (BOS, EOS) is not a token of the vocabulary.
    #[error("{what} token id {id} is out of range (vocabulary size {vocab_size})")]
    IdOutOfRange {
        /// Which special token (`bos`, `eos`).
        what: &'static str,
        /// The id given.
        id: u64,
        /// The number of tokens.
        vocab_size: usize,
    },
    /// A required GGUF metadata key is absent.
    #[error("GGUF metadata key {0:?} is missing")]
    MissingKey(String),
    /// A GGUF metadata key holds a value of the wrong type.
    #[error("GGUF metadata key {key:?} is not {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// What was expected, in words (`a string array`, `an unsigned integer`).
        expected: &'static str,
    },
}
