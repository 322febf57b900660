//! `GRETA_PROFILE=1`: where a run's time goes, per phase kind (prefill / decode), stage and route, printed
//! to stderr when the run finishes. A launch's time is the launcher's wall time around the backend call:
//! on the GPU that is the host's cost of enqueuing the kernel, unless `GRETA_HIP_SYNC=1` makes every
//! launch wait for its kernel (then it is the kernel's time). Comparing the two says whether a run is
//! bound by the device or by the host.

use super::{LaunchInfo, Phase};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Nanoseconds the recorder's worker spent waiting for digests computed on the device (written by the
/// recorder, read by the profile).
pub static DIGEST_WAIT_NS: AtomicU64 = AtomicU64::new(0);

/// Nanoseconds the recorder's worker spent completing the tape (index, trailer, fsync, rename), written by
/// the recorder, read by the profile.
pub static TAPE_FINISH_NS: AtomicU64 = AtomicU64::new(0);

/// Nanoseconds the recorder's worker spent waiting for tensor bytes copied from the device beside the
/// kernels (full capture; written by the recorder, read by the profile).
pub static COPY_WAIT_NS: AtomicU64 = AtomicU64::new(0);

/// Whether a profile was requested (set once by [`Profile::requested`]): the recorder times its parts
/// only then, so an unprofiled run pays one relaxed load per timed section.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Nanoseconds the inference thread waited for the recorder's byte budget (its worker was behind).
pub static BUDGET_WAIT_NS: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds the inference thread spent starting device-to-host copies (staging memory included).
pub static COPY_START_NS: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds the recorder's worker spent hashing tensors on the host (blake3).
pub static HOST_HASH_NS: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds the recorder's worker spent storing tensor bytes (chunk hashes, compression, writes).
pub static STORE_NS: AtomicU64 = AtomicU64::new(0);

/// Nanoseconds of the tape writer's chunk hashing, compression and file writes (inside [`STORE_NS`]).
pub static WRITER_HASH_NS: AtomicU64 = AtomicU64::new(0);
/// See [`WRITER_HASH_NS`].
pub static WRITER_ENCODE_NS: AtomicU64 = AtomicU64::new(0);
/// See [`WRITER_HASH_NS`].
pub static WRITER_WRITE_NS: AtomicU64 = AtomicU64::new(0);
/// Device digests: buffers and bytes hashed, batches launched.
pub static DIGEST_BUFFERS: AtomicU64 = AtomicU64::new(0);
/// See [`DIGEST_BUFFERS`].
pub static DIGEST_BYTES: AtomicU64 = AtomicU64::new(0);
/// See [`DIGEST_BUFFERS`].
pub static DIGEST_BATCHES: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds of the digest batches' kernels, timed alone (`GRETA_PROFILE_DIGESTS=1` waits for the
/// device around every batch; 0 otherwise).
pub static DIGEST_KERNEL_NS: AtomicU64 = AtomicU64::new(0);

/// Adds `n` to `counter` (relaxed: the profile reads the totals after the run).
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Whether profiling is on (see [`timer`]).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A start time when profiling, else None (no clock read).
pub fn timer() -> Option<Instant> {
    ENABLED.load(Ordering::Relaxed).then(Instant::now)
}

/// Adds the time since `t` (from [`timer`]) to `counter`.
pub fn add_since(counter: &AtomicU64, t: Option<Instant>) {
    if let Some(t) = t {
        add(counter, t.elapsed().as_nanos() as u64);
    }
}

fn secs(c: &AtomicU64) -> f64 {
    c.load(Ordering::Relaxed) as f64 / 1e9
}

/// Per-stage time totals of a run.
#[derive(Default)]
pub struct Profile {
    totals: BTreeMap<(&'static str, String, String), (u64, Duration)>,
    start: Option<Instant>,
    observers: Duration,
}

impl Profile {
    /// Whether `GRETA_PROFILE` asks for a profile.
    pub fn requested() -> bool {
        let on = std::env::var_os("GRETA_PROFILE").is_some_and(|v| v != "0");
        if on {
            ENABLED.store(true, Ordering::Relaxed);
        }
        on
    }

    /// Adds one launch: its time inside the backend, and its observers' time (begin and end).
    pub fn launch(&mut self, info: &LaunchInfo, d: Duration, observers: Duration) {
        self.start
            .get_or_insert_with(|| Instant::now() - d - observers);
        self.observers += observers;
        let phase = if info.phase == Phase::Prefill {
            "prefill"
        } else {
            "decode"
        };
        let e = self
            .totals
            .entry((phase, info.stage.name().to_string(), info.route.to_string()))
            .or_default();
        e.0 += 1;
        e.1 += d;
    }

    /// The table, slowest first; `finishing` is how long the observers took to finish (a recorder
    /// writing what it still had queued).
    pub fn report(&self, finishing: Duration) -> String {
        let mut rows: Vec<_> = self.totals.iter().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1.1));
        let sum: Duration = self.totals.values().map(|v| v.1).sum();
        let wall = self.start.map(|s| s.elapsed()).unwrap_or_default();
        let mut s = format!(
            "profile: {} launches, {:.3} s inside launches, {:.3} s from the first launch to the end\n\
             observers (recorder, progress) on the inference thread: {:.3} s; their finish (queued work): {:.3} s; \
             recorder waiting for device digests: {:.3} s, for device copies: {:.3} s; completing the tape: {:.3} s\n\
             inference thread: waiting for the recorder's budget {:.3} s, starting device copies {:.3} s; \
             recorder worker: hashing on the host {:.3} s, storing bytes {:.3} s (chunk hashes {:.3} s, \
             compression {:.3} s, file writes {:.3} s)\n\
             device digests: {} buffers, {:.1} MB in {} batches{}\n{:<8} {:<14} {:<20} {:>7} {:>10} {:>10}\n",
            self.totals.values().map(|v| v.0).sum::<u64>(),
            sum.as_secs_f64(),
            wall.as_secs_f64(),
            self.observers.as_secs_f64(),
            finishing.as_secs_f64(),
            secs(&DIGEST_WAIT_NS),
            secs(&COPY_WAIT_NS),
            secs(&TAPE_FINISH_NS),
            secs(&BUDGET_WAIT_NS),
            secs(&COPY_START_NS),
            secs(&HOST_HASH_NS),
            secs(&STORE_NS),
            secs(&WRITER_HASH_NS),
            secs(&WRITER_ENCODE_NS),
            secs(&WRITER_WRITE_NS),
            DIGEST_BUFFERS.load(Ordering::Relaxed),
            DIGEST_BYTES.load(Ordering::Relaxed) as f64 / 1e6,
            DIGEST_BATCHES.load(Ordering::Relaxed),
            match DIGEST_KERNEL_NS.load(Ordering::Relaxed) {
                0 => String::new(),
                ns => format!(", {:.3} s of kernels (timed alone)", ns as f64 / 1e9),
            },
            "phase",
            "stage",
            "route",
            "count",
            "total ms",
            "mean us"
        );
        for ((phase, stage, route), (n, d)) in rows {
            s += &format!(
                "{phase:<8} {stage:<14} {route:<20} {n:>7} {:>10.2} {:>10.1}\n",
                d.as_secs_f64() * 1e3,
                d.as_secs_f64() * 1e6 / *n as f64
            );
        }
        s
    }
}
