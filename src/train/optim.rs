//! PyTorch-exact AdamW (decoupled weight decay on ≥2-D weights only), nanoGPT's learning-rate
//! schedule (linear warmup + cosine decay to min_lr) and global gradient-norm clipping.

use crate::checkpoint::{HostTensor, OptimizerMeta, OptimizerState};
use crate::model::{Dropout, GPT, Param};
use crate::util::device;
use crate::{Error, Result};
use burn::tensor::{Device, Gradients, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// nanoGPT's `get_lr(it)`.
pub fn lr_at(
    it: usize,
    learning_rate: f64,
    warmup_iters: usize,
    lr_decay_iters: usize,
    min_lr: f64,
    decay_lr: bool,
) -> f64 {
    if !decay_lr {
        return learning_rate;
    }
    if it < warmup_iters {
        return learning_rate * (it + 1) as f64 / (warmup_iters + 1) as f64;
    }
    if it > lr_decay_iters {
        return min_lr;
    }
    let span = lr_decay_iters.saturating_sub(warmup_iters).max(1) as f64;
    let ratio = ((it - warmup_iters) as f64 / span).clamp(0.0, 1.0);
    let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
    min_lr + coeff * (learning_rate - min_lr)
}

/// Linear warmup over `warmup` steps, then constant at `learning_rate`, or with `decay =
/// Some((until, min_lr))` nanoGPT's cosine down to `min_lr` at step `until` (GRPO and the reward
/// model; unlike [`lr_at`] without decay, the warmup applies either way).
pub fn warmup_then(
    step: usize,
    learning_rate: f64,
    warmup: usize,
    decay: Option<(usize, f64)>,
) -> f64 {
    match decay {
        Some((until, min_lr)) => lr_at(step, learning_rate, warmup, until, min_lr, true),
        None if step < warmup => learning_rate * (step + 1) as f64 / (warmup + 1) as f64,
        None => learning_rate,
    }
}

/// AdamW hyper-parameters (PyTorch semantics).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// Flattened gradients of the model's parameters, in `named_params` order (`None` = no grad).
pub fn collect_grads(model: &GPT, grads: &Gradients) -> Vec<Option<Tensor<1>>> {
    model
        .named_params()
        .into_iter()
        .map(|(_, p)| match p {
            Param::Vector(t) => t.grad(grads),
            Param::Matrix(t) => t.grad(grads).map(|g| g.flatten(0, 1)),
        })
        .collect()
}

/// Forward and backward of one batch (`x`, `y` row-major `[batch, T]`) split row-wise over
/// `workers` threads, each with its own dropout noise from `dropout_seed` (None = no dropout).
/// The loss is the batch mean times `scale`; returns its value and the summed gradients.
pub fn batch_grads(
    model: &GPT,
    x: &[i64],
    y: &[i64],
    batch: usize,
    workers: usize,
    scale: f64,
    dropout_seed: Option<u64>,
) -> (f64, Vec<Option<Tensor<1>>>) {
    let t = x.len() / batch.max(1);
    let (total, grads, _) = parallel_grads(model, batch, workers, |model, w, r0, r1| {
        let rows = r1 - r0;
        let drop = dropout_seed
            .map(|s| Dropout::new(s ^ (w as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D)));
        let loss = model
            .loss(
                model.tokens(&x[r0 * t..r1 * t], rows),
                model.tokens(&y[r0 * t..r1 * t], rows),
                drop.as_ref(),
            )
            .mul_scalar(scale * rows as f64 / batch as f64);
        (loss, ())
    });
    (total, grads)
}

/// Data-parallel forward and backward: rows `0..rows` are split into `workers` contiguous
/// shards; `loss_of(model, worker, r0, r1)` builds the loss of rows `r0..r1` (already weighted
/// so that the shard losses add up to the batch loss) plus any statistics. Returns the summed
/// loss value, the summed gradients and each shard's statistics. The Flex CPU backend runs most
/// element-wise work on the calling thread, so this is what puts every core to work.
pub fn parallel_grads<S: Send>(
    model: &GPT,
    rows: usize,
    workers: usize,
    loss_of: impl Fn(&GPT, usize, usize, usize) -> (Tensor<1>, S) + Sync,
) -> (f64, Vec<Option<Tensor<1>>>, Vec<S>) {
    let ranges = device::row_ranges(rows, workers);
    let workers = ranges.len();
    let shard = |w: usize| {
        let (r0, r1) = ranges[w];
        // Each worker differentiates its own leaves: burn's autodiff graph is not shared safely
        // between threads that run backward concurrently.
        let model = if workers > 1 {
            model.fresh_leaves()
        } else {
            model.clone()
        };
        let (loss, stats) = loss_of(&model, w, r0, r1);
        let grads = loss.backward();
        let value = loss.inner().into_scalar::<f32>() as f64;
        (value, collect_grads(&model, &grads), stats)
    };
    let parts: Vec<(f64, Vec<Option<Tensor<1>>>, S)> = if workers == 1 {
        vec![shard(0)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers).map(|w| s.spawn(move || shard(w))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    let mut total = 0.0;
    let mut grads = Vec::new();
    let mut stats = Vec::new();
    for (v, g, st) in parts {
        total += v;
        accumulate(&mut grads, g);
        stats.push(st);
    }
    (total, grads, stats)
}

/// Adds `more` into `acc` (gradient accumulation).
pub fn accumulate(acc: &mut Vec<Option<Tensor<1>>>, more: Vec<Option<Tensor<1>>>) {
    if acc.is_empty() {
        *acc = more;
        return;
    }
    for (a, m) in acc.iter_mut().zip(more) {
        *a = match (a.take(), m) {
            (Some(x), Some(y)) => Some(x + y),
            (x, y) => x.or(y),
        };
    }
}

/// Global L2 norm of all gradients (one host sync).
pub fn grad_norm(grads: &[Option<Tensor<1>>]) -> f64 {
    let parts: Vec<Tensor<1>> = grads
        .iter()
        .flatten()
        .map(|g| g.clone().square().sum())
        .collect();
    if parts.is_empty() {
        return 0.0;
    }
    let total: f32 = Tensor::cat(parts, 0).sum().into_scalar();
    (total as f64).sqrt()
}

/// PyTorch's `clip_grad_norm_`: scales every gradient by `max_norm / (norm + 1e-6)` when the
/// global norm exceeds `max_norm`. Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Option<Tensor<1>>], max_norm: f64) -> f64 {
    let norm = grad_norm(grads);
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.iter_mut().flatten() {
            *g = g.clone().mul_scalar(scale);
        }
    }
    norm
}

/// AdamW with its moment estimates, keyed by parameter name.
#[derive(Debug, Clone)]
pub struct AdamW {
    pub config: AdamWConfig,
    /// Number of steps taken.
    pub step: u64,
    /// (exp_avg, exp_avg_sq) per parameter name, flattened.
    pub state: HashMap<String, (Tensor<1>, Tensor<1>)>,
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            step: 0,
            state: HashMap::new(),
        }
    }

    /// The state in checkpoint form (moments on the host).
    pub fn to_state(&self) -> OptimizerState {
        let moments = self
            .state
            .iter()
            .map(|(n, (m, v))| {
                let (m, v) = (m.clone(), v.clone());
                (
                    n.clone(),
                    HostTensor::from_tensor(m),
                    HostTensor::from_tensor(v),
                )
            })
            .collect();
        OptimizerState {
            meta: OptimizerMeta {
                step: self.step,
                config: serde_json::to_value(self.config).unwrap_or_default(),
            },
            moments,
        }
    }

    /// Restores a saved state (read from the checkpoint at `path`) onto `device`.
    pub fn from_state(state: OptimizerState, path: &Path, device: &Device) -> Result<Self> {
        let config: AdamWConfig = serde_json::from_value(state.meta.config)
            .map_err(|e| Error::checkpoint(path, format!("invalid optimizer config: {e}")))?;
        let mut opt = AdamW::new(config);
        opt.step = state.meta.step;
        for (name, m, v) in state.moments {
            opt.state
                .insert(name, (m.to_tensor(device), v.to_tensor(device)));
        }
        Ok(opt)
    }

    /// One update of every parameter that has a gradient. Parameters stay autodiff leaves that
    /// require gradients; a parameter without a gradient (frozen) is left untouched.
    pub fn step(&mut self, model: &mut GPT, grads: Vec<Option<Tensor<1>>>, lr: f64) {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        let mut grads = grads.into_iter();
        let state = &mut self.state;
        // map_params only fails when the closure changes a shape, which this one never does.
        let _ = model.map_params(|name, p| {
            let Some(g) = grads.next().flatten() else {
                return Ok(p);
            };
            let decay = matches!(p, Param::Matrix(_)) && c.weight_decay != 0.0;
            let w = p.flat().inner();
            let (m, v) = match state.remove(name) {
                Some((m, v)) => (
                    m.mul_scalar(c.beta1) + g.clone().mul_scalar(1.0 - c.beta1),
                    v.mul_scalar(c.beta2) + g.square().mul_scalar(1.0 - c.beta2),
                ),
                None => (
                    g.clone().mul_scalar(1.0 - c.beta1),
                    g.square().mul_scalar(1.0 - c.beta2),
                ),
            };
            let w = if decay {
                w.mul_scalar(1.0 - lr * c.weight_decay)
            } else {
                w
            };
            let denom = v.clone().sqrt().div_scalar(bc2_sqrt).add_scalar(c.eps);
            let w = w - (m.clone() / denom).mul_scalar(lr / bc1);
            state.insert(name.to_string(), (m, v));
            let w = w.autodiff();
            Ok(match p {
                Param::Vector(_) => Param::Vector(w.require_grad()),
                Param::Matrix(old) => {
                    let [r, k] = old.dims();
                    Param::Matrix(w.reshape([r, k]).require_grad())
                }
            })
        });
    }
}

/// An exponential moving average of the trainable parameters (Polyak averaging), updated after
/// every optimizer step: a_n = d·a_{n−1} + (1 − d)·w_n from a_0 = 0, read bias-corrected as
/// a_n / (1 − dⁿ) — the average of every step's weights w_1 … w_n, weighted ∝ d^(n − i).
/// Frozen parameters (those without gradients) are not averaged.
#[derive(Debug, Clone)]
pub struct WeightAverage {
    decay: f64,
    updates: u64,
    sums: HashMap<String, Tensor<1>>,
}

impl WeightAverage {
    /// An empty average with decay `decay` in (0, 1).
    pub fn new(decay: f64) -> Self {
        Self {
            decay,
            updates: 0,
            sums: HashMap::new(),
        }
    }

    /// Folds the trainable parameters of `model` (as they are after a step) into the average.
    pub fn update(&mut self, model: &GPT) {
        self.updates += 1;
        let d = self.decay;
        for (name, p) in model.named_params() {
            if !p.is_require_grad() {
                continue;
            }
            let w = p.flat().inner().mul_scalar(1.0 - d);
            let a = match self.sums.remove(&name) {
                Some(a) => a.mul_scalar(d) + w,
                None => w,
            };
            self.sums.insert(name, a);
        }
    }

    /// An inference copy of `model` with every averaged parameter replaced by its average (the
    /// model itself when nothing was averaged yet).
    pub fn apply(&self, model: &GPT) -> GPT {
        let mut m = model.inference();
        let correction = 1.0 - self.decay.powf(self.updates as f64);
        // The averages keep each parameter's size, so map_params cannot fail here.
        let _ = m.map_params(|name, p| {
            let Some(a) = self.sums.get(name) else {
                return Ok(p);
            };
            let a = a.clone().div_scalar(correction);
            Ok(match p {
                Param::Vector(_) => Param::Vector(a),
                Param::Matrix(old) => Param::Matrix(a.reshape(old.dims())),
            })
        });
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GPTConfig;

    /// A one-layer GPT two wide, with `vocab` tokens.
    fn tiny_config(vocab: usize) -> GPTConfig {
        GPTConfig {
            block_size: 2,
            vocab_size: vocab,
            n_layer: 1,
            n_head: 1,
            n_embd: 2,
            bias: true,
            ..Default::default()
        }
    }

    #[test]
    fn lr_schedule_matches_nanogpt() {
        let f = |it| lr_at(it, 1e-3, 100, 5000, 1e-4, true);
        assert!((f(0) - 1e-3 / 101.0).abs() < 1e-15);
        assert!((f(99) - 1e-3 * 100.0 / 101.0).abs() < 1e-15);
        assert!((f(100) - 1e-3).abs() < 1e-15);
        // Half way through the decay the cosine coefficient is 0.5.
        assert!((f(2550) - (1e-4 + 0.5 * 9e-4)).abs() < 1e-12);
        assert!((f(5000) - 1e-4).abs() < 1e-15);
        assert_eq!(f(6000), 1e-4);
        assert_eq!(lr_at(3000, 1e-3, 100, 5000, 1e-4, false), 1e-3);
    }

    /// GRPO's and the reward model's schedule: the warmup applies with and without decay.
    #[test]
    fn warmup_then_constant_or_cosine() {
        let still = |it| warmup_then(it, 1e-3, 100, None);
        assert!((still(0) - 1e-3 / 101.0).abs() < 1e-15);
        assert_eq!(still(100), 1e-3);
        assert_eq!(still(4000), 1e-3);
        let decayed = |it| warmup_then(it, 1e-3, 100, Some((5000, 1e-4)));
        assert!((decayed(0) - 1e-3 / 101.0).abs() < 1e-15);
        assert!((decayed(2550) - (1e-4 + 0.5 * 9e-4)).abs() < 1e-12);
        assert_eq!(decayed(6000), 1e-4);
    }

    /// Two AdamW steps on a 1-parameter model, against PyTorch's update rule written out.
    #[test]
    fn adamw_matches_hand_computation() {
        let dev = Device::flex();
        let mut model = GPT::new(&tiny_config(2), &dev, 0)
            .unwrap()
            .into_trainable(|_| true);
        let c = AdamWConfig {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut opt = AdamW::new(c);
        let params = model.named_params();
        let before: Vec<Vec<f32>> = params
            .iter()
            .map(|(_, p)| {
                p.flat()
                    .inner()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap()
            })
            .collect();
        let lr = 0.01;
        let (g1, g2) = (0.5f64, -0.25f64);
        for g in [g1, g2] {
            let grads = params
                .iter()
                .map(|(_, p)| {
                    Some(Tensor::<1>::full(
                        [p.dims().iter().product::<usize>()],
                        g,
                        &dev,
                    ))
                })
                .collect();
            opt.step(&mut model, grads, lr);
        }
        // Expected, per element: the same two steps in f64.
        let expect = |w0: f64, decay: bool| {
            let (mut w, mut m, mut v) = (w0, 0.0, 0.0);
            for (t, g) in [(1, g1), (2, g2)] {
                if decay {
                    w *= 1.0 - lr * c.weight_decay;
                }
                m = c.beta1 * m + (1.0 - c.beta1) * g;
                v = c.beta2 * v + (1.0 - c.beta2) * g * g;
                let mh = m / (1.0 - c.beta1.powi(t));
                let vh = v / (1.0 - c.beta2.powi(t));
                w -= lr * mh / (vh.sqrt() + c.eps);
            }
            w
        };
        for (((name, p), b), (_, after)) in params.iter().zip(&before).zip(model.named_params()) {
            let decay = matches!(p, Param::Matrix(_));
            let got = after
                .flat()
                .inner()
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap();
            for (w0, w) in b.iter().zip(got) {
                let e = expect(*w0 as f64, decay);
                assert!((e - w as f64).abs() < 1e-6, "{name}: {w} vs {e}");
            }
        }
        assert_eq!(opt.step, 2);
    }

    /// The weight average of three steps' weights against the weighted mean written out, with
    /// the frozen parameters left as they are.
    #[test]
    fn weight_average_is_the_discounted_mean_of_the_steps() {
        let dev = Device::flex();
        let trains = |n: &str| n.starts_with("transformer.h.0.mlp");
        let start = GPT::new(&tiny_config(3), &dev, 3)
            .unwrap()
            .into_trainable(trains);
        let host = |m: &GPT| -> Vec<Vec<f32>> {
            m.named_params()
                .iter()
                .map(|(_, p)| crate::util::to_host(p.flat().inner()))
                .collect()
        };
        let d = 0.7;
        let mut avg = WeightAverage::new(d);
        assert_eq!(host(&avg.apply(&start)), host(&start));
        // Three "steps": every parameter shifted by its own amount each time.
        let shifts = [0.5f64, -1.25, 2.0];
        let mut steps = Vec::new();
        let mut m = start.clone();
        for s in shifts {
            let _ = m.map_params(|_, p| {
                Ok(match p {
                    Param::Vector(t) => Param::Vector(t.add_scalar(s)),
                    Param::Matrix(t) => Param::Matrix(t.add_scalar(s)),
                })
            });
            let m2 = m.clone().inference().into_trainable(trains);
            avg.update(&m2);
            steps.push(host(&m2));
        }
        let got = host(&avg.apply(&m));
        let last = host(&m);
        let weights: Vec<f64> = (0..3).map(|i| d.powi(2 - i)).collect();
        let total: f64 = weights.iter().sum();
        for (j, (name, _)) in start.named_params().iter().enumerate() {
            for e in 0..got[j].len() {
                let want = if trains(name) {
                    (0..3)
                        .map(|i| weights[i] * steps[i][j][e] as f64)
                        .sum::<f64>()
                        / total
                } else {
                    last[j][e] as f64
                };
                assert!(
                    (got[j][e] as f64 - want).abs() < 1e-5,
                    "{name}: {} vs {want}",
                    got[j][e]
                );
            }
        }
    }
}
