//! Backends: where kernels run. The CPU reference is the first implementation; the HIP backend (feature
//! `hip`) is the second. A backend is a pure function from (stage, route, params, inputs) to outputs, which
//! is what makes any recorded launch replayable in isolation.

pub mod cpu;
pub mod hip;

use crate::launch::{Params, Route, Stage, Tensor};

/// A backend could not run a launch.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// This backend has no kernel for the stage on that route.
    #[error("backend {backend} has no kernel for stage {stage} on route {route}")]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// Stage.
        stage: Stage,
        /// Route.
        route: Route,
    },
    /// Inputs are not what the stage needs (count, dtype or shape).
    #[error("bad inputs for {stage}: {what}")]
    BadInputs {
        /// Stage.
        stage: Stage,
        /// What is wrong.
        what: String,
    },
    /// The GPU backend was not compiled in.
    #[error("greta was not compiled with GPU support: rebuild with `cargo build --features hip`")]
    NotCompiled,
    /// No usable device.
    #[error("no GPU device: {0}")]
    NoDevice(String),
    /// A device or runtime error.
    #[error("device error: {0}")]
    Device(String),
}

/// A place kernels run.
pub trait Backend: Send + Sync {
    /// Short name recorded on the tape (`cpu`, `hip`).
    fn name(&self) -> &'static str;
    /// Device description (CPU model and thread count, or GPU name/arch/driver).
    fn device(&self) -> String;
    /// Runs one launch: `stage` on `route` with `params` over `inputs`, returning its outputs.
    fn execute(&self, stage: Stage, route: Route, params: &Params, inputs: &[&Tensor])
    -> Result<Vec<Tensor>, BackendError>;
    /// Hashes of the kernel sources in use (empty for the CPU), for the tape header.
    fn kernel_hashes(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}
