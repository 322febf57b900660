//! The launch seam: the vocabulary every layer shares (phase, stage, route, params, tensors) and the one
//! call through which the engine runs every op.
//!
//! Why one seam: greta can only record, replay and diff what it can see. If the engine computed anything
//! outside `Launcher::launch`, a recording would miss it and a replay could not reproduce it. So the engine
//! describes each op as (phase, stage, layer, route, inputs, params), the launcher picks the backend kernel,
//! and an optional observer (the recorder) sees the inputs before and the outputs after the kernel runs.
//!
//! ```
//! use greta::launch::{Stage, Phase};
//! assert_eq!(Stage::Pv.name(), "pv");
//! assert_eq!("decode3".parse::<Phase>().unwrap(), Phase::Decode(3));
//! ```

mod backend;
mod foreign;
mod gather;
pub mod heads;
pub mod host_buffers;
mod launcher;
pub(crate) mod names;
mod params;
pub mod profile;
mod route;
mod stage;
mod tensor;

pub use backend::{Backend, BackendError};
pub use foreign::{Foreign, ForeignLaunch};
pub use gather::{GatherLayout, gather_layout, gather_rows_host};
pub use launcher::{LaunchError, LaunchInfo, LaunchObserver, Launcher, ObserverError, OutputHook};
pub use params::{Params, ROPE_NEOX, ROPE_NORM, float_text, same_float};
pub use route::{OpFamily, Precision, Route, RouteError, RouteMode, RoutePolicy, Variant};
pub use stage::{Phase, Stage};
pub use tensor::{
    Bytes, DType, DeviceBuffer, Origin, PendingBytes, PendingDigest, Tensor, TensorData,
    known_digests, next_id,
};
