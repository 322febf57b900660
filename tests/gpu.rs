//! GPU tests. Where there is no GPU (or greta was built without `--features hip`) each test prints
//! `skipped: no GPU device (<reason>)` and passes; on a GPU machine (ROCm, or NVIDIA through
//! tools/hip-on-cuda) they run for real. tools/gpu-check runs them there with `--nocapture`.

use greta::backend::hip;
use greta::backend::{Backend, BackendError};
use greta::launch::{Params, Precision, Route, Stage, Tensor, Variant};
use std::sync::Arc;

/// The GPU backend, or None after printing why the test is skipped.
fn gpu() -> Option<Arc<dyn Backend>> {
    match hip::open() {
        Ok(b) => Some(b),
        Err(e @ (BackendError::NotCompiled | BackendError::NoDevice(_))) => {
            println!("skipped: no GPU device ({e})");
            None
        }
        Err(e) => panic!("opening the GPU failed: {e}"),
    }
}

#[test]
fn gpu_selftest_every_stage_and_route_against_the_cpu() {
    let Some(_) = gpu() else { return };
    // The backend's whole self-test (the generic checks plus the HIP-only ones: the split fused route).
    let report = hip::selftest().expect("the GPU opened above");
    assert!(report.fused_split.is_some(), "{report}");
    println!("{report}");
    assert!(report.passed(), "GPU self-test failed:\n{report}");
}

#[test]
fn gpu_tensors_round_trip_and_gather_on_the_device() {
    let Some(gpu) = gpu() else { return };
    let x = Tensor::f32(vec![3, 4], (0..12).map(|v| v as f32).collect());
    let r = Tensor::f32(vec![3, 4], vec![0.5; 12]);
    let route = Route::new(Variant::Direct, Precision::F32);
    let y = gpu
        .execute(
            Stage::AttnResidual,
            route,
            &Params {
                rows: 3,
                ..Params::default()
            },
            &[&x, &r],
        )
        .unwrap();
    assert!(y[0].host_bytes().is_none(), "outputs stay on the device");
    // Rows 2 of y and 0..2 of x, gathered on the device.
    let g = gpu.gather_rows(&[(&y[0], 2, 1), (&x, 0, 2)]).unwrap();
    let bytes = g.to_host_bytes().unwrap();
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        v,
        [8.5, 9.5, 10.5, 11.5, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    );
    let files: Vec<String> = gpu.kernel_hashes().into_iter().map(|(f, _)| f).collect();
    for f in ["matmul.cu", "attention.cu", "q8.cu", "mma.cu", "blake3.cu"] {
        assert!(
            files.iter().any(|x| x.ends_with(f)),
            "{f} missing from {files:?}"
        );
    }
    println!("{}", gpu.device());
}

#[test]
fn gpu_refuses_f64_with_a_typed_error() {
    let Some(gpu) = gpu() else { return };
    let x = Tensor::f64(vec![1, 2], vec![1.0, 2.0]);
    let e = gpu
        .execute(
            Stage::AttnResidual,
            Route::new(Variant::Direct, Precision::F64),
            &Params::default(),
            &[&x, &x],
        )
        .unwrap_err();
    assert!(matches!(e, BackendError::Unsupported { .. }), "{e}");
}

#[test]
fn open_without_the_feature_says_so() {
    if cfg!(feature = "hip") {
        println!("skipped: built with the hip feature");
        return;
    }
    assert!(matches!(hip::open(), Err(BackendError::NotCompiled)));
}

/// The parts of recording's cost on the device (device BLAKE3 throughput, asynchronous
/// copies): figures, not checks; tools/gpu-bench-8b runs it with `--ignored`.
#[test]
#[ignore]
fn gpu_bench_recording_parts() {
    let Some(_) = gpu() else { return };
    println!(
        "{}",
        hip::bench_recording_parts().expect("the GPU opened above")
    );
}
