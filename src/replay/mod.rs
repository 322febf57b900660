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
pub mod source;
pub mod substage;

pub use plugin_run::plugin_cell;
pub use report::{ReplayOptions, Row, replay_one};
pub use source::{Source, SourceError, hex};
