//! `greta check`: determinism (N runs across thread counts, recorded and not, identical manifests) and
//! golden manifests (`--golden FILE`, `--bless` to rewrite on purpose). Exit 0 same, 1 different, 2 error.

use super::Outcome;
use super::common::{ModelArgs, model_path, prepare};
use super::record::file_blake3;
use crate::check::golden::{Golden, GoldenOptions};
use crate::check::runs::{HashObserver, manifest_of};
use crate::check::{Mismatch, compare_manifests};
use crate::engine::{Engine, generate};
use crate::inspect::manifest::{Manifest, manifest};
use crate::launch::{Launcher, Precision, RouteMode};
use crate::record::{Capture, RecordOptions, Recorder};
use crate::tape::{ModelIdentity, Producer, RunInfo, TapeHeader};
use anyhow::{Context, bail};
use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Arguments of `greta check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A recorded tape to check against --golden (instead of running the model).
    tape: Option<PathBuf>,
    /// GGUF model file [default: as for `greta run`].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Prompt text.
    #[arg(long, conflicts_with = "tokens")]
    prompt: Option<String>,
    /// Prompt as comma-separated token ids.
    #[arg(long, value_delimiter = ',')]
    tokens: Option<Vec<u32>>,
    /// Wrap the prompt in the chat template.
    #[arg(long)]
    chat: bool,
    /// Tokens to generate (always past end-of-sequence, so every run has the same length).
    #[arg(long, default_value_t = 8)]
    max_tokens: usize,
    /// Recorded runs.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Thread counts the runs cycle through.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Backend: cpu or hip.
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "hip"])]
    backend: String,
    /// Route family precision.
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Forced routes OP=VARIANT.
    #[arg(long = "route", value_name = "OP=VARIANT")]
    route: Vec<String>,
    /// Route rule: default or invariant.
    #[arg(long = "routes", default_value = "default")]
    routes: RouteMode,
    /// Compare against this golden manifest.
    #[arg(long)]
    golden: Option<PathBuf>,
    /// Rewrite the golden manifest from this run (an intended numerical change).
    #[arg(long, requires = "golden")]
    bless: bool,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Perturb every recorded run after the first (the only one when --runs 1) (phase=P,layer=L,stage=S,
    /// index=I,ulps=U): checks that `check` finds and names a non-deterministic element in any number of
    /// differing runs. For testing greta itself.
    #[arg(long, hide = true, value_parser = super::common::valid::<crate::record::fault::Fault>)]
    inject_fault: Option<String>,
}

fn model_args(a: &Args, threads: usize) -> ModelArgs {
    ModelArgs {
        model: a.model.clone(),
        prompt: a.prompt.clone(),
        tokens: a.tokens.clone(),
        chat: a.chat,
        max_tokens: a.max_tokens,
        ignore_eos: true,
        backend: a.backend.clone(),
        precision: a.precision,
        route: a.route.clone(),
        routes: a.routes,
        threads,
    }
}

/// One run: recorded (hashes capture, through the recorder and a real tape) or not (in-process hashes).
fn one_run(
    a: &Args,
    threads: usize,
    recorded: bool,
    dir: &Path,
    i: usize,
    faulted: bool,
    extra: Option<Box<dyn crate::launch::LaunchObserver>>,
) -> anyhow::Result<(Manifest, GoldenOptions)> {
    let p = prepare(&model_args(a, threads))?;
    let path = model_path(&a.model);
    let opts = GoldenOptions {
        model_name: path
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default(),
        model_blake3: file_blake3(&path)?,
        prompt_tokens: p.prompt.clone(),
        max_tokens: a.max_tokens,
        backend: a.backend.clone(),
        routes: p.policy.describe(),
    };
    let mut launcher = Launcher::new(p.backend.clone(), p.policy.clone());
    if faulted {
        let f: Option<crate::record::fault::Fault> = super::common::parse_opt(&a.inject_fault)?;
        if let Some(f) = f {
            launcher.hook(f.hook());
        }
    }
    if let Some(x) = extra {
        launcher.observe(x);
    }
    // The runs' tapes are compared with each other, so their headers hold nothing that differs between
    // two identical runs: no time, no config text, no provenance (as before TapeHeader::new: issue 12).
    let model = ModelIdentity {
        path: path.display().to_string(),
        size: p.model.gguf.file_size(),
        blake3: opts.model_blake3.clone(),
    };
    let producer = Producer {
        greta_version: env!("CARGO_PKG_VERSION").into(),
        backend: p.backend.name().into(),
        device: p.backend.device(),
        kernel_hashes: Vec::new(),
        engine: None,
        provenance: None,
    };
    let run = RunInfo {
        prompt_tokens: p.prompt.clone(),
        routes: opts.routes.clone(),
        threads: threads as u32,
        capture: String::new(),
        options_json: serde_json::json!({ "max_tokens": a.max_tokens }).to_string(),
        created_unix: 0,
    };
    let header = TapeHeader::new(model, String::new(), producer, run);
    let lines = Rc::new(RefCell::new(Vec::new()));
    let tape = dir.join(format!("run{i}.tape"));
    let summary = if recorded {
        let ro = RecordOptions {
            capture: Capture::Hashes,
            ..RecordOptions::default()
        };
        let (rec, s) = Recorder::start(&tape, header.clone(), ro)?;
        launcher.observe(Box::new(rec));
        Some(s)
    } else {
        launcher.observe(Box::new(HashObserver(lines.clone())));
        None
    };
    let mut engine = Engine::new(&p.model, launcher);
    generate(&mut engine, &p.prompt, &p.opts)?;
    drop(engine);
    let m = match summary {
        Some(_) => manifest(&super::common::open(&tape)?)?,
        None => {
            let base = Manifest {
                model: serde_json::json!({"path": header.model.path, "size": header.model.size, "blake3": header.model.blake3}),
                backend: header.backend.clone(),
                routes: header.routes.clone(),
                prompt_tokens: header.prompt_tokens.clone(),
                launches: vec![],
                fingerprint: String::new(),
            };
            manifest_of(
                Rc::try_unwrap(lines)
                    .map(|c| c.into_inner())
                    .unwrap_or_default(),
                &base,
            )
        }
    };
    Ok((m, opts))
}

/// The most runs `--runs` accepts (issue 21: `--runs 18446744073709551615` printed "run 1/0", the
/// count plus one having wrapped, and ran for ever): 100 runs cycling through the thread counts find
/// any nondeterminism that a handful of runs would not.
const MAX_RUNS: usize = 100;

fn read_golden(p: &Path) -> anyhow::Result<Golden> {
    use std::io::Read;
    super::paths::regular_file(p, "golden")?;
    let cap = crate::check::golden::MAX_GOLDEN_BYTES;
    let mut text = String::new();
    std::fs::File::open(p)
        .and_then(|f| f.take(cap + 1).read_to_string(&mut text))
        .with_context(|| format!("reading golden {}", p.display()))?;
    if text.len() as u64 > cap {
        bail!(
            "golden {} is larger than {} MiB, the most a golden manifest holds (MAX_GOLDEN_BYTES)",
            p.display(),
            cap >> 20
        );
    }
    let g: Golden =
        serde_json::from_str(&text).with_context(|| format!("parsing golden {}", p.display()))?;
    if g.greta_golden != crate::check::golden::GOLDEN_VERSION {
        bail!(
            "golden {} has format version {}, this greta reads {}",
            p.display(),
            g.greta_golden,
            crate::check::golden::GOLDEN_VERSION
        );
    }
    Ok(g)
}

fn golden_check(
    a: &Args,
    gp: &Path,
    m: &Manifest,
    opts: &GoldenOptions,
    o: &mut impl Write,
) -> anyhow::Result<Outcome> {
    if a.bless {
        let g = Golden::new(opts.clone(), m);
        std::fs::write(gp, serde_json::to_string_pretty(&g)? + "\n")
            .with_context(|| format!("writing {}", gp.display()))?;
        writeln!(
            o,
            "blessed {}: {} launches, fingerprint {}",
            gp.display(),
            m.launches.len(),
            m.fingerprint
        )?;
        return Ok(Outcome::Same);
    }
    let g = read_golden(gp)?;
    if &g.options != opts {
        bail!(
            "golden {} was made with other options: golden {} vs this run {} (rerun with the golden's options, or --bless on purpose)",
            gp.display(),
            serde_json::to_string(&g.options)?,
            serde_json::to_string(opts)?
        );
    }
    let params = g.params_difference(m);
    if g.params.is_none() && !a.json {
        writeln!(
            o,
            "note: golden {} stores no params (made before goldens did): params not checked",
            gp.display()
        )?;
    }
    match g.first_difference(m) {
        None if params.is_some() => {
            let p = params.unwrap_or_default();
            if a.json {
                writeln!(
                    o,
                    "{}",
                    serde_json::json!({"golden": gp, "identical": false, "outputs_identical": true, "params_difference": p})
                )?;
            } else {
                writeln!(
                    o,
                    "golden {}: DIFFERENT (every output hash matches)",
                    gp.display()
                )?;
                writeln!(o, "  {p}")?;
                build_note(&g, o)?;
            }
            Ok(Outcome::Different)
        }
        None => {
            if a.json {
                writeln!(
                    o,
                    "{}",
                    serde_json::json!({"golden": gp, "identical": true, "fingerprint": m.fingerprint})
                )?;
            } else {
                writeln!(
                    o,
                    "golden {}: identical ({} launches, fingerprint {})",
                    gp.display(),
                    m.launches.len(),
                    m.fingerprint
                )?;
            }
            Ok(Outcome::Same)
        }
        Some((want, got)) => {
            if a.json {
                writeln!(
                    o,
                    "{}",
                    serde_json::json!({"golden": gp, "identical": false, "first_difference": {"golden": want, "actual": got}, "params_difference": params})
                )?;
            } else {
                writeln!(o, "golden {}: DIFFERENT", gp.display())?;
                writeln!(
                    o,
                    "  first differing launch (seq phase layer stage route hash):"
                )?;
                writeln!(o, "    golden: {}", want.unwrap_or_else(|| "(none)".into()))?;
                writeln!(o, "    actual: {}", got.unwrap_or_else(|| "(none)".into()))?;
                if let Some(p) = &params {
                    writeln!(o, "  {p}")?;
                }
                build_note(&g, o)?;
            }
            Ok(Outcome::Different)
        }
    }
}

/// On a difference: which build blessed the golden, when it is not this one.
fn build_note(g: &Golden, o: &mut impl Write) -> std::io::Result<()> {
    let d = g.build_differences();
    if d.is_empty() {
        return Ok(());
    }
    writeln!(
        o,
        "  the golden was blessed by another build: {}",
        d.join("; ")
    )
}

/// `greta check --golden G` with no prompt: the run's options come from the golden. Options that would
/// contradict it are an error rather than silently replaced.
fn from_golden(a: &mut Args, gp: &Path) -> anyhow::Result<()> {
    let g = read_golden(gp)?;
    let r = crate::check::rerun::rerun_options(&g.options).map_err(anyhow::Error::msg)?;
    let given: Vec<&str> = [
        (a.max_tokens != 8, "--max-tokens"),
        (a.backend != "cpu", "--backend"),
        (a.precision != Precision::F32, "--precision"),
        (!a.route.is_empty(), "--route"),
        (a.routes != RouteMode::Default, "--routes"),
        (a.chat, "--chat"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if !given.is_empty() {
        bail!(
            "{} given without a prompt: with only --golden, every run option comes from the golden",
            given.join(", ")
        );
    }
    let model = model_path(&a.model);
    let name = model.file_name().map(|s| s.to_string_lossy().to_string());
    if name.as_deref() != Some(g.options.model_name.as_str()) {
        bail!(
            "golden {} was made with model {}; give its path with --model (the default is {})",
            gp.display(),
            g.options.model_name,
            model.display()
        );
    }
    a.tokens = Some(r.tokens);
    a.max_tokens = r.max_tokens;
    a.backend = r.backend;
    a.precision = r.precision.parse().map_err(anyhow::Error::msg)?;
    a.routes = r.routes.parse().map_err(anyhow::Error::msg)?;
    a.route = r.route;
    Ok(())
}

/// Runs `greta check`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    if a.runs > MAX_RUNS {
        bail!(
            "--runs {} is more than {MAX_RUNS}: each run is a whole recorded generation (MAX_RUNS)",
            a.runs
        );
    }
    let model = model_path(&a.model);
    if a.tape.is_none() && model.exists() {
        // Before "run 1/N" is printed (a missing model is named by `load_model`).
        super::paths::regular_file(&model, "model")?;
    }
    if let (Some(gp), true) = (&a.golden, a.bless) {
        let model = model_path(&a.model);
        let inputs: Vec<&Path> = [Some(model.as_path()), a.tape.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        super::paths::output_file(gp, "--golden", &inputs)?;
    }
    let mut o = std::io::stdout().lock();
    if let Some(tp) = &a.tape {
        let gp = a
            .golden
            .as_ref()
            .context("checking a tape needs --golden FILE")?;
        let t = super::common::open(tp)?;
        let h = t.header();
        let extra: serde_json::Value = serde_json::from_str(&h.options_json).unwrap_or_default();
        let opts = GoldenOptions {
            model_name: Path::new(&h.model.path)
                .file_name()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
            model_blake3: h.model.blake3.clone(),
            prompt_tokens: h.prompt_tokens.clone(),
            max_tokens: extra["max_tokens"].as_u64().unwrap_or(0) as usize,
            backend: h.backend.clone(),
            routes: h.routes.clone(),
        };
        return golden_check(&a, gp, &manifest(&t)?, &opts, &mut o);
    }
    let mut a = a;
    if a.prompt.is_none() && a.tokens.is_none() {
        let Some(gp) = a.golden.clone().filter(|_| !a.bless) else {
            bail!("give --prompt TEXT or --tokens IDS (or a TAPE with --golden, or only --golden)");
        };
        from_golden(&mut a, &gp)?;
    }
    let dir = tempfile::tempdir()?;
    if let Some(gp) = &a.golden {
        let (m, opts) = one_run(
            &a,
            *a.threads.first().unwrap_or(&0),
            true,
            dir.path(),
            0,
            false,
            None,
        )?;
        return golden_check(&a, gp, &m, &opts, &mut o);
    }
    if a.runs == 0 || a.threads.is_empty() {
        bail!("--runs must be at least 1 and --threads must name at least one thread count");
    }
    // N recorded runs cycling through the thread counts, plus one without the recorder.
    let mut labels = Vec::new();
    let mut manifests = Vec::new();
    // (threads, recorded, faulted) of each run, to rerun the two sides of a mismatch.
    let mut configs = Vec::new();
    for i in 0..a.runs {
        let th = a.threads[i % a.threads.len()];
        eprintln!("run {}/{}: recorded, {th} threads", i + 1, a.runs + 1);
        let faulted = i > 0 || a.runs == 1;
        manifests.push(one_run(&a, th, true, dir.path(), i, faulted, None)?.0);
        configs.push((th, true, faulted));
        labels.push(format!("run {} (recorded, {th} threads)", i + 1));
    }
    let th = a.threads[0];
    eprintln!(
        "run {}/{}: not recorded, {th} threads",
        a.runs + 1,
        a.runs + 1
    );
    manifests.push(one_run(&a, th, false, dir.path(), a.runs, false, None)?.0);
    configs.push((th, false, false));
    labels.push(format!("run {} (not recorded, {th} threads)", a.runs + 1));
    let diffs: Vec<(usize, Mismatch)> = manifests
        .iter()
        .enumerate()
        .skip(1)
        .filter_map(|(i, m)| compare_manifests(&manifests[0], m).map(|d| (i, d)))
        .collect();
    // The first differing element of each mismatch: rerun both sides keeping that launch's output.
    let mut elements = Vec::new();
    // Each rerun records its own tape: two per mismatch, numbered after the runs (issue 28: with two
    // mismatches the second pair reused the first pair's names and stopped with "already exists").
    for (j, (i, d)) in diffs.iter().enumerate() {
        let keep = |k: usize, side: usize| -> anyhow::Result<crate::check::element::Kept> {
            let kept = crate::check::element::Kept::default();
            let (th, rec, f) = configs[k];
            let obs = crate::check::element::KeepOutput {
                seq: d.seq,
                out: kept.clone(),
            };
            one_run(
                &a,
                th,
                rec,
                dir.path(),
                a.runs + 1 + 2 * j + side,
                f,
                Some(Box::new(obs)),
            )?;
            Ok(kept)
        };
        let (k0, ki) = (keep(0, 0)?, keep(*i, 1)?);
        elements.push(crate::check::element::compare_kept(&k0, &ki));
    }
    let n = manifests.len();
    let identical = n - diffs.len();
    if a.json {
        writeln!(
            o,
            "{}",
            serde_json::json!({
                "deterministic": diffs.is_empty(), "runs": n, "identical": identical,
                "fingerprint": manifests[0].fingerprint, "launches": manifests[0].launches.len(),
                "mismatches": diffs.iter().zip(&elements).map(|((i, d), e)| serde_json::json!({"run": labels[*i], "against": labels[0], "first": d, "element": e.as_ref().and_then(|c| c.first.clone()), "compare": e})).collect::<Vec<_>>(),
            })
        )?;
    } else if diffs.is_empty() {
        writeln!(
            o,
            "deterministic: {n}/{n} identical, fingerprint {} ({} launches)",
            manifests[0].fingerprint,
            manifests[0].launches.len()
        )?;
    } else {
        writeln!(
            o,
            "NOT deterministic: {identical}/{n} identical to {}",
            labels[0]
        )?;
        for ((i, d), e) in diffs.iter().zip(&elements) {
            writeln!(
                o,
                "  {} first differs at launch {}: {} layer {} {} ({})",
                labels[*i],
                d.seq,
                d.phase,
                d.layer.map_or("-".into(), |l| l.to_string()),
                d.stage,
                d.what
            )?;
            match e.as_ref().and_then(|c| c.first.as_ref().map(|f| (c, f))) {
                Some((c, f)) => writeln!(
                    o,
                    "    first differing element: index {} {:?}: {:e} vs {:e} ({} elements differ, max abs {:.3e})",
                    f.index, f.coords, f.a, f.b, c.differing, c.max_abs
                )?,
                None => writeln!(
                    o,
                    "    on a rerun of both runs the launch's outputs were equal: the difference did not come back"
                )?,
            }
        }
    }
    Ok(if diffs.is_empty() {
        Outcome::Same
    } else {
        Outcome::Different
    })
}
