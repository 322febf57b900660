//! Device-to-host copies that do not stop the device: [`Copier`], one per backend (device), behind
//! [`DeviceBuffer::to_host_async`](crate::launch::DeviceBuffer::to_host_async).
//!
//! Why: full capture needs the bytes of the selected launches' tensors on the host. A blocking copy on
//! the null stream, where every kernel runs, made the inference thread wait for the device to drain, per
//! tensor (issue 11: 1.4 s of a 2 s run on an 8B model). The copier instead records an event on the null
//! stream after the kernel that produced the buffer, makes its own non-blocking stream wait for that event,
//! and queues the copy there into pinned memory: the kernels that follow run while the copy engine works,
//! and only the recorder's worker, reading the bytes, waits (see `ffi::CopyInFlight` for why the buffers
//! stay valid until then).

use super::ffi::{self, CopyInFlight, DevMem, Event, Stream};
use crate::launch::PendingBytes;
use std::sync::{Arc, OnceLock};

/// The copy stream of one device, created on the first copy.
pub struct Copier {
    ordinal: i32,
    stream: OnceLock<Stream>,
}

impl std::fmt::Debug for Copier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Copier(device {})", self.ordinal)
    }
}

impl Copier {
    /// A copier for device `ordinal` (nothing is created until the first copy).
    pub fn new(ordinal: i32) -> Copier {
        Copier {
            ordinal,
            stream: OnceLock::new(),
        }
    }

    /// The copy stream; the device must be current.
    fn stream(&self) -> Result<&Stream, String> {
        if let Some(s) = self.stream.get() {
            return Ok(s);
        }
        let s = Stream::non_blocking().map_err(|e| e.to_string())?;
        // Two threads racing here each make a stream; one is kept, the other destroyed unused.
        let _ = self.stream.set(s);
        self.stream
            .get()
            .ok_or_else(|| "copy stream not kept".to_string())
    }

    /// Starts copying `mem` to the host, ordered after every kernel launched so far on this device;
    /// returns at once. The handle yields exactly the bytes `mem` holds now (buffers are immutable once a
    /// launch returned them), on any thread.
    pub fn start(&self, mem: &Arc<DevMem>) -> Result<PendingBytes, String> {
        if mem.is_empty() {
            return Ok(PendingBytes::new(|| Ok(Vec::new())));
        }
        ffi::set_device(self.ordinal).map_err(|e| e.to_string())?;
        let stream = self.stream()?;
        let ready = Event::new().map_err(|e| e.to_string())?;
        ready.record(None).map_err(|e| e.to_string())?;
        let copy =
            CopyInFlight::start(stream, &ready, Arc::clone(mem)).map_err(|e| e.to_string())?;
        // `ready` may go now: the stream's wait on it is queued, and the runtime releases a recorded
        // event only once the device has reached it.
        drop(ready);
        let ordinal = self.ordinal;
        Ok(PendingBytes::new(move || {
            // The waiting thread (the recorder's worker) may never have selected the device.
            ffi::set_device(ordinal).map_err(|e| e.to_string())?;
            copy.wait().map_err(|e| e.to_string())
        }))
    }
}
