//! The `nanoreward` command line: a thin layer over the library.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use nanoreward::{bench, checkpoint, config, data, device, sampling, train};
use rand::SeedableRng;
use std::path::{Path, PathBuf};

mod demo_cli;
mod grpo_cli;
mod interop_cli;
mod reward_cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "nanoreward", version, about = "Self-supervised reward models for language models: nanoGPT-compatible training, sampling and benchmarks.", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Tokenize a text corpus into train.bin / val.bin (+ meta.pkl), like nanoGPT's prepare.py.
    Prepare(PrepareArgs),
    /// Train a GPT (nanoGPT's train.py): `nanoreward train CONFIG.toml --key=value ...`.
    Train(ConfigArgs),
    /// Sample text from a checkpoint (batched, KV cache).
    Sample(SampleArgs),
    /// Measure training-step, forward and sampling speed and peak memory.
    Bench(BenchArgs),
    /// The whole pipeline on small settings: prepare, train, reward data, reward model, GRPO, report.
    Demo(demo_cli::DemoArgs),
    /// Build the reward dataset: natural prefixes + base-model continuations, labelled [K/N, (N-K)/N].
    PrepareRewardData(reward_cli::PrepareRewardDataArgs),
    /// Concatenate shards written with --num_shards/--shard_index into one dataset, in block order.
    MergeRewardData(reward_cli::MergeArgs),
    /// Report on a reward dataset: sizes, label statistics, K/N histogram, decoded examples.
    InspectRewardData(reward_cli::InspectArgs),
    /// Train a reward model (trunk from a generator checkpoint + a new reward head), then evaluate it.
    TrainReward(ConfigArgs),
    /// Evaluate a reward model: MAE vs K/N, boundary error, AUROC vs the log-likelihood baseline.
    EvalReward(reward_cli::EvalRewardArgs),
    /// Score texts (files or stdin lines) or a token .bin with a reward model: P(natural) per window.
    Score(reward_cli::ScoreArgs),
    /// Fine-tune a generator with GRPO against a reward model: `nanoreward grpo CONFIG.toml --key=value ...`.
    Grpo(ConfigArgs),
    /// Rounds of (reward data -> reward model -> GRPO), each round's artefacts in out_dir/cycle_{r}/.
    Cycle(ConfigArgs),
    /// Convert a nanoGPT ckpt.pt into a nanoreward checkpoint directory (.pt paths also work directly).
    ImportNanogpt(interop_cli::ImportArgs),
    /// Write a checkpoint as a nanoGPT ckpt.pt that PyTorch's nanoGPT loads.
    ExportNanogpt(interop_cli::ExportArgs),
}

#[derive(Args)]
struct PrepareArgs {
    /// Text file to tokenize (UTF-8).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Download a named corpus when --input is not given (only `tinyshakespeare`).
    #[arg(long)]
    dataset: Option<String>,
    /// Output folder (default data/shakespeare_char for char, data/shakespeare for bpe).
    #[arg(long = "out-dir", alias = "out_dir")]
    out_dir: Option<PathBuf>,
    /// Tokenization: char (writes meta.pkl) or bpe (GPT-2).
    #[arg(long, value_enum, default_value = "char")]
    tokenization: data::TokenizationKind,
    /// Share of the characters that go to train.bin.
    #[arg(long = "train-split", alias = "train_split", default_value_t = 0.9)]
    train_split: f64,
}

/// `[CONFIG] --key=value ...` with --print-config: the arguments of train, grpo and cycle.
#[derive(Args)]
pub(crate) struct ConfigArgs {
    /// TOML config file (see configs/).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Show the effective configuration and exit.
    #[arg(long = "print-config", alias = "print_config")]
    pub print_config: bool,
    /// A config file as first word, then overrides such as --max_iters=100 (or --max-iters 100;
    /// --grpo.beta=0 for a section of the cycle config).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CONFIG | --key=value"
    )]
    pub rest: Vec<String>,
}

impl ConfigArgs {
    /// Whether the effective configuration is to be shown instead of run.
    pub fn print_only(&self) -> bool {
        self.print_config || wants_print_config(&self.rest)
    }
}

#[derive(Args)]
struct SampleArgs {
    /// Checkpoint directory, or a training out_dir holding ckpt/.
    #[arg(long, alias = "out_dir", alias = "out-dir", default_value = "out")]
    checkpoint: PathBuf,
    /// Prompt text, or FILE:path to read it from a file.
    #[arg(long, default_value = "\n")]
    start: String,
    #[arg(long = "num-samples", alias = "num_samples", default_value_t = 10)]
    num_samples: usize,
    #[arg(
        long = "max-new-tokens",
        alias = "max_new_tokens",
        default_value_t = 500
    )]
    max_new_tokens: usize,
    /// Softmax temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Keep only the k most likely tokens.
    #[arg(long = "top-k", alias = "top_k", default_value_t = 200)]
    top_k: usize,
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(Args)]
struct BenchArgs {
    /// Which configs: A, B or all.
    #[arg(long, default_value = "all")]
    config: String,
    /// Timed iterations per measurement (config B uses a third of them).
    #[arg(long, default_value_t = 15)]
    iters: usize,
    /// CPU threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long, default_value = "auto")]
    device: String,
    /// Print JSON lines only.
    #[arg(long)]
    json: bool,
    /// Benchmark reward-data generation (lockstep KV cache vs the seed's one-at-a-time loop).
    #[arg(long = "reward-data", alias = "reward_data")]
    reward_data: bool,
}

pub(crate) fn resolve_checkpoint(p: &Path) -> PathBuf {
    let inner = train::checkpoint_dir(p);
    if !p.join(checkpoint::CONFIG).exists() && inner.join(checkpoint::CONFIG).exists() {
        inner
    } else {
        p.to_path_buf()
    }
}

fn cmd_prepare(a: PrepareArgs) -> Result<()> {
    let input = match (&a.input, &a.dataset) {
        (Some(p), _) => p.clone(),
        (None, Some(name)) => nanoreward::download::fetch_dataset(name, Path::new("data"))?,
        (None, None) => bail!("give --input FILE (a UTF-8 text file) or --dataset tinyshakespeare"),
    };
    let out = a.out_dir.clone().unwrap_or_else(|| match a.tokenization {
        data::TokenizationKind::Char => PathBuf::from("data/shakespeare_char"),
        data::TokenizationKind::Bpe => PathBuf::from("data/shakespeare"),
    });
    let r = data::prepare(&input, &out, a.tokenization, a.train_split)?;
    println!("length of dataset in characters: {}", r.chars);
    println!("vocab size: {} ({})", r.vocab_size, r.tokenizer.method());
    println!("train has {} tokens", r.train_tokens);
    println!("val has {} tokens", r.val_tokens);
    println!("wrote {}", out.display());
    Ok(())
}

/// Whether `--print-config` (or `--print_config`) is among the trailing arguments.
pub(crate) fn wants_print_config(rest: &[String]) -> bool {
    rest.iter()
        .any(|a| a == "--print-config" || a == "--print_config")
}

/// Splits `[CONFIG] --key=value ...` into the config file and the overrides
/// (`--print-config` among them is left to [`wants_print_config`]).
pub(crate) fn split_config_args(
    config: Option<PathBuf>,
    rest: &[String],
) -> Result<(Option<PathBuf>, config::Overrides)> {
    let mut rest = rest;
    let mut file = config;
    if let Some(first) = rest.first()
        && !first.starts_with("--")
    {
        if file.is_some() {
            bail!("two config files given: --config and '{first}'");
        }
        file = Some(PathBuf::from(first));
        rest = &rest[1..];
    }
    let rest: Vec<String> = rest
        .iter()
        .filter(|a| *a != "--print-config" && *a != "--print_config")
        .cloned()
        .collect();
    Ok((file, config::parse_overrides(&rest)?))
}

fn train_config(a: &ConfigArgs) -> Result<train::TrainConfig> {
    let (file, overrides) = split_config_args(a.config.clone(), &a.rest)?;
    let cfg: train::TrainConfig = config::load(file.as_deref(), &overrides, train::IGNORED_KEYS)?;
    cfg.validate()?;
    Ok(cfg)
}

fn cmd_train(a: ConfigArgs) -> Result<()> {
    let cfg = train_config(&a)?;
    if a.print_only() {
        println!("{}", toml::to_string(&cfg)?);
        return Ok(());
    }
    let out = train::run(&cfg, true)?;
    println!(
        "done: {} iterations in {:.1} s, best val loss {:.4}; checkpoint {}",
        out.iter,
        out.seconds,
        out.best_val_loss,
        out.checkpoint.display()
    );
    Ok(())
}

fn cmd_sample(a: SampleArgs) -> Result<()> {
    let dir = resolve_checkpoint(&a.checkpoint);
    let dev = device::select(&a.device)?;
    let model = checkpoint::load_model(&dir, &dev)?;
    let tok = checkpoint::load_tokenizer(&dir)?;
    let start = match a.start.strip_prefix("FILE:") {
        Some(p) => nanoreward::fsutil::read_text(Path::new(p))?,
        None => a.start.clone(),
    };
    let ids = tok
        .encode(&start)
        .context("cannot encode --start with the checkpoint's tokenizer")?;
    if ids.is_empty() {
        bail!("--start is empty: give at least one token of prompt");
    }
    if a.num_samples == 0 {
        bail!("--num-samples must be at least 1");
    }
    let opts = sampling::SampleOptions {
        temperature: a.temperature,
        top_k: Some(a.top_k),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
    let prompts = vec![ids; a.num_samples];
    let t0 = std::time::Instant::now();
    let out = sampling::generate(
        &model,
        &prompts,
        a.max_new_tokens,
        &opts,
        &mut rng,
        device::workers(0),
    )?;
    for s in &out {
        println!("{}", tok.decode(s));
        println!("---------------");
    }
    eprintln!(
        "{} samples × {} new tokens in {:.2} s ({:.0} tokens/s)",
        a.num_samples,
        a.max_new_tokens,
        t0.elapsed().as_secs_f64(),
        (a.num_samples * a.max_new_tokens) as f64 / t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    device::set_threads(a.threads);
    let dev = device::select(&a.device)?;
    let configs: Vec<bench::BenchConfig> = match a.config.to_ascii_uppercase().as_str() {
        "A" => vec![bench::CONFIG_A],
        "B" => vec![bench::CONFIG_B],
        "ALL" => vec![bench::CONFIG_A, bench::CONFIG_B],
        other => bail!("unknown bench config '{other}': use A, B or all"),
    };
    let threads = device::workers(a.threads);
    if a.reward_data {
        for c in configs {
            let (blocks, base) = if c.name == "B" { (13, 3) } else { (64, 20) };
            let r = bench::run_reward_data(&c, &dev, blocks, base, 64, threads)?;
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "reward data, config {} (block {}): {:.1} samples/s, {:.0} generated tok/s ({} samples); seed loop {:.2} samples/s ({} samples): {:.1}x faster; peak RSS {:.0} MiB",
                    r.config,
                    r.block_size,
                    r.samples_per_s,
                    r.generated_tokens_per_s,
                    r.samples,
                    r.baseline_samples_per_s,
                    r.baseline_samples,
                    r.speedup,
                    r.peak_rss_mib
                );
            }
        }
        return Ok(());
    }
    for c in configs {
        let iters = if c.name == "B" {
            (a.iters / 3).max(2)
        } else {
            a.iters.max(1)
        };
        let r = bench::run(&c, &dev, 2.min(iters), iters, c.name == "A", threads)?;
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "config {}: train step {:.1} ms (median of {iters}; fwd+bwd {:.1} + clip+AdamW {:.1}), forward {:.1} ms, {:.0} train tok/s{}, peak RSS {:.0} MiB, {} threads",
                r.config,
                r.train_step_ms_median,
                r.step_forward_backward_ms,
                r.step_optimizer_ms,
                r.forward_ms_median,
                r.train_tokens_per_s,
                r.sample_new_tokens_per_s
                    .zip(r.sample_in_block_new_tokens_per_s)
                    .map(|(s, b)| format!(
                        ", sampling {s:.0} new tok/s (16 → +64, past block_size; {b:.0} for → +48 within it)"
                    ))
                    .unwrap_or_default(),
                r.peak_rss_mib,
                r.threads
            );
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Prepare(a) => cmd_prepare(a),
        Command::Train(a) => cmd_train(a),
        Command::Sample(a) => cmd_sample(a),
        Command::Bench(a) => cmd_bench(a),
        Command::Demo(a) => demo_cli::demo(a),
        Command::PrepareRewardData(a) => reward_cli::prepare(a),
        Command::MergeRewardData(a) => reward_cli::merge(a),
        Command::InspectRewardData(a) => reward_cli::inspect(a),
        Command::TrainReward(a) => reward_cli::train_reward(a),
        Command::EvalReward(a) => reward_cli::eval_reward(a),
        Command::Score(a) => reward_cli::score(a),
        Command::Grpo(a) => grpo_cli::grpo(a),
        Command::Cycle(a) => grpo_cli::cycle(a),
        Command::ImportNanogpt(a) => interop_cli::import(a),
        Command::ExportNanogpt(a) => interop_cli::export(a),
    };
    if let Err(e) = result {
        eprintln!("error: {}", format!("{e:#}").replace('\n', "; "));
        std::process::exit(1);
    }
}
