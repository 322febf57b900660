//! Issue 10: attention sub-stages derived from fused launches (`fused→manual`), and per-head figures.

use crate::util::{greta_ok, json, smollm2, tiny, tmp};
use std::path::Path;

const TOKENS: &str = "1,2,3,4,5,6";

fn record(model: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "record",
        "--model",
        model.to_str().unwrap(),
        "--tokens",
        TOKENS,
        "--max-tokens",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    greta_ok(&args);
}

/// Decode uses the fused route by default; its pv, derived by running the manual route on the fused
/// launch's recorded inputs, must be bit for bit the pv a `--route attention=manual` tape records for the
/// same inputs. Layer 0 of decode0 has the same inputs in both tapes (prefill runs the manual route in both,
/// and nothing fused ran before it in decode0).
fn derived_pv_equals_recorded_manual_pv(model: &Path) {
    let d = tmp();
    let (fused, manual) = (d.path().join("fused.tape"), d.path().join("manual.tape"));
    record(model, &fused, &[]);
    record(model, &manual, &["--route", "attention=manual"]);
    let sel = [
        "--phase", "decode0", "--layer", "0", "--stage", "pv", "--json",
    ];
    let mut a = vec!["replay", fused.to_str().unwrap()];
    a.extend_from_slice(&sel);
    let mut b = vec!["replay", manual.to_str().unwrap()];
    b.extend_from_slice(&sel);
    let (a, b) = (json(&greta_ok(&a)), json(&greta_ok(&b)));
    let (ra, rb) = (&a[0], &b[0]);
    assert_eq!(ra["stage"], "pv", "{ra}");
    assert_eq!(ra["derived"]["route"], "fused→manual", "{ra}");
    assert!(
        rb["derived"].is_null(),
        "the manual tape records pv itself: {rb}"
    );
    assert_eq!(rb["stage"], "pv");
    assert_eq!(
        ra["derived"]["hash"], rb["recorded_hash"],
        "derived pv (fused tape) vs recorded pv (manual tape)"
    );
    assert_eq!(ra["derived"]["hash"].as_str().unwrap().len(), 64);

    // export --substages writes the same derived pv; export --head writes head 0's slice of the output.
    let seq = ra["seq"].as_u64().unwrap().to_string();
    let ex = d.path().join("ex");
    greta_ok(&[
        "export",
        fused.to_str().unwrap(),
        &seq,
        "--out",
        ex.to_str().unwrap(),
        "--substages",
        "--head",
        "0",
    ]);
    let desc = json(&std::fs::read_to_string(ex.join("launch.json")).unwrap());
    let pv = desc["derived"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["stage"] == "pv")
        .unwrap();
    assert_eq!(pv["blake3"], rb["recorded_hash"], "{desc}");
    let data = |f: &str, n: usize| {
        let b = std::fs::read(ex.join(f)).unwrap();
        b[b.len() - n..].to_vec()
    };
    let hs = &desc["head_slices"][0];
    let n = hs["shape"][0].as_u64().unwrap() as usize;
    let whole_shape: Vec<usize> = desc["outputs"][0]["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    let total: usize = whole_shape.iter().product();
    // decode's fused output is one row [1, H*hd]: head 0 is its first hd elements.
    assert_eq!(whole_shape[0], 1);
    let whole = data("output0.npy", total * 4);
    assert_eq!(data("output0_head0.npy", n * 4), whole[..n * 4].to_vec());

    // show --head/--substages: head 0's slice has head_dim values, and each head's derived softmax row
    // sums to 1 (decode: one query row per head).
    let sh = json(&greta_ok(&[
        "show",
        fused.to_str().unwrap(),
        &seq,
        "--head",
        "0",
        "--substages",
        "--json",
    ]));
    let extra = sh["heads_and_substages"].as_array().unwrap();
    let hd = sh["params"]["head_dim"].as_u64().unwrap();
    let nh = sh["params"]["n_heads"].as_f64().unwrap();
    assert_eq!(extra[0]["len"].as_u64(), Some(hd), "{sh}");
    let sm = extra
        .iter()
        .find(|x| x["name"] == "softmax (fused→manual)")
        .unwrap();
    let total = sm["stats"]["abs_sum"].as_f64().unwrap();
    assert!(
        (total - nh).abs() < 1e-4 * nh,
        "softmax rows sum to 1: {sm}"
    );
}

#[test]
fn derived_pv_is_bit_exact_with_manual_route_tiny() {
    derived_pv_equals_recorded_manual_pv(&tiny());
}

#[test]
fn derived_pv_is_bit_exact_with_manual_route_smollm2() {
    derived_pv_equals_recorded_manual_pv(&smollm2());
}

/// A fault injected into one head's slice of a fused decode launch: `--by-head` names that head and no
/// other, the per-head figures add up to the whole tensor's, and `--head H` gives head H's row.
#[test]
fn by_head_names_the_faulted_head_and_head_slices_agree_with_the_whole() {
    let d = tmp();
    let bad = d.path().join("bad.tape");
    // SmolLM2: 9 query heads of 64; element 5*64+7 of the one-row attention output lies in head 5.
    let fault = "phase=decode0,layer=2,stage=attn,index=327,ulps=1000";
    record(&smollm2(), &bad, &["--inject-fault", fault]);
    let t = bad.to_str().unwrap();
    let sel = ["--phase", "decode0", "--layer", "2", "--stage", "attn"];
    let run = |extra: &[&str], code: i32| {
        let mut a = vec!["replay", t];
        a.extend_from_slice(&sel);
        a.extend_from_slice(extra);
        a.push("--json");
        let o = crate::util::greta(&a);
        assert_eq!(o.status.code(), Some(code), "{extra:?}");
        json(&String::from_utf8_lossy(&o.stdout))[0].clone()
    };
    let whole = run(&["--by-head"], 1);
    let heads = whole["by_head"].as_array().unwrap();
    assert_eq!(heads.len(), 9, "{whole}");
    let differing: Vec<u64> = heads
        .iter()
        .filter(|h| !h["compare"]["bit_exact"].as_bool().unwrap())
        .map(|h| h["head"].as_u64().unwrap())
        .collect();
    assert_eq!(differing, vec![5], "only the faulted head differs");
    let max_abs = heads
        .iter()
        .map(|h| h["compare"]["max_abs"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(max_abs, whole["max_abs"].as_f64().unwrap());
    let n: u64 = heads
        .iter()
        .map(|h| h["compare"]["n"].as_u64().unwrap())
        .sum();
    assert_eq!(n, 9 * 64);
    assert_eq!(whole["max_ulp"].as_u64(), Some(1000));
    let one = run(&["--head", "5"], 1);
    assert_eq!(one["heads"], serde_json::json!([5]));
    assert_eq!(one["max_abs"], heads[5]["compare"]["max_abs"], "{one}");
    assert_eq!(one["max_ulp"], heads[5]["compare"]["max_ulp"], "{one}");
    let other = run(&["--head", "4"], 0);
    assert_eq!(other["max_abs"].as_f64(), Some(0.0), "{other}");
}

/// The published table: prefill_last vs decode0 for layer 0 head 0, one row per attention sub-stage.
#[test]
fn substages_table_for_one_head() {
    let d = tmp();
    let t = d.path().join("t.tape");
    record(&smollm2(), &t, &["--probe-last-token"]);
    let (code, out, err) = crate::util::greta_s(&[
        "diff",
        t.to_str().unwrap(),
        "--prefill-vs-decode",
        "--layer",
        "0",
        "--head",
        "0",
        "--substages",
    ]);
    assert_eq!(
        code, 1,
        "default routes: prefill and decode differ at layer 0\n{out}{err}"
    );
    for stage in ["q ", "k ", "v ", "qk ", "softmax ", "pv ", "attn_out "] {
        assert!(
            out.lines().any(|l| l.starts_with(stage)),
            "row {stage:?} missing:\n{out}"
        );
    }
    assert!(out.contains("fused→manual"), "{out}");
}
