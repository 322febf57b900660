//! BLAKE3 digests of device buffers (kernels/blake3.cu), for recording that copies 32 bytes per tensor
//! instead of the tensor.
//!
//! Why a ring in mapped host memory: the inference thread must not wait for the device to hash, and the
//! recorder's worker must not make the device wait either. [`DigestRing::issue`] only enqueues the hash
//! kernel on the default stream; the kernel writes the digest straight into slot `n % SLOTS` of pinned
//! host memory mapped into the device, then (after a system-wide fence) the slot's tag. The worker
//! thread's [`DigestRing::fetch`] waits for the tag and reads the digest: no copy, no stream
//! synchronisation, so the device runs ahead exactly as without recording. A slot is reused only `SLOTS`
//! digests later, and the recorder never runs that far ahead of its worker (its queue is bounded);
//! a reader that finds its slot reused gets an error, never another tensor's digest.

use super::ffi::{self, Arg, DevMem, LaunchDims, MappedHost};
use super::source::{self, geom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Digest slots.
const SLOTS: u64 = 1 << 16;
/// Bytes per slot: 32 of digest, a 4-byte tag, padding to a cache line.
const SLOT_BYTES: u64 = 64;
/// How long a reader waits for a digest before asking the device for an error.
const PATIENCE: Duration = Duration::from_secs(10);

struct Ring {
    /// `SLOTS * SLOT_BYTES` of mapped host memory, allocated on first use.
    out: Option<Arc<MappedHost>>,
    /// Chaining-value scratch (32 bytes per chunk of the largest buffer hashed so far).
    cv: Option<DevMem>,
    /// The kernel's ticket counter (4 bytes, zero between launches).
    ticket: Option<DevMem>,
}

/// The tag the kernel writes after the digest of `slot` (never 0, the initial value).
fn tag(slot: u64) -> u32 {
    (slot % 0xffff_fffe) as u32 + 1
}

/// The digest ring of one device.
pub struct DigestRing {
    ordinal: i32,
    ring: Mutex<Ring>,
    /// Digests issued so far: an atomic, so a reader waiting for its digest never takes the lock the
    /// launching thread needs.
    issued: AtomicU64,
}

impl std::fmt::Debug for DigestRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DigestRing(device {})", self.ordinal)
    }
}

impl DigestRing {
    /// An empty ring for device `ordinal` (nothing is allocated until the first digest).
    pub fn new(ordinal: i32) -> DigestRing {
        DigestRing {
            ordinal,
            ring: Mutex::new(Ring {
                out: None,
                cv: None,
                ticket: None,
            }),
            issued: AtomicU64::new(0),
        }
    }

    /// Enqueues the digest of `buf` (non-empty) and returns its slot number. Runs on the thread that
    /// launches kernels, with this ring's device current.
    pub fn issue(&self, f: &ffi::Function, buf: &DevMem) -> Result<u64, String> {
        let len = buf.len() as u64;
        let chunks = len.div_ceil(1024).max(1);
        let mut r = self.ring.lock().map_err(|_| "digest ring poisoned")?;
        if r.out.is_none() {
            r.out = Some(Arc::new(
                MappedHost::alloc((SLOTS * SLOT_BYTES) as usize).map_err(|e| e.to_string())?,
            ));
            let mut t = DevMem::alloc(4).map_err(|e| e.to_string())?;
            t.write(0, &[0; 4]).map_err(|e| e.to_string())?;
            r.ticket = Some(t);
        }
        let need = (chunks * 32) as usize;
        if r.cv.as_ref().is_none_or(|c| c.len() < need) {
            // Grown only; an old scratch still read by queued kernels goes to the pool, which hands it
            // out again only to work ordered after them on the same stream.
            r.cv = Some(DevMem::alloc(need.next_power_of_two()).map_err(|e| e.to_string())?);
        }
        // Only the launching thread issues (under the lock); readers only load.
        let slot = self.issued.load(Ordering::Acquire);
        let at = ((slot % SLOTS) * SLOT_BYTES) as usize;
        let grid = chunks.div_ceil(u64::from(geom::B3_THREADS));
        let grid = u32::try_from(grid).map_err(|_| format!("{len} bytes are too many to hash"))?;
        let (out, cv, ticket) = (
            r.out.as_ref().expect("allocated"),
            r.cv.as_ref().expect("allocated"),
            r.ticket.as_ref().expect("allocated"),
        );
        ffi::launch(
            f,
            LaunchDims {
                grid: [grid, 1, 1],
                block: [geom::B3_THREADS, 1, 1],
                shared: 0,
            },
            &[
                Arg::Buf(buf),
                Arg::U32(len as u32),
                Arg::U32((len >> 32) as u32),
                Arg::Buf(cv),
                Arg::Buf(ticket),
                Arg::Mapped(out, at),
                Arg::U32(tag(slot)),
            ],
        )
        .map_err(|e| format!("{}: {e}", source::BLAKE3.name))?;
        self.issued.store(slot + 1, Ordering::Release);
        Ok(slot)
    }

    /// The digest of `slot`, once the device has written it (waits without holding the ring).
    pub fn fetch(&self, slot: u64) -> Result<[u8; 32], String> {
        if slot >= self.issued.load(Ordering::Acquire) {
            return Err(format!("digest {slot} was never issued"));
        }
        let out = Arc::clone(
            self.ring
                .lock()
                .map_err(|_| "digest ring poisoned")?
                .out
                .as_ref()
                .ok_or("no digests issued")?,
        );
        let at = ((slot % SLOTS) * SLOT_BYTES) as usize;
        let overwritten = || self.issued.load(Ordering::Acquire) > slot + SLOTS;
        let start = Instant::now();
        let mut spins = 0u32;
        let mut asked = false;
        loop {
            if out.read_u32(at + 32) == tag(slot) {
                std::sync::atomic::fence(Ordering::Acquire);
                let d = out.read_bytes::<32>(at);
                // Read again after the digest: a slot reused meanwhile would have changed its tag.
                if out.read_u32(at + 32) == tag(slot) && !overwritten() {
                    return Ok(d);
                }
            }
            if overwritten() {
                return Err(format!("digest {slot} was overwritten before it was read"));
            }
            // Digests arrive microseconds apart while the device runs: spin, then yield, then nap.
            spins += 1;
            if spins < 256 {
                std::hint::spin_loop();
            } else if spins < 4096 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(10));
            }
            if start.elapsed() > PATIENCE {
                if asked {
                    return Err(format!("digest {slot} did not arrive from the device"));
                }
                // A failed kernel never writes its tag: let the device report why.
                ffi::set_device(self.ordinal).map_err(|e| e.to_string())?;
                ffi::synchronize().map_err(|e| format!("waiting for digest {slot}: {e}"))?;
                asked = true;
            }
        }
    }
}

/// Device hashing for one backend: its ring and the compiled kernel.
#[derive(Debug)]
pub struct DeviceHasher {
    ring: DigestRing,
    f: Arc<ffi::Function>,
}

impl DeviceHasher {
    /// A hasher on device `ordinal` with the compiled `blake3_hash` kernel.
    pub fn new(ordinal: i32, f: Arc<ffi::Function>) -> DeviceHasher {
        DeviceHasher {
            ring: DigestRing::new(ordinal),
            f,
        }
    }

    /// Starts the digest of `mem` (the empty buffer's is known on the host).
    pub fn digest(self: &Arc<Self>, mem: &DevMem) -> Result<crate::launch::PendingDigest, String> {
        if mem.is_empty() {
            let h = *blake3::hash(&[]).as_bytes();
            return Ok(crate::launch::PendingDigest::new(move || Ok(h)));
        }
        ffi::set_device(self.ring.ordinal).map_err(|e| e.to_string())?;
        let slot = self.ring.issue(&self.f, mem)?;
        let me = Arc::clone(self);
        Ok(crate::launch::PendingDigest::new(move || {
            me.ring.fetch(slot)
        }))
    }
}
