//! Training end to end on a tiny model: the loss falls, a resumed run continues the same curve,
//! and checkpoints load back to the same model.

mod common;

use nanoreward::checkpoint;
use nanoreward::data::{self, TokenizationKind};
use nanoreward::train::{self, TrainConfig};
use std::path::Path;

fn tiny_config(data_dir: &Path, out_dir: &Path, max_iters: usize) -> TrainConfig {
    TrainConfig {
        out_dir: out_dir.display().to_string(),
        data_dir: data_dir.display().to_string(),
        eval_interval: 20,
        eval_iters: 4,
        log_interval: 5,
        always_save_checkpoint: true,
        batch_size: 8,
        block_size: 32,
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        dropout: 0.1,
        learning_rate: 3e-3,
        max_iters,
        warmup_iters: 5,
        lr_decay_iters: 80,
        min_lr: 3e-4,
        beta2: 0.99,
        threads: 2,
        ..Default::default()
    }
}

fn corpus() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("in.txt"), common::tiny_corpus()).unwrap();
    data::prepare(
        &d.path().join("in.txt"),
        &d.path().join("data"),
        TokenizationKind::Char,
        0.9,
    )
    .unwrap();
    d
}

#[test]
fn loss_falls_and_resume_continues_the_same_curve() {
    let d = corpus();
    let data_dir = d.path().join("data");
    let full = train::run(&tiny_config(&data_dir, &d.path().join("full"), 80), false).unwrap();
    let first = full.evals.first().unwrap().2;
    let last = full.evals.last().unwrap().2;
    assert!(
        last < first - 1.0,
        "val loss {first} -> {last} did not fall enough"
    );

    // Stop at 40, then resume to 80: the evaluation at 80 must match the unbroken run.
    let part = d.path().join("part");
    train::run(&tiny_config(&data_dir, &part, 40), false).unwrap();
    let mut resume = tiny_config(&data_dir, &part, 80);
    resume.init_from = "resume".into();
    let resumed = train::run(&resume, false).unwrap();
    let (it_a, tl_a, vl_a) = *full.evals.last().unwrap();
    let (it_b, tl_b, vl_b) = *resumed.evals.last().unwrap();
    assert_eq!(it_a, it_b);
    assert!(
        (vl_a - vl_b).abs() < 1e-3 && (tl_a - tl_b).abs() < 1e-3,
        "unbroken {tl_a}/{vl_a} vs resumed {tl_b}/{vl_b}"
    );

    // The metrics log of the resumed run holds each iteration once.
    let recs = nanoreward::metrics::read_jsonl(&part.join("metrics.jsonl")).unwrap();
    let evals: Vec<u64> = recs
        .iter()
        .filter(|r| r.get("val_loss").is_some())
        .map(|r| r["iter"].as_u64().unwrap())
        .collect();
    assert_eq!(evals, vec![0, 20, 40, 60, 80]);
    assert!(part.join("loss_curve.svg").exists());

    // The checkpoint reloads to a model with the same weights.
    let dev = burn::tensor::Device::flex();
    let m = checkpoint::load_model(&part.join("ckpt"), &dev).unwrap();
    let again = checkpoint::model_tensors(&m);
    let tmp = d.path().join("copy");
    checkpoint::save(
        &tmp,
        &checkpoint::CheckpointParts {
            model: &m,
            optimizer: None,
            train_state: Default::default(),
            tokenizer: None,
            feature_models: Vec::new(),
            extra: Vec::new(),
        },
    )
    .unwrap();
    let m2 = checkpoint::load_model(&tmp, &dev).unwrap();
    assert_eq!(again, checkpoint::model_tensors(&m2));
}

/// `dtype = "bfloat16"`: bf16 products with f32 master weights — the loss falls like the f32
/// run's (not identically), and the checkpoint on disk is f32.
#[test]
fn bfloat16_training_keeps_f32_weights_and_learns() {
    let d = corpus();
    let data_dir = d.path().join("data");
    let f32_run = train::run(&tiny_config(&data_dir, &d.path().join("f32"), 40), false).unwrap();
    let mut cfg = tiny_config(&data_dir, &d.path().join("bf16"), 40);
    cfg.dtype = "bfloat16".parse().unwrap();
    let bf16_run = train::run(&cfg, false).unwrap();
    let (a, b) = (
        f32_run.evals.last().unwrap().2,
        bf16_run.evals.last().unwrap().2,
    );
    let first = bf16_run.evals.first().unwrap().2;
    assert!(b < first - 0.5, "bf16 val loss {first} -> {b}");
    assert!((a - b).abs() < 0.1 && a != b, "f32 {a} vs bf16 {b}");
    let bytes = std::fs::read(d.path().join("bf16/ckpt/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, view) in st.tensors() {
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
    }
    // A dtype we do not have is one clear error.
    let e = "float16"
        .parse::<nanoreward::model::Precision>()
        .unwrap_err()
        .to_string();
    assert!(e.contains("float32") && e.contains("bfloat16"), "{e}");
}
