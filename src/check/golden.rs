//! Golden manifests: small JSON files under recordings/ holding the options a run was made with and the
//! hash of every launch's outputs (a 16-hex-digit prefix of blake3: enough to tell runs apart, small
//! enough to commit). A check with other options is an error, not a silent mismatch.

use crate::inspect::manifest::Manifest;
use serde::{Deserialize, Serialize};

/// Golden file format version.
pub const GOLDEN_VERSION: u32 = 1;

/// The largest golden manifest read, in bytes (issue 21: `--golden /dev/zero` read without bound). A
/// golden holds about 60 bytes a launch: SmolLM2's 8 tokens take 89 KB, and 256 MiB is some four
/// million launches, an 80-layer model generating 2,000 tokens.
pub const MAX_GOLDEN_BYTES: u64 = 256 << 20;

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
    /// One line per launch: `seq stage name=value ...` (its scalar params). Optional: goldens made before
    /// it existed have none, and their params are not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<String>>,
    /// The build that blessed it (git commit, binary and source hashes). Optional: older goldens have
    /// none. A check that finds a difference names what differs between that build and its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<crate::tape::Provenance>,
}

fn params(l: &crate::inspect::manifest::ManifestLaunch) -> String {
    format!(
        "{} {} {}",
        l.seq,
        l.stage,
        l.params.as_deref().unwrap_or("")
    )
    .trim_end()
    .to_string()
}

/// The fields of two params lines that differ, as `name golden vs actual`.
fn param_fields(g: &str, a: &str) -> Vec<String> {
    let kv = |s: &str| -> std::collections::BTreeMap<String, String> {
        s.split_whitespace()
            .skip(2)
            .filter_map(|t| t.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (mg, ma) = (kv(g), kv(a));
    let mut keys: Vec<&String> = mg.keys().chain(ma.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| mg.get(*k) != ma.get(*k))
        .map(|k| {
            let v = |m: &std::collections::BTreeMap<String, String>| {
                m.get(k).cloned().unwrap_or_else(|| "0".into())
            };
            format!("{k} {} vs {}", v(&mg), v(&ma))
        })
        .collect()
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
            params: Some(m.launches.iter().map(params).collect()),
            build: Some(crate::tape::Provenance::current()),
        }
    }

    /// What differs between the build that blessed the golden and the running one (empty: the same, or
    /// unknown for an older golden).
    pub fn build_differences(&self) -> Vec<String> {
        self.build.as_ref().map_or_else(Vec::new, |b| {
            crate::tape::Provenance::differences(b, &crate::tape::Provenance::current())
        })
    }

    /// Checks the params of a manifest's launches against the golden's (None when the golden has no
    /// params, or they match); else `params differ at seq N stage: eps 1e-5 vs 9.99e-6`.
    pub fn params_difference(&self, m: &Manifest) -> Option<String> {
        let gp = self.params.as_ref()?;
        let actual: Vec<String> = m.launches.iter().map(params).collect();
        let n = actual.len().max(gp.len());
        (0..n).find_map(|i| {
            let (g, a) = (gp.get(i)?, actual.get(i)?);
            (g != a).then(|| {
                let mut w = g.split_whitespace();
                let (seq, stage) = (w.next().unwrap_or("?"), w.next().unwrap_or("?"));
                format!(
                    "params differ at seq {seq} {stage}: {} (golden vs actual)",
                    param_fields(g, a).join("; ")
                )
            })
        })
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
