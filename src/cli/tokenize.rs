//! `greta tokenize`: the prompt's token ids under the model's own vocabulary.

use super::Outcome;
use super::common::model_path;
use crate::model::gguf::Gguf;
use crate::model::tokenizer::{Tokenizer, vocab_from_gguf};
use anyhow::Context;
use std::path::PathBuf;

/// Arguments of `greta tokenize`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// GGUF model file [default: as for `greta run`].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Wrap the text in the model's chat template first.
    #[arg(long)]
    chat: bool,
    /// Print `{"ids": [...]}`.
    #[arg(long)]
    json: bool,
    /// The text.
    text: String,
}

/// Runs `greta tokenize`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let path = model_path(&a.model);
    super::paths::regular_file(&path, "model")?;
    let g = Gguf::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let tok = Tokenizer::new(vocab_from_gguf(&g)?)?;
    let text = if a.chat {
        tok.chat_prompt(&a.text)
    } else {
        a.text.clone()
    };
    let ids = tok.encode(&text);
    if a.json {
        println!("{}", serde_json::json!({ "ids": ids }));
    } else {
        println!(
            "{}",
            ids.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(Outcome::Same)
}
