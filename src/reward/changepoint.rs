//! The single change point of a reward-data window: tokens before K are natural, tokens from K
//! on are generated. Per-token labels follow from K; given per-token P(natural) p_t, the
//! posterior over K is
//!
//!   P(K = k | x) ∝ π(k) · Π_{t<k} p_t · Π_{t≥k} (1 − p_t),   k = 0 … N,
//!
//! worked out in O(N) with prefix sums, and P(natural) of the window is the posterior median of
//! K/N (it minimises the expected absolute error), read continuously (the mass of k spread over
//! [k − ½, k + ½]) so that scores rank windows without ties.

/// The per-token labels of a window of `n` tokens cut at `k`: 1 (natural) before k, 0 after.
pub fn token_labels(k: usize, n: usize) -> Vec<f32> {
    (0..n).map(|t| if t < k { 1.0 } else { 0.0 }).collect()
}

/// The cut K of a window of `n` tokens from its label P(natural) = K/N.
pub fn cut_of(p_natural: f32, n: usize) -> usize {
    ((p_natural as f64 * n as f64).round() as usize).min(n)
}

/// The prior log-odds that token `t` of a window of `n` tokens is natural, P(t < K) against
/// P(t ≥ K), under the posterior's uniform prior over K = 0 … n: ln((n − t) / (t + 1)).
pub fn prior_logit(t: usize, n: usize) -> f64 {
    ((n - t.min(n)) as f64 / (t + 1) as f64).ln()
}

/// log Π_{t<k} p_t · Π_{t≥k} (1 − p_t) for k = 0 … N, from log p_t and log(1 − p_t).
pub fn segment_loglik(log_p: &[f64], log_q: &[f64]) -> Vec<f64> {
    let n = log_p.len();
    let total_q: f64 = log_q.iter().sum();
    let mut out = Vec::with_capacity(n + 1);
    let (mut cp, mut cq) = (0.0, 0.0);
    out.push(total_q);
    for t in 0..n {
        cp += log_p[t];
        cq += log_q[t];
        out.push(cp + total_q - cq);
    }
    out
}

/// The posterior P(K = k | x), k = 0 … N, from the logits z_t of per-token P(natural) (p_t =
/// σ(z_t)) and a uniform prior over 0 … N.
pub fn posterior(logits: &[f32]) -> Vec<f64> {
    let log_p: Vec<f64> = logits.iter().map(|&z| log_sigmoid(z as f64)).collect();
    let log_q: Vec<f64> = logits.iter().map(|&z| log_sigmoid(-z as f64)).collect();
    let ll = segment_loglik(&log_p, &log_q);
    let max = ll.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = ll.iter().map(|&v| (v - max).exp()).collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// log σ(z), computed without overflow.
pub fn log_sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        -(-z).exp().ln_1p()
    } else {
        z - z.exp().ln_1p()
    }
}

/// The continuous median of a posterior over k = 0 … N (the mass of k spread uniformly over
/// [k − ½, k + ½], clamped to [0, N]).
pub fn median(post: &[f64]) -> f64 {
    let n = (post.len() - 1) as f64;
    let mut cdf = 0.0;
    for (k, &p) in post.iter().enumerate() {
        if cdf + p >= 0.5 && p > 0.0 {
            let m = k as f64 - 0.5 + (0.5 - cdf) / p;
            return m.clamp(0.0, n);
        }
        cdf += p;
    }
    n
}

/// The most probable cut (the boundary estimate).
pub fn mode(post: &[f64]) -> usize {
    post.iter()
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |b, (k, &p)| if p > b.1 { (k, p) } else { b },
        )
        .0
}

/// P(natural) of a window from its per-token logits: the posterior median of K/N.
pub fn p_natural(logits: &[f32]) -> f32 {
    let n = logits.len().max(1) as f64;
    (median(&posterior(logits)) / n) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The posterior by enumeration: for every k, the product written out term by term.
    fn brute_force(p: &[f64]) -> Vec<f64> {
        let n = p.len();
        let w: Vec<f64> = (0..=n)
            .map(|k| {
                (0..n)
                    .map(|t| if t < k { p[t] } else { 1.0 - p[t] })
                    .product()
            })
            .collect();
        let s: f64 = w.iter().sum();
        w.iter().map(|v| v / s).collect()
    }

    #[test]
    fn posterior_equals_brute_force_enumeration() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for n in [1, 2, 7, 16, 40] {
            for _ in 0..20 {
                let z: Vec<f32> = (0..n).map(|_| rng.random_range(-4.0..4.0)).collect();
                let p: Vec<f64> = z.iter().map(|&v| 1.0 / (1.0 + (-v as f64).exp())).collect();
                let fast = posterior(&z);
                let slow = brute_force(&p);
                for (a, b) in fast.iter().zip(&slow) {
                    assert!((a - b).abs() < 1e-9, "n {n}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn a_clear_cut_is_found() {
        // Confident natural for 10 tokens, confident generated after: K = 10 of 32.
        let z: Vec<f32> = (0..32).map(|t| if t < 10 { 6.0 } else { -6.0 }).collect();
        let post = posterior(&z);
        assert_eq!(mode(&post), 10);
        assert!((median(&post) - 10.0).abs() < 0.5);
        assert!((p_natural(&z) - 10.0 / 32.0).abs() < 0.02);
        // All natural / all generated.
        assert!(p_natural(&[8.0; 20]) > 0.97);
        assert!(p_natural(&[-8.0; 20]) < 0.03);
    }

    #[test]
    fn median_of_known_distributions() {
        // All mass on k = 3: the median is 3.
        assert_eq!(median(&[0.0, 0.0, 0.0, 1.0, 0.0]), 3.0);
        // Half on 1, half on 3: the CDF reaches ½ at the top of k = 1's interval.
        assert!((median(&[0.0, 0.5, 0.0, 0.5]) - 1.5).abs() < 1e-12);
        // Uniform over 0..=4 (5 values): the continuous median is the middle, 2.
        assert!((median(&[0.2; 5]) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn labels_follow_the_cut() {
        assert_eq!(token_labels(3, 5), vec![1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(token_labels(0, 2), vec![0.0, 0.0]);
        assert_eq!(cut_of(0.25, 64), 16);
        assert_eq!(cut_of(1.0, 64), 64);
        for k in 0..=64 {
            let l = token_labels(k, 64);
            assert_eq!(l.iter().sum::<f32>() as usize, k);
            assert_eq!(cut_of(k as f32 / 64.0, 64), k);
        }
    }
}
