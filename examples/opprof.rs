use burn::tensor::activation::{gelu, softmax};
use burn::tensor::module::{attention, layer_norm, linear};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Distribution, Tensor};
use std::time::Instant;

fn time<F: FnMut() -> f32>(name: &str, mut f: F) {
    for _ in 0..3 {
        f();
    }
    let t0 = Instant::now();
    let n = 20;
    for _ in 0..n {
        f();
    }
    println!(
        "{name}: {:.3} ms",
        t0.elapsed().as_secs_f64() * 1e3 / n as f64
    );
}

fn main() {
    let d = Device::flex();
    let x = Tensor::<3>::random([12, 64, 128], Distribution::Normal(0.0, 1.0), &d);
    let w = Tensor::<2>::random([128, 384], Distribution::Normal(0.0, 0.02), &d);
    let w2 = Tensor::<2>::random([128, 512], Distribution::Normal(0.0, 0.02), &d);
    let g = Tensor::<1>::ones([128], &d);
    time("linear 128->384", || {
        linear(x.clone(), w.clone(), None).sum().into_scalar()
    });
    time("matmul 2d 768x128x512", || {
        x.clone()
            .reshape([768, 128])
            .matmul(w2.clone())
            .sum()
            .into_scalar()
    });
    time("layer_norm", || {
        layer_norm(x.clone(), g.clone(), None, 1e-5)
            .sum()
            .into_scalar()
    });
    let q = Tensor::<4>::random([12, 4, 64, 32], Distribution::Normal(0.0, 1.0), &d);
    let opts = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    time("attention causal", || {
        attention(q.clone(), q.clone(), q.clone(), None, None, opts)
            .sum()
            .into_scalar()
    });
    time("manual attention", || {
        let att = q.clone().matmul(q.clone().swap_dims(2, 3)).mul_scalar(0.17);
        let mask = Tensor::<2, Bool>::triu_mask([64, 64], 1, &d).unsqueeze::<4>();
        softmax(att.mask_fill(mask, f32::NEG_INFINITY), 3)
            .matmul(q.clone())
            .sum()
            .into_scalar()
    });
    let h = Tensor::<3>::random([12, 64, 512], Distribution::Normal(0.0, 1.0), &d);
    time("gelu 12x64x512", || gelu(h.clone()).sum().into_scalar());
    time("gelu_approx", || {
        burn::tensor::activation::gelu_approximate(h.clone())
            .sum()
            .into_scalar()
    });
    time("erf", || h.clone().erf().sum().into_scalar());
    time("tanh", || h.clone().tanh().sum().into_scalar());
    time("exp", || h.clone().exp().sum().into_scalar());
    time("mul", || (h.clone() * h.clone()).sum().into_scalar());
    time("sum only", || h.clone().sum().into_scalar());
    let qkv = linear(x.clone(), w.clone(), None);
    time("narrow+reshape+swap", || {
        qkv.clone()
            .narrow(2, 128, 128)
            .reshape([12, 64, 4, 32])
            .swap_dims(1, 2)
            .sum()
            .into_scalar()
    });
    time("swap back", || {
        q.clone()
            .swap_dims(1, 2)
            .reshape([12, 64, 128])
            .sum()
            .into_scalar()
    });
}
