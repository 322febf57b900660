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
    let model = model_check(&t);
    let clean = integrity.problems.is_empty()
        && flow.problems.is_empty()
        && truncated.is_none()
        && !matches!(model, ModelCheck::Differs(_));
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
            "model": model.json(),
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
        writeln!(o, "model: {}", model.text())?;
        writeln!(o, "{}", if clean { "clean" } else { "PROBLEMS FOUND" })?;
    }
    Ok(if clean {
        Outcome::Same
    } else {
        Outcome::Different
    })
}

/// The tape header's model against the file it names (issue 21: a header naming another model file
/// with a false hash verified clean). Checked only when that file is there: a tape moved to another
/// machine verifies without its model.
enum ModelCheck {
    /// The header names no model, or no hash.
    NotRecorded,
    /// The named file is not there (or not a regular file): not checked.
    Absent(String),
    /// The file's blake3 is the recorded one.
    Matches(String),
    /// It is not: why.
    Differs(String),
}

impl ModelCheck {
    fn text(&self) -> String {
        match self {
            ModelCheck::NotRecorded => "no model hash recorded: not checked".into(),
            ModelCheck::Absent(p) => format!("{p} is not here: its hash not checked"),
            ModelCheck::Matches(p) => format!("{p} has the recorded blake3"),
            ModelCheck::Differs(why) => format!("PROBLEM: {why}"),
        }
    }

    fn json(&self) -> serde_json::Value {
        let (state, what) = match self {
            ModelCheck::NotRecorded => ("not_recorded", String::new()),
            ModelCheck::Absent(p) => ("absent", p.clone()),
            ModelCheck::Matches(p) => ("matches", p.clone()),
            ModelCheck::Differs(w) => ("differs", w.clone()),
        };
        serde_json::json!({"state": state, "what": what})
    }
}

fn model_check(t: &crate::tape::TapeReader) -> ModelCheck {
    let m = &t.header().model;
    if m.path.is_empty() || m.blake3.is_empty() {
        return ModelCheck::NotRecorded;
    }
    let path = std::path::Path::new(&m.path);
    if !path.is_file() {
        return ModelCheck::Absent(m.path.clone());
    }
    match crate::analysis::source::model_matches(t, path) {
        Ok(()) => ModelCheck::Matches(m.path.clone()),
        Err(why) => ModelCheck::Differs(format!("the header's model {why}")),
    }
}
