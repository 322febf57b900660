//! `greta._greta`: the PyO3 layer of the Python package. Thin on purpose: it turns Python values into
//! [`greta::capture`] calls and tape contents into JSON text and `uint8` numpy arrays; the Python side
//! (`py_src/greta/__init__.py`) gives them their dtypes, shapes and friendly signatures.
//!
//! The recorder's calls release the GIL while greta copies and queues the tensors (hashing and
//! compression run on greta's worker thread), so other Python threads keep running.

use greta::analysis::Source;
use greta::capture::{
    CaptureError, CaptureHeader, CaptureOptions, CaptureRecorder, Durability, LaunchDesc,
    ModelDesc, TensorIn, TensorOut,
};
use greta::launch::{DType, Phase};
use greta::tape::{Launch, Storage, TapeReader, TensorRef};
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

create_exception!(
    _greta,
    GretaError,
    PyException,
    "An error from greta: the tape, the model file or the recorder."
);

fn err(e: CaptureError) -> PyErr {
    match e {
        CaptureError::InvalidArgument(_)
        | CaptureError::Contract(_)
        | CaptureError::UnknownId { .. }
        | CaptureError::NotBegun(_)
        | CaptureError::NoModel { .. } => PyValueError::new_err(e.to_string()),
        _ => GretaError::new_err(e.to_string()),
    }
}

fn gerr(e: impl std::fmt::Display) -> PyErr {
    GretaError::new_err(e.to_string())
}

fn dtype(s: &str) -> PyResult<DType> {
    s.parse().map_err(PyValueError::new_err)
}

/// An input as the Python side hands it over: (role, kind, dtype, shape, bytes, weight name, id),
/// kind one of `host`, `weight`, `id`.
type InTuple<'py> = (
    String,
    String,
    String,
    Vec<usize>,
    Option<PyReadonlyArray1<'py, u8>>,
    Option<String>,
    Option<u64>,
);

/// A tensor read back: (role, dtype, shape, bytes).
type TensorTuple<'py> = (String, String, Vec<u64>, Bound<'py, PyArray1<u8>>);

/// An output: (role, dtype, shape, bytes, caller id or None).
type OutTuple<'py> = (
    String,
    String,
    Vec<usize>,
    PyReadonlyArray1<'py, u8>,
    Option<u64>,
);

fn bytes_of(a: &PyReadonlyArray1<'_, u8>) -> PyResult<Vec<u8>> {
    Ok(a.as_slice()
        .map_err(|_| PyValueError::new_err("tensor bytes must be contiguous"))?
        .to_vec())
}

fn to_input(t: InTuple<'_>) -> PyResult<(String, TensorIn)> {
    let (role, kind, dt, shape, data, name, id) = t;
    let tin = match kind.as_str() {
        "host" => {
            let data = data.ok_or_else(|| PyValueError::new_err(format!("`{role}`: no bytes")))?;
            TensorIn::host(dtype(&dt)?, shape, bytes_of(&data)?)
        }
        "weight" => TensorIn::Weight(
            name.ok_or_else(|| PyValueError::new_err(format!("`{role}`: no weight name")))?,
        ),
        "id" => TensorIn::Id(id.ok_or_else(|| PyValueError::new_err(format!("`{role}`: no id")))?),
        k => {
            return Err(PyValueError::new_err(format!(
                "`{role}`: unknown input kind `{k}`"
            )));
        }
    };
    Ok((role, tin))
}

fn desc(
    phase: &str,
    layer: Option<u32>,
    stage: &str,
    route: &str,
    params: Vec<(String, f64)>,
    op: Option<String>,
) -> PyResult<LaunchDesc> {
    let phase: Phase = phase.parse().map_err(PyValueError::new_err)?;
    let mut d = LaunchDesc::new(phase, layer, stage, route);
    d.params = params;
    d.op = op;
    Ok(d)
}

/// Records another engine's launches to a tape (see `greta.Recorder`).
#[pyclass(module = "greta._greta", name = "_Recorder", frozen)]
struct PyRecorder {
    rec: Arc<CaptureRecorder>,
}

#[pymethods]
impl PyRecorder {
    #[new]
    #[pyo3(signature = (path, engine, engine_version, description_json=None, gguf=None, gguf_blake3=None, device=String::new(), prompt_tokens=Vec::new(), sync=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        engine: String,
        engine_version: String,
        description_json: Option<String>,
        gguf: Option<PathBuf>,
        gguf_blake3: Option<String>,
        device: String,
        prompt_tokens: Vec<u32>,
        sync: bool,
    ) -> PyResult<Self> {
        let description: Value = match description_json {
            Some(s) => serde_json::from_str(&s)
                .map_err(|e| PyValueError::new_err(format!("model description: {e}")))?,
            None => Value::Null,
        };
        let model = (!description.is_null() || gguf.is_some()).then_some(ModelDesc {
            description,
            gguf,
            gguf_blake3,
        });
        let header = CaptureHeader {
            engine,
            engine_version,
            model,
            device,
            prompt_tokens,
        };
        let opts = CaptureOptions {
            durability: if sync {
                Durability::EveryLaunch
            } else {
                Durability::Buffered
            },
            ..CaptureOptions::default()
        };
        let rec = py
            .allow_threads(|| CaptureRecorder::create(&path, header, opts))
            .map_err(err)?;
        Ok(PyRecorder { rec: Arc::new(rec) })
    }

    /// Writes a launch's Begin record; returns its seq.
    #[pyo3(signature = (phase, layer, stage, route, params, inputs, op=None))]
    #[allow(clippy::too_many_arguments)]
    fn begin(
        &self,
        py: Python<'_>,
        phase: &str,
        layer: Option<u32>,
        stage: &str,
        route: &str,
        params: Vec<(String, f64)>,
        inputs: Vec<InTuple<'_>>,
        op: Option<String>,
    ) -> PyResult<u64> {
        let d = desc(phase, layer, stage, route, params, op)?;
        let ins = inputs
            .into_iter()
            .map(to_input)
            .collect::<PyResult<Vec<_>>>()?;
        let rec = self.rec.clone();
        py.allow_threads(move || rec.begin(&d, ins)).map_err(err)
    }

    /// Writes launch `seq`'s End record; returns the outputs' ids in order.
    fn end(&self, py: Python<'_>, seq: u64, outputs: Vec<OutTuple<'_>>) -> PyResult<Vec<u64>> {
        let outs = outputs
            .into_iter()
            .map(|(role, dt, shape, data, id)| {
                Ok((
                    role,
                    TensorOut {
                        dtype: dtype(&dt)?,
                        shape,
                        bytes: bytes_of(&data)?,
                        id,
                    },
                ))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let rec = self.rec.clone();
        py.allow_threads(move || rec.end(seq, outs)).map_err(err)
    }

    /// Launches begun and not ended.
    fn in_flight(&self) -> usize {
        self.rec.in_flight()
    }

    /// Completes the tape; returns (launches, fingerprint hex, path).
    fn close(&self, py: Python<'_>) -> PyResult<(u64, String, String)> {
        let rec = self.rec.clone();
        let s = py.allow_threads(move || rec.close()).map_err(err)?;
        Ok((
            s.launches,
            greta::tape::hex(&s.fingerprint),
            s.path.display().to_string(),
        ))
    }
}

fn tensor_json(r: &TensorRef) -> Value {
    let (kind, extra) = match &r.storage {
        Storage::Chunks(_) => ("chunks", Value::Null),
        Storage::Producer { seq, index } => ("producer", json!({"seq": seq, "index": index})),
        Storage::Weight { name } => ("weight", json!(name)),
        Storage::HashOnly => ("hash_only", Value::Null),
        Storage::Rows(spans) => ("rows", json!(spans.len())),
    };
    json!({
        "role": r.role, "dtype": r.dtype.name(), "shape": r.shape, "bytes": r.len,
        "hash": greta::tape::hex(&r.hash), "storage": kind, "source": extra,
    })
}

fn launch_json(l: &Launch, engine: Option<&str>) -> Value {
    let b = &l.begin;
    let mut params = serde_json::to_value(b.params).unwrap_or(Value::Null);
    if let (Some(f), Value::Object(m)) = (&b.foreign, &mut params) {
        for (k, v) in &f.params {
            m.insert(k.clone(), json!(v));
        }
    }
    json!({
        "seq": b.seq, "phase": b.phase.to_string(), "layer": b.layer, "stage": b.stage_name(),
        "greta_stage": b.stage.name(), "route": b.route_name(), "backend": b.backend,
        "op": greta::ops::stages::op_for(b.stage, b.foreign.as_ref()).map(|o| o.name()),
        "engine": engine, "params": params, "complete": l.end.is_some(),
        "duration_ns": l.end.as_ref().map(|e| e.duration_ns),
        "inputs": b.inputs.iter().map(tensor_json).collect::<Vec<_>>(),
        "outputs": l.end.as_ref().map_or(vec![], |e| e.outputs.iter().map(tensor_json).collect::<Vec<_>>()),
    })
}

/// A tape opened for reading (see `greta.open`).
#[pyclass(module = "greta._greta", name = "_Tape", frozen)]
struct PyTape {
    tape: TapeReader,
    model: Option<PathBuf>,
}

#[pymethods]
impl PyTape {
    #[new]
    #[pyo3(signature = (path, model=None))]
    fn new(path: PathBuf, model: Option<PathBuf>) -> PyResult<Self> {
        let tape = TapeReader::open(&path).map_err(gerr)?;
        Ok(PyTape { tape, model })
    }

    /// The header as JSON text.
    fn header_json(&self) -> PyResult<String> {
        let h = self.tape.header();
        let mut v = serde_json::to_value(h).map_err(gerr)?;
        if let Value::Object(m) = &mut v {
            m.insert("path".into(), json!(self.tape.path().display().to_string()));
            m.insert(
                "truncation".into(),
                json!(self.tape.truncation().map(|t| t.reason.clone())),
            );
        }
        Ok(v.to_string())
    }

    /// Format version of the file.
    fn version(&self) -> u32 {
        self.tape.version()
    }

    fn __len__(&self) -> usize {
        self.tape.len()
    }

    /// Every launch's seq, in order.
    fn seqs(&self) -> PyResult<Vec<u64>> {
        self.tape
            .entries()
            .map(|e| e.map(|e| e.seq).map_err(gerr))
            .collect()
    }

    /// Launch `seq` as JSON text.
    fn launch_json(&self, seq: u64) -> PyResult<String> {
        let l = self.tape.launch(seq).map_err(gerr)?;
        let engine = self.tape.header().engine.as_ref().map(|e| e.name.as_str());
        Ok(launch_json(&l, engine).to_string())
    }

    /// The inputs (or outputs) of launch `seq`: (role, dtype, shape, bytes as a uint8 array).
    fn tensors<'py>(
        &self,
        py: Python<'py>,
        seq: u64,
        outputs: bool,
    ) -> PyResult<Vec<TensorTuple<'py>>> {
        let l = self.tape.launch(seq).map_err(gerr)?;
        let refs: Vec<TensorRef> = if outputs {
            l.end.map(|e| e.outputs).unwrap_or_default()
        } else {
            l.begin.inputs
        };
        let src = Source::new(&self.tape, self.model.as_deref());
        let mut out = Vec::with_capacity(refs.len());
        for r in &refs {
            let bytes = py
                .allow_threads(|| src.bytes(r))
                .map_err(|e| gerr(format!("launch {seq} `{}`: {e}", r.role)))?;
            out.push((
                r.role.clone(),
                r.dtype.name().to_string(),
                r.shape.clone(),
                PyArray1::from_vec(py, bytes),
            ));
        }
        Ok(out)
    }
}

/// The `greta._greta` module.
#[pymodule]
fn _greta(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRecorder>()?;
    m.add_class::<PyTape>()?;
    m.add("GretaError", m.py().get_type::<GretaError>())?;
    m.add("FORMAT_VERSION", greta::tape::FORMAT_VERSION)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
