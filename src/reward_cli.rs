//! Command-line front ends of the reward-dataset commands.

use anyhow::{Context, Result, bail};
use clap::Args;
use nanoreward::checkpoint;
use nanoreward::device;
use nanoreward::reward_dataset::RewardDataset;
use nanoreward::reward_prepare::{self, RewardPrepOptions};
use nanoreward::tokenizer::{CharVocab, Tokenizer};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct PrepareRewardDataArgs {
    /// Base model: a checkpoint directory (or a training out_dir holding ckpt/).
    #[arg(long = "model-path", alias = "model_path")]
    model_path: PathBuf,
    /// text (tokenize --data_path) or binary (reuse --train_bin/--val_bin).
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
    let opts = RewardPrepOptions {
        model_path: model_path.clone(),
        input_mode: a.input_mode,
        data_path: a.data_path,
        train_bin: a.train_bin,
        val_bin: a.val_bin,
        tokenization: a.tokenization,
        meta_path: a.meta_path,
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
        "Summary: {total} samples in {:.1} s ({:.1} samples/s, {:.0} generated tokens/s) in {}",
        s.seconds,
        total as f64 / s.seconds,
        s.generated_tokens as f64 / s.seconds,
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
