//! greta: deterministic record/replay for LLM inference kernels.
//!
//! An inference run (prefill, then greedy decode) goes through one launch seam ([`launch::Launcher`]);
//! the recorder writes every launch's inputs, outputs, route and parameters to a tape ([`tape`]); any
//! launch can then be replayed in isolation on any backend or route and diffed bit for bit.
//!
//! Modules, top to bottom (imports point down, checked by tests/layers.rs; docs/ARCHITECTURE.md):
//! - [`cli`]: clap arguments and the commands;
//! - [`check`]: determinism runs and golden manifests;
//! - [`replay`], [`diff`], [`inspect`]: re-execution reports, comparisons (tape vs tape, prefill vs
//!   decode), and tape views (ls/show/verify/export); side by side, none imports another;
//! - [`analysis`]: what those three share: the launch [`analysis::Source`], value decoding, comparison
//!   metrics, per-head comparison, re-execution of one launch, fused-attention sub-stages, layout sanity;
//! - [`engine`]: the llama forward pass (prefill, decode, KV cache) through [`launch::Launcher`];
//!   [`capture`]: the front door for other engines' launches (C ABI in capi/, Python in python/);
//! - [`backend`] (cpu, hip): where kernels run; [`record`]: the recorder (a launch observer and its
//!   worker thread);
//! - [`ops`]: the op vocabulary (what maths a launch does), its contracts and f64 reference kernels,
//!   sharing no code with the backends' routes;
//! - [`model`] (GGUF, dequantisation, tokenizer) and [`tape`] (the file format);
//! - [`launch`]: the shared vocabulary (stages, routes, tensors, params), the `Backend` trait and the
//!   launcher.
#![deny(missing_docs)]

/// The lib's own tests allocate as the `greta` binary does (mimalloc, see `src/main.rs`), so benchmarks
/// among them (`record::throughput`) measure what ships.
#[cfg(test)]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod analysis;
pub mod backend;
pub mod capture;
pub mod check;
pub mod cli;
pub mod diff;
pub mod engine;
pub mod inspect;
pub mod launch;
pub mod model;
pub mod ops;
pub mod record;
pub mod replay;
pub mod tape;
