//! Turning a frame payload into its stored form: optional byte shuffle, zstd, CRC.
//!
//! A shuffled payload is compressed one byte plane per zstd frame (the frames are concatenated; a zstd
//! decoder reads them back to back). Each plane gets its own entropy tables: the sign/exponent plane
//! compresses well, the mantissa planes do not, and one table for the mix wastes most of the shuffle's
//! gain (docs/TAPE.md, "Measurements"). A payload that does not shrink is stored as is, unshuffled.

use super::chunk;
use super::frame::Codec;

/// How a payload was stored.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Encoded {
    pub codec: Codec,
    /// Element size of the shuffle, 0 for none.
    pub shuffle: u8,
    /// CRC-32 of the stored bytes.
    pub crc: u32,
}

/// A zstd context and reusable buffers. One per thread.
pub(crate) struct Encoder {
    zstd: zstd::bulk::Compressor<'static>,
    level: i32,
    scratch: Vec<u8>,
    /// The stored bytes after [`Encoder::encode`] returned `Codec::Zstd`.
    pub packed: Vec<u8>,
}

impl Encoder {
    pub fn new(level: i32) -> std::io::Result<Encoder> {
        Ok(Encoder {
            zstd: zstd::bulk::Compressor::new(level)?,
            level,
            scratch: Vec::new(),
            packed: Vec::new(),
        })
    }

    pub fn level(&self) -> i32 {
        self.level
    }

    /// Encodes `raw`. With `Codec::Zstd` the stored bytes are in `self.packed`; with `Codec::Stored`
    /// they are `raw` itself.
    pub fn encode(
        &mut self,
        raw: &[u8],
        shuffle_es: usize,
        compress: bool,
    ) -> std::io::Result<Encoded> {
        let shuffled = shuffle_es > 1 && shuffle_es < 256 && raw.len() >= 2 * shuffle_es;
        if compress && !raw.is_empty() {
            let src: &[u8] = if shuffled {
                self.scratch.clear();
                self.scratch.resize(raw.len(), 0);
                chunk::shuffle(raw, &mut self.scratch, shuffle_es);
                &self.scratch
            } else {
                raw
            };
            let plane = if shuffled {
                raw.len() / shuffle_es
            } else {
                raw.len()
            };
            let parts = raw.len().div_ceil(plane);
            self.packed.clear();
            self.packed
                .resize(zstd::zstd_safe::compress_bound(raw.len()) + 64 * parts, 0);
            let mut at = 0;
            for part in src.chunks(plane) {
                at += self.zstd.compress_to_buffer(part, &mut self.packed[at..])?;
            }
            self.packed.truncate(at);
            if self.packed.len() < raw.len() {
                return Ok(Encoded {
                    codec: Codec::Zstd,
                    shuffle: if shuffled { shuffle_es as u8 } else { 0 },
                    crc: crc32fast::hash(&self.packed),
                });
            }
        }
        Ok(Encoded {
            codec: Codec::Stored,
            shuffle: 0,
            crc: crc32fast::hash(raw),
        })
    }
}
