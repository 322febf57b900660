//! The tokenizer on the real SmolLM2-135M-Instruct vocabulary and on a synthetic model.
//!
//! Expected ids come from the independent reference (Hugging Face `tokenizers` built from the same
//! GGUF by transformers' converter, as `tools/check-tokenizer.py` does); the expected chat prompt is
//! the GGUF's own Jinja template rendered with jinja2 for one user message and
//! `add_generation_prompt=True`.

use std::path::PathBuf;

use greta::launch::DType;
use greta::model::gguf::Gguf;
use greta::model::synth::{Preset, generate};
use greta::model::tokenizer::{PreTokenizer, Tokenizer, vocab_from_gguf};

/// The real SmolLM2 file: `$GRETA_SMOLLM2`, else `.cache/models/` under the repo. Fails (never
/// skips) when absent, so a missing model cannot make the suite pass vacuously.
fn smollm2() -> Tokenizer {
    let path = match std::env::var_os("GRETA_SMOLLM2") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    assert!(
        path.exists(),
        "SmolLM2 model not found at {}: run tools/fetch-model, or set GRETA_SMOLLM2 to the .gguf path",
        path.display()
    );
    let gguf = Gguf::open(&path).expect("open SmolLM2 GGUF");
    Tokenizer::new(vocab_from_gguf(&gguf).expect("SmolLM2 vocab")).expect("SmolLM2 tokenizer")
}

/// Strings covering the regex branches, multi-byte UTF-8, whitespace runs and special tokens.
const VARIED: &[&str] = &[
    "",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "def f(x):\n\treturn x ** 2  # square\n",
    "12345 3.14159 -0.5e10",
    "!!!???... ,,, ;;",
    "a  b   c\n\n\nd\t\te",
    "   leading and trailing   ",
    "don't I'LL we've",
    "café naïve Привет 日本語 🎉👨‍👩‍👧",
    "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start partial <|im_end",
    "\u{7f}\u{1}\u{ad}\u{feff}",
];

#[test]
fn smollm2_metadata() {
    let t = smollm2();
    assert_eq!(t.vocab_size(), 49152);
    assert_eq!((t.bos(), t.eos()), (Some(1), Some(2)));
    assert_eq!(t.pre_tokenizer(), PreTokenizer::Gpt2);
    assert_eq!(t.merge_count(), 48900);
    assert_eq!(t.token_str(2), Some("<|im_end|>"));
}

#[test]
fn smollm2_known_ids() {
    let t = smollm2();
    let cases: &[(&str, &[u32])] = &[
        ("Hello world", &[19556, 905]),
        (
            "The quick brown fox jumps over the lazy dog.",
            &[504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30],
        ),
        (
            "I'LL don't 12345 3.14159",
            &[
                57, 23, 16421, 1326, 982, 216, 33, 34, 35, 36, 37, 216, 35, 30, 33, 36, 33, 37, 41,
            ],
        ),
        (
            "  café 日本 🎉\n\n",
            &[216, 37366, 17097, 241, 115, 40993, 15107, 232, 227, 1116],
        ),
    ];
    for (text, ids) in cases {
        assert_eq!(t.encode(text), *ids, "{text:?}");
    }
}

#[test]
fn smollm2_special_tokens_are_recognised() {
    let t = smollm2();
    assert_eq!(
        t.encode("<|im_start|>user\nHi!<|im_end|>\n"),
        [1, 4093, 198, 26843, 17, 2, 198]
    );
    assert_eq!(t.encode("<|endoftext|>"), [0]);
    assert!(t.is_end_of_generation(2)); // <|im_end|>, EOS
    assert!(t.is_end_of_generation(0)); // <|endoftext|>
    assert!(!t.is_end_of_generation(1));
    assert!(!t.is_end_of_generation(19556));
}

#[test]
fn smollm2_round_trip() {
    let t = smollm2();
    for s in VARIED {
        assert_eq!(t.decode(&t.encode(s)), *s, "{s:?}");
    }
}

#[test]
fn smollm2_chat_prompt_matches_template() {
    let t = smollm2();
    assert_eq!(
        t.chat_prompt("What is 2+2?"),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn synthetic_model_vocab() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    generate(Preset::Tiny, DType::F32, 7, &path).unwrap();
    let gguf = Gguf::open(&path).unwrap();
    let t = Tokenizer::new(vocab_from_gguf(&gguf).unwrap()).unwrap();
    assert_eq!(t.vocab_size(), 300);
    // "Ġthe" is a merge result of the synthetic vocabulary.
    let the = t.token_id("Ġthe").expect("synthetic vocab has Ġthe");
    assert_eq!(t.encode(" the"), [the]);
    for s in VARIED {
        assert_eq!(t.decode(&t.encode(s)), *s, "{s:?}");
    }
}
