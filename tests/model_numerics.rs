//! Numerical checks of the GPT: fused vs explicit attention, the KV cache with several new
//! tokens, dropout, and backpropagation against finite differences.

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Distribution, Tensor};
use nanoreward::checkpoint;
use nanoreward::model::{Dropout, GPT, GPTConfig, KvCache, Precision, explicit_causal_attention};

fn tiny(dropout: f64) -> GPT {
    tiny_vocab(dropout, 11)
}

fn tiny_vocab(dropout: f64, vocab_size: usize) -> GPT {
    let cfg = GPTConfig {
        block_size: 12,
        vocab_size,
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        dropout,
        bias: true,
        ..Default::default()
    };
    let dev = Device::flex();
    GPT::new(&cfg, &dev, 11).unwrap()
}

fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn explicit_attention_matches_fused() {
    let dev = Device::flex();
    dev.seed(3);
    let r = || Tensor::<4>::random([2, 3, 7, 8], Distribution::Normal(0.0, 1.0), &dev);
    let (q, k, v) = (r(), r(), r());
    let opts = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    let fused = attention(q.clone(), k.clone(), v.clone(), None, None, opts);
    let explicit = explicit_causal_attention(q, k, v, 0, |a| a);
    assert!(max_diff(fused, explicit) < 1e-5);
}

#[test]
fn several_tokens_after_a_cache_match_the_full_forward() {
    let m = tiny(0.0);
    let ids: Vec<i64> = vec![1, 5, 2, 9, 3, 3, 7, 0, 4, 10];
    let full = m.forward(m.tokens(&ids, 1), None);
    let mut cache = KvCache::default();
    m.forward_cached(m.tokens(&ids[..6], 1), &mut cache);
    let last = m.forward_cached(m.tokens(&ids[6..], 1), &mut cache);
    let want = full.narrow(1, 9, 1).reshape([1, 11]);
    assert!(max_diff(last, want) < 1e-5);
    assert_eq!(cache.len(), 10);
}

#[test]
fn dropout_only_acts_in_training() {
    let m = tiny(0.5);
    let ids = m.tokens(&[1, 2, 3, 4, 5, 6], 1);
    let a = m.forward(ids.clone(), None);
    let b = m.forward(ids.clone(), None);
    assert_eq!(max_diff(a.clone(), b), 0.0);
    let c = m.forward(ids, Some(&Dropout::new(1)));
    let d: f32 = c.clone().abs().sum().into_scalar();
    assert!(d.is_finite() && max_diff(a, c) > 1e-3);
}

/// Backpropagated gradients against central finite differences of the loss.
#[test]
fn gradients_match_finite_differences() {
    let m = tiny(0.0);
    let x: Vec<i64> = vec![1, 5, 2, 9, 3, 3, 7, 0, 4, 10, 6, 8];
    let y: Vec<i64> = vec![5, 2, 9, 3, 3, 7, 0, 4, 10, 6, 8, 1];
    let loss_of = |m: &GPT| -> f64 {
        m.loss(m.tokens(&x, 2), m.tokens(&y, 2), None)
            .into_scalar::<f32>() as f64
    };
    let train = m.clone().into_trainable(|_| true);
    let grads = train
        .loss(train.tokens(&x, 2), train.tokens(&y, 2), None)
        .backward();
    let g = nanoreward::train::optim::collect_grads(&train, &grads);
    let params = m.named_params();
    let eps = 1e-2f32;
    let mut checked = 0;
    for (pi, (name, _)) in params.iter().enumerate() {
        let gi: Vec<f32> = g[pi]
            .clone()
            .unwrap()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        // The entry with the largest gradient of each tensor gives a well-conditioned check.
        let (idx, &an) = gi
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        if an.abs() < 1e-3 {
            continue;
        }
        let shifted = |delta: f32| loss_of(&m.perturbed(name, idx, delta).unwrap());
        let fd = (shifted(eps) - shifted(-eps)) / (2.0 * eps as f64);
        let rel = (fd - an as f64).abs() / (an.abs() as f64).max(1e-2);
        assert!(
            rel < 0.05,
            "{name}[{idx}]: backprop {an} vs finite difference {fd}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} tensors checked");
}

/// Splitting a batch over worker threads gives the gradients of the whole batch.
#[test]
fn data_parallel_gradients_equal_single_thread() {
    let m = tiny(0.0).into_trainable(|_| true);
    let x: Vec<i64> = (0..4 * 12).map(|i| (i * 7 % 11) as i64).collect();
    let y: Vec<i64> = (0..4 * 12).map(|i| (i * 3 % 11) as i64).collect();
    let (l1, g1) = nanoreward::train::optim::batch_grads(&m, &x, &y, 4, 1, 1.0, None);
    let (l3, g3) = nanoreward::train::optim::batch_grads(&m, &x, &y, 4, 3, 1.0, None);
    assert!((l1 - l3).abs() < 1e-5, "{l1} vs {l3}");
    for (a, b) in g1.into_iter().zip(g3) {
        assert!(max_diff(a.unwrap(), b.unwrap()) < 1e-5);
    }
}

/// The autodiff (training) path computes the same function as the inference path.
#[test]
fn training_and_inference_paths_agree() {
    let m = tiny(0.0);
    let ids: Vec<i64> = vec![1, 5, 2, 9, 3, 3, 7, 0, 4, 10, 6, 8];
    let a = m.forward(m.tokens(&ids, 1), None);
    let t = m.clone().into_trainable(|_| true);
    let b = t.forward(t.tokens(&ids, 1), None).inner();
    assert!(max_diff(a, b) < 1e-5);
}

/// Initialisation depends on the seed alone (also with other threads drawing random numbers at the
/// same time) and follows nanoGPT's scales.
#[test]
fn initialisation_is_seeded_and_scaled() {
    let cfg = GPTConfig {
        block_size: 64,
        vocab_size: 500,
        n_layer: 4,
        n_head: 2,
        n_embd: 64,
        bias: true,
        ..Default::default()
    };
    let build = |seed| checkpoint::model_tensors(&GPT::new(&cfg, &Device::flex(), seed).unwrap());
    let (a, b) = std::thread::scope(|s| {
        let noise = s.spawn(|| {
            let d = Device::flex();
            for i in 0..50 {
                d.seed(i);
                let _ = Tensor::<2>::random([64, 64], Distribution::Default, &d)
                    .sum()
                    .into_scalar::<f32>();
            }
        });
        let a = s.spawn(|| build(3));
        let b = build(3);
        noise.join().unwrap();
        (a.join().unwrap(), b)
    });
    assert_eq!(a, b);
    assert_ne!(a, build(4));
    let std = |name: &str| {
        let t = &a.iter().find(|(n, _)| n == name).unwrap().1.data;
        let m = t.iter().map(|&v| v as f64).sum::<f64>() / t.len() as f64;
        (t.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / t.len() as f64).sqrt()
    };
    assert!((std("transformer.wte.weight") - 0.02).abs() < 0.001);
    assert!((std("transformer.h.0.attn.c_attn.weight") - 0.02).abs() < 0.001);
    assert!((std("transformer.h.3.mlp.c_proj.weight") - 0.02 / 8f64.sqrt()).abs() < 0.0004);
}

/// The fused CPU kernels (GELU, LayerNorm, attention, with and without attention dropout, and
/// the chunked lm_head + cross-entropy) give the same loss and the same gradient for every
/// parameter as burn's own ops, and draw the same dropout noise. The wide vocabulary spreads the
/// 18 rows over several lm_head chunks (not a multiple of the chunk).
#[test]
fn fused_kernels_match_burn_ops_in_loss_and_every_gradient() {
    let wide = nanoreward::model::lm_head_chunk_logits() / 4 + 37;
    for (dropout, vocab) in [(0.0, 11), (0.3, 11), (0.0, wide)] {
        let m = tiny_vocab(dropout, vocab).into_trainable(|_| true);
        let x: Vec<i64> = vec![1, 5, 2, 9, 3, 3, 7, 0, 4, 10, 6, 8, 2, 2, 5, 1, 0, 9];
        let y: Vec<i64> = vec![5, 2, 9, 3, 3, 7, 0, 4, 10, 6, 8, 1, 2, 5, 1, 0, 9, 4];
        let run = || {
            let noise = Dropout::new(42);
            let loss = m.loss(m.tokens(&x, 2), m.tokens(&y, 2), Some(&noise));
            let value = loss.clone().into_scalar::<f32>();
            let grads = nanoreward::train::optim::collect_grads(&m, &loss.backward());
            (value, grads)
        };
        let (fused_loss, fused_grads) = run();
        let (burn_loss, burn_grads) = nanoreward::model::with_burn_ops(run);
        assert!(
            (fused_loss - burn_loss).abs() < 1e-5,
            "dropout {dropout}, vocab {vocab}: loss {fused_loss} vs {burn_loss}"
        );
        let names = m.named_params();
        for ((name, _), (a, b)) in names.iter().zip(fused_grads.into_iter().zip(burn_grads)) {
            let (a, b) = (a.expect("fused gradient"), b.expect("burn gradient"));
            let scale: f32 = b.clone().abs().max().into_scalar();
            let diff = max_diff(a, b);
            assert!(
                diff <= 1e-4 * scale.max(1e-3),
                "dropout {dropout}, vocab {vocab}: {name} gradient differs by {diff} (largest {scale})"
            );
        }
    }
}

/// The chunked lm_head + cross-entropy under autodiff with unequal row weights (its recomputing
/// backward) and the chunked entropy give burn's loss and gradients for the states and the
/// embeddings.
#[test]
fn weighted_lm_head_cross_entropy_matches_burn_ops() {
    use burn::tensor::{Int, TensorData};
    let dev = Device::flex();
    let (n, c, v) = (9, 8, 23);
    let val = |i: usize, s: f32| ((i as f32 * 0.618).fract() - 0.5) * s;
    let data = |len: usize, s: f32, o: usize| (0..len).map(|i| val(i + o, s)).collect::<Vec<_>>();
    let run = || {
        let ad = burn::tensor::Device::autodiff(dev.clone());
        let x = Tensor::<2>::from_data(TensorData::new(data(n * c, 2.0, 0), [n, c]), &ad)
            .require_grad();
        let wte = Tensor::<2>::from_data(TensorData::new(data(v * c, 3.0, 5), [v, c]), &ad)
            .require_grad();
        let t: Vec<i64> = (0..n).map(|i| ((i * 7) % v) as i64).collect();
        let t = Tensor::<1, Int>::from_data(TensorData::new(t, [n]), &ad);
        let w = Tensor::<1>::from_data(TensorData::new(data(n, 1.0, 3), [n]), &ad);
        let u = Tensor::<1>::from_data(TensorData::new(data(n, 1.0, 11), [n]), &ad);
        let ce =
            nanoreward::model::lm_head_cross_entropy(x.clone(), wte.clone(), t, Precision::Float32)
                * w;
        let h = nanoreward::model::lm_head_entropy(x.clone(), wte.clone(), Precision::Float32) * u;
        let loss = ce.sum() + h.sum();
        let g = loss.backward();
        (
            loss.into_scalar::<f32>(),
            x.grad(&g).unwrap(),
            wte.grad(&g).unwrap(),
        )
    };
    let (l1, dx1, dw1) = run();
    let (l2, dx2, dw2) = nanoreward::model::with_burn_ops(run);
    assert!((l1 - l2).abs() < 1e-5, "loss {l1} vs {l2}");
    assert!(max_diff(dx1, dx2) < 1e-5, "dx");
    assert!(max_diff(dw1, dw2) < 1e-5, "dwte");
}

/// The inference forward splits its rows over the backend's threads (two here, set before any
/// work): the logits equal those of each row run alone, in order.
#[test]
fn row_split_forward_equals_each_row_alone() {
    nanoreward::util::device::set_threads(2);
    let m = tiny(0.0);
    let ids: Vec<i64> = (0..5 * 12).map(|i| (i * 7 % 11) as i64).collect();
    let all = m.forward(m.tokens(&ids, 5), None);
    assert_eq!(all.dims(), [5, 12, 11]);
    for r in 0..5 {
        let alone = m.forward(m.tokens(&ids[r * 12..(r + 1) * 12], 1), None);
        let d = max_diff(all.clone().narrow(0, r, 1), alone);
        assert!(d < 1e-5, "row {r}: max |Δlogit| {d}");
    }
}

/// bf16 products (autocast's rule) under autodiff: f32 master weights get f32 gradients close to
/// the f32 model's (bf16 keeps 8 bits of mantissa), yet not equal to them; the linear layers'
/// bias is added in f32. Through burn's ops so the lm_head product is bf16 too.
#[test]
fn bf16_loss_and_gradients_are_close_to_f32() {
    let m = tiny(0.0).into_trainable(|_| true);
    let mut b = m.clone();
    b.precision = Precision::Bfloat16;
    let x: Vec<i64> = vec![1, 5, 2, 9, 3, 3, 7, 0, 4, 10, 6, 8, 2, 2, 5, 1, 0, 9];
    let y: Vec<i64> = vec![5, 2, 9, 3, 3, 7, 0, 4, 10, 6, 8, 1, 2, 5, 1, 0, 9, 4];
    let run = |m: &GPT| {
        let loss = m.loss(m.tokens(&x, 2), m.tokens(&y, 2), None);
        let value = loss.clone().into_scalar::<f32>();
        (
            value,
            nanoreward::train::optim::collect_grads(m, &loss.backward()),
        )
    };
    for burn_ops in [false, true] {
        let ((l32, g32), (l16, g16)) = if burn_ops {
            nanoreward::model::with_burn_ops(|| (run(&m), run(&b)))
        } else {
            (run(&m), run(&b))
        };
        assert!((l32 - l16).abs() < 2e-2 * l32, "loss {l32} vs {l16}");
        let mut differs = 0;
        for ((name, _), (a, c)) in m.named_params().iter().zip(g32.into_iter().zip(g16)) {
            let (a, c) = (a.unwrap(), c.unwrap());
            assert_eq!(c.dtype(), burn::tensor::DType::F32, "{name}");
            let scale: f32 = a.clone().abs().max().into_scalar();
            let diff = max_diff(a, c);
            assert!(
                diff <= 5e-2 * scale.max(1e-4),
                "{name}: {diff} (largest {scale})"
            );
            differs += usize::from(diff > 1e-6 * scale);
        }
        assert!(
            differs > 0,
            "bf16 gradients equal the f32 ones (burn ops: {burn_ops})"
        );
    }
}

/// `same_trunk`: a copy has this model's trunk; one changed weight of one block, or the same
/// weights split into other heads, does not.
#[test]
fn same_trunk_compares_every_trunk_weight_and_the_heads() {
    use nanoreward::model::Param;
    let m = tiny(0.0);
    assert!(m.same_trunk(&m.clone()));
    let bump = |name: &'static str| {
        let mut c = m.clone();
        c.map_params(|n, p| {
            Ok(match p {
                Param::Matrix(t) if n == name => Param::Matrix(t.add_scalar(1e-3)),
                Param::Vector(t) if n == name => Param::Vector(t.add_scalar(1e-3)),
                p => p,
            })
        })
        .unwrap();
        c
    };
    assert!(!m.same_trunk(&bump("transformer.h.1.mlp.c_proj.weight")));
    assert!(!m.same_trunk(&bump("transformer.ln_f.bias")));
    assert!(m.same_trunk(&bump("no.such.weight")));
    // The same weights, value for value, read as 4 heads instead of 2.
    let cfg = GPTConfig {
        n_head: 4,
        ..m.config.clone()
    };
    let mut heads = GPT::new(&cfg, &Device::flex(), 5).unwrap();
    let src: std::collections::HashMap<String, Param> = m.named_params().into_iter().collect();
    heads.map_params(|n, _| Ok(src[n].clone())).unwrap();
    assert!(!m.same_trunk(&heads));
    let two = GPT::new(&m.config, &Device::flex(), 5).unwrap();
    let mut copied = two.clone();
    copied.map_params(|n, _| Ok(src[n].clone())).unwrap();
    assert!(m.same_trunk(&copied) && !m.same_trunk(&two));
}
