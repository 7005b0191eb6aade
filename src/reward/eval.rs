//! `eval-reward`: how well the reward model tells natural from generated text, next to honest
//! baselines measured by our own code on the same windows.
//!
//! - Regression on the val split: MAE of P(natural) against K/N (vs always 0.5) and the boundary
//!   error |round(P·N) − K| in tokens, overall and by K bucket, with two boundary baselines: the
//!   single change point that best splits the generator's per-token Fast-DetectGPT z-scores,
//!   and the start of the first unknown word.
//! - With a reference model in the reward model (`reference`), the two-model baselines too: the
//!   likelihood-ratio detector (mean log r(x_t) − log q(x_t)) and its change point.
//! - Detection: natural windows of text neither the base model nor the reward model trained on
//!   (the dataset's val text) against windows the base model generates fresh after their first
//!   token (the dataset's sampling settings, the evaluation's own seed): the reward model's
//!   AUROC with a bootstrap 95% interval, next to the zero-shot detectors of the generator (mean
//!   log-likelihood, log-rank, entropy, Fast-DetectGPT, Binoculars) and the dictionary detector
//!   (share of whole words seen in the natural text the reward model trained on). A zero-shot
//!   score's direction is taken in its favour (max(A, 1 − A)); the reward model's never is.
//! - The mean P(natural) of generator samples at temperatures 0.7, 1.0 and 1.3 next to natural
//!   text (a reward model that rates hotter samples as more natural is exploitable).
//! - A calibration table and plots.

use super::changepoint;
use super::dataset::RewardDataset;
use super::features::{self, TokenStats, View, ZeroShot};
use super::lexicon::Lexicon;
use super::model::{ModelStats, RewardModel};
use crate::data::{self, TokenFile};
use crate::metrics::{Series, plot_svg};
use crate::model::GPT;
use crate::sampling::{self, SampleOptions, Seqs};
use crate::tokenizer::Tokenizer;
use crate::util::{device, fsutil};
use crate::{Error, Result};
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

/// The AUROC of `scores` for `labels` and its bootstrap 95% interval (`resamples` draws of
/// the windows with replacement, seeded).
pub fn auroc_interval(scores: &[f64], labels: &[bool], resamples: usize, seed: u64) -> [f64; 2] {
    let n = scores.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let draws: Vec<f64> = (0..resamples)
        .map(|_| {
            let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
            let l: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
            auroc(&s, &l)
        })
        .collect();
    interval95(draws)
}

/// The 2.5% and 97.5% percentiles of bootstrap `draws` (non-finite draws left out; NaN when
/// none is left).
pub fn interval95(mut draws: Vec<f64>) -> [f64; 2] {
    draws.retain(|a| a.is_finite());
    draws.sort_by(f64::total_cmp);
    if draws.is_empty() {
        return [f64::NAN; 2];
    }
    let at = |q: f64| draws[((draws.len() - 1) as f64 * q).round() as usize];
    [at(0.025), at(0.975)]
}

/// A natural token stream a dataset was built from (its metadata's `source`): the train or the
/// val split's.
pub fn natural_stream(ds: &RewardDataset, tok: &Tokenizer, val: bool) -> Result<Vec<u32>> {
    let src = &ds.meta.source;
    if let Some(p) = src.strip_prefix("text:") {
        let text = fsutil::read_text(Path::new(p))?;
        let (train, valtext) = data::split_text(&text, ds.meta.train_split);
        return tok.encode(if val { valtext } else { train });
    }
    if let Some(files) = src.strip_prefix("binary:")
        && let Some((train, valf)) = files.split_once(',')
    {
        let valf = valf.split(" + ").next().unwrap_or(valf);
        return Ok(TokenFile::open(Path::new(if val { valf } else { train }))?.to_vec());
    }
    Err(Error::Other(format!(
        "cannot find the natural text of the dataset (source '{src}')"
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

/// Regression figures of the val samples whose K/N falls in a bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KBucket {
    pub k_over_n: String,
    pub count: usize,
    #[serde(with = "crate::util::nan_as_null")]
    pub mae: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub boundary_mae_tokens: f64,
}

/// A baseline detector's AUROC on the detection windows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    pub name: String,
    #[serde(with = "crate::util::nan_as_null")]
    pub auroc: f64,
    /// `+` when higher scores meant natural, `-` when lower did (zero-shot scores are oriented
    /// in their favour).
    pub direction: String,
}

/// A baseline boundary estimate's error in tokens on the val split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BoundaryBaseline {
    pub name: String,
    #[serde(with = "crate::util::nan_as_null")]
    pub boundary_mae_tokens: f64,
}

/// The mean P(natural) of windows the base model generates at one temperature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemperaturePoint {
    pub temperature: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub mean_p_natural: f64,
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
    /// The same by K/N bucket.
    #[serde(default)]
    pub by_k: Vec<KBucket>,
    /// Other boundary estimates (z-score change point, first unknown word).
    #[serde(default)]
    pub boundary_baselines: Vec<BoundaryBaseline>,
    /// AUROC of natural vs generated windows and its bootstrap 95% interval.
    #[serde(with = "crate::util::nan_as_null")]
    pub auroc: f64,
    #[serde(default)]
    pub auroc_ci95: [f64; 2],
    /// The base model's mean log-likelihood's AUROC (oriented in its favour).
    #[serde(with = "crate::util::nan_as_null")]
    pub auroc_loglik_baseline: f64,
    /// Every baseline detector's AUROC on the same windows.
    #[serde(default)]
    pub baselines: Vec<Baseline>,
    pub auroc_windows_per_class: usize,
    #[serde(with = "crate::util::nan_as_null")]
    pub mean_loglik_natural: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub mean_loglik_generated: f64,
    /// Mean P(natural) of the natural detection windows, and of generator samples by temperature.
    #[serde(default, with = "crate::util::nan_as_null")]
    pub mean_p_natural_text: f64,
    #[serde(default)]
    pub temperature_sweep: Vec<TemperaturePoint>,
    pub calibration: Vec<CalibrationBin>,
}

impl EvalReport {
    /// Reads an `eval.json`.
    pub fn read(path: &Path) -> Result<Self> {
        serde_json::from_slice(&fsutil::read(path)?)
            .map_err(|e| Error::format(path, format!("not an eval report: {e}")))
    }

    /// The strongest baseline detector (highest AUROC).
    pub fn best_baseline(&self) -> Option<&Baseline> {
        self.baselines
            .iter()
            .filter(|b| b.auroc.is_finite())
            .max_by(|a, b| a.auroc.total_cmp(&b.auroc))
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

/// MAE and boundary MAE by K/N bucket (five of width 0.2, the last closed).
fn by_k(preds: &[f32], truth: &[f64], n: usize) -> Vec<KBucket> {
    (0..5)
        .map(|b| {
            let (lo, hi) = (b as f64 / 5.0, (b + 1) as f64 / 5.0);
            let (p, t): (Vec<f32>, Vec<f64>) = preds
                .iter()
                .zip(truth)
                .filter(|(_, t)| **t >= lo && (**t < hi || b == 4))
                .map(|(p, t)| (*p, *t))
                .unzip();
            let r = regression(&p, &t, n);
            KBucket {
                k_over_n: format!("{lo:.1}-{hi:.1}"),
                count: p.len(),
                mae: r[1],
                boundary_mae_tokens: r[3],
            }
        })
        .collect()
}

/// `windows` windows of the natural stream at random offsets and as many the base model
/// generates after each one's first token with `sample`.
fn detection_windows(
    base: &GPT,
    stream: &[u32],
    n: usize,
    windows: usize,
    sample: SampleOptions,
    seed: u64,
) -> Result<(Seqs, Seqs)> {
    if stream.len() < n {
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
    let workers = device::workers(0);
    let generated = sampling::generate(base, &prompts, n - 1, &sample, &mut rng, workers)?;
    Ok((natural, generated))
}

/// A zero-shot score's AUROC, its direction taken in its favour (`labels`: true = natural).
fn oriented(name: &str, scores: &[f64], labels: &[bool]) -> Baseline {
    let a = auroc(scores, labels);
    let (auroc, direction) = if a >= 0.5 { (a, "+") } else { (1.0 - a, "-") };
    Baseline {
        name: name.into(),
        auroc,
        direction: direction.into(),
    }
}

/// The zero-shot detectors' and the dictionary's AUROC (`labels`: true = natural).
fn baselines(stats: &[ZeroShot], known: &[f64], labels: &[bool]) -> Vec<Baseline> {
    let oriented = |name: &str, f: &dyn Fn(&ZeroShot) -> f64| {
        let s: Vec<f64> = stats.iter().map(f).collect();
        oriented(name, &s, labels)
    };
    vec![
        oriented("log-likelihood", &|z| z.loglik),
        oriented("log-rank", &|z| z.logrank),
        oriented("entropy", &|z| z.entropy),
        oriented("Fast-DetectGPT", &|z| z.fast_detect),
        oriented("Binoculars", &|z| z.binoculars),
        Baseline {
            name: "dictionary".into(),
            auroc: auroc(known, labels),
            direction: "+".into(),
        },
    ]
}

/// The start (in tokens) of the first unknown whole word of a window, or its length.
fn first_unknown_token(lex: &Lexicon, tok: &Tokenizer, w: &[u32]) -> usize {
    let pieces: Vec<String> = w.iter().map(|&t| tok.decode(&[t])).collect();
    let Some(at) = lex.first_unknown(&pieces.concat()) else {
        return w.len();
    };
    let mut chars = 0;
    for (i, p) in pieces.iter().enumerate() {
        chars += p.chars().count();
        if chars > at {
            return i;
        }
    }
    w.len()
}

/// The mean |estimate(i) − cuts[i]| over the val samples, in tokens.
fn boundary_error(cuts: &[usize], estimate: impl Fn(usize) -> usize) -> f64 {
    cuts.iter()
        .enumerate()
        .map(|(i, &k)| estimate(i).abs_diff(k) as f64)
        .sum::<f64>()
        / cuts.len().max(1) as f64
}

/// The base model's raw statistics of `windows` (the zero-shot baselines' input): those of the
/// reward model's scoring pass (`scored`) where that pass read the same model the same way (its
/// generator copy equal to `base` and read at temperature 1 without top-k), else a pass of its own.
fn raw_stats(
    rm: &RewardModel,
    base: &GPT,
    windows: &[Vec<u32>],
    scored: Option<&ModelStats>,
) -> Vec<Vec<TokenStats>> {
    let white = rm.features.as_ref().and_then(|f| f.white_box.as_ref());
    match (scored, white) {
        (Some(s), Some((g, view))) if *view == View::RAW && g.same_trunk(base) => {
            s.generator.clone()
        }
        _ => features::window_stats(base, windows, View::RAW, 64),
    }
}

/// The boundary baselines on the val samples `seqs` cut at `cuts`, from the base model's raw
/// statistics of them.
fn boundary_baselines(
    stats: &[Vec<TokenStats>],
    seqs: &[Vec<u32>],
    cuts: &[usize],
    lex: &Lexicon,
    tok: &Tokenizer,
) -> Vec<BoundaryBaseline> {
    let err = |f: &dyn Fn(usize) -> usize| boundary_error(cuts, f);
    vec![
        BoundaryBaseline {
            name: "Fast-DetectGPT z change point".into(),
            boundary_mae_tokens: err(&|i| {
                let z: Vec<f64> = stats[i].iter().map(|s| s.z()).collect();
                features::best_split(&z)
            }),
        },
        BoundaryBaseline {
            name: "first unknown word".into(),
            boundary_mae_tokens: err(&|i| first_unknown_token(lex, tok, &seqs[i])),
        },
    ]
}

/// The dictionary detector's words: the reward model's own lexicon when it has one, else the
/// words of the natural text it trained on.
fn dictionary(rm: &RewardModel, val: &RewardDataset) -> Result<Lexicon> {
    let tok = &rm.tokenizer;
    match rm.features.as_ref().and_then(|f| f.lexicon.clone()) {
        Some(l) => Ok(l),
        None => Ok(Lexicon::from_text(
            &tok.decode(&natural_stream(val, tok, false)?),
        )),
    }
}

/// The two-model baselines of a reward model with a reference model r, from its feature
/// models' statistics (see [`RewardModel::score_with_stats`]) of the detection windows
/// (`labels`: true = natural) and of the val samples (cut at `cuts`); None without a reference
/// model. They are the likelihood-ratio detector (a window's mean log r(x_t) − log q(x_t), q the
/// generator copy the reward model reads, through the view the data was sampled with) and the
/// likelihood-ratio change point (the median of the change-point posterior with that ratio as
/// every token's evidence: natural text modelled by the reference, generated text by the
/// generator).
fn ratio_baselines(
    labels: &[bool],
    cuts: &[usize],
    all_stats: Option<&ModelStats>,
    seq_stats: Option<&ModelStats>,
) -> Option<(Baseline, BoundaryBaseline)> {
    let scores: Vec<f64> = all_stats?
        .ratio_logits()?
        .iter()
        .map(|z| z[1..].iter().map(|&v| v as f64).sum::<f64>() / (z.len() - 1).max(1) as f64)
        .collect();
    let logits = seq_stats?.ratio_logits()?;
    let err = boundary_error(cuts, |i| {
        changepoint::cut_of(changepoint::p_natural(&logits[i]), logits[i].len())
    });
    Some((
        oriented("likelihood ratio (reference / generator)", &scores, labels),
        BoundaryBaseline {
            name: "likelihood-ratio change point".into(),
            boundary_mae_tokens: err,
        },
    ))
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

/// Mean P(natural) of windows the base model generates after the first token of each natural
/// window at temperatures 0.7, 1.0 and 1.3.
fn temperature_sweep(
    rm: &RewardModel,
    base: &GPT,
    natural: &[Vec<u32>],
    top_k: Option<usize>,
    seed: u64,
) -> Result<Vec<TemperaturePoint>> {
    let prompts: Vec<Vec<u32>> = natural.iter().map(|w| vec![w[0]]).collect();
    let n = natural.first().map_or(1, Vec::len);
    [0.7, 1.0, 1.3]
        .into_iter()
        .map(|temperature| {
            let sample = SampleOptions {
                temperature,
                top_k,
                vocab: Some(rm.tokenizer.vocab_size()),
            };
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0073_7765_6570);
            let w = device::workers(0);
            let g = sampling::generate(base, &prompts, n - 1, &sample, &mut rng, w)?;
            let p = rm.score(&g)?;
            let mean_p_natural = p.iter().map(|&v| v as f64).sum::<f64>() / p.len().max(1) as f64;
            Ok(TemperaturePoint {
                temperature,
                mean_p_natural,
            })
        })
        .collect()
}

/// Runs the evaluation, writes `eval.json`, `calibration.svg` and `predictions_hist.svg` into
/// `out_dir` and returns the report.
pub fn evaluate(
    rm: &RewardModel,
    base: &GPT,
    val: &RewardDataset,
    windows: usize,
    seed: u64,
    out_dir: &Path,
) -> Result<EvalReport> {
    let tok = &rm.tokenizer;
    let n = val.meta.block_size;
    // Regression on the val split: P(natural) against K/N.
    let seqs: Vec<Vec<u32>> = (0..val.len()).map(|i| val.tokens(i)).collect();
    let (preds, seq_stats) = rm.score_with_stats(&seqs)?;
    let truth: Vec<f64> = (0..val.len()).map(|i| val.label(i)[0] as f64).collect();
    let [mse, mae, mae_base, bmae, bmae_base] = regression(&preds, &truth, n);
    let cuts: Vec<usize> = (0..val.len())
        .map(|i| changepoint::cut_of(val.label(i)[0], n))
        .collect();
    let lex = dictionary(rm, val)?;
    // Detection: untouched val text vs windows generated after a one-token natural prompt.
    let stream = natural_stream(val, tok, true)?;
    let sample = SampleOptions {
        temperature: val.meta.temperature,
        top_k: val.meta.top_k,
        vocab: Some(tok.vocab_size()),
    };
    let (natural, generated) = detection_windows(base, &stream, n, windows, sample, seed)?;
    let all: Vec<Vec<u32>> = natural.iter().chain(&generated).cloned().collect();
    let labels: Vec<bool> = (0..all.len()).map(|i| i < natural.len()).collect();
    let (rscore, all_stats) = rm.score_with_stats(&all)?;
    let rscore: Vec<f64> = rscore.iter().map(|&v| v as f64).collect();
    let zs: Vec<ZeroShot> = raw_stats(rm, base, &all, all_stats.as_ref())
        .iter()
        .map(|s| features::zero_shot(s))
        .collect();
    let known: Vec<f64> = all
        .iter()
        .map(|w| lex.known_share(&tok.decode(w)))
        .collect();
    let mut base_list = baselines(&zs, &known, &labels);
    let seq_raw = raw_stats(rm, base, &seqs, seq_stats.as_ref());
    let mut boundary = boundary_baselines(&seq_raw, &seqs, &cuts, &lex, tok);
    let ratio = ratio_baselines(&labels, &cuts, all_stats.as_ref(), seq_stats.as_ref());
    base_list.extend(ratio.map(|(d, b)| {
        boundary.push(b);
        d
    }));
    let ll: Vec<f64> = zs.iter().map(|z| z.loglik).collect();
    let bins = calibration(&preds, &truth);
    fsutil::create_dir_all(out_dir)?;
    plot_calibration(&bins, out_dir)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let report = EvalReport {
        num_val_samples: val.len(),
        block_size: n,
        mse,
        mae,
        mae_baseline: mae_base,
        boundary_mae_tokens: bmae,
        boundary_mae_tokens_baseline: bmae_base,
        by_k: by_k(&preds, &truth, n),
        boundary_baselines: boundary,
        auroc: auroc(&rscore, &labels),
        auroc_ci95: auroc_interval(&rscore, &labels, 1000, seed),
        auroc_loglik_baseline: base_list[0].auroc,
        auroc_windows_per_class: windows,
        mean_loglik_natural: mean(&ll[..natural.len()]),
        mean_loglik_generated: mean(&ll[natural.len()..]),
        mean_p_natural_text: mean(&rscore[..natural.len()]),
        temperature_sweep: temperature_sweep(rm, base, &natural, val.meta.top_k, seed)?,
        baselines: base_list,
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
