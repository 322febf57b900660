//! The ground replay, diff and inspect stand on: where a recorded tensor's bytes come from ([`Source`]),
//! how its bytes decode into values ([`values`]), how two tensors are measured against each other
//! ([`compare`]), and how a hash is written ([`hex`]). Kept below those three so that each depends only
//! downward (docs/ARCHITECTURE.md); nothing here knows about replay, diffs or the CLI.

pub mod compare;
pub mod source;
pub mod values;

pub use crate::tape::hex;
pub use compare::{Compare, FirstDiff, compare};
pub use source::{Source, SourceError};
pub use values::values;
