//! Hostile and unlucky input, round 3 (issue 21): each numbered case of the issue as a regression test,
//! with its exact message and exit code. Hostile files are built here: tapes through the re-signing
//! rewriter of tests/torture.rs (every checksum valid, one field lies), GGUFs by patching a tiny model.
//! Every run of the binary goes through `torture::run` (2 GB address space, time limit, no panic).

use crate::torture::{rewrite, rewrite_with, run, small_tape};
use crate::util::*;
use greta::launch::Stage;
use greta::tape::{Record, Storage, TapeReader};
use std::path::{Path, PathBuf};
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The seq of the first launch of `stage`.
fn first(t: &Path, stage: Stage) -> u64 {
    let r = TapeReader::open(t).unwrap();
    r.entries()
        .map(|e| e.unwrap())
        .find(|e| e.stage == stage)
        .unwrap()
        .seq
}

/// Peak RSS of one run of the binary in KiB (GNU time), with its exit code.
fn peak_rss_kib(args: &[&str]) -> (i32, u64) {
    let o = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_greta"))
        .args(args)
        .output()
        .expect("/usr/bin/time");
    let err = String::from_utf8_lossy(&o.stderr);
    let kib = err
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS in {err}"));
    (o.status.code().unwrap_or(-1), kib)
}

/// Case 1: `pos = u32::MAX` on kv_write launches: a contract problem, in flat memory (was 103 GB).
#[test]
fn kv_position_u32_max_is_a_contract_problem_in_flat_memory() {
    let d = tmp();
    let ok = small_tape(d.path());
    let bad = d.path().join("pos.tape");
    let seq = first(&ok, Stage::KvWrite);
    rewrite(&ok, &bad, |r| {
        if let Record::Begin(b) = r {
            if b.stage == Stage::KvWrite {
                b.params.pos = u32::MAX;
            }
        }
    });
    let (c, out, _) = run(&["verify", s(&bad)], &[]);
    assert_eq!(c, 1, "{out}");
    let want = format!(
        "  launch {seq}: stage contract: bad inputs for kv_write: rows 4294967295..4294967298 lie beyond the longest context greta accepts (16777216 positions)"
    );
    assert!(out.contains(&want), "{out}");
    let (c, kib) = peak_rss_kib(&["verify", s(&bad)]);
    assert_eq!(c, 1);
    assert!(kib < 100 * 1024, "verify peak RSS {kib} KiB");
    eprintln!("verify of pos = u32::MAX: peak RSS {kib} KiB");
}

/// Case 2: an output named like an input is refused before anything is written.
#[test]
fn plot_over_an_input_tape_is_refused() {
    let d = tmp();
    let ok = small_tape(d.path());
    let before = std::fs::read(&ok).unwrap();
    let want = format!(
        "error: --plot {0} is also an input of this command ({0}): refusing to overwrite it\n",
        s(&ok)
    );
    for args in [
        vec!["diff", s(&ok), s(&ok), "--plot", s(&ok)],
        vec!["replay", s(&ok), "--seq", "4", "--plot", s(&ok)],
    ] {
        let (c, out, err) = run(&args, &[]);
        assert_eq!((c, err.as_str(), out.as_str()), (2, want.as_str(), ""));
    }
    assert_eq!(std::fs::read(&ok).unwrap(), before, "the tape was touched");
}

/// Case 3: FIFOs and devices as --model or --golden are refused; a golden is read with a cap.
#[test]
fn fifo_and_device_inputs_are_refused() {
    let d = tmp();
    let fifo = d.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let f = s(&fifo);
    let m = tiny();
    let want = format!("error: model {f} is not a regular file (a FIFO, socket or device?)\n");
    let out = d.path().join("x.tape");
    for args in [
        vec!["run", "--model", f, "--tokens", "1"],
        vec!["record", "--model", f, "--tokens", "1", "--out", s(&out)],
        vec!["tokenize", "--model", f, "hello"],
        vec!["check", "--model", f, "--tokens", "1", "--runs", "1"],
    ] {
        let (c, _, err) = run(&args, &[]);
        assert_eq!((c, err.as_str()), (2, want.as_str()), "{args:?}");
    }
    for g in [f, "/dev/zero"] {
        let (c, _, err) = run(
            &["check", "--model", s(&m), "--tokens", "1", "--golden", g],
            &[],
        );
        let want = format!("error: golden {g} is not a regular file (a FIFO, socket or device?)\n");
        assert_eq!((c, err.as_str()), (2, want.as_str()), "{g}");
    }
    // A regular file above the cap (sparse: nothing is written to disk).
    let big = d.path().join("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((256 << 20) + 1)
        .unwrap();
    let (c, _, err) = run(
        &[
            "check",
            "--model",
            s(&m),
            "--tokens",
            "1",
            "--golden",
            s(&big),
        ],
        &[],
    );
    let want = format!(
        "error: golden {} is larger than 256 MiB, the most a golden manifest holds (MAX_GOLDEN_BYTES)\n",
        s(&big)
    );
    assert_eq!((c, err.as_str()), (2, want.as_str()));
}

/// Case 4: `--runs` is capped (it wrapped: "run 1/0", for ever).
#[test]
fn check_runs_are_capped() {
    let (c, _, err) = run(
        &[
            "check",
            "--model",
            s(&tiny()),
            "--tokens",
            "1",
            "--runs",
            "18446744073709551615",
        ],
        &[],
    );
    assert_eq!(
        (c, err.as_str()),
        (
            2,
            "error: --runs 18446744073709551615 is more than 100: each run is a whole recorded generation (MAX_RUNS)\n"
        )
    );
}

/// Rewrites `ok` to `name`, changing every end record with `f`.
fn with_end(d: &Path, ok: &Path, name: &str, f: impl Fn(&mut greta::tape::LaunchEnd)) -> PathBuf {
    let bad = d.join(name);
    rewrite(ok, &bad, |r| {
        if let Record::End(e) = r {
            f(e)
        }
    });
    bad
}

/// Case 5: references verify rejects make `replay --seq` say damaged (exit 1), never bit-exact.
#[test]
fn replay_of_a_damaged_launch_is_never_bit_exact() {
    let d = tmp();
    let ok = small_tape(d.path());
    let a = first(&ok, Stage::AttnNorm);
    let b = first(&ok, Stage::QProj);
    let cases: Vec<(PathBuf, u64, String)> = vec![
        (
            with_end(d.path(), &ok, "huge.tape", |e| {
                if e.seq == a {
                    let t = &mut e.outputs[0];
                    if let Storage::Chunks(hs) = &t.storage {
                        t.storage = Storage::Chunks(vec![hs[0]; 1 << 20]);
                    }
                    t.shape = vec![1 << 42];
                    t.len = 1 << 44;
                }
            }),
            a,
            "`out` claims 17592186044416 bytes but its 1048576 chunks hold".into(),
        ),
        (
            with_end(d.path(), &ok, "self.tape", |e| {
                if e.seq == a {
                    e.outputs[0].storage = Storage::Producer { seq: a, index: 0 };
                }
            }),
            a,
            format!("`out` refers to launch {a}, not an earlier one (a reference loop)"),
        ),
        (
            with_end(d.path(), &ok, "cycle.tape", |e| {
                if e.seq == a {
                    e.outputs[0].storage = Storage::Producer { seq: b, index: 0 };
                } else if e.seq == b {
                    e.outputs[0].storage = Storage::Producer { seq: a, index: 0 };
                }
            }),
            b,
            "producer references loop".into(),
        ),
        (
            with_end(d.path(), &ok, "many.tape", |e| {
                if e.seq == a {
                    e.outputs = vec![e.outputs[0].clone(); 100_000];
                }
            }),
            a,
            "100000 outputs, more than a launch may have (256)".into(),
        ),
    ];
    for (bad, seq, why) in &cases {
        let (c, out, _) = run(&["verify", s(bad)], &[]);
        assert_eq!(c, 1, "{}: {out}", bad.display());
        let q = seq.to_string();
        let (c, out, err) = run(&["replay", s(bad), "--seq", &q], &[]);
        assert_eq!(c, 1, "{}: {out}{err}", bad.display());
        assert!(
            out.contains("DAMAGED") && out.contains(&format!("error: damaged: launch {seq}")),
            "{out}"
        );
        assert!(out.contains(why.as_str()), "{}: {out}", bad.display());
        assert!(out.contains("1 launches damaged"), "{out}");
    }
    // The 100,000 outputs are refused by export before a file is written.
    let ex = d.path().join("ex");
    let (c, _, err) = run(
        &["export", s(&cases[3].0), &a.to_string(), "--out", s(&ex)],
        &[],
    );
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("100000 outputs"), "{err}");
    assert!(!ex.exists(), "export created its folder");
}

/// Case 5, the header: another model file with a false hash fails verify and makes diff differ.
#[test]
fn a_header_naming_another_model_is_found() {
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
    let bad = d.path().join("model.tape");
    rewrite_with(
        &ok,
        &bad,
        |h| {
            h.model.path = s(&other).to_string();
            h.model.blake3 = "ab".repeat(32);
        },
        |_| {},
    );
    let (c, out, _) = run(&["verify", s(&bad)], &[]);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains(&format!(
            "model: PROBLEM: the header's model {} is not the model this tape was recorded with",
            s(&other)
        )),
        "{out}"
    );
    let (c, out, _) = run(&["diff", s(&ok), s(&bad)], &[]);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("the models differ: A "), "{out}");
    assert!(!out.contains("identical:"), "{out}");
}

/// Case 6: a GGUF whose tensors all start at offset 0 is refused.
#[test]
fn overlapping_gguf_tensors_are_refused() {
    let d = tmp();
    let mut b = std::fs::read(tiny()).unwrap();
    let h = greta::model::parse::parse(&b).unwrap();
    for t in &h.tensors {
        let mut key = (t.name.len() as u64).to_le_bytes().to_vec();
        key.extend_from_slice(t.name.as_bytes());
        let at = b.windows(key.len()).position(|w| w == key).unwrap();
        let off = at + key.len() + 4 + 8 * t.dims.len() + 4;
        b[off..off + 8].copy_from_slice(&0u64.to_le_bytes());
    }
    let m = d.path().join("overlap.gguf");
    std::fs::write(&m, &b).unwrap();
    let (c, _, err) = run(&["run", "--model", s(&m), "--tokens", "1"], &[]);
    assert_eq!(c, 2, "{err}");
    assert!(
        err.contains("overlap: `") && err.contains("starts at data offset 0, before `"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Case 7: a truncated tape never diffs "identical" (it did on 95 of 490 cuts, exit 1).
#[test]
fn diff_of_a_truncated_tape_never_says_identical() {
    let d = tmp();
    let ok = small_tape(d.path());
    let raw = std::fs::read(&ok).unwrap();
    let cut = d.path().join("cut.tape");
    for i in 1..12 {
        std::fs::write(&cut, &raw[..raw.len() * i / 12]).unwrap();
        let (c, out, err) = run(&["diff", s(&ok), s(&cut)], &[]);
        assert!(c == 1 || c == 2, "{out}{err}");
        assert!(
            !out.contains("identical:") || out.contains("not identical:"),
            "cut {i}/12: {out}"
        );
    }
}

/// Case 8: outputs in missing folders, export into a used folder, one-line usage errors, a missing
/// --model, a 10-byte tape.
#[test]
fn outputs_and_messages_are_plain() {
    let d = tmp();
    let ok = small_tape(d.path());
    let m = tiny();
    let nodir = d.path().join("nope");
    let deep = nodir.join("x");
    let want = |flag: &str| {
        format!(
            "error: {flag} {}: directory {} does not exist (greta creates no directories: make it first)\n",
            s(&deep),
            s(&nodir)
        )
    };
    for (args, flag) in [
        (
            vec![
                "record",
                "--model",
                s(&m),
                "--tokens",
                "1",
                "--out",
                s(&deep),
            ],
            "--out",
        ),
        (vec!["export", s(&ok), "3", "--out", s(&deep)], "--out"),
        (
            vec!["gen-model", "--preset", "tiny", "--out", s(&deep)],
            "--out",
        ),
        (vec!["diff", s(&ok), s(&ok), "--plot", s(&deep)], "--plot"),
    ] {
        let (c, _, err) = run(&args, &[]);
        assert_eq!((c, err.as_str()), (2, want(flag).as_str()), "{args:?}");
    }
    assert!(!nodir.exists());
    let ex = d.path().join("ex");
    let (c, _, err) = run(&["export", s(&ok), "3", "--out", s(&ex)], &[]);
    assert_eq!(c, 0, "{err}");
    let (c, _, err) = run(&["export", s(&ok), "3", "--out", s(&ex)], &[]);
    assert_eq!(
        (c, err.as_str()),
        (
            2,
            format!(
                "error: --out {} already holds files; pass --force to write into it\n",
                s(&ex)
            )
            .as_str()
        )
    );
    let (c, _, err) = run(&["export", s(&ok), "3", "--out", s(&ex), "--force"], &[]);
    assert_eq!(c, 0, "{err}");
    let (c, _, err) = run(&["ls", s(&ok), "--bogus"], &[]);
    assert_eq!(
        (c, err.as_str()),
        (
            2,
            "error: unexpected argument '--bogus' found (see `greta ls --help`)\n"
        )
    );
    let (c, _, err) = run(&["replay"], &[]);
    assert_eq!(
        (c, err.as_str()),
        (
            2,
            "error: the following required arguments were not provided: <TAPE> (see `greta replay --help`)\n"
        )
    );
    let (c, _, err) = run(
        &["export", "--model", "missing", s(&ok), "3", "--out", s(&ex)],
        &[],
    );
    assert_eq!(
        (c, err.as_str()),
        (
            2,
            "error: --model missing: No such file or directory (os error 2)\n"
        )
    );
    let short = d.path().join("short10.tape");
    std::fs::write(&short, &std::fs::read(&ok).unwrap()[..10]).unwrap();
    let (c, _, err) = run(&["verify", s(&short)], &[]);
    assert_eq!(c, 2, "{err}");
    assert!(
        err.contains(
            "truncated at byte 10: the file is 10 bytes, shorter than a tape's 16-byte preamble"
        ),
        "{err}"
    );
}

/// Writes a tape of at least `launches` launches: the launches of `src` again and again under new
/// seq numbers (references to producers moved with them); chunks are stored once, so the tape stays
/// small whatever its length.
pub fn long_tape(src: &Path, dst: &Path, launches: u64) {
    use greta::tape::{TapeWriter, WriterOptions};
    let r = TapeReader::open(src).unwrap();
    let ls: Vec<_> = r
        .entries()
        .map(|e| r.launch(e.unwrap().seq).unwrap())
        .collect();
    let n = ls.iter().map(|l| l.begin.seq).max().unwrap() + 1;
    let mut w = TapeWriter::create(dst, r.header(), WriterOptions::default()).unwrap();
    let shift = |t: &mut greta::tape::TensorRef, by: u64| match &mut t.storage {
        Storage::Producer { seq, .. } => *seq += by,
        Storage::Rows(spans) => spans.iter_mut().for_each(|s| s.seq += by),
        _ => {}
    };
    for rep in 0..launches.div_ceil(ls.len() as u64) {
        let by = rep * n;
        for l in &ls {
            let (mut b, mut e) = (l.begin.clone(), l.end.clone());
            if rep == 0 {
                for t in b.inputs.iter().chain(e.iter().flat_map(|e| &e.outputs)) {
                    if let Storage::Chunks(_) = t.storage {
                        let es = t.dtype.bytes_for(1).unwrap_or(1);
                        w.put_tensor(&r.tensor_bytes(t).unwrap(), es).unwrap();
                    }
                }
            }
            b.seq += by;
            b.inputs.iter_mut().for_each(|t| shift(t, by));
            w.put_record(&Record::Begin(b)).unwrap();
            if let Some(mut e) = e.take() {
                e.seq += by;
                e.outputs.iter_mut().for_each(|t| shift(t, by));
                w.put_record(&Record::End(e)).unwrap();
            }
        }
    }
    w.finish().unwrap();
}

/// Case 9: a full replay streams: peak RSS of a tape ten times longer stays within a few MB.
#[test]
fn full_replay_memory_is_flat_in_the_tape_length() {
    let d = tmp();
    let ok = small_tape(d.path());
    let mut peaks = Vec::new();
    for n in [2_000u64, 20_000] {
        let t = d.path().join(format!("long{n}.tape"));
        long_tape(&ok, &t, n);
        let t0 = std::time::Instant::now();
        let (c, kib) = peak_rss_kib(&["replay", s(&t)]);
        assert_eq!(c, 0);
        eprintln!(
            "replay of {n} launches: peak RSS {kib} KiB, {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        peaks.push(kib);
    }
    assert!(
        peaks[1] < peaks[0] + 16 * 1024,
        "peak RSS grew with the tape: {peaks:?} KiB"
    );
}

/// Case 9 at the issue's size (`GRETA_LONG_LAUNCHES`, default 300,000): `cargo test --release --test
/// tests long_replay -- --ignored --nocapture` prints the peak RSS and time.
#[test]
#[ignore]
fn long_replay_at_the_issue_size() {
    let n: u64 = std::env::var("GRETA_LONG_LAUNCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let d = tmp();
    let ok = small_tape(d.path());
    // GRETA_LONG_TAPE keeps the tape at that path (to watch a replay of it by hand).
    let t = std::env::var_os("GRETA_LONG_TAPE")
        .map(PathBuf::from)
        .unwrap_or_else(|| d.path().join("long.tape"));
    long_tape(&ok, &t, n);
    eprintln!(
        "{} launches: {} bytes",
        TapeReader::open(&t).unwrap().len(),
        std::fs::metadata(&t).unwrap().len()
    );
    let t0 = std::time::Instant::now();
    let (c, kib) = peak_rss_kib(&["replay", s(&t)]);
    eprintln!(
        "replay of {n} launches: exit {c}, peak RSS {kib} KiB, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(c, 0);
}
