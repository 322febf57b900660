//! The backend interface: what the launcher calls to run a kernel. It lives here, in the ground floor,
//! because the launcher needs it and every backend implements it: backends (`crate::backend`) depend on
//! launch, never the other way round. `crate::backend::{Backend, BackendError}` re-export these names.

use super::gather::gather_rows_host;
use super::{Params, Route, Stage, Tensor};

/// A backend could not run a launch.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// This backend has no kernel for the stage on that route ([`Backend::routes`] lists those it has).
    #[error(
        "backend {backend} has no kernel for stage {stage} on route {route} (its routes for {stage}: {})",
        route_list(.supported)
    )]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// Stage.
        stage: Stage,
        /// Route.
        route: Route,
        /// The routes the backend has for the stage ([`Backend::routes`]).
        supported: Vec<Route>,
    },
    /// The stage, or this launch's form of it (NEOX rope, a sliding window), has a CPU kernel but no
    /// kernel on this backend yet (issue 29: Qwen and Gemma run on the CPU first).
    #[error(
        "{what}: unsupported on the {backend} backend yet (the CPU backend runs it: --backend cpu)"
    )]
    NotYet {
        /// Backend name.
        backend: &'static str,
        /// Stage.
        stage: Stage,
        /// What has no kernel (the stage, or the stage with the param that has none).
        what: String,
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

impl BackendError {
    /// The error for `route`, which is not among `backend.routes(stage)`.
    pub fn unsupported(backend: &dyn Backend, stage: Stage, route: Route) -> BackendError {
        BackendError::Unsupported {
            backend: backend.name(),
            stage,
            route,
            supported: backend.routes(stage),
        }
    }
}

fn route_list(routes: &[Route]) -> String {
    if routes.is_empty() {
        return "none".into();
    }
    routes
        .iter()
        .map(Route::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A place kernels run.
pub trait Backend: Send + Sync {
    /// Short name recorded on the tape (`cpu`, `hip`).
    fn name(&self) -> &'static str;
    /// Device description (CPU model and thread count, or GPU name/arch/driver).
    fn device(&self) -> String;
    /// The routes this backend has a kernel for on `stage`, in a fixed order. The one list of them:
    /// `execute` refuses every other route with [`BackendError::Unsupported`], and `--all-routes`, the GPU
    /// self-test and the error messages read it, so a new route is added here and in its kernel only.
    fn routes(&self, stage: Stage) -> Vec<Route>;
    /// Brings a model's weights to where the kernels read them before the first launch (a GPU uploads
    /// them; the CPU reads them in place). Without it they move on first use, inside the first launches.
    fn preload(&self, _weights: &[&Tensor]) -> Result<(), BackendError> {
        Ok(())
    }
    /// This backend's default variant for a launch of `stage` over `inputs`, when it has one (None: the
    /// policy's rule). Consulted only in the default route mode and only when no route is forced.
    fn preferred(&self, _stage: Stage, _inputs: &[&Tensor]) -> Option<super::Variant> {
        None
    }
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
