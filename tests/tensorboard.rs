//! TensorBoard event files written by `train --tensorboard=DIR`, read back by the tensorboard
//! package's own event reader (skipped with a message where it is not installed): every logged
//! scalar arrives with its step and value.

mod common;

#[test]
fn train_scalars_reach_tensorboards_reader() {
    let (d, _m, _ck) = common::tiny_base_with_data();
    let p = d.path();
    common::expect_success(&common::run(
        &[
            "train",
            "--data_dir=data",
            "--out_dir=out",
            "--n_layer=1",
            "--n_head=2",
            "--n_embd=32",
            "--block_size=16",
            "--batch_size=4",
            "--max_iters=12",
            "--eval_interval=6",
            "--eval_iters=1",
            "--threads=1",
            "--tensorboard=tb",
        ],
        p,
    ));
    let Some(out) = common::script_needing("read_tensorboard.py", &[p.join("tb")], "tensorboard")
    else {
        return;
    };
    let scalars: serde_json::Value = serde_json::from_str(&out).unwrap();
    let log = nanoreward::metrics::read_jsonl(&p.join("out/metrics.jsonl")).unwrap();
    let losses: Vec<(u64, f64)> = log
        .iter()
        .filter_map(|r| Some((r["iter"].as_u64()?, r.get("loss")?.as_f64()?)))
        .collect();
    let tb = scalars["train/loss"].as_array().unwrap();
    assert_eq!(tb.len(), losses.len());
    for (got, (it, v)) in tb.iter().zip(&losses) {
        assert_eq!(got[0].as_u64(), Some(*it));
        assert!((got[1].as_f64().unwrap() - v).abs() < 1e-5 * (1.0 + v.abs()));
    }
    for tag in [
        "train/val_loss",
        "train/train_loss",
        "train/lr",
        "train/tokens_per_s",
    ] {
        assert!(scalars.get(tag).is_some(), "{tag} missing: {scalars}");
    }
}
