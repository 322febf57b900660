//! Why recording failed. Every variant says what failed and, where there is one, the tape's path; the
//! tape writer's own errors ([`TapeError`]: I/O with the path and offset, corruption) are kept whole.
//!
//! The recorder runs in two halves (the observer on the caller's thread, the worker that owns the
//! writer), so a write that fails on the worker surfaces on the caller's next call or at `finish` as
//! [`RecordError::Write`], naming the tape. Messages carry the cause in their text (they do not also
//! chain it through `source()`), so `{e:#}` in the binary prints each cause once.

use crate::tape::TapeError;
use std::path::PathBuf;
use std::sync::Arc;

/// Recording failed; the tape is left `.incomplete` (readable up to its last complete frame).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The tape file could not be created (exists without `--force`, folder missing, no space).
    #[error("creating tape {}: {error}", path.display())]
    Create {
        /// The tape's path.
        path: PathBuf,
        /// Why.
        error: TapeError,
    },
    /// The worker thread could not be started.
    #[error("starting the recorder thread: {0}")]
    Thread(std::io::Error),
    /// The tape writer failed (a write, a flush, the footer).
    #[error("{0}")]
    Tape(TapeError),
    /// Writing the tape failed on the worker: reported at `finish` (and stored in the summary).
    #[error("writing tape {}: {error}", path.display())]
    Write {
        /// The tape's path.
        path: PathBuf,
        /// What the worker hit (shared: the same error is returned and kept in the summary).
        error: Arc<RecordError>,
    },
    /// A device tensor could not be copied to the host for recording.
    #[error("copying a device tensor to the host: {0}")]
    DeviceCopy(String),
    /// A digest computed on the device could not be had (the device failed, or the digest ring was
    /// overrun).
    #[error("hashing a device tensor on the device: {0}")]
    DeviceDigest(String),
    /// A weight without host bytes (its hash cannot be taken).
    #[error("input `{role}`: weight `{name}` is not on the host")]
    WeightNotOnHost {
        /// The input's role.
        role: String,
        /// The weight's name.
        name: String,
    },
    /// An end for a launch the worker never saw begin.
    #[error("launch {0} ended without a begin")]
    EndWithoutBegin(u64),
    /// The run stopped part-way (the launcher was dropped without `finish`).
    #[error("the run stopped before it completed; the tape is left incomplete")]
    Aborted,
    /// A call after `finish`.
    #[error("recorder already finished")]
    Finished,
    /// The worker's writer was already finished.
    #[error("tape already finished")]
    TapeFinished,
    /// The worker stopped without saying why.
    #[error("recorder worker stopped")]
    WorkerStopped,
    /// The worker thread panicked.
    #[error("recorder worker panicked")]
    WorkerPanicked,
    /// A thread sharing the recorder panicked while holding it (open capture).
    #[error("a thread panicked while recording")]
    Poisoned,
    /// The run ended without the recorder's summary (its `finish` was never reached).
    #[error("the recorder did not finish (no summary from the worker)")]
    NoSummary,
}

impl From<TapeError> for RecordError {
    fn from(e: TapeError) -> RecordError {
        RecordError::Tape(e)
    }
}
