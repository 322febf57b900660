//! Tape round trips, damage, truncation and crash leftovers, and (ignored by default) measurements.

use greta::launch::{DType, Params, Phase, Precision, Route, Stage, Variant};
use greta::tape::frame::{FRAME_HEADER_LEN, FrameHeader};
use greta::tape::trailer::{PREAMBLE_LEN, TRAILER_LEN};
use greta::tape::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A small deterministic generator (splitmix64), so the tests need no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-300);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Activations: normal, magnitude ~1, with a few outlier channels (as in real LLM hidden states).
fn activations(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = rng.normal() as f32;
            if i % 97 == 0 { x * 20.0 } else { x }
        })
        .collect()
}

/// Softmax rows over `row` scores: many tiny probabilities, a few large.
fn probabilities(rng: &mut Rng, n: usize, row: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    for r in 0..n.div_ceil(row) {
        let scores: Vec<f64> = (0..row).map(|_| rng.normal() * 3.0).collect();
        let m = scores.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
        let z: f64 = e.iter().sum();
        let _ = r;
        out.extend(e.iter().map(|x| (x / z) as f32));
    }
    out.truncate(n);
    out
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn header() -> TapeHeader {
    let model = ModelIdentity {
        path: "m.gguf".into(),
        size: 123,
        blake3: "ab".into(),
    };
    let producer = Producer {
        greta_version: "0.1.0".into(),
        backend: "cpu".into(),
        device: "test".into(),
        kernel_hashes: vec![("rmsnorm_f32".into(), "00".into())],
        engine: None,
        provenance: None,
    };
    let run = RunInfo {
        prompt_tokens: vec![1, 2, 3],
        routes: vec!["precision=f32".into()],
        threads: 1,
        capture: "full".into(),
        options_json: "{}".into(),
        created_unix: 1_700_000_000,
    };
    TapeHeader::new(model, "{\"n_layers\":2}".into(), producer, run)
}

/// What a test tape holds, to compare against.
struct Expected {
    launches: Vec<Launch>,
    /// tensor hash → bytes, for every tensor whose bytes are on the tape.
    bytes: HashMap<Hash, Vec<u8>>,
    fingerprint: Hash,
}

fn tref(
    w: &mut TapeWriter,
    exp: &mut Expected,
    role: &str,
    bytes: &[u8],
    dtype: DType,
) -> TensorRef {
    let chunks = w.put_tensor(bytes, 4).unwrap();
    let hash = *blake3::hash(bytes).as_bytes();
    exp.bytes.insert(hash, bytes.to_vec());
    TensorRef {
        role: role.into(),
        dtype,
        shape: vec![(bytes.len() / 4) as u64],
        len: bytes.len() as u64,
        hash,
        storage: Storage::Chunks(chunks),
    }
}

/// Writes a tape of `n` launches mixing every kind of storage: fresh chunks, repeated tensors (dedup),
/// a growing KV cache (prefix dedup), producer references, weights and hash-only tensors. With
/// `crash_last`, the last launch has a begin and no end.
fn write_tape(
    path: &Path,
    n: u64,
    opts: WriterOptions,
    crash_last: bool,
    flush_each: bool,
) -> (Expected, Option<TapeSummary>) {
    let mut rng = Rng(42);
    let mut w = TapeWriter::create(path, &header(), opts).unwrap();
    let mut exp = Expected {
        launches: Vec::new(),
        bytes: HashMap::new(),
        fingerprint: [0; 32],
    };
    let shared = f32_bytes(&activations(&mut rng, 3000));
    let mut kv: Vec<f32> = Vec::new();
    let mut prev_out: Option<(u64, TensorRef)> = None;
    for seq in 0..n {
        kv.extend(activations(&mut rng, 20_000));
        let mut inputs = vec![
            tref(
                &mut w,
                &mut exp,
                "x",
                &f32_bytes(&activations(&mut rng, 500 + seq as usize * 10)),
                DType::F32,
            ),
            tref(&mut w, &mut exp, "shared", &shared, DType::F32),
            tref(&mut w, &mut exp, "k_cache", &f32_bytes(&kv), DType::F32),
            TensorRef {
                role: "w".into(),
                dtype: DType::Q8_0,
                shape: vec![32],
                len: 34,
                hash: [7; 32],
                storage: Storage::Weight {
                    name: "blk.0.attn_q.weight".into(),
                },
            },
            TensorRef {
                role: "h".into(),
                dtype: DType::F32,
                shape: vec![4],
                len: 16,
                hash: [8; 32],
                storage: Storage::HashOnly,
            },
        ];
        if let Some((pseq, out)) = &prev_out {
            let mut r = out.clone();
            r.role = "prev".into();
            r.storage = Storage::Producer {
                seq: *pseq,
                index: 0,
            };
            inputs.push(r);
        }
        let begin = LaunchBegin {
            seq,
            phase: if seq < n / 2 {
                Phase::Prefill
            } else {
                Phase::Decode((seq - n / 2) as u32)
            },
            layer: if seq % 4 == 3 {
                None
            } else {
                Some((seq % 4) as u32)
            },
            stage: Stage::ALL[seq as usize % Stage::ALL.len()],
            route: Route::new(
                Variant::ALL[seq as usize % Variant::ALL.len()],
                Precision::F32,
            ),
            backend: "cpu".into(),
            grid: Some([1, 2, 3]),
            block: None,
            params: Params {
                rows: seq as u32,
                eps: 1e-5,
                ..Params::default()
            },
            inputs,
            foreign: None,
        };
        exp.fingerprint = w.put_record(&Record::Begin(begin.clone())).unwrap();
        if flush_each {
            w.flush().unwrap();
        }
        if crash_last && seq == n - 1 {
            exp.launches.push(Launch { begin, end: None });
            break;
        }
        let probs = f32_bytes(&probabilities(&mut rng, 700, 64));
        let out = tref(&mut w, &mut exp, "y", &probs, DType::F32);
        let end = LaunchEnd {
            seq,
            outputs: vec![out.clone()],
            duration_ns: 1000 + seq,
        };
        exp.fingerprint = w.put_record(&Record::End(end.clone())).unwrap();
        prev_out = Some((seq, out));
        exp.launches.push(Launch {
            begin,
            end: Some(end),
        });
    }
    if crash_last {
        w.flush().unwrap();
        drop(w); // the process "dies": no index, no trailer, no rename
        (exp, None)
    } else {
        let s = w.finish().unwrap();
        (exp, Some(s))
    }
}

/// Every launch and every tensor the tape holds is exactly what was written.
fn check_contents(r: &TapeReader, exp: &Expected) {
    assert_eq!(r.len(), exp.launches.len());
    let entries: Vec<IndexEntry> = r.entries().map(|e| e.unwrap()).collect();
    for (e, l) in entries.iter().zip(&exp.launches) {
        assert_eq!(
            (e.seq, e.phase, e.layer, e.stage, e.route),
            (
                l.begin.seq,
                l.begin.phase,
                l.begin.layer,
                l.begin.stage,
                l.begin.route
            )
        );
        assert_eq!(e.has_end, l.end.is_some());
    }
    for l in &exp.launches {
        let got = r.launch(l.begin.seq).unwrap();
        assert_eq!(&got, l);
        let tensors = got
            .begin
            .inputs
            .iter()
            .chain(got.end.iter().flat_map(|e| e.outputs.iter()));
        for t in tensors {
            match (&t.storage, r.tensor_bytes(t)) {
                (Storage::Weight { name }, Err(TapeError::ExternalWeight { name: n })) => {
                    assert_eq!(name, &n)
                }
                (Storage::HashOnly, Err(TapeError::NotCaptured { role })) => {
                    assert_eq!(role, t.role)
                }
                (_, Ok(b)) => assert_eq!(
                    &b, &exp.bytes[&t.hash],
                    "tensor {} of launch {}",
                    t.role, l.begin.seq
                ),
                (s, other) => panic!("{s:?}: {other:?}"),
            }
        }
    }
    assert!(matches!(r.launch(1 << 40), Err(TapeError::NoSuchLaunch(_))));
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.tape");
    let (exp, s) = write_tape(&path, 24, WriterOptions::default(), false, false);
    let s = s.unwrap();
    assert!(!greta::tape::incomplete_path(&path).exists());
    let r = TapeReader::open(&path).unwrap();
    assert!(r.truncation().is_none());
    assert_eq!(r.header(), &header());
    assert_eq!(r.fingerprint(), exp.fingerprint);
    assert_eq!(r.fingerprint(), s.fingerprint);
    assert_eq!(s.launches, 24);
    assert_eq!(s.bytes, std::fs::metadata(&path).unwrap().len());
    check_contents(&r, &exp);
    let v = r.verify();
    assert!(v.is_ok(), "{v:?}");
    assert_eq!(v.launches, 24);
    assert_eq!(v.fingerprint, s.fingerprint);
    // The growing KV cache dedups: unique bytes are far below the bytes handed to put_tensor.
    let kv_total: u64 = (1..=24u64).map(|i| i * 80_000).sum();
    assert!(
        s.raw_bytes < kv_total / 4,
        "raw {} vs kv {}",
        s.raw_bytes,
        kv_total
    );

    // The same content gives the same fingerprint, with or without shuffle and at any frame size.
    let p2 = dir.path().join("b.tape");
    let opts = WriterOptions {
        shuffle: Shuffle::Off,
        frame_target: 100,
        zstd_level: 3,
        ..WriterOptions::default()
    };
    let (exp2, s2) = write_tape(&p2, 24, opts, false, true);
    assert_eq!(s2.unwrap().fingerprint, s.fingerprint);
    check_contents(&TapeReader::open(&p2).unwrap(), &exp2);
}

#[test]
fn writer_rejects_inconsistent_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = TapeWriter::create(
        &dir.path().join("x.tape"),
        &header(),
        WriterOptions::default(),
    )
    .unwrap();
    let end = Record::End(LaunchEnd {
        seq: 3,
        outputs: vec![],
        duration_ns: 0,
    });
    assert!(matches!(w.put_record(&end), Err(TapeError::Usage(_))));
    let t = TensorRef {
        role: "x".into(),
        dtype: DType::F32,
        shape: vec![1],
        len: 4,
        hash: [0; 32],
        storage: Storage::Chunks(vec![[1; 32]]),
    };
    let begin = LaunchBegin {
        seq: 0,
        phase: Phase::Prefill,
        layer: None,
        stage: Stage::Embed,
        route: Route::new(Variant::Direct, Precision::F32),
        backend: "cpu".into(),
        grid: None,
        block: None,
        params: Params::default(),
        inputs: vec![t],
        foreign: None,
    };
    assert!(matches!(
        w.put_record(&Record::Begin(begin)),
        Err(TapeError::Usage(_))
    ));
}

#[test]
fn crashed_writer_leaves_a_readable_incomplete_tape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.tape");
    let (exp, _) = write_tape(&path, 10, WriterOptions::default(), true, true);
    assert!(!path.exists());
    let inc = greta::tape::incomplete_path(&path);
    // Asking for the final name finds the crash leftover.
    assert_eq!(TapeReader::open(&path).unwrap().path(), inc.as_path());
    let r = TapeReader::open(&inc).unwrap();
    let t = r.truncation().expect("opened by scanning");
    assert_eq!(t.offset, std::fs::metadata(&inc).unwrap().len());
    assert!(t.reason.contains("did not finish"), "{}", t.reason);
    check_contents(&r, &exp);
    let last = r.launch(9).unwrap();
    assert!(last.end.is_none(), "the crashed launch has no end");
    assert!(!r.entry(9).unwrap().has_end);
    assert_eq!(r.fingerprint(), exp.fingerprint);
    let v = r.verify();
    assert!(v.problems.is_empty(), "{v:?}");
    assert!(!v.is_ok());
}

#[test]
fn newer_version_and_foreign_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.tape");
    write_tape(&path, 2, WriterOptions::default(), false, false);
    let mut b = std::fs::read(&path).unwrap();
    b[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    std::fs::write(&path, &b).unwrap();
    match TapeReader::open(&path) {
        Err(TapeError::NewerVersion {
            found, supported, ..
        }) => assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION)),
        other => panic!("{:?}", other.err()),
    }
    let mut rng = Rng(1);
    let junk: Vec<u8> = (0..5000).map(|_| rng.next() as u8).collect();
    std::fs::write(&path, &junk).unwrap();
    assert!(matches!(
        TapeReader::open(&path),
        Err(TapeError::NotATape { .. })
    ));
    // An empty file is the leftover of a recording killed at once: said so, not "not a tape".
    std::fs::write(&path, b"").unwrap();
    let e = TapeReader::open(&path).err().unwrap();
    assert!(matches!(e, TapeError::Unreadable { .. }), "{e}");
    assert!(e.to_string().contains("empty file"), "{e}");
    // A directory is said to be one (not `map: No such device`).
    let e = TapeReader::open(dir.path()).err().unwrap();
    assert!(e.to_string().contains("is a directory"), "{e}");
    assert!(matches!(
        TapeReader::open(&dir.path().join("missing")),
        Err(TapeError::Io { .. })
    ));
}

/// The regions of a pristine tape: (start, end, name), in order.
fn regions(b: &[u8]) -> Vec<(usize, usize, String)> {
    let mut out = vec![(0, PREAMBLE_LEN, "preamble".to_string())];
    let mut pos = PREAMBLE_LEN;
    let end = b.len() - TRAILER_LEN;
    while pos < end {
        let h = FrameHeader::parse(&b[pos..]).unwrap();
        let next = pos + h.total_len() as usize;
        out.push((pos, next, h.kind.name().to_string()));
        pos = next;
    }
    out.push((end, b.len(), "trailer".into()));
    out
}

fn err_offset(e: &TapeError) -> Option<u64> {
    match e {
        TapeError::Corrupt { offset, .. } | TapeError::Truncated { offset, .. } => Some(*offset),
        _ => None,
    }
}

/// Opens and reads a damaged copy. Returns every byte offset the reader reported, and asserts that no
/// read returned wrong bytes. Err(()) means open failed with an error that has no offset (magic, version).
fn damaged_read(path: &Path, exp: &Expected) -> Result<Vec<u64>, TapeError> {
    let r = TapeReader::open(path)?;
    let mut seen = Vec::new();
    if let Some(t) = r.truncation() {
        seen.push(t.offset);
    }
    for p in r.verify().problems {
        seen.push(p.offset);
    }
    for e in r.entries() {
        if let Err(e) = e {
            seen.extend(err_offset(&e));
        }
    }
    for l in &exp.launches {
        match r.launch(l.begin.seq) {
            Ok(got) => {
                // Whatever comes back is exactly what was written.
                assert_eq!(&got.begin, &l.begin);
                if let Some(end) = &got.end {
                    assert_eq!(Some(end), l.end.as_ref());
                }
                for t in got
                    .begin
                    .inputs
                    .iter()
                    .chain(got.end.iter().flat_map(|e| e.outputs.iter()))
                {
                    match r.tensor_bytes(t) {
                        Ok(b) => assert_eq!(&b, &exp.bytes[&t.hash]),
                        Err(e) => seen.extend(err_offset(&e)),
                    }
                }
            }
            Err(e) => seen.extend(err_offset(&e)),
        }
    }
    Ok(seen)
}

fn small_tape(dir: &Path) -> (PathBuf, Expected, Vec<u8>) {
    let path = dir.join("s.tape");
    let opts = WriterOptions {
        chunk_size: 1024,
        frame_target: 600,
        ..WriterOptions::default()
    };
    let (exp, _) = write_tape_small(&path, opts);
    let b = std::fs::read(&path).unwrap();
    (path, exp, b)
}

/// A small tape (a few KB) so every byte can be flipped.
fn write_tape_small(path: &Path, opts: WriterOptions) -> (Expected, TapeSummary) {
    let mut rng = Rng(7);
    let mut w = TapeWriter::create(path, &header(), opts).unwrap();
    let mut exp = Expected {
        launches: Vec::new(),
        bytes: HashMap::new(),
        fingerprint: [0; 32],
    };
    let mut prev: Option<(u64, TensorRef)> = None;
    let shared = f32_bytes(&activations(&mut rng, 300));
    for seq in 0..5u64 {
        let mut inputs = vec![
            tref(
                &mut w,
                &mut exp,
                "x",
                &f32_bytes(&activations(&mut rng, 300)),
                DType::F32,
            ),
            tref(&mut w, &mut exp, "s", &shared, DType::F32),
        ];
        if let Some((p, t)) = &prev {
            let mut t = t.clone();
            t.storage = Storage::Producer { seq: *p, index: 0 };
            inputs.push(t);
        }
        let begin = LaunchBegin {
            seq,
            phase: Phase::Decode(seq as u32),
            layer: Some(1),
            stage: Stage::Qk,
            route: Route::new(Variant::Manual, Precision::F32),
            backend: "cpu".into(),
            grid: None,
            block: None,
            params: Params::default(),
            inputs,
            foreign: None,
        };
        w.put_record(&Record::Begin(begin.clone())).unwrap();
        let out = tref(
            &mut w,
            &mut exp,
            "y",
            &f32_bytes(&probabilities(&mut rng, 200, 50)),
            DType::F32,
        );
        let end = LaunchEnd {
            seq,
            outputs: vec![out.clone()],
            duration_ns: 5,
        };
        exp.fingerprint = w.put_record(&Record::End(end.clone())).unwrap();
        prev = Some((seq, out));
        exp.launches.push(Launch {
            begin,
            end: Some(end),
        });
    }
    let s = w.finish().unwrap();
    (exp, s)
}

#[test]
fn every_flipped_byte_is_detected_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (_, exp, pristine) = small_tape(dir.path());
    let regs = regions(&pristine);
    let kinds: Vec<&str> = regs.iter().map(|r| r.2.as_str()).collect();
    for k in [
        "preamble",
        "header frame",
        "chunk frame",
        "records frame",
        "index frame",
        "trailer",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let bad = dir.path().join("bad.tape");
    for i in 0..pristine.len() {
        let reg = regs.iter().find(|r| r.0 <= i && i < r.1).unwrap();
        // Every byte of every header, the index and the trailer; every 7th byte of other payloads.
        let structural =
            i < reg.0 + FRAME_HEADER_LEN || reg.2 == "index frame" || reg.2 == "trailer";
        if !structural && i % 7 != 0 {
            continue;
        }
        let mut b = pristine.clone();
        b[i] ^= 1 << (i % 8);
        std::fs::write(&bad, &b).unwrap();
        match damaged_read(&bad, &exp) {
            Ok(seen) => assert!(
                seen.iter().any(|&o| reg.0 as u64 <= o && o <= i as u64),
                "flip at {i} in {} [{}, {}) not reported at its offset: {seen:?}",
                reg.2,
                reg.0,
                reg.1
            ),
            Err(e) => match err_offset(&e) {
                Some(o) => assert!(
                    reg.0 as u64 <= o && o <= i as u64,
                    "flip at {i} in {}: {e}",
                    reg.2
                ),
                None => assert!(
                    i < PREAMBLE_LEN
                        && matches!(
                            e,
                            TapeError::NotATape { .. } | TapeError::NewerVersion { .. }
                        ),
                    "flip at {i}: {e}"
                ),
            },
        }
    }
}

#[test]
fn every_truncation_leaves_a_readable_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (_, exp, pristine) = small_tape(dir.path());
    let regs = regions(&pristine);
    let header_end = regs[1].1;
    let mut cuts: Vec<usize> = Vec::new();
    for r in &regs {
        cuts.extend([
            r.0,
            r.0 + 1,
            r.0 + FRAME_HEADER_LEN / 2,
            r.0 + FRAME_HEADER_LEN,
            (r.0 + r.1) / 2,
            r.1 - 1,
        ]);
    }
    cuts.retain(|&c| c < pristine.len());
    cuts.sort();
    cuts.dedup();
    let cut = dir.path().join("cut.tape");
    let mut last_launches = 0;
    for &c in &cuts {
        std::fs::write(&cut, &pristine[..c]).unwrap();
        match TapeReader::open(&cut) {
            Ok(r) => {
                assert!(c >= header_end, "cut at {c} opened without a header");
                let t = r.truncation().expect("a cut tape is marked truncated");
                assert!(t.offset <= c as u64);
                assert!(r.len() >= last_launches, "prefixes only grow");
                last_launches = r.len();
                let seen = damaged_read(&cut, &exp).unwrap();
                let _ = seen;
                for e in r.entries() {
                    let e = e.unwrap();
                    let l = r.launch(e.seq).unwrap();
                    for t in l
                        .begin
                        .inputs
                        .iter()
                        .chain(l.end.iter().flat_map(|e| e.outputs.iter()))
                    {
                        assert_eq!(r.tensor_bytes(t).unwrap(), exp.bytes[&t.hash]);
                    }
                }
            }
            Err(e) => {
                assert!(c < header_end, "cut at {c}: {e}");
                assert!(
                    matches!(
                        e,
                        TapeError::NotATape { .. }
                            | TapeError::Truncated { .. }
                            | TapeError::Unreadable { .. }
                    ),
                    "cut at {c}: {e}"
                );
            }
        }
    }
    assert_eq!(last_launches, exp.launches.len());
}

proptest! {
    // 64 cases by default; PROPTEST_CASES=N for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]
    #[test]
    fn random_damage_never_yields_wrong_bytes(flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
                                              cut in proptest::option::of(any::<prop::sample::Index>())) {
        let dir = tempfile::tempdir().unwrap();
        let (_, exp, pristine) = small_tape(dir.path());
        let mut b = pristine.clone();
        for (i, x) in &flips {
            let i = i.index(b.len());
            b[i] ^= x;
        }
        if let Some(c) = cut {
            b.truncate(c.index(b.len()));
        }
        let p = dir.path().join("p.tape");
        std::fs::write(&p, &b).unwrap();
        // Asserts inside: nothing returned differs from what was written; no panic.
        let _ = damaged_read(&p, &exp);
    }
}

// ---------------------------------------------------------------------------------------------------
// Measurements: `cargo test --release --test tests tape::measure -- --ignored --nocapture`

fn mib_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / (1 << 20) as f64
}

fn best_of<F: FnMut()>(n: usize, mut f: F) -> f64 {
    (0..n)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

#[test]
#[ignore]
fn measure_compression_and_speed() {
    let mut rng = Rng(3);
    let n = 16 << 20 >> 2; // 16 MiB of f32
    let act = activations(&mut rng, n);
    let sets: Vec<(&str, Vec<u8>, usize)> = vec![
        ("activations f32", f32_bytes(&act), 4),
        (
            "softmax f32",
            f32_bytes(&probabilities(&mut rng, n, 512)),
            4,
        ),
        ("bf16-valued f32", f32_bytes(&via_bf16(&act)), 4),
        (
            "activations f16",
            act.iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect(),
            2,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    println!(
        "\n| data | shuffle | zstd level | tape/raw | put_tensor MiB/s | incl. create+finish+fsync MiB/s |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, data, es) in &sets {
        for level in [1, 3] {
            for shuffle in [Shuffle::Off, Shuffle::ByElement] {
                let path = dir.path().join("m.tape");
                let opts = WriterOptions {
                    zstd_level: level,
                    shuffle,
                    ..WriterOptions::default()
                };
                let mut size = 0;
                let mut put = f64::MAX;
                let secs = best_of(3, || {
                    let mut w = TapeWriter::create(&path, &header(), opts.clone()).unwrap();
                    let t = std::time::Instant::now();
                    w.put_tensor(data, *es).unwrap();
                    put = put.min(t.elapsed().as_secs_f64());
                    size = w.finish().unwrap().bytes;
                });
                println!(
                    "| {name} | {shuffle:?} | {level} | {:.3} | {:.0} | {:.0} |",
                    size as f64 / data.len() as f64,
                    mib_s(data.len(), put),
                    mib_s(data.len(), secs)
                );
            }
        }
        for threads in [4, 8] {
            let path = dir.path().join("m.tape");
            let opts = WriterOptions {
                threads,
                ..WriterOptions::default()
            };
            let mut put = f64::MAX;
            best_of(3, || {
                let mut w = TapeWriter::create(&path, &header(), opts.clone()).unwrap();
                let t = std::time::Instant::now();
                w.put_tensor(data, *es).unwrap();
                put = put.min(t.elapsed().as_secs_f64());
                w.finish().unwrap();
            });
            println!(
                "| {name} | ByElement, {threads} threads | 1 | | {:.0} | |",
                mib_s(data.len(), put)
            );
        }
        let secs = best_of(3, || {
            for c in data.chunks(64 << 10) {
                std::hint::black_box(blake3::hash(c));
            }
        });
        println!(
            "| {name} | blake3 alone (64 KiB chunks) | | | {:.0} | |",
            mib_s(data.len(), secs)
        );
        let mut z = zstd::bulk::Compressor::new(1).unwrap();
        let secs = best_of(3, || {
            for c in data.chunks(64 << 10) {
                std::hint::black_box(z.compress(c).unwrap());
            }
        });
        println!(
            "| {name} | zstd level 1 alone (64 KiB chunks) | | | {:.0} | |",
            mib_s(data.len(), secs)
        );
    }
}

/// Writes a tape of about `bytes` of distinct (incompressible) tensor data over `launches` launches.
fn synthetic_tape(path: &Path, bytes: usize, launches: u64) {
    let opts = WriterOptions {
        zstd_level: 1,
        shuffle: Shuffle::Off,
        ..WriterOptions::default()
    };
    let mut w = TapeWriter::create(path, &header(), opts).unwrap();
    let per = bytes / launches as usize;
    let mut rng = Rng(9);
    let mut buf = vec![0u8; per];
    for seq in 0..launches {
        for x in buf.chunks_mut(8) {
            let v = rng.next().to_le_bytes();
            x.copy_from_slice(&v[..x.len()]);
        }
        let chunks = w.put_tensor(&buf, 1).unwrap();
        let t = TensorRef {
            role: "x".into(),
            dtype: DType::F32,
            shape: vec![per as u64 / 4],
            len: per as u64,
            hash: *blake3::hash(&buf).as_bytes(),
            storage: Storage::Chunks(chunks),
        };
        let begin = LaunchBegin {
            seq,
            phase: Phase::Prefill,
            layer: Some(seq as u32 % 32),
            stage: Stage::ALL[seq as usize % Stage::ALL.len()],
            route: Route::new(Variant::Direct, Precision::F32),
            backend: "cpu".into(),
            grid: None,
            block: None,
            params: Params::default(),
            inputs: vec![t],
            foreign: None,
        };
        w.put_record(&Record::Begin(begin)).unwrap();
        w.put_record(&Record::End(LaunchEnd {
            seq,
            outputs: vec![],
            duration_ns: 1,
        }))
        .unwrap();
    }
    w.finish().unwrap();
}

#[test]
#[ignore]
fn measure_open_and_fetch() {
    let dir = tempfile::tempdir_in(std::env::var("GRETA_BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .unwrap();
    println!();
    for (name, bytes, launches) in [("1 MB", 1 << 20, 16u64), ("1 GB", 1 << 30, 16_384)] {
        let path = dir.path().join(format!("{launches}.tape"));
        let t = std::time::Instant::now();
        synthetic_tape(&path, bytes, launches);
        let write = t.elapsed().as_secs_f64();
        let len = std::fs::metadata(&path).unwrap().len();
        let seq = launches / 2 + 1;
        let open = best_of(20, || {
            let r = TapeReader::open(&path).unwrap();
            std::hint::black_box(r.launch(seq).unwrap());
        });
        let fetch = best_of(20, || {
            let r = TapeReader::open(&path).unwrap();
            let l = r.launch(seq).unwrap();
            std::hint::black_box(r.tensor_bytes(&l.begin.inputs[0]).unwrap());
        });
        println!(
            "{name}: {len} bytes, {launches} launches, written in {write:.2}s ({:.0} MiB/s); open+launch {:.3} ms; open+launch+tensor ({} KiB) {:.3} ms",
            mib_s(len as usize, write),
            open * 1e3,
            bytes as u64 / launches / 1024,
            fetch * 1e3
        );
    }
}

/// f32 values that went through bf16 (a bf16 model's activations widened to f32): low 16 bits zero.
fn via_bf16(v: &[f32]) -> Vec<f32> {
    v.iter()
        .map(|x| half::bf16::from_f32(*x).to_f32())
        .collect()
}

#[test]
#[ignore]
fn measure_codec_choices() {
    let mut rng = Rng(3);
    let n = 16 << 20 >> 2;
    let act = activations(&mut rng, n);
    let sets: Vec<(&str, Vec<u8>, usize)> = vec![
        ("activations f32", f32_bytes(&act), 4),
        (
            "softmax f32",
            f32_bytes(&probabilities(&mut rng, n, 512)),
            4,
        ),
        ("bf16-valued f32", f32_bytes(&via_bf16(&act)), 4),
        (
            "f16 activations",
            act.iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect(),
            2,
        ),
    ];
    println!();
    let mut sh = vec![0u8; 64 << 10];
    for (name, data, es) in &sets {
        let secs = best_of(5, || {
            for c in data.chunks(64 << 10) {
                greta::tape::chunk::shuffle(c, &mut sh[..c.len()], *es);
            }
        });
        println!(
            "{name:16} shuffle alone {:5.0} MiB/s",
            mib_s(data.len(), secs)
        );
        for level in [-1, 1, 3] {
            let mut z = zstd::bulk::Compressor::new(level).unwrap();
            for mode in ["plain", "shuffle", "planes"] {
                let mut out = 0usize;
                let secs = best_of(3, || {
                    out = 0;
                    for c in data.chunks(64 << 10) {
                        match mode {
                            "plain" => out += z.compress(c).unwrap().len(),
                            "shuffle" => {
                                greta::tape::chunk::shuffle(c, &mut sh[..c.len()], *es);
                                out += z.compress(&sh[..c.len()]).unwrap().len();
                            }
                            _ => {
                                greta::tape::chunk::shuffle(c, &mut sh[..c.len()], *es);
                                for p in sh[..c.len()].chunks(c.len() / es) {
                                    out += z.compress(p).unwrap().len().min(p.len() + 4);
                                }
                            }
                        }
                    }
                });
                println!(
                    "{name:16} level {level:3} {mode:8} ratio {:.3} {:5.0} MiB/s",
                    out as f64 / data.len() as f64,
                    mib_s(data.len(), secs)
                );
            }
        }
    }
}

#[test]
fn verify_reports_broken_dataflow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.tape");
    let mut w = TapeWriter::create(&path, &header(), WriterOptions::default()).unwrap();
    let mut exp = Expected {
        launches: Vec::new(),
        bytes: HashMap::new(),
        fingerprint: [0; 32],
    };
    let y = tref(
        &mut w,
        &mut exp,
        "y",
        &f32_bytes(&[1.0, 2.0, 3.0]),
        DType::F32,
    );
    let launch = |seq: u64, inputs: Vec<TensorRef>| LaunchBegin {
        seq,
        phase: Phase::Prefill,
        layer: Some(0),
        stage: Stage::Up,
        route: Route::new(Variant::Gemv, Precision::F32),
        backend: "cpu".into(),
        grid: None,
        block: None,
        params: Params::default(),
        inputs,
        foreign: None,
    };
    w.put_record(&Record::Begin(launch(0, vec![]))).unwrap();
    w.put_record(&Record::End(LaunchEnd {
        seq: 0,
        outputs: vec![y.clone()],
        duration_ns: 1,
    }))
    .unwrap();
    let mut wrong = y.clone();
    wrong.hash = [9; 32];
    wrong.storage = Storage::Producer { seq: 0, index: 0 };
    let mut dangling = y.clone();
    dangling.storage = Storage::Producer { seq: 5, index: 0 };
    let mut good = y.clone();
    good.storage = Storage::Producer { seq: 0, index: 0 };
    w.put_record(&Record::Begin(launch(
        1,
        vec![good.clone(), wrong.clone(), dangling.clone()],
    )))
    .unwrap();
    w.finish().unwrap();
    let r = TapeReader::open(&path).unwrap();
    assert_eq!(r.tensor_bytes(&good).unwrap(), f32_bytes(&[1.0, 2.0, 3.0]));
    assert!(matches!(
        r.tensor_bytes(&wrong),
        Err(TapeError::Corrupt { .. })
    ));
    assert!(matches!(
        r.tensor_bytes(&dangling),
        Err(TapeError::NoSuchLaunch(5))
    ));
    let v = r.verify();
    let whats: Vec<&str> = v.problems.iter().map(|p| p.what.as_str()).collect();
    assert_eq!(v.problems.len(), 2, "{whats:?}");
    assert!(
        whats[0].contains("differs from output 0 of launch 0"),
        "{whats:?}"
    );
    assert!(whats[1].contains("launch 5"), "{whats:?}");
}

#[test]
fn listing_and_fetching_do_not_touch_other_records() {
    // Damage the payload of the first records frame: the tape still opens by its trailer, entries come
    // from the index alone, other launches fetch, and the damaged ones fail with that frame's offset.
    let dir = tempfile::tempdir().unwrap();
    let (path, exp, pristine) = small_tape(dir.path());
    let regs = regions(&pristine);
    let rec = regs.iter().find(|r| r.2 == "records frame").unwrap();
    let mut b = pristine.clone();
    b[rec.1 - 1] ^= 0xFF;
    std::fs::write(&path, &b).unwrap();
    let r = TapeReader::open(&path).unwrap();
    assert!(r.truncation().is_none());
    let entries: Vec<IndexEntry> = r.entries().map(|e| e.unwrap()).collect();
    assert_eq!(entries.len(), exp.launches.len());
    let mut failed = 0;
    for e in &entries {
        let touches =
            e.begin.frame == rec.0 as u64 || e.end.is_some_and(|l| l.frame == rec.0 as u64);
        match r.launch(e.seq) {
            Ok(l) => {
                assert!(!touches);
                assert_eq!(Some(&l), exp.launches.iter().find(|x| x.begin.seq == e.seq));
            }
            Err(TapeError::Corrupt { offset, .. }) => {
                assert!(touches);
                assert_eq!(offset, rec.0 as u64);
                failed += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert!(failed > 0 && failed < entries.len());
    let v = r.verify();
    assert!(v.problems.iter().any(|p| p.offset == rec.0 as u64), "{v:?}");
}
