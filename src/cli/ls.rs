//! `greta ls`: one line per launch, from the tape's index (no record frames decoded).

use super::Outcome;
use super::common::{LaunchSel, open};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `greta ls`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The tape.
    tape: PathBuf,
    #[command(flatten)]
    sel: LaunchSel,
    /// JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `greta ls`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let t = open(&a.tape)?;
    let stage = super::stage_sel::parse(&t, &a.sel.stage)?;
    let all = t.entries().collect::<Result<Vec<_>, _>>()?;
    let rows: Vec<_> = all
        .into_iter()
        .filter(|e| a.sel.phase_layer(e))
        .filter(|e| stage.as_ref().is_none_or(|s| s.matches(&t, e)))
        .collect();
    // A foreign launch's stage and route names are in its begin record, not in the index.
    let names: Vec<(String, String)> = rows
        .iter()
        .map(|e| {
            if e.route.variant == crate::launch::Variant::Engine {
                if let Ok(l) = t.launch(e.seq) {
                    return (l.begin.stage_name().to_string(), l.begin.route_name());
                }
            }
            (e.stage.name().to_string(), e.route.to_string())
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if a.json {
        let v: Vec<_> = rows
            .iter()
            .zip(&names)
            .map(|(e, (stage, route))| {
                serde_json::json!({
                    "seq": e.seq, "phase": e.phase.to_string(), "layer": e.layer, "stage": stage,
                    "route": route, "complete": e.has_end,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(v))?;
    } else {
        writeln!(
            out,
            "{:>7}  {:<9} {:>5}  {:<14} {:<20}",
            "seq", "phase", "layer", "stage", "route"
        )?;
        for (e, (stage, route)) in rows.iter().zip(&names) {
            writeln!(
                out,
                "{:>7}  {:<9} {:>5}  {:<14} {:<20} {}",
                e.seq,
                e.phase.to_string(),
                e.layer.map_or("-".into(), |l| l.to_string()),
                stage,
                route,
                if e.has_end {
                    ""
                } else {
                    "INCOMPLETE (no outputs: crashed or cut here)"
                }
            )?;
        }
    }
    Ok(Outcome::Same)
}
