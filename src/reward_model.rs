//! The reward model: loading a generator checkpoint into reward mode, `train-reward` (with the
//! frozen-trunk fast path) and [`RewardModel::score`].

use crate::checkpoint::{self, CheckpointParts, LoadReport};
use crate::error::{Error, Result};
use crate::metrics::JsonlLog;
use crate::model::{GPT, Mode, Pooling};
use crate::optim::{self, AdamW, AdamWConfig};
use crate::reward_dataset::{RewardDataset, TokenizationInfo};
use crate::tokenizer::Tokenizer;
use crate::{device, fsutil};
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Loads `dir` as a reward model. A generator checkpoint keeps every trunk tensor, drops the
/// (tied) lm_head and gets a fresh `reward_head` of `hidden` units with `pooling`; a reward
/// checkpoint is restored whole (its own head size and pooling win). `seed` fixes the new head.
pub fn load_reward_model(
    dir: &Path,
    hidden: usize,
    pooling: Pooling,
    device: &Device,
    seed: u64,
) -> Result<(GPT, LoadReport)> {
    let pt = crate::interop::is_torch_file(dir)
        .then(|| crate::interop::read_nanogpt(dir))
        .transpose()?;
    let mut cfg = match &pt {
        Some(ck) => ck.config.clone(),
        None => checkpoint::load_config(dir)?,
    };
    let from_generator = cfg.mode == Mode::Generator;
    if from_generator {
        cfg.mode = Mode::Reward;
        cfg.reward_head_hidden_dim = hidden;
        cfg.pooling = pooling;
    }
    let mut model = GPT::new(&cfg, device, seed)?;
    let (p, weights) = if let Some(ck) = pt {
        (dir.to_path_buf(), ck.weights)
    } else {
        let p = dir.join(checkpoint::MODEL);
        let w = checkpoint::read_safetensors(&p)?;
        (p, w)
    };
    let mut report = checkpoint::load_weights(&mut model, &weights, &p, |n| {
        from_generator && n.starts_with("reward_head.")
    })?;
    if from_generator && !report.unused.iter().any(|n| n == "lm_head.weight") {
        report
            .unused
            .push("lm_head.weight (tied to transformer.wte.weight)".into());
    }
    Ok((model, report))
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

/// A reward model with its tokenizer, for scoring token sequences.
pub struct RewardModel {
    pub model: GPT,
    pub tokenizer: Tokenizer,
    pub batch_size: usize,
    /// Batches scored at once on separate threads.
    pub workers: usize,
}

impl RewardModel {
    /// Loads a reward checkpoint (inference).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg = checkpoint::load_config(dir)?;
        if cfg.mode != Mode::Reward {
            return Err(Error::checkpoint(
                dir,
                "this is a generator checkpoint; train a reward model with `nanoreward train-reward` first",
            ));
        }
        Ok(Self {
            model: checkpoint::load_model(dir, device)?,
            tokenizer: checkpoint::load_tokenizer(dir)?,
            batch_size: 64,
            workers: 1,
        })
    }

    /// P(natural) of each sequence (1 ≤ length ≤ block_size), batched by length.
    pub fn score(&self, seqs: &[Vec<u32>]) -> Result<Vec<f32>> {
        let bs = self.model.config.block_size;
        let vs = self.model.config.vocab_size;
        if let Some(bad) = seqs.iter().find(|s| s.is_empty() || s.len() > bs) {
            return Err(Error::Mismatch(format!(
                "cannot score a sequence of {} tokens: lengths must be 1..={bs}",
                bad.len()
            )));
        }
        if let Some(t) = seqs.iter().flatten().find(|&&t| t as usize >= vs) {
            return Err(Error::Mismatch(format!(
                "token {t} is outside the model's vocabulary of {vs}"
            )));
        }
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| seqs[i].len());
        let batches: Vec<&[usize]> = order
            .chunk_by(|&a, &b| seqs[a].len() == seqs[b].len())
            .flat_map(|group| group.chunks(self.batch_size.max(1)))
            .collect();
        let scored = crate::device::par_map(&batches, self.workers, |batch| {
            let ids: Vec<i64> = batch
                .iter()
                .flat_map(|&i| seqs[i].iter().map(|&t| t as i64))
                .collect();
            let m = &self.model;
            m.reward_probs(m.tokens(&ids, batch.len()), None)
                .map(probs_natural)
        });
        let mut out = vec![0.0f32; seqs.len()];
        for (batch, v) in batches.iter().zip(scored) {
            for (&i, pv) in batch.iter().zip(v?) {
                out[i] = pv;
            }
        }
        Ok(out)
    }
}

/// Column 0 of a `[B, 2]` probability tensor.
pub fn probs_natural(p: Tensor<2>) -> Vec<f32> {
    let b = p.dims()[0];
    crate::checkpoint::HostTensor::from_tensor(p.narrow(1, 0, 1).reshape([b])).data
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
    /// `adam` or `adamw`.
    pub optimizer: String,
    pub weight_decay: f64,
    pub grad_clip: f64,
    pub reward_head_hidden_dim: usize,
    /// `last` or `mean`.
    pub pooling: String,
    /// `mse` or `cross_entropy` (soft labels).
    pub loss: String,
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
            optimizer: "adamw".into(),
            weight_decay: 0.0,
            grad_clip: 1.0,
            reward_head_hidden_dim: 256,
            pooling: "last".into(),
            loss: "mse".into(),
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
        if !matches!(self.optimizer.as_str(), "adam" | "adamw") {
            return Err(Error::Config(format!(
                "optimizer must be adam or adamw, got '{}'",
                self.optimizer
            )));
        }
        if !matches!(self.loss.as_str(), "mse" | "cross_entropy") {
            return Err(Error::Config(format!(
                "loss must be mse or cross_entropy, got '{}'",
                self.loss
            )));
        }
        self.pooling()?;
        Ok(())
    }

    /// The pooling rule.
    pub fn pooling(&self) -> Result<Pooling> {
        match self.pooling.as_str() {
            "last" => Ok(Pooling::Last),
            "mean" => Ok(Pooling::Mean),
            other => Err(Error::Config(format!(
                "pooling must be last or mean, got '{other}'"
            ))),
        }
    }
}

/// The loss of predicted probabilities `p` against labels `y` (both `[B, 2]`).
pub fn reward_loss(p: Tensor<2>, y: Tensor<2>, kind: &str) -> Tensor<1> {
    match kind {
        "cross_entropy" => (y * p.clamp(1e-7, 1.0).log()).sum_dim(1).mean().neg(),
        _ => (p - y).square().mean(),
    }
}

/// Host copies of a split: tokens `[n, N]` and labels `[n, 2]`.
struct Split {
    x: Vec<i64>,
    y: Vec<f32>,
    n: usize,
}

fn load_split(ds: &RewardDataset) -> Split {
    let n = ds.len();
    let x = (0..n)
        .flat_map(|i| ds.tokens(i))
        .map(|t| t as i64)
        .collect();
    let y = (0..n).flat_map(|i| ds.label(i)).collect();
    Split { x, y, n }
}

/// Pooled trunk features of every sample, `[n, n_embd]` on the host (computed in batches).
fn features(model: &GPT, s: &Split, block: usize, batch: usize, workers: usize) -> Vec<f32> {
    let starts: Vec<usize> = (0..s.n).step_by(batch).collect();
    let parts = crate::device::par_map(&starts, workers, |&start| {
        let b = batch.min(s.n - start);
        let idx = model.tokens(&s.x[start * block..(start + b) * block], b);
        crate::checkpoint::HostTensor::from_tensor(model.pooled(idx, None)).data
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

/// Trains a reward model on a reward dataset.
pub fn train(cfg: &RewardTrainConfig, show_progress: bool) -> Result<RewardTrainOutcome> {
    cfg.validate()?;
    device::set_threads(cfg.threads);
    let dev = device::select(&cfg.device)?;
    let base = PathBuf::from(&cfg.base);
    let (model, report) = load_reward_model(
        &base,
        cfg.reward_head_hidden_dim,
        cfg.pooling()?,
        &dev,
        cfg.seed,
    )?;
    let tok = checkpoint::load_tokenizer(&base)?;
    let expect = TokenizationInfo {
        method: tok.method().into(),
        vocab_size: tok.vocab_size(),
    };
    let data = PathBuf::from(&cfg.data);
    let train_ds = RewardDataset::open(&data, "train", Some(&expect))?;
    let val_ds = RewardDataset::open(&data, "val", Some(&expect))?;
    let n = model.config.block_size;
    if train_ds.meta.block_size != n {
        return Err(Error::Mismatch(format!(
            "the dataset's block_size is {} but the model's is {n}",
            train_ds.meta.block_size
        )));
    }
    let nl = model.config.n_layer;
    let trainable =
        |name: &str| is_trainable(name, nl, cfg.freeze_trunk, cfg.unfreeze_last_n_layers);
    let head_only = cfg.freeze_trunk && cfg.unfreeze_last_n_layers == 0;
    let fast = head_only && cfg.fast_path;
    let (tr, va) = (load_split(&train_ds), load_split(&val_ds));
    let t0 = std::time::Instant::now();
    let (tr_feat, va_feat) = if fast {
        let w = device::workers(cfg.threads);
        (
            features(&model, &tr, n, 64, w),
            features(&model, &va, n, 64, w),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let c = model.config.n_embd;
    let mut model = model.into_trainable(trainable);
    let wd = if cfg.optimizer == "adam" {
        0.0
    } else {
        cfg.weight_decay
    };
    let mut opt = AdamW::new(AdamWConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: wd,
    });
    let out_dir = PathBuf::from(&cfg.out_dir);
    fsutil::create_dir_all(&out_dir)?;
    let mut log = JsonlLog::open(&out_dir.join("metrics.jsonl"), None)?;
    let ckpt = out_dir.join("ckpt");
    // The loss of one batch of rows `r` of split `s` (features `f` on the fast path).
    let batch_loss = |m: &GPT, s: &Split, f: &[f32], rows: &[usize]| -> Result<Tensor<1>> {
        let b = rows.len();
        let y: Vec<f32> = rows
            .iter()
            .flat_map(|&i| [s.y[2 * i], s.y[2 * i + 1]])
            .collect();
        let yt = Tensor::<2>::from_data(TensorData::new(y, [b, 2]), &m.device());
        let p = if fast {
            let fx: Vec<f32> = rows
                .iter()
                .flat_map(|&i| f[i * c..(i + 1) * c].iter().copied())
                .collect();
            m.head_probs(Tensor::<2>::from_data(
                TensorData::new(fx, [b, c]),
                &m.device(),
            ))?
        } else {
            let ids: Vec<i64> = rows
                .iter()
                .flat_map(|&i| s.x[i * n..(i + 1) * n].iter().copied())
                .collect();
            m.reward_probs(
                Tensor::<2, Int>::from_data(TensorData::new(ids, [b, n]), &m.device()),
                None,
            )?
        };
        Ok(reward_loss(p, yt, &cfg.loss))
    };
    let eval_loss = |m: &GPT| -> Result<f64> {
        let inf = m.inference();
        let rows: Vec<usize> = (0..va.n).collect();
        let mut total = 0.0;
        for chunk in rows.chunks(256) {
            total += batch_loss(&inf, &va, &va_feat, chunk)?.into_scalar::<f32>() as f64
                * chunk.len() as f64;
        }
        Ok(total / va.n as f64)
    };
    let mut best = eval_loss(&model)?;
    let mut history = vec![(0, f64::NAN, best)];
    log.write(&serde_json::json!({"epoch": 0, "val_loss": best}))?;
    let mut since_best = 0;
    let mut epochs_run = 0;
    let state = |epoch: usize, best: f64| serde_json::json!({"epoch": epoch, "best_val_loss": best, "base": base.display().to_string(), "config": cfg});
    checkpoint::save(
        &ckpt,
        &CheckpointParts {
            model: &model.inference(),
            optimizer: None,
            train_state: Some(state(0, best)),
            tokenizer: Some(&tok),
        },
    )?;
    for epoch in 1..=cfg.epochs {
        let mut order: Vec<usize> = (0..tr.n).collect();
        use rand::{SeedableRng, seq::SliceRandom};
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            crate::reward_data::mix(cfg.seed ^ epoch as u64),
        ));
        let pb = if show_progress {
            ProgressBar::new(order.len().div_ceil(cfg.batch_size) as u64)
        } else {
            ProgressBar::hidden()
        };
        pb.set_style(
            ProgressStyle::with_template(&format!(
                "epoch {epoch:>3} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}}] {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut sum = 0.0;
        for rows in order.chunks(cfg.batch_size) {
            let loss = batch_loss(&model, &tr, &tr_feat, rows)?;
            let grads = loss.backward();
            let mut g = optim::collect_grads(&model, &grads);
            if cfg.grad_clip > 0.0 {
                optim::clip_grad_norm(&mut g, cfg.grad_clip);
            }
            opt.step(&mut model, g, cfg.lr);
            let v = loss.inner().into_scalar::<f32>() as f64;
            sum += v * rows.len() as f64;
            pb.set_message(format!("loss {v:.5}"));
            pb.inc(1);
        }
        pb.finish_and_clear();
        let train_loss = sum / tr.n as f64;
        let val = eval_loss(&model)?;
        epochs_run = epoch;
        history.push((epoch, train_loss, val));
        log.write(&serde_json::json!({"epoch": epoch, "train_loss": train_loss, "val_loss": val}))?;
        let improved = val < best;
        crate::train::say(
            &pb,
            format!(
                "epoch {epoch}: train loss {train_loss:.5}, val loss {val:.5}{}",
                if improved { " (best)" } else { "" }
            ),
        );
        if improved {
            best = val;
            since_best = 0;
            checkpoint::save(
                &ckpt,
                &CheckpointParts {
                    model: &model.inference(),
                    optimizer: None,
                    train_state: Some(state(epoch, best)),
                    tokenizer: Some(&tok),
                },
            )?;
        } else {
            since_best += 1;
            if cfg.patience > 0 && since_best >= cfg.patience {
                crate::train::say(
                    &pb,
                    format!("early stop: no val improvement for {} epochs", cfg.patience),
                );
                break;
            }
        }
    }
    Ok(RewardTrainOutcome {
        best_val_loss: best,
        epochs_run,
        seconds: t0.elapsed().as_secs_f64(),
        checkpoint: ckpt,
        load_report: report,
        history,
    })
}
