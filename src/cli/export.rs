//! `greta export`: one launch's inputs and outputs as .npy files plus a JSON description.

use super::Outcome;
use super::ls::open;
use crate::inspect::npy;
use crate::replay::{Source, hex};
use anyhow::Context;
use std::path::PathBuf;

/// Arguments of `greta export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The tape.
    tape: PathBuf,
    /// Launch number.
    seq: u64,
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
    /// Model file for weights referenced by name [default: the path in the tape header].
    #[arg(long)]
    model: Option<PathBuf>,
}

/// Runs `greta export`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let t = open(&a.tape)?;
    let l = t.launch(a.seq)?;
    let problems = crate::replay::sanity::launch_problems(&l);
    if !problems.is_empty() {
        anyhow::bail!(
            "launch {} cannot be exported: {} (run `greta verify`)",
            a.seq,
            problems.join("; ")
        );
    }
    let src = Source::new(&t, a.model.as_deref());
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut files = Vec::new();
    let mut left_out = Vec::new();
    let b = &l.begin;
    let outs = l.end.as_ref().map(|e| e.outputs.as_slice()).unwrap_or(&[]);
    for (kind, refs) in [("input", b.inputs.as_slice()), ("output", outs)] {
        for (i, r) in refs.iter().enumerate() {
            let name = format!("{kind}{i}.npy");
            let entry = match src.bytes(r) {
                Ok(bytes) => {
                    npy::write(&a.out.join(&name), r.dtype, &r.shape, &bytes)
                        .with_context(|| format!("writing {}", a.out.join(&name).display()))?;
                    serde_json::json!({"file": name, "role": r.role, "dtype": r.dtype.name(), "shape": r.shape, "blake3": hex(&r.hash)})
                }
                Err(e) => {
                    eprintln!("not exported: {kind} {i} `{}`: {e}", r.role);
                    left_out.push(name);
                    serde_json::json!({"file": null, "role": r.role, "dtype": r.dtype.name(), "shape": r.shape,
                    "blake3": hex(&r.hash), "not_exported": e.to_string()})
                }
            };
            files.push((kind, entry));
        }
    }
    let v = serde_json::json!({
        "seq": b.seq, "phase": b.phase.to_string(), "layer": b.layer, "stage": b.stage_name(),
        "route": b.route_name(), "backend": b.backend, "params": b.params, "foreign": b.foreign, "complete": l.end.is_some(),
        "inputs": files.iter().filter(|f| f.0 == "input").map(|f| &f.1).collect::<Vec<_>>(),
        "outputs": files.iter().filter(|f| f.0 == "output").map(|f| &f.1).collect::<Vec<_>>(),
        "note": "quantized weights are exported as raw GGML block bytes (uint8)",
    });
    std::fs::write(a.out.join("launch.json"), serde_json::to_string_pretty(&v)?)?;
    let written = files.len() - left_out.len() + 1;
    eprintln!("wrote {written} files to {}", a.out.display());
    if !left_out.is_empty() {
        // Exit 1: the export is incomplete (launch.json says why for each tensor left out).
        eprintln!(
            "{} of {} tensors left out (see `not_exported` in launch.json)",
            left_out.len(),
            files.len()
        );
        return Ok(Outcome::Different);
    }
    Ok(Outcome::Same)
}
