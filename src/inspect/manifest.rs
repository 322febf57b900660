//! Hash manifests: per launch (seq, phase, layer, stage, route, output hashes) plus a run fingerprint.
//! The manifest is the unit of determinism checks and the content of golden files under recordings/.
//!
//! The fingerprint is blake3 over the manifest's launch lines only (not timings, not chunk layout, not the
//! tape's own record chain, which covers durations), so two runs that computed the same bits through the
//! same launches have the same fingerprint whatever else differs.

use crate::analysis::hex;
use crate::tape::{TapeError, TapeReader};
use serde::{Deserialize, Serialize};

/// One launch of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestLaunch {
    /// Launch number.
    pub seq: u64,
    /// Phase name.
    pub phase: String,
    /// Layer, null for global stages.
    pub layer: Option<u32>,
    /// Stage name.
    pub stage: String,
    /// Route `variant/precision`.
    pub route: String,
    /// blake3 (hex) of each output; empty when the launch never finished.
    pub outputs: Vec<String>,
    /// Scalar params as `name=value` (non-zero fields; see [`params_line`]). Not part of the fingerprint
    /// (golden manifests made before it existed still match); goldens store and check it separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
}

/// A launch's params as one line: `name=value` for every non-zero field, floats in shortest round-trip
/// form (`eps=1e-5 rope_theta=1e5`), so a changed epsilon shows even when no output bit changes.
pub fn params_line(p: &crate::launch::Params) -> String {
    let Ok(serde_json::Value::Object(m)) = serde_json::to_value(p) else {
        return String::new();
    };
    m.iter()
        .filter(|(_, v)| v.as_f64() != Some(0.0))
        .map(|(k, v)| match v.as_f64() {
            Some(x) if v.is_f64() => format!("{k}={}", crate::launch::float_text(x)),
            _ => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A tape's manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Model file identity: path, size, blake3.
    pub model: serde_json::Value,
    /// Backend.
    pub backend: String,
    /// Routes in force.
    pub routes: Vec<String>,
    /// Prompt tokens.
    pub prompt_tokens: Vec<u32>,
    /// Launches in order.
    pub launches: Vec<ManifestLaunch>,
    /// blake3 over the launch lines (see the module doc).
    pub fingerprint: String,
}

impl ManifestLaunch {
    /// The line hashed into the fingerprint.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {} {} {}\n",
            self.seq,
            self.phase,
            self.layer.map_or("-".to_string(), |l| l.to_string()),
            self.stage,
            self.route,
            self.outputs.join(",")
        )
    }
}

/// The fingerprint of launch lines.
pub fn fingerprint(launches: &[ManifestLaunch]) -> String {
    let mut h = blake3::Hasher::new();
    for l in launches {
        h.update(l.line().as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// Builds the manifest of a tape (reads every launch's records).
pub fn manifest(t: &TapeReader) -> Result<Manifest, TapeError> {
    let mut launches = Vec::with_capacity(t.len());
    for e in t.entries() {
        let l = t.launch(e?.seq)?;
        launches.push(ManifestLaunch {
            seq: l.begin.seq,
            phase: l.begin.phase.to_string(),
            layer: l.begin.layer,
            stage: l.begin.stage_name().to_string(),
            route: l.begin.route_name(),
            outputs: l
                .end
                .as_ref()
                .map(|e| e.outputs.iter().map(|o| hex(&o.hash)).collect())
                .unwrap_or_default(),
            params: Some(params_line(&l.begin.params)),
        });
    }
    let h = t.header();
    Ok(Manifest {
        model: serde_json::json!({ "path": h.model.path, "size": h.model.size, "blake3": h.model.blake3 }),
        backend: h.backend.clone(),
        routes: h.routes.clone(),
        prompt_tokens: h.prompt_tokens.clone(),
        fingerprint: fingerprint(&launches),
        launches,
    })
}
