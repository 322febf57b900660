//! `greta replay --kernels`: a C plugin built here (examples/plugin/rmsnorm_matmul.c, compiled with `cc`)
//! re-runs its own kernels on recorded inputs. Its RMSNorm follows greta's f32 reduction order and must be
//! bit-exact with a greta f32 recording; its matmul sums in another order and must be reported as not
//! bit-exact, with the ULP distance and the f64 reference next to it.

use crate::util::{greta_s, tmp};
use std::path::{Path, PathBuf};
use std::process::Command;

fn build_plugin(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = dir.join("librmsnorm_matmul.so");
    let st = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args([
            "-O2",
            "-ffp-contract=off",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-shared",
            "-fPIC",
            "-I",
        ])
        .arg(root.join("include"))
        .arg(root.join("examples/plugin/rmsnorm_matmul.c"))
        .arg("-o")
        .arg(&out)
        .arg("-lm")
        .status()
        .expect("running cc (a C compiler is needed for the plugin tests)");
    assert!(st.success(), "compiling the example plugin failed");
    out
}

fn f32_tape(dir: &Path) -> PathBuf {
    let model = dir.join("tiny-f32.gguf");
    greta::model::synth::generate(
        greta::model::synth::Preset::Tiny,
        greta::launch::DType::F32,
        3,
        &model,
    )
    .expect("generating the tiny f32 model");
    let tape = dir.join("t.tape");
    let (code, _, err) = greta_s(&[
        "record",
        "--model",
        model.to_str().unwrap(),
        "--tokens",
        "1,2,3,4",
        "--max-tokens",
        "2",
        "--precision",
        "f32",
        "--out",
        tape.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    tape
}

#[test]
fn plugin_kernels_bit_exact_and_not() {
    let d = tmp();
    let lib = build_plugin(d.path());
    let tape = f32_tape(d.path());
    let t = tape.to_str().unwrap();
    let l = lib.to_str().unwrap();

    // RMSNorm in greta's order: bit-exact everywhere, exit 0.
    let (code, out, err) = greta_s(&[
        "replay",
        t,
        "--stage",
        "attn_norm",
        "--kernels",
        l,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}{out}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = rows.as_array().unwrap();
    assert!(rows.len() >= 2, "one attn_norm per layer and phase");
    for r in rows {
        let p = &r["plugin"];
        assert_eq!(p["backend"], "plugin:librmsnorm_matmul.so");
        assert_eq!(p["vs_recorded"]["bit_exact"], true, "{r}");
        // the f64 reference on the same inputs is reported next to it, and f32 is not f64
        assert!(p["vs_f64"]["max_abs"].as_f64().unwrap() > 0.0, "{r}");
    }

    // Matmul in another summation order: not bit-exact, reported with its ULP distance, exit 1.
    let (code, out, err) = greta_s(&[
        "replay",
        t,
        "--phase",
        "prefill",
        "--layer",
        "0",
        "--stage",
        "q_proj",
        "--kernels",
        l,
    ]);
    assert_eq!(code, 1, "{err}{out}");
    assert!(out.contains("plugin:librmsnorm_matmul.so"), "{out}");
    assert!(out.contains("differs"), "{out}");
    assert!(out.contains("0/1 plugin kernel runs bit-exact"), "{out}");

    // A stage the plugin does not export is named, not a failure.
    let (code, out, err) = greta_s(&[
        "replay",
        t,
        "--phase",
        "prefill",
        "--layer",
        "0",
        "--stage",
        "swiglu",
        "--kernels",
        l,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}{out}");
    assert!(
        out.contains("not implemented by the plugin (no greta_kernel_swiglu)"),
        "{out}"
    );
}

#[test]
fn plugin_load_errors_are_clear() {
    let d = tmp();
    let tape = f32_tape(d.path());
    let (code, _, err) = greta_s(&[
        "replay",
        tape.to_str().unwrap(),
        "--stage",
        "attn_norm",
        "--kernels",
        "/nonexistent/libx.so",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/libx.so"), "{err}");
    // a library without greta_plugin_abi_version
    let src = d.path().join("empty.c");
    std::fs::write(&src, "int not_a_plugin(void) { return 0; }\n").unwrap();
    let lib = d.path().join("libempty.so");
    let st = Command::new("cc")
        .args(["-shared", "-fPIC"])
        .arg(&src)
        .arg("-o")
        .arg(&lib)
        .status()
        .unwrap();
    assert!(st.success());
    let (code, _, err) = greta_s(&[
        "replay",
        tape.to_str().unwrap(),
        "--stage",
        "attn_norm",
        "--kernels",
        lib.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("greta_plugin_abi_version"), "{err}");
}
