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
