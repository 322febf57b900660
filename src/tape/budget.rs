//! The memory budget for materialising one tensor from a tape.
//!
//! Every allocation a reader makes on behalf of a file field is bounded before it is made: frame
//! payloads by their kind's cap and zstd's maximum ratio (`frame.rs`), and a whole tensor assembled from
//! chunks or row spans by this budget. A tape is untrusted input (issue 14: an 86 KB tape asked for
//! 16 TiB; a 99 KB tape citing one chunk 1024 times asked for 2 TiB), so a tensor larger than the budget
//! is a typed error ([`super::TapeError::TooLarge`]) naming the tensor, never an allocation.
//!
//! The default, [`DEFAULT_MAX_TENSOR_BYTES`] (4 GiB), is far above any tensor of the models greta runs
//! (SmolLM2-135M's largest is 113 MB; a 70B model's embedding is ~2 GB in f32). Override it with the
//! `--max-tensor-bytes` flag of any command or the `GRETA_MAX_TENSOR_BYTES` environment variable.
//!
//! ```
//! greta::tape::budget::set_max_tensor_bytes(1 << 20);
//! assert_eq!(greta::tape::budget::max_tensor_bytes(), 1 << 20);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

/// The default budget for one tensor: 4 GiB.
pub const DEFAULT_MAX_TENSOR_BYTES: u64 = 4 << 30;

/// The environment variable that overrides the default.
pub const ENV: &str = "GRETA_MAX_TENSOR_BYTES";

/// 0: not set yet (read the environment on first use).
static BUDGET: AtomicU64 = AtomicU64::new(0);

/// Sets the budget for this process (the `--max-tensor-bytes` flag). 0 restores the default.
pub fn set_max_tensor_bytes(n: u64) {
    BUDGET.store(n, Ordering::Relaxed);
}

/// The budget: the value set, else `GRETA_MAX_TENSOR_BYTES`, else [`DEFAULT_MAX_TENSOR_BYTES`].
pub fn max_tensor_bytes() -> u64 {
    match BUDGET.load(Ordering::Relaxed) {
        0 => {
            let n = std::env::var(ENV)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&n| n > 0)
                .unwrap_or(DEFAULT_MAX_TENSOR_BYTES);
            BUDGET.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}
