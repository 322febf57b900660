//! Typed errors of the model layer: every variant names what a person needs to act on (the key, the
//! tensor, the byte offset, the path), so a bad or unsupported GGUF file is a clear message, never a panic.

use crate::launch::DType;
use std::path::PathBuf;

/// An error reading, validating or writing a GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened, mapped, written or renamed.
    // Not a `source`: the OS error is in the message, and `{:#}` would print it twice.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file (bad magic)")]
    BadMagic,
    /// A GGUF version this reader does not understand (v1, or a big-endian file read as little-endian).
    #[error("unsupported GGUF version {0} (supported: 2, 3)")]
    UnsupportedVersion(u32),
    /// The file ends before a field that the header says is there.
    #[error("file truncated at byte {offset}: expected {what}")]
    Truncated {
        /// Byte offset where the field should start.
        offset: u64,
        /// What was being read.
        what: String,
    },
    /// A count or length exceeds one of the reader's named caps.
    #[error("at byte {offset}: {what} is {value}, above the limit {limit}")]
    LimitExceeded {
        /// Byte offset of the field.
        offset: u64,
        /// Which field.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The cap.
        limit: u64,
    },
    /// A field holds a value that the spec does not allow (bad type tag, bad bool, invalid UTF-8, ...).
    #[error("at byte {offset}: {what}")]
    Malformed {
        /// Byte offset of the field.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The same metadata key appears twice.
    #[error("duplicate metadata key `{0}`")]
    DuplicateKey(String),
    /// The same tensor name appears twice.
    #[error("duplicate tensor `{0}`")]
    DuplicateTensor(String),
    /// A required metadata key is absent.
    #[error("missing metadata key `{0}`")]
    MissingKey(String),
    /// A metadata key holds a value of another type.
    #[error("metadata key `{key}`: expected {expected}, found {found}")]
    WrongType {
        /// The key.
        key: String,
        /// The type that was asked for.
        expected: &'static str,
        /// The type in the file.
        found: &'static str,
    },
    /// A tensor uses a GGML type greta cannot dequantise.
    #[error("tensor `{tensor}`: unsupported GGML type {ggml_type}")]
    UnsupportedTensorType {
        /// The tensor.
        tensor: String,
        /// The GGML type id.
        ggml_type: u32,
    },
    /// A tensor's dimensions are invalid (zero dims, overflow, not whole blocks, wrong shape for the model).
    #[error("tensor `{tensor}`: {what}")]
    BadTensor {
        /// The tensor.
        tensor: String,
        /// What is wrong.
        what: String,
    },
    /// A tensor's bytes lie (partly) outside the file or are misaligned.
    #[error(
        "tensor `{tensor}`: data at {offset}..{end} is outside the file ({file_size} bytes) or misaligned"
    )]
    TensorOutOfBounds {
        /// The tensor.
        tensor: String,
        /// Absolute byte offset of the data.
        offset: u64,
        /// Absolute end offset (exclusive), saturated on overflow.
        end: u64,
        /// File size.
        file_size: u64,
    },
    /// Two tensors' data ranges overlap (relative to the data section).
    #[error(
        "tensors `{a}` and `{b}` overlap: `{b}` starts at data offset {offset}, before `{a}` ends at {end}"
    )]
    TensorOverlap {
        /// The tensor that starts first.
        a: String,
        /// The tensor that starts inside it.
        b: String,
        /// Where `b` starts.
        offset: u64,
        /// Where `a` ends.
        end: u64,
    },
    /// A tensor the caller asked for is not in the file.
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    /// `general.architecture` names a model family greta does not run.
    #[error(
        "unsupported architecture `{0}`: greta's engine runs {runs}",
        runs = super::arch::Family::names()
    )]
    UnsupportedArchitecture(String),
    /// The hyper-parameters contradict each other.
    #[error("invalid model configuration: {0}")]
    BadConfig(String),
    /// The writer was given something it cannot encode.
    #[error("cannot write GGUF: {0}")]
    Unwritable(String),
}

/// An error dequantising a block buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    /// The dtype is not a weight storage type (f64, i32).
    #[error("dequantisation of {0} is not supported")]
    Unsupported(DType),
    /// The element count is not a whole number of blocks.
    #[error("{elements} elements is not a whole number of {dtype} blocks")]
    NotWholeBlocks {
        /// The dtype.
        dtype: DType,
        /// Elements asked for.
        elements: usize,
    },
    /// The byte buffer does not hold exactly the blocks for the element count.
    #[error("{dtype}: {elements} elements need {expected} bytes, got {found}")]
    WrongLength {
        /// The dtype.
        dtype: DType,
        /// Elements asked for.
        elements: usize,
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
}
