//! The `nanoreward` command line: clap definitions and dispatch (the commands are in `cli/`).

mod cli;

use clap::{Parser, Subcommand};
use cli::ConfigArgs;

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
    Prepare(cli::base::PrepareArgs),
    /// Train a GPT (nanoGPT's train.py): `nanoreward train CONFIG.toml --key=value ...`.
    Train(ConfigArgs),
    /// Sample text from a checkpoint (batched, KV cache).
    Sample(cli::base::SampleArgs),
    /// Measure training-step, forward and sampling speed and peak memory.
    Bench(cli::base::BenchArgs),
    /// The whole pipeline on small settings: prepare, train, reward data, reward model, GRPO, report.
    Demo(cli::demo::DemoArgs),
    /// Build the reward dataset: natural prefixes + base-model continuations, labelled [K/N, (N-K)/N].
    PrepareRewardData(Box<cli::reward::PrepareRewardDataArgs>),
    /// Concatenate shards written with --num_shards/--shard_index into one dataset, in block order.
    MergeRewardData(cli::reward::MergeArgs),
    /// Report on a reward dataset: sizes, label statistics, K/N histogram, decoded examples.
    InspectRewardData(cli::reward::InspectArgs),
    /// Train a reward model (trunk from a generator checkpoint + a new reward head), then evaluate it.
    TrainReward(ConfigArgs),
    /// Evaluate a reward model: MAE vs K/N, boundary error, AUROC next to the zero-shot detectors (log-likelihood, Fast-DetectGPT, Binoculars, ...).
    EvalReward(cli::reward::EvalRewardArgs),
    /// Score texts (files or stdin lines) or a token .bin with a reward model: P(natural) per window.
    Score(cli::reward::ScoreArgs),
    /// Fine-tune a generator with GRPO against a reward model: `nanoreward grpo CONFIG.toml --key=value ...`.
    Grpo(ConfigArgs),
    /// Rounds of (reward data -> reward model -> GRPO), each round's artefacts in out_dir/cycle_{r}/.
    Cycle(ConfigArgs),
    /// Measure generators against natural text with judges they never trained against: C2ST,
    /// MAUVE, word validity, distinct-n, repetition (`--generators=A,B --temperatures=0.6,1.0`).
    Judge(ConfigArgs),
    /// Convert a nanoGPT ckpt.pt into a nanoreward checkpoint directory (.pt paths also work directly).
    ImportNanogpt(cli::interop::ImportArgs),
    /// Write a checkpoint as a nanoGPT ckpt.pt that PyTorch's nanoGPT loads.
    ExportNanogpt(cli::interop::ExportArgs),
    /// Write a checkpoint as a Hugging Face GPT-2 directory (GPT2LMHeadModel.from_pretrained);
    /// a reward model adds its head, its config and a README of how to score.
    ExportHf(cli::interop::ExportHfArgs),
    /// Interpolate two generators of one architecture, weight by weight: A + alpha·(B − A)
    /// (WiSE-FT, rewarded soups; e.g. the midpoint of two rounds' policies).
    Interpolate(cli::interop::InterpolateArgs),
    /// One self-contained HTML page of a train, train-reward, grpo or cycle directory.
    Report(cli::base::ReportArgs),
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = nanoreward::util::stop::install() {
        eprintln!("warning: {e}");
    }
    let result = match cli.command {
        Command::Prepare(a) => cli::base::prepare(a),
        Command::Train(a) => cli::base::train(a),
        Command::Sample(a) => cli::base::sample(a),
        Command::Bench(a) => cli::base::bench(a),
        Command::Demo(a) => cli::demo::demo(a),
        Command::PrepareRewardData(a) => cli::reward::prepare(*a),
        Command::MergeRewardData(a) => cli::reward::merge(a),
        Command::InspectRewardData(a) => cli::reward::inspect(a),
        Command::TrainReward(a) => cli::reward::train_reward(a),
        Command::EvalReward(a) => cli::reward::eval_reward(a),
        Command::Score(a) => cli::reward::score(a),
        Command::Grpo(a) => cli::grpo::grpo(a),
        Command::Cycle(a) => cli::grpo::cycle(a),
        Command::Judge(a) => cli::judge::judge(a),
        Command::ImportNanogpt(a) => cli::interop::import(a),
        Command::ExportNanogpt(a) => cli::interop::export(a),
        Command::ExportHf(a) => cli::interop::export_hf(a),
        Command::Interpolate(a) => cli::interop::interpolate(a),
        Command::Report(a) => cli::base::report(a),
    };
    if let Err(e) = result {
        eprintln!("error: {}", format!("{e:#}").replace('\n', "; "));
        std::process::exit(1);
    }
}
