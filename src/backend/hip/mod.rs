//! The HIP backend (feature `hip`): hip-sys for the runtime, hiprtc for compiling kernels/ at run time.
//! Without the feature, [`open`] returns [`BackendError::NotCompiled`], so `--backend hip` fails with a
//! clear message and the default build never needs ROCm.

use super::{Backend, BackendError};
use std::sync::Arc;

/// Opens the first GPU as a backend.
pub fn open() -> Result<Arc<dyn Backend>, BackendError> {
    #[cfg(not(feature = "hip"))]
    {
        Err(BackendError::NotCompiled)
    }
    #[cfg(feature = "hip")]
    {
        Err(BackendError::NoDevice("the HIP backend is not built yet".into()))
    }
}
