//! Replay: re-execute recorded launches in isolation from their recorded inputs, on any backend and route,
//! and compare with the recorded outputs; the f64 reference on the same inputs gives a launch's local
//! error, an f64 run of the whole model its inherited error.
//!
//! The pieces diff and inspect use too (resolving inputs, re-executing a launch, sub-stages, per-head
//! figures, layout sanity) live in [`crate::analysis`]; this module holds what only a replay report
//! needs, and imports neither diff nor inspect.

pub mod foreign;
pub mod inherited;
pub mod plugin;
mod plugin_run;
pub mod report;

pub use plugin_run::plugin_cell;
pub use report::{ReplayOptions, Row, replay_one};
