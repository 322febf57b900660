//! `greta diff`: where do two tapes first diverge; or, with --prefill-vs-decode, where does decode at
//! position K first differ from prefill's row K inside one tape. Exit 0 same, 1 different, 2 error.

use super::Outcome;
use super::ls::open;
use crate::diff::{plot, pvd, tapes};
use anyhow::{Context, bail};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `greta diff`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Tape A.
    a: PathBuf,
    /// Tape B (omit with --prefill-vs-decode).
    b: Option<PathBuf>,
    /// Compare prefill's row K with the decode launch at position K inside tape A.
    #[arg(long)]
    prefill_vs_decode: bool,
    /// Row K for --prefill-vs-decode [default: the last prompt row].
    #[arg(long)]
    row: Option<usize>,
    /// Write an SVG heatmap (layers by stages, colour = log10 max |a-b|).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// JSON instead of tables.
    #[arg(long)]
    json: bool,
}

fn layer(l: Option<u32>) -> String {
    l.map_or("-".into(), |l| l.to_string())
}

/// Runs `greta diff`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let ta = open(&a.a)?;
    let mut o = std::io::stdout().lock();
    if a.prefill_vs_decode {
        if a.b.is_some() {
            bail!("--prefill-vs-decode compares inside one tape: give only one");
        }
        let r = pvd::prefill_vs_decode(&ta, a.row)?;
        if let Some(p) = &a.plot {
            let cells: Vec<plot::Cell> = r
                .rows
                .iter()
                .filter_map(|x| {
                    x.compare
                        .as_ref()
                        .map(|c| (x.layer, x.stage.clone(), c.max_abs))
                })
                .collect();
            let title = format!(
                "prefill row {} vs {} in {}",
                r.row,
                r.decode_phase,
                a.a.display()
            );
            std::fs::write(
                p,
                plot::heatmap(&title, "log10 max |prefill - decode|", &cells),
            )
            .with_context(|| format!("writing {}", p.display()))?;
        }
        let same = r.first_divergence.is_none();
        if a.json {
            writeln!(o, "{}", serde_json::to_string(&r)?)?;
            return Ok(if same {
                Outcome::Same
            } else {
                Outcome::Different
            });
        }
        writeln!(
            o,
            "prefill row {} vs {} (same position, same stage)",
            r.row, r.decode_phase
        )?;
        writeln!(
            o,
            "{:>5} {:<13} {:<18} {:<18} {:<6} {:>8} {:>10} {:>10}",
            "layer", "stage", "prefill route", "decode route", "equal", "max_ulp", "max_abs", "mae"
        )?;
        for x in &r.rows {
            match &x.compare {
                Some(c) => writeln!(
                    o,
                    "{:>5} {:<13} {:<18} {:<18} {:<6} {:>8} {:>10.2e} {:>10.2e}",
                    layer(x.layer),
                    if x.stage == x.decode_stage {
                        x.stage.clone()
                    } else {
                        format!("{}~{}", x.stage, x.decode_stage)
                    },
                    x.routes.0,
                    x.routes.1,
                    if x.equal { "yes" } else { "NO" },
                    c.max_ulp,
                    c.max_abs,
                    c.mae
                )?,
                None => writeln!(
                    o,
                    "{:>5} {:<13} {}",
                    layer(x.layer),
                    x.stage,
                    x.note.clone().unwrap_or_default()
                )?,
            }
        }
        match &r.first_divergence {
            None => writeln!(
                o,
                "prefill and decode are bit-identical at every compared stage"
            )?,
            Some(f) => writeln!(
                o,
                "first divergence: layer {} {} (prefill {} vs decode {}), max {} ULP, max abs {:.3e}",
                layer(f.layer),
                f.stage,
                f.routes.0,
                f.routes.1,
                f.compare.as_ref().map_or(0, |c| c.max_ulp),
                f.compare.as_ref().map_or(0.0, |c| c.max_abs)
            )?,
        }
        return Ok(if same {
            Outcome::Same
        } else {
            Outcome::Different
        });
    }
    let Some(bp) = &a.b else {
        bail!("give two tapes, or one with --prefill-vs-decode")
    };
    let tb = open(bp)?;
    let d = tapes::diff(&ta, &tb)?;
    if let Some(w) = &d.warning {
        eprintln!("note: {w}");
    }
    if let Some(p) = &a.plot {
        let mut worst: std::collections::BTreeMap<(Option<u32>, String), f64> = Default::default();
        for l in &d.launches {
            let v = l.compare.as_ref().map_or(f64::MIN_POSITIVE, |c| c.max_abs);
            let e = worst.entry((l.layer, l.stage.clone())).or_insert(0.0);
            *e = e.max(v);
        }
        let cells: Vec<plot::Cell> = worst.into_iter().map(|((l, s), v)| (l, s, v)).collect();
        std::fs::write(
            p,
            plot::heatmap(
                &format!("{} vs {}", a.a.display(), bp.display()),
                "log10 max |a-b| over phases",
                &cells,
            ),
        )
        .with_context(|| format!("writing {}", p.display()))?;
    }
    let mut same = d.first_divergence.is_none() && d.only_a == 0 && d.only_b == 0;
    if same {
        // Equal hashes prove nothing about a damaged tape (issue 14: "identical" on 142 of 238
        // damaged tapes): before saying so, check both tapes whole (linear; `greta verify` lists all).
        for t in [&ta, &tb] {
            let v = t.verify();
            if !v.is_ok() {
                same = false;
                let why = v.problems.first().map_or_else(
                    || "it is truncated".to_string(),
                    |p| {
                        format!(
                            "{} problems, the first at byte {}: {}",
                            v.problems.len(),
                            p.offset,
                            p.what
                        )
                    },
                );
                eprintln!(
                    "{} is damaged ({why}): not calling the tapes identical",
                    t.path().display()
                );
            }
        }
    }
    if a.json {
        writeln!(o, "{}", serde_json::to_string(&d)?)?;
        return Ok(if same {
            Outcome::Same
        } else {
            Outcome::Different
        });
    }
    writeln!(
        o,
        "{} aligned launches; {} only in A, {} only in B",
        d.aligned, d.only_a, d.only_b
    )?;
    writeln!(
        o,
        "{:<14} {:>8} {:>9} {:>8} {:>10} {:>10}",
        "stage", "launches", "differing", "max_ulp", "max_abs", "mae"
    )?;
    for r in &d.rows {
        writeln!(
            o,
            "{:<14} {:>8} {:>9} {:>8} {:>10.2e} {:>10.2e}",
            r.stage, r.launches, r.differing, r.max_ulp, r.max_abs, r.mae
        )?;
    }
    match &d.first_divergence {
        None if !same => writeln!(
            o,
            "no differing hashes, but a tape is damaged or launches are missing"
        )?,
        None => writeln!(
            o,
            "identical: every aligned launch has the same output hashes"
        )?,
        Some(f) => {
            write!(
                o,
                "first divergence: {} layer {} {} (A seq {}, B seq {})",
                f.phase,
                layer(f.layer),
                f.stage,
                f.seq_a,
                f.seq_b
            )?;
            match (f.index, f.value_a, f.value_b) {
                (Some(i), Some(va), Some(vb)) => writeln!(
                    o,
                    " at index {i} {:?}: A {va:e}, B {vb:e}; max {} ULP, max abs {:.3e}",
                    f.coords.clone().unwrap_or_default(),
                    f.max_ulp,
                    f.max_abs
                )?,
                _ => writeln!(o, " (hashes differ; bytes not captured)")?,
            }
        }
    }
    Ok(if same {
        Outcome::Same
    } else {
        Outcome::Different
    })
}
