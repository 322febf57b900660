//! Every place that needs to know a backend's routes reads [`Backend::routes`]; these tests fail when a
//! route exists somewhere that the list does not know, or the list names a route nothing can run.

use super::Backend;
use super::cpu::{self, CpuBackend};
use super::hip;
use crate::launch::{
    BackendError, Params, Precision, Route, RouteMode, RoutePolicy, Stage, Variant,
};

const PRECISIONS: [Precision; 3] = [Precision::F64, Precision::F32, Precision::F16];

/// Every (variant, precision) pair, listed or not.
fn every_route() -> impl Iterator<Item = Route> {
    Variant::ALL
        .iter()
        .flat_map(|&v| PRECISIONS.iter().map(move |&p| Route::new(v, p)))
}

#[test]
fn cpu_execute_refuses_exactly_the_routes_it_does_not_list() {
    let cpu = CpuBackend::new(1);
    for &stage in Stage::ALL {
        let listed = cpu.routes(stage);
        assert!(!listed.is_empty(), "{stage} has no CPU route");
        for route in every_route() {
            // No inputs: a listed route reaches its kernel and fails on the input count; an unlisted one
            // is refused before that.
            let e = cpu
                .execute(stage, route, &Params::default(), &[])
                .expect_err("no inputs");
            let refused = matches!(e, BackendError::Unsupported { .. });
            assert_eq!(refused, !listed.contains(&route), "{stage} {route}: {e}");
            if refused {
                assert!(
                    e.to_string().contains(&listed[0].to_string()),
                    "the message names the routes there are: {e}"
                );
            }
        }
    }
}

#[test]
fn every_route_the_policy_picks_is_listed_by_both_backends() {
    for mode in [RouteMode::Default, RouteMode::Invariant] {
        for precision in [Precision::F32, Precision::F64] {
            let mut policy = RoutePolicy::new(precision);
            policy.mode = mode;
            for &stage in Stage::ALL {
                for rows in [1, 7] {
                    let r = policy.choose(stage, rows);
                    // The engine asks the policy once for attention (manual: qk, softmax, pv; or fused:
                    // attn), so an attention pick is checked against the attention stages together.
                    let family: Vec<Stage> = if stage.is_attention() {
                        vec![Stage::Qk, Stage::Attn]
                    } else {
                        vec![stage]
                    };
                    let listed =
                        |f: fn(Stage) -> Vec<Route>| family.iter().any(|&s| f(s).contains(&r));
                    assert!(listed(cpu::routes), "cpu {stage} {r}");
                    // Stages the GPU has no kernel for yet are refused by name (hip::not_yet).
                    if precision == Precision::F32 && hip::has_kernel(stage) {
                        assert!(listed(hip::routes), "hip {stage} {r}");
                    }
                }
            }
        }
    }
}

#[test]
fn the_gpu_names_what_it_has_no_kernel_for_yet() {
    let p = Params::default();
    let e = hip::not_yet(Stage::QNorm, &p).expect("no GPU q_norm yet");
    assert!(
        e.to_string().contains("unsupported on the hip backend yet"),
        "{e}"
    );
    assert!(hip::routes(Stage::Geglu).is_empty());
    let neox = Params {
        rope_mode: crate::launch::ROPE_NEOX,
        ..p
    };
    assert!(hip::not_yet(Stage::RopeQ, &neox).is_some());
    assert!(hip::not_yet(Stage::RopeQ, &p).is_none());
    let window = Params { window: 4, ..p };
    assert!(hip::not_yet(Stage::Attn, &window).is_some());
    assert!(hip::not_yet(Stage::Pv, &window).is_none());
}

#[test]
fn every_variant_has_a_stage_and_the_gpu_lists_no_f64() {
    for &v in Variant::ALL {
        assert!(
            Stage::ALL
                .iter()
                .any(|&s| cpu::routes(s).iter().any(|r| r.variant == v)),
            "variant {v} runs on no stage"
        );
    }
    for &s in Stage::ALL {
        assert!(hip::routes(s).iter().all(|r| r.precision != Precision::F64));
        let cpu_variants: Vec<_> = cpu::routes(s).iter().map(|r| r.variant).collect();
        assert!(
            hip::routes(s)
                .iter()
                .all(|r| cpu_variants.contains(&r.variant)),
            "{s}: a GPU route without a CPU reference"
        );
    }
}
