//! `greta run`: generate without recording.

use super::Outcome;
use super::common::{ModelArgs, prepare};
use crate::engine::{Engine, generate};
use crate::launch::Launcher;

/// Arguments of `greta run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `greta run`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let p = prepare(&a.model)?;
    let launcher = Launcher::new(p.backend.clone(), p.policy.clone());
    let mut engine = Engine::new(&p.model, launcher);
    let g = generate(&mut engine, &p.prompt, &p.opts)?;
    let text = p
        .tokenizer
        .as_ref()
        .map(|t| t.decode(super::common::text_ids(t, &g.generated_ids)))
        .unwrap_or_default();
    if a.json {
        let v = serde_json::json!({
            "prompt_ids": g.prompt_ids,
            "generated_ids": g.generated_ids,
            "text": text,
            "prefill_tok_s": g.prefill_tok_s(),
            "decode_tok_s": g.decode_tok_s(),
            "prefill_s": g.prefill_s,
            "decode_s": g.decode_s,
            "launches": g.launches,
            "backend": p.backend.device(),
            "routes": p.policy.describe(),
        });
        println!("{v}");
    } else {
        println!("{text}");
        eprintln!("prompt ids:    {:?}", g.prompt_ids);
        eprintln!("generated ids: {:?}", g.generated_ids);
        eprintln!(
            "prefill: {} tokens, {:.1} tok/s | decode: {} steps, {:.1} tok/s | {} launches on {} [{}]",
            g.prompt_ids.len(),
            g.prefill_tok_s(),
            g.decode_steps,
            g.decode_tok_s(),
            g.launches,
            p.backend.device(),
            p.policy.describe().join(" ")
        );
    }
    Ok(Outcome::Same)
}
