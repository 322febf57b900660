//! The header of a foreign tape: which engine, which model.

use super::CaptureError;
use crate::model::gguf::Gguf;
use crate::tape::{EngineInfo, ModelIdentity, Producer, RunInfo, TapeHeader, unix_now};
use std::path::PathBuf;

/// The model a foreign engine ran.
#[derive(Clone, Debug, Default)]
pub struct ModelDesc {
    /// Free description as a JSON object: architecture, sizes (n_layers, n_embd, n_heads, ...), anything
    /// else. Stored as the tape header's `model_config_json`.
    pub description: serde_json::Value,
    /// The GGUF file the engine loaded, if any: weights may then be referenced by tensor name.
    pub gguf: Option<PathBuf>,
    /// Its blake3 (hex) if the engine knows it; greta hashes the file otherwise, and checks it if given.
    pub gguf_blake3: Option<String>,
}

/// Everything the tape header says about a foreign run.
#[derive(Clone, Debug, Default)]
pub struct CaptureHeader {
    /// Engine name, e.g. `llama.cpp`.
    pub engine: String,
    /// Engine version.
    pub engine_version: String,
    /// The model, if the engine describes it.
    pub model: Option<ModelDesc>,
    /// Device description (free text), e.g. `MI300X gfx942`.
    pub device: String,
    /// The prompt's token ids, if known (`greta diff --prefill-vs-decode` uses their count).
    pub prompt_tokens: Vec<u32>,
}

impl CaptureHeader {
    /// A header with an engine name and version and nothing else.
    pub fn new(engine: &str, version: &str) -> CaptureHeader {
        CaptureHeader {
            engine: engine.to_string(),
            engine_version: version.to_string(),
            ..CaptureHeader::default()
        }
    }

    /// The tape header and the opened GGUF file (for weights by name); hashes the file, and checks the
    /// hash when one was given.
    pub(crate) fn to_tape_header(&self) -> Result<(TapeHeader, Option<Gguf>), CaptureError> {
        if self.engine.is_empty() {
            return Err(CaptureError::InvalidArgument(
                "the engine name is empty".into(),
            ));
        }
        let mut model = ModelIdentity::default();
        let mut gguf = None;
        let mut config = String::from("{}");
        if let Some(m) = &self.model {
            if !(m.description.is_null() || m.description.is_object()) {
                return Err(CaptureError::InvalidArgument(
                    "the model description must be a JSON object".into(),
                ));
            }
            if m.description.is_object() {
                config = m.description.to_string();
            }
            if let Some(p) = &m.gguf {
                let err = |msg: String| CaptureError::Model {
                    path: p.clone(),
                    msg,
                };
                let g = Gguf::open(p).map_err(|e| err(e.to_string()))?;
                let size = g.file_size();
                let found = blake3::hash(&g.mmap()[..]).to_hex().to_string();
                if let Some(want) = &m.gguf_blake3 {
                    if !want.eq_ignore_ascii_case(&found) {
                        return Err(err(format!("blake3 {found} differs from the given {want}")));
                    }
                }
                model = ModelIdentity {
                    path: std::fs::canonicalize(p)
                        .unwrap_or(p.clone())
                        .display()
                        .to_string(),
                    size,
                    blake3: found,
                };
                gguf = Some(g);
            }
        }
        let producer = Producer {
            greta_version: env!("CARGO_PKG_VERSION").to_string(),
            // Empty: not a greta backend (replay then defaults to the CPU); the engine is below.
            backend: String::new(),
            device: self.device.clone(),
            // Another engine's kernels: greta compiled none.
            kernel_hashes: Vec::new(),
            engine: Some(EngineInfo {
                name: self.engine.clone(),
                version: self.engine_version.clone(),
            }),
            // The engine's own build is its business; the header's engine names it.
            provenance: None,
        };
        let run = RunInfo {
            prompt_tokens: self.prompt_tokens.clone(),
            // Routes are per launch (the engine's kernel names), not a policy.
            routes: Vec::new(),
            threads: 0,
            capture: "full".into(),
            options_json: "{}".into(),
            created_unix: unix_now(),
        };
        let header = TapeHeader::new(model, config, producer, run);
        Ok((header, gguf))
    }
}

/// Parses a model description (JSON text; must be an object) for [`ModelDesc::description`].
pub fn parse_description(json: &str) -> Result<serde_json::Value, CaptureError> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| CaptureError::InvalidArgument(format!("model description: {e}")))?;
    if !v.is_object() {
        return Err(CaptureError::InvalidArgument(
            "the model description must be a JSON object".into(),
        ));
    }
    Ok(v)
}
