//! Open capture (issue 9): another engine writes tapes through greta's capture API; version-1 tapes
//! still read.

use crate::util::{greta_ok, greta_s, json, tiny, tmp};
use greta::capture::{
    CaptureError, CaptureHeader, CaptureOptions, CaptureRecorder, Durability, LaunchDesc,
    ModelDesc, TensorIn, TensorOut,
};
use greta::launch::{DType, Phase, Stage, Variant};
use greta::tape::{Storage, TapeReader};
use std::path::Path;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn header_with_model(gguf: &Path) -> CaptureHeader {
    CaptureHeader {
        model: Some(ModelDesc {
            description: serde_json::json!({"architecture": "llama", "n_layers": 2}),
            gguf: Some(gguf.to_path_buf()),
            gguf_blake3: None,
        }),
        ..CaptureHeader::new("toy-engine", "1.2.3")
    }
}

/// RMSNorm in f32 on the caller's side, as a foreign engine would compute it.
fn rmsnorm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let r = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(a, b)| a * r * b).collect()
}

#[test]
fn foreign_launches_round_trip() {
    let d = tmp();
    let path = d.path().join("foreign.tape");
    let model = tiny();
    let rec = CaptureRecorder::create(&path, header_with_model(&model), CaptureOptions::default())
        .unwrap();
    let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
    let w = vec![1.0f32; 64];
    let y = rmsnorm(&x, &w, 1e-5);
    // Roles given out of greta's order: stored in greta's (x, w).
    let desc =
        LaunchDesc::new(Phase::Prefill, Some(0), "attn_norm", "toy_rmsnorm_f32").param("eps", 1e-5);
    let ids = rec
        .launch(
            &desc,
            vec![
                (
                    "w".into(),
                    TensorIn::host(DType::F32, vec![64], f32_bytes(&w)),
                ),
                (
                    "x".into(),
                    TensorIn::host(DType::F32, vec![1, 64], f32_bytes(&x)),
                ),
            ],
            vec![(
                "out".into(),
                TensorOut::new(DType::F32, vec![1, 64], f32_bytes(&y)),
            )],
        )
        .unwrap();
    assert_eq!(ids.len(), 1);
    // A free-form stage reading that output by id, and a weight by GGUF name.
    let desc = LaunchDesc::new(Phase::Prefill, Some(0), "my_fused_thing", "toy_fused<128>")
        .param("alpha", 0.5);
    let ids2 = rec
        .launch(
            &desc,
            vec![
                ("h".into(), TensorIn::Id(ids[0])),
                ("wq".into(), TensorIn::Weight("blk.0.attn_q.weight".into())),
            ],
            vec![(
                "o".into(),
                TensorOut {
                    id: Some(42),
                    ..TensorOut::new(DType::F32, vec![1, 4], f32_bytes(&[1.0, 2.0, 3.0, 4.0]))
                },
            )],
        )
        .unwrap();
    assert_eq!(ids2, vec![42]);
    // Unknown ids and bad lengths are errors, not panics; nothing is written for them.
    let e = rec
        .launch(&desc, vec![("h".into(), TensorIn::Id(7))], vec![])
        .unwrap_err();
    assert!(matches!(e, CaptureError::UnknownId { id: 7, .. }), "{e}");
    let e = rec
        .begin(
            &desc,
            vec![("h".into(), TensorIn::host(DType::F32, vec![3], vec![0; 8]))],
        )
        .unwrap_err();
    assert!(e.to_string().contains("12"), "{e}");
    let s = rec.finish().unwrap();
    assert_eq!(s.launches, 2);

    let t = TapeReader::open(&path).unwrap();
    assert_eq!(t.version(), greta::tape::FORMAT_VERSION);
    let h = t.header();
    let eng = h.engine.as_ref().unwrap();
    assert_eq!(
        (eng.name.as_str(), eng.version.as_str()),
        ("toy-engine", "1.2.3")
    );
    assert_eq!(
        h.model.blake3,
        blake3::hash(&std::fs::read(&model).unwrap())
            .to_hex()
            .to_string()
    );
    assert!(h.model_config_json.contains("\"architecture\":\"llama\""));

    let l0 = t.launch(0).unwrap();
    assert_eq!(l0.begin.stage, Stage::AttnNorm);
    assert_eq!(l0.begin.route.variant, Variant::Engine);
    assert_eq!(l0.begin.route_name(), "toy_rmsnorm_f32");
    assert_eq!(l0.begin.backend, "toy-engine");
    assert_eq!(l0.begin.params.eps, 1e-5);
    assert_eq!(l0.begin.params.rows, 1);
    let roles: Vec<_> = l0.begin.inputs.iter().map(|r| r.role.as_str()).collect();
    assert_eq!(roles, ["x", "w"]);
    assert_eq!(t.tensor_bytes(&l0.begin.inputs[0]).unwrap(), f32_bytes(&x));
    let out0 = &l0.end.as_ref().unwrap().outputs[0];
    assert_eq!(t.tensor_bytes(out0).unwrap(), f32_bytes(&y));

    let l1 = t.launch(1).unwrap();
    assert_eq!(l1.begin.stage, Stage::Other);
    assert_eq!(l1.begin.stage_name(), "my_fused_thing");
    assert_eq!(l1.begin.foreign.as_ref().unwrap().param("alpha"), Some(0.5));
    assert_eq!(
        l1.begin.inputs[0].storage,
        Storage::Producer { seq: 0, index: 0 }
    );
    assert_eq!(l1.begin.inputs[0].hash, out0.hash);
    assert_eq!(
        l1.begin.inputs[1].storage,
        Storage::Weight {
            name: "blk.0.attn_q.weight".into()
        }
    );
    assert_eq!(l1.end.as_ref().unwrap().outputs[0].role, "o");

    let v = json(&greta_ok(&["verify", "--json", path.to_str().unwrap()]));
    assert_eq!(v["clean"], true, "{v}");
}

#[test]
fn crash_inside_a_foreign_kernel_leaves_the_launch_named() {
    let d = tmp();
    let path = d.path().join("crash.tape");
    let opts = CaptureOptions {
        durability: Durability::EveryLaunch,
        ..CaptureOptions::default()
    };
    let rec = CaptureRecorder::create(&path, CaptureHeader::new("e", "0"), opts).unwrap();
    let desc = LaunchDesc::new(Phase::Decode(3), Some(5), "swiglu", "fused_swiglu_v2");
    let seq = rec
        .begin(
            &desc,
            vec![
                (
                    "gate".into(),
                    TensorIn::host(DType::F32, vec![1, 2], f32_bytes(&[1.0, 2.0])),
                ),
                (
                    "up".into(),
                    TensorIn::host(DType::F32, vec![1, 2], f32_bytes(&[3.0, 4.0])),
                ),
            ],
        )
        .unwrap();
    assert_eq!(seq, 0);
    // The process "dies" here: the Begin is already in the file, readable before any finish.
    let inc = greta::tape::incomplete_path(&path);
    let t = TapeReader::open(&inc).unwrap();
    assert!(t.truncation().is_some());
    let l = t.launch(0).unwrap();
    assert!(l.end.is_none());
    assert_eq!(l.begin.route_name(), "fused_swiglu_v2");
    assert_eq!(l.begin.phase, Phase::Decode(3));
    drop(rec);
    let (_, out, _) = greta_s(&["ls", inc.to_str().unwrap()]);
    assert!(
        out.contains("fused_swiglu_v2") && out.contains("INCOMPLETE"),
        "{out}"
    );
}

#[test]
fn capture_from_many_threads() {
    let d = tmp();
    let path = d.path().join("threads.tape");
    let rec = CaptureRecorder::create(
        &path,
        CaptureHeader::new("mt", "0"),
        CaptureOptions::default(),
    )
    .unwrap();
    std::thread::scope(|s| {
        for th in 0..4u32 {
            let rec = &rec;
            s.spawn(move || {
                let mut prev = None;
                for i in 0..50u32 {
                    let desc = LaunchDesc::new(Phase::Decode(i), Some(th), "ffn_residual", "add");
                    let x = f32_bytes(&[th as f32, i as f32]);
                    let input = match prev {
                        Some(id) => TensorIn::Id(id),
                        None => TensorIn::host(DType::F32, vec![1, 2], x.clone()),
                    };
                    // begin and end separately, other threads interleaving between them.
                    let seq = rec
                        .begin(
                            &desc,
                            vec![
                                ("x".into(), input),
                                (
                                    "r".into(),
                                    TensorIn::host(DType::F32, vec![1, 2], x.clone()),
                                ),
                            ],
                        )
                        .unwrap();
                    let ids = rec
                        .end(
                            seq,
                            vec![("out".into(), TensorOut::new(DType::F32, vec![1, 2], x))],
                        )
                        .unwrap();
                    prev = Some(ids[0]);
                }
            });
        }
    });
    assert_eq!(rec.finish().unwrap().launches, 200);
    let v = json(&greta_ok(&["verify", "--json", path.to_str().unwrap()]));
    assert_eq!(v["clean"], true, "{v}");
    let t = TapeReader::open(&path).unwrap();
    let producers = (0..200)
        .map(|s| t.launch(s).unwrap())
        .filter(|l| matches!(l.begin.inputs[0].storage, Storage::Producer { .. }))
        .count();
    assert_eq!(producers, 4 * 49);
}

/// A version-1 tape (written by greta before open capture: `greta record` of a tiny q8_0 model,
/// weights embedded) still opens, verifies, lists and replays.
#[test]
fn version_1_tapes_still_read() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/tiny-q8_0.tape");
    let t = TapeReader::open(&p).unwrap();
    assert_eq!(t.version(), 1);
    assert!(t.truncation().is_none());
    assert!(t.header().engine.is_none());
    assert_eq!(t.len(), 76);
    assert!(greta::tape::hex(&t.fingerprint()).starts_with("fd0e6cc96d4ce377"));
    let l = t.launch(2).unwrap();
    assert_eq!(l.begin.stage, Stage::QProj);
    assert!(l.begin.foreign.is_none());
    // Version-1 params (tape/v4.rs's frozen ParamsV4) read with NORM rope and no window.
    let rope = t.launch(5).unwrap().begin;
    assert_eq!(rope.stage, Stage::RopeQ);
    assert!(rope.params.head_dim > 0 && rope.params.rope_theta > 0.0);
    assert_eq!(
        (rope.params.rope_mode, rope.params.window),
        (greta::launch::ROPE_NORM, 0)
    );
    let v = json(&greta_ok(&["verify", "--json", p.to_str().unwrap()]));
    assert_eq!(v["clean"], true, "{v}");
    let out = greta_ok(&[
        "replay",
        p.to_str().unwrap(),
        "--phase",
        "prefill",
        "--layer",
        "0",
    ]);
    assert!(out.contains("launches bit-exact on replay"), "{out}");
}

/// `greta replay --reference f64` judges a foreign launch of a greta stage against greta's f64 kernel,
/// says "no reference" for a free-form stage, and `diff --prefill-vs-decode` works on a foreign tape that
/// has the probe (decode step 0 re-runs the last prompt row).
#[test]
fn foreign_replay_reference_and_prefill_vs_decode() {
    let d = tmp();
    let path = d.path().join("pvd.tape");
    let header = CaptureHeader {
        prompt_tokens: vec![5, 6, 7],
        ..CaptureHeader::new("toy", "1")
    };
    let rec = CaptureRecorder::create(&path, header, CaptureOptions::default()).unwrap();
    let x: Vec<f32> = (0..3 * 32)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0)
        .collect();
    let w: Vec<f32> = (0..32).map(|i| 1.0 + i as f32 / 64.0).collect();
    let y: Vec<f32> = x.chunks(32).flat_map(|r| rmsnorm(r, &w, 1e-5)).collect();
    let norm = |phase, pos: f64, xs: &[f32], ys: &[f32], rows| {
        let desc = LaunchDesc::new(phase, Some(0), "ffn_norm", "toy_norm")
            .param("eps", 1e-5)
            .param("pos", pos);
        rec.launch(
            &desc,
            vec![
                (
                    "x".into(),
                    TensorIn::host(DType::F32, vec![rows, 32], f32_bytes(xs)),
                ),
                (
                    "w".into(),
                    TensorIn::host(DType::F32, vec![32], f32_bytes(&w)),
                ),
            ],
            vec![(
                "out".into(),
                TensorOut::new(DType::F32, vec![rows, 32], f32_bytes(ys)),
            )],
        )
        .unwrap()
    };
    norm(Phase::Prefill, 0.0, &x, &y, 3);
    let other = LaunchDesc::new(Phase::Prefill, Some(0), "toy_scale", "scale2");
    rec.launch(
        &other,
        vec![],
        vec![(
            "out".into(),
            TensorOut::new(DType::F32, vec![1], f32_bytes(&[2.0])),
        )],
    )
    .unwrap();
    // The probe: decode0 at position 2 on the same row, one ULP off in element 5.
    let mut y2 = y[64..].to_vec();
    y2[5] = f32::from_bits(y2[5].to_bits() + 1);
    norm(Phase::Decode(0), 2.0, &x[64..], &y2, 1);
    rec.finish().unwrap();
    let p = path.to_str().unwrap();

    let (code, out, err) = greta_s(&[
        "replay",
        p,
        "--phase",
        "prefill",
        "--reference",
        "f64",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let rows = json(&out);
    assert_eq!(rows[0]["stage"], "ffn_norm");
    assert_eq!(rows[0]["route"], "toy_norm");
    let local = &rows[0]["local"];
    assert!(local["max_abs"].as_f64().unwrap() < 1e-5, "{local}");
    assert!(
        rows[1]["note"]
            .as_str()
            .unwrap()
            .starts_with("no reference for toy_scale")
    );
    let (_, text, _) = greta_s(&["replay", p, "--stage", "toy_scale", "--reference", "f64"]);
    assert!(text.contains("no reference for toy_scale"), "{text}");
    // --stage takes the engine's free-form names too; an unknown name is still an error.
    let ls = json(&greta_ok(&["ls", p, "--stage", "toy_scale", "--json"]));
    assert_eq!(ls.as_array().unwrap().len(), 1, "{ls}");
    assert_eq!(ls[0]["route"], "scale2");
    let (code, _, err) = greta_s(&["ls", p, "--stage", "toy_scal"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown stage `toy_scal`"), "{err}");
    // Replaying greta's own f32 route on the engine's recorded inputs is possible too.
    let (code, text, err) = greta_s(&["replay", p, "--seq", "0", "--route", "direct/f32"]);
    assert!(code == 0 || code == 1, "{text}{err}");
    assert!(text.contains("cpu:direct/f32"), "{text}");

    let (code, out, err) = greta_s(&["diff", p, "--prefill-vs-decode", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let v = json(&out);
    let first = &v["first_divergence"];
    assert_eq!(first["stage"], "ffn_norm", "{v}");
    assert_eq!(first["compare"]["first"]["index"], 5, "{v}");
}

/// `greta diff foreign.tape greta.tape` aligns by (phase, layer, stage) and names the first divergence.
#[test]
fn diff_foreign_against_greta_tape() {
    let d = tmp();
    let model = tiny();
    let gt = d.path().join("greta.tape");
    greta_ok(&[
        "record",
        "--model",
        model.to_str().unwrap(),
        "--tokens",
        "1,2,3",
        "--max-tokens",
        "1",
        "--out",
        gt.to_str().unwrap(),
    ]);
    // Re-record greta's own launches of layer 0 through the capture API, as a foreign engine would,
    // changing one element of q_proj's output.
    let t = TapeReader::open(&gt).unwrap();
    let ft = d.path().join("foreign.tape");
    let rec =
        CaptureRecorder::create(&ft, header_with_model(&model), CaptureOptions::default()).unwrap();
    let src = greta::analysis::Source::new(&t, None);
    for e in t.entries() {
        let l = t.launch(e.unwrap().seq).unwrap();
        let b = &l.begin;
        if b.layer != Some(0) || b.phase != Phase::Prefill {
            continue;
        }
        let ins = b
            .inputs
            .iter()
            .map(|r| {
                let tin = match &r.storage {
                    Storage::Weight { name } => TensorIn::Weight(name.clone()),
                    _ => TensorIn::host(
                        r.dtype,
                        r.shape.iter().map(|&x| x as usize).collect(),
                        src.bytes(r).unwrap(),
                    ),
                };
                (r.role.clone(), tin)
            })
            .collect();
        let outs = l
            .end
            .as_ref()
            .unwrap()
            .outputs
            .iter()
            .map(|r| {
                let mut bytes = src.bytes(r).unwrap();
                if b.stage == Stage::QProj {
                    bytes[4 * 9 + 3] ^= 0x40; // element 9
                }
                (
                    r.role.clone(),
                    TensorOut::new(
                        r.dtype,
                        r.shape.iter().map(|&x| x as usize).collect(),
                        bytes,
                    ),
                )
            })
            .collect();
        // An engine gives the params its kernels used (strict contracts: none is assumed).
        let p = &b.params;
        let mut desc = LaunchDesc::new(b.phase, b.layer, b.stage.name(), "engine_kernel");
        for (k, v) in [
            ("rows", p.rows as f64),
            ("pos", p.pos as f64),
            ("n_heads", p.n_heads as f64),
            ("n_kv_heads", p.n_kv_heads as f64),
            ("head_dim", p.head_dim as f64),
            ("rope_dim", p.rope_dim as f64),
            ("rope_theta", p.rope_theta),
            ("eps", p.eps),
            ("scale", p.scale),
        ] {
            desc = desc.param(k, v);
        }
        rec.launch(&desc, ins, outs).unwrap();
    }
    rec.finish().unwrap();
    let (code, out, err) = greta_s(&["diff", ft.to_str().unwrap(), gt.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let v = json(&out);
    let f = &v["first_divergence"];
    assert_eq!(
        (
            f["phase"].as_str(),
            f["layer"].as_u64(),
            f["stage"].as_str()
        ),
        (Some("prefill"), Some(0), Some("q_proj")),
        "{v}"
    );
    assert_eq!(f["index"], 9, "{v}");
}

/// Strict contracts at capture (issue 22): a launch that does not say what it computes is refused with
/// a message naming what is missing, before anything is recorded; a named op with a free-form stage is
/// judged by that op's reference; an op greta does not know is kept and listed as unjudged.
#[test]
fn capture_enforces_op_contracts() {
    let d = tmp();
    let path = d.path().join("ops.tape");
    let rec = CaptureRecorder::create(
        &path,
        CaptureHeader::new("toy-engine", "1"),
        CaptureOptions::default(),
    )
    .unwrap();
    let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
    let host = |shape: Vec<usize>, v: &[f32]| TensorIn::host(DType::F32, shape, f32_bytes(v));
    let refused = |desc: &LaunchDesc, ins: Vec<(String, TensorIn)>| match rec.begin(desc, ins) {
        Err(e @ CaptureError::Contract(_)) => e.to_string(),
        other => panic!("expected a contract refusal, got {other:?}"),
    };
    // rope_q without rope_theta: refused, naming it (before: accepted, judged against 0).
    let rope = LaunchDesc::new(Phase::Prefill, Some(0), "rope_q", "my_rope")
        .param("pos", 0.0)
        .param("n_heads", 2.0)
        .param("head_dim", 8.0);
    let e = refused(&rope, vec![("x".into(), host(vec![1, 16], &x))]);
    assert!(e.contains("missing required param `rope_theta`"), "{e}");
    // swiglu with roles g/u (before: accepted and judged by position).
    let sw = LaunchDesc::new(Phase::Prefill, Some(0), "swiglu", "my_swiglu");
    let e = refused(
        &sw,
        vec![
            ("g".into(), host(vec![1, 16], &x)),
            ("u".into(), host(vec![1, 16], &x)),
        ],
    );
    assert!(e.contains("unknown input role `g`"), "{e}");
    // A named op: a misspelt param is refused, not defaulted.
    let qn = LaunchDesc::new(Phase::Prefill, Some(0), "attn_q_norm", "my_norm")
        .op("rms_norm")
        .param("epsilon", 1e-6);
    let e = refused(&qn, vec![("x".into(), host(vec![2, 8], &x))]);
    assert!(e.contains("unknown param `epsilon`"), "{e}");
    // Shapes that do not fit the op's geometry.
    let e = refused(
        &LaunchDesc::new(Phase::Prefill, Some(0), "attn_norm", "my_norm").param("eps", 1e-6),
        vec![
            ("x".into(), host(vec![2, 8], &x)),
            ("w".into(), host(vec![4], &x[..4])),
        ],
    );
    assert!(e.contains("`w` has shape [4], expected [8]"), "{e}");
    // Accepted: a named op on a free-form stage, and an op greta does not know.
    let qn = LaunchDesc::new(Phase::Prefill, Some(0), "attn_q_norm", "my_norm")
        .op("rms_norm")
        .param("eps", 1e-6)
        .param("rows", 2.0);
    let y = rmsnorm(&x[..8], &[1.0; 8], 1e-6)
        .into_iter()
        .chain(rmsnorm(&x[8..], &[1.0; 8], 1e-6))
        .collect::<Vec<_>>();
    rec.launch(
        &qn,
        vec![("x".into(), host(vec![2, 8], &x))],
        vec![(
            "out".into(),
            TensorOut::new(DType::F32, vec![2, 8], f32_bytes(&y)),
        )],
    )
    .unwrap();
    let odd = LaunchDesc::new(Phase::Prefill, Some(0), "my_op", "k").op("frobnicate");
    rec.launch(
        &odd,
        vec![("x".into(), host(vec![2, 8], &x))],
        vec![(
            "out".into(),
            TensorOut::new(DType::F32, vec![2, 8], f32_bytes(&x)),
        )],
    )
    .unwrap();
    rec.close().unwrap();
    // The named op is judged by rms_norm's reference: local error of an f32 computation.
    let out = greta_ok(&[
        "replay",
        path.to_str().unwrap(),
        "--seq",
        "0",
        "--reference",
        "f64",
        "--json",
    ]);
    let j = json(&out);
    let local = &j[0]["local"];
    assert!(local["max_abs"].as_f64().unwrap() < 1e-6, "{out}");
    let (code, out, err) = greta_s(&[
        "replay",
        path.to_str().unwrap(),
        "--seq",
        "1",
        "--reference",
        "f64",
    ]);
    assert!(
        out.contains("no reference for my_op") || err.contains("no reference for my_op"),
        "{code} {out} {err}"
    );
}
