//! A small GPT-2-style byte-level BPE vocabulary for synthetic models, laid out like SmolLM2's.
//!
//! SmolLM2's GGUF puts control tokens first (`<|endoftext|>` = 0, `<|im_start|>` = 1, `<|im_end|>` = 2,
//! token_type 3), then the 256 byte symbols of GPT-2's `bytes_to_unicode` in its order (`!` first), then
//! one token per merge. We keep that layout so a tokenizer that handles the real file handles these, and
//! pad to the preset's vocabulary size with `<|reserved_N|>` control tokens.

/// Control tokens, in id order.
pub const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/// Id of `<|im_start|>` (bos in SmolLM2).
pub const BOS_ID: u32 = 1;
/// Id of `<|im_end|>` (eos and padding in SmolLM2).
pub const EOS_ID: u32 = 2;
/// Id of `<|endoftext|>` (unknown in SmolLM2).
pub const UNK_ID: u32 = 0;
/// token_type of an ordinary token.
pub const TOKEN_NORMAL: i32 = 1;
/// token_type of a control token.
pub const TOKEN_CONTROL: i32 = 3;

/// SmolLM2-Instruct's ChatML chat template.
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Merges of frequent English pairs, in priority order (`Ġ` is the byte-level symbol of a space).
/// Each merge's parts are byte symbols or the results of earlier merges.
const MERGES: &[&str] = &[
    "Ġ t",
    "Ġ a",
    "i n",
    "h e",
    "Ġ Ġ",
    "r e",
    "o n",
    "e r",
    "Ġt he",
    "a t",
    "Ġ s",
    "Ġ o",
    "e n",
    "Ġ c",
    "e s",
    "Ġ w",
    "n d",
    "i t",
    "o r",
    "i s",
    "a l",
    "Ġ p",
    "in g",
    "Ġ f",
    "a n",
    "e d",
    "Ġ b",
    "o u",
    "a r",
    "Ġ in",
    "Ġo f",
    "Ġ m",
    "Ġa nd",
    "i on",
    "i c",
    "Ġ d",
    "Ġt o",
    "ĠĠ ĠĠ",
    "l e",
    "r o",
    "Ġ h",
    "Ġ l",
    "Ġ n",
    "Ġ e",
    "Ġ g",
    "Ġ y",
    "o m",
    "l l",
    "s t",
    "e l",
    "Ġ re",
    "Ġ is",
    "Ġ T",
    "Ġ I",
    "Ġ A",
    "Ġ S",
    "Ġ H",
    "Ġw h",
    "Ġb e",
    "Ġ he",
    "Ġh a",
    "Ġt h",
    "Ġy ou",
    "Ġf or",
    "Ġo n",
    "Ġw it",
    "Ġwit h",
    "Ġ it",
    "Ġth at",
    "Ġ 1",
    "Ġ 2",
    ". Ċ",
    ", Ġ",
];

/// GPT-2's `bytes_to_unicode`: the printable byte symbols first, in byte order, then the rest mapped to
/// U+0100 upwards. Returns the 256 symbols in that (token id) order.
pub fn byte_symbols() -> Vec<String> {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut out: Vec<String> = (0..256u32)
        .filter(|&b| printable(b))
        .filter_map(char::from_u32)
        .map(String::from)
        .collect();
    let mut next = 0x100u32;
    for b in 0..256u32 {
        if !printable(b) {
            out.extend(char::from_u32(next).map(String::from));
            next += 1;
        }
    }
    out
}

/// A vocabulary: tokens, token types and merges.
#[derive(Clone, Debug, PartialEq)]
pub struct Vocab {
    /// Token strings by id.
    pub tokens: Vec<String>,
    /// token_type by id (1 normal, 3 control).
    pub token_type: Vec<i32>,
    /// Merges as `"left right"`.
    pub merges: Vec<String>,
}

/// The vocabulary of exactly `size` tokens: specials, byte symbols, as many merges as fit, padding.
pub fn vocab(size: usize) -> Vocab {
    let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    let mut token_type = vec![TOKEN_CONTROL; tokens.len()];
    for s in byte_symbols() {
        tokens.push(s);
        token_type.push(TOKEN_NORMAL);
    }
    let mut merges = Vec::new();
    for m in MERGES {
        if tokens.len() >= size {
            break;
        }
        merges.push(m.to_string());
        tokens.push(m.replace(' ', ""));
        token_type.push(TOKEN_NORMAL);
    }
    let mut n = 0;
    while tokens.len() < size {
        tokens.push(format!("<|reserved_{n}|>"));
        token_type.push(TOKEN_CONTROL);
        n += 1;
    }
    tokens.truncate(size);
    token_type.truncate(size);
    Vocab {
        tokens,
        token_type,
        merges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn byte_symbols_are_gpt2s() {
        let s = byte_symbols();
        assert_eq!(s.len(), 256);
        assert_eq!(s[0], "!");
        assert_eq!(s.iter().collect::<HashSet<_>>().len(), 256);
        assert!(s.contains(&"Ġ".to_string())); // space
        assert!(s.contains(&"Ċ".to_string())); // newline
    }

    #[test]
    fn merges_are_buildable_and_unique() {
        let v = vocab(1000);
        let mut known: HashSet<String> = byte_symbols().into_iter().collect();
        for m in &v.merges {
            let (l, r) = m.split_once(' ').expect("merge has two parts");
            assert!(known.contains(l) && known.contains(r), "merge `{m}`");
            assert!(
                known.insert(format!("{l}{r}")),
                "merge `{m}` makes a duplicate token"
            );
        }
        assert_eq!(v.tokens.len(), 1000);
        assert_eq!(v.tokens.iter().collect::<HashSet<_>>().len(), 1000);
        assert_eq!(v.tokens[EOS_ID as usize], "<|im_end|>");
    }
}
