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
    let labels = model.predict(&ds);
    let (mut hp, mut hq) = (vec![0.0; k], vec![0.0; k]);
    for (i, &c) in labels.iter().enumerate() {
        if i < p.len() {
            hp[c] += 1.0 / p.len() as f64;
        } else {
            hq[c] += 1.0 / q.len() as f64;
        }
    }
    Ok(from_histograms(&hp, &hq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

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
}
