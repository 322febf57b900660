//! Device-to-host copies that do not stop the device: [`Copier`], one per backend (device), behind
//! [`DeviceBuffer::to_host_async`](crate::launch::DeviceBuffer::to_host_async).
//!
//! Why: full capture needs the bytes of the selected launches' tensors on the host. A blocking copy on
//! the null stream, where every kernel runs, made the inference thread wait for the device to drain, per
//! tensor (issue 11: 1.4 s of a 2 s run on an 8B model). The copier instead only records an event on the
//! null stream after the kernel that produced the buffer (microseconds, on the inference thread) and
//! keeps the buffer; the thread that reads the bytes (the recorder's worker) makes the copier's own
//! non-blocking stream wait for that event and copies there, into a reused host buffer
//! (`launch::host_buffers`), while the kernels that follow run. The buffer cannot return to the device
//! pool and be rewritten before: the pending copy holds it.

use super::ffi::{self, DevMem, Event, Stream};
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

    /// Starts a copy of `mem` to the host, ordered after every kernel launched so far on this device;
    /// returns at once. The handle yields exactly the bytes `mem` holds now (buffers are immutable once a
    /// launch returned them), on any thread; the copy itself runs when it is waited for.
    pub fn start(self: &Arc<Self>, mem: &Arc<DevMem>) -> Result<PendingBytes, String> {
        if mem.is_empty() {
            return Ok(PendingBytes::new(|| Ok(Vec::new())));
        }
        ffi::set_device(self.ordinal).map_err(|e| e.to_string())?;
        let ready = Event::new().map_err(|e| e.to_string())?;
        ready.record(None).map_err(|e| e.to_string())?;
        let (me, mem) = (Arc::clone(self), Arc::clone(mem));
        Ok(PendingBytes::new(move || {
            // The waiting thread (the recorder's worker) may never have selected the device.
            ffi::set_device(me.ordinal).map_err(|e| e.to_string())?;
            let stream = me.stream()?;
            let mut bytes = crate::launch::host_buffers::take(mem.len());
            ffi::copy_to_host(stream, &ready, &mem, &mut bytes).map_err(|e| e.to_string())?;
            Ok(bytes)
        }))
    }
}
