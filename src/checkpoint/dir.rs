//! The checkpoint directory format, read and written.

use super::{Checkpoint, OptimizerMeta, OptimizerState, Source, TrainState};
use super::{safetensors, weights::model_tensors};
use crate::model::{GPT, GPTConfig};
use crate::tokenizer::{CharVocab, Tokenizer};
use crate::util::fsutil;
use crate::{Error, Result};
use std::path::Path;

/// File names inside a checkpoint directory.
pub const CONFIG: &str = "config.json";
pub const MODEL: &str = "model.safetensors";
pub const OPTIMIZER: &str = "optimizer.safetensors";
pub const TRAIN_STATE: &str = "train_state.json";
pub const META: &str = "meta.pkl";
/// The generator a reward model reads its white-box features from, saved inside its checkpoint.
pub const FEATURE_MODEL: &str = "feature_model";
/// The reference language model a reward model reads its reference features from, saved inside
/// its checkpoint.
pub const REFERENCE_MODEL: &str = "reference_model";

/// The directory of reference model `i` of a reward model's reference mixture:
/// `reference_model` for the first, `reference_model_2`, `reference_model_3`, … after it.
pub fn reference_dir(i: usize) -> String {
    if i == 0 {
        REFERENCE_MODEL.to_string()
    } else {
        format!("{REFERENCE_MODEL}_{}", i + 1)
    }
}

/// Reads a checkpoint directory (repairing what a kill during a save can leave).
pub fn read(dir: &Path) -> Result<Checkpoint> {
    let config = read_config(dir)?;
    let weights = safetensors::read(&dir.join(MODEL))?;
    let state = read_state(dir)?;
    Ok(Checkpoint {
        path: dir.to_path_buf(),
        source: Source::Dir,
        config,
        weights,
        state,
        dataset: None,
    })
}

/// Reads a directory's `train_state.json` alone (empty when absent).
pub fn read_state(dir: &Path) -> Result<TrainState> {
    let p = dir.join(TRAIN_STATE);
    if !p.exists() {
        return Ok(TrainState::default());
    }
    serde_json::from_slice(&fsutil::read(&p)?)
        .map_err(|e| Error::checkpoint(&p, format!("invalid train state: {e}")))
}

/// Reads and checks `config.json`.
pub fn read_config(dir: &Path) -> Result<GPTConfig> {
    fsutil::recover(dir);
    if !dir.is_dir() {
        return Err(Error::checkpoint(
            dir,
            "not a checkpoint directory (expected config.json and model.safetensors inside)",
        ));
    }
    let p = dir.join(CONFIG);
    let cfg: GPTConfig = serde_json::from_slice(&fsutil::read(&p)?)
        .map_err(|e| Error::checkpoint(&p, format!("invalid config.json: {e}")))?;
    cfg.validate()
        .map_err(|e| Error::checkpoint(&p, e.to_string()))?;
    Ok(cfg)
}

/// A directory's tokenizer: its meta.pkl, else GPT-2 BPE.
pub fn tokenizer(dir: &Path) -> Result<Tokenizer> {
    let p = dir.join(META);
    if p.exists() {
        Ok(Tokenizer::Char(CharVocab::load(&p)?))
    } else {
        Ok(Tokenizer::Bpe)
    }
}

/// Reads `optimizer.safetensors`: `{name}.exp_avg` and `{name}.exp_avg_sq` per parameter.
pub fn read_optimizer(dir: &Path, meta: OptimizerMeta) -> Result<OptimizerState> {
    let p = dir.join(OPTIMIZER);
    let tensors = safetensors::read(&p)?;
    let mut moments = Vec::new();
    for (name, m) in &tensors {
        if let Some(base) = name.strip_suffix(".exp_avg") {
            let v = tensors
                .get(&format!("{base}.exp_avg_sq"))
                .ok_or_else(|| Error::checkpoint(&p, format!("{base}.exp_avg_sq is missing")))?;
            moments.push((base.to_string(), m.clone(), v.clone()));
        }
    }
    Ok(OptimizerState { meta, moments })
}

/// Everything a checkpoint holds besides the weights.
pub struct CheckpointParts<'a> {
    pub model: &'a GPT,
    pub optimizer: Option<OptimizerState>,
    pub train_state: TrainState,
    pub tokenizer: Option<&'a Tokenizer>,
    /// A reward model's feature models (its generator, its reference models), each saved as a
    /// checkpoint inside, in the directory named (`FEATURE_MODEL`, [`reference_dir`]).
    pub feature_models: Vec<(String, &'a GPT)>,
    /// Further files of the model (name, contents), e.g. a reward model's `lexicon.tsv`.
    pub extra: Vec<(&'static str, Vec<u8>)>,
}

impl<'a> CheckpointParts<'a> {
    /// A generator's checkpoint: its weights, tokenizer and state, and the optimizer's moments
    /// where training can resume from it (no feature models, no further files).
    pub fn generator(
        model: &'a GPT,
        tokenizer: &'a Tokenizer,
        optimizer: Option<OptimizerState>,
        train_state: TrainState,
    ) -> Self {
        Self {
            model,
            optimizer,
            train_state,
            tokenizer: Some(tokenizer),
            feature_models: Vec::new(),
            extra: Vec::new(),
        }
    }
}

/// The optimizer file's tensors, sorted by parameter name.
fn optimizer_bytes(opt: &OptimizerState) -> Result<Vec<u8>> {
    let mut moments: Vec<&(String, _, _)> = opt.moments.iter().collect();
    moments.sort_by(|a, b| a.0.cmp(&b.0));
    let mut t = Vec::new();
    for (n, m, v) in moments {
        t.push((format!("{n}.exp_avg"), m.clone()));
        t.push((format!("{n}.exp_avg_sq"), v.clone()));
    }
    safetensors::to_bytes(&t)
}

/// The bytes of a model's `config.json` and `model.safetensors`.
fn model_files(model: &GPT) -> Result<(Vec<u8>, Vec<u8>)> {
    let config = serde_json::to_vec_pretty(&model.config)
        .map_err(|e| Error::Other(format!("cannot serialise config: {e}")))?;
    Ok((config, safetensors::to_bytes(&model_tensors(model))?))
}

/// Writes a checkpoint directory atomically.
pub fn save(dir: &Path, parts: &CheckpointParts) -> Result<()> {
    let (config, weights) = model_files(parts.model)?;
    let optim = parts.optimizer.as_ref().map(optimizer_bytes).transpose()?;
    let mut state = parts.train_state.clone();
    state.optimizer = parts.optimizer.as_ref().map(|o| o.meta.clone());
    let state = serde_json::to_vec_pretty(&state)
        .map_err(|e| Error::Other(format!("cannot serialise train state: {e}")))?;
    let feature_models = parts
        .feature_models
        .iter()
        .map(|(name, m)| Ok((name.as_str(), model_files(m)?)))
        .collect::<Result<Vec<_>>>()?;
    fsutil::write_dir_atomic(dir, |tmp| {
        for (name, (config, weights)) in &feature_models {
            let sub = tmp.join(name);
            fsutil::write_bytes_atomic(&sub.join(CONFIG), config)?;
            fsutil::write_bytes_atomic(&sub.join(MODEL), weights)?;
        }
        fsutil::write_bytes_atomic(&tmp.join(CONFIG), &config)?;
        fsutil::write_bytes_atomic(&tmp.join(MODEL), &weights)?;
        if let Some(bytes) = &optim {
            fsutil::write_bytes_atomic(&tmp.join(OPTIMIZER), bytes)?;
        }
        fsutil::write_bytes_atomic(&tmp.join(TRAIN_STATE), &state)?;
        if let Some(Tokenizer::Char(v)) = parts.tokenizer {
            v.save_pickle(&tmp.join(META))?;
        }
        for (name, bytes) in &parts.extra {
            fsutil::write_bytes_atomic(&tmp.join(name), bytes)?;
        }
        Ok(())
    })
}
