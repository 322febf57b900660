//! Bad input gets a one-line error and exit 2, never a panic.

use crate::util::*;

fn fails_cleanly(args: &[&str], needle: &str) {
    let (code, out, err) = greta_s(args);
    assert_eq!(code, 2, "greta {args:?}: exit {code}\n{out}\n{err}");
    assert!(!err.contains("panicked"), "greta {args:?} panicked:\n{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    assert!(
        err.contains(needle),
        "greta {args:?}: expected `{needle}` in:\n{err}"
    );
    assert!(!line.is_empty());
}

#[test]
fn bad_inputs() {
    let d = tmp();
    let tiny = tiny();
    let t = tiny.to_str().unwrap();
    fails_cleanly(
        &["run", "--model", "/nonexistent/m.gguf", "--tokens", "1"],
        "does not exist",
    );
    let notgguf = d.path().join("x.gguf");
    std::fs::write(&notgguf, b"this is not a gguf file at all").unwrap();
    fails_cleanly(
        &["run", "--model", notgguf.to_str().unwrap(), "--tokens", "1"],
        "magic",
    );
    let bytes = std::fs::read(&tiny).unwrap();
    let cut = d.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    fails_cleanly(
        &["run", "--model", cut.to_str().unwrap(), "--tokens", "1"],
        "",
    );
    fails_cleanly(
        &[
            "run",
            "--model",
            t,
            "--tokens",
            "1",
            "--route",
            "matmul=warp",
        ],
        "gemv, gemm_tiled, gemm_invariant",
    );
    fails_cleanly(
        &[
            "run",
            "--model",
            t,
            "--tokens",
            "1",
            "--route",
            "nonsense=gemv",
        ],
        "valid ops",
    );
    let long: Vec<String> = (0..300).map(|i| (i % 200).to_string()).collect();
    fails_cleanly(
        &[
            "run",
            "--model",
            t,
            "--tokens",
            &long.join(","),
            "--max-tokens",
            "1",
        ],
        "context",
    );
    fails_cleanly(&["run", "--model", t, "--tokens", "999999"], "vocabulary");
    fails_cleanly(
        &["run", "--model", t, "--tokens", "1", "--backend", "hip"],
        "GPU",
    );
    fails_cleanly(&["ls", "/nonexistent.tape"], "");
}

#[test]
fn unsupported_architecture_and_tensor_type() {
    use greta::model::value::Value;
    use greta::model::writer::GgufWriter;
    let d = tmp();
    let p = d.path().join("qwen.gguf");
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", Value::String("qwen2".into()));
    w.add_tensor(
        "token_embd.weight",
        vec![4, 8],
        greta::launch::DType::F32,
        vec![0u8; 128],
    );
    w.write(&p).unwrap();
    fails_cleanly(
        &["run", "--model", p.to_str().unwrap(), "--tokens", "1"],
        "qwen2",
    );
    // A tensor type greta does not know (GGML type 16, IQ2_XXS) in an otherwise valid file.
    let t = tiny();
    let mut bytes = std::fs::read(&t).unwrap();
    let g = greta::model::gguf::Gguf::open(&t).unwrap();
    let name = b"blk.0.attn_q.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    // name, then n_dims (u32), dims (u64 each), then the type (u32).
    let nd = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let ty = at + 4 + 8 * nd;
    bytes[ty..ty + 4].copy_from_slice(&16u32.to_le_bytes());
    drop(g);
    let bad = d.path().join("iq2.gguf");
    std::fs::write(&bad, &bytes).unwrap();
    fails_cleanly(
        &["run", "--model", bad.to_str().unwrap(), "--tokens", "1"],
        "blk.0.attn_q.weight",
    );
}

/// Enum-like options are checked when the command line is parsed: a typo is named before the model is
/// opened (the model path here does not exist, and the error is about the option, not the file).
#[test]
fn option_typos_are_rejected_before_the_model_is_opened() {
    for args in [
        &["record", "--shuffle", "onn"][..],
        &["record", "--capture", "hash"][..],
        &["record", "--stages", "q_prj"][..],
        &["record", "--phases", "decod0"][..],
        &["run", "--precision", "f17"][..],
        &["run", "--routes", "invariants"][..],
        &["run", "--backend", "cuda"][..],
    ] {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--model", "/nonexistent/model.gguf", "--prompt", "hi"]);
        let (code, out, err) = crate::util::greta_s(&a);
        assert_eq!(code, 2, "{a:?}: {out}{err}");
        assert!(err.contains(args[1]), "{a:?} names the option: {err}");
        assert!(
            !err.contains("nonexistent"),
            "{a:?} fails before opening the model: {err}"
        );
    }
}
