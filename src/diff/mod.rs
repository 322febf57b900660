//! Diffs: tape against tape (aligned by phase, layer and stage, hash fast path first), and prefill against
//! decode inside one tape (shape-aligned row slices). Both report where (phase, layer, stage, element) and
//! how much (ULP, max-abs, MAE), as a table or JSON, and can draw an SVG heatmap.

pub mod local;
pub mod params;
pub mod plot;
pub mod pvd;
pub mod significant;
pub mod substages;
pub mod tapes;
