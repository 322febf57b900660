//! The recorder's worker thread: hashes, chunks, deduplicates and writes what the inference thread queued.

use super::budget::ByteBudget;
use super::{Capture, RecordError, RecordOptions};
use crate::launch::{DType, LaunchInfo, Origin, Tensor, TensorData};
use crate::tape::{
    Hash, LaunchBegin, LaunchEnd, Record, RowSpan, Storage, TapeSummary, TapeWriter, TensorRef,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

/// Work queued by the inference thread.
pub enum Job {
    /// A launch is about to run with these inputs.
    Begin {
        /// The launch.
        info: LaunchInfo,
        /// Its inputs (host; device inputs already stored, digested on the device or being copied are
        /// empty placeholders).
        inputs: Vec<Tensor>,
        /// Per input: its digest being computed on the device, or its bytes being copied (placeholder
        /// inputs only).
        deferred: Vec<Option<super::Deferred>>,
        /// Bytes to release from the budget when written.
        bytes: usize,
        /// Acknowledge on the ack channel once the Begin record is in the file.
        ack: bool,
    },
    /// The launch finished with these outputs.
    End {
        /// Launch number.
        seq: u64,
        /// Outputs (host, or placeholders for those digested on the device or being copied).
        outputs: Vec<Tensor>,
        /// Per output: its digest being computed on the device, or its bytes being copied.
        deferred: Vec<Option<super::Deferred>>,
        /// Kernel wall time.
        duration: Duration,
        /// Output role names of a foreign launch (known only at its end); None: the stage's.
        roles: Option<Vec<String>>,
        /// Bytes to release.
        bytes: usize,
    },
    /// Several jobs in order (the inference thread queues hash-only jobs in batches: one wake-up of the
    /// worker per batch, not per launch).
    Batch(Vec<Job>),
    /// The run failed: write what there is and stop without completing the tape.
    Abort,
}

/// The worker state.
pub struct Worker {
    writer: Option<TapeWriter>,
    opts: RecordOptions,
    budget: Arc<ByteBudget>,
    ack: Sender<u64>,
    /// Output refs by tensor id (capture-once).
    produced: HashMap<u64, TensorRef>,
    /// Weight hashes by tensor id.
    weights: HashMap<u64, Hash>,
    /// Whether the launch being begun stores payloads.
    payload: bool,
    /// Launches begun and not ended, by seq: whether they store payloads, and their output roles.
    /// (Foreign engines may interleave launches from several threads; greta's own runs one at a time.)
    in_flight: HashMap<u64, (bool, Vec<String>)>,
}

fn output_roles(info: &LaunchInfo) -> Vec<String> {
    match &info.foreign {
        Some(f) => f.output_roles.clone(),
        None => info
            .stage
            .output_roles()
            .iter()
            .map(|r| r.to_string())
            .collect(),
    }
}

fn seq_role(n: usize, i: usize, roles: &[String]) -> &str {
    roles
        .get(i)
        .map(String::as_str)
        .unwrap_or(if n == 1 { "out" } else { "out_n" })
}

/// blake3 of a tensor's bytes: on all cores from 1 MiB on (prefill activations of an 8B model are tens of
/// MB; the digest is the same either way).
fn hash_bytes(b: &[u8]) -> Hash {
    let t = crate::launch::profile::timer();
    let h = if b.len() >= 1 << 20 {
        *blake3::Hasher::new().update_rayon(b).finalize().as_bytes()
    } else {
        *blake3::hash(b).as_bytes()
    };
    crate::launch::profile::add_since(&crate::launch::profile::HOST_HASH_NS, t);
    h
}

fn elem_size(d: DType) -> usize {
    match d {
        DType::F64 => 8,
        DType::F32 | DType::I32 => 4,
        DType::F16 | DType::BF16 => 2,
        _ => 1,
    }
}

/// Waits for the bytes of every tensor being copied from the device and puts the host tensor in its
/// placeholder's place (same id, dtype, shape, origin: stored exactly as a tensor copied synchronously);
/// returns the digests still to wait for, per tensor, and the indices of the tensors whose bytes were
/// copied (their buffers go back to `launch::host_buffers` once stored, see [`recycle`]).
fn resolve(
    ts: &mut [Tensor],
    deferred: Vec<Option<super::Deferred>>,
) -> Result<(Vec<Option<super::Digested>>, Vec<usize>), RecordError> {
    let mut copied = Vec::new();
    let mut digests = Vec::with_capacity(deferred.len());
    for (i, d) in deferred.into_iter().enumerate() {
        match d {
            Some(super::Deferred::Digest(d)) => digests.push(Some(d)),
            Some(super::Deferred::Bytes(c)) => {
                let t0 = std::time::Instant::now();
                let bytes = c.bytes.wait().map_err(RecordError::DeviceCopy)?;
                crate::launch::profile::COPY_WAIT_NS.fetch_add(
                    t0.elapsed().as_nanos() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                if bytes.len() != c.len {
                    return Err(RecordError::DeviceCopy(format!(
                        "the copy of a {}-byte tensor yielded {} bytes",
                        c.len,
                        bytes.len()
                    )));
                }
                let t = ts.get_mut(i).ok_or_else(|| {
                    RecordError::DeviceCopy(format!("a copy for tensor {i}, which is not queued"))
                })?;
                *t = super::with_bytes(t, bytes);
                copied.push(i);
                digests.push(None);
            }
            None => digests.push(None),
        }
    }
    Ok((digests, copied))
}

/// Gives the host buffers of the copied tensors `copied` of `ts` back for reuse (the tape has their bytes
/// now; nothing else holds them).
fn recycle(ts: Vec<Tensor>, copied: &[usize]) {
    for (i, t) in ts.into_iter().enumerate() {
        if !copied.contains(&i) {
            continue;
        }
        if let TensorData::Host(crate::launch::Bytes::Raw(b)) = t.data {
            if let Ok(v) = Arc::try_unwrap(b) {
                crate::launch::host_buffers::give(v);
            }
        }
    }
}

impl Worker {
    /// A worker writing with `writer`.
    pub fn new(
        writer: TapeWriter,
        opts: RecordOptions,
        budget: Arc<ByteBudget>,
        ack: Sender<u64>,
    ) -> Worker {
        Worker {
            writer: Some(writer),
            opts,
            budget,
            ack,
            produced: HashMap::new(),
            weights: HashMap::new(),
            payload: false,
            in_flight: HashMap::new(),
        }
    }

    /// Runs until the channel closes (then finishes the tape) or an abort/error.
    pub fn run(&mut self, rx: Receiver<Job>) -> Result<TapeSummary, RecordError> {
        for job in rx {
            self.step(job)?;
        }
        let started = std::time::Instant::now();
        let w = self.writer.take().ok_or(RecordError::TapeFinished)?;
        let t = w.times();
        use crate::launch::profile as prof;
        for (c, d) in [
            (&prof::WRITER_HASH_NS, t.hash),
            (&prof::WRITER_ENCODE_NS, t.encode),
            (&prof::WRITER_WRITE_NS, t.write),
        ] {
            prof::add(c, d.as_nanos() as u64);
        }
        let summary = w.finish()?;
        crate::launch::profile::TAPE_FINISH_NS.fetch_add(
            started.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(summary)
    }

    /// One job (a batch in order); an abort flushes what there is and ends the run with an error.
    fn step(&mut self, job: Job) -> Result<(), RecordError> {
        match job {
            Job::Begin {
                info,
                mut inputs,
                deferred,
                bytes,
                ack,
            } => {
                let r = resolve(&mut inputs, deferred).and_then(|(digests, copied)| {
                    self.begin(&info, &inputs, digests, ack).map(|()| copied)
                });
                self.budget.release(bytes);
                recycle(inputs, &r?);
                if ack {
                    let _ = self.ack.send(info.seq);
                }
            }
            Job::End {
                seq,
                mut outputs,
                deferred,
                duration,
                roles,
                bytes,
            } => {
                let r = resolve(&mut outputs, deferred).and_then(|(digests, copied)| {
                    self.end(seq, &outputs, digests, duration, roles)
                        .map(|()| copied)
                });
                self.budget.release(bytes);
                recycle(outputs, &r?);
            }
            Job::Batch(jobs) => {
                for j in jobs {
                    self.step(j)?;
                }
            }
            Job::Abort => {
                if let Some(w) = self.writer.as_mut() {
                    w.flush()?;
                }
                return Err(RecordError::Aborted);
            }
        }
        Ok(())
    }

    fn w(&mut self) -> Result<&mut TapeWriter, RecordError> {
        self.writer.as_mut().ok_or(RecordError::TapeFinished)
    }

    fn store(
        &mut self,
        t: &Tensor,
        role: &str,
        hash: Hash,
        payload: bool,
    ) -> Result<TensorRef, RecordError> {
        let bytes = t.host_bytes().map(|b| b.as_slice()).unwrap_or(&[]);
        let storage = if payload {
            let t0 = crate::launch::profile::timer();
            let chunks = self.w()?.put_tensor(bytes, elem_size(t.dtype))?;
            crate::launch::profile::add_since(&crate::launch::profile::STORE_NS, t0);
            Storage::Chunks(chunks)
        } else {
            Storage::HashOnly
        };
        Ok(TensorRef {
            role: role.to_string(),
            dtype: t.dtype,
            shape: t.shape.iter().map(|&d| d as u64).collect(),
            len: bytes.len() as u64,
            hash,
            storage,
        })
    }

    /// The reference of a tensor digested on the device: its hash, no bytes.
    fn digested_ref(t: &Tensor, role: &str, d: super::Digested) -> Result<TensorRef, RecordError> {
        Ok(TensorRef {
            role: role.to_string(),
            dtype: t.dtype,
            shape: t.shape.iter().map(|&d| d as u64).collect(),
            len: d.len as u64,
            hash: {
                let t = std::time::Instant::now();
                let h = d.digest.wait().map_err(RecordError::DeviceDigest)?;
                crate::launch::profile::DIGEST_WAIT_NS.fetch_add(
                    t.elapsed().as_nanos() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                h
            },
            storage: Storage::HashOnly,
        })
    }

    fn input_ref(
        &mut self,
        t: &Tensor,
        role: &str,
        digest: Option<super::Digested>,
    ) -> Result<TensorRef, RecordError> {
        if let Some(p) = self.produced.get(&t.id).cloned() {
            // Capture-once: the unchanged output of an earlier launch is referenced, not stored again;
            // unless its bytes were not stored (it was outside the selection) and this launch needs them.
            if !matches!(p.storage, Storage::HashOnly) || !self.payload {
                return Ok(TensorRef {
                    role: role.to_string(),
                    ..p
                });
            }
            return self.store(t, role, p.hash, true);
        }
        if let (Origin::Gathered(spans), true) = (&t.origin, self.payload) {
            // Rows of earlier outputs: stored as references when every source was stored.
            let refs: Option<Vec<RowSpan>> = spans
                .iter()
                .map(
                    |&(id, row0, rows)| match self.produced.get(&id).map(|p| &p.storage) {
                        Some(Storage::Producer { seq, index }) => Some(RowSpan {
                            seq: *seq,
                            index: *index,
                            row0: row0 as u64,
                            rows: rows as u64,
                        }),
                        _ => None,
                    },
                )
                .collect();
            if let Some(refs) = refs {
                let bytes = t.host_bytes().map(|b| b.as_slice()).unwrap_or(&[]);
                return Ok(TensorRef {
                    role: role.to_string(),
                    dtype: t.dtype,
                    shape: t.shape.iter().map(|&d| d as u64).collect(),
                    len: bytes.len() as u64,
                    hash: hash_bytes(bytes),
                    storage: Storage::Rows(refs),
                });
            }
        }
        if let Some(name) = t.weight_name() {
            let hash = match self.weights.get(&t.id) {
                Some(h) => *h,
                None => {
                    // Hashed once: where the backend uploaded it (a GPU hashes it on the device),
                    // else here.
                    let h =
                        match crate::launch::known_digests::get(t.id) {
                            Some(h) => h,
                            None => hash_bytes(t.host_bytes().map(|b| b.as_slice()).ok_or_else(
                                || RecordError::WeightNotOnHost {
                                    role: role.to_string(),
                                    name: name.to_string(),
                                },
                            )?),
                        };
                    self.weights.insert(t.id, h);
                    h
                }
            };
            if self.opts.embed_weights && self.payload {
                return self.store(t, role, hash, true);
            }
            let len = t.host_bytes().map_or(0, |b| b.as_slice().len()) as u64;
            return Ok(TensorRef {
                role: role.to_string(),
                dtype: t.dtype,
                shape: t.shape.iter().map(|&d| d as u64).collect(),
                len,
                hash,
                storage: Storage::Weight {
                    name: name.to_string(),
                },
            });
        }
        if let Some(d) = digest {
            return Self::digested_ref(t, role, d);
        }
        let bytes = t.host_bytes().map(|b| b.as_slice()).unwrap_or(&[]);
        let hash = hash_bytes(bytes);
        let payload = self.payload;
        self.store(t, role, hash, payload)
    }

    fn begin(
        &mut self,
        info: &LaunchInfo,
        inputs: &[Tensor],
        mut digests: Vec<Option<super::Digested>>,
        _ack: bool,
    ) -> Result<(), RecordError> {
        self.payload = self.opts.capture == Capture::Full && self.opts.select.matches(info);
        self.in_flight
            .insert(info.seq, (self.payload, output_roles(info)));
        let roles: Vec<&str> = match &info.foreign {
            Some(f) => f.input_roles.iter().map(String::as_str).collect(),
            None => info.stage.input_roles().to_vec(),
        };
        let refs = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let d = digests.get_mut(i).and_then(Option::take);
                self.input_ref(t, roles.get(i).copied().unwrap_or("in"), d)
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        let rec = Record::Begin(LaunchBegin {
            seq: info.seq,
            phase: info.phase,
            layer: info.layer,
            stage: info.stage,
            route: info.route,
            backend: info.backend.clone(),
            grid: None,
            block: None,
            params: info.params,
            inputs: refs,
            foreign: info.foreign.as_ref().map(|f| f.foreign.clone()),
        });
        let durable = self.opts.durability == super::Durability::EveryLaunch;
        let w = self.w()?;
        w.put_record(&rec)?;
        if durable {
            w.flush()?;
        }
        Ok(())
    }

    fn end(
        &mut self,
        seq: u64,
        outputs: &[Tensor],
        mut digests: Vec<Option<super::Digested>>,
        duration: Duration,
        given: Option<Vec<String>>,
    ) -> Result<(), RecordError> {
        let (payload, roles) = self
            .in_flight
            .remove(&seq)
            .ok_or(RecordError::EndWithoutBegin(seq))?;
        let roles = given.unwrap_or(roles);
        let mut refs = Vec::with_capacity(outputs.len());
        for (i, t) in outputs.iter().enumerate() {
            let role = seq_role(outputs.len(), i, &roles);
            let r = match digests.get_mut(i).and_then(Option::take) {
                Some(d) => Self::digested_ref(t, role, d)?,
                None => {
                    let bytes = t.host_bytes().map(|b| b.as_slice()).unwrap_or(&[]);
                    let hash = hash_bytes(bytes);
                    self.store(t, role, hash, payload)?
                }
            };
            // Later launches that read this tensor unchanged refer to it by producer.
            let mut later = r.clone();
            if !matches!(r.storage, Storage::HashOnly) {
                later.storage = Storage::Producer {
                    seq,
                    index: i as u32,
                };
            }
            self.produced.insert(t.id, later);
            refs.push(r);
        }
        let rec = Record::End(LaunchEnd {
            seq,
            outputs: refs,
            duration_ns: duration.as_nanos() as u64,
        });
        self.w()?.put_record(&rec)?;
        Ok(())
    }
}
