//! The recorder: a [`LaunchObserver`] that writes every launch to a tape.
//!
//! Cost model. The inference thread does almost nothing: device tensors whose bytes the tape does not
//! keep (hashes only, or launches outside the payload selection) are hashed on the device where the
//! backend can ([`DeviceBuffer::digest`](crate::launch::DeviceBuffer::digest)): the worker later reads
//! 32-byte digests, and the tensor never crosses to the host. Otherwise: host tensors are immutable and shared (`Arc`),
//! so handing one to the recorder is a reference-count increment; only device tensors are copied to the
//! host, and only when they are new (an input that is the unchanged output of an earlier launch is known by
//! its tensor id and never copied again — buffer versions). Hashing (blake3), chunking, deduplication and
//! compression (zstd) run on a worker thread that owns the tape writer. The queue between them is bounded
//! in bytes ([`budget::ByteBudget`]): when the worker falls behind, the inference thread waits instead of
//! buffering without limit.
//!
//! Durability. By default records are buffered in the worker and written in frames. With
//! [`Durability::EveryLaunch`] the inference thread waits, before each kernel runs, until the launch's
//! Begin record is written to the file: if the process then dies inside the kernel, the tape says which
//! launch it was and with what inputs.
//!
//! Recording never changes what is computed: the recorder only reads tensors (and the launcher hands it the
//! outputs after the kernel finished); a test checks that output hashes with and without recording match.

mod budget;
mod error;
pub mod fault;
mod select;
mod worker;

pub use error::RecordError;
pub use select::Selector;

use crate::launch::{LaunchInfo, LaunchObserver, ObserverError, Tensor, TensorData};
use crate::tape::{TapeHeader, TapeSummary, WriterOptions};
use budget::ByteBudget;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use worker::{Job, Worker};

crate::launch::names::named! {
    /// What to store besides hashes (`--capture`; the header's `capture` starts with its name).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    pub enum Capture ("capture", "captures") {
        /// Tensor bytes of selected launches (replayable), hashes of all.
        Full = "full",
        /// Hashes only (determinism checks, manifests).
        Hashes = "hashes",
    }
}

/// When records reach the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Buffered in frames (fast).
    Buffered,
    /// Each launch's Begin record is written before its kernel runs.
    EveryLaunch,
}

/// How to record.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// Payloads or hashes only.
    pub capture: Capture,
    /// Which launches get payloads (all by default).
    pub select: Selector,
    /// Copy model weights into the tape instead of referencing them by GGUF name and hash.
    pub embed_weights: bool,
    /// When records reach the file.
    pub durability: Durability,
    /// Bytes of tensors queued for the worker at most.
    pub max_inflight: usize,
    /// Tape writer options.
    pub writer: WriterOptions,
    /// Whether an existing tape at the path is replaced (`--force`) or refused.
    pub existing: crate::tape::Existing,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            capture: Capture::Full,
            select: Selector::default(),
            embed_weights: false,
            durability: Durability::Buffered,
            max_inflight: 256 << 20,
            writer: WriterOptions::default(),
            existing: crate::tape::Existing::Refuse,
        }
    }
}

/// The result of a recording, available after the launcher's `finish`.
pub type Summary = Arc<Mutex<Option<Result<TapeSummary, RecordError>>>>;

/// The observer half of a recorder: attach it to a launcher.
pub struct Recorder {
    tx: Option<SyncSender<Job>>,
    acks: Receiver<u64>,
    budget: Arc<ByteBudget>,
    durability: Durability,
    handle: Option<JoinHandle<Result<TapeSummary, RecordError>>>,
    summary: Summary,
    path: PathBuf,
    capture: Capture,
    select: Selector,
    /// Jobs not yet handed to the worker (sent as one batch), and the budget bytes they hold.
    pending: Vec<Job>,
    pending_bytes: usize,
}

/// Jobs queued before the worker is woken.
const BATCH: usize = 256;
/// Bytes of tensors queued before the worker is woken.
const BATCH_BYTES: usize = 8 << 20;

impl Recorder {
    /// Starts a recorder writing to `path` (via `path.incomplete`, renamed when complete).
    pub fn start(
        path: &Path,
        header: TapeHeader,
        opts: RecordOptions,
    ) -> Result<(Recorder, Summary), RecordError> {
        let writer =
            crate::tape::TapeWriter::create_with(path, &header, opts.writer.clone(), opts.existing)
                .map_err(|error| RecordError::Create {
                    path: path.to_path_buf(),
                    error,
                })?;
        let (tx, rx) = mpsc::sync_channel::<Job>(1024);
        let (ack_tx, acks) = mpsc::channel();
        let budget = Arc::new(ByteBudget::new(opts.max_inflight));
        let durability = opts.durability;
        let (capture, select) = (opts.capture, opts.select.clone());
        let mut w = Worker::new(writer, opts, budget.clone(), ack_tx);
        let handle = std::thread::Builder::new()
            .name("greta-recorder".into())
            .spawn(move || w.run(rx))
            .map_err(RecordError::Thread)?;
        let summary: Summary = Arc::new(Mutex::new(None));
        let rec = Recorder {
            tx: Some(tx),
            acks,
            budget,
            durability,
            handle: Some(handle),
            summary: summary.clone(),
            path: path.to_path_buf(),
            capture,
            select,
            pending: Vec::new(),
            pending_bytes: 0,
        };
        Ok((rec, summary))
    }

    /// Takes `n` bytes of budget for a job about to be queued. When that has to wait for the worker, the
    /// pending batch goes out first (the worker can only give back budget for jobs it has).
    fn acquire(&mut self, n: usize) -> Result<(), RecordError> {
        if !self.budget.try_acquire(n) {
            self.flush()?;
            self.budget.acquire(n);
        }
        Ok(())
    }

    /// Queues a job for the worker: jobs wait in a batch of up to [`BATCH`] jobs or [`BATCH_BYTES`]
    /// bytes, so the worker is woken once per batch, not per launch; a durable job goes out at once, with
    /// the batch before it, in order.
    fn queue(&mut self, job: Job, bytes: usize) -> Result<(), RecordError> {
        if self.tx.is_none() {
            return Err(RecordError::Finished);
        }
        self.pending.push(job);
        self.pending_bytes += bytes;
        if self.durability == Durability::EveryLaunch
            || self.pending.len() >= BATCH
            || self.pending_bytes >= BATCH_BYTES
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands the pending batch to the worker.
    fn flush(&mut self) -> Result<(), RecordError> {
        self.pending_bytes = 0;
        match self.pending.len() {
            0 => Ok(()),
            1 => {
                let j = self.pending.pop().expect("one job");
                self.send(j)
            }
            _ => {
                let jobs = std::mem::take(&mut self.pending);
                self.send(Job::Batch(jobs))
            }
        }
    }

    fn send(&mut self, job: Job) -> Result<(), RecordError> {
        let tx = self.tx.as_ref().ok_or(RecordError::Finished)?;
        if tx.send(job).is_err() {
            // The worker stopped: report why.
            return Err(self.join().err().unwrap_or(RecordError::WorkerStopped));
        }
        Ok(())
    }

    fn join(&mut self) -> Result<TapeSummary, RecordError> {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h.join().unwrap_or(Err(RecordError::WorkerPanicked)),
            None => Err(RecordError::Finished),
        }
    }

    /// Queues launch `info`'s Begin record with its `inputs` (copying device inputs the worker does not
    /// know yet); with [`Durability::EveryLaunch`], waits until the record is in the file.
    pub fn begin_launch(
        &mut self,
        info: &LaunchInfo,
        inputs: &[&Tensor],
    ) -> Result<(), RecordError> {
        // Device inputs the worker already knows (by id) are not copied again.
        let payload = self.capture == Capture::Full && self.select.matches(info);
        let mut digests = Vec::with_capacity(inputs.len());
        let mut known = Vec::with_capacity(inputs.len());
        for t in inputs {
            let (h, d) = match &t.data {
                TensorData::Device(_) if self.budget.known(t.id, payload) => (placeholder(t), None),
                // Bytes not needed (hashes only): digested on the device when the backend can.
                TensorData::Device(_) if !payload => match digest_on_device(t)? {
                    Some((h, d)) => (h, Some(d)),
                    None => (to_host(&[*t])?.remove(0), None),
                },
                _ => (to_host(&[*t])?.remove(0), None),
            };
            known.push(h);
            digests.push(d);
        }
        let n = bytes_of(&known);
        self.acquire(n)?;
        let wait = self.durability == Durability::EveryLaunch;
        self.queue(
            Job::Begin {
                info: info.clone(),
                inputs: known,
                digests,
                bytes: n,
                ack: wait,
            },
            n,
        )?;
        if wait && self.acks.recv().is_err() {
            // The worker stopped (a write failed): report its error, as without --sync.
            return Err(self.join().err().unwrap_or(RecordError::WorkerStopped));
        }
        Ok(())
    }

    /// Queues launch `info`'s End record with its `outputs` and kernel wall time.
    pub fn end_launch(
        &mut self,
        info: &LaunchInfo,
        outputs: &[Tensor],
        duration: Duration,
    ) -> Result<(), RecordError> {
        // Later device inputs with these ids need no copy (unless they need bytes that were not stored).
        let stored = self.capture == Capture::Full && self.select.matches(info);
        let mut outs = Vec::with_capacity(outputs.len());
        let mut digests = Vec::with_capacity(outputs.len());
        for t in outputs {
            match if stored { None } else { digest_on_device(t)? } {
                Some((h, d)) => {
                    outs.push(h);
                    digests.push(Some(d));
                }
                None => {
                    outs.push(to_host(&[t])?.remove(0));
                    digests.push(None);
                }
            }
        }
        for o in &outs {
            self.budget.remember(o.id, stored);
        }
        let n = bytes_of(&outs);
        self.acquire(n)?;
        self.queue(
            Job::End {
                seq: info.seq,
                outputs: outs,
                digests,
                duration,
                roles: info.foreign.as_ref().map(|f| f.output_roles.clone()),
                bytes: n,
            },
            n,
        )
    }

    /// Waits for the worker to write everything and complete the tape (index, trailer, rename); the
    /// result is also left in the [`Summary`].
    pub fn finish_tape(&mut self) -> Result<(), RecordError> {
        let r = self.flush().and_then(|()| self.join()).map_err(Arc::new);
        let write = |error: &Arc<RecordError>| RecordError::Write {
            path: self.path.clone(),
            error: error.clone(),
        };
        let out = r.as_ref().map(|_| ()).map_err(write);
        *self.summary.lock().expect("summary lock") = Some(r.map_err(|e| write(&e)));
        out
    }
}

/// A device tensor whose bytes stay on the device: its digest is being computed there, `len` is its size.
pub struct Digested {
    /// The digest, when the device has it.
    pub digest: crate::launch::PendingDigest,
    /// Bytes of the tensor.
    pub len: usize,
}

/// `t` without its bytes (same id, dtype, shape, origin): what the worker gets for a device tensor it
/// knows already or whose digest is computed on the device.
fn placeholder(t: &Tensor) -> Tensor {
    Tensor {
        data: TensorData::Host(crate::launch::Bytes::Raw(Arc::new(Vec::new()))),
        ..t.clone()
    }
}

/// For a device tensor whose bytes are not needed (hashes only): an empty host placeholder (same id,
/// dtype, shape, origin) and its digest started on the device. None when the backend cannot hash there
/// (the caller copies the bytes).
fn digest_on_device(t: &Tensor) -> Result<Option<(Tensor, Digested)>, RecordError> {
    let TensorData::Device(d) = &t.data else {
        return Ok(None);
    };
    let Some(p) = d.digest() else {
        return Ok(None);
    };
    Ok(Some((
        placeholder(t),
        Digested {
            digest: p.map_err(RecordError::DeviceDigest)?,
            len: d.len(),
        },
    )))
}

/// Host copies of tensors for the worker: shared host bytes, or device bytes copied now.
fn to_host(ts: &[&Tensor]) -> Result<Vec<Tensor>, RecordError> {
    ts.iter()
        .map(|t| match &t.data {
            TensorData::Host(_) => Ok((*t).clone()),
            TensorData::Device(d) => {
                let bytes = d.to_host().map_err(RecordError::DeviceCopy)?;
                let mut h =
                    Tensor::from_le_bytes(t.dtype, t.shape.clone(), bytes, t.origin.clone());
                h.id = t.id;
                Ok(h)
            }
        })
        .collect()
}

/// Bytes the queue keeps alive that would otherwise be freed: host tensors other than model weights
/// (weights live as long as the model, whether or not the recorder holds them, so they take no budget;
/// counting them made every matmul wait for the worker).
fn bytes_of(ts: &[Tensor]) -> usize {
    ts.iter()
        .filter(|t| !matches!(t.origin, crate::launch::Origin::Weight(_)))
        .map(|t| t.host_bytes().map_or(0, |b| b.as_slice().len()))
        .sum()
}

/// The recorder as the launcher sees it; the typed [`RecordError`] travels boxed inside
/// [`LaunchError::Observer`](crate::launch::LaunchError::Observer) (downcast it to match on it).
impl LaunchObserver for Recorder {
    fn begin(&mut self, info: &LaunchInfo, inputs: &[&Tensor]) -> Result<(), ObserverError> {
        Ok(self.begin_launch(info, inputs)?)
    }

    fn end(
        &mut self,
        info: &LaunchInfo,
        outputs: &[Tensor],
        duration: Duration,
    ) -> Result<(), ObserverError> {
        Ok(self.end_launch(info, outputs, duration)?)
    }

    fn finish(&mut self) -> Result<(), ObserverError> {
        Ok(self.finish_tape()?)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // A run that failed part-way: let the worker write what it has (the tape stays `.incomplete`,
        // readable up to its last frame) and stop.
        if self.handle.is_some() {
            // What the run did before it failed reaches the tape.
            let _ = self.flush();
            if let Some(tx) = self.tx.take() {
                let _ = tx.send(Job::Abort);
            }
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}

#[cfg(test)]
mod throughput {
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
}
