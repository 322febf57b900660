//! `greta gen-model`: deterministic synthetic llama models as real GGUF files.

use super::Outcome;
use crate::launch::DType;
use crate::model::synth::{Preset, generate};
use std::path::PathBuf;

/// Arguments of `greta gen-model`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Shape preset: tiny, smollm2, llama3-8b.
    #[arg(long)]
    preset: Preset,
    /// Weight type: f32, f16, bf16, q8_0, q4_0, q4_1, q4_k (Q4_K_M-style mix with Q6_K), q6_k.
    #[arg(long, default_value = "q4_1")]
    dtype: DType,
    /// PRNG seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing file at --out (without it, an existing file is an error).
    #[arg(long)]
    force: bool,
}

/// Runs `greta gen-model`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let (preset, dtype) = (a.preset, a.dtype);
    if a.out.is_dir() {
        anyhow::bail!("--out {} is a directory; give a file name", a.out.display());
    }
    if a.out.exists() && !a.force {
        anyhow::bail!(
            "--out {} already exists; pass --force to replace it",
            a.out.display()
        );
    }
    super::paths::parent_exists(&a.out, "--out")?;
    generate(preset, dtype, a.seed, &a.out)?;
    eprintln!("wrote {}", a.out.display());
    Ok(Outcome::Same)
}
