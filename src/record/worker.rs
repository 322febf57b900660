//! The recorder's worker thread: hashes, chunks, deduplicates and writes what the inference thread queued.

use super::budget::ByteBudget;
use super::{Capture, RecordError, RecordOptions};
use crate::launch::{DType, LaunchInfo, Origin, Tensor};
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
        /// Its inputs (host; device inputs already stored are empty placeholders).
        inputs: Vec<Tensor>,
        /// Bytes to release from the budget when written.
        bytes: usize,
        /// Acknowledge on the ack channel once the Begin record is in the file.
        ack: bool,
    },
    /// The launch finished with these outputs.
    End {
        /// Launch number.
        seq: u64,
        /// Outputs (host).
        outputs: Vec<Tensor>,
        /// Kernel wall time.
        duration: Duration,
        /// Output role names of a foreign launch (known only at its end); None: the stage's.
        roles: Option<Vec<String>>,
        /// Bytes to release.
        bytes: usize,
    },
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

fn elem_size(d: DType) -> usize {
    match d {
        DType::F64 => 8,
        DType::F32 | DType::I32 => 4,
        DType::F16 | DType::BF16 => 2,
        _ => 1,
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
            match job {
                Job::Begin {
                    info,
                    inputs,
                    bytes,
                    ack,
                } => {
                    let r = self.begin(&info, &inputs, ack);
                    self.budget.release(bytes);
                    r?;
                    if ack {
                        let _ = self.ack.send(info.seq);
                    }
                }
                Job::End {
                    seq,
                    outputs,
                    duration,
                    roles,
                    bytes,
                } => {
                    let r = self.end(seq, &outputs, duration, roles);
                    self.budget.release(bytes);
                    r?;
                }
                Job::Abort => {
                    if let Some(w) = self.writer.as_mut() {
                        w.flush()?;
                    }
                    return Err(RecordError::Aborted);
                }
            }
        }
        Ok(self
            .writer
            .take()
            .ok_or(RecordError::TapeFinished)?
            .finish()?)
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
            Storage::Chunks(self.w()?.put_tensor(bytes, elem_size(t.dtype))?)
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

    fn input_ref(&mut self, t: &Tensor, role: &str) -> Result<TensorRef, RecordError> {
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
                    hash: *blake3::hash(bytes).as_bytes(),
                    storage: Storage::Rows(refs),
                });
            }
        }
        if let Some(name) = t.weight_name() {
            let hash = match self.weights.get(&t.id) {
                Some(h) => *h,
                None => {
                    let bytes = t.host_bytes().map(|b| b.as_slice()).ok_or_else(|| {
                        RecordError::WeightNotOnHost {
                            role: role.to_string(),
                            name: name.to_string(),
                        }
                    })?;
                    let h = *blake3::hash(bytes).as_bytes();
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
        let bytes = t.host_bytes().map(|b| b.as_slice()).unwrap_or(&[]);
        let hash = *blake3::hash(bytes).as_bytes();
        let payload = self.payload;
        self.store(t, role, hash, payload)
    }

    fn begin(
        &mut self,
        info: &LaunchInfo,
        inputs: &[Tensor],
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
            .map(|(i, t)| self.input_ref(t, roles.get(i).copied().unwrap_or("in")))
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
            let bytes = t.host_bytes().map(|b| b.as_slice()).unwrap_or(&[]);
            let hash = *blake3::hash(bytes).as_bytes();
            let role = seq_role(outputs.len(), i, &roles);
            let r = self.store(t, role, hash, payload)?;
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
