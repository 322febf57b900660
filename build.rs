//! Build provenance for tape headers (see src/tape/provenance.rs): the git commit when the source is a git
//! checkout with git installed (none otherwise: a crate tarball builds too), and blake3 hashes of the
//! kernel sources (the CPU reference kernels in src/backend/cpu and the GPU kernels in kernels/).

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let o = Command::new("git").args(args).output().ok()?;
    if !o.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// blake3 over the sorted (relative path, contents) of every file under `dir`.
fn tree_hash(dir: &str) -> String {
    let mut fs = Vec::new();
    files(Path::new(dir), &mut fs);
    fs.sort();
    let mut h = blake3::Hasher::new();
    for f in fs {
        h.update(f.to_string_lossy().as_bytes());
        h.update(&[0]);
        h.update(&std::fs::read(&f).unwrap_or_default());
    }
    h.finalize().to_hex().to_string()
}

fn main() {
    for d in ["src/backend/cpu", "kernels"] {
        println!("cargo:rerun-if-changed={d}");
    }
    let commit = git(&["rev-parse", "HEAD"]).map(|c| {
        // Uncommitted changes to tracked files make the commit an approximation: say so.
        let dirty =
            git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        if dirty { format!("{c}-dirty") } else { c }
    });
    if let Some(c) = &commit {
        println!("cargo:rustc-env=GRETA_GIT_COMMIT={c}");
        // A new commit or checkout moves HEAD's log: rebuild the commit id then.
        for p in ["logs/HEAD", "HEAD", "index"] {
            if let Some(path) = git(&["rev-parse", "--git-path", p]) {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!(
        "cargo:rustc-env=GRETA_SOURCE_HASHES=src/backend/cpu={},kernels={}",
        tree_hash("src/backend/cpu"),
        tree_hash("kernels")
    );
}
