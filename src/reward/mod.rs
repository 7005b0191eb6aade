//! The reward side of the pipeline: the recipe of a sample ([`recipe`]), the reward dataset
//! format ([`dataset`]), the `prepare-reward-data` job ([`prepare`]), the reward model
//! ([`model`]) with the reference passes its ensemble members share ([`memo`]), its training
//! ([`train`]) and evaluation ([`eval`]), and best-of-n sampling against it ([`best_of`]).

pub mod best_of;
pub mod changepoint;
pub mod dataset;
pub mod eval;
pub mod features;
pub mod lexicon;
pub mod memo;
pub mod model;
pub mod prepare;
pub mod recipe;
pub mod train;

pub use dataset::RewardDataset;
pub use eval::EvalReport;
pub use model::RewardModel;
pub use train::{RewardTrainConfig, RewardTrainOutcome};

use crate::Result;
use crate::checkpoint::Checkpoint;
use crate::model::GPT;
use burn::tensor::Device;
use std::path::Path;

/// Evaluates the reward checkpoint `ckpt` on the val split of the reward dataset `data` against
/// the generator `base` that made it; the report and plots go into `out`.
pub fn evaluate_checkpoint(
    ckpt: &Path,
    base: &GPT,
    data: &Path,
    out: &Path,
    windows: usize,
    seed: u64,
    device: &Device,
) -> Result<EvalReport> {
    let mut rm = RewardModel::load(ckpt, device)?;
    rm.workers = crate::util::device::workers(0);
    let val = RewardDataset::open(data, "val", None)?;
    eval::evaluate(&rm, base, &val, windows, seed, out)
}

/// Trains a reward model (`cfg`) from the opened checkpoint `base` of the generator, then
/// evaluates its best checkpoint on `cfg.data`'s val split against that generator (`generator`,
/// its model; `windows` per class, `seed`), the report in `cfg.out_dir`.
pub fn train_and_evaluate(
    cfg: &RewardTrainConfig,
    base: &Checkpoint,
    generator: &GPT,
    windows: usize,
    seed: u64,
    show_progress: bool,
) -> Result<(RewardTrainOutcome, EvalReport)> {
    let out = train::train_from(cfg, base, show_progress)?;
    let dev = crate::util::device::select(&cfg.device)?;
    let report = evaluate_checkpoint(
        &out.checkpoint,
        generator,
        Path::new(&cfg.data),
        Path::new(&cfg.out_dir),
        windows,
        seed,
        &dev,
    )?;
    Ok((out, report))
}
