//! Backends: where kernels run. The CPU reference is the first implementation; the HIP backend (feature
//! `hip`) is the second. A backend is a pure function from (stage, route, params, inputs) to outputs, which
//! is what makes any recorded launch replayable in isolation.

pub mod contract;
pub mod cpu;
pub mod hip;

pub use crate::launch::{Backend, BackendError, gather_rows_host};
