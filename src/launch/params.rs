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

/// A float param as it was given: the shortest text that round-trips the value, read as an f32 when the
/// value is exactly one (model metadata stores eps and rope theta as f32: `1e-5`, not the widened
/// `9.999999747378752e-6`), else as an f64.
///
/// ```
/// use greta::launch::float_text;
/// assert_eq!(float_text(f64::from(1e-5f32)), "1e-5");
/// assert_eq!(float_text(1e-6), "1e-6");
/// assert_eq!(float_text(1.0000000000000002e-6), "1.0000000000000002e-6");
/// ```
pub fn float_text(x: f64) -> String {
    if x.is_finite() && f64::from(x as f32) == x {
        format!("{:e}", x as f32)
    } else {
        format!("{x:e}")
    }
}

/// The same scalar given once as an f32 and once as an f64 (greta widens the f32 it read from the model;
/// another engine may pass the decimal it was configured with): equal when their bits are, or when one is
/// exactly an f32 and the other rounds to it.
pub fn same_float(a: f64, b: f64) -> bool {
    let is_f32 = |x: f64| f64::from(x as f32) == x;
    a.to_bits() == b.to_bits()
        || ((is_f32(a) || is_f32(b)) && (a as f32).to_bits() == (b as f32).to_bits())
}
