//! Verdicts users can trust (issue 28): what "identical inputs" means, the local-error rule, per-route
//! noise envelopes, reruns of any number of differing runs, goldens with params, a wrong decode `pos`,
//! summaries that name failures and float params printed as given.

use crate::util::*;
use greta::backend::Backend;
use greta::backend::cpu::CpuBackend;
use greta::diff::significant::route_envelope;
use greta::launch::{DType, Origin, Params, Precision, Route, Stage, Tensor, Variant};
use greta::model::synth_weights::{Fill, SplitMix64, make_tensor};
use std::sync::Arc;

/// Relative L2 error of `a` against `r`.
fn rel_l2(a: &[f64], r: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(r).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = r.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

fn values(t: &Tensor) -> Vec<f64> {
    greta::analysis::values(t.dtype, t.host_bytes().unwrap().as_slice()).unwrap()
}

/// The noise each matmul route adds by design, measured on random inputs (x roughly normal, weights
/// uniform, every weight type `gemv_q8` takes, three widths) against the f64 reference, is within the
/// route's envelope in `diff::significant`. Prints the table docs/DIAGNOSIS.md shows
/// (`cargo test --release --test tests verdicts::route_envelopes -- --nocapture`).
#[test]
fn route_envelopes_bound_measured_noise() {
    let cpu = CpuBackend::new(0);
    let routes = [
        Route::new(Variant::Gemv, Precision::F32),
        Route::new(Variant::GemmTiled, Precision::F32),
        Route::new(Variant::GemvQ8, Precision::F32),
        Route::new(Variant::GemmMma, Precision::F32),
    ];
    let (rows, out) = (8usize, 256usize);
    let mut worst = vec![0.0f64; routes.len()];
    println!("| weight | in | gemv/f32 | gemm_tiled/f32 | gemv_q8/f32 | gemm_mma/f32 |");
    println!("|---|---|---|---|---|---|");
    for dtype in [
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q4K,
        DType::Q6K,
    ] {
        for inn in [512usize, 1536, 4096] {
            let w = make_tensor(inn as u64, "w", dtype, out, inn, Fill::Uniform(0.05));
            let w = Tensor::from_le_bytes(dtype, vec![out, inn], w, Origin::Weight(Arc::from("w")));
            let mut rng = SplitMix64::new(inn as u64 * 31 + dtype as u64);
            let x: Vec<f32> = (0..rows * inn)
                .map(|_| (0..4).map(|_| rng.symmetric()).sum::<f32>())
                .collect();
            let x = Tensor::f32(vec![rows, inn], x);
            let p = Params {
                rows: rows as u32,
                ..Params::default()
            };
            let x64 = Tensor::f64(x.shape.clone(), values(&x));
            let reference = cpu
                .execute(
                    Stage::QProj,
                    Route::new(Variant::Gemv, Precision::F64),
                    &p,
                    &[&x64, &w],
                )
                .unwrap();
            let r = values(&reference[0]);
            let mut line = format!("| {dtype} | {inn} |");
            for (i, route) in routes.iter().enumerate() {
                let y = cpu.execute(Stage::QProj, *route, &p, &[&x, &w]).unwrap();
                let e = rel_l2(&values(&y[0]), &r);
                worst[i] = worst[i].max(e);
                line += &format!(" {e:.1e} |");
            }
            println!("{line}");
        }
    }
    for (route, w) in routes.iter().zip(&worst) {
        println!(
            "{route}: worst {w:.2e}, envelope {:.0e}",
            route_envelope(*route)
        );
        assert!(
            *w <= route_envelope(*route),
            "{route}: measured {w:.2e} above its envelope {:.0e}",
            route_envelope(*route)
        );
        // An envelope far above what the route does would hide real defects.
        assert!(
            *w * 20.0 >= route_envelope(*route)
                || route.variant == Variant::Gemv
                || route.variant == Variant::GemmTiled,
            "{route}: envelope {:.0e} is more than 20x the measured {w:.2e}",
            route_envelope(*route)
        );
    }
}
