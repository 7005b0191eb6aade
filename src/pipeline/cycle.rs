//! `nanoreward cycle`: R rounds of (reward data from the current generator → reward model →
//! GRPO of the generator against it, the reference reset to the current generator). Every
//! round's artefacts live in `out_dir/cycle_{r}/`; a finished round leaves `summary.json` and is
//! skipped when the command is run again, an unfinished one resumes its stages.

use super::round::{self, Replay, RoundEvent, RoundOutcome, RoundPlan};
use super::select::{self, Selection};
use crate::checkpoint;
use crate::data;
use crate::grpo::{self, GrpoConfig};
use crate::judge::{self, JudgeConfig, JudgeReport, JudgeRow};
use crate::metrics::{self, Series};
use crate::reward::RewardTrainConfig;
use crate::reward::prepare::{InputMode, RewardPrepOptions};
use crate::util::fsutil;
use crate::util::lock::DirLock;
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
        /// 80/20 of data_dir/reward.bin (`prepare --reward_split`): text the generator never
        /// trained on, and val.bin stays free for the judge.
        Reward = "reward",
    }
}

/// The judge of every round (see `nanoreward judge`): round 0 judges the base model at
/// `base_temperatures` (its frontier), every round its policy at GRPO's temperature.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JudgeSection {
    /// Judge the rounds (false: no judge).
    pub enabled: bool,
    pub base_temperatures: Vec<f64>,
    pub windows: usize,
    pub window_len: usize,
    /// The judge trunk (empty: trained once, in out_dir/judge_base/judge_trunk).
    pub trunk: String,
    pub trunk_iters: usize,
    #[serde(deserialize_with = "crate::config::seed")]
    pub trunk_seed: u64,
    pub clusters: usize,
    /// Also judge best-of-`best_of` sampling of the round's starting generator (the text its
    /// reward model was trained to tell from natural text), picked by that reward model at
    /// `best_of_temperature` (see `judge --best_of`); 1 = not judged.
    pub best_of: usize,
    pub best_of_temperature: f64,
    /// Fit the pick temperature instead (see `judge --best_of_calibration`) on the reward data's
    /// validation text, which the round's reward model never trained on (needs
    /// `reward_text = "reward"`, so that the judge's natural text is other text).
    pub best_of_calibrate: bool,
    /// Early stopping on a validation judge (see `pipeline::select`): after the rounds, the
    /// base at `select_temperatures` (empty: `base_temperatures`), every round's policy and the
    /// interpolated policy (`interpolate_round`) are judged again under these judge seeds, and
    /// the candidate with the highest MAUVE gain among those at least `select_margin` below the
    /// base's C2ST AUROC is kept (out_dir/selection.json). Empty: no selection; the last round is
    /// the cycle's policy.
    pub select_seeds: Vec<u64>,
    pub select_temperatures: Vec<f64>,
    pub select_margin: f64,
}

impl JudgeSection {
    /// Rejects best-of settings that cannot run, before any work.
    fn check(&self, reward_text: RewardText) -> Result<()> {
        if self.best_of == 0 {
            return Err(Error::Config(
                "[judge] best_of = 0: it must be ≥ 1 (1 = no best-of judgement)".into(),
            ));
        }
        if self.best_of_calibrate && reward_text != RewardText::Reward {
            return Err(Error::Config(
                "[judge] best_of_calibrate fits on the reward data's validation text, which is the judge's natural text unless reward_text = \"reward\": set it (prepare --reward-split) or leave best_of_calibrate off".into(),
            ));
        }
        crate::reward::best_of::Pick::from_temperature(self.best_of_temperature)?;
        self.check_selection()
    }

    /// Rejects selection settings that cannot run.
    fn check_selection(&self) -> Result<()> {
        if !(self.select_margin.is_finite() && self.select_margin >= 0.0) {
            return Err(Error::Config(format!(
                "[judge] select_margin must be a number ≥ 0 (0.05: 0.05 below the base's C2ST AUROC), got {}",
                self.select_margin
            )));
        }
        let t = &self.select_temperatures;
        if t.iter().any(|t| !(t.is_finite() && *t > 0.0)) {
            return Err(Error::Config(format!(
                "[judge] select_temperatures {t:?} must be numbers > 0 (empty: base_temperatures)"
            )));
        }
        if self.select_seeds.is_empty() {
            return Ok(());
        }
        if !self.enabled {
            return Err(Error::Config(
                "[judge] select_seeds needs the judge: set [judge] enabled = true or leave select_seeds empty".into(),
            ));
        }
        let mut seen = self.select_seeds.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != self.select_seeds.len() {
            return Err(Error::Config(format!(
                "[judge] select_seeds {:?} repeats a seed: give distinct judge seeds",
                self.select_seeds
            )));
        }
        if self.selection_temperatures().is_empty() {
            return Err(Error::Config(
                "[judge] the selection needs base temperatures: set select_temperatures or base_temperatures".into(),
            ));
        }
        Ok(())
    }

    /// The base temperatures the selection judges.
    fn selection_temperatures(&self) -> &[f64] {
        if self.select_temperatures.is_empty() {
            &self.base_temperatures
        } else {
            &self.select_temperatures
        }
    }
}

impl Default for JudgeSection {
    fn default() -> Self {
        let j = JudgeConfig::default();
        Self {
            enabled: true,
            base_temperatures: vec![0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2],
            windows: j.windows,
            window_len: j.window_len,
            trunk: String::new(),
            trunk_iters: j.trunk_iters,
            trunk_seed: j.trunk_seed,
            clusters: j.clusters,
            best_of: j.best_of,
            best_of_temperature: j.best_of_temperature,
            best_of_calibrate: false,
            select_seeds: Vec::new(),
            select_temperatures: Vec::new(),
            select_margin: 0.05,
        }
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
    /// Natural text of the reward data: `heldout`, `splits` or `reward`.
    pub reward_text: RewardText,
    /// GRPO's reward is the ensemble of this round's reward model and all earlier rounds' (the
    /// policy must fool every past detector; `[grpo] ensemble_agg`).
    pub ensemble: bool,
    /// Earlier rounds' train samples added to a round's reward training set, as a share of
    /// that round's own train samples (0 = none).
    pub replay_share: f64,
    /// GRPO steps of each round, one entry per round (empty: `[grpo] max_steps` every round),
    /// e.g. a long first round from the base and shorter ones after.
    pub round_steps: Vec<usize>,
    /// After the rounds, also the policy whose weights are round `interpolate_round`'s moved
    /// `interpolate_alpha` of the way to the last round's (`nanoreward interpolate`), in
    /// out_dir/interpolated/ckpt, judged like a round and a candidate of the selection (0:
    /// none). Round 1 keeps more MAUVE than the last round, which lowers C2ST more
    /// (BENCHMARKS.md, issue 14).
    pub interpolate_round: usize,
    pub interpolate_alpha: f64,
    /// Natural and generated windows each for the reward model's AUROC.
    pub eval_windows: usize,
    #[serde(deserialize_with = "crate::config::seed")]
    pub seed: u64,
    pub device: String,
    pub threads: usize,
    /// TensorBoard events of every round's reward model and GRPO and of the summaries, under
    /// this directory (empty: none).
    pub tensorboard: String,
    pub reward_data: RewardDataSection,
    pub reward: RewardTrainConfig,
    pub grpo: GrpoConfig,
    pub judge: JudgeSection,
}

impl Default for CycleConfig {
    fn default() -> Self {
        Self {
            out_dir: "out-cycle".into(),
            base: "out/ckpt".into(),
            data_dir: "data/shakespeare_char".into(),
            rounds: 3,
            reward_text: RewardText::Heldout,
            ensemble: false,
            replay_share: 0.0,
            round_steps: Vec::new(),
            interpolate_round: 0,
            interpolate_alpha: 0.5,
            eval_windows: 128,
            seed: 1337,
            device: "auto".into(),
            threads: 0,
            tensorboard: String::new(),
            reward_data: RewardDataSection::default(),
            reward: RewardTrainConfig::default(),
            grpo: GrpoConfig::default(),
            judge: JudgeSection::default(),
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
    /// The judge's verdict on the round's policy (NaN without a judge): C2ST AUROC, MAUVE, word
    /// validity, and this round's reward model's AUROC on fresh policy samples.
    #[serde(default = "nan", with = "crate::util::nan_as_null")]
    pub c2st_auroc: f64,
    #[serde(default = "nan", with = "crate::util::nan_as_null")]
    pub mauve: f64,
    /// MAUVE's bootstrap 95% interval (absent in summaries written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mauve_ci95: Option<[f64; 2]>,
    #[serde(default = "nan", with = "crate::util::nan_as_null")]
    pub word_validity: f64,
    #[serde(default = "nan", with = "crate::util::nan_as_null")]
    pub rm_auroc_policy: f64,
    /// The judge's verdict on best-of-n sampling of the round's starting generator by the
    /// round's reward model (NaN unless `[judge] best_of` > 1).
    #[serde(default = "nan", with = "crate::util::nan_as_null")]
    pub best_of_c2st_auroc: f64,
    #[serde(default = "nan", with = "crate::util::nan_as_null")]
    pub best_of_mauve: f64,
    #[serde(default = "nan", with = "crate::util::nan_as_null")]
    pub best_of_word_validity: f64,
    /// The pick temperature τ of the best-of judgement (the calibrated one with
    /// `best_of_calibrate`).
    #[serde(default = "nan", with = "crate::util::nan_as_null")]
    pub best_of_pick_temperature: f64,
}

fn nan() -> f64 {
    f64::NAN
}

/// A round's folder.
pub fn round_dir(out: &Path, r: usize) -> PathBuf {
    out.join(format!("cycle_{r}"))
}

/// Round `r`'s policy checkpoint (its GRPO run's).
fn round_policy(out: &Path, r: usize) -> PathBuf {
    grpo::trainer::dirs(&round_dir(out, r).join("grpo")).0
}

/// The token files the reward data's natural text comes from.
fn reward_sources(cfg: &CycleConfig, out: &Path) -> Result<(PathBuf, PathBuf)> {
    let data_dir = PathBuf::from(&cfg.data_dir);
    match cfg.reward_text {
        RewardText::Splits => Ok((data_dir.join("train.bin"), data_dir.join("val.bin"))),
        RewardText::Heldout | RewardText::Reward => {
            let (a, b) = (out.join("heldout_train.bin"), out.join("heldout_val.bin"));
            if a.exists() && b.exists() {
                return Ok((a, b));
            }
            let src = if cfg.reward_text == RewardText::Reward {
                data_dir.join("reward.bin")
            } else {
                data_dir.join("val.bin")
            };
            let (a, b, _, _) = data::heldout_split(&src, out)?;
            Ok((a, b))
        }
    }
}

/// A stop inside round `r` resumes with the cycle's own command, not the stage's.
fn interrupted(e: Error, r: usize) -> Error {
    match e {
        Error::Interrupted(m) => Error::Interrupted(format!(
            "stopped in round {r} ({}); rerun the same cycle command to resume: finished rounds are kept and round {r} continues",
            m.split(';').next().unwrap_or(&m)
        )),
        e => e,
    }
}

/// The cycle's own settings: at least one round, `replay_share` in 0..=10, and `round_steps`
/// none or one positive step count per round.
fn check_settings(cfg: &CycleConfig) -> Result<()> {
    if cfg.rounds == 0 {
        return Err(Error::Config("rounds must be at least 1".into()));
    }
    if !(0.0..=10.0).contains(&cfg.replay_share) {
        return Err(Error::Config(format!(
            "replay_share must be between 0 and 10, got {}",
            cfg.replay_share
        )));
    }
    let n = cfg.round_steps.len();
    if n > 0 && n != cfg.rounds {
        return Err(Error::Config(format!(
            "round_steps has {n} entries for {} rounds: give one GRPO step count per round, or none to use [grpo] max_steps in every round",
            cfg.rounds
        )));
    }
    if cfg.round_steps.contains(&0) {
        return Err(Error::Config(
            "round_steps must be at least 1 in every round".into(),
        ));
    }
    if cfg.interpolate_round > 0 && cfg.interpolate_round >= cfg.rounds {
        return Err(Error::Config(format!(
            "interpolate_round is {} with {} rounds: name a round before the last, or 0 for none",
            cfg.interpolate_round, cfg.rounds
        )));
    }
    if !cfg.interpolate_alpha.is_finite() {
        return Err(Error::Config("interpolate_alpha must be a number".into()));
    }
    Ok(())
}

/// Runs (or resumes) the cycle; prints progress. Returns every round's summary.
pub fn run(cfg: &CycleConfig) -> Result<Vec<RoundSummary>> {
    check_settings(cfg)?;
    let mut generator = PathBuf::from(&cfg.base);
    // Fail before any work on a path that is no checkpoint or no token file.
    checkpoint::ensure_exists(&generator)?;
    cfg.reward.check_inputs()?;
    cfg.judge.check(cfg.reward_text)?;
    for p in [&cfg.judge.trunk, &cfg.grpo.teacher] {
        if !p.is_empty() {
            checkpoint::ensure_exists(Path::new(p))?;
        }
    }
    let out = PathBuf::from(&cfg.out_dir);
    let _lock = DirLock::acquire(&out)?;
    fsutil::create_dir_all(&out)?;
    let sources = reward_sources(cfg, &out)?;
    let base_judge = judge_base(cfg, &out, &generator, &sources)?;
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
            let mut s = run_round(cfg, r, &generator, &sources).map_err(|e| interrupted(e, r))?;
            judge_round(cfg, r, &mut s, &sources).map_err(|e| interrupted(e, r))?;
            judge_best_of(cfg, r, &mut s, &sources).map_err(|e| interrupted(e, r))?;
            let bytes = serde_json::to_vec_pretty(&s)
                .map_err(|e| Error::Other(format!("cannot serialise summary: {e}")))?;
            fsutil::write_bytes_atomic(&summary_path, &bytes)?;
            s
        };
        summaries.push(s);
        generator = round_policy(&out, r);
    }
    let mixed = interpolated(cfg, &out, &sources)?;
    let selection = select_round(cfg, &out, &sources, mixed.as_ref())?;
    write_report(
        &out,
        &summaries,
        base_judge.as_ref(),
        mixed.as_ref(),
        selection.as_ref(),
    )?;
    if !cfg.tensorboard.is_empty() {
        let mut tb =
            crate::tensorboard::EventWriter::create(&Path::new(&cfg.tensorboard).join("cycle"))?;
        for s in &summaries {
            let v = serde_json::to_value(s).map_err(|e| Error::Other(e.to_string()))?;
            for (k, x) in v.as_object().into_iter().flatten() {
                if let Some(x) = x.as_f64().filter(|_| k != "round") {
                    tb.scalar(&format!("cycle/{k}"), s.round as u64, x)?;
                }
            }
        }
    }
    Ok(summaries)
}

/// Where a cycle in `out` keeps its interpolated policy (`interpolate_round`).
fn interpolated_policy(out: &Path) -> PathBuf {
    out.join("interpolated").join("ckpt")
}

/// The interpolated policy (`interpolate_round`), written once and judged at GRPO's
/// temperature like a round (reused when done): its label and judgement (None without a judge).
fn interpolated(
    cfg: &CycleConfig,
    out: &Path,
    sources: &(PathBuf, PathBuf),
) -> Result<Option<(String, JudgeRow)>> {
    let (from, to) = (cfg.interpolate_round, cfg.rounds);
    if from == 0 {
        return Ok(None);
    }
    let label = format!("R{from} + {}·(R{to} − R{from})", cfg.interpolate_alpha);
    let ckpt = interpolated_policy(out);
    let dir = out.join("interpolated");
    if !ckpt.join(checkpoint::CONFIG).exists() {
        println!("== interpolated: {label}, into {}", ckpt.display());
        checkpoint::interpolate::interpolate(
            &round_policy(out, from),
            &round_policy(out, to),
            cfg.interpolate_alpha,
            &ckpt,
        )?;
    }
    if !cfg.judge.enabled {
        return Ok(None);
    }
    let report = judge::run_or_reuse(&JudgeConfig {
        generators: vec![ckpt.display().to_string()],
        temperatures: vec![cfg.grpo.temperature],
        out_dir: dir.join("judge").display().to_string(),
        natural_mauve: false,
        ..judge_config(cfg, sources)
    })?;
    let row = report.rows.into_iter().next();
    if let Some(r) = &row {
        println!("interpolated judge ({label}): {}", r.verdict());
    }
    Ok(row.map(|r| (label, r)))
}

/// Early stopping on the validation judge seeds among the rounds' policies and the
/// interpolated policy `mixed` (none without `[judge] select_seeds`; with the judge off,
/// `JudgeSection::check` has already refused them).
fn select_round(
    cfg: &CycleConfig,
    out: &Path,
    sources: &(PathBuf, PathBuf),
    mixed: Option<&(String, JudgeRow)>,
) -> Result<Option<Selection>> {
    let j = &cfg.judge;
    if j.select_seeds.is_empty() {
        return Ok(None);
    }
    let policies: Vec<PathBuf> = (1..=cfg.rounds).map(|r| round_policy(out, r)).collect();
    let mix_ckpt = interpolated_policy(out);
    let plan = select::Plan {
        seeds: &j.select_seeds,
        temperatures: j.selection_temperatures(),
        margin: j.select_margin,
        base: Path::new(&cfg.base),
        policies: &policies,
        interpolated: mixed.map(|(label, _)| (label.as_str(), mix_ckpt.as_path())),
        policy_temperature: cfg.grpo.temperature,
        out,
        judge: judge_config(cfg, sources),
    };
    select::run(&plan).map(Some)
}

/// The natural text the judge tests on: text neither the generators nor the reward models
/// trained on (val.bin when the reward data comes from reward.bin, else the reward data's own
/// validation text).
fn judge_natural(cfg: &CycleConfig, sources: &(PathBuf, PathBuf)) -> PathBuf {
    match cfg.reward_text {
        RewardText::Reward => PathBuf::from(&cfg.data_dir).join("val.bin"),
        _ => sources.1.clone(),
    }
}

/// The judge settings of the cycle (generators, temperatures, reward models and out_dir to
/// be set).
fn judge_config(cfg: &CycleConfig, sources: &(PathBuf, PathBuf)) -> JudgeConfig {
    let j = &cfg.judge;
    let out = PathBuf::from(&cfg.out_dir);
    let trunk = if j.trunk.is_empty() {
        out.join("judge_base/judge_trunk/ckpt")
            .display()
            .to_string()
    } else {
        j.trunk.clone()
    };
    JudgeConfig {
        data_dir: cfg.data_dir.clone(),
        natural: judge_natural(cfg, sources).display().to_string(),
        windows: j.windows,
        window_len: j.window_len,
        trunk,
        trunk_iters: j.trunk_iters,
        trunk_seed: j.trunk_seed,
        clusters: j.clusters,
        seed: mix(cfg.seed ^ 0x006a_7564_6765),
        device: cfg.device.clone(),
        threads: cfg.threads,
        ..Default::default()
    }
}

/// Round 0: the base model judged across `base_temperatures` (its temperature frontier), in
/// out_dir/judge_base (reused when done); trains the judge trunk when none is given.
fn judge_base(
    cfg: &CycleConfig,
    out: &Path,
    base: &Path,
    sources: &(PathBuf, PathBuf),
) -> Result<Option<JudgeReport>> {
    if !cfg.judge.enabled {
        return Ok(None);
    }
    let dir = out.join("judge_base");
    if dir.join("judge.json").exists() {
        println!(
            "== round 0: the judge on the base model: already done (delete {} to redo it)",
            dir.display()
        );
    } else {
        println!("== round 0: the judge on the base model across temperatures");
    }
    let mut jc = judge_config(cfg, sources);
    if cfg.judge.trunk.is_empty() {
        jc.trunk = String::new();
    }
    let report = judge::run_or_reuse(&JudgeConfig {
        generators: vec![base.display().to_string()],
        temperatures: cfg.judge.base_temperatures.clone(),
        out_dir: dir.display().to_string(),
        ..jc
    })?;
    Ok(Some(report))
}

/// The judge's verdict on round `r`'s policy (at GRPO's temperature), with the round's reward
/// model scored on the same fresh samples, into the round's summary.
fn judge_round(
    cfg: &CycleConfig,
    r: usize,
    s: &mut RoundSummary,
    sources: &(PathBuf, PathBuf),
) -> Result<()> {
    if !cfg.judge.enabled {
        return Ok(());
    }
    let dir = round_dir(Path::new(&cfg.out_dir), r);
    println!("== round {r}: the judge on the policy");
    let report = judge::run(&JudgeConfig {
        generators: vec![
            round_policy(Path::new(&cfg.out_dir), r)
                .display()
                .to_string(),
        ],
        temperatures: vec![cfg.grpo.temperature],
        reward_models: vec![dir.join("reward/ckpt").display().to_string()],
        out_dir: dir.join("judge").display().to_string(),
        // The reach depends on the judge alone, the same in every round: round 0 records it.
        natural_mauve: false,
        ..judge_config(cfg, sources)
    })?;
    if let Some(row) = report.rows.first() {
        s.c2st_auroc = row.c2st.auroc;
        s.mauve = row.mauve;
        s.mauve_ci95 = row.mauve_ci95;
        s.word_validity = row.word_validity;
        s.rm_auroc_policy = row.reward_model_auroc.first().copied().unwrap_or(f64::NAN);
        println!(
            "round {r} judge: {}; the round's reward model on the policy's samples: AUROC {:.3}",
            row.verdict(),
            s.rm_auroc_policy
        );
    }
    Ok(())
}

/// Best-of-n sampling of round `r`'s starting generator, picked by the round's reward model,
/// judged at GRPO's temperature (in the round's `judge_best_of`), into the round's summary.
fn judge_best_of(
    cfg: &CycleConfig,
    r: usize,
    s: &mut RoundSummary,
    sources: &(PathBuf, PathBuf),
) -> Result<()> {
    let j = &cfg.judge;
    if !j.enabled || j.best_of <= 1 {
        return Ok(());
    }
    let dir = round_dir(Path::new(&cfg.out_dir), r);
    println!(
        "== round {r}: the judge on best-of-{} sampling of {} by the round's reward model",
        j.best_of, s.generator
    );
    let report = judge::run(&JudgeConfig {
        generators: vec![s.generator.clone()],
        temperatures: vec![cfg.grpo.temperature],
        best_of: j.best_of,
        best_of_model: dir.join("reward/ckpt").display().to_string(),
        best_of_temperature: j.best_of_temperature,
        best_of_calibration: if j.best_of_calibrate {
            sources.1.display().to_string()
        } else {
            String::new()
        },
        out_dir: dir.join("judge_best_of").display().to_string(),
        natural_mauve: false,
        ..judge_config(cfg, sources)
    })?;
    if let Some(row) = report.rows.first() {
        s.best_of_c2st_auroc = row.c2st.auroc;
        s.best_of_mauve = row.mauve;
        s.best_of_word_validity = row.word_validity;
        s.best_of_pick_temperature = row
            .best_of_calibration
            .map_or(j.best_of_temperature, |c| c.temperature());
        println!(
            "round {r} judge, best-of-{} (pick temperature {:.3}{}): {}",
            j.best_of,
            s.best_of_pick_temperature,
            if j.best_of_calibrate {
                ", calibrated"
            } else {
                ""
            },
            row.verdict()
        );
    }
    Ok(())
}

/// The lexicon's extra natural text: the given file, else the generator's train split (words
/// cannot be memorised the way likelihoods are).
pub fn lexicon_text(r: &RewardTrainConfig, data_dir: &Path) -> String {
    if r.lexicon_text.is_empty() && r.lexicon {
        data_dir.join("train.bin").display().to_string()
    } else {
        r.lexicon_text.clone()
    }
}

/// The TensorBoard directory of stage `stage` of round `r` (empty without one).
fn tb_dir(cfg: &CycleConfig, r: usize, stage: &str) -> String {
    if cfg.tensorboard.is_empty() {
        return String::new();
    }
    Path::new(&cfg.tensorboard)
        .join(format!("cycle_{r}/{stage}"))
        .display()
        .to_string()
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
        top_k: crate::sampling::top_k_or_all(rd.top_k),
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
            tensorboard: tb_dir(cfg, r, "reward"),
            lexicon_text: lexicon_text(&cfg.reward, &data_dir),
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
            tensorboard: tb_dir(cfg, r, "grpo"),
            ensemble: if cfg.ensemble {
                (1..r)
                    .map(|q| {
                        let d = round_dir(Path::new(&cfg.out_dir), q);
                        d.join("reward/ckpt").display().to_string()
                    })
                    .collect()
            } else {
                Vec::new()
            },
            max_steps: cfg
                .round_steps
                .get(r - 1)
                .copied()
                .unwrap_or(cfg.grpo.max_steps),
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
        c2st_auroc: f64::NAN,
        mauve: f64::NAN,
        mauve_ci95: None,
        word_validity: f64::NAN,
        rm_auroc_policy: f64::NAN,
        best_of_c2st_auroc: f64::NAN,
        best_of_mauve: f64::NAN,
        best_of_word_validity: f64::NAN,
        best_of_pick_temperature: f64::NAN,
    })
}

/// The base model's best point over its temperatures: the lowest C2ST AUROC and the highest
/// MAUVE (each at its own temperature), with those temperatures.
pub fn base_frontier(r: &JudgeReport) -> ((f64, f64), (f64, f64)) {
    let lowest = r
        .rows
        .iter()
        .min_by(|a, b| a.c2st.auroc.total_cmp(&b.c2st.auroc))
        .map_or((f64::NAN, f64::NAN), |x| (x.c2st.auroc, x.temperature));
    let best = r
        .rows
        .iter()
        .max_by(|a, b| a.mauve.total_cmp(&b.mauve))
        .map_or((f64::NAN, f64::NAN), |x| (x.mauve, x.temperature));
    (lowest, best)
}

/// The Markdown table across rounds (round 0: the base model's best point over temperatures).
fn summary_table(
    rounds: &[RoundSummary],
    base: Option<&JudgeReport>,
    mixed: Option<&(String, JudgeRow)>,
) -> String {
    let mut md = String::from(
        "| round | RM MAE (0.5 baseline) | RM AUROC (loglik baseline) | RM AUROC on the policy | policy reward start → end | natural | policy val loss start → end | C2ST AUROC | MAUVE | word validity | best-of C2ST AUROC | best-of MAUVE |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    if let Some(b) = base {
        let ((c, tc), (m, tm)) = base_frontier(b);
        let at_one = b.rows.iter().find(|r| (r.temperature - 1.0).abs() < 1e-9);
        let best = b.rows.iter().find(|r| r.mauve == m);
        let m = best.map_or(format!("{m:.3}"), |r| r.mauve_text());
        md.push_str(&format!(
            "| 0 (base) | | | | | | {} | {c:.3} (best, T={tc}) | {m} (best, T={tm}) | {} | | |\n",
            at_one.map_or(String::new(), |r| format!("{:.4}", r.val_loss)),
            at_one.map_or(String::new(), |r| format!("{:.3} (T=1)", r.word_validity)),
        ));
    }
    for s in rounds {
        md.push_str(&format!(
            "| {} | {:.4} ({:.4}) | {:.3} ({:.3}) | {:.3} | {:.4} → {:.4} | {:.4} | {:.4} → {:.4} | {:.3} | {} | {:.3} | {:.3} | {:.3} |\n",
            s.round,
            s.rm_mae,
            s.rm_mae_baseline,
            s.rm_auroc,
            s.rm_auroc_loglik_baseline,
            s.rm_auroc_policy,
            s.policy_reward_start,
            s.policy_reward_end,
            s.natural_reward,
            s.policy_val_loss_start,
            s.policy_val_loss_end,
            s.c2st_auroc,
            judge::with_interval(s.mauve, s.mauve_ci95),
            s.word_validity,
            s.best_of_c2st_auroc,
            s.best_of_mauve
        ));
    }
    if let Some((label, r)) = mixed {
        md.push_str(&format!(
            "| {label} | | | | | | {:.4} | {:.3} | {} | {:.3} | | |\n",
            r.val_loss,
            r.c2st.auroc,
            r.mauve_text(),
            r.word_validity
        ));
    }
    if let Some(m) = base.and_then(|b| b.natural_mauve.as_ref()) {
        md.push_str(&format!(
            "\nMAUVE's reach on this judge (natural text in a generator's place): {}\n",
            m.text()
        ));
    }
    md
}

/// Writes `cycle_summary.json`, a Markdown table (with the selection's, when there is one) and a
/// plot across rounds.
fn write_report(
    out: &Path,
    rounds: &[RoundSummary],
    base: Option<&JudgeReport>,
    mixed: Option<&(String, JudgeRow)>,
    selection: Option<&Selection>,
) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(rounds)
        .map_err(|e| Error::Other(format!("cannot serialise summary: {e}")))?;
    fsutil::write_bytes_atomic(&out.join("cycle_summary.json"), &bytes)?;
    let mut md = summary_table(rounds, base, mixed);
    if let Some(s) = selection {
        md.push('\n');
        md.push_str(&s.table());
    }
    fsutil::write_bytes_atomic(&out.join("cycle_summary.md"), md.as_bytes())?;
    println!("{md}");
    let series = |name: &str, f: &dyn Fn(&RoundSummary) -> f64| Series {
        name: name.into(),
        points: rounds.iter().map(|s| (s.round as f64, f(s))).collect(),
    };
    metrics::plot_panels(
        &out.join("cycle_summary.svg"),
        "reward model, policy and judge across rounds",
        "round",
        &[
            (
                "AUROC",
                vec![
                    series("RM AUROC (its own eval)", &|s| s.rm_auroc),
                    series("RM AUROC on the policy", &|s| s.rm_auroc_policy),
                    series("judge C2ST AUROC", &|s| s.c2st_auroc),
                    series("judge C2ST AUROC, best-of", &|s| s.best_of_c2st_auroc),
                ],
            ),
            (
                "P(natural) / MAUVE / share",
                vec![
                    series("policy reward (end)", &|s| s.policy_reward_end),
                    series("MAUVE", &|s| s.mauve),
                    series("MAUVE, best-of", &|s| s.best_of_mauve),
                    series("word validity", &|s| s.word_validity),
                ],
            ),
            (
                "val loss",
                vec![series("policy val loss (end)", &|s| s.policy_val_loss_end)],
            ),
        ],
    )
}
