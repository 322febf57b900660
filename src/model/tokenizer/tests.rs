//! Unit tests on a small synthetic vocabulary; tests against the real SmolLM2 vocabulary live in
//! `tests/tokenizer.rs`.

use super::*;

/// 256 byte tokens, then: 256 "Ġh", 257 "Ġhi", 258 "<|im_start|>" (control), 259 "<|im_end|>"
/// (control), 260 "<think>" (user-defined), 261 "ll", 262 "Ġhill".
fn vocab() -> Vocab {
    let mut tokens = byte_level_tokens();
    let extra = [
        "Ġh",
        "Ġhi",
        "<|im_start|>",
        "<|im_end|>",
        "<think>",
        "ll",
        "Ġhill",
    ];
    tokens.extend(extra.iter().map(|s| s.to_string()));
    let mut token_types = vec![TOKEN_TYPE_NORMAL; tokens.len()];
    token_types[258] = TOKEN_TYPE_CONTROL;
    token_types[259] = TOKEN_TYPE_CONTROL;
    token_types[260] = TOKEN_TYPE_USER_DEFINED;
    Vocab {
        model: "gpt2".into(),
        pre: Some("smollm".into()),
        tokens,
        token_types,
        merges: ["Ġ h", "Ġh i", "l l", "Ġhi ll"].map(String::from).to_vec(),
        bos: Some(258),
        eos: Some(259),
        chat_template: Some("{{ '<|im_start|>' + role }}".into()),
        ..Vocab::default()
    }
}

fn tok() -> Tokenizer {
    Tokenizer::new(vocab()).expect("synthetic vocab is valid")
}

#[test]
fn merges_and_specials() {
    let t = tok();
    assert_eq!(t.encode(" hill"), [262]);
    assert_eq!(
        t.encode("<|im_start|>a hi<|im_end|>"),
        [258, u32::from(b'a'), 257, 259]
    );
    assert_eq!(t.encode("<think>"), [260]);
    assert_eq!(t.decode(&[258, 257, 260]), "<|im_start|> hi<think>");
    assert_eq!(t.merge_count(), 4);
}

#[test]
fn add_bos() {
    let mut v = vocab();
    v.add_bos = true;
    let t = Tokenizer::new(v).unwrap();
    assert_eq!(t.encode(""), [258]);
    assert_eq!(t.encode("a"), [258, u32::from(b'a')]);
}

#[test]
fn round_trip_any_text() {
    let t = tok();
    for s in [
        "",
        " ",
        "  \n\t x",
        "héllo wörld",
        "日本語 🎉",
        "<|im_end|><|im_start|>",
        "<|im_",
        "a\u{0}b",
    ] {
        assert_eq!(t.decode(&t.encode(s)), s, "{s:?}");
    }
}

#[test]
fn decode_is_lossy_only_on_broken_utf8() {
    let t = tok();
    let ids = t.encode("é"); // two byte tokens
    assert_eq!(ids.len(), 2);
    assert_eq!(t.decode(&ids[..1]), "\u{FFFD}");
    assert_eq!(t.decode_bytes(&ids[..1]), [0xC3]);
    assert_eq!(t.decode(&[u32::MAX, u32::from(b'a')]), "a");
}

#[test]
fn accessors() {
    let t = tok();
    assert_eq!(t.vocab_size(), 263);
    assert_eq!(t.token_str(256), Some("Ġh"));
    assert_eq!(t.token_str(9999), None);
    assert_eq!(t.token_id("Ġhi"), Some(257));
    assert_eq!((t.bos(), t.eos()), (Some(258), Some(259)));
    assert!(t.is_end_of_generation(259));
    assert!(!t.is_end_of_generation(258));
    assert_eq!(t.pre_tokenizer(), PreTokenizer::Gpt2);
    assert_eq!(
        t.chat_prompt("hi"),
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn bad_vocabularies_are_typed_errors() {
    let err = |v: Vocab| Tokenizer::new(v).unwrap_err();
    assert!(matches!(
        err(Vocab { model: "llama".into(), ..vocab() }),
        TokenizerError::UnsupportedModel(m) if m == "llama"
    ));
    assert!(matches!(
        err(Vocab {
            model: "gpt2".into(),
            ..Vocab::default()
        }),
        TokenizerError::EmptyVocab
    ));
    assert!(matches!(
        err(Vocab {
            token_types: vec![1],
            ..vocab()
        }),
        TokenizerError::LengthMismatch {
            what: "token_types",
            expected: 263,
            found: 1
        }
    ));
    assert!(matches!(
        err(Vocab {
            merges: vec!["nospace".into()],
            ..vocab()
        }),
        TokenizerError::BadMerge { index: 0, .. }
    ));
    assert!(matches!(
        err(Vocab {
            eos: Some(263),
            ..vocab()
        }),
        TokenizerError::IdOutOfRange {
            what: "eos",
            id: 263,
            ..
        }
    ));
}

#[test]
fn bytes_without_a_token_are_dropped() {
    let mut v = vocab();
    v.tokens[4] = "<unused>".into();
    v.tokens[b'i' as usize] = "<unused2>".into();
    let t = Tokenizer::new(v).unwrap();
    // The missing byte splits the word: no merge spans it.
    assert_eq!(t.encode("a\u{4}b\u{4}"), [u32::from(b'a'), u32::from(b'b')]);
    assert_eq!(t.encode(" hi"), [256]);
}

#[test]
fn merges_with_unknown_parts_are_ignored() {
    let mut v = vocab();
    v.merges.push("q z".into()); // "qz" is not a token
    assert_eq!(Tokenizer::new(v).unwrap().merge_count(), 4);
}
