//! The recorder's own tests: typed errors, and asynchronous copies (budget, failures) through a
//! stand-in device buffer. tests/async_copy.rs records whole runs with and without asynchronous copies.

use super::*;
use crate::launch::{Params, Phase, Precision, Route, Stage, Variant};
use crate::tape::{ModelIdentity, Producer, RunInfo};

fn header() -> TapeHeader {
    let producer = Producer {
        greta_version: String::new(),
        backend: "cpu".into(),
        device: String::new(),
        kernel_hashes: Vec::new(),
        engine: None,
        provenance: None,
    };
    let run = RunInfo {
        prompt_tokens: vec![1],
        routes: Vec::new(),
        threads: 1,
        capture: "full".into(),
        options_json: "{}".into(),
        created_unix: 0,
    };
    TapeHeader::new(ModelIdentity::default(), String::new(), producer, run)
}

/// When a [`Gated`] buffer's asynchronous copy fails.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fail {
    Never,
    AtStart,
    AtWait,
}

/// A device buffer whose asynchronous copy yields its bytes once a gate opens (or fails).
#[derive(Debug)]
struct Gated {
    bytes: Vec<u8>,
    gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
    fail: Fail,
}

impl crate::launch::DeviceBuffer for Gated {
    fn to_host(&self) -> Result<Vec<u8>, String> {
        Ok(self.bytes.clone())
    }
    fn len(&self) -> usize {
        self.bytes.len()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn to_host_async(&self) -> Option<Result<crate::launch::PendingBytes, String>> {
        if self.fail == Fail::AtStart {
            return Some(Err("no copy stream".into()));
        }
        let (bytes, gate, fail) = (self.bytes.clone(), self.gate.clone(), self.fail);
        Some(Ok(crate::launch::PendingBytes::new(move || {
            let (open, opened) = &*gate;
            let mut g = open.lock().unwrap();
            while !*g {
                g = opened.wait(g).unwrap();
            }
            match fail {
                Fail::AtWait => Err("copy engine fault".into()),
                _ => Ok(bytes),
            }
        })))
    }
}

type Gate = Arc<(Mutex<bool>, std::sync::Condvar)>;

fn gate() -> Gate {
    Arc::new((Mutex::new(false), std::sync::Condvar::new()))
}

fn open(g: &Gate) {
    *g.0.lock().unwrap() = true;
    g.1.notify_all();
}

/// An f32 device tensor of `n` elements `v, v+1, …` behind `gate`.
fn gated(n: usize, v: f32, gate: &Gate, fail: Fail) -> Tensor {
    let bytes = (0..n).flat_map(|i| (v + i as f32).to_le_bytes()).collect();
    Tensor {
        id: crate::launch::next_id(),
        dtype: crate::launch::DType::F32,
        shape: vec![n],
        data: TensorData::Device(Arc::new(Gated {
            bytes,
            gate: gate.clone(),
            fail,
        })),
        origin: crate::launch::Origin::Value,
    }
}

fn launch(seq: u64) -> LaunchInfo {
    LaunchInfo {
        seq,
        phase: Phase::Prefill,
        stage: Stage::AttnResidual,
        layer: Some(0),
        route: Route::new(Variant::Direct, Precision::F32),
        backend: "gated".into(),
        params: Params::default(),
        foreign: None,
    }
}

#[test]
fn async_copies_hold_budget_until_the_worker_has_their_bytes() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("t.tape");
    let opts = RecordOptions {
        max_inflight: 1000,
        ..RecordOptions::default()
    };
    let (mut rec, _) = Recorder::start(&path, header(), opts).unwrap();
    let g = gate();
    // 800 bytes in flight: a second 800 bytes must wait for the worker, which waits for the copy.
    let (a, b) = (
        gated(200, 1.0, &g, Fail::Never),
        gated(200, 5.0, &g, Fail::Never),
    );
    rec.begin_launch(&launch(0), &[]).unwrap();
    rec.end_launch(&launch(0), &[a], Duration::ZERO).unwrap();
    rec.begin_launch(&launch(1), &[]).unwrap();
    let t = std::thread::spawn(move || {
        rec.end_launch(&launch(1), &[b], Duration::ZERO).unwrap();
        rec.finish_tape().unwrap();
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(!t.is_finished(), "the second copy must wait for budget");
    open(&g);
    t.join().unwrap();
    let r = crate::tape::TapeReader::open(&path).unwrap();
    for (seq, v) in [(0, 1.0f32), (1, 5.0)] {
        let out = &r.launch(seq).unwrap().end.unwrap().outputs[0];
        let want: Vec<u8> = (0..200)
            .flat_map(|i| (v + i as f32).to_le_bytes())
            .collect();
        assert_eq!(r.tensor_bytes(out).unwrap(), want);
        assert_eq!(out.hash, *blake3::hash(&want).as_bytes());
    }
}

#[test]
fn a_failed_async_copy_is_a_typed_error() {
    let d = tempfile::tempdir().unwrap();
    let g = gate();
    open(&g);
    let (mut rec, _) =
        Recorder::start(&d.path().join("a.tape"), header(), RecordOptions::default()).unwrap();
    rec.begin_launch(&launch(0), &[]).unwrap();
    let e = rec
        .end_launch(
            &launch(0),
            &[gated(4, 0.0, &g, Fail::AtStart)],
            Duration::ZERO,
        )
        .unwrap_err();
    assert!(
        matches!(&e, RecordError::DeviceCopy(m) if m == "no copy stream"),
        "{e:?}"
    );

    let (mut rec, _) =
        Recorder::start(&d.path().join("b.tape"), header(), RecordOptions::default()).unwrap();
    rec.begin_launch(&launch(0), &[&gated(4, 0.0, &g, Fail::AtWait)])
        .unwrap();
    let e = rec.finish_tape().unwrap_err();
    assert!(
        matches!(&e, RecordError::Write { error, .. }
            if matches!(&**error, RecordError::DeviceCopy(m) if m == "copy engine fault")),
        "{e:?}"
    );
    assert!(e.to_string().contains("copy engine fault"), "{e}");
}

#[test]
fn errors_are_typed_and_name_the_tape() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("no/such/dir/t.tape");
    let e = Recorder::start(&missing, header(), RecordOptions::default()).err();
    assert!(
        matches!(&e, Some(RecordError::Create { path, .. }) if path == &missing),
        "{e:?}"
    );
    assert!(e.unwrap().to_string().contains("no/such/dir/t.tape"));

    let (mut rec, summary) =
        Recorder::start(&d.path().join("t.tape"), header(), RecordOptions::default()).unwrap();
    rec.finish_tape().unwrap();
    assert!(matches!(&*summary.lock().unwrap(), Some(Ok(_))));
    let info = LaunchInfo {
        seq: 0,
        phase: Phase::Prefill,
        stage: Stage::Embed,
        layer: None,
        route: Route::new(Variant::Direct, Precision::F32),
        backend: "cpu".into(),
        params: Params::default(),
        foreign: None,
    };
    assert!(matches!(
        rec.begin_launch(&info, &[]),
        Err(RecordError::Finished)
    ));
    // Through the launcher's trait the same error arrives boxed, and downcasts back.
    let boxed = LaunchObserver::begin(&mut rec, &info, &[]).unwrap_err();
    assert!(matches!(
        boxed.downcast_ref::<RecordError>(),
        Some(RecordError::Finished)
    ));
}
