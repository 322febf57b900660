//! Where a recorded tensor's bytes come from: the tape's own chunks, an earlier launch's output
//! (followed by the tape reader), or the model file for weights referenced by GGUF name. Weight bytes are
//! checked against the blake3 recorded on the tape, so a replay against a different model file fails
//! loudly instead of computing with the wrong weights.

use crate::launch::{Origin, Tensor};
use crate::model::gguf::Gguf;
use crate::tape::{Storage, TapeReader, TensorRef, hex};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A tensor could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The tape could not give the bytes.
    #[error(transparent)]
    Tape(#[from] crate::tape::TapeError),
    /// The model file for referenced weights could not be opened.
    #[error(
        "weight `{name}` is referenced from model {path}, which could not be opened: {why} (pass --model)"
    )]
    Model {
        /// Weight name.
        name: String,
        /// Model path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The model file's weight differs from the recorded one.
    #[error(
        "weight `{name}` in {path} does not match the tape (blake3 {found} != recorded {want}): a different model file"
    )]
    WeightMismatch {
        /// Weight name.
        name: String,
        /// Model path.
        path: PathBuf,
        /// Hash found.
        found: String,
        /// Hash recorded.
        want: String,
    },
}

/// Resolves tensor refs of one tape.
pub struct Source<'t> {
    /// The tape.
    pub tape: &'t TapeReader,
    model_path: PathBuf,
    model: OnceLock<Result<Gguf, String>>,
    /// Skip the whole-file hash check of a model given by the user (`--allow-model-mismatch`).
    allow_mismatch: bool,
}

/// Checks that `path` is the model `tape` was recorded with: a regular file (a FIFO would hang, a
/// device never end) whose blake3 is the one in the tape header. `Err` says which path was tried and
/// why it is refused. A tape recorded without a model hash accepts any regular file.
pub fn model_matches(tape: &TapeReader, path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let want = &tape.header().model.blake3;
    if want.is_empty() {
        return Ok(());
    }
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).map_err(|e| format!("{}: {e}", path.display()))?;
    let found = h.finalize().to_hex().to_string();
    if &found != want {
        return Err(format!(
            "{} is not the model this tape was recorded with (blake3 {} != recorded {}; pass \
             --allow-model-mismatch to use it anyway)",
            path.display(),
            &found[..16],
            &want[..want.len().min(16)]
        ));
    }
    Ok(())
}

impl<'t> Source<'t> {
    /// A source for `tape`; weights come from `model` or the path in the tape header.
    pub fn new(tape: &'t TapeReader, model: Option<&Path>) -> Source<'t> {
        let model_path = model
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(&tape.header().model.path));
        Source {
            tape,
            model_path,
            model: OnceLock::new(),
            allow_mismatch: false,
        }
    }

    /// Uses a model whose file hash differs from the tape's (each weight is still checked against
    /// its own recorded hash).
    pub fn allow_model_mismatch(mut self, allow: bool) -> Source<'t> {
        self.allow_mismatch = allow;
        self
    }

    /// The model file weights are read from.
    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    /// The bytes of `r`, verified against its hash.
    pub fn bytes(&self, r: &TensorRef) -> Result<Vec<u8>, SourceError> {
        // Shape × dtype against length, and the memory budget, before any byte is fetched.
        self.tape.check_tensor(r)?;
        match &r.storage {
            Storage::Weight { name } => {
                let g = self
                    .model
                    .get_or_init(|| {
                        // Only a regular file, and only the recorded model (issue 14: a FIFO in
                        // the header hung replay; any readable file was opened).
                        if !self.allow_mismatch {
                            model_matches(self.tape, &self.model_path)?;
                        } else if !self.model_path.is_file() {
                            return Err(format!(
                                "{} is not a regular file",
                                self.model_path.display()
                            ));
                        }
                        Gguf::open(&self.model_path).map_err(|e| e.to_string())
                    })
                    .as_ref()
                    .map_err(|why| SourceError::Model {
                        name: name.clone(),
                        path: self.model_path.clone(),
                        why: why.clone(),
                    })?;
                let t = g.tensor(name).map_err(|e| SourceError::Model {
                    name: name.clone(),
                    path: self.model_path.clone(),
                    why: e.to_string(),
                })?;
                let bytes = t
                    .host_bytes()
                    .map(|b| b.as_slice().to_vec())
                    .unwrap_or_default();
                let found = blake3::hash(&bytes);
                if found.as_bytes() != &r.hash {
                    return Err(SourceError::WeightMismatch {
                        name: name.clone(),
                        path: self.model_path.clone(),
                        found: found.to_hex().to_string(),
                        want: hex(&r.hash),
                    });
                }
                Ok(bytes)
            }
            _ => Ok(self.tape.tensor_bytes(r)?),
        }
    }

    /// The tensor of `r` (host), verified against its hash.
    pub fn tensor(&self, r: &TensorRef) -> Result<Tensor, SourceError> {
        let bytes = self.bytes(r)?;
        let origin = match &r.storage {
            Storage::Weight { name } => Origin::Weight(name.as_str().into()),
            _ => Origin::Value,
        };
        Ok(Tensor::from_le_bytes(
            r.dtype,
            r.shape.iter().map(|&d| d as usize).collect(),
            bytes,
            origin,
        ))
    }
}
