//! [`CaptureRecorder`]: a thread-safe handle that turns foreign launches into recorder jobs.

use super::launch::check_len;
use super::{CaptureError, CaptureHeader, LaunchDesc, TensorIn, TensorOut};
use crate::launch::{
    Bytes, DType, ForeignLaunch, LaunchInfo, Origin, Precision, Route, Tensor, TensorData, Variant,
};
use crate::model::gguf::Gguf;
use crate::record::{Durability, RecordError, RecordOptions, Recorder, Summary};
use crate::tape::{TapeSummary, WriterOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Ids greta assigns to outputs start here; ids a caller chooses must be below it.
pub const FIRST_AUTO_ID: u64 = 1 << 63;

/// How to record.
#[derive(Clone, Debug)]
pub struct CaptureOptions {
    /// [`Durability::EveryLaunch`]: `begin` returns once the Begin record is in the file (crash
    /// forensics; costs a round trip to the worker per launch). Default: buffered.
    pub durability: Durability,
    /// Bytes of tensors queued for the worker at most (the caller waits beyond).
    pub max_inflight: usize,
    /// Tape writer options (chunk size, zstd level, threads).
    pub writer: WriterOptions,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            durability: Durability::Buffered,
            max_inflight: 256 << 20,
            writer: WriterOptions::default(),
        }
    }
}

/// An output known by id: greta's tensor id (the worker's capture-once key), dtype and shape.
#[derive(Clone)]
struct Known {
    tensor_id: u64,
    dtype: DType,
    shape: Vec<usize>,
}

struct Inner {
    rec: Option<Recorder>,
    engine: String,
    summary: Summary,
    next_seq: u64,
    next_auto: u64,
    ids: HashMap<u64, Known>,
    weights: HashMap<String, Tensor>,
    gguf: Option<Gguf>,
    in_flight: HashMap<u64, (LaunchInfo, Instant)>,
}

/// Records another engine's launches to a tape. `Send + Sync`: launches may come from any thread,
/// and a launch's `begin` and `end` may come from different threads.
pub struct CaptureRecorder {
    inner: Mutex<Inner>,
    path: PathBuf,
}

impl CaptureRecorder {
    /// Creates the tape at `path` (written as `path.incomplete`, renamed by [`CaptureRecorder::finish`]).
    pub fn create(
        path: &Path,
        header: CaptureHeader,
        opts: CaptureOptions,
    ) -> Result<CaptureRecorder, CaptureError> {
        let (th, gguf) = header.to_tape_header()?;
        let engine = header.engine.clone();
        let ro = RecordOptions {
            durability: opts.durability,
            max_inflight: opts.max_inflight,
            writer: opts.writer,
            ..RecordOptions::default()
        };
        let (rec, summary) = Recorder::start(path, th, ro)?;
        Ok(CaptureRecorder {
            inner: Mutex::new(Inner {
                rec: Some(rec),
                engine,
                summary,
                next_seq: 0,
                next_auto: FIRST_AUTO_ID,
                ids: HashMap::new(),
                weights: HashMap::new(),
                gguf,
                in_flight: HashMap::new(),
            }),
            path: path.to_path_buf(),
        })
    }

    /// The tape's path (final name).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, CaptureError> {
        self.inner
            .lock()
            .map_err(|_| CaptureError::Recorder(RecordError::Poisoned))
    }

    /// Writes the Begin record of a launch (before the engine runs its kernel) and returns its seq.
    /// For a greta stage whose inputs are all named with greta's roles (docs/STAGES.md), the inputs
    /// are stored in greta's order so its reference can run them; otherwise in the order given.
    pub fn begin(
        &self,
        desc: &LaunchDesc,
        inputs: Vec<(String, TensorIn)>,
    ) -> Result<u64, CaptureError> {
        let mut g = self.lock()?;
        let inner = &mut *g;
        if inner.rec.is_none() {
            return Err(CaptureError::Closed);
        }
        let stage = desc.greta_stage();
        let inputs = greta_order(stage, inputs);
        let mut tensors = Vec::with_capacity(inputs.len());
        let mut roles = Vec::with_capacity(inputs.len());
        for (role, t) in inputs {
            tensors.push(inner.input(&role, t)?);
            roles.push(role);
        }
        let foreign = crate::launch::Foreign {
            stage: desc.stage.clone(),
            route: desc.route.clone(),
            params: desc.params.clone(),
            op: desc.op.clone(),
        };
        let rows = tensors
            .iter()
            .find(|t| t.weight_name().is_none())
            .map_or(1, |t| t.rows());
        let params = desc.greta_params(rows)?;
        check_contract(stage, &params, &foreign, &roles, &tensors)?;
        let info = LaunchInfo {
            seq: inner.next_seq,
            phase: desc.phase,
            stage,
            layer: desc.layer,
            route: Route::new(Variant::Engine, Precision::F32),
            backend: inner.engine.clone(),
            params,
            foreign: Some(Arc::new(ForeignLaunch {
                foreign,
                input_roles: roles,
                output_roles: Vec::new(),
            })),
        };
        let refs: Vec<&Tensor> = tensors.iter().collect();
        let rec = inner.rec.as_mut().ok_or(CaptureError::Closed)?;
        rec.begin_launch(&info, &refs)?;
        inner.next_seq += 1;
        inner
            .in_flight
            .insert(info.seq, (info.clone(), Instant::now()));
        Ok(info.seq)
    }

    /// Writes the End record of launch `seq` with its outputs; returns each output's id, in order.
    pub fn end(
        &self,
        seq: u64,
        outputs: Vec<(String, TensorOut)>,
    ) -> Result<Vec<u64>, CaptureError> {
        let mut g = self.lock()?;
        let inner = &mut *g;
        if inner.rec.is_none() {
            return Err(CaptureError::Closed);
        }
        if !inner.in_flight.contains_key(&seq) {
            return Err(CaptureError::NotBegun(seq));
        }
        // Check every output before taking the launch out of flight: a bad call can be retried.
        for (role, o) in &outputs {
            check_len(role, o.dtype, &o.shape, o.bytes.len())?;
            if let Some(id) = o.id.filter(|&id| id >= FIRST_AUTO_ID) {
                return Err(CaptureError::InvalidArgument(format!(
                    "output `{role}`: id {id} is in greta's range (ids a caller chooses are below 2^63)"
                )));
            }
        }
        let Some((mut info, t0)) = inner.in_flight.remove(&seq) else {
            return Err(CaptureError::NotBegun(seq));
        };
        let dt: Duration = t0.elapsed();
        let mut tensors = Vec::with_capacity(outputs.len());
        let mut ids = Vec::with_capacity(outputs.len());
        let mut roles = Vec::with_capacity(outputs.len());
        for (role, o) in outputs {
            let id = match o.id {
                Some(id) => id,
                None => {
                    inner.next_auto += 1;
                    inner.next_auto - 1
                }
            };
            tensors.push(Tensor::host(
                o.dtype,
                o.shape,
                Bytes::Raw(Arc::new(o.bytes)),
                Origin::Value,
            ));
            ids.push(id);
            roles.push(role);
        }
        if let Some(f) = info.foreign.as_mut() {
            Arc::make_mut(f).output_roles = roles;
        }
        let rec = inner.rec.as_mut().ok_or(CaptureError::Closed)?;
        rec.end_launch(&info, &tensors, dt)?;
        for (id, t) in ids.iter().zip(&tensors) {
            inner.ids.insert(
                *id,
                Known {
                    tensor_id: t.id,
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                },
            );
        }
        Ok(ids)
    }

    /// `begin` then `end`: a launch whose outputs the caller already has.
    pub fn launch(
        &self,
        desc: &LaunchDesc,
        inputs: Vec<(String, TensorIn)>,
        outputs: Vec<(String, TensorOut)>,
    ) -> Result<Vec<u64>, CaptureError> {
        let seq = self.begin(desc, inputs)?;
        self.end(seq, outputs)
    }

    /// Launches begun and not ended.
    pub fn in_flight(&self) -> usize {
        self.lock().map_or(0, |g| g.in_flight.len())
    }

    /// Completes the tape (index, trailer, rename). Launches still in flight stay begin-only, as after
    /// a crash. The recorder is closed afterwards; later calls return [`CaptureError::Closed`].
    pub fn close(&self) -> Result<TapeSummary, CaptureError> {
        let mut g = self.lock()?;
        let mut rec = g.rec.take().ok_or(CaptureError::Closed)?;
        let r = rec.finish_tape();
        let summary = g.summary.lock().ok().and_then(|mut s| s.take());
        r?;
        Ok(summary.unwrap_or(Err(RecordError::NoSummary))?)
    }

    /// [`CaptureRecorder::close`], consuming the recorder.
    pub fn finish(self) -> Result<TapeSummary, CaptureError> {
        self.close()
    }
}

impl Inner {
    fn input(&mut self, role: &str, t: TensorIn) -> Result<Tensor, CaptureError> {
        match t {
            TensorIn::Host {
                dtype,
                shape,
                bytes,
            } => {
                check_len(role, dtype, &shape, bytes.len())?;
                Ok(Tensor::host(
                    dtype,
                    shape,
                    Bytes::Raw(Arc::new(bytes)),
                    Origin::Value,
                ))
            }
            TensorIn::Id(id) => {
                let k = self.ids.get(&id).ok_or_else(|| CaptureError::UnknownId {
                    role: role.to_string(),
                    id,
                })?;
                // The worker knows this tensor id as an earlier output and records a reference;
                // the bytes are never looked at.
                Ok(Tensor {
                    id: k.tensor_id,
                    dtype: k.dtype,
                    shape: k.shape.clone(),
                    data: TensorData::Host(Bytes::Raw(Arc::new(Vec::new()))),
                    origin: Origin::Value,
                })
            }
            TensorIn::Weight(name) => {
                if let Some(t) = self.weights.get(&name) {
                    return Ok(t.clone());
                }
                let gguf = self.gguf.as_ref().ok_or_else(|| CaptureError::NoModel {
                    role: role.to_string(),
                    name: name.clone(),
                })?;
                let t = gguf.tensor(&name).map_err(|e| CaptureError::Model {
                    path: gguf.path().to_path_buf(),
                    msg: e.to_string(),
                })?;
                self.weights.insert(name, t.clone());
                Ok(t)
            }
        }
    }
}

/// Inputs in greta's role order when the stage is greta's and every role it needs is named.
/// The op contract of a foreign launch (docs/OPS.md), checked before anything is recorded: for a named op
/// every param given must be one of the op's (or `rows`, which every launch may give); for a greta stage
/// the engine's other params are its own business. Roles, types, required params and shapes, always.
/// A launch of an op greta does not know passes: it is kept, diffed by hash and listed as unjudged.
fn check_contract(
    stage: crate::launch::Stage,
    params: &crate::launch::Params,
    f: &crate::launch::Foreign,
    roles: &[String],
    tensors: &[Tensor],
) -> Result<(), CaptureError> {
    let Some(mut a) =
        crate::ops::stages::op_args(stage, &crate::launch::Params::default(), Some(f))
    else {
        return Ok(());
    };
    if f.op.is_some() {
        let spec = a.op.spec();
        if let Some((k, _)) = f
            .params
            .iter()
            .find(|(k, _)| k != "rows" && !spec.params.iter().any(|p| p.name == k))
        {
            return Err(crate::ops::ContractError::UnknownParam {
                op: a.op.name(),
                param: k.clone(),
                expected: spec.params.iter().map(|p| p.name).collect(),
            }
            .into());
        }
    }
    for (r, t) in roles.iter().zip(tensors) {
        // The op's view of the input (q_norm/k_norm: one row a head), by shape only.
        let shape = crate::ops::stages::op_shape(stage, params, r, &t.shape);
        a.declare(r, t.dtype, shape);
    }
    crate::ops::check(&a)?;
    Ok(())
}

fn greta_order(
    stage: crate::launch::Stage,
    mut inputs: Vec<(String, TensorIn)>,
) -> Vec<(String, TensorIn)> {
    let want = stage.input_roles();
    if want.is_empty() || !want.iter().all(|w| inputs.iter().any(|(r, _)| r == w)) {
        return inputs;
    }
    let mut out = Vec::with_capacity(inputs.len());
    for w in want {
        if let Some(i) = inputs.iter().position(|(r, _)| r == w) {
            out.push(inputs.remove(i));
        }
    }
    out.extend(inputs);
    out
}
