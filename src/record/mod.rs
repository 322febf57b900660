//! The recorder: a [`LaunchObserver`] that writes every launch to a tape.
//!
//! Cost model. The inference thread does almost nothing: device tensors whose bytes the tape does not
//! keep (hashes only, or launches outside the payload selection) are hashed on the device where the
//! backend can ([`DeviceBuffer::digest`](crate::launch::DeviceBuffer::digest)): the worker later reads
//! 32-byte digests, and the tensor never crosses to the host. Otherwise: host tensors are immutable and
//! shared (`Arc`), so handing one to the recorder is a reference-count increment; only device tensors are
//! copied to the host, and only when they are new (an input that is the unchanged output of an earlier
//! launch is known by its tensor id and never copied again — buffer versions). Where the backend can, the
//! copy is only started ([`DeviceBuffer::to_host_async`](crate::launch::DeviceBuffer::to_host_async): on
//! the GPU, an event after the producing kernel; the worker then copies on a second stream while the next
//! kernels run, into host buffers it gives back once stored, `launch::host_buffers`); a blocking copy
//! drained the device's queue per tensor (issue 11: 1.4 s of a 2 s full capture of an 8B model). Either
//! way the worker gets the same bytes and writes the same tape. Hashing (blake3), chunking, deduplication
//! and compression (zstd) run on a worker thread that owns the tape writer. The queue between them is
//! bounded in bytes ([`budget::ByteBudget`], which counts copies in flight: their device buffers are held
//! until the worker has copied them): when the worker falls behind, the inference thread waits instead of
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
            let t = crate::launch::profile::timer();
            self.flush()?;
            self.budget.acquire(n);
            crate::launch::profile::add_since(&crate::launch::profile::BUDGET_WAIT_NS, t);
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
                let jobs = std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH));
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
        let mut deferred = Vec::with_capacity(inputs.len());
        let mut known = Vec::with_capacity(inputs.len());
        for t in inputs {
            let (h, d) = match &t.data {
                TensorData::Device(_) if self.budget.known(t.id, payload) => (placeholder(t), None),
                // Bytes not needed (hashes only): digested on the device when the backend can.
                TensorData::Device(_) if !payload => match digest_on_device(t)? {
                    Some((h, d)) => (h, Some(Deferred::Digest(d))),
                    None => fetch(t)?,
                },
                _ => fetch(t)?,
            };
            known.push(h);
            deferred.push(d);
        }
        let n = bytes_of(&known) + copying(&deferred);
        self.acquire(n)?;
        let wait = self.durability == Durability::EveryLaunch;
        self.queue(
            Job::Begin {
                info: info.clone(),
                inputs: known,
                deferred,
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
        let mut deferred = Vec::with_capacity(outputs.len());
        for t in outputs {
            let (h, d) = match if stored { None } else { digest_on_device(t)? } {
                Some((h, d)) => (h, Some(Deferred::Digest(d))),
                None => fetch(t)?,
            };
            outs.push(h);
            deferred.push(d);
        }
        for o in &outs {
            self.budget.remember(o.id, stored);
        }
        let n = bytes_of(&outs) + copying(&deferred);
        self.acquire(n)?;
        self.queue(
            Job::End {
                seq: info.seq,
                outputs: outs,
                deferred,
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

/// What the worker still has to wait for, for a placeholder tensor.
pub enum Deferred {
    /// Its digest, computed on the device (its bytes are not needed).
    Digest(Digested),
    /// Its bytes, being copied from the device.
    Bytes(Copying),
}

/// A device tensor whose bytes are on their way to the host ([`DeviceBuffer::to_host_async`]).
///
/// [`DeviceBuffer::to_host_async`]: crate::launch::DeviceBuffer::to_host_async
pub struct Copying {
    /// The bytes, once the copy has run.
    pub bytes: crate::launch::PendingBytes,
    /// Bytes of the tensor (taken from the budget until the worker has them).
    pub len: usize,
}

/// `t` without its bytes (same id, dtype, shape, origin): what the worker gets for a device tensor it
/// knows already, whose digest is computed on the device, or whose bytes are being copied.
fn placeholder(t: &Tensor) -> Tensor {
    // One shared empty buffer: a placeholder per launch costs no allocation for its bytes.
    static EMPTY: std::sync::OnceLock<Arc<Vec<u8>>> = std::sync::OnceLock::new();
    with_raw(t, Arc::clone(EMPTY.get_or_init(|| Arc::new(Vec::new()))))
}

/// A host tensor of `bytes` (untyped) with `t`'s id, dtype, shape and origin.
fn with_raw(t: &Tensor, bytes: Arc<Vec<u8>>) -> Tensor {
    Tensor {
        id: t.id,
        dtype: t.dtype,
        shape: t.shape.clone(),
        data: TensorData::Host(crate::launch::Bytes::Raw(bytes)),
        origin: t.origin.clone(),
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

/// A tensor's bytes for the worker: shared host bytes; a device tensor's copy started where the backend
/// can copy beside its kernels (a placeholder and the copy in flight); else device bytes copied now.
fn fetch(t: &Tensor) -> Result<(Tensor, Option<Deferred>), RecordError> {
    let d = match &t.data {
        TensorData::Host(_) => return Ok((t.clone(), None)),
        TensorData::Device(d) => d,
    };
    let t0 = crate::launch::profile::timer();
    let started = d.to_host_async();
    crate::launch::profile::add_since(&crate::launch::profile::COPY_START_NS, t0);
    match started {
        Some(p) => Ok((
            placeholder(t),
            Some(Deferred::Bytes(Copying {
                bytes: p.map_err(RecordError::DeviceCopy)?,
                len: d.len(),
            })),
        )),
        None => {
            let bytes = d.to_host().map_err(RecordError::DeviceCopy)?;
            Ok((with_bytes(t, bytes), None))
        }
    }
}

/// The host tensor of `t`'s bytes: same id, dtype, shape and origin, so the worker stores it exactly as
/// it would have stored `t`. The bytes stay as they are (untyped): the worker only hashes and stores
/// them, and converting a copy of hundreds of MB to typed elements cost a second fresh buffer per tensor.
fn with_bytes(t: &Tensor, bytes: Vec<u8>) -> Tensor {
    with_raw(t, Arc::new(bytes))
}

/// Bytes of the copies in flight (their device buffers are held until the worker has copied them).
fn copying(d: &[Option<Deferred>]) -> usize {
    d.iter()
        .map(|d| match d {
            Some(Deferred::Bytes(c)) => c.len,
            _ => 0,
        })
        .sum()
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
mod tests;

#[cfg(test)]
mod throughput;
