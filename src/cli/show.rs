//! `greta show`: one launch whole — params, route, tensors, hashes, value statistics.

use super::Outcome;
use super::ls::open;
use crate::inspect::stats::{Stats, stats, values};
use crate::replay::{Source, hex};
use crate::tape::{Storage, TensorRef};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `greta show`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The tape.
    tape: PathBuf,
    /// Launch number.
    seq: u64,
    /// Print the first N values of each tensor.
    #[arg(long, default_value_t = 0)]
    values: usize,
    /// Model file for weights referenced by name [default: the path in the tape header].
    #[arg(long)]
    model: Option<PathBuf>,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn storage_name(s: &Storage) -> String {
    match s {
        Storage::Chunks(c) => format!("stored ({} chunks)", c.len()),
        Storage::Producer { seq, index } => format!("output {index} of launch {seq}"),
        Storage::Weight { name } => format!("model weight {name}"),
        Storage::HashOnly => "hash only".into(),
        Storage::Rows(spans) => format!(
            "rows of {}",
            spans
                .iter()
                .map(|r| format!("launch {}[{}..{}]", r.seq, r.row0, r.row0 + r.rows))
                .collect::<Vec<_>>()
                .join(" + ")
        ),
    }
}

struct Shown {
    json: serde_json::Value,
    text: String,
    /// The tensor could not be read (an ERROR line): the command exits 1.
    error: bool,
}

fn show_tensor(src: &Source, r: &TensorRef, n: usize, weights: bool) -> Shown {
    let (st, vals): (Option<Stats>, Vec<f64>) = match (&r.storage, weights) {
        (Storage::HashOnly, _) | (Storage::Weight { .. }, false) => (None, vec![]),
        _ => match src.bytes(r) {
            Ok(b) => match values(r.dtype, &b) {
                Some(v) => (Some(stats(&v)), v.into_iter().take(n).collect()),
                None => (None, vec![]),
            },
            Err(e) => {
                return Shown {
                    json: serde_json::json!({"role": r.role, "error": e.to_string()}),
                    text: format!("  {:<8} {} {:?}  ERROR {e}", r.role, r.dtype, r.shape),
                    error: true,
                };
            }
        },
    };
    let mut text = format!(
        "  {:<8} {:<5} {:<16} blake3 {}  {}",
        r.role,
        r.dtype.name(),
        format!("{:?}", r.shape),
        &hex(&r.hash)[..16],
        storage_name(&r.storage)
    );
    if let Some(s) = &st {
        text.push_str(&format!(
            "\n           min {:.6e}  max {:.6e}  mean {:.6e}  abs-sum {:.6e}  nan {}  inf {}",
            s.min, s.max, s.mean, s.abs_sum, s.nan, s.inf
        ));
    }
    if !vals.is_empty() {
        text.push_str(&format!("\n           values {:?}", vals));
    }
    Shown {
        json: serde_json::json!({
            "role": r.role, "dtype": r.dtype.name(), "shape": r.shape, "bytes": r.len, "blake3": hex(&r.hash),
            "storage": storage_name(&r.storage), "stats": st, "values": vals,
        }),
        text,
        error: false,
    }
}

/// Runs `greta show`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let t = open(&a.tape)?;
    let l = t.launch(a.seq)?;
    let src = Source::new(&t, a.model.as_deref());
    let b = &l.begin;
    let ins: Vec<Shown> = b
        .inputs
        .iter()
        .map(|r| show_tensor(&src, r, a.values, a.values > 0))
        .collect();
    let outs: Vec<Shown> = l
        .end
        .iter()
        .flat_map(|e| &e.outputs)
        .map(|r| show_tensor(&src, r, a.values, true))
        .collect();
    let problems = crate::replay::sanity::launch_problems(&l);
    // ERROR lines (an unreadable tensor, a launch that breaks its contract) exit 1, never 0.
    let outcome = if problems.is_empty() && !ins.iter().chain(&outs).any(|s| s.error) {
        Outcome::Same
    } else {
        Outcome::Different
    };
    let mut o = std::io::stdout().lock();
    if a.json {
        let v = serde_json::json!({
            "seq": b.seq, "phase": b.phase.to_string(), "layer": b.layer, "stage": b.stage_name(),
            "route": b.route_name(), "backend": b.backend, "grid": b.grid, "block": b.block,
            "params": b.params, "foreign": b.foreign, "duration_ns": l.end.as_ref().map(|e| e.duration_ns), "complete": l.end.is_some(),
            "inputs": ins.iter().map(|s| &s.json).collect::<Vec<_>>(),
            "outputs": outs.iter().map(|s| &s.json).collect::<Vec<_>>(),
            "problems": problems,
        });
        writeln!(o, "{v}")?;
        return Ok(outcome);
    }
    writeln!(
        o,
        "launch {}: {} layer {} {}  route {}  backend {}",
        b.seq,
        b.phase,
        b.layer.map_or("-".into(), |l| l.to_string()),
        b.stage_name(),
        b.route_name(),
        b.backend
    )?;
    if let Some(f) = &b.foreign {
        let ps: Vec<String> = f.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(
            o,
            "recorded by another engine ({}); its params: {}",
            if b.stage == crate::launch::Stage::Other {
                "a stage greta has no reference for"
            } else {
                "a greta stage"
            },
            ps.join(" ")
        )?;
    }
    let p = &b.params;
    writeln!(
        o,
        "params: rows {} pos {} heads {}/{} head_dim {} rope_dim {} theta {} eps {:e} scale {} kv_block {}",
        p.rows,
        p.pos,
        p.n_heads,
        p.n_kv_heads,
        p.head_dim,
        p.rope_dim,
        p.rope_theta,
        p.eps,
        p.scale,
        p.kv_block
    )?;
    if let (Some(g), Some(bl)) = (b.grid, b.block) {
        writeln!(o, "grid {:?} block {:?}", g, bl)?;
    }
    match &l.end {
        Some(e) => writeln!(o, "duration: {:.3} ms", e.duration_ns as f64 / 1e6)?,
        None => writeln!(
            o,
            "INCOMPLETE: no outputs recorded (the run crashed or the tape was cut inside this launch)"
        )?,
    }
    writeln!(o, "inputs:")?;
    for s in &ins {
        writeln!(o, "{}", s.text)?;
    }
    writeln!(o, "outputs:")?;
    for s in &outs {
        writeln!(o, "{}", s.text)?;
    }
    for p in &problems {
        writeln!(o, "ERROR {p}")?;
    }
    Ok(outcome)
}
