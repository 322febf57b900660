//! Scalar parameters of a launch: everything besides its tensors that a kernel needs to reproduce it.

use serde::{Deserialize, Serialize};

/// Scalar launch parameters. One struct for every stage so that the tape stores them uniformly; a stage
/// reads the fields it needs (documented per field) and the others stay at their defaults.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Params {
    /// Rows (tokens) in this launch.
    pub rows: u32,
    /// Position of the first row in the sequence (rope, kv_write, causal mask).
    pub pos: u32,
    /// Query heads (rope_q, attention).
    pub n_heads: u32,
    /// Key/value heads (rope_k, attention: grouped-query attention when fewer than n_heads).
    pub n_kv_heads: u32,
    /// Dimension of one head.
    pub head_dim: u32,
    /// How many leading dimensions of each head rope rotates (llama: all of them).
    pub rope_dim: u32,
    /// RoPE base frequency (theta), from the model metadata.
    pub rope_theta: f64,
    /// RMSNorm epsilon, from the model metadata.
    pub eps: f64,
    /// Attention score scale (1/sqrt(head_dim)).
    pub scale: f64,
    /// Key block size of the fused attention route (flash-decoding split); 0 when unused.
    pub kv_block: u32,
}
