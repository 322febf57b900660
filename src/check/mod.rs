//! Determinism checks: the same run N times (across thread counts, with and without the recorder)
//! must give identical manifests; a run must match a committed golden manifest.
//!
//! What greta guarantees to be bit-identical on the CPU backend: repeated runs, any thread count,
//! recording on or off, and any x86-64 machine (fixed reduction orders, no FMA contraction, libm for
//! transcendentals). A golden changes only with an intended numerical change (a kernel's reduction order,
//! a route rule); re-bless it then, in the same commit, with the reason in the message.

pub mod element;
pub mod golden;
pub mod rerun;
pub mod runs;

pub use golden::{Golden, GoldenOptions};
pub use runs::{Mismatch, compare_manifests};
