//! Best-of-n sampling against a reward model (TRL's `BestOfNSampler`): each prompt is completed
//! `n` times and one completion is kept — the one the reward model rates most natural, or, with
//! a pick temperature τ > 0, one drawn with probability ∝ (p / (1 − p))^(1/τ). At τ = 1 that
//! weight is the density ratio a perfect detector's P(natural) implies, so the kept text is the
//! generator's text importance-resampled toward natural text (sampling-importance-resampling):
//! the sampling-time reading of the policy GRPO would reach at β = 1.
//!
//! It tells apart two reasons a reward can fail GRPO: if the kept text is no harder for an
//! independent judge to detect than plain samples, the reward carries nothing the judge sees;
//! if it is, the reward has the signal and the optimiser is what fails.

use crate::model::GPT;
use crate::reward::RewardModel;
use crate::sampling::{self, SampleOptions};
use crate::{Error, Result};
use rand::Rng;

/// How one of the `n` completions is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pick {
    /// The highest P(natural) (ties: the first).
    Max,
    /// Drawn with weight ∝ (p / (1 − p))^(1/τ), τ > 0.
    Resample { temperature: f64 },
}

impl Pick {
    /// τ = 0 picks the best; τ > 0 resamples; anything else is refused.
    pub fn from_temperature(t: f64) -> Result<Self> {
        if !(t.is_finite() && t >= 0.0) {
            return Err(Error::Config(format!(
                "the best-of temperature must be ≥ 0 (0 keeps the most natural of the n), got {t}"
            )));
        }
        Ok(if t > 0.0 {
            Pick::Resample { temperature: t }
        } else {
            Pick::Max
        })
    }
}

/// A completion rated `p` read as a logit, logit(p) (p clamped away from 0 and 1): sampled at
/// temperature τ, its weight is (p / (1 − p))^(1/τ).
fn logit(p: f32) -> f32 {
    let p = (p as f64).clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln() as f32
}

/// The index kept of each group of `n` consecutive scores (`scores.len()` a multiple of `n`):
/// the group's logits drawn from by the one sampler ([`sampling::sample_row`]), at τ = 0 its
/// first highest.
pub fn pick(scores: &[f32], n: usize, how: Pick, rng: &mut impl Rng) -> Vec<usize> {
    let opts = SampleOptions {
        temperature: match how {
            Pick::Max => 0.0,
            Pick::Resample { temperature } => temperature,
        },
        top_k: None,
        vocab: None,
    };
    scores
        .chunks(n.max(1))
        .map(|g| {
            let logits: Vec<f32> = g.iter().map(|&p| logit(p)).collect();
            sampling::sample_row(&logits, &opts, rng) as usize
        })
        .collect()
}

/// Candidates generated at once, at most (the sampler's cache grows with its rows).
const ROWS_AT_ONCE: usize = 1024;

/// `max_new_tokens` after each prompt, best of `n` by `rm` (see the module). With n = 1 this is
/// [`sampling::generate`] exactly. Prompts are taken a few at a time, so memory does not grow
/// with n. Returns the prompts with their kept continuations.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    g: &GPT,
    rm: &RewardModel,
    prompts: &[Vec<u32>],
    max_new_tokens: usize,
    opts: &SampleOptions,
    n: usize,
    how: Pick,
    rng: &mut impl Rng,
    workers: usize,
) -> Result<Vec<Vec<u32>>> {
    if n <= 1 {
        return sampling::generate(g, prompts, max_new_tokens, opts, rng, workers);
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0) + max_new_tokens;
    if longest > rm.model.config.block_size {
        return Err(Error::Config(format!(
            "best-of-n scores whole windows: prompt + new tokens ({longest}) must be at most the reward model's block_size ({}); generate fewer tokens",
            rm.model.config.block_size
        )));
    }
    let mut kept = Vec::with_capacity(prompts.len());
    for chunk in prompts.chunks((ROWS_AT_ONCE / n).max(1)) {
        let repeated: Vec<Vec<u32>> = chunk
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.clone(), n))
            .collect();
        let mut all = sampling::generate(g, &repeated, max_new_tokens, opts, rng, workers)?;
        let scores = rm.score(&all)?;
        for (i, k) in pick(&scores, n, how, rng).into_iter().enumerate() {
            kept.push(std::mem::take(&mut all[i * n + k]));
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn max_keeps_the_highest_of_each_group() {
        let s = [0.1, 0.7, 0.3, 0.9, 0.9, 0.2];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(pick(&s, 3, Pick::Max, &mut rng), vec![1, 0]);
        assert_eq!(pick(&s, 2, Pick::Max, &mut rng), vec![1, 1, 0]);
    }

    /// Resampling frequencies against the weights computed by hand: p = 0.5, 0.75, 0.9 give
    /// density ratios 1, 3, 9, so at τ = 1 the picks are 1/13, 3/13, 9/13, and at τ = 2 the
    /// ratios' square roots 1, √3, 3.
    #[test]
    fn resampling_follows_the_density_ratio() {
        let s: Vec<f32> = [0.5, 0.75, 0.9].repeat(20_000);
        for (t, w) in [(1.0, [1.0, 3.0, 9.0]), (2.0, [1.0, 3f64.sqrt(), 3.0])] {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let kept = pick(&s, 3, Pick::Resample { temperature: t }, &mut rng);
            let total: f64 = w.iter().sum();
            for (i, wi) in w.iter().enumerate() {
                let f = kept.iter().filter(|&&k| k == i).count() as f64 / kept.len() as f64;
                assert!(
                    (f - wi / total).abs() < 0.01,
                    "τ {t}: pick {i} {f} vs {}",
                    wi / total
                );
            }
        }
    }

    #[test]
    fn pick_temperature_zero_is_max() {
        assert_eq!(Pick::from_temperature(0.0).unwrap(), Pick::Max);
        assert_eq!(
            Pick::from_temperature(0.5).unwrap(),
            Pick::Resample { temperature: 0.5 }
        );
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(Pick::from_temperature(bad).is_err(), "{bad}");
        }
    }
}
