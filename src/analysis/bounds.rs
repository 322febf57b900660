//! How far a launch may be from the f64 reference on its own recorded inputs (its local error), per
//! stage and route: the bound `greta replay --reference f64` holds each launch to (exit 1 above it), and
//! the noise the engine-style matmul routes add by design, which `diff`'s significance rule allows.
//!
//! In analysis/ because replay (the local bound) and diff (the route envelopes) both need them and must
//! not import each other (docs/ARCHITECTURE.md). The table is documented in docs/DIAGNOSIS.md.
//!
//! ```
//! use greta::analysis::bounds::local_bound;
//! use greta::launch::{Precision, Route, Stage, Variant};
//! assert_eq!(local_bound(Stage::Softmax, Route::new(Variant::Manual, Precision::F32)), 1e-5);
//! assert_eq!(local_bound(Stage::QProj, Route::new(Variant::GemvQ8, Precision::F32)), 2e-2);
//! ```

use crate::launch::{Precision, Route, Stage, Variant};

/// Relative L2 error `gemv_q8` adds by design: activations quantised to Q8_1 blocks of 32 (an 8-bit
/// mantissa per element). Measured on random inputs by `route_envelopes_bound_measured_noise`
/// (tests/verdicts.rs; table in docs/DIAGNOSIS.md): 4.9e-3 to 5.2e-3 over weight types and widths; this
/// bound is four times that (real activations have heavier tails than the test's, so coarser blocks).
pub const ENVELOPE_GEMV_Q8: f64 = 2e-2;
/// Relative L2 error `gemm_mma` adds by design: x and W rounded to f16 (11-bit mantissas), f32
/// accumulation. Measured as [`ENVELOPE_GEMV_Q8`]: 2.9e-4 to 3.3e-4; this bound is three times that.
pub const ENVELOPE_GEMM_MMA: f64 = 1e-3;
/// Local error an f32 route may have, any stage (greta's own stay near 1e-7; `F32_LOCAL_MAX_REL_L2` in
/// the tests holds them to this).
pub const LOCAL_F32: f64 = 1e-5;
/// Local error a route accumulating in f16 may have (GPU fused attention in f16).
pub const LOCAL_F16: f64 = 1e-2;
/// Local error an f64 route may have.
pub const LOCAL_F64: f64 = 1e-12;
/// `kv_write` and `embed` copy values (embed dequantises one table row): any local error is a defect
/// beyond f32 rounding of the dequantisation.
pub const LOCAL_COPY: f64 = 1e-6;

/// What a route's variant adds by design (rounding x to Q8 or f16), else what its precision allows.
pub fn route_envelope(r: Route) -> f64 {
    let by_variant = match r.variant {
        Variant::GemvQ8 => ENVELOPE_GEMV_Q8,
        Variant::GemmMma => ENVELOPE_GEMM_MMA,
        _ => 0.0,
    };
    let by_precision = match r.precision {
        Precision::F64 => LOCAL_F64,
        Precision::F32 => LOCAL_F32,
        Precision::F16 => LOCAL_F16,
    };
    by_variant.max(by_precision)
}

/// The local error a launch of `stage` on `route` may have against the f64 reference on its own inputs.
pub fn local_bound(stage: Stage, route: Route) -> f64 {
    match stage {
        Stage::KvWrite | Stage::Embed => LOCAL_COPY,
        _ => route_envelope(route),
    }
}
