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
    if let Some(p) = &a.plot {
        let inputs: Vec<&std::path::Path> = [
            Some(a.tape.as_path()),
            a.model.as_deref(),
            a.kernels.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        super::paths::output_file(p, "--plot", &inputs)?;
    }
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
    // Every launch is read, checked, replayed and printed in turn, and then dropped: memory stays flat
    // in the tape's length (issue 21: a full replay of 300k launches held every launch and every row,
    // 766 MB at 181 s). Rows are kept only for what needs them all (--plot, the --reference whole-model
    // run); JSON is streamed as the same array `serde_json` would write.
    let keep_rows = a.plot.is_some() || a.reference.is_some();
    let mut rows: Vec<crate::replay::Row> = Vec::new();
    let mut launches = Vec::new();
    let mut tally = Tally::default();
    // Streamed rows the summary names (not bit-exact, failed, over their bound): a bounded few.
    let mut notable: Vec<crate::replay::Row> = Vec::new();
    let mut o = std::io::stdout().lock();
    let stream = !keep_rows;
    if stream {
        if a.json {
            write!(o, "[")?;
        } else {
            print_header(&mut o, a.reference.is_some())?;
        }
    }
    // No selection replays the whole tape: show progress (hidden when stderr is not a terminal).
    let bar = indicatif::ProgressBar::new(seqs.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("replaying {bar:40} {pos}/{len} launches {eta}")
            .expect("template"),
    );
    for (i, &(s, sub)) in seqs.iter().enumerate() {
        let l = t.launch(s)?;
        // Another engine's launches are judged one by one (replay_one notes what greta cannot run).
        if l.begin.foreign.is_none() {
            let problems = crate::analysis::sanity::launch_problems(&l);
            if !problems.is_empty() {
                bail!(
                    "launch {} cannot be replayed: {} (run `greta verify`)",
                    l.begin.seq,
                    problems.join("; ")
                );
            }
        }
        bar.inc(1);
        let row = replay_sub(&src, &l, sub, &opts);
        tally.add(&row);
        if stream && notable.len() < NOTABLE_KEPT && !super::replay_summary::unremarkable(&row) {
            notable.push(row.clone());
        }
        if stream {
            if a.json {
                if i > 0 {
                    write!(o, ",")?;
                }
                serde_json::to_writer(&mut o, &row)?;
            } else {
                print_row(&mut o, &row, a.reference.is_some())?;
            }
        } else {
            rows.push(row);
            if a.reference.is_some() {
                launches.push(l);
            }
        }
    }
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
    if !stream {
        if a.json {
            write!(o, "{}", serde_json::to_string(&rows)?)?;
        } else {
            // Rows kept: the summary first, then the table (issue 28).
            super::replay_summary::summary(&mut o, &rows, tally.counts(), a.reference.is_some())?;
            print_header(&mut o, a.reference.is_some())?;
            for r in &rows {
                print_row(&mut o, r, a.reference.is_some())?;
            }
        }
    } else if a.json {
        write!(o, "]")?;
    } else {
        // Streamed: the table went out as it was made; the summary names what was kept of it.
        super::replay_summary::summary(&mut o, &notable, tally.counts(), a.reference.is_some())?;
    }
    let Tally {
        n,
        exact,
        skipped,
        failed,
        damaged,
        all_exact,
        plugin_ran,
        plugin_same,
        plugin_missing,
        ..
    } = tally;
    if a.json {
        writeln!(o)?;
        if failed > 0 {
            bail!("{failed} of {n} launches could not be replayed");
        }
        return Ok(if all_exact {
            Outcome::Same
        } else {
            Outcome::Different
        });
    }
    let n = n - skipped;
    writeln!(o, "{exact}/{n} launches bit-exact on replay")?;
    if damaged > 0 {
        writeln!(
            o,
            "{damaged} launches damaged: not replayed (see `error:` above; `greta verify` lists all)"
        )?;
    }
    if let Some(p) = &a.kernels {
        writeln!(
            o,
            "{plugin_same}/{plugin_ran} plugin kernel runs bit-exact with the recording ({}; {plugin_missing} launches not implemented by it)",
            p.display(),
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

/// At most this many streamed rows are kept for the summary to name (it names five of each kind).
const NOTABLE_KEPT: usize = 1000;

/// What the verdict needs from the rows, counted as they stream by.
#[derive(Default)]
struct Tally {
    /// Rows.
    n: usize,
    /// Rows replayed and not bit-exact, without an error.
    differ: usize,
    /// Rows with an error other than "no reference".
    errors: usize,
    /// Rows bit-exact on replay.
    exact: usize,
    /// Launches of another engine not replayed (their kernels run only in the engine).
    skipped: usize,
    /// Rows that could not be replayed (exit 2).
    failed: usize,
    /// Damaged launches (exit 1).
    damaged: usize,
    /// Every replayed row bit-exact, no error but "no reference", plugin kernels exact.
    all_exact: bool,
    /// Plugin kernel runs compared with the recording.
    plugin_ran: usize,
    /// Of those, bit-exact.
    plugin_same: usize,
    /// Launches the plugin does not implement.
    plugin_missing: usize,
}

impl Tally {
    fn counts(&self) -> super::replay_summary::Counts {
        super::replay_summary::Counts {
            n: self.n,
            exact: self.exact,
            differ: self.differ,
            errors: self.errors,
            skipped: self.skipped,
        }
    }

    fn add(&mut self, r: &crate::replay::Row) {
        if self.n == 0 {
            self.all_exact = true;
        }
        self.n += 1;
        let not_implemented = |c: &crate::replay::report::MatrixCell| {
            c.error
                .as_deref()
                .is_some_and(|e| e.starts_with("not implemented"))
        };
        // With --kernels, a plugin kernel that does not reproduce its recording counts as a difference.
        let plugin_exact = r.plugin.as_ref().is_none_or(|c| {
            not_implemented(c) || c.vs_recorded.as_ref().is_some_and(|x| x.bit_exact)
        });
        // A foreign launch of a stage greta does not know has nothing to replay: listed, not a failure.
        let no_reference = r
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("no reference for"));
        let damaged = r
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with(crate::analysis::exec::DAMAGED));
        // A launch of another engine that was not replayed (its kernel runs only in the engine) does
        // not make the replay "different"; its local error is reported, not judged.
        let not_replayed = r.replay_route == "-";
        self.all_exact &=
            (r.bit_exact || not_replayed) && (r.error.is_none() || no_reference) && plugin_exact;
        // A local error above its stage's bound is a failure whatever the replay's bits (issue 28).
        let over_bound = matches!((&r.local, r.local_bound), (Some(c), Some(b)) if c.rel_l2 > b || c.nonfinite_mismatch > 0);
        self.all_exact &= !over_bound;
        self.skipped += usize::from(not_replayed);
        self.exact += usize::from(r.bit_exact);
        self.differ += usize::from(!r.bit_exact && r.error.is_none() && !not_replayed);
        self.errors += usize::from(r.error.is_some() && !no_reference);
        // Damage is a finding (exit 1); a launch that could not be replayed otherwise (missing model,
        // a route the backend lacks) is an error (exit 2): nothing was compared.
        self.damaged += usize::from(damaged);
        self.failed += usize::from(r.error.is_some() && !no_reference && !damaged);
        if let Some(c) = &r.plugin {
            self.plugin_missing += usize::from(not_implemented(c));
            if c.vs_recorded.is_some() {
                self.plugin_ran += 1;
                self.plugin_same +=
                    usize::from(c.vs_recorded.as_ref().is_some_and(|x| x.bit_exact));
            }
        }
    }
}

fn print_header(o: &mut impl Write, reference: bool) -> std::io::Result<()> {
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
        if reference {
            " | local (f64, same inputs)  ulp   max_abs       mae | inherited (f64 run) ulp   max_abs       mae"
        } else {
            ""
        }
    )?;
    Ok(())
}

fn print_row(o: &mut impl Write, r: &crate::replay::Row, reference: bool) -> std::io::Result<()> {
    let not_replayed = r.replay_route == "-";
    let base = format!(
        "{:>6} {:<8} {:>5} {:<13} {:<18} {:<18} {:<9} {:>6} {:>9.2e} {:>9.2e}",
        r.seq,
        r.phase,
        r.layer.map_or("-".into(), |l| l.to_string()),
        r.stage,
        r.route,
        format!("{}:{}", r.backend, r.replay_route),
        if r.error
            .as_deref()
            .is_some_and(|e| e.starts_with(crate::analysis::exec::DAMAGED))
        {
            "DAMAGED"
        } else if r.error.is_some() {
            "ERROR"
        } else if not_replayed {
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
    if reference {
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
    Ok(())
}
