//! nanoGPT's meta.pkl (pickle) and meta.json readers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nanoreward::tokenizer::CharVocab;

fuzz_target!(|data: &[u8]| {
    for json in [false, true] {
        if let Ok(v) = CharVocab::from_meta_bytes(data, json) {
            // A vocabulary that loads round-trips through our own meta.pkl.
            let back = CharVocab::from_meta_bytes(&v.to_pickle(), false).expect("our pickle loads");
            assert_eq!(back.chars(), v.chars());
        }
    }
});
