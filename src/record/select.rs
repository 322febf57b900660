//! Which launches get their tensor bytes stored (`--phases`, `--layers`, `--stages`). Hashes of every
//! output are always recorded; selection only limits payloads.

use crate::launch::{LaunchInfo, Phase, Stage};

/// A launch selector; an empty list selects everything on that axis.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    /// Phases to keep.
    pub phases: Vec<Phase>,
    /// Layers to keep (global stages are kept when `stages` selects them or when no stage filter is set).
    pub layers: Vec<u32>,
    /// Stages to keep.
    pub stages: Vec<Stage>,
}

impl Selector {
    /// True when the launch is selected.
    pub fn matches(&self, info: &LaunchInfo) -> bool {
        (self.phases.is_empty() || self.phases.contains(&info.phase))
            && (self.layers.is_empty() || info.layer.is_some_and(|l| self.layers.contains(&l)))
            && (self.stages.is_empty() || self.stages.contains(&info.stage))
    }

    /// A readable description for the tape header.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.phases.is_empty() {
            parts.push(format!(
                "phases={}",
                self.phases
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        if !self.layers.is_empty() {
            parts.push(format!(
                "layers={}",
                self.layers
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        if !self.stages.is_empty() {
            parts.push(format!(
                "stages={}",
                self.stages
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        parts.join(" ")
    }
}
