//! `prepare-reward-data`, `merge-reward-data`, `inspect-reward-data`, `train-reward`,
//! `eval-reward` and `score`.

use super::{ConfigArgs, printed, report};
use anyhow::{Context, Result, bail};
use clap::Args;
use nanoreward::checkpoint::{self, Checkpoint};
use nanoreward::reward::prepare::{self, RewardPrepOptions};
use nanoreward::reward::{self, RewardDataset, RewardModel, RewardTrainConfig, dataset};
use nanoreward::sampling::top_k_or_all;
use nanoreward::util::{cluster, device};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct PrepareRewardDataArgs {
    /// Base model: a checkpoint directory (or a training out_dir holding ckpt/).
    #[arg(long = "model-path", alias = "model_path")]
    model_path: PathBuf,
    /// text (tokenize --data_path), binary (reuse --train_bin/--val_bin), or heldout (split
    /// --val_bin 80/20 into the reward data's train and val text: text the base model never
    /// trained on, see BENCHMARKS.md).
    #[arg(long = "input-mode", alias = "input_mode", default_value = "text")]
    input_mode: String,
    /// Text file, or a folder holding input.txt (and meta.pkl for char level).
    #[arg(long = "data-path", alias = "data_path")]
    data_path: Option<PathBuf>,
    #[arg(long = "train-bin", alias = "train_bin")]
    train_bin: Option<PathBuf>,
    #[arg(long = "val-bin", alias = "val_bin")]
    val_bin: Option<PathBuf>,
    /// Heldout mode, repeatable: more natural text the base model never trained on (a token
    /// file, e.g. the corpus's val.bin when --val_bin is prepare --reward_split's reward.bin),
    /// appended in whole blocks to the reward data's train text only (then `judge` needs
    /// other natural text than that file: its `natural`).
    #[arg(long = "extra-train-bin", alias = "extra_train_bin")]
    extra_train_bin: Vec<PathBuf>,
    /// auto (char when a meta.pkl/meta.json is found), bpe or char.
    #[arg(long, default_value = "auto")]
    tokenization: String,
    #[arg(long = "meta-path", alias = "meta_path")]
    meta_path: Option<PathBuf>,
    #[arg(
        long = "output-dir",
        alias = "output_dir",
        default_value = "data/reward_dataset"
    )]
    output_dir: PathBuf,
    #[arg(long = "train-split", alias = "train_split", default_value_t = 0.9)]
    train_split: f64,
    #[arg(
        long = "samples-per-chunk",
        alias = "samples_per_chunk",
        default_value_t = 10
    )]
    samples_per_chunk: usize,
    /// Share of samples made fully natural (K = N) or fully generated (K = 0), half each
    /// (0 keeps every cut in [1, N−1], the seed's contract).
    #[arg(long = "full-share", alias = "full_share", default_value_t = 0.0)]
    full_share: f64,
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Keep only the k most likely tokens (unset or 0 = all of them).
    #[arg(long = "top-k", alias = "top_k")]
    top_k: Option<usize>,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Sequences generated together.
    #[arg(long = "batch-size", alias = "batch_size", default_value_t = 64)]
    batch_size: usize,
    /// Use only the first N blocks of each split (quick runs).
    #[arg(long = "max-blocks", alias = "max_blocks")]
    max_blocks: Option<usize>,
    /// Shards of the work (default: SLURM_ARRAY_TASK_COUNT in a Slurm array, else 1).
    #[arg(long = "num-shards", alias = "num_shards")]
    num_shards: Option<usize>,
    /// This process's shard (default: SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN in a Slurm array,
    /// JOB_COMPLETION_INDEX in a Kubernetes Indexed Job, else 0).
    #[arg(long = "shard-index", alias = "shard_index")]
    shard_index: Option<usize>,
    /// CPU threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

impl PrepareRewardDataArgs {
    /// The library's options (string choices parsed, the model path resolved).
    fn options(&self) -> Result<RewardPrepOptions> {
        let shard = cluster::shard_from_env(self.shard_index, self.num_shards)?;
        if let Some(src) = &shard.source {
            println!("shard {} of {} (from {src})", shard.index, shard.count);
        }
        Ok(RewardPrepOptions {
            model_path: checkpoint::resolve(&self.model_path),
            input_mode: self.input_mode.parse()?,
            data_path: self.data_path.clone(),
            train_bin: self.train_bin.clone(),
            val_bin: self.val_bin.clone(),
            extra_train: self.extra_train_bin.clone(),
            tokenization: self.tokenization.parse()?,
            meta_path: self.meta_path.clone(),
            output_dir: self.output_dir.clone(),
            train_split: self.train_split,
            samples_per_chunk: self.samples_per_chunk,
            full_share: self.full_share,
            temperature: self.temperature,
            top_k: self.top_k.and_then(top_k_or_all),
            seed: self.seed,
            batch_size: self.batch_size,
            max_blocks: self.max_blocks,
            num_shards: shard.count,
            shard_index: shard.index,
            threads: self.threads,
        })
    }
}

pub fn prepare(a: PrepareRewardDataArgs) -> Result<()> {
    device::set_threads(a.threads);
    let dev = device::select(&a.device)?;
    let opts = a.options()?;
    let model = Checkpoint::open(&opts.model_path)?.model(&dev)?;
    let (opts, heldout) = prepare::resolve_heldout(&opts, model.config.block_size)?;
    if let Some(h) = heldout {
        println!(
            "held-out text: {} split into {} tokens (reward train) and {} (reward val)",
            h.source.display(),
            h.train_tokens,
            h.val_tokens
        );
        if h.extra_tokens > 0 {
            println!(
                "  the reward train text includes {} tokens of --extra_train_bin",
                h.extra_tokens
            );
        }
    }
    println!("Configuration:");
    println!("  base model:        {}", opts.model_path.display());
    println!("  device:            {}", a.device);
    println!(
        "  model:             {} parameters, block_size {}, vocab_size {}",
        model.num_params(),
        model.config.block_size,
        model.config.vocab_size
    );
    println!(
        "  samples_per_chunk: {}, temperature {}, top_k {}, seed {}, batch_size {}",
        opts.samples_per_chunk,
        opts.temperature,
        opts.top_k.map_or("none".into(), |k| k.to_string()),
        opts.seed,
        opts.batch_size
    );
    if opts.num_shards > 1 {
        println!(
            "  shard:             {} of {}",
            opts.shard_index, opts.num_shards
        );
    }
    let s = prepare::run(&opts, &model, true)?;
    report::reward_data(&s, &opts.output_dir);
    Ok(())
}

#[derive(Args)]
pub struct MergeArgs {
    /// Output directory.
    out: PathBuf,
    /// Shard directories (any order).
    #[arg(required = true)]
    shards: Vec<PathBuf>,
}

pub fn merge(a: MergeArgs) -> Result<()> {
    let metas = dataset::merge(&a.out, &a.shards)?;
    report::merged(&metas, &a.out);
    Ok(())
}

#[derive(Args)]
pub struct InspectArgs {
    /// Dataset directory.
    #[arg(default_value = "data/reward_dataset")]
    dir: PathBuf,
    /// Machine-readable JSON output.
    #[arg(long)]
    json: bool,
}

pub fn inspect(a: InspectArgs) -> Result<()> {
    let mut splits = Vec::new();
    for split in ["train", "val"] {
        let ds = RewardDataset::open(&a.dir, split, None)
            .with_context(|| format!("cannot open the {split} split of {}", a.dir.display()))?;
        splits.push((split, ds));
    }
    let consistent = splits
        .windows(2)
        .all(|w| w[0].1.tokenization() == w[1].1.tokenization());
    let reports: Vec<(&str, _)> = splits.iter().map(|(s, ds)| (*s, ds.inspect())).collect();
    if a.json {
        let mut j = serde_json::json!({ "dir": a.dir.display().to_string(), "tokenization_consistent": consistent });
        for (split, r) in &reports {
            j[*split] = serde_json::to_value(r)?;
        }
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    for (split, r) in &reports {
        report::inspection(split, r);
    }
    println!(
        "tokenization consistent across splits: {}",
        if consistent { "yes" } else { "NO" }
    );
    if !consistent {
        bail!("train and val splits use different tokenizations");
    }
    Ok(())
}

pub fn train_reward(a: ConfigArgs) -> Result<()> {
    let mut cfg: RewardTrainConfig = a.load(&[])?;
    cfg.base = checkpoint::resolve(Path::new(&cfg.base))
        .display()
        .to_string();
    cfg.validate()?;
    if printed(&a, &cfg)? {
        return Ok(());
    }
    let dev = device::select(&cfg.device)?;
    let base = Checkpoint::open(Path::new(&cfg.base))?;
    let generator = base.model(&dev)?;
    let (out, ev) = reward::train_and_evaluate(&cfg, &base, &generator, 256, cfg.seed, true)?;
    report::reward_trained(&out, &cfg.base);
    report::evaluation(&ev, Path::new(&cfg.out_dir));
    Ok(())
}

#[derive(Args)]
pub struct EvalRewardArgs {
    /// Reward checkpoint (or a train-reward out_dir holding ckpt/).
    #[arg(long, alias = "out_dir")]
    checkpoint: PathBuf,
    /// Base generator (default: the one the reward model was trained from).
    #[arg(long)]
    base: Option<PathBuf>,
    /// Reward dataset (default: the one it was trained on).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where eval.json and the plots go (default: beside the checkpoint).
    #[arg(long = "output-dir", alias = "output_dir")]
    output_dir: Option<PathBuf>,
    /// Natural and generated windows each for the AUROC.
    #[arg(long, default_value_t = 256)]
    windows: usize,
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    #[arg(long, default_value = "auto")]
    device: String,
}

pub fn eval_reward(a: EvalRewardArgs) -> Result<()> {
    let ckpt = checkpoint::resolve(&a.checkpoint);
    let state = checkpoint::dir::read_state(&ckpt)?;
    let trained: Option<RewardTrainConfig> = state.config_as();
    let base = a
        .base
        .or_else(|| state.base.clone().map(PathBuf::from))
        .context("give --base: the checkpoint does not say which generator it came from")?;
    let data = a
        .data
        .or_else(|| trained.map(|c| PathBuf::from(c.data)))
        .context("give --data: the checkpoint does not say which dataset it was trained on")?;
    let out = a
        .output_dir
        .unwrap_or_else(|| ckpt.parent().map(Path::to_path_buf).unwrap_or_default());
    let dev = device::select(&a.device)?;
    let base = Checkpoint::open(&base)?.model(&dev)?;
    let ev = reward::evaluate_checkpoint(&ckpt, &base, &data, &out, a.windows, a.seed, &dev)?;
    report::evaluation(&ev, &out);
    Ok(())
}

#[derive(Args)]
pub struct ScoreArgs {
    /// Reward checkpoint (or a train-reward out_dir holding ckpt/).
    #[arg(long, alias = "out_dir")]
    checkpoint: PathBuf,
    /// Text files to score (default: one text per line of stdin).
    files: Vec<PathBuf>,
    /// Score a uint16 token file instead.
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Window stride in tokens over long texts (default: block_size, no overlap).
    #[arg(long)]
    stride: Option<usize>,
    #[arg(long)]
    json: bool,
    /// Also show P(natural) of every token (token-head reward models): coloured text (green
    /// natural, yellow unsure, red generated) and the most likely boundary, or per-token JSON.
    #[arg(long)]
    tokens: bool,
    #[arg(long, default_value = "auto")]
    device: String,
    /// CPU threads: batches of windows scored at once (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Windows of at most `n` tokens every `stride` tokens (the last one ends at the text's end).
fn windows(ids: &[u32], n: usize, stride: usize) -> Vec<(usize, Vec<u32>)> {
    if ids.len() <= n {
        return vec![(0, ids.to_vec())];
    }
    let mut starts: Vec<usize> = (0..=ids.len() - n).step_by(stride.max(1)).collect();
    if starts.last() != Some(&(ids.len() - n)) {
        starts.push(ids.len() - n);
    }
    starts
        .into_iter()
        .map(|s| (s, ids[s..s + n].to_vec()))
        .collect()
}

pub fn score(a: ScoreArgs) -> Result<()> {
    device::set_threads(a.threads);
    let dev = device::select(&a.device)?;
    let mut rm = RewardModel::load(&a.checkpoint, &dev)?;
    rm.workers = device::workers(a.threads);
    let n = rm.model.config.block_size;
    let stride = a.stride.unwrap_or(n);
    let mut docs: Vec<(String, Vec<u32>)> = Vec::new();
    if let Some(b) = &a.bin {
        docs.push((
            b.display().to_string(),
            nanoreward::data::TokenFile::open(b)?.to_vec(),
        ));
    } else if a.files.is_empty() {
        for (i, line) in std::io::stdin().lines().enumerate() {
            let line = line.context("cannot read stdin")?;
            if !line.is_empty() {
                docs.push((format!("line {}", i + 1), rm.tokenizer.encode(&line)?));
            }
        }
    } else {
        for f in &a.files {
            docs.push((
                f.display().to_string(),
                rm.tokenizer
                    .encode(&nanoreward::util::fsutil::read_text(f)?)?,
            ));
        }
    }
    for (name, ids) in docs {
        if ids.is_empty() {
            bail!("{name} has no tokens to score");
        }
        let w = windows(&ids, n, stride);
        let seqs: Vec<Vec<u32>> = w.iter().map(|(_, s)| s.clone()).collect();
        let p = rm.score(&seqs)?;
        let per_token = if a.tokens {
            Some(report::TokenScores {
                p: rm.score_tokens(&seqs)?,
                posteriors: rm.posteriors(&seqs)?,
            })
        } else {
            None
        };
        report::scored(&name, &w, &p, per_token.as_ref(), &rm.tokenizer, a.json);
    }
    Ok(())
}
