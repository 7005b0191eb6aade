//! `grpo` settings: the TOML keys of `nanoreward grpo` and their checks.

use super::loss::{AdvEstimator, ImportanceLevel, LossConfig, LossType, ScaleRewards};
use crate::model::Precision;
use crate::sampling::{SampleOptions, top_k_or_all};
use crate::train::optim;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

crate::choice! {
    /// What a reward is attached to.
    pub enum RewardGranularity("reward_granularity") {
        #[default]
        Sequence = "sequence",
        Token = "token",
    }
}

crate::choice! {
    /// Which completions RAFT's update reads (`adv_estimator = raft`).
    pub enum RaftRows("raft_rows") {
        /// Every completion of the group: the picked one trains toward, and the KL penalty to
        /// the reference reads all of them.
        #[default]
        Group = "group",
        /// Each group's picked completion alone (reward-ranked fine-tuning as Dong et al.
        /// fine-tune on the best samples): the same policy-gradient term, normalised over the
        /// whole group as with `group`, the KL penalty on the picked completions only; the update
        /// and the reference pass read one completion in `group_size`.
        Best = "best",
    }
}

crate::choice! {
    /// How an ensemble's rewards are combined.
    pub enum EnsembleAgg("ensemble_agg") {
        /// The smallest member reward.
        #[default]
        Min = "min",
        /// The members' mean minus `ensemble_lambda` times their standard deviation.
        MeanStd = "mean_std",
    }
}

crate::choice! {
    /// How a teacher (`teacher`) enters the update.
    pub enum TeacherLoss("teacher_loss") {
        /// log p_teacher(x_t) − log π(x_t) of every sampled token as its advantage: a
        /// one-sample policy-gradient estimate of the reverse KL(π ‖ p_teacher).
        #[default]
        Advantage = "advantage",
        /// The forward KL(p_teacher ‖ π) over the whole vocabulary at every completion position
        /// of the policy's own samples, a differentiable term of the loss (GKD's on-policy
        /// distillation).
        ForwardKl = "forward_kl",
    }
}

/// `grpo` configuration (TOML + `--key=value`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// Generator checkpoint to start from, or `resume` (continue `out_dir/ckpt`).
    pub init_from: String,
    /// Reward checkpoint (from `train-reward`).
    pub reward_model: String,
    /// Folder with train.bin / val.bin: prompts from train, the perplexity guard on val.
    pub data_dir: String,
    pub out_dir: String,
    pub max_steps: usize,
    /// Prompts per step; each gets `group_size` completions.
    pub prompts_per_step: usize,
    pub group_size: usize,
    /// Prompt length range (one length drawn per step).
    pub prompt_min: usize,
    pub prompt_max: usize,
    pub completion_len: usize,
    pub temperature: f64,
    /// Keep only the k most likely tokens when sampling (0 = all).
    pub top_k: usize,
    /// `group`, `batch` or `none`.
    pub scale_rewards: ScaleRewards,
    /// `grpo` (group-relative) or `raft` (fine-tune on each group's best completion).
    pub adv_estimator: AdvEstimator,
    /// With `raft`: `group` (the update reads every completion) or `best` (the picked ones).
    pub raft_rows: RaftRows,
    /// `grpo`, `dr_grpo` or `dapo`.
    pub loss_type: LossType,
    pub epsilon_low: f64,
    pub epsilon_high: f64,
    /// KL coefficient to the reference (0 = no reference model).
    pub beta: f64,
    /// Policy updates per batch of rollouts (μ).
    pub num_iterations: usize,
    /// Subtracted from the reward per unit of the completion's repeated-4-gram share (0 = off).
    pub repetition_penalty: f64,
    /// `sequence`: one reward per completion (the window's P(natural)); `token`: a token head's
    /// per-token P(natural), each token credited with how much it moved the window's log-odds of
    /// being natural, against the same position of the other completions of its prompt.
    pub reward_granularity: RewardGranularity,
    /// More reward models (earlier rounds' in `cycle`): the reward aggregates every member's.
    pub ensemble: Vec<String>,
    /// `min` (the policy must fool every member) or `mean_std` (mean − ensemble_lambda · std).
    pub ensemble_agg: EnsembleAgg,
    pub ensemble_lambda: f64,
    /// `token` (GRPO) or `sequence` (GSPO's length-normalised sequence ratio).
    pub importance_sampling_level: ImportanceLevel,
    /// Cap of the unclipped importance ratio (two-sided clipping; 0 = off).
    pub delta: f64,
    /// Leave groups whose rewards are all equal out of the update (DAPO's dynamic sampling).
    pub dynamic_sampling: bool,
    /// Weight of the entropy bonus.
    pub entropy_coef: f64,
    /// Weight of a language-modelling loss on natural train text added to every update (the
    /// "pretraining mix" of InstructGPT's PPO-ptx): it holds the policy to natural text while the
    /// reward pulls it (0 = off).
    pub ptx_coef: f64,
    /// Windows of `block_size` train tokens in each update's language-modelling batch.
    pub ptx_batch_size: usize,
    /// A stronger generator to distil from on the policy's own samples (empty: none; GKD,
    /// Agarwal et al., ICLR 2024), as `teacher_loss` says. Each step holds the teacher's and the
    /// policy's `[B·L, vocab]` log-probabilities (both KLs are logged: `teacher_kl_reverse`,
    /// `teacher_kl_forward`).
    pub teacher: String,
    /// `advantage` (the sampled tokens' log-ratio) or `forward_kl` (the whole distribution).
    pub teacher_loss: TeacherLoss,
    /// Weight of the teacher's term (its per-token advantages, or its KL in the loss).
    pub teacher_coef: f64,
    /// Weight of the reward model's advantages when there is a teacher (0: distillation alone;
    /// the reward model still scores every completion and its reward is logged).
    pub reward_coef: f64,
    /// Write prompt, completion, reward and advantage of every completion to completions.jsonl
    /// every this many steps (0 = never).
    pub log_completions: usize,
    /// Alarms in the log: mean KL per token above this (0 = off) …
    pub kl_alarm: f64,
    /// … and the mean entropy below this share of the first step's (0 = off).
    pub entropy_alarm: f64,
    pub learning_rate: f64,
    pub min_lr: f64,
    pub warmup_steps: usize,
    pub decay_lr: bool,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub grad_clip: f64,
    /// Evaluate (val loss, rewards of policy / reference / natural text, samples) and save
    /// a checkpoint every this many steps.
    pub eval_interval: usize,
    /// Batches of `eval_batch_size` val windows for the val loss.
    pub eval_iters: usize,
    pub eval_batch_size: usize,
    /// Val prompts used to compare policy, reference and natural continuations.
    pub eval_prompts: usize,
    /// Stop (after saving) when the policy's val loss exceeds the starting model's by more than
    /// this many nats: the reward model is being exploited (0 = never stop; a warning is printed
    /// from a rise of 0.1).
    pub max_val_loss_increase: f64,
    #[serde(deserialize_with = "crate::config::seed")]
    pub seed: u64,
    pub device: String,
    /// The precision of the matrix products of the policy and the reference: `float32`, or
    /// `bfloat16` with f32 master weights (as `train`'s dtype).
    pub dtype: Precision,
    pub threads: usize,
    /// Also write the logged scalars as TensorBoard events into this directory (empty: no).
    pub tensorboard: String,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            init_from: "out/ckpt".into(),
            reward_model: "out-reward/ckpt".into(),
            data_dir: "data/shakespeare_char".into(),
            out_dir: "out-grpo".into(),
            max_steps: 200,
            prompts_per_step: 8,
            group_size: 8,
            prompt_min: 8,
            prompt_max: 24,
            completion_len: 32,
            temperature: 1.0,
            top_k: 0,
            scale_rewards: ScaleRewards::Group,
            adv_estimator: AdvEstimator::Grpo,
            raft_rows: RaftRows::Group,
            loss_type: LossType::Grpo,
            epsilon_low: 0.2,
            epsilon_high: 0.2,
            beta: 0.04,
            num_iterations: 1,
            repetition_penalty: 0.0,
            reward_granularity: RewardGranularity::Sequence,
            ensemble: Vec::new(),
            ensemble_agg: EnsembleAgg::Min,
            ensemble_lambda: 1.0,
            importance_sampling_level: ImportanceLevel::Token,
            delta: 0.0,
            dynamic_sampling: false,
            entropy_coef: 0.0,
            ptx_coef: 0.0,
            ptx_batch_size: 8,
            teacher: String::new(),
            teacher_loss: TeacherLoss::Advantage,
            teacher_coef: 1.0,
            reward_coef: 1.0,
            log_completions: 0,
            kl_alarm: 0.5,
            entropy_alarm: 0.5,
            learning_rate: 2e-5,
            min_lr: 2e-6,
            warmup_steps: 10,
            decay_lr: false,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.99,
            grad_clip: 1.0,
            eval_interval: 25,
            eval_iters: 10,
            eval_batch_size: 32,
            eval_prompts: 32,
            max_val_loss_increase: 0.0,
            seed: 1337,
            device: "auto".into(),
            dtype: Precision::Float32,
            threads: 0,
            tensorboard: String::new(),
        }
    }
}

impl GrpoConfig {
    /// Rejects settings that cannot run.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("max_steps", self.max_steps),
            ("prompts_per_step", self.prompts_per_step),
            ("prompt_min", self.prompt_min),
            ("completion_len", self.completion_len),
            ("num_iterations", self.num_iterations),
            ("eval_interval", self.eval_interval),
            ("eval_iters", self.eval_iters),
            ("eval_batch_size", self.eval_batch_size),
            ("eval_prompts", self.eval_prompts),
        ];
        if let Some((k, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!("{k} must be at least 1")));
        }
        if self.group_size < 2 {
            return Err(Error::Config(
                "group_size must be at least 2: advantages compare completions of one prompt"
                    .into(),
            ));
        }
        if self.prompt_max < self.prompt_min {
            return Err(Error::Config(format!(
                "prompt_max ({}) must be ≥ prompt_min ({})",
                self.prompt_max, self.prompt_min
            )));
        }
        let finite_pos = [
            ("temperature", self.temperature),
            ("learning_rate", self.learning_rate),
        ];
        if let Some((k, v)) = finite_pos.iter().find(|(_, v)| !v.is_finite() || *v <= 0.0) {
            return Err(Error::Config(format!("{k} must be > 0, got {v}")));
        }
        let non_neg = [
            ("epsilon_low", self.epsilon_low),
            ("epsilon_high", self.epsilon_high),
            ("beta", self.beta),
            ("repetition_penalty", self.repetition_penalty),
            ("min_lr", self.min_lr),
            ("weight_decay", self.weight_decay),
            ("grad_clip", self.grad_clip),
            ("max_val_loss_increase", self.max_val_loss_increase),
            ("ensemble_lambda", self.ensemble_lambda),
            ("delta", self.delta),
            ("entropy_coef", self.entropy_coef),
            ("ptx_coef", self.ptx_coef),
            ("teacher_coef", self.teacher_coef),
            ("reward_coef", self.reward_coef),
            ("kl_alarm", self.kl_alarm),
            ("entropy_alarm", self.entropy_alarm),
        ];
        if let Some((k, v)) = non_neg.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
            return Err(Error::Config(format!("{k} must be ≥ 0, got {v}")));
        }
        self.check_combinations()
    }

    /// The checks of settings that only fail together.
    fn check_combinations(&self) -> Result<()> {
        if self.ptx_coef > 0.0 && self.ptx_batch_size == 0 {
            return Err(Error::Config(
                "ptx_batch_size must be at least 1 when ptx_coef > 0".into(),
            ));
        }
        if self.reward_coef == 0.0 && (self.teacher.is_empty() || self.teacher_coef == 0.0) {
            return Err(Error::Config(
                "reward_coef = 0 leaves nothing to optimise: set teacher (with teacher_coef > 0) or raise reward_coef".into(),
            ));
        }
        if self.adv_estimator == AdvEstimator::Raft
            && self.reward_granularity == RewardGranularity::Token
        {
            return Err(Error::Config(
                "adv_estimator = raft ranks whole completions: use reward_granularity = sequence"
                    .into(),
            ));
        }
        if self.raft_rows == RaftRows::Best && self.adv_estimator != AdvEstimator::Raft {
            return Err(Error::Config(
                "raft_rows = best picks RAFT's completions: set adv_estimator = raft or leave raft_rows = group".into(),
            ));
        }
        if self.epsilon_low >= 1.0 {
            return Err(Error::Config("epsilon_low must be below 1".into()));
        }
        if self.delta != 0.0 && self.delta <= 1.0 + self.epsilon_high {
            return Err(Error::Config(format!(
                "delta must be above 1 + epsilon_high = {} (or 0 = off), got {}",
                1.0 + self.epsilon_high,
                self.delta
            )));
        }
        Ok(())
    }

    pub(crate) fn loss_config(&self) -> LossConfig {
        LossConfig {
            epsilon_low: self.epsilon_low,
            epsilon_high: self.epsilon_high,
            beta: self.beta,
            loss_type: self.loss_type,
            importance: self.importance_sampling_level,
            delta: (self.delta > 0.0).then_some(self.delta),
            entropy_coef: self.entropy_coef,
        }
    }

    pub(crate) fn sample_options(&self) -> SampleOptions {
        SampleOptions {
            temperature: self.temperature,
            top_k: top_k_or_all(self.top_k),
            vocab: None,
        }
    }

    /// Linear warmup over `warmup_steps`, then constant, or cosine down to `min_lr` at
    /// `max_steps` when `decay_lr`.
    pub(crate) fn lr_at(&self, step: usize) -> f64 {
        let decay = self.decay_lr.then_some((self.max_steps, self.min_lr));
        optim::warmup_then(step, self.learning_rate, self.warmup_steps, decay)
    }
}
