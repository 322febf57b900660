//! Diagnosis that points at the cause (issue 13): params and provenance in diff and goldens, the first
//! significant divergence, summaries, sign flips, whole-tape replay, golden reruns, every bad KV row.

use crate::util::*;
use greta::launch::Stage;
use greta::tape::{Launch, Record, Storage, TapeHeader, TapeReader, TapeWriter, WriterOptions};
use std::path::{Path, PathBuf};

pub(crate) fn record(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let model = tiny();
    let mut args = vec![
        "record",
        "--model",
        model.to_str().unwrap(),
        "--tokens",
        "5,17,42,99,3,250,7",
        "--max-tokens",
        "4",
        "--ignore-eos",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    greta_ok(&args);
    out
}

/// Copies a tape launch by launch, letting `edit` change the header and each launch (tensor bytes stored
/// as chunks are copied; references to producers, rows and weights are kept as they are).
pub(crate) fn rewrite(
    src: &Path,
    dst: &Path,
    header: impl FnOnce(&mut TapeHeader),
    mut edit: impl FnMut(&mut Launch, &TapeReader, &mut TapeWriter),
) {
    let r = TapeReader::open(src).unwrap();
    let mut h = r.header().clone();
    header(&mut h);
    let mut w = TapeWriter::create(dst, &h, WriterOptions::default()).unwrap();
    let seqs: Vec<u64> = r.entries().map(|e| e.unwrap().seq).collect();
    for s in seqs {
        let mut l = r.launch(s).unwrap();
        edit(&mut l, &r, &mut w);
        let mut refs: Vec<&mut greta::tape::TensorRef> = l.begin.inputs.iter_mut().collect();
        if let Some(e) = l.end.as_mut() {
            refs.extend(e.outputs.iter_mut());
        }
        for t in refs {
            if let Storage::Chunks(cs) = &t.storage {
                if cs.iter().all(|c| w.has_chunk(c)) {
                    continue; // already written (an edit stored it)
                }
                let b = r.tensor_bytes(t).unwrap();
                t.storage = Storage::Chunks(w.put_tensor(&b, 4).unwrap());
            }
        }
        w.put_record(&Record::Begin(l.begin.clone())).unwrap();
        if let Some(e) = l.end {
            w.put_record(&Record::End(e)).unwrap();
        }
    }
    w.finish().unwrap();
}

fn max_width(s: &str) -> usize {
    s.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

#[test]
fn route_noise_first_then_the_injected_fault_is_first_significant() {
    let d = tmp();
    let clean = record(d.path(), "c.tape", &["--probe-last-token"]);
    let v = json(
        &greta_s(&[
            "diff",
            clean.to_str().unwrap(),
            "--prefill-vs-decode",
            "--json",
        ])
        .1,
    );
    assert_eq!(
        (
            v["first_divergence"]["layer"].as_u64(),
            v["first_divergence"]["stage"].as_str()
        ),
        (Some(0), Some("q_proj")),
        "default routes: the first bit difference is gemm_tiled vs gemv noise"
    );
    assert!(
        v["first_significant"].is_null(),
        "noise only: {}",
        v["first_significant"]
    );
    let bad = record(
        d.path(),
        "f.tape",
        &[
            "--probe-last-token",
            "--inject-fault",
            "phase=decode0,layer=1,stage=down,index=3,ulps=100000000",
        ],
    );
    let (code, out, _) = greta_s(&[
        "diff",
        bad.to_str().unwrap(),
        "--prefill-vs-decode",
        "--json",
    ]);
    assert_eq!(code, 1);
    let v = json(&out);
    assert_eq!(v["first_divergence"]["stage"], "q_proj");
    let s = &v["first_significant"];
    assert_eq!(
        (s["layer"].as_u64(), s["stage"].as_str()),
        (Some(1), Some("down")),
        "{s}"
    );
    assert!(
        s["err"].as_f64().unwrap() > 1000.0 * s["inherited"].as_f64().unwrap(),
        "{s}"
    );
    // The summary names both; the full table is behind --all; rows fit in 120 columns.
    let (_, text, _) = greta_s(&["diff", bad.to_str().unwrap(), "--prefill-vs-decode"]);
    assert!(text.contains("first divergence: layer 0 q_proj"), "{text}");
    assert!(text.contains("first significant: layer 1 down"), "{text}");
    assert!(
        text.lines().count() < 20,
        "a summary, not the table:\n{text}"
    );
    let (_, all, _) = greta_s(&[
        "diff",
        bad.to_str().unwrap(),
        "--prefill-vs-decode",
        "--all",
    ]);
    assert!(all.lines().count() > 40, "{all}");
    assert!(max_width(&all) <= 120, "{all}");
}

#[test]
fn tape_diff_small_fault_is_noise_sized_and_a_large_one_is_significant() {
    let d = tmp();
    let a = record(d.path(), "a.tape", &[]);
    let small = record(
        d.path(),
        "s.tape",
        &[
            "--inject-fault",
            "phase=decode1,layer=1,stage=o_proj,index=5,ulps=3",
        ],
    );
    let large = record(
        d.path(),
        "l.tape",
        &[
            "--inject-fault",
            "phase=decode1,layer=0,stage=gate,index=5,ulps=-2000000000",
        ],
    );
    let v = json(
        &greta_s(&[
            "diff",
            a.to_str().unwrap(),
            small.to_str().unwrap(),
            "--json",
        ])
        .1,
    );
    assert_eq!(v["first_divergence"]["stage"], "o_proj");
    assert!(
        v["first_significant"].is_null(),
        "3 ULP in one element: {}",
        v["first_significant"]
    );
    assert!(v["param_diffs"].as_array().unwrap().is_empty());
    let (code, out, _) = greta_s(&[
        "diff",
        a.to_str().unwrap(),
        large.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 1);
    let v = json(&out);
    let s = &v["first_significant"];
    assert_eq!(
        (
            s["phase"].as_str(),
            s["layer"].as_u64(),
            s["stage"].as_str(),
            s["index"].as_u64()
        ),
        (Some("decode1"), Some(0), Some("gate"), Some(5)),
        "{s}"
    );
    // -2e9 ULP moves the value across zero: a sign flip, not a 2e9 ULP figure.
    let gate = v["launches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["stage"] == "gate")
        .unwrap();
    assert_eq!(gate["compare"]["sign_flips"], 1, "{gate}");
    assert!(
        gate["compare"]["max_ulp"].as_u64().unwrap() < 1_000_000_000,
        "{gate}"
    );
    let (_, text, _) = greta_s(&["diff", a.to_str().unwrap(), large.to_str().unwrap()]);
    assert!(
        text.contains("first significant: decode1 layer 0 gate"),
        "{text}"
    );
    assert!(text.contains("worst stages"), "{text}");
    let (_, all, _) = greta_s(&[
        "diff",
        a.to_str().unwrap(),
        large.to_str().unwrap(),
        "--all",
    ]);
    assert!(max_width(&all) <= 120, "{all}");
}

#[test]
fn params_that_change_no_bit_still_differ() {
    let d = tmp();
    let a = record(d.path(), "a.tape", &[]);
    let b = d.path().join("b.tape");
    let mut n = 0;
    rewrite(
        &a,
        &b,
        |_| {},
        |l, _, _| {
            if l.begin.stage == Stage::FinalNorm && n == 0 {
                l.begin.params.eps = 9.99e-6;
                n += 1;
            }
        },
    );
    let eps = TapeReader::open(&a).unwrap();
    let seq = eps
        .entries()
        .map(|e| e.unwrap())
        .find(|e| e.stage == Stage::FinalNorm)
        .unwrap()
        .seq;
    let orig = eps.launch(seq).unwrap().begin.params.eps;
    let (code, out, _) = greta_s(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(code, 1, "equal output bits, different params: {out}");
    assert!(
        out.contains("identical: every aligned launch has the same output hashes"),
        "{out}"
    );
    // The model's f32 epsilon prints as given (issue 28: it printed as 9.999999747378752e-6).
    assert_eq!(orig, f64::from(1e-5f32));
    let want = format!("params differ at seq {seq} prefill - final_norm: eps 1e-5 vs 9.99e-6");
    assert!(out.contains(&want), "want `{want}` in:\n{out}");
    let v = json(&greta_s(&["diff", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]).1);
    assert_eq!(v["param_diffs"].as_array().unwrap().len(), 1);
}

#[test]
fn provenance_is_recorded_and_diff_says_when_builds_differ() {
    let d = tmp();
    let a = record(d.path(), "a.tape", &[]);
    let h = TapeReader::open(&a).unwrap().header().clone();
    let p = h.provenance.clone().expect("record writes provenance");
    assert_eq!(p.binary_blake3.as_deref().map(str::len), Some(64));
    assert!(p.source_hashes.iter().any(|(k, _)| k == "src/backend/cpu"));
    assert!(h.options_json.contains("max_tokens"));
    let b = record(d.path(), "b.tape", &[]);
    let (code, _, err) = greta_s(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(err.contains("same computation (same build"), "{err}");
    // Another build (here: another commit and binary written into the header).
    let c = d.path().join("c.tape");
    rewrite(
        &b,
        &c,
        |h| {
            let p = h.provenance.as_mut().unwrap();
            p.git_commit = Some("0123456789abcdef".into());
            p.binary_blake3 = Some("f".repeat(64));
        },
        |_, _, _| {},
    );
    let (code, out, err) = greta_s(&["diff", a.to_str().unwrap(), c.to_str().unwrap()]);
    assert_eq!(code, 0, "same outputs");
    assert!(!err.contains("same computation"), "{err}");
    assert!(
        out.contains("builds differ: git commit") && out.contains("vs 0123456789abcdef"),
        "{out}"
    );
    assert!(out.contains("greta binary blake3"), "{out}");
}

#[test]
fn replay_without_selection_replays_every_launch() {
    let d = tmp();
    let t = record(d.path(), "a.tape", &[]);
    let n = TapeReader::open(&t).unwrap().len();
    let rows = json(&greta_ok(&["replay", t.to_str().unwrap(), "--json"]));
    assert_eq!(rows.as_array().unwrap().len(), n);
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["bit_exact"] == true)
    );
    let rows = json(&greta_ok(&[
        "replay",
        t.to_str().unwrap(),
        "--reference",
        "f64",
        "--json",
    ]));
    assert_eq!(rows.as_array().unwrap().len(), n);
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["inherited"].is_object()
                || r["stage"] == "argmax"
                || r["stage"] == "kv_write")
    );
}

#[test]
fn golden_alone_reruns_its_options_and_checks_params() {
    let d = tmp();
    let m = tiny();
    let ms = m.to_str().unwrap();
    let g = d.path().join("g.json");
    let gs = g.to_str().unwrap();
    greta_ok(&[
        "check",
        "--model",
        ms,
        "--tokens",
        "5,17,42,99",
        "--max-tokens",
        "3",
        "--precision",
        "f64",
        "--route",
        "down=gemv",
        "--golden",
        gs,
        "--bless",
    ]);
    let golden = json(&std::fs::read_to_string(&g).unwrap());
    assert!(
        golden["params"][1].as_str().unwrap().contains("eps="),
        "{golden}"
    );
    // Only the golden (and where the model is): same options, identical.
    let out = greta_ok(&["check", "--golden", gs, "--model", ms]);
    assert!(out.contains("identical"), "{out}");
    // A params line that no output hash shows: DIFFERENT, naming the field.
    let mut edited = golden.clone();
    let line = edited["params"][1].as_str().unwrap().to_string();
    let eps = line
        .split_whitespace()
        .find(|t| t.starts_with("eps="))
        .unwrap()
        .to_string();
    edited["params"][1] = line.replace(&eps, "eps=9.99e-6").into();
    std::fs::write(&g, serde_json::to_string(&edited).unwrap()).unwrap();
    let (code, out, _) = greta_s(&["check", "--golden", gs, "--model", ms]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("every output hash matches"), "{out}");
    assert!(
        out.contains("params differ at seq 1 attn_norm: eps 9.99e-6 vs"),
        "{out}"
    );
    // Options that contradict the golden are an error.
    let (code, _, err) = greta_s(&["check", "--golden", gs, "--model", ms, "--precision", "f64"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("comes from the golden") || err.contains("come from the golden"),
        "{err}"
    );
}

#[test]
fn verify_names_every_bad_kv_row_and_who_wrote_it() {
    let d = tmp();
    let a = record(d.path(), "a.tape", &[]);
    let b = d.path().join("b.tape");
    // decode0 layer 1: the k_cache read holds prefill row 1's keys at positions 2 and 3.
    let mut target = None;
    rewrite(
        &a,
        &b,
        |_| {},
        |l, r, w| {
            let hit = l.begin.phase.to_string() == "decode0"
                && l.begin.layer == Some(1)
                && matches!(l.begin.stage, Stage::Attn | Stage::Qk);
            if !hit || target.is_some() {
                return;
            }
            let k = l
                .begin
                .inputs
                .iter_mut()
                .find(|t| t.role == "k_cache")
                .unwrap();
            let mut bytes = r.tensor_bytes(k).unwrap();
            let n = k.shape[0] as usize;
            let rl = bytes.len() / n;
            let row1 = bytes[rl..2 * rl].to_vec();
            bytes[2 * rl..3 * rl].copy_from_slice(&row1);
            bytes[3 * rl..4 * rl].copy_from_slice(&row1);
            k.hash = *blake3::hash(&bytes).as_bytes();
            k.storage = Storage::Chunks(w.put_tensor(&bytes, 4).unwrap());
            target = Some(l.begin.seq);
        },
    );
    let (code, out, _) = greta_s(&["verify", b.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("k_cache row")).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[0].contains("k_cache row 2 differs") && rows[1].contains("k_cache row 3 differs"),
        "{out}"
    );
    assert!(
        rows[0].contains("it holds the row kv_write of prefill position 1 wrote"),
        "{out}"
    );
    let (code, _, _) = greta_s(&["verify", a.to_str().unwrap()]);
    assert_eq!(code, 0);
}

#[test]
fn nondeterminism_names_the_first_differing_element() {
    let m = tiny();
    let (code, out, _) = greta_s(&[
        "check",
        "--model",
        m.to_str().unwrap(),
        "--tokens",
        "5,17,42",
        "--max-tokens",
        "2",
        "--runs",
        "2",
        "--inject-fault",
        "phase=decode0,layer=1,stage=up,index=9,ulps=5",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("decode0 layer 1 up"), "{out}");
    assert!(
        out.contains("first differing element: index 9 [0, 9]:"),
        "{out}"
    );
    let v = json(
        &greta_s(&[
            "check",
            "--model",
            m.to_str().unwrap(),
            "--tokens",
            "5,17,42",
            "--max-tokens",
            "2",
            "--runs",
            "2",
            "--json",
            "--inject-fault",
            "phase=decode0,layer=1,stage=up,index=9,ulps=5",
        ])
        .1,
    );
    let e = &v["mismatches"][0]["element"];
    assert_eq!(e["index"], 9, "{v}");
    assert_ne!(e["a"], e["b"]);
    assert_eq!(v["mismatches"][0]["compare"]["max_ulp"], 5);
}

#[test]
fn smollm2_noise_is_not_significant_and_a_layer_12_fault_is() {
    let d = tmp();
    let m = smollm2();
    let rec = |name: &str, extra: &[&str]| {
        let out = d.path().join(name);
        let mut a = vec![
            "record",
            "--model",
            m.to_str().unwrap(),
            "--chat",
            "--prompt",
            "What is the capital of France?",
            "--max-tokens",
            "1",
            "--probe-last-token",
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        greta_ok(&a);
        out
    };
    let clean = rec("c.tape", &[]);
    let v = json(
        &greta_s(&[
            "diff",
            clean.to_str().unwrap(),
            "--prefill-vs-decode",
            "--json",
        ])
        .1,
    );
    assert_eq!(v["first_divergence"]["stage"], "q_proj");
    assert!(
        v["first_significant"].is_null(),
        "{}",
        v["first_significant"]
    );
    let bad = rec(
        "b.tape",
        &[
            "--inject-fault",
            "phase=decode0,layer=12,stage=down,index=7,ulps=100000000",
        ],
    );
    let v = json(
        &greta_s(&[
            "diff",
            bad.to_str().unwrap(),
            "--prefill-vs-decode",
            "--json",
        ])
        .1,
    );
    assert_eq!(v["first_divergence"]["stage"], "q_proj");
    let s = &v["first_significant"];
    assert_eq!(
        (s["layer"].as_u64(), s["stage"].as_str()),
        (Some(12), Some("down")),
        "{s}"
    );
}
