//! Shared test helpers: the real model's path, tiny synthetic models, running the greta binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// f32 route against the f64 reference: largest relative error of logits we accept on the tiny model.
pub const F32_VS_F64_MAX_REL: f64 = 1e-4;
/// One f32 launch against the f64 reference on the same inputs: largest relative L2 error we accept.
pub const F32_LOCAL_MAX_REL_L2: f64 = 1e-5;
/// Prefill-then-decode against one longer prefill (f32): largest relative error of logits we accept.
pub const DECODE_VS_PREFILL_MAX_REL: f64 = 1e-4;

/// The SmolLM2 file: $GRETA_SMOLLM2, else .cache/models/ under the repo. Fails loudly when absent.
pub fn smollm2() -> PathBuf {
    let p = std::env::var_os("GRETA_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        p.exists(),
        "SmolLM2 model not found at {}: run tools/fetch-model (or set GRETA_SMOLLM2)",
        p.display()
    );
    p
}

/// A tiny synthetic model (generated once per test process, seed 7, Q4_1 weights).
pub fn tiny() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("greta-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("tiny.gguf");
        greta::model::synth::generate(
            greta::model::synth::Preset::Tiny,
            greta::launch::DType::Q4_1,
            7,
            &p,
        )
        .expect("generating the tiny model");
        p
    })
    .clone()
}

/// A temporary directory that lives for the test.
pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Runs the greta binary.
pub fn greta(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greta"))
        .args(args)
        .output()
        .expect("running greta")
}

/// Runs greta and returns (exit code, stdout, stderr).
pub fn greta_s(args: &[&str]) -> (i32, String, String) {
    let o = greta(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs greta, asserts exit 0, returns stdout.
pub fn greta_ok(args: &[&str]) -> String {
    let (code, out, err) = greta_s(args);
    assert_eq!(code, 0, "greta {args:?} failed:\n{err}\n{out}");
    out
}

/// Parses stdout as JSON.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}
