//! The one sampler: batched autoregressive generation through the KV cache, every row of a
//! batch in lockstep, with temperature and top-k. A row may carry a forced prefix longer than
//! the others' (its natural tokens are fed, not sampled, until it ends), which is how reward
//! data cuts a block at K; `sample`, reward data and GRPO rollouts all run [`lockstep`].
//! Past block_size the context is cropped to its last block_size tokens exactly as nanoGPT's
//! `generate()` does.

use crate::model::{GPT, HostHead, KvCache};
use crate::util::device;
use crate::{Error, Result};
use burn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sampling settings.
#[derive(Debug, Clone, Copy)]
pub struct SampleOptions {
    /// Softmax temperature; 0 picks the most likely token.
    pub temperature: f64,
    /// Keep only the k most likely tokens (None = all).
    pub top_k: Option<usize>,
    /// Draw only ids below this: the tokenizer's vocabulary, when the model's is padded (nanoGPT
    /// pads GPT-2's 50,257 to 50,304); None = every id of the model.
    pub vocab: Option<usize>,
}

/// `top_k` as the configs and flags spell it, where 0 keeps every token.
pub fn top_k_or_all(k: usize) -> Option<usize> {
    (k > 0).then_some(k)
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: None,
            vocab: None,
        }
    }
}

impl SampleOptions {
    /// Rejects negative or non-finite temperatures and top_k = 0.
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(Error::Config(format!(
                "temperature must be a finite number ≥ 0, got {}",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::Config("top_k must be at least 1".into()));
        }
        if self.vocab == Some(0) {
            return Err(Error::Config(
                "the sampling vocabulary must hold a token".into(),
            ));
        }
        Ok(())
    }
}

/// Draws one token from a row of logits (only among ids below `opts.vocab`): softmax at the
/// temperature over the top-k, by inverse CDF. One pass for the maximum, one for the weights
/// (a vectorised f32 exp into a per-thread buffer, summed in f64 per 512-token chunk) and a
/// scan of the chunk the draw falls in; top-k by partial selection, no sort, no allocation
/// after the first call on a thread.
pub fn sample_row(logits: &[f32], opts: &SampleOptions, rng: &mut impl Rng) -> u32 {
    let logits = match opts.vocab {
        Some(v) if v < logits.len() => &logits[..v],
        _ => logits,
    };
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 { (i, v) } else { best }
            })
            .0 as u32
    };
    let max = crate::model::lane_max(logits);
    if opts.temperature == 0.0 || !max.is_finite() {
        return argmax();
    }
    let inv_t = (1.0 / opts.temperature) as f32;
    SCRATCH.with_borrow_mut(|buf| {
        let kth = match opts.top_k {
            Some(k) if k < logits.len() => {
                buf.clear();
                buf.extend_from_slice(logits);
                *buf.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a)).1
            }
            _ => f32::NEG_INFINITY,
        };
        buf.clear();
        buf.extend(logits.iter().map(|&v| {
            let e = crate::model::exp_nonpositive((v - max) * inv_t);
            if v < kth { 0.0 } else { e }
        }));
        draw(buf, rng).unwrap_or_else(argmax)
    })
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The index drawn from unnormalised weights by inverse CDF (None when they sum to 0).
fn draw(w: &[f32], rng: &mut impl Rng) -> Option<u32> {
    const CHUNK: usize = 512;
    let sums: Vec<f64> = w
        .chunks(CHUNK)
        .map(|c| crate::model::lane_sum(c) as f64)
        .collect();
    let total: f64 = sums.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let mut u = rng.random::<f64>() * total;
    for (ci, &s) in sums.iter().enumerate() {
        if u >= s && ci + 1 < sums.len() {
            u -= s;
            continue;
        }
        let chunk = &w[ci * CHUNK..(ci * CHUNK + CHUNK).min(w.len())];
        for (i, &p) in chunk.iter().enumerate() {
            u -= p as f64;
            if u < 0.0 {
                return Some((ci * CHUNK + i) as u32);
            }
        }
        // Rounding left u ≥ 0 after the chunk's last term: take its last token with mass.
        let last = chunk.iter().rposition(|&p| p > 0.0)?;
        return Some((ci * CHUNK + last) as u32);
    }
    None
}

/// Copies a `[B, V]` logits tensor to host rows.
pub fn logits_rows(logits: Tensor<2>) -> Vec<Vec<f32>> {
    let [b, v] = logits.dims();
    let flat = crate::util::to_host(logits);
    (0..b).map(|i| flat[i * v..(i + 1) * v].to_vec()).collect()
}

/// Token sequences, one per row.
pub type Seqs = Vec<Vec<u32>>;

/// One sequence to complete: its forced prefix (a prompt, or a block's first K natural tokens;
/// at least one token) and the seed of its own sampling noise.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub prefix: &'a [u32],
    pub seed: u64,
}

/// How [`complete`] groups rows: batches of up to `batch_size` rows of similar prefix length,
/// run on `workers` threads.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub batch_size: usize,
    pub workers: usize,
}

/// Refuses rows the model cannot complete to `len` tokens.
fn check_rows(model: &GPT, rows: &[Row], len: usize) -> Result<()> {
    if rows
        .iter()
        .any(|r| r.prefix.is_empty() || r.prefix.len() > len)
    {
        return Err(Error::Other(format!(
            "every row needs a prefix of 1 to {len} tokens"
        )));
    }
    let vs = model.config.vocab_size;
    if let Some(bad) = rows
        .iter()
        .flat_map(|r| r.prefix)
        .find(|&&t| t as usize >= vs)
    {
        return Err(Error::Mismatch(format!(
            "prompt token {bad} is outside the model's vocabulary of {vs}"
        )));
    }
    Ok(())
}

/// Completes every row to `len` tokens: rows are sorted by prefix length (longest first, so a
/// batch shares a long prefill), cut into batches and generated on the worker threads; the
/// result is in `rows` order. Each row samples from its own stream, so batching and threading
/// never change what it draws. Past block_size the context is cropped as in [`generate`].
pub fn complete(
    model: &GPT,
    rows: &[Row],
    len: usize,
    opts: &SampleOptions,
    batching: &Batching,
) -> Result<Vec<Vec<u32>>> {
    opts.validate()?;
    check_rows(model, rows, len)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(rows[i].prefix.len()), i));
    let batches: Vec<&[usize]> = order.chunks(batching.batch_size.max(1)).collect();
    let head = model.host_head();
    let done = device::par_map(&batches, batching.workers, |batch| {
        let group: Vec<Row> = batch.iter().map(|&i| rows[i]).collect();
        lockstep(model, &head, &group, len, opts)
    });
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); rows.len()];
    for (batch, seqs) in batches.iter().zip(done) {
        for (&i, s) in batch.iter().zip(seqs) {
            out[i] = s;
        }
    }
    Ok(out)
}

/// nanoGPT's `generate()` for a batch of prompts of one length: `max_new_tokens` after each,
/// through the KV cache, past block_size by cropping. Each row samples from its own stream
/// (seeded from `rng`); the rows are split into `workers` contiguous groups, and the result does
/// not depend on how many there are. Returns the prompts with their continuations.
pub fn generate(
    model: &GPT,
    prompts: &[Vec<u32>],
    max_new_tokens: usize,
    opts: &SampleOptions,
    rng: &mut impl Rng,
    workers: usize,
) -> Result<Vec<Vec<u32>>> {
    opts.validate()?;
    let Some(first) = prompts.first() else {
        return Ok(Vec::new());
    };
    if first.is_empty() || prompts.iter().any(|p| p.len() != first.len()) {
        return Err(Error::Other(
            "prompts must be non-empty and all of the same length".into(),
        ));
    }
    let len = first.len() + max_new_tokens;
    let rows: Vec<Row> = prompts
        .iter()
        .map(|p| Row {
            prefix: p,
            seed: rng.random(),
        })
        .collect();
    check_rows(model, &rows, len)?;
    let chunks = device::row_ranges(rows.len(), workers);
    let head = model.host_head();
    let parts = device::par_map(&chunks, chunks.len(), |&(r0, r1)| {
        lockstep(model, &head, &rows[r0..r1], len, opts)
    });
    Ok(parts.concat())
}

/// Generates a group of rows in lockstep through one KV cache: the prefix the rows share is
/// prefilled at once, then one step per position, feeding a row's forced token while it has one
/// and a sampled token after. Past block_size each step reads the cropped context afresh
/// (learned positions: cropping moves every token, so no cached key survives). `head` is
/// `model.host_head()`, made once and shared by every group.
pub fn lockstep(
    model: &GPT,
    head: &HostHead,
    rows: &[Row],
    len: usize,
    opts: &SampleOptions,
) -> Vec<Vec<u32>> {
    let b = rows.len();
    let bs = model.config.block_size;
    let min_k = rows.iter().map(|r| r.prefix.len()).min().unwrap_or(1);
    let mut rngs: Vec<ChaCha8Rng> = rows
        .iter()
        .map(|r| ChaCha8Rng::seed_from_u64(r.seed))
        .collect();
    let mut seqs: Vec<Vec<u32>> = rows.iter().map(|r| r.prefix[..min_k].to_vec()).collect();
    let ids_of = |seqs: &[Vec<u32>], start: usize| -> Vec<i64> {
        seqs.iter()
            .flat_map(|s| s[start..].iter().map(|&t| t as i64))
            .collect()
    };
    let mut logits = Vec::new();
    let cropped = |seqs: &[Vec<u32>], out: &mut Vec<f32>| {
        let ids = ids_of(seqs, seqs[0].len() - bs);
        model.forward_last_into(model.tokens(&ids, b), head, out);
    };
    let mut cache = KvCache::default();
    if min_k <= bs {
        let idx = model.tokens(&ids_of(&seqs, 0), b);
        model.forward_cached_into(idx, &mut cache, head, &mut logits);
    } else {
        cropped(&seqs, &mut logits);
    }
    let v = model.config.vocab_size;
    for t in min_k..len {
        let mut next = Vec::with_capacity(b);
        for (r, row) in rows.iter().enumerate() {
            let tok = match row.prefix.get(t) {
                Some(&forced) => forced,
                None => sample_row(&logits[r * v..(r + 1) * v], opts, &mut rngs[r]),
            };
            seqs[r].push(tok);
            next.push(tok as i64);
        }
        if t + 1 == len {
            break;
        }
        if seqs[0].len() <= bs {
            model.forward_cached_into(model.tokens(&next, b), &mut cache, head, &mut logits);
        } else {
            cropped(&seqs, &mut logits);
        }
    }
    seqs
}

/// The seed's way, kept as the reference and the speed baseline: one row at a time, a full
/// forward over the whole sequence for every new token (nanoGPT's `generate()` without a
/// cache), to `len` ≤ block_size tokens.
pub fn complete_one_naive(model: &GPT, row: &Row, len: usize, opts: &SampleOptions) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(row.seed);
    let mut seq: Vec<u32> = row.prefix.to_vec();
    while seq.len() < len {
        let ids: Vec<i64> = seq.iter().map(|&t| t as i64).collect();
        let logits = model.forward(model.tokens(&ids, 1), None);
        let v = model.config.vocab_size;
        let last = logits.narrow(1, seq.len() - 1, 1).reshape([1, v]);
        let rows = logits_rows(last);
        seq.push(sample_row(&rows[0], opts, &mut rng));
    }
    seq
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GPTConfig;
    use burn::tensor::Device;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn tiny(block: usize) -> GPT {
        let cfg = GPTConfig {
            block_size: block,
            vocab_size: 23,
            n_layer: 2,
            n_head: 2,
            n_embd: 32,
            dropout: 0.0,
            bias: true,
            ..Default::default()
        };
        let dev = Device::flex();
        GPT::new(&cfg, &dev, 7).unwrap()
    }

    /// Reference: nanoGPT's generate() — a full forward over the cropped context every step —
    /// with the same per-row random streams as `generate`.
    fn naive(
        model: &GPT,
        prompts: &[Vec<u32>],
        n: usize,
        opts: &SampleOptions,
        seed: u64,
    ) -> (Vec<Vec<u32>>, Vec<Vec<Vec<f32>>>) {
        let mut master = ChaCha8Rng::seed_from_u64(seed);
        let mut rngs: Vec<ChaCha8Rng> = prompts
            .iter()
            .map(|_| ChaCha8Rng::seed_from_u64(master.random()))
            .collect();
        let bs = model.config.block_size;
        let mut seqs = prompts.to_vec();
        let mut all_logits = Vec::new();
        for _ in 0..n {
            let len = seqs[0].len();
            let start = len.saturating_sub(bs);
            let ids: Vec<i64> = seqs
                .iter()
                .flat_map(|s| s[start..].iter().map(|&t| t as i64))
                .collect();
            let t = len - start;
            let logits = model.forward(model.tokens(&ids, seqs.len()), None);
            let [b, _, v] = logits.dims();
            let last = logits.narrow(1, t - 1, 1).reshape([b, v]);
            let rows = logits_rows(last);
            for ((s, r), rng) in seqs.iter_mut().zip(&rows).zip(rngs.iter_mut()) {
                s.push(sample_row(r, opts, rng));
            }
            all_logits.push(rows);
        }
        (seqs, all_logits)
    }

    #[test]
    fn kv_cache_matches_full_recomputation() {
        let model = tiny(16);
        let prompts = vec![vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9]];
        let opts = SampleOptions {
            temperature: 1.0,
            top_k: Some(10),
            ..Default::default()
        };
        // 20 new tokens run past block_size 16, exercising the crop-and-refill path.
        let (ref_seqs, ref_logits) = naive(&model, &prompts, 20, &opts, 3);
        // Same logits at every step: replay the reference tokens through the cache.
        let mut cache = KvCache::default();
        let b = prompts.len();
        let mut logits =
            model.forward_cached(model.tokens(&[1, 2, 3, 4, 5, 6, 7, 8, 9], b), &mut cache);
        for (step, want) in ref_logits.iter().enumerate() {
            let rows = logits_rows(logits);
            for (r, e) in rows.iter().zip(want) {
                let d = r
                    .iter()
                    .zip(e)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(d < 1e-4, "step {step}: max |Δlogit| = {d}");
            }
            let pos = 3 + step;
            if cache.len() < 16 {
                let ids: Vec<i64> = ref_seqs.iter().map(|s| s[pos] as i64).collect();
                logits = model.forward_cached(model.tokens(&ids, b), &mut cache);
            } else {
                let ids: Vec<i64> = ref_seqs
                    .iter()
                    .flat_map(|s| s[pos + 1 - 16..=pos].iter().map(|&t| t as i64))
                    .collect();
                logits = model.forward_last(model.tokens(&ids, b));
            }
        }
        // Same tokens under the same seed, however many threads share the rows.
        for workers in [1, 2, 3] {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let got = generate(&model, &prompts, 20, &opts, &mut rng, workers).unwrap();
            assert_eq!(got, ref_seqs, "{workers} workers");
        }
    }

    #[test]
    fn top_k_one_is_greedy_and_temperature_zero_too() {
        let logits = [0.1f32, 2.0, -1.0, 1.9];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..20 {
            assert_eq!(
                sample_row(
                    &logits,
                    &SampleOptions {
                        temperature: 1.0,
                        top_k: Some(1),
                        ..Default::default()
                    },
                    &mut rng
                ),
                1
            );
            assert_eq!(
                sample_row(
                    &logits,
                    &SampleOptions {
                        temperature: 0.0,
                        top_k: None,
                        ..Default::default()
                    },
                    &mut rng
                ),
                1
            );
        }
        // top_k = 2 never yields tokens outside the two largest.
        for _ in 0..200 {
            let t = sample_row(
                &logits,
                &SampleOptions {
                    temperature: 1.0,
                    top_k: Some(2),
                    ..Default::default()
                },
                &mut rng,
            );
            assert!(t == 1 || t == 3);
        }
    }

    /// The naive sampler: f64 softmax of the scaled, top-k-masked row, then inverse CDF.
    fn naive_draw(logits: &[f32], t: f64, k: Option<usize>, rng: &mut impl Rng) -> u32 {
        let z: Vec<f64> = logits.iter().map(|&v| v as f64 / t).collect();
        let mut sorted = z.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let kth = k.map_or(f64::NEG_INFINITY, |k| sorted[k - 1]);
        let p: Vec<f64> = z
            .iter()
            .map(|&v| if v < kth { 0.0 } else { (v - sorted[0]).exp() })
            .collect();
        let mut u = rng.random::<f64>() * p.iter().sum::<f64>();
        for (i, q) in p.iter().enumerate() {
            u -= q;
            if u < 0.0 {
                return i as u32;
            }
        }
        p.iter().rposition(|&q| q > 0.0).unwrap() as u32
    }

    #[test]
    fn the_sampler_draws_what_a_naive_f64_softmax_draws() {
        let mut rows = ChaCha8Rng::seed_from_u64(9);
        for (t, k, v) in [
            (1.0, None, 50_304),
            (0.7, Some(40), 50_304),
            (1.3, None, 65),
        ] {
            let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(1), ChaCha8Rng::seed_from_u64(1));
            let opts = SampleOptions {
                temperature: t,
                top_k: k,
                vocab: None,
            };
            for _ in 0..200 {
                let logits: Vec<f32> = (0..v).map(|_| rows.random::<f32>() * 12.0 - 6.0).collect();
                assert_eq!(
                    sample_row(&logits, &opts, &mut a),
                    naive_draw(&logits, t, k, &mut b),
                    "temperature {t}, top_k {k:?}, vocab {v}"
                );
            }
        }
    }

    #[test]
    fn sampling_frequencies_follow_softmax() {
        let logits = [0.0f32, (2.0f32).ln()];
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let n = 30_000;
        let ones = (0..n)
            .filter(|_| sample_row(&logits, &SampleOptions::default(), &mut rng) == 1)
            .count();
        let p = ones as f64 / n as f64;
        assert!((p - 2.0 / 3.0).abs() < 0.015, "p = {p}");
    }
}
