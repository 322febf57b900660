//! Ops: what maths a launch does, beside its stage (where it sits in the model).
//!
//! greta's first vocabulary was one model family's stage list (`q_proj`, `rope_k`, `swiglu`, ...), and its
//! f64 reference was each route's own kernel run in f64 — so a fused-attention bug that the route's
//! algorithm shares (online softmax, key blocks) was repeated by the "reference" (issue 28). This module
//! is the other half of the design (DESIGN.md, "Ops and stages"): the ~30 ops decoder models are built
//! from, each with
//!
//! - a **contract** ([`Spec`]): input roles (required or optional), the element types each takes, the
//!   shapes they must have, the scalar params it requires and the ones it defaults (documented), checked
//!   by [`check`] before anything runs, so a launch that does not say what it computes is refused rather
//!   than judged against a silent default;
//! - an **f64 reference kernel** ([`reference`]): the textbook formula in the plainest loop, computed on
//!   f64 values, sharing no code and no algorithm with any route it judges (no online softmax, no key
//!   blocks, no fused shortcut). It imports nothing from `backend/`; the only shared code is the GGUF
//!   block formats' definition (`model::quant`), which is what the weights *are*, checked bit for bit
//!   against gguf-py.
//!
//! greta's own llama stages map onto ops in [`stages`]; other engines name the op of each launch
//! (capture API) or a greta stage that maps onto one. The contract tables in docs/OPS.md are generated
//! from [`Spec`] ([`table::markdown`]); a test fails when they drift.
//!
//! ```
//! use greta::launch::Tensor;
//! use greta::ops::{Op, OpArgs, reference};
//! let mut a = OpArgs::new(Op::RmsNorm);
//! a.input("x", Tensor::f32(vec![1, 2], vec![3.0, 4.0]));
//! a.param("eps", 0.0);
//! let out = reference(&a).unwrap();
//! let y = out[0].as_f64().unwrap();
//! assert!((y[0] - 3.0 / (12.5f64).sqrt()).abs() < 1e-15);
//! ```

mod args;
mod contract;
pub mod reference;
pub mod stages;
pub mod table;
mod values;
mod vocab;

pub use args::OpArgs;
pub use contract::{ContractError, check, check_declared};
pub use reference::reference;
pub use vocab::{Kinds, Op, ParamSpec, RoleSpec, Spec};

/// Why an op could not be judged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    /// The launch does not fit the op's contract.
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// The values cannot be computed (e.g. an id out of the table's range).
    #[error("{op}: {what}")]
    Value {
        /// The op.
        op: &'static str,
        /// What is wrong.
        what: String,
    },
}
