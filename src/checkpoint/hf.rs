//! Hugging Face GPT-2 directories (`config.json` + `model.safetensors`), read as a starting point.

use super::safetensors;
use super::weights::HostTensor;
use crate::model::GPTConfig;
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Reads a local Hugging Face GPT-2 directory (`config.json` + `model.safetensors`) as nanoGPT
/// tensors: `transformer.` prefixed names, Conv1D weights transposed to Linear `[out, in]`.
pub fn read(dir: &Path) -> Result<(GPTConfig, HashMap<String, HostTensor>)> {
    let (cfg_path, st_path) = (dir.join("config.json"), dir.join("model.safetensors"));
    if !cfg_path.exists() || !st_path.exists() {
        return Err(Error::checkpoint(
            dir,
            "a GPT-2 start needs a local Hugging Face directory with config.json and model.safetensors; nanoreward never downloads models: fetch one yourself (e.g. `huggingface-cli download gpt2 --local-dir models/gpt2`) and set pretrained_dir",
        ));
    }
    let j: serde_json::Value = serde_json::from_slice(&crate::util::fsutil::read(&cfg_path)?)
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
    for (name, t) in safetensors::read(&st_path)? {
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
