//! The checkpoint loader: config.json and model.safetensors bytes into a small GPT.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nanoreward::checkpoint;
use nanoreward::model::{GPT, GPTConfig};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    // The first byte picks what the rest is: a config.json or a model.safetensors.
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    if kind % 2 == 0 {
        if let Ok(cfg) = serde_json::from_slice::<GPTConfig>(rest) {
            let _ = cfg.validate();
        }
        return;
    }
    let path = Path::new("fuzz.safetensors");
    if let Ok(weights) = checkpoint::safetensors::parse(rest, path) {
        let cfg = GPTConfig {
            block_size: 4,
            vocab_size: 5,
            n_layer: 1,
            n_head: 1,
            n_embd: 4,
            ..Default::default()
        };
        let dev = burn::tensor::Device::flex();
        let mut model = GPT::new(&cfg, &dev, 0).expect("tiny config is valid");
        let _ = checkpoint::load_weights(&mut model, &weights, path, |_| true);
    }
});
