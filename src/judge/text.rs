//! Text statistics of generated windows against natural text: word validity (the share of
//! whole words found in the corpus's vocabulary), distinct-2/3 (distinct word n-grams over all
//! word n-grams), the repetition rate (share of a window's character 4-grams already seen
//! earlier in it) and the Jensen–Shannon divergence of character 3-gram distributions.

use crate::reward::lexicon::{Lexicon, words};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// The share of the whole words of `texts` (runs not cut by a window's ends) that `lex` knows.
pub fn word_validity(lex: &Lexicon, texts: &[String]) -> f64 {
    let (mut known, mut total) = (0usize, 0usize);
    for t in texts {
        let n = t.chars().count();
        for (s, e, w) in words(t) {
            if s > 0 && e < n {
                total += 1;
                known += usize::from(lex.contains(&w));
            }
        }
    }
    if total == 0 {
        return f64::NAN;
    }
    known as f64 / total as f64
}

/// Distinct word n-grams over all word n-grams of `texts` (each text's own n-grams).
pub fn distinct_n(texts: &[String], n: usize) -> f64 {
    let mut seen = HashSet::new();
    let mut total = 0usize;
    for t in texts {
        let ws: Vec<String> = words(t).into_iter().map(|(_, _, w)| w).collect();
        for g in ws.windows(n) {
            total += 1;
            seen.insert(g.to_vec());
        }
    }
    if total == 0 {
        return f64::NAN;
    }
    seen.len() as f64 / total as f64
}

/// The mean share of a text's character 4-grams that already occurred earlier in it.
pub fn repetition_rate(texts: &[String]) -> f64 {
    let shares: Vec<f64> = texts
        .iter()
        .filter_map(|t| {
            let c: Vec<char> = t.chars().collect();
            if c.len() < 5 {
                return None;
            }
            let mut seen = HashSet::new();
            let mut repeated = 0;
            for g in c.windows(4) {
                if !seen.insert(g.to_vec()) {
                    repeated += 1;
                }
            }
            Some(repeated as f64 / (c.len() - 3) as f64)
        })
        .collect();
    shares.iter().sum::<f64>() / shares.len().max(1) as f64
}

/// Character 3-gram counts of `texts`, in a fixed order so that sums over them are reproducible.
fn trigrams(texts: &[String]) -> BTreeMap<[char; 3], f64> {
    let mut counts = BTreeMap::new();
    for t in texts {
        let c: Vec<char> = t.chars().collect();
        for g in c.windows(3) {
            *counts.entry([g[0], g[1], g[2]]).or_insert(0.0) += 1.0;
        }
    }
    counts
}

/// The Jensen–Shannon divergence (natural log, in [0, ln 2]) of the character 3-gram
/// distributions of `a` and `b`.
pub fn trigram_jsd(a: &[String], b: &[String]) -> f64 {
    let (ca, cb) = (trigrams(a), trigrams(b));
    let (na, nb) = (ca.values().sum::<f64>(), cb.values().sum::<f64>());
    if na == 0.0 || nb == 0.0 {
        return f64::NAN;
    }
    let keys: BTreeSet<&[char; 3]> = ca.keys().chain(cb.keys()).collect();
    let mut js = 0.0;
    for k in keys {
        let p = ca.get(k).copied().unwrap_or(0.0) / na;
        let q = cb.get(k).copied().unwrap_or(0.0) / nb;
        let m = 0.5 * (p + q);
        if p > 0.0 {
            js += 0.5 * p * (p / m).ln();
        }
        if q > 0.0 {
            js += 0.5 * q * (q / m).ln();
        }
    }
    js
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn statistics_by_hand() {
        let lex = Lexicon::from_text("the cat sat on the mat");
        // Whole words: "cat", "zzz", "on" (the ends are cut): 2 of 3 known.
        assert!((word_validity(&lex, &s(&["x cat zzz on y"])) - 2.0 / 3.0).abs() < 1e-12);
        // Bigrams of "a b a b": (a b), (b a), (a b): 2 distinct of 3.
        assert!((distinct_n(&s(&["a b a b"]), 2) - 2.0 / 3.0).abs() < 1e-12);
        // "abcabc": 4-grams abca, bcab, cabc: none repeated; "aaaaaa": 2 of 3 repeated.
        assert_eq!(repetition_rate(&s(&["abcabc"])), 0.0);
        assert!((repetition_rate(&s(&["aaaaaa"])) - 2.0 / 3.0).abs() < 1e-12);
        // JSD: 0 for the same distribution, ln 2 for disjoint ones.
        assert!(trigram_jsd(&s(&["abcd"]), &s(&["abcd"])).abs() < 1e-12);
        assert!((trigram_jsd(&s(&["aaaa"]), &s(&["bbbb"])) - 2f64.ln()).abs() < 1e-12);
    }

    /// The divergence is a float sum over trigrams: the same texts must give the same bits
    /// every time (a hash map's order changes between maps, and the last digits moved with it).
    #[test]
    fn trigram_jsd_is_bitwise_reproducible() {
        let text = |seed: u64| -> Vec<String> {
            let mut x = seed;
            let line = (0..4000)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    char::from(b'a' + ((x >> 33) % 9) as u8)
                })
                .collect();
            vec![line]
        };
        let (a, b) = (text(1), text(2));
        let first = trigram_jsd(&a, &b).to_bits();
        for _ in 0..50 {
            assert_eq!(trigram_jsd(&a, &b).to_bits(), first);
        }
    }
}
