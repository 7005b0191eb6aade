//! One round of the pipeline: reward data from the current generator, a reward model trained
//! on it (optionally with earlier rounds' data replayed) and evaluated, then GRPO of the
//! generator against it. `cycle` runs rounds of it; `demo` runs one.

use crate::Result;
use crate::checkpoint::{self, Checkpoint};
use crate::grpo::{self, GrpoConfig, GrpoOutcome};
use crate::reward::dataset;
use crate::reward::prepare::{self, PrepSummary, RewardPrepOptions};
use crate::reward::{self, EvalReport, RewardDataset, RewardTrainConfig, RewardTrainOutcome};
use crate::util::device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Earlier rounds' reward data mixed into this round's reward training set.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Earlier rounds' reward dataset directories.
    pub earlier: Vec<PathBuf>,
    /// Samples replayed per sample of this round's own train split.
    pub share: f64,
    /// Seed of the draw.
    pub seed: u64,
}

/// Everything a round does. Paths: `prep.output_dir` receives the reward data, `reward.out_dir`
/// the reward model, `grpo.out_dir` the policy; `reward.data` and `grpo.reward_model` /
/// `grpo.init_from` are set by the round.
#[derive(Debug, Clone)]
pub struct RoundPlan {
    /// The round's folder (the replayed dataset goes in it).
    pub dir: PathBuf,
    /// The current generator: it makes the reward data and starts GRPO (also its reference).
    pub generator: PathBuf,
    pub prep: RewardPrepOptions,
    pub replay: Option<Replay>,
    pub reward: RewardTrainConfig,
    /// Natural and generated windows each for the reward model's AUROC, and their seed.
    pub eval_windows: usize,
    pub eval_seed: u64,
    pub grpo: GrpoConfig,
    /// Skip the stages an earlier run finished and resume an interrupted GRPO (`cycle`); when
    /// false, every stage runs afresh (`demo`).
    pub resume: bool,
}

/// A stage starting or a result, for the caller to report.
pub enum RoundEvent<'a> {
    RewardData,
    /// The reward model is about to train (not sent when an earlier run's is reused).
    RewardModel,
    Evaluated(&'a EvalReport),
    Grpo {
        resuming: bool,
    },
}

/// What a round produced.
pub struct RoundOutcome {
    /// The reward data run (None when an earlier run's was reused).
    pub prep: Option<PrepSummary>,
    pub reward_samples_train: usize,
    pub replayed: usize,
    /// The reward model's training (None when an earlier run's was reused).
    pub reward: Option<RewardTrainOutcome>,
    pub eval: EvalReport,
    pub grpo: GrpoOutcome,
    /// Seconds in reward data, reward model (with its evaluation) and GRPO.
    pub seconds: [f64; 3],
}

/// Runs (or, with `plan.resume`, resumes) a round.
pub fn run(plan: &RoundPlan, on: &mut dyn FnMut(RoundEvent)) -> Result<RoundOutcome> {
    let dev = device::select(&plan.reward.device)?;
    let t = Instant::now();
    on(RoundEvent::RewardData);
    let base = Checkpoint::open(&plan.generator)?;
    let generator = base.model(&dev)?;
    let rd = plan.prep.output_dir.clone();
    let prep = if plan.resume && dataset::is_complete(&rd) {
        None
    } else {
        Some(prepare::run(&plan.prep, &generator, true)?)
    };
    let (train_data, replayed) = match &plan.replay {
        Some(r) => {
            let mixed = plan.dir.join("reward_data_replay");
            let mut rng = ChaCha8Rng::seed_from_u64(r.seed);
            let want = |n: usize| (n as f64 * r.share).round() as usize;
            let k = dataset::replay(&rd, &r.earlier, want, &mut rng, &mixed)?;
            (mixed, k)
        }
        None => (rd.clone(), 0),
    };
    let reward_samples_train = RewardDataset::open(&rd, "train", None)?.len();
    let t_data = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let rcfg = RewardTrainConfig {
        base: plan.generator.display().to_string(),
        data: train_data.display().to_string(),
        ..plan.reward.clone()
    };
    let eval_json = Path::new(&rcfg.out_dir).join("eval.json");
    let (reward, eval) = if plan.resume && eval_json.exists() {
        (None, EvalReport::read(&eval_json)?)
    } else {
        on(RoundEvent::RewardModel);
        let (w, seed) = (plan.eval_windows, plan.eval_seed);
        let (o, e) = reward::train_and_evaluate(&rcfg, &base, &generator, w, seed, true)?;
        (Some(o), e)
    };
    on(RoundEvent::Evaluated(&eval));
    let t_reward = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let gdir = PathBuf::from(&plan.grpo.out_dir);
    let (gckpt, _) = grpo::trainer::dirs(&gdir);
    let resuming = plan.resume
        && checkpoint::dir::read_state(&gckpt)
            .ok()
            .and_then(|s| s.step)
            .is_some();
    on(RoundEvent::Grpo { resuming });
    let gcfg = GrpoConfig {
        init_from: if resuming {
            "resume".into()
        } else {
            plan.generator.display().to_string()
        },
        reward_model: Path::new(&rcfg.out_dir).join("ckpt").display().to_string(),
        ..plan.grpo.clone()
    };
    let grpo = grpo::trainer::run_from(&gcfg, Some(&generator), true)?;
    Ok(RoundOutcome {
        prep,
        reward_samples_train,
        replayed,
        reward,
        eval,
        grpo,
        seconds: [t_data, t_reward, t.elapsed().as_secs_f64()],
    })
}
