//! `nanoreward train`: nanoGPT's train.py loop — random windows from train.bin, AdamW with
//! warmup + cosine decay, global gradient clipping, gradient accumulation, periodic train/val
//! evaluation, best-val / always-save checkpoints and exact resumption.

use crate::checkpoint::{self, CheckpointParts};
use crate::data::TokenFile;
use crate::error::{Error, Result};
use crate::metrics::{self, JsonlLog, Series};
use crate::model::{GPT, GPTConfig};
use crate::optim::{self, AdamW, AdamWConfig};
use crate::tokenizer::{CharVocab, Tokenizer};
use crate::{device, fsutil};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Training configuration; keys and defaults are nanoGPT's train.py, plus `data_dir`,
/// `device` and `threads`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub out_dir: String,
    pub eval_interval: usize,
    pub log_interval: usize,
    pub eval_iters: usize,
    pub eval_only: bool,
    pub always_save_checkpoint: bool,
    /// `scratch`, `resume`, or `gpt2` / `gpt2-medium` / ... (a local Hugging Face directory).
    pub init_from: String,
    /// Where `init_from = gpt2*` finds config.json + model.safetensors (default models/<init_from>).
    pub pretrained_dir: String,
    pub data_dir: String,
    pub gradient_accumulation_steps: usize,
    pub batch_size: usize,
    pub block_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub dropout: f64,
    pub bias: bool,
    pub learning_rate: f64,
    pub max_iters: usize,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub grad_clip: f64,
    pub decay_lr: bool,
    pub warmup_iters: usize,
    pub lr_decay_iters: usize,
    pub min_lr: f64,
    pub seed: u64,
    /// `auto`, `cpu` or `cuda`.
    pub device: String,
    /// CPU threads (0 = one per core).
    pub threads: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            out_dir: "out".into(),
            eval_interval: 2000,
            log_interval: 1,
            eval_iters: 200,
            eval_only: false,
            always_save_checkpoint: true,
            init_from: "scratch".into(),
            pretrained_dir: String::new(),
            data_dir: "data/shakespeare_char".into(),
            gradient_accumulation_steps: 1,
            batch_size: 12,
            block_size: 1024,
            n_layer: 12,
            n_head: 12,
            n_embd: 768,
            dropout: 0.0,
            bias: false,
            learning_rate: 6e-4,
            max_iters: 600_000,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            grad_clip: 1.0,
            decay_lr: true,
            warmup_iters: 2000,
            lr_decay_iters: 600_000,
            min_lr: 6e-5,
            seed: 1337,
            device: "auto".into(),
            threads: 0,
        }
    }
}

/// nanoGPT keys accepted for compatibility and ignored (they concern PyTorch or wandb).
pub const IGNORED_KEYS: &[(&str, Option<&str>)] = &[
    ("compile", None),
    ("dtype", None),
    ("backend", None),
    ("wandb_log", None),
    ("wandb_project", None),
    ("wandb_run_name", None),
    ("dataset", None),
];

impl TrainConfig {
    /// Rejects values that cannot train.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("batch_size", self.batch_size),
            ("block_size", self.block_size),
            (
                "gradient_accumulation_steps",
                self.gradient_accumulation_steps,
            ),
            ("eval_iters", self.eval_iters),
            ("eval_interval", self.eval_interval),
            ("log_interval", self.log_interval),
        ];
        for (k, v) in positive {
            if v == 0 {
                return Err(Error::Config(format!("{k} must be positive")));
            }
        }
        let finite = [
            ("learning_rate", self.learning_rate),
            ("min_lr", self.min_lr),
            ("weight_decay", self.weight_decay),
            ("grad_clip", self.grad_clip),
        ];
        for (k, v) in finite {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::Config(format!(
                    "{k} must be a finite number ≥ 0, got {v}"
                )));
            }
        }
        if self.learning_rate == 0.0 {
            return Err(Error::Config("learning_rate must be positive".into()));
        }
        for (k, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::Config(format!("{k} must be in [0, 1), got {v}")));
            }
        }
        if !matches!(self.init_from.as_str(), "scratch" | "resume")
            && !self.init_from.starts_with("gpt2")
            && !Path::new(&self.init_from).exists()
        {
            return Err(Error::Config(format!(
                "init_from must be 'scratch', 'resume', 'gpt2' (a local Hugging Face GPT-2) or an existing checkpoint (directory or nanoGPT .pt), got '{}'",
                self.init_from
            )));
        }
        Ok(())
    }

    fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: 1e-8,
            weight_decay: self.weight_decay,
        }
    }
}

/// Result of a training run.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub iter: usize,
    pub best_val_loss: f64,
    /// (iteration, train loss, val loss) at every evaluation.
    pub evals: Vec<(usize, f64, f64)>,
    pub seconds: f64,
    pub checkpoint: PathBuf,
}

/// The data folder's meta.pkl / meta.json, when present.
pub fn data_meta(data_dir: &Path) -> Option<PathBuf> {
    ["meta.pkl", "meta.json"]
        .iter()
        .map(|n| data_dir.join(n))
        .find(|p| p.exists())
}

/// The data folder's tokenizer: meta.pkl / meta.json when present, else GPT-2 BPE.
pub fn data_tokenizer(data_dir: &Path) -> Result<Tokenizer> {
    for name in ["meta.pkl", "meta.json"] {
        let p = data_dir.join(name);
        if p.exists() {
            return Ok(Tokenizer::Char(CharVocab::load(&p)?));
        }
    }
    Ok(Tokenizer::Bpe)
}

/// Deterministic per-iteration seed for dropout masks (so a resumed run draws the same masks).
fn iter_seed(seed: u64, it: usize, salt: u64) -> u64 {
    let mut x = seed ^ (it as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.rotate_left(17);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

/// Mean loss over `eval_iters` random batches of `data` (no gradients, no dropout); the batches
/// are drawn in order from `rng` and evaluated on the worker threads.
fn estimate_loss(model: &GPT, data: &TokenFile, cfg: &TrainConfig, rng: &mut ChaCha8Rng) -> f64 {
    let batches: Vec<(Vec<i64>, Vec<i64>)> = (0..cfg.eval_iters)
        .map(|_| data.random_batch(rng, cfg.batch_size, cfg.block_size))
        .collect();
    mean_loss(
        model,
        &batches,
        cfg.batch_size,
        device::workers(cfg.threads),
    )
}

/// Mean next-token loss of `batches` (x, y row-major `[batch, T]`), evaluated on `workers`
/// threads without gradients or dropout.
pub fn mean_loss(
    model: &GPT,
    batches: &[(Vec<i64>, Vec<i64>)],
    batch: usize,
    workers: usize,
) -> f64 {
    let losses = device::par_map(batches, workers, |(x, y)| {
        model
            .loss(model.tokens(x, batch), model.tokens(y, batch), None)
            .into_scalar::<f32>() as f64
    });
    losses.iter().sum::<f64>() / losses.len().max(1) as f64
}

/// The step progress bar of `train` and `grpo` (hidden when `show` is false), at `pos` of `len`.
pub fn progress_bar(len: usize, pos: usize, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_position(pos as u64);
    pb
}

/// nanoGPT's `init_from = 'gpt2*'`, from a local Hugging Face directory: the pretrained
/// weights, position embeddings cropped to `block_size`, dropout as configured.
fn pretrained(cfg: &TrainConfig, tokenizer: &Tokenizer, dev: &Device) -> Result<GPT> {
    if !matches!(tokenizer, Tokenizer::Bpe) {
        return Err(Error::Mismatch(format!(
            "init_from = {} needs GPT-2 BPE data, but {} holds a character vocabulary (meta.pkl)",
            cfg.init_from, cfg.data_dir
        )));
    }
    let dir = if cfg.pretrained_dir.is_empty() {
        PathBuf::from("models").join(&cfg.init_from)
    } else {
        PathBuf::from(&cfg.pretrained_dir)
    };
    let (mut hc, weights) = crate::interop::read_hf_gpt2(&dir)?;
    if cfg.block_size > hc.block_size {
        return Err(Error::Config(format!(
            "block_size {} exceeds the pretrained model's {}",
            cfg.block_size, hc.block_size
        )));
    }
    hc.dropout = cfg.dropout;
    let mut model = GPT::new(&hc, dev, cfg.seed)?;
    checkpoint::load_weights(&mut model, &weights, &dir, |_| false)?;
    model.wpe = model.wpe.narrow(0, 0, cfg.block_size);
    model.config.block_size = cfg.block_size;
    Ok(model)
}

/// The checkpoint directory of a run.
pub fn checkpoint_dir(out_dir: &Path) -> PathBuf {
    out_dir.join("ckpt")
}

/// Runs training. `show_progress` draws a progress bar on stderr.
pub fn run(cfg: &TrainConfig, show_progress: bool) -> Result<TrainOutcome> {
    cfg.validate()?;
    device::set_threads(cfg.threads);
    let dev: Device = device::select(&cfg.device)?;
    let data_dir = PathBuf::from(&cfg.data_dir);
    let out_dir = PathBuf::from(&cfg.out_dir);
    let ckpt_dir = checkpoint_dir(&out_dir);
    let train = TokenFile::open(&data_dir.join("train.bin"))?;
    let val = TokenFile::open(&data_dir.join("val.bin"))?;
    train.require_window(cfg.block_size)?;
    val.require_window(cfg.block_size)?;
    let tokenizer = data_tokenizer(&data_dir)?;

    let (mut model, mut opt, start_iter, mut best_val, mut rng) = if cfg.init_from == "resume" {
        let mcfg = checkpoint::load_config(&ckpt_dir)?;
        if mcfg.block_size != cfg.block_size {
            return Err(Error::Mismatch(format!(
                "the checkpoint has block_size {} but the config asks for {}",
                mcfg.block_size, cfg.block_size
            )));
        }
        let model = checkpoint::load_model(&ckpt_dir, &dev)?;
        let opt = checkpoint::load_optimizer(&ckpt_dir, &dev)?;
        let state = checkpoint::load_train_state(&ckpt_dir)?;
        let it = state["iter_num"].as_u64().unwrap_or(0) as usize;
        let best = state["best_val_loss"].as_f64().unwrap_or(f64::INFINITY);
        let mut rng = ChaCha8Rng::seed_from_u64(state["rng_seed"].as_u64().unwrap_or(cfg.seed));
        rng.set_word_pos(
            state["rng_word_pos"]
                .as_str()
                .and_then(|s| s.parse::<u128>().ok())
                .unwrap_or(0),
        );
        (model, opt, it, best, rng)
    } else {
        let vocab_size = match &tokenizer {
            Tokenizer::Char(v) => v.len(),
            Tokenizer::Bpe => 50304,
        };
        let mcfg = GPTConfig {
            block_size: cfg.block_size,
            vocab_size,
            n_layer: cfg.n_layer,
            n_head: cfg.n_head,
            n_embd: cfg.n_embd,
            dropout: cfg.dropout,
            bias: cfg.bias,
            ..Default::default()
        };
        let model = if cfg.init_from.starts_with("gpt2") {
            pretrained(cfg, &tokenizer, &dev)?
        } else if cfg.init_from != "scratch" {
            // Start from the weights of a checkpoint (fresh optimizer, iteration 0).
            let mut m = checkpoint::load_model(Path::new(&cfg.init_from), &dev)?;
            if m.config.block_size != cfg.block_size || m.config.vocab_size != mcfg.vocab_size {
                return Err(Error::Mismatch(format!(
                    "{} has block_size {} and vocab_size {}, but the config and data ask for {} and {}",
                    cfg.init_from,
                    m.config.block_size,
                    m.config.vocab_size,
                    cfg.block_size,
                    mcfg.vocab_size
                )));
            }
            m.config.dropout = cfg.dropout;
            m
        } else {
            GPT::new(&mcfg, &dev, cfg.seed)?
        };
        (
            model,
            AdamW::new(cfg.adamw()),
            0,
            f64::INFINITY,
            ChaCha8Rng::seed_from_u64(cfg.seed),
        )
    };
    if let Some(max) = train.max_id().max(val.max_id())
        && max as usize >= model.config.vocab_size
    {
        return Err(Error::Mismatch(format!(
            "the data holds token id {max} but the model's vocab_size is {}",
            model.config.vocab_size
        )));
    }
    opt.config = cfg.adamw();
    model = model.into_trainable(|_| true);

    fsutil::create_dir_all(&out_dir)?;
    let log_path = out_dir.join("metrics.jsonl");
    let mut log = JsonlLog::open(&log_path, Some(("iter", start_iter as u64)))?;
    eprintln!(
        "model: {} parameters ({} layers, {} heads, {} wide, block {}, vocab {}); tokens: train {}, val {}",
        model.num_params(),
        model.config.n_layer,
        model.config.n_head,
        model.config.n_embd,
        model.config.block_size,
        model.config.vocab_size,
        train.len(),
        val.len()
    );
    let tokens_per_iter = cfg.gradient_accumulation_steps * cfg.batch_size * cfg.block_size;
    let pb = progress_bar(cfg.max_iters, start_iter, show_progress);
    let workers = device::workers(cfg.threads);
    let started = Instant::now();
    let mut evals = Vec::new();
    let mut it = start_iter;
    loop {
        let lr = optim::lr_at(
            it,
            cfg.learning_rate,
            cfg.warmup_iters,
            cfg.lr_decay_iters,
            cfg.min_lr,
            cfg.decay_lr,
        );
        if it % cfg.eval_interval == 0 || it >= cfg.max_iters || cfg.eval_only {
            let inference = model.inference();
            let mut erng = ChaCha8Rng::seed_from_u64(iter_seed(cfg.seed, it, 1));
            let tl = estimate_loss(&inference, &train, cfg, &mut erng);
            let vl = estimate_loss(&inference, &val, cfg, &mut erng);
            say(
                &pb,
                format!("step {it}: train loss {tl:.4}, val loss {vl:.4}"),
            );
            log.write(
                &serde_json::json!({"iter": it, "train_loss": tl, "val_loss": vl, "lr": lr,
                "elapsed_s": started.elapsed().as_secs_f64()}),
            )?;
            evals.push((it, tl, vl));
            let improved = vl < best_val;
            if improved {
                best_val = vl;
            }
            if (improved || cfg.always_save_checkpoint) && it > 0 && !cfg.eval_only {
                let state = serde_json::json!({
                    "iter_num": it, "best_val_loss": best_val, "rng_seed": cfg.seed,
                    "rng_word_pos": rng.get_word_pos().to_string(), "config": cfg,
                });
                checkpoint::save(
                    &ckpt_dir,
                    &CheckpointParts {
                        model: &inference,
                        optimizer: Some(&opt),
                        train_state: Some(state),
                        tokenizer: Some(&tokenizer),
                    },
                )?;
                say(&pb, format!("saved checkpoint to {}", ckpt_dir.display()));
            }
        }
        if cfg.eval_only || it >= cfg.max_iters {
            break;
        }
        let t0 = Instant::now();
        let mut grads = Vec::new();
        let mut loss_sum = 0.0f64;
        let accum = cfg.gradient_accumulation_steps;
        for micro in 0..accum {
            let (x, y) = train.random_batch(&mut rng, cfg.batch_size, cfg.block_size);
            let seed = (cfg.dropout > 0.0).then(|| iter_seed(cfg.seed, it * accum + micro, 2));
            let scale = 1.0 / accum as f64;
            let (loss, g) =
                optim::batch_grads(&model, &x, &y, cfg.batch_size, workers, scale, seed);
            loss_sum += loss;
            optim::accumulate(&mut grads, g);
        }
        let norm = optim::clip_grad_norm(&mut grads, cfg.grad_clip);
        opt.step(&mut model, grads, lr);
        if !loss_sum.is_finite() {
            return Err(Error::Other(format!(
                "loss became {loss_sum} at iteration {it}; lower learning_rate or check the data"
            )));
        }
        let dt = t0.elapsed().as_secs_f64();
        if it % cfg.log_interval == 0 {
            let tps = tokens_per_iter as f64 / dt;
            pb.set_message(format!(
                "loss {loss_sum:.4} | {:.0} ms/iter | {tps:.0} tok/s",
                dt * 1e3
            ));
            log.write(
                &serde_json::json!({"iter": it, "loss": loss_sum, "lr": lr, "grad_norm": norm,
                "dt_ms": dt * 1e3, "tokens_per_s": tps}),
            )?;
        }
        it += 1;
        pb.set_position(it as u64);
    }
    pb.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    plot_run(&log_path, &out_dir.join("loss_curve.svg"))?;
    Ok(TrainOutcome {
        iter: it,
        best_val_loss: best_val,
        evals,
        seconds,
        checkpoint: ckpt_dir,
    })
}

/// Prints above the progress bar, or plainly when there is no bar (not a terminal).
pub fn say(pb: &ProgressBar, msg: String) {
    if pb.is_hidden() {
        println!("{msg}");
    } else {
        pb.println(msg);
    }
}

/// Plots train loss (per logged iteration) and eval losses of a metrics.jsonl.
pub fn plot_run(log: &Path, out: &Path) -> Result<()> {
    let recs = metrics::read_jsonl(log)?;
    let pick = |key: &str| Series {
        name: key.to_string(),
        points: recs
            .iter()
            .filter_map(|r| Some((r["iter"].as_f64()?, r.get(key)?.as_f64()?)))
            .collect(),
    };
    let series: Vec<Series> = ["loss", "train_loss", "val_loss"]
        .into_iter()
        .map(pick)
        .filter(|s| !s.points.is_empty())
        .collect();
    if series.is_empty() {
        return Ok(());
    }
    metrics::plot_svg(out, "training loss", "iteration", "cross-entropy", &series)
}
