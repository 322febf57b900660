//! greta's integration tests: one binary, one module per area.

mod cli;
mod engine;
mod gguf;
mod record_replay;
mod tape;
mod tokenizer;
mod util;
