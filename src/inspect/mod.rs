//! Looking into a tape: value statistics, .npy export, hash manifests, and the dataflow invariants that
//! `greta verify` checks beyond the tape's own hashes.

pub mod dataflow;
pub mod kv_writers;
pub mod manifest;
pub mod npy;
pub mod stats;
