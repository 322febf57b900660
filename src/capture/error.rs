//! Errors of the capture front door.

use std::path::PathBuf;

/// What went wrong recording a foreign launch. Every variant says what the caller can fix.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A caller argument is invalid (bad shape, length, parameter, name).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An input names an id no earlier output has.
    #[error("input `{role}`: no earlier output has tensor id {id}")]
    UnknownId {
        /// The input's role.
        role: String,
        /// The id it gave.
        id: u64,
    },
    /// `end` for a launch that was not begun (or already ended).
    #[error("launch {0} was not begun, or has already ended")]
    NotBegun(u64),
    /// A weight was referenced but the header names no GGUF file.
    #[error(
        "input `{role}`: weight `{name}` is referenced by name, but the tape header names no GGUF file (pass the model's gguf path)"
    )]
    NoModel {
        /// The input's role.
        role: String,
        /// The GGUF tensor name.
        name: String,
    },
    /// The GGUF file could not be read, or lacks the tensor.
    #[error("model {path}: {msg}")]
    Model {
        /// The GGUF path.
        path: PathBuf,
        /// What failed.
        msg: String,
    },
    /// The recorder (worker, tape writer) failed; the tape is left `.incomplete`.
    #[error("recorder: {0}")]
    Recorder(crate::record::RecordError),
    /// The launch does not fit its op's contract (docs/OPS.md): refused, nothing recorded.
    #[error("launch refused: {0}")]
    Contract(#[from] crate::ops::ContractError),
    /// The recorder was closed.
    #[error("the recorder is closed")]
    Closed,
    /// This build cannot do it (e.g. device tensors without the `hip` feature).
    #[error("{0}")]
    Unsupported(String),
}

impl From<crate::record::RecordError> for CaptureError {
    fn from(e: crate::record::RecordError) -> CaptureError {
        CaptureError::Recorder(e)
    }
}
