//! Running the same configuration several times and comparing manifests.

use crate::inspect::manifest::{Manifest, ManifestLaunch, fingerprint};
use crate::launch::{LaunchInfo, LaunchObserver, ObserverError, Tensor};
use serde::Serialize;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// The first launch where two manifests differ.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Mismatch {
    /// Position in launch order.
    pub seq: u64,
    /// Phase in A (or B when A ended).
    pub phase: String,
    /// Layer.
    pub layer: Option<u32>,
    /// Stage.
    pub stage: String,
    /// What differs: outputs, route, or the launch itself.
    pub what: String,
}

/// Compares two manifests launch by launch; None when identical.
pub fn compare_manifests(a: &Manifest, b: &Manifest) -> Option<Mismatch> {
    if a.fingerprint == b.fingerprint && a.launches.len() == b.launches.len() {
        return None;
    }
    let n = a.launches.len().max(b.launches.len());
    for i in 0..n {
        match (a.launches.get(i), b.launches.get(i)) {
            (Some(x), Some(y)) if x == y => continue,
            (Some(x), Some(y)) => {
                let what = if (x.phase.as_str(), x.layer, x.stage.as_str())
                    != (y.phase.as_str(), y.layer, y.stage.as_str())
                {
                    format!(
                        "different launch: {} {:?} {} vs {} {:?} {}",
                        x.phase, x.layer, x.stage, y.phase, y.layer, y.stage
                    )
                } else if x.route != y.route {
                    format!("route {} vs {}", x.route, y.route)
                } else if x.outputs == y.outputs {
                    format!(
                        "params {} vs {}",
                        x.params.as_deref().unwrap_or("(none)"),
                        y.params.as_deref().unwrap_or("(none)")
                    )
                } else {
                    "output hashes differ".to_string()
                };
                return Some(Mismatch {
                    seq: x.seq,
                    phase: x.phase.clone(),
                    layer: x.layer,
                    stage: x.stage.clone(),
                    what,
                });
            }
            (Some(x), None) | (None, Some(x)) => {
                return Some(Mismatch {
                    seq: x.seq,
                    phase: x.phase.clone(),
                    layer: x.layer,
                    stage: x.stage.clone(),
                    what: "one run has more launches".into(),
                });
            }
            (None, None) => break,
        }
    }
    Some(Mismatch {
        seq: 0,
        phase: String::new(),
        layer: None,
        stage: String::new(),
        what: "fingerprints differ".into(),
    })
}

/// A manifest built in process by hashing each launch's outputs right after it ran: the "without the
/// recorder" side of a determinism check (no tape, no worker thread).
pub struct HashObserver(pub Rc<RefCell<Vec<ManifestLaunch>>>);

impl LaunchObserver for HashObserver {
    fn begin(&mut self, _: &LaunchInfo, _: &[&Tensor]) -> Result<(), ObserverError> {
        Ok(())
    }
    fn end(
        &mut self,
        info: &LaunchInfo,
        outputs: &[Tensor],
        _: Duration,
    ) -> Result<(), ObserverError> {
        let outputs = outputs
            .iter()
            .map(|t| {
                t.to_host_bytes()
                    .map(|b| blake3::hash(&b).to_hex().to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.0.borrow_mut().push(ManifestLaunch {
            seq: info.seq,
            phase: info.phase.to_string(),
            layer: info.layer,
            stage: info.stage.name().to_string(),
            route: info.route.to_string(),
            outputs,
            params: Some(crate::inspect::manifest::params_line(&info.params)),
        });
        Ok(())
    }
}

/// A manifest from launch lines collected in process.
pub fn manifest_of(launches: Vec<ManifestLaunch>, base: &Manifest) -> Manifest {
    Manifest {
        fingerprint: fingerprint(&launches),
        launches,
        ..base.clone()
    }
}
