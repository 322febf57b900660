//! Status codes and the per-thread last error message.

use greta::capture::CaptureError;
use std::cell::RefCell;
use std::ffi::{CString, c_char};

/// What every call returns (`greta_status` in greta.h). Values are part of the ABI: only append.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GretaStatus {
    /// Success.
    Ok = 0,
    /// A bad argument: null pointer, bad UTF-8, shape and byte count disagree, unknown dtype or phase.
    InvalidArgument = 1,
    /// An input names a tensor id that no earlier output has.
    UnknownId = 2,
    /// `greta_end` for a launch that was not begun, or already ended.
    NotBegun = 3,
    /// The GGUF file could not be read, or lacks a tensor, or no GGUF was given for a weight.
    ModelError = 4,
    /// The recorder or tape writer failed (disk full, ...); the tape is left `.incomplete`.
    RecorderError = 5,
    /// The recorder is closed.
    Closed = 6,
    /// A device tensor, but libgreta was not compiled with GPU support (the `hip` feature).
    NoGpuSupport = 7,
    /// A bug in greta: a Rust panic, caught at the boundary.
    Panic = 8,
}

/// An error on its way to the caller.
pub struct Error {
    pub status: GretaStatus,
    pub msg: String,
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error {
            status: GretaStatus::InvalidArgument,
            msg: msg.into(),
        }
    }
}

impl From<CaptureError> for Error {
    fn from(e: CaptureError) -> Error {
        let status = match &e {
            CaptureError::InvalidArgument(_) | CaptureError::Contract(_) => {
                GretaStatus::InvalidArgument
            }
            CaptureError::UnknownId { .. } => GretaStatus::UnknownId,
            CaptureError::NotBegun(_) => GretaStatus::NotBegun,
            CaptureError::NoModel { .. } | CaptureError::Model { .. } => GretaStatus::ModelError,
            CaptureError::Recorder(_) => GretaStatus::RecorderError,
            CaptureError::Closed => GretaStatus::Closed,
            CaptureError::Unsupported(_) => GretaStatus::NoGpuSupport,
        };
        Error {
            status,
            msg: e.to_string(),
        }
    }
}

thread_local! {
    static LAST: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `msg` as this thread's last error.
pub fn set_last(msg: &str) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    LAST.with(|l| *l.borrow_mut() = c);
}

/// This thread's last error; valid until this thread's next greta call.
pub fn last_ptr() -> *const c_char {
    LAST.with(|l| l.borrow().as_ptr())
}

/// The message of a caught panic.
pub fn panic_msg(p: &(dyn std::any::Any + Send)) -> String {
    let m = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error (a bug in greta, please report): {m}")
}
