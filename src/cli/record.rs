//! `greta record`: run the model with the recorder attached and write a tape.

use super::Outcome;
use super::common::{ModelArgs, model_path, parse_opt, prepare};
use crate::engine::{Engine, generate};
use crate::launch::{LaunchInfo, LaunchObserver, Launcher, ObserverError, Phase, Stage, Tensor};
use crate::record::fault::Fault;
use crate::record::{Capture, Durability, RecordOptions, Recorder, Selector};
use crate::tape::{ModelIdentity, Producer, RunInfo, Shuffle, TapeHeader, WriterOptions, unix_now};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `greta record`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// What to store: full (tensor bytes, replayable) or hashes (determinism checks).
    #[arg(long, default_value = "full")]
    pub capture: Capture,
    /// Store payloads only for these phases (comma-separated: prefill,decode0,...).
    #[arg(long, value_delimiter = ',')]
    pub phases: Vec<Phase>,
    /// Store payloads only for these layers.
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<u32>,
    /// Store payloads only for these stages.
    #[arg(long, value_delimiter = ',')]
    pub stages: Vec<Stage>,
    /// Copy model weights into the tape instead of referencing them by GGUF name and hash.
    #[arg(long)]
    pub embed_weights: bool,
    /// Write each launch's Begin record before its kernel runs (crash forensics; slower).
    #[arg(long)]
    pub sync: bool,
    /// Decode step 0 re-runs the last prompt token at its own position (for diff --prefill-vs-decode).
    #[arg(long)]
    pub probe_last_token: bool,
    /// Perturb one output element: phase=P,layer=L,stage=S,index=I,ulps=U. Checked when parsed; kept as
    /// given, for the tape header.
    #[arg(long, value_parser = super::common::valid::<Fault>)]
    pub inject_fault: Option<String>,
    /// zstd level of the tape's frames (negative: zstd's fast levels).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub zstd_level: i32,
    /// Byte-plane shuffle of float chunks before zstd: on (smaller) or off (faster).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub shuffle: OnOff,
    /// Output tape [default: recordings/<model>-<time>.tape].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing tape at --out (without it, an existing tape is an error).
    #[arg(long)]
    pub force: bool,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
}

/// An on/off switch on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// Shows progress on a terminal (indicatif draws nothing when stderr is not one).
struct Progress(indicatif::ProgressBar);

impl LaunchObserver for Progress {
    fn begin(&mut self, info: &LaunchInfo, _inputs: &[&Tensor]) -> Result<(), ObserverError> {
        if info.stage == Stage::Embed {
            self.0.set_message(info.phase.to_string());
        }
        self.0.inc(1);
        Ok(())
    }
    fn end(&mut self, _: &LaunchInfo, _: &[Tensor], _: Duration) -> Result<(), ObserverError> {
        Ok(())
    }
    fn finish(&mut self) -> Result<(), ObserverError> {
        self.0.finish_and_clear();
        Ok(())
    }
}

/// blake3 of a whole file, read through a memory map.
pub fn file_blake3(path: &Path) -> anyhow::Result<String> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: the model file is opened read-only; a concurrent writer truncating it could fault the read,
    // as for any mmap reader; greta never writes model files it reads.
    let map =
        unsafe { memmap2::Mmap::map(&f) }.with_context(|| format!("mapping {}", path.display()))?;
    // On all cores: a 5 GB model hashes in a fraction of a second instead of seconds (same digest).
    Ok(blake3::Hasher::new()
        .update_rayon(&map)
        .finalize()
        .to_hex()
        .to_string())
}

/// The payload selectors.
pub fn selector(a: &Args) -> Selector {
    Selector {
        phases: a.phases.clone(),
        layers: a.layers.clone(),
        stages: a.stages.clone(),
    }
}

/// Runs `greta record`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let capture = a.capture;
    let select = selector(&a);
    let fault: Option<Fault> = parse_opt(&a.inject_fault)?;
    // Checked before the run, not after it.
    if let Some(o) = &a.out {
        if o.is_dir() {
            bail!(
                "--out {} is a directory; give a file name for the tape",
                o.display()
            );
        }
        if o.exists() && !a.force {
            bail!(
                "--out {} already exists; pass --force to replace it",
                o.display()
            );
        }
        super::paths::output_file(o, "--out", &[&model_path(&a.model.model)])?;
    }
    // Before the hashing thread opens it: a FIFO would block it for ever (issue 21).
    super::paths::regular_file(&model_path(&a.model.model), "model")?;
    // The model file's blake3 (for the header) on other cores while the model loads and its weights go to
    // the backend: at 8B the two take about as long, and one no longer waits for the other.
    let model_hash = {
        let path = model_path(&a.model.model);
        std::thread::spawn(move || file_blake3(&path))
    };
    let mut p = prepare(&a.model)?;
    p.opts.probe_last_token = a.probe_last_token;
    if a.probe_last_token && p.opts.max_tokens == 0 {
        bail!("--probe-last-token needs --max-tokens of at least 1");
    }
    let path = model_path(&a.model.model);
    let out = a.out.clone().unwrap_or_else(|| {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "run".into());
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // The process id keeps two recordings started in the same second apart.
        PathBuf::from(format!("recordings/{stem}-{t}-{}.tape", std::process::id()))
    });
    // Only the default folder is created; a given --out's folder was checked above.
    if let (None, Some(dir)) = (&a.out, out.parent().filter(|d| !d.as_os_str().is_empty())) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let model = ModelIdentity {
        path: std::fs::canonicalize(&path)
            .unwrap_or(path.clone())
            .display()
            .to_string(),
        size: p.model.gguf.file_size(),
        blake3: model_hash
            .join()
            .map_err(|_| anyhow::anyhow!("hashing the model file panicked"))??,
    };
    let producer = Producer {
        greta_version: env!("CARGO_PKG_VERSION").to_string(),
        backend: p.backend.name().to_string(),
        device: p.backend.device(),
        kernel_hashes: p.backend.kernel_hashes(),
        engine: None,
        provenance: Some(crate::tape::Provenance::current()),
    };
    let run = RunInfo {
        prompt_tokens: p.prompt.clone(),
        routes: p.policy.describe(),
        threads: a.model.threads as u32,
        capture: format!("{} {}", a.capture, select.describe())
            .trim()
            .to_string(),
        options_json: serde_json::json!({
            "max_tokens": p.opts.max_tokens,
            "probe_last_token": a.probe_last_token,
            "inject_fault": a.inject_fault,
            "embed_weights": a.embed_weights,
            "policy": p.policy,
            "stop": p.opts.stop,
        })
        .to_string(),
        created_unix: unix_now(),
    };
    let config = serde_json::to_string(&p.model.config)?;
    let header = TapeHeader::new(model, config, producer, run);
    let opts = RecordOptions {
        capture,
        select,
        embed_weights: a.embed_weights,
        durability: if a.sync {
            Durability::EveryLaunch
        } else {
            Durability::Buffered
        },
        writer: WriterOptions {
            // Big tensors' chunks hashed and compressed on several cores (the file is byte-identical for
            // any count): at 8B, a full capture's payloads are hundreds of MB a layer set.
            threads: std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 8)),
            zstd_level: a.zstd_level,
            shuffle: match a.shuffle {
                OnOff::On => Shuffle::ByElement,
                OnOff::Off => Shuffle::Off,
            },
            ..WriterOptions::default()
        },
        existing: if a.force {
            crate::tape::Existing::Replace
        } else {
            crate::tape::Existing::Refuse
        },
        ..RecordOptions::default()
    };
    let (recorder, summary) = Recorder::start(&out, header, opts)?;
    let mut launcher = Launcher::new(p.backend.clone(), p.policy.clone());
    if let Some(f) = fault {
        launcher.hook(f.hook());
    }
    launcher.observe(Box::new(recorder));
    let bar = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} recording {msg}: {pos} launches")
            .expect("template"),
    );
    launcher.observe(Box::new(Progress(bar)));
    let mut engine = Engine::new(&p.model, launcher);
    let g = generate(&mut engine, &p.prompt, &p.opts)?;
    let s = summary
        .lock()
        .expect("summary lock")
        .take()
        .unwrap_or(Err(crate::record::RecordError::NoSummary))?;
    let text = p
        .tokenizer
        .as_ref()
        .map(|t| t.decode(super::common::text_ids(t, &g.generated_ids)))
        .unwrap_or_default();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "tape": out.display().to_string(),
                "launches": s.launches,
                "bytes": s.bytes,
                "raw_bytes": s.raw_bytes,
                "fingerprint": crate::analysis::hex(&s.fingerprint),
                "prompt_ids": g.prompt_ids,
                "generated_ids": g.generated_ids,
                "text": text,
                "prefill_tok_s": g.prefill_tok_s(),
                "decode_tok_s": g.decode_tok_s(),
            })
        );
    } else {
        println!("{text}");
        eprintln!("generated ids: {:?}", g.generated_ids);
        eprintln!(
            "tape {}: {} launches, {:.1} MB ({:.1} MB of unique tensor bytes before compression), fingerprint {}",
            out.display(),
            s.launches,
            s.bytes as f64 / 1e6,
            s.raw_bytes as f64 / 1e6,
            &crate::analysis::hex(&s.fingerprint)[..16]
        );
    }
    Ok(Outcome::Same)
}
