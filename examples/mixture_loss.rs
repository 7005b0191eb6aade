//! The per-token loss of language models and of their mixtures (the mean of their next-token
//! distributions, as `train-reward --reference=A,B,...` reads them) on consecutive windows of a
//! token file: how much better a reference mixture models a text than its members.
//!
//!   cargo run --release --example mixture_loss -- TOKENS.bin WINDOWS LEN CKPT1 CKPT2 [CKPT...]
//!
//! Prints every model's mean loss in nats per token (tokens 1..LEN−1 of each window, each read
//! with the window's earlier tokens as context), then the mixtures of the first 2, 3, … models.
use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use nanoreward::checkpoint;
use nanoreward::data::TokenFile;
use nanoreward::model::GPT;
use nanoreward::reward::features::{View, mixture_stats_states};
use std::path::Path;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        bail!("usage: mixture_loss TOKENS.bin WINDOWS LEN CKPT1 CKPT2 [CKPT...]");
    }
    let file = TokenFile::open(Path::new(&args[0]))?;
    let n: usize = args[1].parse().context("WINDOWS must be a count")?;
    let len: usize = args[2].parse().context("LEN must be a window length")?;
    if len < 2 || n * len > file.len() {
        bail!(
            "{} windows of {len} tokens need {} tokens; {} holds {}",
            n,
            n * len,
            args[0],
            file.len()
        );
    }
    let windows: Vec<Vec<u32>> = (0..n).map(|i| file.slice(i * len, len)).collect();
    let device = Device::flex();
    let models = args[3..]
        .iter()
        .map(|p| checkpoint::load_model(Path::new(p), &device))
        .collect::<nanoreward::Result<Vec<GPT>>>()?;
    let loss = |m: &[GPT]| {
        let (stats, _) = mixture_stats_states(m, &windows, View::RAW, 32, false);
        let all: Vec<f64> = stats.iter().flatten().map(|s| -s.log_q).collect();
        all.iter().sum::<f64>() / all.len() as f64
    };
    for (p, m) in args[3..].iter().zip(&models) {
        println!("{p}: {:.4}", loss(std::slice::from_ref(m)));
    }
    for k in 2..=models.len() {
        println!("mixture of the first {k}: {:.4}", loss(&models[..k]));
    }
    Ok(())
}
