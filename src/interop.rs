//! Interoperability with the PyTorch world: nanoGPT's `torch.save` checkpoints (`ckpt.pt`) in
//! both directions, and Hugging Face GPT-2 directories as a starting point.
//!
//! Reading uses burn-store's PyTorch reader (zip + pickle). Writing produces the same layout
//! torch.save does (see [`torchfile`]): nanoGPT's `GPT(GPTConfig(**ckpt['model_args']))` and
//! `load_state_dict(ckpt['model'])` accept it.

use crate::checkpoint::{self, CheckpointParts, HostTensor, LoadReport};
use crate::error::{Error, Result};
use crate::model::{GPT, GPTConfig, Mode};
use crate::tokenizer::{CharVocab, Tokenizer};
use burn::store::pytorch_reader::{DType, PickleValue, PytorchReader};
use burn::tensor::Device;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub mod torchfile;

/// Whether `path` is a PyTorch checkpoint file (`.pt` / `.pth`) rather than a directory.
pub fn is_torch_file(path: &Path) -> bool {
    path.is_file()
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pt" | "pth")
        )
}

/// A nanoGPT checkpoint read into memory.
pub struct NanoGptCheckpoint {
    pub config: GPTConfig,
    /// State-dict tensors (the `_orig_mod.` prefix of torch.compile removed).
    pub weights: HashMap<String, HostTensor>,
    pub iter_num: Option<i64>,
    pub best_val_loss: Option<f64>,
    /// `config['dataset']` of the training run, when recorded.
    pub dataset: Option<String>,
}

fn pickle_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::checkpoint(
        path,
        format!("cannot read it as a PyTorch checkpoint (torch.save zip): {e}"),
    )
}

fn to_f32(path: &Path, name: &str, dtype: DType, raw: &[u8]) -> Result<Vec<f32>> {
    Ok(match dtype {
        DType::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        DType::F64 => raw
            .chunks_exact(8)
            .map(|c| f64::from_ne_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        DType::BF16 => raw
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_ne_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
        DType::F16 => raw
            .chunks_exact(2)
            .map(|c| checkpoint::half_to_f32(u16::from_ne_bytes([c[0], c[1]])))
            .collect(),
        other => {
            return Err(Error::checkpoint(
                path,
                format!("tensor {name} has dtype {other:?}; weights must be floating point"),
            ));
        }
    })
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

/// Reads a nanoGPT `ckpt.pt` (a dict with `model` and `model_args`), or a bare state dict when
/// the model's shape can be given by `model_args`.
pub fn read_nanogpt(path: &Path) -> Result<NanoGptCheckpoint> {
    let root = PytorchReader::read_pickle_data(path, None).map_err(|e| pickle_err(path, e))?;
    let PickleValue::Dict(top) = root else {
        return Err(Error::checkpoint(
            path,
            "expected a checkpoint dict with 'model' and 'model_args' (as nanoGPT's train.py saves)",
        ));
    };
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
        weights.insert(
            key,
            HostTensor {
                shape: t.shape().to_vec(),
                data,
            },
        );
    }
    let int = |k: &str| match top.get(k) {
        Some(PickleValue::Int(v)) => Some(*v),
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
    Ok(NanoGptCheckpoint {
        config,
        iter_num: int("iter_num"),
        best_val_loss,
        dataset,
        weights,
    })
}

/// Builds the model of a nanoGPT checkpoint on `device`; `lm_head.weight` must equal the tied
/// `transformer.wte.weight`.
pub fn nanogpt_model(
    ck: &NanoGptCheckpoint,
    path: &Path,
    device: &Device,
) -> Result<(GPT, LoadReport)> {
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
    let report = checkpoint::load_weights(&mut model, &ck.weights, path, |_| false)?;
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
pub fn nanogpt_tokenizer(
    path: &Path,
    ck: &NanoGptCheckpoint,
    meta: Option<&Path>,
) -> Result<Tokenizer> {
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
        None if ck.config.vocab_size >= crate::tokenizer::GPT2_VOCAB_SIZE => Tokenizer::Bpe,
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
    pub iter_num: Option<i64>,
    pub best_val_loss: Option<f64>,
}

/// Converts a nanoGPT `ckpt.pt` into a nanoreward checkpoint directory.
pub fn import_nanogpt(pt: &Path, out: &Path, meta: Option<&Path>) -> Result<ImportReport> {
    let ck = read_nanogpt(pt)?;
    let (model, report) = nanogpt_model(&ck, pt, &Device::flex())?;
    let tok = nanogpt_tokenizer(pt, &ck, meta)?;
    let state = serde_json::json!({
        "iter_num": ck.iter_num, "best_val_loss": ck.best_val_loss,
        "imported_from": pt.display().to_string(),
    });
    checkpoint::save(
        out,
        &CheckpointParts {
            model: &model,
            optimizer: None,
            train_state: Some(state),
            tokenizer: Some(&tok),
        },
    )?;
    Ok(ImportReport {
        config: ck.config,
        loaded: report.loaded.len(),
        tokenizer: format!("{} ({} tokens)", tok.method(), tok.vocab_size()),
        iter_num: ck.iter_num,
        best_val_loss: ck.best_val_loss,
    })
}

/// Writes the checkpoint at `dir` (a directory or a .pt) as a nanoGPT `ckpt.pt` at `out`.
pub fn export_nanogpt(dir: &Path, out: &Path) -> Result<usize> {
    let model = checkpoint::load_model(dir, &Device::flex())?;
    if model.config.mode != Mode::Generator {
        return Err(Error::checkpoint(
            dir,
            "this is a reward model; nanoGPT's GPT has no reward_head, so only generators are exported",
        ));
    }
    let state = checkpoint::load_train_state(dir).unwrap_or_default();
    let mut tensors = checkpoint::model_tensors(&model);
    let wte = tensors
        .iter()
        .position(|(n, _)| n == "transformer.wte.weight")
        .ok_or_else(|| Error::checkpoint(dir, "no transformer.wte.weight"))?;
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
    let iter = state["iter_num"].as_i64().unwrap_or(0);
    let best = state["best_val_loss"].as_f64().unwrap_or(f64::NAN);
    let n = tensors.len();
    tensors.push(("lm_head.weight".into(), tensors[wte].1.clone()));
    torchfile::save_nanogpt(out, &tensors, Some(wte), &args, iter, best)?;
    Ok(n)
}

/// Reads a local Hugging Face GPT-2 directory (`config.json` + `model.safetensors`) as nanoGPT
/// tensors: `transformer.` prefixed names, Conv1D weights transposed to Linear `[out, in]`.
pub fn read_hf_gpt2(dir: &Path) -> Result<(GPTConfig, HashMap<String, HostTensor>)> {
    let (cfg_path, st_path) = (dir.join("config.json"), dir.join("model.safetensors"));
    if !cfg_path.exists() || !st_path.exists() {
        return Err(Error::checkpoint(
            dir,
            "a GPT-2 start needs a local Hugging Face directory with config.json and model.safetensors; nanoreward never downloads models: fetch one yourself (e.g. `huggingface-cli download gpt2 --local-dir models/gpt2`) and set pretrained_dir",
        ));
    }
    let j: serde_json::Value = serde_json::from_slice(&crate::fsutil::read(&cfg_path)?)
        .map_err(|e| Error::checkpoint(&cfg_path, format!("invalid JSON: {e}")))?;
    let get = |k: &str| {
        j[k].as_u64().map(|v| v as usize).ok_or_else(|| {
            Error::checkpoint(
                &cfg_path,
                format!("config.json lacks a positive integer '{k}'"),
            )
        })
    };
    let config = GPTConfig {
        block_size: get("n_positions")?,
        vocab_size: get("vocab_size")?,
        n_layer: get("n_layer")?,
        n_head: get("n_head")?,
        n_embd: get("n_embd")?,
        dropout: 0.0,
        bias: true,
        ..Default::default()
    };
    config
        .validate()
        .map_err(|e| Error::checkpoint(&cfg_path, e.to_string()))?;
    let conv1d = [
        ".attn.c_attn.weight",
        ".attn.c_proj.weight",
        ".mlp.c_fc.weight",
        ".mlp.c_proj.weight",
    ];
    let mut out = HashMap::new();
    for (name, t) in checkpoint::read_safetensors(&st_path)? {
        let bare = name.strip_prefix("transformer.").unwrap_or(&name);
        if bare.ends_with(".attn.bias")
            || bare.ends_with(".attn.masked_bias")
            || bare == "lm_head.weight"
        {
            continue;
        }
        let t = if conv1d.iter().any(|s| bare.ends_with(s)) && t.shape.len() == 2 {
            t.transposed()
        } else {
            t
        };
        out.insert(format!("transformer.{bare}"), t);
    }
    Ok((config, out))
}
