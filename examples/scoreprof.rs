//! Times one GRPO step's feature-model pass of the strongest reward model (the quick-start
//! generator, 4 layers × 128, and the 6-layer × 192 model of natural text as reference and trunk)
//! over 64 windows of 64 tokens, split into batches of `B` windows for each given B:
//! `cargo run --release --example scoreprof -- THREADS B [B ...]` (random weights; speed only).
use burn::tensor::Device;
use nanoreward::model::{GPT, GPTConfig};
use nanoreward::reward::features::{self, View};
use nanoreward::util::device;
use std::time::Instant;

fn gpt(n_layer: usize, n_head: usize, n_embd: usize, seed: u64) -> GPT {
    let cfg = GPTConfig {
        block_size: 64,
        vocab_size: 65,
        n_layer,
        n_head,
        n_embd,
        bias: false,
        ..Default::default()
    };
    GPT::new(&cfg, &Device::flex(), seed).expect("a valid model configuration")
}

fn main() {
    let args: Option<Vec<usize>> = std::env::args().skip(1).map(|a| a.parse().ok()).collect();
    let Some(args) = args.filter(|a| a.len() >= 2) else {
        eprintln!("usage: cargo run --release --example scoreprof -- THREADS B [B ...]");
        std::process::exit(2);
    };
    device::set_threads(args[0]);
    let (small, strong) = (gpt(4, 4, 128, 1), gpt(6, 6, 192, 2));
    let windows: Vec<Vec<u32>> = (0..64u32)
        .map(|w| (0..64u32).map(|i| (w * 7 + i * 13) % 65).collect())
        .collect();
    // The statistics and states of every window do not depend on how the windows are batched.
    let (s64, h64) = features::window_stats_states(&strong, &windows, View::RAW, 64, true);
    for &batch in &args[1..] {
        let (s, h) = features::window_stats_states(&strong, &windows, View::RAW, batch, true);
        let dh = h
            .iter()
            .zip(&h64)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "batch {batch:>2}: stats equal to batch 64's: {}, states' max |diff| {dh:e}",
            s == s64
        );
    }
    for &batch in &args[1..] {
        for (name, m, states) in [("4x128", &small, false), ("6x192+states", &strong, true)] {
            let run = || features::window_stats_states(m, &windows, View::RAW, batch, states);
            run();
            let t0 = Instant::now();
            let n = 5;
            for _ in 0..n {
                run();
            }
            let ms = t0.elapsed().as_secs_f64() * 1e3 / n as f64;
            println!("batch {batch:>2} {name:<13} {ms:7.1} ms");
        }
    }
}
