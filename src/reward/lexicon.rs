//! The lexicon of a natural text: its words with their counts, read and written as
//! `lexicon.tsv` (`word<TAB>count` lines). It serves the dictionary detector (the share of a
//! window's whole words that are known) and the reward model's lexicon channel (per token: is it
//! inside a word, is that word known). Words are runs of letters (with inner apostrophes),
//! compared in lower case. A window's first and last runs may be cut by the window: they are
//! judged as a possible suffix / prefix of a known word.

use crate::util::fsutil;
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Features per token of the lexicon channel.
pub const NUM_LEXICON_FEATURES: usize = 3;

/// The words of a natural text.
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    counts: HashMap<String, u32>,
    prefixes: HashSet<String>,
    suffixes: HashSet<String>,
}

/// The words of `text` with their character spans `[start, end)`, in lower case.
pub fn words(text: &str) -> Vec<(usize, usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_alphabetic() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && (chars[i].is_alphabetic()
                || (chars[i] == '\'' && chars.get(i + 1).is_some_and(|c| c.is_alphabetic())))
        {
            i += 1;
        }
        let w: String = chars[start..i].iter().collect();
        out.push((start, i, w.to_lowercase()));
    }
    out
}

impl Lexicon {
    /// The words of `text`.
    pub fn from_text(text: &str) -> Self {
        let mut counts: HashMap<String, u32> = HashMap::new();
        for (_, _, w) in words(text) {
            *counts.entry(w).or_default() += 1;
        }
        Self::from_counts(counts)
    }

    /// This lexicon without the words of `text` (their counts subtracted): the lexicon a
    /// sample of `text` is judged with while training, so that its own words do not make it
    /// look more natural than text the model has never seen.
    pub fn without(&self, text: &str) -> Self {
        let mut counts = self.counts.clone();
        for (_, _, w) in words(text) {
            if let Some(c) = counts.get_mut(&w) {
                *c -= 1;
                if *c == 0 {
                    counts.remove(&w);
                }
            }
        }
        Self::from_counts(counts)
    }

    fn from_counts(counts: HashMap<String, u32>) -> Self {
        let mut prefixes = HashSet::new();
        let mut suffixes = HashSet::new();
        for w in counts.keys() {
            let cs: Vec<char> = w.chars().collect();
            for i in 1..=cs.len() {
                prefixes.insert(cs[..i].iter().collect::<String>());
                suffixes.insert(cs[cs.len() - i..].iter().collect::<String>());
            }
        }
        Self {
            counts,
            prefixes,
            suffixes,
        }
    }

    /// Number of distinct words.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// True when it holds no word.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Whether `word` (lower case) is known.
    pub fn contains(&self, word: &str) -> bool {
        self.counts.contains_key(word)
    }

    /// How often `word` occurred (0 when unknown).
    pub fn count(&self, word: &str) -> u32 {
        self.counts.get(word).copied().unwrap_or(0)
    }

    /// The `lexicon.tsv` text (sorted by word).
    pub fn to_tsv(&self) -> String {
        let mut rows: Vec<(&String, &u32)> = self.counts.iter().collect();
        rows.sort();
        rows.iter().map(|(w, c)| format!("{w}\t{c}\n")).collect()
    }

    /// Writes `lexicon.tsv` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        fsutil::write_bytes_atomic(path, self.to_tsv().as_bytes())
    }

    /// Reads a `lexicon.tsv`.
    pub fn load(path: &Path) -> Result<Self> {
        let mut counts = HashMap::new();
        for (i, line) in fsutil::read_text(path)?.lines().enumerate() {
            let (w, c) = line
                .split_once('\t')
                .and_then(|(w, c)| Some((w, c.parse::<u32>().ok()?)))
                .ok_or_else(|| {
                    Error::format(path, format!("line {} is not `word<TAB>count`", i + 1))
                })?;
            counts.insert(w.to_string(), c);
        }
        Ok(Self::from_counts(counts))
    }

    /// The whole words of a window: its runs that touch neither end.
    fn whole_words(text: &str) -> Vec<(usize, usize, String)> {
        let n = text.chars().count();
        words(text)
            .into_iter()
            .filter(|(s, e, _)| *s > 0 && *e < n)
            .collect()
    }

    /// The share of a window's whole words that are known (1 when it has none).
    pub fn known_share(&self, text: &str) -> f64 {
        let ws = Self::whole_words(text);
        if ws.is_empty() {
            return 1.0;
        }
        ws.iter().filter(|(_, _, w)| self.contains(w)).count() as f64 / ws.len() as f64
    }

    /// The character position where the first unknown whole word starts (None when all are
    /// known): the dictionary's boundary guess.
    pub fn first_unknown(&self, text: &str) -> Option<usize> {
        Self::whole_words(text)
            .into_iter()
            .find(|(_, _, w)| !self.contains(w))
            .map(|(s, _, _)| s)
    }

    /// Whether a run of a window is known: a whole word must be a word; one cut by the
    /// window's start must end a word, one cut by its end must start one.
    fn run_known(&self, start: usize, end: usize, n: usize, w: &str) -> bool {
        match (start == 0, end == n) {
            (false, false) => self.contains(w),
            (true, false) => self.suffixes.contains(w),
            (false, true) => self.prefixes.contains(w),
            (true, true) => self.prefixes.contains(w) || self.suffixes.contains(w),
        }
    }

    /// The lexicon channel of a window given as its tokens' texts: per token, [inside a word,
    /// +1 known / −1 unknown / 0 outside, log(1 + count of the word) / 10] (a token is
    /// judged by the word its last character is in).
    pub fn token_features(&self, pieces: &[String]) -> Vec<f32> {
        let text: String = pieces.concat();
        let n = text.chars().count();
        let mut at: Vec<Option<(bool, f32)>> = vec![None; n];
        for (s, e, w) in words(&text) {
            let known = self.run_known(s, e, n, &w);
            let freq = (1.0 + self.count(&w) as f32).ln() / 10.0;
            for slot in &mut at[s..e] {
                *slot = Some((known, freq));
            }
        }
        let mut out = Vec::with_capacity(pieces.len() * NUM_LEXICON_FEATURES);
        let mut end = 0;
        for p in pieces {
            end += p.chars().count();
            let last = end
                .checked_sub(1)
                .and_then(|i| at.get(i).copied().flatten());
            out.extend(match last {
                Some((known, freq)) => [1.0, if known { 1.0 } else { -1.0 }, freq],
                None => [0.0; NUM_LEXICON_FEATURES],
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_and_shares() {
        let lex = Lexicon::from_text("To be, or not to be: that is the question.\nO'er the hill");
        assert!(lex.contains("o'er") && lex.contains("to") && !lex.contains("To"));
        assert_eq!(lex.count("be"), 2);
        // "ques" and "hill" touch the ends: only "to", "be", "zorp", "the" count.
        let text = "ques to be zorp the hill";
        assert!((lex.known_share(text) - 0.75).abs() < 1e-12);
        assert_eq!(lex.first_unknown(text), Some(11));
        assert_eq!(lex.first_unknown("x the be y"), None);
        assert_eq!(lex.known_share("nowordsatall"), 1.0);
        assert_eq!(
            words("it's a dog's-life"),
            vec![
                (0, 4, "it's".to_string()),
                (5, 6, "a".to_string()),
                (7, 12, "dog's".to_string()),
                (13, 17, "life".to_string())
            ]
        );
    }

    #[test]
    fn token_features_judge_each_word() {
        let lex = Lexicon::from_text("the question is the answer");
        let pieces: Vec<String> = "estion zorp the qu".chars().map(String::from).collect();
        let f = lex.token_features(&pieces);
        let known = |i: usize| f[i * NUM_LEXICON_FEATURES + 1];
        // "estion" (cut by the start) ends "question"; "zorp" is unknown; "qu" (cut by the end)
        // starts "question"; spaces are outside words.
        assert_eq!(known(0), 1.0);
        assert_eq!(f[6 * NUM_LEXICON_FEATURES], 0.0);
        assert_eq!(known(7), -1.0);
        assert_eq!(known(12), 1.0);
        assert_eq!(known(16), 1.0);
        assert!((f[12 * NUM_LEXICON_FEATURES + 2] - 3f32.ln() / 10.0).abs() < 1e-6);
    }

    #[test]
    fn without_removes_the_words_of_a_text() {
        let lex = Lexicon::from_text("a b b c");
        let left = lex.without("b c");
        assert_eq!(
            (left.count("a"), left.count("b"), left.count("c")),
            (1, 1, 0)
        );
        assert!(!left.contains("c") && !left.prefixes.contains("c"));
    }

    #[test]
    fn save_load_round_trip() {
        let lex = Lexicon::from_text("a b b c'd");
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("lexicon.tsv");
        lex.save(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\t1\nb\t2\nc'd\t1\n");
        let back = Lexicon::load(&p).unwrap();
        assert_eq!(back.count("b"), 2);
        assert!(back.contains("c'd") && back.prefixes.contains("c'"));
        std::fs::write(&p, "oops\n").unwrap();
        assert!(Lexicon::load(&p).is_err());
    }
}
