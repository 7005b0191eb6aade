//! Weight interpolation of two generators of one architecture (WiSE-FT; "rewarded soups",
//! Ramé et al. 2023): θ = θ_a + α·(θ_b − θ_a), tensor by tensor. α in (0, 1) interpolates,
//! α > 1 extrapolates from `a` through `b`. Typical use: the midpoint of two rounds' policies.

use super::{Checkpoint, CheckpointParts, HostTensor, TrainState, load_weights, model_tensors};
use crate::model::{GPT, GPTConfig, Mode};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};
use burn::tensor::Device;
use std::collections::HashMap;
use std::path::Path;

/// Where an interpolated checkpoint came from, recorded as its `train_state.json` config.
#[derive(Debug, Clone, serde::Serialize)]
struct Provenance {
    interpolate: [String; 2],
    alpha: f64,
}

/// `a + alpha·(b − a)` for every tensor of two models of one architecture (the same
/// parameters in the same order), computed in f64 and rounded once.
pub fn mix(a: &GPT, b: &GPT, alpha: f64) -> HashMap<String, HostTensor> {
    model_tensors(a)
        .into_iter()
        .zip(model_tensors(b))
        .map(|((name, ta), (_, tb))| {
            let data = ta
                .data
                .iter()
                .zip(&tb.data)
                .map(|(&x, &y)| (x as f64 + alpha * (y as f64 - x as f64)) as f32)
                .collect();
            (
                name,
                HostTensor {
                    shape: ta.shape,
                    data,
                },
            )
        })
        .collect()
}

/// Checks that `a` and `b` are generators of one architecture and one tokenizer.
fn check(a: &Checkpoint, b: &Checkpoint) -> Result<Tokenizer> {
    for ck in [a, b] {
        if ck.config.mode != Mode::Generator {
            return Err(Error::Mismatch(format!(
                "{} is a reward model: only generators can be interpolated",
                ck.path.display()
            )));
        }
    }
    if a.config != b.config {
        return Err(Error::Mismatch(format!(
            "{} and {} have different architectures (config.json): only checkpoints of one architecture can be interpolated",
            a.path.display(),
            b.path.display()
        )));
    }
    let tok = a.tokenizer()?;
    if tok != b.tokenizer()? {
        return Err(Error::Mismatch(format!(
            "{} and {} use different tokenizers (meta.pkl)",
            a.path.display(),
            b.path.display()
        )));
    }
    Ok(tok)
}

/// Writes `out` (a checkpoint directory, atomically) holding `a + alpha·(b − a)`, with a's
/// tokenizer and no optimizer state; returns the architecture.
pub fn interpolate(a: &Path, b: &Path, alpha: f64, out: &Path) -> Result<GPTConfig> {
    if !alpha.is_finite() {
        return Err(Error::Config(format!(
            "alpha must be a number, not {alpha}"
        )));
    }
    let (ca, cb) = (Checkpoint::open(a)?, Checkpoint::open(b)?);
    let tok = check(&ca, &cb)?;
    let dev = Device::flex();
    let weights = mix(&ca.model(&dev)?, &cb.model(&dev)?, alpha);
    let mut model = GPT::new(&ca.config, &dev, 0)?;
    load_weights(&mut model, &weights, out, |_| false)?;
    let provenance = Provenance {
        interpolate: [a.display().to_string(), b.display().to_string()],
        alpha,
    };
    let state = TrainState {
        config: serde_json::to_value(provenance).ok(),
        ..Default::default()
    };
    super::save(out, &CheckpointParts::generator(&model, &tok, None, state))?;
    Ok(ca.config)
}
