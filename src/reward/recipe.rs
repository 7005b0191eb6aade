//! The reward-data recipe: what a sample is, independent of how it is generated or stored.
//!
//! Each split's token stream is cut into blocks of N = block_size tokens. For every block,
//! `samples_per_chunk` times, K is drawn uniformly from [1, N−1]; the sample keeps the block's
//! first K tokens and lets the base model generate the other N−K; its label is
//! [K/N, (N−K)/N]. Every block's random stream (its K values and its sampling noise) comes from
//! (seed, split, block index) alone, so K values and natural prefixes never depend on batching
//! or sharding.

use crate::util::rng::mix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Which split a block belongs to (part of every block's random stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
}

impl Split {
    /// Both splits, train first.
    pub const ALL: [Split; 2] = [Split::Train, Split::Val];

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

/// [`block_plan`] with a share `full_share` of the block's samples made fully natural (K = N)
/// or fully generated (K = 0), half each on average. The choice is drawn from its own stream,
/// so with `full_share` = 0 the plan is exactly [`block_plan`]'s.
pub fn block_plan_full(
    seed: u64,
    split: Split,
    block: usize,
    spc: usize,
    n: usize,
    full_share: f64,
) -> Vec<(usize, u64)> {
    let mut plan = block_plan(seed, split, block, spc, n);
    if full_share > 0.0 {
        let stream = mix(mix(seed ^ split.salt()) ^ block as u64) ^ 0x6675_6c6c;
        let mut rng = ChaCha8Rng::seed_from_u64(mix(stream));
        for (k, _) in plan.iter_mut() {
            let (u, natural) = (rng.random::<f64>(), rng.random::<bool>());
            if u < full_share {
                *k = if natural { n } else { 0 };
            }
        }
    }
    plan
}

/// The label of a sample cut at K of N: [P(natural), P(synthetic)] = [K/N, (N−K)/N].
pub fn label(k: usize, n: usize) -> [f32; 2] {
    [k as f32 / n as f32, (n - k) as f32 / n as f32]
}

/// The blocks of `n_blocks` a run covers (max_blocks first, then every S-th from I).
pub fn covered_blocks(
    n_blocks: usize,
    max_blocks: Option<usize>,
    num_shards: usize,
    shard_index: usize,
) -> Vec<usize> {
    let n = max_blocks.map_or(n_blocks, |m| m.min(n_blocks));
    (0..n).filter(|b| b % num_shards == shard_index).collect()
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
    fn full_windows_leave_the_plan_alone_at_zero() {
        for b in 0..50 {
            let plain = block_plan(5, Split::Val, b, 10, 32);
            assert_eq!(block_plan_full(5, Split::Val, b, 10, 32, 0.0), plain);
            // With a share, only the K values change (to 0 or N), never the seeds.
            let full = block_plan_full(5, Split::Val, b, 10, 32, 0.5);
            for ((k, s), (k0, s0)) in full.iter().zip(&plain) {
                assert_eq!(s, s0);
                assert!(k == k0 || *k == 0 || *k == 32);
            }
        }
        let ks: Vec<usize> = (0..400)
            .flat_map(|b| block_plan_full(1, Split::Train, b, 10, 32, 0.3))
            .map(|(k, _)| k)
            .collect();
        let share = ks.iter().filter(|&&k| k == 0 || k == 32).count() as f64 / ks.len() as f64;
        assert!((share - 0.3).abs() < 0.03, "{share}");
        assert!(ks.contains(&0) && ks.contains(&32));
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
