//! Backends: where kernels run. The CPU reference is the first implementation; the HIP backend (feature
//! `hip`) is the second. A backend is a pure function from (stage, route, params, inputs) to outputs, which
//! is what makes any recorded launch replayable in isolation.

pub mod contract;
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
    fn execute(
        &self,
        stage: Stage,
        route: Route,
        params: &Params,
        inputs: &[&Tensor],
    ) -> Result<Vec<Tensor>, BackendError>;
    /// Copies row ranges of 2-d tensors into one new tensor: `parts` are (tensor, first row, rows), all
    /// of one dtype and row width. Data movement, not computation: the engine uses it to view the KV cache
    /// and to take prefill's last row. The default works on host tensors; GPU backends copy on the device.
    fn gather_rows(&self, parts: &[(&Tensor, usize, usize)]) -> Result<Tensor, BackendError> {
        gather_rows_host(parts)
    }

    /// Hashes of the kernel sources in use (empty for the CPU), for the tape header.
    fn kernel_hashes(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// [`Backend::gather_rows`] on host tensors.
pub fn gather_rows_host(parts: &[(&Tensor, usize, usize)]) -> Result<Tensor, BackendError> {
    let g = contract::gather_layout(parts)?;
    let mut bytes = Vec::with_capacity(g.rows * g.row_bytes);
    for (t, r0, n) in parts {
        let b = t
            .to_host_bytes()
            .map_err(|e| BackendError::Device(format!("gather_rows: {e}")))?;
        bytes.extend_from_slice(&b[r0 * g.row_bytes..(r0 + n) * g.row_bytes]);
    }
    Ok(Tensor::from_le_bytes(
        g.dtype,
        vec![g.rows, g.width],
        bytes,
        crate::launch::Origin::Value,
    ))
}
