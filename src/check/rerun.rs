//! Rerunning a golden: the options a golden was made with, turned back into command-line options, so
//! `greta check --golden recordings/X.json` needs nothing else (the model file is found by name).

use super::golden::GoldenOptions;

/// Command-line options that redo a golden's run.
#[derive(Clone, Debug, PartialEq)]
pub struct RerunOptions {
    /// Prompt token ids.
    pub tokens: Vec<u32>,
    /// Tokens to generate.
    pub max_tokens: usize,
    /// Backend.
    pub backend: String,
    /// `--precision`.
    pub precision: String,
    /// `--routes` (default or invariant).
    pub routes: String,
    /// `--route OP=VARIANT[/PRECISION]`, one per forced route.
    pub route: Vec<String>,
}

/// Inverts `RoutePolicy::describe`: `precision=P`, `mode=invariant`, `OP=VARIANT` and
/// `FAMILY.precision=P` (folded into `FAMILY=VARIANT/P`).
pub fn rerun_options(g: &GoldenOptions) -> Result<RerunOptions, String> {
    let mut r = RerunOptions {
        tokens: g.prompt_tokens.clone(),
        max_tokens: g.max_tokens,
        backend: g.backend.clone(),
        precision: "f32".into(),
        routes: "default".into(),
        route: Vec::new(),
    };
    let mut family_precision = Vec::new();
    for e in &g.routes {
        let (k, v) = e
            .split_once('=')
            .ok_or_else(|| format!("golden route entry `{e}` is not KEY=VALUE"))?;
        match k {
            "precision" => r.precision = v.to_string(),
            "mode" => r.routes = v.to_string(),
            _ => match k.strip_suffix(".precision") {
                Some(f) => family_precision.push((f.to_string(), v.to_string())),
                None => r.route.push(e.clone()),
            },
        }
    }
    for (f, p) in family_precision {
        let Some(x) = r
            .route
            .iter_mut()
            .find(|x| x.split('=').next() == Some(f.as_str()))
        else {
            return Err(format!(
                "golden sets {f}.precision={p} without a route for {f}"
            ));
        };
        *x = format!("{x}/{p}");
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_round_trip_to_options() {
        let g = GoldenOptions {
            model_name: "m.gguf".into(),
            model_blake3: "00".into(),
            prompt_tokens: vec![1, 2],
            max_tokens: 3,
            backend: "cpu".into(),
            routes: vec![
                "precision=f64".into(),
                "mode=invariant".into(),
                "attention=fused".into(),
                "down=gemv".into(),
                "attention.precision=f16".into(),
            ],
        };
        let r = rerun_options(&g).unwrap();
        assert_eq!(
            (r.precision.as_str(), r.routes.as_str(), r.max_tokens),
            ("f64", "invariant", 3)
        );
        assert_eq!(r.route, vec!["attention=fused/f16", "down=gemv"]);
    }
}
