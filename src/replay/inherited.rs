//! The inherited-error reference: the same run recomputed by the f64 CPU route from the first token, fed
//! the recorded token ids at every phase (so decode follows the recorded path even where f64 would have
//! picked another token). Comparing a recorded output with the same stage of this run gives its total
//! error: what it inherited from upstream plus its own local error.

use crate::analysis::Source;
use crate::backend::cpu::CpuBackend;
use crate::engine::{Engine, Model};
use crate::launch::{
    LaunchInfo, LaunchObserver, Launcher, ObserverError, Phase, Precision, RoutePolicy, Stage,
    Tensor,
};
use crate::tape::TapeReader;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// A launch position in the run.
pub type Key = (Phase, Option<u32>, Stage);

type Captured = Rc<RefCell<BTreeMap<Key, Vec<Tensor>>>>;

struct Capture {
    want: HashSet<Key>,
    got: Captured,
}

impl LaunchObserver for Capture {
    fn begin(&mut self, _: &LaunchInfo, _: &[&Tensor]) -> Result<(), ObserverError> {
        Ok(())
    }
    fn end(
        &mut self,
        info: &LaunchInfo,
        outputs: &[Tensor],
        _: Duration,
    ) -> Result<(), ObserverError> {
        let k = (info.phase, info.layer, info.stage);
        if self.want.contains(&k) {
            self.got.borrow_mut().insert(k, outputs.to_vec());
        }
        Ok(())
    }
}

/// The token ids and start position of every phase, read from the tape's embed launches.
pub fn phases(tape: &TapeReader, src: &Source) -> Result<Vec<(Phase, Vec<u32>, usize)>, String> {
    let mut out = Vec::new();
    for e in tape.entries() {
        let e = e.map_err(|e| e.to_string())?;
        if e.stage != Stage::Embed {
            continue;
        }
        let l = tape.launch(e.seq).map_err(|e| e.to_string())?;
        let ids_ref = l
            .begin
            .inputs
            .first()
            .ok_or("embed launch without inputs")?;
        let bytes = src.bytes(ids_ref).map_err(|err| {
            format!(
                "token ids of {} are not on the tape ({err}); record with --capture full",
                e.phase
            )
        })?;
        let ids = bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u32)
            .collect();
        out.push((e.phase, ids, l.begin.params.pos as usize));
    }
    Ok(out)
}

/// Recomputes the run in f64 up to the last phase of `targets` and returns their outputs.
pub fn f64_outputs(
    model: &Model,
    tape: &TapeReader,
    src: &Source,
    targets: &[Key],
) -> Result<BTreeMap<Key, Vec<Tensor>>, String> {
    let opts: serde_json::Value =
        serde_json::from_str(&tape.header().options_json).unwrap_or_default();
    let mut policy: RoutePolicy = opts
        .get("policy")
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .unwrap_or_else(|| RoutePolicy::new(Precision::F64));
    policy.precision = Precision::F64;
    let last = targets
        .iter()
        .map(|k| k.0)
        .max()
        .ok_or("nothing to compute")?;
    let got: Captured = Rc::new(RefCell::new(BTreeMap::new()));
    let mut launcher = Launcher::new(Arc::new(CpuBackend::new(0)), policy);
    launcher.observe(Box::new(Capture {
        want: targets.iter().copied().collect(),
        got: got.clone(),
    }));
    let mut engine = Engine::new(model, launcher);
    for (phase, ids, pos) in phases(tape, src)? {
        if phase > last {
            break;
        }
        engine
            .forward(phase, &ids, pos)
            .map_err(|e| e.to_string())?;
    }
    drop(engine);
    Ok(Rc::try_unwrap(got)
        .map(|c| c.into_inner())
        .unwrap_or_default())
}
