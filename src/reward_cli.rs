//! Command-line front ends of the reward-dataset commands.

use anyhow::{Context, Result, bail};
use clap::Args;
use nanoreward::checkpoint;
use nanoreward::device;
use nanoreward::reward_dataset::RewardDataset;
use nanoreward::reward_eval;
use nanoreward::reward_model::{self, RewardModel};
use nanoreward::reward_prepare::{self, RewardPrepOptions};
use nanoreward::tokenizer::{CharVocab, Tokenizer};
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
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
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
    #[arg(long = "num-shards", alias = "num_shards", default_value_t = 1)]
    num_shards: usize,
    #[arg(long = "shard-index", alias = "shard_index", default_value_t = 0)]
    shard_index: usize,
    /// CPU threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

pub fn prepare(a: PrepareRewardDataArgs) -> Result<()> {
    device::set_threads(a.threads);
    let dev = device::select(&a.device)?;
    let model_path = crate::resolve_checkpoint(&a.model_path);
    let model = checkpoint::load_model(&model_path, &dev)?;
    let (input_mode, train_bin, val_bin, meta_path) = if a.input_mode == "heldout" {
        let Some(val) = a.val_bin.clone() else {
            bail!("--input_mode heldout needs --val_bin (the base model's val.bin)");
        };
        let src = a.output_dir.join("heldout_source");
        let (ta, tb, na, nb) = nanoreward::data::heldout_split(&val, &src)?;
        println!(
            "held-out text: {} split into {na} tokens (reward train) and {nb} (reward val)",
            val.display()
        );
        let meta = a
            .meta_path
            .clone()
            .or_else(|| val.parent().and_then(nanoreward::train::data_meta));
        ("binary".to_string(), Some(ta), Some(tb), meta)
    } else {
        (a.input_mode, a.train_bin, a.val_bin, a.meta_path)
    };
    let opts = RewardPrepOptions {
        model_path: model_path.clone(),
        input_mode,
        data_path: a.data_path,
        train_bin,
        val_bin,
        tokenization: a.tokenization,
        meta_path,
        output_dir: a.output_dir.clone(),
        train_split: a.train_split,
        samples_per_chunk: a.samples_per_chunk,
        temperature: a.temperature,
        top_k: a.top_k,
        seed: a.seed,
        batch_size: a.batch_size,
        max_blocks: a.max_blocks,
        num_shards: a.num_shards,
        shard_index: a.shard_index,
        threads: a.threads,
    };
    println!("Configuration:");
    println!("  base model:        {}", model_path.display());
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
    let s = reward_prepare::run(&opts, &model, true)?;
    for m in &s.metas {
        println!(
            "{}: {} blocks × {} = {} samples; saved {}_x.bin ({}, {}) uint16, {}_y.bin ({}, 2) float32",
            m.split,
            m.num_blocks,
            m.samples_per_chunk,
            m.num_samples,
            m.split,
            m.num_samples,
            m.block_size,
            m.split,
            m.num_samples
        );
    }
    let total: usize = s.metas.iter().map(|m| m.num_samples).sum();
    println!(
        "Summary: {total} samples in {:.1} s ({:.1} samples/s, {:.0} generated tokens/s, peak RSS {:.0} MiB) in {}",
        s.seconds,
        total as f64 / s.seconds,
        s.generated_tokens as f64 / s.seconds,
        nanoreward::metrics::peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0,
        opts.output_dir.display()
    );
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
    let metas = reward_prepare::merge(&a.out, &a.shards)?;
    for m in metas {
        println!(
            "{}: {} samples from {} blocks",
            m.split, m.num_samples, m.num_blocks
        );
    }
    println!("merged into {}", a.out.display());
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

fn tokenizer_for(ds: &RewardDataset) -> Option<Tokenizer> {
    match ds.meta.tokenization_method.as_str() {
        "bpe" => Some(Tokenizer::Bpe),
        _ => {
            let p = ds.meta.meta_path.as_ref()?;
            CharVocab::load(Path::new(p)).ok().map(Tokenizer::Char)
        }
    }
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
    let mut report = serde_json::json!({ "dir": a.dir.display().to_string(), "tokenization_consistent": consistent });
    for (split, ds) in &splits {
        let n = ds.meta.block_size;
        let stats = ds.stats();
        // K/N histogram in 10 bins.
        let mut hist = [0usize; 10];
        for i in 0..ds.len() {
            let p = ds.label(i)[0] as f64;
            hist[((p * 10.0) as usize).min(9)] += 1;
        }
        let mut batches = ds.batches(4, None, false, &burn::tensor::Device::flex());
        let count = batches.count_batches();
        let (bx, by) = batches.next().context("the dataset yields no batch")?;
        let first_label = by
            .clone()
            .narrow(0, 0, 1)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        let tok = tokenizer_for(ds);
        let examples: Vec<String> = [0, ds.len() / 2]
            .iter()
            .map(|&i| {
                let (t, l) = ds.get(i);
                let k = (l[0] as f64 * n as f64).round() as usize;
                match &tok {
                    Some(tk) => format!("{}⟦|⟧{}", tk.decode(&t[..k]), tk.decode(&t[k..])),
                    None => format!("{:?}⟦|⟧{:?}", &t[..k], &t[k..]),
                }
            })
            .collect();
        report[*split] = serde_json::json!({
            "stats": stats,
            "k_over_n_histogram": hist,
            "batch_test": { "batch_size": 4, "num_batches": count, "x_shape": bx.dims(), "y_shape": by.dims(), "first_label": first_label },
            "examples": examples,
        });
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for (split, ds) in &splits {
        let r = &report[*split];
        let s = ds.stats();
        println!("== {split}");
        println!(
            "  samples: {}, block size: {}, tokenization: {} (vocab {})",
            s.num_samples, s.block_size, s.tokenization_method, s.vocab_size
        );
        println!(
            "  Y min {:.4}/{:.4}  max {:.4}/{:.4}  mean {:.4}/{:.4}  std {:.4}/{:.4}",
            s.y.min[0],
            s.y.min[1],
            s.y.max[0],
            s.y.max[1],
            s.y.mean[0],
            s.y.mean[1],
            s.y.std[0],
            s.y.std[1]
        );
        println!(
            "  probability sums: min {:.7}, max {:.7}, mean {:.7}",
            s.prob_sum_min, s.prob_sum_max, s.prob_sum_mean
        );
        let bt = &r["batch_test"];
        println!(
            "  batch test: {} batches of 4; x {} y {}; first label {}",
            bt["num_batches"], bt["x_shape"], bt["y_shape"], bt["first_label"]
        );
        println!("  K/N histogram (10 bins): {}", r["k_over_n_histogram"]);
        for e in r["examples"].as_array().into_iter().flatten() {
            println!(
                "  example: {}",
                e.as_str().unwrap_or_default().replace('\n', "⏎")
            );
        }
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

pub fn train_reward(a: crate::ConfigArgs) -> Result<()> {
    let (file, overrides) = crate::split_config_args(a.config.clone(), &a.rest)?;
    let mut cfg: reward_model::RewardTrainConfig =
        nanoreward::config::load(file.as_deref(), &overrides, &[])?;
    cfg.base = crate::resolve_checkpoint(Path::new(&cfg.base))
        .display()
        .to_string();
    cfg.validate()?;
    if a.print_only() {
        println!("{}", toml::to_string(&cfg)?);
        return Ok(());
    }
    let out = reward_model::train(&cfg, true)?;
    let r = &out.load_report;
    println!(
        "loaded {} trunk tensors from {}; dropped {}; initialised {}",
        r.loaded.len(),
        cfg.base,
        if r.unused.is_empty() {
            "nothing".to_string()
        } else {
            r.unused.join(", ")
        },
        if r.initialised.is_empty() {
            "nothing (reward checkpoint)".to_string()
        } else {
            r.initialised.join(", ")
        }
    );
    println!(
        "trained {} epochs in {:.1} s; best val loss {:.5}; checkpoint {}",
        out.epochs_run,
        out.seconds,
        out.best_val_loss,
        out.checkpoint.display()
    );
    let dev = device::select(&cfg.device)?;
    let eval_dir = PathBuf::from(&cfg.out_dir);
    run_eval(
        &out.checkpoint,
        Path::new(&cfg.base),
        Path::new(&cfg.data),
        &eval_dir,
        256,
        cfg.seed,
        &dev,
    )
}

fn run_eval(
    ckpt: &Path,
    base: &Path,
    data: &Path,
    out: &Path,
    windows: usize,
    seed: u64,
    dev: &burn::tensor::Device,
) -> Result<()> {
    let rm = RewardModel::load(ckpt, dev)?;
    let base_model = checkpoint::load_model(base, dev)?;
    let val = RewardDataset::open(data, "val", None)?;
    let j = reward_eval::evaluate(
        &rm.model,
        &base_model,
        &val,
        &rm.tokenizer,
        windows,
        seed,
        out,
    )?;
    println!(
        "evaluation on {} val samples ({} windows per class for AUROC):",
        j["num_val_samples"], windows
    );
    println!("  {:<28} {:>10} {:>10}", "metric", "model", "baseline");
    println!(
        "  {:<28} {:>10.4} {:>10.4}",
        "MAE of P(natural) vs K/N",
        j["mae"].as_f64().unwrap_or(f64::NAN),
        j["mae_baseline"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "  {:<28} {:>10.2} {:>10.2}",
        "boundary MAE (tokens)",
        j["boundary_mae_tokens"].as_f64().unwrap_or(f64::NAN),
        j["boundary_mae_tokens_baseline"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );
    println!(
        "  {:<28} {:>10.4} {:>10.4}",
        "AUROC natural vs generated",
        j["auroc"].as_f64().unwrap_or(f64::NAN),
        j["auroc_loglik_baseline"].as_f64().unwrap_or(f64::NAN)
    );
    println!("  (baselines: always 0.5; the base model's mean log-likelihood)");
    println!(
        "wrote {}/eval.json, calibration.svg, predictions_hist.svg",
        out.display()
    );
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
    let ckpt = crate::resolve_checkpoint(&a.checkpoint);
    let state = checkpoint::load_train_state(&ckpt)?;
    let from_state = |k: &str| state.pointer(k).and_then(|v| v.as_str()).map(PathBuf::from);
    let base = a
        .base
        .or_else(|| from_state("/base"))
        .context("give --base: the checkpoint does not say which generator it came from")?;
    let data = a
        .data
        .or_else(|| from_state("/config/data"))
        .context("give --data: the checkpoint does not say which dataset it was trained on")?;
    let out = a
        .output_dir
        .unwrap_or_else(|| ckpt.parent().map(Path::to_path_buf).unwrap_or_default());
    let dev = device::select(&a.device)?;
    run_eval(
        &ckpt,
        &crate::resolve_checkpoint(&base),
        &data,
        &out,
        a.windows,
        a.seed,
        &dev,
    )
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
    #[arg(long, default_value = "auto")]
    device: String,
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
    let dev = device::select(&a.device)?;
    let rm = RewardModel::load(&crate::resolve_checkpoint(&a.checkpoint), &dev)?;
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
                rm.tokenizer.encode(&nanoreward::fsutil::read_text(f)?)?,
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
        let mean = p.iter().map(|&v| v as f64).sum::<f64>() / p.len() as f64;
        if a.json {
            let wins: Vec<serde_json::Value> = w.iter().zip(&p).map(|((s, t), v)| serde_json::json!({"start": s, "tokens": t.len(), "p_natural": v})).collect();
            println!(
                "{}",
                serde_json::json!({"source": name, "mean_p_natural": mean, "windows": wins})
            );
        } else {
            println!(
                "{name}: P(natural) = {mean:.4} (mean of {} windows)",
                p.len()
            );
        }
    }
    Ok(())
}
