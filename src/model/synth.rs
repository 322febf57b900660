//! Deterministic synthetic llama models, written as real GGUF files.
//!
//! Why: tests and benchmarks need models of a real model's exact shape (to exercise the same kernel
//! routes and sizes) without downloading gigabytes, and CI needs a tiny one that runs in milliseconds.
//! Same preset, dtype and seed ⇒ the same bytes, on any machine and thread count.
//!
//! Weights are uniform random with standard deviation about `1/sqrt(in)` for matmuls (so activations
//! keep their scale through the layers), `0.1` for the embedding, and norm weights near 1 (always f32,
//! as llama.cpp stores them). With a K-quant dtype the mix mirrors llama.cpp's Q4_K_M: Q4_K for most
//! matrices, Q6_K for `ffn_down` and `output`. A tensor whose rows are not whole blocks of the dtype
//! (tiny's width 64 against Q4_K's 256) falls back to the nearest block-32 type, as llama.cpp does:
//! Q4_K → Q4_1, Q6_K → Q8_0. The file also carries a SmolLM2-style byte-level BPE vocabulary, merges and
//! ChatML template (see `synth_vocab`), so the engine can tokenize text.
//!
//! ```no_run
//! use greta::{launch::DType, model::synth::{generate, Preset}};
//! let cfg = generate(Preset::Tiny, DType::F32, 42, std::path::Path::new("tiny.gguf")).unwrap();
//! assert_eq!(cfg.n_layers, 2);
//! ```

use super::config::LlamaConfig;
use super::error::GgufError;
use super::synth_vocab::{BOS_ID, CHAT_TEMPLATE, EOS_ID, UNK_ID, vocab};
use super::synth_weights::{Fill, make_tensor};
use super::value::Value;
use super::writer::GgufWriter;
use crate::launch::DType;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A model shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preset {
    /// For unit tests: 2 layers, width 64, 4 heads (2 kv), FFN 128, vocab 300, context 256.
    Tiny,
    /// SmolLM2-135M's shape: 30 layers, width 576, 9 heads (3 kv), FFN 1536, vocab 49152, tied embeddings.
    Smollm2,
    /// Llama-3-8B's shape: 32 layers, width 4096, 32 heads (8 kv), FFN 14336, vocab 128256.
    Llama3_8b,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 3] = [Preset::Tiny, Preset::Smollm2, Preset::Llama3_8b];

    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Smollm2 => "smollm2",
            Preset::Llama3_8b => "llama3-8b",
        }
    }

    /// The hyper-parameters of this preset.
    pub fn config(self) -> LlamaConfig {
        let (n_layers, dim, n_heads, n_kv_heads, ffn_dim, vocab, ctx_len, rope_theta, tied) =
            match self {
                Preset::Tiny => (2, 64, 4, 2, 128, 300, 256, 10_000.0, true),
                Preset::Smollm2 => (30, 576, 9, 3, 1536, 49_152, 8192, 100_000.0, true),
                Preset::Llama3_8b => (32, 4096, 32, 8, 14_336, 128_256, 8192, 500_000.0, false),
            };
        let head_dim = dim / n_heads;
        LlamaConfig {
            arch: "llama".into(),
            n_layers,
            dim,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim,
            vocab,
            ctx_len,
            rope_theta,
            rope_dim: head_dim,
            // The file stores f32; the config holds the exact widening of what is stored.
            eps: f64::from(1e-5f32),
            tied_embeddings: tied,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Preset, String> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown preset `{s}` (tiny, smollm2, llama3-8b)"))
    }
}

/// llama.cpp's `general.file_type` (`llama_ftype`) for a weight dtype.
fn file_type(dtype: DType) -> u32 {
    match dtype {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::Q4_0 => 2,
        DType::Q4_1 => 3,
        DType::Q8_0 => 7,
        DType::Q4K => 15, // MOSTLY_Q4_K_M
        DType::Q6K => 18,
        DType::Q5_0 => 8,
        DType::Q5_1 => 9,
        DType::Q2K => 10,
        DType::Q3K => 12, // MOSTLY_Q3_K_M
        DType::Q5K => 17, // MOSTLY_Q5_K_M
        DType::IQ4NL => 25,
        DType::IQ4XS => 30,
        DType::BF16 => 32,
        DType::F64 | DType::I32 => 0,
    }
}

/// The dtype a matrix gets: the Q4_K_M mix for K-quants, then the block-32 fallback when the rows
/// (`cols` elements) are not whole blocks.
fn matrix_dtype(dtype: DType, role: &str, cols: usize) -> DType {
    let want = match dtype {
        DType::Q4K if role == "ffn_down.weight" || role == "output.weight" => DType::Q6K,
        d => d,
    };
    if cols % want.block().0 == 0 {
        return want;
    }
    // llama.cpp's fallbacks for the newer K-quants (llama-quant.cpp); Q4_K keeps Q4_1, from before
    // greta read Q5_0, so that existing synthetic models keep their bytes.
    let fallback = match want {
        DType::Q4K => DType::Q4_1,
        DType::Q5K => DType::Q5_1,
        DType::Q2K | DType::Q3K | DType::IQ4XS => DType::IQ4NL,
        _ => DType::Q8_0,
    };
    if cols % fallback.block().0 == 0 {
        fallback
    } else {
        DType::Q8_0
    }
}

/// Writes the synthetic model `preset` with matrices in `dtype` to `out`; returns its configuration.
pub fn generate(
    preset: Preset,
    dtype: DType,
    seed: u64,
    out: &Path,
) -> Result<LlamaConfig, GgufError> {
    if matches!(dtype, DType::F64 | DType::I32) {
        return Err(GgufError::Unwritable(format!(
            "{dtype} is not a weight dtype"
        )));
    }
    let cfg = preset.config();
    let mut w = GgufWriter::new();
    add_metadata(&mut w, preset, dtype, &cfg);
    let (d, kv, f, v) = (cfg.dim, cfg.kv_dim(), cfg.ffn_dim, cfg.vocab);
    let matrix =
        |w: &mut GgufWriter, name: String, role: &str, rows: usize, cols: usize, a: f32| {
            let dt = matrix_dtype(dtype, role, cols);
            let n = name.clone();
            let source = Box::new(move || make_tensor(seed, &n, dt, rows, cols, Fill::Uniform(a)));
            w.add_tensor_lazy(&name, vec![cols as u64, rows as u64], dt, source);
        };
    let norm = |w: &mut GgufWriter, name: String| {
        let bytes = make_tensor(seed, &name, DType::F32, 1, d, Fill::AroundOne(0.1));
        w.add_tensor(&name, vec![d as u64], DType::F32, bytes);
    };
    // Uniform in [-a, a] has standard deviation a/sqrt(3).
    let std_to_a = |std: f32| std * 3f32.sqrt();
    let inv_sqrt = |n: usize| 1.0 / (n as f32).sqrt();
    matrix(
        &mut w,
        "token_embd.weight".into(),
        "token_embd.weight",
        v,
        d,
        std_to_a(0.1),
    );
    for l in 0..cfg.n_layers {
        let b = |s: &str| format!("blk.{l}.{s}");
        norm(&mut w, b("attn_norm.weight"));
        matrix(
            &mut w,
            b("attn_q.weight"),
            "attn_q.weight",
            d,
            d,
            std_to_a(inv_sqrt(d)),
        );
        matrix(
            &mut w,
            b("attn_k.weight"),
            "attn_k.weight",
            kv,
            d,
            std_to_a(inv_sqrt(d)),
        );
        matrix(
            &mut w,
            b("attn_v.weight"),
            "attn_v.weight",
            kv,
            d,
            std_to_a(inv_sqrt(d)),
        );
        matrix(
            &mut w,
            b("attn_output.weight"),
            "attn_output.weight",
            d,
            d,
            std_to_a(inv_sqrt(d)),
        );
        norm(&mut w, b("ffn_norm.weight"));
        matrix(
            &mut w,
            b("ffn_gate.weight"),
            "ffn_gate.weight",
            f,
            d,
            std_to_a(inv_sqrt(d)),
        );
        matrix(
            &mut w,
            b("ffn_up.weight"),
            "ffn_up.weight",
            f,
            d,
            std_to_a(inv_sqrt(d)),
        );
        matrix(
            &mut w,
            b("ffn_down.weight"),
            "ffn_down.weight",
            d,
            f,
            std_to_a(inv_sqrt(f)),
        );
    }
    norm(&mut w, "output_norm.weight".into());
    if !cfg.tied_embeddings {
        matrix(
            &mut w,
            "output.weight".into(),
            "output.weight",
            v,
            d,
            std_to_a(inv_sqrt(d)),
        );
    }
    w.write(out)?;
    Ok(cfg)
}

fn add_metadata(w: &mut GgufWriter, preset: Preset, dtype: DType, cfg: &LlamaConfig) {
    let s = |x: &str| Value::String(x.to_string());
    let u = |x: usize| Value::U32(x as u32);
    let voc = vocab(cfg.vocab);
    w.add_metadata("general.architecture", s("llama"))
        .add_metadata("general.type", s("model"))
        .add_metadata(
            "general.name",
            s(&format!("greta synthetic {preset} {dtype}")),
        )
        .add_metadata("general.alignment", Value::U32(32))
        .add_metadata("general.file_type", Value::U32(file_type(dtype)))
        .add_metadata("general.quantization_version", Value::U32(2))
        .add_metadata("llama.block_count", u(cfg.n_layers))
        .add_metadata("llama.context_length", u(cfg.ctx_len))
        .add_metadata("llama.embedding_length", u(cfg.dim))
        .add_metadata("llama.feed_forward_length", u(cfg.ffn_dim))
        .add_metadata("llama.attention.head_count", u(cfg.n_heads))
        .add_metadata("llama.attention.head_count_kv", u(cfg.n_kv_heads))
        .add_metadata("llama.rope.freq_base", Value::F32(cfg.rope_theta as f32))
        .add_metadata(
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(cfg.eps as f32),
        )
        .add_metadata("llama.vocab_size", u(cfg.vocab))
        .add_metadata("llama.rope.dimension_count", u(cfg.rope_dim))
        .add_metadata("tokenizer.ggml.add_space_prefix", Value::Bool(false))
        .add_metadata("tokenizer.ggml.add_bos_token", Value::Bool(false))
        .add_metadata("tokenizer.ggml.model", s("gpt2"))
        .add_metadata("tokenizer.ggml.pre", s("smollm"))
        .add_metadata(
            "tokenizer.ggml.tokens",
            Value::Array(voc.tokens.into_iter().map(Value::String).collect()),
        )
        .add_metadata(
            "tokenizer.ggml.token_type",
            Value::Array(voc.token_type.into_iter().map(Value::I32).collect()),
        )
        .add_metadata(
            "tokenizer.ggml.merges",
            Value::Array(voc.merges.into_iter().map(Value::String).collect()),
        )
        .add_metadata("tokenizer.ggml.bos_token_id", Value::U32(BOS_ID))
        .add_metadata("tokenizer.ggml.eos_token_id", Value::U32(EOS_ID))
        .add_metadata("tokenizer.ggml.unknown_token_id", Value::U32(UNK_ID))
        .add_metadata("tokenizer.ggml.padding_token_id", Value::U32(EOS_ID))
        .add_metadata("tokenizer.chat_template", s(CHAT_TEMPLATE));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gguf::Gguf;

    #[test]
    fn presets_parse_and_are_consistent() {
        for p in Preset::ALL {
            assert_eq!(p.name().parse::<Preset>(), Ok(p));
            let c = p.config();
            assert_eq!(c.dim % c.n_heads, 0);
            assert_eq!(c.n_heads % c.n_kv_heads, 0);
        }
        assert!("gpt5".parse::<Preset>().is_err());
    }

    #[test]
    fn tiny_reads_back_with_its_config() {
        let dir = tempfile::tempdir().unwrap();
        for dtype in DType::WEIGHT_TYPES {
            let path = dir.path().join(format!("tiny-{dtype}.gguf"));
            let cfg = generate(Preset::Tiny, dtype, 1, &path).unwrap();
            let g = Gguf::open(&path).unwrap();
            assert_eq!(LlamaConfig::from_gguf(&g).unwrap(), cfg, "{dtype}");
            assert_eq!(g.get_str_array("tokenizer.ggml.tokens").unwrap().len(), 300);
            assert_eq!(
                g.tensor_info("blk.0.attn_norm.weight").unwrap().dtype,
                DType::F32
            );
        }
    }

    #[test]
    fn k_quants_use_the_q4_k_m_mix_with_fallbacks() {
        assert_eq!(matrix_dtype(DType::Q4K, "attn_q.weight", 4096), DType::Q4K);
        assert_eq!(
            matrix_dtype(DType::Q4K, "ffn_down.weight", 14336),
            DType::Q6K
        );
        assert_eq!(matrix_dtype(DType::Q4K, "attn_q.weight", 576), DType::Q4_1);
        assert_eq!(
            matrix_dtype(DType::Q4K, "ffn_down.weight", 128),
            DType::Q8_0
        );
        assert_eq!(
            matrix_dtype(DType::Q8_0, "ffn_down.weight", 64),
            DType::Q8_0
        );
    }
}
