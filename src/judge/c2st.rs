//! The classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017): a fresh classifier learns
//! to separate natural from generated windows on one sample of each and is scored on another;
//! its held-out AUROC is the statistic (0.5: the two are indistinguishable to it). Both halves
//! serve once as training and once as test set (two-fold cross-fitting: every window is scored
//! by a classifier that never saw it), which halves the variance of the statistic. The
//! classifier is an L2-regularised logistic regression on standardised features, fitted by
//! full-batch Adam — small and deterministic.

use crate::reward::eval::{auroc, auroc_interval};

/// A fitted logistic regression: feature means and scales, weights and bias.
pub struct Logistic {
    mean: Vec<f64>,
    scale: Vec<f64>,
    w: Vec<f64>,
    b: f64,
}

impl Logistic {
    /// Fits `x` (rows of features) to `y` (true = natural) with L2 weight `l2`.
    pub fn fit(x: &[Vec<f64>], y: &[bool], l2: f64, iters: usize) -> Self {
        let d = x.first().map_or(0, Vec::len);
        let n = x.len().max(1) as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        let scale: Vec<f64> = (0..d)
            .map(|j| {
                let v = x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
                v.sqrt().max(1e-8)
            })
            .collect();
        let z: Vec<Vec<f64>> = x
            .iter()
            .map(|r| (0..d).map(|j| (r[j] - mean[j]) / scale[j]).collect())
            .collect();
        let (mut w, mut b) = (vec![0.0; d], 0.0);
        let (mut m, mut v) = (vec![0.0; d + 1], vec![0.0; d + 1]);
        let (lr, b1, b2) = (0.05, 0.9, 0.999);
        for it in 1..=iters {
            let mut g = vec![0.0; d + 1];
            for (r, &yi) in z.iter().zip(y) {
                let p = sigmoid(dot(&w, r) + b);
                let e = p - if yi { 1.0 } else { 0.0 };
                for j in 0..d {
                    g[j] += e * r[j] / n;
                }
                g[d] += e / n;
            }
            for j in 0..d {
                g[j] += l2 * w[j];
            }
            for j in 0..=d {
                m[j] = b1 * m[j] + (1.0 - b1) * g[j];
                v[j] = b2 * v[j] + (1.0 - b2) * g[j] * g[j];
                let step = lr * (m[j] / (1.0 - b1.powi(it as i32)))
                    / ((v[j] / (1.0 - b2.powi(it as i32))).sqrt() + 1e-8);
                if j < d {
                    w[j] -= step;
                } else {
                    b -= step;
                }
            }
        }
        Self { mean, scale, w, b }
    }

    /// P(natural) of a row of features.
    pub fn predict(&self, r: &[f64]) -> f64 {
        let z: Vec<f64> = r
            .iter()
            .enumerate()
            .map(|(j, &v)| (v - self.mean[j]) / self.scale[j])
            .collect();
        sigmoid(dot(&self.w, &z) + self.b)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The test's outcome: held-out AUROC and its bootstrap 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct C2st {
    pub auroc: f64,
    pub ci95: [f64; 2],
}

/// The classifier fitted on (`nat`, `gen`) scoring (`other_nat`, `other_gen`): scores, labels.
fn fit_and_score(
    (nat, gen_): (&[Vec<f64>], &[Vec<f64>]),
    (other_nat, other_gen): (&[Vec<f64>], &[Vec<f64>]),
) -> (Vec<f64>, Vec<bool>) {
    let x: Vec<Vec<f64>> = nat.iter().chain(gen_).cloned().collect();
    let y: Vec<bool> = (0..x.len()).map(|i| i < nat.len()).collect();
    let model = Logistic::fit(&x, &y, 1e-2, 300);
    let scores = other_nat
        .iter()
        .chain(other_gen)
        .map(|r| model.predict(r))
        .collect();
    let labels = (0..other_nat.len() + other_gen.len())
        .map(|i| i < other_nat.len())
        .collect();
    (scores, labels)
}

/// The cross-fitted test of natural and generated feature rows of two halves (`nat[h]`,
/// `gen[h]`): the classifier of each half scores the other; AUROC of all scores.
pub fn test(nat: [&[Vec<f64>]; 2], gen_: [&[Vec<f64>]; 2], seed: u64) -> C2st {
    let (mut s, mut l) = fit_and_score((nat[0], gen_[0]), (nat[1], gen_[1]));
    let (s2, l2) = fit_and_score((nat[1], gen_[1]), (nat[0], gen_[0]));
    s.extend(s2);
    l.extend(l2);
    C2st {
        auroc: auroc(&s, &l),
        ci95: auroc_interval(&s, &l, 1000, seed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn gauss(rng: &mut impl Rng, n: usize, shift: f64) -> Vec<Vec<f64>> {
        (0..n)
            .map(|_| {
                (0..3)
                    .map(|j| {
                        let u1: f64 = 1.0 - rng.random::<f64>();
                        let u2: f64 = rng.random();
                        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
                            + if j == 0 { shift } else { 0.0 }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn same_distribution_is_chance_and_separated_ones_are_found() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (a, b, c, d) = (
            gauss(&mut rng, 300, 0.0),
            gauss(&mut rng, 300, 0.0),
            gauss(&mut rng, 300, 0.0),
            gauss(&mut rng, 300, 0.0),
        );
        let same = test([&a, &c], [&b, &d], 2);
        assert!(same.ci95[0] <= 0.5 && 0.5 <= same.ci95[1], "{same:?}");
        let (e, f) = (gauss(&mut rng, 300, 3.0), gauss(&mut rng, 300, 3.0));
        let apart = test([&a, &c], [&e, &f], 2);
        assert!(apart.auroc > 0.95, "{apart:?}");
    }
}
