//! Per-stage launches: validate inputs against docs/STAGES.md, bring them to the device, pick the kernel
//! of the route, size the grid, launch, and wrap the outputs as device tensors.
//!
//! Shape checks mirror the CPU backend's, so both reject the same launches with the same kind of error.

pub mod attention;
pub mod direct;
pub mod matmul;

use super::ffi::LaunchDims;

/// Blocks needed to cover `n` items with `per` items per block.
pub fn blocks(n: usize, per: u32) -> u32 {
    n.div_ceil(per as usize) as u32
}

/// A launch of `grid` blocks of `threads` threads (x only in the block) with no dynamic shared memory.
pub fn dims(grid: [u32; 3], threads: u32) -> LaunchDims {
    LaunchDims {
        grid,
        block: [threads, 1, 1],
        shared: 0,
    }
}
