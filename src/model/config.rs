//! Llama-family hyper-parameters from GGUF metadata, validated against the file's tensors.
//!
//! Keys follow llama.cpp's naming (`{arch}.block_count`, `{arch}.attention.head_count`, ...). The
//! architecture (`general.architecture`: llama, qwen2, qwen3, gemma3) says what the forward pass does per
//! layer ([`Arch`], `model::arch`); any other is refused by name, since running it as llama would compute
//! the wrong maths silently. Validation checks
//! every tensor the forward pass reads for presence, shape and a dequantisable dtype before any work, so
//! a broken file fails at load with the tensor's name instead of deep inside a layer.
//!
//! ```no_run
//! # fn main() -> Result<(), greta::model::gguf::GgufError> {
//! use greta::model::{config::LlamaConfig, gguf::Gguf};
//! let g = Gguf::open(std::path::Path::new("model.gguf"))?;
//! let cfg = LlamaConfig::from_gguf(&g)?;
//! println!("{} layers, dim {}", cfg.n_layers, cfg.dim);
//! # Ok(()) }
//! ```

pub use super::arch::{Arch, Family, Ffn, LayerAttn};
use super::error::GgufError;
use super::gguf::{Gguf, TensorInfo};
use crate::launch::DType;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of a llama-family model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// `general.architecture`.
    pub arch: String,
    /// What the forward pass does per layer ([`Arch`]).
    pub spec: Arch,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Embedding width.
    pub dim: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_heads`).
    pub n_kv_heads: usize,
    /// Per-head width: `{arch}.attention.key_length`, else `dim / n_heads`.
    pub head_dim: usize,
    /// FFN hidden width.
    pub ffn_dim: usize,
    /// Vocabulary size (rows of `token_embd.weight`).
    pub vocab: usize,
    /// Trained context length.
    pub ctx_len: usize,
    /// RoPE base frequency, widened exactly from the file's f32.
    pub rope_theta: f64,
    /// Dimensions of each head that RoPE rotates.
    pub rope_dim: usize,
    /// RMSNorm epsilon, widened exactly from the file's f32.
    pub eps: f64,
    /// True when the file has no `output.weight` and lm_head reuses `token_embd.weight`.
    pub tied_embeddings: bool,
}

/// The per-layer weight names, in forward-pass order, without the `blk.N.` prefix.
pub const LAYER_TENSORS: [&str; 9] = [
    "attn_norm.weight",
    "attn_q.weight",
    "attn_k.weight",
    "attn_v.weight",
    "attn_output.weight",
    "ffn_norm.weight",
    "ffn_gate.weight",
    "ffn_up.weight",
    "ffn_down.weight",
];

impl LlamaConfig {
    /// Reads and validates the configuration of a llama GGUF.
    pub fn from_gguf(g: &Gguf) -> Result<LlamaConfig, GgufError> {
        let spec = Arch::from_gguf(g)?;
        let arch = g.get_str("general.architecture")?.to_string();
        let key = |k: &str| format!("{arch}.{k}");
        let count = |k: &str| -> Result<usize, GgufError> { Ok(g.get_u32(&key(k))? as usize) };
        let opt_count = |k: &str| -> Result<Option<usize>, GgufError> {
            if g.get(&key(k)).is_some() {
                count(k).map(Some)
            } else {
                Ok(None)
            }
        };
        let n_layers = count("block_count")?;
        // Metadata is checked against the tensor table before anything is sized by it (issue 14: a
        // 66 KB file claiming 2^32-1 blocks grew past 3.9 GB listing the tensors it should have).
        let n_tensors = g.tensors.len();
        if n_layers.saturating_mul(LAYER_TENSORS.len()) > n_tensors {
            return Err(GgufError::BadConfig(format!(
                "{} = {n_layers}, but the tensor table holds only {n_tensors} tensors ({} a layer)",
                key("block_count"),
                LAYER_TENSORS.len()
            )));
        }
        let dim = count("embedding_length")?;
        let n_heads = count("attention.head_count")?;
        let n_kv_heads = opt_count("attention.head_count_kv")?.unwrap_or(n_heads);
        let ffn_dim = count("feed_forward_length")?;
        let ctx_len = count("context_length")?;
        let rope_theta = if g.get(&key("rope.freq_base")).is_some() {
            g.get_f64(&key("rope.freq_base"))?
        } else {
            10_000.0
        };
        let eps = g.get_f64(&key("attention.layer_norm_rms_epsilon"))?;
        let bad = |what: String| GgufError::BadConfig(what);
        if n_layers == 0 || dim == 0 || n_heads == 0 || n_kv_heads == 0 || ffn_dim == 0 {
            return Err(bad(format!(
                "zero size: layers {n_layers}, dim {dim}, heads {n_heads}, kv heads {n_kv_heads}, ffn {ffn_dim}"
            )));
        }
        if n_heads % n_kv_heads != 0 {
            return Err(bad(format!(
                "{n_heads} heads are not divisible by {n_kv_heads} kv heads"
            )));
        }
        let head_dim = match opt_count("attention.key_length")? {
            Some(k) => k,
            None if dim % n_heads == 0 => dim / n_heads,
            None => {
                return Err(bad(format!(
                    "dim {dim} is not divisible by {n_heads} heads"
                )));
            }
        };
        if let Some(v) = opt_count("attention.value_length")? {
            if v != head_dim {
                return Err(bad(format!(
                    "value length {v} differs from key length {head_dim}"
                )));
            }
        }
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(bad(format!("head dim {head_dim} is zero or odd")));
        }
        let rope_dim = opt_count("rope.dimension_count")?.unwrap_or(head_dim);
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(bad(format!(
                "rope dimension {rope_dim} is odd or above head dim {head_dim}"
            )));
        }
        if !(rope_theta.is_finite() && rope_theta > 0.0 && eps.is_finite() && eps > 0.0) {
            return Err(bad(format!(
                "rope theta {rope_theta} and eps {eps} must be finite and positive"
            )));
        }
        let embd = g
            .tensor_info("token_embd.weight")
            .ok_or_else(|| GgufError::MissingTensor("token_embd.weight".into()))?;
        let vocab = match opt_count("vocab_size")? {
            Some(v) => v,
            None => match g.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
                Some(t) => t.len(),
                None => embd.dims.get(1).map_or(0, |&d| d as usize),
            },
        };
        let cfg = LlamaConfig {
            arch,
            spec,
            n_layers,
            dim,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim,
            vocab,
            ctx_len,
            rope_theta,
            rope_dim,
            eps,
            tied_embeddings: g.tensor_info("output.weight").is_none(),
        };
        cfg.validate_tensors(g)?;
        Ok(cfg)
    }

    /// Width of the key/value projections, `n_kv_heads * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Width of the query projection (and o_proj's input), `n_heads * head_dim`.
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Every tensor the forward pass reads, with its expected `ne` dims (contiguous first).
    pub fn expected_tensors(&self) -> Vec<(String, Vec<u64>)> {
        let (d, q, kv, f, v, hd) = (
            self.dim as u64,
            self.q_dim() as u64,
            self.kv_dim() as u64,
            self.ffn_dim as u64,
            self.vocab as u64,
            self.head_dim as u64,
        );
        let mut t = vec![
            ("token_embd.weight".to_string(), vec![d, v]),
            ("output_norm.weight".to_string(), vec![d]),
        ];
        if !self.tied_embeddings {
            t.push(("output.weight".to_string(), vec![d, v]));
        }
        for l in 0..self.n_layers {
            let dims: [Vec<u64>; 9] = [
                vec![d],
                vec![d, q],
                vec![d, kv],
                vec![d, kv],
                vec![q, d],
                vec![d],
                vec![d, f],
                vec![d, f],
                vec![f, d],
            ];
            for (name, dims) in LAYER_TENSORS.iter().zip(dims) {
                t.push((format!("blk.{l}.{name}"), dims));
            }
            for (name, dims) in self.extra_layer_tensors(q, kv, hd, d) {
                t.push((format!("blk.{l}.{name}"), dims));
            }
        }
        t
    }

    /// The per-layer tensors of the architecture beyond llama's ([`LAYER_TENSORS`]), with their dims.
    fn extra_layer_tensors(
        &self,
        q: u64,
        kv: u64,
        hd: u64,
        d: u64,
    ) -> Vec<(&'static str, Vec<u64>)> {
        let mut t = Vec::new();
        if self.spec.qkv_bias {
            t.push(("attn_q.bias", vec![q]));
            t.push(("attn_k.bias", vec![kv]));
            t.push(("attn_v.bias", vec![kv]));
        }
        if self.spec.qk_norm {
            t.push(("attn_q_norm.weight", vec![hd]));
            t.push(("attn_k_norm.weight", vec![hd]));
        }
        if self.spec.post_norms {
            t.push(("post_attention_norm.weight", vec![d]));
            t.push(("post_ffw_norm.weight", vec![d]));
        }
        t
    }

    /// Checks presence, shape and dtype of every tensor the forward pass reads.
    pub fn validate_tensors(&self, g: &Gguf) -> Result<(), GgufError> {
        for (name, dims) in self.expected_tensors() {
            let t = g
                .tensor_info(&name)
                .ok_or_else(|| GgufError::MissingTensor(name.clone()))?;
            check_tensor(t, &dims)?;
        }
        Ok(())
    }
}

fn check_tensor(t: &TensorInfo, dims: &[u64]) -> Result<(), GgufError> {
    // A trailing dimension of 1 is the same shape (some converters write vectors as [n, 1]).
    let mut found: &[u64] = &t.dims;
    while found.len() > dims.len() && found.last() == Some(&1) {
        found = &found[..found.len() - 1];
    }
    if found != dims {
        return Err(GgufError::BadTensor {
            tensor: t.name.clone(),
            what: format!("dims {:?}, expected {dims:?}", t.dims),
        });
    }
    let is_vector = dims.len() == 1;
    if is_vector && t.dtype != DType::F32 {
        let what = if t.name.ends_with(".bias") {
            "bias"
        } else {
            "norm weight"
        };
        return Err(GgufError::BadTensor {
            tensor: t.name.clone(),
            what: format!("{what} is {}, expected f32", t.dtype),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::synth::{Preset, generate};
    use crate::model::value::Value;
    use crate::model::writer::GgufWriter;

    /// The tiny synthetic model with some metadata replaced or removed (`None`).
    fn tiny_with(edits: &[(&str, Option<Value>)]) -> Result<LlamaConfig, GgufError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        generate(Preset::Tiny, DType::F32, 1, &path).unwrap();
        let g = Gguf::open(&path).unwrap();
        let mut w = GgufWriter::new();
        for (k, v) in &g.metadata {
            match edits.iter().find(|(e, _)| e == k) {
                Some((_, Some(nv))) => w.add_metadata(k, nv.clone()),
                Some((_, None)) => &mut w,
                None => w.add_metadata(k, v.clone()),
            };
        }
        for t in &g.tensors {
            w.add_tensor(
                &t.name,
                t.dims.clone(),
                t.dtype,
                g.tensor_bytes(&t.name).unwrap().to_vec(),
            );
        }
        let out = dir.path().join("edited.gguf");
        w.write(&out).unwrap();
        LlamaConfig::from_gguf(&Gguf::open(&out).unwrap())
    }

    #[test]
    fn defaults_apply_when_optional_keys_are_absent() {
        let c = tiny_with(&[
            ("llama.attention.head_count_kv", None),
            ("llama.rope.freq_base", None),
            ("llama.rope.dimension_count", None),
            ("llama.vocab_size", None),
        ]);
        // Without head_count_kv the kv heads default to the query heads, so attn_k no longer fits.
        assert!(
            matches!(c, Err(GgufError::BadTensor { tensor, .. }) if tensor == "blk.0.attn_k.weight")
        );
        let c = tiny_with(&[("llama.rope.freq_base", None), ("llama.vocab_size", None)]).unwrap();
        assert_eq!((c.rope_theta, c.vocab, c.rope_dim), (10_000.0, 300, 16));
    }

    #[test]
    fn bad_metadata_is_named() {
        let c = tiny_with(&[("llama.block_count", None)]);
        assert!(matches!(c, Err(GgufError::MissingKey(k)) if k == "llama.block_count"));
        let c = tiny_with(&[("llama.attention.head_count_kv", Some(Value::U32(3)))]);
        assert!(matches!(c, Err(GgufError::BadConfig(_))));
        let c = tiny_with(&[("llama.embedding_length", Some(Value::String("64".into())))]);
        assert!(
            matches!(c, Err(GgufError::WrongType { key, .. }) if key == "llama.embedding_length")
        );
    }
}
