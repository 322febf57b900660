//! A second stream for device-to-host copies that run while the next kernels do: [`Stream`], [`Event`],
//! pinned host staging buffers (`Pinned`, pooled) and [`CopyInFlight`], the one safe way to start an
//! asynchronous copy.
//!
//! Why: a blocking `hipMemcpy` on the null stream (where every kernel runs) drains the device's queue
//! before the copy and leaves it empty after; full capture of an 8B model spent 1.4 s of a 2 s run there
//! (issue 11). Here the copy stream waits for an event recorded on the null stream after the producing
//! kernel, copies into pinned memory (the only host memory a DMA engine writes without the host waiting),
//! and records a done event; the host waits only when it reads the bytes.
//!
//! Ownership keeps it sound: a [`CopyInFlight`] owns its source buffer (an `Arc<DevMem>`, so the
//! allocation cannot return to the device pool and be rewritten while the copy reads it) and its pinned
//! destination, and hands out the bytes only after the done event completed. Dropped without a wait, it
//! waits for the copy before releasing either.

use super::runtime::{DevMem, HipError, check};
use hip_sys::hiprt as sys;
use std::ffi::c_void;
use std::sync::Arc;

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

    /// Blocks the calling thread until the work recorded before the event has completed.
    pub fn synchronize(&self) -> Result<(), HipError> {
        // SAFETY: `self.raw` is a live event.
        check("hipEventSynchronize", unsafe {
            sys::hipEventSynchronize(self.raw)
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

/// Freed pinned buffers by capacity (a power of two). `hipHostMalloc` of a large buffer costs
/// milliseconds (the pages are locked one by one), more than the copy it serves.
mod pinned_pool {
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Bytes the pool keeps at most; beyond that, drops free for real.
    pub const CAP: usize = 512 << 20;

    struct Pool {
        free: HashMap<usize, Vec<usize>>,
        bytes: usize,
    }

    static POOL: Mutex<Option<Pool>> = Mutex::new(None);

    /// A pooled buffer of capacity `cap`, if any.
    pub fn take(cap: usize) -> Option<usize> {
        let mut g = POOL.lock().ok()?;
        let p = g.as_mut()?;
        let ptr = p.free.get_mut(&cap)?.pop()?;
        p.bytes -= cap;
        Some(ptr)
    }

    /// Keeps `ptr` (of capacity `cap`) for reuse; false when the pool is full (the caller frees it).
    pub fn put(ptr: usize, cap: usize) -> bool {
        let Ok(mut g) = POOL.lock() else { return false };
        let p = g.get_or_insert_with(|| Pool {
            free: HashMap::new(),
            bytes: 0,
        });
        if p.bytes + cap > CAP {
            return false;
        }
        p.bytes += cap;
        p.free.entry(cap).or_default().push(ptr);
        true
    }
}

/// Page-locked host memory (`hipHostMalloc`, portable: usable with every device), the destination of
/// asynchronous device-to-host copies. Returned to a bounded pool (or freed) on drop.
#[derive(Debug)]
struct Pinned {
    ptr: *mut u8,
    /// Capacity: `len` rounded up to a power of two, the pool's key.
    cap: usize,
    len: usize,
}

// SAFETY: the allocation is process-wide host memory owned by this value; it is only read through `&self`
// and only after the copy into it completed (see CopyInFlight).
unsafe impl Send for Pinned {}
// SAFETY: as above.
unsafe impl Sync for Pinned {}

impl Pinned {
    /// At least `len` bytes (`len > 0`), uninitialised, from the pool or newly allocated.
    fn take(len: usize) -> Result<Pinned, HipError> {
        let cap = len
            .max(1)
            .checked_next_power_of_two()
            .ok_or_else(|| HipError::local("hipHostMalloc", format!("{len} bytes")))?;
        if let Some(p) = pinned_pool::take(cap) {
            return Ok(Pinned {
                ptr: p as *mut u8,
                cap,
                len,
            });
        }
        let mut ptr = std::ptr::null_mut();
        // SAFETY: `ptr` is a valid out-pointer; on success it holds `cap` bytes of pinned memory owned by
        // the returned value, freed once in Drop (or kept in the pool). 1 = hipHostMallocPortable.
        check("hipHostMalloc", unsafe {
            sys::hipHostMalloc(&mut ptr, cap, sys::hipHostMallocPortable)
        })?;
        Ok(Pinned {
            ptr: ptr.cast(),
            cap,
            len,
        })
    }

    /// The `len` bytes. Only [`CopyInFlight`] calls it, after the copy into them completed.
    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points at `cap >= len` bytes owned by `self`; the caller guarantees the device
        // wrote all `len` of them (the copy's done event completed) and nothing writes them now.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if !pinned_pool::put(self.ptr as usize, self.cap) {
            // SAFETY: `ptr` came from hipHostMalloc and is freed exactly once, here (the pool declined
            // it); no copy writes it any more (CopyInFlight waits before dropping it).
            let _ = unsafe { sys::hipHostFree(self.ptr.cast()) };
        }
    }
}

/// Owned pieces of a copy while it may still run: released only once the copy is known to be over.
struct Parts {
    /// Never read: held so that the allocation reaches the device pool only after the copy.
    _src: Arc<DevMem>,
    dst: Pinned,
    done: Event,
}

/// A device-to-host copy of a whole [`DevMem`] queued on a [`Stream`].
pub struct CopyInFlight {
    /// Taken by `wait`; Drop sees None then.
    parts: Option<Parts>,
}

impl std::fmt::Debug for CopyInFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CopyInFlight")
    }
}

/// Releases `parts` once the device has finished with them: after `done` completed, or (when that
/// cannot be known) after the whole device is idle; when not even that is known, never (leaked).
fn release(parts: Parts, done_recorded: bool) {
    let over = if done_recorded {
        parts.done.synchronize().is_ok()
    } else {
        super::runtime::synchronize().is_ok()
    };
    if !over {
        std::mem::forget(parts);
    }
}

impl CopyInFlight {
    /// Queues the copy of `src` (non-empty) on `stream`, after `ready` (an event recorded on the null
    /// stream after the kernel that wrote `src`). Returns at once. The current device must be the one
    /// `src`, `stream` and `ready` belong to.
    pub fn start(
        stream: &Stream,
        ready: &Event,
        src: Arc<DevMem>,
    ) -> Result<CopyInFlight, HipError> {
        let len = src.len();
        if len == 0 {
            return Err(HipError::local("hipMemcpyAsync(DtoH)", "empty buffer"));
        }
        let dst = Pinned::take(len)?;
        let done = Event::new()?;
        stream.wait_event(ready)?;
        // SAFETY: the destination is `len <= cap` bytes of pinned memory and the source a live allocation
        // of `len` bytes. Both outlive the copy: they move into `parts`, which is released only after the
        // copy is known to be over (`release`), or leaked.
        check("hipMemcpyAsync(DtoH)", unsafe {
            sys::hipMemcpyAsync(
                dst.ptr.cast::<c_void>(),
                src.ptr().cast_const(),
                len,
                sys::hipMemcpyKind::hipMemcpyDeviceToHost,
                stream.raw,
            )
        })?;
        let parts = Parts {
            _src: src,
            dst,
            done,
        };
        match parts.done.record(Some(stream)) {
            Ok(()) => Ok(CopyInFlight { parts: Some(parts) }),
            Err(e) => {
                release(parts, false);
                Err(e)
            }
        }
    }

    /// The bytes, once the copy has run (blocks the calling thread until then).
    pub fn wait(mut self) -> Result<Vec<u8>, HipError> {
        let parts = self
            .parts
            .take()
            .ok_or_else(|| HipError::local("hipEventSynchronize", "copy already taken"))?;
        if let Err(e) = parts.done.synchronize() {
            // The copy may still be running: keep both buffers forever rather than reuse them.
            std::mem::forget(parts);
            return Err(e);
        }
        Ok(parts.dst.as_slice().to_vec())
    }
}

impl Drop for CopyInFlight {
    fn drop(&mut self) {
        // Not waited for: the copy may still read `src` and write `dst`.
        if let Some(parts) = self.parts.take() {
            release(parts, true);
        }
    }
}
