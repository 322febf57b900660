//! The command line: clap-derived arguments that only parse (this module and each command's `Args`),
//! then per-command functions that open files and build the real objects.
//!
//! Exit codes, for every command: 0 same / clean / success, 1 different / problems found, 2 error.

mod check;
mod common;
mod diff;
mod diff_text;
mod export;
mod gen_model;
mod ls;
mod manifest;
mod paths;
mod record;
mod replay;
mod replay_summary;
mod run;
mod show;
mod stage_sel;
mod tokenize;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use common::{ModelArgs, load_model};

/// greta: record every kernel launch of an LLM inference run; replay any one; diff bit for bit.
#[derive(Parser, Debug)]
#[command(name = "greta", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Memory budget for materialising one tensor from a tape, in bytes (default 4 GiB, or the
    /// GRETA_MAX_TENSOR_BYTES environment variable); a larger tensor is an error, not an allocation.
    #[arg(long, global = true, value_name = "BYTES")]
    max_tensor_bytes: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate text (prefill, then greedy decode) without recording.
    Run(run::Args),
    /// Generate with every launch recorded to a tape.
    Record(record::Args),
    /// Re-execute recorded launches and compare (bit-exact, f64 reference, route matrix).
    Replay(replay::Args),
    /// Where two tapes first diverge, or prefill vs decode inside one (--prefill-vs-decode).
    Diff(diff::Args),
    /// Determinism: N runs identical (threads, recorder on/off), or a run against a golden manifest.
    Check(check::Args),
    /// List a tape's launches.
    Ls(ls::Args),
    /// Show one launch: params, route, tensors, hashes, statistics.
    Show(show::Args),
    /// Check a tape: frame and chunk hashes, record chain, dataflow invariants.
    Verify(verify::Args),
    /// Export one launch's tensors as .npy files.
    Export(export::Args),
    /// Print a tape's hash manifest (JSON).
    Manifest(manifest::Args),
    /// Print the token ids of a text.
    Tokenize(tokenize::Args),
    /// Write a deterministic synthetic llama model as a GGUF file.
    GenModel(gen_model::Args),
}

/// Outcome of a command, mapped to the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Same, clean, done: exit 0.
    Same,
    /// Different, or problems found: exit 1.
    Different,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        match o {
            Outcome::Same => ExitCode::SUCCESS,
            Outcome::Different => ExitCode::from(1),
        }
    }
}

/// Parses the command line and runs the command.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    if let Some(n) = cli.max_tensor_bytes {
        crate::tape::budget::set_max_tensor_bytes(n);
    }
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Record(a) => record::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Check(a) => check::run(a),
        Command::Ls(a) => ls::run(a),
        Command::Show(a) => show::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Export(a) => export::run(a),
        Command::Manifest(a) => manifest::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::GenModel(a) => gen_model::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// clap's own consistency checks (duplicate ids from flattened groups, bad defaults) run only in
    /// debug builds; this runs them in every test build.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Enum-like values are typed by clap: a typo is a usage error, whatever the command.
    #[test]
    fn enum_like_values_are_parsed_by_clap() {
        for args in [
            &["greta", "ls", "t.tape", "--phase", "decod0"][..],
            &["greta", "replay", "t.tape", "--route", "gemv/f17"][..],
            &["greta", "replay", "t.tape", "--reference", "f32"][..],
            &["greta", "diff", "a.tape", "b.tape", "--phase", "pre"][..],
            &["greta", "diff", "a.tape", "--backend", "cuda"][..],
            &["greta", "check", "--precision", "f17"][..],
            &["greta", "check", "--routes", "x"][..],
            &[
                "greta",
                "gen-model",
                "--preset",
                "tiny",
                "--dtype",
                "q5",
                "--out",
                "m.gguf",
            ][..],
            &["greta", "gen-model", "--preset", "huge", "--out", "m.gguf"][..],
        ] {
            let e = Cli::try_parse_from(args).expect_err(&format!("{args:?}"));
            use clap::error::ErrorKind::{InvalidValue, ValueValidation};
            assert!(
                matches!(e.kind(), InvalidValue | ValueValidation),
                "{args:?}: {e}"
            );
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
        let ok = Cli::try_parse_from([
            "greta", "ls", "t.tape", "--phase", "decode3", "--layer", "2",
        ]);
        assert!(ok.is_ok());
    }
}
