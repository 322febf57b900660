//! The preamble (first 16 bytes) and the trailer (last 64 bytes) of a tape.
//!
//! Preamble: `GRETATAP` magic (8 bytes), format version (u32 LE), reserved u32 (0).
//!
//! Trailer, written last by `finish()` and fixed-size so a reader finds it at `len - 64`:
//!
//! | bytes  | field                                                  |
//! |--------|--------------------------------------------------------|
//! | 0..8   | magic `GTTRAILR`                                       |
//! | 8..12  | format version, u32 LE                                 |
//! | 12..16 | reserved, 0                                            |
//! | 16..24 | byte offset of the index frame, u64 LE                 |
//! | 24..32 | launches, u64 LE                                       |
//! | 32..40 | unique chunks, u64 LE                                  |
//! | 40..48 | byte offset of the trailer itself (= file length - 64) |
//! | 48..56 | reserved, 0                                            |
//! | 56..64 | first 8 bytes of blake3 of bytes 0..56                 |

use super::frame::{check8, u32_at, u64_at};

/// Tape magic, at byte 0.
pub const TAPE_MAGIC: [u8; 8] = *b"GRETATAP";
/// Trailer magic.
pub const TRAILER_MAGIC: [u8; 8] = *b"GTTRAILR";
/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 5;
/// Preamble size.
pub const PREAMBLE_LEN: usize = 16;
/// Trailer size. Changing it changes the format (bump the version).
pub const TRAILER_LEN: usize = 64;

/// The preamble bytes for `version`.
pub fn preamble(version: u32) -> [u8; PREAMBLE_LEN] {
    let mut b = [0u8; PREAMBLE_LEN];
    b[..8].copy_from_slice(&TAPE_MAGIC);
    b[8..12].copy_from_slice(&version.to_le_bytes());
    b
}

/// What the trailer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// Format version (same as the preamble's).
    pub version: u32,
    /// Byte offset of the index frame.
    pub index_offset: u64,
    /// Launches on the tape.
    pub launches: u64,
    /// Unique chunks on the tape.
    pub chunks: u64,
    /// Byte offset of the trailer.
    pub trailer_offset: u64,
}

impl Trailer {
    /// The 64 trailer bytes.
    pub fn encode(&self) -> [u8; TRAILER_LEN] {
        let mut b = [0u8; TRAILER_LEN];
        b[0..8].copy_from_slice(&TRAILER_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[16..24].copy_from_slice(&self.index_offset.to_le_bytes());
        b[24..32].copy_from_slice(&self.launches.to_le_bytes());
        b[32..40].copy_from_slice(&self.chunks.to_le_bytes());
        b[40..48].copy_from_slice(&self.trailer_offset.to_le_bytes());
        let c = check8(&b[..56]);
        b[56..64].copy_from_slice(&c);
        b
    }

    /// Parses the last 64 bytes of a file of length `file_len`. `Err` says why it is not a valid trailer.
    pub fn parse(b: &[u8], file_len: u64) -> Result<Trailer, String> {
        if b.len() != TRAILER_LEN {
            return Err("file too short for a trailer".into());
        }
        if b[0..8] != TRAILER_MAGIC {
            return Err("no trailer magic at the end (the writer did not finish)".into());
        }
        if b[56..64] != check8(&b[..56]) {
            return Err("trailer checksum mismatch".into());
        }
        let t = Trailer {
            version: u32_at(b, 8),
            index_offset: u64_at(b, 16),
            launches: u64_at(b, 24),
            chunks: u64_at(b, 32),
            trailer_offset: u64_at(b, 40),
        };
        if t.trailer_offset + TRAILER_LEN as u64 != file_len {
            return Err(format!(
                "trailer says it is at byte {}, file length disagrees",
                t.trailer_offset
            ));
        }
        if t.index_offset >= t.trailer_offset {
            return Err(format!(
                "index offset {} is not before the trailer",
                t.index_offset
            ));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_size_is_guarded() {
        let t = Trailer {
            version: 1,
            index_offset: 100,
            launches: 3,
            chunks: 4,
            trailer_offset: 200,
        };
        let b = t.encode();
        assert_eq!(b.len(), TRAILER_LEN);
        assert_eq!(TRAILER_LEN, 64);
        assert_eq!(PREAMBLE_LEN, 16);
        assert_eq!(Trailer::parse(&b, 264).unwrap(), t);
        for i in 0..TRAILER_LEN {
            let mut c = b;
            c[i] ^= 1;
            assert!(Trailer::parse(&c, 264).is_err(), "flip at {i}");
        }
    }
}
