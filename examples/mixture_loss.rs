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
use nanoreward::reward::features::{View, window_stats_states};
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
    // Every member's probability of every token, from one pass each; a mixture's probability of
    // a token is the mean of its members' (what `mixture_stats_states` reads, checked there).
    let q: Vec<Vec<f64>> = models
        .iter()
        .map(|m| {
            let (stats, _) = window_stats_states(m, &windows, View::RAW, 32, false);
            stats.iter().flatten().map(|s| s.q).collect()
        })
        .collect();
    let loss = |members: &[Vec<f64>]| {
        let tokens = members[0].len();
        let nll: f64 = (0..tokens)
            .map(|i| {
                let p = members.iter().map(|m| m[i]).sum::<f64>() / members.len() as f64;
                -p.max(1e-30).ln()
            })
            .sum();
        nll / tokens as f64
    };
    for (p, m) in args[3..].iter().zip(&q) {
        println!("{p}: {:.4}", loss(std::slice::from_ref(m)));
    }
    for k in 2..=q.len() {
        println!("mixture of the first {k}: {:.4}", loss(&q[..k]));
    }
    Ok(())
}
