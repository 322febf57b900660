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

/// A tape written by another engine through the capture API: greta replays its RMSNorm launch on greta's
/// own f32 route, judges it with the f64 reference on the recorded inputs, and runs the plugin's kernel
/// on it with the engine's route name.
#[test]
fn foreign_tape_reference_and_plugin() {
    use greta::capture::{
        CaptureHeader, CaptureOptions, CaptureRecorder, LaunchDesc, ModelDesc, TensorIn, TensorOut,
    };
    use greta::launch::{DType, Phase};
    let d = tmp();
    let lib = build_plugin(d.path());
    let model = d.path().join("tiny-f32.gguf");
    greta::model::synth::generate(greta::model::synth::Preset::Tiny, DType::F32, 3, &model)
        .unwrap();
    let path = d.path().join("foreign.tape");
    let header = CaptureHeader {
        model: Some(ModelDesc {
            description: serde_json::json!({"architecture": "llama"}),
            gguf: Some(model.clone()),
            gguf_blake3: None,
        }),
        ..CaptureHeader::new("toy-engine", "1")
    };
    let rec = CaptureRecorder::create(&path, header, CaptureOptions::default()).unwrap();
    let g = greta::model::gguf::Gguf::open(&model).unwrap();
    let w = g.tensor("blk.0.attn_norm.weight").unwrap();
    let w: Vec<f32> = w.as_f32().unwrap().to_vec();
    let dim = w.len();
    let x: Vec<f32> = (0..2 * dim).map(|i| (i as f32 * 0.37).sin()).collect();
    // the engine's RMSNorm: one accumulator, left to right (not greta's order)
    let mut y = Vec::new();
    for r in x.chunks(dim) {
        let ms = r.iter().map(|v| v * v).sum::<f32>() / dim as f32;
        let inv = 1.0 / (ms + 1e-5).sqrt();
        y.extend(r.iter().zip(&w).map(|(a, b)| a * inv * b));
    }
    let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let desc =
        LaunchDesc::new(Phase::Prefill, Some(0), "attn_norm", "toy_rmsnorm_f32").param("eps", 1e-5);
    rec.launch(
        &desc,
        vec![
            (
                "x".into(),
                TensorIn::host(DType::F32, vec![2, dim], bytes(&x)),
            ),
            (
                "w".into(),
                TensorIn::Weight("blk.0.attn_norm.weight".into()),
            ),
        ],
        vec![(
            "out".into(),
            TensorOut::new(DType::F32, vec![2, dim], bytes(&y)),
        )],
    )
    .unwrap();
    rec.finish().unwrap();
    let t = path.to_str().unwrap();
    let (code, out, err) = greta_s(&[
        "replay",
        t,
        "--seq",
        "0",
        "--reference",
        "f64",
        "--kernels",
        lib.to_str().unwrap(),
        "--json",
    ]);
    assert!(code == 0 || code == 1, "{err}{out}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = &rows[0];
    assert_eq!(r["route"], "toy_rmsnorm_f32", "{r}");
    // Without --route, another engine's launch is not replayed on a greta kernel (its own kernel runs
    // only in the engine or through --kernels); the f64 reference still judges it.
    assert_eq!(r["replay_route"], "-", "not replayed without --route: {r}");
    assert!(r["error"].is_null(), "{r}");
    let local = r["local"]["max_abs"].as_f64().unwrap();
    assert!(
        local > 0.0 && local < 1e-5,
        "the engine's f32 RMSNorm against f64: {r}"
    );
    assert_eq!(r["plugin"]["route"], "toy_rmsnorm_f32");
    assert!(r["plugin"]["vs_recorded"].is_object(), "{r}");
}

/// Two engines' tapes of the same prompt and model are not "the same computation".
#[test]
fn two_engines_are_not_the_same_computation() {
    use greta::capture::{
        CaptureHeader, CaptureOptions, CaptureRecorder, LaunchDesc, TensorIn, TensorOut,
    };
    use greta::launch::{DType, Phase};
    let d = tmp();
    let write = |name: &str, engine: &str, v: f32| {
        let path = d.path().join(name);
        let rec = CaptureRecorder::create(
            &path,
            CaptureHeader::new(engine, "1"),
            CaptureOptions::default(),
        )
        .unwrap();
        let b = |x: f32| x.to_le_bytes().to_vec();
        rec.launch(
            &LaunchDesc::new(Phase::Prefill, Some(0), "attn_residual", "add"),
            vec![
                ("x".into(), TensorIn::host(DType::F32, vec![1, 1], b(1.0))),
                ("r".into(), TensorIn::host(DType::F32, vec![1, 1], b(v))),
            ],
            vec![(
                "out".into(),
                TensorOut::new(DType::F32, vec![1, 1], b(1.0 + v)),
            )],
        )
        .unwrap();
        rec.finish().unwrap();
        path
    };
    let a = write("a.tape", "engine-a", 2.0);
    let b = write("b.tape", "engine-b", 2.0);
    let (code, out, err) = greta_s(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("same computation"), "{err}");
}
