//! Full capture with asynchronous device-to-host copies (issue 11) writes the very tape that synchronous
//! copies write (but for kernel wall times). The device is a stand-in: the CPU backend whose outputs live in [`FakeBuf`]s, "device"
//! buffers whose asynchronous copies arrive late, from a copy-engine thread, in order (as from a GPU's
//! copy stream); optionally they are also digested "on the device".

use crate::util::*;
use greta::backend::cpu::CpuBackend;
use greta::backend::{Backend, BackendError};
use greta::engine::{Engine, GenOptions, Model, generate};
use greta::launch::{
    DeviceBuffer, Launcher, Params, PendingBytes, PendingDigest, Precision, Route, RoutePolicy,
    Stage, Tensor, TensorData,
};
use greta::record::{Capture, RecordOptions, Recorder, Selector};
use greta::tape::{ModelIdentity, Producer, RunInfo, Storage, TapeHeader, TapeReader};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the stand-in device hands its bytes to a recorder.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// `to_host_async` is None: the recorder copies synchronously (the CPU's and the old GPU path).
    Sync,
    /// Copies are started and arrive later from the copy thread.
    Async,
    /// As Async, and tensors whose bytes are not needed are digested "on the device" (the GPU's path).
    AsyncAndDigest,
}

/// A copy request: the bytes and where to send them.
type CopyJob = (Vec<u8>, Sender<Vec<u8>>);

/// A "device" buffer.
#[derive(Debug)]
struct FakeBuf {
    bytes: Vec<u8>,
    mode: Mode,
    /// The copy engine's queue.
    engine: Mutex<Sender<CopyJob>>,
    /// Asynchronous copies started.
    copies: Arc<AtomicUsize>,
}

impl DeviceBuffer for FakeBuf {
    fn to_host(&self) -> Result<Vec<u8>, String> {
        Ok(self.bytes.clone())
    }
    fn len(&self) -> usize {
        self.bytes.len()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn digest(&self) -> Option<Result<PendingDigest, String>> {
        let h = *blake3::hash(&self.bytes).as_bytes();
        (self.mode == Mode::AsyncAndDigest).then(|| Ok(PendingDigest::new(move || Ok(h))))
    }
    fn to_host_async(&self) -> Option<Result<PendingBytes, String>> {
        if self.mode == Mode::Sync {
            return None;
        }
        self.copies.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = channel();
        let sent = self
            .engine
            .lock()
            .map_err(|_| "engine lock".to_string())
            .and_then(|e| {
                e.send((self.bytes.clone(), tx))
                    .map_err(|_| "copy engine gone".to_string())
            });
        Some(sent.map(|()| PendingBytes::new(move || rx.recv().map_err(|e| e.to_string()))))
    }
}

/// The CPU backend with its outputs (and gathered rows) on the stand-in device.
struct FakeDevice {
    cpu: CpuBackend,
    mode: Mode,
    engine: Sender<CopyJob>,
    copies: Arc<AtomicUsize>,
}

impl FakeDevice {
    fn new(mode: Mode) -> FakeDevice {
        let (engine, jobs) = channel::<CopyJob>();
        // The copy engine: one copy after another, each a little late.
        std::thread::spawn(move || {
            for (bytes, reply) in jobs {
                std::thread::sleep(Duration::from_micros(50));
                let _ = reply.send(bytes);
            }
        });
        FakeDevice {
            cpu: CpuBackend::new(1),
            mode,
            engine,
            copies: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// `t` on the device (same id, dtype, shape, origin).
    fn upload(&self, t: Tensor) -> Tensor {
        let bytes = t.to_host_bytes().unwrap().into_owned();
        Tensor {
            data: TensorData::Device(Arc::new(FakeBuf {
                bytes,
                mode: self.mode,
                engine: Mutex::new(self.engine.clone()),
                copies: self.copies.clone(),
            })),
            ..t
        }
    }
}

/// `t` on the host (same id).
fn download(t: &Tensor) -> Tensor {
    let bytes = t.to_host_bytes().unwrap().into_owned();
    let mut h = Tensor::from_le_bytes(t.dtype, t.shape.clone(), bytes, t.origin.clone());
    h.id = t.id;
    h
}

impl Backend for FakeDevice {
    fn name(&self) -> &'static str {
        "fake-device"
    }
    fn device(&self) -> String {
        "the CPU behind a stand-in device".into()
    }
    fn routes(&self, stage: Stage) -> Vec<Route> {
        self.cpu.routes(stage)
    }
    fn execute(
        &self,
        stage: Stage,
        route: Route,
        params: &Params,
        inputs: &[&Tensor],
    ) -> Result<Vec<Tensor>, BackendError> {
        let host: Vec<Tensor> = inputs.iter().map(|t| download(t)).collect();
        let refs: Vec<&Tensor> = host.iter().collect();
        Ok(self
            .cpu
            .execute(stage, route, params, &refs)?
            .into_iter()
            .map(|t| self.upload(t))
            .collect())
    }
    fn gather_rows(&self, parts: &[(&Tensor, usize, usize)]) -> Result<Tensor, BackendError> {
        Ok(self.upload(greta::backend::gather_rows_host(parts)?))
    }
}

fn header() -> TapeHeader {
    let producer = Producer {
        greta_version: String::new(),
        backend: "fake-device".into(),
        device: String::new(),
        kernel_hashes: Vec::new(),
        engine: None,
        provenance: None,
    };
    let run = RunInfo {
        prompt_tokens: PROMPT.to_vec(),
        routes: Vec::new(),
        threads: 1,
        capture: "full layers 1".into(),
        options_json: "{}".into(),
        created_unix: 0,
    };
    TapeHeader::new(ModelIdentity::default(), String::new(), producer, run)
}

const PROMPT: &[u32] = &[5, 17, 42, 99, 3, 250, 7];

/// Records prefill and 3 decode steps of the tiny model on the stand-in device, storing layer 1's
/// tensors; returns the asynchronous copies started.
fn record(model: &Model, mode: Mode, out: &Path, max_inflight: usize) -> usize {
    let dev = Arc::new(FakeDevice::new(mode));
    let opts = RecordOptions {
        capture: Capture::Full,
        select: Selector {
            layers: vec![1],
            ..Selector::default()
        },
        max_inflight,
        ..RecordOptions::default()
    };
    let (rec, _summary) = Recorder::start(out, header(), opts).unwrap();
    let mut l = Launcher::new(dev.clone(), RoutePolicy::new(Precision::F32));
    l.observe(Box::new(rec));
    let mut e = Engine::new(model, l);
    let opts = GenOptions {
        max_tokens: 3,
        stop: vec![],
        probe_last_token: false,
    };
    generate(&mut e, PROMPT, &opts).unwrap();
    dev.copies.load(Ordering::Relaxed)
}

/// Two tapes of the same launches agree in everything but kernel wall times: every record (hashes,
/// storage, shapes), every stored tensor's bytes, the chunks and their total size.
fn same_tape(a: &TapeReader, b: &TapeReader, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: launches");
    assert_eq!(a.chunk_count(), b.chunk_count(), "{what}: chunks");
    assert_eq!(a.raw_bytes(), b.raw_bytes(), "{what}: unique tensor bytes");
    for seq in 0..a.len() as u64 {
        let (la, lb) = (a.launch(seq).unwrap(), b.launch(seq).unwrap());
        assert_eq!(la.begin, lb.begin, "{what}: launch {seq} begin");
        let (mut ea, mut eb) = (la.end.unwrap(), lb.end.unwrap());
        (ea.duration_ns, eb.duration_ns) = (0, 0);
        assert_eq!(ea, eb, "{what}: launch {seq} end");
        for t in la.begin.inputs.iter().chain(&ea.outputs) {
            if !matches!(t.storage, Storage::HashOnly | Storage::Weight { .. }) {
                assert_eq!(
                    a.tensor_bytes(t).unwrap(),
                    b.tensor_bytes(t).unwrap(),
                    "{what}: launch {seq} {}",
                    t.role
                );
            }
        }
    }
}

#[test]
fn async_copies_write_the_tape_sync_copies_write() {
    let d = tmp();
    let model = Model::load(&tiny()).unwrap();
    assert!(model.config.n_layers >= 2, "the test stores layer 1 only");
    let sync = d.path().join("sync.tape");
    assert_eq!(record(&model, Mode::Sync, &sync, 256 << 20), 0);
    let want = TapeReader::open(&sync).unwrap();
    for (mode, budget) in [
        (Mode::Async, 256 << 20),
        // A budget smaller than most tensors: copies in flight make the inference thread wait.
        (Mode::Async, 1 << 10),
        (Mode::AsyncAndDigest, 256 << 20),
    ] {
        let p = d.path().join(format!("{mode:?}-{budget}.tape"));
        let copies = record(&model, mode, &p, budget);
        assert!(copies > 0, "{mode:?}: no asynchronous copy was started");
        same_tape(
            &TapeReader::open(&p).unwrap(),
            &want,
            &format!("{mode:?}, budget {budget}"),
        );
    }

    // The same tape, read back: layer 1's tensors stored (or referenced), the others' hashed only; every
    // tensor with bytes on the tape hashes to its recorded hash.
    let r = TapeReader::open(&sync).unwrap();
    let (mut stored, mut hashed) = (0, 0);
    for seq in 0..r.len() as u64 {
        let l = r.launch(seq).unwrap();
        let selected = l.begin.layer == Some(1);
        let outs = l.end.unwrap().outputs;
        for t in l.begin.inputs.iter().chain(&outs) {
            match &t.storage {
                Storage::Weight { .. } => {}
                Storage::HashOnly => {
                    assert!(!selected, "launch {seq}: {} not stored", t.role);
                    hashed += 1;
                }
                s => {
                    assert!(
                        selected || !matches!(s, Storage::Chunks(_)),
                        "launch {seq}: {} stored",
                        t.role
                    );
                    let b = r.tensor_bytes(t).unwrap();
                    assert_eq!(
                        *blake3::hash(&b).as_bytes(),
                        t.hash,
                        "launch {seq} {}",
                        t.role
                    );
                    stored += 1;
                }
            }
        }
    }
    assert!(stored > 0 && hashed > 0, "stored {stored}, hashed {hashed}");
}
