//! The `greta` binary: parse, run, map the outcome to an exit code (0 same, 1 different, 2 error).

use clap::Parser;
use std::io::ErrorKind;
use std::process::ExitCode;

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
