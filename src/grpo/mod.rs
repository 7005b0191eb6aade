//! GRPO: Group Relative Policy Optimization (Shao et al., DeepSeekMath 2024) of the generator
//! against a frozen reward model.
//!
//! For each prompt, `group_size` completions are sampled from the current policy; each one's
//! reward is the reward model's P(natural) of the whole window (prompt + completion). Rewards
//! become group-relative advantages and the policy minimises the clipped surrogate with a k3 KL
//! penalty to a frozen reference: the objective is [`loss`] ([`loss::grpo_loss`], the whole
//! objective in one function), the settings [`config`], the loop (rollouts, updates, evaluation,
//! checkpoints) [`trainer`]. With a `teacher`, every completion token is also credited with the
//! teacher's log-probability of it minus the policy's (on-policy distillation).

pub mod config;
pub mod loss;
pub mod reward;
pub mod trainer;

pub use config::GrpoConfig;
pub use loss::{
    ImportanceLevel, LossConfig, LossInputs, LossNorm, LossStats, LossType, ScaleRewards,
    advantages, completion_head, completion_logp, completion_states, distill_advantages, grpo_loss,
    mean_kl, mix_advantages, soft_cross_entropy, token_advantages,
};
pub use reward::{Ensemble, RewardFn};
pub use trainer::{GrpoOutcome, run, run_with};
