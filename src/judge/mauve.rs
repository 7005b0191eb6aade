//! MAUVE (Pillutla et al., NeurIPS 2021): natural and generated samples are embedded, the
//! embeddings of both quantised together by k-means (linfa-clustering), and the two cluster
//! histograms P (natural) and Q (generated) compared along the divergence frontier: for
//! R_λ = λP + (1 − λ)Q, the points (exp(−c·KL(Q‖R_λ)), exp(−c·KL(P‖R_λ))); MAUVE is the area
//! under that curve (1: the same distribution; c = 5 as in the paper).

use crate::{Error, Result};
use linfa::DatasetBase;
use linfa::traits::{Fit, Predict};
use linfa_clustering::KMeans;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The scaling constant of the divergence curve.
const C: f64 = 5.0;

/// KL(a‖b) of two histograms (b > 0 wherever a > 0).
fn kl(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .filter(|(x, _)| **x > 0.0)
        .map(|(x, y)| x * (x / y).ln())
        .sum()
}

/// MAUVE of two histograms over the same clusters.
pub fn from_histograms(p: &[f64], q: &[f64]) -> f64 {
    let mut pts = vec![(0.0, 1.0)];
    let steps = 100;
    for i in 1..steps {
        let l = i as f64 / steps as f64;
        let r: Vec<f64> = p
            .iter()
            .zip(q)
            .map(|(a, b)| l * a + (1.0 - l) * b)
            .collect();
        pts.push(((-C * kl(q, &r)).exp(), (-C * kl(p, &r)).exp()));
    }
    pts.push((1.0, 0.0));
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts.windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum()
}

/// MAUVE of natural (`p`) and generated (`q`) embeddings (rows of equal width), quantised into
/// `clusters` k-means clusters (0: one per ten samples).
pub fn mauve(p: &[Vec<f32>], q: &[Vec<f32>], clusters: usize) -> Result<f64> {
    let (lp, lq, k) = quantise(p, q, clusters)?;
    Ok(from_histograms(&histogram(&lp, k), &histogram(&lq, k)))
}

/// MAUVE as [`mauve`] and its 95% interval, value ± 1.96 bootstrap standard errors (clipped to
/// [0, 1]): `resamples` draws of the natural and the generated samples with replacement
/// (seeded), each scored on the same clusters. The interval holds the sampling noise of the two
/// histograms, not that of the clustering. (The bootstrap's percentiles would sit below the
/// value: a resample only adds histogram noise, and noise lowers MAUVE.)
pub fn mauve_interval(
    p: &[Vec<f32>],
    q: &[Vec<f32>],
    clusters: usize,
    resamples: usize,
    seed: u64,
) -> Result<(f64, [f64; 2])> {
    let (lp, lq, k) = quantise(p, q, clusters)?;
    let value = from_histograms(&histogram(&lp, k), &histogram(&lq, k));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut redraw = |l: &[usize]| -> Vec<usize> {
        (0..l.len())
            .map(|_| l[rng.random_range(0..l.len())])
            .collect()
    };
    let draws: Vec<f64> = (0..resamples)
        .map(|_| {
            let (bp, bq) = (redraw(&lp), redraw(&lq));
            from_histograms(&histogram(&bp, k), &histogram(&bq, k))
        })
        .collect();
    let se = std_dev(&draws);
    Ok((
        value,
        [(value - 1.96 * se).max(0.0), (value + 1.96 * se).min(1.0)],
    ))
}

/// The sample standard deviation (NaN for fewer than two values).
pub(crate) fn std_dev(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// The share of `labels` in each of `k` clusters.
fn histogram(labels: &[usize], k: usize) -> Vec<f64> {
    let mut h = vec![0.0; k];
    for &c in labels {
        h[c] += 1.0 / labels.len() as f64;
    }
    h
}

/// The k-means cluster of every natural and every generated embedding, and k.
fn quantise(
    p: &[Vec<f32>],
    q: &[Vec<f32>],
    clusters: usize,
) -> Result<(Vec<usize>, Vec<usize>, usize)> {
    let d = p.first().map_or(0, Vec::len);
    let n = p.len() + q.len();
    if p.is_empty() || q.is_empty() || d == 0 {
        return Err(Error::Other(
            "MAUVE needs natural and generated samples".into(),
        ));
    }
    let k = if clusters == 0 {
        (n / 10).max(2)
    } else {
        clusters
    };
    let flat: Vec<f64> = p.iter().chain(q).flatten().map(|&v| v as f64).collect();
    let data = Array2::from_shape_vec((n, d), flat)
        .map_err(|e| Error::Other(format!("MAUVE embeddings: {e}")))?;
    let ds = DatasetBase::from(data);
    let model = KMeans::params(k)
        .max_n_iterations(100)
        .tolerance(1e-4)
        .fit(&ds)
        .map_err(|e| Error::Other(format!("k-means for MAUVE: {e}")))?;
    let labels = model.predict(&ds).to_vec();
    let lq = labels[p.len()..].to_vec();
    let mut lp = labels;
    lp.truncate(p.len());
    Ok((lp, lq, k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::eval::interval95;

    #[test]
    fn identical_is_one_and_shifted_is_lower() {
        assert!((from_histograms(&[0.5, 0.5], &[0.5, 0.5]) - 1.0).abs() < 1e-9);
        assert!(from_histograms(&[1.0, 0.0], &[0.0, 1.0]) < 0.02);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut cloud = |n: usize, shift: f32| -> Vec<Vec<f32>> {
            (0..n)
                .map(|_| {
                    (0..4)
                        .map(|j| rng.random::<f32>() + if j == 0 { shift } else { 0.0 })
                        .collect()
                })
                .collect()
        };
        let (a, b) = (cloud(400, 0.0), cloud(400, 0.0));
        let same = mauve(&a, &b, 20).unwrap();
        let shifted = mauve(&a, &cloud(400, 0.7), 20).unwrap();
        assert!(same > 0.9, "same distribution: {same}");
        assert!(shifted < same - 0.3, "shifted {shifted} vs same {same}");
    }

    /// Points in `k` tight, far-apart blobs (k-means recovers them exactly), blob j drawn with
    /// probability `probs[j]`.
    fn blobs(probs: &[f64], n: usize, rng: &mut impl Rng) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut pts = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..n {
            let (mut u, mut j) = (rng.random::<f64>(), 0);
            while j + 1 < probs.len() && u >= probs[j] {
                u -= probs[j];
                j += 1;
            }
            let x = 10.0 * j as f32 + 0.01 * rng.random::<f32>();
            pts.push(vec![x, 0.01 * rng.random::<f32>()]);
            ids.push(j);
        }
        (pts, ids)
    }

    /// The bootstrap interval against the spread of MAUVE over independent fresh samples of the
    /// same two distributions, computed on the known blob histograms (no k-means, no bootstrap).
    #[test]
    fn interval_matches_the_spread_of_fresh_samples() {
        let (pp, pq) = ([0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]);
        let n = 300;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (p, _) = blobs(&pp, n, &mut rng);
        let (q, _) = blobs(&pq, n, &mut rng);
        let (value, [lo, hi]) = mauve_interval(&p, &q, 4, 1000, 3).unwrap();
        let direct = mauve(&p, &q, 4).unwrap();
        assert!((value - direct).abs() < 1e-12, "{value} vs {direct}");
        assert!(lo <= value && value <= hi, "{value} outside [{lo}, {hi}]");
        let fresh: Vec<f64> = (0..400)
            .map(|_| {
                let hist = |probs: &[f64], rng: &mut ChaCha8Rng| {
                    let mut h = vec![0.0; 4];
                    for j in blobs(probs, n, rng).1 {
                        h[j] += 1.0 / n as f64;
                    }
                    h
                };
                let (hp, hq) = (hist(&pp, &mut rng), hist(&pq, &mut rng));
                from_histograms(&hp, &hq)
            })
            .collect();
        let [flo, fhi] = interval95(fresh);
        let (width, fresh_width) = (hi - lo, fhi - flo);
        assert!(
            width > 0.7 * fresh_width && width < 1.4 * fresh_width,
            "bootstrap width {width:.4} vs fresh samples' {fresh_width:.4}"
        );
        let ten = |v: &[Vec<f32>]| -> Vec<Vec<f32>> { (0..10).flat_map(|_| v.to_vec()).collect() };
        let (_, [blo, bhi]) = mauve_interval(&ten(&p), &ten(&q), 4, 1000, 3).unwrap();
        assert!(
            bhi - blo < 0.5 * width,
            "10x the samples: {} vs {width}",
            bhi - blo
        );
    }
}
