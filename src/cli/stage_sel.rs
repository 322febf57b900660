//! `--stage NAME` on ls and replay: one of greta's stages, or the free-form stage name another engine
//! gave its launches on this tape (open capture), which greta stores as `Stage::Other` plus the name.

use crate::launch::Stage;
use crate::tape::{IndexEntry, TapeReader};

/// What `--stage` selects.
pub enum StageSel {
    /// A greta stage.
    Greta(Stage),
    /// Another engine's stage name.
    Foreign(String),
}

fn foreign_name_is(t: &TapeReader, e: &IndexEntry, name: &str) -> bool {
    e.stage == Stage::Other && t.launch(e.seq).is_ok_and(|l| l.begin.stage_name() == name)
}

/// Parses `--stage`; a name that is not greta's must be a foreign stage on this tape, else greta's
/// "unknown stage" error (with the valid names) stands.
pub fn parse(t: &TapeReader, v: &Option<String>) -> anyhow::Result<Option<StageSel>> {
    let Some(name) = v else { return Ok(None) };
    match name.parse::<Stage>() {
        Ok(s) => Ok(Some(StageSel::Greta(s))),
        Err(e) => {
            let found = t
                .entries()
                .filter_map(Result::ok)
                .any(|x| foreign_name_is(t, &x, name));
            if found {
                Ok(Some(StageSel::Foreign(name.clone())))
            } else {
                Err(anyhow::Error::msg(e))
            }
        }
    }
}

impl StageSel {
    /// Whether the launch of entry `e` is selected.
    pub fn matches(&self, t: &TapeReader, e: &IndexEntry) -> bool {
        match self {
            StageSel::Greta(s) => e.stage == *s,
            StageSel::Foreign(n) => foreign_name_is(t, e, n),
        }
    }
}
