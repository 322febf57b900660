//! Diffs: tape against tape (aligned by phase, layer and stage, hash fast path first), and prefill against
//! decode inside one tape (shape-aligned row slices). Both report where (phase, layer, stage, element) and
//! how much (ULP, max-abs, MAE), as a table or JSON, and can draw an SVG heatmap.

pub mod heads;
pub mod params;
pub mod plot;
pub mod pvd;
pub mod significant;
pub mod substages;
pub mod tapes;

// `diff::compare` (module and function) and its types, kept at their old paths; they live in
// `crate::analysis` so that replay can use them without importing diff.
pub use crate::analysis::compare;
pub use crate::analysis::{Compare, FirstDiff};
