//! A second stream for device-to-host copies that run while the next kernels do: [`Stream`], [`Event`]
//! and [`copy_to_host`].
//!
//! Why: a blocking `hipMemcpy` on the null stream (where every kernel runs) drains the device's queue
//! before the copy and leaves it empty after; full capture of an 8B model spent 1.4 s of a 2 s run there
//! (issue 11). Here the copy stream waits for an event recorded on the null stream after the producing
//! kernel, so only the thread that wants the bytes (the recorder's worker) waits, never the device.
//!
//! Why into pageable memory, not pinned staging buffers: measured on the H200 machine, pinning host
//! memory (`hipHostMalloc`) runs at about 2 GB/s, and the first full capture spent 0.42 s of its inference
//! thread there; a pageable copy into memory that was written before runs at 12 GB/s, and the caller
//! reuses its buffers (`launch::host_buffers`). A pageable copy returns only when done, which is why
//! [`copy_to_host`] borrows both buffers for the call and nothing outlives it.

use super::runtime::{DevMem, HipError, check};
use hip_sys::hiprt as sys;
use std::ffi::c_void;

/// A stream that does not synchronise with the null stream (`hipStreamNonBlocking`): work on it runs
/// beside the kernels, ordered with them only through events. Destroyed on drop.
#[derive(Debug)]
pub struct Stream {
    raw: sys::hipStream_t,
}

// SAFETY: a stream handle is a process-wide runtime object; HIP allows enqueueing on it from any thread.
unsafe impl Send for Stream {}
// SAFETY: as above; `&Stream` is only used to enqueue work, which the runtime serialises.
unsafe impl Sync for Stream {}

impl Stream {
    /// A new non-blocking stream on the current device.
    pub fn non_blocking() -> Result<Stream, HipError> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; on success it holds a stream owned by the returned value
        // and destroyed once in Drop.
        check("hipStreamCreateWithFlags", unsafe {
            sys::hipStreamCreateWithFlags(&mut raw, sys::hipStreamNonBlocking)
        })?;
        Ok(Stream { raw })
    }

    /// Blocks the calling thread until the work queued on this stream so far has completed.
    pub fn synchronize(&self) -> Result<(), HipError> {
        // SAFETY: `self.raw` is a live stream.
        check("hipStreamSynchronize", unsafe {
            sys::hipStreamSynchronize(self.raw)
        })
    }

    /// Makes later work on this stream wait until `e` has completed (on the device; the host goes on).
    pub fn wait_event(&self, e: &Event) -> Result<(), HipError> {
        // SAFETY: both handles are live (owned by `self` and `e`); flags must be 0.
        check("hipStreamWaitEvent", unsafe {
            sys::hipStreamWaitEvent(self.raw, e.raw, 0)
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: `raw` came from hipStreamCreateWithFlags and is destroyed once; work still queued on it
        // completes first (the runtime releases the stream afterwards).
        let _ = unsafe { sys::hipStreamDestroy(self.raw) };
    }
}

/// An event without timing (`hipEventDisableTiming`: the cheapest kind, for ordering only). Destroyed on
/// drop.
#[derive(Debug)]
pub struct Event {
    raw: sys::hipEvent_t,
}

// SAFETY: an event handle is a process-wide runtime object, usable from any thread.
unsafe impl Send for Event {}
// SAFETY: as above; record and synchronize are thread-safe in the runtime.
unsafe impl Sync for Event {}

impl Event {
    /// A new event on the current device.
    pub fn new() -> Result<Event, HipError> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; on success it holds an event owned by the returned value
        // and destroyed once in Drop.
        check("hipEventCreateWithFlags", unsafe {
            sys::hipEventCreateWithFlags(&mut raw, sys::hipEventDisableTiming)
        })?;
        Ok(Event { raw })
    }

    /// Records the event on `stream`, or on the null stream (after every kernel launched so far) for None.
    pub fn record(&self, stream: Option<&Stream>) -> Result<(), HipError> {
        let s = stream.map_or(std::ptr::null_mut(), |s| s.raw);
        // SAFETY: `self.raw` is live; `s` is a live stream (borrowed for the call) or the null stream.
        check("hipEventRecord", unsafe {
            sys::hipEventRecord(self.raw, s)
        })
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: `raw` came from hipEventCreateWithFlags and is destroyed once; a recorded event not yet
        // reached is released by the runtime when the device reaches it (waits on it stay valid).
        let _ = unsafe { sys::hipEventDestroy(self.raw) };
    }
}

/// Copies `src` (all of it) into `dst` (exactly as long) on `stream`, after `ready` (an event recorded
/// on the null stream after the kernel that wrote `src`), and returns once the bytes are in `dst`. Only
/// the calling thread waits: the null stream's kernels go on. The current device must be the one `src`,
/// `stream` and `ready` belong to.
pub fn copy_to_host(
    stream: &Stream,
    ready: &Event,
    src: &DevMem,
    dst: &mut [u8],
) -> Result<(), HipError> {
    if dst.len() != src.len() {
        return Err(HipError::local(
            "hipMemcpyAsync(DtoH)",
            format!("{} bytes into {}", src.len(), dst.len()),
        ));
    }
    if dst.is_empty() {
        return Ok(());
    }
    stream.wait_event(ready)?;
    // SAFETY: `dst` is `len` writable bytes borrowed for this call and `src` a live allocation of `len`
    // bytes borrowed likewise; the stream is synchronised below before either borrow ends, also when the
    // copy call itself failed (then nothing was queued).
    let r = check("hipMemcpyAsync(DtoH)", unsafe {
        sys::hipMemcpyAsync(
            dst.as_mut_ptr().cast::<c_void>(),
            src.ptr().cast_const(),
            dst.len(),
            sys::hipMemcpyKind::hipMemcpyDeviceToHost,
            stream.raw,
        )
    });
    let done = stream.synchronize();
    r.and(done)
}
