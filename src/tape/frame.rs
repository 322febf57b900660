//! Frames: the unit the tape is written and checked in.
//!
//! A frame is a fixed 64-byte header followed by its payload (see docs/TAPE.md for the table):
//!
//! | bytes  | field                                                                     |
//! |--------|---------------------------------------------------------------------------|
//! | 0..4   | magic `GTFR`                                                              |
//! | 4      | kind: 1 header, 2 chunk, 3 records, 4 index                               |
//! | 5      | codec: 0 stored (raw), 1 zstd                                             |
//! | 6      | shuffle: 0 none, else the element size whose byte planes were transposed  |
//! |        | (then compressed one plane per zstd frame, see `encode.rs`)               |
//! | 7      | reserved, 0                                                               |
//! | 8..16  | stored (compressed) payload length, u64 LE                                |
//! | 16..24 | uncompressed payload length, u64 LE                                       |
//! | 24..56 | blake3 of the uncompressed, unshuffled payload                            |
//! | 56..60 | CRC-32 (IEEE) of the stored payload bytes, u32 LE                         |
//! | 60..64 | CRC-32 (IEEE) of header bytes 0..60, u32 LE                               |
//!
//! Why: the lengths let a reader skip a frame without decompressing it; the header CRC catches a
//! damaged length before it sends the reader astray; the payload blake3 guarantees the bytes handed out
//! are the bytes written (for a chunk frame it *is* the chunk's address, so a chunk is hashed once). The
//! CRC of the stored bytes is there because some bits of a zstd stream do not change what it decodes
//! to (window size, flags, unused bits): without it a flipped byte there would go unnoticed. CRC-32
//! detects every burst of up to 32 bits, so every single flipped byte is caught, at ~10 GB/s.

use super::chunk;
use super::error::TapeError;
use super::record::Hash;
use std::path::Path;

/// Size of a frame header in bytes. Changing it changes the format (bump the version).
pub const FRAME_HEADER_LEN: usize = 64;

/// Frame magic.
pub(crate) const FRAME_MAGIC: [u8; 4] = *b"GTFR";

/// The largest uncompressed payload a reader accepts in any frame (a named cap; the per-kind caps of
/// [`FrameKind::max_raw`] are tighter).
pub const MAX_FRAME_RAW: u64 = 2 << 30;

/// The most a header frame may decode to (a run's header is a few KiB; the prompt and the config JSON
/// dominate).
pub const MAX_HEADER_RAW: u64 = 16 << 20;

/// The most a chunk frame may decode to: the writer's largest chunk (`writer::MAX_CHUNK`).
pub const MAX_CHUNK_RAW: u64 = 16 << 20;

/// The most a records frame may decode to: the writer's largest frame target (`MAX_FRAME_TARGET`) plus
/// one record of at most `record::MAX_RECORD_BYTES` and its 4-byte length (a record is appended before
/// the frame is cut).
pub const MAX_RECORDS_RAW: u64 =
    MAX_FRAME_TARGET as u64 + super::record::MAX_RECORD_BYTES as u64 + 4;

/// The largest records-frame target a writer accepts.
pub const MAX_FRAME_TARGET: usize = 64 << 20;

/// The largest expansion a zstd stream can achieve: a block decodes to at most 128 KiB
/// (`ZSTD_BLOCKSIZE_MAX`) and costs at least 4 bytes (3-byte block header + 1 RLE byte), so no valid
/// stream decodes to more than 32768 × its length. A frame whose uncompressed length claims more is a
/// lie, refused before anything is allocated for it (issue 14: a 2^31 claim cost 2.1 GB before).
pub const MAX_ZSTD_RATIO: u64 = 32768;

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// The [`super::TapeHeader`], bincode.
    Header = 1,
    /// One chunk of tensor bytes.
    Chunk = 2,
    /// A batch of chained records: repeated `[u32 LE length][bincode Chained<Record>]`.
    Records = 3,
    /// The index (stored uncompressed so it can be searched in place).
    Index = 4,
}

impl FrameKind {
    fn from_u8(b: u8) -> Option<FrameKind> {
        Some(match b {
            1 => FrameKind::Header,
            2 => FrameKind::Chunk,
            3 => FrameKind::Records,
            4 => FrameKind::Index,
            _ => return None,
        })
    }

    /// The largest uncompressed payload a frame of this kind may claim. The index frame is stored
    /// uncompressed, so its length is bounded by the file itself.
    pub fn max_raw(self) -> u64 {
        match self {
            FrameKind::Header => MAX_HEADER_RAW,
            FrameKind::Chunk => MAX_CHUNK_RAW,
            FrameKind::Records => MAX_RECORDS_RAW,
            FrameKind::Index => MAX_FRAME_RAW,
        }
    }

    /// Name in errors and reports.
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Header => "header frame",
            FrameKind::Chunk => "chunk frame",
            FrameKind::Records => "records frame",
            FrameKind::Index => "index frame",
        }
    }
}

/// How a payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// As is (incompressible chunks, the index).
    Stored = 0,
    /// zstd.
    Zstd = 1,
}

/// A parsed, checksum-verified frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the frame holds.
    pub kind: FrameKind,
    /// How the payload is stored.
    pub codec: Codec,
    /// Element size of the byte shuffle, 0 (or 1) for none.
    pub shuffle: u8,
    /// Stored payload length.
    pub stored_len: u64,
    /// Uncompressed payload length.
    pub raw_len: u64,
    /// blake3 of the uncompressed, unshuffled payload.
    pub hash: Hash,
    /// CRC-32 of the stored payload bytes.
    pub stored_crc: u32,
}

pub(crate) fn check8(bytes: &[u8]) -> [u8; 8] {
    let h = blake3::hash(bytes);
    let mut c = [0u8; 8];
    c.copy_from_slice(&h.as_bytes()[..8]);
    c
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

impl FrameHeader {
    /// The 64 header bytes.
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut b = [0u8; FRAME_HEADER_LEN];
        b[0..4].copy_from_slice(&FRAME_MAGIC);
        b[4] = self.kind as u8;
        b[5] = self.codec as u8;
        b[6] = self.shuffle;
        b[8..16].copy_from_slice(&self.stored_len.to_le_bytes());
        b[16..24].copy_from_slice(&self.raw_len.to_le_bytes());
        b[24..56].copy_from_slice(&self.hash);
        b[56..60].copy_from_slice(&self.stored_crc.to_le_bytes());
        let c = crc32fast::hash(&b[..60]);
        b[60..64].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// Parses and checks a header; `Err(what)` says what is wrong.
    pub fn parse(b: &[u8]) -> Result<FrameHeader, String> {
        if b.len() < FRAME_HEADER_LEN {
            return Err(format!(
                "frame header cut short ({} of {FRAME_HEADER_LEN} bytes)",
                b.len()
            ));
        }
        if b[0..4] != FRAME_MAGIC {
            return Err("no frame magic `GTFR`".into());
        }
        if u32_at(b, 60) != crc32fast::hash(&b[..60]) {
            return Err("frame header checksum mismatch".into());
        }
        let kind =
            FrameKind::from_u8(b[4]).ok_or_else(|| format!("unknown frame kind {}", b[4]))?;
        let codec = match b[5] {
            0 => Codec::Stored,
            1 => Codec::Zstd,
            c => return Err(format!("unknown codec {c}")),
        };
        let stored_len = u64_at(b, 8);
        let raw_len = u64_at(b, 16);
        if raw_len > kind.max_raw() {
            return Err(format!(
                "uncompressed length field (header bytes 16..24) says {raw_len} bytes, over the {} cap of {}",
                kind.name(),
                kind.max_raw()
            ));
        }
        if codec == Codec::Zstd && raw_len > stored_len.saturating_mul(MAX_ZSTD_RATIO) {
            return Err(format!(
                "uncompressed length field (header bytes 16..24) says {raw_len} bytes from {stored_len} \
                 compressed: more than zstd's maximum ratio of {MAX_ZSTD_RATIO}"
            ));
        }
        if codec == Codec::Stored && stored_len != raw_len {
            return Err(format!(
                "stored frame with stored length {stored_len} != raw length {raw_len}"
            ));
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[24..56]);
        if b[7] != 0 {
            return Err(format!("reserved byte is {} (a newer writer?)", b[7]));
        }
        Ok(FrameHeader {
            kind,
            codec,
            shuffle: b[6],
            stored_len,
            raw_len,
            hash,
            stored_crc: u32_at(b, 56),
        })
    }

    /// Total bytes of the frame on disk.
    pub fn total_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + self.stored_len
    }
}

/// A frame located in a mapped file: its header and where its stored payload lies.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameAt {
    pub offset: u64,
    pub header: FrameHeader,
}

impl FrameAt {
    pub fn payload_range(&self) -> std::ops::Range<usize> {
        let start = self.offset as usize + FRAME_HEADER_LEN;
        start..start + self.header.stored_len as usize
    }
}

/// Reads (and checks) the frame header at `offset` of `data`. `Ok(Err(what))` is a bad frame; the outer
/// error is only for the end of data.
pub(crate) fn frame_at(data: &[u8], offset: u64) -> Result<FrameAt, (bool, String)> {
    let off =
        usize::try_from(offset).map_err(|_| (false, "offset beyond address space".to_string()))?;
    let rest = data
        .get(off..)
        .ok_or((true, "offset beyond end of file".to_string()))?;
    if rest.len() < FRAME_HEADER_LEN {
        return Err((
            true,
            format!(
                "frame header cut short ({} of {FRAME_HEADER_LEN} bytes)",
                rest.len()
            ),
        ));
    }
    let header = FrameHeader::parse(rest).map_err(|w| (false, w))?;
    if header.stored_len > (rest.len() - FRAME_HEADER_LEN) as u64 {
        return Err((
            true,
            format!(
                "payload of {} bytes runs past the end of the file ({} bytes left)",
                header.stored_len,
                rest.len() - FRAME_HEADER_LEN
            ),
        ));
    }
    Ok(FrameAt { offset, header })
}

/// Like [`frame_at`] but as a typed error for `path`.
pub(crate) fn frame_at_typed(
    path: &Path,
    data: &[u8],
    offset: u64,
    expect: FrameKind,
) -> Result<FrameAt, TapeError> {
    let f = frame_at(data, offset).map_err(|(cut, what)| {
        if cut {
            TapeError::Truncated {
                path: path.to_path_buf(),
                offset,
                what: format!("{}: {what}", expect.name()),
            }
        } else {
            TapeError::Corrupt {
                path: path.to_path_buf(),
                offset,
                frame: expect.name(),
                what,
            }
        }
    })?;
    if f.header.kind != expect {
        return Err(TapeError::Corrupt {
            path: path.to_path_buf(),
            offset,
            frame: expect.name(),
            what: format!(
                "expected a {}, found a {}",
                expect.name(),
                f.header.kind.name()
            ),
        });
    }
    Ok(f)
}

/// Decodes the payload of `f` into `out` (which must be `raw_len` long) and checks its hash.
pub(crate) fn decode_into(
    path: &Path,
    data: &[u8],
    f: &FrameAt,
    out: &mut [u8],
    scratch: &mut Vec<u8>,
) -> Result<(), TapeError> {
    let corrupt = |what: String| TapeError::Corrupt {
        path: path.to_path_buf(),
        offset: f.offset,
        frame: f.header.kind.name(),
        what,
    };
    let stored = &data[f.payload_range()];
    if crc32fast::hash(stored) != f.header.stored_crc {
        return Err(corrupt("stored payload CRC mismatch".into()));
    }
    debug_assert_eq!(out.len() as u64, f.header.raw_len);
    let shuffled = f.header.shuffle > 1;
    match f.header.codec {
        Codec::Stored if !shuffled => out.copy_from_slice(stored),
        Codec::Stored => chunk::unshuffle(stored, out, f.header.shuffle as usize),
        Codec::Zstd => {
            let target: &mut [u8] = if shuffled {
                scratch.clear();
                scratch.resize(out.len(), 0);
                &mut scratch[..]
            } else {
                &mut *out
            };
            // The first zstd frame states its content size: a payload that disagrees with the header
            // is refused before decoding. Decoding writes into `target` (capacity `raw_len`, already
            // bounded by the caps above) and never grows it.
            if !shuffled {
                if let Ok(Some(n)) = zstd::zstd_safe::get_frame_content_size(stored) {
                    if n != target.len() as u64 {
                        return Err(corrupt(format!(
                            "zstd frame says {n} bytes, frame header says {}",
                            target.len()
                        )));
                    }
                }
            }
            let n = zstd::bulk::decompress_to_buffer(stored, target)
                .map_err(|e| corrupt(format!("zstd: {e}")))?;
            if n != target.len() {
                return Err(corrupt(format!(
                    "decompressed to {n} bytes, header says {}",
                    target.len()
                )));
            }
            if shuffled {
                chunk::unshuffle(scratch, out, f.header.shuffle as usize);
            }
        }
    }
    if *blake3::hash(out).as_bytes() != f.header.hash {
        return Err(corrupt("payload hash mismatch".into()));
    }
    Ok(())
}

/// Decodes the payload of `f` into a new vector.
pub(crate) fn decode_vec(path: &Path, data: &[u8], f: &FrameAt) -> Result<Vec<u8>, TapeError> {
    let mut out = vec![0u8; f.header.raw_len as usize];
    decode_into(path, data, f, &mut out, &mut Vec::new())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_size_is_guarded() {
        assert_eq!(FRAME_HEADER_LEN, 64);
        let h = FrameHeader {
            kind: FrameKind::Chunk,
            codec: Codec::Zstd,
            shuffle: 4,
            stored_len: 10,
            raw_len: 20,
            hash: [9; 32],
            stored_crc: 77,
        };
        let b = h.encode();
        assert_eq!(b.len(), FRAME_HEADER_LEN);
        assert_eq!(FrameHeader::parse(&b).unwrap(), h);
    }

    #[test]
    fn every_flipped_header_byte_is_caught() {
        let h = FrameHeader {
            kind: FrameKind::Records,
            codec: Codec::Zstd,
            shuffle: 0,
            stored_len: 10,
            raw_len: 20,
            hash: [3; 32],
            stored_crc: 5,
        };
        let b = h.encode();
        for i in 0..FRAME_HEADER_LEN {
            let mut c = b;
            c[i] ^= 0x10;
            assert!(FrameHeader::parse(&c).is_err(), "flip at {i}");
        }
    }
}
