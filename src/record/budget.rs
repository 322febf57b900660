//! Bounded memory between the inference thread and the recorder's worker: a byte budget the inference
//! thread acquires before queueing tensors and the worker releases after writing them. When the worker
//! falls behind, the inference thread blocks (backpressure) instead of queueing without limit.
//! Also remembers which tensor ids the worker has seen, so device inputs are not copied twice.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Condvar, Mutex};

/// Tensor ids are process-unique counters: one multiply spreads them over the table (SipHash, the
/// default, was a visible share of the recorder's cost per launch on the inference thread).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Ids = HashSet<u64, BuildHasherDefault<IdHasher>>;

/// A byte budget plus the set of known tensor ids.
pub struct ByteBudget {
    limit: usize,
    used: Mutex<usize>,
    freed: Condvar,
    known: Mutex<Ids>,
    hashed: Mutex<Ids>,
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> ByteBudget {
        ByteBudget {
            limit,
            used: Mutex::new(0),
            freed: Condvar::new(),
            known: Mutex::new(Ids::default()),
            hashed: Mutex::new(Ids::default()),
        }
    }

    /// Takes `n` bytes, waiting while the budget is spent. A single request larger than the whole
    /// budget waits until nothing else is in flight, then proceeds.
    pub fn acquire(&self, n: usize) {
        // Nothing to take (hash-only jobs): no lock, so the two threads do not contend per launch.
        if n == 0 {
            return;
        }
        let mut used = self.used.lock().expect("budget lock");
        while *used > 0 && *used + n > self.limit {
            used = self.freed.wait(used).expect("budget lock");
        }
        *used += n;
    }

    /// Takes `n` bytes if that needs no wait; false (nothing taken) otherwise.
    pub fn try_acquire(&self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let mut used = self.used.lock().expect("budget lock");
        if *used > 0 && *used + n > self.limit {
            return false;
        }
        *used += n;
        true
    }

    /// Gives `n` bytes back.
    pub fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut used = self.used.lock().expect("budget lock");
        *used = used.saturating_sub(n);
        self.freed.notify_all();
    }

    /// Notes that tensor `id` has been handed to the worker, with its bytes stored (`stored`) or only
    /// its hash.
    pub fn remember(&self, id: u64, stored: bool) {
        if stored {
            self.known.lock().expect("known lock").insert(id);
        } else {
            self.hashed.lock().expect("known lock").insert(id);
        }
    }

    /// True when the worker can refer to tensor `id` without its bytes: stored before, or hashed before
    /// and this launch needs no payload.
    pub fn known(&self, id: u64, need_payload: bool) -> bool {
        self.known.lock().expect("known lock").contains(&id)
            || (!need_payload && self.hashed.lock().expect("known lock").contains(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn blocks_until_released() {
        let b = Arc::new(ByteBudget::new(100));
        b.acquire(80);
        let b2 = b.clone();
        let t = std::thread::spawn(move || {
            b2.acquire(50);
            b2.release(50);
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!t.is_finished(), "second acquire must wait");
        b.release(80);
        t.join().unwrap();
        b.acquire(1000); // larger than the budget: proceeds when nothing is in flight
    }
}
