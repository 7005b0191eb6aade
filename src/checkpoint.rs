//! Checkpoints: a directory with `config.json` (the GPTConfig, nanoGPT's `model_args`),
//! `model.safetensors` (nanoGPT `state_dict` names, Linear weights `[out, in]` as in PyTorch),
//! optionally `optimizer.safetensors`, `train_state.json` and the tokenizer's `meta.pkl`.
//! Written as a whole into a temporary directory and renamed into place.

use crate::error::{Error, Result};
use crate::fsutil;
use crate::model::{GPT, GPTConfig, Param};
use crate::optim::{AdamW, AdamWConfig};
use crate::tokenizer::{CharVocab, Tokenizer};
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::HashMap;
use std::path::Path;

/// File names inside a checkpoint directory.
pub const CONFIG: &str = "config.json";
pub const MODEL: &str = "model.safetensors";
pub const OPTIMIZER: &str = "optimizer.safetensors";
pub const TRAIN_STATE: &str = "train_state.json";
pub const META: &str = "meta.pkl";

/// A host copy of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Copies a tensor to the host.
    pub fn from_tensor<const D: usize>(t: Tensor<D>) -> Self {
        let shape = t.dims().to_vec();
        let data = t
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        Self { shape, data }
    }

    /// The transpose of a 2-D tensor.
    pub fn transposed(&self) -> Self {
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut data = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                data[j * r + i] = self.data[i * c + j];
            }
        }
        Self {
            shape: vec![c, r],
            data,
        }
    }

    /// Uploads to `device` as a D-dimensional tensor.
    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }
}

/// Serialises named f32 tensors in the safetensors format.
pub fn safetensors_bytes(tensors: &[(String, HostTensor)]) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, t)| {
            let b = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (n.clone(), b, t.shape.clone())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, b, s)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Other(format!("cannot serialise tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| Error::Other(format!("safetensors: {e}")))
}

/// Reads every tensor of a safetensors file as f32 (F32, F16 and BF16 are accepted).
pub fn read_safetensors(path: &Path) -> Result<HashMap<String, HostTensor>> {
    parse_safetensors(&fsutil::read(path)?, path)
}

/// Parses safetensors bytes (from `path`, for messages) into f32 host tensors.
pub fn parse_safetensors(bytes: &[u8], path: &Path) -> Result<HashMap<String, HostTensor>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        Error::checkpoint(
            path,
            format!("not a readable safetensors file ({e}); the file may be truncated"),
        )
    })?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            other => {
                return Err(Error::checkpoint(
                    path,
                    format!("tensor {name} has dtype {other:?}; only F32/F16/BF16 are supported"),
                ));
            }
        };
        if let Some(bad) = data.iter().find(|v| !v.is_finite()) {
            return Err(Error::checkpoint(
                path,
                format!("tensor {name} holds a non-finite value ({bad})"),
            ));
        }
        out.insert(
            name,
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

pub fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal half: value = f · 2^-24.
            let v = f as f32 * 2f32.powi(-24);
            return if sign != 0 { -v } else { v };
        }
        (31, 0) => sign | 0x7f80_0000,
        (31, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | (((e - 15 + 127) as u32) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// True for parameters stored `[in, out]` in the model and `[out, in]` on disk.
fn is_linear_weight(name: &str, p: &Param) -> bool {
    matches!(p, Param::Matrix(_))
        && !name.starts_with("transformer.wte")
        && !name.starts_with("transformer.wpe")
}

/// The model's tensors in checkpoint layout (PyTorch names and shapes).
pub fn model_tensors(model: &GPT) -> Vec<(String, HostTensor)> {
    model
        .named_params()
        .into_iter()
        .map(|(name, p)| {
            let linear = is_linear_weight(&name, &p);
            let host = match p {
                Param::Vector(t) => HostTensor::from_tensor(t),
                Param::Matrix(t) => HostTensor::from_tensor(t),
            };
            (name, if linear { host.transposed() } else { host })
        })
        .collect()
}

/// What loading weights into a model did.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    /// Tensors in the file that the model has no place for (e.g. lm_head in reward mode).
    pub unused: Vec<String>,
    /// Model parameters absent from the file, kept at their fresh initialisation.
    pub initialised: Vec<String>,
}

/// Copies the tensors of `weights` into `model` by name. A wrong shape is an error naming the
/// tensor; a parameter missing from the file is an error unless `allow_missing` says it may
/// stay freshly initialised (for example `reward_head.*`).
pub fn load_weights(
    model: &mut GPT,
    weights: &HashMap<String, HostTensor>,
    path: &Path,
    allow_missing: impl Fn(&str) -> bool,
) -> Result<LoadReport> {
    let device = model.device();
    let mut report = LoadReport::default();
    model.map_params(|name, p| {
        let linear = is_linear_weight(name, &p);
        let Some(w) = weights.get(name) else {
            if allow_missing(name) {
                report.initialised.push(name.to_string());
                return Ok(p);
            }
            return Err(Error::checkpoint(
                path,
                format!("tensor {name} is missing; the checkpoint does not match this model"),
            ));
        };
        let want = p.dims();
        let w = if linear && w.shape.len() == 2 {
            w.transposed()
        } else {
            w.clone()
        };
        if w.shape != want {
            let show = |s: &[usize]| if linear { vec![s[1], s[0]] } else { s.to_vec() };
            return Err(Error::checkpoint(
                path,
                format!(
                    "tensor {name} has shape {:?} but the model expects {:?}",
                    show(&w.shape),
                    show(&want)
                ),
            ));
        }
        if w.data.iter().any(|v| !v.is_finite()) {
            return Err(Error::checkpoint(
                path,
                format!(
                    "tensor {name} holds NaN or infinite values; the run that wrote it diverged"
                ),
            ));
        }
        report.loaded.push(name.to_string());
        Ok(match p {
            Param::Vector(_) => Param::Vector(w.to_tensor(&device)),
            Param::Matrix(_) => Param::Matrix(w.to_tensor(&device)),
        })
    })?;
    let known: std::collections::HashSet<&str> = report.loaded.iter().map(|s| s.as_str()).collect();
    let mut unused: Vec<String> = weights
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .cloned()
        .collect();
    unused.sort();
    report.unused = unused;
    Ok(report)
}

/// Everything a checkpoint holds besides the weights.
pub struct CheckpointParts<'a> {
    pub model: &'a GPT,
    pub optimizer: Option<&'a AdamW>,
    /// Free-form JSON state of the job that wrote it (iteration, RNG, config, ...).
    pub train_state: Option<serde_json::Value>,
    pub tokenizer: Option<&'a Tokenizer>,
}

/// Writes a checkpoint directory atomically.
pub fn save(dir: &Path, parts: &CheckpointParts) -> Result<()> {
    let config = serde_json::to_vec_pretty(&parts.model.config)
        .map_err(|e| Error::Other(format!("cannot serialise config: {e}")))?;
    let weights = safetensors_bytes(&model_tensors(parts.model))?;
    let optim = match parts.optimizer {
        Some(opt) => {
            let mut names: Vec<&String> = opt.state.keys().collect();
            names.sort();
            let mut t = Vec::new();
            for n in names {
                let (m, v) = &opt.state[n];
                t.push((format!("{n}.exp_avg"), HostTensor::from_tensor(m.clone())));
                t.push((
                    format!("{n}.exp_avg_sq"),
                    HostTensor::from_tensor(v.clone()),
                ));
            }
            let meta = serde_json::json!({ "step": opt.step, "config": opt.config });
            Some((safetensors_bytes(&t)?, meta))
        }
        None => None,
    };
    fsutil::write_dir_atomic(dir, |tmp| {
        fsutil::write_bytes_atomic(&tmp.join(CONFIG), &config)?;
        fsutil::write_bytes_atomic(&tmp.join(MODEL), &weights)?;
        let mut state = parts.train_state.clone().unwrap_or(serde_json::json!({}));
        if let Some((bytes, meta)) = &optim {
            fsutil::write_bytes_atomic(&tmp.join(OPTIMIZER), bytes)?;
            state["optimizer"] = meta.clone();
        }
        let state = serde_json::to_vec_pretty(&state)
            .map_err(|e| Error::Other(format!("cannot serialise train state: {e}")))?;
        fsutil::write_bytes_atomic(&tmp.join(TRAIN_STATE), &state)?;
        if let Some(Tokenizer::Char(v)) = parts.tokenizer {
            v.save_pickle(&tmp.join(META))?;
        }
        Ok(())
    })
}

/// Reads `config.json` of a checkpoint directory.
pub fn load_config(dir: &Path) -> Result<GPTConfig> {
    if crate::interop::is_torch_file(dir) {
        return Ok(crate::interop::read_nanogpt(dir)?.config);
    }
    fsutil::recover(dir);
    if !dir.is_dir() {
        return Err(Error::checkpoint(
            dir,
            "not a checkpoint directory (expected config.json and model.safetensors inside)",
        ));
    }
    let p = dir.join(CONFIG);
    let bytes = fsutil::read(&p)?;
    let cfg: GPTConfig = serde_json::from_slice(&bytes)
        .map_err(|e| Error::checkpoint(&p, format!("invalid config.json: {e}")))?;
    cfg.validate()
        .map_err(|e| Error::checkpoint(&p, e.to_string()))?;
    Ok(cfg)
}

/// Loads the model of a checkpoint directory onto `device` (inference: no autodiff).
/// A nanoGPT `.pt` file is read directly.
pub fn load_model(dir: &Path, device: &Device) -> Result<GPT> {
    if crate::interop::is_torch_file(dir) {
        let ck = crate::interop::read_nanogpt(dir)?;
        return Ok(crate::interop::nanogpt_model(&ck, dir, device)?.0);
    }
    let cfg = load_config(dir)?;
    let mut model = GPT::new(&cfg, device, 0)?;
    let p = dir.join(MODEL);
    let weights = read_safetensors(&p)?;
    load_weights(&mut model, &weights, &p, |_| false)?;
    Ok(model)
}

/// Reads `train_state.json` (an empty object when absent).
pub fn load_train_state(dir: &Path) -> Result<serde_json::Value> {
    if crate::interop::is_torch_file(dir) {
        let ck = crate::interop::read_nanogpt(dir)?;
        return Ok(serde_json::json!({"iter_num": ck.iter_num, "best_val_loss": ck.best_val_loss}));
    }
    let p = dir.join(TRAIN_STATE);
    if !p.exists() {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(&fsutil::read(&p)?)
        .map_err(|e| Error::checkpoint(&p, format!("invalid JSON: {e}")))
}

/// Restores the optimizer saved in a checkpoint onto `device`.
pub fn load_optimizer(dir: &Path, device: &Device) -> Result<AdamW> {
    let state = load_train_state(dir)?;
    let p = dir.join(OPTIMIZER);
    let meta = state.get("optimizer").ok_or_else(|| {
        Error::checkpoint(
            dir,
            "no optimizer state: it cannot be resumed (was it written by `train`?)",
        )
    })?;
    let config: AdamWConfig = serde_json::from_value(meta["config"].clone())
        .map_err(|e| Error::checkpoint(dir, format!("invalid optimizer config: {e}")))?;
    let step = meta["step"].as_u64().unwrap_or(0);
    let tensors = read_safetensors(&p)?;
    let mut opt = AdamW::new(config);
    opt.step = step;
    for (name, m) in &tensors {
        if let Some(base) = name.strip_suffix(".exp_avg") {
            let v = tensors
                .get(&format!("{base}.exp_avg_sq"))
                .ok_or_else(|| Error::checkpoint(&p, format!("{base}.exp_avg_sq is missing")))?;
            opt.state
                .insert(base.to_string(), (m.to_tensor(device), v.to_tensor(device)));
        }
    }
    Ok(opt)
}

/// The tokenizer of a checkpoint: its `meta.pkl` when present, else GPT-2 BPE (for a nanoGPT
/// `.pt`: a meta.pkl beside it or in `data/<dataset>/`).
pub fn load_tokenizer(dir: &Path) -> Result<Tokenizer> {
    if crate::interop::is_torch_file(dir) {
        let ck = crate::interop::read_nanogpt(dir)?;
        return crate::interop::nanogpt_tokenizer(dir, &ck, None);
    }
    let p = dir.join(META);
    if p.exists() {
        Ok(Tokenizer::Char(CharVocab::load(&p)?))
    } else {
        Ok(Tokenizer::Bpe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_conversion() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x3555), 0.333_251_95);
        assert_eq!(half_to_f32(0x0001), 2f32.powi(-24));
    }

    #[test]
    fn transpose_round_trip() {
        let t = HostTensor {
            shape: vec![2, 3],
            data: vec![1., 2., 3., 4., 5., 6.],
        };
        let tt = t.transposed();
        assert_eq!(tt.shape, vec![3, 2]);
        assert_eq!(tt.data, vec![1., 4., 2., 5., 3., 6.]);
        assert_eq!(tt.transposed(), t);
    }
}
