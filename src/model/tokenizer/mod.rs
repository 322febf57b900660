//! Text ↔ token ids, from the vocabulary stored in a GGUF file.
//!
//! greta has to turn a prompt into exactly the ids the reference engine (llama.cpp) would feed the
//! model: a recording made from different ids is a recording of a different run, and every
//! "prefill vs decode" or "greta vs llama.cpp" comparison starts by checking the ids agree. So this
//! module follows llama.cpp's byte-level BPE (`tokenizer.ggml.model = "gpt2"`, as SmolLM2, Llama-3
//! and Qwen2 use) step by step, and `tools/check-tokenizer.py` compares it against an independent
//! implementation (Hugging Face `tokenizers` built from the same GGUF file):
//!
//! 1. [special tokens](special) (control and user-defined, e.g. `<|im_start|>`) are cut out of the
//!    text and become their ids directly;
//! 2. the rest is [pre-tokenized](pretok) into words by the regex `tokenizer.ggml.pre` selects;
//! 3. each word's UTF-8 bytes become byte tokens ([GPT-2's byte spelling](bytes)) and are merged by
//!    the ranked rules of `tokenizer.ggml.merges` ([bpe]).
//!
//! Decoding maps each token back to its bytes and converts the whole byte string to UTF-8 once, so
//! a character split across tokens decodes correctly and only a truncated one at the very end is
//! replaced by U+FFFD.
//!
//! SentencePiece vocabularies (`tokenizer.ggml.model = "llama"`: Llama-2, Mistral) are not
//! supported yet and are refused with [`TokenizerError::UnsupportedModel`].
//!
//! ```
//! use greta::model::tokenizer::{byte_level_tokens, Tokenizer, Vocab};
//!
//! // The 256 byte tokens (ids 0..=255), then "Ġh" (256) and "Ġhi" (257); `Ġ` spells a space.
//! let mut tokens = byte_level_tokens();
//! tokens.extend(["Ġh".to_string(), "Ġhi".to_string()]);
//! let vocab = Vocab {
//!     model: "gpt2".into(),
//!     tokens,
//!     merges: vec!["Ġ h".into(), "Ġh i".into()],
//!     ..Vocab::default()
//! };
//! let tok = Tokenizer::new(vocab)?;
//! assert_eq!(tok.encode("a hi"), [u32::from(b'a'), 257]);
//! assert_eq!(tok.decode(&[u32::from(b'a'), 257]), "a hi");
//! # Ok::<(), greta::model::tokenizer::TokenizerError>(())
//! ```

mod bpe;
mod bytes;
mod chat;
mod error;
mod gguf;
mod pretok;
mod special;
mod vocab;

use std::collections::{HashMap, HashSet};

pub use chat::ChatTemplate;
pub use error::TokenizerError;
pub use gguf::vocab_from_gguf;
pub use pretok::PreTokenizer;
pub use vocab::{TOKEN_TYPE_CONTROL, TOKEN_TYPE_NORMAL, TOKEN_TYPE_USER_DEFINED, Vocab};

use bpe::Merges;
use bytes::ByteMap;
use pretok::Splitter;
use special::{Piece, SpecialMatcher};

/// Token texts that end a generation besides EOS, as llama.cpp's `special_eog_ids` collects them.
const END_OF_GENERATION_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// Stands for a byte the vocabulary has no token for, during merging only.
const NO_TOKEN: u32 = u32::MAX;

/// The 256 byte tokens of a byte-level vocabulary, in byte order: `tokens[b]` spells byte `b`
/// (`"Ġ"` for a space). Handy to build a synthetic vocabulary.
pub fn byte_level_tokens() -> Vec<String> {
    let map = ByteMap::new();
    (0..=255u8).map(|b| map.to_char(b).to_string()).collect()
}

/// A byte-level BPE tokenizer built from a [`Vocab`].
#[derive(Debug, Clone)]
pub struct Tokenizer {
    tokens: Vec<String>,
    /// Decoded bytes of each token (its byte spelling undone; special tokens are their own text).
    token_bytes: Vec<Box<[u8]>>,
    token_to_id: HashMap<String, u32>,
    bytes: ByteMap,
    /// The id of the token spelling each byte, if the vocabulary has one.
    byte_ids: [Option<u32>; 256],
    merges: Merges,
    pre: PreTokenizer,
    splitter: Splitter,
    specials: SpecialMatcher,
    /// Llama-3 (llama.cpp's `ignore_merges`): a word that is a whole token is taken as is.
    ignore_merges: bool,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    end_of_generation: HashSet<u32>,
    chat: ChatTemplate,
}

impl Tokenizer {
    /// Builds the tokenizer; fails on a vocabulary that is not byte-level BPE or is inconsistent.
    pub fn new(vocab: Vocab) -> Result<Tokenizer, TokenizerError> {
        if vocab.model != "gpt2" {
            return Err(TokenizerError::UnsupportedModel(vocab.model));
        }
        let n = vocab.tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        for (what, found) in [
            ("token_types", vocab.token_types.len()),
            ("scores", vocab.scores.len()),
        ] {
            if found != 0 && found != n {
                return Err(TokenizerError::LengthMismatch {
                    what,
                    expected: n,
                    found,
                });
            }
        }
        for (what, id) in [("bos", vocab.bos), ("eos", vocab.eos)] {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                return Err(TokenizerError::IdOutOfRange {
                    what,
                    id: id.into(),
                    vocab_size: n,
                });
            }
        }
        let token_type = |i: usize| {
            vocab
                .token_types
                .get(i)
                .copied()
                .unwrap_or(TOKEN_TYPE_NORMAL)
        };
        let is_special =
            |i: usize| matches!(token_type(i), TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED);

        // Later duplicates win, as in llama.cpp's `token_to_id` and Hugging Face's vocab dict.
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in vocab.tokens.iter().enumerate() {
            token_to_id.insert(t.clone(), i as u32);
        }

        let bytes = ByteMap::new();
        // SmolLM2's vocabulary has no token for six control bytes (0x04, 0x06, ...) never seen in
        // training; such a byte is dropped when encoding, as llama.cpp and Hugging Face do.
        let mut byte_ids = [None; 256];
        for b in 0..=255u8 {
            byte_ids[b as usize] = token_to_id
                .get(bytes.to_char(b).to_string().as_str())
                .copied();
        }

        let mut merges = Merges::default();
        for (rank, rule) in vocab.merges.iter().enumerate() {
            // Split at the first space after the first character, as llama.cpp does, so a rule
            // whose left part starts with a literal space still parses.
            let first_len = rule.chars().next().map_or(0, char::len_utf8);
            let Some(at) = rule[first_len..].find(' ').map(|at| at + first_len) else {
                return Err(TokenizerError::BadMerge {
                    index: rank,
                    merge: rule.clone(),
                });
            };
            let (left, right) = (&rule[..at], &rule[at + 1..]);
            let ids = (
                token_to_id.get(left),
                token_to_id.get(right),
                token_to_id.get(&format!("{left}{right}")),
            );
            if let (Some(&l), Some(&r), Some(&m)) = ids {
                merges.insert(l, r, rank as u32, m);
            }
        }

        let token_bytes = (0..n)
            .map(|i| {
                let text = &vocab.tokens[i];
                if is_special(i) {
                    return text.as_bytes().into();
                }
                let mut out = Vec::with_capacity(text.len());
                for c in text.chars() {
                    match bytes.to_byte(c) {
                        Some(b) => out.push(b),
                        // Not a byte character: keep the character itself.
                        None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                out.into_boxed_slice()
            })
            .collect();

        let specials = SpecialMatcher::new(
            (0..n)
                .filter(|&i| is_special(i))
                .map(|i| (vocab.tokens[i].clone(), i as u32)),
        );

        let mut end_of_generation: HashSet<u32> = vocab.eos.into_iter().collect();
        for text in END_OF_GENERATION_TEXTS {
            if let Some(&id) = token_to_id.get(*text) {
                end_of_generation.insert(id);
            }
        }

        let pre = PreTokenizer::from_pre(vocab.pre.as_deref());
        Ok(Tokenizer {
            token_bytes,
            token_to_id,
            bytes,
            byte_ids,
            merges,
            pre,
            splitter: Splitter::new(pre),
            specials,
            ignore_merges: pre == PreTokenizer::Llama3,
            bos: vocab.bos,
            eos: vocab.eos,
            add_bos: vocab.add_bos,
            end_of_generation,
            chat: ChatTemplate::detect(vocab.chat_template.as_deref()),
            tokens: vocab.tokens,
        })
    }

    /// Token ids of `text`: BOS first if the vocabulary says so, special tokens written in the
    /// text (`<|im_start|>`) recognised as their ids (llama.cpp's `parse_special = true`).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if let (true, Some(bos)) = (self.add_bos, self.bos) {
            out.push(bos);
        }
        self.specials.split(text, |piece| match piece {
            Piece::Special(id) => out.push(id),
            Piece::Text(t) => self
                .splitter
                .split(t, |word| self.encode_word(word, &mut out)),
        });
        out
    }

    /// BPE of one pre-tokenized word, appended to `out`.
    fn encode_word(&self, word: &str, out: &mut Vec<u32>) {
        if self.ignore_merges {
            let spelled: String = word.bytes().map(|b| self.bytes.to_char(b)).collect();
            if let Some(&id) = self.token_to_id.get(&spelled) {
                out.push(id);
                return;
            }
        }
        // A byte without a token becomes NO_TOKEN: no rule merges it, so it splits the word there,
        // and it is dropped from the output.
        let symbols: Vec<u32> = word
            .bytes()
            .map(|b| self.byte_ids[b as usize].unwrap_or(NO_TOKEN))
            .collect();
        let start = out.len();
        self.merges.apply(&symbols, out);
        if symbols.contains(&NO_TOKEN) {
            let mut kept = start;
            for i in start..out.len() {
                if out[i] != NO_TOKEN {
                    out[kept] = out[i];
                    kept += 1;
                }
            }
            out.truncate(kept);
        }
    }

    /// The bytes `ids` stand for; ids outside the vocabulary are skipped.
    pub fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            if let Some(b) = self.token_bytes.get(id as usize) {
                out.extend_from_slice(b);
            }
        }
        out
    }

    /// The text `ids` stand for; invalid UTF-8 (a character cut by the end of `ids`) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids)).into_owned()
    }

    /// The token's text as stored in the vocabulary (byte-level spelling: `"Ġthe"`).
    pub fn token_str(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a token text as stored in the vocabulary.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// End-of-sequence token.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Beginning-of-sequence token.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// Number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Number of usable merge rules.
    pub fn merge_count(&self) -> usize {
        self.merges.len()
    }

    /// The pre-tokenizer in use.
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    /// The chat template family in use.
    pub fn chat_template(&self) -> &ChatTemplate {
        &self.chat
    }

    /// Whether generation stops at `id`: EOS, and end-of-turn tokens such as `<|im_end|>`,
    /// `<|eot_id|>`, `<|endoftext|>` when the vocabulary has them.
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_generation.contains(&id)
    }

    /// The instruct prompt for one user message, as the model's chat template renders it with
    /// `add_generation_prompt`; see [`ChatTemplate`]. For a template that writes BOS itself
    /// (Llama-3) the BOS text is left out when [`encode`](Self::encode) adds BOS anyway.
    pub fn chat_prompt(&self, user: &str) -> String {
        let bos_text = match (self.add_bos, self.bos) {
            (false, Some(bos)) => self.token_str(bos),
            _ => None,
        };
        self.chat.prompt(user, bos_text)
    }
}

#[cfg(test)]
mod tests;
