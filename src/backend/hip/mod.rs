//! The HIP backend (feature `hip`): hip-sys for the runtime, hiprtc for compiling kernels/ at run time
//! for the device's own architecture. Without the feature, [`open`] returns
//! [`BackendError::NotCompiled`], so `--backend hip` fails with a clear message and the default build
//! never needs ROCm.
//!
//! Layout, one concept a file:
//! - `ffi/`: the only unsafe code: runtime wrappers (device memory, modules, launches) and hiprtc,
//!   resolved at run time (ROCm 5 has it in libamdhip64, ROCm 6 in libhiprtc).
//! - `source`: the embedded kernels/ sources, kernel signatures, launch-geometry constants, hashes.
//! - `modules`: compiled modules cached per device by blake3(source + options).
//! - `buffer`: device tensors behind the seam's `DeviceBuffer`.
//! - `weights`: weights uploaded once in their GGUF block formats, dequantised in the kernels (why: see
//!   the file).
//! - `digest`: BLAKE3 digests of device buffers, so hash-only recording copies 32 bytes per tensor.
//! - `copy`: device-to-host copies on a second stream, so full capture does not stop the device.
//! - `ops/`: one launch per stage and route.
//! - `device`: [`HipBackend`] and its `Backend` implementation.
//! - [`selftest`]: every stage and route on the GPU against the CPU f32 reference.
//!
//! Routes and precisions: matmul `gemv`, `gemm_tiled`, `gemm_invariant`, and the engine-style `gemv_q8`
//! (Q8_1 activations, integer dots) and `gemm_mma` (matrix cores), which are the defaults for decode and
//! prefill here ([`Backend::preferred`]); attention `manual` and `fused`,
//! each with `f32` or `f16` accumulation; everything else `direct` in f32. `f64` is the CPU reference's
//! and is [`BackendError::Unsupported`] here. Reductions use no atomics and a fixed order, so a launch
//! replayed on the same device and route gives the same bits. docs/GPU.md has the details.
//!
//! ```
//! // Without a GPU (or without the feature) opening fails with a typed error, never a panic.
//! if let Err(e) = greta::backend::hip::open() {
//!     println!("{e}");
//! }
//! ```

#[cfg(feature = "hip")]
mod bench;
#[cfg(feature = "hip")]
mod buffer;
#[cfg(feature = "hip")]
mod copy;
#[cfg(feature = "hip")]
mod device;
#[cfg(feature = "hip")]
mod digest;
#[cfg(feature = "hip")]
mod ffi;
#[cfg(feature = "hip")]
mod modules;
#[cfg(feature = "hip")]
mod ops;
#[cfg(feature = "hip")]
pub mod source;
#[cfg(feature = "hip")]
mod weights;

pub mod selftest;

#[cfg(feature = "hip")]
pub use buffer::HipBuffer;
#[cfg(feature = "hip")]
pub use device::HipBackend;
pub use selftest::{SelftestReport, StageCheck};

use super::{Backend, BackendError};
use std::sync::Arc;

/// The HIP backend's routes for `stage`: every variant of the stage in f32, and attention also with f16
/// accumulation (`f64` is the CPU reference's). A free function so that the self-test's coverage can be
/// checked without a GPU.
pub fn routes(stage: crate::launch::Stage) -> Vec<crate::launch::Route> {
    use crate::launch::Precision;
    if !has_kernel(stage) {
        return Vec::new();
    }
    let precisions: &[Precision] = if stage.is_attention() {
        &[Precision::F32, Precision::F16]
    } else {
        &[Precision::F32]
    };
    super::contract::routes(stage, precisions)
}

/// Whether the GPU has a kernel for `stage` at all: the stages of Qwen and Gemma (format 5, issue 29)
/// run on the CPU only so far, and [`not_yet`] names them.
pub fn has_kernel(stage: crate::launch::Stage) -> bool {
    use crate::launch::Stage;
    !matches!(
        stage,
        Stage::EmbedScale
            | Stage::QBias
            | Stage::KBias
            | Stage::VBias
            | Stage::QNorm
            | Stage::KNorm
            | Stage::AttnPostNorm
            | Stage::FfnPostNorm
            | Stage::Geglu
    )
}

/// The error for a launch the GPU has no kernel for yet: a stage without one ([`has_kernel`]), NEOX
/// rope or a sliding attention window. None: the GPU runs it.
pub fn not_yet(
    stage: crate::launch::Stage,
    params: &crate::launch::Params,
) -> Option<BackendError> {
    use crate::launch::{ROPE_NORM, Stage};
    let what = if !has_kernel(stage) {
        format!("stage {stage}")
    } else if matches!(stage, Stage::RopeQ | Stage::RopeK) && params.rope_mode != ROPE_NORM {
        format!("{stage} in rope mode {} (NEOX)", params.rope_mode)
    } else if matches!(stage, Stage::Qk | Stage::Attn) && params.window != 0 {
        format!("{stage} with a sliding window of {}", params.window)
    } else {
        return None;
    };
    Some(BackendError::NotYet {
        backend: "hip",
        stage,
        what,
    })
}

/// Opens the first GPU as a backend.
pub fn open() -> Result<Arc<dyn Backend>, BackendError> {
    #[cfg(not(feature = "hip"))]
    {
        Err(BackendError::NotCompiled)
    }
    #[cfg(feature = "hip")]
    {
        Ok(Arc::new(HipBackend::open(0)?))
    }
}

/// Measures the parts of recording on the first GPU (device BLAKE3 throughput, asynchronous copies): lines of text, see `bench.rs`.
pub fn bench_recording_parts() -> Result<String, BackendError> {
    #[cfg(not(feature = "hip"))]
    {
        Err(BackendError::NotCompiled)
    }
    #[cfg(feature = "hip")]
    {
        bench::recording_parts(&HipBackend::open(0)?)
    }
}

/// Runs the kernel self-test on the first GPU: every stage and route against the CPU f32 reference on
/// the same random inputs (see [`selftest`]). Fails with `NotCompiled` or `NoDevice` where there is no GPU.
pub fn selftest() -> Result<SelftestReport, BackendError> {
    #[cfg(not(feature = "hip"))]
    {
        Err(BackendError::NotCompiled)
    }
    #[cfg(feature = "hip")]
    {
        let gpu = HipBackend::open(0)?;
        let mut report = selftest::run(&gpu);
        report.fused_split = Some(ops::attention::split_matches_single(&gpu));
        Ok(report)
    }
}
