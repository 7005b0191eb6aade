//! `nanoreward bench`: training-step, forward and sampling speed and peak memory for the two
//! reference configs, on random tokens (the same workload as ../shared/bench/torch_microbench.py).

use crate::metrics::peak_rss_bytes;
use crate::model::{GPT, GPTConfig, Precision};
use crate::reward::recipe::{self, Split};
use crate::sampling::{self, Batching, Row, SampleOptions};
use crate::train::optim::{self, AdamW, AdamWConfig};
use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::time::Instant;

/// A benchmark configuration.
#[derive(Debug, Clone, Copy)]
pub struct BenchConfig {
    pub name: &'static str,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub block_size: usize,
    pub batch_size: usize,
    pub dropout: f64,
    pub vocab_size: usize,
    /// The precision of the matrix products (`--dtype`).
    pub precision: Precision,
}

/// Config A: nanoGPT's CPU quick start (4L/4H/128, block 64, batch 12).
pub const CONFIG_A: BenchConfig = BenchConfig {
    name: "A",
    n_layer: 4,
    n_head: 4,
    n_embd: 128,
    block_size: 64,
    batch_size: 12,
    dropout: 0.0,
    vocab_size: 65,
    precision: Precision::Float32,
};

/// Config B: train_shakespeare_char's baby GPT (6L/6H/384, block 256, batch 64, dropout 0.2).
pub const CONFIG_B: BenchConfig = BenchConfig {
    name: "B",
    n_layer: 6,
    n_head: 6,
    n_embd: 384,
    block_size: 256,
    batch_size: 64,
    dropout: 0.2,
    vocab_size: 65,
    precision: Precision::Float32,
};

/// Config C: a GPT-2 BPE quick start (4L/4H/128, block 128, batch 12, vocabulary padded to
/// 50,304 as nanoGPT does): the lm_head dominates.
pub const CONFIG_C: BenchConfig = BenchConfig {
    name: "C",
    n_layer: 4,
    n_head: 4,
    n_embd: 128,
    block_size: 128,
    batch_size: 12,
    dropout: 0.0,
    vocab_size: 50304,
    precision: Precision::Float32,
};

/// Config D: the GPT-2-small shape (12L/12H/768, block 1024, batch 4, vocabulary 50,304).
pub const CONFIG_D: BenchConfig = BenchConfig {
    name: "D",
    n_layer: 12,
    n_head: 12,
    n_embd: 768,
    block_size: 1024,
    batch_size: 4,
    dropout: 0.0,
    vocab_size: 50304,
    precision: Precision::Float32,
};

/// Measured figures of one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub config: String,
    pub batch_size: usize,
    pub dtype: Precision,
    pub threads: usize,
    pub train_step_ms_median: f64,
    /// Split of the step: forward + backward (data-parallel over the threads), clipping + AdamW.
    pub step_forward_backward_ms: f64,
    pub step_optimizer_ms: f64,
    pub forward_ms_median: f64,
    pub train_tokens_per_s: f64,
    pub sample_new_tokens_per_s: Option<f64>,
    /// The same prompts → +48 tokens: the whole sequence fits in block_size, so every step uses
    /// the KV cache (as reward-data generation and GRPO do).
    pub sample_in_block_new_tokens_per_s: Option<f64>,
    /// Peak resident memory of the process after the training steps (before the forward pass,
    /// whose `[B, T, vocab]` logits are its own peak) and at the end.
    pub peak_rss_train_mib: f64,
    pub peak_rss_mib: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn model_config(c: &BenchConfig) -> GPTConfig {
    GPTConfig {
        block_size: c.block_size,
        vocab_size: c.vocab_size,
        n_layer: c.n_layer,
        n_head: c.n_head,
        n_embd: c.n_embd,
        dropout: c.dropout,
        bias: false,
        ..Default::default()
    }
}

/// Random tokens of a vocabulary of `v`: `n` inputs and `n` targets.
fn random_batch(rng: &mut ChaCha8Rng, n: usize, v: usize) -> (Vec<i64>, Vec<i64>) {
    let x = (0..n).map(|_| rng.random_range(0..v as i64)).collect();
    let y = (0..n).map(|_| rng.random_range(0..v as i64)).collect();
    (x, y)
}

/// Times `iters` training steps after `warmup` untimed ones: per step the total, forward +
/// backward, and clipping + AdamW (milliseconds). Returns the trained model too.
fn time_training(
    c: &BenchConfig,
    model: GPT,
    rng: &mut ChaCha8Rng,
    warmup: usize,
    iters: usize,
    threads: usize,
) -> (GPT, [Vec<f64>; 3]) {
    let mut model = model.into_trainable(|_| true);
    let mut opt = AdamW::new(AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
    });
    let n = c.batch_size * c.block_size;
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for i in 0..warmup + iters {
        let (x, y) = random_batch(rng, n, c.vocab_size);
        let t0 = Instant::now();
        let seed = (c.dropout > 0.0).then_some(i as u64);
        let (_loss, mut grads) =
            optim::batch_grads(&model, &x, &y, c.batch_size, threads, 1.0, seed);
        let t1 = Instant::now();
        optim::clip_grad_norm(&mut grads, 1.0);
        opt.step(&mut model, grads, 1e-3);
        if i >= warmup {
            let t2 = Instant::now();
            times[0].push((t2 - t0).as_secs_f64() * 1e3);
            times[1].push((t1 - t0).as_secs_f64() * 1e3);
            times[2].push((t2 - t1).as_secs_f64() * 1e3);
        }
    }
    (model, times)
}

/// Milliseconds of each of `iters` forward passes (after `warmup` untimed ones).
fn time_forward(
    c: &BenchConfig,
    model: &GPT,
    rng: &mut ChaCha8Rng,
    warmup: usize,
    iters: usize,
) -> Vec<f64> {
    let mut fwd = Vec::new();
    for i in 0..warmup + iters {
        let (x, _) = random_batch(rng, c.batch_size * c.block_size, c.vocab_size);
        let t0 = Instant::now();
        let logits = model.forward(model.tokens(&x, c.batch_size), None);
        let _ = logits.sum().into_scalar::<f32>();
        if i >= warmup {
            fwd.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    fwd
}

/// New tokens per second of batched KV-cache sampling of 32 prompts × 16 tokens → +64 (the
/// last 15 steps past block_size 64, each a forward over the cropped context) and → +48
/// (within block): the median of 3 runs after an untimed one.
fn time_sampling(model: &GPT, rng: &mut ChaCha8Rng, threads: usize) -> crate::Result<(f64, f64)> {
    let prompts: Vec<Vec<u32>> = (0..32)
        .map(|_| (0..16).map(|_| rng.random_range(0..65)).collect())
        .collect();
    let opts = SampleOptions {
        temperature: 1.0,
        top_k: None,
        ..Default::default()
    };
    let mut rate = |new_tokens: usize| -> crate::Result<f64> {
        // One untimed run warms the allocator and caches.
        sampling::generate(model, &prompts, new_tokens, &opts, rng, threads)?;
        let mut rates = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            sampling::generate(model, &prompts, new_tokens, &opts, rng, threads)?;
            rates.push((32 * new_tokens) as f64 / t0.elapsed().as_secs_f64());
        }
        Ok(median(rates))
    };
    Ok((rate(64)?, rate(48)?))
}

/// Times `iters` training steps and forwards (after `warmup` untimed ones) and, when
/// `sample` is set, batched KV-cache sampling (see [`time_sampling`]).
pub fn run(
    c: &BenchConfig,
    device: &Device,
    warmup: usize,
    iters: usize,
    sample: bool,
    threads: usize,
) -> crate::Result<BenchResult> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut base = GPT::new(&model_config(c), device, 0)?;
    base.precision = c.precision;
    let (model, [steps, fb, opt]) = time_training(c, base, &mut rng, warmup, iters, threads);
    let peak_rss_train_mib = peak_rss_bytes().unwrap_or(0) as f64 / (1024.0 * 1024.0);
    let inference = model.inference();
    let fwd = time_forward(c, &inference, &mut rng, warmup, iters);
    let rates = if sample {
        Some(time_sampling(&inference, &mut rng, threads)?)
    } else {
        None
    };
    let step = median(steps);
    Ok(BenchResult {
        config: c.name.to_string(),
        batch_size: c.batch_size,
        dtype: c.precision,
        threads,
        train_step_ms_median: step,
        step_forward_backward_ms: median(fb),
        step_optimizer_ms: median(opt),
        forward_ms_median: median(fwd),
        train_tokens_per_s: (c.batch_size * c.block_size) as f64 / (step / 1e3),
        sample_new_tokens_per_s: rates.map(|r| r.0),
        sample_in_block_new_tokens_per_s: rates.map(|r| r.1),
        peak_rss_train_mib,
        peak_rss_mib: peak_rss_bytes().unwrap_or(0) as f64 / (1024.0 * 1024.0),
    })
}

/// Reward-data generation speed: lockstep KV-cache batches vs the seed's loop.
#[derive(Debug, Clone, Serialize)]
pub struct RewardBenchResult {
    pub config: String,
    pub block_size: usize,
    pub samples: usize,
    pub samples_per_s: f64,
    pub generated_tokens_per_s: f64,
    pub baseline_samples: usize,
    pub baseline_samples_per_s: f64,
    pub speedup: f64,
    pub peak_rss_mib: f64,
}

/// Generates `blocks × 10` samples of random natural text with the lockstep generator, and
/// `baseline_samples` of them one at a time without a cache (the seed's loop), on a
/// freshly initialised model of config `c` (vocab 65).
pub fn run_reward_data(
    c: &BenchConfig,
    device: &Device,
    blocks: usize,
    baseline_samples: usize,
    batch_size: usize,
    workers: usize,
) -> crate::Result<RewardBenchResult> {
    let model = GPT::new(
        &GPTConfig {
            dropout: 0.0,
            ..model_config(c)
        },
        device,
        0,
    )?;
    let n = c.block_size;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let natural: Vec<Vec<u32>> = (0..blocks)
        .map(|_| (0..n).map(|_| rng.random_range(0..65)).collect())
        .collect();
    let mut rows = Vec::new();
    for (b, nat) in natural.iter().enumerate() {
        for (k, seed) in recipe::block_plan(42, Split::Train, b, 10, n) {
            rows.push(Row {
                prefix: &nat[..k],
                seed,
            });
        }
    }
    let sample = SampleOptions {
        temperature: 1.0,
        top_k: None,
        ..Default::default()
    };
    let batching = Batching {
        batch_size,
        workers,
    };
    let t0 = Instant::now();
    sampling::complete(&model, &rows, n, &sample, &batching)?;
    let dt = t0.elapsed().as_secs_f64();
    let generated: usize = rows.iter().map(|r| n - r.prefix.len()).sum();
    let t1 = Instant::now();
    for row in rows.iter().take(baseline_samples) {
        sampling::complete_one_naive(&model, row, n, &sample);
    }
    let base_dt = t1.elapsed().as_secs_f64();
    let sps = rows.len() as f64 / dt;
    let base = baseline_samples as f64 / base_dt;
    Ok(RewardBenchResult {
        config: c.name.to_string(),
        block_size: n,
        samples: rows.len(),
        samples_per_s: sps,
        generated_tokens_per_s: generated as f64 / dt,
        baseline_samples,
        baseline_samples_per_s: base,
        speedup: sps / base,
        peak_rss_mib: peak_rss_bytes().unwrap_or(0) as f64 / (1024.0 * 1024.0),
    })
}
