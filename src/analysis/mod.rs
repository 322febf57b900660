//! The ground replay, diff and inspect stand on: where a recorded tensor's bytes come from ([`Source`]),
//! how its bytes decode into values ([`values`]), how two tensors are measured against each other
//! ([`compare`], per attention head: [`heads`]), how a recorded launch is re-executed ([`exec`]) and its
//! fused attention split into sub-stages ([`substage`]), whether a launch's layout makes sense at all
//! ([`sanity`]), and how a hash is written ([`hex`]). Kept below those three so that each depends only
//! downward (docs/ARCHITECTURE.md): replay, diff and inspect never import each other, and whatever two of
//! them share lives here. Nothing here knows about reports, tables or the CLI.
//!
//! ```
//! use greta::analysis::{compare, values};
//! use greta::launch::DType;
//! let a: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
//! assert_eq!(values(DType::F32, &a), Some(vec![1.0, 2.0]));
//! assert!(compare(DType::F32, &a, DType::F32, &a, &[2]).bit_exact);
//! ```

pub mod bounds;
pub mod compare;
pub mod exec;
pub mod heads;
pub mod reference;
pub mod sanity;
pub mod source;
pub mod substage;
pub mod values;

pub use crate::tape::hex;
pub use compare::{Compare, FirstDiff, compare};
pub use source::{Source, SourceError};
pub use values::values;
