//! nanoGPT `ckpt.pt` import (torch.save zip + pickle) from arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("ckpt.pt");
    std::fs::write(&p, data).expect("write");
    if let Ok(ck) = nanoreward::checkpoint::nanogpt::read(&p) {
        let dev = burn::tensor::Device::flex();
        let c = &ck.config;
        let (v, b, l, e) = (
            c.vocab_size as u128,
            c.block_size as u128,
            c.n_layer as u128,
            c.n_embd as u128,
        );
        let size = (v + b + 12 * l * e) * e;
        if size < 1 << 20 {
            let _ = nanoreward::checkpoint::nanogpt::model(&ck, &dev);
        }
    }
});
