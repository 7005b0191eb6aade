//! Best-of-n sampling against a reward model (TRL's `BestOfNSampler`): each prompt is completed
//! `n` times and one completion is kept — the one the reward model rates most natural, or, with
//! a pick temperature τ > 0, one drawn with probability ∝ (p / (1 − p))^(1/τ). At τ = 1 that
//! weight is the density ratio a perfect detector's P(natural) implies, so the kept text is the
//! generator's text importance-resampled toward natural text (sampling-importance-resampling):
//! the sampling-time reading of the policy GRPO would reach at β = 1.
//!
//! A reward model trained on natural *fractions* (labels K/N) is not such a detector: its logit
//! is the log density ratio only up to a scale. [`calibrate`] measures that scale on natural text
//! the reward model never trained on against the generator's own samples (a logistic regression
//! of the class on logit P, the classes weighted equally), and the pick temperature that makes
//! the weight the density ratio it implies is 1 / slope.
//!
//! It tells apart two reasons a reward can fail GRPO: if the kept text is no harder for an
//! independent judge to detect than plain samples, the reward carries nothing the judge sees;
//! if it is, the reward has the signal and the optimiser is what fails.

use crate::model::GPT;
use crate::reward::RewardModel;
use crate::reward::changepoint;
use crate::sampling::{self, SampleOptions};
use crate::{Error, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};

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

/// The reward model's logit read as a log density ratio: P(natural | window) = σ(slope · logit P +
/// intercept) fitted on `natural` natural windows and as many of the generator's samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub slope: f64,
    pub intercept: f64,
    pub natural: usize,
    pub generated: usize,
}

impl Calibration {
    /// The pick temperature at which the resampling weight is the calibrated density ratio.
    pub fn temperature(&self) -> f64 {
        1.0 / self.slope
    }

    /// [`fit_logistic`] on the logits of natural (`pos`) and generated (`neg`) windows; refused
    /// when the slope is not positive.
    pub fn fit(pos: &[f64], neg: &[f64]) -> Result<Self> {
        let (slope, intercept) = fit_logistic(pos, neg)?;
        if slope <= 0.0 {
            return Err(Error::Config(format!(
                "the best-of reward model does not rate natural text above the generator's (calibrated slope {slope:.3}): no pick temperature makes its score a density ratio"
            )));
        }
        Ok(Self {
            slope,
            intercept,
            natural: pos.len(),
            generated: neg.len(),
        })
    }
}

/// Ridge on the slope: keeps the fit finite when the two classes separate perfectly.
const RIDGE: f64 = 1e-3;

/// The weighted log-likelihood of σ(a·x + b) for label 1 on `pos` and 0 on `neg`, each class
/// weighted by the inverse of its size, less the ridge (what [`fit_logistic`] maximises).
pub fn calibration_objective(pos: &[f64], neg: &[f64], a: f64, b: f64) -> f64 {
    let side = |xs: &[f64], sign: f64| {
        xs.iter()
            .map(|&x| changepoint::log_sigmoid(sign * (a * x + b)))
            .sum::<f64>()
            / xs.len() as f64
    };
    side(pos, 1.0) + side(neg, -1.0) - RIDGE * a * a
}

/// Maximises [`calibration_objective`] by Newton's method: (slope, intercept).
pub fn fit_logistic(pos: &[f64], neg: &[f64]) -> Result<(f64, f64)> {
    if pos.is_empty() || neg.is_empty() {
        return Err(Error::Config(
            "calibration needs natural and generated windows".into(),
        ));
    }
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for _ in 0..100 {
        // Gradient and Hessian of the objective (per class: mean over its windows).
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) =
            (-2.0 * RIDGE * a, 0.0, -2.0 * RIDGE, 0.0, 0.0);
        for (xs, y) in [(pos, 1.0), (neg, 0.0)] {
            let w = 1.0 / xs.len() as f64;
            for &x in xs {
                let s = 1.0 / (1.0 + (-(a * x + b)).exp());
                ga += w * (y - s) * x;
                gb += w * (y - s);
                let h = w * s * (1.0 - s);
                haa -= h * x * x;
                hab -= h * x;
                hbb -= h;
            }
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-300 {
            break;
        }
        let (mut da, mut db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        // The objective is concave; a step that lowers it is halved (never below 2^-30).
        let before = calibration_objective(pos, neg, a, b);
        for _ in 0..30 {
            if calibration_objective(pos, neg, a - da, b - db) >= before {
                break;
            }
            (da, db) = (da / 2.0, db / 2.0);
        }
        a -= da;
        b -= db;
        if da.abs() + db.abs() < 1e-12 {
            break;
        }
    }
    if !(a.is_finite() && b.is_finite()) {
        return Err(Error::Other("the calibration fit did not converge".into()));
    }
    Ok((a, b))
}

/// Calibrates `rm` for generator `g`: a plain continuation (`opts`) of each natural window's
/// first token, both sets scored, [`fit_logistic`] on their logits. Refused when the reward
/// model does not rate the natural windows above the samples (slope ≤ 0: no temperature).
pub fn calibrate(
    g: &GPT,
    rm: &RewardModel,
    natural: &[Vec<u32>],
    opts: &SampleOptions,
    rng: &mut impl Rng,
    workers: usize,
) -> Result<Calibration> {
    if natural.iter().any(|w| w.len() < 2) {
        return Err(Error::Config(
            "calibration windows must hold at least 2 tokens".into(),
        ));
    }
    let len = natural.iter().map(Vec::len).max().unwrap_or(0);
    let prompts: Vec<Vec<u32>> = natural.iter().map(|w| w[..1].to_vec()).collect();
    let generated = sampling::generate(g, &prompts, len.saturating_sub(1), opts, rng, workers)?;
    let logits = |w: &[Vec<u32>]| -> Result<Vec<f64>> {
        Ok(rm.score(w)?.into_iter().map(|p| logit(p) as f64).collect())
    };
    Calibration::fit(&logits(natural)?, &logits(&generated)?)
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

    /// The fit against a brute-force search of the same objective over a grid of slopes and
    /// intercepts (overlapping classes of unequal sizes).
    #[test]
    fn the_calibration_fit_is_the_objective_maximum() {
        let pos = [0.5, 1.2, -0.3, 2.0, 0.8];
        let neg = [-1.0, 0.2, -0.5, -2.0, 0.1, 0.4, -0.9];
        let (a, b) = fit_logistic(&pos, &neg).unwrap();
        let mut best = (f64::NEG_INFINITY, 0.0, 0.0);
        for i in 0..=600 {
            for k in 0..=600 {
                let (ga, gb) = (-1.0 + i as f64 * 0.01, -3.0 + k as f64 * 0.01);
                let v = calibration_objective(&pos, &neg, ga, gb);
                if v > best.0 {
                    best = (v, ga, gb);
                }
            }
        }
        assert!(calibration_objective(&pos, &neg, a, b) >= best.0 - 1e-12);
        assert!(
            (a - best.1).abs() < 0.02 && (b - best.2).abs() < 0.02,
            "{a} {b} vs {best:?}"
        );
    }

    /// Scores whose log density ratio is known: generated ~ N(0, 1), natural ~ N(2, 1), so
    /// ln p_nat(x)/p_gen(x) = 2x − 2 — the fit recovers slope 2 (pick temperature 1/2) and
    /// intercept −2; with the classes swapped the slope is negative and refused.
    #[test]
    fn calibration_recovers_a_known_density_ratio() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut normal = |m: f64| {
            let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            m + (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let pos: Vec<f64> = (0..20_000).map(|_| normal(2.0)).collect();
        let neg: Vec<f64> = (0..30_000).map(|_| normal(0.0)).collect();
        let c = Calibration::fit(&pos, &neg).unwrap();
        assert!((c.slope - 2.0).abs() < 0.08, "{c:?}");
        assert!((c.intercept + 2.0).abs() < 0.08, "{c:?}");
        assert!((c.temperature() - 0.5).abs() < 0.02);
        assert_eq!((c.natural, c.generated), (20_000, 30_000));
        let e = Calibration::fit(&neg, &pos).unwrap_err().to_string();
        assert!(e.contains("does not rate natural text above"), "{e}");
    }

    /// Classes that separate perfectly: the likelihood alone has no maximum, the ridge keeps
    /// the fit finite (and at the objective's maximum, no worse than a slope either side).
    #[test]
    fn separable_classes_give_a_finite_fit() {
        let (pos, neg) = ([1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]);
        let c = Calibration::fit(&pos, &neg).unwrap();
        assert!(c.slope.is_finite() && c.slope > 1.0, "{c:?}");
        let at = |a: f64| calibration_objective(&pos, &neg, a, c.intercept);
        assert!(at(c.slope) >= at(c.slope * 1.01) && at(c.slope) >= at(c.slope * 0.99));
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
