//! SIGTERM / SIGINT to real processes: `train`, `grpo` and `cycle` finish the current step, save a
//! checkpoint, say how to resume and exit non-zero; resuming gives the same weights as an
//! unbroken run. `prepare-reward-data` stops after the batch it is writing and the rerun
//! resumes to the same bytes.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn spawn(args: &[String], cwd: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_nanoreward"))
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `ready()` holds, then sends `signal` and collects the process's output.
fn signal_when(mut child: Child, signal: &str, ready: impl Fn() -> bool) -> Output {
    let t0 = Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the signal"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "never ready for the signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    child.wait_with_output().unwrap()
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |s| s.lines().count())
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn train_stops_on_sigterm_and_resumes_to_the_same_weights() {
    let (d, _m, _ck) = common::tiny_base_with_data();
    let p = d.path();
    let args = |out: &str, extra: &[&str]| {
        let mut a = strings(&[
            "train",
            "--data_dir=data",
            "--n_layer=1",
            "--n_head=2",
            "--n_embd=32",
            "--block_size=16",
            "--batch_size=4",
            "--max_iters=1500",
            "--eval_interval=500",
            "--eval_iters=2",
            "--dropout=0.1",
            "--threads=1",
            "--device=cpu",
        ]);
        a.push(format!("--out_dir={out}"));
        a.extend(strings(extra));
        a
    };
    let log = p.join("cut/metrics.jsonl");
    let out = signal_when(spawn(&args("cut", &[]), p), "-TERM", || lines(&log) > 30);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("interrupted: stopped at iteration") && err.contains("--init_from=resume"),
        "{err}"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.join("cut/ckpt/train_state.json")).unwrap())
            .unwrap();
    let at = state["iter_num"].as_u64().unwrap();
    assert!(at > 0 && at < 1500, "stopped at {at}");
    common::expect_success(&common::run(
        &args("cut", &["--init_from=resume"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        p,
    ));
    common::expect_success(&common::run(
        &args("whole", &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        p,
    ));
    let diff = common::max_weight_diff(&p.join("cut/ckpt"), &p.join("whole/ckpt"));
    assert!(
        diff < 1e-6,
        "resumed run differs from the unbroken one by {diff}"
    );
}

#[test]
fn grpo_stops_on_sigint_and_resumes_to_the_same_weights() {
    let (d, _m, ck) = common::tiny_base_with_data();
    let p = d.path();
    // A reward model to optimise against.
    let rd = common::prep_options(p, &ck, "rd");
    nanoreward::reward::prepare::run(&rd, &_m, false).unwrap();
    common::expect_success(&common::run(
        &[
            "train-reward",
            &format!("--base={}", ck.display()),
            "--data=rd",
            "--out_dir=rm",
            "--epochs=1",
            "--reward_head_hidden_dim=8",
            "--threads=1",
        ],
        p,
    ));
    let args = |out: &str, init: &str| {
        strings(&[
            "grpo",
            &format!("--init_from={init}"),
            "--reward_model=rm",
            "--data_dir=data",
            &format!("--out_dir={out}"),
            "--max_steps=60",
            "--prompts_per_step=2",
            "--group_size=2",
            "--prompt_min=2",
            "--prompt_max=4",
            "--completion_len=6",
            "--eval_interval=20",
            "--eval_iters=1",
            "--eval_batch_size=2",
            "--eval_prompts=2",
            "--threads=1",
            "--device=cpu",
        ])
    };
    let base = ck.display().to_string();
    let log = p.join("cut/metrics.jsonl");
    let out = signal_when(spawn(&args("cut", &base), p), "-INT", || lines(&log) > 5);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("interrupted: stopped at step") && err.contains("--init_from=resume"),
        "{err}"
    );
    common::expect_success(&common::run(
        &args("cut", "resume")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        p,
    ));
    common::expect_success(&common::run(
        &args("whole", &base)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        p,
    ));
    let diff = common::max_weight_diff(&p.join("cut/ckpt"), &p.join("whole/ckpt"));
    assert!(
        diff < 1e-6,
        "resumed GRPO differs from the unbroken one by {diff}"
    );
    let steps: Vec<u64> = nanoreward::metrics::read_jsonl(&log)
        .unwrap()
        .iter()
        .filter(|r| r.get("reward_mean").is_some())
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(
        steps,
        (0..60).collect::<Vec<u64>>(),
        "each step logged exactly once"
    );
}

#[test]
fn reward_data_stops_after_a_batch_and_resumes_to_the_same_bytes() {
    let (d, model, ck) = common::tiny_base();
    let p = d.path();
    let args = |out: &str| {
        strings(&[
            "prepare-reward-data",
            &format!("--model_path={}", ck.display()),
            "--data_path=input.txt",
            &format!("--output_dir={out}"),
            "--samples_per_chunk=1024",
            "--batch_size=64",
            "--threads=1",
            "--device=cpu",
        ])
    };
    // 1,024 samples per block: every 4 blocks are one write, so the run takes several writes.
    let progress = p.join("cut/.train.progress.json");
    let out = signal_when(spawn(&args("cut"), p), "-TERM", || progress.exists());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("interrupted: stopped after") && err.contains("rerun the same command"),
        "{err}"
    );
    common::expect_success(&common::run(
        &args("cut").iter().map(String::as_str).collect::<Vec<_>>(),
        p,
    ));
    let whole = nanoreward::reward::prepare::RewardPrepOptions {
        samples_per_chunk: 1024,
        batch_size: 64,
        max_blocks: None,
        threads: 1,
        ..common::prep_options(p, &ck, "whole")
    };
    nanoreward::reward::prepare::run(&whole, &model, false).unwrap();
    for f in ["train_x.bin", "train_y.bin", "val_x.bin", "val_y.bin"] {
        assert_eq!(
            std::fs::read(p.join("cut").join(f)).unwrap(),
            std::fs::read(p.join("whole").join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn cycle_stops_in_a_round_and_the_same_command_resumes_it() {
    let (d, _m, ck) = common::tiny_base_with_data();
    let p = d.path();
    let toml = |out: &str| {
        format!(
            r#"out_dir = "{out}"
base = "{}"
data_dir = "data"
rounds = 1
eval_windows = 4
threads = 1

[reward_data]
samples_per_chunk = 2
max_blocks = 8
batch_size = 8

[reward]
loss = "mse"
freeze_trunk = true
epochs = 1
batch_size = 8
reward_head_hidden_dim = 8

[grpo]
max_steps = 60
prompts_per_step = 2
group_size = 2
prompt_min = 2
prompt_max = 4
completion_len = 6
eval_interval = 20
eval_iters = 1
eval_batch_size = 2
eval_prompts = 2

[judge]
enabled = false
"#,
            ck.display()
        )
    };
    for out in ["cut", "whole"] {
        std::fs::write(p.join(format!("{out}.toml")), toml(out)).unwrap();
    }
    let log = p.join("cut/cycle_1/grpo/metrics.jsonl");
    let out = signal_when(spawn(&strings(&["cycle", "cut.toml"]), p), "-INT", || {
        lines(&log) > 5
    });
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stopped in round 1 (stopped at step")
            && err.contains("rerun the same cycle command")
            && !err.contains("--init_from"),
        "{err}"
    );
    assert!(!p.join("cut/cycle_1/summary.json").exists());
    common::expect_success(&common::run(&["cycle", "cut.toml"], p));
    common::expect_success(&common::run(&["cycle", "whole.toml"], p));
    let diff = common::max_weight_diff(
        &p.join("cut/cycle_1/grpo/ckpt"),
        &p.join("whole/cycle_1/grpo/ckpt"),
    );
    assert!(
        diff < 1e-6,
        "resumed cycle differs from the unbroken one by {diff}"
    );
}
