//! CPU vs CUDA parity, run wherever CUDA is present (a build with `--features cuda` on a GPU
//! machine, e.g. by scripts/gpu_check.sh) and skipped with one message elsewhere: the same
//! weights give the same logits (≤ 1e-3), the KV cache equals full recomputation on CUDA, a short
//! training run's loss falls (f32 and bf16), and two reward-data runs with one seed write the same bytes.

mod common;

use burn::tensor::Device;
use nanoreward::model::{GPT, GPTConfig, KvCache};
use nanoreward::util::{device, to_host};

/// The CUDA device, or None with a message (no CUDA build, or no usable GPU).
fn cuda() -> Option<Device> {
    if !cfg!(feature = "cuda") {
        eprintln!(
            "SKIP: built without --features cuda; the CUDA parity tests run on a GPU machine (scripts/gpu_check.sh)"
        );
        return None;
    }
    match device::select("cuda") {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIP: {e}");
            None
        }
    }
}

fn tiny() -> GPTConfig {
    GPTConfig {
        block_size: 16,
        vocab_size: 29,
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        bias: true,
        ..Default::default()
    }
}

#[test]
fn cuda_logits_and_cache_match_the_cpu() {
    let Some(gpu) = cuda() else { return };
    let cpu_model = GPT::new(&tiny(), &Device::flex(), 3).unwrap();
    let gpu_model = cpu_model.clone().to_device(&gpu);
    let ids: Vec<i64> = (0..32).map(|i| (i * 7 % 29) as i64).collect();
    let a = to_host(cpu_model.forward(cpu_model.tokens(&ids, 2), None));
    let b = to_host(gpu_model.forward(gpu_model.tokens(&ids, 2), None));
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(d <= 1e-3, "CPU vs CUDA logits differ by {d}");
    // KV cache on CUDA: the last position's logits after a prefill + one step equal the full pass.
    let mut cache = KvCache::default();
    let _ = gpu_model.forward_cached(gpu_model.tokens(&ids[..15], 1), &mut cache);
    let step = to_host(gpu_model.forward_cached(gpu_model.tokens(&ids[15..16], 1), &mut cache));
    let full = to_host(gpu_model.forward(gpu_model.tokens(&ids[..16], 1), None));
    let last = &full[15 * 29..16 * 29];
    let d = step
        .iter()
        .zip(last)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(d <= 1e-4, "KV cache vs recomputation on CUDA: {d}");
}

#[test]
fn cuda_training_lowers_the_loss_and_reward_data_is_reproducible() {
    if cuda().is_none() {
        return;
    }
    let (d, _m, ck) = common::tiny_base();
    let dd = d.path().join("data");
    nanoreward::data::prepare(
        &d.path().join("input.txt"),
        &dd,
        nanoreward::data::TokenizationKind::Char,
        0.9,
    )
    .unwrap();
    let cfg = nanoreward::train::TrainConfig {
        data_dir: dd.display().to_string(),
        out_dir: d.path().join("t").display().to_string(),
        device: "cuda".into(),
        block_size: 16,
        n_layer: 1,
        n_head: 2,
        n_embd: 32,
        batch_size: 8,
        max_iters: 60,
        eval_interval: 30,
        eval_iters: 5,
        warmup_iters: 0,
        learning_rate: 3e-3,
        ..Default::default()
    };
    for dtype in ["float32", "bfloat16"] {
        let cfg = nanoreward::train::TrainConfig {
            dtype: dtype.parse().unwrap(),
            out_dir: d.path().join(dtype).display().to_string(),
            ..cfg.clone()
        };
        let out = nanoreward::train::run(&cfg, false).unwrap();
        let (first, last) = (out.evals[0].2, out.evals[out.evals.len() - 1].2);
        assert!(
            last < first - 0.3,
            "CUDA training ({dtype}): val loss {first} -> {last}"
        );
    }
    let gpu = device::select("cuda").unwrap();
    let model = nanoreward::checkpoint::load_model(&ck, &gpu).unwrap();
    for out in ["a", "b"] {
        let o = nanoreward::reward::prepare::RewardPrepOptions {
            max_blocks: Some(10),
            ..common::prep_options(d.path(), &ck, out)
        };
        nanoreward::reward::prepare::run(&o, &model, false).unwrap();
    }
    for f in ["train_x.bin", "train_y.bin", "val_x.bin"] {
        let a = std::fs::read(d.path().join("a").join(f)).unwrap();
        let b = std::fs::read(d.path().join("b").join(f)).unwrap();
        assert_eq!(a, b, "{f} differs between two CUDA runs with one seed");
    }
}
