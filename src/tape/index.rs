//! The index: fixed-size, sorted entries searchable in place, so opening a tape and finding one launch or
//! one chunk costs O(log n) entry reads whatever the tape's size (nothing is decoded or hashed up front).
//!
//! The index frame's payload is stored uncompressed (codec 0) and laid out as:
//!
//! - a 128-byte index header: magic `GTINDEX1`, launch count, chunk count, record count, fingerprint
//!   (last chain hash), unique tensor bytes, byte offsets (within the payload) of the two tables, their
//!   entry sizes, reserved bytes, and a checksum (first 8 bytes of blake3 of bytes 0..120);
//! - the launch table: one 64-byte entry per launch, sorted by seq (strictly increasing);
//! - the chunk table: one 48-byte entry per unique chunk, sorted by hash: hash, frame offset, checksum.
//!
//! Every entry ends with its own 8-byte checksum, verified each time the entry is read: a flipped byte
//! in the index is reported where it is, with no need to hash the whole index on open (the frame's
//! payload hash still covers it all, for `verify`). Stage, variant and precision are stored as stable
//! one-byte codes (the tables below: append only; changing a code changes the format).

use super::frame::{check8, u32_at, u64_at};
use super::record::Hash;
use crate::launch::{Phase, Precision, Route, Stage, Variant};

/// Index header size.
pub const INDEX_HEADER_LEN: usize = 128;
/// Launch entry size.
pub const LAUNCH_ENTRY_LEN: usize = 64;
/// Chunk entry size.
pub const CHUNK_ENTRY_LEN: usize = 48;
const INDEX_MAGIC: [u8; 8] = *b"GTINDEX1";
const NO_LAYER: u32 = u32::MAX;

/// Where a record lies: the records frame that holds it and its byte offset in that frame's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordLoc {
    /// Byte offset of the records frame in the file.
    pub frame: u64,
    /// Byte offset of the record's length prefix in the frame's uncompressed payload.
    pub pos: u32,
}

/// One launch as the index knows it (no record decoded).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IndexEntry {
    /// Launch number.
    pub seq: u64,
    /// Phase.
    pub phase: Phase,
    /// Layer, None for global stages.
    pub layer: Option<u32>,
    /// Stage.
    pub stage: Stage,
    /// Route.
    pub route: Route,
    /// Whether the launch's end record is on the tape (false: the kernel never returned).
    pub has_end: bool,
    /// Its begin record.
    pub begin: RecordLoc,
    /// Its end record.
    pub end: Option<RecordLoc>,
}

impl IndexEntry {
    /// The entry of a launch whose begin record is at `begin` and whose end is not written yet.
    pub fn begun(b: &crate::tape::LaunchBegin, begin: RecordLoc) -> IndexEntry {
        IndexEntry {
            seq: b.seq,
            phase: b.phase,
            layer: b.layer,
            stage: b.stage,
            route: b.route,
            has_end: false,
            begin,
            end: None,
        }
    }
}

fn stage_code(s: Stage) -> u8 {
    // Stable codes: never renumber, only append.
    match s {
        Stage::Embed => 0,
        Stage::AttnNorm => 1,
        Stage::QProj => 2,
        Stage::KProj => 3,
        Stage::VProj => 4,
        Stage::QkvProj => 5,
        Stage::RopeQ => 6,
        Stage::RopeK => 7,
        Stage::KvWrite => 8,
        Stage::Qk => 9,
        Stage::Softmax => 10,
        Stage::Pv => 11,
        Stage::Attn => 12,
        Stage::OProj => 13,
        Stage::AttnResidual => 14,
        Stage::FfnNorm => 15,
        Stage::Gate => 16,
        Stage::Up => 17,
        Stage::Swiglu => 18,
        Stage::Down => 19,
        Stage::FfnResidual => 20,
        Stage::FinalNorm => 21,
        Stage::LmHead => 22,
        Stage::Argmax => 23,
        // Format 5 (issue 29).
        Stage::EmbedScale => 24,
        Stage::QBias => 25,
        Stage::KBias => 26,
        Stage::VBias => 27,
        Stage::QNorm => 28,
        Stage::KNorm => 29,
        Stage::AttnPostNorm => 30,
        Stage::FfnPostNorm => 31,
        Stage::Geglu => 32,
        // A foreign engine's stage greta does not know (format version 2).
        Stage::Other => 255,
    }
}

fn variant_code(v: Variant) -> u8 {
    match v {
        Variant::Gemv => 0,
        Variant::GemmTiled => 1,
        Variant::GemmInvariant => 2,
        Variant::Manual => 3,
        Variant::Fused => 4,
        Variant::Direct => 5,
        Variant::GemvQ8 => 6,
        Variant::GemmMma => 7,
        // A foreign engine's own kernel (format version 2).
        Variant::Engine => 255,
    }
}

fn precision_code(p: Precision) -> u8 {
    match p {
        Precision::F64 => 0,
        Precision::F32 => 1,
        Precision::F16 => 2,
    }
}

fn stage_of(c: u8) -> Option<Stage> {
    Stage::ALL
        .iter()
        .copied()
        .chain([Stage::Other])
        .find(|&s| stage_code(s) == c)
}

fn variant_of(c: u8) -> Option<Variant> {
    Variant::ALL
        .iter()
        .copied()
        .chain([Variant::Engine])
        .find(|&v| variant_code(v) == c)
}

fn precision_of(c: u8) -> Option<Precision> {
    Precision::ALL
        .iter()
        .copied()
        .find(|&p| precision_code(p) == c)
}

impl IndexEntry {
    /// The 64 entry bytes.
    pub fn encode(&self) -> [u8; LAUNCH_ENTRY_LEN] {
        let mut b = [0u8; LAUNCH_ENTRY_LEN];
        b[0..8].copy_from_slice(&self.seq.to_le_bytes());
        let (pk, step) = match self.phase {
            Phase::Prefill => (0u8, 0u32),
            Phase::Decode(k) => (1, k),
        };
        b[8] = pk;
        b[9] = stage_code(self.stage);
        b[10] = variant_code(self.route.variant);
        b[11] = precision_code(self.route.precision);
        b[12..16].copy_from_slice(&step.to_le_bytes());
        b[16..20].copy_from_slice(&self.layer.unwrap_or(NO_LAYER).to_le_bytes());
        b[20] = self.has_end as u8;
        b[24..32].copy_from_slice(&self.begin.frame.to_le_bytes());
        b[32..36].copy_from_slice(&self.begin.pos.to_le_bytes());
        let end = self.end.unwrap_or(RecordLoc { frame: 0, pos: 0 });
        b[36..40].copy_from_slice(&end.pos.to_le_bytes());
        b[40..48].copy_from_slice(&end.frame.to_le_bytes());
        let c = check8(&b[..56]);
        b[56..64].copy_from_slice(&c);
        b
    }

    /// Parses and checks an entry.
    pub fn parse(b: &[u8]) -> Result<IndexEntry, String> {
        if b.len() < LAUNCH_ENTRY_LEN || b[56..64] != check8(&b[..56]) {
            return Err("launch entry checksum mismatch".into());
        }
        let phase = match b[8] {
            0 => Phase::Prefill,
            1 => Phase::Decode(u32_at(b, 12)),
            k => return Err(format!("unknown phase kind {k}")),
        };
        let stage = stage_of(b[9]).ok_or_else(|| format!("unknown stage code {}", b[9]))?;
        let variant = variant_of(b[10]).ok_or_else(|| format!("unknown variant code {}", b[10]))?;
        let precision =
            precision_of(b[11]).ok_or_else(|| format!("unknown precision code {}", b[11]))?;
        let layer = match u32_at(b, 16) {
            NO_LAYER => None,
            l => Some(l),
        };
        let has_end = b[20] != 0;
        Ok(IndexEntry {
            seq: u64_at(b, 0),
            phase,
            layer,
            stage,
            route: Route::new(variant, precision),
            has_end,
            begin: RecordLoc {
                frame: u64_at(b, 24),
                pos: u32_at(b, 32),
            },
            end: has_end.then(|| RecordLoc {
                frame: u64_at(b, 40),
                pos: u32_at(b, 36),
            }),
        })
    }
}

/// Totals kept in the index header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IndexTotals {
    /// Records on the tape.
    pub records: u64,
    /// Last chain hash.
    pub fingerprint: Hash,
    /// Unique tensor bytes before compression.
    pub raw_bytes: u64,
}

/// Builds an index payload. Sorts both tables.
pub(crate) fn encode_index(
    launches: &mut [IndexEntry],
    chunks: &mut [(Hash, u64)],
    totals: &IndexTotals,
) -> Vec<u8> {
    launches.sort_by_key(|e| e.seq);
    chunks.sort_unstable_by_key(|a| a.0);
    let lt = INDEX_HEADER_LEN;
    let ct = lt + launches.len() * LAUNCH_ENTRY_LEN;
    let mut out = Vec::with_capacity(ct + chunks.len() * CHUNK_ENTRY_LEN);
    let mut h = [0u8; INDEX_HEADER_LEN];
    h[0..8].copy_from_slice(&INDEX_MAGIC);
    h[8..16].copy_from_slice(&(launches.len() as u64).to_le_bytes());
    h[16..24].copy_from_slice(&(chunks.len() as u64).to_le_bytes());
    h[24..32].copy_from_slice(&totals.records.to_le_bytes());
    h[32..64].copy_from_slice(&totals.fingerprint);
    h[64..72].copy_from_slice(&totals.raw_bytes.to_le_bytes());
    h[72..80].copy_from_slice(&(lt as u64).to_le_bytes());
    h[80..88].copy_from_slice(&(ct as u64).to_le_bytes());
    h[88..92].copy_from_slice(&(LAUNCH_ENTRY_LEN as u32).to_le_bytes());
    h[92..96].copy_from_slice(&(CHUNK_ENTRY_LEN as u32).to_le_bytes());
    let c = check8(&h[..120]);
    h[120..128].copy_from_slice(&c);
    out.extend_from_slice(&h);
    for e in launches.iter() {
        out.extend_from_slice(&e.encode());
    }
    for (hash, off) in chunks.iter() {
        let mut b = [0u8; CHUNK_ENTRY_LEN];
        b[..32].copy_from_slice(hash);
        b[32..40].copy_from_slice(&off.to_le_bytes());
        let c = check8(&b[..40]);
        b[40..48].copy_from_slice(&c);
        out.extend_from_slice(&b);
    }
    out
}

/// An index payload viewed in place: where its tables are. `base` is the payload's byte offset in the
/// file (for error offsets).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IndexLayout {
    pub base: u64,
    pub launches: usize,
    pub chunks: usize,
    pub launches_at: usize,
    pub chunks_at: usize,
    pub totals: IndexTotals,
}

/// A problem in the index: byte offset in the file and what.
pub(crate) type IndexFault = (u64, String);

impl IndexLayout {
    /// Parses the index header of `payload` and checks the tables fit.
    pub fn parse(payload: &[u8], base: u64) -> Result<IndexLayout, IndexFault> {
        let h = payload
            .get(..INDEX_HEADER_LEN)
            .ok_or((base, "index header cut short".to_string()))?;
        if h[0..8] != INDEX_MAGIC {
            return Err((base, "no index magic `GTINDEX1`".into()));
        }
        if h[120..128] != check8(&h[..120]) {
            return Err((base, "index header checksum mismatch".into()));
        }
        if u32_at(h, 88) as usize != LAUNCH_ENTRY_LEN || u32_at(h, 92) as usize != CHUNK_ENTRY_LEN {
            return Err((base, "unexpected index entry sizes".into()));
        }
        let launches = u64_at(h, 8);
        let chunks = u64_at(h, 16);
        let launches_at = u64_at(h, 72);
        let chunks_at = u64_at(h, 80);
        let len = payload.len() as u128;
        let fits = (launches_at as u128) + (launches as u128) * LAUNCH_ENTRY_LEN as u128 <= len
            && (chunks_at as u128) + (chunks as u128) * CHUNK_ENTRY_LEN as u128 <= len
            && launches_at as usize >= INDEX_HEADER_LEN;
        if !fits {
            return Err((base, "index tables do not fit in the index frame".into()));
        }
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(&h[32..64]);
        Ok(IndexLayout {
            base,
            launches: launches as usize,
            chunks: chunks as usize,
            launches_at: launches_at as usize,
            chunks_at: chunks_at as usize,
            totals: IndexTotals {
                records: u64_at(h, 24),
                fingerprint,
                raw_bytes: u64_at(h, 64),
            },
        })
    }

    /// The i-th launch entry.
    pub fn launch(&self, payload: &[u8], i: usize) -> Result<IndexEntry, IndexFault> {
        let at = self.launches_at + i * LAUNCH_ENTRY_LEN;
        IndexEntry::parse(&payload[at..at + LAUNCH_ENTRY_LEN])
            .map_err(|w| (self.base + at as u64, w))
    }

    /// The launch entry for `seq`, by binary search.
    pub fn find_launch(&self, payload: &[u8], seq: u64) -> Result<Option<IndexEntry>, IndexFault> {
        let (mut lo, mut hi) = (0usize, self.launches);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.launch(payload, mid)?;
            match e.seq.cmp(&seq) {
                std::cmp::Ordering::Equal => return Ok(Some(e)),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(None)
    }

    /// The i-th chunk entry: (hash, frame offset).
    pub fn chunk(&self, payload: &[u8], i: usize) -> Result<(Hash, u64), IndexFault> {
        let at = self.chunks_at + i * CHUNK_ENTRY_LEN;
        let b = &payload[at..at + CHUNK_ENTRY_LEN];
        if b[40..48] != check8(&b[..40]) {
            return Err((
                self.base + at as u64,
                "chunk entry checksum mismatch".into(),
            ));
        }
        let mut h = [0u8; 32];
        h.copy_from_slice(&b[..32]);
        Ok((h, u64_at(b, 32)))
    }

    /// The frame offset of chunk `hash`, by binary search.
    pub fn find_chunk(&self, payload: &[u8], hash: &Hash) -> Result<Option<u64>, IndexFault> {
        let (mut lo, mut hi) = (0usize, self.chunks);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (h, off) = self.chunk(payload, mid)?;
            match h.cmp(hash) {
                std::cmp::Ordering::Equal => return Ok(Some(off)),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(seq: u64) -> IndexEntry {
        IndexEntry {
            seq,
            phase: if seq % 2 == 0 {
                Phase::Prefill
            } else {
                Phase::Decode(seq as u32)
            },
            layer: if seq % 3 == 0 {
                None
            } else {
                Some(seq as u32 % 7)
            },
            stage: Stage::ALL[seq as usize % Stage::ALL.len()],
            route: Route::new(
                Variant::ALL[seq as usize % Variant::ALL.len()],
                Precision::F16,
            ),
            has_end: seq % 5 != 0,
            begin: RecordLoc {
                frame: seq * 100,
                pos: seq as u32,
            },
            end: (seq % 5 != 0).then(|| RecordLoc {
                frame: seq * 100 + 50,
                pos: 3,
            }),
        }
    }

    #[test]
    fn codes_are_unique() {
        let mut seen: Vec<u8> = Stage::ALL.iter().map(|&s| stage_code(s)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), Stage::ALL.len());
        for &s in Stage::ALL {
            assert_eq!(stage_of(stage_code(s)), Some(s));
        }
        for &v in Variant::ALL {
            assert_eq!(variant_of(variant_code(v)), Some(v));
        }
    }

    #[test]
    fn sizes_are_guarded() {
        assert_eq!(entry(1).encode().len(), 64);
        assert_eq!(LAUNCH_ENTRY_LEN, 64);
        assert_eq!(CHUNK_ENTRY_LEN, 48);
        assert_eq!(INDEX_HEADER_LEN, 128);
    }

    proptest! {
        #[test]
        fn index_finds_everything(seqs in proptest::collection::btree_set(0u64..10_000, 0..200),
                                  hashes in proptest::collection::btree_set(any::<[u8; 32]>(), 0..200),
                                  probe in 0u64..10_000) {
            let mut l: Vec<IndexEntry> = seqs.iter().rev().map(|&s| entry(s)).collect();
            let mut c: Vec<(Hash, u64)> = hashes.iter().enumerate().map(|(i, h)| (*h, i as u64)).collect();
            let p = encode_index(&mut l, &mut c, &IndexTotals::default());
            let lay = IndexLayout::parse(&p, 0).unwrap();
            for &s in &seqs {
                prop_assert_eq!(lay.find_launch(&p, s).unwrap(), Some(entry(s)));
            }
            prop_assert_eq!(lay.find_launch(&p, probe).unwrap().is_some(), seqs.contains(&probe));
            for (h, off) in &c {
                prop_assert_eq!(lay.find_chunk(&p, h).unwrap(), Some(*off));
            }
            prop_assert_eq!(lay.find_chunk(&p, &[0xAB; 32]).unwrap().is_some(), hashes.contains(&[0xAB; 32]));
        }
    }
}
