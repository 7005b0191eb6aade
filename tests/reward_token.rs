//! The token-level reward model and what it reads: the generator's white-box statistics and
//! zero-shot scores against an independent NumPy computation, u_t uniform on the generator's own
//! samples, the token losses against the change-point posterior computed directly, the token
//! head end to end (features saved with it), fully natural / fully generated reward windows, and
//! `prepare --reward_split`.

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use nanoreward::checkpoint;
use nanoreward::model::{GPT, GPTConfig};
use nanoreward::reward::changepoint;
use nanoreward::reward::features::{self, TokenStats, View};
use nanoreward::reward::prepare::{self as reward_prepare, RewardPrepOptions};
use nanoreward::reward::train::{RewardLoss, TokenPrior, token_loss};
use nanoreward::reward::{RewardDataset, RewardModel, RewardTrainConfig};
use nanoreward::sampling::{self, SampleOptions};
use rand::{Rng, SeedableRng};
use std::path::Path;

const IDS: [u32; 8] = [1, 5, 2, 9, 3, 3, 0, 10];

/// The NumPy reference's token statistics and scores, or None (with a message) without numpy.
fn numpy_zeroshot(pt: &Path, view: View) -> Option<serde_json::Value> {
    let ids: Vec<String> = IDS.iter().map(|i| i.to_string()).collect();
    let args = [
        "zeroshot".into(),
        pt.as_os_str().to_owned(),
        ids.join(",").into(),
        view.temperature.to_string().into(),
        view.top_k.unwrap_or(0).to_string().into(),
    ];
    common::script_needing::<std::ffi::OsString>("numpy_gpt.py", &args, "numpy")
        .map(|o| serde_json::from_str(&o).unwrap())
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() < 2e-4 * (1.0 + b.abs()),
        "{what}: ours {a}, numpy {b}"
    );
}

#[test]
fn white_box_statistics_equal_the_numpy_reference() {
    let pt = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nanogpt_tiny.pt");
    let model = checkpoint::load_model(&pt, &Device::flex()).unwrap();
    let views = [
        View::RAW,
        View {
            temperature: 0.7,
            top_k: Some(4),
        },
    ];
    for view in views {
        let Some(reference) = numpy_zeroshot(&pt, view) else {
            return;
        };
        let ours = features::window_stats(&model, &[IDS.to_vec()], view, 4).remove(0);
        let theirs = reference["tokens"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len());
        for (t, (s, r)) in ours.iter().zip(theirs).enumerate() {
            let what = format!("{view:?} token {}", t + 1);
            close(
                s.log_q,
                r["log_q"].as_f64().unwrap(),
                &format!("{what} log q"),
            );
            close(
                s.entropy,
                r["entropy"].as_f64().unwrap(),
                &format!("{what} entropy"),
            );
            close(
                s.var,
                r["var"].as_f64().unwrap(),
                &format!("{what} variance"),
            );
            close(
                s.above,
                r["above"].as_f64().unwrap(),
                &format!("{what} mass above"),
            );
            assert_eq!(s.rank as u64, r["rank"].as_u64().unwrap(), "{what} rank");
        }
        if view == View::RAW {
            let z = features::zero_shot(&ours);
            let r = &reference["scores"];
            close(z.loglik, r["loglik"].as_f64().unwrap(), "log-likelihood");
            close(z.logrank, r["logrank"].as_f64().unwrap(), "log-rank");
            close(z.entropy, r["entropy"].as_f64().unwrap(), "entropy");
            close(
                z.fast_detect,
                r["fast_detect"].as_f64().unwrap(),
                "Fast-DetectGPT",
            );
            close(
                z.binoculars,
                r["binoculars"].as_f64().unwrap(),
                "Binoculars",
            );
        }
    }
}

fn tiny_generator() -> GPT {
    let cfg = GPTConfig {
        block_size: 24,
        vocab_size: 13,
        n_layer: 1,
        n_head: 2,
        n_embd: 16,
        bias: true,
        ..Default::default()
    };
    GPT::new(&cfg, &Device::flex(), 11).unwrap()
}

/// With a 50,304-token vocabulary the white-box statistics run through the chunked lm_head
/// (83 rows per chunk, so these 4 × 40 rows span two chunks with a remainder); they must equal
/// `token_stats` read from the full `[B, T, vocab]` logits of `GPT::forward`.
#[test]
fn white_box_statistics_over_chunks_equal_the_full_logits() {
    let cfg = GPTConfig {
        block_size: 40,
        vocab_size: 50304,
        n_layer: 1,
        n_head: 2,
        n_embd: 16,
        bias: false,
        ..Default::default()
    };
    let model = GPT::new(&cfg, &Device::flex(), 5).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let windows: Vec<Vec<u32>> = (0..4)
        .map(|_| (0..40).map(|_| rng.random_range(0..50304)).collect())
        .collect();
    let view = View {
        temperature: 0.8,
        top_k: Some(200),
    };
    let ours = features::window_stats(&model, &windows, view, 4);
    let ids: Vec<i64> = windows.iter().flatten().map(|&v| v as i64).collect();
    let full = nanoreward::util::to_host(model.forward(model.tokens(&ids, 4), None));
    for (r, w) in windows.iter().enumerate() {
        assert_eq!(ours[r].len(), 39);
        for i in 1..40 {
            let row = &full[(r * 40 + i - 1) * 50304..(r * 40 + i) * 50304];
            let want = features::token_stats(row, w[i], view);
            let got = ours[r][i - 1];
            let what = format!("window {r} token {i}");
            close(got.log_q, want.log_q, &format!("{what} log q"));
            close(got.entropy, want.entropy, &format!("{what} entropy"));
            close(got.var, want.var, &format!("{what} variance"));
            close(got.above, want.above, &format!("{what} mass above"));
            assert_eq!(got.rank, want.rank, "{what} rank");
        }
    }
}

/// The Kolmogorov–Smirnov distance of `u` from the uniform distribution on [0, 1].
fn ks_uniform(mut u: Vec<f64>) -> f64 {
    u.sort_by(f64::total_cmp);
    let n = u.len() as f64;
    u.iter()
        .enumerate()
        .map(|(i, &v)| (v - i as f64 / n).abs().max(((i + 1) as f64 / n - v).abs()))
        .fold(0.0, f64::max)
}

/// u_t = q(ranked above x_t) + U·q(x_t) is exactly uniform on text sampled from q, for the
/// raw model and for a temperature / top-k view read the way it sampled.
#[test]
fn pit_values_are_uniform_on_the_generators_own_samples() {
    let model = tiny_generator();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    for view in [
        View::RAW,
        View {
            temperature: 0.8,
            top_k: Some(6),
        },
    ] {
        let prompts: Vec<Vec<u32>> = (0..200).map(|_| vec![rng.random_range(0..13)]).collect();
        let opts = SampleOptions {
            temperature: view.temperature,
            top_k: view.top_k,
            ..Default::default()
        };
        let seqs = sampling::generate(&model, &prompts, 23, &opts, &mut rng, 2).unwrap();
        let stats = features::window_stats(&model, &seqs, view, 64);
        let u: Vec<f64> = stats
            .iter()
            .flatten()
            .map(|s: &TokenStats| s.above + rng.random::<f64>() * s.q)
            .collect();
        let d = ks_uniform(u.clone());
        // 1.63/sqrt(n) is the 1% critical value of the KS test.
        assert!(
            d < 1.63 / (u.len() as f64).sqrt(),
            "{view:?}: KS distance {d} over {} values",
            u.len()
        );
        // The same values read through the wrong view are far from uniform.
        if view != View::RAW {
            let wrong = features::window_stats(&model, &seqs, View::RAW, 64);
            let u: Vec<f64> = wrong
                .iter()
                .flatten()
                .map(|s| s.above + 0.5 * s.q)
                .collect();
            assert!(ks_uniform(u) > 0.05);
        }
    }
}

/// The token losses against their definitions, computed independently: the mean BCE of the
/// per-token labels (with the position prior: of σ(z + ln P(t < K) − ln P(t ≥ K)), P counted
/// over the cuts 0 … T), and −log P(K = cut | x) from `changepoint::posterior`.
#[test]
fn token_losses_match_their_definitions() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let (b, t) = (5, 12);
    let z: Vec<f32> = (0..b * t).map(|_| rng.random_range(-3.0..3.0)).collect();
    let cuts = [0, 3, 7, 11, 12];
    let dev = Device::flex();
    let zt = || Tensor::<2>::from_data(TensorData::new(z.clone(), [b, t]), &dev);
    let val = |kind, prior| token_loss(zt(), &cuts, kind, prior).into_scalar::<f32>() as f64;
    // P(t < K) for K uniform over 0 … T, by counting the cuts.
    let prior_odds = |i: usize| {
        let natural = (0..=t).filter(|&k| i < k).count() as f64;
        natural / ((t + 1) as f64 - natural)
    };
    let (mut bce, mut bce_prior, mut cp, mut risk) = (0.0, 0.0, 0.0, 0.0);
    for (r, &k) in cuts.iter().enumerate() {
        let row = &z[r * t..(r + 1) * t];
        for (i, &v) in row.iter().enumerate() {
            let p = 1.0 / (1.0 + (-(v as f64)).exp());
            bce -= if i < k { p.ln() } else { (1.0 - p).ln() };
            let odds = (v as f64).exp() * prior_odds(i);
            let p = odds / (1.0 + odds);
            bce_prior -= if i < k { p.ln() } else { (1.0 - p).ln() };
        }
        let post = changepoint::posterior(row);
        cp -= post[k].ln();
        // The expected distance of the cut from K, in windows, summed over every cut k.
        risk += (0..=t)
            .map(|c| post[c] * c.abs_diff(k) as f64 / t as f64)
            .sum::<f64>();
    }
    let n = (b * t) as f64;
    let (bce, bce_prior, cp) = (bce / n, bce_prior / n, cp / b as f64);
    let risk = risk / b as f64;
    let none = TokenPrior::None;
    assert!((val(RewardLoss::TokenBce, none) - bce).abs() < 1e-4, "BCE");
    assert!(
        (val(RewardLoss::TokenChangepoint, none) - cp).abs() < 1e-4,
        "change point"
    );
    let both = val(RewardLoss::TokenBoth, none);
    assert!((both - (bce + cp / t as f64)).abs() < 1e-4, "both");
    let with_risk = val(RewardLoss::TokenRisk, none);
    assert!(risk > 0.05, "risk {risk}");
    assert!(
        (with_risk - (bce + cp / t as f64 + risk)).abs() < 1e-4,
        "risk: {with_risk} vs {}",
        bce + cp / t as f64 + risk
    );
    let pos = TokenPrior::Position;
    assert!(
        (val(RewardLoss::TokenBce, pos) - bce_prior).abs() < 1e-4,
        "BCE, prior"
    );
    assert!((bce_prior - bce).abs() > 1e-3, "the prior changes the BCE");
    // The change-point term reads the logits as evidence either way.
    assert_eq!(
        val(RewardLoss::TokenChangepoint, pos),
        val(RewardLoss::TokenChangepoint, none)
    );
    let both = val(RewardLoss::TokenBoth, pos);
    assert!(
        (both - (bce_prior + cp / t as f64)).abs() < 1e-4,
        "both, prior"
    );
}

fn full_dataset(d: &Path, ck: &Path, model: &GPT, full_share: f64) -> std::path::PathBuf {
    let o = RewardPrepOptions {
        samples_per_chunk: 4,
        batch_size: 32,
        max_blocks: Some(30),
        full_share,
        ..common::prep_options(d, ck, "rd")
    };
    reward_prepare::run(&o, model, false).unwrap();
    o.output_dir
}

/// Fully natural windows are the natural block; fully generated ones are not; their labels are
/// [1, 0] and [0, 1], which the reader accepts because the metadata says so.
#[test]
fn full_windows_are_natural_or_generated_throughout() {
    let (d, model, ck) = common::tiny_base();
    let rd = full_dataset(d.path(), &ck, &model, 0.5);
    let ds = RewardDataset::open(&rd, "train", None).unwrap();
    assert_eq!(ds.meta.full_share, 0.5);
    let text = common::tiny_corpus();
    let tok = checkpoint::Checkpoint::open(&ck)
        .unwrap()
        .tokenizer()
        .unwrap();
    let train_text = nanoreward::data::split_text(&text, 0.9).0;
    let natural = tok.encode(train_text).unwrap();
    let (mut full, mut empty) = (0, 0);
    for i in 0..ds.len() {
        let (x, y) = ds.get(i);
        let block = &natural[(i / 4) * 16..(i / 4 + 1) * 16];
        let k = changepoint::cut_of(y[0], 16);
        assert_eq!(&x[..k], &block[..k], "row {i}: the natural prefix");
        full += usize::from(k == 16);
        if k == 0 {
            empty += 1;
            assert_ne!(
                x.as_slice(),
                block,
                "row {i}: a generated window equals the block"
            );
        }
    }
    assert!(
        full > 5 && empty > 5,
        "{full} fully natural, {empty} fully generated"
    );
    // Without full_share in the metadata, the same labels are refused.
    let meta = rd.join("train_metadata.txt");
    let text = std::fs::read_to_string(&meta)
        .unwrap()
        .replace("full_share: 0.5\n", "");
    std::fs::write(&meta, text).unwrap();
    let e = RewardDataset::open(&rd, "train", None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("outside [1/N, (N-1)/N]"), "{e}");
}

/// The token head end to end: trained with white-box features and context, saved with its
/// feature generator, loaded back, scored per window and per token, and evaluated.
#[test]
fn token_head_trains_saves_and_scores() {
    let (d, model, ck) = common::tiny_base();
    let rd = full_dataset(d.path(), &ck, &model, 0.2);
    let cfg = RewardTrainConfig {
        base: ck.display().to_string(),
        data: rd.display().to_string(),
        out_dir: d.path().join("rm").display().to_string(),
        epochs: 2,
        batch_size: 16,
        lr: 3e-3,
        reward_head_hidden_dim: 24,
        loss: RewardLoss::TokenBoth,
        features: true,
        lexicon: true,
        context: 2,
        freeze_trunk: false,
        dropout: 0.1,
        patience: 0,
        threads: 1,
        ..Default::default()
    };
    let out = nanoreward::reward::train::train(&cfg, false).unwrap();
    assert!(
        out.history
            .iter()
            .skip(1)
            .all(|h| h.1.is_finite() && h.2.is_finite())
    );
    assert!(
        out.checkpoint
            .join("feature_model/model.safetensors")
            .exists()
    );
    let dev = Device::flex();
    let rm = RewardModel::load(&out.checkpoint, &dev).unwrap();
    let src = rm.features.as_ref().unwrap();
    assert!(src.white_box.is_some() && src.lexicon.is_some());
    assert_eq!(rm.model.config.reward_features, 9);
    assert_eq!(rm.model.config.reward_context, 2);
    let seqs = vec![vec![1u32; 16], vec![2u32; 16], vec![3u32; 9]];
    let p = rm.score(&seqs).unwrap();
    let per_token = rm.score_tokens(&seqs).unwrap();
    for ((s, &v), tp) in seqs.iter().zip(&p).zip(&per_token) {
        assert!((0.0..=1.0).contains(&v));
        assert_eq!(tp.len(), s.len());
        // P(natural) is read off the posterior of the same per-token probabilities.
        let z: Vec<f32> = tp.iter().map(|&q| (q / (1.0 - q)).ln()).collect();
        assert!((changepoint::p_natural(&z) - v).abs() < 1e-3);
    }
    // Scores do not depend on the batch a window is scored in.
    let one = rm.score(&seqs[..1]).unwrap();
    assert!((one[0] - p[0]).abs() < 1e-5);
    // Nor on how many workers split them (two workers score a batch each, in place).
    let many: Vec<Vec<u32>> = (0..9u32)
        .map(|i| (0..16).map(|j| (i * 5 + j * 3) % 13).collect())
        .collect();
    let (alone, tokens_alone) = (rm.score(&many).unwrap(), rm.score_tokens(&many).unwrap());
    let mut rm = rm;
    rm.workers = 2;
    assert_eq!(rm.score(&many).unwrap(), alone);
    assert_eq!(rm.score_tokens(&many).unwrap(), tokens_alone);
    let ev = nanoreward::reward::evaluate_checkpoint(
        &out.checkpoint,
        &model,
        &rd,
        &d.path().join("eval"),
        16,
        3,
        &dev,
    )
    .unwrap();
    assert!(ev.auroc.is_finite() && ev.mae.is_finite());
    assert_eq!(ev.baselines.len(), 6);
    assert_eq!(ev.temperature_sweep.len(), 3);
    assert!(ev.auroc_ci95[0] <= ev.auroc && ev.auroc <= ev.auroc_ci95[1]);
}

/// `prepare --reward_split`: val.bin is nanoGPT's, and train.bin + reward.bin are its train text.
#[test]
fn reward_split_sets_text_aside_before_val() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("input.txt");
    std::fs::write(&input, common::tiny_corpus()).unwrap();
    let kind = nanoreward::data::TokenizationKind::Char;
    nanoreward::data::prepare(&input, &d.path().join("plain"), kind, 0.9).unwrap();
    let r = nanoreward::data::prepare_with_reward(&input, &d.path().join("split"), kind, 0.9, 0.3)
        .unwrap();
    let read = |p: &str| std::fs::read(d.path().join(p)).unwrap();
    assert_eq!(read("plain/val.bin"), read("split/val.bin"));
    let mut joined = read("split/train.bin");
    joined.extend(read("split/reward.bin"));
    assert_eq!(joined, read("plain/train.bin"));
    let n = common::tiny_corpus().chars().count();
    assert_eq!(r.train_tokens, (n as f64 * 0.6) as usize);
    assert!(
        nanoreward::data::prepare_with_reward(&input, &d.path().join("x"), kind, 0.9, 0.95)
            .is_err()
    );
}
