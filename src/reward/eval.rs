//! `eval-reward`: how well the reward model tells natural from generated text, next to honest
//! baselines — MAE of P(natural) against K/N (vs always 0.5), the boundary error in tokens,
//! AUROC on fully natural vs fully generated windows (vs the base model's own log-likelihood,
//! the zero-shot perplexity detector), a calibration table and plots.

use super::dataset::RewardDataset;
use super::model::probs_natural;
use crate::data::{self, TokenFile};
use crate::metrics::{Series, plot_svg};
use crate::model::GPT;
use crate::sampling::{self, SampleOptions, Seqs};
use crate::tokenizer::Tokenizer;
use crate::util::{device, fsutil, to_host};
use crate::{Error, Result};
use burn::tensor::activation::log_softmax;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Area under the ROC curve of `scores` for `labels` (true = positive), ties counted half.
pub fn auroc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// P(natural) of equal-length windows, in batches.
pub fn score_windows(reward: &GPT, windows: &[Vec<u32>], batch: usize) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(windows.len());
    for chunk in windows.chunks(batch.max(1)) {
        let ids: Vec<i64> = chunk.iter().flatten().map(|&t| t as i64).collect();
        out.extend(probs_natural(
            reward.reward_probs(reward.tokens(&ids, chunk.len()), None)?,
        ));
    }
    Ok(out)
}

/// Mean log-probability per token of each window under a generator (tokens 1.. given the prefix).
pub fn mean_logprob(model: &GPT, windows: &[Vec<u32>], batch: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(windows.len());
    for chunk in windows.chunks(batch.max(1)) {
        let b = chunk.len();
        let t = chunk[0].len() - 1;
        let x: Vec<i64> = chunk
            .iter()
            .flat_map(|w| w[..t].iter().map(|&v| v as i64))
            .collect();
        let y: Vec<i64> = chunk
            .iter()
            .flat_map(|w| w[1..].iter().map(|&v| v as i64))
            .collect();
        let logp = log_softmax(model.forward(model.tokens(&x, b), None), 2);
        let picked = logp
            .gather(2, model.tokens(&y, b).reshape([b, t, 1]))
            .reshape([b, t])
            .mean_dim(1)
            .reshape([b]);
        out.extend(to_host(picked).iter().map(|&v| v as f64));
    }
    out
}

/// The natural val token stream a dataset was built from (its metadata's `source`).
pub fn val_stream(ds: &RewardDataset, tok: &Tokenizer) -> Result<Vec<u32>> {
    let src = &ds.meta.source;
    if let Some(p) = src.strip_prefix("text:") {
        let text = fsutil::read_text(Path::new(p))?;
        return tok.encode(data::split_text(&text, ds.meta.train_split).1);
    }
    if let Some(files) = src.strip_prefix("binary:")
        && let Some((_, val)) = files.split_once(',')
    {
        return Ok(TokenFile::open(Path::new(val))?.to_vec());
    }
    Err(Error::Other(format!(
        "cannot find the natural val text of the dataset (source '{src}')"
    )))
}

/// One bin of the calibration table (predicted P(natural) in [lo, lo + 0.1)).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub bin: String,
    pub count: usize,
    #[serde(with = "crate::util::nan_as_null")]
    pub mean_predicted: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub mean_true: f64,
}

/// What `eval-reward` measures (`eval.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    pub num_val_samples: usize,
    pub block_size: usize,
    #[serde(with = "crate::util::nan_as_null")]
    pub mse: f64,
    /// MAE of P(natural) against K/N, and of always answering 0.5.
    #[serde(with = "crate::util::nan_as_null")]
    pub mae: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub mae_baseline: f64,
    /// Boundary error in tokens: |round(P·N) − K|, and for the midpoint.
    #[serde(with = "crate::util::nan_as_null")]
    pub boundary_mae_tokens: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub boundary_mae_tokens_baseline: f64,
    /// AUROC of natural vs generated windows, and of the base model's log-likelihood.
    #[serde(with = "crate::util::nan_as_null")]
    pub auroc: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub auroc_loglik_baseline: f64,
    pub auroc_windows_per_class: usize,
    #[serde(with = "crate::util::nan_as_null")]
    pub mean_loglik_natural: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub mean_loglik_generated: f64,
    pub calibration: Vec<CalibrationBin>,
}

impl EvalReport {
    /// Reads an `eval.json`.
    pub fn read(path: &Path) -> Result<Self> {
        serde_json::from_slice(&fsutil::read(path)?)
            .map_err(|e| Error::format(path, format!("not an eval report: {e}")))
    }
}

/// Regression figures of predictions `preds` against true K/N `truth` for windows of `n`:
/// (MSE, MAE, MAE of 0.5, boundary MAE in tokens, boundary MAE of the midpoint).
fn regression(preds: &[f32], truth: &[f64], n: usize) -> [f64; 5] {
    let m = preds.len() as f64;
    let nf = n as f64;
    let mean = |f: &dyn Fn(f64, f64) -> f64| {
        preds
            .iter()
            .zip(truth)
            .map(|(&p, &t)| f(p as f64, t))
            .sum::<f64>()
            / m
    };
    [
        mean(&|p, t| (p - t).powi(2)),
        mean(&|p, t| (p - t).abs()),
        mean(&|_, t| (0.5 - t).abs()),
        mean(&|p, t| ((p * nf).round() - (t * nf).round()).abs()),
        mean(&|_, t| ((nf / 2.0).round() - (t * nf).round()).abs()),
    ]
}

/// Detection windows: `windows` untouched blocks of the natural val text and as many windows
/// the base model generates after each one's first token (the dataset's sampling settings).
fn detection_windows(
    base: &GPT,
    val: &RewardDataset,
    tok: &Tokenizer,
    windows: usize,
    seed: u64,
) -> Result<(Seqs, Seqs)> {
    let n = val.meta.block_size;
    let stream = val_stream(val, tok)?;
    if stream.len() / n == 0 {
        return Err(Error::Mismatch(
            "the val text is shorter than one block".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let natural: Vec<Vec<u32>> = (0..windows)
        .map(|_| {
            let s = rng.random_range(0..=stream.len() - n);
            stream[s..s + n].to_vec()
        })
        .collect();
    let prompts: Vec<Vec<u32>> = natural.iter().map(|w| vec![w[0]]).collect();
    let sample = SampleOptions {
        temperature: val.meta.temperature,
        top_k: val.meta.top_k,
    };
    let workers = device::workers(0);
    let generated = sampling::generate(base, &prompts, n - 1, &sample, &mut rng, workers)?;
    Ok((natural, generated))
}

/// The calibration table: 10 bins of predicted P(natural), with counts and means.
fn calibration(preds: &[f32], truth: &[f64]) -> Vec<CalibrationBin> {
    let mut bins = vec![(0usize, 0.0f64, 0.0f64); 10];
    for (&p, &t) in preds.iter().zip(truth) {
        let b = ((p as f64 * 10.0) as usize).min(9);
        bins[b].0 += 1;
        bins[b].1 += p as f64;
        bins[b].2 += t;
    }
    bins.iter()
        .enumerate()
        .map(|(i, &(c, sp, st))| CalibrationBin {
            bin: format!("{:.1}-{:.1}", i as f64 / 10.0, (i + 1) as f64 / 10.0),
            count: c,
            mean_predicted: if c > 0 { sp / c as f64 } else { f64::NAN },
            mean_true: if c > 0 { st / c as f64 } else { f64::NAN },
        })
        .collect()
}

/// Draws `calibration.svg` and `predictions_hist.svg` into `out_dir`.
fn plot_calibration(bins: &[CalibrationBin], out_dir: &Path) -> Result<()> {
    let cal: Vec<(f64, f64)> = bins
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| (b.mean_predicted, b.mean_true))
        .collect();
    plot_svg(
        &out_dir.join("calibration.svg"),
        "calibration: predicted P(natural) vs true K/N",
        "mean predicted",
        "mean true K/N",
        &[
            Series {
                name: "reward model".into(),
                points: cal,
            },
            Series {
                name: "ideal".into(),
                points: vec![(0.0, 0.0), (1.0, 1.0)],
            },
        ],
    )?;
    let hist: Vec<(f64, f64)> = bins
        .iter()
        .enumerate()
        .map(|(i, b)| (i as f64 / 10.0 + 0.05, b.count as f64))
        .collect();
    plot_svg(
        &out_dir.join("predictions_hist.svg"),
        "histogram of predicted P(natural) (val)",
        "P(natural)",
        "samples",
        &[Series {
            name: "count".into(),
            points: hist,
        }],
    )
}

/// Runs the evaluation, writes `eval.json`, `calibration.svg` and `predictions_hist.svg` into
/// `out_dir` and returns the report.
pub fn evaluate(
    reward: &GPT,
    base: &GPT,
    val: &RewardDataset,
    tok: &Tokenizer,
    windows: usize,
    seed: u64,
    out_dir: &Path,
) -> Result<EvalReport> {
    let n = val.meta.block_size;
    // Regression on the val split: P(natural) against K/N.
    let seqs: Vec<Vec<u32>> = (0..val.len()).map(|i| val.tokens(i)).collect();
    let preds = score_windows(reward, &seqs, 128)?;
    let truth: Vec<f64> = (0..val.len()).map(|i| val.label(i)[0] as f64).collect();
    let [mse, mae, mae_base, bmae, bmae_base] = regression(&preds, &truth, n);
    // Detection: untouched val blocks vs windows generated after a one-token natural prompt.
    let (natural, generated) = detection_windows(base, val, tok, windows, seed)?;
    let all: Vec<Vec<u32>> = natural.iter().chain(&generated).cloned().collect();
    let labels: Vec<bool> = (0..all.len()).map(|i| i < natural.len()).collect();
    let rscore: Vec<f64> = score_windows(reward, &all, 128)?
        .iter()
        .map(|&v| v as f64)
        .collect();
    let ll = mean_logprob(base, &all, 64);
    // Generated text is more likely under its own model, so low likelihood means natural.
    let neg_ll: Vec<f64> = ll.iter().map(|v| -v).collect();
    let bins = calibration(&preds, &truth);
    fsutil::create_dir_all(out_dir)?;
    plot_calibration(&bins, out_dir)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let report = EvalReport {
        num_val_samples: val.len(),
        block_size: n,
        mse,
        mae,
        mae_baseline: mae_base,
        boundary_mae_tokens: bmae,
        boundary_mae_tokens_baseline: bmae_base,
        auroc: auroc(&rscore, &labels),
        auroc_loglik_baseline: auroc(&neg_ll, &labels),
        auroc_windows_per_class: windows,
        mean_loglik_natural: mean(&ll[..natural.len()]),
        mean_loglik_generated: mean(&ll[natural.len()..]),
        calibration: bins,
    };
    let text = serde_json::to_string_pretty(&report).map_err(|e| Error::Other(e.to_string()))?;
    fsutil::write_bytes_atomic(&out_dir.join("eval.json"), text.as_bytes())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_by_hand() {
        // Positives 0.9, 0.4; negatives 0.5, 0.1: pairs won 1 + 1 + 0 + 1 = 3 of 4.
        assert_eq!(
            auroc(&[0.9, 0.4, 0.5, 0.1], &[true, true, false, false]),
            0.75
        );
        assert_eq!(auroc(&[1.0, 0.0], &[true, false]), 1.0);
        assert_eq!(auroc(&[0.3, 0.3], &[true, false]), 0.5);
    }
}
