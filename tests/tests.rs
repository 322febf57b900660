//! greta's integration tests: one binary, one module per area.

mod async_copy;
mod attention;
mod capture;
mod check;
mod cli;
mod diagnosis;
mod engine;
mod gguf;
mod gpu;
mod layers;
mod ops;
mod plugin;
mod record_replay;
mod tape;
mod tokenizer;
mod torture;
mod util;
mod wload;
