//! The GRPO objective: group-relative advantages ([`advantages`]) and the clipped surrogate with
//! a k3 KL penalty to a frozen reference ([`grpo_loss`], the whole objective in one function),
//! and the per-token log-probabilities it is computed on ([`completion_logp`]).

use crate::model::{GPT, lm_head_cross_entropy, lm_head_entropy};
use crate::util::to_host;
use crate::{Error, Result};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

crate::choice! {
    /// How per-token losses are aggregated into the batch loss.
    pub enum LossType("loss_type") {
        /// GRPO: mean over each sequence's tokens, then mean over sequences.
        #[default]
        Grpo = "grpo",
        /// Dr. GRPO: sum over all tokens divided by a constant (sequences × max completion length).
        DrGrpo = "dr_grpo",
        /// DAPO: mean over all tokens of the batch (token-level).
        Dapo = "dapo",
    }
}

crate::choice! {
    /// How group-centred rewards are scaled into advantages.
    pub enum ScaleRewards("scale_rewards") {
        /// Divide by the group's standard deviation (GRPO).
        #[default]
        Group = "group",
        /// Divide by the standard deviation of the whole batch.
        Batch = "batch",
        /// Do not scale (Dr. GRPO's mean-only advantage).
        None = "none",
    }
}

crate::choice! {
    /// How a group's rewards become advantages.
    pub enum AdvEstimator("adv_estimator") {
        /// GRPO: each reward against its group's mean, scaled as `scale_rewards` says.
        #[default]
        Grpo = "grpo",
        /// RAFT (reward-ranked fine-tuning, Dong et al. 2023): the group's most rewarded
        /// completion gets advantage 1 and the others 0 — fine-tuning on the best of each group,
        /// best-of-n sampling distilled into the policy; nothing is pushed down.
        Raft = "raft",
    }
}

crate::choice! {
    /// Where the importance ratio is taken.
    pub enum ImportanceLevel("importance_sampling_level") {
        /// Per token: ρ_t = π_θ(x_t) / π_old(x_t) (GRPO, PPO).
        #[default]
        Token = "token",
        /// Per sequence: ρ = exp(mean_t log π_θ(x_t) − log π_old(x_t)), the length-normalised
        /// sequence likelihood ratio of GSPO (Zheng et al., 2025), shared by its tokens.
        Sequence = "sequence",
    }
}

/// Settings of the loss.
#[derive(Debug, Clone, Copy)]
pub struct LossConfig {
    pub epsilon_low: f64,
    pub epsilon_high: f64,
    /// KL coefficient (0 = no KL term).
    pub beta: f64,
    pub loss_type: LossType,
    pub importance: ImportanceLevel,
    /// Two-sided clipping: the unclipped ratio is capped at `delta` too (TRL's `delta`), so a
    /// negative advantage cannot push a token whose ratio has run away (None = off).
    pub delta: Option<f64>,
    /// Weight of the entropy bonus (the loss falls by it times the mean token entropy).
    pub entropy_coef: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            epsilon_low: 0.2,
            epsilon_high: 0.2,
            beta: 0.0,
            loss_type: LossType::Grpo,
            importance: ImportanceLevel::Token,
            delta: None,
            entropy_coef: 0.0,
        }
    }
}

/// Unbiased standard deviation (PyTorch's `std()`, which TRL uses); 0 for fewer than 2 values.
fn std_unbiased(v: &[f32]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let ss: f64 = v.iter().map(|&x| (x as f64 - m).powi(2)).sum();
    (ss / (v.len() - 1) as f64).sqrt()
}

/// Group-relative advantages: A_i = (r_i − mean of its group) / (std + eps), the std taken over
/// the group, the whole batch, or not at all (`scale`). `rewards` holds consecutive groups of
/// `group_size`. Returns the advantages and the share of groups whose rewards are all equal
/// (those carry no learning signal).
pub fn advantages(
    rewards: &[f32],
    group_size: usize,
    scale: ScaleRewards,
    eps: f64,
) -> (Vec<f32>, f64) {
    let g = group_size.max(1);
    let batch_std = std_unbiased(rewards);
    let mut out = Vec::with_capacity(rewards.len());
    let mut flat = 0usize;
    let groups = rewards.chunks(g);
    let n_groups = groups.len();
    for group in groups {
        let mean = group.iter().map(|&x| x as f64).sum::<f64>() / group.len() as f64;
        let std = std_unbiased(group);
        if std < 1e-12 {
            flat += 1;
        }
        let denom = match scale {
            ScaleRewards::Group => std + eps,
            ScaleRewards::Batch => batch_std + eps,
            ScaleRewards::None => 1.0,
        };
        out.extend(group.iter().map(|&r| ((r as f64 - mean) / denom) as f32));
    }
    (out, flat as f64 / n_groups.max(1) as f64)
}

/// RAFT's advantages: 1 for the first most rewarded completion of each group of `group_size`,
/// 0 for the others. Returns them and the share of groups whose rewards are all equal (as
/// [`advantages`]; dynamic sampling leaves those out, where RAFT's pick would be arbitrary).
pub fn best_of_group(rewards: &[f32], group_size: usize) -> (Vec<f32>, f64) {
    let g = group_size.max(1);
    let mut out = vec![0.0; rewards.len()];
    let mut flat = 0usize;
    for (k, group) in rewards.chunks(g).enumerate() {
        let best = (0..group.len()).fold(0, |b, i| if group[i] > group[b] { i } else { b });
        out[k * g + best] = 1.0;
        flat += usize::from(group.iter().all(|&x| x == group[0]));
    }
    (out, flat as f64 / rewards.len().div_ceil(g).max(1) as f64)
}

/// Per-token advantages from the per-token P(natural) `p` of group-consecutive windows (prompt
/// of `prompt_len` tokens, completions after it). Completion token t is credited with
/// Δ_t = logit p_t − logit p_{t−1}, how much it moved the belief that the text is natural (the
/// first against the last prompt token), centred on the mean Δ at the same position over the
/// other completions of its prompt, and scaled by the batch's standard deviation. The tokens
/// where a completion stops looking natural, and only those, get a negative advantage.
/// Returns `[B · L]` row-major.
pub fn token_advantages(
    p: &[Vec<f32>],
    prompt_len: usize,
    group_size: usize,
    eps: f64,
) -> Vec<f32> {
    let logit = |q: f32| {
        let q = (q as f64).clamp(1e-4, 1.0 - 1e-4);
        (q / (1.0 - q)).ln()
    };
    let deltas: Vec<Vec<f64>> = p
        .iter()
        .map(|row| {
            (prompt_len..row.len())
                .map(|t| logit(row[t]) - logit(row[t - 1]))
                .collect()
        })
        .collect();
    let mut centred = Vec::with_capacity(deltas.iter().map(Vec::len).sum());
    for group in deltas.chunks(group_size.max(1)) {
        let l = group[0].len();
        for row in group {
            for t in 0..l {
                let mean = group.iter().map(|r| r[t]).sum::<f64>() / group.len() as f64;
                centred.push(row[t] - mean);
            }
        }
    }
    let n = centred.len().max(1) as f64;
    let var = centred.iter().map(|v| v * v).sum::<f64>() / n;
    centred
        .iter()
        .map(|v| (v / (var.sqrt() + eps)) as f32)
        .collect()
}

/// On-policy distillation's per-token advantages `[B·L]` from the log-probabilities of the
/// sampled completion tokens under the teacher and under the policy that sampled them:
/// d_t = log p_teacher(x_t) − log π(x_t), whose expectation over the policy's samples is the
/// negative reverse KL(π ‖ p_teacher) at that token, centred by the batch mean (a constant
/// baseline) and divided by the batch standard deviation (+ `eps`).
pub fn distill_advantages(teacher: &[f32], policy: &[f32], eps: f64) -> Vec<f32> {
    let d: Vec<f64> = teacher
        .iter()
        .zip(policy)
        .map(|(&t, &p)| t as f64 - p as f64)
        .collect();
    let n = d.len().max(1) as f64;
    let mean = d.iter().sum::<f64>() / n;
    let sd = (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    d.iter().map(|v| ((v - mean) / (sd + eps)) as f32).collect()
}

/// The mean over rows of KL(p ‖ q) = Σ_v p_v (log p_v − log q_v), `log_p` and `log_q` holding
/// rows of `vocab` log-probabilities.
pub fn mean_kl(log_p: &[f32], log_q: &[f32], vocab: usize) -> f64 {
    let rows = log_p.len() / vocab.max(1);
    let total: f64 = log_p
        .iter()
        .zip(log_q)
        .map(|(&p, &q)| (p as f64).exp() * (p as f64 - q as f64))
        .sum();
    total / rows.max(1) as f64
}

/// The per-token advantages `[B·L]` of a run with a teacher: `reward_coef` times the reward
/// model's (its per-token advantages, or else each row's sequence advantage on every token of
/// the row) plus `teacher_coef` times the distillation advantages.
pub fn mix_advantages(
    reward_token: Option<&[f32]>,
    reward_seq: &[f32],
    distill: &[f32],
    reward_coef: f64,
    teacher_coef: f64,
) -> Vec<f32> {
    let l = distill.len() / reward_seq.len().max(1);
    distill
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let r = match reward_token {
                Some(t) => t[i],
                None => reward_seq[i / l.max(1)],
            };
            (reward_coef * r as f64 + teacher_coef * d as f64) as f32
        })
        .collect()
}

/// Per-token inputs of the loss for a batch of B completions of L tokens.
pub struct LossInputs {
    /// log π_θ of each completion token `[B, L]` (differentiable).
    pub logp: Tensor<2>,
    /// log π_old of the same tokens `[B, L]` (constants).
    pub old_logp: Tensor<2>,
    /// log π_ref of the same tokens `[B, L]` (constants), when β > 0.
    pub ref_logp: Option<Tensor<2>>,
    /// One advantage per completion `[B]`.
    pub advantages: Tensor<1>,
    /// Per-token advantages `[B, L]` that replace `advantages` when given (per-token rewards).
    pub token_advantages: Option<Tensor<2>>,
    /// 1 for tokens that count, 0 for padding `[B, L]`.
    pub mask: Tensor<2>,
    /// The differentiable entropy of every token's distribution `[B, L]`, for the entropy
    /// bonus (None without one).
    pub entropy: Option<Tensor<2>>,
}

/// Batch-wide counts the normalisation needs (a data-parallel shard sees only its rows).
#[derive(Debug, Clone, Copy)]
pub struct LossNorm {
    /// Completions in the whole batch.
    pub rows: usize,
    /// Counted tokens in the whole batch.
    pub tokens: f64,
    /// The maximum completion length (Dr. GRPO's constant).
    pub max_len: usize,
}

/// Sums over the batch (shards add up): tokens clipped below / above the band, k3 KL, tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossStats {
    pub clipped_low: f64,
    pub clipped_high: f64,
    pub kl_sum: f64,
    pub tokens: f64,
}

impl LossStats {
    /// Adds another shard's sums.
    pub fn add(&mut self, o: &LossStats) {
        self.clipped_low += o.clipped_low;
        self.clipped_high += o.clipped_high;
        self.kl_sum += o.kl_sum;
        self.tokens += o.tokens;
    }

    /// Share of tokens whose ratio was clipped (the clip was active for their advantage sign).
    pub fn clip_frac(&self) -> f64 {
        (self.clipped_low + self.clipped_high) / self.tokens.max(1.0)
    }

    /// Mean k3 KL per token.
    pub fn kl(&self) -> f64 {
        self.kl_sum / self.tokens.max(1.0)
    }
}

/// The GRPO objective. Per token, with ρ = exp(logp − old_logp):
///
///   ℓ = −min(ρ·A, clip(ρ, 1−ε_low, 1+ε_high)·A) + β·(exp(ref − logp) − (ref − logp) − 1)
///
/// aggregated by `loss_type` over the masked tokens: `grpo` averages each sequence's tokens and
/// then the sequences (÷ `norm.rows`), `dr_grpo` divides the token sum by
/// `norm.rows × norm.max_len`, `dapo` by `norm.tokens`. With one policy update per batch
/// (old = θ, so ρ = 1) the gradient is REINFORCE with the group baseline. Returns the loss and
/// the statistics of this (part of the) batch.
pub fn grpo_loss(x: &LossInputs, cfg: &LossConfig, norm: &LossNorm) -> (Tensor<1>, LossStats) {
    let [b, l] = x.logp.dims();
    let adv = match &x.token_advantages {
        Some(a) => a.clone(),
        None => x.advantages.clone().reshape([b, 1]).expand([b, l]),
    };
    let log_ratio = x.logp.clone() - x.old_logp.clone();
    let ratio = match cfg.importance {
        ImportanceLevel::Token => log_ratio.exp(),
        ImportanceLevel::Sequence => {
            let m = x.mask.clone();
            let mean = (log_ratio * m.clone()).sum_dim(1) / m.sum_dim(1).clamp_min(1.0);
            mean.exp().expand([b, l])
        }
    };
    let clipped = ratio
        .clone()
        .clamp(1.0 - cfg.epsilon_low, 1.0 + cfg.epsilon_high);
    let capped = match cfg.delta {
        Some(d) => ratio.clone().clamp_max(d),
        None => ratio.clone(),
    };
    let surrogate = (capped * adv.clone()).min_pair(clipped * adv.clone());
    let mut per_token = surrogate.neg();
    if let Some(h) = x.entropy.as_ref().filter(|_| cfg.entropy_coef != 0.0) {
        per_token = per_token - h.clone().mul_scalar(cfg.entropy_coef);
    }
    let kl = match &x.ref_logp {
        Some(r) if cfg.beta != 0.0 => {
            let d = r.clone() - x.logp.clone();
            let kl = d.clone().exp() - d - 1.0;
            per_token = per_token + kl.clone().mul_scalar(cfg.beta);
            Some(kl)
        }
        _ => None,
    };
    let mask = x.mask.clone();
    let masked = per_token * mask.clone();
    let loss = match cfg.loss_type {
        LossType::Grpo => {
            let per_seq = masked.sum_dim(1) / mask.clone().sum_dim(1).clamp_min(1.0);
            per_seq.sum().div_scalar(norm.rows.max(1) as f64)
        }
        LossType::DrGrpo => masked
            .sum()
            .div_scalar((norm.rows * norm.max_len).max(1) as f64),
        LossType::Dapo => masked.sum().div_scalar(norm.tokens.max(1.0)),
    };
    // Statistics (constants): where the clip is active for the advantage's sign.
    let ratio = ratio.detach();
    let low = ratio
        .clone()
        .lower_elem(1.0 - cfg.epsilon_low)
        .bool_and(adv.clone().lower_elem(0.0))
        .float();
    let high = ratio
        .greater_elem(1.0 + cfg.epsilon_high)
        .bool_and(adv.greater_elem(0.0))
        .float();
    let mut parts = vec![
        (low * mask.clone()).sum(),
        (high * mask.clone()).sum(),
        mask.clone().sum(),
    ];
    if let Some(kl) = kl {
        parts.push((kl.detach() * mask).sum());
    }
    let v = to_host(Tensor::cat(parts, 0));
    let stats = LossStats {
        clipped_low: v[0] as f64,
        clipped_high: v[1] as f64,
        tokens: v[2] as f64,
        kl_sum: v.get(3).copied().unwrap_or(0.0) as f64,
    };
    (loss, stats)
}

/// Log-probabilities `[B, L]` of the completion tokens of `ids` (row-major `[B, T]`, the last
/// L = T − `prompt_len` tokens of each row being the completion) under `model`, with logits
/// divided by `temperature` (the distribution they were sampled from), and each token's
/// entropy `[B, L]` (differentiable; detach it for a statistic).
pub fn completion_logp(
    model: &GPT,
    ids: &[i64],
    b: usize,
    prompt_len: usize,
    temperature: f64,
) -> Result<(Tensor<2>, Tensor<2>)> {
    let (x, targets) = completion_states(model, ids, b, prompt_len, temperature)?;
    Ok(completion_head(model, x, targets, b))
}

/// The log-probabilities `[B, L]` of `targets` `[B·L]` and the entropies `[B, L]` of the
/// completion states `x` (from [`completion_states`]) of `b` rows.
pub fn completion_head(
    model: &GPT,
    x: Tensor<2>,
    targets: Tensor<1, Int>,
    b: usize,
) -> (Tensor<2>, Tensor<2>) {
    let l = targets.dims()[0] / b.max(1);
    let logp = lm_head_cross_entropy(x.clone(), model.wte.clone(), targets, model.precision)
        .neg()
        .reshape([b, l]);
    let entropy = lm_head_entropy(x, model.wte.clone(), model.precision).reshape([b, l]);
    (logp, entropy)
}

/// The final states that predict the completion tokens of the `b` windows `ids` (prompts of
/// `prompt_len`), `[B·L, n_embd]` divided by the temperature (logits/T = (x/T)·wteᵀ, so the
/// chunked lm_head kernels never hold `[B, L, vocab]` logits), and those tokens `[B·L]`.
pub fn completion_states(
    model: &GPT,
    ids: &[i64],
    b: usize,
    prompt_len: usize,
    temperature: f64,
) -> Result<(Tensor<2>, Tensor<1, Int>)> {
    let t = ids.len() / b.max(1);
    if prompt_len == 0 || prompt_len >= t || t > model.config.block_size {
        return Err(Error::Config(format!(
            "a window of {t} tokens with a {prompt_len}-token prompt does not fit: need 1 ≤ prompt < window ≤ block_size {}",
            model.config.block_size
        )));
    }
    let l = t - prompt_len;
    let c = model.config.n_embd;
    let x = model.hidden_states(model.tokens(ids, b));
    let x = x.narrow(1, prompt_len - 1, l).reshape([b * l, c]);
    let x = if temperature > 0.0 && temperature != 1.0 {
        x.div_scalar(temperature)
    } else {
        x
    };
    let targets: Vec<i64> = ids
        .chunks(t)
        .flat_map(|row| row[prompt_len..].iter().copied())
        .collect();
    Ok((x, model.tokens(&targets, b).reshape([b * l])))
}

/// The soft cross-entropy −Σ_v q_v log π_v of every row `[N]` of the policy's states `x`
/// `[N, n_embd]` against target distributions `q` `[N, vocab]`: the forward KL(q ‖ π) up to
/// q's entropy, with its gradient −Σ_v q_v ∇ log π_v.
pub fn soft_cross_entropy(model: &GPT, x: Tensor<2>, q: Tensor<2>) -> Tensor<1> {
    let n = q.dims()[0];
    let logp = log_softmax(x.matmul(model.wte.clone().transpose()), 1);
    (q * logp).sum_dim(1).reshape([n]).neg()
}

#[cfg(test)]
mod tests;
