//! The files a command reads and writes, checked before any work (issue 21):
//! - an input named by the user (`--model`, `--golden`) must be a regular file: a FIFO blocks for ever
//!   and a device (`/dev/zero`) never ends, as tapes already refuse in `tape::reader`;
//! - an output (`--plot`, `--out`) must not be one of the command's inputs (`diff a b --plot a` replaced
//!   tape A with an SVG), and its directory must exist: a typo in a directory name is an error, not a
//!   new directory tree;
//! - an export folder that exists and holds files is written into only with `--force`.
//!
//! For example `greta diff a.tape b.tape --plot a.tape` stops in [`output_file`], exit 2, before
//! anything is read or written.

use anyhow::bail;
use std::path::Path;

/// Refuses anything but an existing regular file, naming it as `what` (`--model`, `--golden`).
pub fn regular_file(path: &Path, what: &str) -> anyhow::Result<()> {
    // metadata() follows links and never opens the file: a FIFO is not waited on.
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => bail!("{what} {}: {e}", path.display()),
    };
    if meta.is_dir() {
        bail!("{what} {} is a directory, not a file", path.display());
    }
    if !meta.is_file() {
        bail!(
            "{what} {} is not a regular file (a FIFO, socket or device?)",
            path.display()
        );
    }
    Ok(())
}

/// Whether `a` and `b` name the same existing file (through links, `./` and `..`).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Checks an output file given as `flag`: not one of `inputs`, not a directory, in a directory that
/// exists.
pub fn output_file(path: &Path, flag: &str, inputs: &[&Path]) -> anyhow::Result<()> {
    if let Some(i) = inputs.iter().find(|i| same_file(path, i)) {
        bail!(
            "{flag} {} is also an input of this command ({}): refusing to overwrite it",
            path.display(),
            i.display()
        );
    }
    if path.is_dir() {
        bail!("{flag} {} is a directory; give a file name", path.display());
    }
    parent_exists(path, flag)
}

/// Checks that the directory an output goes into exists (nothing is created on the way).
pub fn parent_exists(path: &Path, flag: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!(
            "{flag} {}: directory {} does not exist (greta creates no directories: make it first)",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Whether an export folder may be written into: a new folder (created here, its parent must exist),
/// an empty one, or with `force` one that holds files (same-named files are replaced).
pub fn export_dir(path: &Path, force: bool) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() => bail!(
            "--out {} exists and is not a directory; give a folder",
            path.display()
        ),
        Ok(_) => {
            let non_empty = std::fs::read_dir(path)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true);
            if non_empty && !force {
                bail!(
                    "--out {} already holds files; pass --force to write into it",
                    path.display()
                );
            }
            Ok(())
        }
        Err(_) => {
            parent_exists(path, "--out")?;
            std::fs::create_dir(path)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))
        }
    }
}
