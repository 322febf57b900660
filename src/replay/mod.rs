//! Replay: re-execute recorded launches in isolation from their recorded inputs, on any backend and route,
//! and compare with the recorded outputs; the f64 reference on the same inputs gives a launch's local
//! error, an f64 run of the whole model its inherited error.

pub mod exec;
pub mod foreign;
pub mod inherited;
pub mod plugin;
mod plugin_run;
pub mod report;
pub mod sanity;
pub mod substage;

pub use plugin_run::plugin_cell;
pub use report::{ReplayOptions, Row, replay_one};
// Old paths, kept so callers of `replay::{Source, SourceError, hex}` still compile; new code imports
// them from `crate::analysis`.
pub use crate::analysis::{Source, SourceError, hex, source};
