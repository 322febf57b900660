//! Hostile and unlucky input (issue 14), the bounded CI subset of `tools/torture`: every attack of the
//! issue as a regression test, each run of the binary under a 2 GB address-space limit (an allocation
//! bomb aborts instead of passing) and a time limit (a hang fails), and never a panic.
//!
//! The tape rewriter here goes through greta's own writer, so every CRC, blake3 and the record chain of
//! the rewritten tape are valid: only the one changed field lies.

use crate::util::*;
use greta::tape::{Record, Storage, TapeReader, TapeWriter, TensorRef, WriterOptions};
use std::path::Path;
use std::process::Command;

/// Address-space limit of every run, in KiB (2 GB: the failure threshold).
const MAX_VM_KIB: u64 = 2_000_000;
/// Wall-clock limit of every run.
const MAX_SECS: u32 = 60;

/// One run of the binary: (exit code, stdout, stderr). Panics, signals (an abort from a failed
/// allocation) and timeouts fail the test.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new("timeout");
    c.arg(MAX_SECS.to_string())
        .arg("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MAX_VM_KIB}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_greta"))
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("running greta");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    let code = o.status.code().unwrap_or(-1);
    assert!(!err.contains("panicked"), "greta {args:?} panicked:\n{err}");
    assert!(
        !err.contains("memory allocation"),
        "greta {args:?} aborted:\n{err}"
    );
    assert_ne!(code, 124, "greta {args:?} hung ({MAX_SECS} s)");
    assert!(
        (0..=2).contains(&code),
        "greta {args:?}: killed or aborted ({code}):\n{err}"
    );
    (code, out, err)
}

/// Rewrites tape `src` to `dst` through the writer, letting `mutate` change each record first.
pub fn rewrite(src: &Path, dst: &Path, mutate: impl FnMut(&mut Record)) {
    rewrite_with(src, dst, |_| {}, mutate)
}

/// Rewrites tape `src` to `dst`, letting `header` change the header and `mutate` each record.
pub fn rewrite_with(
    src: &Path,
    dst: &Path,
    header: impl FnOnce(&mut greta::tape::TapeHeader),
    mut mutate: impl FnMut(&mut Record),
) {
    let r = TapeReader::open(src).unwrap();
    let mut h = r.header().clone();
    header(&mut h);
    let mut w = TapeWriter::create(dst, &h, WriterOptions::default()).unwrap();
    let put = |w: &mut TapeWriter, ts: &[TensorRef]| {
        for t in ts {
            if let Storage::Chunks(_) = t.storage {
                let es = t.dtype.bytes_for(1).unwrap_or(1);
                w.put_tensor(&r.tensor_bytes(t).unwrap(), es).unwrap();
            }
        }
    };
    for e in r.entries() {
        let l = r.launch(e.unwrap().seq).unwrap();
        put(&mut w, &l.begin.inputs);
        let mut b = Record::Begin(l.begin);
        mutate(&mut b);
        w.put_record(&b).unwrap();
        if let Some(end) = l.end {
            put(&mut w, &end.outputs);
            let mut e = Record::End(end);
            mutate(&mut e);
            w.put_record(&e).unwrap();
        }
    }
    w.finish().unwrap();
}

/// A small full-capture tape of the tiny model.
pub fn small_tape(dir: &Path) -> std::path::PathBuf {
    let t = dir.join("ok.tape");
    let m = tiny();
    greta_ok(&[
        "record",
        "--model",
        m.to_str().unwrap(),
        "--tokens",
        "1,2,3",
        "--max-tokens",
        "2",
        "--out",
        t.to_str().unwrap(),
    ]);
    t
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The seq of the first launch of `stage` on the tape.
fn first(t: &Path, stage: greta::launch::Stage) -> u64 {
    let r = TapeReader::open(t).unwrap();
    r.entries()
        .map(|e| e.unwrap())
        .find(|e| e.stage == stage)
        .unwrap()
        .seq
}

#[test]
fn tensor_whose_shape_lies_is_refused_everywhere() {
    let d = tmp();
    let ok = small_tape(d.path());
    let seq = first(&ok, greta::launch::Stage::QProj);
    let bad = d.path().join("shape.tape");
    rewrite(&ok, &bad, |r| {
        if let Record::Begin(b) = r {
            if b.seq == seq {
                b.inputs[0].shape[0] *= 2; // same bytes, twice the rows
            }
        }
    });
    let (c, out, _) = run(&["verify", s(&bad)], &[]);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("needs") && out.contains("bytes"), "{out}");
    let q = seq.to_string();
    let (c, _, err) = run(&["replay", s(&bad), "--seq", &q], &[]);
    assert_eq!(c, 2, "{err}");
    let ex = d.path().join("ex");
    let (c, _, err) = run(&["export", s(&bad), &q, "--out", s(&ex)], &[]);
    assert_eq!(c, 2, "{err}");
    assert!(
        !ex.join("input0.npy").exists(),
        "an .npy with a lying header was written"
    );
    let (c, out, _) = run(&["show", s(&bad), &q], &[]);
    assert_eq!(c, 1, "{out}");
}

#[test]
fn huge_declared_sizes_are_bounded() {
    let d = tmp();
    let ok = small_tape(d.path());
    let seq = first(&ok, greta::launch::Stage::AttnNorm);
    // 2^44 bytes (16 TiB) of f32, citing one chunk 2^20 times: consistent shape, absurd size.
    let bad = d.path().join("huge.tape");
    rewrite(&ok, &bad, |r| {
        if let Record::Begin(b) = r {
            if b.seq == seq {
                let t = &mut b.inputs[0];
                if let Storage::Chunks(hs) = &t.storage {
                    t.storage = Storage::Chunks(vec![hs[0]; 1 << 20]);
                }
                t.shape = vec![1 << 42];
                t.len = 1 << 44;
            }
        }
    });
    let q = seq.to_string();
    for cmd in [
        vec!["show", s(&bad), &q],
        vec!["replay", s(&bad), "--seq", &q],
    ] {
        let (c, out, err) = run(&cmd, &[]);
        assert!(c != 0, "{cmd:?}: {out}{err}");
        assert!(
            format!("{out}{err}").contains("budget"),
            "{cmd:?}: {out}{err}"
        );
    }
    let ex = d.path().join("ex");
    let (c, _, err) = run(&["export", s(&bad), &q, "--out", s(&ex)], &[]);
    assert_ne!(c, 0, "{err}");
    // The budget is a flag and an environment variable.
    let (c, _, err) = run(&["show", s(&ok), &q, "--max-tensor-bytes", "16"], &[]);
    assert_eq!(c, 1, "{err}");
    let (c, out, _) = run(&["show", s(&ok), &q], &[("GRETA_MAX_TENSOR_BYTES", "16")]);
    assert!(c == 1 && out.contains("budget"), "{out}");
    run(&["verify", s(&bad)], &[]);
}

/// Sets the uncompressed-length field of the first frame of `kind` and re-signs the frame header.
fn patch_raw_len(t: &Path, kind: u8, raw: u64) -> Vec<u8> {
    let mut b = std::fs::read(t).unwrap();
    let mut at = greta::tape::trailer::PREAMBLE_LEN;
    loop {
        let stored = u64::from_le_bytes(b[at + 8..at + 16].try_into().unwrap()) as usize;
        if b[at + 4] == kind {
            b[at + 16..at + 24].copy_from_slice(&raw.to_le_bytes());
            let c = crc32fast::hash(&b[at..at + 60]);
            b[at + 60..at + 64].copy_from_slice(&c.to_le_bytes());
            return b;
        }
        at += 64 + stored;
    }
}

#[test]
fn lying_frame_lengths_cost_nothing() {
    let d = tmp();
    let ok = small_tape(d.path());
    for (kind, cmd) in [(1u8, "ls"), (3, "verify"), (3, "ls"), (2, "verify")] {
        let p = d.path().join(format!("k{kind}.tape"));
        std::fs::write(&p, patch_raw_len(&ok, kind, 1 << 31)).unwrap();
        let t0 = std::time::Instant::now();
        let (c, out, err) = run(&[cmd, s(&p)], &[]);
        // `ls` reads only the index of a tape with a trailer: it never touches a records frame.
        if (kind, cmd) != (3, "ls") {
            assert_ne!(c, 0, "kind {kind} {cmd}: {out}{err}");
        }
        assert!(
            t0.elapsed().as_secs() < 10,
            "kind {kind} {cmd}: {:?}",
            t0.elapsed()
        );
    }
}

#[test]
fn gguf_metadata_is_checked_against_the_tensor_table() {
    let d = tmp();
    let mut b = std::fs::read(tiny()).unwrap();
    let key = b"llama.block_count";
    let at = b.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
    b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let m = d.path().join("blocks.gguf");
    std::fs::write(&m, &b).unwrap();
    let (c, _, err) = run(&["run", "--model", s(&m), "--tokens", "1"], &[]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("tensor table"), "{err}");
}

#[test]
fn recording_output_is_safe() {
    let d = tmp();
    let ok = small_tape(d.path());
    let m = tiny();
    let rec = |extra: &[&str]| {
        let mut a = vec!["record", "--model", s(&m), "--tokens", "1,2"];
        a.extend_from_slice(extra);
        if !extra.contains(&"--max-tokens") {
            a.extend_from_slice(&["--max-tokens", "1"]);
        }
        run(&a, &[])
    };
    let before = std::fs::read(&ok).unwrap();
    let (c, _, err) = rec(&["--out", s(&ok)]);
    assert!(c == 2 && err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read(&ok).unwrap(),
        before,
        "an existing tape was touched"
    );
    let (c, _, err) = rec(&["--out", s(&ok), "--force"]);
    assert_eq!(c, 0, "{err}");
    let (c, _, err) = rec(&["--out", s(d.path())]);
    assert!(c == 2 && err.contains("directory"), "{err}");
    let (c, _, err) = rec(&["--out", s(&d.path().join("x.tape")), "--threads", "100000"]);
    assert!(c == 2 && err.contains("--threads"), "{err}");
    let (c, _, err) = rec(&[
        "--out",
        s(&d.path().join("y.tape")),
        "--max-tokens",
        "18446744073709551615",
    ]);
    assert!(c == 2 && err.contains("context"), "{err}");
    // A leftover `.incomplete` of another recording is never written into.
    let z = d.path().join("z.tape");
    std::fs::write(d.path().join("z.tape.incomplete"), b"someone else's").unwrap();
    let (c, _, err) = rec(&["--out", s(&z)]);
    assert!(c == 2 && err.contains("another recording"), "{err}");
    // gen-model too.
    let (c, _, err) = run(&["gen-model", "--preset", "tiny", "--out", s(&m)], &[]);
    assert!(c == 2 && err.contains("--force"), "{err}");
    // Empty files and directories as tapes say what they are.
    let e = d.path().join("empty.tape");
    std::fs::write(&e, b"").unwrap();
    let (c, _, err) = run(&["ls", s(&e)], &[]);
    assert!(c == 2 && err.contains("interrupted"), "{err}");
    let (c, _, err) = run(&["ls", s(d.path())], &[]);
    assert!(c == 2 && err.contains("is a directory"), "{err}");
    let (_, _, err) = run(&["ls", s(&d.path().join("nope.tape"))], &[]);
    assert_eq!(
        err.matches("No such file").count(),
        1,
        "OS error printed twice: {err}"
    );
}

#[test]
fn replay_refuses_another_model() {
    let d = tmp();
    let ok = small_tape(d.path());
    let other = d.path().join("other.gguf");
    greta_ok(&[
        "gen-model",
        "--preset",
        "tiny",
        "--seed",
        "8",
        "--out",
        s(&other),
    ]);
    let seq = first(&ok, greta::launch::Stage::QProj).to_string();
    let (c, _, err) = run(
        &["replay", s(&ok), "--seq", &seq, "--model", s(&other)],
        &[],
    );
    assert!(c == 2 && err.contains("not the model"), "{err}");
    let (c, _, err) = run(
        &[
            "replay",
            s(&ok),
            "--seq",
            &seq,
            "--reference",
            "f64",
            "--model",
            s(&other),
        ],
        &[],
    );
    assert_eq!(c, 2, "{err}");
    let (c, _, _) = run(
        &["replay", s(&ok), "--seq", &seq, "--model", s(&tiny())],
        &[],
    );
    assert_eq!(c, 0);
}

#[test]
fn diff_of_a_damaged_tape_is_never_identical() {
    let d = tmp();
    let ok = small_tape(d.path());
    let mut b = std::fs::read(&ok).unwrap();
    // Damage the payload of the first chunk frame (hashes in the records stay as they were).
    let at = greta::tape::trailer::PREAMBLE_LEN;
    let mut f = at;
    loop {
        let stored = u64::from_le_bytes(b[f + 8..f + 16].try_into().unwrap()) as usize;
        if b[f + 4] == 2 && stored > 8 {
            b[f + 64 + stored / 2] ^= 0x55;
            break;
        }
        f += 64 + stored;
    }
    let bad = d.path().join("bad.tape");
    std::fs::write(&bad, &b).unwrap();
    let (c, out, _) = run(&["diff", s(&ok), s(&bad)], &[]);
    assert_eq!(c, 1, "{out}");
    assert!(!out.contains("identical:"), "{out}");
}

/// Every scalar param set to an extreme on every launch of its stage (issue 21: `pos = u32::MAX`
/// made verify allocate 103 GB): verify, show, export and replay of the first launch of each stage
/// stay within the run limits (2 GB, no panic, no hang) and verify finds a lie where a contract
/// reads the field (all but `kv_block` and the float params, which only kernels read).
#[test]
fn lying_params_cost_nothing() {
    use greta::launch::{Params, Stage};
    let d = tmp();
    let ok = small_tape(d.path());
    type Set = fn(&mut Params);
    let fields: [(&str, Set); 12] = [
        ("pos=max", |p| p.pos = u32::MAX),
        ("rows=max", |p| p.rows = u32::MAX),
        ("n_heads=max", |p| p.n_heads = u32::MAX),
        ("n_heads=0", |p| p.n_heads = 0),
        ("n_kv_heads=max", |p| p.n_kv_heads = u32::MAX),
        ("head_dim=max", |p| p.head_dim = u32::MAX),
        ("rope_dim=max", |p| p.rope_dim = u32::MAX),
        ("kv_block=max", |p| p.kv_block = u32::MAX),
        ("rope_theta=nan", |p| p.rope_theta = f64::NAN),
        ("eps=-inf", |p| p.eps = f64::NEG_INFINITY),
        ("scale=inf", |p| p.scale = f64::INFINITY),
        ("all=max", |p| {
            p.pos = u32::MAX;
            p.rows = u32::MAX;
            p.n_heads = u32::MAX;
            p.n_kv_heads = u32::MAX;
            p.head_dim = u32::MAX;
            p.rope_dim = u32::MAX;
        }),
    ];
    let stages = [
        Stage::KvWrite,
        Stage::RopeQ,
        Stage::Qk,
        Stage::Pv,
        Stage::Softmax,
    ];
    for (name, set) in fields {
        let bad = d.path().join(format!("{name}.tape"));
        rewrite(&ok, &bad, |r| {
            if let Record::Begin(b) = r {
                if stages.contains(&b.stage) {
                    set(&mut b.params);
                }
            }
        });
        let (c, out, _) = run(&["verify", s(&bad)], &[]);
        // A contract reads pos, rows and the head geometry: a lie there is found. kv_block and the
        // float params are read only by kernels: replay finds them, as a difference.
        let geometry =
            !name.starts_with("kv_block") && name.ends_with("max") || name.ends_with("=0");
        if geometry {
            assert_eq!(c, 1, "{name}: {out}");
        }
        for st in stages {
            let q = first(&bad, st).to_string();
            run(&["show", s(&bad), &q], &[]);
            run(&["replay", s(&bad), "--seq", &q], &[]);
            let ex = d.path().join(format!("ex-{name}-{q}"));
            run(&["export", s(&bad), &q, "--out", s(&ex)], &[]);
        }
    }
}
