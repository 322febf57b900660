//! GGUF reader, writer, dequantisation and synthetic models, end to end.

use greta::launch::DType;
use greta::model::config::LlamaConfig;
use greta::model::gguf::{Gguf, GgufError, Value, parse};
use greta::model::quant::dequantize_to_vec;
use greta::model::synth::{Preset, generate};
use greta::model::writer::GgufWriter;
use std::path::{Path, PathBuf};

/// The real SmolLM2-135M-Instruct Q4_1 file: `$GRETA_SMOLLM2`, else `.cache/models/` under the repo.
fn smollm2() -> Option<PathBuf> {
    let p = match std::env::var_os("GRETA_SMOLLM2") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping: SmolLM2 GGUF not found (set GRETA_SMOLLM2)");
        None
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dequant")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn dequant_fixtures_are_bit_exact_with_gguf_py() {
    for dtype in DType::WEIGHT_TYPES {
        let raw = fixture(&format!("{dtype}.bin"));
        let want: Vec<u32> = fixture(&format!("{dtype}.f32"))
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let got = dequantize_to_vec(dtype, &raw, want.len()).unwrap();
        let mismatches: Vec<_> = got
            .iter()
            .zip(&want)
            .enumerate()
            .filter(|(_, (g, w))| g.to_bits() != **w)
            .take(5)
            .collect();
        assert!(
            mismatches.is_empty(),
            "{dtype}: first mismatches (index, (got, want bits)): {mismatches:?}"
        );
    }
}

#[test]
fn smollm2_metadata_and_tensors() {
    let Some(path) = smollm2() else { return };
    let g = Gguf::open(&path).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.tensors.len(), 272);
    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(g.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(g.get_f32("llama.rope.freq_base").unwrap(), 100_000.0);
    assert_eq!(g.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(
        g.get_str_array("tokenizer.ggml.tokens").unwrap()[1],
        "<|im_start|>"
    );
    assert_eq!(
        g.get_i32_array("tokenizer.ggml.token_type").unwrap().len(),
        49_152
    );
    assert_eq!(g.get_str_array("tokenizer.ggml.merges").unwrap()[0], "Ġ t");
    assert!(matches!(g.get_u32("llama.nope"), Err(GgufError::MissingKey(k)) if k == "llama.nope"));
    assert!(matches!(
        g.get_u32("general.name"),
        Err(GgufError::WrongType {
            expected: "u32",
            found: "string",
            ..
        })
    ));
    let mut types = std::collections::BTreeMap::new();
    for t in &g.tensors {
        *types.entry(t.dtype.name()).or_insert(0) += 1;
    }
    assert_eq!(
        types,
        [("f32", 61), ("q4_1", 210), ("q8_0", 1)]
            .into_iter()
            .collect()
    );
    let e = g.tensor("token_embd.weight").unwrap();
    assert_eq!(e.shape, vec![49_152, 576]);
    assert_eq!(e.dtype, DType::Q8_0);
    assert_eq!(e.weight_name(), Some("token_embd.weight"));
    let n = g.tensor("output_norm.weight").unwrap();
    assert_eq!(n.as_f32().map(<[f32]>::len), Some(576));
}

/// The first rows of real SmolLM2 weights dequantise to what `gguf.quants.dequantize` gives: FNV-1a of
/// their little-endian f32 bytes, computed with gguf 0.19.0 on the first 8 rows.
#[test]
fn smollm2_dequant_matches_gguf_py() {
    let Some(path) = smollm2() else { return };
    let g = Gguf::open(&path).unwrap();
    let fnv = |b: &[u8]| {
        b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
            (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    for (name, want) in [
        ("token_embd.weight", 0x905a_6c28_3d4e_4168u64),
        ("blk.0.attn_q.weight", 0x53e6_8142_eec0_d9ca),
        ("blk.29.ffn_down.weight", 0x5a86_1a7d_d6af_4def),
        ("output_norm.weight", 0xea81_4bed_6299_e304),
    ] {
        let t = g.tensor(name).unwrap();
        let cols = t.shape[t.shape.len() - 1];
        let rows = t.rows().min(8);
        let rb = greta::model::quant::row_bytes(t.dtype, cols).unwrap();
        let bytes = &g.tensor_bytes(name).unwrap()[..rows * rb];
        let mut out = vec![0f32; rows * cols];
        for (r, o) in bytes.chunks_exact(rb).zip(out.chunks_exact_mut(cols)) {
            greta::model::quant::dequantize_row(t.dtype, r, o).unwrap();
        }
        let le: Vec<u8> = out.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(fnv(&le), want, "{name}");
    }
}

/// The real Gemma 3 270M Q4_K_M file (issue 22): `$GRETA_GEMMA3`, else `.cache/models/` under the repo
/// (`tools/fetch-model gemma`). Skipped when absent: CI does not fetch it.
fn gemma3() -> Option<PathBuf> {
    let p = match std::env::var_os("GRETA_GEMMA3") {
        Some(p) => PathBuf::from(p),
        None => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/models/gemma-3-270m-q4_k_m.gguf")
        }
    };
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "skipping: Gemma 3 GGUF not found (tools/fetch-model gemma, or set GRETA_GEMMA3)"
        );
        None
    }
}

/// FNV-1a of the little-endian f32 bytes of `values`.
fn fnv_f32(values: &[f32]) -> u64 {
    values
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
            (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Every tensor of the real Gemma 3 270M Q4_K_M file dequantises (its 640-wide rows are not whole
/// 256-blocks, so llama.cpp stored most matrices as Q5_0, which greta could not read before issue 22),
/// and the first 8 rows of one tensor per type match `gguf.quants.dequantize` (gguf 0.19.0): FNV-1a of
/// their little-endian f32 bytes.
#[test]
fn gemma3_every_tensor_dequantises_as_gguf_py() {
    let Some(path) = gemma3() else { return };
    let g = Gguf::open(&path).unwrap();
    assert_eq!(g.get_str("general.architecture").unwrap(), "gemma3");
    let mut types = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    for t in &g.tensors {
        *types.entry(t.dtype.name()).or_insert(0) += 1;
        let cols = t.dims[0] as usize;
        let rb = greta::model::quant::row_bytes(t.dtype, cols).unwrap();
        out.resize(cols, 0f32);
        for row in g.tensor_bytes(&t.name).unwrap().chunks_exact(rb) {
            greta::model::quant::dequantize_row(t.dtype, row, &mut out)
                .unwrap_or_else(|e| panic!("{}: {e}", t.name));
        }
    }
    assert_eq!(
        types,
        [
            ("f32", 109),
            ("q5_0", 81),
            ("q4_k", 27),
            ("q8_0", 10),
            ("q6_k", 9)
        ]
        .into_iter()
        .collect()
    );
    for (name, want) in [
        ("token_embd.weight", 0x0467_dd4d_bc27_4da7u64),
        ("blk.0.attn_q.weight", 0x3a70_88ca_3084_7821),
        ("blk.0.attn_output.weight", 0xe487_06a4_6747_f8c9),
        ("blk.17.ffn_down.weight", 0x65b8_2482_4903_2014),
        ("blk.17.ffn_up.weight", 0x4387_b28b_8025_7f7e),
        ("output_norm.weight", 0x11c2_2e7a_cf60_d9d7),
    ] {
        let t = g.tensor(name).unwrap();
        let cols = t.shape[t.shape.len() - 1];
        let rows = t.rows().min(8);
        let rb = greta::model::quant::row_bytes(t.dtype, cols).unwrap();
        let bytes = &g.tensor_bytes(name).unwrap()[..rows * rb];
        let v = dequantize_to_vec(t.dtype, bytes, rows * cols).unwrap();
        assert_eq!(fnv_f32(&v), want, "{name} ({})", t.dtype);
    }
}

#[test]
fn smollm2_config() {
    let Some(path) = smollm2() else { return };
    let c = LlamaConfig::from_gguf(&Gguf::open(&path).unwrap()).unwrap();
    assert_eq!(
        (c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.head_dim),
        (30, 576, 9, 3, 64)
    );
    assert_eq!(
        (c.ffn_dim, c.vocab, c.ctx_len, c.rope_dim),
        (1536, 49_152, 8192, 64)
    );
    assert_eq!(c.rope_theta, 100_000.0);
    assert_eq!(c.eps, f64::from(1e-5f32));
    assert!(c.tied_embeddings);
}

fn every_value() -> Vec<(&'static str, Value)> {
    vec![
        ("t.u8", Value::U8(200)),
        ("t.i8", Value::I8(-100)),
        ("t.u16", Value::U16(60_000)),
        ("t.i16", Value::I16(-30_000)),
        ("t.u32", Value::U32(4_000_000_000)),
        ("t.i32", Value::I32(-2_000_000_000)),
        ("t.u64", Value::U64(u64::MAX)),
        ("t.i64", Value::I64(i64::MIN)),
        ("t.f32", Value::F32(-1.5e-7)),
        ("t.f64", Value::F64(std::f64::consts::PI)),
        ("t.bool", Value::Bool(true)),
        ("t.str", Value::String("héllo\nworld".into())),
        ("t.empty", Value::Array(vec![])),
        (
            "t.strs",
            Value::Array(vec![Value::String("a".into()), Value::String("".into())]),
        ),
        (
            "t.nested",
            Value::Array(vec![
                Value::Array(vec![Value::I32(1)]),
                Value::Array(vec![]),
            ]),
        ),
    ]
}

#[test]
fn writer_reader_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rt.gguf");
    let mut w = GgufWriter::new();
    for (k, v) in every_value() {
        w.add_metadata(k, v);
    }
    let a: Vec<u8> = (0..3 * 64 * 4).map(|i| i as u8).collect();
    let b: Vec<u8> = (0..2 * 34).map(|i| (i * 7) as u8).collect();
    w.add_tensor("a", vec![64, 3], DType::F32, a.clone());
    w.add_tensor("b", vec![32, 2], DType::Q8_0, b.clone());
    w.add_tensor("c", vec![7], DType::F16, vec![1; 14]);
    w.write(&path).unwrap();
    let g = Gguf::open(&path).unwrap();
    for (k, v) in every_value() {
        assert_eq!(g.get(k), Some(&v), "{k}");
    }
    assert_eq!(g.tensor_bytes("a").unwrap(), &a[..]);
    assert_eq!(g.tensor_bytes("b").unwrap(), &b[..]);
    assert_eq!(g.tensor_info("c").unwrap().size, 14);
    assert!(
        g.tensors
            .iter()
            .all(|t| (g.data_offset + t.offset) % 32 == 0)
    );
    assert_eq!(g.tensor("a").unwrap().shape, vec![3, 64]);
    assert_eq!(g.file_size(), std::fs::metadata(&path).unwrap().len());
}

#[test]
fn writer_rejects_bad_tensors_and_mixed_arrays() {
    let mut w = GgufWriter::new();
    w.add_tensor("x", vec![30], DType::Q8_0, vec![0; 34]);
    assert!(matches!(w.to_bytes(), Err(GgufError::BadTensor { tensor, .. }) if tensor == "x"));
    let mut w = GgufWriter::new();
    w.add_metadata("m", Value::Array(vec![Value::U8(1), Value::I8(1)]));
    assert!(matches!(w.to_bytes(), Err(GgufError::Unwritable(_))));
    let mut w = GgufWriter::new();
    w.add_tensor(&"n".repeat(65), vec![1], DType::F32, vec![0; 4]);
    assert!(matches!(w.to_bytes(), Err(GgufError::BadTensor { .. })));
}

#[test]
fn synth_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [DType::F32, DType::Q4K, DType::Q8_0] {
        let a = dir.path().join("a.gguf");
        let b = dir.path().join("b.gguf");
        generate(Preset::Tiny, dtype, 7, &a).unwrap();
        generate(Preset::Tiny, dtype, 7, &b).unwrap();
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{dtype}"
        );
        generate(Preset::Tiny, dtype, 8, &b).unwrap();
        assert_ne!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{dtype}"
        );
    }
}

#[test]
fn synth_tiny_vocab_mirrors_smollm2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    generate(Preset::Tiny, DType::F32, 1, &path).unwrap();
    let g = Gguf::open(&path).unwrap();
    assert_eq!(g.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(g.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    let tokens = g.get_str_array("tokenizer.ggml.tokens").unwrap();
    let types = g.get_i32_array("tokenizer.ggml.token_type").unwrap();
    assert_eq!(tokens.len(), 300);
    assert_eq!(
        &tokens[..3],
        &["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    );
    assert_eq!(&types[..4], &[3, 3, 3, 1]);
    assert_eq!(g.get_u32("tokenizer.ggml.bos_token_id").unwrap(), 1);
    assert_eq!(g.get_u32("tokenizer.ggml.eos_token_id").unwrap(), 2);
    assert!(
        g.get_str("tokenizer.chat_template")
            .unwrap()
            .contains("<|im_start|>")
    );
    assert!(!g.get_str_array("tokenizer.ggml.merges").unwrap().is_empty());
}

/// Truncating a valid file anywhere gives a typed error, never a panic.
#[test]
fn truncated_files_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    generate(Preset::Tiny, DType::Q8_0, 3, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let header_end = parse(&bytes).unwrap().data_offset as usize;
    for cut in (0..bytes.len())
        .step_by(97)
        .chain(0..64)
        .chain(header_end - 64..header_end)
    {
        match parse(&bytes[..cut]) {
            Err(GgufError::Truncated { offset, .. }) => assert!(offset <= cut as u64, "cut {cut}"),
            Err(GgufError::TensorOutOfBounds { .. }) => {
                assert!(cut >= header_end - 32, "cut {cut}")
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // And through the file API.
    let short = dir.path().join("short.gguf");
    std::fs::write(&short, &bytes[..bytes.len() - 1]).unwrap();
    assert!(matches!(
        Gguf::open(&short),
        Err(GgufError::TensorOutOfBounds { .. })
    ));
    assert!(matches!(
        Gguf::open(&dir.path().join("nope.gguf")),
        Err(GgufError::Io { .. })
    ));
    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        Gguf::open(&empty),
        Err(GgufError::Truncated { offset: 0, .. })
    ));
}

#[test]
fn corrupt_headers_give_the_exact_error() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", Value::String("llama".into()));
    w.add_tensor("t", vec![32], DType::F32, vec![0; 128]);
    let good = w.to_bytes().unwrap();
    let patch = |at: usize, with: &[u8]| {
        let mut b = good.clone();
        b[at..at + with.len()].copy_from_slice(with);
        b
    };
    assert!(matches!(
        parse(&patch(0, b"GGML")),
        Err(GgufError::BadMagic)
    ));
    assert!(matches!(
        parse(&patch(4, &1u32.to_le_bytes())),
        Err(GgufError::UnsupportedVersion(1))
    ));
    assert!(matches!(
        parse(&patch(4, &0x0300_0000u32.to_le_bytes())),
        Err(GgufError::UnsupportedVersion(_))
    ));
    assert!(matches!(
        parse(&patch(8, &u64::MAX.to_le_bytes())),
        Err(GgufError::LimitExceeded {
            what: "tensor_count",
            ..
        })
    ));
    // Key length 20 ("general.architecture") at 24, type tag at 52.
    assert!(matches!(
        parse(&patch(52, &99u32.to_le_bytes())),
        Err(GgufError::Malformed { offset: 52, .. })
    ));
    // The string value's length at 56: claims more than the file holds.
    assert!(matches!(
        parse(&patch(56, &1_000_000u64.to_le_bytes())),
        Err(GgufError::Truncated { offset: 64, .. })
    ));
    // Tensor info: name "t" at 69..78, n_dims at 78, ne0 at 82, type at 90, offset at 94.
    assert!(matches!(
        parse(&patch(78, &5u32.to_le_bytes())),
        Err(GgufError::LimitExceeded {
            what: "tensor n_dims",
            ..
        })
    ));
    // 16 is IQ2_XXS (a grid format greta does not read; 6, Q5_0, is read since issue 22).
    assert!(matches!(
        parse(&patch(90, &16u32.to_le_bytes())),
        Err(GgufError::UnsupportedTensorType { ggml_type: 16, .. })
    ));
    assert!(matches!(
        parse(&patch(94, &4u64.to_le_bytes())),
        Err(GgufError::Malformed { offset: 94, .. })
    ));
    assert!(matches!(
        parse(&patch(94, &32u64.to_le_bytes())),
        Err(GgufError::TensorOutOfBounds { .. })
    ));
    assert!(matches!(
        parse(&patch(82, &u64::MAX.to_le_bytes())),
        Err(GgufError::BadTensor { .. })
    ));
}

#[test]
fn config_reports_missing_and_misshaped_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    generate(Preset::Tiny, DType::F32, 1, &path).unwrap();
    let g = Gguf::open(&path).unwrap();
    let rewrite = |skip: &str, reshape: Option<(&str, Vec<u64>)>, arch: &str| {
        let mut w = GgufWriter::new();
        for (k, v) in &g.metadata {
            w.add_metadata(k, v.clone());
        }
        w.add_metadata("general.architecture", Value::String(arch.into()));
        for t in &g.tensors {
            if t.name == skip {
                continue;
            }
            let bytes = g.tensor_bytes(&t.name).unwrap().to_vec();
            let dims = match &reshape {
                Some((n, d)) if *n == t.name => d.clone(),
                _ => t.dims.clone(),
            };
            w.add_tensor(&t.name, dims, t.dtype, bytes);
        }
        let p = dir.path().join("bad.gguf");
        w.write(&p).unwrap();
        LlamaConfig::from_gguf(&Gguf::open(&p).unwrap())
    };
    assert!(
        matches!(rewrite("blk.1.ffn_up.weight", None, "llama"), Err(GgufError::MissingTensor(n)) if n == "blk.1.ffn_up.weight")
    );
    assert!(matches!(
        rewrite("", Some(("blk.0.attn_k.weight", vec![32, 64])), "llama"),
        Err(GgufError::BadTensor { tensor, .. }) if tensor == "blk.0.attn_k.weight"
    ));
    assert!(
        matches!(rewrite("", None, "qwen2"), Err(GgufError::UnsupportedArchitecture(a)) if a == "qwen2")
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Random bytes after a valid magic and version never panic the parser.
        #[test]
        fn random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512), v3 in any::<bool>()) {
            let mut b = b"GGUF".to_vec();
            b.extend_from_slice(&(if v3 { 3u32 } else { 2 }).to_le_bytes());
            b.extend_from_slice(&tail);
            let _ = parse(&b);
        }

        /// Flipping any byte of a valid small file never panics the parser.
        #[test]
        fn flipped_bytes_never_panic(at in 0usize..4096, xor in 1u8..=255) {
            let mut w = GgufWriter::new();
            w.add_metadata("general.architecture", Value::String("llama".into()));
            w.add_metadata("a", Value::Array(vec![Value::U32(1), Value::U32(2)]));
            w.add_metadata("s", Value::Array(vec![Value::String("xy".into())]));
            w.add_tensor("t", vec![32, 2], DType::Q4_0, vec![3; 36]);
            let mut b = w.to_bytes().unwrap();
            let at = at % b.len();
            b[at] ^= xor;
            let _ = parse(&b);
        }
    }
}

/// Dequantisation throughput, one row at a time as the matmul loops call it. Run with
/// `cargo test --release --test tests dequant_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn dequant_throughput() {
    use greta::model::quant::dequantize_row;
    use greta::model::synth_weights::{Fill, make_tensor};
    const COLS: usize = 4096;
    const ROWS: usize = 32; // cache-resident: measures the arithmetic, not memory bandwidth
    const REPS: usize = 256;
    for dtype in DType::WEIGHT_TYPES {
        let bytes = make_tensor(1, "w", dtype, ROWS, COLS, Fill::Uniform(0.1));
        let rb = dtype.bytes_for(COLS).unwrap();
        let mut out = vec![0f32; COLS];
        let mut sum = 0f32;
        let t = std::time::Instant::now();
        for _ in 0..REPS {
            for row in bytes.chunks_exact(rb) {
                dequantize_row(dtype, row, &mut out).unwrap();
                sum += out[7];
            }
        }
        let s = t.elapsed().as_secs_f64();
        let elems = (REPS * ROWS * COLS) as f64;
        eprintln!("{dtype:>5}: {:7.2} Gelem/s ({sum})", elems / s / 1e9);
    }
    // Baseline: copying the same number of f32 values.
    let src = vec![1f32; COLS];
    let mut out = vec![0f32; COLS];
    let t = std::time::Instant::now();
    for _ in 0..REPS * ROWS {
        out.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut out);
    }
    eprintln!(
        " copy: {:7.2} Gelem/s",
        (REPS * ROWS * COLS) as f64 / t.elapsed().as_secs_f64() / 1e9
    );
}

/// Generation time of the larger presets. Run with
/// `cargo test --release --test tests synth_generation_time -- --ignored --nocapture`;
/// `GRETA_SYNTH_KEEP=dir` keeps the files for inspection, `GRETA_SYNTH_LLAMA3=1` adds Llama-3-8B.
#[test]
#[ignore]
fn synth_generation_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("GRETA_SYNTH_KEEP")
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let mut cases = vec![
        (Preset::Smollm2, DType::Q4K),
        (Preset::Smollm2, DType::Q4_1),
        (Preset::Smollm2, DType::F32),
    ];
    // Llama-3-8B at Q4_K_M is a 4.6 GB file: only on request.
    if std::env::var_os("GRETA_SYNTH_LLAMA3").is_some() {
        cases.push((Preset::Llama3_8b, DType::Q4K));
    }
    for (preset, dtype) in cases {
        let path = dir.join(format!("{preset}-{dtype}.gguf"));
        let t = std::time::Instant::now();
        let cfg = generate(preset, dtype, 1, &path).unwrap();
        let g = Gguf::open(&path).unwrap();
        assert_eq!(LlamaConfig::from_gguf(&g).unwrap(), cfg);
        eprintln!(
            "{preset} {dtype}: {:.2} s, {} MB",
            t.elapsed().as_secs_f64(),
            g.file_size() >> 20
        );
    }
}
