//! `greta export`: one launch's inputs and outputs as .npy files plus a JSON description.

use super::Outcome;
use super::common::open;
use crate::analysis::{Source, hex};
use crate::inspect::npy;
use anyhow::Context;
use std::path::PathBuf;

/// Arguments of `greta export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The tape.
    tape: PathBuf,
    /// Launch number.
    seq: u64,
    /// Output folder (created; its parent must exist). An existing folder must be empty, or --force.
    #[arg(long)]
    out: PathBuf,
    /// Write into an --out folder that already holds files (same-named files are replaced).
    #[arg(long)]
    force: bool,
    /// Model file for weights referenced by name [default: the path in the tape header].
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    heads: super::common::HeadSel,
    /// On a fused attention launch, also write the sub-stages qk, softmax and pv derived from its
    /// recorded inputs on the CPU manual route (f32; `fused→manual`, not recorded) as `derived_*.npy`.
    #[arg(long)]
    substages: bool,
}

/// Head `h`'s elements of a tensor of `shape` output by `b`'s stage, as raw little-endian bytes.
fn head_bytes(
    b: &crate::tape::LaunchBegin,
    dtype: crate::launch::DType,
    shape: &[u64],
    bytes: &[u8],
    h: usize,
) -> anyhow::Result<Vec<u8>> {
    let esz = dtype
        .bytes_for(1)
        .filter(|_| !dtype.is_quantized())
        .context("head slices need a non-quantized tensor")?;
    let idx = crate::launch::heads::indices(b.stage, &b.params, shape, h)?;
    let mut out = Vec::with_capacity(idx.len() * esz);
    for i in idx {
        let e = bytes
            .get(i * esz..(i + 1) * esz)
            .context("head index past the tensor's bytes")?;
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Runs `greta export`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    if let Some(m) = &a.model {
        // A model that is not there is an error before anything is written (issue 21: exit 1, three
        // lines, and a partial export).
        super::paths::regular_file(m, "--model")?;
    }
    let t = open(&a.tape)?;
    let l = t.launch(a.seq)?;
    let mut problems = crate::analysis::sanity::launch_problems(&l);
    problems.extend(crate::analysis::sanity::reference_problems(&t, &l));
    if !problems.is_empty() {
        anyhow::bail!(
            "launch {} cannot be exported: {} (run `greta verify`)",
            a.seq,
            problems.join("; ")
        );
    }
    let src = Source::new(&t, a.model.as_deref());
    super::paths::export_dir(&a.out, a.force)?;
    let mut files = Vec::new();
    let mut left_out = Vec::new();
    let b = &l.begin;
    let heads = a.heads.heads()?;
    if !heads.is_empty() && crate::launch::heads::side(b.stage).is_none() {
        anyhow::bail!(
            "--head: stage {} has no heads (per-head stages: q_proj, k_proj, v_proj, rope_q, rope_k, kv_write, qk, softmax, pv, attn)",
            b.stage_name()
        );
    }
    let outs = l.end.as_ref().map(|e| e.outputs.as_slice()).unwrap_or(&[]);
    for (kind, refs) in [("input", b.inputs.as_slice()), ("output", outs)] {
        for (i, r) in refs.iter().enumerate() {
            let name = format!("{kind}{i}.npy");
            let entry = match src.bytes(r) {
                Ok(bytes) => {
                    npy::write(&a.out.join(&name), r.dtype, &r.shape, &bytes)
                        .with_context(|| format!("writing {}", a.out.join(&name).display()))?;
                    if kind == "output" {
                        for &h in &heads {
                            let hb = head_bytes(b, r.dtype, &r.shape, &bytes, h)?;
                            let hn = format!("output{i}_head{h}.npy");
                            let n = (hb.len() / r.dtype.bytes_for(1).unwrap_or(1)) as u64;
                            npy::write(&a.out.join(&hn), r.dtype, &[n], &hb).with_context(
                                || format!("writing {}", a.out.join(&hn).display()),
                            )?;
                            files.push(("head", serde_json::json!({"file": hn, "of": name, "head": h, "dtype": r.dtype.name(), "shape": [n]})));
                        }
                    }
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
        for (sname, st) in [("qk", &d.qk), ("softmax", &d.softmax), ("pv", &d.pv)] {
            let name = format!("derived_{sname}.npy");
            let bytes = st.to_host_bytes().map_err(anyhow::Error::msg)?;
            let shape: Vec<u64> = st.shape.iter().map(|&x| x as u64).collect();
            npy::write(&a.out.join(&name), st.dtype, &shape, &bytes)
                .with_context(|| format!("writing {}", a.out.join(&name).display()))?;
            files.push(("derived", serde_json::json!({"file": name, "stage": sname, "route": "fused→manual", "computed_on": "cpu:manual/f32", "dtype": st.dtype.name(), "shape": shape, "blake3": blake3::hash(&bytes).to_hex().to_string()})));
        }
    }
    let v = serde_json::json!({
        "seq": b.seq, "phase": b.phase.to_string(), "layer": b.layer, "stage": b.stage_name(),
        "route": b.route_name(), "backend": b.backend, "params": b.params, "foreign": b.foreign, "complete": l.end.is_some(),
        "inputs": files.iter().filter(|f| f.0 == "input").map(|f| &f.1).collect::<Vec<_>>(),
        "outputs": files.iter().filter(|f| f.0 == "output").map(|f| &f.1).collect::<Vec<_>>(),
        "head_slices": files.iter().filter(|f| f.0 == "head").map(|f| &f.1).collect::<Vec<_>>(),
        "derived": files.iter().filter(|f| f.0 == "derived").map(|f| &f.1).collect::<Vec<_>>(),
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
