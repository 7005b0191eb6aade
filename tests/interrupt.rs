//! kill -9 at several moments of `train`, `train-reward` and `grpo`, then rerun/resume: every
//! file under a final name stays readable, and the finished run equals an uninterrupted one.
//! (`prepare-reward-data` has its own test in reward_data.rs.)

mod common;

use nanoreward::checkpoint;
use nanoreward::data::{self, TokenizationKind};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the binary to completion.
fn finish(args: &[String], cwd: &Path) {
    common::expect_success(&common::run(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        cwd,
    ));
}

/// When a kill lands: a time after the start, or (for a job too fast for any fixed delay on an
/// idle machine) once the job's `metrics.jsonl` holds that many step lines.
#[derive(Clone, Copy)]
enum KillAt {
    Ms(u64),
    Steps(usize),
}

/// The steps of a run's `metrics.jsonl` so far, one per step record: GRPO's (`step` with
/// `reward_mean`) or train's (`iter` with `loss`; its evaluations have `train_loss`); none while
/// the file does not exist.
fn logged_steps(metrics: &Path) -> Vec<u64> {
    nanoreward::metrics::read_jsonl(metrics)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            r.get("reward_mean")
                .and(r["step"].as_u64())
                .or_else(|| r.get("loss").and(r["iter"].as_u64()))
        })
        .collect()
}

/// Starts the binary and SIGKILLs it at `at` (`metrics` is the run's log); true when it was
/// still running then.
fn kill_at(args: &[String], cwd: &Path, at: KillAt, metrics: &Path) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nanoreward"))
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let running = loop {
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        let due = match at {
            KillAt::Ms(ms) => start.elapsed() >= Duration::from_millis(ms),
            KillAt::Steps(n) => logged_steps(metrics).len() >= n,
        };
        if due {
            break true;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let _ = child.kill();
    let _ = child.wait();
    running
}

/// The checkpoint under `dir`, if one exists (or was moved aside by the kill), must load whole.
fn intact(dir: &Path) {
    nanoreward::util::fsutil::recover(dir);
    if dir.exists() {
        let m = checkpoint::load_model(dir, &burn::tensor::Device::flex());
        assert!(m.is_ok(), "{}: {:?}", dir.display(), m.err());
    }
}

fn same_weights(a: &Path, b: &Path) {
    let d = common::max_weight_diff(a, b);
    assert!(d < 1e-6, "weights differ by {d}");
}

/// Kills a job at each moment, checking the checkpoint after each kill, then lets it finish
/// (`args(resume)` gives the command line; `resume` is true once a checkpoint exists).
fn kill_then_finish(
    cwd: &Path,
    ckpt: &Path,
    moments: &[KillAt],
    args: impl Fn(bool) -> Vec<String>,
) -> usize {
    let mut landed = 0;
    let metrics = ckpt.parent().unwrap_or(cwd).join("metrics.jsonl");
    for &at in moments {
        let resume = ckpt.join("config.json").exists();
        landed += usize::from(kill_at(&args(resume), cwd, at, &metrics));
        intact(ckpt);
    }
    finish(&args(ckpt.join("config.json").exists()), cwd);
    landed
}

/// Runs the job to completion into `ref/`, then again into `k/` killed at each moment and
/// resumed (`args(out, resume)`), and checks that kills landed and both runs end with the same
/// weights.
fn killed_run_equals_uninterrupted(
    cwd: &Path,
    moments: &[KillAt],
    args: impl Fn(&str, bool) -> Vec<String>,
) {
    finish(&args("ref", false), cwd);
    let ck = cwd.join("k/ckpt");
    let landed = kill_then_finish(cwd, &ck, moments, |resume| args("k", resume));
    assert!(landed > 0, "no kill landed mid-run");
    same_weights(&cwd.join("ref/ckpt"), &ck);
}

/// A command line of owned strings.
fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn data_dir(d: &Path) -> std::path::PathBuf {
    let dd = d.join("data");
    data::prepare(&d.join("input.txt"), &dd, TokenizationKind::Char, 0.9).unwrap();
    dd
}

#[test]
fn train_killed_and_resumed_equals_uninterrupted() {
    let (d, _m, _ck) = common::tiny_base();
    let dd = data_dir(d.path());
    let args = |out: &str, resume: bool| -> Vec<String> {
        strings(&[
            "train",
            &format!("--data_dir={}", dd.display()),
            &format!("--out_dir={out}"),
            &format!("--init_from={}", if resume { "resume" } else { "scratch" }),
            "--n_layer=1",
            "--n_head=2",
            "--n_embd=32",
            "--block_size=16",
            "--batch_size=8",
            "--max_iters=600",
            "--eval_interval=40",
            "--eval_iters=2",
            "--threads=1",
        ])
    };
    // By logged iterations, not fixed delays: 600 tiny iterations can finish in under 300 ms on an
    // idle machine, and then no kill landed.
    let moments = [100, 250, 400, 550].map(KillAt::Steps);
    killed_run_equals_uninterrupted(d.path(), &moments, args);
    assert!(common::leftovers(d.path()).is_empty());
}

#[test]
fn grpo_killed_and_resumed_equals_uninterrupted() {
    let (d, _m, base) = common::tiny_base();
    let dd = data_dir(d.path());
    // A reward model for the tiny base: its head is fresh, which is enough to drive GRPO.
    let rm = d.path().join("rm");
    let mut cfg = checkpoint::read_config(&base).unwrap();
    cfg.mode = nanoreward::model::Mode::Reward;
    cfg.reward_head_hidden_dim = 8;
    let model = nanoreward::model::GPT::new(&cfg, &burn::tensor::Device::flex(), 3).unwrap();
    let tok = checkpoint::Checkpoint::open(&base)
        .unwrap()
        .tokenizer()
        .unwrap();
    checkpoint::save(
        &rm,
        &checkpoint::CheckpointParts {
            model: &model,
            optimizer: None,
            train_state: Default::default(),
            tokenizer: Some(&tok),
            feature_models: Vec::new(),
            extra: Vec::new(),
        },
    )
    .unwrap();
    let args = |out: &str, resume: bool| -> Vec<String> {
        let init = if resume {
            "resume".to_string()
        } else {
            base.display().to_string()
        };
        strings(&[
            "grpo",
            &format!("--init_from={init}"),
            &format!("--reward_model={}", rm.display()),
            &format!("--data_dir={}", dd.display()),
            &format!("--out_dir={out}"),
            "--max_steps=150",
            "--prompts_per_step=2",
            "--group_size=4",
            "--prompt_min=2",
            "--prompt_max=6",
            "--completion_len=8",
            "--num_iterations=2",
            "--learning_rate=1e-3",
            "--eval_interval=10",
            "--eval_iters=1",
            "--eval_batch_size=2",
            "--eval_prompts=2",
            "--threads=1",
        ])
    };
    // 150 tiny steps can finish in under 300 ms on an idle machine: kill by logged steps.
    let moments = [20, 55, 90, 125].map(KillAt::Steps);
    killed_run_equals_uninterrupted(d.path(), &moments, args);
    // One line per step in the log, none repeated or lost.
    let steps = logged_steps(&d.path().join("k/metrics.jsonl"));
    assert_eq!(steps, (0..150).collect::<Vec<u64>>());
    assert!(common::leftovers(d.path()).is_empty());
}

#[test]
fn train_reward_killed_then_rerun_equals_uninterrupted() {
    let (d, model, base) = common::tiny_base();
    let o = common::prep_options(d.path(), &base, "rd");
    nanoreward::reward::prepare::run(&o, &model, false).unwrap();
    let args = |out: &str| -> Vec<String> {
        strings(&[
            "train-reward",
            &format!("--base={}", base.display()),
            &format!("--data={}", d.path().join("rd").display()),
            &format!("--out_dir={out}"),
            "--epochs=40",
            "--patience=0",
            "--fast_path=false",
            "--freeze_trunk=false",
            "--batch_size=8",
            "--threads=1",
        ])
    };
    // A rerun (not `resume`) picks up the latest epoch checkpoint by itself.
    let moments = [400, 900, 1400].map(KillAt::Ms);
    killed_run_equals_uninterrupted(d.path(), &moments, |out, _| args(out));
    assert!(common::leftovers(d.path()).is_empty());
}
