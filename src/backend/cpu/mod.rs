//! The CPU reference backend: every stage of docs/STAGES.md on two route families, `f64` (the reference:
//! weights dequantised, all arithmetic and accumulation in f64) and `f32` (the fast path).
//!
//! Determinism: each output element is computed by exactly one task with a fixed reduction order (see
//! [`dot`]), so the bits do not depend on the thread count; the reductions use explicit lanes and no
//! fused multiply-add, so they do not depend on which SIMD extensions the x86-64 has either. Transcendentals
//! come from `libm` (a pure-Rust port of musl's libm), not the platform's C library, for the same reason.
//!
//! ```
//! use greta::backend::{Backend, cpu::CpuBackend};
//! use greta::launch::{Params, Precision, Route, Stage, Tensor, Variant};
//! let cpu = CpuBackend::new(1);
//! let x = Tensor::f32(vec![1, 2], vec![1.0, 2.0]);
//! let r = Tensor::f32(vec![1, 2], vec![0.5, 0.25]);
//! let out = cpu.execute(Stage::AttnResidual, Route::new(Variant::Direct, Precision::F32), &Params::default(), &[&x, &r]).unwrap();
//! assert_eq!(out[0].as_f32().unwrap(), &[1.5, 2.25]);
//! ```

pub mod attention;
pub mod dot;
mod elementwise;
pub mod fast;
mod matmul;
pub mod q8;
mod values;

pub use attention::DEFAULT_KV_BLOCK;

use crate::backend::{Backend, BackendError};
use crate::launch::{Params, Precision, Route, Stage, Tensor, Variant};

/// The CPU backend, running its kernels on a private rayon pool of a fixed size.
pub struct CpuBackend {
    pool: rayon::ThreadPool,
    threads: usize,
}

impl CpuBackend {
    /// A backend on `threads` threads (0: one per core).
    pub fn new(threads: usize) -> CpuBackend {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("greta-cpu-{i}"))
            .build()
            .expect("building a rayon pool only fails when threads cannot be spawned");
        let threads = pool.current_num_threads();
        CpuBackend { pool, threads }
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

pub(crate) use crate::backend::contract::{bad, want};

/// The CPU's routes for `stage`: every variant of the stage on `f32` and on the `f64` reference, except
/// the engine-style matmuls (`gemv_q8`, `gemm_mma`), which are emulations of GPU kernels in `f32` only.
pub fn routes(stage: Stage) -> Vec<Route> {
    crate::backend::contract::routes(stage, &[Precision::F32, Precision::F64])
        .into_iter()
        .filter(|r| {
            r.precision == Precision::F32
                || !matches!(r.variant, Variant::GemvQ8 | Variant::GemmMma)
        })
        .collect()
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn device(&self) -> String {
        format!("cpu ({} threads, {})", self.threads, std::env::consts::ARCH)
    }

    fn routes(&self, stage: Stage) -> Vec<Route> {
        routes(stage)
    }

    fn execute(
        &self,
        stage: Stage,
        route: Route,
        params: &Params,
        inputs: &[&Tensor],
    ) -> Result<Vec<Tensor>, BackendError> {
        let unsupported = || BackendError::unsupported(self, stage, route);
        if !routes(stage).contains(&route) {
            return Err(unsupported());
        }
        let p = route.precision;
        self.pool.install(|| match stage {
            s if s.is_matmul() => {
                if !matches!(
                    route.variant,
                    Variant::Gemv
                        | Variant::GemmTiled
                        | Variant::GemmInvariant
                        | Variant::GemvQ8
                        | Variant::GemmMma
                ) {
                    return Err(unsupported());
                }
                matmul::matmul(stage, route.variant, p, inputs)
            }
            Stage::Qk | Stage::Softmax | Stage::Pv if route.variant == Variant::Manual => {
                attention::manual(stage, p, params, inputs)
            }
            Stage::Attn if route.variant == Variant::Fused => attention::fused(p, params, inputs),
            _ if route.variant != Variant::Direct => Err(unsupported()),
            Stage::Embed => elementwise::embed(p, inputs),
            Stage::EmbedScale => elementwise::scale(p, params, inputs),
            s if s.is_rms_norm() => elementwise::rmsnorm(stage, p, params, inputs),
            s if s.is_bias() => elementwise::bias(stage, p, inputs),
            Stage::Geglu => elementwise::geglu(p, inputs),
            Stage::RopeQ | Stage::RopeK => elementwise::rope(stage, p, params, inputs),
            Stage::KvWrite => elementwise::kv_write(inputs),
            Stage::AttnResidual | Stage::FfnResidual => elementwise::residual(stage, p, inputs),
            Stage::Swiglu => elementwise::swiglu(p, inputs),
            Stage::Argmax => elementwise::argmax(inputs),
            _ => Err(unsupported()),
        })
    }
}
