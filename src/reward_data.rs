//! `prepare-reward-data`: the mixed natural/synthetic dataset the reward model learns from.
//!
//! Each split's token stream is cut into blocks of N = block_size tokens. For every block,
//! `samples_per_chunk` times, K is drawn uniformly from [1, N−1]; the sample keeps the block's
//! first K tokens and lets the base model generate the other N−K; its label is
//! [K/N, (N−K)/N]. Every block's random stream (its K values and its sampling noise) comes from
//! (seed, split, block index) alone, so K values and natural prefixes never depend on batching
//! or sharding. Generation runs many samples in lockstep through the KV cache: rows are grouped
//! by K, the shared natural prefix is prefilled at once, then one incremental step per position.

use crate::error::{Error, Result};
use crate::model::{GPT, KvCache};
use crate::sampling::{SampleOptions, logits_rows, sample_row};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Which split a block belongs to (part of every block's random stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
}

impl Split {
    /// "train" or "val".
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }

    fn salt(self) -> u64 {
        match self {
            Split::Train => 0x7472_6169_6e00_0001,
            Split::Val => 0x7661_6c00_0000_0002,
        }
    }
}

/// SplitMix64 finaliser: a well-mixed 64-bit function of its input.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Generation settings.
#[derive(Debug, Clone, Copy)]
pub struct GenOptions {
    pub samples_per_chunk: usize,
    pub sample: SampleOptions,
    pub seed: u64,
    /// Sequences generated together.
    pub batch_size: usize,
    /// Batches generated at once on separate threads.
    pub workers: usize,
}

/// One sample to produce: its block's natural tokens, its K and its sampling seed.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub natural: &'a [u32],
    pub k: usize,
    pub seed: u64,
}

/// The K values and sampling seeds of one block's samples, from (seed, split, block) alone.
pub fn block_plan(
    seed: u64,
    split: Split,
    block: usize,
    spc: usize,
    n: usize,
) -> Vec<(usize, u64)> {
    let block_seed = mix(mix(seed ^ split.salt()) ^ block as u64);
    let mut rng = ChaCha8Rng::seed_from_u64(block_seed);
    (0..spc)
        .map(|j| (rng.random_range(1..n), mix(block_seed ^ mix(j as u64 + 1))))
        .collect()
}

/// The label of a sample cut at K of N: [P(natural), P(synthetic)] = [K/N, (N−K)/N].
pub fn label(k: usize, n: usize) -> [f32; 2] {
    [k as f32 / n as f32, (n - k) as f32 / n as f32]
}

/// Generates every row: its first K tokens are its natural ones, the rest are sampled from
/// `model`. Rows are processed in batches of similar K; the result is in `rows` order.
pub fn generate_rows(model: &GPT, rows: &[Row], opts: &GenOptions) -> Result<Vec<Vec<u32>>> {
    opts.sample.validate()?;
    let n = match rows.first() {
        Some(r) => r.natural.len(),
        None => return Ok(Vec::new()),
    };
    if n > model.config.block_size
        || rows
            .iter()
            .any(|r| r.natural.len() != n || r.k == 0 || r.k > n)
    {
        return Err(Error::Mismatch(format!(
            "reward rows must all be N = {n} ≤ block_size {} tokens with 1 ≤ K ≤ N",
            model.config.block_size
        )));
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(rows[i].k), i));
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); rows.len()];
    let batches: Vec<&[usize]> = order.chunks(opts.batch_size.max(1)).collect();
    let done = crate::device::par_map(&batches, opts.workers, |batch| {
        generate_batch(model, rows, batch, n, &opts.sample)
    });
    for (batch, seqs) in batches.iter().zip(done) {
        for (&i, s) in batch.iter().zip(seqs) {
            out[i] = s;
        }
    }
    Ok(out)
}

/// Generates one batch of rows in lockstep: prefill the shared natural prefix, then one
/// incremental step per position, feeding natural tokens while t < K and sampled ones after.
fn generate_batch(
    model: &GPT,
    rows: &[Row],
    batch: &[usize],
    n: usize,
    sample: &SampleOptions,
) -> Vec<Vec<u32>> {
    let b = batch.len();
    let min_k = batch.iter().map(|&i| rows[i].k).min().unwrap_or(1);
    let mut rngs: Vec<ChaCha8Rng> = batch
        .iter()
        .map(|&i| ChaCha8Rng::seed_from_u64(rows[i].seed))
        .collect();
    let mut seqs: Vec<Vec<u32>> = batch
        .iter()
        .map(|&i| rows[i].natural[..min_k].to_vec())
        .collect();
    let mut cache = KvCache::default();
    let prefix: Vec<i64> = seqs.iter().flatten().map(|&t| t as i64).collect();
    let mut logits = Some(model.forward_cached(model.tokens(&prefix, b), &mut cache));
    for t in min_k..n {
        let host = match logits.take() {
            Some(l) if batch.iter().any(|&i| t >= rows[i].k) => Some(logits_rows(l)),
            _ => None,
        };
        let mut next = Vec::with_capacity(b);
        for (r, &i) in batch.iter().enumerate() {
            let tok = if t < rows[i].k {
                rows[i].natural[t]
            } else {
                // `host` is present whenever some row of the batch samples at t.
                let l = host.as_ref().map(|h| h[r].as_slice()).unwrap_or(&[]);
                sample_row(l, sample, &mut rngs[r])
            };
            seqs[r].push(tok);
            next.push(tok as i64);
        }
        if t + 1 < n {
            logits = Some(model.forward_cached(model.tokens(&next, b), &mut cache));
        }
    }
    seqs
}

/// The seed's way, kept as the speed baseline: one sample at a time, recomputing the whole
/// prefix for every new token (nanoGPT's `generate()` without a cache).
pub fn generate_row_naive(model: &GPT, row: &Row, opts: &SampleOptions) -> Vec<u32> {
    let n = row.natural.len();
    let mut rng = ChaCha8Rng::seed_from_u64(row.seed);
    let mut seq: Vec<u32> = row.natural[..row.k].to_vec();
    while seq.len() < n {
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

    #[test]
    fn plan_depends_only_on_seed_split_block() {
        let a = block_plan(42, Split::Train, 7, 10, 64);
        assert_eq!(a, block_plan(42, Split::Train, 7, 10, 64));
        assert_ne!(a, block_plan(42, Split::Val, 7, 10, 64));
        assert_ne!(a, block_plan(42, Split::Train, 8, 10, 64));
        assert_ne!(a, block_plan(43, Split::Train, 7, 10, 64));
        // K is uniform on [1, N-1]: over many blocks every value shows up, never 0 or N.
        let mut seen = [0usize; 64];
        for b in 0..2000 {
            for (k, _) in block_plan(1, Split::Train, b, 10, 64) {
                seen[k] += 1;
            }
        }
        assert_eq!(seen[0], 0);
        assert!(seen[1..].iter().all(|&c| c > 200), "{seen:?}");
        let mean = seen
            .iter()
            .enumerate()
            .map(|(k, c)| (k * c) as f64)
            .sum::<f64>()
            / 20000.0;
        assert!((mean - 32.0).abs() < 0.5, "mean K {mean}");
    }

    #[test]
    fn labels_are_exact_fractions() {
        assert_eq!(label(16, 64), [0.25, 0.75]);
        assert_eq!(label(1, 4), [0.25, 0.75]);
        let [a, b] = label(3, 7);
        assert_eq!(a, 3.0f32 / 7.0);
        assert_eq!(b, 4.0f32 / 7.0);
    }
}
