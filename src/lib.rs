//! greta: deterministic record/replay for LLM inference kernels.
//!
//! An inference run (prefill, then greedy decode) goes through one launch seam ([`launch::Launcher`]);
//! the recorder writes every launch's inputs, outputs, route and parameters to a tape ([`tape`]); any
//! launch can then be replayed in isolation on any backend or route and diffed bit for bit.
//!
//! Layers, top to bottom: `cli` → `engine` → `launch` → `backend` (cpu, hip); `record` → `tape`;
//! `replay` / `diff`; `model` (GGUF, dequantisation, tokenizer).
#![warn(missing_docs)]

pub mod backend;
pub mod capture;
pub mod check;
pub mod cli;
pub mod diff;
pub mod engine;
pub mod inspect;
pub mod launch;
pub mod model;
pub mod record;
pub mod replay;
pub mod tape;
