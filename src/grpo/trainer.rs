//! `nanoreward grpo`: the GRPO training loop — rollouts from train-split prompts, rewards from
//! the frozen reward model, group-relative advantages, μ clipped policy updates per batch,
//! evaluation on natural val text, checkpoints and exact resumption.
//!
//! Every step's randomness (prompt length, prompt positions, sampling noise of each completion)
//! comes from (seed, step) alone, so a resumed run draws what the uninterrupted one would have.

pub use super::config::GrpoConfig;
use super::{LossInputs, LossNorm, LossStats};
use crate::checkpoint::{self, CheckpointParts, HostTensor};
use crate::data::TokenFile;
use crate::error::{Error, Result};
use crate::metrics::{self, JsonlLog, Series};
use crate::model::{GPT, Mode};
use crate::optim::{self, AdamW, AdamWConfig};
use crate::reward_data::{GenOptions, Row, generate_rows, mix};
use crate::reward_model::RewardModel;
use crate::tokenizer::Tokenizer;
use crate::train::say;
use crate::{device, fsutil};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The reward of complete windows (prompt + completion); `prompt_len` tokens are the prompt.
pub trait RewardFn {
    fn rewards(&self, windows: &[Vec<u32>], prompt_len: usize) -> Result<Vec<f32>>;
}

impl RewardFn for RewardModel {
    fn rewards(&self, windows: &[Vec<u32>], _prompt_len: usize) -> Result<Vec<f32>> {
        self.score(windows)
    }
}

impl<F: Fn(&[Vec<u32>], usize) -> Vec<f32>> RewardFn for F {
    fn rewards(&self, windows: &[Vec<u32>], prompt_len: usize) -> Result<Vec<f32>> {
        Ok(self(windows, prompt_len))
    }
}

/// Share of a completion's 4-grams that already occurred earlier in the window.
pub fn repeated_share(window: &[u32], prompt_len: usize) -> f64 {
    let n = 4;
    let starts: Vec<usize> = (prompt_len.saturating_sub(n - 1)..=window.len().saturating_sub(n))
        .filter(|&s| s + n > prompt_len)
        .collect();
    if starts.is_empty() {
        return 0.0;
    }
    let repeated = starts
        .iter()
        .filter(|&&s| (0..s).any(|e| window[e..e + n] == window[s..s + n]))
        .count();
    repeated as f64 / starts.len() as f64
}

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
    cfg.validate()?;
    let dev = device::select(&cfg.device)?;
    let mut rm = RewardModel::load(Path::new(&cfg.reward_model), &dev)?;
    rm.workers = device::workers(cfg.threads);
    let rb = rm.model.config.block_size;
    if cfg.prompt_max + cfg.completion_len > rb {
        return Err(Error::Config(format!(
            "prompt_max + completion_len = {} exceeds the reward model's block_size {rb}",
            cfg.prompt_max + cfg.completion_len
        )));
    }
    run_with(cfg, &rm, Some(&rm.tokenizer), show_progress)
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
    let t = ids.len() / b;
    let chunks = device::row_ranges(b, w);
    let parts = device::par_map(&chunks, chunks.len(), |&(r0, r1)| {
        super::completion_logp(model, &ids[r0 * t..r1 * t], r1 - r0, plen, temp)
            .map(|(lp, _)| HostTensor::from_tensor(lp).data)
    });
    Ok(parts.into_iter().collect::<Result<Vec<_>>>()?.concat())
}

/// Runs GRPO with any reward. `reward_tokenizer`, when given, must match the data's.
pub fn run_with(
    cfg: &GrpoConfig,
    reward: &dyn RewardFn,
    reward_tokenizer: Option<&Tokenizer>,
    show_progress: bool,
) -> Result<GrpoOutcome> {
    cfg.validate()?;
    device::set_threads(cfg.threads);
    let dev: Device = device::select(&cfg.device)?;
    let workers = device::workers(cfg.threads);
    let data_dir = PathBuf::from(&cfg.data_dir);
    let out_dir = PathBuf::from(&cfg.out_dir);
    let (ckpt_dir, ref_dir) = dirs(&out_dir);
    let train = TokenFile::open(&data_dir.join("train.bin"))?;
    let val = TokenFile::open(&data_dir.join("val.bin"))?;
    let tokenizer = crate::train::data_tokenizer(&data_dir)?;
    if let Some(rt) = reward_tokenizer
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
    let resume = cfg.init_from == "resume";
    let (policy, mut opt, start) = if resume {
        let state = checkpoint::load_train_state(&ckpt_dir)?;
        let step = state["step"].as_u64().unwrap_or(0) as usize;
        let opt = checkpoint::load_optimizer(&ckpt_dir, &dev)?;
        (checkpoint::load_model(&ckpt_dir, &dev)?, opt, step)
    } else {
        let m = checkpoint::load_model(Path::new(&cfg.init_from), &dev)?;
        let opt = AdamW::new(AdamWConfig {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: 1e-8,
            weight_decay: cfg.weight_decay,
        });
        (m, opt, 0)
    };
    if policy.config.mode != Mode::Generator {
        return Err(Error::Config(
            "init_from must be a generator checkpoint (this one is a reward model)".into(),
        ));
    }
    let mc = policy.config.clone();
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
    train.require_window(window_max)?;
    val.require_window(mc.block_size)?;
    let reference = if resume {
        checkpoint::load_model(&ref_dir, &dev)?
    } else {
        fsutil::create_dir_all(&out_dir)?;
        let parts = CheckpointParts {
            model: &policy,
            optimizer: None,
            train_state: Some(serde_json::json!({"role": "GRPO reference", "from": cfg.init_from})),
            tokenizer: Some(&tokenizer),
        };
        checkpoint::save(&ref_dir, &parts)?;
        policy.clone()
    };
    opt.config.weight_decay = cfg.weight_decay;
    let mut policy = policy.into_trainable(|_| true);
    let log_path = out_dir.join("metrics.jsonl");
    let mut log = JsonlLog::open(&log_path, Some(("step", start as u64)))?;
    let (p, g, l) = (cfg.prompts_per_step, cfg.group_size, cfg.completion_len);
    let b = p * g;
    let rollout = |model: &GPT, rows: &[Row]| {
        generate_rows(
            model,
            rows,
            &GenOptions {
                samples_per_chunk: 1,
                sample: cfg.sample_options(),
                seed: cfg.seed,
                batch_size: rows.len().div_ceil(workers).max(1),
                workers,
            },
        )
    };
    // Fixed evaluation material: val prompts and val windows, the same at every evaluation.
    let eval_plen = (cfg.prompt_min + cfg.prompt_max) / 2;
    let mut erng = ChaCha8Rng::seed_from_u64(mix(cfg.seed ^ 0x6576_616c));
    let eval_windows: Vec<Vec<u32>> = (0..cfg.eval_prompts)
        .map(|_| {
            let s = erng.random_range(0..=val.len() - (eval_plen + l));
            val.slice(s, eval_plen + l)
        })
        .collect();
    let val_batches: Vec<(Vec<i64>, Vec<i64>)> = (0..cfg.eval_iters)
        .map(|_| val.random_batch(&mut erng, cfg.eval_batch_size, mc.block_size))
        .collect();
    let evaluate = |model: &GPT, step: usize| -> Result<(EvalRecord, Vec<Vec<u32>>)> {
        let val_loss = crate::train::mean_loss(model, &val_batches, cfg.eval_batch_size, workers);
        let rows: Vec<Row> = eval_windows
            .iter()
            .enumerate()
            .map(|(i, w)| Row {
                natural: w,
                k: eval_plen,
                seed: mix(cfg.seed ^ 0x7265_6600 ^ i as u64),
            })
            .collect();
        let ours = rollout(model, &rows)?;
        let theirs = rollout(&reference, &rows)?;
        let mean = |v: Vec<f32>| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let rec = EvalRecord {
            step,
            val_loss,
            val_ppl: val_loss.exp(),
            reward_policy: mean(reward.rewards(&ours, eval_plen)?),
            reward_ref: mean(reward.rewards(&theirs, eval_plen)?),
            reward_natural: mean(reward.rewards(&eval_windows, eval_plen)?),
        };
        Ok((rec, ours))
    };
    let pb = crate::train::progress_bar(cfg.max_steps, start, show_progress);
    // The starting model's val loss (from the log when resuming): the reward-hacking guard.
    let mut base_val = metrics::read_jsonl(&log_path)?
        .iter()
        .find(|r| r.get("eval").is_some())
        .and_then(|r| r["val_loss"].as_f64());
    let mut stop = false;
    let started = Instant::now();
    let mut evals = Vec::new();
    let mut rewards_seen = Vec::new();
    let mut phase = [0.0f64; 4];
    let lcfg = cfg.loss_config();
    let mut step = start;
    loop {
        let mut is_last = step >= cfg.max_steps;
        if step % cfg.eval_interval == 0 || is_last {
            let inf = policy.inference();
            let (rec, samples) = evaluate(&inf, step)?;
            say(
                &pb,
                format!(
                    "step {step}: val loss {:.4} | reward on val prompts: policy {:.4}, reference {:.4}, natural {:.4}",
                    rec.val_loss, rec.reward_policy, rec.reward_ref, rec.reward_natural
                ),
            );
            for s in samples.iter().take(2) {
                let text = tokenizer.decode(&s[eval_plen..]).replace('\n', "⏎");
                say(&pb, format!("  sample: {text}"));
            }
            let mut j = serde_json::to_value(&rec)
                .map_err(|e| Error::Other(format!("cannot serialise eval: {e}")))?;
            j["eval"] = serde_json::json!(true);
            log.write(&j)?;
            let base = *base_val.get_or_insert(rec.val_loss);
            let rise = rec.val_loss - base;
            if rise > 0.1 {
                say(
                    &pb,
                    format!(
                        "warning: the policy's val loss rose by {rise:.3} since step 0: it is probably exploiting the reward model (raise beta, lower learning_rate, or retrain the reward model on its samples with `cycle`)"
                    ),
                );
            }
            if cfg.max_val_loss_increase > 0.0 && rise > cfg.max_val_loss_increase {
                say(
                    &pb,
                    format!(
                        "stopping at step {step}: val loss rose by {rise:.3} > max_val_loss_increase {}",
                        cfg.max_val_loss_increase
                    ),
                );
                stop = true;
                is_last = true;
            }
            evals.push(rec);
            if step > start || is_last {
                let state = serde_json::json!({"step": step, "config": cfg});
                checkpoint::save(
                    &ckpt_dir,
                    &CheckpointParts {
                        model: &inf,
                        optimizer: Some(&opt),
                        train_state: Some(state),
                        tokenizer: Some(&tokenizer),
                    },
                )?;
            }
        }
        if is_last {
            break;
        }
        let lr = cfg.lr_at(step);
        let s_seed = mix(cfg.seed ^ mix(step as u64 + 1));
        let mut rng = ChaCha8Rng::seed_from_u64(s_seed);
        let plen = rng.random_range(cfg.prompt_min..=cfg.prompt_max);
        let n = plen + l;
        let windows: Vec<Vec<u32>> = (0..p)
            .map(|_| train.slice(rng.random_range(0..=train.len() - n), n))
            .collect();
        let rows: Vec<Row> = (0..b)
            .map(|i| Row {
                natural: &windows[i / g],
                k: plen,
                seed: mix(s_seed ^ mix(i as u64 + 7)),
            })
            .collect();
        let inf = policy.inference();
        let t0 = Instant::now();
        let seqs = rollout(&inf, &rows)?;
        let t1 = Instant::now();
        let mut r = reward.rewards(&seqs, plen)?;
        if r.len() != b || r.iter().any(|x| !x.is_finite()) {
            return Err(Error::Other(format!(
                "the reward function returned {} values (need {b} finite ones)",
                r.len()
            )));
        }
        let raw_mean = r.iter().map(|&x| x as f64).sum::<f64>() / b as f64;
        if cfg.repetition_penalty > 0.0 {
            for (x, s) in r.iter_mut().zip(&seqs) {
                *x -= (cfg.repetition_penalty * repeated_share(s, plen)) as f32;
            }
        }
        let (adv, zero_std) = super::advantages(&r, g, cfg.scale_rewards, 1e-4);
        let t2 = Instant::now();
        let ids: Vec<i64> = seqs.iter().flatten().map(|&t| t as i64).collect();
        let temp = cfg.temperature;
        let old = (cfg.num_iterations > 1)
            .then(|| host_logp(&inf, &ids, b, plen, temp, workers))
            .transpose()?;
        let refl = (cfg.beta > 0.0)
            .then(|| host_logp(&reference, &ids, b, plen, temp, workers))
            .transpose()?;
        let t3 = Instant::now();
        let norm = LossNorm {
            rows: b,
            tokens: (b * l) as f64,
            max_len: l,
        };
        let mut stats = LossStats::default();
        let (mut loss_v, mut entropy, mut gnorm) = (0.0, 0.0, 0.0);
        for mu in 0..cfg.num_iterations {
            let (lv, mut grads, parts) =
                optim::parallel_grads(&policy, b, workers, |m, _, r0, r1| {
                    let rows = r1 - r0;
                    let host = |v: &[f32]| {
                        Tensor::<2>::from_data(
                            TensorData::new(v[r0 * l..r1 * l].to_vec(), [rows, l]),
                            &m.device(),
                        )
                    };
                    let (logp, ent) =
                        super::completion_logp(m, &ids[r0 * n..r1 * n], rows, plen, temp)
                            .unwrap_or_else(|e| unreachable!("window checked above: {e}"));
                    let x = LossInputs {
                        old_logp: old.as_deref().map_or(logp.clone().detach(), host),
                        ref_logp: refl.as_deref().map(host),
                        logp,
                        advantages: Tensor::from_data(
                            TensorData::new(adv[r0..r1].to_vec(), [rows]),
                            &m.device(),
                        ),
                        mask: Tensor::ones([rows, l], &m.device()),
                    };
                    let (loss, st) = super::grpo_loss(&x, &lcfg, &norm);
                    let ent_sum = ent.sum().into_scalar::<f32>() as f64;
                    (loss, (st, ent_sum))
                });
            if mu == 0 {
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
            opt.step(&mut policy, grads, lr);
        }
        let t4 = Instant::now();
        let dts = [t1 - t0, t2 - t1, t3 - t2, t4 - t3].map(|d| d.as_secs_f64() * 1e3);
        for (acc, d) in phase.iter_mut().zip(dts) {
            *acc += d;
        }
        let std = (r
            .iter()
            .map(|&x| (x as f64 - raw_mean).powi(2))
            .sum::<f64>()
            / b as f64)
            .sqrt();
        rewards_seen.push(raw_mean);
        pb.set_message(format!(
            "reward {raw_mean:.4} | kl {:.4} | clip {:.3} | {:.0} ms/step",
            stats.kl(),
            stats.clip_frac(),
            dts.iter().sum::<f64>()
        ));
        log.write(&serde_json::json!({
            "step": step, "reward_mean": raw_mean, "reward_std": std,
            "kl": stats.kl(), "clip_frac": stats.clip_frac(), "zero_std_frac": zero_std,
            "entropy": entropy, "policy_loss": loss_v, "grad_norm": gnorm, "lr": lr,
            "prompt_len": plen, "sample_ms": dts[0], "reward_ms": dts[1],
            "ref_ms": dts[2], "update_ms": dts[3],
        }))?;
        step += 1;
        pb.set_position(step as u64);
    }
    pb.finish_and_clear();
    plot(&log_path, &out_dir.join("grpo_curve.svg"))?;
    let steps_run = rewards_seen.len();
    let k = steps_run.clamp(1, 10);
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Ok(GrpoOutcome {
        steps: step,
        evals,
        reward_start: avg(&rewards_seen[..k.min(steps_run)]),
        reward_end: avg(&rewards_seen[steps_run.saturating_sub(k)..]),
        seconds: started.elapsed().as_secs_f64(),
        stopped_early: stop,
        phase_ms: phase.map(|t| t / steps_run.max(1) as f64),
        checkpoint: ckpt_dir,
    })
}

/// Plots the training reward per step and the evaluations of a GRPO metrics.jsonl.
pub fn plot(log: &Path, out: &Path) -> Result<()> {
    let recs = metrics::read_jsonl(log)?;
    let pick = |key: &str, name: &str| Series {
        name: name.to_string(),
        points: recs
            .iter()
            .filter_map(|r| Some((r["step"].as_f64()?, r.get(key)?.as_f64()?)))
            .collect(),
    };
    let series: Vec<Series> = [
        pick("reward_mean", "train reward P(natural)"),
        pick("reward_policy", "eval reward (policy)"),
        pick("reward_ref", "eval reward (reference)"),
        pick("val_loss", "val loss (natural text)"),
    ]
    .into_iter()
    .filter(|s| !s.points.is_empty())
    .collect();
    if series.is_empty() {
        return Ok(());
    }
    metrics::plot_svg(out, "GRPO", "step", "reward / val loss", &series)
}
