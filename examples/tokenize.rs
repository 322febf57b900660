//! Temporary CLI for `tools/check-tokenizer.py` until `greta tokenize` exists (same output format).
//!
//! ```text
//! cargo run --release --example tokenize -- --model M.gguf [--json] [--] TEXT
//! ```
//! prints the token ids of TEXT, space-separated, or `{"ids":[...]}` with `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use greta::model::gguf::Gguf;
use greta::model::tokenizer::{Tokenizer, vocab_from_gguf};

fn run() -> anyhow::Result<()> {
    let mut model = None;
    let mut json = false;
    let mut text = None;
    let mut args = std::env::args().skip(1);
    let mut positional_only = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" if !positional_only => {
                model = Some(PathBuf::from(
                    args.next()
                        .ok_or_else(|| anyhow::anyhow!("--model needs a path"))?,
                ))
            }
            "--json" if !positional_only => json = true,
            "--" if !positional_only => positional_only = true,
            _ if text.is_none() => text = Some(arg),
            _ => anyhow::bail!("unexpected argument {arg:?}"),
        }
    }
    let usage = "usage: tokenize --model M.gguf [--json] [--] TEXT";
    let model = model.ok_or_else(|| anyhow::anyhow!(usage))?;
    let text = text.ok_or_else(|| anyhow::anyhow!(usage))?;

    let gguf = Gguf::open(&model)?;
    let tokenizer = Tokenizer::new(vocab_from_gguf(&gguf)?)?;
    let ids = tokenizer.encode(&text);
    if json {
        println!("{}", serde_json::json!({ "ids": ids }));
    } else {
        let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("{}", ids.join(" "));
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokenize: {e:#}");
            ExitCode::from(2)
        }
    }
}
