//! `nanoreward cycle`: R rounds of (reward data from the current generator → reward model →
//! GRPO of the generator against it, the reference reset to the current generator). Every
//! round's artefacts live in `out_dir/cycle_{r}/`; a finished round leaves `summary.json` and is
//! skipped when the command is run again, an unfinished one resumes its stages.

use super::round::{self, Replay, RoundEvent, RoundOutcome, RoundPlan};
use crate::checkpoint;
use crate::data;
use crate::grpo::{self, GrpoConfig};
use crate::metrics::{self, Series};
use crate::reward::RewardTrainConfig;
use crate::reward::prepare::{InputMode, RewardPrepOptions};
use crate::util::fsutil;
use crate::util::rng::mix;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

crate::choice! {
    /// Natural text of the reward data.
    pub enum RewardText("reward_text") {
        /// The first 80% of val.bin for reward training, the rest for its validation: text the
        /// generator never trained on.
        #[default]
        Heldout = "heldout",
        /// train.bin and val.bin, the seed's way (a generator that memorised its train text
        /// makes that a different task on train than on val).
        Splits = "splits",
    }
}

/// Reward-data settings of each round.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RewardDataSection {
    pub samples_per_chunk: usize,
    /// Share of fully natural (K = N) and fully generated (K = 0) samples.
    pub full_share: f64,
    /// Use only the first N blocks of each split (0 = all).
    pub max_blocks: usize,
    pub temperature: f64,
    /// 0 = no top-k.
    pub top_k: usize,
    pub batch_size: usize,
}

impl Default for RewardDataSection {
    fn default() -> Self {
        Self {
            samples_per_chunk: 10,
            full_share: 0.0,
            max_blocks: 0,
            temperature: 1.0,
            top_k: 0,
            batch_size: 64,
        }
    }
}

/// `cycle` configuration: top-level keys plus `[reward_data]`, `[reward]` (train-reward keys)
/// and `[grpo]` (grpo keys). Paths inside the sections are set by the cycle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CycleConfig {
    pub out_dir: String,
    /// The starting generator checkpoint.
    pub base: String,
    /// train.bin / val.bin (+ meta.pkl) the rounds draw natural text from.
    pub data_dir: String,
    pub rounds: usize,
    /// Natural text of the reward data: `heldout` or `splits`.
    pub reward_text: RewardText,
    /// Earlier rounds' train samples added to a round's reward training set, as a share of
    /// that round's own train samples (0 = none).
    pub replay_share: f64,
    /// Natural and generated windows each for the reward model's AUROC.
    pub eval_windows: usize,
    pub seed: u64,
    pub device: String,
    pub threads: usize,
    pub reward_data: RewardDataSection,
    pub reward: RewardTrainConfig,
    pub grpo: GrpoConfig,
}

impl Default for CycleConfig {
    fn default() -> Self {
        Self {
            out_dir: "out-cycle".into(),
            base: "out/ckpt".into(),
            data_dir: "data/shakespeare_char".into(),
            rounds: 2,
            reward_text: RewardText::Heldout,
            replay_share: 0.0,
            eval_windows: 128,
            seed: 1337,
            device: "auto".into(),
            threads: 0,
            reward_data: RewardDataSection::default(),
            reward: RewardTrainConfig::default(),
            grpo: GrpoConfig::default(),
        }
    }
}

/// One round's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundSummary {
    pub round: usize,
    pub generator: String,
    pub reward_samples_train: usize,
    pub replayed_samples: usize,
    pub rm_mae: f64,
    pub rm_mae_baseline: f64,
    pub rm_auroc: f64,
    pub rm_auroc_loglik_baseline: f64,
    /// Eval reward P(natural) of the policy's samples at the start and end of GRPO.
    pub policy_reward_start: f64,
    pub policy_reward_end: f64,
    /// Eval reward of natural continuations (the ceiling).
    pub natural_reward: f64,
    pub policy_val_loss_start: f64,
    pub policy_val_loss_end: f64,
    pub grpo_seconds: f64,
}

/// A round's folder.
pub fn round_dir(out: &Path, r: usize) -> PathBuf {
    out.join(format!("cycle_{r}"))
}

/// The token files the reward data's natural text comes from.
fn reward_sources(cfg: &CycleConfig, out: &Path) -> Result<(PathBuf, PathBuf)> {
    let data_dir = PathBuf::from(&cfg.data_dir);
    match cfg.reward_text {
        RewardText::Splits => Ok((data_dir.join("train.bin"), data_dir.join("val.bin"))),
        RewardText::Heldout => {
            let (a, b) = (out.join("heldout_train.bin"), out.join("heldout_val.bin"));
            if a.exists() && b.exists() {
                return Ok((a, b));
            }
            let (a, b, _, _) = data::heldout_split(&data_dir.join("val.bin"), out)?;
            Ok((a, b))
        }
    }
}

/// Runs (or resumes) the cycle; prints progress. Returns every round's summary.
pub fn run(cfg: &CycleConfig) -> Result<Vec<RoundSummary>> {
    if cfg.rounds == 0 {
        return Err(Error::Config("rounds must be at least 1".into()));
    }
    if !(0.0..=10.0).contains(&cfg.replay_share) {
        return Err(Error::Config(format!(
            "replay_share must be between 0 and 10, got {}",
            cfg.replay_share
        )));
    }
    let out = PathBuf::from(&cfg.out_dir);
    fsutil::create_dir_all(&out)?;
    let sources = reward_sources(cfg, &out)?;
    let mut generator = PathBuf::from(&cfg.base);
    if !checkpoint::is_torch_file(&generator) {
        // Fail before any work on a path that is no checkpoint (a .pt is read once, by the round).
        checkpoint::read_config(&generator)?;
    }
    let mut summaries = Vec::new();
    for r in 1..=cfg.rounds {
        let dir = round_dir(&out, r);
        let summary_path = dir.join("summary.json");
        let s = if summary_path.exists() {
            println!(
                "== round {r}: already done (delete {} to redo it)",
                dir.display()
            );
            serde_json::from_slice(&fsutil::read(&summary_path)?)
                .map_err(|e| Error::format(&summary_path, format!("not a round summary: {e}")))?
        } else {
            let s = run_round(cfg, r, &generator, &sources)?;
            let bytes = serde_json::to_vec_pretty(&s)
                .map_err(|e| Error::Other(format!("cannot serialise summary: {e}")))?;
            fsutil::write_bytes_atomic(&summary_path, &bytes)?;
            s
        };
        summaries.push(s);
        generator = grpo::trainer::dirs(&dir.join("grpo")).0;
    }
    write_report(&out, &summaries)?;
    Ok(summaries)
}

/// The plan of round `r` from the cycle's settings.
fn plan(cfg: &CycleConfig, r: usize, generator: &Path, sources: &(PathBuf, PathBuf)) -> RoundPlan {
    let dir = round_dir(Path::new(&cfg.out_dir), r);
    let round_seed = mix(cfg.seed ^ r as u64);
    let data_dir = PathBuf::from(&cfg.data_dir);
    let rd = &cfg.reward_data;
    let prep = RewardPrepOptions {
        model_path: generator.to_path_buf(),
        input_mode: InputMode::Binary,
        train_bin: Some(sources.0.clone()),
        val_bin: Some(sources.1.clone()),
        meta_path: data::data_meta(&data_dir),
        output_dir: dir.join("reward_data"),
        samples_per_chunk: rd.samples_per_chunk,
        full_share: rd.full_share,
        temperature: rd.temperature,
        top_k: (rd.top_k > 0).then_some(rd.top_k),
        seed: round_seed,
        batch_size: rd.batch_size,
        max_blocks: (rd.max_blocks > 0).then_some(rd.max_blocks),
        threads: cfg.threads,
        ..Default::default()
    };
    let replay = (cfg.replay_share > 0.0 && r > 1).then(|| Replay {
        earlier: (1..r)
            .map(|q| round_dir(Path::new(&cfg.out_dir), q).join("reward_data"))
            .collect(),
        share: cfg.replay_share,
        seed: mix(cfg.seed ^ 0x7265_706c ^ r as u64),
    });
    RoundPlan {
        generator: generator.to_path_buf(),
        prep,
        replay,
        reward: RewardTrainConfig {
            out_dir: dir.join("reward").display().to_string(),
            seed: round_seed,
            device: cfg.device.clone(),
            threads: cfg.threads,
            ..cfg.reward.clone()
        },
        eval_windows: cfg.eval_windows,
        eval_seed: round_seed,
        grpo: GrpoConfig {
            data_dir: cfg.data_dir.clone(),
            out_dir: dir.join("grpo").display().to_string(),
            seed: round_seed,
            device: cfg.device.clone(),
            threads: cfg.threads,
            ..cfg.grpo.clone()
        },
        resume: true,
        dir,
    }
}

/// Runs (or resumes) round `r` from `generator`, printing its stages.
fn run_round(
    cfg: &CycleConfig,
    r: usize,
    generator: &Path,
    sources: &(PathBuf, PathBuf),
) -> Result<RoundSummary> {
    let plan = plan(cfg, r, generator, sources);
    let o = round::run(&plan, &mut |e| match e {
        RoundEvent::RewardData => {
            println!("== round {r}: reward data from {}", generator.display())
        }
        RoundEvent::RewardModel => println!("== round {r}: reward model"),
        RoundEvent::Evaluated(ev) => println!(
            "round {r} reward model: MAE {:.4} (baseline {:.4}), AUROC {:.3} (log-likelihood {:.3})",
            ev.mae, ev.mae_baseline, ev.auroc, ev.auroc_loglik_baseline
        ),
        RoundEvent::Grpo { resuming } => println!(
            "== round {r}: GRPO{}",
            if resuming { " (resuming)" } else { "" }
        ),
    })?;
    summary(r, generator, &plan, &o)
}

/// A round's summary line. A resumed GRPO run lacks its first evaluation: it comes from the log.
fn summary(r: usize, generator: &Path, plan: &RoundPlan, o: &RoundOutcome) -> Result<RoundSummary> {
    let (first, last) = (o.grpo.evals.first(), o.grpo.evals.last());
    let logged = metrics::read_jsonl(&Path::new(&plan.grpo.out_dir).join("metrics.jsonl"))?;
    let first_eval = logged.iter().find(|v| v.get("eval").is_some());
    let pick = |k: &str| first_eval.and_then(|v| v[k].as_f64()).unwrap_or(f64::NAN);
    Ok(RoundSummary {
        round: r,
        generator: generator.display().to_string(),
        reward_samples_train: o.reward_samples_train,
        replayed_samples: o.replayed,
        rm_mae: o.eval.mae,
        rm_mae_baseline: o.eval.mae_baseline,
        rm_auroc: o.eval.auroc,
        rm_auroc_loglik_baseline: o.eval.auroc_loglik_baseline,
        policy_reward_start: pick("reward_policy"),
        policy_reward_end: last.map_or(f64::NAN, |e| e.reward_policy),
        natural_reward: first.map_or(pick("reward_natural"), |e| e.reward_natural),
        policy_val_loss_start: pick("val_loss"),
        policy_val_loss_end: last.map_or(f64::NAN, |e| e.val_loss),
        grpo_seconds: o.grpo.seconds,
    })
}

/// Writes `cycle_summary.json`, a Markdown table and a plot across rounds.
fn write_report(out: &Path, rounds: &[RoundSummary]) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(rounds)
        .map_err(|e| Error::Other(format!("cannot serialise summary: {e}")))?;
    fsutil::write_bytes_atomic(&out.join("cycle_summary.json"), &bytes)?;
    let mut md = String::from(
        "| round | RM MAE (0.5 baseline) | RM AUROC (loglik baseline) | policy reward start → end | natural | policy val loss start → end |\n|---|---|---|---|---|---|\n",
    );
    for s in rounds {
        md.push_str(&format!(
            "| {} | {:.4} ({:.4}) | {:.3} ({:.3}) | {:.4} → {:.4} | {:.4} | {:.4} → {:.4} |\n",
            s.round,
            s.rm_mae,
            s.rm_mae_baseline,
            s.rm_auroc,
            s.rm_auroc_loglik_baseline,
            s.policy_reward_start,
            s.policy_reward_end,
            s.natural_reward,
            s.policy_val_loss_start,
            s.policy_val_loss_end
        ));
    }
    fsutil::write_bytes_atomic(&out.join("cycle_summary.md"), md.as_bytes())?;
    println!("{md}");
    let series = |name: &str, f: &dyn Fn(&RoundSummary) -> f64| Series {
        name: name.into(),
        points: rounds.iter().map(|s| (s.round as f64, f(s))).collect(),
    };
    metrics::plot_svg(
        &out.join("cycle_summary.svg"),
        "reward model and policy across rounds",
        "round",
        "value",
        &[
            series("RM AUROC", &|s| s.rm_auroc),
            series("RM MAE", &|s| s.rm_mae),
            series("policy reward (end)", &|s| s.policy_reward_end),
            series("policy val loss (end)", &|s| s.policy_val_loss_end),
        ],
    )
}
