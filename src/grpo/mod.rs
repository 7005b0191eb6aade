//! GRPO: Group Relative Policy Optimization (Shao et al., DeepSeekMath 2024) of the generator
//! against a frozen reward model.
//!
//! For each prompt, `group_size` completions are sampled from the current policy; each one's
//! reward is the reward model's P(natural) of the whole window (prompt + completion). Rewards
//! become group-relative advantages and the policy minimises the clipped surrogate with a k3 KL
//! penalty to a frozen reference: the objective is [`loss`] ([`loss::grpo_loss`], the whole
//! objective in one function), the settings [`config`], the loop (rollouts, updates, evaluation,
//! checkpoints) [`trainer`].

pub mod config;
pub mod loss;
pub mod reward;
pub mod trainer;

pub use config::GrpoConfig;
pub use loss::{
    ImportanceLevel, LossConfig, LossInputs, LossNorm, LossStats, LossType, ScaleRewards,
    advantages, completion_logp, grpo_loss, token_advantages,
};
pub use reward::{Ensemble, RewardFn};
pub use trainer::{GrpoOutcome, run, run_with};
