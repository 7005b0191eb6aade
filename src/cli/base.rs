//! `prepare`, `train`, `sample` and `bench`.

use super::{ConfigArgs, printed, report};
use anyhow::{Context, Result, bail};
use clap::Args;
use nanoreward::checkpoint::Checkpoint;
use nanoreward::reward::RewardModel;
use nanoreward::reward::best_of::{self, Pick};
use nanoreward::util::{device, fsutil};
use nanoreward::{bench, data, sampling, train};
use rand::SeedableRng;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct PrepareArgs {
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
    /// Share of the characters (just before the val split) set aside as reward.bin: natural
    /// text the generator never trains on, for `prepare-reward-data --input_mode heldout
    /// --val_bin DIR/reward.bin`. train.bin loses that text; val.bin is unchanged.
    #[arg(long = "reward-split", alias = "reward_split", default_value_t = 0.0)]
    reward_split: f64,
}

pub fn prepare(a: PrepareArgs) -> Result<()> {
    let input = match (&a.input, &a.dataset) {
        (Some(p), _) => p.clone(),
        (None, Some(name)) => data::download::fetch_dataset(name, Path::new("data"))?,
        (None, None) => bail!("give --input FILE (a UTF-8 text file) or --dataset tinyshakespeare"),
    };
    let out = a.out_dir.clone().unwrap_or_else(|| match a.tokenization {
        data::TokenizationKind::Char => PathBuf::from("data/shakespeare_char"),
        data::TokenizationKind::Bpe => PathBuf::from("data/shakespeare"),
    });
    let r = data::prepare_with_reward(&input, &out, a.tokenization, a.train_split, a.reward_split)?;
    report::prepared(&r, &out);
    Ok(())
}

pub fn train(a: ConfigArgs) -> Result<()> {
    let cfg: train::TrainConfig = a.load(train::IGNORED_KEYS)?;
    cfg.validate()?;
    if printed(&a, &cfg)? {
        return Ok(());
    }
    let out = train::run(&cfg, true)?;
    report::trained(&out);
    Ok(())
}

#[derive(Args)]
pub struct SampleArgs {
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
    /// Keep only the k most likely tokens (0 = all of them, as `top_k = 0` in GRPO and judge).
    #[arg(long = "top-k", alias = "top_k", default_value_t = 200)]
    top_k: usize,
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Best-of-n: draw each sample N times and print the one --reward-model rates most natural.
    #[arg(long = "best-of", alias = "best_of", default_value_t = 1)]
    best_of: usize,
    /// The reward model checkpoint that picks (with --best-of above 1).
    #[arg(long = "reward-model", alias = "reward_model")]
    reward_model: Option<PathBuf>,
    /// 0 keeps the most natural of the N; τ > 0 draws one with weight (P / (1 − P))^(1/τ).
    #[arg(
        long = "best-of-temperature",
        alias = "best_of_temperature",
        default_value_t = 0.0
    )]
    best_of_temperature: f64,
    /// Natural text (a token .bin) the reward model never trained on: the pick temperature is
    /// fitted on up to 512 of its windows against as many plain samples (its logit read as a
    /// calibrated log density ratio), instead of --best-of-temperature.
    #[arg(long = "best-of-calibration", alias = "best_of_calibration")]
    best_of_calibration: Option<PathBuf>,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    device: String,
}

/// The best-of pick calibrated on windows of `len` tokens of `file` (see
/// `best_of::calibrate`), its fit reported on stderr.
fn calibrated_pick(
    model: &nanoreward::model::GPT,
    rm: &RewardModel,
    file: &Path,
    len: usize,
    opts: &sampling::SampleOptions,
    seed: u64,
) -> Result<Pick> {
    let tokens = nanoreward::data::TokenFile::open(file)?.to_vec();
    let windows: Vec<Vec<u32>> = tokens
        .chunks_exact(len)
        .take(512)
        .map(<[u32]>::to_vec)
        .collect();
    if windows.len() < 8 {
        bail!(
            "{} holds {} windows of {len} tokens: calibration needs at least 8 (a longer file, or fewer new tokens)",
            file.display(),
            windows.len()
        );
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x0063_616c);
    let c = best_of::calibrate(model, rm, &windows, opts, &mut rng, device::workers(0))?;
    eprintln!(
        "best-of pick calibrated on {} windows of {}: slope {:.3} on logit P, τ = {:.3}",
        c.natural,
        file.display(),
        c.slope,
        c.temperature()
    );
    Ok(Pick::Resample {
        temperature: c.temperature(),
    })
}

pub fn sample(a: SampleArgs) -> Result<()> {
    let dev = device::select(&a.device)?;
    let ck = Checkpoint::open(&a.checkpoint)?;
    let model = ck.model(&dev)?;
    let tok = ck.tokenizer()?;
    let start = match a.start.strip_prefix("FILE:") {
        Some(p) => fsutil::read_text(Path::new(p))?,
        None => a.start.clone(),
    };
    let ids = tok
        .encode(&start)
        .context("cannot encode --start with the checkpoint's tokenizer")?;
    if ids.is_empty() {
        bail!("--start is empty: give at least one token of prompt");
    }
    if a.num_samples == 0 || a.best_of == 0 {
        bail!("--num-samples and --best-of must be at least 1");
    }
    let mut how = Pick::from_temperature(a.best_of_temperature)?;
    if a.best_of_calibration.is_some() && a.best_of == 1 {
        bail!("--best-of-calibration calibrates best-of picking: give --best-of above 1");
    }
    let picker = match (&a.reward_model, a.best_of) {
        (_, 1) => None,
        (None, _) => {
            bail!("--best-of above 1 needs --reward-model (a reward checkpoint that picks)")
        }
        (Some(p), n) => Some((RewardModel::load(p, &dev)?, n)),
    };
    let opts = sampling::SampleOptions {
        temperature: a.temperature,
        top_k: sampling::top_k_or_all(a.top_k),
        vocab: Some(tok.vocab_size()),
    };
    if let (Some((rm, _)), Some(file)) = (&picker, &a.best_of_calibration) {
        let len = ids.len() + a.max_new_tokens;
        how = calibrated_pick(&model, rm, file, len, &opts, a.seed)?;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
    let prompts = vec![ids; a.num_samples];
    let t0 = std::time::Instant::now();
    let workers = device::workers(0);
    let out = match &picker {
        None => sampling::generate(&model, &prompts, a.max_new_tokens, &opts, &mut rng, workers)?,
        Some((rm, n)) => {
            let len = a.max_new_tokens;
            best_of::generate(&model, rm, &prompts, len, &opts, *n, how, &mut rng, workers)?
        }
    };
    for s in &out {
        println!("{}", tok.decode(s));
        println!("---------------");
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "{} samples × {} new tokens in {secs:.2} s ({:.0} tokens/s)",
        a.num_samples,
        a.max_new_tokens,
        (a.num_samples * a.max_new_tokens) as f64 / secs
    );
    Ok(())
}

#[derive(Args)]
pub struct BenchArgs {
    /// Which configs: A, B, C (GPT-2 BPE quick start, vocab 50304), D (GPT-2-small shape) or
    /// all (A and B); several comma-separated.
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
    /// Rows per training batch instead of the config's own (e.g. 8-16 for config D on a GPU).
    #[arg(long = "batch-size", alias = "batch_size", value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: Option<u64>,
    /// The precision of the matrix products: float32, or bfloat16 with f32 master weights.
    #[arg(long, default_value = "float32")]
    dtype: String,
}

pub fn bench(a: BenchArgs) -> Result<()> {
    device::set_threads(a.threads);
    let dev = device::select(&a.device)?;
    let mut configs: Vec<bench::BenchConfig> = Vec::new();
    for name in a.config.to_ascii_uppercase().split(',') {
        configs.extend(match name.trim() {
            "A" => vec![bench::CONFIG_A],
            "B" => vec![bench::CONFIG_B],
            "C" => vec![bench::CONFIG_C],
            "D" => vec![bench::CONFIG_D],
            "ALL" => vec![bench::CONFIG_A, bench::CONFIG_B],
            other => bail!("unknown bench config '{other}': use A, B, C, D or all"),
        });
    }
    let threads = device::workers(a.threads);
    let precision: nanoreward::model::Precision = a.dtype.parse()?;
    for mut c in configs {
        c.precision = precision;
        if let Some(b) = a.batch_size {
            c.batch_size = b as usize;
        }
        if a.reward_data {
            let (blocks, base) = match c.name {
                "B" => (13, 3),
                "C" | "D" => (8, 2),
                _ => (64, 20),
            };
            let r = bench::run_reward_data(&c, &dev, blocks, base, 64, threads)?;
            report::bench_reward_data(&r, a.json)?;
        } else {
            let iters = match c.name {
                "B" | "C" => (a.iters / 3).max(2),
                "D" => (a.iters / 7).max(2),
                _ => a.iters.max(1),
            };
            let warmup = if c.name == "D" { 1 } else { 2.min(iters) };
            let sample = matches!(c.name, "A" | "C");
            let r = bench::run(&c, &dev, warmup, iters, sample, threads)?;
            report::bench(&r, iters, a.json)?;
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct ReportArgs {
    /// The run's out_dir (train, train-reward, grpo or cycle).
    dir: PathBuf,
}

pub fn report(a: ReportArgs) -> Result<()> {
    let out = nanoreward::report::write(&a.dir)?;
    println!("wrote {}", out.display());
    Ok(())
}
