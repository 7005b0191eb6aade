//! `nanoreward grpo`: the GRPO training loop — rollouts from train-split prompts, rewards from
//! the frozen reward model, group-relative advantages, μ clipped policy updates per batch,
//! evaluation on natural val text, checkpoints and exact resumption.
//!
//! Every step's randomness (prompt length, prompt positions, sampling noise of each completion)
//! comes from (seed, step) alone, so a resumed run draws what the uninterrupted one would have.

use super::config::{GrpoConfig, RaftRows, RewardGranularity, TeacherLoss};
use super::loss::{self, AdvEstimator, LossConfig, LossInputs, LossNorm, LossStats};
use super::reward::{Ensemble, RewardFn, repeated_share};
use crate::checkpoint::{self, Checkpoint, CheckpointParts, HostTensor, TrainState};
use crate::data::{self, TokenFile};
use crate::metrics::{self, JsonlLog, Series};
use crate::model::{GPT, Mode, log_sum_exp};
use crate::reward::RewardModel;
use crate::sampling::{self, Batching, Row, SampleOptions};
use crate::tokenizer::Tokenizer;
use crate::train::{mean_loss, optim};
use crate::util::lock::DirLock;
use crate::util::rng::mix;
use crate::util::{device, fsutil, progress, stop};
use crate::{Error, Result};
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::ProgressBar;
use optim::{AdamW, AdamWConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRecord {
    pub step: usize,
    pub val_loss: f64,
    /// exp(val_loss): the policy's perplexity on natural val text.
    pub val_ppl: f64,
    pub reward_policy: f64,
    pub reward_ref: f64,
    pub reward_natural: f64,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct GrpoOutcome {
    pub steps: usize,
    pub evals: Vec<EvalRecord>,
    /// Mean training reward of the first and last up-to-10 steps of this run.
    pub reward_start: f64,
    pub reward_end: f64,
    pub seconds: f64,
    /// Whether the run stopped early on `max_val_loss_increase`.
    pub stopped_early: bool,
    /// When it did: the step whose policy crossed the bound. The checkpoint is then the policy
    /// of the last evaluation within the bound (the last of `evals`), not the one that crossed.
    pub rolled_back_from: Option<usize>,
    /// Mean milliseconds per step in sampling, reward, old/reference log-probs and updates.
    pub phase_ms: [f64; 4],
    pub checkpoint: PathBuf,
}

/// The run's checkpoint directories: the policy and the frozen reference.
pub fn dirs(out_dir: &Path) -> (PathBuf, PathBuf) {
    (out_dir.join("ckpt"), out_dir.join("ref"))
}

/// Runs GRPO against the reward model of `cfg.reward_model`.
pub fn run(cfg: &GrpoConfig, show_progress: bool) -> Result<GrpoOutcome> {
    run_from(cfg, None, show_progress)
}

/// [`run`], the starting policy given already loaded (`initial`, the model of
/// `cfg.init_from`) so that its checkpoint is not read again; ignored when resuming.
pub fn run_from(
    cfg: &GrpoConfig,
    initial: Option<&GPT>,
    show_progress: bool,
) -> Result<GrpoOutcome> {
    cfg.validate()?;
    let dev = device::select(&cfg.device)?;
    let load = |p: &str| -> Result<RewardModel> {
        let mut rm = RewardModel::load(Path::new(p), &dev)?;
        rm.workers = device::workers(cfg.threads);
        let rb = rm.model.config.block_size;
        if cfg.prompt_max + cfg.completion_len > rb {
            return Err(Error::Config(format!(
                "prompt_max + completion_len = {} exceeds the block_size {rb} of reward model {p}",
                cfg.prompt_max + cfg.completion_len
            )));
        }
        Ok(rm)
    };
    let rm = load(&cfg.reward_model)?;
    let tokenizer = rm.tokenizer.clone();
    if cfg.ensemble.is_empty() {
        return run_inner(cfg, &rm, Some(&tokenizer), initial, show_progress);
    }
    let mut members = vec![rm];
    for p in &cfg.ensemble {
        members.push(load(p)?);
    }
    // Members on one reference model (the cycle's rounds on one stronger model) run it once.
    crate::reward::model::FeatureSource::share_references(
        members.iter_mut().filter_map(|m| m.features.as_mut()),
    );
    let ensemble = Ensemble {
        members,
        agg: cfg.ensemble_agg,
        lambda: cfg.ensemble_lambda,
    };
    run_inner(cfg, &ensemble, Some(&tokenizer), initial, show_progress)
}

/// `f(chunk, rows)` over the `b` rows of `ids` in `w` parallel chunks of whole rows, the
/// results concatenated in row order.
fn par_rows(
    ids: &[i64],
    b: usize,
    w: usize,
    f: impl Fn(&[i64], usize) -> Result<Vec<f32>> + Sync,
) -> Result<Vec<f32>> {
    let t = ids.len() / b;
    let chunks = device::row_ranges(b, w);
    let parts = device::par_map(&chunks, chunks.len(), |&(r0, r1)| {
        f(&ids[r0 * t..r1 * t], r1 - r0)
    });
    Ok(parts.into_iter().collect::<Result<Vec<_>>>()?.concat())
}

/// Log-probs `[B·L]` on the host of the completions of `ids` under `model`, in parallel chunks.
fn host_logp(
    model: &GPT,
    ids: &[i64],
    b: usize,
    plen: usize,
    temp: f64,
    w: usize,
) -> Result<Vec<f32>> {
    par_rows(ids, b, w, |chunk, rows| {
        loss::completion_logp(model, chunk, rows, plen, temp)
            .map(|(lp, _)| HostTensor::from_tensor(lp).data)
    })
}

/// Log-probability rows `[B·L, vocab]` on the host of every completion position of `ids` under
/// `model` (logits divided by `temp`), in parallel chunks.
fn host_log_dists(
    model: &GPT,
    ids: &[i64],
    b: usize,
    plen: usize,
    temp: f64,
    w: usize,
) -> Result<Vec<f32>> {
    par_rows(ids, b, w, |chunk, rows| {
        let (x, _) = loss::completion_states(model, chunk, rows, plen, temp)?;
        let mut out = Vec::new();
        model.visit_state_logits(x, |_, row| {
            let lse = log_sum_exp(row);
            out.extend(row.iter().map(|&v| v - lse));
        });
        Ok(out)
    })
}

/// What a teacher says about one batch of rollouts: the distillation advantages `[B·L]`
/// (`teacher_loss = advantage`; zeros with `forward_kl`, whose teacher acts through the loss),
/// the teacher's probabilities `[B·L, vocab]` (`forward_kl`), and the mean per-token KL from the
/// policy to the teacher and from the teacher to the policy.
struct Distill {
    adv: Vec<f32>,
    probs: Option<Vec<f32>>,
    kl: [f64; 2],
}

/// The fixed evaluation material: val prompts with their natural continuations, and val
/// windows for the val loss — the same at every evaluation.
struct EvalSet {
    prompt_len: usize,
    windows: Vec<Vec<u32>>,
    val_batches: Vec<(Vec<i64>, Vec<i64>)>,
}

impl EvalSet {
    fn new(cfg: &GrpoConfig, val: &TokenFile, block_size: usize) -> Self {
        let prompt_len = (cfg.prompt_min + cfg.prompt_max) / 2;
        let n = prompt_len + cfg.completion_len;
        let mut erng = ChaCha8Rng::seed_from_u64(mix(cfg.seed ^ 0x6576_616c));
        let windows = (0..cfg.eval_prompts)
            .map(|_| val.slice(erng.random_range(0..=val.len() - n), n))
            .collect();
        let val_batches = (0..cfg.eval_iters)
            .map(|_| val.random_batch(&mut erng, cfg.eval_batch_size, block_size))
            .collect();
        Self {
            prompt_len,
            windows,
            val_batches,
        }
    }
}

/// One batch of rollouts as the update sees it: token ids (row-major, prompts of `plen`), one
/// advantage per row (or per token), the rows that train, and the old / reference log-probs of
/// the completion tokens when needed.
struct Rollouts {
    ids: Vec<i64>,
    plen: usize,
    adv: Vec<f32>,
    /// Per-token advantages `[B·L]` (per-token rewards), replacing `adv` when present.
    token_adv: Option<Vec<f32>>,
    /// Whether each row trains (dynamic sampling leaves zero-variance groups out; RAFT with
    /// `raft_rows = best` every group's unpicked completions).
    keep: Vec<bool>,
    /// The rows the loss is normalised over (those of the groups that train).
    norm_rows: usize,
    old: Option<Vec<f32>>,
    refl: Option<Vec<f32>>,
    /// The teacher's probabilities `[B·L, vocab]` (`teacher_loss = forward_kl`).
    teacher_probs: Option<Vec<f32>>,
}

impl Rollouts {
    /// The rows that train, alone (`keep` all true): what the update and its log-probabilities
    /// read, taken before those log-probabilities (`old`, `refl`) are computed on these rows.
    /// `l`: the completion length, `vocab`: the teacher's probabilities' width.
    fn training_rows(self, l: usize, vocab: usize) -> Rollouts {
        debug_assert!(self.old.is_none() && self.refl.is_none());
        if self.keep.iter().all(|&k| k) {
            return self;
        }
        let rows: Vec<usize> = (0..self.keep.len()).filter(|&i| self.keep[i]).collect();
        let n = self.plen + l;
        Rollouts {
            ids: gather(&self.ids, &rows, n),
            plen: self.plen,
            adv: gather(&self.adv, &rows, 1),
            token_adv: self.token_adv.map(|t| gather(&t, &rows, l)),
            keep: vec![true; rows.len()],
            norm_rows: self.norm_rows,
            old: None,
            refl: None,
            teacher_probs: self.teacher_probs.map(|v| gather(&v, &rows, l * vocab)),
        }
    }
}

/// Rows `rows` of the row-major `v` (`width` values a row).
fn gather<T: Copy>(v: &[T], rows: &[usize], width: usize) -> Vec<T> {
    rows.iter()
        .flat_map(|&i| v[i * width..(i + 1) * width].iter().copied())
        .collect()
}

/// What one training step measured (its JSONL record).
struct StepRecord {
    reward_mean: f64,
    reward_std: f64,
    stats: LossStats,
    zero_std: f64,
    entropy: f64,
    policy_loss: f64,
    /// The language-modelling loss of the step's natural train batch (`ptx_coef` > 0; else NaN).
    ptx_loss: f64,
    grad_norm: f64,
    prompt_len: usize,
    /// Milliseconds in sampling, reward (and the teacher's and policy's log-probs with a
    /// teacher), old/reference log-probs and updates.
    phase_ms: [f64; 4],
    /// Rows left out of the update by dynamic sampling.
    dropped: usize,
    /// The mean per-token KL(π ‖ teacher) and KL(teacher ‖ π) on the rollouts (NaN without one).
    teacher_kl: [f64; 2],
}

/// What the updates of one step measured (the first of μ; the last gradient norm).
struct Update {
    stats: LossStats,
    entropy: f64,
    loss: f64,
    ptx_loss: f64,
    grad_norm: f64,
}

impl Update {
    /// A step that trains no row: nothing moved, nothing measured.
    fn none() -> Update {
        Update {
            stats: LossStats::default(),
            entropy: f64::NAN,
            loss: 0.0,
            ptx_loss: f64::NAN,
            grad_norm: 0.0,
        }
    }
}

/// Mixed into the seed of each step's language-modelling batch (a stream apart from prompts').
const PTX_STREAM: u64 = 0x7074_785f_6c6d;

/// A GRPO run in progress.
struct Trainer<'a> {
    cfg: &'a GrpoConfig,
    reward: &'a dyn RewardFn,
    policy: GPT,
    reference: GPT,
    /// The generator distilled from (`teacher`), when there is one.
    teacher: Option<GPT>,
    opt: AdamW,
    train: TokenFile,
    eval: EvalSet,
    tokenizer: Tokenizer,
    ckpt_dir: PathBuf,
    /// Where the run started (`init_from`; when resuming, the start the reference recorded), so
    /// that the recorded config reruns it.
    started_from: String,
    workers: usize,
    lcfg: LossConfig,
    /// completions.jsonl, when `log_completions` asks for it.
    completions: Option<JsonlLog>,
}

/// The policy, its optimizer and the step to start at: restored from `ckpt_dir` when resuming,
/// else `init_from`'s weights (or `initial`, already loaded) with a fresh optimizer.
fn load_policy(
    cfg: &GrpoConfig,
    initial: Option<&GPT>,
    ckpt_dir: &Path,
    dev: &Device,
) -> Result<(GPT, AdamW, usize)> {
    if cfg.init_from == "resume" {
        let ck = Checkpoint::open(ckpt_dir)?;
        let opt = AdamW::from_state(ck.optimizer()?, ckpt_dir, dev)?;
        return Ok((ck.model(dev)?, opt, ck.state.step.unwrap_or(0)));
    }
    let m = match initial {
        Some(m) => m.clone(),
        None => Checkpoint::open(Path::new(&cfg.init_from))?.model(dev)?,
    };
    let opt = AdamW::new(AdamWConfig {
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: 1e-8,
        weight_decay: cfg.weight_decay,
    });
    Ok((m, opt, 0))
}

/// The data's tokenizer, checked against the reward model's and the policy's vocabulary.
fn check_tokenizers(
    cfg: &GrpoConfig,
    data_dir: &Path,
    reward: Option<&Tokenizer>,
    policy: &GPT,
) -> Result<Tokenizer> {
    let tokenizer = data::data_tokenizer(data_dir)?;
    if let Some(rt) = reward
        && (rt.method() != tokenizer.method() || rt.vocab_size() != tokenizer.vocab_size())
    {
        return Err(Error::Mismatch(format!(
            "the reward model's tokenizer ({}, {} tokens) differs from {}'s ({}, {} tokens)",
            rt.method(),
            rt.vocab_size(),
            data_dir.display(),
            tokenizer.method(),
            tokenizer.vocab_size()
        )));
    }
    let mc = &policy.config;
    if mc.mode != Mode::Generator {
        return Err(Error::Config(
            "init_from must be a generator checkpoint (this one is a reward model)".into(),
        ));
    }
    let window_max = cfg.prompt_max + cfg.completion_len;
    if window_max > mc.block_size {
        return Err(Error::Config(format!(
            "prompt_max + completion_len = {window_max} exceeds the policy's block_size {}",
            mc.block_size
        )));
    }
    if tokenizer.vocab_size() != mc.vocab_size && tokenizer.method() == "char" {
        return Err(Error::Mismatch(format!(
            "{} has {} characters but the policy's vocab_size is {}",
            data_dir.display(),
            tokenizer.vocab_size(),
            mc.vocab_size
        )));
    }
    Ok(tokenizer)
}

/// The generator of `cfg.teacher` (None without one), checked against the policy: a generator
/// of the same vocabulary whose context holds a prompt and its completion.
fn load_teacher(cfg: &GrpoConfig, policy: &GPT, dev: &Device) -> Result<Option<GPT>> {
    if cfg.teacher.is_empty() {
        return Ok(None);
    }
    let mut t = Checkpoint::open(Path::new(&cfg.teacher))?.model(dev)?;
    let (tc, pc) = (&t.config, &policy.config);
    if tc.mode != Mode::Generator {
        return Err(Error::Config(format!(
            "teacher {} is a reward model: give a generator checkpoint",
            cfg.teacher
        )));
    }
    if tc.vocab_size != pc.vocab_size {
        return Err(Error::Mismatch(format!(
            "teacher {} has vocab_size {} but the policy has {}: distil from a model of the same tokenizer",
            cfg.teacher, tc.vocab_size, pc.vocab_size
        )));
    }
    let window = cfg.prompt_max + cfg.completion_len;
    if window > tc.block_size {
        return Err(Error::Config(format!(
            "prompt_max + completion_len = {window} exceeds the block_size {} of teacher {}",
            tc.block_size, cfg.teacher
        )));
    }
    t.precision = cfg.dtype;
    Ok(Some(t))
}

/// Loads everything a run needs; a fresh run also saves the frozen reference.
fn setup<'a>(
    cfg: &'a GrpoConfig,
    reward: &'a dyn RewardFn,
    reward_tokenizer: Option<&Tokenizer>,
    initial: Option<&GPT>,
) -> Result<(Trainer<'a>, usize)> {
    let dev: Device = device::select(&cfg.device)?;
    let data_dir = PathBuf::from(&cfg.data_dir);
    let out_dir = PathBuf::from(&cfg.out_dir);
    let (ckpt_dir, ref_dir) = dirs(&out_dir);
    let train = TokenFile::open(&data_dir.join("train.bin"))?;
    let val = TokenFile::open(&data_dir.join("val.bin"))?;
    let (mut policy, mut opt, start) = load_policy(cfg, initial, &ckpt_dir, &dev)?;
    policy.precision = cfg.dtype;
    let tokenizer = check_tokenizers(cfg, &data_dir, reward_tokenizer, &policy)?;
    train.require_window(cfg.prompt_max + cfg.completion_len)?;
    if cfg.ptx_coef > 0.0 {
        train.require_window(policy.config.block_size)?;
    }
    val.require_window(policy.config.block_size)?;
    let teacher = load_teacher(cfg, &policy, &dev)?;
    let (mut reference, started_from) = if cfg.init_from == "resume" {
        let ck = Checkpoint::open(&ref_dir)?;
        let from = ck
            .state
            .from
            .clone()
            .unwrap_or_else(|| cfg.init_from.clone());
        (ck.model(&dev)?, from)
    } else {
        fsutil::create_dir_all(&out_dir)?;
        let state = TrainState {
            role: Some("GRPO reference".into()),
            from: Some(cfg.init_from.clone()),
            ..Default::default()
        };
        let parts = CheckpointParts::generator(&policy, &tokenizer, None, state);
        checkpoint::save(&ref_dir, &parts)?;
        (policy.clone(), cfg.init_from.clone())
    };
    reference.precision = cfg.dtype;
    opt.config.weight_decay = cfg.weight_decay;
    let eval = EvalSet::new(cfg, &val, policy.config.block_size);
    let trainer = Trainer {
        cfg,
        reward,
        policy: policy.into_trainable(|_| true),
        reference,
        teacher,
        opt,
        train,
        eval,
        tokenizer,
        ckpt_dir,
        started_from,
        workers: device::workers(cfg.threads),
        lcfg: cfg.loss_config(),
        completions: (cfg.log_completions > 0)
            .then(|| {
                JsonlLog::open(
                    &out_dir.join("completions.jsonl"),
                    Some(("step", start as u64)),
                )
            })
            .transpose()?,
    };
    Ok((trainer, start))
}

impl Trainer<'_> {
    /// Completes every row to `len` tokens with `model` (the rows split over the workers).
    fn rollout(&self, model: &GPT, rows: &[Row], len: usize) -> Result<Vec<Vec<u32>>> {
        let batching = Batching {
            batch_size: device::batch_per_worker(rows.len(), usize::MAX, self.workers),
            workers: self.workers,
        };
        let opts = SampleOptions {
            vocab: Some(self.tokenizer.vocab_size()),
            ..self.cfg.sample_options()
        };
        sampling::complete(model, rows, len, &opts, &batching)
    }

    /// The policy's val loss and the reward of policy / reference / natural continuations of
    /// the fixed val prompts; also returns the policy's completions.
    fn evaluate(&self, model: &GPT, step: usize) -> Result<(EvalRecord, Vec<Vec<u32>>)> {
        let (cfg, e) = (self.cfg, &self.eval);
        let val_loss = mean_loss(model, &e.val_batches, cfg.eval_batch_size, self.workers);
        let rows: Vec<Row> = e
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| Row {
                prefix: &w[..e.prompt_len],
                seed: mix(cfg.seed ^ 0x7265_6600 ^ i as u64),
            })
            .collect();
        let len = e.prompt_len + cfg.completion_len;
        let ours = self.rollout(model, &rows, len)?;
        let theirs = self.rollout(&self.reference, &rows, len)?;
        let mean = |v: Vec<f32>| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let plen = e.prompt_len;
        let rec = EvalRecord {
            step,
            val_loss,
            val_ppl: val_loss.exp(),
            reward_policy: mean(self.reward.rewards(&ours, plen)?),
            reward_ref: mean(self.reward.rewards(&theirs, plen)?),
            reward_natural: mean(self.reward.rewards(&e.windows, plen)?),
        };
        Ok((rec, ours))
    }

    /// Saves the policy and its optimizer at `step`, with the config that reruns the run from
    /// its start (a resumed run's `init_from` is where it first started, not "resume").
    fn save(&self, inference: &GPT, step: usize) -> Result<()> {
        let recorded = GrpoConfig {
            init_from: self.started_from.clone(),
            ..self.cfg.clone()
        };
        let state = TrainState {
            step: Some(step),
            config: serde_json::to_value(&recorded).ok(),
            ..Default::default()
        };
        let opt = Some(self.opt.to_state());
        let parts = CheckpointParts::generator(inference, &self.tokenizer, opt, state);
        checkpoint::save(&self.ckpt_dir, &parts)
    }

    /// The step's prompt length and the natural windows its prompts are cut from.
    fn draw(&self, step: usize) -> (u64, usize, Vec<Vec<u32>>) {
        let cfg = self.cfg;
        let s_seed = mix(cfg.seed ^ mix(step as u64 + 1));
        let mut rng = ChaCha8Rng::seed_from_u64(s_seed);
        let plen = rng.random_range(cfg.prompt_min..=cfg.prompt_max);
        let n = plen + cfg.completion_len;
        let windows = (0..cfg.prompts_per_step)
            .map(|_| {
                self.train
                    .slice(rng.random_range(0..=self.train.len() - n), n)
            })
            .collect();
        (s_seed, plen, windows)
    }

    /// Rewards of the rollouts (with the repetition penalty); returns them and the raw mean.
    fn rewards(&self, seqs: &[Vec<u32>], plen: usize) -> Result<(Vec<f32>, f64)> {
        let b = seqs.len();
        let mut r = self.reward.rewards(seqs, plen)?;
        if r.len() != b || r.iter().any(|x| !x.is_finite()) {
            return Err(Error::Other(format!(
                "the reward function returned {} values (need {b} finite ones)",
                r.len()
            )));
        }
        let raw_mean = r.iter().map(|&x| x as f64).sum::<f64>() / b as f64;
        if self.cfg.repetition_penalty > 0.0 {
            for (x, s) in r.iter_mut().zip(seqs) {
                *x -= (self.cfg.repetition_penalty * repeated_share(s, plen)) as f32;
            }
        }
        Ok((r, raw_mean))
    }

    /// The step's natural train windows for the language-modelling term (None when off).
    fn ptx_batch(&self, step: usize) -> Option<(Vec<i64>, Vec<i64>)> {
        let cfg = self.cfg;
        (cfg.ptx_coef > 0.0).then(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed ^ mix(step as u64) ^ PTX_STREAM));
            let block = self.policy.config.block_size;
            self.train.random_batch(&mut rng, cfg.ptx_batch_size, block)
        })
    }

    /// Adds the language-modelling term's gradients on `batch` (when on) to `grads`; returns
    /// its loss (NaN when off).
    fn add_ptx(
        &self,
        batch: Option<&(Vec<i64>, Vec<i64>)>,
        grads: &mut Vec<Option<Tensor<1>>>,
    ) -> f64 {
        let Some((x, y)) = batch else {
            return f64::NAN;
        };
        let (cfg, w) = (self.cfg, self.workers);
        let (v, g) = optim::batch_grads(
            &self.policy,
            x,
            y,
            cfg.ptx_batch_size,
            w,
            cfg.ptx_coef,
            None,
        );
        optim::accumulate(grads, g);
        v / cfg.ptx_coef
    }

    /// μ clipped updates on one batch of rollouts at learning rate `lr`, each with the
    /// language-modelling term when `ptx_coef` > 0. Returns the loss statistics, mean entropy,
    /// loss and language-modelling loss of the first update, and the last gradient norm.
    fn update(&mut self, batch: &Rollouts, step: usize, lr: f64) -> Result<Update> {
        let (cfg, l) = (self.cfg, self.cfg.completion_len);
        let b = batch.adv.len();
        let norm = LossNorm {
            rows: batch.norm_rows,
            tokens: (batch.norm_rows * l) as f64,
            max_len: l,
        };
        let mask: Vec<f32> = batch
            .keep
            .iter()
            .flat_map(|&k| std::iter::repeat_n(f32::from(u8::from(k)), l))
            .collect();
        let mut stats = LossStats::default();
        let (mut loss_v, mut entropy, mut gnorm, mut ptx_loss) = (0.0, 0.0, 0.0, f64::NAN);
        let ptx = self.ptx_batch(step);
        let lcfg = self.lcfg;
        for mu in 0..cfg.num_iterations {
            let (lv, mut grads, parts) =
                optim::parallel_grads(&self.policy, b, self.workers, |m, _, r0, r1| {
                    shard_loss(cfg, &lcfg, m, batch, &mask, &norm, (r0, r1))
                });
            let ptx_v = self.add_ptx(ptx.as_ref(), &mut grads);
            if mu == 0 {
                ptx_loss = ptx_v;
                for (st, e) in &parts {
                    stats.add(st);
                    entropy += e;
                }
                entropy /= (b * l) as f64;
                loss_v = lv;
            }
            if !lv.is_finite() {
                return Err(Error::Other(format!(
                    "the GRPO loss became {lv} at step {step}; lower learning_rate"
                )));
            }
            gnorm = optim::clip_grad_norm(&mut grads, cfg.grad_clip);
            self.opt.step(&mut self.policy, grads, lr);
        }
        Ok(Update {
            stats,
            entropy,
            loss: loss_v,
            ptx_loss,
            grad_norm: gnorm,
        })
    }

    /// Per-token advantages when the reward is per token or there is a teacher (`distill`: the
    /// teacher's per-token advantages), which rows train (dynamic sampling leaves out the
    /// groups whose rewards are all equal; with a teacher every row carries its signal; RAFT's
    /// `raft_rows = best` the unpicked completions) and how many rows the loss is normalised
    /// over (those of the groups that train).
    fn credit(
        &self,
        seqs: &[Vec<u32>],
        (r, adv): (&[f32], &[f32]),
        plen: usize,
        distill: Option<&[f32]>,
    ) -> Result<(Option<Vec<f32>>, Vec<bool>, usize)> {
        let cfg = self.cfg;
        let g = cfg.group_size;
        let reward_token = match cfg.reward_granularity {
            RewardGranularity::Sequence => None,
            RewardGranularity::Token => {
                let tp = self.reward.token_rewards(seqs, plen)?.ok_or_else(|| {
                    Error::Config(
                        "reward_granularity = token needs a token-head reward model (train-reward --loss=token_bce or another token_* loss)".into(),
                    )
                })?;
                Some(loss::token_advantages(&tp, plen, g, 1e-4))
            }
        };
        let token_adv = match distill {
            None => reward_token,
            Some(d) => Some(loss::mix_advantages(
                reward_token.as_deref(),
                adv,
                d,
                cfg.reward_coef,
                cfg.teacher_coef,
            )),
        };
        let filter = cfg.dynamic_sampling && distill.is_none();
        let mut keep: Vec<bool> = r
            .chunks(g)
            .flat_map(|group| {
                let varied = group.iter().any(|&x| x != group[0]);
                std::iter::repeat_n(varied || !filter, group.len())
            })
            .collect();
        let norm_rows = keep.iter().filter(|&&k| k).count();
        if cfg.adv_estimator == AdvEstimator::Raft && cfg.raft_rows == RaftRows::Best {
            // The picked completions (advantage 1) train; the loss keeps the groups' normaliser.
            keep.iter_mut().zip(adv).for_each(|(k, &a)| *k &= a > 0.0);
        }
        Ok((token_adv, keep, norm_rows))
    }

    /// With a teacher: what it says about the rollouts `ids` that `inf` sampled.
    fn distill(&self, inf: &GPT, ids: &[i64], b: usize, plen: usize) -> Result<Option<Distill>> {
        let Some(teacher) = &self.teacher else {
            return Ok(None);
        };
        let (w, v) = (self.workers, teacher.config.vocab_size);
        let lt = host_log_dists(teacher, ids, b, plen, 1.0, w)?;
        let lp = host_log_dists(inf, ids, b, plen, self.cfg.temperature, w)?;
        let kl = [loss::mean_kl(&lp, &lt, v), loss::mean_kl(&lt, &lp, v)];
        Ok(Some(match self.cfg.teacher_loss {
            TeacherLoss::Advantage => {
                let t = ids.len() / b;
                let pick = |d: &[f32]| -> Vec<f32> {
                    let tokens = ids.chunks(t).flat_map(|row| row[plen..].iter());
                    tokens
                        .enumerate()
                        .map(|(i, &x)| d[i * v + x as usize])
                        .collect()
                };
                let adv = loss::distill_advantages(&pick(&lt), &pick(&lp), 1e-4);
                Distill {
                    adv,
                    probs: None,
                    kl,
                }
            }
            TeacherLoss::ForwardKl => Distill {
                adv: vec![0.0; lt.len() / v],
                probs: Some(lt.iter().map(|x| x.exp()).collect()),
                kl,
            },
        }))
    }

    /// Appends every completion of the step (prompt, completion, reward, advantage) to
    /// completions.jsonl.
    fn log_completions(
        &mut self,
        step: usize,
        seqs: &[Vec<u32>],
        batch: &Rollouts,
        r: &[f32],
    ) -> Result<()> {
        let Some(log) = self.completions.as_mut() else {
            return Ok(());
        };
        let (plen, l) = (batch.plen, self.cfg.completion_len);
        for (i, s) in seqs.iter().enumerate() {
            let adv = match &batch.token_adv {
                Some(t) => t[i * l..(i + 1) * l].iter().sum::<f32>() / l as f32,
                None => batch.adv[i],
            };
            log.write(&serde_json::json!({
                "step": step, "prompt": self.tokenizer.decode(&s[..plen]),
                "completion": self.tokenizer.decode(&s[plen..]), "reward": r[i],
                "advantage": adv, "trained": batch.keep[i],
            }))?;
        }
        Ok(())
    }

    /// One GRPO step: rollouts, rewards, advantages, log-probs, μ updates.
    fn step(&mut self, step: usize, lr: f64) -> Result<StepRecord> {
        let cfg = self.cfg;
        let (p, g, l) = (cfg.prompts_per_step, cfg.group_size, cfg.completion_len);
        let b = p * g;
        let (s_seed, plen, windows) = self.draw(step);
        let rows: Vec<Row> = (0..b)
            .map(|i| Row {
                prefix: &windows[i / g][..plen],
                seed: mix(s_seed ^ mix(i as u64 + 7)),
            })
            .collect();
        let inf = self.policy.inference();
        let t0 = Instant::now();
        let seqs = self.rollout(&inf, &rows, plen + l)?;
        let t1 = Instant::now();
        let ids: Vec<i64> = seqs.iter().flatten().map(|&t| t as i64).collect();
        let (r, raw_mean) = self.rewards(&seqs, plen)?;
        let (adv, zero_std) = match cfg.adv_estimator {
            AdvEstimator::Grpo => loss::advantages(&r, g, cfg.scale_rewards, 1e-4),
            AdvEstimator::Raft => loss::best_of_group(&r, g),
        };
        let mut distill = self.distill(&inf, &ids, b, plen)?;
        let d_adv = distill.as_ref().map(|d| d.adv.as_slice());
        let (token_adv, keep, norm_rows) = self.credit(&seqs, (&r, &adv), plen, d_adv)?;
        let t2 = Instant::now();
        let rollouts = Rollouts {
            ids,
            plen,
            adv,
            token_adv,
            keep,
            norm_rows,
            old: None,
            refl: None,
            teacher_probs: distill.as_mut().and_then(|d| d.probs.take()),
        };
        if cfg.log_completions > 0 && step.is_multiple_of(cfg.log_completions) {
            self.log_completions(step, &seqs, &rollouts, &r)?;
        }
        let dropped = rollouts.keep.iter().filter(|&&k| !k).count();
        // The update and its log-probabilities read the rows that train, and only those.
        let mut batch = rollouts.training_rows(l, inf.config.vocab_size);
        let (n, temp, w) = (batch.adv.len(), cfg.temperature, self.workers);
        if n > 0 && cfg.num_iterations > 1 {
            batch.old = Some(host_logp(&inf, &batch.ids, n, plen, temp, w)?);
        }
        if n > 0 && cfg.beta > 0.0 {
            batch.refl = Some(host_logp(&self.reference, &batch.ids, n, plen, temp, w)?);
        }
        let t3 = Instant::now();
        let u = if n > 0 {
            self.update(&batch, step, lr)?
        } else {
            Update::none()
        };
        let t4 = Instant::now();
        let phase_ms = [t1 - t0, t2 - t1, t3 - t2, t4 - t3].map(|d| d.as_secs_f64() * 1e3);
        let var = r
            .iter()
            .map(|&x| (x as f64 - raw_mean).powi(2))
            .sum::<f64>()
            / b as f64;
        Ok(StepRecord {
            reward_mean: raw_mean,
            reward_std: var.sqrt(),
            stats: u.stats,
            zero_std,
            entropy: u.entropy,
            policy_loss: u.loss,
            ptx_loss: u.ptx_loss,
            grad_norm: u.grad_norm,
            prompt_len: plen,
            phase_ms,
            dropped,
            teacher_kl: distill.map_or([f64::NAN; 2], |d| d.kl),
        })
    }
}

/// The GRPO loss of rows `r0..r1` of `batch` under `m` (`mask`: the rows that train, per
/// token), its statistics and the rows' summed entropy.
fn shard_loss(
    cfg: &GrpoConfig,
    lcfg: &LossConfig,
    m: &GPT,
    batch: &Rollouts,
    mask: &[f32],
    norm: &LossNorm,
    (r0, r1): (usize, usize),
) -> (Tensor<1>, (LossStats, f64)) {
    let (l, plen) = (cfg.completion_len, batch.plen);
    let (rows, n) = (r1 - r0, plen + l);
    let host = |v: &[f32]| {
        Tensor::<2>::from_data(
            TensorData::new(v[r0 * l..r1 * l].to_vec(), [rows, l]),
            &m.device(),
        )
    };
    let ids = &batch.ids[r0 * n..r1 * n];
    let (x, targets) = loss::completion_states(m, ids, rows, plen, cfg.temperature)
        .unwrap_or_else(|e| unreachable!("window checked above: {e}"));
    let (logp, ent) = loss::completion_head(m, x.clone(), targets, rows);
    let inputs = LossInputs {
        old_logp: batch.old.as_deref().map_or(logp.clone().detach(), host),
        ref_logp: batch.refl.as_deref().map(host),
        logp,
        advantages: Tensor::from_data(
            TensorData::new(batch.adv[r0..r1].to_vec(), [rows]),
            &m.device(),
        ),
        token_advantages: batch.token_adv.as_deref().map(host),
        mask: host(mask),
        entropy: (cfg.entropy_coef != 0.0).then(|| ent.clone()),
    };
    let (mut total, st) = loss::grpo_loss(&inputs, lcfg, norm);
    if let Some(q) = batch.teacher_probs.as_deref() {
        // The forward KL to the teacher on the kept tokens, as the GRPO term's token mean.
        let v = m.config.vocab_size;
        let q = Tensor::<2>::from_data(
            TensorData::new(q[r0 * l * v..r1 * l * v].to_vec(), [rows * l, v]),
            &m.device(),
        );
        let ce = loss::soft_cross_entropy(m, x, q) * inputs.mask.clone().reshape([rows * l]);
        total = total + ce.sum().mul_scalar(cfg.teacher_coef / norm.tokens.max(1.0));
    }
    let ent_sum = ent.detach().sum().into_scalar::<f32>() as f64;
    (total, (st, ent_sum))
}

/// The trend alarms: the KL to the reference above `kl_alarm`, the entropy below
/// `entropy_alarm` × the first step's. Each is reported when it starts and when it ends.
#[derive(Default)]
struct Alarms {
    first_entropy: Option<f64>,
    kl: bool,
    entropy: bool,
}

impl Alarms {
    /// The alarms that start or end with step `s`.
    fn check(&mut self, cfg: &GrpoConfig, s: &StepRecord) -> Vec<String> {
        let mut out = Vec::new();
        let kl = s.stats.kl();
        let kl_now = cfg.kl_alarm > 0.0 && kl > cfg.kl_alarm;
        if kl_now != self.kl {
            out.push(if kl_now {
                format!(
                    "KL to the reference {kl:.3} > kl_alarm {} (raise beta or lower learning_rate)",
                    cfg.kl_alarm
                )
            } else {
                format!("KL back to {kl:.3}")
            });
            self.kl = kl_now;
        }
        if s.entropy.is_finite() {
            let first = *self.first_entropy.get_or_insert(s.entropy);
            let low = cfg.entropy_alarm > 0.0 && s.entropy < cfg.entropy_alarm * first;
            if low != self.entropy {
                out.push(if low {
                    format!(
                        "entropy {:.3} fell below {} × the first step's {first:.3}: the policy is collapsing (raise entropy_coef or beta)",
                        s.entropy, cfg.entropy_alarm
                    )
                } else {
                    format!("entropy back to {:.3}", s.entropy)
                });
                self.entropy = low;
            }
        }
        out
    }
}

/// A run's evaluations and the val-loss guard's state.
struct Evals {
    /// The starting policy's val loss.
    base_val: Option<f64>,
    /// The evaluations within the bound.
    records: Vec<EvalRecord>,
    /// The policy of the last evaluation within the bound, and its step.
    last_good: Option<(GPT, usize)>,
    /// The step whose policy crossed the bound.
    rolled_back_from: Option<usize>,
}

impl Evals {
    /// Evaluates the policy at `step`, logs it and (with `save`) writes the checkpoint. Returns
    /// true when the policy crossed the val-loss bound: the checkpoint is then the policy of the
    /// last evaluation within it.
    fn at(
        &mut self,
        t: &Trainer,
        cfg: &GrpoConfig,
        step: usize,
        save: bool,
        (log, pb): (&mut JsonlLog, &ProgressBar),
    ) -> Result<bool> {
        let inf = t.policy.inference();
        let (rec, samples) = t.evaluate(&inf, step)?;
        show_eval(t, &rec, &samples, pb);
        let mut j = serde_json::to_value(&rec)
            .map_err(|e| Error::Other(format!("cannot serialise eval: {e}")))?;
        j["eval"] = serde_json::json!(true);
        log.write(&j)?;
        if guard(cfg, &rec, *self.base_val.get_or_insert(rec.val_loss), pb) {
            self.rolled_back_from = Some(step);
            let (good, good_step) = self.last_good.take().unwrap_or((inf, step));
            progress::say(
                pb,
                format!(
                    "keeping the policy of step {good_step}, the last evaluated within the bound"
                ),
            );
            t.save(&good, good_step)?;
            return Ok(true);
        }
        self.records.push(rec);
        if save {
            t.save(&inf, step)?;
        }
        self.last_good = Some((inf, step));
        Ok(false)
    }
}

/// The reward-hacking guard's verdict on an evaluation.
fn guard(cfg: &GrpoConfig, rec: &EvalRecord, base: f64, pb: &ProgressBar) -> bool {
    let (step, rise) = (rec.step, rec.val_loss - base);
    if rise > 0.1 {
        progress::say(
            pb,
            format!(
                "warning: the policy's val loss rose by {rise:.3} since step 0: it is probably exploiting the reward model (raise beta, lower learning_rate, or retrain the reward model on its samples with `cycle`)"
            ),
        );
    }
    if cfg.max_val_loss_increase > 0.0 && rise > cfg.max_val_loss_increase {
        progress::say(
            pb,
            format!(
                "stopping at step {step}: val loss rose by {rise:.3} > max_val_loss_increase {}",
                cfg.max_val_loss_increase
            ),
        );
        return true;
    }
    false
}

/// Prints an evaluation and two of the policy's completions.
fn show_eval(t: &Trainer, rec: &EvalRecord, samples: &[Vec<u32>], pb: &ProgressBar) {
    progress::say(
        pb,
        format!(
            "step {}: val loss {:.4} | reward on val prompts: policy {:.4}, reference {:.4}, natural {:.4}",
            rec.step, rec.val_loss, rec.reward_policy, rec.reward_ref, rec.reward_natural
        ),
    );
    for s in samples.iter().take(2) {
        let text = t
            .tokenizer
            .decode(&s[t.eval.prompt_len..])
            .replace('\n', "⏎");
        progress::say(pb, format!("  sample: {text}"));
    }
}

/// The JSONL record of a step.
fn step_json(step: usize, lr: f64, s: &StepRecord) -> serde_json::Value {
    let d = s.phase_ms;
    serde_json::json!({
        "step": step, "reward_mean": s.reward_mean, "reward_std": s.reward_std,
        "kl": s.stats.kl(), "clip_frac": s.stats.clip_frac(), "zero_std_frac": s.zero_std,
        "entropy": s.entropy, "policy_loss": s.policy_loss, "ptx_loss": s.ptx_loss, "grad_norm": s.grad_norm, "lr": lr,
        "prompt_len": s.prompt_len, "sample_ms": d[0], "reward_ms": d[1],
        "ref_ms": d[2], "update_ms": d[3], "dropped_rows": s.dropped,
        "teacher_kl_reverse": s.teacher_kl[0], "teacher_kl_forward": s.teacher_kl[1],
    })
}

/// Runs GRPO with any reward. `reward_tokenizer`, when given, must match the data's.
pub fn run_with(
    cfg: &GrpoConfig,
    reward: &dyn RewardFn,
    reward_tokenizer: Option<&Tokenizer>,
    show_progress: bool,
) -> Result<GrpoOutcome> {
    run_inner(cfg, reward, reward_tokenizer, None, show_progress)
}

fn run_inner(
    cfg: &GrpoConfig,
    reward: &dyn RewardFn,
    reward_tokenizer: Option<&Tokenizer>,
    initial: Option<&GPT>,
    show_progress: bool,
) -> Result<GrpoOutcome> {
    cfg.validate()?;
    let _lock = DirLock::acquire(Path::new(&cfg.out_dir))?;
    device::set_threads(cfg.threads);
    let (mut t, start) = setup(cfg, reward, reward_tokenizer, initial)?;
    let out_dir = PathBuf::from(&cfg.out_dir);
    let log_path = out_dir.join("metrics.jsonl");
    let mut log = JsonlLog::open(&log_path, Some(("step", start as u64)))?.with_tensorboard(
        &cfg.tensorboard,
        "step",
        "grpo",
    )?;
    let pb = progress::steps(cfg.max_steps, start, show_progress);
    // The starting model's val loss (from the log when resuming): the reward-hacking guard.
    let base_val = metrics::read_jsonl(&log_path)?
        .iter()
        .find(|r| r.get("eval").is_some())
        .and_then(|r| r["val_loss"].as_f64());
    let mut ev = Evals {
        base_val,
        records: Vec::new(),
        last_good: None,
        rolled_back_from: None,
    };
    let (mut stop, started) = (false, Instant::now());
    let (mut rewards_seen, mut phase) = (Vec::new(), [0.0f64; 4]);
    let mut step = start;
    let mut alarms = Alarms::default();
    loop {
        let mut is_last = step >= cfg.max_steps;
        if (step % cfg.eval_interval == 0 || is_last)
            && ev.at(&t, cfg, step, step > start || is_last, (&mut log, &pb))?
        {
            (stop, is_last) = (true, true);
        }
        if is_last {
            break;
        }
        let s = train_step(&mut t, cfg, step, &mut log, &pb, &mut alarms)?;
        for (acc, d) in phase.iter_mut().zip(s.phase_ms) {
            *acc += d;
        }
        rewards_seen.push(s.reward_mean);
        step += 1;
        pb.set_position(step as u64);
        if stop::requested() {
            pb.finish_and_clear();
            t.save(&t.policy.inference(), step)?;
            return Err(Error::Interrupted(format!(
                "stopped at step {step}; checkpoint saved to {}; resume with the same command and --init_from=resume",
                t.ckpt_dir.display()
            )));
        }
    }
    pb.finish_and_clear();
    plot(&log_path, &out_dir.join("grpo_curve.svg"))?;
    let (reward_start, reward_end, phase_ms) = summarise(&rewards_seen, phase);
    Ok(GrpoOutcome {
        steps: step,
        evals: ev.records,
        reward_start,
        reward_end,
        seconds: started.elapsed().as_secs_f64(),
        stopped_early: stop,
        rolled_back_from: ev.rolled_back_from,
        phase_ms,
        checkpoint: t.ckpt_dir,
    })
}

/// One GRPO update with its progress message, log line and alarms.
fn train_step(
    t: &mut Trainer,
    cfg: &GrpoConfig,
    step: usize,
    log: &mut JsonlLog,
    pb: &ProgressBar,
    alarms: &mut Alarms,
) -> Result<StepRecord> {
    let lr = cfg.lr_at(step);
    let s = t.step(step, lr)?;
    let teacher = match (cfg.teacher.is_empty(), cfg.teacher_loss) {
        (true, _) => String::new(),
        (false, TeacherLoss::Advantage) => format!(" | KL to teacher {:.4}", s.teacher_kl[0]),
        (false, TeacherLoss::ForwardKl) => format!(" | KL from teacher {:.4}", s.teacher_kl[1]),
    };
    pb.set_message(format!(
        "reward {:.4} | kl {:.4}{teacher} | clip {:.3} | {:.0} ms/step",
        s.reward_mean,
        s.stats.kl(),
        s.stats.clip_frac(),
        s.phase_ms.iter().sum::<f64>()
    ));
    log.write(&step_json(step, lr, &s))?;
    for alarm in alarms.check(cfg, &s) {
        progress::say(pb, format!("alarm at step {step}: {alarm}"));
        log.write(&serde_json::json!({"step": step, "alarm": alarm}))?;
    }
    Ok(s)
}

/// The mean training reward of the first and of the last up-to-10 steps, and the mean
/// milliseconds per step of each phase.
fn summarise(rewards_seen: &[f64], phase: [f64; 4]) -> (f64, f64, [f64; 4]) {
    let steps_run = rewards_seen.len();
    let k = steps_run.clamp(1, 10);
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    (
        avg(&rewards_seen[..k.min(steps_run)]),
        avg(&rewards_seen[steps_run.saturating_sub(k)..]),
        phase.map(|t| t / steps_run.max(1) as f64),
    )
}

/// Plots a GRPO metrics.jsonl: rewards (training, and the evaluations of policy, reference and
/// natural text), the val loss, the KL and the entropy, each panel on its own axis.
pub fn plot(log: &Path, out: &Path) -> Result<()> {
    let recs = metrics::read_jsonl(log)?;
    let pick = |key: &str, name: &str| Series {
        name: name.to_string(),
        points: recs
            .iter()
            .filter_map(|r| Some((r["step"].as_f64()?, r.get(key)?.as_f64()?)))
            .collect(),
    };
    let panels = [
        (
            "P(natural)",
            vec![
                pick("reward_mean", "train reward"),
                pick("reward_policy", "eval: policy"),
                pick("reward_ref", "eval: reference"),
                pick("reward_natural", "eval: natural text"),
            ],
        ),
        (
            "val loss (nats)",
            vec![pick("val_loss", "val loss (natural text)")],
        ),
        ("KL / token", vec![pick("kl", "KL to the reference")]),
        ("entropy (nats)", vec![pick("entropy", "policy entropy")]),
    ];
    if recs.is_empty() {
        return Ok(());
    }
    metrics::plot_panels(out, "GRPO", "step", &panels)
}
