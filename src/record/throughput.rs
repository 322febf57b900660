//! The recorder's own throughput, without a device (an ignored benchmark test). The lib's tests run on
//! the allocator the `greta` binary uses (mimalloc, `src/lib.rs`), so the figure is the binary's.

use super::*;
use crate::launch::{
    DType, DeviceBuffer, Origin, Params, PendingDigest, Phase, Precision, Route, Stage, Variant,
};
use crate::tape::{ModelIdentity, Producer, RunInfo};

/// A device buffer whose digest is known at once (the recorder's own cost, without a device).
#[derive(Debug)]
struct Ready(usize);
impl DeviceBuffer for Ready {
    fn to_host(&self) -> Result<Vec<u8>, String> {
        Ok(vec![0; self.0])
    }
    fn len(&self) -> usize {
        self.0
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn digest(&self) -> Option<Result<PendingDigest, String>> {
        Some(Ok(PendingDigest::new(|| Ok([7; 32]))))
    }
}

fn dev(n: usize) -> Tensor {
    Tensor {
        id: crate::launch::next_id(),
        dtype: DType::F32,
        shape: vec![1, n / 4],
        data: TensorData::Device(Arc::new(Ready(n))),
        origin: Origin::Value,
    }
}

/// `cargo test --release recorder_throughput -- --ignored --nocapture`: launches a second the
/// recorder sustains on hash-only, device-digested launches (a SmolLM2 decode step is ~500 launches).
#[test]
#[ignore]
fn recorder_throughput() {
    let d = tempfile::tempdir().unwrap();
    let producer = Producer {
        greta_version: String::new(),
        backend: "hip".into(),
        device: String::new(),
        kernel_hashes: Vec::new(),
        engine: None,
        provenance: None,
    };
    let run = RunInfo {
        prompt_tokens: vec![1],
        routes: Vec::new(),
        threads: 1,
        capture: "hashes".into(),
        options_json: "{}".into(),
        created_unix: 0,
    };
    let header = TapeHeader::new(ModelIdentity::default(), String::new(), producer, run);
    let opts = RecordOptions {
        capture: Capture::Hashes,
        ..RecordOptions::default()
    };
    let (mut rec, summary) = Recorder::start(&d.path().join("t.tape"), header, opts).unwrap();
    let w = Tensor::from_le_bytes(
        DType::F32,
        vec![4, 4],
        vec![0; 64],
        Origin::Weight("blk.0.attn_q.weight".into()),
    );
    crate::launch::known_digests::remember(w.id, [3; 32]);
    let n = 32_000u64;
    let start = std::time::Instant::now();
    let mut x = dev(2304);
    let mut inner = Duration::ZERO;
    for seq in 0..n {
        let info = LaunchInfo {
            seq,
            phase: Phase::Decode(0),
            stage: Stage::QProj,
            layer: Some((seq % 30) as u32),
            route: Route::new(Variant::GemvQ8, Precision::F32),
            backend: "hip".into(),
            params: Params::default(),
            foreign: None,
        };
        let t = std::time::Instant::now();
        rec.begin_launch(&info, &[&x, &w]).unwrap();
        let y = dev(2304);
        rec.end_launch(&info, std::slice::from_ref(&y), Duration::from_micros(5))
            .unwrap();
        inner += t.elapsed();
        x = y;
    }
    let issued = start.elapsed();
    rec.finish_tape().unwrap();
    let total = start.elapsed();
    assert!(matches!(&*summary.lock().unwrap(), Some(Ok(_))));
    println!(
        "{n} launches: inference thread {:.3} s ({:.2} us a launch), all written {:.3} s ({:.0} launches/s)",
        inner.as_secs_f64(),
        inner.as_secs_f64() * 1e6 / n as f64,
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64()
    );
    let _ = issued;
}
