//! The bad-input matrix: each case runs the binary on one broken input and expects a one-line
//! error with the stated message (no panic, no backtrace) and nothing half-written. More cases
//! live beside their features: cli_errors.rs (prepare/train/sample), reward_data.rs (corrupt
//! datasets), interop.rs (.pt files), cycle.rs and grpo.rs (GRPO settings).

mod common;

use common::{expect_clean_error, run};
use std::path::Path;
use std::process::Command;

/// A prepared tiny corpus (`data/`) and a trained tiny generator (`out/ckpt`).
fn setup() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("input.txt"), common::tiny_corpus()).unwrap();
    let p = d.path();
    common::expect_success(&run(
        &["prepare", "--input", "input.txt", "--out-dir", "data"],
        p,
    ));
    let a: Vec<String> = train_args(&[]);
    common::expect_success(&run(&a.iter().map(String::as_str).collect::<Vec<_>>(), p));
    d
}

fn train_args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "train",
        "--data_dir=data",
        "--out_dir=out",
        "--n_layer=1",
        "--n_head=2",
        "--n_embd=32",
        "--block_size=16",
        "--batch_size=4",
        "--max_iters=4",
        "--eval_interval=2",
        "--eval_iters=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn fails_with(dir: &Path, args: &[String], env: &[(&str, &str)], expect: &[&str]) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nanoreward"));
    c.args(args).current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    // Jobs that started may have printed progress lines; the error is the last line.
    let e = if stderr.lines().filter(|l| !l.trim().is_empty()).count() > 1 {
        assert!(
            !out.status.success() && !stderr.contains("panicked"),
            "{stderr}"
        );
        let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        assert!(last.starts_with("error: "), "{stderr}");
        last.to_string()
    } else {
        expect_clean_error(&out)
    };
    for part in expect {
        assert!(e.contains(part), "{args:?}: expected '{part}' in: {e}");
    }
}

#[test]
fn training_inputs() {
    let d = setup();
    let p = d.path();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--learning_rate=-1"],
            vec!["learning_rate must be a finite number ≥ 0, got -1"],
        ),
        (vec!["--batch_size=0"], vec!["batch_size must be positive"]),
        (
            vec!["--max_iters=-3"],
            vec!["invalid value: integer `-3`", "max_iters"],
        ),
        (
            vec!["--dropout=1.5"],
            vec!["dropout must be in [0, 1), got 1.5"],
        ),
        (vec!["--beta2=1"], vec!["beta2 must be in [0, 1), got 1"]),
        (
            vec!["--block_size=100000"],
            vec![
                "holds",
                "tokens but a training window needs block_size + 1 = 100001",
            ],
        ),
        (
            vec!["--out_dir=input.txt/sub"],
            vec!["cannot create directory input.txt/sub", "Not a directory"],
        ),
        (
            vec!["--init_from=nowhere"],
            vec![
                "init_from must be 'scratch', 'resume', 'gpt2'",
                "got 'nowhere'",
            ],
        ),
        (
            vec!["--n_layr=2"],
            vec!["unknown key 'n_layr'", "did you mean 'n_layer'"],
        ),
    ];
    for (extra, expect) in cases {
        fails_with(p, &train_args(&extra), &[], &expect);
    }
    // Empty and truncated token files.
    std::fs::create_dir_all(p.join("e")).unwrap();
    std::fs::copy(p.join("data/meta.pkl"), p.join("e/meta.pkl")).unwrap();
    std::fs::copy(p.join("data/val.bin"), p.join("e/val.bin")).unwrap();
    std::fs::write(p.join("e/train.bin"), b"").unwrap();
    fails_with(
        p,
        &train_args(&["--data_dir=e"]),
        &[],
        &["e/train.bin holds 0 tokens but a training window needs block_size + 1 = 17"],
    );
    std::fs::write(p.join("e/train.bin"), b"abc").unwrap();
    fails_with(
        p,
        &train_args(&["--data_dir=e"]),
        &[],
        &["e/train.bin: size 3 bytes is odd: not a uint16 token file (truncated?)"],
    );
    // Token ids beyond the vocabulary (data from another tokenizer).
    std::fs::write(p.join("e/train.bin"), [0xffu8; 200]).unwrap();
    fails_with(
        p,
        &train_args(&["--data_dir=e"]),
        &[],
        &["the data holds token id 65535 but the model's vocab_size is"],
    );
}

#[test]
fn a_full_disk_leaves_no_checkpoint() {
    let d = setup();
    let p = d.path();
    fails_with(
        p,
        &train_args(&["--out_dir=full"]),
        &[("NANOREWARD_TEST_DISK_BYTES", "5000")],
        &["cannot write", "No space left on device"],
    );
    assert!(!p.join("full/ckpt").exists());
    assert!(
        common::leftovers(p).is_empty(),
        "{:?}",
        common::leftovers(p)
    );
    // The reward dataset too: no file under a final name.
    let rd: Vec<String> = [
        "prepare-reward-data",
        "--model_path=out/ckpt",
        "--data_path=input.txt",
        "--output_dir=rd",
        "--samples_per_chunk=2",
        "--max_blocks=20",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    fails_with(
        p,
        &rd,
        &[("NANOREWARD_TEST_DISK_BYTES", "300")],
        &["No space left on device"],
    );
    for f in ["train_x.bin", "train_y.bin", "train_metadata.txt"] {
        assert!(!p.join("rd").join(f).exists(), "{f} written on a full disk");
    }
}

#[test]
fn checkpoint_and_reward_inputs() {
    let d = setup();
    let p = d.path();
    // NaN in a weight.
    let ck = p.join("out/ckpt");
    let nan = p.join("nan");
    std::fs::create_dir_all(&nan).unwrap();
    for e in std::fs::read_dir(&ck).unwrap().flatten() {
        std::fs::copy(e.path(), nan.join(e.file_name())).unwrap();
    }
    let mut w = nanoreward::checkpoint::safetensors::read(&nan.join("model.safetensors")).unwrap();
    w.get_mut("transformer.ln_f.weight").unwrap().data[0] = f32::NAN;
    let mut named: Vec<_> = w.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    std::fs::write(
        nan.join("model.safetensors"),
        nanoreward::checkpoint::safetensors::to_bytes(&named).unwrap(),
    )
    .unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    fails_with(
        p,
        &s(&["sample", "--checkpoint", "nan", "--max-new-tokens", "2"]),
        &[],
        &["nan/model.safetensors", "transformer.ln_f.weight", "NaN"],
    );
    // Empty config.json.
    std::fs::write(nan.join("config.json"), b"").unwrap();
    fails_with(
        p,
        &s(&["sample", "--checkpoint", "nan"]),
        &[],
        &["nan/config.json", "invalid config.json"],
    );
    // Zero samples per block.
    fails_with(
        p,
        &s(&[
            "prepare-reward-data",
            "--model_path=out/ckpt",
            "--data_path=input.txt",
            "--output_dir=rd0",
            "--samples_per_chunk=0",
        ]),
        &[],
        &["--samples_per_chunk and --batch_size must be at least 1"],
    );
    // Reward training settings.
    for (arg, msg) in [
        (
            "--epochs=0",
            "epochs, batch_size, evals_per_epoch and reward_head_hidden_dim must be positive",
        ),
        (
            "--lr=0",
            "lr must be > 0, min_lr in [0, lr] with decay_lr, and weight_decay ≥ 0 (got 0, 0.00003 and 0)",
        ),
        (
            "--loss=hinge",
            "loss must be mse, cross_entropy, token_bce, token_changepoint, token_both or token_risk, got 'hinge' in `loss`",
        ),
        (
            "--pooling=max",
            "pooling must be last or mean, got 'max' in `pooling`",
        ),
    ] {
        fails_with(
            p,
            &s(&["train-reward", "--base=out/ckpt", "--data=rd", arg]),
            &[],
            &[msg],
        );
    }
    // GRPO: a generator given as the reward model, and negative settings.
    fails_with(
        p,
        &s(&[
            "grpo",
            "--init_from=out/ckpt",
            "--reward_model=out/ckpt",
            "--data_dir=data",
        ]),
        &[],
        &[
            "this is a generator checkpoint; train a reward model with `nanoreward train-reward` first",
        ],
    );
    for (args, msg) in [
        (vec!["--beta=-1"], "beta must be ≥ 0, got -1"),
        (vec!["--temperature=0"], "temperature must be > 0, got 0"),
        (
            vec!["--prompt_min=30", "--prompt_max=24"],
            "prompt_max (24) must be ≥ prompt_min (30)",
        ),
        (vec!["--group_size=1"], "group_size must be at least 2"),
    ] {
        let mut a = s(&["grpo", "--init_from=out/ckpt", "--reward_model=out/ckpt"]);
        a.extend(s(&args));
        fails_with(p, &a, &[], &[msg]);
    }
}
