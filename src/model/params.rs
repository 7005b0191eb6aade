//! The GPT's parameters as a flat list of named tensors (nanoGPT `state_dict` names), and the
//! conversions between training (autodiff leaves) and inference copies.

use super::{GPT, LayerNorm, Linear};
use crate::{Error, Result};
use burn::tensor::{Device, Tensor, TensorData};

/// Applies one rank-generic expression to the tensor inside a [`Param`].
macro_rules! each {
    ($p:expr, $t:ident => $e:expr) => {
        match $p {
            Param::Vector($t) => Param::Vector($e),
            Param::Matrix($t) => Param::Matrix($e),
        }
    };
}

/// A parameter handed out by [`GPT::named_params`]: vectors and matrices.
#[derive(Debug, Clone)]
pub enum Param {
    Vector(Tensor<1>),
    Matrix(Tensor<2>),
}

impl Param {
    /// The shape as stored in the model.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Param::Vector(t) => t.dims().to_vec(),
            Param::Matrix(t) => t.dims().to_vec(),
        }
    }

    /// Whether the parameter is an autodiff leaf that requires gradients (trains).
    pub fn is_require_grad(&self) -> bool {
        match self {
            Param::Vector(t) => t.is_require_grad(),
            Param::Matrix(t) => t.is_require_grad(),
        }
    }

    /// The parameter flattened to one dimension.
    pub fn flat(&self) -> Tensor<1> {
        match self {
            Param::Vector(t) => t.clone(),
            Param::Matrix(t) => t.clone().flatten(0, 1),
        }
    }
}

enum Slot<'a> {
    V(&'a mut Tensor<1>),
    M(&'a mut Tensor<2>),
}

impl GPT {
    fn slots(&mut self) -> Vec<(String, Slot<'_>)> {
        fn lin<'a>(out: &mut Vec<(String, Slot<'a>)>, p: &str, l: &'a mut Linear) {
            out.push((format!("{p}.weight"), Slot::M(&mut l.weight)));
            if let Some(b) = l.bias.as_mut() {
                out.push((format!("{p}.bias"), Slot::V(b)));
            }
        }
        fn ln<'a>(out: &mut Vec<(String, Slot<'a>)>, p: &str, l: &'a mut LayerNorm) {
            out.push((format!("{p}.weight"), Slot::V(&mut l.weight)));
            if let Some(b) = l.bias.as_mut() {
                out.push((format!("{p}.bias"), Slot::V(b)));
            }
        }
        let mut out = vec![
            ("transformer.wte.weight".to_string(), Slot::M(&mut self.wte)),
            ("transformer.wpe.weight".to_string(), Slot::M(&mut self.wpe)),
        ];
        for (i, b) in self.h.iter_mut().enumerate() {
            let p = format!("transformer.h.{i}");
            ln(&mut out, &format!("{p}.ln_1"), &mut b.ln_1);
            lin(&mut out, &format!("{p}.attn.c_attn"), &mut b.attn.c_attn);
            lin(&mut out, &format!("{p}.attn.c_proj"), &mut b.attn.c_proj);
            ln(&mut out, &format!("{p}.ln_2"), &mut b.ln_2);
            lin(&mut out, &format!("{p}.mlp.c_fc"), &mut b.mlp.c_fc);
            lin(&mut out, &format!("{p}.mlp.c_proj"), &mut b.mlp.c_proj);
        }
        ln(&mut out, "transformer.ln_f", &mut self.ln_f);
        if let Some(head) = self.reward_head.as_mut() {
            lin(&mut out, "reward_head.0", &mut head.fc);
            if let Some(ctx) = head.context.as_mut() {
                lin(&mut out, "reward_head.context", ctx);
            }
            lin(&mut out, "reward_head.2", &mut head.out);
        }
        out
    }

    /// Every parameter with its nanoGPT `state_dict` name, in a fixed order. Names ending in
    /// `.weight` of a `Matrix` other than the embeddings are Linear weights (held `[in, out]`).
    pub fn named_params(&self) -> Vec<(String, Param)> {
        let mut copy = self.clone();
        copy.slots()
            .into_iter()
            .map(|(n, s)| {
                let p = match s {
                    Slot::V(t) => Param::Vector(t.clone()),
                    Slot::M(t) => Param::Matrix(t.clone()),
                };
                (n, p)
            })
            .collect()
    }

    /// Replaces every parameter by `f(name, current)`; `f` must keep each shape and kind.
    pub fn map_params(&mut self, mut f: impl FnMut(&str, Param) -> Result<Param>) -> Result<()> {
        for (name, slot) in self.slots() {
            match slot {
                Slot::V(t) => match f(&name, Param::Vector(t.clone()))? {
                    Param::Vector(n) if n.dims() == t.dims() => *t = n,
                    _ => return Err(Error::Mismatch(format!("{name}: shape or kind changed"))),
                },
                Slot::M(t) => match f(&name, Param::Matrix(t.clone()))? {
                    Param::Matrix(n) if n.dims() == t.dims() => *t = n,
                    _ => return Err(Error::Mismatch(format!("{name}: shape or kind changed"))),
                },
            }
        }
        Ok(())
    }

    /// Whether `other` has this model's trunk — the same heads and the same embeddings, blocks
    /// and final layer norm, value for value — so that its final state of every token is this
    /// model's and one pass serves both.
    pub fn same_trunk(&self, other: &GPT) -> bool {
        self.same_params(other, |n| n.starts_with("transformer."))
    }

    /// Whether `other` is this model weight for weight (shape and every parameter), so that
    /// any pass of it gives this model's output.
    pub fn same_weights(&self, other: &GPT) -> bool {
        let (a, b) = (&self.config, &other.config);
        (a.vocab_size, a.block_size) == (b.vocab_size, b.block_size)
            && self.same_params(other, |_| true)
    }

    /// Whether the two models have the same shape and equal values of the parameters `keep`
    /// names.
    fn same_params(&self, other: &GPT, keep: impl Fn(&str) -> bool) -> bool {
        let (a, b) = (&self.config, &other.config);
        if (a.n_layer, a.n_head, a.n_embd, a.bias) != (b.n_layer, b.n_head, b.n_embd, b.bias) {
            return false;
        }
        let kept = |m: &GPT| -> Vec<(String, Param)> {
            m.named_params()
                .into_iter()
                .filter(|(n, _)| keep(n))
                .collect()
        };
        let (x, y) = (kept(self), kept(other));
        // One parameter on the host at a time, stopping at the first difference.
        x.len() == y.len()
            && x.iter().zip(&y).all(|((na, a), (nb, b))| {
                na == nb
                    && a.dims() == b.dims()
                    && crate::util::to_host(a.flat()) == crate::util::to_host(b.flat())
            })
    }

    /// Total number of parameters (wpe included, unlike nanoGPT's printout).
    pub fn num_params(&self) -> usize {
        self.named_params()
            .iter()
            .map(|(_, p)| p.dims().iter().product::<usize>())
            .sum()
    }

    /// Moves every parameter to `device`.
    pub fn to_device(mut self, device: &Device) -> Self {
        // Moving tensors keeps shapes, so map_params cannot fail here.
        let _ = self.map_params(|_, p| Ok(each!(p, t => t.to_device(device))));
        self
    }

    /// The training copy: every parameter an autodiff leaf; those for which `trainable(name)`
    /// holds require gradients, the others are constants (a frozen trunk).
    pub fn into_trainable(mut self, trainable: impl Fn(&str) -> bool) -> Self {
        let _ = self.map_params(|name, p| Ok(each!(p, t => leaf(t.autodiff(), trainable(name)))));
        self
    }

    /// A copy whose parameters are new autodiff leaves over the same values, requiring gradients
    /// where the originals do: independent graphs for concurrent forward/backward passes.
    pub fn fresh_leaves(&self) -> Self {
        let mut m = self.clone();
        let _ = m.map_params(|_, p| {
            Ok(each!(p, t => {
                let rg = t.is_require_grad();
                leaf(t.inner().autodiff(), rg)
            }))
        });
        m
    }

    /// A copy with element `idx` of parameter `name` (flattened) shifted by `delta`: the probe
    /// of finite-difference gradient checks.
    pub fn perturbed(&self, name: &str, idx: usize, delta: f32) -> Result<Self> {
        let mut m = self.clone();
        let device = self.device();
        m.map_params(|n, p| {
            if n != name {
                return Ok(p);
            }
            let mut v = crate::util::to_host(p.flat());
            let slot = v
                .get_mut(idx)
                .ok_or_else(|| Error::Other(format!("{name} has no element {idx}")))?;
            *slot += delta;
            let t = Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &device);
            Ok(match p {
                Param::Vector(_) => Param::Vector(t),
                Param::Matrix(o) => Param::Matrix(t.reshape(o.dims())),
            })
        })?;
        Ok(m)
    }

    /// The inference copy: parameters without autodiff (cheap: tensors are shared handles).
    pub fn inference(&self) -> Self {
        let mut m = self.clone();
        let _ = m.map_params(|_, p| Ok(each!(p, t => t.inner())));
        m
    }
}

fn leaf<const D: usize>(t: Tensor<D>, require_grad: bool) -> Tensor<D> {
    if require_grad { t.require_grad() } else { t }
}
