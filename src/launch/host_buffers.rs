//! Host byte buffers reused for tensors copied from a device (full capture).
//!
//! Why: a fresh multi-megabyte `Vec` is fresh pages, and the first write to each page is a fault; on the
//! H200 machine greta is measured on, writing 256 MiB into fresh memory took 0.12 s against 0.03 s into
//! memory written before (docs/BENCHMARKS.md). A full capture copies hundreds of MB of activations, so
//! the backend's copy takes a buffer from here and the recorder's worker gives it back once the bytes are
//! on the tape. Small buffers are not kept (the allocator reuses those well); the pool holds at most
//! [`CAP`] bytes.

use std::sync::Mutex;

/// Buffers smaller than this are neither kept nor taken from the pool.
pub const MIN: usize = 64 << 10;
/// Bytes of capacity the pool keeps at most.
pub const CAP: usize = 512 << 20;

/// Kept buffers; one process-wide instance behind [`take`] and [`give`].
struct Pool(Vec<Vec<u8>>);

impl Pool {
    fn take(&mut self, len: usize) -> Option<Vec<u8>> {
        if len < MIN {
            return None;
        }
        let i = self
            .0
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len && v.capacity() <= 2 * len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i)?;
        let mut v = self.0.swap_remove(i);
        v.resize(len, 0);
        Some(v)
    }

    fn give(&mut self, v: Vec<u8>) {
        let held: usize = self.0.iter().map(Vec::capacity).sum();
        if v.capacity() >= MIN && held + v.capacity() <= CAP {
            self.0.push(v);
        }
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool(Vec::new()));

/// A buffer of exactly `len` bytes (contents unspecified but initialised): the smallest kept buffer
/// that is large enough (and at most twice as large), else a new one.
pub fn take(len: usize) -> Vec<u8> {
    POOL.lock()
        .ok()
        .and_then(|mut p| p.take(len))
        .unwrap_or_else(|| vec![0; len])
}

/// Keeps `v` for a later [`take`] (dropped when small or when the pool is full).
pub fn give(v: Vec<u8>) {
    if let Ok(mut p) = POOL.lock() {
        p.give(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_by_size_and_small_ones_are_not_kept() {
        let mut p = Pool(Vec::new());
        assert!(p.take(1 << 20).is_none(), "empty");
        let a = vec![7u8; 1 << 20];
        let ptr = a.as_ptr();
        p.give(a);
        // Far smaller than the kept buffer: not served from it.
        assert!(p.take(100 << 10).is_none());
        // About the same size: the same memory back, at the asked length.
        let b = p.take((1 << 20) - 100).expect("kept");
        assert_eq!((b.len(), b.as_ptr()), ((1 << 20) - 100, ptr));
        // Larger than capacity: grows (a new allocation), initialised.
        p.give(b);
        assert!(p.take((1 << 20) + 1).is_none());
        // Small buffers are not kept; the pool's bytes are capped.
        p.give(vec![0; 100]);
        assert_eq!(p.0.len(), 1);
        p.give(Vec::with_capacity(CAP));
        assert_eq!(p.0.len(), 1, "over the cap");
        assert_eq!(take(10).len(), 10);
    }
}
