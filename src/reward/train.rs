//! `train-reward`: the reward model trained on a reward dataset — trunk from a generator
//! checkpoint, a fresh head, the trunk frozen or partly fine-tuned, early stopping on the val
//! loss, and the frozen-trunk fast path (pooled features computed once).

use super::changepoint;
use super::dataset::{RewardDataset, TokenizationInfo};
use super::eval;
use super::features::View;
use super::lexicon::Lexicon;
use super::model::{self, FeatureSource, HeadSpec, SharedStates};
use crate::checkpoint::{self, Checkpoint, CheckpointParts, FEATURE_MODEL, LoadReport, TrainState};
use crate::data::TokenFile;
use crate::metrics::JsonlLog;
use crate::model::{Dropout, GPT, Mode, Pooling, Precision, RewardHeadKind};
use crate::tokenizer::Tokenizer;
use crate::train::optim::{self, AdamW, AdamWConfig, WeightAverage};
use crate::util::lock::DirLock;
use crate::util::{device, fsutil, progress, rng::mix, stop, to_host};
use crate::{Error, Result};
use burn::tensor::activation::{log_sigmoid, log_softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::ProgressBar;
use rand::{SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

crate::choice! {
    /// The optimizer of the trainable parameters.
    pub enum Optimizer("optimizer") {
        /// Adam (no weight decay).
        Adam = "adam",
        /// AdamW with `weight_decay`.
        #[default]
        AdamW = "adamw",
    }
}

crate::choice! {
    /// The training objective. `mse` and `cross_entropy` train the pooled head on the
    /// [P(natural), P(synthetic)] pair (the seed's recipe); the `token_*` losses train the token
    /// head on every token's label (natural before K, generated from K on).
    pub enum RewardLoss("loss") {
        /// Pooled head: mean squared error against the label pair.
        Mse = "mse",
        /// Pooled head: cross-entropy against the label pair (soft labels).
        CrossEntropy = "cross_entropy",
        /// Token head: binary cross-entropy of every token's label.
        TokenBce = "token_bce",
        /// Token head: cross-entropy of the true cut K under the change-point posterior.
        TokenChangepoint = "token_changepoint",
        /// Token head: the sum of the two.
        TokenBoth = "token_both",
        /// Token head: `token_both` plus the expected |k − K| / T under the change-point
        /// posterior (the risk of the cut the model reports, in the window's units: the MAE
        /// it is judged by, trained directly). The default, with the position prior: it measured
        /// best on held-out seeds (BENCHMARKS.md).
        #[default]
        TokenRisk = "token_risk",
    }
}

crate::choice! {
    /// What the token head's logits mean to the per-token BCE. The change-point posterior reads
    /// them as evidence (odds of natural against generated from the token's own view) under its
    /// uniform prior over the cut; a BCE on the same logits makes them posterior odds instead,
    /// which already hold where the token sits (late tokens are more often generated), and the
    /// posterior then counts that position prior once per token.
    pub enum TokenPrior("token_prior") {
        /// The BCE reads the logits as they are (posterior odds of every token).
        None = "none",
        /// The BCE adds each position's prior log-odds of being natural under the posterior's
        /// uniform prior over K (`changepoint::prior_logit`), so the logits are evidence only,
        /// as the change-point posterior reads them (the default).
        #[default]
        Position = "position",
    }
}

impl RewardLoss {
    /// The head this objective trains.
    pub fn head(self) -> RewardHeadKind {
        match self {
            RewardLoss::Mse | RewardLoss::CrossEntropy => RewardHeadKind::Pooled,
            _ => RewardHeadKind::Token,
        }
    }
}

/// `train-reward` configuration (TOML + `--key=value`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RewardTrainConfig {
    /// Generator (or reward) checkpoint to start from.
    pub base: String,
    /// Reward dataset directory.
    pub data: String,
    pub out_dir: String,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Linear warmup of the learning rate over this many optimizer steps.
    pub warmup_steps: usize,
    /// Cosine decay of the learning rate from `lr` to `min_lr` over the run's steps (nanoGPT's
    /// schedule); false: constant after the warmup.
    pub decay_lr: bool,
    pub min_lr: f64,
    /// Evaluate and keep an exponential moving average of the trained weights, updated after
    /// every optimizer step with this decay (e.g. 0.999: about the last 1,000 steps); 0: the
    /// weights as trained.
    pub ema_decay: f64,
    pub optimizer: Optimizer,
    pub weight_decay: f64,
    pub grad_clip: f64,
    pub reward_head_hidden_dim: usize,
    pub pooling: Pooling,
    pub loss: RewardLoss,
    /// Token head: what the logits mean to the per-token BCE (see [`TokenPrior`]).
    pub token_prior: TokenPrior,
    /// Token head: read the generator's white-box features of every token (log q, entropy, σ,
    /// z, log-rank, u), computed with the generator that made the data (`base`).
    pub features: bool,
    /// Token head with `features`: also read a reference language model's view of every token
    /// (log r(x_t), its entropy, and log r(x_t) − log q(x_t) against the generator): the
    /// checkpoint of a model of natural text with the generator's tokenizer, e.g. the stronger
    /// trunk; several, comma-separated, read as one mixture (the mean of their next-token
    /// distributions: an ensemble of models of natural text models it better than any one).
    /// Empty: none.
    pub reference: String,
    /// Token head: read the lexicon channel (is the word of every token among the words of the
    /// natural text the reward model trains on, and of `lexicon_text`).
    pub lexicon: bool,
    /// More natural text for the lexicon: a token file (e.g. the generator's train.bin; words
    /// cannot be memorised the way likelihoods are). Empty: the reward data's natural text only.
    pub lexicon_text: String,
    /// Token head: neighbours on each side a token's prediction sees.
    pub context: usize,
    /// The trunk's checkpoint, when not the base generator's (same tokenizer; a longer
    /// block_size is cropped to the data's).
    pub trunk: String,
    /// Dropout in the trunk while training.
    pub dropout: f64,
    pub freeze_trunk: bool,
    pub unfreeze_last_n_layers: usize,
    /// Val evaluations per epoch (evenly spaced, the last at the epoch's end); the best
    /// evaluated model is kept.
    pub evals_per_epoch: usize,
    /// Evaluations without val improvement before stopping (0 = never stop early).
    pub patience: usize,
    /// Compute the frozen trunk's states once instead of every batch (pooled, or of every token
    /// for a token head; only without dropout, and up to 8 GiB of them).
    pub fast_path: bool,
    #[serde(deserialize_with = "crate::config::seed")]
    pub seed: u64,
    pub device: String,
    /// The precision of the matrix products: `float32`, or `bfloat16` with f32 master weights
    /// (as `train`'s dtype).
    pub dtype: Precision,
    pub threads: usize,
    /// Also write the logged scalars as TensorBoard events into this directory (empty: no).
    pub tensorboard: String,
}

impl Default for RewardTrainConfig {
    fn default() -> Self {
        Self {
            base: "out/ckpt".into(),
            data: "data/reward_dataset".into(),
            out_dir: "out-reward".into(),
            epochs: 4,
            batch_size: 32,
            lr: 1e-3,
            warmup_steps: 100,
            decay_lr: true,
            min_lr: 3e-5,
            ema_decay: 0.0,
            optimizer: Optimizer::AdamW,
            weight_decay: 0.0,
            grad_clip: 1.0,
            reward_head_hidden_dim: 256,
            pooling: Pooling::Last,
            loss: RewardLoss::TokenRisk,
            token_prior: TokenPrior::Position,
            features: true,
            reference: String::new(),
            lexicon: true,
            lexicon_text: String::new(),
            context: 4,
            trunk: String::new(),
            dropout: 0.0,
            freeze_trunk: true,
            unfreeze_last_n_layers: 0,
            evals_per_epoch: 2,
            patience: 0,
            fast_path: true,
            seed: 1337,
            device: "auto".into(),
            dtype: Precision::Float32,
            threads: 0,
            tensorboard: String::new(),
        }
    }
}

impl RewardTrainConfig {
    /// Rejects values that cannot train.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0
            || self.batch_size == 0
            || self.reward_head_hidden_dim == 0
            || self.evals_per_epoch == 0
        {
            return Err(Error::Config(
                "epochs, batch_size, evals_per_epoch and reward_head_hidden_dim must be positive"
                    .into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(Error::Config(format!(
                "ema_decay must be in [0, 1) (0: no averaging), got {}",
                self.ema_decay
            )));
        }
        if !self.lr.is_finite()
            || self.lr <= 0.0
            || (self.decay_lr && !(0.0..=self.lr).contains(&self.min_lr))
            || !self.weight_decay.is_finite()
            || self.weight_decay < 0.0
        {
            return Err(Error::Config(format!(
                "lr must be > 0, min_lr in [0, lr] with decay_lr, and weight_decay ≥ 0 (got {}, {} and {})",
                self.lr, self.min_lr, self.weight_decay
            )));
        }
        let reads_features = self.features && self.loss.head() == RewardHeadKind::Token;
        if self.reference_paths().next().is_some() && !reads_features {
            return Err(Error::Config(
                "reference reads the reference model beside the generator's white-box features: it needs a token loss and features = true".into(),
            ));
        }
        Ok(())
    }

    /// The checkpoints of the reference mixture (none for an empty `reference`).
    pub fn reference_paths(&self) -> impl Iterator<Item = &str> {
        self.reference
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
    }

    /// Fails on the first file this configuration names besides its data (the trunk, the
    /// references, the lexicon text) that cannot be read: checked before any work, so a typo
    /// does not surface after hours of a cycle.
    pub fn check_inputs(&self) -> Result<()> {
        let trunk = Some(self.trunk.as_str()).filter(|t| !t.is_empty());
        for p in trunk.into_iter().chain(self.reference_paths()) {
            checkpoint::ensure_exists(Path::new(p))?;
        }
        if !self.lexicon_text.is_empty() {
            TokenFile::open(Path::new(&self.lexicon_text))?;
        }
        Ok(())
    }

    /// Whether parameter `name` of a model with `n_layer` blocks trains.
    pub fn trains(&self, name: &str, n_layer: usize) -> bool {
        is_trainable(
            name,
            n_layer,
            self.freeze_trunk,
            self.unfreeze_last_n_layers,
        )
    }

    /// The learning rate of optimizer step `step` of a run of `total` steps.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let decay = self.decay_lr.then_some((total, self.min_lr));
        optim::warmup_then(step, self.lr, self.warmup_steps, decay)
    }

    /// Whether only the head trains (the trunk entirely frozen).
    fn head_only(&self) -> bool {
        self.freeze_trunk && self.unfreeze_last_n_layers == 0
    }

    /// The head a generator gets, its features read as the data was sampled (`view`).
    pub fn head_spec(&self, view: View) -> HeadSpec {
        HeadSpec {
            kind: self.loss.head(),
            hidden: self.reward_head_hidden_dim,
            pooling: self.pooling,
            features: self.features,
            reference: self.reference_paths().count(),
            lexicon: self.lexicon,
            context: self.context,
            view,
        }
    }
}

/// Whether parameter `name` trains, given the freezing options.
pub fn is_trainable(
    name: &str,
    n_layer: usize,
    freeze_trunk: bool,
    unfreeze_last_n_layers: usize,
) -> bool {
    if name.starts_with("reward_head.") || !freeze_trunk {
        return true;
    }
    if unfreeze_last_n_layers == 0 {
        return false;
    }
    if name.starts_with("transformer.ln_f.") {
        return true;
    }
    name.strip_prefix("transformer.h.")
        .and_then(|r| r.split('.').next())
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i + unfreeze_last_n_layers >= n_layer)
}

/// The loss of predicted probabilities `p` against labels `y` (both `[B, 2]`; pooled head).
pub fn reward_loss(p: Tensor<2>, y: Tensor<2>, kind: RewardLoss) -> Tensor<1> {
    match kind {
        RewardLoss::CrossEntropy => (y * p.clamp(1e-7, 1.0).log()).sum_dim(1).mean().neg(),
        _ => (p - y).square().mean(),
    }
}

/// The token head's loss of logits `z` `[B, T]` (P(natural) = σ(z)) for windows cut at `cuts`:
/// the mean binary cross-entropy of every token's label (of σ(z + the position's prior
/// log-odds) with [`TokenPrior::Position`]), the mean −log P(K = cut | x) under the
/// change-point posterior (uniform prior over 0 … T), or their sum, plus with
/// [`RewardLoss::TokenRisk`] the posterior's expected |k − cut| / T.
pub fn token_loss(z: Tensor<2>, cuts: &[usize], kind: RewardLoss, prior: TokenPrior) -> Tensor<1> {
    let [b, t] = z.dims();
    let dev = z.device();
    let labels: Vec<f32> = cuts
        .iter()
        .flat_map(|&k| changepoint::token_labels(k, t))
        .collect();
    let y = Tensor::<2>::from_data(TensorData::new(labels, [b, t]), &dev);
    let (lp, lq) = (log_sigmoid(z.clone()), log_sigmoid(z.clone().neg()));
    let bce = || {
        let (lp, lq) = match prior {
            TokenPrior::None => (lp.clone(), lq.clone()),
            TokenPrior::Position => {
                let offsets: Vec<f32> = (0..t)
                    .map(|i| changepoint::prior_logit(i, t) as f32)
                    .collect();
                let o = Tensor::<2>::from_data(TensorData::new(offsets, [1, t]), &dev);
                let zp = z.clone() + o;
                (log_sigmoid(zp.clone()), log_sigmoid(zp.neg()))
            }
        };
        (y.clone() * lp + (y.clone().neg() + 1.0) * lq).mean().neg()
    };
    let log_posterior = || {
        // log-likelihood of every cut k = 0 … T: Σ_{t<k} log p + Σ_{t≥k} log(1 − p).
        let zero = Tensor::<2>::zeros([b, 1], &dev);
        let cp = Tensor::cat(vec![zero.clone(), lp.clone().cumsum(1)], 1);
        let cq = Tensor::cat(vec![zero, lq.clone().cumsum(1)], 1);
        let total_q = lq.clone().sum_dim(1);
        let ll = cp - cq + total_q;
        log_softmax(ll, 1)
    };
    let cut_nll = |log_post: Tensor<2>| {
        let picked: Vec<i64> = cuts.iter().map(|&k| k as i64).collect();
        let idx = Tensor::<2, Int>::from_data(TensorData::new(picked, [b, 1]), &dev);
        log_post.gather(1, idx).mean().neg()
    };
    let risk = |log_post: Tensor<2>| {
        let dist: Vec<f32> = cuts
            .iter()
            .flat_map(|&c| (0..=t).map(move |k| k.abs_diff(c) as f32 / t as f32))
            .collect();
        let d = Tensor::<2>::from_data(TensorData::new(dist, [b, t + 1]), &dev);
        (log_post.exp() * d).sum_dim(1).mean()
    };
    match kind {
        RewardLoss::TokenChangepoint => cut_nll(log_posterior()),
        RewardLoss::TokenBoth => bce() + cut_nll(log_posterior()).div_scalar(t as f64),
        RewardLoss::TokenRisk => {
            let lp = log_posterior();
            bce() + cut_nll(lp.clone()).div_scalar(t as f64) + risk(lp)
        }
        _ => bce(),
    }
}

/// What the frozen trunk gives the head, for every sample, on the host (computed in batches):
/// its pooled state `[n, n_embd]` for a pooled head, its final state of every token
/// `[n, N, n_embd]` for a token head.
fn trunk_states(
    model: &GPT,
    ds: &RewardDataset,
    kind: RewardHeadKind,
    batch: usize,
    workers: usize,
) -> Vec<f32> {
    let n = ds.len();
    let starts: Vec<usize> = (0..n).step_by(batch).collect();
    let parts = device::par_map(&starts, workers, |&start| {
        let rows: Vec<usize> = (start..(start + batch).min(n)).collect();
        let (x, _) = ds.batch(&rows);
        let idx = model.tokens(&x, rows.len());
        match kind {
            RewardHeadKind::Pooled => to_host(model.pooled(idx, None)),
            RewardHeadKind::Token => to_host(model.hidden_states(idx)),
        }
    });
    parts.concat()
}

/// The most host memory the frozen trunk's cached states may take; above it, the trunk runs on
/// every batch instead.
const STATE_CACHE_BYTES: usize = 8 << 30;

/// What training produced.
pub struct RewardTrainOutcome {
    pub best_val_loss: f64,
    pub epochs_run: usize,
    pub seconds: f64,
    pub checkpoint: PathBuf,
    pub load_report: LoadReport,
    /// (epoch, train loss, val loss) of every evaluation, the first before training.
    pub history: Vec<(usize, f64, f64)>,
}

/// One split with what is computed once for it: the frozen trunk's states (fast path: pooled,
/// or of every token, see [`trunk_states`]) and the features of every token (token head with
/// feature channels), `width` each.
struct Data {
    ds: RewardDataset,
    states: Vec<f32>,
    features: Vec<f32>,
    width: usize,
}

/// How the splits' inputs are computed once: the frozen trunk's states on the fast path, and the
/// token features of the head's channels. With `share`, a feature model's pass gives the trunk's
/// states too (the trunk is that model, frozen).
struct Inputs<'a> {
    model: &'a GPT,
    kind: RewardHeadKind,
    source: Option<&'a FeatureSource>,
    fast: bool,
    share: SharedStates,
    workers: usize,
}

impl Inputs<'_> {
    /// A split and its inputs; with `folds`, its token features are cross-fitted (see
    /// [`crossfit_features`]).
    fn data(&self, ds: RewardDataset, folds: Option<&[Vec<u32>]>) -> Data {
        // The windows as token lists and their white-box rows, only where features are read.
        let (windows, white, shared) = match self.source {
            Some(s) => {
                let windows: Vec<Vec<u32>> = (0..ds.len()).map(|i| ds.tokens(i)).collect();
                let (white, shared) = s.model_rows(&windows, self.share);
                (windows, white, shared)
            }
            None => (Vec::new(), Vec::new(), Vec::new()),
        };
        let states = if self.share != SharedStates::No {
            shared
        } else if self.fast {
            trunk_states(self.model, &ds, self.kind, 64, self.workers)
        } else {
            Vec::new()
        };
        let features = match (self.source, folds) {
            (Some(s), Some(f)) => crossfit_features(s, &ds, &windows, &white, f),
            (Some(s), None) => s.assemble(&windows, &white),
            (None, _) => Vec::new(),
        };
        Data {
            ds,
            states,
            features,
            width: self.source.map_or(0, FeatureSource::width),
        }
    }
}

impl Data {
    /// The cached trunk states of rows `rows`, `per_row` values each, row-major.
    fn state_rows(&self, rows: &[usize], per_row: usize) -> Vec<f32> {
        gather_rows(&self.states, rows, per_row)
    }

    /// The token features of rows `rows` as a `[B, N, F]` tensor (None without them).
    fn feature_tensor(&self, rows: &[usize], dev: &Device) -> Option<Tensor<3>> {
        if self.width == 0 {
            return None;
        }
        let n = self.ds.meta.block_size;
        let f = gather_rows(&self.features, rows, n * self.width);
        Some(Tensor::from_data(
            TensorData::new(f, [rows.len(), n, self.width]),
            dev,
        ))
    }
}

/// Rows `rows` of the row-major `values` (`per_row` values each), concatenated.
fn gather_rows(values: &[f32], rows: &[usize], per_row: usize) -> Vec<f32> {
    rows.iter()
        .flat_map(|&i| values[i * per_row..(i + 1) * per_row].iter().copied())
        .collect()
}

/// A reward model in training with its data, optimizer and log.
struct Trainer<'a> {
    cfg: &'a RewardTrainConfig,
    model: GPT,
    opt: AdamW,
    /// The average of the trained weights that is evaluated and saved (`ema_decay` > 0).
    avg: Option<WeightAverage>,
    train: Data,
    val: Data,
    fast: bool,
    tokenizer: Tokenizer,
    /// What the token head reads besides the tokens, saved with the model.
    source: Option<FeatureSource>,
    ckpt: PathBuf,
    log: JsonlLog,
    /// The learning rate of the last optimizer step.
    lr: f64,
}

/// Val figures after an epoch: the objective's loss, and the MAE of P(natural) against K/N.
struct ValFigures {
    loss: f64,
    mae: f64,
}

impl Trainer<'_> {
    /// The loss of rows `rows` of `d` under `m`, and P(natural) of each row as predicted
    /// (host copies only when `predict`).
    fn batch_loss(
        &self,
        m: &GPT,
        d: &Data,
        rows: &[usize],
        drop: Option<&Dropout>,
        predict: bool,
    ) -> Result<(Tensor<1>, Vec<f32>)> {
        let b = rows.len();
        let n = d.ds.meta.block_size;
        let (x, y) = d.ds.batch(rows);
        let dev = m.device();
        let ids = || Tensor::<2, Int>::from_data(TensorData::new(x.clone(), [b, n]), &dev);
        let c = m.config.n_embd;
        if self.cfg.loss.head() == RewardHeadKind::Token {
            let feats = d.feature_tensor(rows, &dev);
            let z = if self.fast {
                let x = d.state_rows(rows, n * c);
                m.token_head(
                    Tensor::from_data(TensorData::new(x, [b, n, c]), &dev),
                    feats,
                )?
            } else {
                m.token_logits(ids(), feats, drop)?
            };
            let cuts: Vec<usize> = y.chunks(2).map(|l| changepoint::cut_of(l[0], n)).collect();
            let preds = if predict {
                let host = to_host(z.clone().detach());
                host.chunks(n).map(changepoint::p_natural).collect()
            } else {
                Vec::new()
            };
            return Ok((
                token_loss(z, &cuts, self.cfg.loss, self.cfg.token_prior),
                preds,
            ));
        }
        let yt = Tensor::<2>::from_data(TensorData::new(y, [b, 2]), &dev);
        let p = if self.fast {
            let fx = d.state_rows(rows, c);
            m.head_probs(Tensor::<2>::from_data(TensorData::new(fx, [b, c]), &dev))?
        } else {
            m.reward_probs(ids(), drop)?
        };
        let preds = if predict {
            model::probs_natural(p.clone().detach())
        } else {
            Vec::new()
        };
        Ok((reward_loss(p, yt, self.cfg.loss), preds))
    }

    /// The model as evaluated and saved: the weights' average, or the weights as trained.
    fn current(&self) -> GPT {
        match &self.avg {
            Some(a) => a.apply(&self.model),
            None => self.model.inference(),
        }
    }

    /// The loss and MAE over the val split (chunks of 256, no gradients, no dropout).
    fn val_figures(&self) -> Result<ValFigures> {
        let inf = self.current();
        let n = self.val.ds.len();
        let rows: Vec<usize> = (0..n).collect();
        let chunks: Vec<&[usize]> = rows.chunks(256).collect();
        let parts = device::par_map(&chunks, device::workers(self.cfg.threads), |chunk| {
            let (l, preds) = self.batch_loss(&inf, &self.val, chunk, None, true)?;
            let mae: f64 = chunk
                .iter()
                .zip(preds)
                .map(|(&i, p)| (p as f64 - self.val.ds.label(i)[0] as f64).abs())
                .sum();
            Ok::<_, Error>((l.into_scalar::<f32>() as f64 * chunk.len() as f64, mae))
        });
        let (mut loss, mut mae) = (0.0, 0.0);
        for part in parts {
            let (l, m) = part?;
            loss += l;
            mae += m;
        }
        Ok(ValFigures {
            loss: loss / n as f64,
            mae: mae / n as f64,
        })
    }

    /// Saves the model as the run's checkpoint.
    fn save(&self, epoch: usize, best: f64) -> Result<()> {
        let state = TrainState {
            epoch: Some(epoch),
            best_val_loss: Some(best),
            base: Some(self.cfg.base.clone()),
            config: serde_json::to_value(self.cfg).ok(),
            ..Default::default()
        };
        checkpoint::save(
            &self.ckpt,
            &CheckpointParts {
                model: &self.current(),
                optimizer: None,
                train_state: state,
                tokenizer: Some(&self.tokenizer),
                feature_models: self.source.as_ref().map_or_else(Vec::new, |s| {
                    let generator = s.white_box.as_ref().map(|(g, _)| (FEATURE_MODEL.into(), g));
                    let reference = s.reference.iter().enumerate();
                    let reference = reference.map(|(i, r)| (checkpoint::reference_dir(i), r));
                    generator.into_iter().chain(reference).collect()
                }),
                extra: self
                    .source
                    .as_ref()
                    .and_then(|s| s.lexicon.as_ref())
                    .map(|l| vec![(model::LEXICON, l.to_tsv().into_bytes())])
                    .unwrap_or_default(),
            },
        )
    }

    /// The loss of train rows `rows` and its gradients. Rows are split over the worker threads
    /// (each its own dropout noise from `seed`), except on the fast path (a head on cached
    /// features is too small to share).
    fn batch_grads(&self, rows: &[usize], seed: u64) -> Result<(f64, Vec<Option<Tensor<1>>>)> {
        let p = self.cfg.dropout;
        let workers = if self.fast {
            1
        } else {
            device::workers(self.cfg.threads)
        };
        let b = rows.len();
        let (v, g, errs) = optim::parallel_grads(&self.model, b, workers, |m, w, r0, r1| {
            let drop = (p > 0.0).then(|| Dropout::new(mix(seed ^ w as u64)));
            match self.batch_loss(m, &self.train, &rows[r0..r1], drop.as_ref(), false) {
                Ok((loss, _)) => (loss.mul_scalar((r1 - r0) as f64 / b as f64), None),
                Err(e) => (Tensor::zeros([1], &m.device()), Some(e)),
            }
        });
        match errs.into_iter().flatten().next() {
            Some(e) => Err(e),
            None => Ok((v, g)),
        }
    }

    /// One pass over the shuffled train split, evaluating `evals_per_epoch` times through
    /// `at_eval(self, bar, mean train loss since the last evaluation)`, which says whether to
    /// stop early; returns whether it did.
    fn epoch(
        &mut self,
        epoch: usize,
        show_progress: bool,
        mut at_eval: impl FnMut(&mut Self, &ProgressBar, f64) -> Result<bool>,
    ) -> Result<bool> {
        let n = self.train.ds.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(
            self.cfg.seed ^ epoch as u64
        )));
        let bs = self.cfg.batch_size;
        let nb = n.div_ceil(bs);
        let total = nb * self.cfg.epochs;
        let k = self.cfg.evals_per_epoch.min(nb);
        let template =
            format!("epoch {epoch:>3} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}}] {{msg}}");
        let pb = progress::bar(nb, 0, show_progress, &template);
        let (mut sum, mut count) = (0.0, 0);
        for (i, rows) in order.chunks(bs).enumerate() {
            let (v, mut g) =
                self.batch_grads(rows, mix(self.cfg.seed ^ mix((epoch << 32 | i) as u64)))?;
            if self.cfg.grad_clip > 0.0 {
                optim::clip_grad_norm(&mut g, self.cfg.grad_clip);
            }
            self.lr = self.cfg.lr_at((epoch - 1) * nb + i, total);
            self.opt.step(&mut self.model, g, self.lr);
            if let Some(a) = &mut self.avg {
                a.update(&self.model);
            }
            sum += v * rows.len() as f64;
            count += rows.len();
            if stop::requested() {
                pb.finish_and_clear();
                return Err(Error::Interrupted(format!(
                    "stopped in epoch {epoch}; the best reward model so far is in {}; rerun the same command to train again",
                    self.ckpt.display()
                )));
            }
            pb.set_message(format!("loss {v:.5}"));
            pb.inc(1);
            // k evaluations per epoch: where floor((i + 1) k / nb) steps up (the last at i = nb - 1).
            if (i + 1) * k / nb > i * k / nb {
                let stopped = at_eval(self, &pb, sum / count as f64)?;
                (sum, count) = (0.0, 0);
                if stopped {
                    pb.finish_and_clear();
                    return Ok(true);
                }
            }
        }
        pb.finish_and_clear();
        Ok(false)
    }

    /// Evaluates on the val split after `step` optimizer steps (in epoch `epoch`), logs it,
    /// saves the model when it is the best so far; returns whether patience has run out.
    fn evaluate(
        &mut self,
        run: &mut Run,
        epoch: usize,
        pb: &ProgressBar,
        train_loss: f64,
    ) -> Result<bool> {
        let v = self.val_figures()?;
        run.history.push((epoch, train_loss, v.loss));
        self.log.write(
            &serde_json::json!({"epoch": epoch, "eval": run.history.len() - 1,
            "train_loss": train_loss, "val_loss": v.loss, "val_mae": v.mae, "lr": self.lr,
            "elapsed_s": run.t0.elapsed().as_secs_f64()}),
        )?;
        let improved = v.loss < run.best;
        progress::say(
            pb,
            format!(
                "epoch {epoch}: train loss {train_loss:.5}, val loss {:.5}, val MAE {:.4}{}",
                v.loss,
                v.mae,
                if improved { " (best)" } else { "" }
            ),
        );
        if improved {
            run.best = v.loss;
            run.since_best = 0;
            self.save(epoch, run.best)?;
            return Ok(false);
        }
        run.since_best += 1;
        let out = self.cfg.patience > 0 && run.since_best >= self.cfg.patience;
        if out {
            progress::say(
                pb,
                format!(
                    "early stop: no val improvement for {} evaluations",
                    self.cfg.patience
                ),
            );
        }
        Ok(out)
    }
}

/// A run's record: the best val loss, evaluations since it, every evaluation's
/// (epoch, train loss, val loss), the start.
struct Run {
    best: f64,
    since_best: usize,
    history: Vec<(usize, f64, f64)>,
    t0: std::time::Instant,
}

/// Opens both splits of `data`, checked against the tokenizer and the block size.
fn open_data(
    data: &Path,
    tok: &Tokenizer,
    block_size: usize,
) -> Result<(RewardDataset, RewardDataset)> {
    let expect = TokenizationInfo {
        method: tok.method().into(),
        vocab_size: tok.vocab_size(),
    };
    let train = RewardDataset::open(data, "train", Some(&expect))?;
    let val = RewardDataset::open(data, "val", Some(&expect))?;
    if train.meta.block_size > block_size {
        return Err(Error::Mismatch(format!(
            "the dataset's block_size is {} but the model's is {block_size}",
            train.meta.block_size
        )));
    }
    Ok((train, val))
}

/// The reward model before training: the trunk of `cfg.trunk` (else of the base) with a fresh
/// head, its positions cropped to the data's block size `n`.
fn initial_model(
    cfg: &RewardTrainConfig,
    base: &Checkpoint,
    spec: &HeadSpec,
    n: usize,
    dev: &Device,
) -> Result<(GPT, LoadReport)> {
    let trunk_ck;
    let trunk = if cfg.trunk.is_empty() {
        base
    } else {
        trunk_ck = Checkpoint::open(Path::new(&cfg.trunk))?;
        if trunk_ck.config.vocab_size != base.config.vocab_size {
            return Err(Error::Mismatch(format!(
                "the trunk {} has vocab_size {} but the base generator has {}: they must share a tokenizer",
                cfg.trunk, trunk_ck.config.vocab_size, base.config.vocab_size
            )));
        }
        &trunk_ck
    };
    let (mut model, report) = model::from_checkpoint(trunk, spec, dev, cfg.seed)?;
    if model.config.block_size < n {
        return Err(Error::Mismatch(format!(
            "the dataset's block_size is {n} but the trunk's is {}",
            model.config.block_size
        )));
    }
    if model.config.block_size > n {
        model.wpe = model.wpe.narrow(0, 0, n);
        model.config.block_size = n;
    }
    model.config.dropout = cfg.dropout;
    Ok((model, report))
}

/// Folds of the lexicon's cross-fitting.
const LEXICON_FOLDS: usize = 5;

/// The token features of the train split (`windows`, their white-box rows `white`) with a
/// cross-fitted lexicon channel: the samples of block b are judged by the lexicon without the
/// words of the natural text of the blocks b' ≡ b (mod 5) (`folds[f]` holds fold f's natural
/// tokens). Without it, every natural word of a training sample would be known by construction
/// while val text has unknown words, and the model would learn "unknown word ⇒ generated" far
/// too confidently.
fn crossfit_features(
    src: &FeatureSource,
    ds: &RewardDataset,
    windows: &[Vec<u32>],
    white: &[Vec<f32>],
    folds: &[Vec<u32>],
) -> Vec<f32> {
    let (Some(lex), spc) = (&src.lexicon, ds.meta.samples_per_chunk.max(1)) else {
        return src.assemble(windows, white);
    };
    let w = ds.meta.block_size * src.width();
    let mut out = vec![0.0f32; ds.len() * w];
    for (f, fold) in folds.iter().enumerate() {
        let held = FeatureSource {
            lexicon: Some(lex.without(&src.tokenizer.decode(fold))),
            ..src.clone()
        };
        let rows: Vec<usize> = (0..ds.len())
            .filter(|i| (i / spc) % folds.len() == f)
            .collect();
        let mut row = Vec::with_capacity(w);
        for i in rows {
            row.clear();
            held.push_window(&windows[i], &white[i], &mut row);
            out[i * w..(i + 1) * w].copy_from_slice(&row);
        }
    }
    out
}

/// The natural tokens of each lexicon fold of the train split: block b (of `n` tokens) goes to
/// fold b mod 5.
fn lexicon_folds(train: &RewardDataset, tokenizer: &Tokenizer) -> Result<Vec<Vec<u32>>> {
    let n = train.meta.block_size;
    let stream = eval::natural_stream(train, tokenizer, false)?;
    let mut folds = vec![Vec::new(); LEXICON_FOLDS];
    for (b, block) in stream.chunks(n).enumerate() {
        folds[b % LEXICON_FOLDS].extend_from_slice(block);
    }
    Ok(folds)
}

/// The token head's feature channels: the generator's white-box view (`features`) and the
/// lexicon of the natural text of `train` (`lexicon`); None for a pooled head or no channel.
fn feature_source(
    cfg: &RewardTrainConfig,
    token: bool,
    base: &Checkpoint,
    train: &RewardDataset,
    tokenizer: &Tokenizer,
    view: View,
    dev: &Device,
) -> Result<Option<FeatureSource>> {
    if !token || !(cfg.features || cfg.lexicon) {
        return Ok(None);
    }
    let white_box = cfg
        .features
        .then(|| Ok::<_, Error>((base.model(dev)?, view)))
        .transpose()?;
    let lexicon = cfg
        .lexicon
        .then(|| {
            let mut ids = eval::natural_stream(train, tokenizer, false)?;
            if !cfg.lexicon_text.is_empty() {
                ids.extend(TokenFile::open(Path::new(&cfg.lexicon_text))?.to_vec());
            }
            Ok::<_, Error>(Lexicon::from_text(&tokenizer.decode(&ids)))
        })
        .transpose()?;
    let reference = cfg
        .reference_paths()
        .map(|p| reference_model(p, base, train.meta.block_size, dev))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(FeatureSource {
        white_box,
        reference,
        lexicon,
        tokenizer: tokenizer.clone(),
        memo: None,
    }))
}

/// The reference model of `path`: a language model with the base generator's vocabulary and
/// windows of `n` tokens or more.
fn reference_model(path: &str, base: &Checkpoint, n: usize, dev: &Device) -> Result<GPT> {
    let ck = Checkpoint::open(Path::new(path))?;
    let c = &ck.config;
    if c.mode != Mode::Generator || c.vocab_size != base.config.vocab_size || c.block_size < n {
        return Err(Error::Mismatch(format!(
            "the reference {path} must be a language model (a generator checkpoint) with the base generator's vocabulary ({}) and block_size ≥ {n}; it has vocab_size {} and block_size {}",
            base.config.vocab_size, c.vocab_size, c.block_size
        )));
    }
    ck.model(dev)
}

/// Which feature model's pass gives the frozen trunk's states on the fast path (`fast`, token
/// head): the trunk's, when the trunk is that model (same weights, same precision) — the
/// generator's own, or the reference's checkpoint.
fn shared_states(
    cfg: &RewardTrainConfig,
    fast: bool,
    source: Option<&FeatureSource>,
) -> SharedStates {
    let white = source.is_some_and(|s| s.white_box.is_some());
    let same = |a: &str, b: &str| {
        !a.is_empty() && std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok()
    };
    if !(fast && white && cfg.dtype == Precision::Float32) {
        SharedStates::No
    } else if cfg.trunk.is_empty() {
        SharedStates::Generator
    } else if same(&cfg.trunk, cfg.reference_paths().next().unwrap_or_default()) {
        SharedStates::Reference
    } else {
        SharedStates::No
    }
}

/// Loads the base, the data and what is computed once (pooled or white-box features): a
/// trainer at epoch 0.
fn setup<'a>(
    cfg: &'a RewardTrainConfig,
    base: &Checkpoint,
    dev: &Device,
) -> Result<(Trainer<'a>, LoadReport)> {
    let tokenizer = base.tokenizer()?;
    let (train_ds, val_ds) = open_data(Path::new(&cfg.data), &tokenizer, base.config.block_size)?;
    let view = View {
        temperature: train_ds.meta.temperature,
        top_k: train_ds.meta.top_k,
    };
    let spec = cfg.head_spec(view);
    let n = train_ds.meta.block_size;
    let (mut model, report) = initial_model(cfg, base, &spec, n, dev)?;
    model.precision = cfg.dtype;
    let token = spec.kind == RewardHeadKind::Token;
    let per_row = model.config.n_embd * if token { n } else { 1 };
    let cache_bytes = (train_ds.len() + val_ds.len()) * per_row * 4;
    let fast = cfg.head_only() && cfg.fast_path && cfg.dropout == 0.0;
    let fast = fast && cache_bytes <= STATE_CACHE_BYTES;
    let source = feature_source(cfg, token, base, &train_ds, &tokenizer, view, dev)?;
    let folds = match &source {
        Some(s) if s.lexicon.is_some() => Some(lexicon_folds(&train_ds, &tokenizer)?),
        _ => None,
    };
    let share = shared_states(cfg, fast && token, source.as_ref());
    let inputs = Inputs {
        model: &model,
        kind: spec.kind,
        source: source.as_ref(),
        fast,
        share,
        workers: device::workers(cfg.threads),
    };
    let train = inputs.data(train_ds, folds.as_deref());
    let val = inputs.data(val_ds, None);
    let nl = model.config.n_layer;
    let model = model.into_trainable(|name| cfg.trains(name, nl));
    let weight_decay = match cfg.optimizer {
        Optimizer::Adam => 0.0,
        Optimizer::AdamW => cfg.weight_decay,
    };
    let opt = AdamW::new(AdamWConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay,
    });
    let out_dir = PathBuf::from(&cfg.out_dir);
    fsutil::create_dir_all(&out_dir)?;
    let trainer = Trainer {
        cfg,
        model,
        opt,
        avg: (cfg.ema_decay > 0.0).then(|| WeightAverage::new(cfg.ema_decay)),
        train,
        val,
        fast,
        tokenizer,
        source,
        ckpt: out_dir.join("ckpt"),
        log: JsonlLog::open(&out_dir.join("metrics.jsonl"), None)?.with_tensorboard(
            &cfg.tensorboard,
            "epoch",
            "reward",
        )?,
        lr: 0.0,
    };
    Ok((trainer, report))
}

/// Trains a reward model on a reward dataset, its trunk from `cfg.base` (or `cfg.trunk`).
pub fn train(cfg: &RewardTrainConfig, show_progress: bool) -> Result<RewardTrainOutcome> {
    train_from(cfg, &Checkpoint::open(Path::new(&cfg.base))?, show_progress)
}

/// [`train`] from the already opened base checkpoint `base` (`cfg.base` is only recorded).
pub fn train_from(
    cfg: &RewardTrainConfig,
    base: &Checkpoint,
    show_progress: bool,
) -> Result<RewardTrainOutcome> {
    cfg.validate()?;
    let _lock = DirLock::acquire(Path::new(&cfg.out_dir))?;
    device::set_threads(cfg.threads);
    let dev = device::select(&cfg.device)?;
    let t0 = std::time::Instant::now();
    let (mut t, report) = setup(cfg, base, &dev)?;
    let v0 = t.val_figures()?;
    let mut run = Run {
        best: v0.loss,
        since_best: 0,
        history: vec![(0, f64::NAN, v0.loss)],
        t0,
    };
    t.log
        .write(&serde_json::json!({"epoch": 0, "val_loss": v0.loss, "val_mae": v0.mae}))?;
    t.save(0, v0.loss)?;
    let mut epochs_run = 0;
    for epoch in 1..=cfg.epochs {
        epochs_run = epoch;
        let stopped = t.epoch(epoch, show_progress, |t, pb, train_loss| {
            t.evaluate(&mut run, epoch, pb, train_loss)
        })?;
        if stopped {
            break;
        }
    }
    Ok(RewardTrainOutcome {
        best_val_loss: run.best,
        epochs_run,
        seconds: t0.elapsed().as_secs_f64(),
        checkpoint: t.ckpt,
        load_report: report,
        history: run.history,
    })
}
