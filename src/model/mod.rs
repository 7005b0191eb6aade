//! The GPT: nanoGPT's architecture (wte + wpe, pre-LayerNorm blocks with causal self-attention
//! and a GELU MLP, ln_f, lm_head tied to wte) and its reward mode (trunk + `reward_head`).
//!
//! Parameters are plain burn tensors held in named fields whose names map 1:1 onto nanoGPT's
//! `state_dict` keys (see [`GPT::named_params`]). Linear weights are held `[in, out]` (burn's
//! layout); checkpoints store them `[out, in]` like PyTorch. Keeping the parameters as plain
//! tensors lets the training loop, the optimizer and checkpoints treat the model generically
//! while this file stays the one place that knows the architecture.
//!
//! On the CPU (Flex) backend, GELU, LayerNorm and whole-sequence causal attention run as fused
//! kernels with their own backward passes (`model/fused.rs`, `model/attention.rs`); elsewhere,
//! and inside [`with_burn_ops`], the same functions use burn's ops.

use crate::util::{device, to_host};
use crate::{Error, Result};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::module::{attention, embedding, linear};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
pub use params::Param;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

mod attention;
mod lm_head;

/// Logits the chunked lm_head + cross-entropy holds at once (rows per chunk = this / vocab).
pub fn lm_head_chunk_logits() -> usize {
    lm_head::CHUNK_LOGITS
}
mod fused;
mod params;
mod precision;
pub use fused::{
    chunked_sum, exp_nonpositive, gelu, lane_max, lane_sum, layer_norm, lm_head_cross_entropy,
    lm_head_entropy, with_burn_ops,
};
pub(crate) use lm_head::log_sum_exp;
pub use precision::Precision;

/// A one-layer GPT 8 wide with two heads and biases, for the unit tests of code that runs models.
#[cfg(test)]
pub(crate) fn tiny_test_config(vocab_size: usize, block_size: usize) -> GPTConfig {
    GPTConfig {
        block_size,
        vocab_size,
        n_layer: 1,
        n_head: 2,
        n_embd: 8,
        bias: true,
        ..Default::default()
    }
}

/// Whether the model predicts next tokens or scores sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Language model: logits over the vocabulary through the tied lm_head.
    #[default]
    Generator,
    /// Reward model: [P(natural), P(synthetic)] per sequence through `reward_head`.
    Reward,
}

crate::choice! {
    /// How the reward head turns the trunk's states into one vector per sequence.
    pub enum Pooling("pooling") {
        /// The last position, which sees the whole sequence through causal attention.
        #[default]
        Last = "last",
        /// The mean over positions.
        Mean = "mean",
    }
}

crate::choice! {
    /// What the reward head predicts.
    pub enum RewardHeadKind("reward_head") {
        /// One [P(natural), P(synthetic)] pair per sequence from the pooled trunk state (the
        /// seed's recipe).
        #[default]
        Pooled = "pooled",
        /// P(natural) of every token, from its trunk state, its white-box features and a window
        /// of its neighbours; the sequence's pair comes from the change-point posterior.
        Token = "token",
    }
}

/// Model hyper-parameters; field names and defaults are nanoGPT's `GPTConfig` (the `reward_*`
/// and `feature_*` fields describe the reward head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GPTConfig {
    pub block_size: usize,
    pub vocab_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub dropout: f64,
    pub bias: bool,
    pub mode: Mode,
    pub reward_head_hidden_dim: usize,
    pub pooling: Pooling,
    pub reward_head: RewardHeadKind,
    /// Features per token the token head reads (0 = none): the white-box channel's, the
    /// reference channel's and the lexicon channel's, in that order.
    pub reward_features: usize,
    /// Whether the token head reads the generator's white-box features of every token.
    pub white_box: bool,
    /// Whether the token head reads a reference language model's view of every token
    /// (`reference_model/` in the checkpoint; only with `white_box`).
    pub reference: bool,
    /// How many models the reference is a mixture of (`reference_model/`, `reference_model_2/`,
    /// …); 0 (checkpoints before mixtures, and not written) reads as 1 with `reference`.
    #[serde(skip_serializing_if = "is_single")]
    pub reference_models: usize,
    /// Whether the token head reads the lexicon channel (`lexicon.tsv` in the checkpoint).
    pub lexicon: bool,
    /// Neighbours on each side a token's prediction sees in the token head (0 = none).
    pub reward_context: usize,
    /// The sampling temperature and top-k (0 = none) the white-box features are read with: those
    /// the reward data was generated with.
    pub feature_temperature: f64,
    pub feature_top_k: usize,
}

impl Default for GPTConfig {
    fn default() -> Self {
        Self {
            block_size: 1024,
            vocab_size: 50304,
            n_layer: 12,
            n_head: 12,
            n_embd: 768,
            dropout: 0.0,
            bias: true,
            mode: Mode::Generator,
            reward_head_hidden_dim: 256,
            pooling: Pooling::Last,
            reward_head: RewardHeadKind::Pooled,
            reward_features: 0,
            white_box: false,
            reference: false,
            reference_models: 0,
            lexicon: false,
            reward_context: 0,
            feature_temperature: 1.0,
            feature_top_k: 0,
        }
    }
}

/// Whether a mixture count is the single model a config without one means.
fn is_single(n: &usize) -> bool {
    *n <= 1
}

impl GPTConfig {
    /// How many reference models the token head reads (0 without the reference channel).
    pub fn reference_count(&self) -> usize {
        if self.reference {
            self.reference_models.max(1)
        } else {
            0
        }
    }

    /// Checks the shape constraints; every violation is a clear error.
    pub fn validate(&self) -> Result<()> {
        let pos = [
            ("block_size", self.block_size),
            ("vocab_size", self.vocab_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
        ];
        for (name, v) in pos {
            if v == 0 {
                return Err(Error::Config(format!("{name} must be positive")));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(Error::Config(format!(
                "n_embd ({}) must be divisible by n_head ({})",
                self.n_embd, self.n_head
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if self.mode == Mode::Reward && self.reward_head_hidden_dim == 0 {
            return Err(Error::Config(
                "reward_head_hidden_dim must be positive".into(),
            ));
        }
        if !(self.feature_temperature.is_finite() && self.feature_temperature > 0.0) {
            return Err(Error::Config(format!(
                "feature_temperature must be > 0, got {}",
                self.feature_temperature
            )));
        }
        Ok(())
    }
}

/// A linear layer; `weight` is `[in, out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor<2>,
    pub bias: Option<Tensor<1>>,
}

/// Weight initialisation from its own seeded RNG (not the backend's process-wide one, which any
/// concurrent work can advance), so a seed always gives the same model.
struct Init<'a> {
    rng: ChaCha8Rng,
    device: &'a Device,
}

impl<'a> Init<'a> {
    fn new(seed: u64, device: &'a Device) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device,
        }
    }

    /// N(0, std²) samples (Box–Muller) as a `[rows, cols]` tensor.
    fn normal(&mut self, shape: [usize; 2], std: f64) -> Tensor<2> {
        let n = shape[0] * shape[1];
        let mut v = Vec::with_capacity(n + 1);
        while v.len() < n {
            let u1 = 1.0 - self.rng.random::<f64>();
            let u2 = self.rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt() * std;
            let a = std::f64::consts::TAU * u2;
            v.push((r * a.cos()) as f32);
            v.push((r * a.sin()) as f32);
        }
        v.truncate(n);
        Tensor::from_data(TensorData::new(v, shape), self.device)
    }
}

impl Linear {
    fn new(d_in: usize, d_out: usize, bias: bool, std: f64, init: &mut Init) -> Self {
        Self {
            weight: init.normal([d_in, d_out], std),
            bias: bias.then(|| Tensor::zeros([d_out], init.device)),
        }
    }

    /// `x · weight + bias`, the product at precision `p`.
    fn forward<const D: usize>(&self, x: Tensor<D>, p: Precision) -> Tensor<D> {
        match p {
            Precision::Float32 => linear(x, self.weight.clone(), self.bias.clone()),
            Precision::Bfloat16 => {
                let w = self.weight.clone().unsqueeze::<D>();
                let y = p.matmul(x, w);
                match &self.bias {
                    Some(b) => y + b.clone().unsqueeze::<D>(),
                    None => y,
                }
            }
        }
    }
}

/// LayerNorm over the last dimension (eps 1e-5, like PyTorch).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Tensor<1>,
    pub bias: Option<Tensor<1>>,
}

impl LayerNorm {
    fn new(dim: usize, bias: bool, device: &Device) -> Self {
        Self {
            weight: Tensor::ones([dim], device),
            bias: bias.then(|| Tensor::zeros([dim], device)),
        }
    }

    fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        layer_norm(x, self.weight.clone(), self.bias.clone())
    }
}

/// Causal self-attention with a fused q/k/v projection.
#[derive(Debug, Clone)]
pub struct Attention {
    pub c_attn: Linear,
    pub c_proj: Linear,
}

/// The two-layer GELU MLP.
#[derive(Debug, Clone)]
pub struct Mlp {
    pub c_fc: Linear,
    pub c_proj: Linear,
}

/// One pre-LayerNorm transformer block.
#[derive(Debug, Clone)]
pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: Attention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
}

/// The reward head. Pooled: n_embd → hidden → ReLU → 2 (softmax applied in the forward pass).
/// Token: [state, features] → hidden → ReLU → (a window of 2r + 1 neighbours → hidden → ReLU)
/// → 1 logit of P(natural) per token.
#[derive(Debug, Clone)]
pub struct RewardHead {
    pub fc: Linear,
    pub context: Option<Linear>,
    pub out: Linear,
}

/// Causal attention written out (scores, mask, softmax, weighted sum) for the cases burn's fused
/// `attention` does not cover: dropout on the attention weights, and several queries after
/// `past` cached positions (query i sits at absolute position past + i and sees keys ≤ past + i).
pub fn explicit_causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    past: usize,
    on_weights: impl FnOnce(Tensor<4>) -> Tensor<4>,
) -> Tensor<4> {
    let [_, _, t, hd] = q.dims();
    let keys = k.dims()[2];
    let scale = 1.0 / (hd as f64).sqrt();
    let att = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
    // tril_mask marks (true) the entries above the shifted diagonal: keys after the query.
    let mask = Tensor::<2, Bool>::tril_mask([t, keys], past as i64, &att.device()).unsqueeze::<4>();
    let att = softmax(att.mask_fill(mask, f32::NEG_INFINITY), 3);
    on_weights(att).matmul(v)
}

/// The dropout noise of training forward passes, drawn from its own seeded RNG on the host so a
/// run is reproducible (and resumable) whatever the threading. Passing one to a forward pass
/// turns dropout on; `None` is evaluation mode.
pub struct Dropout(RefCell<ChaCha8Rng>);

impl Dropout {
    /// Noise from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(RefCell::new(ChaCha8Rng::seed_from_u64(seed)))
    }

    /// `n` inverted-dropout multipliers: 0 with probability `p`, else 1/(1-p).
    fn mask(&self, n: usize, p: f64) -> Vec<f32> {
        let mut rng = self.0.borrow_mut();
        let keep = 1.0 / (1.0 - p) as f32;
        let threshold = (p * 4_294_967_296.0) as u64;
        (0..n)
            .map(|_| {
                if (rng.next_u32() as u64) < threshold {
                    0.0
                } else {
                    keep
                }
            })
            .collect()
    }
}

/// Each position's vector next to those of its `r` neighbours on either side (zeros beyond the
/// ends): `[B, T, H]` → `[B, T, (2r + 1)·H]`.
fn neighbours(h: Tensor<3>, r: usize) -> Tensor<3> {
    let [b, t, c] = h.dims();
    let dev = h.device();
    let pad = Tensor::<3>::zeros([b, r, c], &dev);
    let padded = Tensor::cat(vec![pad.clone(), h, pad], 1);
    Tensor::cat(
        (0..2 * r + 1)
            .map(|j| padded.clone().narrow(1, j, t))
            .collect(),
        2,
    )
}

/// Keys and values of earlier positions, one pair per layer, each `[B, n_head, T, head_dim]`:
/// on the CPU in host buffers written in place ([`attention::HostKv`]), elsewhere as tensors.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<CacheSlot>,
    len: usize,
}

/// One layer's cache.
#[derive(Debug, Clone)]
enum CacheSlot {
    /// Not written yet (the first forward picks the kind).
    Empty,
    Tensors(Box<(Tensor<4>, Tensor<4>)>),
    Host(attention::HostKv),
}

impl KvCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first forward.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The lm_head's weights as a sampling loop reads them (see [`GPT::host_head`]).
pub struct HostHead(Option<Vec<f32>>);

/// nanoGPT's GPT.
#[derive(Debug, Clone)]
pub struct GPT {
    pub config: GPTConfig,
    /// Token embeddings `[vocab_size, n_embd]`; also the (tied) lm_head.
    pub wte: Tensor<2>,
    /// Position embeddings `[block_size, n_embd]`.
    pub wpe: Tensor<2>,
    pub h: Vec<Block>,
    pub ln_f: LayerNorm,
    pub reward_head: Option<RewardHead>,
    /// The precision of the matrix products (a run's setting, not saved: weights are f32).
    pub precision: Precision,
}

impl GPT {
    /// A freshly initialised model with nanoGPT's scheme: N(0, 0.02) weights and embeddings,
    /// N(0, 0.02/sqrt(2·n_layer)) for every c_proj, zero biases, unit LayerNorm weights. The same
    /// seed always gives the same weights.
    pub fn new(config: &GPTConfig, device: &Device, seed: u64) -> Result<Self> {
        config.validate()?;
        let c = config;
        let std = 0.02;
        let proj_std = 0.02 / ((2 * c.n_layer) as f64).sqrt();
        let mut init = Init::new(seed, device);
        let wte = init.normal([c.vocab_size, c.n_embd], std);
        let wpe = init.normal([c.block_size, c.n_embd], std);
        let h = (0..c.n_layer)
            .map(|_| Block {
                ln_1: LayerNorm::new(c.n_embd, c.bias, device),
                attn: Attention {
                    c_attn: Linear::new(c.n_embd, 3 * c.n_embd, c.bias, std, &mut init),
                    c_proj: Linear::new(c.n_embd, c.n_embd, c.bias, proj_std, &mut init),
                },
                ln_2: LayerNorm::new(c.n_embd, c.bias, device),
                mlp: Mlp {
                    c_fc: Linear::new(c.n_embd, 4 * c.n_embd, c.bias, std, &mut init),
                    c_proj: Linear::new(4 * c.n_embd, c.n_embd, c.bias, proj_std, &mut init),
                },
            })
            .collect();
        let reward_head = (c.mode == Mode::Reward).then(|| Self::new_reward_head(c, device, seed));
        Ok(Self {
            config: c.clone(),
            wte,
            wpe,
            h,
            ln_f: LayerNorm::new(c.n_embd, c.bias, device),
            reward_head,
            precision: Precision::Float32,
        })
    }

    /// A fresh reward head (N(0, 0.02) weights, zero biases) from its own stream of `seed`.
    pub fn new_reward_head(c: &GPTConfig, device: &Device, seed: u64) -> RewardHead {
        let mut init = Init::new(seed ^ 0x7265_7761_7264_6864, device);
        let h = c.reward_head_hidden_dim;
        match c.reward_head {
            RewardHeadKind::Pooled => RewardHead {
                fc: Linear::new(c.n_embd, h, true, 0.02, &mut init),
                context: None,
                out: Linear::new(h, 2, true, 0.02, &mut init),
            },
            RewardHeadKind::Token => {
                let fc = Linear::new(c.n_embd + c.reward_features, h, true, 0.02, &mut init);
                let out = Linear::new(h, 1, true, 0.02, &mut init);
                let width = 2 * c.reward_context + 1;
                let context = (c.reward_context > 0)
                    .then(|| Linear::new(width * h, h, true, 0.02, &mut init));
                RewardHead { fc, context, out }
            }
        }
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.wte.device()
    }

    /// Token ids `[B, T]` (row-major) as an int tensor on the model's device.
    pub fn tokens(&self, ids: &[i64], batch: usize) -> Tensor<2, Int> {
        let t = ids.len() / batch.max(1);
        Tensor::from_data(TensorData::new(ids.to_vec(), [batch, t]), &self.device())
    }

    /// The inverted-dropout multipliers for a tensor of shape `dims`, drawn from `drop`'s noise;
    /// `None` when dropout is off (evaluation, or p = 0).
    fn dropout_mask<const D: usize>(
        &self,
        dims: [usize; D],
        drop: Option<&Dropout>,
        device: &Device,
    ) -> Option<Tensor<D>> {
        let p = self.config.dropout;
        let d = drop.filter(|_| p > 0.0)?;
        let n: usize = dims.iter().product();
        Some(Tensor::from_data(
            TensorData::new(d.mask(n, p), dims),
            device,
        ))
    }

    fn dropout<const D: usize>(&self, x: Tensor<D>, drop: Option<&Dropout>) -> Tensor<D> {
        match self.dropout_mask(x.dims(), drop, &x.device()) {
            Some(mask) => x * mask,
            None => x,
        }
    }

    /// Self-attention of `x` `[B, T, C]`. With a cache slot, the cached keys/values of earlier
    /// positions are used and the new ones appended; with `last_only`, only the last query is
    /// worked out.
    fn attend(
        &self,
        block: &Block,
        x: Tensor<3>,
        mut cache: Option<&mut CacheSlot>,
        drop: Option<&Dropout>,
        last_only: bool,
    ) -> Tensor<3> {
        let [b, t_in, c] = x.dims();
        let nh = self.config.n_head;
        let hd = c / nh;
        let qkv = block.attn.c_attn.forward(x, self.precision);
        let dropped_weights = drop.is_some() && self.config.dropout > 0.0;
        if cache.is_none() && !last_only && t_in > 1 && fused::applies(&qkv) {
            // The whole causal pass in one fused kernel where the backend has it; its dropout
            // noise is the mask the explicit path below would multiply the weights by.
            let mask = self.dropout_mask([b, nh, t_in, t_in], drop, &qkv.device());
            let y = fused::causal_attention(qkv, mask, nh);
            return self.dropout(block.attn.c_proj.forward(y, self.precision), drop);
        }
        if let Some(slot) = cache
            .as_deref_mut()
            .filter(|_| fused::applies(&qkv) && !last_only)
        {
            return self.attend_host(block, qkv, slot, drop);
        }
        let heads = |i: usize| {
            qkv.clone()
                .narrow(2, i * c, c)
                .reshape([b, t_in, nh, hd])
                .swap_dims(1, 2)
        };
        let (mut q, mut k, mut v) = (heads(0), heads(1), heads(2));
        // Only the last query: it sees every key, so no mask is needed.
        let t = if last_only { 1 } else { t_in };
        if last_only {
            q = q.narrow(2, t_in - 1, 1);
        }
        let past = match cache {
            Some(slot) => {
                let (pk, pv) = match std::mem::replace(slot, CacheSlot::Empty) {
                    CacheSlot::Tensors(kv) => (Some(kv.0), Some(kv.1)),
                    _ => (None, None),
                };
                let past = pk.as_ref().map_or(0, |t| t.dims()[2]);
                if let (Some(pk), Some(pv)) = (pk, pv) {
                    k = Tensor::cat(vec![pk, k], 2);
                    v = Tensor::cat(vec![pv, v], 2);
                }
                *slot = CacheSlot::Tensors(Box::new((k.clone(), v.clone())));
                past
            }
            None => 0,
        };
        let y = if dropped_weights {
            // Explicit attention so the attention weights can be dropped out, as in nanoGPT.
            explicit_causal_attention(q, k, v, past, |att| self.dropout(att, drop))
        } else if past == 0 || t == 1 {
            // Prefill or training (causal), or one new token that may see every cached key.
            let opts = AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: past == 0 && t > 1,
            };
            attention(q, k, v, None, None, opts)
        } else {
            // Several new tokens after a cache: query i (absolute past + i) sees keys ≤ past + i.
            explicit_causal_attention(q, k, v, past, |att| att)
        };
        let y = y.swap_dims(1, 2).reshape([b, t, c]);
        self.dropout(block.attn.c_proj.forward(y, self.precision), drop)
    }

    /// Attention through a host cache (CPU, f32): the new keys and values are written into the
    /// cache in place; a prefill runs the fused causal kernel, a step after it reads the cache.
    fn attend_host(
        &self,
        block: &Block,
        qkv: Tensor<3>,
        slot: &mut CacheSlot,
        drop: Option<&Dropout>,
    ) -> Tensor<3> {
        let [b, t, c3] = qkv.dims();
        let c = c3 / 3;
        if !matches!(slot, CacheSlot::Host(_)) {
            let cap = self.config.block_size;
            *slot = CacheSlot::Host(attention::HostKv::new(b, c, self.config.n_head, cap));
        }
        let CacheSlot::Host(kv) = slot else {
            unreachable!("the slot was made a host cache above")
        };
        let device = qkv.device();
        let host = to_host(qkv.clone());
        let y = if kv.len() == 0 && t > 1 {
            kv.append(&host, t);
            fused::causal_attention(qkv, None, self.config.n_head)
        } else {
            Tensor::from_data(TensorData::new(kv.step(&host, t), [b, t, c]), &device)
        };
        self.dropout(block.attn.c_proj.forward(y, self.precision), drop)
    }

    /// The trunk: embeddings, blocks and ln_f. With a cache, the tokens sit after its cached
    /// positions. With `last_only`, the last block works out the last position only (the one
    /// whose logits a cropped-context sampling step needs).
    fn trunk(
        &self,
        idx: Tensor<2, Int>,
        mut cache: Option<&mut KvCache>,
        drop: Option<&Dropout>,
        last_only: bool,
    ) -> Tensor<3> {
        let [_, t] = idx.dims();
        let pos0 = cache.as_ref().map_or(0, |c| c.len);
        let tok = embedding(self.wte.clone(), idx);
        let pos = self.wpe.clone().narrow(0, pos0, t).unsqueeze::<3>();
        let mut x = self.dropout(tok + pos, drop);
        if let Some(c) = cache.as_deref_mut()
            && c.layers.is_empty()
        {
            c.layers = vec![CacheSlot::Empty; self.h.len()];
        }
        let n_layer = self.h.len();
        for (i, block) in self.h.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            let last = last_only && i + 1 == n_layer;
            let a = self.attend(block, block.ln_1.forward(x.clone()), slot, drop, last);
            x = if last { x.narrow(1, t - 1, 1) } else { x } + a;
            let m = block
                .mlp
                .c_fc
                .forward(block.ln_2.forward(x.clone()), self.precision);
            x = x + self.dropout(block.mlp.c_proj.forward(gelu(m), self.precision), drop);
        }
        if let Some(c) = cache {
            c.len = pos0 + t;
        }
        self.ln_f.forward(x)
    }

    fn check_len(&self, t: usize, past: usize) {
        assert!(
            past + t <= self.config.block_size,
            "sequence of {} positions exceeds block_size {}",
            past + t,
            self.config.block_size
        );
    }

    /// Logits `[B, T, vocab]` for every position (generator mode).
    pub fn forward(&self, idx: Tensor<2, Int>, drop: Option<&Dropout>) -> Tensor<3> {
        self.check_len(idx.dims()[1], 0);
        match drop {
            None => self.by_rows(idx, |m, idx| m.logits(idx, None)),
            Some(_) => self.logits(idx, drop),
        }
    }

    /// The logits `[B, T, vocab]` of every position, on the calling thread.
    fn logits(&self, idx: Tensor<2, Int>, drop: Option<&Dropout>) -> Tensor<3> {
        let [b, t] = idx.dims();
        let x = self.trunk(idx, None, drop, false);
        self.lm_head(x.reshape([b * t, self.config.n_embd]))
            .reshape([b, t, self.config.vocab_size])
    }

    /// `f` of the rows of `idx` `[B, T]`: on the CPU, outside worker threads, the rows are split
    /// over the spare threads (the Flex backend runs most work on the calling thread) and the
    /// parts joined in order; as one call elsewhere.
    fn by_rows(
        &self,
        idx: Tensor<2, Int>,
        f: impl Fn(&GPT, Tensor<2, Int>) -> Tensor<3> + Sync,
    ) -> Tensor<3> {
        let b = idx.dims()[0];
        let shards = if fused::applies(&self.wpe) {
            device::spare_threads().min(b)
        } else {
            1
        };
        if shards <= 1 {
            return f(self, idx);
        }
        let ranges = device::row_ranges(b, shards);
        let parts = device::par_map(&ranges, shards, |&(r0, r1)| {
            f(self, idx.clone().narrow(0, r0, r1 - r0))
        });
        Tensor::cat(parts, 0)
    }

    /// Calls `f(row, logits)` for every position of `idx` `[B, T]` in order (row = b·T + t). On
    /// the CPU the lm_head runs chunk by chunk, so the `[B, T, vocab]` logits are never held at
    /// once (a 50k vocabulary); other devices compute them in one product.
    pub fn visit_logits(&self, idx: Tensor<2, Int>, f: impl FnMut(usize, &[f32])) {
        let [b, t] = idx.dims();
        let x = self.hidden_states(idx).reshape([b * t, self.config.n_embd]);
        self.visit_state_logits(x, f);
    }

    /// [`GPT::visit_logits`] of final trunk states `x` `[rows, n_embd]` already computed (by
    /// [`GPT::hidden_states`]).
    pub fn visit_state_logits(&self, x: Tensor<2>, mut f: impl FnMut(usize, &[f32])) {
        let (c, v) = (self.config.n_embd, self.config.vocab_size);
        if fused::applies(&x) {
            lm_head::for_each_row(&to_host(x), &to_host(self.wte.clone()), c, f);
        } else {
            let host = to_host(self.lm_head(x));
            host.chunks_exact(v)
                .enumerate()
                .for_each(|(r, row)| f(r, row));
        }
    }

    /// Mean cross-entropy of next-token prediction; `targets` is `[B, T]`.
    pub fn loss(
        &self,
        idx: Tensor<2, Int>,
        targets: Tensor<2, Int>,
        drop: Option<&Dropout>,
    ) -> Tensor<1> {
        let [b, t] = idx.dims();
        self.check_len(t, 0);
        let x = self.trunk(idx, None, drop, false);
        let x = x.reshape([b * t, self.config.n_embd]);
        fused::lm_head_cross_entropy(
            x,
            self.wte.clone(),
            targets.reshape([b * t]),
            self.precision,
        )
        .mean()
    }

    /// Feeds `idx` `[B, T_new]` after the cached positions and returns the logits of the last
    /// position `[B, vocab]`. The caller keeps `cache.len() + T_new ≤ block_size`.
    pub fn forward_cached(&self, idx: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<2> {
        self.lm_head(self.last_state_cached(idx, cache))
    }

    /// The trunk's state `[B, n_embd]` at the last position of `idx` fed after the cache.
    fn last_state_cached(&self, idx: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<2> {
        let [b, t] = idx.dims();
        self.check_len(t, cache.len);
        let x = self.trunk(idx, Some(cache), None, false);
        x.narrow(1, t - 1, 1).reshape([b, self.config.n_embd])
    }

    /// Logits `[B, vocab]` of the last position of `idx` `[B, T]`, without a cache: what a
    /// sampling step needs once the context is cropped to block_size (learned positions mean
    /// every cached key would change). The last block skips the other positions.
    pub fn forward_last(&self, idx: Tensor<2, Int>) -> Tensor<2> {
        self.lm_head(self.last_state(idx))
    }

    /// The trunk's state `[B, n_embd]` at the last position of `idx`, without a cache.
    fn last_state(&self, idx: Tensor<2, Int>) -> Tensor<2> {
        let [b, t] = idx.dims();
        self.check_len(t, 0);
        let x = self.trunk(idx, None, None, true);
        x.reshape([b, self.config.n_embd])
    }

    /// What [`GPT::head_into`] needs once per generation: on the CPU, wte rearranged in panels
    /// (`lm_head::panels`) that each step's lm_head product reads as they lie (no packing of the
    /// 50k × n_embd matrix per step); nothing on other devices.
    pub fn host_head(&self) -> HostHead {
        let probe = self.wte.clone();
        if !fused::applies(&probe) {
            return HostHead(None);
        }
        let c = self.config.n_embd;
        let t = lm_head::panels(&to_host(probe), c);
        HostHead(Some(t))
    }

    /// The logits `[B, vocab]` of trunk states `x` `[B, n_embd]` into `out` on the host.
    fn head_into(&self, x: Tensor<2>, head: &HostHead, out: &mut Vec<f32>) {
        let [b, c] = x.dims();
        match &head.0 {
            Some(wt) if fused::applies(&x) => {
                let v = self.config.vocab_size;
                out.resize(b * v, 0.0);
                lm_head::logits_from_panels(out, &to_host(x), wt, c);
            }
            _ => *out = to_host(self.lm_head(x)),
        }
    }

    /// [`GPT::forward_cached`] with the logits written to `out` on the host through `head`.
    pub fn forward_cached_into(
        &self,
        idx: Tensor<2, Int>,
        cache: &mut KvCache,
        head: &HostHead,
        out: &mut Vec<f32>,
    ) {
        self.head_into(self.last_state_cached(idx, cache), head, out);
    }

    /// [`GPT::forward_last`] with the logits written to `out` on the host through `head`.
    pub fn forward_last_into(&self, idx: Tensor<2, Int>, head: &HostHead, out: &mut Vec<f32>) {
        self.head_into(self.last_state(idx), head, out);
    }

    /// The lm_head (tied to wte): logits `[N, vocab]` of trunk states `[N, n_embd]`.
    fn lm_head(&self, x: Tensor<2>) -> Tensor<2> {
        self.precision.matmul(x, self.wte.clone().transpose())
    }

    /// Reward mode: [P(natural), P(synthetic)] per sequence, `[B, 2]`.
    pub fn reward_probs(&self, idx: Tensor<2, Int>, drop: Option<&Dropout>) -> Result<Tensor<2>> {
        self.head_probs(self.pooled(idx, drop))
    }

    /// The trunk's final states `[B, T, n_embd]` (after ln_f), without dropout.
    pub fn hidden_states(&self, idx: Tensor<2, Int>) -> Tensor<3> {
        self.check_len(idx.dims()[1], 0);
        self.trunk(idx, None, None, false)
    }

    /// The trunk's pooled state per sequence, `[B, n_embd]` (the reward head's input).
    pub fn pooled(&self, idx: Tensor<2, Int>, drop: Option<&Dropout>) -> Tensor<2> {
        self.check_len(idx.dims()[1], 0);
        self.pool(self.trunk(idx, None, drop, false))
    }

    fn head(&self) -> Result<&RewardHead> {
        self.reward_head.as_ref().ok_or_else(|| {
            Error::Config("this model has no reward_head (it is a generator)".into())
        })
    }

    /// The reward head on pooled states: softmax(out(relu(fc(pooled)))), `[B, 2]`.
    pub fn head_probs(&self, pooled: Tensor<2>) -> Result<Tensor<2>> {
        let head = self.head()?;
        Ok(softmax(
            head.out.forward(
                relu(head.fc.forward(pooled, self.precision)),
                self.precision,
            ),
            1,
        ))
    }

    /// Token head: the logit of P(natural) of every token, `[B, T]`, from the tokens `idx` and
    /// their white-box features `features` `[B, T, reward_features]` (None when the head reads
    /// none).
    pub fn token_logits(
        &self,
        idx: Tensor<2, Int>,
        features: Option<Tensor<3>>,
        drop: Option<&Dropout>,
    ) -> Result<Tensor<2>> {
        self.check_len(idx.dims()[1], 0);
        self.token_head(self.trunk(idx, None, drop, false), features)
    }

    /// The token head on the trunk's final states `x` `[B, T, n_embd]` (as [`Self::hidden_states`]
    /// gives them) and the tokens' features: the logit of P(natural) of every token, `[B, T]`.
    pub fn token_head(&self, x: Tensor<3>, features: Option<Tensor<3>>) -> Result<Tensor<2>> {
        let [b, t, _] = x.dims();
        let head = self.head()?;
        let x = match features {
            Some(f) => Tensor::cat(vec![x, f], 2),
            None => x,
        };
        let mut h = relu(head.fc.forward(x, self.precision));
        if let Some(ctx) = &head.context {
            h = relu(ctx.forward(neighbours(h, self.config.reward_context), self.precision));
        }
        Ok(head.out.forward(h, self.precision).reshape([b, t]))
    }

    /// Pools trunk states `[B, T, C]` into `[B, C]` by the configured rule.
    pub fn pool(&self, x: Tensor<3>) -> Tensor<2> {
        let [b, t, c] = x.dims();
        match self.config.pooling {
            Pooling::Last => x.narrow(1, t - 1, 1).reshape([b, c]),
            Pooling::Mean => x.mean_dim(1).reshape([b, c]),
        }
    }
}
