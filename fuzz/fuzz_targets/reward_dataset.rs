//! The reward dataset reader: x/y/metadata files cut from the input, opened and read whole.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nanoreward::reward::dataset::{RewardDataset, split_paths};

fuzz_target!(|data: &[u8]| {
    // Two little-endian u16 lengths split the rest into metadata text, x bytes and y bytes.
    if data.len() < 4 {
        return;
    }
    let a = u16::from_le_bytes([data[0], data[1]]) as usize;
    let b = u16::from_le_bytes([data[2], data[3]]) as usize;
    let rest = &data[4..];
    let a = a.min(rest.len());
    let b = b.min(rest.len() - a);
    let dir = tempfile::tempdir().expect("temp dir");
    let (xp, yp, mp) = split_paths(dir.path(), "train");
    std::fs::write(&mp, &rest[..a]).expect("write");
    std::fs::write(&xp, &rest[a..a + b]).expect("write");
    std::fs::write(&yp, &rest[a + b..]).expect("write");
    if let Ok(ds) = RewardDataset::open(dir.path(), "train", None) {
        for i in 0..ds.len().min(64) {
            let (x, y) = ds.get(i);
            assert_eq!(x.len(), ds.meta.block_size);
            assert!(y[0].is_finite() && y[1].is_finite());
        }
        let _ = ds.stats();
    }
});
