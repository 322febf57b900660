//! Who wrote which KV-cache row: for a row that an attention launch reads and that differs from what
//! `kv_write` wrote at that position, `greta verify` names the `kv_write` (phase, position, launch) whose
//! data the row holds instead — a stale row, an off-by-one position, another layer's cache.

use crate::launch::Phase;
use std::collections::HashMap;

/// One write of one row.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Write {
    phase: Phase,
    pos: usize,
    seq: u64,
}

/// Rows written per (layer, 0 = k | 1 = v): by position (latest) and by content (blake3 of the row).
#[derive(Default, Debug)]
pub struct Writers {
    at: HashMap<(u32, usize, usize), Write>,
    by_content: HashMap<[u8; 32], Vec<(u32, usize, Write)>>,
}

impl Writers {
    /// Notes that launch `seq` (a kv_write of `phase`) wrote `row` at position `pos`.
    pub fn wrote(
        &mut self,
        layer: u32,
        which: usize,
        pos: usize,
        row: &[u8],
        phase: Phase,
        seq: u64,
    ) {
        let w = Write { phase, pos, seq };
        self.at.insert((layer, which, pos), w);
        self.by_content
            .entry(*blake3::hash(row).as_bytes())
            .or_default()
            .push((layer, which, w));
    }

    /// The write that should be at `pos`, in words.
    pub fn wrote_at(&self, layer: u32, which: usize, pos: usize) -> String {
        match self.at.get(&(layer, which, pos)) {
            Some(w) => format!("{} position {}, launch {}", w.phase, w.pos, w.seq),
            None => "no write recorded".into(),
        }
    }

    /// When `row` is exactly what some kv_write wrote elsewhere, says which (the latest such write,
    /// preferring the same layer and cache); empty otherwise.
    pub fn holder(&self, layer: u32, which: usize, row: &[u8]) -> String {
        let Some(ws) = self.by_content.get(blake3::hash(row).as_bytes()) else {
            return "; it holds no row any kv_write wrote".into();
        };
        let best = ws
            .iter()
            .rev()
            .find(|(l, c, _)| (*l, *c) == (layer, which))
            .or(ws.last());
        match best {
            Some((l, c, w)) => format!(
                "; it holds the row kv_write of {} position {} wrote (launch {}{})",
                w.phase,
                w.pos,
                w.seq,
                if (*l, *c) == (layer, which) {
                    String::new()
                } else {
                    format!(", layer {l} {}_cache", if *c == 0 { "k" } else { "v" })
                }
            ),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_writer_of_a_displaced_row() {
        let mut w = Writers::default();
        w.wrote(0, 0, 0, &[1, 2], Phase::Prefill, 7);
        w.wrote(0, 0, 1, &[3, 4], Phase::Prefill, 7);
        w.wrote(0, 0, 2, &[5, 6], Phase::Decode(0), 40);
        assert_eq!(w.wrote_at(0, 0, 2), "decode0 position 2, launch 40");
        assert_eq!(
            w.holder(0, 0, &[3, 4]),
            "; it holds the row kv_write of prefill position 1 wrote (launch 7)"
        );
        assert!(w.holder(0, 0, &[9, 9]).contains("no row"));
        assert!(w.holder(1, 1, &[5, 6]).contains("layer 0 k_cache"));
    }
}
