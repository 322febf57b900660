//! A foreign launch as the caller describes it: names, parameters, tensors.

use super::CaptureError;
use crate::launch::{DType, Params, Phase, Stage};

/// Phase, layer, stage, route and scalar parameters of one foreign launch.
#[derive(Clone, Debug)]
pub struct LaunchDesc {
    /// Prefill or decode step k.
    pub phase: Phase,
    /// Layer, None for global stages.
    pub layer: Option<u32>,
    /// A greta stage name (`q_proj`, `attn_norm`, ...) or a free-form one.
    pub stage: String,
    /// The engine's kernel name and variant (free text).
    pub route: String,
    /// Scalar parameters by name. Names greta knows (`rows`, `pos`, `n_heads`, `n_kv_heads`,
    /// `head_dim`, `rope_dim`, `kv_block`: non-negative integers; `rope_theta`, `eps`, `scale`) also fill
    /// greta's [`Params`] so its reference can run the launch.
    pub params: Vec<(String, f64)>,
    /// The op the launch computes (docs/OPS.md), when its stage does not say: `rms_norm` for a free-form
    /// `attn_q_norm`. None: the stage's op, if greta knows the stage. An op greta does not know is kept
    /// and listed as unjudged; a known op's contract is enforced.
    pub op: Option<String>,
}

impl LaunchDesc {
    /// A launch description without parameters.
    pub fn new(phase: Phase, layer: Option<u32>, stage: &str, route: &str) -> LaunchDesc {
        LaunchDesc {
            phase,
            layer,
            stage: stage.to_string(),
            route: route.to_string(),
            params: Vec::new(),
            op: None,
        }
    }

    /// Names the op the launch computes.
    pub fn op(mut self, op: &str) -> LaunchDesc {
        self.op = Some(op.to_string());
        self
    }

    /// Adds a parameter.
    pub fn param(mut self, name: &str, value: f64) -> LaunchDesc {
        self.params.push((name.to_string(), value));
        self
    }

    /// greta's stage for the name: a known stage, else [`Stage::Other`].
    pub fn greta_stage(&self) -> Stage {
        self.stage.parse().unwrap_or(Stage::Other)
    }

    /// greta's [`Params`] from the named parameters (`rows` defaults to `rows`).
    pub(crate) fn greta_params(&self, rows: usize) -> Result<Params, CaptureError> {
        let mut p = Params {
            rows: u32::try_from(rows).unwrap_or(u32::MAX),
            ..Params::default()
        };
        for (k, v) in &self.params {
            if !v.is_finite() {
                return Err(CaptureError::InvalidArgument(format!(
                    "parameter `{k}` is {v}"
                )));
            }
            let int = || -> Result<u32, CaptureError> {
                if *v < 0.0 || v.fract() != 0.0 || *v > u32::MAX as f64 {
                    return Err(CaptureError::InvalidArgument(format!(
                        "parameter `{k}` must be a non-negative integer below 2^32, got {v}"
                    )));
                }
                Ok(*v as u32)
            };
            match k.as_str() {
                "rows" => p.rows = int()?,
                "pos" => p.pos = int()?,
                "n_heads" => p.n_heads = int()?,
                "n_kv_heads" => p.n_kv_heads = int()?,
                "head_dim" => p.head_dim = int()?,
                "rope_dim" => p.rope_dim = int()?,
                "kv_block" => p.kv_block = int()?,
                "rope_theta" => p.rope_theta = *v,
                "eps" => p.eps = *v,
                "scale" => p.scale = *v,
                _ => {}
            }
        }
        Ok(p)
    }
}

/// An input tensor of a foreign launch.
#[derive(Clone, Debug)]
pub enum TensorIn {
    /// Host bytes (little-endian, row-major) with dtype and shape; copied by the call.
    Host {
        /// Element type (GGML block types allowed: the bytes are whole blocks).
        dtype: DType,
        /// Shape, outermost first.
        shape: Vec<usize>,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A model weight by GGUF tensor name, read from the file the header names (never copied).
    Weight(String),
    /// The unchanged output of an earlier launch, by the id its `end` returned (never copied again).
    Id(u64),
}

impl TensorIn {
    /// Host bytes.
    pub fn host(dtype: DType, shape: Vec<usize>, bytes: Vec<u8>) -> TensorIn {
        TensorIn::Host {
            dtype,
            shape,
            bytes,
        }
    }
}

/// An output tensor of a foreign launch.
#[derive(Clone, Debug)]
pub struct TensorOut {
    /// Element type.
    pub dtype: DType,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// The bytes (little-endian, row-major); copied by the call.
    pub bytes: Vec<u8>,
    /// The id later inputs use for it; greta assigns one (from [`super::FIRST_AUTO_ID`] up) when None.
    /// A caller-chosen id must be below [`super::FIRST_AUTO_ID`]; reusing one re-points it.
    pub id: Option<u64>,
}

impl TensorOut {
    /// An output with a greta-assigned id.
    pub fn new(dtype: DType, shape: Vec<usize>, bytes: Vec<u8>) -> TensorOut {
        TensorOut {
            dtype,
            shape,
            bytes,
            id: None,
        }
    }
}

/// Checks that `bytes` holds exactly `shape` elements of `dtype`.
pub(crate) fn check_len(
    role: &str,
    dtype: DType,
    shape: &[usize],
    bytes: usize,
) -> Result<(), CaptureError> {
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| {
            CaptureError::InvalidArgument(format!("`{role}`: shape {shape:?} overflows"))
        })?;
    match dtype.bytes_for(n) {
        Some(want) if want == bytes => Ok(()),
        Some(want) => Err(CaptureError::InvalidArgument(format!(
            "`{role}`: {bytes} bytes given, {dtype} {shape:?} needs {want}"
        ))),
        None => Err(CaptureError::InvalidArgument(format!(
            "`{role}`: {n} elements is not a whole number of {dtype} blocks"
        ))),
    }
}
