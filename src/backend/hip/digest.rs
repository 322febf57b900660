//! BLAKE3 digests of device buffers (kernels/blake3.cu), for recording that copies 32 bytes per tensor
//! instead of the tensor.
//!
//! Why a ring in mapped host memory: the inference thread must not wait for the device to hash, and the
//! recorder's worker must not make the device wait either. [`DigestRing::issue`] only queues the buffer;
//! every [`BATCH`] buffers (or [`BATCH_BYTES`], or when a reader asks for a queued digest) one
//! `blake3_many` launch on the default stream hashes the batch, each digest written straight into slot
//! `n % SLOTS` of pinned host memory mapped into the device, then (after a system-wide fence) the slot's
//! tag. The worker thread's [`DigestRing::fetch`] waits for the tag and reads the digest: no copy, no
//! stream synchronisation, so the device runs ahead exactly as without recording. A slot is reused only
//! `SLOTS` digests later, and the recorder never runs that far ahead of its worker (its queue is
//! bounded); a reader that finds its slot reused gets an error, never another tensor's digest.
//!
//! Why batches: a small tensor's digest is latency-bound (one thread per 1 KiB chunk runs 16 sequential
//! compressions, ~20 µs), and one kernel per tensor, in order between the model's kernels, cost a decode
//! step of an 8B model ~600 such kernels. Batched, they hash concurrently.
//!
//! Why buffers are held only until their batch is launched: greta's buffers are immutable once a launch
//! returned them, and a buffer dropped after the launch goes back to the pool, which hands it out only to
//! work ordered after that launch on the same stream, so the kernel has read it by then. (Holding them
//! until the worker read the digest kept hundreds of MB of prefill activations out of the pool.)

use super::ffi::{self, Arg, DevMem, LaunchDims, MappedHost};
use super::source::{self, geom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Digest slots.
const SLOTS: u64 = 1 << 16;
/// Bytes per slot: 32 of digest, a 4-byte tag, padding to a cache line.
const SLOT_BYTES: u64 = 64;
/// Bytes per descriptor: address, length, chaining-value offset, tag (u64 each).
const DESC_BYTES: u64 = 32;
/// Buffers hashed per launch at most: small digests are latency-bound (16 sequential compressions per
/// chunk): one kernel each, in order on the stream, cost the model ~20 µs a tensor, and a batch of 64
/// decode-sized tensors still ~37 µs (H200), ~8 batches a SmolLM2 decode step.
const BATCH: usize = 256;
/// Bytes of queued buffers that launch a batch early (large prefill tensors are bandwidth-bound anyway,
/// and queued buffers stay out of the allocation pool).
const BATCH_BYTES: usize = 64 << 20;
/// How long a reader waits for a digest before asking the device for an error.
const PATIENCE: Duration = Duration::from_secs(10);

/// `GRETA_PROFILE_DIGESTS=1` (with `GRETA_PROFILE`): wait for the device before and after every batch, so
/// the profile can say how long the digest kernels take alone (the run itself gets slower).
static TIME_BATCHES: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
    std::env::var_os("GRETA_PROFILE_DIGESTS").is_some_and(|v| v != "0")
});

struct Ring {
    /// `SLOTS * SLOT_BYTES` of mapped host memory for digests, allocated on first use.
    out: Option<Arc<MappedHost>>,
    /// `SLOTS * DESC_BYTES` of pinned host memory for descriptors, written by the host.
    descs: Option<MappedHost>,
    /// The launched batch's descriptors on the device (`BATCH * DESC_BYTES`), copied from `descs` before
    /// each launch: read from host memory, one read per block of a large buffer's thousands of blocks
    /// crossed the bus and left the hashing kernels mostly waiting (ncu: 4 ms for 256 MiB).
    dev_descs: Option<DevMem>,
    /// Chaining-value scratch (32 bytes per chunk of the largest batch so far).
    cv: Option<DevMem>,
    /// The kernel's ticket counters ([`tickets_for`] per buffer of a batch, zero between launches).
    tickets: Option<DevMem>,
    /// Issued, not yet launched: slot and buffer (kept alive until its batch is launched).
    pending: Vec<(u64, Arc<DevMem>)>,
    /// Bytes of the pending buffers.
    pending_bytes: usize,
}

/// Ticket counters the kernel uses for a buffer of `chunks` 1 KiB chunks: one per group of
/// `B3_THREADS` nodes at every level of its merge above the blocks (kernels/blake3.cu `b3_one`); none
/// when one block hashes it all.
fn tickets_for(chunks: u64) -> u64 {
    let per = u64::from(geom::B3_THREADS);
    let mut count = chunks.div_ceil(per);
    let mut tickets = 0;
    while count > 1 {
        let groups = count.div_ceil(per);
        tickets += groups;
        count = groups;
    }
    tickets
}

/// The tag the kernel writes after the digest of `slot` (never 0, the initial value).
fn tag(slot: u64) -> u32 {
    (slot % 0xffff_fffe) as u32 + 1
}

/// The digest ring of one device.
pub struct DigestRing {
    ordinal: i32,
    f: Arc<ffi::Function>,
    ring: Mutex<Ring>,
    /// Digests issued / launched so far: atomics, so a reader waiting for its digest never takes the lock
    /// the launching thread needs.
    issued: AtomicU64,
    launched: AtomicU64,
}

impl std::fmt::Debug for DigestRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DigestRing(device {})", self.ordinal)
    }
}

impl DigestRing {
    /// An empty ring for device `ordinal` hashing with `f` (`blake3_many`); nothing is allocated until
    /// the first digest.
    pub fn new(ordinal: i32, f: Arc<ffi::Function>) -> DigestRing {
        DigestRing {
            ordinal,
            f,
            ring: Mutex::new(Ring {
                out: None,
                descs: None,
                dev_descs: None,
                cv: None,
                tickets: None,
                pending: Vec::new(),
                pending_bytes: 0,
            }),
            issued: AtomicU64::new(0),
            launched: AtomicU64::new(0),
        }
    }

    /// Queues the digest of `buf` (non-empty) and returns its slot number; every [`BATCH`] digests or
    /// [`BATCH_BYTES`] (or when a reader asks for a queued one) one launch hashes the batch. Runs on a thread that launches
    /// kernels, with this ring's device current.
    pub fn issue(&self, buf: &Arc<DevMem>) -> Result<u64, String> {
        let mut r = self.ring.lock().map_err(|_| "digest ring poisoned")?;
        if r.out.is_none() {
            let map = |n: u64| MappedHost::alloc(n as usize).map_err(|e| e.to_string());
            r.out = Some(Arc::new(map(SLOTS * SLOT_BYTES)?));
            r.descs = Some(map(SLOTS * DESC_BYTES)?);
            r.dev_descs =
                Some(DevMem::alloc(BATCH * DESC_BYTES as usize).map_err(|e| e.to_string())?);
        }
        // Only issuers store (under the lock); readers only load.
        let slot = self.issued.load(Ordering::Acquire);
        r.pending.push((slot, Arc::clone(buf)));
        r.pending_bytes += buf.len();
        self.issued.store(slot + 1, Ordering::Release);
        if r.pending.len() >= BATCH || r.pending_bytes >= BATCH_BYTES {
            self.launch(&mut r)?;
        }
        Ok(slot)
    }

    /// Launches the pending batch (under the ring's lock).
    fn launch(&self, r: &mut Ring) -> Result<(), String> {
        let Some(&(first, _)) = r.pending.first() else {
            return Ok(());
        };
        let count = r.pending.len();
        let mut words = 0u64;
        let mut blocks = 1u64;
        let mut tickets = 0u64;
        {
            let descs = r.descs.as_ref().ok_or("no descriptors")?;
            for (slot, buf) in &r.pending {
                let len = buf.len() as u64;
                let chunks = len.div_ceil(1024).max(1);
                let at = ((slot % SLOTS) * DESC_BYTES) as usize;
                descs.write_u64(at, buf.addr());
                descs.write_u64(at + 8, len);
                descs.write_u64(at + 16, words);
                descs.write_u64(at + 24, u64::from(tag(*slot)) | (tickets << 32));
                // The nodes of every level fit in a buffer's chunk count of 8-word slots.
                words += chunks * 8;
                tickets += tickets_for(chunks);
                blocks = blocks.max(chunks.div_ceil(u64::from(geom::B3_THREADS)));
            }
        }
        if tickets > u64::from(u32::MAX) {
            return Err("a digest batch too large to hash".to_string());
        }
        let tbytes = (tickets.max(1) * 4) as usize;
        if r.tickets.as_ref().is_none_or(|t| t.len() < tbytes) {
            // Grown only, zeroed; the kernel leaves every ticket it uses at zero again. An old buffer
            // still used by queued kernels goes to the pool (reused only by work ordered after them).
            let n = tbytes.next_power_of_two();
            let mut t = DevMem::alloc(n).map_err(|e| e.to_string())?;
            t.write(0, &vec![0; n]).map_err(|e| e.to_string())?;
            r.tickets = Some(t);
        }
        // The descriptors are in place before the copy that takes them to the device, in batch order
        // (two copies where the batch wraps around the ring); the kernel reads them there.
        std::sync::atomic::fence(Ordering::SeqCst);
        {
            let (descs, dev) = (
                r.descs.as_ref().ok_or("no descriptors")?,
                r.dev_descs.as_ref().ok_or("no device descriptors")?,
            );
            let start = (first % SLOTS) as usize;
            let head = count.min(SLOTS as usize - start);
            let d = DESC_BYTES as usize;
            descs
                .copy_to_device_async(start * d, dev, 0, head * d)
                .and_then(|()| descs.copy_to_device_async(0, dev, head * d, (count - head) * d))
                .map_err(|e| e.to_string())?;
        }
        let need = (words * 4) as usize;
        if r.cv.as_ref().is_none_or(|c| c.len() < need) {
            // Grown only; an old scratch still read by queued kernels goes to the pool, which hands it
            // out again only to work ordered after them on the same stream.
            r.cv = Some(DevMem::alloc(need.next_power_of_two()).map_err(|e| e.to_string())?);
        }
        let grid = u32::try_from(blocks).map_err(|_| "a buffer too large to hash".to_string())?;
        let t0 = if crate::launch::profile::enabled() && *TIME_BATCHES {
            ffi::synchronize().map_err(|e| e.to_string())?;
            Some(Instant::now())
        } else {
            None
        };
        ffi::launch(
            &self.f,
            LaunchDims {
                grid: [grid, count as u32, 1],
                block: [geom::B3_THREADS, 1, 1],
                shared: 0,
            },
            &[
                Arg::Buf(r.dev_descs.as_ref().expect("allocated")),
                Arg::U32((first % SLOTS) as u32),
                Arg::U32(count as u32),
                Arg::U32(SLOTS as u32),
                Arg::Buf(r.cv.as_ref().expect("allocated")),
                Arg::Buf(r.tickets.as_ref().expect("allocated")),
                Arg::Mapped(r.out.as_ref().expect("allocated"), 0),
            ],
        )
        .map_err(|e| format!("{}: {e}", source::BLAKE3.name))?;
        if crate::launch::profile::enabled() {
            use crate::launch::profile as prof;
            if t0.is_some() {
                ffi::synchronize().map_err(|e| e.to_string())?;
                prof::add_since(&prof::DIGEST_KERNEL_NS, t0);
            }
            prof::add(&prof::DIGEST_BUFFERS, count as u64);
            prof::add(&prof::DIGEST_BYTES, r.pending_bytes as u64);
            prof::add(&prof::DIGEST_BATCHES, 1);
        }
        // The buffers may go back to the pool now: whatever reuses them is ordered after this launch.
        r.pending.clear();
        r.pending_bytes = 0;
        self.launched.store(first + count as u64, Ordering::Release);
        Ok(())
    }

    /// The digest of `slot`, once the device has written it (waits without holding the ring).
    pub fn fetch(&self, slot: u64) -> Result<[u8; 32], String> {
        if slot >= self.issued.load(Ordering::Acquire) {
            return Err(format!("digest {slot} was never issued"));
        }
        let out = {
            let mut r = self.ring.lock().map_err(|_| "digest ring poisoned")?;
            if slot >= self.launched.load(Ordering::Acquire) {
                // Still queued: launch its batch now, from this thread.
                ffi::set_device(self.ordinal).map_err(|e| e.to_string())?;
                self.launch(&mut r)?;
            }
            Arc::clone(r.out.as_ref().ok_or("no digests issued")?)
        };
        self.wait(&out, slot)
    }

    /// Waits for `slot`'s tag in `out` and reads its digest.
    fn wait(&self, out: &MappedHost, slot: u64) -> Result<[u8; 32], String> {
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

/// Device hashing for one backend: its ring of digests.
#[derive(Debug)]
pub struct DeviceHasher {
    ring: DigestRing,
}

impl DeviceHasher {
    /// A hasher on device `ordinal` with the compiled `blake3_many` kernel.
    pub fn new(ordinal: i32, f: Arc<ffi::Function>) -> DeviceHasher {
        DeviceHasher {
            ring: DigestRing::new(ordinal, f),
        }
    }

    /// Starts the digest of `mem` (the empty buffer's is known on the host). The buffer is kept alive
    /// until the kernel that hashes it is launched.
    pub fn digest(
        self: &Arc<Self>,
        mem: &Arc<DevMem>,
    ) -> Result<crate::launch::PendingDigest, String> {
        if mem.is_empty() {
            let h = *blake3::hash(&[]).as_bytes();
            return Ok(crate::launch::PendingDigest::new(move || Ok(h)));
        }
        ffi::set_device(self.ring.ordinal).map_err(|e| e.to_string())?;
        let slot = self.ring.issue(mem)?;
        let me = Arc::clone(self);
        Ok(crate::launch::PendingDigest::new(move || {
            me.ring.fetch(slot)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::tickets_for;

    #[test]
    fn tickets_cover_every_merge_level() {
        // Chunks -> blocks of 64 -> groups of 64 nodes per level.
        assert_eq!(tickets_for(1), 0);
        assert_eq!(tickets_for(64), 0, "one block");
        assert_eq!(tickets_for(65), 1, "two blocks, one final group");
        assert_eq!(tickets_for(64 * 64), 1, "64 blocks, one final group");
        assert_eq!(
            tickets_for(64 * 64 + 1),
            3,
            "65 blocks: 2 groups, then the final one"
        );
        assert_eq!(
            tickets_for(64 * 64 * 64),
            65,
            "4096 blocks: 64 groups, then the final one"
        );
        assert_eq!(tickets_for(64 * 64 * 64 + 1), 65 + 2 + 1);
    }
}
