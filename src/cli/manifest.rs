//! `greta manifest`: the JSON hash manifest of a tape and its run fingerprint.

use super::Outcome;
use super::common::open;
use crate::inspect::manifest::manifest;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `greta manifest`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The tape.
    tape: PathBuf,
}

/// Runs `greta manifest`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let t = open(&a.tape)?;
    let m = manifest(&t)?;
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&m)?
    )?;
    Ok(Outcome::Same)
}
