//! nanoGPT's `torch.save` checkpoints (`ckpt.pt`), read and written.
//!
//! Reading uses burn-store's PyTorch reader (zip + pickle). Writing produces the same layout
//! torch.save does (see [`torchfile`]): nanoGPT's `GPT(GPTConfig(**ckpt['model_args']))` and
//! `load_state_dict(ckpt['model'])` accept it.

use super::weights::{
    FloatKind, HostTensor, LoadReport, decode_floats, load_weights, model_tensors,
};
use super::{Checkpoint, CheckpointParts, Source, TrainState};
use crate::model::{GPT, GPTConfig, Mode};
use crate::tokenizer::{CharVocab, GPT2_VOCAB_SIZE, Tokenizer};
use crate::{Error, Result};
use burn::store::pytorch_reader::{DType, PickleValue, PytorchReader};
use burn::tensor::Device;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub mod torchfile;

fn pickle_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::checkpoint(
        path,
        format!("cannot read it as a PyTorch checkpoint (torch.save zip): {e}"),
    )
}

fn to_f32(path: &Path, name: &str, dtype: DType, raw: &[u8]) -> Result<Vec<f32>> {
    let kind = match dtype {
        DType::F64 => FloatKind::F64,
        DType::F32 => FloatKind::F32,
        DType::BF16 => FloatKind::BF16,
        DType::F16 => FloatKind::F16,
        other => {
            return Err(Error::checkpoint(
                path,
                format!("tensor {name} has dtype {other:?}; weights must be floating point"),
            ));
        }
    };
    Ok(decode_floats(raw, kind))
}

fn arg_usize(args: &HashMap<String, PickleValue>, key: &str, path: &Path) -> Result<usize> {
    match args.get(key) {
        Some(PickleValue::Int(v)) if *v > 0 => Ok(*v as usize),
        other => Err(Error::checkpoint(
            path,
            format!("model_args['{key}'] must be a positive integer, found {other:?}"),
        )),
    }
}

/// The model shape of a checkpoint's `model_args`.
fn model_args(top: &HashMap<String, PickleValue>, path: &Path) -> Result<GPTConfig> {
    let Some(PickleValue::Dict(args)) = top.get("model_args") else {
        return Err(Error::checkpoint(
            path,
            "no 'model_args' in the checkpoint: it does not look like nanoGPT's ckpt.pt",
        ));
    };
    let bias = match args.get("bias") {
        Some(PickleValue::Bool(b)) => *b,
        None => true,
        other => {
            return Err(Error::checkpoint(
                path,
                format!("model_args['bias'] must be True or False, found {other:?}"),
            ));
        }
    };
    let dropout = match args.get("dropout") {
        Some(PickleValue::Float(f)) => *f,
        Some(PickleValue::Int(i)) => *i as f64,
        _ => 0.0,
    };
    let config = GPTConfig {
        block_size: arg_usize(args, "block_size", path)?,
        vocab_size: arg_usize(args, "vocab_size", path)?,
        n_layer: arg_usize(args, "n_layer", path)?,
        n_head: arg_usize(args, "n_head", path)?,
        n_embd: arg_usize(args, "n_embd", path)?,
        dropout,
        bias,
        ..Default::default()
    };
    config
        .validate()
        .map_err(|e| Error::checkpoint(path, format!("model_args: {e}")))?;
    Ok(config)
}

/// The state-dict tensors under `model` (the `_orig_mod.` prefix of torch.compile removed).
fn state_dict(path: &Path) -> Result<HashMap<String, HostTensor>> {
    let reader =
        PytorchReader::with_top_level_key(path, "model").map_err(|e| pickle_err(path, e))?;
    let mut weights = HashMap::new();
    for (name, t) in reader.tensors() {
        let raw = t
            .read()
            .map_err(|e| pickle_err(path, format!("tensor {name}: {e}")))?;
        let data = to_f32(path, name, t.dtype(), &raw)?;
        if data.iter().any(|v| !v.is_finite()) {
            return Err(Error::checkpoint(
                path,
                format!("tensor {name} holds NaN or infinite values"),
            ));
        }
        let key = name.strip_prefix("_orig_mod.").unwrap_or(name).to_string();
        let shape = t.shape().to_vec();
        weights.insert(key, HostTensor { shape, data });
    }
    Ok(weights)
}

/// Reads a nanoGPT `ckpt.pt` (a dict with `model` and `model_args`, as nanoGPT's train.py saves).
pub fn read(path: &Path) -> Result<Checkpoint> {
    let root = PytorchReader::read_pickle_data(path, None).map_err(|e| pickle_err(path, e))?;
    let PickleValue::Dict(top) = root else {
        return Err(Error::checkpoint(
            path,
            "expected a checkpoint dict with 'model' and 'model_args' (as nanoGPT's train.py saves)",
        ));
    };
    let config = model_args(&top, path)?;
    let weights = state_dict(path)?;
    let iter_num = match top.get("iter_num") {
        Some(PickleValue::Int(v)) => u64::try_from(*v).ok(),
        _ => None,
    };
    let best_val_loss = match top.get("best_val_loss") {
        Some(PickleValue::Float(f)) => Some(*f),
        _ => None,
    };
    let dataset = match top.get("config") {
        Some(PickleValue::Dict(c)) => match c.get("dataset") {
            Some(PickleValue::String(s)) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    Ok(Checkpoint {
        path: path.to_path_buf(),
        source: Source::NanoGpt,
        config,
        weights,
        state: TrainState {
            iter_num,
            best_val_loss,
            ..Default::default()
        },
        dataset,
    })
}

/// Builds the model of a nanoGPT checkpoint on `device`; `lm_head.weight` must equal the tied
/// `transformer.wte.weight`, and every other tensor must have a place in the GPT.
pub fn model(ck: &Checkpoint, device: &Device) -> Result<(GPT, LoadReport)> {
    let path = &ck.path;
    if let (Some(h), Some(e)) = (
        ck.weights.get("lm_head.weight"),
        ck.weights.get("transformer.wte.weight"),
    ) && h != e
    {
        return Err(Error::checkpoint(
            path,
            "lm_head.weight differs from transformer.wte.weight, but nanoGPT ties them",
        ));
    }
    let mut model = GPT::new(&ck.config, device, 0)?;
    let report = load_weights(&mut model, &ck.weights, path, |_| false)?;
    let stray: Vec<&String> = report
        .unused
        .iter()
        .filter(|n| *n != "lm_head.weight" && !n.ends_with(".attn.bias"))
        .collect();
    if !stray.is_empty() {
        return Err(Error::checkpoint(
            path,
            format!("tensors the GPT has no place for: {stray:?}"),
        ));
    }
    Ok((model, report))
}

/// The tokenizer for a nanoGPT checkpoint: `meta` if given, else a meta.pkl beside the file or
/// in nanoGPT's `data/<dataset>/`, else GPT-2 BPE for a GPT-2-sized vocabulary.
pub fn tokenizer(ck: &Checkpoint, meta: Option<&Path>) -> Result<Tokenizer> {
    let path = &ck.path;
    let beside = path.parent().map(|d| d.join("meta.pkl"));
    let in_data = ck
        .dataset
        .as_ref()
        .map(|d| PathBuf::from("data").join(d).join("meta.pkl"));
    let found = meta
        .map(Path::to_path_buf)
        .into_iter()
        .chain(beside.into_iter().chain(in_data).filter(|p| p.exists()))
        .next();
    let tok = match found {
        Some(p) => Tokenizer::Char(CharVocab::load(&p)?),
        None if ck.config.vocab_size >= GPT2_VOCAB_SIZE => Tokenizer::Bpe,
        None => {
            return Err(Error::checkpoint(
                path,
                format!(
                    "vocab_size {} is not GPT-2's and no meta.pkl was found beside it or in data/<dataset>/: pass --meta PATH",
                    ck.config.vocab_size
                ),
            ));
        }
    };
    if tok.vocab_size() > ck.config.vocab_size {
        return Err(Error::Mismatch(format!(
            "the tokenizer has {} tokens but the checkpoint's vocab_size is {}",
            tok.vocab_size(),
            ck.config.vocab_size
        )));
    }
    Ok(tok)
}

/// What `import-nanogpt` did.
pub struct ImportReport {
    pub config: GPTConfig,
    pub loaded: usize,
    pub tokenizer: String,
    pub iter_num: Option<u64>,
    pub best_val_loss: Option<f64>,
}

/// Converts a nanoGPT `ckpt.pt` into a nanoreward checkpoint directory.
pub fn import(pt: &Path, out: &Path, meta: Option<&Path>) -> Result<ImportReport> {
    let _lock = crate::util::lock::DirLock::acquire(out)?;
    let ck = read(pt)?;
    let (model, report) = model(&ck, &Device::flex())?;
    let tok = tokenizer(&ck, meta)?;
    let state = TrainState {
        imported_from: Some(pt.display().to_string()),
        ..ck.state.clone()
    };
    super::save(out, &CheckpointParts::generator(&model, &tok, None, state))?;
    Ok(ImportReport {
        config: ck.config,
        loaded: report.loaded.len(),
        tokenizer: format!("{} ({} tokens)", tok.method(), tok.vocab_size()),
        iter_num: ck.state.iter_num,
        best_val_loss: ck.state.best_val_loss,
    })
}

/// Writes the checkpoint at `path` (a directory or a .pt) as a nanoGPT `ckpt.pt` at `out`.
/// Returns the number of tensors written besides the tied lm_head.
pub fn export(path: &Path, out: &Path) -> Result<usize> {
    let ck = Checkpoint::open(path)?;
    let model = ck.model(&Device::flex())?;
    if model.config.mode != Mode::Generator {
        return Err(Error::checkpoint(
            path,
            "this is a reward model; nanoGPT's GPT has no reward_head, so only generators are exported",
        ));
    }
    let mut tensors = model_tensors(&model);
    let wte = tensors
        .iter()
        .position(|(n, _)| n == "transformer.wte.weight")
        .ok_or_else(|| Error::checkpoint(path, "no transformer.wte.weight"))?;
    let c = &model.config;
    let args = vec![
        ("n_layer", torchfile::Py::Int(c.n_layer as i64)),
        ("n_head", torchfile::Py::Int(c.n_head as i64)),
        ("n_embd", torchfile::Py::Int(c.n_embd as i64)),
        ("block_size", torchfile::Py::Int(c.block_size as i64)),
        ("bias", torchfile::Py::Bool(c.bias)),
        ("vocab_size", torchfile::Py::Int(c.vocab_size as i64)),
        ("dropout", torchfile::Py::Float(c.dropout)),
    ];
    let iter = ck.state.iter_num.unwrap_or(0) as i64;
    let best = ck.state.best_val_loss.unwrap_or(f64::NAN);
    let n = tensors.len();
    tensors.push(("lm_head.weight".into(), tensors[wte].1.clone()));
    torchfile::save_nanogpt(out, &tensors, Some(wte), &args, iter, best)?;
    Ok(n)
}
