//! Launches recorded by another engine (open capture, issue 9): what greta keeps beside its own vocabulary.
//!
//! A foreign engine names its launches with greta's phase/layer/stage wherever it can, but its kernels are
//! its own. [`Foreign`] keeps what greta's fixed types cannot hold: the stage name as the engine gave it
//! (a greta stage name, or a free-form one recorded as [`Stage::Other`](super::Stage::Other)), the
//! engine's kernel name (the route that ran; greta's `Route` says [`Variant::Engine`](super::Variant::Engine)),
//! and every scalar parameter by name (the ones greta knows are also mapped onto [`Params`](super::Params)).
//!
//! ```
//! use greta::launch::Foreign;
//! let f = Foreign { stage: "rope_yarn".into(), route: "my_rope_kernel".into(), params: vec![("pos".into(), 3.0)], op: Some("rope".into()) };
//! assert_eq!(f.param("pos"), Some(3.0));
//! ```

use serde::{Deserialize, Serialize};

/// What a foreign launch says beyond greta's vocabulary. Stored on the tape in the launch's begin record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Foreign {
    /// The stage name the engine gave: a greta stage name, or a free-form one.
    pub stage: String,
    /// The engine's own kernel name and variant (free text): the route that ran.
    pub route: String,
    /// Every scalar parameter as given, by name, in the order given.
    pub params: Vec<(String, f64)>,
    /// The op the engine named for the launch (format version 5; docs/OPS.md): what maths it does,
    /// when the stage does not say (a free-form stage such as `attn_q_norm` computing `rms_norm`).
    /// None: the op follows from the stage, if greta knows it.
    pub op: Option<String>,
}

impl Foreign {
    /// The value of parameter `name`, if given.
    pub fn param(&self, name: &str) -> Option<f64> {
        self.params.iter().find(|(k, _)| k == name).map(|&(_, v)| v)
    }
}

/// A foreign launch as handed to the recorder: the tape part plus the tensors' role names.
#[derive(Clone, Debug, PartialEq)]
pub struct ForeignLaunch {
    /// Stored on the tape.
    pub foreign: Foreign,
    /// Role name of each input, in order.
    pub input_roles: Vec<String>,
    /// Role name of each output, in order.
    pub output_roles: Vec<String>,
}
