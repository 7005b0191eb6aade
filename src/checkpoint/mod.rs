//! Checkpoints. [`Checkpoint::open`] reads any checkpoint path once — a nanoreward directory, a
//! nanoGPT `ckpt.pt`, or a training `out_dir` holding `ckpt/` — into one value that gives the
//! model, the tokenizer, the job state and the optimizer state; [`save`] writes a directory.
//!
//! The directory format ([`dir`]): `config.json` (nanoGPT's `model_args` plus `mode`),
//! `model.safetensors` (nanoGPT `state_dict` names, Linear weights `[out, in]`), optionally
//! `optimizer.safetensors` (AdamW moments), `train_state.json` and the tokenizer's `meta.pkl`,
//! written as a whole into a temporary directory and renamed into place. Other formats: nanoGPT's
//! `.pt` ([`nanogpt`], read and written) and Hugging Face GPT-2 directories ([`hf`], read).

use crate::model::{GPT, GPTConfig};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub mod dir;
pub mod hf;
pub mod interpolate;
pub mod nanogpt;
pub mod safetensors;
pub mod weights;

pub use dir::{
    CONFIG, CheckpointParts, FEATURE_MODEL, META, MODEL, OPTIMIZER, REFERENCE_MODEL, TRAIN_STATE,
    reference_dir, save,
};
pub use weights::{HostTensor, LoadReport, load_weights, model_tensors};

/// The job state saved beside the weights (`train_state.json`). Each job fills its own fields:
/// `train` the iteration, best val loss and batch RNG position; `train-reward` the epoch and its
/// base; `grpo` the step; every job its config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainState {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iter_num: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_val_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rng_seed: Option<u64>,
    /// The batch RNG's word position (a u128, as a decimal string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rng_word_pos: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// The generator a reward model was trained from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
    /// The configuration of the job that wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// Set by [`save`] when an optimizer is saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerMeta>,
}

impl TrainState {
    /// The job's configuration as `T`, when recorded and readable.
    pub fn config_as<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_value(self.config.clone()?).ok()
    }
}

/// The optimizer's step and hyper-parameters, as recorded in `train_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerMeta {
    pub step: u64,
    pub config: serde_json::Value,
}

/// An optimizer's state in checkpoint form: its meta and, per parameter name, the first and
/// second moment estimates.
#[derive(Debug, Clone)]
pub struct OptimizerState {
    pub meta: OptimizerMeta,
    pub moments: Vec<(String, HostTensor, HostTensor)>,
}

/// Where a checkpoint came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A nanoreward checkpoint directory.
    Dir,
    /// A nanoGPT `torch.save` file.
    NanoGpt,
}

/// A checkpoint read once: config, weights (checkpoint layout), job state and where to find the
/// tokenizer.
pub struct Checkpoint {
    pub path: PathBuf,
    pub source: Source,
    pub config: GPTConfig,
    pub weights: HashMap<String, HostTensor>,
    pub state: TrainState,
    /// `config['dataset']` of a nanoGPT run (where its meta.pkl may live).
    dataset: Option<String>,
}

/// The checkpoint directory of a training `out_dir` (`out_dir/ckpt`) when `p` is such a folder
/// rather than a checkpoint itself; `p` otherwise.
pub fn resolve(p: &Path) -> PathBuf {
    let inner = p.join("ckpt");
    if !p.join(CONFIG).exists() && inner.join(CONFIG).exists() {
        inner
    } else {
        p.to_path_buf()
    }
}

/// Whether `path` is a PyTorch checkpoint file (`.pt` / `.pth`) rather than a directory.
pub fn is_torch_file(path: &Path) -> bool {
    path.is_file()
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pt" | "pth")
        )
}

/// The model configuration of the checkpoint at `path`, reading as little as possible.
pub fn read_config(path: &Path) -> Result<GPTConfig> {
    let path = resolve(path);
    if is_torch_file(&path) {
        return Ok(nanogpt::read(&path)?.config);
    }
    dir::read_config(&path)
}

/// Fails unless `path` holds a checkpoint (a `.pt` file, or a directory with its config),
/// reading as little as possible: the check a long run makes on its inputs before any work.
pub fn ensure_exists(path: &Path) -> Result<()> {
    if is_torch_file(path) {
        return Ok(());
    }
    read_config(path).map(|_| ())
}

/// The model of the checkpoint at `path` on `device` (see [`Checkpoint::open`]).
pub fn load_model(path: &Path, device: &Device) -> Result<GPT> {
    Checkpoint::open(path)?.model(device)
}

impl Checkpoint {
    /// Reads the checkpoint at `path` (a directory, a training out_dir holding `ckpt/`, or a
    /// nanoGPT `.pt`).
    pub fn open(path: &Path) -> Result<Self> {
        let path = resolve(path);
        if is_torch_file(&path) {
            return nanogpt::read(&path);
        }
        dir::read(&path)
    }

    /// Builds the model on `device` (inference: no autodiff).
    pub fn model(&self, device: &Device) -> Result<GPT> {
        match self.source {
            Source::NanoGpt => Ok(nanogpt::model(self, device)?.0),
            Source::Dir => {
                let mut model = GPT::new(&self.config, device, 0)?;
                load_weights(&mut model, &self.weights, &self.weights_path(), |_| false)?;
                Ok(model)
            }
        }
    }

    /// The file the weights came from (for messages).
    pub fn weights_path(&self) -> PathBuf {
        match self.source {
            Source::Dir => self.path.join(MODEL),
            Source::NanoGpt => self.path.clone(),
        }
    }

    /// The tokenizer: a directory's `meta.pkl` when present, else GPT-2 BPE; for a nanoGPT
    /// `.pt`, `meta` if given, else a meta.pkl beside it or in `data/<dataset>/`.
    pub fn tokenizer_with(&self, meta: Option<&Path>) -> Result<Tokenizer> {
        match self.source {
            Source::Dir => dir::tokenizer(&self.path),
            Source::NanoGpt => nanogpt::tokenizer(self, meta),
        }
    }

    /// The tokenizer (see [`Checkpoint::tokenizer_with`]).
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        self.tokenizer_with(None)
    }

    /// The saved optimizer state (directories written by `train` and `grpo`).
    pub fn optimizer(&self) -> Result<OptimizerState> {
        let meta = self.state.optimizer.clone().ok_or_else(|| {
            Error::checkpoint(
                &self.path,
                "no optimizer state: it cannot be resumed (was it written by `train`?)",
            )
        })?;
        dir::read_optimizer(&self.path, meta)
    }
}
