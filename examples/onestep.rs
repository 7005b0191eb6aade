//! Writes a model before and after STEPS training steps on fixed batches, for comparison with
//! PyTorch: `cargo run --release --example onestep -- TRAIN_BIN OUT_DIR STEPS`, then
//! `python scripts/compare_step.py OUT_DIR TRAIN_BIN STEPS`.
use burn::tensor::Device;
use nanoreward::checkpoint::{self, CheckpointParts};
use nanoreward::data::TokenFile;
use nanoreward::model::{GPT, GPTConfig};
use nanoreward::train::optim::{self, AdamW, AdamWConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (data, out) = (&args[1], std::path::Path::new(&args[2]));
    let steps: usize = args.get(3).map_or(1, |s| s.parse().unwrap());
    let d = Device::flex();
    let cfg = GPTConfig {
        block_size: 64,
        vocab_size: 65,
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        bias: false,
        ..Default::default()
    };
    let m = GPT::new(&cfg, &d, 1).unwrap();
    let save = |m: &GPT, name: &str| {
        checkpoint::save(
            &out.join(name),
            &CheckpointParts {
                model: m,
                optimizer: None,
                train_state: Default::default(),
                tokenizer: None,
                feature_models: Vec::new(),
                extra: Vec::new(),
            },
        )
        .unwrap()
    };
    save(&m, "init");
    let f = TokenFile::open(std::path::Path::new(data)).unwrap();
    let mut model = m.into_trainable(|_| true);
    let mut opt = AdamW::new(AdamWConfig {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.1,
    });
    for s in 0..steps {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for r in 0..12 {
            let start = 1000 * r + 7 * s;
            for t in 0..64 {
                x.push(f.get(start + t) as i64);
                y.push(f.get(start + t + 1) as i64);
            }
        }
        let (loss, mut g) = optim::batch_grads(&model, &x, &y, 12, 1, 1.0, None);
        let norm = optim::clip_grad_norm(&mut g, 1.0);
        opt.step(&mut model, g, 1e-3);
        println!("step {s}: loss {loss:.6} grad_norm {norm:.6}");
    }
    save(&model.inference(), "after");
}
