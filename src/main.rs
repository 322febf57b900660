//! The `greta` binary: parse, run, map the outcome to an exit code (0 same, 1 different, 2 error).

use clap::Parser;
use std::io::ErrorKind;
use std::process::ExitCode;

/// mimalloc, not the system allocator: a recording allocates on the inference thread what the recorder's
/// worker frees, and glibc's arenas made those cross-thread frees contend (the recorder's cost per launch
/// on the inference thread: 1.3–2.7 µs with glibc, 0.55–0.7 µs with mimalloc, `recorder_throughput`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = greta::cli::Cli::parse();
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
