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
    /// Attention score scale (1/sqrt(head_dim)); embed_scale: the factor on the embedding rows.
    pub scale: f64,
    /// Key block size of the fused attention route (flash-decoding split); 0 when unused.
    pub kv_block: u32,
    // Format 5 (issue 29): appended; versions 1-4 read through `tape::v4::ParamsV4`.
    /// RoPE mode, GGML's numbering: [`ROPE_NORM`] (0, adjacent pairs: llama) or [`ROPE_NEOX`] (2, pairs
    /// `j, j + rope_dim/2`: Qwen, Gemma).
    pub rope_mode: u32,
    /// Sliding attention window (qk, attn): the row at position p sees keys `p-window+1 ..= p`; 0: all
    /// earlier keys (causal only).
    pub window: u32,
}

/// [`Params::rope_mode`] of llama.cpp's `LLAMA_ROPE_TYPE_NORM`.
pub const ROPE_NORM: u32 = 0;
/// [`Params::rope_mode`] of llama.cpp's `LLAMA_ROPE_TYPE_NEOX` (`GGML_ROPE_TYPE_NEOX`).
pub const ROPE_NEOX: u32 = 2;

impl Params {
    /// The first key position the row at `pos` sees: `pos + 1 - window` with a window, else 0.
    pub fn first_key(&self, pos: usize) -> usize {
        match self.window {
            0 => 0,
            w => (pos + 1).saturating_sub(w as usize),
        }
    }
}
