//! GRPO end to end on a tiny model: the optimiser really optimises a known reward, runs resume
//! exactly, and bad settings fail clearly.

mod common;

use nanoreward::checkpoint;
use nanoreward::data::{self, TokenizationKind};
use nanoreward::grpo::config::TeacherLoss;
use nanoreward::grpo::{self, GrpoConfig};
use std::path::Path;

/// A tiny char-level generator and its data folder (train.bin / val.bin / meta.pkl).
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let (d, _m, ck) = common::tiny_base();
    let data_dir = d.path().join("data");
    data::prepare(
        &d.path().join("input.txt"),
        &data_dir,
        TokenizationKind::Char,
        0.9,
    )
    .unwrap();
    (d, ck, data_dir)
}

fn config(d: &Path, ck: &Path, data_dir: &Path, out: &str, steps: usize) -> GrpoConfig {
    GrpoConfig {
        init_from: ck.display().to_string(),
        data_dir: data_dir.display().to_string(),
        out_dir: d.join(out).display().to_string(),
        max_steps: steps,
        prompts_per_step: 4,
        group_size: 6,
        prompt_min: 2,
        prompt_max: 6,
        completion_len: 8,
        learning_rate: 3e-3,
        warmup_steps: 0,
        eval_interval: 10,
        eval_iters: 2,
        eval_batch_size: 4,
        eval_prompts: 4,
        threads: 2,
        ..Default::default()
    }
}

/// A stub reward that prefers one character: the share of completion tokens equal to it.
fn prefers(token: u32) -> impl Fn(&[Vec<u32>], usize) -> Vec<f32> {
    move |windows: &[Vec<u32>], plen: usize| {
        windows
            .iter()
            .map(|w| {
                let c = &w[plen..];
                c.iter().filter(|&&t| t == token).count() as f32 / c.len() as f32
            })
            .collect()
    }
}

/// The token id of "o" in the tiny base's tokenizer (the known reward's favourite).
fn id_of_o(ck: &Path) -> u32 {
    let tok = checkpoint::Checkpoint::open(ck)
        .unwrap()
        .tokenizer()
        .unwrap();
    tok.encode("o").unwrap()[0]
}

#[test]
fn policy_reward_rises_on_a_known_reward() {
    let (d, ck, data_dir) = setup();
    let target = id_of_o(&ck);
    let cfg = config(d.path(), &ck, &data_dir, "g", 40);
    let reward = prefers(target);
    let out = grpo::run_with(&cfg, &reward, None, false).unwrap();
    let recs = nanoreward::metrics::read_jsonl(&d.path().join("g/metrics.jsonl")).unwrap();
    let steps: Vec<_> = recs
        .iter()
        .filter(|r| r.get("reward_mean").is_some())
        .collect();
    assert_eq!(steps.len(), 40);
    for key in ["reward_std", "kl", "clip_frac", "entropy", "zero_std_frac"] {
        assert!(steps[0][key].is_number(), "{key} missing");
    }
    let mean = |s: &[&serde_json::Value]| {
        s.iter()
            .map(|r| r["reward_mean"].as_f64().unwrap())
            .sum::<f64>()
            / s.len() as f64
    };
    let (start, end) = (mean(&steps[..5]), mean(&steps[35..]));
    // A random 1-layer model emits the target about 1 time in vocab_size; GRPO must raise it.
    assert!(
        end > start + 0.15,
        "reward did not rise: {start:.3} -> {end:.3}"
    );
    assert!((out.reward_start - start).abs() < 0.05);
    // The policy moved away from the reference, which the KL sees.
    assert!(steps[39]["kl"].as_f64().unwrap() > 0.0);
    // Evaluations at 0, 10, 20, 30, 40 and the artefacts of a run.
    assert_eq!(out.evals.len(), 5);
    assert!(out.evals[4].reward_policy > out.evals[4].reward_ref);
    assert!(d.path().join("g/ckpt/model.safetensors").exists());
    assert!(d.path().join("g/ref/model.safetensors").exists());
    assert!(d.path().join("g/grpo_curve.svg").exists());
    assert!(common::leftovers(d.path()).is_empty());
}

/// RAFT (`adv_estimator = raft`): fine-tuning on each group's most rewarded completion raises
/// the known reward too, and refuses per-token rewards in one line.
#[test]
fn raft_raises_a_known_reward() {
    let (d, ck, data_dir) = setup();
    let target = id_of_o(&ck);
    let mut cfg = config(d.path(), &ck, &data_dir, "r", 40);
    cfg.adv_estimator = nanoreward::grpo::loss::AdvEstimator::Raft;
    let out = grpo::run_with(&cfg, &prefers(target), None, false).unwrap();
    let recs = nanoreward::metrics::read_jsonl(&d.path().join("r/metrics.jsonl")).unwrap();
    let r: Vec<f64> = recs
        .iter()
        .filter_map(|r| r.get("reward_mean").and_then(|v| v.as_f64()))
        .collect();
    let (start, end) = (
        r[..5].iter().sum::<f64>() / 5.0,
        r[35..].iter().sum::<f64>() / 5.0,
    );
    assert!(end > start + 0.15, "RAFT: {start:.3} -> {end:.3}");
    assert!(out.evals[4].reward_policy > out.evals[4].reward_ref);
    cfg.reward_granularity = nanoreward::grpo::config::RewardGranularity::Token;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("reward_granularity = sequence"), "{e}");
}

/// RAFT with `raft_rows = best` updates on each group's picked completion alone. Without the KL
/// penalty (β = 0) that is the group update itself (the unpicked rows carry advantage 0 and the
/// loss keeps the group's normaliser): the two policies agree after 4 steps. With β > 0 they part
/// (the group update's KL reads the unpicked rows too), and every step of the best-rows run
/// leaves out all but one row of each group that trains.
#[test]
fn raft_best_rows_is_the_group_update_without_the_unpicked_rows_kl() {
    use nanoreward::grpo::config::RaftRows;
    let (d, ck, data_dir) = setup();
    let reward = prefers(id_of_o(&ck));
    let run = |out: &str, rows: RaftRows, beta: f64| {
        let mut cfg = config(d.path(), &ck, &data_dir, out, 4);
        cfg.adv_estimator = nanoreward::grpo::loss::AdvEstimator::Raft;
        cfg.raft_rows = rows;
        cfg.beta = beta;
        cfg.dynamic_sampling = true;
        cfg.eval_interval = 4;
        grpo::run_with(&cfg, &reward, None, false).unwrap();
        d.path().join(out)
    };
    let diff = |a: &Path, b: &Path| common::max_weight_diff(&a.join("ckpt"), &b.join("ckpt"));
    let (g0, b0) = (
        run("g0", RaftRows::Group, 0.0),
        run("b0", RaftRows::Best, 0.0),
    );
    let same = diff(&g0, &b0);
    assert!(
        same < 1e-5,
        "without KL the best rows' update differs by {same}"
    );
    let (g1, b1) = (
        run("g1", RaftRows::Group, 0.1),
        run("b1", RaftRows::Best, 0.1),
    );
    let parted = diff(&g1, &b1);
    assert!(parted > 1e-4, "with KL the two updates agree ({parted})");
    let recs = nanoreward::metrics::read_jsonl(&b1.join("metrics.jsonl")).unwrap();
    let steps: Vec<_> = recs
        .iter()
        .filter(|r| r.get("dropped_rows").is_some())
        .collect();
    assert_eq!(steps.len(), 4);
    for r in steps {
        let flat = (r["zero_std_frac"].as_f64().unwrap() * 4.0).round() as u64;
        let dropped = r["dropped_rows"].as_u64().unwrap();
        assert_eq!(dropped, 24 - (4 - flat), "{r}");
    }
    let mut cfg = config(d.path(), &ck, &data_dir, "x", 1);
    cfg.raft_rows = RaftRows::Best;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("adv_estimator = raft"), "{e}");
}

#[test]
fn resumed_run_equals_uninterrupted() {
    let (d, ck, data_dir) = setup();
    let reward = prefers(3);
    let mut cfg = config(d.path(), &ck, &data_dir, "a", 12);
    cfg.num_iterations = 2;
    cfg.eval_interval = 6;
    grpo::run_with(&cfg, &reward, None, false).unwrap();
    let mut part = config(d.path(), &ck, &data_dir, "b", 6);
    part.num_iterations = 2;
    part.eval_interval = 6;
    grpo::run_with(&part, &reward, None, false).unwrap();
    let mut rest = part.clone();
    rest.max_steps = 12;
    rest.init_from = "resume".into();
    let out = grpo::run_with(&rest, &reward, None, false).unwrap();
    assert_eq!(out.steps, 12);
    let diff = common::max_weight_diff(&d.path().join("a/ckpt"), &d.path().join("b/ckpt"));
    assert!(diff < 1e-6, "resumed run differs by {diff}");
    // The resumed run's recorded config names where the run started, not "resume", so that it
    // reruns the run (scripts/round_config.py, round_arm.sh).
    let state = checkpoint::dir::read_state(&d.path().join("b/ckpt")).unwrap();
    let recorded = &state.config.as_ref().unwrap()["init_from"];
    assert_eq!(recorded.as_str(), Some(ck.display().to_string().as_str()));
    let a = checkpoint::safetensors::read(&d.path().join("a/ckpt/model.safetensors")).unwrap();
    let start = checkpoint::safetensors::read(&ck.join("model.safetensors")).unwrap();
    let moved = a["transformer.wte.weight"]
        .data
        .iter()
        .zip(&start["transformer.wte.weight"].data)
        .any(|(x, y)| x != y);
    assert!(moved, "GRPO did not change the policy");
    let logged = nanoreward::metrics::read_jsonl(&d.path().join("b/metrics.jsonl")).unwrap();
    let steps = logged
        .iter()
        .filter(|r| r.get("reward_mean").is_some())
        .count();
    assert_eq!(steps, 12, "the resumed log repeats or loses steps");
}

#[test]
fn bad_settings_fail_clearly() {
    let (d, ck, data_dir) = setup();
    let reward = prefers(3);
    let mut cfg = config(d.path(), &ck, &data_dir, "x", 2);
    cfg.group_size = 1;
    let e = grpo::run_with(&cfg, &reward, None, false).unwrap_err();
    assert!(e.to_string().contains("group_size"), "{e}");
    let mut cfg = config(d.path(), &ck, &data_dir, "x", 2);
    cfg.completion_len = 16;
    let e = grpo::run_with(&cfg, &reward, None, false).unwrap_err();
    assert!(e.to_string().contains("block_size 16"), "{e}");
    let mut cfg = config(d.path(), &ck, &data_dir, "x", 2);
    cfg.init_from = d.path().join("nope").display().to_string();
    let e = grpo::run_with(&cfg, &reward, None, false).unwrap_err();
    assert!(e.to_string().contains("not a checkpoint directory"), "{e}");
    let mut cfg = config(d.path(), &ck, &data_dir, "x", 2);
    cfg.reward_coef = 0.0;
    let e = grpo::run_with(&cfg, &reward, None, false).unwrap_err();
    assert!(e.to_string().contains("set teacher"), "{e}");
    cfg.teacher = d.path().join("no-teacher").display().to_string();
    let e = grpo::run_with(&cfg, &reward, None, false).unwrap_err();
    assert!(e.to_string().contains("no-teacher"), "{e}");
    assert!(
        !d.path().join("x").exists(),
        "a failed start wrote its out_dir"
    );
}

/// The reward-hacking guard: a policy pushed hard towards one character loses val loss, and
/// `max_val_loss_increase` stops the run instead of letting it degenerate, keeping the policy of
/// the last evaluation within the bound (not the one that crossed it).
#[test]
fn val_loss_guard_stops_a_degenerating_policy() {
    let (d, ck, data_dir) = setup();
    let reward = prefers(id_of_o(&ck));
    let mut cfg = config(d.path(), &ck, &data_dir, "h", 60);
    cfg.learning_rate = 3e-2;
    cfg.beta = 0.0;
    cfg.eval_interval = 5;
    cfg.max_val_loss_increase = 0.05;
    let out = grpo::run_with(&cfg, &reward, None, false).unwrap();
    assert!(out.stopped_early, "the guard never fired");
    assert!(out.steps < 60);
    let at = out
        .rolled_back_from
        .expect("the guard fired but kept the crossing policy");
    let first = out.evals[0].val_loss;
    let kept = out.evals.last().unwrap();
    assert!(
        kept.step < at && kept.val_loss - first <= 0.05,
        "{first} -> {kept:?}"
    );
    let logged = nanoreward::metrics::read_jsonl(&d.path().join("h/metrics.jsonl")).unwrap();
    let crossing = logged
        .iter()
        .find(|r| r.get("eval").is_some() && r["step"].as_u64() == Some(at as u64))
        .expect("the crossing evaluation is logged");
    assert!(crossing["val_loss"].as_f64().unwrap() - first > 0.05);
    let state = checkpoint::dir::read_state(&d.path().join("h/ckpt")).unwrap();
    assert_eq!(
        state.step,
        Some(kept.step),
        "the checkpoint is not the kept policy"
    );
    if kept.step == 0 {
        let diff = common::max_weight_diff(&d.path().join("h/ckpt"), &ck);
        assert!(diff == 0.0, "kept step 0 but the weights moved by {diff}");
    }
}

/// Dynamic sampling never trains on a group whose rewards are all equal: with every group
/// flat and an entropy bonus (which alone would move the weights), the policy stays as it was;
/// with some groups flat, completions.jsonl marks exactly their rows untrained.
#[test]
fn dynamic_sampling_skips_zero_variance_groups() {
    let (d, ck, data_dir) = setup();
    let flat = |w: &[Vec<u32>], _: usize| vec![0.5f32; w.len()];
    let base = GrpoConfig {
        dynamic_sampling: true,
        entropy_coef: 0.5,
        log_completions: 1,
        eval_interval: 3,
        ..config(d.path(), &ck, &data_dir, "flat", 3)
    };
    grpo::run_with(&base, &flat, None, false).unwrap();
    let start = checkpoint::safetensors::read(&ck.join("model.safetensors")).unwrap();
    let after =
        checkpoint::safetensors::read(&d.path().join("flat/ckpt/model.safetensors")).unwrap();
    for (name, t) in &start {
        assert_eq!(
            t.data, after[name].data,
            "{name} moved without a learning signal"
        );
    }
    // The same run without dynamic sampling trains on the entropy bonus.
    let moving = GrpoConfig {
        dynamic_sampling: false,
        out_dir: d.path().join("moving").display().to_string(),
        ..base.clone()
    };
    grpo::run_with(&moving, &flat, None, false).unwrap();
    assert!(common::max_weight_diff(&ck, &d.path().join("moving/ckpt")) > 0.0);
    // Mixed: windows whose prompt starts with an even token get a flat reward.
    let mixed = |w: &[Vec<u32>], _: usize| {
        w.iter()
            .map(|s| {
                if s[0] % 2 == 0 {
                    0.5
                } else {
                    s.iter().sum::<u32>() as f32
                }
            })
            .collect()
    };
    let cfg = GrpoConfig {
        out_dir: d.path().join("mixed").display().to_string(),
        ..base
    };
    grpo::run_with(&cfg, &mixed, None, false).unwrap();
    let rows = nanoreward::metrics::read_jsonl(&d.path().join("mixed/completions.jsonl")).unwrap();
    assert_eq!(rows.len(), 3 * 24);
    let tok = checkpoint::Checkpoint::open(&ck)
        .unwrap()
        .tokenizer()
        .unwrap();
    for r in &rows {
        let first = tok.encode(r["prompt"].as_str().unwrap()).unwrap()[0];
        assert_eq!(r["trained"].as_bool(), Some(first % 2 == 1), "{r}");
    }
}

/// Per-token rewards need a reward with a per-token view.
#[test]
fn token_granularity_needs_per_token_rewards() {
    let (d, ck, data_dir) = setup();
    let cfg = GrpoConfig {
        reward_granularity: grpo::config::RewardGranularity::Token,
        ..config(d.path(), &ck, &data_dir, "tok", 2)
    };
    let e = grpo::run_with(&cfg, &prefers(1), None, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("token-head reward model"), "{e}");
}

/// `dtype = "bfloat16"`: the policy learns the known reward with bf16 products as with f32.
#[test]
fn bfloat16_policy_reward_rises() {
    let (d, ck, data_dir) = setup();
    let mut cfg = config(d.path(), &ck, &data_dir, "bf", 40);
    cfg.dtype = "bfloat16".parse().unwrap();
    let out = grpo::run_with(&cfg, &prefers(id_of_o(&ck)), None, false).unwrap();
    let (first, last) = (&out.evals[0], &out.evals[out.evals.len() - 1]);
    assert!(
        last.reward_policy > first.reward_policy + 0.15,
        "bf16 policy reward {} -> {}",
        first.reward_policy,
        last.reward_policy
    );
}

/// The language-modelling term (`ptx_coef`): with a reward that gives no signal and no KL term,
/// the policy moves only through it, and towards natural text (its loss on train windows falls);
/// the same run without it leaves the weights as they were.
#[test]
fn pretraining_mix_pulls_the_policy_to_natural_text() {
    let (d, ck, data_dir) = setup();
    let flat = |w: &[Vec<u32>], _: usize| vec![0.5f32; w.len()];
    let off = GrpoConfig {
        beta: 0.0,
        ptx_coef: 0.0,
        eval_interval: 20,
        ..config(d.path(), &ck, &data_dir, "ptx-off", 20)
    };
    grpo::run_with(&off, &flat, None, false).unwrap();
    assert_eq!(
        common::max_weight_diff(&ck, &d.path().join("ptx-off/ckpt")),
        0.0
    );
    let on = GrpoConfig {
        ptx_coef: 0.5,
        ptx_batch_size: 4,
        out_dir: d.path().join("ptx-on").display().to_string(),
        ..off
    };
    grpo::run_with(&on, &flat, None, false).unwrap();
    let dev = burn::tensor::Device::flex();
    let train = data::TokenFile::open(&data_dir.join("train.bin")).unwrap();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
    let loss_of = |path: &Path, rng: &mut rand_chacha::ChaCha8Rng| {
        let m = checkpoint::Checkpoint::open(path)
            .unwrap()
            .model(&dev)
            .unwrap();
        let batches: Vec<_> = (0..8)
            .map(|_| train.random_batch(rng, 8, m.config.block_size))
            .collect();
        nanoreward::train::mean_loss(&m, &batches, 8, 1)
    };
    let (before, after) = (
        loss_of(&ck, &mut rng.clone()),
        loss_of(&d.path().join("ptx-on/ckpt"), &mut rng),
    );
    assert!(
        after < before - 0.02,
        "train loss {before:.4} -> {after:.4} under the language-modelling term"
    );
    let log = nanoreward::metrics::read_jsonl(&d.path().join("ptx-on/metrics.jsonl")).unwrap();
    let ptx: Vec<f64> = log.iter().filter_map(|r| r["ptx_loss"].as_f64()).collect();
    assert_eq!(ptx.len(), 20, "one language-modelling loss per step");
    assert!(ptx.iter().all(|v| v.is_finite() && *v > 0.0));
    // Its first value is the starting model's loss on one batch of train windows.
    assert!((ptx[0] - before).abs() < 1.0, "{} vs {before}", ptx[0]);
}

/// The mean of `key` over the step records `range` of a GRPO run's metrics.jsonl.
fn step_mean(log: &Path, key: &str, range: std::ops::Range<usize>) -> f64 {
    let recs = nanoreward::metrics::read_jsonl(log).unwrap();
    let steps: Vec<f64> = recs
        .iter()
        .filter(|r| r.get("reward_mean").is_some())
        .map(|r| r[key].as_f64().unwrap_or(f64::NAN))
        .collect();
    steps[range.clone()].iter().sum::<f64>() / range.len() as f64
}

/// Share of the character `token` in `n` completions of the checkpoint at `ck` (seed 9).
fn share_of(ck: &Path, data_dir: &Path, token: u32, d: &Path, out: &str) -> f64 {
    let reward = prefers(token);
    let cfg = GrpoConfig {
        learning_rate: 1e-12,
        eval_interval: 1,
        seed: 9,
        ..config(d, ck, data_dir, out, 1)
    };
    grpo::run_with(&cfg, &reward, None, false).unwrap();
    step_mean(&d.join(out).join("metrics.jsonl"), "reward_mean", 0..1)
}

/// On-policy distillation (`teacher`, `reward_coef = 0`), both ways (`teacher_loss`): the
/// teacher is a policy GRPO taught to write "o"; distilling the base towards it under a reward
/// that gives no signal lowers the KL between them and raises the share of "o" in the student's
/// samples. A teacher equal to the policy has zero KL (and, by advantages, moves nothing).
#[test]
fn distillation_pulls_the_policy_to_its_teacher() {
    let (d, ck, data_dir) = setup();
    let o = id_of_o(&ck);
    let reward = prefers(o);
    grpo::run_with(
        &config(d.path(), &ck, &data_dir, "t", 40),
        &reward,
        None,
        false,
    )
    .unwrap();
    let teacher = d.path().join("t/ckpt");
    let flat = |w: &[Vec<u32>], _: usize| vec![0.5f32; w.len()];
    let distil = |out: &str, teacher: &Path, steps: usize, mode: TeacherLoss| {
        let cfg = GrpoConfig {
            teacher: teacher.display().to_string(),
            teacher_loss: mode,
            reward_coef: 0.0,
            beta: 0.0,
            ..config(d.path(), &ck, &data_dir, out, steps)
        };
        grpo::run_with(&cfg, &flat, None, false).unwrap();
        d.path().join(out).join("metrics.jsonl")
    };
    for key in ["teacher_kl_reverse", "teacher_kl_forward"] {
        let log = distil("self", &ck, 1, TeacherLoss::ForwardKl);
        let kl0 = step_mean(&log, key, 0..1);
        assert!(kl0.abs() < 1e-5, "{key} of the policy to itself {kl0}");
    }
    distil("self-adv", &ck, 3, TeacherLoss::Advantage);
    assert_eq!(
        common::max_weight_diff(&ck, &d.path().join("self-adv/ckpt")),
        0.0
    );
    let before = share_of(&ck, &data_dir, o, d.path(), "before");
    let taught = share_of(&teacher, &data_dir, o, d.path(), "teacher");
    for (mode, key) in [
        (TeacherLoss::Advantage, "teacher_kl_reverse"),
        (TeacherLoss::ForwardKl, "teacher_kl_forward"),
    ] {
        let out = format!("s-{key}");
        let log = distil(&out, &teacher, 40, mode);
        let (start, end) = (step_mean(&log, key, 0..5), step_mean(&log, key, 35..40));
        assert!(
            start > 0.1,
            "the teacher differs from the base: {key} {start:.4}"
        );
        assert!(end < 0.6 * start, "{key} {start:.4} -> {end:.4}");
        let ckpt = d.path().join(&out).join("ckpt");
        let after = share_of(&ckpt, &data_dir, o, d.path(), &format!("{out}-after"));
        assert!(
            after > before + 0.5 * (taught - before),
            "{key}: share of 'o': base {before:.3}, student {after:.3}, teacher {taught:.3}"
        );
    }
}

/// The GRPO configs shipped in `configs/` load with their keys as written and validate; the
/// distillation recipe distils by the forward KL alone.
#[test]
fn shipped_grpo_configs_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let load = |name: &str| {
        nanoreward::config::load::<GrpoConfig>(Some(&dir.join(name)), &[], &[])
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    load("grpo_quickstart.toml").validate().unwrap();
    let d = load("distill.toml");
    d.validate().unwrap();
    assert_eq!(
        (d.teacher_loss, d.reward_coef, d.beta),
        (TeacherLoss::ForwardKl, 0.0, 0.0)
    );
    assert!(!d.teacher.is_empty());
}
