//! Arguments shared between commands, and their resolution into real objects: the model arguments of
//! the commands that run the model (run, record, check: model, prompt, backend, route policy), the launch
//! selection of the commands that read tapes (ls, replay, diff: [`LaunchSel`]; show, replay, diff,
//! export: [`HeadSel`]), and [`open`], the one way a command opens a tape.
//!
//! Enum-like values are parsed by clap with their type's `FromStr` (`--precision`, `--routes`,
//! `--phase`, ...), so a typo is a usage error (exit 2) before any model or tape is opened.

use crate::backend::Backend;
use crate::backend::cpu::CpuBackend;
use crate::engine::{GenOptions, Model};
use crate::launch::{Phase, Precision, RouteMode, RoutePolicy};
use crate::model::tokenizer::{Tokenizer, vocab_from_gguf};
use crate::tape::TapeReader;
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::sync::Arc;

/// The default model: what tools/fetch-model downloads.
pub const DEFAULT_MODEL: &str = ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Which model, which prompt, which routes.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// GGUF model file [default: $GRETA_MODEL, else .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Prompt text (tokenized with the model's own vocabulary).
    #[arg(long, conflicts_with = "tokens", required_unless_present = "tokens")]
    pub prompt: Option<String>,
    /// Prompt as comma-separated token ids.
    #[arg(long, value_delimiter = ',')]
    pub tokens: Option<Vec<u32>>,
    /// Wrap the prompt in the model's chat template (an instruct prompt).
    #[arg(long, requires = "prompt")]
    pub chat: bool,
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 32)]
    pub max_tokens: usize,
    /// Keep generating past the end-of-sequence token.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Backend: cpu, or hip (needs a build with --features hip and a GPU).
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "hip"])]
    pub backend: String,
    /// CPU route family: f32 (fast) or f64 (reference).
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// Force one op's route: OP=VARIANT, OP one of matmul, attention or a stage name (repeatable).
    #[arg(long = "route", value_name = "OP=VARIANT")]
    pub route: Vec<String>,
    /// Route rule: default (shape-dependent, like production engines) or invariant (batch-invariant).
    #[arg(long = "routes", default_value = "default")]
    pub routes: RouteMode,
    /// CPU threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Everything a run needs, resolved.
pub struct Prepared {
    /// The model.
    pub model: Model,
    /// Its tokenizer (None when the file has no vocabulary and the prompt was given as ids).
    pub tokenizer: Option<Tokenizer>,
    /// Prompt ids.
    pub prompt: Vec<u32>,
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// The route policy.
    pub policy: RoutePolicy,
    /// Generation options.
    pub opts: GenOptions,
}

/// Resolves the model path: --model, $GRETA_MODEL, or the default.
pub fn model_path(arg: &Option<PathBuf>) -> PathBuf {
    arg.clone()
        .or_else(|| std::env::var_os("GRETA_MODEL").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL))
}

/// Opens the model with a one-line error naming the file.
pub fn load_model(path: &std::path::Path) -> anyhow::Result<Model> {
    if !path.exists() {
        bail!(
            "model file {} does not exist{}",
            path.display(),
            if path.ends_with("SmolLM2-135M-Instruct.Q4_1.gguf") {
                " (run tools/fetch-model)"
            } else {
                ""
            }
        );
    }
    super::paths::regular_file(path, "model")?;
    Model::load(path).with_context(|| format!("loading {}", path.display()))
}

/// Builds a backend by name.
pub fn make_backend(name: &str, threads: usize) -> anyhow::Result<Arc<dyn Backend>> {
    let max = max_threads();
    if threads > max {
        bail!(
            "--threads {threads} is more than this machine can use: at most {max} (4 per available core, 1024 at most)"
        );
    }
    match name {
        "cpu" => Ok(Arc::new(CpuBackend::new(threads))),
        "hip" => Ok(crate::backend::hip::open()?),
        _ => bail!("unknown backend `{name}`: valid backends are cpu, hip"),
    }
}

/// Builds the route policy from --precision, --routes and --route.
pub fn make_policy(a: &ModelArgs) -> anyhow::Result<RoutePolicy> {
    let precision = a.precision;
    if precision == Precision::F16 {
        bail!(
            "--precision f16 is not a model-wide route: force it per op with --route attention=... on the GPU"
        );
    }
    let mut policy = RoutePolicy::new(precision);
    policy.mode = a.routes;
    for r in &a.route {
        policy.force(r)?;
    }
    Ok(policy)
}

/// Resolves the arguments into a model, prompt ids, backend and policy.
pub fn prepare(a: &ModelArgs) -> anyhow::Result<Prepared> {
    let policy = make_policy(a)?;
    let path = model_path(&a.model);
    let model = load_model(&path)?;
    let tokenizer = match vocab_from_gguf(&model.gguf)
        .map_err(anyhow::Error::new)
        .and_then(|v| Tokenizer::new(v).map_err(anyhow::Error::new))
    {
        Ok(t) => Some(t),
        Err(e) if a.prompt.is_some() => {
            return Err(e.context(format!("tokenizer of {}", path.display())));
        }
        // Prompt given as ids: run without a tokenizer (no text output).
        Err(_) => None,
    };
    let prompt = match (&a.prompt, &a.tokens, &tokenizer) {
        (Some(text), _, Some(tok)) => {
            let text = if a.chat {
                tok.chat_prompt(text)
            } else {
                text.clone()
            };
            tok.encode(&text)
        }
        (None, Some(ids), _) => ids.clone(),
        _ => bail!("give --prompt TEXT or --tokens IDS"),
    };
    if prompt.is_empty() {
        bail!("the prompt is empty: give at least one token");
    }
    let ctx = model.config.ctx_len;
    // saturating: `--max-tokens 18446744073709551615` must not wrap past this check (issue 14).
    if prompt.len().saturating_add(a.max_tokens) > ctx {
        bail!(
            "prompt of {} tokens plus --max-tokens {} exceeds the model's context of {ctx} tokens",
            prompt.len(),
            a.max_tokens
        );
    }
    let stop = match (&tokenizer, a.ignore_eos) {
        (Some(t), false) => (0..t.vocab_size() as u32)
            .filter(|&id| t.is_end_of_generation(id))
            .collect(),
        _ => Vec::new(),
    };
    let backend = make_backend(&a.backend, a.threads)?;
    backend
        .preload(&model.weights.all())
        .context("loading the weights onto the backend")?;
    let opts = GenOptions {
        max_tokens: a.max_tokens,
        stop,
        probe_last_token: false,
    };
    Ok(Prepared {
        model,
        tokenizer,
        prompt,
        backend,
        policy,
        opts,
    })
}

/// The generated ids to show as text: without a final end-of-generation token.
pub fn text_ids<'a>(t: &Tokenizer, ids: &'a [u32]) -> &'a [u32] {
    match ids.split_last() {
        Some((&last, rest)) if t.is_end_of_generation(last) => rest,
        _ => ids,
    }
}

/// Which launches of a tape: by phase, layer and stage (ls, replay, diff). Each filter is optional.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LaunchSel {
    /// Only this phase (prefill, decode0, ...).
    #[arg(long)]
    pub phase: Option<Phase>,
    /// Only this layer.
    #[arg(long)]
    pub layer: Option<u32>,
    /// Only this stage: one of greta's, or (ls, replay) a name another engine gave its launches on this
    /// tape. In replay and diff, `qk`, `softmax` and `pv` also select fused `attn` launches, whose
    /// sub-stages are derived from the recorded inputs (route `fused→manual`).
    #[arg(long)]
    pub stage: Option<String>,
}

impl LaunchSel {
    /// Whether entry `e` passes the phase and layer filters (the stage is matched by the caller:
    /// [`super::stage_sel`]).
    pub fn phase_layer(&self, e: &crate::tape::IndexEntry) -> bool {
        self.phase.is_none_or(|p| e.phase == p) && self.layer.is_none_or(|l| e.layer == Some(l))
    }
}

/// Which attention heads (show, replay, diff, export).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct HeadSel {
    /// Query head H (repeatable, or a range like 0-3): replay and diff restrict their figures to its
    /// slice, show and export add its slice of each per-head output (export: `output{i}_head{H}.npy`).
    /// KV stages use the KV head H reads (grouped-query attention, docs/STAGES.md).
    #[arg(long)]
    pub head: Vec<String>,
}

impl HeadSel {
    /// The selected query heads, sorted, without repeats (empty: all).
    pub fn heads(&self) -> anyhow::Result<Vec<usize>> {
        Ok(crate::launch::heads::parse_all(&self.head)?)
    }
}

/// Opens a tape for any command, with one error that names the file (empty files, directories and
/// FIFOs are named as such by the reader), warning on stderr when the tape was truncated.
pub fn open(path: &std::path::Path) -> anyhow::Result<TapeReader> {
    let t = TapeReader::open(path).with_context(|| format!("opening tape {}", path.display()))?;
    if let Some(tr) = t.truncation() {
        eprintln!(
            "warning: {} is truncated at byte {} ({}); reading the {} launches before it",
            path.display(),
            tr.offset,
            tr.reason,
            t.len()
        );
    }
    Ok(t)
}

/// Parses an optional command-line value with its type's `FromStr` (whose error is the message).
pub fn parse_opt<T: std::str::FromStr<Err = String>>(
    v: &Option<String>,
) -> anyhow::Result<Option<T>> {
    v.as_deref()
        .map(str::parse)
        .transpose()
        .map_err(anyhow::Error::msg)
}

/// The most CPU threads a command accepts: 4 per available core, at most 1024 (issue 14: 100000
/// started 10,000+ threads and loaded the machine for minutes).
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_mul(4).clamp(1, 1024)
}

/// A clap value parser that checks a value with `T`'s `FromStr` when the command line is parsed, so a
/// typo is an error before any model or tape is opened; the value is kept as the string given.
pub fn valid<T: std::str::FromStr<Err = String>>(s: &str) -> Result<String, String> {
    s.parse::<T>().map(|_| s.to_string())
}
