//! Pre-tokenization: cutting text into words before BPE, with the regex the vocabulary was trained on.
//!
//! BPE merges never cross a word boundary, so the split decides which tokens can appear: a model
//! trained on Llama-3's split (digits in groups of three) and run with GPT-2's (digit runs of any
//! length) gets different ids for "12345". llama.cpp picks the regex from `tokenizer.ggml.pre`
//! (`llama_vocab::impl::load` in `llama-vocab.cpp`); we do the same for the families greta runs and
//! fall back to GPT-2's regex otherwise, as llama.cpp's "default" does.
//!
//! The patterns use a lookahead (`\s+(?!\S)`: a whitespace run leaves its last space to the next
//! word), hence `fancy_regex`.

use fancy_regex::Regex;

/// GPT-2's split, used by llama.cpp for `gpt-2`, `smollm`, and as the default. The trailing `\s+`
/// matches what llama.cpp's hand-written GPT-2 splitter and Hugging Face's ByteLevel do for a
/// whitespace run followed by a non-space (`" \nb"`).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama-3's split (`llama3`, `llama-bpe`, ...): case-insensitive contractions, digits in groups
/// of at most three, newlines kept with the punctuation before them.
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's split (`qwen2`, `deepseek-r1-qwen`): as Llama-3 but single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Which pre-tokenizer regex a vocabulary uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's regex (`gpt-2`, `smollm`, unknown names).
    Gpt2,
    /// Llama-3's regex (`llama3`, `llama-bpe`, `llama-v3`, `falcon3`, ...).
    Llama3,
    /// Qwen2's regex (`qwen2`, `deepseek-r1-qwen`).
    Qwen2,
}

impl PreTokenizer {
    /// The pre-tokenizer for a `tokenizer.ggml.pre` value, as llama.cpp maps it.
    pub fn from_pre(pre: Option<&str>) -> PreTokenizer {
        match pre {
            Some(
                "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
                | "midm-2.0" | "lfm2",
            ) => PreTokenizer::Llama3,
            Some("qwen2" | "deepseek-r1-qwen") => PreTokenizer::Qwen2,
            _ => PreTokenizer::Gpt2,
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            PreTokenizer::Gpt2 => GPT2,
            PreTokenizer::Llama3 => LLAMA3,
            PreTokenizer::Qwen2 => QWEN2,
        }
    }
}

/// A compiled pre-tokenizer.
#[derive(Debug, Clone)]
pub(crate) struct Splitter {
    regex: Regex,
}

impl Splitter {
    /// Compiles the regex of `kind`.
    pub(crate) fn new(kind: PreTokenizer) -> Splitter {
        // The patterns are constants covered by the unit tests below, so compiling cannot fail at
        // run time; the fallback keeps this function panic-free regardless.
        let regex = Regex::new(kind.pattern())
            .unwrap_or_else(|_| Regex::new(r"\S+|\s+").expect("trivial regex compiles"));
        Splitter { regex }
    }

    /// Calls `word` with each word of `text`, in order; the words concatenate back to `text`.
    ///
    /// Text the regex does not cover (cannot happen with the patterns above, which end in `\s+`)
    /// and text after a regex engine error (backtrack limit) become words of their own, so no byte
    /// is ever dropped.
    pub(crate) fn split<'t>(&self, text: &'t str, mut word: impl FnMut(&'t str)) {
        let mut end = 0;
        for m in self.regex.find_iter(text) {
            let Ok(m) = m else { break };
            if m.start() > end {
                word(&text[end..m.start()]);
            }
            if m.end() > m.start() {
                word(m.as_str());
            }
            end = m.end();
        }
        if end < text.len() {
            word(&text[end..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(kind: PreTokenizer, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        Splitter::new(kind).split(text, |w| out.push(w.to_string()));
        out
    }

    #[test]
    fn patterns_compile() {
        for kind in [
            PreTokenizer::Gpt2,
            PreTokenizer::Llama3,
            PreTokenizer::Qwen2,
        ] {
            assert!(Regex::new(kind.pattern()).is_ok(), "{kind:?}");
        }
    }

    #[test]
    fn gpt2_split() {
        assert_eq!(
            words(PreTokenizer::Gpt2, "Hello world's  12345 !!\n"),
            ["Hello", " world", "'s", " ", " 12345", " !!", "\n"]
        );
        assert_eq!(words(PreTokenizer::Gpt2, "a \nb"), ["a", " ", "\n", "b"]);
    }

    #[test]
    fn llama3_split() {
        assert_eq!(
            words(PreTokenizer::Llama3, "I'LL pay 12345.\n\nOk"),
            ["I", "'LL", " pay", " ", "123", "45", ".\n\n", "Ok"]
        );
    }

    #[test]
    fn qwen2_split_digits() {
        assert_eq!(words(PreTokenizer::Qwen2, "123"), ["1", "2", "3"]);
    }

    #[test]
    fn pre_names() {
        assert_eq!(PreTokenizer::from_pre(Some("smollm")), PreTokenizer::Gpt2);
        assert_eq!(
            PreTokenizer::from_pre(Some("llama-bpe")),
            PreTokenizer::Llama3
        );
        assert_eq!(PreTokenizer::from_pre(None), PreTokenizer::Gpt2);
    }
}
