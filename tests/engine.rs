//! The engine on the tiny synthetic model: shapes and routes, determinism across thread counts, f32 vs
//! f64, prefill-then-decode vs one longer prefill.

use crate::util::*;
use greta::backend::cpu::CpuBackend;
use greta::engine::{Engine, GenOptions, Model, generate};
use greta::launch::{
    LaunchInfo, LaunchObserver, Launcher, ObserverError, Phase, Precision, RouteMode, RoutePolicy,
    Stage, Tensor, Variant,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// What a launch produced, as seen by an observer.
#[derive(Clone, Debug)]
pub struct Seen {
    pub info: LaunchInfo,
    pub shapes: Vec<Vec<usize>>,
    pub hashes: Vec<[u8; 32]>,
    pub values: Vec<f64>,
}

struct Watch(Rc<RefCell<Vec<Seen>>>);

impl LaunchObserver for Watch {
    fn begin(&mut self, _: &LaunchInfo, _: &[&Tensor]) -> Result<(), ObserverError> {
        Ok(())
    }
    fn end(
        &mut self,
        info: &LaunchInfo,
        outputs: &[Tensor],
        _: Duration,
    ) -> Result<(), ObserverError> {
        let values = match (outputs[0].as_f32(), outputs[0].as_f64()) {
            _ if info.stage != Stage::LmHead => vec![],
            (Some(v), _) => v.iter().map(|&x| x as f64).collect(),
            (_, Some(v)) => v.to_vec(),
            _ => vec![],
        };
        self.0.borrow_mut().push(Seen {
            info: info.clone(),
            shapes: outputs.iter().map(|t| t.shape.clone()).collect(),
            hashes: outputs
                .iter()
                .map(|t| *blake3::hash(&t.to_host_bytes().unwrap()).as_bytes())
                .collect(),
            values,
        });
        Ok(())
    }
}

pub fn watched(
    model: &Model,
    threads: usize,
    policy: RoutePolicy,
) -> (Engine<'_>, Rc<RefCell<Vec<Seen>>>) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let mut l = Launcher::new(Arc::new(CpuBackend::new(threads)), policy);
    l.observe(Box::new(Watch(seen.clone())));
    (Engine::new(model, l), seen)
}

fn opts(max: usize) -> GenOptions {
    GenOptions {
        max_tokens: max,
        stop: vec![],
        probe_last_token: false,
    }
}

const PROMPT: &[u32] = &[5, 17, 42, 99, 3, 250, 7];

#[test]
fn shapes_and_routes() {
    let m = Model::load(&tiny()).unwrap();
    let c = &m.config;
    let (mut e, seen) = watched(&m, 1, RoutePolicy::new(Precision::F32));
    let g = generate(&mut e, PROMPT, &opts(3)).unwrap();
    assert_eq!(g.generated_ids.len(), 3);
    let seen = seen.borrow();
    let n = PROMPT.len();
    let find = |p: Phase, l: Option<u32>, s: Stage| {
        seen.iter()
            .find(|x| x.info.phase == p && x.info.layer == l && x.info.stage == s)
            .unwrap_or_else(|| panic!("no {p} {l:?} {s}"))
            .clone()
    };
    let q = find(Phase::Prefill, Some(0), Stage::QProj);
    assert_eq!(q.shapes[0], vec![n, c.n_heads * c.head_dim]);
    assert_eq!(q.info.route.variant, Variant::GemmTiled);
    let qk = find(Phase::Prefill, Some(1), Stage::Qk);
    assert_eq!(qk.shapes[0], vec![c.n_heads, n, n]);
    let dq = find(Phase::Decode(0), Some(0), Stage::QProj);
    assert_eq!(dq.shapes[0], vec![1, c.n_heads * c.head_dim]);
    assert_eq!(dq.info.route.variant, Variant::Gemv);
    let da = find(Phase::Decode(1), Some(1), Stage::Attn);
    assert_eq!(da.info.route.variant, Variant::Fused);
    assert_eq!(da.info.params.pos as usize, n + 1);
    let lm = find(Phase::Prefill, None, Stage::LmHead);
    assert_eq!(lm.shapes[0], vec![1, c.vocab]);
    let kv = find(Phase::Prefill, Some(0), Stage::KvWrite);
    assert_eq!(kv.shapes, vec![vec![n, c.n_kv_heads * c.head_dim]; 2]);
    // Every launch of a prefill layer, in order.
    let stages: Vec<Stage> = seen
        .iter()
        .filter(|x| x.info.phase == Phase::Prefill && x.info.layer == Some(0))
        .map(|x| x.info.stage)
        .collect();
    assert_eq!(
        stages,
        vec![
            Stage::AttnNorm,
            Stage::QProj,
            Stage::KProj,
            Stage::VProj,
            Stage::RopeQ,
            Stage::RopeK,
            Stage::KvWrite,
            Stage::Qk,
            Stage::Softmax,
            Stage::Pv,
            Stage::OProj,
            Stage::AttnResidual,
            Stage::FfnNorm,
            Stage::Gate,
            Stage::Up,
            Stage::Swiglu,
            Stage::Down,
            Stage::FfnResidual
        ]
    );
}

fn hashes(seen: &Rc<RefCell<Vec<Seen>>>) -> Vec<(String, [u8; 32])> {
    seen.borrow()
        .iter()
        .map(|s| {
            (
                format!(
                    "{} {:?} {} {}",
                    s.info.phase, s.info.layer, s.info.stage, s.info.route
                ),
                s.hashes[0],
            )
        })
        .collect()
}

#[test]
fn bitwise_identical_across_thread_counts() {
    let m = Model::load(&tiny()).unwrap();
    for precision in [Precision::F32, Precision::F64] {
        let mut all = Vec::new();
        for threads in [1, 2, 8] {
            let (mut e, seen) = watched(&m, threads, RoutePolicy::new(precision));
            let g = generate(&mut e, PROMPT, &opts(6)).unwrap();
            all.push((g.generated_ids, hashes(&seen)));
        }
        assert_eq!(all[0], all[1], "{precision}: 1 vs 2 threads");
        assert_eq!(all[0], all[2], "{precision}: 1 vs 8 threads");
    }
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-30);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn logits(seen: &Rc<RefCell<Vec<Seen>>>, phase: Phase) -> Vec<f64> {
    seen.borrow()
        .iter()
        .find(|s| s.info.phase == phase && s.info.stage == Stage::LmHead)
        .unwrap()
        .values
        .clone()
}

#[test]
fn f32_route_is_close_to_f64_reference() {
    let m = Model::load(&tiny()).unwrap();
    let (mut e32, s32) = watched(&m, 2, RoutePolicy::new(Precision::F32));
    let (mut e64, s64) = watched(&m, 2, RoutePolicy::new(Precision::F64));
    e32.forward(Phase::Prefill, PROMPT, 0).unwrap();
    e64.forward(Phase::Prefill, PROMPT, 0).unwrap();
    let (a, b) = (logits(&s32, Phase::Prefill), logits(&s64, Phase::Prefill));
    let r = rel(&a, &b);
    assert!(
        r < F32_VS_F64_MAX_REL,
        "f32 vs f64 logits: relative error {r:e}"
    );
    assert!(
        r > 0.0,
        "f32 and f64 routes gave identical logits: the f64 route is not computing in f64"
    );
}

#[test]
fn prefill_then_decode_matches_longer_prefill() {
    let m = Model::load(&tiny()).unwrap();
    let n = PROMPT.len();
    let (mut a, sa) = watched(&m, 2, RoutePolicy::new(Precision::F32));
    a.forward(Phase::Prefill, &PROMPT[..n - 1], 0).unwrap();
    a.forward(Phase::Decode(0), &PROMPT[n - 1..], n - 1)
        .unwrap();
    let (mut b, sb) = watched(&m, 2, RoutePolicy::new(Precision::F32));
    b.forward(Phase::Prefill, PROMPT, 0).unwrap();
    let r = rel(&logits(&sa, Phase::Decode(0)), &logits(&sb, Phase::Prefill));
    assert!(
        r < DECODE_VS_PREFILL_MAX_REL,
        "decode vs longer prefill: relative error {r:e}"
    );
    // Batch-invariant routes make them bit-identical.
    let mut inv = RoutePolicy::new(Precision::F32);
    inv.mode = RouteMode::Invariant;
    let (mut c, sc) = watched(&m, 2, inv.clone());
    c.forward(Phase::Prefill, &PROMPT[..n - 1], 0).unwrap();
    c.forward(Phase::Decode(0), &PROMPT[n - 1..], n - 1)
        .unwrap();
    let (mut d, sd) = watched(&m, 2, inv);
    d.forward(Phase::Prefill, PROMPT, 0).unwrap();
    let (x, y) = (logits(&sc, Phase::Decode(0)), logits(&sd, Phase::Prefill));
    assert!(
        x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
        "invariant routes: decode differs from prefill"
    );
}
