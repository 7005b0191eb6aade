//! `nanoreward cycle`: R rounds of (reward data from the current generator → reward model →
//! GRPO of the generator against it, the reference reset to the current generator). Every
//! round's artefacts live in `out_dir/cycle_{r}/`; a finished round leaves `summary.json` and is
//! skipped when the command is run again, an unfinished one resumes its stages.

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::grpo::{self, GrpoConfig};
use crate::metrics::{self, Series};
use crate::reward_data::mix;
use crate::reward_dataset::{self, Metadata, RewardDataset, YStats};
use crate::reward_model::{self, RewardModel, RewardTrainConfig};
use crate::reward_prepare::{self, RewardPrepOptions};
use crate::{device, fsutil, reward_eval};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Reward-data settings of each round.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RewardDataSection {
    pub samples_per_chunk: usize,
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
    /// Natural text of the reward data: `heldout` (the first 80% of val.bin for reward
    /// training, the rest for its validation: text the generator never trained on) or
    /// `splits` (train.bin and val.bin, the seed's way; a generator that memorised its train
    /// text makes that a different task on train than on val).
    pub reward_text: String,
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
            reward_text: "heldout".into(),
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
    let data_dir = PathBuf::from(&cfg.data_dir);
    let sources = match cfg.reward_text.as_str() {
        "splits" => (data_dir.join("train.bin"), data_dir.join("val.bin")),
        "heldout" => {
            let (a, b) = (out.join("heldout_train.bin"), out.join("heldout_val.bin"));
            if a.exists() && b.exists() {
                (a, b)
            } else {
                let (a, b, _, _) = crate::data::heldout_split(&data_dir.join("val.bin"), &out)?;
                (a, b)
            }
        }
        other => {
            return Err(Error::Config(format!(
                "reward_text must be heldout or splits, got '{other}'"
            )));
        }
    };
    let mut generator = PathBuf::from(&cfg.base);
    checkpoint::load_config(&generator)?;
    let mut summaries = Vec::new();
    for r in 1..=cfg.rounds {
        let dir = round_dir(&out, r);
        let summary_path = dir.join("summary.json");
        if summary_path.exists() {
            let s: RoundSummary = serde_json::from_slice(&fsutil::read(&summary_path)?)
                .map_err(|e| Error::format(&summary_path, format!("not a round summary: {e}")))?;
            println!(
                "== round {r}: already done (delete {} to redo it)",
                dir.display()
            );
            summaries.push(s);
            generator = grpo::trainer::dirs(&dir.join("grpo")).0;
            continue;
        }
        let s = run_round(cfg, r, &dir, &generator, &data_dir, &sources)?;
        let bytes = serde_json::to_vec_pretty(&s)
            .map_err(|e| Error::Other(format!("cannot serialise summary: {e}")))?;
        fsutil::write_bytes_atomic(&summary_path, &bytes)?;
        summaries.push(s);
        generator = grpo::trainer::dirs(&dir.join("grpo")).0;
    }
    write_report(&out, &summaries)?;
    Ok(summaries)
}

fn run_round(
    cfg: &CycleConfig,
    r: usize,
    dir: &Path,
    generator: &Path,
    data_dir: &Path,
    sources: &(PathBuf, PathBuf),
) -> Result<RoundSummary> {
    let dev = device::select(&cfg.device)?;
    let round_seed = mix(cfg.seed ^ r as u64);
    // 1. Reward data from the current generator (resumable on its own).
    let rd = dir.join("reward_data");
    println!("== round {r}: reward data from {}", generator.display());
    let gen_model = checkpoint::load_model(generator, &dev)?;
    let opts = RewardPrepOptions {
        model_path: generator.to_path_buf(),
        input_mode: "binary".into(),
        data_path: None,
        train_bin: Some(sources.0.clone()),
        val_bin: Some(sources.1.clone()),
        tokenization: "auto".into(),
        meta_path: crate::train::data_meta(data_dir),
        output_dir: rd.clone(),
        train_split: 0.9,
        samples_per_chunk: cfg.reward_data.samples_per_chunk,
        temperature: cfg.reward_data.temperature,
        top_k: (cfg.reward_data.top_k > 0).then_some(cfg.reward_data.top_k),
        seed: round_seed,
        batch_size: cfg.reward_data.batch_size,
        max_blocks: (cfg.reward_data.max_blocks > 0).then_some(cfg.reward_data.max_blocks),
        num_shards: 1,
        shard_index: 0,
        threads: cfg.threads,
    };
    let done = |d: &Path| {
        ["train", "val"]
            .iter()
            .all(|s| reward_dataset::split_paths(d, s).2.exists())
    };
    if !done(&rd) {
        reward_prepare::run(&opts, &gen_model, true)?;
    }
    // 2. Replay: earlier rounds' train samples join this round's training set.
    let (train_data, replayed) = if cfg.replay_share > 0.0 && r > 1 {
        let mixed = dir.join("reward_data_replay");
        let n = replay(cfg, r, &rd, &mixed)?;
        (mixed, n)
    } else {
        (rd.clone(), 0)
    };
    let n_train = RewardDataset::open(&rd, "train", None)?.len();
    // 3. The reward model, its trunk from the current generator.
    let rm_out = dir.join("reward");
    let rm_ckpt = rm_out.join("ckpt");
    let eval_json = rm_out.join("eval.json");
    if !eval_json.exists() {
        println!("== round {r}: reward model");
        let rcfg = RewardTrainConfig {
            base: generator.display().to_string(),
            data: train_data.display().to_string(),
            out_dir: rm_out.display().to_string(),
            seed: round_seed,
            device: cfg.device.clone(),
            threads: cfg.threads,
            ..cfg.reward.clone()
        };
        reward_model::train(&rcfg, true)?;
        let rm = RewardModel::load(&rm_ckpt, &dev)?;
        let val = RewardDataset::open(&rd, "val", None)?;
        reward_eval::evaluate(
            &rm.model,
            &gen_model,
            &val,
            &rm.tokenizer,
            cfg.eval_windows,
            round_seed,
            &rm_out,
        )?;
    }
    let ev: serde_json::Value = serde_json::from_slice(&fsutil::read(&eval_json)?)
        .map_err(|e| Error::format(&eval_json, format!("not JSON: {e}")))?;
    let num = |k: &str| ev[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "round {r} reward model: MAE {:.4} (baseline {:.4}), AUROC {:.3} (log-likelihood {:.3})",
        num("mae"),
        num("mae_baseline"),
        num("auroc"),
        num("auroc_loglik_baseline")
    );
    // 4. GRPO from the current generator (also the reference), resumable.
    let gdir = dir.join("grpo");
    let (gckpt, _) = grpo::trainer::dirs(&gdir);
    let resume = checkpoint::load_train_state(&gckpt)
        .ok()
        .and_then(|s| s["step"].as_u64())
        .is_some();
    println!(
        "== round {r}: GRPO{}",
        if resume { " (resuming)" } else { "" }
    );
    let gcfg = GrpoConfig {
        init_from: if resume {
            "resume".into()
        } else {
            generator.display().to_string()
        },
        reward_model: rm_ckpt.display().to_string(),
        data_dir: data_dir.display().to_string(),
        out_dir: gdir.display().to_string(),
        seed: round_seed,
        device: cfg.device.clone(),
        threads: cfg.threads,
        ..cfg.grpo.clone()
    };
    let g = grpo::run(&gcfg, true)?;
    let first = g.evals.first().cloned();
    let last = g.evals.last().cloned();
    // A resumed run lacks its first evaluation: read it from the log.
    let logged = metrics::read_jsonl(&gdir.join("metrics.jsonl"))?;
    let first_eval = logged.iter().find(|v| v.get("eval").is_some());
    let pick = |k: &str| first_eval.and_then(|v| v[k].as_f64()).unwrap_or(f64::NAN);
    Ok(RoundSummary {
        round: r,
        generator: generator.display().to_string(),
        reward_samples_train: n_train,
        replayed_samples: replayed,
        rm_mae: num("mae"),
        rm_mae_baseline: num("mae_baseline"),
        rm_auroc: num("auroc"),
        rm_auroc_loglik_baseline: num("auroc_loglik_baseline"),
        policy_reward_start: pick("reward_policy"),
        policy_reward_end: last.as_ref().map_or(f64::NAN, |e| e.reward_policy),
        natural_reward: first
            .as_ref()
            .map_or(pick("reward_natural"), |e| e.reward_natural),
        policy_val_loss_start: pick("val_loss"),
        policy_val_loss_end: last.as_ref().map_or(f64::NAN, |e| e.val_loss),
        grpo_seconds: g.seconds,
    })
}

/// Writes `mixed` = this round's data (`current`) + a uniform draw of earlier rounds' train
/// samples (`replay_share` × this round's count); val is this round's. Returns the replayed count.
fn replay(cfg: &CycleConfig, r: usize, current: &Path, mixed: &Path) -> Result<usize> {
    let cur = RewardDataset::open(current, "train", None)?;
    let earlier: Vec<RewardDataset> = (1..r)
        .map(|q| {
            RewardDataset::open(
                &round_dir(Path::new(&cfg.out_dir), q).join("reward_data"),
                "train",
                Some(&cur.tokenization()),
            )
        })
        .collect::<Result<_>>()?;
    let pool: usize = earlier.iter().map(|d| d.len()).sum();
    let want = ((cur.len() as f64 * cfg.replay_share).round() as usize).min(pool);
    let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed ^ 0x7265_706c ^ r as u64));
    let mut xs: Vec<u8> = Vec::new();
    let mut ys: Vec<u8> = Vec::new();
    let mut labels = Vec::new();
    let mut push = |x: Vec<u32>, y: [f32; 2]| {
        xs.extend(x.iter().flat_map(|&t| (t as u16).to_le_bytes()));
        ys.extend(y.iter().flat_map(|v| v.to_le_bytes()));
        labels.push(y);
    };
    for i in 0..cur.len() {
        let (x, y) = cur.get(i);
        push(x, y);
    }
    for _ in 0..want {
        let mut k = rng.random_range(0..pool);
        let ds = earlier
            .iter()
            .find(|d| {
                let hit = k < d.len();
                if !hit {
                    k -= d.len();
                }
                hit
            })
            .ok_or_else(|| Error::Other("replay index out of range".into()))?;
        let (x, y) = ds.get(k);
        push(x, y);
    }
    fsutil::create_dir_all(mixed)?;
    let (xp, yp, mp) = reward_dataset::split_paths(mixed, "train");
    fsutil::write_bytes_atomic(&xp, &xs)?;
    fsutil::write_bytes_atomic(&yp, &ys)?;
    let mut meta: Metadata = cur.meta.clone();
    meta.num_samples = labels.len();
    meta.y_stats = YStats::of(&labels);
    meta.source = format!("{} + {want} replayed from rounds 1..{}", meta.source, r - 1);
    meta.write(&mp)?;
    let (cx, cy, cm) = reward_dataset::split_paths(current, "val");
    let (mx, my, mm) = reward_dataset::split_paths(mixed, "val");
    for (from, to) in [(cx, mx), (cy, my), (cm, mm)] {
        fsutil::write_bytes_atomic(&to, &fsutil::read(&from)?)?;
    }
    Ok(want)
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
