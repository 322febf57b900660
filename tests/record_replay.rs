//! Record, read back, replay, diff — end to end through the `greta` binary on the tiny model.

use crate::util::*;
use greta::tape::{Storage, TapeReader};
use std::path::Path;

fn record(dir: &Path, name: &str, extra: &[&str]) -> std::path::PathBuf {
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

#[test]
fn recording_does_not_change_outputs() {
    let d = tmp();
    let model = tiny();
    let run = json(&greta_ok(&[
        "run",
        "--model",
        model.to_str().unwrap(),
        "--tokens",
        "5,17,42,99,3,250,7",
        "--max-tokens",
        "4",
        "--ignore-eos",
        "--json",
    ]));
    let t = record(d.path(), "a.tape", &["--json"]);
    let r = TapeReader::open(&t).unwrap();
    // Same tokens, and every output hash on the tape equals the hash of a replay of that launch from its
    // recorded inputs (checked in `every_launch_replays_bit_exact`); here: same generation.
    let m = json(&greta_ok(&["manifest", t.to_str().unwrap()]));
    assert!(m["launches"].as_array().unwrap().len() == r.len());
    let ids: Vec<u64> = (0..r.len() as u64)
        .filter_map(|s| {
            let l = r.launch(s).unwrap();
            (l.begin.stage == greta::launch::Stage::Argmax).then(|| {
                let b = r.tensor_bytes(&l.end.unwrap().outputs[0]).unwrap();
                i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64
            })
        })
        .collect();
    let run_ids: Vec<u64> = run["generated_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(ids, run_ids, "argmax outputs on the tape vs greta run");
}

#[test]
fn round_trip_every_tensor_and_commands_agree() {
    let d = tmp();
    let t = record(d.path(), "rt.tape", &[]);
    let r = TapeReader::open(&t).unwrap();
    assert!(r.truncation().is_none());
    let ls = json(&greta_ok(&["ls", t.to_str().unwrap(), "--json"]));
    assert_eq!(ls.as_array().unwrap().len(), r.len());
    let mut checked = 0;
    for s in 0..r.len() as u64 {
        let l = r.launch(s).unwrap();
        for t in l
            .begin
            .inputs
            .iter()
            .chain(&l.end.as_ref().unwrap().outputs)
        {
            if let Storage::Weight { .. } = t.storage {
                continue;
            }
            let b = r.tensor_bytes(t).unwrap();
            assert_eq!(blake3::hash(&b).as_bytes(), &t.hash);
            checked += 1;
        }
    }
    assert!(checked > 100);
    // show and export agree with the tape.
    let seq = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stage"] == "q_proj" && e["phase"] == "decode0")
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    let show = json(&greta_ok(&[
        "show",
        t.to_str().unwrap(),
        &seq.to_string(),
        "--json",
        "--values",
        "3",
    ]));
    let l = r.launch(seq).unwrap();
    assert_eq!(
        show["outputs"][0]["blake3"],
        greta::analysis::hex(&l.end.as_ref().unwrap().outputs[0].hash)
    );
    assert_eq!(show["route"], "gemv/f32");
    let ex = d.path().join("ex");
    greta_ok(&[
        "export",
        t.to_str().unwrap(),
        &seq.to_string(),
        "--out",
        ex.to_str().unwrap(),
    ]);
    let npy = std::fs::read(ex.join("output0.npy")).unwrap();
    let want = r.tensor_bytes(&l.end.as_ref().unwrap().outputs[0]).unwrap();
    assert_eq!(&npy[npy.len() - want.len()..], want.as_slice());
    let lj = json(&std::fs::read_to_string(ex.join("launch.json")).unwrap());
    assert_eq!(lj["stage"], "q_proj");
    // verify: clean.
    let (code, out, _) = greta_s(&["verify", t.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("clean"));
}

#[test]
fn every_launch_replays_bit_exact() {
    let d = tmp();
    for precision in ["f32", "f64"] {
        let t = record(
            d.path(),
            &format!("{precision}.tape"),
            &["--precision", precision],
        );
        for phase in ["prefill", "decode0", "decode2"] {
            let (code, out, err) =
                greta_s(&["replay", t.to_str().unwrap(), "--phase", phase, "--json"]);
            assert_eq!(code, 0, "{precision} {phase}: {err}\n{out}");
            let rows = json(&out);
            assert!(rows.as_array().unwrap().len() > 20);
            assert!(
                rows.as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r["bit_exact"] == true)
            );
        }
    }
}

#[test]
fn f64_reference_gives_small_nonzero_local_error() {
    let d = tmp();
    let t = record(d.path(), "ref.tape", &[]);
    let rows = json(&greta_ok(&[
        "replay",
        t.to_str().unwrap(),
        "--phase",
        "decode1",
        "--layer",
        "1",
        "--reference",
        "f64",
        "--json",
    ]));
    let rows = rows.as_array().unwrap();
    let q = rows.iter().find(|r| r["stage"] == "q_proj").unwrap();
    // f32 against f64 on the same inputs: a small, non-zero error (ULP counts blow up near zero, so the
    // bound is on the relative L2 error).
    let ulp = q["local"]["max_ulp"].as_u64().unwrap();
    let rel = q["local"]["rel_l2"].as_f64().unwrap();
    assert!(
        ulp > 0 && rel > 0.0 && rel < F32_LOCAL_MAX_REL_L2,
        "q_proj local error {ulp} ULP, rel L2 {rel:e}"
    );
    // The inherited error (the f32 run against a whole-model f64 run) is real: finite and non-zero, since
    // q_proj's f32 inputs already carry the f32 error of embed and attn_norm.
    let inherited = q["inherited"]["max_abs"].as_f64().unwrap();
    assert!(
        inherited.is_finite() && inherited > 0.0,
        "q_proj inherited error {inherited:e}"
    );
    assert!(
        rows.iter().all(|r| r["inherited"].is_object()),
        "inherited error for every stage"
    );
}

#[test]
fn forced_route_is_found_at_the_right_first_stage() {
    let d = tmp();
    let a = record(d.path(), "a.tape", &[]);
    let b = record(d.path(), "b.tape", &["--route", "down=gemv"]);
    let (code, out, _) = greta_s(&["diff", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    let v = json(&out);
    let f = &v["first_divergence"];
    assert_eq!(
        (
            f["phase"].as_str(),
            f["layer"].as_u64(),
            f["stage"].as_str()
        ),
        (Some("prefill"), Some(0), Some("down"))
    );
    assert!(f["max_ulp"].as_u64().unwrap() > 0);
    // Thread counts: identical, with the note that this is the same computation.
    let c = record(d.path(), "c.tape", &["--threads", "1"]);
    let e = record(d.path(), "e.tape", &["--threads", "2"]);
    let (code, out, err) = greta_s(&["diff", c.to_str().unwrap(), e.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("identical"));
    assert!(err.contains("same computation"), "{err}");
}

#[test]
fn f32_against_f64_tape_skips_equal_values() {
    // embed rows are the dequantised weights: the same values in f32 and f64, so not a divergence;
    // the first one is a computed stage.
    let d = tmp();
    let a = record(d.path(), "a.tape", &["--precision", "f32"]);
    let b = record(d.path(), "b.tape", &["--precision", "f64"]);
    let (code, out, _) = greta_s(&["diff", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    let v = json(&out);
    assert_ne!(
        v["first_divergence"]["stage"].as_str(),
        Some("embed"),
        "{out}"
    );
    let embed = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage"] == "embed")
        .unwrap();
    assert_eq!(embed["differing"], 0, "{out}");
}

#[test]
fn injected_fault_is_found_exactly() {
    let d = tmp();
    let a = record(d.path(), "a.tape", &[]);
    let b = record(
        d.path(),
        "b.tape",
        &[
            "--inject-fault",
            "phase=decode1,layer=1,stage=o_proj,index=5,ulps=3",
        ],
    );
    let v = json(&greta_s(&["diff", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]).1);
    let f = &v["first_divergence"];
    assert_eq!(f["phase"], "decode1");
    assert_eq!(f["layer"], 1);
    assert_eq!(f["stage"], "o_proj");
    assert_eq!(f["index"], 5);
    assert_eq!(f["max_ulp"], 3);
    // Replay finds it too: only that launch fails to reproduce.
    let rows = json(
        &greta_s(&[
            "replay",
            b.to_str().unwrap(),
            "--phase",
            "decode1",
            "--layer",
            "1",
            "--json",
        ])
        .1,
    );
    let bad: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["bit_exact"] == false)
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["stage"], "o_proj");
    assert_eq!(bad[0]["first"]["index"], 5);
    assert_eq!(bad[0]["max_ulp"], 3);
}

#[test]
fn prefill_vs_decode() {
    let d = tmp();
    let t = record(d.path(), "p.tape", &["--probe-last-token"]);
    let (code, out, _) = greta_s(&["diff", t.to_str().unwrap(), "--prefill-vs-decode", "--json"]);
    assert_eq!(
        code, 1,
        "default routes: gemm_tiled (prefill) and gemv (decode) reduce differently"
    );
    let v = json(&out);
    assert_eq!(v["first_divergence"]["layer"], 0);
    assert_eq!(v["first_divergence"]["stage"], "q_proj");
    // Stages before the first matmul are equal.
    let rows = v["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .take_while(|r| r["stage"] != "q_proj")
            .all(|r| r["equal"] == true)
    );
    // Invariant routes: bit-exact at every stage.
    let i = record(
        d.path(),
        "i.tape",
        &["--probe-last-token", "--routes", "invariant"],
    );
    let (code, out, _) = greta_s(&["diff", i.to_str().unwrap(), "--prefill-vs-decode"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("bit-identical at every compared stage"));
}

#[test]
fn hashes_capture_is_small_and_still_diffs() {
    let d = tmp();
    let full = record(d.path(), "full.tape", &[]);
    let hashes = record(d.path(), "hashes.tape", &["--capture", "hashes"]);
    let (fs, hs) = (
        std::fs::metadata(&full).unwrap().len(),
        std::fs::metadata(&hashes).unwrap().len(),
    );
    assert!(hs * 3 < fs, "hashes tape {hs} vs full {fs}");
    let (code, out, _) = greta_s(&["diff", full.to_str().unwrap(), hashes.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let m1 = json(&greta_ok(&["manifest", full.to_str().unwrap()]));
    let m2 = json(&greta_ok(&["manifest", hashes.to_str().unwrap()]));
    assert_eq!(m1["fingerprint"], m2["fingerprint"]);
}

#[test]
fn smollm2_replay_reference_and_prefill_vs_decode() {
    let d = tmp();
    let m = smollm2();
    let ms = m.to_str().unwrap();
    let rec = |name: &str, extra: &[&str]| {
        let out = d.path().join(name);
        let mut a = vec![
            "record",
            "--model",
            ms,
            "--chat",
            "--prompt",
            "What is the capital of France?",
            "--max-tokens",
            "2",
            "--probe-last-token",
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        greta_ok(&a);
        out
    };
    let t = rec("s.tape", &[]);
    let ts = t.to_str().unwrap();
    // Every launch of decode step 0 replays bit-exact on its own route.
    let rows = json(&greta_ok(&["replay", ts, "--phase", "decode0", "--json"]));
    assert_eq!(
        rows.as_array().unwrap().len(),
        30 * 16 + 4,
        "30 layers of 16 launches (fused attention) + 4 global"
    );
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["bit_exact"] == true)
    );
    // f32 vs the f64 reference on the same inputs: small, non-zero.
    let r = json(&greta_ok(&[
        "replay",
        ts,
        "--phase",
        "decode0",
        "--layer",
        "29",
        "--stage",
        "down",
        "--reference",
        "f64",
        "--json",
    ]));
    let local = &r[0]["local"];
    assert!(
        local["max_ulp"].as_u64().unwrap() > 0
            && local["rel_l2"].as_f64().unwrap() < F32_LOCAL_MAX_REL_L2,
        "{local}"
    );
    assert!(
        r[0]["inherited"]["rel_l2"].as_f64().unwrap() >= local["rel_l2"].as_f64().unwrap(),
        "{r}"
    );
    // Default routes: prefill (gemm_tiled) and decode (gemv) first differ at the first matmul.
    let v = json(&greta_s(&["diff", ts, "--prefill-vs-decode", "--json"]).1);
    assert_eq!(
        (
            v["first_divergence"]["layer"].as_u64(),
            v["first_divergence"]["stage"].as_str()
        ),
        (Some(0), Some("q_proj"))
    );
    // Invariant routes: bit-identical at every stage.
    let i = rec("i.tape", &["--routes", "invariant"]);
    let (code, out, _) = greta_s(&["diff", i.to_str().unwrap(), "--prefill-vs-decode"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn crash_inside_a_kernel_names_the_launch() {
    let d = tmp();
    let out = d.path().join("crash.tape");
    let model = tiny();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_greta"))
        .args([
            "record",
            "--model",
            model.to_str().unwrap(),
            "--tokens",
            "5,17,42",
            "--max-tokens",
            "3",
            "--sync",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("GRETA_DEBUG_CRASH_AT_SEQ", "40")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the process was meant to die");
    // The tape was never completed: it is left as .incomplete and opens by scanning.
    assert!(!out.exists());
    let inc = greta::tape::incomplete_path(&out);
    let (code, text, err) = greta_s(&["ls", inc.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("truncated"), "{err}");
    let last = text.lines().last().unwrap();
    assert!(
        last.trim_start().starts_with("40 ") && last.contains("INCOMPLETE"),
        "{text}"
    );
    // Its inputs are on the tape.
    let show = json(&greta_ok(&["show", inc.to_str().unwrap(), "40", "--json"]));
    assert_eq!(show["complete"], false);
    assert!(!show["inputs"].as_array().unwrap().is_empty());
}
