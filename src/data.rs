//! Token data: nanoGPT's `prepare.py` (text → `train.bin`/`val.bin` + `meta.pkl`), random
//! training windows read from memory-mapped uint16 token files, the held-out split of val.bin, and
//! the one lookup of a data folder's tokenizer (`meta.pkl` / `meta.json`, else GPT-2 BPE).

use crate::tokenizer::{CharVocab, Tokenizer};
use crate::util::fsutil;
use crate::{Error, Result};
use memmap2::Mmap;
use rand::Rng;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Tokenization choice for `prepare`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TokenizationKind {
    /// One token per character; vocabulary written to `meta.pkl`.
    Char,
    /// GPT-2 byte-pair encoding.
    Bpe,
}

/// What `prepare` produced.
#[derive(Debug, Clone)]
pub struct PrepareReport {
    pub chars: usize,
    pub vocab_size: usize,
    pub train_tokens: usize,
    pub val_tokens: usize,
    /// Tokens of `reward.bin` (0 without a reward split).
    pub reward_tokens: usize,
    pub tokenizer: Tokenizer,
}

pub mod download;

/// The data folder's `meta.pkl` (or `meta.json`), when present.
pub fn data_meta(data_dir: &Path) -> Option<PathBuf> {
    ["meta.pkl", "meta.json"]
        .iter()
        .map(|n| data_dir.join(n))
        .find(|p| p.exists())
}

/// The data folder's tokenizer: its meta.pkl / meta.json when present, else GPT-2 BPE.
pub fn data_tokenizer(data_dir: &Path) -> Result<Tokenizer> {
    match data_meta(data_dir) {
        Some(p) => Ok(Tokenizer::Char(CharVocab::load(&p)?)),
        None => Ok(Tokenizer::Bpe),
    }
}

/// nanoGPT's split point: `int(n * train_split)` characters go to train.
pub fn split_point(n: usize, train_split: f64) -> usize {
    ((n as f64) * train_split) as usize
}

/// Splits text into (train, val) at nanoGPT's character split point.
pub fn split_text(text: &str, train_split: f64) -> (&str, &str) {
    let cut = split_point(text.chars().count(), train_split);
    text.split_at(text.char_indices().nth(cut).map_or(text.len(), |(b, _)| b))
}

/// Tokenizes `text` and splits it like nanoGPT's `prepare.py` (by characters, before encoding).
pub fn tokenize_split(
    text: &str,
    kind: TokenizationKind,
    train_split: f64,
) -> Result<(Tokenizer, Vec<u32>, Vec<u32>)> {
    if !(0.0..=1.0).contains(&train_split) || train_split.is_nan() {
        return Err(Error::Config(format!(
            "train_split must be in [0, 1], got {train_split}"
        )));
    }
    if text.is_empty() {
        return Err(Error::Other(
            "the corpus is empty: give a text file with some content".into(),
        ));
    }
    let (train_text, val_text) = split_text(text, train_split);
    let tok = match kind {
        TokenizationKind::Char => Tokenizer::Char(CharVocab::from_text(text)),
        TokenizationKind::Bpe => Tokenizer::Bpe,
    };
    let train = tok.encode(train_text)?;
    let val = tok.encode(val_text)?;
    Ok((tok, train, val))
}

/// Runs `prepare`: writes `train.bin`, `val.bin` (and `meta.pkl` for char level) into `out_dir`.
pub fn prepare(
    input: &Path,
    out_dir: &Path,
    kind: TokenizationKind,
    train_split: f64,
) -> Result<PrepareReport> {
    prepare_with_reward(input, out_dir, kind, train_split, 0.0)
}

/// `prepare` that also sets aside natural text for reward data which the generator never trains
/// on: the `reward_split` share of the characters just before the val split goes to
/// `reward.bin` instead of `train.bin` (val.bin is nanoGPT's, unchanged).
pub fn prepare_with_reward(
    input: &Path,
    out_dir: &Path,
    kind: TokenizationKind,
    train_split: f64,
    reward_split: f64,
) -> Result<PrepareReport> {
    if !(0.0..train_split.max(0.0)).contains(&reward_split) {
        return Err(Error::Config(format!(
            "reward_split must be in [0, train_split = {train_split}), got {reward_split}"
        )));
    }
    let text = fsutil::read_text(input)?;
    let chars = text.chars().count();
    let (tok, train_all, val) = tokenize_split(&text, kind, train_split).map_err(|e| match e {
        Error::Other(m) => Error::format(input, m),
        other => other,
    })?;
    let (train, reward) = if reward_split > 0.0 {
        let (head, _) = split_text(&text, train_split);
        let cut = split_point(chars, train_split - reward_split);
        let (a, b) = head.split_at(head.char_indices().nth(cut).map_or(head.len(), |(i, _)| i));
        (tok.encode(a)?, tok.encode(b)?)
    } else {
        (train_all, Vec::new())
    };
    if tok.vocab_size() > 65536 {
        return Err(Error::Mismatch(format!(
            "vocabulary of {} tokens does not fit in uint16 token files (max 65536)",
            tok.vocab_size()
        )));
    }
    fsutil::create_dir_all(out_dir)?;
    write_tokens(&out_dir.join("train.bin"), &train)?;
    write_tokens(&out_dir.join("val.bin"), &val)?;
    if !reward.is_empty() {
        write_tokens(&out_dir.join("reward.bin"), &reward)?;
    }
    if let Tokenizer::Char(v) = &tok {
        v.save_pickle(&out_dir.join("meta.pkl"))?;
    }
    Ok(PrepareReport {
        chars,
        vocab_size: tok.vocab_size(),
        train_tokens: train.len(),
        val_tokens: val.len(),
        reward_tokens: reward.len(),
        tokenizer: tok,
    })
}

/// Writes token ids as flat little-endian uint16, atomically.
pub fn write_tokens(path: &Path, ids: &[u32]) -> Result<()> {
    if let Some(bad) = ids.iter().find(|&&i| i > u16::MAX as u32) {
        return Err(Error::Mismatch(format!(
            "token id {bad} does not fit in uint16"
        )));
    }
    fsutil::write_atomic(path, |w| {
        let bytes: Vec<u8> = ids.iter().flat_map(|&i| (i as u16).to_le_bytes()).collect();
        w.write_all(&bytes)
    })
}

/// Splits the token file `src` into its first `share` (→ `first`) and the rest (→ `second`).
/// The reward data uses this to draw on text the generator never trained on (val.bin halves).
/// Returns the two token counts.
pub fn split_token_file(
    src: &Path,
    share: f64,
    first: &Path,
    second: &Path,
) -> Result<(usize, usize)> {
    if !(share > 0.0 && share < 1.0) {
        return Err(Error::Config(format!(
            "the split share must be between 0 and 1, got {share}"
        )));
    }
    let ids = TokenFile::open(src)?.to_vec();
    let cut = split_point(ids.len(), share);
    write_tokens(first, &ids[..cut])?;
    write_tokens(second, &ids[cut..])?;
    Ok((cut, ids.len() - cut))
}

/// Share of val.bin that held-out reward data trains on (the rest validates it).
pub const HELDOUT_SHARE: f64 = 0.8;

/// Splits the base model's `val_bin` into `dir/heldout_train.bin` (its first [`HELDOUT_SHARE`])
/// and `dir/heldout_val.bin`: natural text the generator never trained on, for reward data.
/// Returns the two paths and their token counts.
pub fn heldout_split(val_bin: &Path, dir: &Path) -> Result<(PathBuf, PathBuf, usize, usize)> {
    let (a, b) = (dir.join("heldout_train.bin"), dir.join("heldout_val.bin"));
    let (na, nb) = split_token_file(val_bin, HELDOUT_SHARE, &a, &b)?;
    Ok((a, b, na, nb))
}

/// A memory-mapped uint16 token file (`train.bin` / `val.bin`).
pub struct TokenFile {
    path: PathBuf,
    map: Option<Mmap>,
    len: usize,
}

impl TokenFile {
    /// Opens and validates a token file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| {
            Error::io(
                "cannot open token file (run `nanoreward prepare` first?)",
                path,
                e,
            )
        })?;
        let size = file
            .metadata()
            .map_err(|e| Error::io("cannot stat", path, e))?
            .len() as usize;
        if !size.is_multiple_of(2) {
            return Err(Error::format(
                path,
                format!("size {size} bytes is odd: not a uint16 token file (truncated?)"),
            ));
        }
        // An empty file cannot be mapped on every platform; treat it as zero tokens.
        let map = if size == 0 {
            None
        } else {
            // SAFETY: the file is opened read-only; nanoreward never writes a token file in place
            // (writes go to a temporary name and are renamed), so the mapping stays valid.
            Some(unsafe { Mmap::map(&file) }.map_err(|e| Error::io("cannot map", path, e))?)
        };
        Ok(Self {
            path: path.to_path_buf(),
            map,
            len: size / 2,
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the file holds no token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Token at position `i`.
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        let b = self.map.as_deref().unwrap_or(&[]);
        u16::from_le_bytes([b[2 * i], b[2 * i + 1]]) as u32
    }

    /// Tokens `[start, start + n)`.
    pub fn slice(&self, start: usize, n: usize) -> Vec<u32> {
        (start..start + n).map(|i| self.get(i)).collect()
    }

    /// All tokens.
    pub fn to_vec(&self) -> Vec<u32> {
        self.slice(0, self.len)
    }

    /// The largest token id (None when empty).
    pub fn max_id(&self) -> Option<u32> {
        (0..self.len).map(|i| self.get(i)).max()
    }

    /// Checks that `block_size + 1` tokens are available for a training window.
    pub fn require_window(&self, block_size: usize) -> Result<()> {
        if self.len < block_size + 1 {
            return Err(Error::Mismatch(format!(
                "{} holds {} tokens but a training window needs block_size + 1 = {}; use a smaller block_size or more text",
                self.path.display(),
                self.len,
                block_size + 1
            )));
        }
        Ok(())
    }

    /// A random batch like nanoGPT's `get_batch`: `batch` windows starting at uniform offsets in
    /// `[0, len - block_size)`; returns (x, y) flattened row-major `[batch, block_size]`.
    pub fn random_batch(
        &self,
        rng: &mut impl Rng,
        batch: usize,
        block_size: usize,
    ) -> (Vec<i64>, Vec<i64>) {
        let mut x = Vec::with_capacity(batch * block_size);
        let mut y = Vec::with_capacity(batch * block_size);
        let hi = self.len - block_size;
        for _ in 0..batch {
            let start = rng.random_range(0..hi);
            for t in 0..block_size {
                x.push(self.get(start + t) as i64);
                y.push(self.get(start + t + 1) as i64);
            }
        }
        (x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn split_matches_nanogpt_rule() {
        assert_eq!(split_point(1_115_394, 0.9), 1_003_854);
        let (_, tr, va) = tokenize_split("abcdefghij", TokenizationKind::Char, 0.9).unwrap();
        assert_eq!((tr.len(), va.len()), (9, 1));
    }

    #[test]
    fn empty_corpus_is_an_error() {
        assert!(tokenize_split("", TokenizationKind::Char, 0.9).is_err());
    }

    #[test]
    fn tokens_round_trip_and_windows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.bin");
        let ids: Vec<u32> = (0..100).collect();
        write_tokens(&p, &ids).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..4], &[0, 0, 1, 0]);
        let f = TokenFile::open(&p).unwrap();
        assert_eq!(f.to_vec(), ids);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (x, y) = f.random_batch(&mut rng, 3, 8);
        for r in 0..3 {
            for t in 0..8 {
                assert_eq!(y[r * 8 + t], x[r * 8 + t] + 1);
            }
        }
        assert!(f.require_window(99).is_ok());
        assert!(f.require_window(100).is_err());
    }

    #[test]
    fn odd_sized_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.bin");
        std::fs::write(&p, [1u8, 2, 3]).unwrap();
        let e = TokenFile::open(&p).err().unwrap().to_string();
        assert!(e.contains("odd"), "{e}");
    }
}
