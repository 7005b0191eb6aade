//! `prepare` against nanoGPT's prepare.py: byte-identical token files, the same meta.pkl dict,
//! GPT-2 BPE ids equal to tiktoken's.

mod common;

use nanoreward::data::{self, TokenFile, TokenizationKind};
use nanoreward::tokenizer::{CharVocab, Tokenizer};

#[test]
fn tiny_shakespeare_char_matches_nanogpt() {
    let Some(input) = common::shakespeare() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours");
    let r = data::prepare(&input, &ours, TokenizationKind::Char, 0.9).unwrap();
    assert_eq!(
        (r.train_tokens, r.val_tokens, r.vocab_size),
        (1_003_854, 111_540, 65)
    );
    assert_eq!(
        std::fs::metadata(ours.join("train.bin")).unwrap().len(),
        2 * 1_003_854
    );
    if !common::python_with(&[], "the reference comparison") {
        return;
    }
    let theirs = dir.path().join("theirs");
    common::script("nanogpt_prepare_char.py", &[&input, &theirs]);
    for f in ["train.bin", "val.bin"] {
        assert!(
            std::fs::read(ours.join(f)).unwrap() == std::fs::read(theirs.join(f)).unwrap(),
            "{f} differs"
        );
    }
    common::script(
        "check_meta.py",
        &[ours.join("meta.pkl"), theirs.join("meta.pkl")],
    );
    // And nanoGPT's meta.pkl (protocol 4, written by Python) loads into the same vocabulary.
    let v = CharVocab::load(&theirs.join("meta.pkl")).unwrap();
    assert_eq!(Tokenizer::Char(v).vocab_size(), 65);
}

#[test]
fn bpe_ids_match_tiktoken_gpt2() {
    // Ids from tiktoken.get_encoding("gpt2").encode_ordinary(...).
    let t = Tokenizer::Bpe;
    assert_eq!(
        t.encode("First Citizen:\n").unwrap(),
        vec![5962, 22307, 25, 198]
    );
    assert_eq!(t.encode(" the").unwrap(), vec![262]);
    // Ordinary encoding does not turn the special-token text into the eot id.
    assert!(!t.encode("<|endoftext|>").unwrap().contains(&50256));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(
        &input,
        "First Citizen:\nBefore we proceed any further, hear me speak.\n",
    )
    .unwrap();
    let r = data::prepare(&input, &dir.path().join("bpe"), TokenizationKind::Bpe, 0.9).unwrap();
    assert_eq!(r.vocab_size, 50257);
    let train = TokenFile::open(&dir.path().join("bpe/train.bin"))
        .unwrap()
        .to_vec();
    assert_eq!(&train[..4], &[5962, 22307, 25, 198]);
    assert!(!dir.path().join("bpe/meta.pkl").exists());
}
