//! Imports between the crate's top-level modules point down (docs/ARCHITECTURE.md). This reads every
//! `crate::X` path in src/ (comment lines excluded) and fails on an edge outside the table.

use std::collections::BTreeSet;
use std::path::Path;

const MODULES: [&str; 12] = [
    "launch", "tape", "model", "backend", "record", "engine", "capture", "inspect", "replay",
    "diff", "check", "cli",
];

/// Allowed edges (from → to). The replay/diff/inspect group may still import each other (issue 12).
fn allowed(from: &str, to: &str) -> bool {
    let below: &[&str] = match from {
        "launch" => &[],
        "tape" | "model" => &["launch"],
        "backend" => &["launch", "model"],
        "record" => &["launch", "tape"],
        "engine" => &["backend", "launch", "model"],
        "capture" => &["launch", "model", "record", "tape"],
        "analysis" => &["launch", "model", "tape"],
        "inspect" | "replay" | "diff" => &[
            "backend", "engine", "launch", "model", "record", "tape", "analysis", "inspect",
            "replay", "diff",
        ],
        "check" => &[
            "backend", "engine", "launch", "model", "record", "tape", "analysis", "inspect",
            "replay", "diff",
        ],
        "cli" => &MODULES,
        _ => &[],
    };
    below.contains(&to)
}

fn edges(dir: &Path, from: &str, out: &mut BTreeSet<(String, String, String)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            edges(&p, from, out);
            continue;
        }
        if p.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            let l = line.trim_start();
            if l.starts_with("//") {
                continue;
            }
            for (i, _) in l.match_indices("crate::") {
                let rest = &l[i + 7..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if MODULES.contains(&name.as_str()) && name != from {
                    out.insert((from.to_string(), name, p.display().to_string()));
                }
            }
        }
    }
}

#[test]
fn imports_point_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = BTreeSet::new();
    for m in MODULES {
        edges(&src.join(m), m, &mut all);
    }
    assert!(
        all.iter().any(|(f, t, _)| f == "engine" && t == "launch"),
        "the scan finds the edges that exist"
    );
    let bad: Vec<_> = all.iter().filter(|(f, t, _)| !allowed(f, t)).collect();
    assert!(
        bad.is_empty(),
        "imports that point up (docs/ARCHITECTURE.md): {bad:#?}"
    );
}
