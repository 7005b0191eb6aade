//! `train-reward`: the reward model trained on a reward dataset — trunk from a generator
//! checkpoint, a fresh head, the trunk frozen or partly fine-tuned, early stopping on the val
//! loss, and the frozen-trunk fast path (pooled features computed once).

use super::dataset::{RewardDataset, TokenizationInfo};
use super::model;
use crate::checkpoint::{self, Checkpoint, CheckpointParts, LoadReport, TrainState};
use crate::metrics::JsonlLog;
use crate::model::{GPT, Pooling};
use crate::tokenizer::Tokenizer;
use crate::train::optim::{self, AdamW, AdamWConfig};
use crate::util::{device, fsutil, progress, rng::mix, to_host};
use crate::{Error, Result};
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
    /// The training loss on the [P(natural), P(synthetic)] pair.
    pub enum RewardLoss("loss") {
        /// Mean squared error against the label pair.
        #[default]
        Mse = "mse",
        /// Cross-entropy against the label pair (soft labels).
        CrossEntropy = "cross_entropy",
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
    pub optimizer: Optimizer,
    pub weight_decay: f64,
    pub grad_clip: f64,
    pub reward_head_hidden_dim: usize,
    pub pooling: Pooling,
    pub loss: RewardLoss,
    pub freeze_trunk: bool,
    pub unfreeze_last_n_layers: usize,
    /// Epochs without val improvement before stopping (0 = never stop early).
    pub patience: usize,
    /// Compute the frozen trunk's pooled features once instead of every batch.
    pub fast_path: bool,
    pub seed: u64,
    pub device: String,
    pub threads: usize,
}

impl Default for RewardTrainConfig {
    fn default() -> Self {
        Self {
            base: "out/ckpt".into(),
            data: "data/reward_dataset".into(),
            out_dir: "out-reward".into(),
            epochs: 10,
            batch_size: 32,
            lr: 1e-4,
            optimizer: Optimizer::AdamW,
            weight_decay: 0.0,
            grad_clip: 1.0,
            reward_head_hidden_dim: 256,
            pooling: Pooling::Last,
            loss: RewardLoss::Mse,
            freeze_trunk: true,
            unfreeze_last_n_layers: 0,
            patience: 3,
            fast_path: true,
            seed: 1337,
            device: "auto".into(),
            threads: 0,
        }
    }
}

impl RewardTrainConfig {
    /// Rejects values that cannot train.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 || self.reward_head_hidden_dim == 0 {
            return Err(Error::Config(
                "epochs, batch_size and reward_head_hidden_dim must be positive".into(),
            ));
        }
        if !self.lr.is_finite()
            || self.lr <= 0.0
            || !self.weight_decay.is_finite()
            || self.weight_decay < 0.0
        {
            return Err(Error::Config(format!(
                "lr must be > 0 and weight_decay ≥ 0 (got {} and {})",
                self.lr, self.weight_decay
            )));
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

    /// Whether only the head trains (the trunk entirely frozen).
    fn head_only(&self) -> bool {
        self.freeze_trunk && self.unfreeze_last_n_layers == 0
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

/// The loss of predicted probabilities `p` against labels `y` (both `[B, 2]`).
pub fn reward_loss(p: Tensor<2>, y: Tensor<2>, kind: RewardLoss) -> Tensor<1> {
    match kind {
        RewardLoss::CrossEntropy => (y * p.clamp(1e-7, 1.0).log()).sum_dim(1).mean().neg(),
        RewardLoss::Mse => (p - y).square().mean(),
    }
}

/// Pooled trunk features of every sample, `[n, n_embd]` on the host (computed in batches).
fn features(model: &GPT, ds: &RewardDataset, batch: usize, workers: usize) -> Vec<f32> {
    let n = ds.len();
    let starts: Vec<usize> = (0..n).step_by(batch).collect();
    let parts = device::par_map(&starts, workers, |&start| {
        let rows: Vec<usize> = (start..(start + batch).min(n)).collect();
        let (x, _) = ds.batch(&rows);
        to_host(model.pooled(model.tokens(&x, rows.len()), None))
    });
    parts.concat()
}

/// What training produced.
pub struct RewardTrainOutcome {
    pub best_val_loss: f64,
    pub epochs_run: usize,
    pub seconds: f64,
    pub checkpoint: PathBuf,
    pub load_report: LoadReport,
    /// (epoch, train loss, val loss).
    pub history: Vec<(usize, f64, f64)>,
}

/// One split and, on the fast path, its pooled features.
struct Data {
    ds: RewardDataset,
    features: Vec<f32>,
}

/// A reward model in training with its data, optimizer and log.
struct Trainer<'a> {
    cfg: &'a RewardTrainConfig,
    model: GPT,
    opt: AdamW,
    train: Data,
    val: Data,
    fast: bool,
    tokenizer: Tokenizer,
    ckpt: PathBuf,
    log: JsonlLog,
}

impl Trainer<'_> {
    /// The loss of rows `rows` of `d` under `m` (on the fast path, from the features).
    fn batch_loss(&self, m: &GPT, d: &Data, rows: &[usize]) -> Result<Tensor<1>> {
        let b = rows.len();
        let (x, y) = d.ds.batch(rows);
        let dev = m.device();
        let yt = Tensor::<2>::from_data(TensorData::new(y, [b, 2]), &dev);
        let p = if self.fast {
            let c = m.config.n_embd;
            let fx: Vec<f32> = rows
                .iter()
                .flat_map(|&i| d.features[i * c..(i + 1) * c].iter().copied())
                .collect();
            m.head_probs(Tensor::<2>::from_data(TensorData::new(fx, [b, c]), &dev))?
        } else {
            let n = m.config.block_size;
            let ids = Tensor::<2, Int>::from_data(TensorData::new(x, [b, n]), &dev);
            m.reward_probs(ids, None)?
        };
        Ok(reward_loss(p, yt, self.cfg.loss))
    }

    /// Mean loss over the val split (chunks of 256, no gradients).
    fn val_loss(&self) -> Result<f64> {
        let inf = self.model.inference();
        let rows: Vec<usize> = (0..self.val.ds.len()).collect();
        let mut total = 0.0;
        for chunk in rows.chunks(256) {
            let l = self.batch_loss(&inf, &self.val, chunk)?;
            total += l.into_scalar::<f32>() as f64 * chunk.len() as f64;
        }
        Ok(total / self.val.ds.len() as f64)
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
                model: &self.model.inference(),
                optimizer: None,
                train_state: state,
                tokenizer: Some(&self.tokenizer),
            },
        )
    }

    /// One pass over the shuffled train split; returns the mean train loss and the epoch's
    /// (finished) progress bar, which messages about the epoch print above.
    fn epoch(&mut self, epoch: usize, show_progress: bool) -> Result<(f64, ProgressBar)> {
        let n = self.train.ds.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(
            self.cfg.seed ^ epoch as u64
        )));
        let bs = self.cfg.batch_size;
        let template =
            format!("epoch {epoch:>3} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}}] {{msg}}");
        let pb = progress::bar(order.len().div_ceil(bs), 0, show_progress, &template);
        let mut sum = 0.0;
        for rows in order.chunks(bs) {
            let loss = self.batch_loss(&self.model, &self.train, rows)?;
            let grads = loss.backward();
            let mut g = optim::collect_grads(&self.model, &grads);
            if self.cfg.grad_clip > 0.0 {
                optim::clip_grad_norm(&mut g, self.cfg.grad_clip);
            }
            self.opt.step(&mut self.model, g, self.cfg.lr);
            let v = loss.inner().into_scalar::<f32>() as f64;
            sum += v * rows.len() as f64;
            pb.set_message(format!("loss {v:.5}"));
            pb.inc(1);
        }
        pb.finish_and_clear();
        Ok((sum / n as f64, pb))
    }
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
    if train.meta.block_size != block_size {
        return Err(Error::Mismatch(format!(
            "the dataset's block_size is {} but the model's is {block_size}",
            train.meta.block_size
        )));
    }
    Ok((train, val))
}

/// Loads the base, the data and (on the fast path) the features: a trainer at epoch 0.
fn setup<'a>(
    cfg: &'a RewardTrainConfig,
    base: &Checkpoint,
    dev: &Device,
) -> Result<(Trainer<'a>, LoadReport)> {
    let (model, report) =
        model::from_checkpoint(base, cfg.reward_head_hidden_dim, cfg.pooling, dev, cfg.seed)?;
    let tokenizer = base.tokenizer()?;
    let (train_ds, val_ds) = open_data(Path::new(&cfg.data), &tokenizer, model.config.block_size)?;
    let fast = cfg.head_only() && cfg.fast_path;
    let (tr_feat, va_feat) = if fast {
        let w = device::workers(cfg.threads);
        (
            features(&model, &train_ds, 64, w),
            features(&model, &val_ds, 64, w),
        )
    } else {
        (Vec::new(), Vec::new())
    };
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
        train: Data {
            ds: train_ds,
            features: tr_feat,
        },
        val: Data {
            ds: val_ds,
            features: va_feat,
        },
        fast,
        tokenizer,
        ckpt: out_dir.join("ckpt"),
        log: JsonlLog::open(&out_dir.join("metrics.jsonl"), None)?,
    };
    Ok((trainer, report))
}

/// Trains a reward model on a reward dataset, its trunk from `cfg.base`.
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
    device::set_threads(cfg.threads);
    let dev = device::select(&cfg.device)?;
    let t0 = std::time::Instant::now();
    let (mut t, report) = setup(cfg, base, &dev)?;
    let mut best = t.val_loss()?;
    let mut history = vec![(0, f64::NAN, best)];
    t.log
        .write(&serde_json::json!({"epoch": 0, "val_loss": best}))?;
    t.save(0, best)?;
    let (mut since_best, mut epochs_run) = (0, 0);
    for epoch in 1..=cfg.epochs {
        let (train_loss, pb) = t.epoch(epoch, show_progress)?;
        let say = |msg: String| progress::say(&pb, msg);
        let val = t.val_loss()?;
        epochs_run = epoch;
        history.push((epoch, train_loss, val));
        t.log.write(
            &serde_json::json!({"epoch": epoch, "train_loss": train_loss, "val_loss": val}),
        )?;
        let improved = val < best;
        say(format!(
            "epoch {epoch}: train loss {train_loss:.5}, val loss {val:.5}{}",
            if improved { " (best)" } else { "" }
        ));
        if improved {
            best = val;
            since_best = 0;
            t.save(epoch, best)?;
        } else {
            since_best += 1;
            if cfg.patience > 0 && since_best >= cfg.patience {
                say(format!(
                    "early stop: no val improvement for {} epochs",
                    cfg.patience
                ));
                break;
            }
        }
    }
    Ok(RewardTrainOutcome {
        best_val_loss: best,
        epochs_run,
        seconds: t0.elapsed().as_secs_f64(),
        checkpoint: t.ckpt,
        load_report: report,
        history,
    })
}
