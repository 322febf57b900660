//! `greta show`: one launch whole — params, route, tensors, hashes, value statistics.

use super::Outcome;
use super::common::open;
use crate::analysis::values;
use crate::analysis::{Source, hex};
use crate::inspect::stats::{Stats, stats};
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
    #[command(flatten)]
    heads: super::common::HeadSel,
    /// On a fused attention launch, also show qk, softmax and pv derived from its recorded inputs on the
    /// CPU manual route (f32; `fused→manual`, not recorded).
    #[arg(long)]
    substages: bool,
}

/// Statistics (and the first `n` values) of named value vectors: head slices and derived sub-stages.
fn extra_rows(rows: &[(String, Vec<f64>)], n: usize) -> (Vec<serde_json::Value>, Vec<String>) {
    let mut js = Vec::new();
    let mut text = Vec::new();
    for (name, v) in rows {
        let s = stats(v);
        let first: Vec<f64> = v.iter().take(n).copied().collect();
        text.push(format!(
            "  {name:<22} {} values  min {:.6e}  max {:.6e}  mean {:.6e}  abs-sum {:.6e}  nan {}  inf {}{}",
            v.len(),
            s.min,
            s.max,
            s.mean,
            s.abs_sum,
            s.nan,
            s.inf,
            if first.is_empty() { String::new() } else { format!("\n           values {first:?}") }
        ));
        js.push(serde_json::json!({"name": name, "len": v.len(), "stats": s, "values": first}));
    }
    (js, text)
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
    let heads = a.heads.heads()?;
    if !heads.is_empty() && crate::launch::heads::side(b.stage).is_none() {
        anyhow::bail!("--head: stage {} has no heads", b.stage_name());
    }
    let mut extra: Vec<(String, Vec<f64>)> = Vec::new();
    for (i, r) in l.end.iter().flat_map(|e| &e.outputs).enumerate() {
        if heads.is_empty() {
            break;
        }
        let bytes = src.bytes(r)?;
        let v = values(r.dtype, &bytes)
            .ok_or_else(|| anyhow::anyhow!("--head: {} values cannot be decoded", r.dtype))?;
        for &h in &heads {
            let hv = crate::launch::heads::slice(b.stage, &b.params, &r.shape, &v, h)?;
            extra.push((format!("output {i} head {h}"), hv));
        }
    }
    if a.substages {
        if b.stage != crate::launch::Stage::Attn {
            anyhow::bail!(
                "--substages: launch {} is {}, not a fused attn launch",
                b.seq,
                b.stage_name()
            );
        }
        let ins = crate::analysis::exec::inputs(&src, &l)?;
        let cpu = crate::backend::cpu::CpuBackend::new(0);
        let d = crate::analysis::substage::derive(&l, &ins, &cpu, crate::launch::Precision::F32)?;
        for (name, t) in [("qk", &d.qk), ("softmax", &d.softmax), ("pv", &d.pv)] {
            let bytes = t.to_host_bytes().map_err(anyhow::Error::msg)?;
            let v = values(t.dtype, &bytes).unwrap_or_default();
            extra.push((format!("{name} (fused→manual)"), v));
        }
    }
    let (extra_json, extra_text) = extra_rows(&extra, a.values);
    let problems = crate::analysis::sanity::launch_problems(&l);
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
            "heads_and_substages": extra_json,
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
    if !extra_text.is_empty() {
        writeln!(o, "head slices and derived sub-stages:")?;
        for l in &extra_text {
            writeln!(o, "{l}")?;
        }
    }
    for p in &problems {
        writeln!(o, "ERROR {p}")?;
    }
    Ok(outcome)
}
