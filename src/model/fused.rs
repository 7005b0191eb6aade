//! Fused CPU kernels for the Flex backend, with their own backward passes under autodiff.
//!
//! Burn's Flex backend computes GELU with a scalar `erff` per element (about a fifth of a
//! training step and of a forward pass on config A), and under autodiff decomposes LayerNorm and
//! attention into many basic ops. Here GELU runs as one vectorised pass with a branch-free error
//! function (Abramowitz–Stegun 7.1.26, |error| ≤ 1.5e-7) and a branch-free `exp`, its backward
//! (`Φ(x) + x·φ(x)`) as one more; LayerNorm forward and backward take one pass per row each; and
//! causal self-attention goes from the fused qkv projection to the merged heads in one call
//! (`attention.rs`), dropout included. Other backends (CUDA), and code inside [`with_burn_ops`],
//! keep burn's own ops: [`gelu`], [`layer_norm`] and the model's attention pick the path from
//! the tensor ([`applies`]).

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Device, Tensor, TensorData};

use super::attention::{self, Dims};
use super::precision::Precision;

/// Operations with a hand-written kernel on Flex and a hand-written backward under autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// Exact (erf) GELU, `x·Φ(x)`.
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Causal self-attention from the fused projection `qkv` `[B, T, 3C]` to `[B, T, C]`.
    fn fused_causal_attention(qkv: FloatTensor<Self>, n_head: usize) -> FloatTensor<Self>;
    /// The same with dropout on the attention weights: `mask` `[B, n_head, T, T]` holds the
    /// inverted-dropout multipliers (0 or 1/(1−p)); it gets no gradient.
    fn fused_causal_attention_dropout(
        qkv: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        n_head: usize,
    ) -> FloatTensor<Self>;
    /// LayerNorm over the last dimension (eps 1e-5), `weight`/`bias` of that dimension's size.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// Next-token cross-entropy through the tied lm_head, row by row: `[N]` losses
    /// `logsumexp(x_i·wteᵀ) − x_i·wte[t_i]` of `x` `[N, C]`, `wte` `[V, C]` and `targets` `[N]`
    /// (ids held as f32, exact below 2²⁴; no gradient).
    fn fused_lm_head_ce(
        x: FloatTensor<Self>,
        wte: FloatTensor<Self>,
        targets: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// The entropy of softmax(x·wteᵀ) row by row, `[N]`, of `x` `[N, C]` and `wte` `[V, C]`.
    fn fused_lm_head_entropy(x: FloatTensor<Self>, wte: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl FusedOps for Flex {
    fn fused_causal_attention(qkv: FloatTensor<Self>, n_head: usize) -> FloatTensor<Self> {
        flex_attention(qkv, None, n_head, false).0
    }

    fn fused_causal_attention_dropout(
        qkv: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        n_head: usize,
    ) -> FloatTensor<Self> {
        flex_attention(qkv, Some(mask), n_head, false).0
    }

    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        update_in_place(x, gelu_in_place)
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (w, b) = (weight.to_contiguous(), bias.to_contiguous());
        let shape = x.layout().shape().clone();
        assert_eq!(
            shape.as_slice().last().copied(),
            Some(w.layout().num_elements()),
            "layer_norm: the weight must match the last dimension"
        );
        let x = x.to_contiguous();
        let n = shape.num_elements();
        let out = layer_norm_rows(&x.storage()[..n], w.storage(), b.storage());
        FlexTensor::from_data(TensorData::new(out, shape))
    }

    fn fused_lm_head_ce(
        x: FloatTensor<Self>,
        wte: FloatTensor<Self>,
        targets: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        flex_lm_head_ce(x, wte, targets)
    }

    fn fused_lm_head_entropy(x: FloatTensor<Self>, wte: FloatTensor<Self>) -> FloatTensor<Self> {
        flex_lm_head_entropy(x, wte).0
    }
}

/// Saved for the entropy's backward pass: its inputs and every row's lse and E[z].
type EntropyState = (FlexTensor, FlexTensor, Vec<f32>, Vec<f32>);

/// The chunked entropy of softmax(x·wteᵀ) on Flex tensors, `[N]`, and its backward's state.
fn flex_lm_head_entropy(x: FlexTensor, wte: FlexTensor) -> (FlexTensor, EntropyState) {
    let (x, wte) = (x.to_contiguous(), wte.to_contiguous());
    let c = wte.layout().shape().as_slice()[1];
    let n = x.layout().num_elements() / c;
    let (h, lse, ez) = super::lm_head::entropy_forward(&x.storage()[..n * c], wte.storage(), c);
    let out = FlexTensor::from_data(TensorData::new(h, [n]));
    (out, (x, wte, lse, ez))
}

/// Saved for the lm_head's backward pass: its inputs, the targets, every row's log-sum-exp and
/// the gradients of the unweighted loss sum taken in the forward pass (dx, dwte).
type LmHeadState = (
    FlexTensor,
    FlexTensor,
    Vec<usize>,
    Vec<f32>,
    Vec<f32>,
    Vec<f32>,
);

/// The targets of the lm_head's cross-entropy as ids, checked against the vocabulary.
fn lm_head_inputs(
    x: FlexTensor,
    wte: FlexTensor,
    targets: FlexTensor,
) -> (FlexTensor, FlexTensor, Vec<usize>, usize) {
    let (x, wte, targets) = (
        x.to_contiguous(),
        wte.to_contiguous(),
        targets.to_contiguous(),
    );
    let [v, c] = [
        wte.layout().shape().as_slice()[0],
        wte.layout().shape().as_slice()[1],
    ];
    let t: Vec<usize> = targets
        .storage::<f32>()
        .iter()
        .map(|&i| i as usize)
        .collect();
    assert!(
        t.iter().all(|&i| i < v),
        "lm_head_ce: a target id is outside the vocabulary"
    );
    (x, wte, t, c)
}

/// The chunked lm_head + cross-entropy on Flex tensors: the losses `[N]`.
fn flex_lm_head_ce(x: FlexTensor, wte: FlexTensor, targets: FlexTensor) -> FlexTensor {
    let (x, wte, t, c) = lm_head_inputs(x, wte, targets);
    let n = t.len();
    let (losses, _) = super::lm_head::forward(&x.storage()[..n * c], wte.storage(), &t, c);
    FlexTensor::from_data(TensorData::new(losses, [n]))
}

/// [`flex_lm_head_ce`] with the gradients taken along, for the backward pass.
fn flex_lm_head_ce_tracked(
    x: FlexTensor,
    wte: FlexTensor,
    targets: FlexTensor,
) -> (FlexTensor, LmHeadState) {
    let (x, wte, t, c) = lm_head_inputs(x, wte, targets);
    let n = t.len();
    let (losses, lse, dx, dw) =
        super::lm_head::forward_with_grads(&x.storage()[..n * c], wte.storage(), &t, c);
    let out = FlexTensor::from_data(TensorData::new(losses, [n]));
    (out, (x, wte, t, lse, dx, dw))
}

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn fused_causal_attention(qkv: FloatTensor<Self>, n_head: usize) -> FloatTensor<Self> {
        autodiff_attention::<C>(qkv, None, n_head)
    }

    fn fused_causal_attention_dropout(
        qkv: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        n_head: usize,
    ) -> FloatTensor<Self> {
        autodiff_attention::<C>(qkv, Some(mask), n_head)
    }

    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GeluBackward;

        impl Backward<Flex, 1> for GeluBackward {
            type State = FlexTensor;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                register_input_grad(ops, grads, |x, grad| {
                    let x = x.to_contiguous();
                    update_in_place(grad, |g| gelu_grad_in_place(x.storage(), g))
                });
            }
        }

        match GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = x.primitive().clone();
                let out = Flex::fused_gelu(input.clone());
                prep.finish(input, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_gelu(x.into_primitive())),
        }
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LayerNormBackward;

        impl Backward<Flex, 3> for LayerNormBackward {
            type State = (FlexTensor, FlexTensor);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [px, pw, pb] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                let (x, w) = ops.state;
                let c = w.layout().shape().num_elements();
                let (wc, xc) = (w.to_contiguous(), x.to_contiguous());
                let (mut dw, mut db) = (vec![0.0f32; c], vec![0.0f32; c]);
                let dx = update_in_place(grad, |g| {
                    layer_norm_backward_rows(xc.storage(), wc.storage(), g, &mut dw, &mut db)
                });
                let vector = |v: Vec<f32>| FlexTensor::from_data(TensorData::new(v, [c]));
                if let Some(node) = px {
                    grads.register::<Flex>(node.id, dx);
                }
                if let Some(node) = pw {
                    grads.register::<Flex>(node.id, vector(dw));
                }
                if let Some(node) = pb {
                    grads.register::<Flex>(node.id, vector(db));
                }
            }
        }

        match LayerNormBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (xp, wp) = (x.primitive().clone(), weight.primitive().clone());
                let out = Flex::fused_layer_norm(xp.clone(), wp.clone(), bias.into_primitive());
                prep.finish((xp, wp), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_layer_norm(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            )),
        }
    }

    fn fused_lm_head_ce(
        x: FloatTensor<Self>,
        wte: FloatTensor<Self>,
        targets: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        autodiff_lm_head_ce::<C>(x, wte, targets)
    }

    fn fused_lm_head_entropy(x: FloatTensor<Self>, wte: FloatTensor<Self>) -> FloatTensor<Self> {
        autodiff_lm_head_entropy::<C>(x, wte)
    }
}

/// Registers the gradients of an lm_head node's two parents, the states `x` and the
/// embeddings `wte` (each only when it needs one).
fn register_states_and_embeddings(
    grads: &mut Gradients,
    [px, pw]: [Option<burn::backend::autodiff::NodeId>; 2],
    (dx, x_shape): (Vec<f32>, [usize; 2]),
    (dw, w_shape): (Vec<f32>, [usize; 2]),
) {
    if let Some(id) = px {
        grads.register::<Flex>(id, FlexTensor::from_data(TensorData::new(dx, x_shape)));
    }
    if let Some(id) = pw {
        grads.register::<Flex>(id, FlexTensor::from_data(TensorData::new(dw, w_shape)));
    }
}

/// The autodiff node of the chunked lm_head + cross-entropy (the targets are constants).
fn autodiff_lm_head_ce<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    wte: FloatTensor<Autodiff<Flex, C>>,
    targets: FloatTensor<Autodiff<Flex, C>>,
) -> FloatTensor<Autodiff<Flex, C>> {
    #[derive(Debug)]
    struct LmHeadBackward;

    impl Backward<Flex, 2> for LmHeadBackward {
        type State = LmHeadState;

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [px, pw] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
            let (x, wte, t, lse, mut dx, mut dw) = ops.state;
            let [v, c] = [
                wte.layout().shape().as_slice()[0],
                wte.layout().shape().as_slice()[1],
            ];
            let n = t.len();
            let g = &grad.storage::<f32>()[..n];
            if g.iter().all(|&w| w == g[0]) {
                // Row i's gradient is linear in its weight: scale what the forward took.
                dx.iter_mut().for_each(|d| *d *= g[0]);
                dw.iter_mut().for_each(|d| *d *= g[0]);
            } else {
                (dx, dw) =
                    super::lm_head::backward(&x.storage()[..n * c], wte.storage(), &t, &lse, g, c);
            }
            register_states_and_embeddings(
                grads,
                [px.map(|p| p.id), pw.map(|p| p.id)],
                (dx, [n, c]),
                (dw, [v, c]),
            );
        }
    }

    let targets = targets.into_primitive();
    match LmHeadBackward
        .prepare::<C>([x.node(), wte.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (out, state) =
                flex_lm_head_ce_tracked(x.primitive().clone(), wte.primitive().clone(), targets);
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(flex_lm_head_ce(
            x.into_primitive(),
            wte.into_primitive(),
            targets,
        )),
    }
}

/// The autodiff node of the chunked entropy.
fn autodiff_lm_head_entropy<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    wte: FloatTensor<Autodiff<Flex, C>>,
) -> FloatTensor<Autodiff<Flex, C>> {
    #[derive(Debug)]
    struct EntropyBackward;

    impl Backward<Flex, 2> for EntropyBackward {
        type State = EntropyState;

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [px, pw] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
            let (x, wte, lse, ez) = ops.state;
            let [v, c] = [
                wte.layout().shape().as_slice()[0],
                wte.layout().shape().as_slice()[1],
            ];
            let n = lse.len();
            let (dx, dw) = super::lm_head::entropy_backward(
                &x.storage()[..n * c],
                wte.storage(),
                (&lse, &ez),
                &grad.storage::<f32>()[..n],
                c,
            );
            register_states_and_embeddings(
                grads,
                [px.map(|p| p.id), pw.map(|p| p.id)],
                (dx, [n, c]),
                (dw, [v, c]),
            );
        }
    }

    match EntropyBackward
        .prepare::<C>([x.node(), wte.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (out, state) = flex_lm_head_entropy(x.primitive().clone(), wte.primitive().clone());
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(flex_lm_head_entropy(x.into_primitive(), wte.into_primitive()).0)
        }
    }
}

/// Whether tensors on `device` run on Flex (directly or under autodiff), where the fused
/// kernels apply.
pub fn on_flex(device: &Device) -> bool {
    device.clone().inner() == Device::flex()
}

thread_local! {
    static BURN_OPS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with burn's own ops instead of the fused kernels on this thread: the reference the
/// kernels are checked against (tests) and a way to compare the two.
pub fn with_burn_ops<R>(f: impl FnOnce() -> R) -> R {
    let before = BURN_OPS.replace(true);
    let out = f();
    BURN_OPS.set(before);
    out
}

/// Whether the fused kernels apply to `x`: f32 on Flex, and not switched off by [`with_burn_ops`].
pub fn applies<const D: usize>(x: &Tensor<D>) -> bool {
    !BURN_OPS.get() && on_flex(&x.device()) && x.dtype() == DType::F32
}

/// Exact GELU: the fused kernel on Flex (f32), burn's own elsewhere.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if applies(&x) {
        Tensor::from_dispatch(<Dispatch as FusedOps>::fused_gelu(x.into_dispatch()))
    } else {
        burn::tensor::activation::gelu(x)
    }
}

/// The body of a one-input backward pass: takes the output's gradient and, when the input needs
/// one, registers `f(saved state, output gradient)` as the input's gradient.
fn register_input_grad<S>(
    ops: Ops<S, 1>,
    grads: &mut Gradients,
    f: impl FnOnce(S, FlexTensor) -> FlexTensor,
) {
    let [parent] = ops.parents;
    let grad = grads.consume::<Flex>(&ops.node);
    if let Some(node) = parent {
        grads.register::<Flex>(node.id, f(ops.state, grad));
    }
}

/// Attention on Flex tensors; with `keep`, also returns what the backward pass needs.
fn flex_attention(
    qkv: FlexTensor,
    mask: Option<FlexTensor>,
    n_head: usize,
    keep: bool,
) -> (FlexTensor, Option<AttentionState>) {
    let (qkv, dims) = attention_input(qkv, n_head);
    let mask = mask.map(|m| m.to_contiguous());
    let m = mask.as_ref().map(|m| m.storage::<f32>());
    let (y, weights) = attention::forward(qkv.storage(), dims, keep, m);
    let y = FlexTensor::from_data(TensorData::new(y, [dims.batch, dims.t, dims.c]));
    let state = weights.map(|w| (qkv, w, mask, dims));
    (y, state)
}

/// Saved by the attention's forward for its backward: the input, the weights, the mask.
type AttentionState = (FlexTensor, Vec<f32>, Option<FlexTensor>, Dims);

/// The autodiff node of the fused attention (the mask is a constant).
fn autodiff_attention<C: CheckpointStrategy>(
    qkv: FloatTensor<Autodiff<Flex, C>>,
    mask: Option<FloatTensor<Autodiff<Flex, C>>>,
    n_head: usize,
) -> FloatTensor<Autodiff<Flex, C>> {
    #[derive(Debug)]
    struct AttentionBackward;

    impl Backward<Flex, 1> for AttentionBackward {
        type State = AttentionState;

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            register_input_grad(ops, grads, |(qkv, weights, mask, d), grad| {
                let grad = grad.to_contiguous();
                let m = mask.as_ref().map(|m| m.storage::<f32>());
                let dqkv = attention::backward(qkv.storage(), &weights, m, grad.storage(), d);
                FlexTensor::from_data(TensorData::new(dqkv, [d.batch, d.t, 3 * d.c]))
            });
        }
    }

    let mask = mask.map(|m| m.into_primitive());
    match AttentionBackward
        .prepare::<C>([qkv.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (y, state) = flex_attention(qkv.primitive().clone(), mask, n_head, true);
            match state {
                Some(state) => prep.finish(state, y),
                None => unreachable!("flex_attention keeps its state when asked to"),
            }
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(flex_attention(qkv.into_primitive(), mask, n_head, false).0)
        }
    }
}

/// A contiguous copy of `qkv` `[B, T, 3C]` and the attention sizes.
fn attention_input(qkv: FlexTensor, n_head: usize) -> (FlexTensor, Dims) {
    let dims = qkv.layout().shape().as_slice().to_vec();
    let dims = Dims {
        batch: dims[0],
        t: dims[1],
        c: dims[2] / 3,
        n_head,
    };
    (qkv.to_contiguous(), dims)
}

/// Causal self-attention of `qkv` `[B, T, 3C]` (the fused projection) into `[B, T, C]`, with
/// dropout on the weights when a mask `[B, n_head, T, T]` is given. Only where [`applies`] says so.
pub fn causal_attention(
    qkv: Tensor<3>,
    dropout_mask: Option<Tensor<4>>,
    n_head: usize,
) -> Tensor<3> {
    let qkv = qkv.into_dispatch();
    Tensor::from_dispatch(match dropout_mask {
        None => <Dispatch as FusedOps>::fused_causal_attention(qkv, n_head),
        Some(m) => {
            <Dispatch as FusedOps>::fused_causal_attention_dropout(qkv, m.into_dispatch(), n_head)
        }
    })
}

/// Next-token cross-entropy per row through the tied lm_head, `[N]`, of states `x` `[N, C]`,
/// embeddings `wte` `[V, C]` and target ids: the chunked kernel on Flex (f32), which never holds
/// the `[N, V]` logits; logits and log-softmax with burn's own ops elsewhere.
pub fn lm_head_cross_entropy(
    x: Tensor<2>,
    wte: Tensor<2>,
    targets: Tensor<1, burn::tensor::Int>,
    p: Precision,
) -> Tensor<1> {
    if applies(&x) {
        let t = targets.float();
        Tensor::from_dispatch(<Dispatch as FusedOps>::fused_lm_head_ce(
            x.into_dispatch(),
            wte.into_dispatch(),
            t.into_dispatch(),
        ))
    } else {
        let n = x.dims()[0];
        let logp = burn::tensor::activation::log_softmax(p.matmul(x, wte.transpose()), 1);
        logp.gather(1, targets.reshape([n, 1])).reshape([n]).neg()
    }
}

/// The entropy of softmax(x·wteᵀ) per row, `[N]`: the chunked kernel on Flex (f32), which never
/// holds the `[N, V]` logits; burn's own ops elsewhere.
pub fn lm_head_entropy(x: Tensor<2>, wte: Tensor<2>, p: Precision) -> Tensor<1> {
    if applies(&x) {
        Tensor::from_dispatch(<Dispatch as FusedOps>::fused_lm_head_entropy(
            x.into_dispatch(),
            wte.into_dispatch(),
        ))
    } else {
        let n = x.dims()[0];
        let logp = burn::tensor::activation::log_softmax(p.matmul(x, wte.transpose()), 1);
        (logp.clone().exp() * logp).sum_dim(1).reshape([n]).neg()
    }
}

/// LayerNorm over the last dimension (eps 1e-5): the fused kernel on Flex (f32), burn's own
/// elsewhere. A missing bias is zero.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<1>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    if applies(&x) {
        let bias = bias.unwrap_or_else(|| weight.zeros_like());
        Tensor::from_dispatch(<Dispatch as FusedOps>::fused_layer_norm(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        ))
    } else {
        burn::tensor::module::layer_norm(x, weight, bias, LN_EPS)
    }
}

const LN_EPS: f64 = 1e-5;

/// Mean and 1/sqrt(biased variance + eps) of one row (two passes, as PyTorch's CPU kernel).
#[inline]
fn row_stats(row: &[f32]) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + LN_EPS as f32).sqrt())
}

/// `(x − mean)·rstd·w + b` row by row, `w.len()` values per row.
fn layer_norm_rows(xs: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(xs.len());
    for row in xs.chunks_exact(w.len()) {
        let (mean, rstd) = row_stats(row);
        out.extend(
            row.iter()
                .zip(w)
                .zip(b)
                .map(|((&x, &w), &b)| (x - mean) * rstd * w + b),
        );
    }
    out
}

/// LayerNorm's backward, turning `dy` into dx in place: with x̂ = (x − mean)·rstd and g = dy·w,
/// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)); dw += Σ dy·x̂ and db += Σ dy over rows.
fn layer_norm_backward_rows(xs: &[f32], w: &[f32], dy: &mut [f32], dw: &mut [f32], db: &mut [f32]) {
    let c = w.len();
    let mut xhat = vec![0.0f32; c];
    for (row, d) in xs.chunks_exact(c).zip(dy.chunks_exact_mut(c)) {
        let (mean, rstd) = row_stats(row);
        let (mut sum_g, mut sum_gx) = (0.0f32, 0.0f32);
        for i in 0..c {
            xhat[i] = (row[i] - mean) * rstd;
            let g = d[i] * w[i];
            sum_g += g;
            sum_gx += g * xhat[i];
            dw[i] += d[i] * xhat[i];
            db[i] += d[i];
        }
        let (mg, mgx) = (sum_g / c as f32, sum_gx / c as f32);
        for i in 0..c {
            d[i] = rstd * (d[i] * w[i] - mg - xhat[i] * mgx);
        }
    }
}

/// Runs `f` on the f32 values of `x` and returns them as the result: in place when `x` is
/// contiguous and not shared (an intermediate that nothing else holds), on a copy otherwise.
fn update_in_place(x: FlexTensor, f: impl FnOnce(&mut [f32])) -> FlexTensor {
    let n = x.layout().num_elements();
    let whole = x.is_contiguous() && x.layout().start_offset() == 0 && x.bytes().len() == n * 4;
    let mut t = if whole { x } else { x.to_contiguous() };
    f(&mut t.storage_mut::<f32>()[..n]);
    t
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// The largest of `xs` (−∞ when empty; NaN-free input), over 8 independent lanes so the loop
/// vectorises instead of waiting on one running maximum.
pub fn lane_max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    tail.iter()
        .chain(&acc)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// The sum of `xs` over 8 independent f32 lanes (vectorised; for long rows, callers add
/// chunks of a few hundred values in f64).
pub fn lane_sum(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// The sum of `xs` in f64 over chunks of 512 summed with [`lane_sum`].
pub fn chunked_sum(xs: &[f32]) -> f64 {
    xs.chunks(512).map(|c| lane_sum(c) as f64).sum()
}

/// e^x for x ≤ 0 (clamped at −87, where it underflows anyway), branch-free so loops vectorise:
/// x = n·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor polynomial to r⁷ (relative error < 1e-8),
/// 2ⁿ built in the exponent bits.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.max(-87.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let e = (t.to_bits() as i32 - MAGIC.to_bits() as i32 + 127) << 23;
    p * f32::from_bits(e as u32)
}

/// (Φ(x), φ(x)): the standard normal CDF (Abramowitz–Stegun 7.1.26 for the tail, so no
/// cancellation for negative x) and density.
#[inline(always)]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    let a = x.abs() * FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let e = exp_nonpositive(-a * a); // e^{-x²/2}
    let tail = 0.5 * poly * e; // P(Z > |x|)
    let cdf = if x >= 0.0 { 1.0 - tail } else { tail };
    (cdf, FRAC_1_SQRT_2PI * e)
}

#[inline(always)]
fn gelu_loop(v: &mut [f32]) {
    for x in v.iter_mut() {
        *x *= normal_cdf_pdf(*x).0;
    }
}

#[inline(always)]
fn gelu_grad_loop(xs: &[f32], g: &mut [f32]) {
    for (g, &x) in g.iter_mut().zip(xs) {
        let (cdf, pdf) = normal_cdf_pdf(x);
        *g *= cdf + x * pdf;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_avx2(v: &mut [f32]) {
    gelu_loop(v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_grad_avx2(xs: &[f32], g: &mut [f32]) {
    gelu_grad_loop(xs, g)
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// `v[i] = gelu(v[i])`, with AVX2+FMA where the CPU has them.
pub fn gelu_in_place(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports the features the function was compiled for (checked above).
        unsafe { gelu_avx2(v) };
        return;
    }
    gelu_loop(v)
}

/// `g[i] *= gelu'(xs[i])`, with AVX2+FMA where the CPU has them.
pub fn gelu_grad_in_place(xs: &[f32], g: &mut [f32]) {
    assert_eq!(
        xs.len(),
        g.len(),
        "gelu backward: input and gradient differ in size"
    );
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports the features the function was compiled for (checked above).
        unsafe { gelu_grad_avx2(xs, g) };
        return;
    }
    gelu_grad_loop(xs, g)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series in f64 (converges fast for |z| ≤ 3), then Φ.
    fn phi_reference(x: f64) -> f64 {
        let z = x / std::f64::consts::SQRT_2;
        let (mut term, mut sum, mut n) = (z, z, 0.0);
        while term.abs() > 1e-18 {
            n += 1.0;
            term *= -z * z / n;
            sum += term / (2.0 * n + 1.0);
        }
        0.5 * (1.0 + sum * 2.0 / std::f64::consts::PI.sqrt())
    }

    #[test]
    fn exp_matches_std() {
        let mut worst = 0.0f64;
        for i in 0..=8000 {
            let x = -(i as f32) * 0.01;
            let rel = ((exp_nonpositive(x) as f64) - (x as f64).exp()).abs() / (x as f64).exp();
            worst = worst.max(rel);
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
    }

    #[test]
    fn gelu_and_its_gradient_match_an_independent_f64_computation() {
        let xs: Vec<f32> = (-500..=500).map(|i| i as f32 * 0.01).collect();
        let (mut y, mut g) = (xs.clone(), vec![1.0; xs.len()]);
        gelu_in_place(&mut y);
        gelu_grad_in_place(&xs, &mut g);
        for ((&x, &yv), &gv) in xs.iter().zip(&y).zip(&g) {
            let xd = x as f64;
            let want = xd * phi_reference(xd);
            assert!(
                (yv as f64 - want).abs() < 4e-7 * (1.0 + xd.abs()),
                "gelu({x})"
            );
            // d/dx x·Φ(x) = Φ(x) + x·φ(x), in f64.
            let pdf = (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let d = phi_reference(xd) + xd * pdf;
            assert!(
                (gv as f64 - d).abs() < 2e-6 * (1.0 + xd.abs()),
                "gelu'({x}): {gv} vs {d}"
            );
        }
    }

    #[test]
    fn fused_gelu_agrees_with_burn_forward_and_backward_under_autodiff() {
        let dev = Device::flex().autodiff();
        let vals: Vec<f32> = (0..96).map(|i| (i as f32 - 48.0) * 0.11).collect();
        let make =
            || Tensor::<2>::from_data(TensorData::new(vals.clone(), [8, 12]), &dev).require_grad();
        let w = Tensor::<2>::from_data(
            TensorData::new(
                (0..96).map(|i| (i % 7) as f32 - 3.0).collect::<Vec<_>>(),
                [8, 12],
            ),
            &dev,
        );
        let (a, b) = (make(), make());
        // A transposed view checks that non-contiguous inputs are handled.
        let fa = gelu(a.clone().transpose()).transpose();
        let fb = burn::tensor::activation::gelu(b.clone());
        let diff = (fa.clone() - fb.clone()).abs().max().into_scalar::<f32>();
        assert!(diff < 2e-6, "forward differs by {diff}");
        let ga = (fa * w.clone()).sum().backward();
        let gb = (fb * w).sum().backward();
        let (ga, gb) = (a.grad(&ga).unwrap(), b.grad(&gb).unwrap());
        let gdiff = (ga - gb).abs().max().into_scalar::<f32>();
        assert!(gdiff < 2e-5, "gradient differs by {gdiff}");
    }

    #[test]
    fn fused_layer_norm_agrees_with_burn_forward_and_backward_under_autodiff() {
        let dev = Device::flex().autodiff();
        let t = |v: Vec<f32>, shape: [usize; 3]| {
            Tensor::<3>::from_data(TensorData::new(v, shape), &dev).require_grad()
        };
        let xv: Vec<f32> = (0..120)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.3)
            .collect();
        let wv: Vec<f32> = (0..10).map(|i| 0.5 + i as f32 * 0.1).collect();
        let bv: Vec<f32> = (0..10).map(|i| i as f32 * 0.05 - 0.2).collect();
        let up: Vec<f32> = (0..120)
            .map(|i| ((i * 11 % 7) as f32 - 3.0) * 0.5)
            .collect();
        for with_bias in [true, false] {
            let (xa, xb) = (t(xv.clone(), [3, 4, 10]), t(xv.clone(), [3, 4, 10]));
            let vec1 = |v: &Vec<f32>| {
                Tensor::<1>::from_data(TensorData::new(v.clone(), [10]), &dev).require_grad()
            };
            let (wa, wb, ba, bb) = (vec1(&wv), vec1(&wv), vec1(&bv), vec1(&bv));
            // A permuted view checks that non-contiguous inputs are handled.
            let xa_view = xa.clone().swap_dims(0, 1);
            let ya = layer_norm(xa_view, wa.clone(), with_bias.then(|| ba.clone())).swap_dims(0, 1);
            let yb = burn::tensor::module::layer_norm(
                xb.clone(),
                wb.clone(),
                with_bias.then(|| bb.clone()),
                1e-5,
            );
            let diff = (ya.clone() - yb.clone()).abs().max().into_scalar::<f32>();
            assert!(diff < 1e-5, "forward differs by {diff}");
            let u = Tensor::<3>::from_data(TensorData::new(up.clone(), [3, 4, 10]), &dev);
            let (ga, gb) = ((ya * u.clone()).sum().backward(), (yb * u).sum().backward());
            let close = |a: Option<Tensor<3>>, b: Option<Tensor<3>>| {
                (a.unwrap() - b.unwrap()).abs().max().into_scalar::<f32>()
            };
            assert!(close(xa.grad(&ga), xb.grad(&gb)) < 1e-4, "dx");
            let d1 = |a: Option<Tensor<1>>, b: Option<Tensor<1>>| {
                (a.unwrap() - b.unwrap()).abs().max().into_scalar::<f32>()
            };
            assert!(d1(wa.grad(&ga), wb.grad(&gb)) < 1e-4, "dw");
            if with_bias {
                assert!(d1(ba.grad(&ga), bb.grad(&gb)) < 1e-4, "db");
            }
        }
    }
}
