//! The reward model: loading rules (generator → reward keeps the trunk bit-identical, frozen
//! trunks stay unchanged by training, mismatched checkpoints fail naming the tensor), the
//! frozen-trunk fast path against recomputing the trunk, batched scoring and eval.json.

mod common;

use burn::tensor::Device;
use nanoreward::checkpoint::{self, HostTensor};
use nanoreward::model::Pooling;
use nanoreward::reward::dataset::RewardDataset;
use nanoreward::reward::eval as reward_eval;
use nanoreward::reward::model::SharedStates;
use nanoreward::reward::prepare::{self as reward_prepare, RewardPrepOptions};
use nanoreward::reward::train as reward_model;
use nanoreward::reward::{RewardModel, RewardTrainConfig};
use std::collections::HashMap;
use std::path::Path;

fn weights(dir: &Path) -> HashMap<String, HostTensor> {
    checkpoint::safetensors::read(&dir.join("model.safetensors")).unwrap()
}

fn dataset(d: &Path, ck: &Path, model: &nanoreward::model::GPT) -> std::path::PathBuf {
    let o = RewardPrepOptions {
        samples_per_chunk: 4,
        batch_size: 32,
        max_blocks: Some(30),
        ..common::prep_options(d, ck, "rd")
    };
    reward_prepare::run(&o, model, false).unwrap();
    o.output_dir
}

/// A checkpoint in reward mode (see `reward::model::from_checkpoint`).
fn load_reward_model(
    p: &Path,
    hidden: usize,
    pooling: Pooling,
    dev: &Device,
    seed: u64,
) -> nanoreward::Result<(nanoreward::model::GPT, checkpoint::LoadReport)> {
    let ck = checkpoint::Checkpoint::open(p)?;
    let spec = nanoreward::reward::model::HeadSpec {
        hidden,
        pooling,
        ..Default::default()
    };
    nanoreward::reward::model::from_checkpoint(&ck, &spec, dev, seed)
}

fn config(d: &Path, ck: &Path, data: &Path, out: &str) -> RewardTrainConfig {
    RewardTrainConfig {
        base: ck.display().to_string(),
        data: data.display().to_string(),
        out_dir: d.join(out).display().to_string(),
        epochs: 3,
        batch_size: 16,
        lr: 3e-3,
        // A constant learning rate and one evaluation per epoch (the tests below count them).
        warmup_steps: 0,
        decay_lr: false,
        evals_per_epoch: 1,
        reward_head_hidden_dim: 24,
        patience: 0,
        threads: 1,
        // The seed's recipe: the pooled head on a frozen trunk.
        loss: nanoreward::reward::train::RewardLoss::Mse,
        freeze_trunk: true,
        ..Default::default()
    }
}

#[test]
fn generator_to_reward_keeps_the_trunk() {
    let (d, _m, ck) = common::tiny_base();
    let dev = Device::flex();
    let (rm, report) = load_reward_model(&ck, 24, Pooling::Mean, &dev, 1).unwrap();
    let base = weights(&ck);
    assert_eq!(report.loaded.len(), base.len());
    assert!(
        report
            .unused
            .iter()
            .any(|u| u.starts_with("lm_head.weight"))
    );
    assert_eq!(
        report.initialised,
        vec![
            "reward_head.0.weight",
            "reward_head.0.bias",
            "reward_head.2.weight",
            "reward_head.2.bias"
        ]
    );
    for (name, t) in checkpoint::model_tensors(&rm) {
        match base.get(&name) {
            Some(b) => assert!(b == &t, "{name} changed on loading"),
            None => assert!(name.starts_with("reward_head.")),
        }
    }
    assert_eq!(rm.config.reward_head_hidden_dim, 24);
    // A trunk of the wrong shape is refused, naming the tensor.
    let wrong = d.path().join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    std::fs::copy(
        ck.join("model.safetensors"),
        wrong.join("model.safetensors"),
    )
    .unwrap();
    let cfg = std::fs::read_to_string(ck.join("config.json"))
        .unwrap()
        .replace("\"n_embd\": 32", "\"n_embd\": 48");
    std::fs::write(wrong.join("config.json"), cfg).unwrap();
    let e = load_reward_model(&wrong, 24, Pooling::Last, &dev, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("transformer.wte.weight has shape [") && e.contains("48"),
        "{e}"
    );
}

/// Trains `cfg` with the frozen trunk's states cached (fast path) and recomputed every batch:
/// the trunk stays bit-identical, the heads and every evaluation agree, the head trains.
fn fast_path_agrees(d: &Path, ck: &Path, cfg: RewardTrainConfig, name: &str) {
    let fast = reward_model::train(
        &RewardTrainConfig {
            threads: 2,
            ..cfg.clone()
        },
        false,
    )
    .unwrap();
    let slow_cfg = RewardTrainConfig {
        fast_path: false,
        out_dir: d.join(format!("{name}-slow")).display().to_string(),
        ..cfg
    };
    // The uncached path split over two worker threads: their shard losses must add up to
    // the batch loss, so the same head comes out.
    let split_cfg = RewardTrainConfig {
        threads: 2,
        out_dir: d.join(format!("{name}-split")).display().to_string(),
        ..slow_cfg.clone()
    };
    let slow = reward_model::train(&slow_cfg, false).unwrap();
    let split = reward_model::train(&split_cfg, false).unwrap();
    let base = weights(ck);
    let (wf, ws) = (weights(&fast.checkpoint), weights(&slow.checkpoint));
    let wsplit = weights(&split.checkpoint);
    for (name, b) in &base {
        if let Some(t) = wf.get(name) {
            assert!(t == b, "{name} changed although the trunk is frozen");
        }
    }
    let mut heads = 0;
    for (name, t) in &wf {
        if name.starts_with("reward_head.") {
            heads += 1;
            let diff = |other: &[f32]| {
                t.data
                    .iter()
                    .zip(other)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max)
            };
            let d = diff(&ws[name].data);
            assert!(d < 1e-4, "{name}: fast and slow paths differ by {d}");
            let d = diff(&wsplit[name].data);
            assert!(d < 1e-4, "{name}: one worker and two differ by {d}");
        }
    }
    assert!(heads >= 4, "{name}: {heads} head tensors");
    // The head really trains: the train loss falls from the first epoch to the last.
    let (first, last) = (fast.history[1].1, fast.history.last().unwrap().1);
    assert!(last < first, "{name}: train loss {first} -> {last}");
    assert_eq!(fast.history.len(), slow.history.len());
    for (a, b) in fast.history.iter().zip(&slow.history).skip(1) {
        assert!(
            (a.1 - b.1).abs() < 1e-5 && (a.2 - b.2).abs() < 1e-5,
            "{name}: {a:?} vs {b:?}"
        );
    }
}

#[test]
fn frozen_training_changes_only_the_head_and_fast_path_agrees() {
    let (d, model, ck) = common::tiny_base();
    let data = dataset(d.path(), &ck, &model);
    fast_path_agrees(
        d.path(),
        &ck,
        config(d.path(), &ck, &data, "pooled"),
        "pooled",
    );
    // The token head (the default recipe: white-box and lexicon channels, 2 neighbours each
    // side) on the cached states of every token.
    let token = RewardTrainConfig {
        loss: reward_model::RewardLoss::TokenBoth,
        features: true,
        lexicon: true,
        context: 2,
        epochs: 2,
        ..config(d.path(), &ck, &data, "token")
    };
    fast_path_agrees(d.path(), &ck, token, "token");
    // Which parameters train under each freezing option.
    let t = |n: &str, unfreeze: usize| reward_model::is_trainable(n, 4, true, unfreeze);
    assert!(t("reward_head.0.weight", 0) && !t("transformer.h.3.mlp.c_fc.weight", 0));
    assert!(t("transformer.h.3.mlp.c_fc.weight", 1) && t("transformer.ln_f.weight", 1));
    assert!(
        !t("transformer.h.2.attn.c_attn.weight", 1) && t("transformer.h.2.attn.c_attn.weight", 2)
    );
    assert!(
        !t("transformer.wte.weight", 4)
            && reward_model::is_trainable("transformer.wte.weight", 4, false, 0)
    );
}

#[test]
fn scoring_batches_and_eval_report() {
    let (d, model, ck) = common::tiny_base();
    let data = dataset(d.path(), &ck, &model);
    let out = reward_model::train(&config(d.path(), &ck, &data, "rm"), false).unwrap();
    let dev = Device::flex();
    let rm = RewardModel::load(&out.checkpoint, &dev).unwrap();
    let seqs: Vec<Vec<u32>> = vec![
        vec![1, 2, 3],
        vec![4; 16],
        vec![5, 6, 7],
        vec![2; 9],
        vec![1, 1],
    ];
    let batched = rm.score(&seqs).unwrap();
    for (s, &p) in seqs.iter().zip(&batched) {
        let one = rm.score(std::slice::from_ref(s)).unwrap()[0];
        assert!((one - p).abs() < 1e-5 && (0.0..=1.0).contains(&p));
    }
    assert!(rm.score(&[vec![1; 17]]).is_err());
    assert!(RewardModel::load(&ck, &dev).is_err());
    let val = RewardDataset::open(&data, "val", None).unwrap();
    let j = serde_json::to_value(
        reward_eval::evaluate(&rm, &model, &val, 16, 1, &d.path().join("eval")).unwrap(),
    )
    .unwrap();
    for k in [
        "mae",
        "mae_baseline",
        "boundary_mae_tokens",
        "auroc",
        "auroc_loglik_baseline",
    ] {
        assert!(j[k].as_f64().is_some_and(f64::is_finite), "{k}: {}", j[k]);
    }
    let base_mae: f64 = (0..val.len())
        .map(|i| (0.5 - val.label(i)[0] as f64).abs())
        .sum::<f64>()
        / val.len() as f64;
    assert!((j["mae_baseline"].as_f64().unwrap() - base_mae).abs() < 1e-9);
    for f in ["eval.json", "calibration.svg", "predictions_hist.svg"] {
        assert!(d.path().join("eval").join(f).exists(), "{f}");
    }
}

/// nanoGPT's schedule written out: linear warmup, then cosine from `lr` to `min` at `total`.
fn cosine(step: usize, lr: f64, warmup: usize, total: usize, min: f64) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / (warmup + 1) as f64;
    }
    let r = (step - warmup) as f64 / (total - warmup) as f64;
    min + 0.5 * (1.0 + (std::f64::consts::PI * r).cos()) * (lr - min)
}

#[test]
fn evaluations_within_epochs_and_the_decayed_learning_rate() {
    let (d, model, ck) = common::tiny_base();
    let data = dataset(d.path(), &ck, &model);
    let mut cfg = config(d.path(), &ck, &data, "sched");
    (cfg.epochs, cfg.evals_per_epoch, cfg.batch_size) = (2, 3, 4);
    (cfg.decay_lr, cfg.warmup_steps, cfg.min_lr) = (true, 2, 1e-4);
    let out = reward_model::train(&cfg, false).unwrap();
    // One evaluation before training, then three per epoch.
    assert_eq!(out.history.len(), 1 + 3 * 2, "{:?}", out.history);
    let epochs: Vec<usize> = out.history.iter().map(|h| h.0).collect();
    assert_eq!(epochs, vec![0, 1, 1, 1, 2, 2, 2]);
    let log = std::fs::read_to_string(Path::new(&cfg.out_dir).join("metrics.jsonl")).unwrap();
    let lrs: Vec<f64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"].as_f64())
        .collect();
    // The train split's size fixes the steps per epoch; the last logged lr is that of the
    // last step, one before the end of the decay.
    let n = nanoreward::reward::RewardDataset::open(&data, "train", None)
        .unwrap()
        .len();
    let total = 2 * n.div_ceil(4);
    let want = cosine(total - 1, cfg.lr, 2, total, cfg.min_lr);
    assert_eq!(lrs.len(), 6);
    assert!((lrs[5] - want).abs() < 1e-12, "{} vs {want}", lrs[5]);
    assert!(lrs.windows(2).all(|w| w[1] < w[0]), "{lrs:?}");
    for step in [0, 1, 2, total / 2, total - 1] {
        let got = cfg.lr_at(step, total);
        let want = cosine(step, cfg.lr, 2, total, cfg.min_lr);
        assert!((got - want).abs() < 1e-12, "step {step}: {got} vs {want}");
    }
    // Without decay: warmup, then constant.
    cfg.decay_lr = false;
    assert!((cfg.lr_at(0, total) - cfg.lr / 3.0).abs() < 1e-12);
    assert_eq!(cfg.lr_at(total - 1, total), cfg.lr);
    // A min_lr above lr only matters when decaying.
    cfg.min_lr = 2.0 * cfg.lr;
    assert!(cfg.validate().is_ok());
    cfg.decay_lr = true;
    assert!(cfg.validate().is_err());
    cfg.decay_lr = false;
    cfg.evals_per_epoch = 0;
    assert!(cfg.validate().is_err());
    // bf16 products train the reward model too: its train loss falls epoch over epoch.
    let mut bf = config(d.path(), &ck, &data, "bf16");
    bf.dtype = "bfloat16".parse().unwrap();
    let out = reward_model::train(&bf, false).unwrap();
    let (first, last) = (out.history[1].1, out.history.last().unwrap().1);
    assert!(last < first, "bf16 train loss {first} -> {last}");
}

/// `ema_decay`: the weights' average is what is evaluated and saved. With a decay near 0 the
/// average is the last step's weights (the run equals the plain one); with 0.9 every
/// evaluation after training starts differs, and the saved model scores the val split at the
/// logged best val loss.
#[test]
fn weight_average_is_evaluated_and_saved() {
    let (d, model, ck) = common::tiny_base();
    let data = dataset(d.path(), &ck, &model);
    let plain = reward_model::train(&config(d.path(), &ck, &data, "plain"), false).unwrap();
    let with = |decay: f64, out: &str| {
        let cfg = RewardTrainConfig {
            ema_decay: decay,
            ..config(d.path(), &ck, &data, out)
        };
        reward_model::train(&cfg, false).unwrap()
    };
    let near_zero = with(1e-9, "ema0");
    for (a, b) in plain.history.iter().zip(&near_zero.history) {
        assert!((a.2 - b.2).abs() < 1e-6, "{a:?} vs {b:?}");
    }
    let (wp, wz) = (weights(&plain.checkpoint), weights(&near_zero.checkpoint));
    for (name, t) in &wp {
        let e = t
            .data
            .iter()
            .zip(&wz[name].data)
            .map(|(a, b)| (a - b).abs());
        assert!(e.fold(0.0f32, f32::max) < 1e-6, "{name}");
    }
    let avg = with(0.9, "ema");
    assert_eq!(avg.history[0].2, plain.history[0].2);
    for (a, b) in plain.history.iter().zip(&avg.history).skip(1) {
        assert!((a.2 - b.2).abs() > 1e-6, "{a:?} vs {b:?}: not averaged");
    }
    let rm = RewardModel::load(&avg.checkpoint, &Device::flex()).unwrap();
    let val = RewardDataset::open(&data, "val", None).unwrap();
    let windows: Vec<Vec<u32>> = (0..val.len()).map(|i| val.tokens(i)).collect();
    let p = rm.score(&windows).unwrap();
    let mse: f64 = p
        .iter()
        .enumerate()
        .map(|(i, &q)| (q as f64 - val.label(i)[0] as f64).powi(2))
        .sum::<f64>()
        / p.len() as f64;
    assert!(
        (mse - avg.best_val_loss).abs() < 1e-5,
        "saved model's val MSE {mse}, logged best {}",
        avg.best_val_loss
    );
}

/// A tiny base with its reward data, and a second tiny language model of the same vocabulary
/// (weights from `seed`) saved as the checkpoint `reference/`: (folder, base model, base
/// checkpoint, reward data, reference model, reference checkpoint).
fn with_reference(
    seed: u64,
) -> (
    tempfile::TempDir,
    nanoreward::model::GPT,
    std::path::PathBuf,
    std::path::PathBuf,
    nanoreward::model::GPT,
    std::path::PathBuf,
) {
    let (d, model, ck) = common::tiny_base();
    let data = dataset(d.path(), &ck, &model);
    let (reference, rp) = common::save_reference(d.path(), &model, &ck, seed);
    (d, model, ck, data, reference, rp)
}

/// A token head (token_risk, both channels, 1 neighbour each side) reading the reference `rp`.
fn reference_config(d: &Path, ck: &Path, data: &Path, rp: &Path, out: &str) -> RewardTrainConfig {
    RewardTrainConfig {
        loss: reward_model::RewardLoss::TokenRisk,
        features: true,
        lexicon: true,
        context: 1,
        reference: rp.display().to_string(),
        ..config(d, ck, data, out)
    }
}

/// A language model like `model` with a vocabulary 3 tokens larger, saved as the checkpoint
/// `other/` in `dir`: a reference the reward model must refuse.
fn other_vocabulary(dir: &Path, model: &nanoreward::model::GPT) -> std::path::PathBuf {
    let other = nanoreward::model::GPT::new(
        &nanoreward::model::GPTConfig {
            vocab_size: model.config.vocab_size + 3,
            ..model.config.clone()
        },
        &Device::flex(),
        3,
    )
    .unwrap();
    let op = dir.join("other");
    common::save_model(&op, &other, None, None);
    op
}

/// The reward checkpoint `ckpt` has a frozen trunk that is its feature model `want` names, weight
/// for weight, so scoring takes the trunk's states from that model's pass: the P(natural) and
/// per-token probabilities of `windows` are those of a trunk pass of its own.
fn shared_scoring_agrees(ckpt: &Path, windows: &[Vec<u32>], want: SharedStates) {
    let shared = RewardModel::load(ckpt, &Device::flex()).unwrap();
    assert_eq!(shared.shared, want);
    let mut plain = RewardModel::load(ckpt, &Device::flex()).unwrap();
    plain.shared = SharedStates::No;
    let (a, b) = (
        shared.score(windows).unwrap(),
        plain.score(windows).unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
    let (a, b) = (
        shared.score_tokens(windows).unwrap(),
        plain.score_tokens(windows).unwrap(),
    );
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

/// `reference`: a second language model's view of every token. Trained with the reference as
/// the frozen trunk too (its feature pass gives the cached states), the fast path agrees with
/// recomputing the trunk; the checkpoint carries the reference model, and the loaded model's
/// reference columns are log r(x_t), r's entropy and log r − log q computed here from the two
/// models directly. A reference of another vocabulary, or without the white-box channel, is
/// refused with a clear message.
#[test]
fn the_reference_channel_reads_a_second_model() {
    use nanoreward::reward::features::{self, NUM_FEATURES, NUM_REFERENCE_FEATURES, View};
    let (d, model, ck, data, reference, rp) = with_reference(77);
    let token = RewardTrainConfig {
        lexicon: false,
        epochs: 2,
        trunk: rp.display().to_string(),
        ..reference_config(d.path(), &ck, &data, &rp, "ref")
    };
    fast_path_agrees(d.path(), &rp, token.clone(), "ref");
    let out = d.path().join("ref/ckpt");
    assert!(out.join("reference_model/model.safetensors").exists());
    let rm = RewardModel::load(&out, &Device::flex()).unwrap();
    let width = NUM_FEATURES + NUM_REFERENCE_FEATURES;
    assert_eq!(rm.model.config.reward_features, width);
    let src = rm.features.as_ref().unwrap();
    let val = RewardDataset::open(&data, "val", None).unwrap();
    let windows: Vec<Vec<u32>> = (0..4).map(|i| val.tokens(i)).collect();
    let got = src.features(&windows);
    let view = src.white_box.as_ref().unwrap().1;
    let (g, r) = (
        features::window_stats(&model, &windows, view, 2),
        features::window_stats(&reference, &windows, View::RAW, 2),
    );
    let n = windows[0].len();
    let mut checked = 0;
    for (w, (gs, rs)) in g.iter().zip(&r).enumerate() {
        for t in 1..n {
            let (a, b) = (&rs[t - 1], &gs[t - 1]);
            let want = [a.log_q / 5.0, a.entropy / 2.0, (a.log_q - b.log_q) / 5.0];
            let row = &got[(w * n + t) * width + NUM_FEATURES..(w * n + t + 1) * width];
            for (x, y) in row.iter().zip(want) {
                assert!((*x as f64 - y).abs() < 1e-5, "window {w} token {t}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4 * (n - 1) * 3);
    // Scoring with the feature models' statistics returned (eval-reward's one pass) gives the
    // P(natural) of plain scoring and the statistics computed here.
    let (p, stats) = rm.score_with_stats(&windows).unwrap();
    let stats = stats.unwrap();
    for (a, b) in p.iter().zip(rm.score(&windows).unwrap()) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    let rs = stats.reference.as_ref().unwrap();
    for (w, (gs, rr)) in g.iter().zip(&r).enumerate() {
        for t in 0..n - 1 {
            assert!((stats.generator[w][t].log_q - gs[t].log_q).abs() < 1e-9);
            assert!((rs[w][t].log_q - rr[t].log_q).abs() < 1e-9);
        }
    }
    let ragged = vec![windows[0].clone(), windows[1][..n - 1].to_vec()];
    let (_, st) = rm.score_with_stats(&ragged).unwrap();
    let lens: Vec<usize> = st.unwrap().generator.iter().map(Vec::len).collect();
    assert_eq!(lens, [n - 1, n - 2]);
    shared_scoring_agrees(&out, &windows, SharedStates::Reference);
    // The ratio column is not constant: the two models differ.
    let llr: Vec<f32> = got.chunks(width).map(|c| c[width - 1]).collect();
    assert!(llr.iter().any(|&v| (v - llr[n + 1]).abs() > 1e-3));
    let err = |cfg: RewardTrainConfig| reward_model::train(&cfg, false).err().unwrap().to_string();
    let e = err(RewardTrainConfig {
        features: false,
        out_dir: d.path().join("ref-nofeat").display().to_string(),
        ..token.clone()
    });
    assert!(e.contains("features = true"), "{e}");
    let op = other_vocabulary(d.path(), &model);
    let e = err(RewardTrainConfig {
        reference: op.display().to_string(),
        trunk: String::new(),
        out_dir: d.path().join("ref-vocab").display().to_string(),
        ..token
    });
    assert!(e.contains("vocabulary"), "{e}");
}

/// `reference = "A,B"`: a mixture of two models of natural text. The checkpoint carries both
/// (`reference_model/`, `reference_model_2/`, and so does the Hugging Face export), and the loaded
/// model's reference columns are log of the mean of the two models' probabilities of every token
/// (each from its own pass), the mixture's entropy at least the mean of theirs, and the ratio
/// against the generator; the trunk is the first member, so scoring takes the trunk's states
/// from the mixture's pass. A member of another vocabulary is refused with a clear message.
#[test]
fn a_reference_mixture_reads_the_mean_of_its_members() {
    use nanoreward::reward::features::{self, NUM_FEATURES, NUM_REFERENCE_FEATURES, View};
    let (d, model, ck, data, a, ap) = with_reference(77);
    let (b, bp) = common::save_reference(&d.path().join("second"), &model, &ck, 78);
    let cfg = RewardTrainConfig {
        lexicon: false,
        epochs: 1,
        trunk: ap.display().to_string(),
        reference: format!("{}, {}", ap.display(), bp.display()),
        ..reference_config(d.path(), &ck, &data, &ap, "mix")
    };
    reward_model::train(&cfg, false).unwrap();
    let out = d.path().join("mix/ckpt");
    for sub in ["reference_model", "reference_model_2"] {
        assert!(out.join(sub).join("model.safetensors").exists(), "{sub}");
    }
    let rm = RewardModel::load(&out, &Device::flex()).unwrap();
    assert_eq!(rm.model.config.reference_count(), 2);
    let src = rm.features.as_ref().unwrap();
    assert_eq!(src.reference.len(), 2);
    let val = RewardDataset::open(&data, "val", None).unwrap();
    let windows: Vec<Vec<u32>> = (0..4).map(|i| val.tokens(i)).collect();
    let got = src.features(&windows);
    let view = src.white_box.as_ref().unwrap().1;
    let g = features::window_stats(&model, &windows, view, 2);
    let (ra, rb) = (
        features::window_stats(&a, &windows, View::RAW, 2),
        features::window_stats(&b, &windows, View::RAW, 2),
    );
    let (n, width) = (windows[0].len(), NUM_FEATURES + NUM_REFERENCE_FEATURES);
    for w in 0..windows.len() {
        for t in 1..n {
            let (x, y, q) = (&ra[w][t - 1], &rb[w][t - 1], &g[w][t - 1]);
            let log_r = ((x.q + y.q) / 2.0).ln();
            let row = &got[(w * n + t) * width + NUM_FEATURES..(w * n + t + 1) * width];
            assert!(
                (row[0] as f64 - log_r / 5.0).abs() < 1e-5,
                "window {w} token {t}"
            );
            assert!(row[1] as f64 >= (x.entropy + y.entropy) / 4.0 - 1e-5);
            assert!((row[2] as f64 - (log_r - q.log_q) / 5.0).abs() < 1e-5);
        }
    }
    shared_scoring_agrees(&out, &windows, SharedStates::Reference);
    let hf = d.path().join("mix-hf");
    nanoreward::checkpoint::hf::export(&out, &hf).unwrap();
    assert!(hf.join("reference_model_2/config.json").exists());
    let op = other_vocabulary(d.path(), &model);
    let e = reward_model::train(
        &RewardTrainConfig {
            reference: format!("{},{}", ap.display(), op.display()),
            out_dir: d.path().join("mix-vocab").display().to_string(),
            ..cfg
        },
        false,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("vocabulary") && e.contains("other"), "{e}");
}

/// The two-model baselines of `eval-reward`: with a reference model the report adds the
/// likelihood-ratio detector and the likelihood-ratio change point, whose boundary error is
/// recomputed here by enumerating the posterior over every cut k, term by term.
#[test]
fn the_likelihood_ratio_change_point_against_enumeration() {
    use nanoreward::reward::changepoint;
    use nanoreward::reward::features::{self, View};
    let (d, model, ck, data, reference, rp) = with_reference(78);
    let cfg = RewardTrainConfig {
        epochs: 1,
        ..reference_config(d.path(), &ck, &data, &rp, "ratio")
    };
    let out = reward_model::train(&cfg, false).unwrap();
    let val = RewardDataset::open(&data, "val", None).unwrap();
    let seqs: Vec<Vec<u32>> = (0..val.len()).map(|i| val.tokens(i)).collect();
    shared_scoring_agrees(&out.checkpoint, &seqs[..6], SharedStates::Generator);
    let dev = Device::flex();
    let ev = nanoreward::reward::evaluate_checkpoint(
        &out.checkpoint,
        &model,
        &data,
        &d.path().join("eval"),
        8,
        5,
        &dev,
    )
    .unwrap();
    assert_eq!(ev.baselines.len(), 7);
    let lr = ev.baselines.last().unwrap();
    assert!(lr.name.starts_with("likelihood ratio") && (0.5..=1.0).contains(&lr.auroc));
    let got = ev.boundary_baselines.last().unwrap();
    assert!(got.name.starts_with("likelihood-ratio change point"));
    let view = View {
        temperature: val.meta.temperature,
        top_k: val.meta.top_k,
    };
    let r = features::window_stats(&reference, &seqs, View::RAW, 3);
    let g = features::window_stats(&model, &seqs, view, 3);
    let mut total = 0.0;
    for (i, s) in seqs.iter().enumerate() {
        let n = s.len();
        // P(K = k) ∝ Π_{1≤t<k} r(x_t) · Π_{t≥max(k,1)} q(x_t) (token 0 is alike under both).
        let log_w: Vec<f64> = (0..=n)
            .map(|k| {
                (1..n)
                    .map(|t| {
                        if t < k {
                            r[i][t - 1].log_q
                        } else {
                            g[i][t - 1].log_q
                        }
                    })
                    .sum::<f64>()
            })
            .collect();
        let max = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = log_w.iter().map(|v| (v - max).exp()).collect();
        let z: f64 = w.iter().sum();
        let post: Vec<f64> = w.iter().map(|v| v / z).collect();
        let cut = (changepoint::median(&post).round() as usize).min(n);
        let k = changepoint::cut_of(val.label(i)[0], n);
        total += cut.abs_diff(k) as f64;
    }
    let want = total / seqs.len() as f64;
    assert!(
        (got.boundary_mae_tokens - want).abs() < 0.02,
        "{} vs {want}",
        got.boundary_mae_tokens
    );
    // The Fast-DetectGPT change point, whose statistics eval-reward takes from the scoring
    // pass here (the generator copy is the base, read at temperature 1), against a pass of the
    // base model made here.
    let raw = features::window_stats(&model, &seqs, View::RAW, 3);
    let z_cp: f64 = (0..seqs.len())
        .map(|i| {
            let z: Vec<f64> = raw[i].iter().map(|s| s.z()).collect();
            let k = changepoint::cut_of(val.label(i)[0], seqs[i].len());
            features::best_split(&z).abs_diff(k) as f64
        })
        .sum::<f64>()
        / seqs.len() as f64;
    let fd = &ev.boundary_baselines[0];
    assert!(fd.name.starts_with("Fast-DetectGPT") && (fd.boundary_mae_tokens - z_cp).abs() < 1e-9);
}

/// Every reward config shipped in `configs/` loads with its keys as written; the stronger
/// recipe reads its trunk as the reference model.
#[test]
fn shipped_reward_configs_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let load = |name: &str| {
        nanoreward::config::load::<RewardTrainConfig>(Some(&dir.join(name)), &[], &[])
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    for name in [
        "reward_token.toml",
        "reward_pooled.toml",
        "reward_quickstart.toml",
    ] {
        load(name).validate().unwrap();
    }
    let strong = load("reward_strong.toml");
    strong.validate().unwrap();
    assert!(!strong.trunk.is_empty() && strong.trunk == strong.reference);
    let token = load("reward_token.toml");
    assert_eq!(
        (strong.loss, strong.token_prior, strong.lr, strong.epochs),
        (token.loss, token.token_prior, token.lr, token.epochs)
    );
}
