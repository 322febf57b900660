//! Errors of the tape layer: each one says which file, where (byte offset) and what was expected, so a
//! person can act on it (`greta verify` prints them as they are).

use std::path::PathBuf;

/// Everything that can go wrong writing or reading a tape.
#[derive(Debug, thiserror::Error)]
pub enum TapeError {
    /// The operating system refused a read, write, sync or rename.
    // The OS error is part of the message and deliberately not a `source`: an error chain printed
    // with `{:#}` would otherwise say it twice (issue 14).
    #[error("{path}: {op}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done (`create`, `write`, `fsync`, `rename`, `map`, ...).
        op: &'static str,
        /// The cause.
        cause: std::io::Error,
    },
    /// The path is not something a tape can be read from (a directory, an empty file, a FIFO).
    #[error("{path}: {what}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        what: String,
    },
    /// Bytes on disk do not match what their lengths, hashes or checksums promise.
    #[error("{path}: corrupt {frame} at byte {offset}: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damaged structure (a frame's first byte, the trailer's, an index entry's).
        offset: u64,
        /// Which structure (`preamble`, `header frame`, `chunk frame`, `records frame`, `index`, `trailer`).
        frame: &'static str,
        /// What did not match.
        what: String,
    },
    /// The tape ends before a structure it needs (a frame or record cut short).
    #[error("{path}: truncated at byte {offset}: {what}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where the missing bytes would start.
        offset: u64,
        /// What is missing.
        what: String,
    },
    /// The file does not start with the tape magic.
    #[error("{path}: not a greta tape (no `GRETATAP` magic at byte 0)")]
    NotATape {
        /// The file.
        path: PathBuf,
    },
    /// The tape was written by a newer greta whose format this one cannot read.
    #[error(
        "{path}: tape format version {found} is newer than this greta supports ({supported}); upgrade greta"
    )]
    NewerVersion {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// A tensor would need more memory than the budget allows (see [`super::budget`]).
    #[error(
        "{path}: tensor `{role}` (record at byte {offset}) would take {bytes} bytes, over the budget of {budget} for one tensor (--max-tensor-bytes or GRETA_MAX_TENSOR_BYTES)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The tensor's role.
        role: String,
        /// Byte offset of the frame that declared it.
        offset: u64,
        /// Bytes it would take.
        bytes: u64,
        /// The budget.
        budget: u64,
    },
    /// No launch with this sequence number is on the tape.
    #[error("no launch with seq {0} on the tape")]
    NoSuchLaunch(u64),
    /// The tensor is a model weight: its bytes live in the model file, not on the tape.
    #[error("tensor is model weight `{name}`: its bytes are in the model file, not on the tape")]
    ExternalWeight {
        /// GGUF tensor name.
        name: String,
    },
    /// Only the tensor's hash was captured (`--capture hashes`).
    #[error(
        "tensor `{role}` was captured as a hash only; record with full capture to get its bytes"
    )]
    NotCaptured {
        /// The tensor's role (`x`, `w`, `k_cache`...).
        role: String,
    },
    /// The tape (or its `.incomplete` file) already exists and the writer was not asked to replace it.
    #[error("{path}: {what}")]
    Exists {
        /// The file.
        path: PathBuf,
        /// What exists and what to do.
        what: String,
    },
    /// A writer was asked something inconsistent (a record citing a chunk never stored, a bad option).
    #[error("tape writer: {0}")]
    Usage(String),
}

impl TapeError {
    pub(crate) fn io(
        path: &std::path::Path,
        op: &'static str,
        source: std::io::Error,
    ) -> TapeError {
        TapeError::Io {
            path: path.to_path_buf(),
            op,
            cause: source,
        }
    }
}
