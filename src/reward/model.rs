//! The reward model: a generator's trunk plus `reward_head` (the GPT in reward mode, see
//! [`crate::model`]), loaded from a generator checkpoint or a reward checkpoint, and
//! [`RewardModel::score`], P(natural) of token sequences.

use crate::checkpoint::{Checkpoint, LoadReport, load_weights};
use crate::model::{GPT, Mode, Pooling};
use crate::tokenizer::Tokenizer;
use crate::util::{device, to_host};
use crate::{Error, Result};
use burn::tensor::{Device, Tensor};
use std::path::Path;

/// The model of an opened checkpoint in reward mode. A generator keeps every trunk tensor, drops
/// the (tied) lm_head and gets a fresh `reward_head` of `hidden` units with `pooling`; a reward
/// checkpoint is restored whole (its own head size and pooling win). `seed` fixes the new head.
pub fn from_checkpoint(
    ck: &Checkpoint,
    hidden: usize,
    pooling: Pooling,
    device: &Device,
    seed: u64,
) -> Result<(GPT, LoadReport)> {
    let mut cfg = ck.config.clone();
    let from_generator = cfg.mode == Mode::Generator;
    if from_generator {
        cfg.mode = Mode::Reward;
        cfg.reward_head_hidden_dim = hidden;
        cfg.pooling = pooling;
    }
    let mut model = GPT::new(&cfg, device, seed)?;
    let mut report = load_weights(&mut model, &ck.weights, &ck.weights_path(), |n| {
        from_generator && n.starts_with("reward_head.")
    })?;
    if from_generator && !report.unused.iter().any(|n| n == "lm_head.weight") {
        report
            .unused
            .push("lm_head.weight (tied to transformer.wte.weight)".into());
    }
    Ok((model, report))
}

/// A reward model with its tokenizer, for scoring token sequences.
pub struct RewardModel {
    pub model: GPT,
    pub tokenizer: Tokenizer,
    pub batch_size: usize,
    /// Batches scored at once on separate threads.
    pub workers: usize,
}

impl RewardModel {
    /// Loads a reward checkpoint (inference).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let ck = Checkpoint::open(dir)?;
        if ck.config.mode != Mode::Reward {
            return Err(Error::checkpoint(
                &ck.path,
                "this is a generator checkpoint; train a reward model with `nanoreward train-reward` first",
            ));
        }
        Ok(Self {
            model: ck.model(device)?,
            tokenizer: ck.tokenizer()?,
            batch_size: 64,
            workers: 1,
        })
    }

    /// P(natural) of each sequence (1 ≤ length ≤ block_size), batched by length.
    pub fn score(&self, seqs: &[Vec<u32>]) -> Result<Vec<f32>> {
        let bs = self.model.config.block_size;
        let vs = self.model.config.vocab_size;
        if let Some(bad) = seqs.iter().find(|s| s.is_empty() || s.len() > bs) {
            return Err(Error::Mismatch(format!(
                "cannot score a sequence of {} tokens: lengths must be 1..={bs}",
                bad.len()
            )));
        }
        if let Some(t) = seqs.iter().flatten().find(|&&t| t as usize >= vs) {
            return Err(Error::Mismatch(format!(
                "token {t} is outside the model's vocabulary of {vs}"
            )));
        }
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| seqs[i].len());
        let batches: Vec<&[usize]> = order
            .chunk_by(|&a, &b| seqs[a].len() == seqs[b].len())
            .flat_map(|group| group.chunks(self.batch_size.max(1)))
            .collect();
        let scored = device::par_map(&batches, self.workers, |batch| {
            let ids: Vec<i64> = batch
                .iter()
                .flat_map(|&i| seqs[i].iter().map(|&t| t as i64))
                .collect();
            let m = &self.model;
            m.reward_probs(m.tokens(&ids, batch.len()), None)
                .map(probs_natural)
        });
        let mut out = vec![0.0f32; seqs.len()];
        for (batch, v) in batches.iter().zip(scored) {
            for (&i, pv) in batch.iter().zip(v?) {
                out[i] = pv;
            }
        }
        Ok(out)
    }
}

/// Column 0 of a `[B, 2]` probability tensor.
pub fn probs_natural(p: Tensor<2>) -> Vec<f32> {
    let b = p.dims()[0];
    to_host(p.narrow(1, 0, 1).reshape([b]))
}
