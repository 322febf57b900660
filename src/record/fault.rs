//! Fault injection: perturb one element of one launch's output by a number of ULPs, so users (and greta's
//! own tests) can check that diff and replay find exactly that launch and element. The hook runs after the
//! kernel and before the recorder sees the outputs, so the perturbed value is what is recorded and what
//! flows downstream — as a real kernel bug would.

use crate::launch::{LaunchInfo, Phase, Stage, Tensor};

/// Where and how much to perturb.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// Phase of the launch.
    pub phase: Phase,
    /// Layer (None for global stages).
    pub layer: Option<u32>,
    /// Stage.
    pub stage: Stage,
    /// Flat element index in output 0.
    pub index: usize,
    /// ULPs to add (negative subtracts).
    pub ulps: i64,
}

impl std::str::FromStr for Fault {
    type Err = String;
    /// Parses `phase=P,layer=L,stage=S,index=I,ulps=U` (layer may be omitted for global stages).
    fn from_str(s: &str) -> Result<Fault, String> {
        let (mut phase, mut layer, mut stage, mut index, mut ulps) = (None, None, None, None, None);
        for kv in s.split(',') {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("bad fault field `{kv}`: expected key=value"))?;
            match k.trim() {
                "phase" => phase = Some(v.parse::<Phase>()?),
                "layer" => layer = Some(v.parse::<u32>().map_err(|e| format!("layer `{v}`: {e}"))?),
                "stage" => stage = Some(v.parse::<Stage>()?),
                "index" => {
                    index = Some(
                        v.parse::<usize>()
                            .map_err(|e| format!("index `{v}`: {e}"))?,
                    )
                }
                "ulps" => ulps = Some(v.parse::<i64>().map_err(|e| format!("ulps `{v}`: {e}"))?),
                other => {
                    return Err(format!(
                        "unknown fault field `{other}`: expected phase, layer, stage, index, ulps"
                    ));
                }
            }
        }
        let need = |what: &str| {
            format!("--inject-fault needs {what}= (phase=P,layer=L,stage=S,index=I,ulps=U)")
        };
        Ok(Fault {
            phase: phase.ok_or_else(|| need("phase"))?,
            layer,
            stage: stage.ok_or_else(|| need("stage"))?,
            index: index.unwrap_or(0),
            ulps: ulps.ok_or_else(|| need("ulps"))?,
        })
    }
}

/// Adds `ulps` units in the last place to `v` (stepping through the float's bit pattern).
pub fn nudge_f32(v: f32, ulps: i64) -> f32 {
    let b = v.to_bits() as i32;
    // Map sign-magnitude to a monotonic integer line, step, map back.
    let m = if b < 0 { i32::MIN - b } else { b };
    let m = (m as i64 + ulps).clamp(i32::MIN as i64 + 1, i32::MAX as i64) as i32;
    f32::from_bits((if m < 0 { i32::MIN - m } else { m }) as u32)
}

/// f64 version of [`nudge_f32`].
pub fn nudge_f64(v: f64, ulps: i64) -> f64 {
    let b = v.to_bits() as i64;
    let m = if b < 0 { i64::MIN - b } else { b };
    let m = m.saturating_add(ulps).max(i64::MIN + 1);
    f64::from_bits((if m < 0 { i64::MIN - m } else { m }) as u64)
}

impl Fault {
    /// True when this fault targets the launch.
    pub fn hits(&self, info: &LaunchInfo) -> bool {
        info.phase == self.phase && info.stage == self.stage && info.layer == self.layer
    }

    /// The launcher hook applying this fault. Device outputs are perturbed by the GPU backend's own
    /// hook support; on host tensors the element is replaced in a copy.
    pub fn hook(self) -> crate::launch::OutputHook {
        Box::new(move |info: &LaunchInfo, outs: &mut Vec<Tensor>| {
            if !self.hits(info) || outs.is_empty() {
                return;
            }
            let t = &outs[0];
            let nt = if let Some(v) = t.as_f32() {
                let mut v = v.to_vec();
                if let Some(e) = v.get_mut(self.index) {
                    *e = nudge_f32(*e, self.ulps);
                }
                Tensor::f32(t.shape.clone(), v)
            } else if let Some(v) = t.as_f64() {
                let mut v = v.to_vec();
                if let Some(e) = v.get_mut(self.index) {
                    *e = nudge_f64(*e, self.ulps);
                }
                Tensor::f64(t.shape.clone(), v)
            } else if let Ok(bytes) = t.to_host_bytes() {
                // Device f32: perturb on the host copy.
                let mut v: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                if let Some(e) = v.get_mut(self.index) {
                    *e = nudge_f32(*e, self.ulps);
                }
                Tensor::f32(t.shape.clone(), v)
            } else {
                return;
            };
            outs[0] = nt;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nudges_by_ulps() {
        assert_eq!(nudge_f32(1.0, 1), f32::from_bits(1.0f32.to_bits() + 1));
        assert_eq!(nudge_f32(-1.0, 1), f32::from_bits((-1.0f32).to_bits() - 1));
        assert_eq!(nudge_f32(0.0, 1), f32::from_bits(1));
        assert_eq!(nudge_f32(0.0, -1), -f32::from_bits(1));
        assert_eq!(nudge_f64(2.0, -3), f64::from_bits(2.0f64.to_bits() - 3));
        let f: Fault = "phase=decode0,layer=3,stage=pv,index=5,ulps=4"
            .parse()
            .unwrap();
        assert_eq!(
            f,
            Fault {
                phase: Phase::Decode(0),
                layer: Some(3),
                stage: Stage::Pv,
                index: 5,
                ulps: 4
            }
        );
        assert!(
            "phase=prefill"
                .parse::<Fault>()
                .unwrap_err()
                .contains("stage")
        );
    }
}
