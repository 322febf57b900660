//! `greta verify`: frame and chunk hashes, the record chain, and the dataflow invariants.
//! Exit 0 clean, 1 problems found, 2 unreadable.

use super::Outcome;
use super::common::open;
use crate::inspect::dataflow;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `greta verify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The tape.
    tape: PathBuf,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `greta verify`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let t = open(&a.tape)?;
    let integrity = t.verify();
    let flow = dataflow::check(&t);
    let truncated = t
        .truncation()
        .map(|tr| serde_json::json!({"offset": tr.offset, "reason": tr.reason}));
    let clean = integrity.problems.is_empty() && flow.problems.is_empty() && truncated.is_none();
    let mut o = std::io::stdout().lock();
    if a.json {
        let v = serde_json::json!({
            "clean": clean,
            "launches": t.len(),
            "truncated": truncated,
            "integrity": {
                "frames": integrity.frames, "chunks": integrity.chunks, "records": integrity.records,
                "problems": integrity.problems.iter().map(|p| serde_json::json!({"offset": p.offset, "what": p.what})).collect::<Vec<_>>(),
            },
            "dataflow": flow,
        });
        writeln!(o, "{v}")?;
    } else {
        writeln!(
            o,
            "integrity: {} frames, {} chunks, {} records checked, {} problems",
            integrity.frames,
            integrity.chunks,
            integrity.records,
            integrity.problems.len()
        )?;
        for p in &integrity.problems {
            writeln!(o, "  at byte {}: {}", p.offset, p.what)?;
        }
        writeln!(
            o,
            "dataflow: {} producer references, {} KV cache reads checked row by row ({} not checkable: bytes not captured), {} problems",
            flow.producer_refs,
            flow.kv_reads_checked,
            flow.kv_reads_unchecked,
            flow.problems.len()
        )?;
        for p in &flow.problems {
            writeln!(o, "  launch {}: {}", p.seq, p.what)?;
        }
        if let Some(tr) = t.truncation() {
            writeln!(o, "truncated at byte {}: {}", tr.offset, tr.reason)?;
        }
        writeln!(o, "{}", if clean { "clean" } else { "PROBLEMS FOUND" })?;
    }
    Ok(if clean {
        Outcome::Same
    } else {
        Outcome::Different
    })
}
