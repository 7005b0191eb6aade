//! Tokenizers: character level (nanoGPT's `meta.pkl` vocabulary, read and written) and GPT-2 BPE.

pub mod gpt2_files;
mod pickle;

use crate::util::fsutil;
use crate::{Error, Result};
use serde_pickle::{HashableValue, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// GPT-2's end-of-text token id.
pub const GPT2_EOT: u32 = 50256;
/// GPT-2's vocabulary size (ids 0..=50256).
pub const GPT2_VOCAB_SIZE: usize = 50257;

/// A character-level vocabulary: `itos[i]` is the character of id `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharVocab {
    itos: Vec<char>,
    stoi: HashMap<char, u32>,
}

impl CharVocab {
    /// The vocabulary of `text`: its unique characters sorted by code point (nanoGPT's rule).
    pub fn from_text(text: &str) -> Self {
        let set: BTreeSet<char> = text.chars().collect();
        Self::from_chars(set.into_iter().collect())
    }

    /// A vocabulary from its characters in id order.
    pub fn from_chars(itos: Vec<char>) -> Self {
        let stoi = itos
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, i as u32))
            .collect();
        Self { itos, stoi }
    }

    /// Characters in id order.
    pub fn chars(&self) -> &[char] {
        &self.itos
    }

    /// Number of characters.
    pub fn len(&self) -> usize {
        self.itos.len()
    }

    /// True when the vocabulary holds no character.
    pub fn is_empty(&self) -> bool {
        self.itos.is_empty()
    }

    /// Reads nanoGPT's `meta.pkl` (or a `meta.json` with the same keys).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fsutil::read(path)?;
        let is_json = path.extension().is_some_and(|e| e == "json");
        Self::from_meta_bytes(&bytes, is_json).map_err(|m| Error::format(path, m))
    }

    /// Parses the bytes of a `meta.pkl` (or, with `is_json`, a `meta.json`).
    pub fn from_meta_bytes(bytes: &[u8], is_json: bool) -> std::result::Result<Self, String> {
        let itos = if is_json {
            itos_from_json(bytes)?
        } else {
            itos_from_pickle(bytes)?
        };
        Ok(Self::from_chars(itos))
    }

    /// Writes the vocabulary as nanoGPT's `meta.pkl` (`vocab_size`, `itos`, `stoi`), atomically.
    pub fn save_pickle(&self, path: &Path) -> Result<()> {
        let bytes = self.to_pickle();
        fsutil::write_bytes_atomic(path, &bytes)
    }

    /// The pickled `meta.pkl` bytes.
    pub fn to_pickle(&self) -> Vec<u8> {
        let mut itos = BTreeMap::new();
        let mut stoi = BTreeMap::new();
        for (i, c) in self.itos.iter().enumerate() {
            itos.insert(HashableValue::I64(i as i64), Value::String(c.to_string()));
            stoi.insert(HashableValue::String(c.to_string()), Value::I64(i as i64));
        }
        let mut meta = BTreeMap::new();
        meta.insert(
            HashableValue::String("vocab_size".into()),
            Value::I64(self.itos.len() as i64),
        );
        meta.insert(HashableValue::String("itos".into()), Value::Dict(itos));
        meta.insert(HashableValue::String("stoi".into()), Value::Dict(stoi));
        // Serialising an in-memory Value into a Vec cannot fail.
        serde_pickle::value_to_vec(&Value::Dict(meta), serde_pickle::SerOptions::new())
            .unwrap_or_default()
    }
}

fn single_char(s: &str) -> std::result::Result<char, String> {
    let mut it = s.chars();
    match (it.next(), it.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(format!(
            "vocabulary entry {s:?} is not a single character; only character-level meta files are supported"
        )),
    }
}

fn check_ids(map: BTreeMap<usize, char>) -> std::result::Result<Vec<char>, String> {
    let n = map.len();
    if n == 0 {
        return Err("the vocabulary is empty".into());
    }
    if n > 65536 {
        return Err(format!("vocabulary of {n} entries does not fit in uint16"));
    }
    let mut out = Vec::with_capacity(n);
    for (expect, (id, c)) in map.into_iter().enumerate() {
        if id != expect {
            return Err(format!("itos ids are not 0..{n}: id {expect} is missing"));
        }
        out.push(c);
    }
    Ok(out)
}

fn itos_from_pickle(bytes: &[u8]) -> std::result::Result<Vec<char>, String> {
    use pickle::PyVal;
    // A 65,536-entry vocabulary (itos + stoi) costs ~300k units: 1 M leaves room.
    let value = pickle::parse(bytes, 1 << 20)
        .map_err(|e| format!("not a readable meta.pkl ({e}); expected nanoGPT's meta.pkl"))?;
    let PyVal::Dict(dict) = value else {
        return Err("meta.pkl does not hold a dict".into());
    };
    let get = |key: &str| {
        dict.iter()
            .find(|(k, _)| *k == PyVal::Str(key.into()))
            .map(|(_, v)| v)
    };
    let itos =
        get("itos").ok_or("meta.pkl has no 'itos' entry (is it a character-level meta file?)")?;
    let PyVal::Dict(itos) = itos else {
        return Err("'itos' is not a dict".into());
    };
    let mut map = BTreeMap::new();
    for (k, v) in itos {
        let id = match k {
            PyVal::Int(i) if *i >= 0 => *i as usize,
            other => {
                return Err(format!(
                    "'itos' key {other:?} is not a non-negative integer"
                ));
            }
        };
        let PyVal::Str(s) = v else {
            return Err(format!("'itos'[{id}] is not a string"));
        };
        map.insert(id, single_char(s)?);
    }
    let chars = check_ids(map)?;
    if let Some(PyVal::Int(vs)) = get("vocab_size")
        && *vs as usize != chars.len()
    {
        return Err(format!(
            "vocab_size {vs} disagrees with the {} entries of 'itos'",
            chars.len()
        ));
    }
    Ok(chars)
}

fn itos_from_json(bytes: &[u8]) -> std::result::Result<Vec<char>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let itos = v
        .get("itos")
        .ok_or("meta.json has no 'itos' entry (expected {\"vocab_size\", \"itos\", \"stoi\"})")?;
    let mut map = BTreeMap::new();
    match itos {
        serde_json::Value::Object(o) => {
            for (k, v) in o {
                let id: usize = k
                    .parse()
                    .map_err(|_| format!("'itos' key {k:?} is not an integer"))?;
                let s = v.as_str().ok_or(format!("'itos'[{id}] is not a string"))?;
                map.insert(id, single_char(s)?);
            }
        }
        serde_json::Value::Array(a) => {
            for (id, v) in a.iter().enumerate() {
                let s = v.as_str().ok_or(format!("'itos'[{id}] is not a string"))?;
                map.insert(id, single_char(s)?);
            }
        }
        _ => return Err("'itos' must be an object or an array".into()),
    }
    check_ids(map)
}

/// Which tokenizer a dataset or model uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Tokenizer {
    /// Character level with the given vocabulary.
    Char(CharVocab),
    /// GPT-2 byte-pair encoding (tiktoken's `gpt2`/`r50k_base` ranks).
    Bpe,
}

impl Tokenizer {
    /// "char" or "bpe".
    pub fn method(&self) -> &'static str {
        match self {
            Tokenizer::Char(_) => "char",
            Tokenizer::Bpe => "bpe",
        }
    }

    /// Number of token ids.
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Char(v) => v.len(),
            Tokenizer::Bpe => GPT2_VOCAB_SIZE,
        }
    }

    /// Encodes text. An unknown character is an error naming it and its character position.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Tokenizer::Char(v) => text
                .chars()
                .enumerate()
                .map(|(pos, c)| {
                    v.stoi.get(&c).copied().ok_or_else(|| {
                        Error::Tokenize(format!(
                            "character {c:?} (U+{:04X}) at position {pos} is not in the vocabulary of {} characters",
                            c as u32,
                            v.len()
                        ))
                    })
                })
                .collect(),
            Tokenizer::Bpe => Ok(tiktoken_rs::r50k_base_singleton().encode_ordinary(text)),
        }
    }

    /// Decodes ids to text (ids outside the vocabulary become U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            Tokenizer::Char(v) => ids
                .iter()
                .map(|&i| v.itos.get(i as usize).copied().unwrap_or('\u{FFFD}'))
                .collect(),
            Tokenizer::Bpe => {
                let bpe = tiktoken_rs::r50k_base_singleton();
                let ids: Vec<u32> = ids
                    .iter()
                    .copied()
                    .filter(|&i| (i as usize) < GPT2_VOCAB_SIZE)
                    .collect();
                let bytes: Vec<u8> = bpe._decode_native_and_split(ids).flatten().collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_vocab_is_sorted_unique() {
        let v = CharVocab::from_text("hello, world\n");
        assert_eq!(
            v.chars(),
            &['\n', ' ', ',', 'd', 'e', 'h', 'l', 'o', 'r', 'w']
        );
        let t = Tokenizer::Char(v);
        let ids = t.encode("hello").unwrap();
        assert_eq!(ids, vec![5, 4, 6, 6, 7]);
        assert_eq!(t.decode(&ids), "hello");
    }

    #[test]
    fn unknown_char_names_char_and_position() {
        let t = Tokenizer::Char(CharVocab::from_text("abc"));
        let e = t.encode("abxc").unwrap_err().to_string();
        assert!(e.contains("'x'") && e.contains("position 2"), "{e}");
    }

    #[test]
    fn pickle_round_trip() {
        let v = CharVocab::from_text("Hé\n!z");
        let bytes = v.to_pickle();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.pkl");
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(CharVocab::load(&p).unwrap(), v);
    }

    #[test]
    fn json_meta_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.json");
        std::fs::write(&p, r#"{"vocab_size": 2, "itos": {"1": "b", "0": "a"}}"#).unwrap();
        assert_eq!(CharVocab::load(&p).unwrap().chars(), &['a', 'b']);
        std::fs::write(&p, r#"{"itos": {"0": "a", "2": "b"}}"#).unwrap();
        assert!(CharVocab::load(&p).is_err());
    }

    #[test]
    fn bpe_known_ids() {
        // "Hello world" in GPT-2 BPE is [15496, 995] (tiktoken gpt2).
        let t = Tokenizer::Bpe;
        assert_eq!(t.encode("Hello world").unwrap(), vec![15496, 995]);
        assert_eq!(t.decode(&[15496, 995]), "Hello world");
    }
}
