//! GPT-2's byte-to-character table ("bytes_to_unicode").
//!
//! Byte-level BPE vocabularies (GPT-2, SmolLM2, Llama-3, Qwen2) never store raw bytes: each of the 256
//! byte values is spelled as one printable Unicode character, so that every token is a printable
//! string. Printable Latin-1 bytes (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) stand for themselves; the other 68
//! bytes (controls, space, soft hyphen, ...) are mapped in order to U+0100, U+0101, ... — which is why
//! a space is written `Ġ` (U+0120) and a newline `Ċ` (U+010A) in the vocabulary.
//!
//! Reference: `bytes_to_unicode` in OpenAI's gpt-2 `encoder.py`, and `unicode_byte_to_utf8_map` in
//! llama.cpp's `unicode.cpp`.

/// Whether byte `b` is spelled by the character of the same code point.
fn is_self_spelled(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// Number of characters the table can produce: U+0000..U+00FF plus the 68 remapped bytes.
const CHAR_RANGE: usize = 256 + 68;

/// Both directions of the byte ↔ character table, built once per tokenizer.
#[derive(Debug, Clone)]
pub(crate) struct ByteMap {
    to_char: [char; 256],
    from_char: [Option<u8>; CHAR_RANGE],
}

impl ByteMap {
    /// Builds the table exactly as GPT-2's `bytes_to_unicode` does.
    pub(crate) fn new() -> ByteMap {
        let mut to_char = ['\0'; 256];
        let mut from_char = [None; CHAR_RANGE];
        let mut next = 0u32;
        for b in 0..=255u8 {
            let c = if is_self_spelled(b) {
                char::from(b)
            } else {
                // 256 + n for n < 68 is always a valid scalar value (U+0100..U+0143).
                let c = char::from_u32(256 + next).unwrap_or('\u{FFFD}');
                next += 1;
                c
            };
            to_char[b as usize] = c;
            if let Some(slot) = from_char.get_mut(c as usize) {
                *slot = Some(b);
            }
        }
        ByteMap { to_char, from_char }
    }

    /// The character that spells byte `b`.
    pub(crate) fn to_char(&self, b: u8) -> char {
        self.to_char[b as usize]
    }

    /// The byte a character spells, if it is one of the 256 byte characters.
    pub(crate) fn to_byte(&self, c: char) -> Option<u8> {
        self.from_char.get(c as usize).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_spellings() {
        let m = ByteMap::new();
        assert_eq!(m.to_char(b' '), 'Ġ');
        assert_eq!(m.to_char(b'\n'), 'Ċ');
        assert_eq!(m.to_char(b'\t'), 'ĉ');
        assert_eq!(m.to_char(b'a'), 'a');
        assert_eq!(m.to_char(0xAD), 'Ń');
    }

    #[test]
    fn table_is_a_bijection() {
        let m = ByteMap::new();
        for b in 0..=255u8 {
            assert_eq!(m.to_byte(m.to_char(b)), Some(b));
        }
        assert_eq!(m.to_byte('€'), None);
        assert_eq!(m.to_byte(' '), None);
    }
}
