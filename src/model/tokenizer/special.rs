//! Finding special tokens (`<|im_start|>`, `<|eot_id|>`, `<think>`) in text before BPE.
//!
//! llama.cpp with `parse_special = true` (`tokenizer_st_partition`) and Hugging Face's added-token
//! matcher both cut control and user-defined tokens out of the text first; only the pieces between
//! them are pre-tokenized and merged. Without this, `<|im_start|>` would become `<`, `|`, `im`, ...
//! and a chat prompt would not mean what the model was trained on.
//!
//! The match is leftmost-longest, as Hugging Face's: at each position the longest special token
//! starting there wins. Candidates are indexed by first byte, so a Llama-3 vocabulary's 256 special
//! tokens cost one table lookup per byte of text.

/// The special tokens of a vocabulary, indexed for matching.
#[derive(Debug, Clone)]
pub(crate) struct SpecialMatcher {
    /// By first byte: (token text, id), longest first.
    by_first_byte: Vec<Vec<(String, u32)>>,
}

/// One piece of text after special tokens are cut out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'t> {
    /// Ordinary text, to be pre-tokenized and merged.
    Text(&'t str),
    /// A special token, already an id.
    Special(u32),
}

impl SpecialMatcher {
    /// Indexes the given (text, id) pairs; empty texts are ignored.
    pub(crate) fn new(specials: impl IntoIterator<Item = (String, u32)>) -> SpecialMatcher {
        let mut by_first_byte: Vec<Vec<(String, u32)>> = vec![Vec::new(); 256];
        for (text, id) in specials {
            if let Some(&b) = text.as_bytes().first() {
                by_first_byte[b as usize].push((text, id));
            }
        }
        for list in &mut by_first_byte {
            // Longest first; among equal texts the later id wins, as the vocab map's last-wins.
            list.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(b.1.cmp(&a.1)));
        }
        SpecialMatcher { by_first_byte }
    }

    fn match_at(&self, rest: &str) -> Option<(usize, u32)> {
        let first = *rest.as_bytes().first()?;
        self.by_first_byte[first as usize]
            .iter()
            .find(|(text, _)| rest.starts_with(text.as_str()))
            .map(|(text, id)| (text.len(), *id))
    }

    /// Calls `piece` with the text split into ordinary text and special tokens, in order.
    pub(crate) fn split<'t>(&self, text: &'t str, mut piece: impl FnMut(Piece<'t>)) {
        let mut start = 0;
        let mut pos = 0;
        while pos < text.len() {
            // Special tokens are valid UTF-8 and so start on a char boundary; `text[pos..]` is
            // only taken on one.
            if text.is_char_boundary(pos) {
                if let Some((len, id)) = self.match_at(&text[pos..]) {
                    if pos > start {
                        piece(Piece::Text(&text[start..pos]));
                    }
                    piece(Piece::Special(id));
                    pos += len;
                    start = pos;
                    continue;
                }
            }
            pos += 1;
        }
        if start < text.len() {
            piece(Piece::Text(&text[start..]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<Piece<'_>> {
        let m = SpecialMatcher::new([
            ("<|im_start|>".to_string(), 1),
            ("<|im_end|>".to_string(), 2),
            ("<|im".to_string(), 9),
        ]);
        let mut out = Vec::new();
        m.split(text, |p| out.push(p));
        out
    }

    #[test]
    fn splits_out_specials() {
        assert_eq!(
            pieces("<|im_start|>user\nhé<|im_end|>"),
            [
                Piece::Special(1),
                Piece::Text("user\nhé"),
                Piece::Special(2)
            ]
        );
        assert_eq!(
            pieces("a<|im_x"),
            [Piece::Text("a"), Piece::Special(9), Piece::Text("_x")]
        );
        assert_eq!(pieces("plain"), [Piece::Text("plain")]);
        assert_eq!(pieces(""), []);
    }
}
