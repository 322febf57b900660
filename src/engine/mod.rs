//! The llama-family forward pass: prefill, decode, KV cache, greedy sampling. Every op goes through the
//! launch seam ([`crate::launch::Launcher`]); the engine itself only moves tensors between launches
//! (slicing the last row, keeping the KV cache), so a recording sees every computation.
//!
//! Prefill runs all prompt rows as many-row launches and each decode step one-row launches; the route rule
//! of [`crate::launch::RoutePolicy`] then picks different kernels for them, as production engines do.

mod forward;
mod generate;
mod kv_cache;
mod weights;

pub use forward::Engine;
pub use generate::{GenOptions, Generation, generate};
pub use kv_cache::KvCache;
pub use weights::{LayerWeights, Weights};

use crate::launch::LaunchError;
use crate::model::config::LlamaConfig;
use crate::model::gguf::{Gguf, GgufError};
use std::path::Path;

/// The engine failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model file could not be used.
    #[error(transparent)]
    Model(#[from] GgufError),
    /// A launch failed.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// The prompt does not fit the context.
    #[error(
        "prompt of {prompt} tokens plus {to_generate} to generate exceeds the model's context of {ctx} tokens"
    )]
    ContextOverflow {
        /// Prompt tokens.
        prompt: usize,
        /// Tokens to generate.
        to_generate: usize,
        /// Context length.
        ctx: usize,
    },
    /// An empty prompt.
    #[error("the prompt is empty: give at least one token")]
    EmptyPrompt,
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
    BadToken {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A launch returned something the engine did not expect (a backend bug).
    #[error("stage {stage} returned {what}")]
    BadOutput {
        /// The stage.
        stage: &'static str,
        /// What was wrong.
        what: String,
    },
}

/// A loaded model: the GGUF file, its configuration and weight handles (mapped, not copied).
pub struct Model {
    /// The GGUF file.
    pub gguf: Gguf,
    /// The architecture hyperparameters.
    pub config: LlamaConfig,
    /// Weight tensors by role.
    pub weights: Weights,
}

impl Model {
    /// Opens a GGUF file and checks that it is a supported llama-family model.
    pub fn load(path: &Path) -> Result<Model, EngineError> {
        let gguf = Gguf::open(path)?;
        let config = LlamaConfig::from_gguf(&gguf)?;
        let weights = Weights::load(&gguf, &config)?;
        Ok(Model {
            gguf,
            config,
            weights,
        })
    }
}
