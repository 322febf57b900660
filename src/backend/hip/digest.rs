//! BLAKE3 digests of device buffers (kernels/blake3.cu), for recording that copies 32 bytes per tensor
//! instead of the tensor.
//!
//! Why a ring: the inference thread must not wait for the device to hash. [`DigestRing::issue`] only
//! enqueues the hash kernel on the default stream, writing the digest into slot `n % SLOTS` of a device
//! array, and returns the slot number; the recorder's worker thread calls [`DigestRing::fetch`] later,
//! which copies every digest issued so far in one transfer (the copy waits for the kernels before it in
//! stream order, never for later ones). A slot is reused only `SLOTS` digests later, and the recorder
//! never runs that far ahead of its worker (its queue is bounded), so a fetched digest is always its own.

use super::ffi::{self, Arg, DevMem, LaunchDims};
use super::source::{self, geom};
use std::sync::{Arc, Mutex};

/// Digest slots on the device.
const SLOTS: u64 = 1 << 16;

struct Ring {
    /// `SLOTS * 32` bytes of digests, allocated on first use.
    out: Option<Arc<DevMem>>,
    /// Chaining-value scratch (32 bytes per chunk of the largest buffer hashed so far).
    cv: Option<DevMem>,
    /// The kernel's ticket counter (4 bytes, zero between launches).
    ticket: Option<DevMem>,
    /// Host copies of fetched slots.
    host: Vec<[u8; 32]>,
    /// Digests issued / fetched so far.
    issued: u64,
    fetched: u64,
}

/// The digest ring of one device.
pub struct DigestRing {
    ordinal: i32,
    ring: Mutex<Ring>,
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
                host: Vec::new(),
                issued: 0,
                fetched: 0,
            }),
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
                DevMem::alloc((SLOTS * 32) as usize).map_err(|e| e.to_string())?,
            ));
            let mut t = DevMem::alloc(4).map_err(|e| e.to_string())?;
            t.write(0, &[0; 4]).map_err(|e| e.to_string())?;
            r.ticket = Some(t);
            r.host = vec![[0; 32]; SLOTS as usize];
        }
        let need = (chunks * 32) as usize;
        if r.cv.as_ref().is_none_or(|c| c.len() < need) {
            // Grown only; an old scratch is still read by queued kernels, so it is dropped into the
            // pool (reused by later work in stream order, never concurrently).
            r.cv = Some(DevMem::alloc(need.next_power_of_two()).map_err(|e| e.to_string())?);
        }
        let slot = r.issued;
        let at = ((slot % SLOTS) * 32) as usize;
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
                Arg::BufAt(out, at),
            ],
        )
        .map_err(|e| format!("{}: {e}", source::BLAKE3.name))?;
        r.issued += 1;
        Ok(slot)
    }

    /// The digest of `slot`: copies every digest issued and not yet fetched, in one transfer (two when
    /// the range wraps), without holding the ring while the device catches up.
    pub fn fetch(&self, slot: u64) -> Result<[u8; 32], String> {
        let (from, to, out) = {
            let r = self.ring.lock().map_err(|_| "digest ring poisoned")?;
            if slot < r.fetched {
                if r.fetched > slot + SLOTS {
                    return Err(format!("digest {slot} was overwritten before it was read"));
                }
                return Ok(r.host[(slot % SLOTS) as usize]);
            }
            if slot >= r.issued {
                return Err(format!("digest {slot} was never issued"));
            }
            if r.issued > slot + SLOTS {
                return Err(format!("digest {slot} was overwritten before it was read"));
            }
            let out = Arc::clone(r.out.as_ref().ok_or("no digests issued")?);
            (r.fetched, r.issued, out)
        };
        ffi::set_device(self.ordinal).map_err(|e| e.to_string())?;
        // Slots [from, to) (mod SLOTS), copied without the lock: the copy waits for the hash kernels
        // queued before it, and the inference thread keeps issuing meanwhile.
        let (a, count) = (from % SLOTS, to - from);
        let first = count.min(SLOTS - a);
        let mut bytes = out
            .read_range((a * 32) as usize, (first * 32) as usize)
            .map_err(|e| e.to_string())?;
        if first < count {
            bytes.extend(
                out.read_range(0, ((count - first) * 32) as usize)
                    .map_err(|e| e.to_string())?,
            );
        }
        let mut r = self.ring.lock().map_err(|_| "digest ring poisoned")?;
        for (i, d) in bytes.chunks_exact(32).enumerate() {
            let s = from + i as u64;
            r.host[(s % SLOTS) as usize].copy_from_slice(d);
        }
        r.fetched = r.fetched.max(to);
        Ok(r.host[(slot % SLOTS) as usize])
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
