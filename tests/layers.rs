//! Imports between the crate's top-level modules point down (docs/ARCHITECTURE.md). This reads every
//! path into another top-level module in src/ (`crate::X` and `crate::{X, ..}` groups, over line breaks;
//! comments excluded) and fails on an edge outside the table. Paths into another top-level module are
//! written from `crate::` (house style); a `super::super::` chain is not followed.
//!
//! replay, diff and inspect sit side by side on analysis/: none of them may import another, in any
//! direction. What two of them share belongs in analysis/ (issue 12).

use std::collections::BTreeSet;
use std::path::Path;

const MODULES: [&str; 14] = [
    "launch", "tape", "model", "ops", "backend", "record", "engine", "capture", "analysis",
    "inspect", "replay", "diff", "check", "cli",
];

/// The layers below replay, diff and inspect: what each of the three may import.
const BELOW_VIEWS: &[&str] = &[
    "analysis", "backend", "engine", "launch", "model", "ops", "record", "tape",
];

/// Allowed edges (from → to).
fn allowed(from: &str, to: &str) -> bool {
    let below: &[&str] = match from {
        "launch" => &[],
        "tape" | "model" => &["launch"],
        // The f64 reference shares nothing with the routes it judges: never backend.
        "ops" => &["launch", "model"],
        "backend" => &["launch", "model"],
        "record" => &["launch", "tape"],
        "engine" => &["backend", "launch", "model"],
        "capture" => &["launch", "model", "ops", "record", "tape"],
        "analysis" => &["backend", "launch", "model", "ops", "tape"],
        "inspect" | "replay" | "diff" => BELOW_VIEWS,
        "check" => &[
            "analysis", "backend", "engine", "launch", "model", "ops", "record", "tape", "inspect",
            "replay", "diff",
        ],
        "cli" => &MODULES,
        _ => &[],
    };
    below.contains(&to)
}

/// The source without `//` comments (line and doc comments; a `//` inside a string literal also ends
/// the line, which only ever drops text, never adds an edge).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The first path segment of every item of a `{ .. }` group that starts at `s[0] == '{'` (top level
/// of the group only: `{replay::x, diff::{a, b}}` gives replay and diff).
fn group_heads(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut expect = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    expect = true;
                    continue;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                expect = true;
                continue;
            }
            _ => {}
        }
        if depth == 1 && expect && !c.is_whitespace() {
            expect = false;
            out.push(ident(&s[i..]));
        }
    }
    out
}

/// The top-level modules that `text` names through the crate root.
fn names(text: &str) -> Vec<String> {
    let text = strip_comments(text);
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if rest.starts_with('{') {
            out.extend(group_heads(rest));
        } else {
            out.push(ident(rest));
        }
    }
    out
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
        for name in names(&std::fs::read_to_string(&p).unwrap()) {
            if MODULES.contains(&name.as_str()) && name != from {
                out.insert((from.to_string(), name, p.display().to_string()));
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
    assert!(
        all.iter().any(|(f, t, _)| f == "replay" && t == "analysis"),
        "the scan finds analysis/ as a target"
    );
    let bad: Vec<_> = all.iter().filter(|(f, t, _)| !allowed(f, t)).collect();
    assert!(
        bad.is_empty(),
        "imports that point up or sideways (docs/ARCHITECTURE.md): {bad:#?}"
    );
}

/// replay, diff and inspect never import each other, whichever way round.
#[test]
fn views_do_not_import_each_other() {
    for from in ["replay", "diff", "inspect"] {
        for to in ["replay", "diff", "inspect"] {
            assert!(!allowed(from, to), "{from} → {to}");
        }
        assert!(allowed(from, "analysis"), "{from} → analysis");
    }
}

/// The scanner sees every way of writing a path into another module.
#[test]
fn scanner_sees_every_spelling() {
    let src = "use crate::replay::exec;\n\
               use crate::{analysis::Source, diff::{self, tapes}};\n\
               use crate::{\n    inspect::stats,\n    record::{Capture, Recorder},\n};\n\
               let x = crate::tape::hex(&h); // crate::cli::run\n\
               // use crate::cli::run;\n";
    let mut n = names(src);
    n.sort();
    assert_eq!(
        n,
        ["analysis", "diff", "inspect", "record", "replay", "tape"]
    );
}
