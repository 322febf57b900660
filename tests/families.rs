//! Qwen2, Qwen3 and Gemma 3 on greta's own engine (issue 29), on each family's tiny synthetic model
//! (`gen-model --preset qwen2|qwen3|gemma3`): prefill and decode on the CPU f32 and f64 routes with the
//! family's own stages, f32 logits close to f64's, prefill-then-decode against one longer prefill, a
//! recording that verifies clean and whose every launch the f64 reference judges, and (in check.rs) an
//! f64 golden per family.

use crate::engine::watched;
use crate::util::*;
use greta::engine::{GenOptions, Model, generate};
use greta::launch::{Phase, Precision, RoutePolicy, Stage};
use greta::model::synth::{Preset, generate as gen_model};
use std::path::PathBuf;

const PROMPT: &[u32] = &[5, 17, 42, 99, 3, 250, 7];

/// The family presets, with the stages each must launch beyond llama's.
const FAMILIES: [(Preset, &[Stage]); 3] = [
    (Preset::Qwen2, &[Stage::QBias, Stage::KBias, Stage::VBias]),
    (Preset::Qwen3, &[Stage::QNorm, Stage::KNorm]),
    (
        Preset::Gemma3,
        &[
            Stage::EmbedScale,
            Stage::QNorm,
            Stage::KNorm,
            Stage::AttnPostNorm,
            Stage::FfnPostNorm,
            Stage::Geglu,
        ],
    ),
];

/// The family's tiny model (Q8_0 matrices, seed 7), generated in `dir`.
fn model(dir: &std::path::Path, p: Preset) -> PathBuf {
    let path = dir.join(format!("{p}.gguf"));
    gen_model(p, greta::launch::DType::Q8_0, 7, &path).unwrap();
    path
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-30);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn opts(max: usize) -> GenOptions {
    GenOptions {
        max_tokens: max,
        stop: vec![],
        probe_last_token: false,
    }
}

#[test]
fn each_family_runs_its_stages_and_f32_is_close_to_f64() {
    let d = tmp();
    for (preset, stages) in FAMILIES {
        let m = Model::load(&model(d.path(), preset)).unwrap();
        let mut runs = Vec::new();
        for precision in [Precision::F32, Precision::F64] {
            let (mut e, seen) = watched(&m, 2, RoutePolicy::new(precision));
            let g = generate(&mut e, PROMPT, &opts(5)).unwrap();
            assert_eq!(g.generated_ids.len(), 5, "{preset} {precision}");
            let seen = seen.borrow();
            for s in stages {
                assert!(
                    seen.iter()
                        .any(|x| x.info.stage == *s && x.info.phase == Phase::Decode(0)),
                    "{preset} {precision}: no {s} launch in decode"
                );
            }
            let logits: Vec<f64> = seen
                .iter()
                .find(|s| s.info.phase == Phase::Prefill && s.info.stage == Stage::LmHead)
                .unwrap()
                .values
                .clone();
            runs.push((g.generated_ids, logits));
        }
        let r = rel(&runs[0].1, &runs[1].1);
        assert!(
            r < F32_VS_F64_MAX_REL && r > 0.0,
            "{preset}: f32 vs f64 logits, relative error {r:e}"
        );
        assert_eq!(runs[0].0, runs[1].0, "{preset}: f32 and f64 tokens differ");
    }
}

#[test]
fn each_family_decode_matches_a_longer_prefill() {
    let d = tmp();
    let n = PROMPT.len();
    for (preset, _) in FAMILIES {
        let m = Model::load(&model(d.path(), preset)).unwrap();
        let lm = |seen: &std::rc::Rc<std::cell::RefCell<Vec<crate::engine::Seen>>>, phase| {
            seen.borrow()
                .iter()
                .find(|s| s.info.phase == phase && s.info.stage == Stage::LmHead)
                .unwrap()
                .values
                .clone()
        };
        let (mut a, sa) = watched(&m, 2, RoutePolicy::new(Precision::F32));
        a.forward(Phase::Prefill, &PROMPT[..n - 1], 0).unwrap();
        a.forward(Phase::Decode(0), &PROMPT[n - 1..], n - 1)
            .unwrap();
        let (mut b, sb) = watched(&m, 2, RoutePolicy::new(Precision::F32));
        b.forward(Phase::Prefill, PROMPT, 0).unwrap();
        let r = rel(&lm(&sa, Phase::Decode(0)), &lm(&sb, Phase::Prefill));
        assert!(
            r < DECODE_VS_PREFILL_MAX_REL,
            "{preset}: decode vs longer prefill, relative error {r:e}"
        );
    }
}

#[test]
fn gemma3_local_layers_slide_and_global_layers_do_not() {
    // Tiny Gemma 3: window 4, layers 0-4 local (rope base 10000), layer 5 global (the file's base).
    let d = tmp();
    let m = Model::load(&model(d.path(), Preset::Gemma3)).unwrap();
    let (mut e, seen) = watched(&m, 2, RoutePolicy::new(Precision::F32));
    e.forward(Phase::Prefill, PROMPT, 0).unwrap();
    let seen = seen.borrow();
    let qk = |layer: u32| {
        seen.iter()
            .find(|s| s.info.stage == Stage::Qk && s.info.layer == Some(layer))
            .unwrap()
            .info
            .params
    };
    assert_eq!((qk(0).window, qk(0).rope_theta), (4, 10_000.0));
    assert_eq!((qk(5).window, qk(5).rope_theta), (0, 1_000_000.0));
    let rope = seen
        .iter()
        .find(|s| s.info.stage == Stage::RopeQ)
        .unwrap()
        .info
        .params;
    assert_eq!(rope.rope_mode, greta::launch::ROPE_NEOX);
}

#[test]
fn each_family_records_verifies_and_every_launch_is_judged() {
    let d = tmp();
    for (preset, stages) in FAMILIES {
        let m = model(d.path(), preset);
        let t = d.path().join(format!("{preset}.tape"));
        let (ms, ts) = (m.to_str().unwrap(), t.to_str().unwrap());
        greta_ok(&[
            "record",
            "--model",
            ms,
            "--tokens",
            "5,17,42,99,3,250,7",
            "--max-tokens",
            "3",
            "--ignore-eos",
            "--probe-last-token",
            "--out",
            ts,
        ]);
        let v = json(&greta_ok(&["verify", "--json", ts]));
        assert_eq!(v["clean"], true, "{preset}: {v}");
        let rows = json(&greta_ok(&["replay", ts, "--reference", "f64", "--json"]));
        let rows = rows.as_array().unwrap();
        assert!(rows.len() > 100, "{preset}: {} rows", rows.len());
        for r in rows {
            assert!(r["error"].is_null(), "{preset}: {r}");
            let rel = r["local"]["rel_l2"].as_f64();
            assert!(
                rel.is_some_and(|e| e < F32_LOCAL_MAX_REL_L2),
                "{preset} {} {}: local {}",
                r["phase"],
                r["stage"],
                r["local"]
            );
        }
        for s in stages {
            assert!(
                rows.iter().any(|r| r["stage"] == s.name()),
                "{preset}: no {s} judged"
            );
        }
        // Prefill's last row against decode step 0's re-run of it: the routes differ (gemm_tiled vs
        // gemv), so they diverge at the first matmul, and the diff says where.
        let (code, out, err) = greta_s(&["diff", ts, "--prefill-vs-decode", "--json"]);
        assert_eq!(code, 1, "{preset}: {out}{err}");
        assert_eq!(
            json(&out)["first_divergence"]["stage"],
            "q_proj",
            "{preset}"
        );
    }
}
