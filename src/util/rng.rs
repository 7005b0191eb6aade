//! Seed mixing: every derived random stream (a block's cuts, a row's sampling noise, a GRPO step,
//! an epoch's shuffle) is a ChaCha8 generator seeded from [`mix`] of the run's seed and the
//! stream's coordinates, so the same coordinates always draw the same numbers whatever the
//! batching, threading or resumption.

/// SplitMix64's finaliser: a well-mixed 64-bit function of its input.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The seed of `train`'s per-iteration streams (evaluation batches: `salt` 1, dropout masks:
/// `salt` 2). It predates [`mix`] and stays as it is: it fixes the evaluation batches and dropout
/// masks, hence the logged losses and the kept checkpoints, of every training run.
pub fn iter_seed(seed: u64, it: usize, salt: u64) -> u64 {
    let mut x = seed ^ (it as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.rotate_left(17);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_splitmix64() {
        // SplitMix64's first output from state 0 (the reference generator adds the constant first).
        assert_eq!(mix(0), 0xE220_A839_7B1D_CDAF);
        assert_ne!(mix(1), mix(2));
        assert_ne!(iter_seed(1, 2, 1), iter_seed(1, 2, 2));
    }
}
