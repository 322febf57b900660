//! Greedy generation: prefill, then decode one token at a time.

use super::{Engine, EngineError};
use crate::launch::Phase;
use serde::Serialize;
use std::time::Instant;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Token ids that end generation (empty with --ignore-eos).
    pub stop: Vec<u32>,
    /// Decode step 0 re-runs the last prompt token at its own position (for --prefill-vs-decode): both
    /// sides then compute the same row through different routes.
    pub probe_last_token: bool,
}

/// The outcome of a generation.
#[derive(Clone, Debug, Serialize)]
pub struct Generation {
    /// The prompt.
    pub prompt_ids: Vec<u32>,
    /// Generated tokens, in order.
    pub generated_ids: Vec<u32>,
    /// What prefill predicted for the next token (equals `generated_ids[0]` unless probing).
    pub prefill_next: u32,
    /// Seconds in prefill.
    pub prefill_s: f64,
    /// Seconds in decode.
    pub decode_s: f64,
    /// Decode steps run.
    pub decode_steps: usize,
    /// Launches issued.
    pub launches: u64,
}

impl Generation {
    /// Prompt tokens per second of prefill.
    pub fn prefill_tok_s(&self) -> f64 {
        self.prompt_ids.len() as f64 / self.prefill_s.max(1e-12)
    }
    /// Tokens per second of decode.
    pub fn decode_tok_s(&self) -> f64 {
        self.decode_steps as f64 / self.decode_s.max(1e-12)
    }
}

/// Runs prefill over `prompt`, then greedy decode.
pub fn generate(
    engine: &mut Engine,
    prompt: &[u32],
    opts: &GenOptions,
) -> Result<Generation, EngineError> {
    let ctx = engine.model().config.ctx_len;
    if prompt.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    if prompt.len().saturating_add(opts.max_tokens) > ctx {
        return Err(EngineError::ContextOverflow {
            prompt: prompt.len(),
            to_generate: opts.max_tokens,
            ctx,
        });
    }
    let t0 = Instant::now();
    let prefill_next = engine.forward(Phase::Prefill, prompt, 0)?;
    let prefill_s = t0.elapsed().as_secs_f64();
    let mut generated = Vec::new();
    let t1 = Instant::now();
    let mut steps = 0usize;
    let mut next = prefill_next;
    if opts.probe_last_token && opts.max_tokens > 0 {
        let n = prompt.len();
        next = engine.forward(Phase::Decode(0), &prompt[n - 1..], n - 1)?;
        steps += 1;
    }
    while generated.len() < opts.max_tokens {
        generated.push(next);
        if opts.stop.contains(&next) || generated.len() == opts.max_tokens {
            break;
        }
        let pos = prompt.len() + generated.len() - 1;
        next = engine.forward(Phase::Decode(steps as u32), &[next], pos)?;
        steps += 1;
    }
    let decode_s = t1.elapsed().as_secs_f64();
    engine.launcher.finish()?;
    Ok(Generation {
        prompt_ids: prompt.to_vec(),
        generated_ids: generated,
        prefill_next,
        prefill_s,
        decode_s,
        decode_steps: steps,
        launches: engine.launcher.launches(),
    })
}
