//! Hugging Face GPT-2 directories (`config.json` + `model.safetensors`): read as a starting point
//! (`init_from = "gpt2"`), written by `export-hf` for `GPT2LMHeadModel.from_pretrained`.
//!
//! The layout: tensor names `transformer.*` (the tied `lm_head.weight` left out, as
//! `save_pretrained` does), Conv1D weights `[in, out]` (the transpose of nanoGPT's Linear), every
//! LayerNorm and Conv1D with a bias (zeros where the model has `bias = false`), the exact GELU
//! (`activation_function = "gelu"`) and LayerNorm eps 1e-5, as nanoGPT computes.

use super::safetensors;
use super::weights::HostTensor;
use super::{Checkpoint, FEATURE_MODEL};
use crate::model::{GPTConfig, Mode, RewardHeadKind};
use crate::tokenizer::{GPT2_EOT, Tokenizer, gpt2_files};
use crate::util::fsutil;
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// The Conv1D weights of a GPT-2 block (stored `[in, out]` by Hugging Face).
const CONV1D: [&str; 4] = [
    ".attn.c_attn.weight",
    ".attn.c_proj.weight",
    ".mlp.c_fc.weight",
    ".mlp.c_proj.weight",
];

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
    let mut out = HashMap::new();
    for (name, t) in safetensors::read(&st_path)? {
        let bare = name.strip_prefix("transformer.").unwrap_or(&name);
        if bare.ends_with(".attn.bias")
            || bare.ends_with(".attn.masked_bias")
            || bare == "lm_head.weight"
        {
            continue;
        }
        let t = if CONV1D.iter().any(|s| bare.ends_with(s)) && t.shape.len() == 2 {
            t.transposed()
        } else {
            t
        };
        out.insert(format!("transformer.{bare}"), t);
    }
    Ok((config, out))
}

/// GPT-2's `config.json` for a model of `c` (`bpe`: the GPT-2 tokenizer's special ids).
fn config_json(c: &GPTConfig, bpe: bool) -> serde_json::Value {
    let eot = bpe.then_some(GPT2_EOT);
    serde_json::json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": c.vocab_size,
        "n_positions": c.block_size,
        "n_ctx": c.block_size,
        "n_embd": c.n_embd,
        "n_layer": c.n_layer,
        "n_head": c.n_head,
        "n_inner": null,
        "activation_function": "gelu",
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": true,
        "tie_word_embeddings": true,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "torch_dtype": "float32",
    })
}

/// The trunk's tensors in GPT-2 layout, from checkpoint-layout `weights` of a model of `c`.
fn gpt2_tensors(
    c: &GPTConfig,
    weights: &HashMap<String, HostTensor>,
    path: &Path,
) -> Result<Vec<(String, HostTensor)>> {
    let get = |name: &str| {
        weights.get(name).cloned().ok_or_else(|| {
            Error::checkpoint(
                path,
                format!("tensor {name} is missing from the checkpoint"),
            )
        })
    };
    let zeros = |n: usize| HostTensor {
        shape: vec![n],
        data: vec![0.0; n],
    };
    let bias = |name: String, n: usize| -> (String, HostTensor) {
        let t = weights.get(&name).cloned().unwrap_or_else(|| zeros(n));
        (name, t)
    };
    let e = c.n_embd;
    let mut out = vec![
        (
            "transformer.wte.weight".to_string(),
            get("transformer.wte.weight")?,
        ),
        (
            "transformer.wpe.weight".to_string(),
            get("transformer.wpe.weight")?,
        ),
    ];
    let layer_norm = |out: &mut Vec<_>, p: &str| -> Result<()> {
        out.push((format!("{p}.weight"), get(&format!("{p}.weight"))?));
        out.push(bias(format!("{p}.bias"), e));
        Ok(())
    };
    let conv1d = |out: &mut Vec<_>, p: &str, width: usize| -> Result<()> {
        out.push((
            format!("{p}.weight"),
            get(&format!("{p}.weight"))?.transposed(),
        ));
        out.push(bias(format!("{p}.bias"), width));
        Ok(())
    };
    for i in 0..c.n_layer {
        let p = format!("transformer.h.{i}");
        layer_norm(&mut out, &format!("{p}.ln_1"))?;
        conv1d(&mut out, &format!("{p}.attn.c_attn"), 3 * e)?;
        conv1d(&mut out, &format!("{p}.attn.c_proj"), e)?;
        layer_norm(&mut out, &format!("{p}.ln_2"))?;
        conv1d(&mut out, &format!("{p}.mlp.c_fc"), 4 * e)?;
        conv1d(&mut out, &format!("{p}.mlp.c_proj"), e)?;
    }
    layer_norm(&mut out, "transformer.ln_f")?;
    Ok(out)
}

/// Writes the GPT-2 files of checkpoint `ck` into directory `dir`: config.json,
/// model.safetensors and the tokenizer (vocab.json + merges.txt for GPT-2 BPE; nanoGPT's
/// meta.pkl for a character vocabulary, which `transformers` has no class for).
fn write_gpt2(ck: &Checkpoint, dir: &Path) -> Result<Vec<String>> {
    let tokenizer = ck.tokenizer()?;
    let bpe = matches!(tokenizer, Tokenizer::Bpe);
    let config = serde_json::to_vec_pretty(&config_json(&ck.config, bpe))
        .map_err(|e| Error::Other(format!("cannot serialise config.json: {e}")))?;
    let tensors = gpt2_tensors(&ck.config, &ck.weights, &ck.weights_path())?;
    fsutil::write_bytes_atomic(&dir.join("config.json"), &config)?;
    fsutil::write_bytes_atomic(
        &dir.join("model.safetensors"),
        &safetensors::to_bytes(&tensors)?,
    )?;
    let mut files = vec!["config.json".to_string(), "model.safetensors".to_string()];
    match &tokenizer {
        Tokenizer::Bpe => {
            let (vocab, merges) = gpt2_files::files()?;
            let tc = serde_json::json!({
                "tokenizer_class": "GPT2Tokenizer",
                "model_max_length": ck.config.block_size,
                "bos_token": "<|endoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "add_prefix_space": false,
            });
            fsutil::write_bytes_atomic(&dir.join(gpt2_files::VOCAB), vocab.as_bytes())?;
            fsutil::write_bytes_atomic(&dir.join(gpt2_files::MERGES), merges.as_bytes())?;
            fsutil::write_bytes_atomic(
                &dir.join("tokenizer_config.json"),
                tc.to_string().as_bytes(),
            )?;
            files.extend(
                [
                    gpt2_files::VOCAB,
                    gpt2_files::MERGES,
                    "tokenizer_config.json",
                ]
                .map(String::from),
            );
        }
        Tokenizer::Char(v) => {
            v.save_pickle(&dir.join(super::META))?;
            files.push(super::META.to_string());
        }
    }
    Ok(files)
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    pub mode: Mode,
    /// File names inside the output directory.
    pub files: Vec<String>,
}

/// Writes checkpoint `path` as a Hugging Face GPT-2 directory `out` (atomically). A reward
/// model's trunk is written the same way, its head as `reward_head.safetensors` (checkpoint
/// names, Linear weights `[out, in]`), its configuration as `reward_config.json`, its feature
/// generator as `feature_model/` and its reference models as `reference_model/`,
/// `reference_model_2/`, … (GPT-2 as well),
/// its `lexicon.tsv`, and a README of how to score.
pub fn export(path: &Path, out: &Path) -> Result<Exported> {
    let ck = Checkpoint::open(path)?;
    let _lock = crate::util::lock::DirLock::acquire(out)?;
    let mut files = Vec::new();
    fsutil::write_dir_atomic(out, |tmp| {
        files = write_gpt2(&ck, tmp)?;
        if ck.config.mode == Mode::Reward {
            files.extend(write_reward_parts(&ck, tmp)?);
        }
        Ok(())
    })?;
    Ok(Exported {
        mode: ck.config.mode,
        files,
    })
}

/// The reward model's files beside its GPT-2 trunk.
fn write_reward_parts(ck: &Checkpoint, dir: &Path) -> Result<Vec<String>> {
    let mut head: Vec<(String, HostTensor)> = ck
        .weights
        .iter()
        .filter(|(n, _)| n.starts_with("reward_head."))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    head.sort_by(|a, b| a.0.cmp(&b.0));
    fsutil::write_bytes_atomic(
        &dir.join("reward_head.safetensors"),
        &safetensors::to_bytes(&head)?,
    )?;
    let c = &ck.config;
    let rc = serde_json::json!({
        "reward_head": c.reward_head.as_str(),
        "pooling": c.pooling.as_str(),
        "reward_head_hidden_dim": c.reward_head_hidden_dim,
        "reward_features": c.reward_features,
        "white_box": c.white_box,
        "reference": c.reference,
        "reference_models": c.reference_count(),
        "lexicon": c.lexicon,
        "reward_context": c.reward_context,
        "feature_temperature": c.feature_temperature,
        "feature_top_k": c.feature_top_k,
    });
    let rc = serde_json::to_vec_pretty(&rc)
        .map_err(|e| Error::Other(format!("cannot serialise reward_config.json: {e}")))?;
    fsutil::write_bytes_atomic(&dir.join("reward_config.json"), &rc)?;
    let mut files = vec![
        "reward_head.safetensors".to_string(),
        "reward_config.json".to_string(),
    ];
    let references = (0..ck.config.reference_count()).map(super::reference_dir);
    for name in std::iter::once(FEATURE_MODEL.to_string()).chain(references) {
        let features = ck.path.join(&name);
        if features.join(super::CONFIG).exists() {
            let fm = Checkpoint::open(&features)?;
            for f in write_gpt2(&fm, &dir.join(&name))? {
                files.push(format!("{name}/{f}"));
            }
        }
    }
    let lexicon = ck.path.join("lexicon.tsv");
    if lexicon.exists() {
        fsutil::write_bytes_atomic(&dir.join("lexicon.tsv"), &fsutil::read(&lexicon)?)?;
        files.push("lexicon.tsv".to_string());
    }
    let readme = reward_readme(c);
    fsutil::write_bytes_atomic(&dir.join("README.md"), readme.as_bytes())?;
    files.push("README.md".to_string());
    Ok(files)
}

/// How to score with an exported reward model.
fn reward_readme(c: &GPTConfig) -> String {
    let common = "# A nanoreward reward model, exported for Hugging Face `transformers`\n\n\
        The trunk is a GPT-2 (`config.json`, `model.safetensors`); the reward head is in \
        `reward_head.safetensors` (PyTorch `nn.Linear` layout: weights `[out, in]`), described by \
        `reward_config.json`. The trunk's state of every token is `GPT2Model`'s \
        `last_hidden_state` (after the final LayerNorm).\n\n";
    let how = match c.reward_head {
        RewardHeadKind::Pooled => format!(
            "## Scoring (pooled head, pooling = \"{}\")\n\n```python\n\
import torch\nfrom safetensors.torch import load_file\nfrom transformers import GPT2Model\n\
trunk = GPT2Model.from_pretrained(DIR).eval()\nhead = load_file(f\"{{DIR}}/reward_head.safetensors\")\n\
h = trunk(ids).last_hidden_state            # ids: [B, T] token ids, T <= n_positions\n\
pooled = {}\n\
z = torch.relu(pooled @ head[\"reward_head.0.weight\"].T + head[\"reward_head.0.bias\"])\n\
logits = z @ head[\"reward_head.2.weight\"].T + head[\"reward_head.2.bias\"]\n\
p_natural = logits.softmax(-1)[:, 0]\n```\n",
            c.pooling.as_str(),
            match c.pooling {
                crate::model::Pooling::Last => "h[:, -1]",
                crate::model::Pooling::Mean => "h.mean(1)",
            }
        ),
        RewardHeadKind::Token => format!(
            "## Scoring (token head)\n\n\
The head reads, for every token, the trunk's state concatenated with {} features: the \
generator's white-box view of the token (from `feature_model/`, read at temperature {} and \
top-k {}), with `reference` the reference model's view (from `reference_model/`; with \
`reference_models` > 1 the mean of the next-token distributions of `reference_model/`, \
`reference_model_2/`, …) and the \
lexicon channel (`lexicon.tsv`); then `reward_head.0` + ReLU, \
{}`reward_head.2` gives the logit of P(natural) per token, and the window's P(natural) is the \
median of the change-point posterior over the cut. The features are defined in nanoreward's \
`src/reward/features.rs` and `src/reward/lexicon.rs`; the simplest way to score is \
`nanoreward score CHECKPOINT` on the original checkpoint. The trunk alone (hidden states) and \
the feature generator (a GPT-2 language model) load in `transformers` directly.\n",
            c.reward_features,
            c.feature_temperature,
            c.feature_top_k,
            if c.reward_context > 0 {
                format!(
                    "the {} neighbours on each side concatenated through `reward_head.context` + ReLU, ",
                    c.reward_context
                )
            } else {
                String::new()
            }
        ),
    };
    format!("{common}{how}")
}
