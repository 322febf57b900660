//! Golden manifests: small JSON files under recordings/ holding the options a run was made with and the
//! hash of every launch's outputs (a 16-hex-digit prefix of blake3: enough to tell runs apart, small
//! enough to commit). A check with other options is an error, not a silent mismatch.

use crate::inspect::manifest::Manifest;
use serde::{Deserialize, Serialize};

/// Golden file format version.
pub const GOLDEN_VERSION: u32 = 1;

/// The options that define a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoldenOptions {
    /// Model file name (not path: goldens travel between machines).
    pub model_name: String,
    /// blake3 of the model file.
    pub model_blake3: String,
    /// Prompt token ids.
    pub prompt_tokens: Vec<u32>,
    /// Tokens generated.
    pub max_tokens: usize,
    /// Backend.
    pub backend: String,
    /// Routes in force (precision, mode, forced routes).
    pub routes: Vec<String>,
}

/// A golden manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Golden {
    /// Format version.
    pub greta_golden: u32,
    /// What it was made with.
    pub options: GoldenOptions,
    /// Fingerprint of the full manifest.
    pub fingerprint: String,
    /// One line per launch: `seq phase layer stage route hash16[,hash16]`.
    pub launches: Vec<String>,
}

fn line(l: &crate::inspect::manifest::ManifestLaunch) -> String {
    let h: Vec<&str> = l.outputs.iter().map(|h| &h[..16.min(h.len())]).collect();
    format!(
        "{} {} {} {} {} {}",
        l.seq,
        l.phase,
        l.layer.map_or("-".to_string(), |x| x.to_string()),
        l.stage,
        l.route,
        h.join(",")
    )
}

impl Golden {
    /// A golden from a manifest and its options.
    pub fn new(options: GoldenOptions, m: &Manifest) -> Golden {
        Golden {
            greta_golden: GOLDEN_VERSION,
            options,
            fingerprint: m.fingerprint.clone(),
            launches: m.launches.iter().map(line).collect(),
        }
    }

    /// Checks a manifest against the golden: None when identical, else the first differing line
    /// (golden, actual).
    pub fn first_difference(&self, m: &Manifest) -> Option<(Option<String>, Option<String>)> {
        if m.fingerprint == self.fingerprint {
            return None;
        }
        let actual: Vec<String> = m.launches.iter().map(line).collect();
        let n = actual.len().max(self.launches.len());
        (0..n)
            .find_map(|i| {
                let (g, a) = (self.launches.get(i), actual.get(i));
                (g != a).then(|| (g.cloned(), a.cloned()))
            })
            .or(Some((None, None)))
    }
}
