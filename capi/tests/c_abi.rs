//! The C ABI as a C program sees it: tests/ctest.c (every call, statuses, messages) and
//! examples/toy_forward.c (a toy forward pass recording its launches) are compiled against
//! include/greta.h with the system C compiler (`cc`), linked to libgreta_capi, run, and their tapes
//! checked with greta's reader and CLI (`greta verify`, `greta replay`).

use greta::tape::{Storage, TapeReader};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// target/<profile>/, where cargo put libgreta_capi.so (this test runs from target/<profile>/deps/).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The greta CLI: $GRETA_BIN, else target/<profile>/greta (built by `cargo build --release` at the root).
fn greta_bin() -> PathBuf {
    let p = std::env::var_os("GRETA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| lib_dir().join("greta"));
    assert!(
        p.exists(),
        "greta binary not found at {}: run `cargo build --release` at the repo root first (or set GRETA_BIN)",
        p.display()
    );
    p
}

fn greta(args: &[&str]) -> (i32, String) {
    let o = Command::new(greta_bin()).args(args).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    (o.status.code().unwrap_or(-1), s)
}

/// Builds libgreta_capi.so (cargo test builds this crate's rlib for the tests, not its cdylib), once.
fn build_cdylib() {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let profile = lib_dir()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut c = Command::new(env!("CARGO"));
        c.args(["build", "-p", "greta-capi", "--lib"])
            .current_dir(repo());
        if profile == "release" {
            c.arg("--release");
        }
        let o = c.output().expect("running cargo");
        assert!(
            o.status.success(),
            "building libgreta_capi: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    });
}

/// Compiles `src` against greta.h and libgreta_capi with warnings as errors; returns the program.
fn compile(src: &Path, out: &Path) -> PathBuf {
    build_cdylib();
    let lib = lib_dir();
    assert!(
        lib.join("libgreta_capi.so").exists(),
        "libgreta_capi.so not in {}",
        lib.display()
    );
    let o = Command::new("cc")
        .args([
            "-std=c11",
            "-O1",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
        ])
        .arg("-I")
        .arg(repo().join("capi/include"))
        .arg(src)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lgreta_capi", "-lm", "-o"])
        .arg(out)
        .output()
        .expect("running cc (a C compiler is needed for the C ABI tests)");
    assert!(
        o.status.success(),
        "cc {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    out.to_path_buf()
}

fn run(prog: &Path, args: &[&Path]) -> String {
    let o = Command::new(prog).args(args).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{} failed:\n{s}", prog.display());
    s
}

#[test]
fn c_test_program_exercises_every_call() {
    let d = tempfile::tempdir().unwrap();
    let gguf = d.path().join("tiny.gguf");
    greta::model::synth::generate(
        greta::model::synth::Preset::Tiny,
        greta::launch::DType::Q4_1,
        5,
        &gguf,
    )
    .unwrap();
    let prog = compile(&repo().join("capi/tests/ctest.c"), &d.path().join("ctest"));
    let tape = d.path().join("ctest.tape");
    let out = run(&prog, &[&tape, &gguf]);
    assert!(out.contains("ok"), "{out}");
    let t = TapeReader::open(&tape).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t.header().engine.as_ref().unwrap().name, "ctest");
    assert_eq!(t.header().device, "a CPU");
    assert_eq!(t.header().prompt_tokens, [1, 2, 3]);
    let l0 = t.launch(0).unwrap();
    assert_eq!(l0.begin.route_name(), "ctest_gemm<128>");
    assert_eq!(
        l0.begin.inputs[1].storage,
        Storage::Weight {
            name: "blk.0.attn_q.weight".into()
        }
    );
    assert_eq!(
        l0.begin.foreign.as_ref().unwrap().param("my_tile"),
        Some(128.0)
    );
    let l1 = t.launch(1).unwrap();
    assert_eq!(l1.begin.stage_name(), "custom_thing");
    assert_eq!(l1.begin.layer, None);
    assert_eq!(
        l1.begin.inputs[0].storage,
        Storage::Producer { seq: 0, index: 0 }
    );
    let (code, s) = greta(&["verify", tape.to_str().unwrap()]);
    assert_eq!(code, 0, "{s}");
}

#[test]
fn c_example_records_a_toy_forward_pass_greta_verifies_and_replays() {
    let d = tempfile::tempdir().unwrap();
    let prog = compile(
        &repo().join("examples/toy_forward.c"),
        &d.path().join("toy_forward"),
    );
    let tape = d.path().join("toy.tape");
    let out = run(&prog, &[&tape]);
    // 1 README launch + per pass (toy_scale + 2 layers x 6 + final_norm) x (prefill, decode0).
    assert!(out.contains("29 launches"), "{out}");
    let t = TapeReader::open(&tape).unwrap();
    assert_eq!(t.len(), 29);
    let (code, s) = greta(&["verify", tape.to_str().unwrap()]);
    assert_eq!(code, 0, "{s}");
    let (code, s) = greta(&["ls", tape.to_str().unwrap()]);
    assert_eq!(code, 0, "{s}");
    assert!(
        s.contains("toy_scale_by_2") && s.contains("toy_matmul_f32"),
        "{s}"
    );
    // Every greta stage gets a local error against greta's f64 kernel; toy_scale has no reference.
    let (code, s) = greta(&[
        "replay",
        tape.to_str().unwrap(),
        "--phase",
        "prefill",
        "--reference",
        "f64",
        "--json",
    ]);
    assert_eq!(code, 0, "{s}");
    let json = s.lines().next().unwrap_or(""); // stdout's JSON line; stderr's notes follow
    let rows: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {s}"));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 15);
    for r in rows {
        let stage = r["stage"].as_str().unwrap();
        if stage == "toy_scale" || stage == "my_kernel" {
            assert!(r["local"].is_null(), "{r}");
            assert!(
                r["note"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("no reference for {stage}")),
                "{r}"
            );
        } else {
            let l = &r["local"];
            assert!(l.is_object(), "no local error for {stage}: {r}");
            // The toy's f32 kernels against greta's f64 on the same inputs: f32 rounding, not more.
            assert!(l["max_abs"].as_f64().unwrap() < 1e-4, "{stage}: {l}");
        }
    }
    let (_, s) = greta(&[
        "replay",
        tape.to_str().unwrap(),
        "--phase",
        "prefill",
        "--reference",
        "f64",
    ]);
    assert!(s.contains("no reference for toy_scale"), "{s}");
}

#[test]
fn readme_c_snippet_is_the_examples_code() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let ex = std::fs::read_to_string(repo().join("examples/toy_forward.c")).unwrap();
    let snippet = ex
        .split("/* README:begin */\n")
        .nth(1)
        .and_then(|s| s.split("    /* README:end */").next())
        .expect("README markers in examples/toy_forward.c");
    let dedented: String = snippet
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        readme.contains(dedented.trim_end()),
        "README's C snippet differs from examples/toy_forward.c (between the README markers):\n{dedented}"
    );
}
