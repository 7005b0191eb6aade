//! Hugging Face's GPT-2 tokenizer files, `vocab.json` and `merges.txt`, written from tiktoken's
//! `r50k_base` ranks (the same 50,257 tokens) and read back as a merge-list BPE.
//!
//! Both files spell token bytes through GPT-2's byte-to-unicode table (printable Latin-1 bytes
//! stand for themselves, the other 68 bytes for U+0100 onwards; a space is `Ġ`). A token's ids
//! equal its tiktoken rank; merge line i (after the `#version` header) builds token 256 + i from
//! the two tokens that rank-ordered BPE joins last.

use super::{GPT2_EOT, GPT2_VOCAB_SIZE};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

pub const VOCAB: &str = "vocab.json";
pub const MERGES: &str = "merges.txt";
const EOT_TEXT: &str = "<|endoftext|>";

/// GPT-2's byte-to-unicode table: the character standing for each byte.
pub fn byte_chars() -> [char; 256] {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut out = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let c = if printable(b) {
            b
        } else {
            next += 1;
            next - 1
        };
        out[b as usize] = char::from_u32(c).unwrap_or('\u{FFFD}');
    }
    out
}

fn spell(bytes: &[u8], table: &[char; 256]) -> String {
    bytes.iter().map(|&b| table[b as usize]).collect()
}

/// The bytes of every GPT-2 token but `<|endoftext|>`, by id.
fn token_bytes() -> Vec<Vec<u8>> {
    let bpe = tiktoken_rs::r50k_base_singleton();
    (0..GPT2_EOT)
        .map(|id| bpe._decode_native_and_split(vec![id]).flatten().collect())
        .collect()
}

/// Rank-ordered BPE of `piece` using only the tokens of rank below `limit`.
fn split_below(piece: &[u8], ranks: &HashMap<&[u8], u32>, limit: u32) -> Vec<(usize, usize)> {
    let mut parts: Vec<(usize, usize)> = (0..piece.len()).map(|i| (i, i + 1)).collect();
    loop {
        let best = (0..parts.len().saturating_sub(1))
            .filter_map(|i| {
                let r = *ranks.get(&piece[parts[i].0..parts[i + 1].1])?;
                (r < limit).then_some((r, i))
            })
            .min();
        let Some((_, i)) = best else { return parts };
        parts[i].1 = parts[i + 1].1;
        parts.remove(i + 1);
    }
}

/// The contents of `vocab.json` and `merges.txt` for GPT-2 BPE.
pub fn files() -> Result<(String, String)> {
    let tokens = token_bytes();
    let table = byte_chars();
    let ranks: HashMap<&[u8], u32> = tokens
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_slice(), i as u32))
        .collect();
    let mut vocab = serde_json::Map::new();
    for (id, b) in tokens.iter().enumerate() {
        vocab.insert(spell(b, &table), serde_json::Value::from(id));
    }
    vocab.insert(EOT_TEXT.into(), serde_json::Value::from(GPT2_EOT));
    let mut merges = String::from("#version: 0.2\n");
    for (id, b) in tokens.iter().enumerate().skip(256) {
        let parts = split_below(b, &ranks, id as u32);
        let [(s0, e0), (s1, e1)] = parts[..] else {
            return Err(Error::Other(format!(
                "GPT-2 token {id} is not one merge of two lower-ranked tokens"
            )));
        };
        merges.push_str(&format!(
            "{} {}\n",
            spell(&b[s0..e0], &table),
            spell(&b[s1..e1], &table)
        ));
    }
    let vocab = serde_json::to_string(&vocab)
        .map_err(|e| Error::Other(format!("cannot serialise vocab.json: {e}")))?;
    Ok((vocab, merges))
}

/// A merge-list BPE read from `vocab.json` and `merges.txt` (how Hugging Face's GPT2Tokenizer
/// encodes one pre-tokenized piece).
pub struct MergeBpe {
    vocab: HashMap<String, u32>,
    merges: HashMap<(String, String), usize>,
    table: [char; 256],
}

impl MergeBpe {
    /// Reads the two files of a directory.
    pub fn read(dir: &Path) -> Result<Self> {
        let vp = dir.join(VOCAB);
        let vocab: HashMap<String, u32> = serde_json::from_slice(&crate::util::fsutil::read(&vp)?)
            .map_err(|e| Error::Other(format!("{}: invalid vocab.json: {e}", vp.display())))?;
        let mp = dir.join(MERGES);
        let text = crate::util::fsutil::read_text(&mp)?;
        let mut merges = HashMap::new();
        for (i, line) in text
            .lines()
            .filter(|l| !l.starts_with("#version"))
            .enumerate()
        {
            let (a, b) = line.split_once(' ').ok_or_else(|| {
                Error::Other(format!("{}: line {} is not a pair", mp.display(), i + 2))
            })?;
            merges.insert((a.to_string(), b.to_string()), i);
        }
        if vocab.len() != GPT2_VOCAB_SIZE {
            return Err(Error::Other(format!(
                "{}: {} tokens, expected {GPT2_VOCAB_SIZE}",
                vp.display(),
                vocab.len()
            )));
        }
        Ok(Self {
            vocab,
            merges,
            table: byte_chars(),
        })
    }

    /// The ids of one piece: repeatedly join the adjacent pair listed earliest in merges.txt.
    pub fn encode_piece(&self, piece: &[u8]) -> Result<Vec<u32>> {
        let mut parts: Vec<String> = piece
            .iter()
            .map(|&b| self.table[b as usize].to_string())
            .collect();
        while parts.len() > 1 {
            let best = (0..parts.len() - 1)
                .filter_map(|i| {
                    let key = (parts[i].clone(), parts[i + 1].clone());
                    self.merges.get(&key).map(|&r| (r, i))
                })
                .min();
            let Some((_, i)) = best else { break };
            let right = parts.remove(i + 1);
            parts[i].push_str(&right);
        }
        parts
            .iter()
            .map(|p| {
                self.vocab
                    .get(p)
                    .copied()
                    .ok_or_else(|| Error::Other(format!("{p:?} is not in vocab.json")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_match_published_gpt2_facts_and_encode_like_tiktoken() {
        let (vocab, merges) = files().unwrap();
        let v: HashMap<String, u32> = serde_json::from_str(&vocab).unwrap();
        // Facts of the published GPT-2 files (openai/gpt-2 encoder.json and vocab.bpe).
        assert_eq!(v.len(), 50257);
        assert_eq!(v["Ġthe"], 262);
        assert_eq!(v["!"], 0);
        assert_eq!(v[EOT_TEXT], 50256);
        let lines: Vec<&str> = merges.lines().collect();
        assert_eq!(lines.len(), 50001);
        assert_eq!(&lines[..3], &["#version: 0.2", "Ġ t", "Ġ a"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(VOCAB), vocab).unwrap();
        std::fs::write(dir.path().join(MERGES), merges).unwrap();
        let bpe = MergeBpe::read(dir.path()).unwrap();
        // Pieces the GPT-2 pre-tokenizer keeps whole (letters, digits or punctuation, with or
        // without a leading space), so tiktoken encodes each as one piece too.
        let words = "First Citizen Before we proceed any further hear me speak Thou unwillingly \
                     élan 日本語 antidisestablishmentarianism 12345 ;;-- ,' Zounds";
        let tik = tiktoken_rs::r50k_base_singleton();
        for w in words.split_whitespace() {
            let piece = format!(" {w}");
            let ours = bpe.encode_piece(w.as_bytes()).unwrap();
            assert_eq!(ours, tik.encode_ordinary(w), "{w:?}");
            let ours = bpe.encode_piece(piece.as_bytes()).unwrap();
            assert_eq!(ours, tik.encode_ordinary(&piece), "{piece:?}");
        }
    }
}
