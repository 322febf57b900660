//! `greta replay`: re-execute selected launches from their recorded inputs and compare.
//! Exit 0 when every replay on the recorded route is bit-exact, 1 when one is not, 2 on error.

use super::Outcome;
use super::common::open;
use super::common::{HeadSel, LaunchSel, load_model, make_backend};
use crate::analysis::{Source, substage};
use crate::diff::plot;
use crate::launch::{Route, Stage};
use crate::replay::ReplayOptions;
use crate::replay::inherited::{Key, f64_outputs};
use crate::replay::report::merge;
use crate::replay::report::replay_sub;
use crate::tape::Storage;
use anyhow::{Context, bail};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `greta replay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The tape.
    tape: PathBuf,
    /// Replay this launch [default, with no --phase/--layer/--stage either: every launch of the tape].
    #[arg(long)]
    seq: Option<u64>,
    #[command(flatten)]
    sel: LaunchSel,
    #[command(flatten)]
    heads: HeadSel,
    /// One row per head (max ULP, max abs, MAE) under each launch.
    #[arg(long)]
    by_head: bool,
    /// Backend to replay on: cpu or hip [default: the backend the tape was recorded on].
    #[arg(long, value_parser = ["cpu", "hip"])]
    backend: Option<String>,
    /// Replay on this route (variant/precision, e.g. gemm_tiled/f32) instead of the recorded one.
    #[arg(long)]
    route: Option<Route>,
    /// Every route available for the op, each against the recorded output and the f64 reference.
    #[arg(long)]
    all_routes: bool,
    /// Local error (f64 CPU reference on the exact recorded inputs) and inherited error (f64 run of the
    /// whole model) side by side. Only `f64` is accepted.
    #[arg(long, value_parser = ["f64"])]
    reference: Option<String>,
    /// Also run the engine's own kernel for each launch from this plugin (a shared library exporting
    /// `greta_kernel_<stage>`, include/greta_plugin.h) and compare it bit for bit with the recording.
    #[arg(long, value_name = "LIB")]
    kernels: Option<PathBuf>,
    /// Model file for weights referenced by name [default: the path in the tape header].
    #[arg(long)]
    model: Option<PathBuf>,
    /// CPU threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Write an SVG heatmap (layers by stages, colour = log10 max |recorded - f64|, or replay difference).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Use a --model whose blake3 differs from the one recorded on the tape (by default refused).
    #[arg(long)]
    allow_model_mismatch: bool,
}

fn fmt_c(c: &Option<crate::analysis::Compare>) -> String {
    match c {
        Some(c) => format!("{:>6} {:>9.2e} {:>9.2e}", c.max_ulp, c.max_abs, c.mae),
        None => format!("{:>6} {:>9} {:>9}", "-", "-", "-"),
    }
}

/// Runs `greta replay`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let t = open(&a.tape)?;
    let stage = super::stage_sel::parse(&t, &a.sel.stage)?;
    let route = a.route;
    let heads = a.heads.heads()?;
    // (seq, derived sub-stage): qk/softmax/pv also select fused attn launches.
    let pick = |e: &crate::tape::IndexEntry| -> Option<Option<Stage>> {
        match &stage {
            None => Some(None),
            Some(super::stage_sel::StageSel::Greta(w)) => substage::selects(e.stage, *w),
            Some(sel) => sel.matches(&t, e).then_some(None),
        }
    };
    let seqs: Vec<(u64, Option<Stage>)> = match a.seq {
        Some(s) => {
            let e = t.entry(s)?;
            let sub = match &stage {
                Some(super::stage_sel::StageSel::Greta(w)) => {
                    substage::selects(e.stage, *w).flatten()
                }
                _ => None,
            };
            vec![(e.seq, sub)]
        }
        None => t
            .entries()
            .filter_map(|e| e.ok())
            .filter(|e| a.sel.phase_layer(e))
            .filter_map(|e| pick(&e).map(|sub| (e.seq, sub)))
            .collect(),
    };
    if seqs.is_empty() {
        bail!("no launch matches the selection");
    }
    // A model the user names must be the recorded one (issue 14: a same-shape other model gave
    // wrong inherited errors with exit 0).
    if let (Some(m), false) = (&a.model, a.allow_model_mismatch) {
        crate::analysis::source::model_matches(&t, m).map_err(anyhow::Error::msg)?;
    }
    let src = Source::new(&t, a.model.as_deref()).allow_model_mismatch(a.allow_model_mismatch);
    let opts = ReplayOptions {
        backend: make_backend(
            a.backend
                .as_deref()
                .unwrap_or(if t.header().backend.is_empty() {
                    "cpu"
                } else {
                    &t.header().backend
                }),
            a.threads,
        )?,
        route,
        reference: a.reference.is_some(),
        all_routes: a.all_routes,
        kernels: match &a.kernels {
            Some(p) => Some(std::sync::Arc::new(crate::replay::plugin::Plugin::open(p)?)),
            None => None,
        },
        heads,
        by_head: a.by_head,
    };
    let launches = seqs
        .iter()
        .map(|&(s, _)| t.launch(s))
        .collect::<Result<Vec<_>, _>>()?;
    // Another engine's launches are judged one by one (replay_one notes what greta cannot run).
    for l in launches.iter().filter(|l| l.begin.foreign.is_none()) {
        let problems = crate::analysis::sanity::launch_problems(l);
        if !problems.is_empty() {
            bail!(
                "launch {} cannot be replayed: {} (run `greta verify`)",
                l.begin.seq,
                problems.join("; ")
            );
        }
    }
    // No selection replays the whole tape: show progress (hidden when stderr is not a terminal).
    let bar = indicatif::ProgressBar::new(launches.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("replaying {bar:40} {pos}/{len} launches {eta}")
            .expect("template"),
    );
    let mut rows: Vec<_> = launches
        .iter()
        .zip(&seqs)
        .map(|(l, &(_, sub))| {
            bar.inc(1);
            replay_sub(&src, l, sub, &opts)
        })
        .collect();
    bar.finish_and_clear();
    // Another engine's tape names no greta model run; its inherited error needs its GGUF and prompt.
    let foreign = t.header().engine.as_ref().map(|e| e.name.clone());
    let inherited_possible = foreign.is_none()
        || a.model.is_some()
        || (!t.header().model.path.is_empty() && !t.header().prompt_tokens.is_empty());
    if a.reference.is_some() && !inherited_possible {
        eprintln!(
            "note: tape recorded by {} without a GGUF and prompt: no inherited (whole-model f64) error, local error only",
            foreign.as_deref().unwrap_or("another engine")
        );
    }
    if a.reference.is_some() && inherited_possible {
        // Inherited error: the same stages in an f64 run of the whole model on the recorded tokens.
        let model_path = a
            .model
            .clone()
            .unwrap_or_else(|| PathBuf::from(&t.header().model.path));
        if !a.allow_model_mismatch && foreign.is_none() {
            crate::analysis::source::model_matches(&t, &model_path)
                .map_err(anyhow::Error::msg)
                .context("the f64 whole-model run needs the recorded model (--model)")?;
        }
        let keys: Vec<Key> = launches
            .iter()
            .filter(|l| l.begin.stage != Stage::Other)
            .map(|l| (l.begin.phase, l.begin.layer, l.begin.stage))
            .collect();
        let run = load_model(&model_path).and_then(|model| {
            f64_outputs(&model, &t, &src, &keys)
                .map_err(anyhow::Error::msg)
                .context("the f64 whole-model run")
        });
        let f64s = match (run, &foreign) {
            (Ok(f), _) => f,
            (Err(e), None) => return Err(e),
            (Err(e), Some(name)) => {
                eprintln!("note: no inherited error for this {name} tape: {e:#}");
                Default::default()
            }
        };
        for (row, l) in rows.iter_mut().zip(&launches) {
            if row.derived.is_some() {
                // A derived sub-stage has no recorded output to hold against the f64 run.
                continue;
            }
            let Some(outs) = f64s.get(&(l.begin.phase, l.begin.layer, l.begin.stage)) else {
                continue;
            };
            let Some(end) = &l.end else { continue };
            let cs: Vec<_> = end
                .outputs
                .iter()
                .zip(outs)
                .filter(|(r, _)| !matches!(r.storage, Storage::HashOnly))
                .filter_map(|(r, f)| {
                    let rb = src.bytes(r).ok()?;
                    let fb = f.host_bytes()?.as_slice().to_vec();
                    Some(crate::analysis::compare(
                        r.dtype, &rb, f.dtype, &fb, &r.shape,
                    ))
                })
                .collect();
            if !cs.is_empty() {
                row.inherited = Some(merge(&cs));
            }
        }
    }
    // With --kernels, a plugin kernel that does not reproduce its recording counts as a difference too.
    let plugin_exact = |r: &crate::replay::Row| {
        r.plugin.as_ref().is_none_or(|c| {
            let not_implemented = c
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("not implemented"));
            not_implemented || c.vs_recorded.as_ref().is_some_and(|x| x.bit_exact)
        })
    };
    // A foreign launch of a stage greta does not know has nothing to replay: listed, not a failure.
    let no_reference = |r: &crate::replay::Row| {
        r.error
            .as_deref()
            .is_some_and(|e| e.starts_with("no reference for"))
    };
    // A launch of another engine that was not replayed (its kernel runs only in the engine) does not
    // make the replay "different"; its local error is reported, not judged.
    let not_replayed = |r: &crate::replay::Row| r.replay_route == "-";
    let all_exact = rows.iter().all(|r| {
        (r.bit_exact || not_replayed(r))
            && (r.error.is_none() || no_reference(r))
            && plugin_exact(r)
    });
    // A local error above its stage's bound is a failure whatever the replay's bits (issue 28).
    let over_bound = |r: &crate::replay::Row| matches!((&r.local, r.local_bound), (Some(c), Some(b)) if c.rel_l2 > b || c.nonfinite_mismatch > 0);
    let all_exact = all_exact && !rows.iter().any(over_bound);
    // A launch that could not be replayed (missing model, a route the backend lacks) is an error
    // (exit 2), not a difference: nothing was compared.
    let failed = rows
        .iter()
        .filter(|r| r.error.is_some() && !no_reference(r))
        .count();
    if let (Some(p), true) = (&a.plot, a.by_head) {
        // Layers down, heads across, for the selected stage.
        let cells: Vec<plot::Cell> = rows
            .iter()
            .flat_map(|r| {
                r.by_head.iter().map(move |h| {
                    let name = format!("{}{:02}", if h.kv { "kv" } else { "h" }, h.head);
                    (r.layer, name, h.compare.max_abs)
                })
            })
            .collect();
        std::fs::write(
            p,
            plot::heatmap(
                &format!("greta replay {} by head", a.tape.display()),
                "log10 max |difference| per head",
                &cells,
            ),
        )
        .with_context(|| format!("writing {}", p.display()))?;
    } else if let Some(p) = &a.plot {
        let cells: Vec<plot::Cell> = rows
            .iter()
            .map(|r| {
                let v = r
                    .inherited
                    .as_ref()
                    .or(r.local.as_ref())
                    .map_or(r.max_abs, |c| c.max_abs);
                (r.layer, r.stage.clone(), v)
            })
            .collect();
        let what = if a.reference.is_some() {
            "log10 max |recorded - f64 run|"
        } else {
            "log10 max |replayed - recorded|"
        };
        std::fs::write(
            p,
            plot::heatmap(&format!("greta replay {}", a.tape.display()), what, &cells),
        )
        .with_context(|| format!("writing {}", p.display()))?;
    }
    let mut o = std::io::stdout().lock();
    if !a.json {
        super::replay_summary::summary(&mut o, &rows, a.reference.is_some())?;
    }
    if a.json {
        writeln!(o, "{}", serde_json::to_string(&rows)?)?;
        if failed > 0 {
            bail!("{failed} of {} launches could not be replayed", rows.len());
        }
        return Ok(if all_exact {
            Outcome::Same
        } else {
            Outcome::Different
        });
    }
    writeln!(
        o,
        "{:>6} {:<8} {:>5} {:<13} {:<18} {:<18} {:<9} {:>6} {:>9} {:>9}{}",
        "seq",
        "phase",
        "layer",
        "stage",
        "recorded route",
        "replayed on",
        "bit-exact",
        "ulp",
        "max_abs",
        "mae",
        if a.reference.is_some() {
            " | local (f64, same inputs)  ulp   max_abs       mae | inherited (f64 run) ulp   max_abs       mae"
        } else {
            ""
        }
    )?;
    for r in &rows {
        let base = format!(
            "{:>6} {:<8} {:>5} {:<13} {:<18} {:<18} {:<9} {:>6} {:>9.2e} {:>9.2e}",
            r.seq,
            r.phase,
            r.layer.map_or("-".into(), |l| l.to_string()),
            r.stage,
            r.route,
            format!("{}:{}", r.backend, r.replay_route),
            if r.error.is_some() {
                "ERROR"
            } else if not_replayed(r) {
                "-"
            } else if r.bit_exact {
                "yes"
            } else {
                "NO"
            },
            r.max_ulp,
            r.max_abs,
            r.mae
        );
        if a.reference.is_some() {
            writeln!(
                o,
                "{base} | {:>32} | {:>32}",
                fmt_c(&r.local),
                fmt_c(&r.inherited)
            )?;
        } else {
            writeln!(o, "{base}")?;
        }
        if let Some(e) = &r.error {
            writeln!(o, "       error: {e}")?;
        }
        if let Some(n) = &r.note {
            writeln!(o, "       {n}")?;
        }
        if let Some(d) = &r.derived {
            writeln!(
                o,
                "       derived {} from launch {} ({}) on {}, blake3 {}{}",
                r.stage,
                d.from_seq,
                d.route,
                d.computed_on,
                &d.hash[..d.hash.len().min(16)],
                d.vs_fused.as_ref().map_or(String::new(), |c| format!(
                    "; vs fused output: {} ulp {} max_abs {:.2e} mae {:.2e}",
                    if c.bit_exact { "bit-exact" } else { "differs" },
                    c.max_ulp,
                    c.max_abs,
                    c.mae
                ))
            )?;
        }
        if !r.heads.is_empty() {
            writeln!(o, "       figures restricted to head(s) {:?}", r.heads)?;
        }
        for h in &r.by_head {
            writeln!(
                o,
                "       {} {:>3}: {:<9} ulp {:>6} max_abs {:>9.2e} mae {:>9.2e}",
                if h.kv { "kv head" } else { "head   " },
                h.head,
                if h.compare.bit_exact {
                    "same"
                } else {
                    "DIFFERS"
                },
                h.compare.max_ulp,
                h.compare.max_abs,
                h.compare.mae
            )?;
        }
        if let Some(w) = crate::analysis::heads::worst(&r.by_head) {
            writeln!(
                o,
                "       worst head: {}{}",
                if w.kv { "kv " } else { "" },
                w.head
            )?;
        }
        if let (false, Some(f)) = (r.bit_exact, &r.first) {
            writeln!(
                o,
                "       first difference at index {} {:?}: recorded {:e}, replayed {:e}",
                f.index, f.coords, f.a, f.b
            )?;
        }
        let plugin_ran = r.plugin.iter().filter(|c| {
            !c.error
                .as_deref()
                .is_some_and(|e| e.starts_with("not implemented"))
        });
        for c in r.matrix.iter().chain(plugin_ran) {
            writeln!(
                o,
                "       route {:<22} vs recorded: {}  vs f64: {}{}",
                format!("{}:{}", c.backend, c.route),
                c.vs_recorded.as_ref().map_or("-".into(), |x| format!(
                    "{} ulp {:>5} max_abs {:.2e}",
                    if x.bit_exact {
                        "bit-exact"
                    } else {
                        "differs  "
                    },
                    x.max_ulp,
                    x.max_abs
                )),
                c.vs_f64.as_ref().map_or("-".into(), |x| format!(
                    "ulp {:>5} max_abs {:.2e}",
                    x.max_ulp, x.max_abs
                )),
                c.error
                    .as_ref()
                    .map_or(String::new(), |e| format!("  ({e})"))
            )?;
        }
    }
    let skipped = rows.iter().filter(|r| not_replayed(r)).count();
    let n = rows.len() - skipped;
    let exact = rows.iter().filter(|r| r.bit_exact).count();
    writeln!(o, "{exact}/{n} launches bit-exact on replay")?;
    if let Some(p) = &a.kernels {
        let ran: Vec<_> = rows
            .iter()
            .filter_map(|r| r.plugin.as_ref())
            .filter(|c| c.vs_recorded.is_some())
            .collect();
        let same = ran
            .iter()
            .filter(|c| c.vs_recorded.as_ref().is_some_and(|x| x.bit_exact))
            .count();
        writeln!(
            o,
            "{same}/{} plugin kernel runs bit-exact with the recording ({}; {} launches not implemented by it)",
            ran.len(),
            p.display(),
            rows.iter()
                .filter(|r| r.plugin.as_ref().is_some_and(|c| c
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("not implemented"))))
                .count()
        )?;
    }
    if skipped > 0 {
        writeln!(
            o,
            "{skipped} launches of {} not replayed: their kernels run only in the engine (--route R replays greta's route R on the same inputs)",
            foreign.as_deref().unwrap_or("another engine")
        )?;
    }
    if failed > 0 {
        bail!("{failed} of {n} launches could not be replayed (see `error:` above)");
    }
    Ok(if all_exact {
        Outcome::Same
    } else {
        Outcome::Different
    })
}
