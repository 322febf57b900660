//! The `greta` binary: parse, run, map the outcome to an exit code (0 same, 1 different, 2 error).

use clap::Parser;
use clap::error::ErrorKind as ClapKind;
use std::io::ErrorKind;
use std::process::ExitCode;

/// mimalloc, not the system allocator: a recording allocates on the inference thread what the recorder's
/// worker frees, and glibc's arenas made those cross-thread frees contend (the recorder's cost per launch
/// on the inference thread: 1.3–2.7 µs with glibc, 0.55–0.7 µs with mimalloc, `recorder_throughput`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match greta::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    match greta::cli::run(cli) {
        Ok(outcome) => outcome.into(),
        Err(e) => {
            // A closed pipe (`greta ls t.tape | head`) is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A command line clap refuses: one line, exit 2 (issue 21: two to four lines, with a usage block and
/// a tip). Help and version print as clap prints them.
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ClapKind::DisplayHelp
            | ClapKind::DisplayVersion
            | ClapKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    let text = e.render().to_string();
    // The message is the first paragraph (a list of missing arguments continues it, indented).
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let sub = std::env::args()
        .nth(1)
        .filter(|s| !s.starts_with('-') && !e.to_string().contains("unrecognized subcommand"));
    let cmd = sub.map_or("greta".to_string(), |s| format!("greta {s}"));
    eprintln!("{} (see `{cmd} --help`)", first.join(" "));
    ExitCode::from(2)
}
