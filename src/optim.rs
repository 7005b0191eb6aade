//! PyTorch-exact AdamW (decoupled weight decay on ≥2-D weights only), nanoGPT's learning-rate
//! schedule (linear warmup + cosine decay to min_lr) and global gradient-norm clipping.

use crate::model::{GPT, Param};
use burn::tensor::{Gradients, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
