//! Bad inputs give a one-line error and a non-zero exit, never a panic, and leave nothing
//! half-written.

mod common;

use common::{expect_clean_error, leftovers, run};
use std::path::Path;

#[test]
fn missing_input_file() {
    let d = tempfile::tempdir().unwrap();
    let e = expect_clean_error(&run(
        &["prepare", "--input", "nope.txt", "--out-dir", "o"],
        d.path(),
    ));
    assert!(e.contains("nope.txt") && e.contains("No such file"), "{e}");
    assert!(!d.path().join("o").exists());
}

#[test]
fn empty_corpus() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("e.txt"), "").unwrap();
    let e = expect_clean_error(&run(
        &["prepare", "--input", "e.txt", "--out-dir", "o"],
        d.path(),
    ));
    assert!(e.contains("empty"), "{e}");
    assert!(!d.path().join("o/train.bin").exists());
}

#[test]
fn non_utf8_text() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("b.txt"), [b'a', b'b', 0xff, 0xfe, b'c']).unwrap();
    let e = expect_clean_error(&run(
        &["prepare", "--input", "b.txt", "--out-dir", "o"],
        d.path(),
    ));
    assert!(e.contains("UTF-8") && e.contains("offset 2"), "{e}");
}

fn prepared(text: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("in.txt"), text).unwrap();
    let out = run(
        &["prepare", "--input", "in.txt", "--out-dir", "data"],
        d.path(),
    );
    common::expect_success(&out);
    d
}

#[test]
fn corpus_shorter_than_block_size() {
    let d = prepared("hello world, a short text.\n");
    let e = expect_clean_error(&run(
        &[
            "train",
            "--data_dir=data",
            "--block_size=64",
            "--n_layer=1",
            "--n_head=2",
            "--n_embd=16",
            "--max_iters=2",
        ],
        d.path(),
    ));
    assert!(e.contains("block_size") && e.contains("tokens"), "{e}");
    assert!(!d.path().join("out/ckpt").exists());
}

#[test]
fn n_embd_not_divisible_by_n_head() {
    let d = prepared(&common::tiny_corpus());
    let e = expect_clean_error(&run(
        &[
            "train",
            "--data_dir=data",
            "--block_size=16",
            "--n_layer=1",
            "--n_head=3",
            "--n_embd=32",
            "--max_iters=2",
        ],
        d.path(),
    ));
    assert!(
        e.contains("n_embd (32) must be divisible by n_head (3)"),
        "{e}"
    );
}

#[test]
fn unknown_config_key_and_invalid_toml() {
    let d = prepared(&common::tiny_corpus());
    let e = expect_clean_error(&run(
        &["train", "--data_dir=data", "--n_layers=2"],
        d.path(),
    ));
    assert!(
        e.contains("unknown key 'n_layers'") && e.contains("did you mean 'n_layer'"),
        "{e}"
    );
    std::fs::write(d.path().join("c.toml"), "n_layer = [").unwrap();
    let e = expect_clean_error(&run(&["train", "c.toml"], d.path()));
    assert!(e.contains("invalid TOML"), "{e}");
}

fn trained() -> tempfile::TempDir {
    let d = prepared(&common::tiny_corpus());
    let out = run(
        &[
            "train",
            "--data_dir=data",
            "--block_size=16",
            "--n_layer=1",
            "--n_head=2",
            "--n_embd=16",
            "--max_iters=4",
            "--eval_interval=4",
            "--eval_iters=1",
            "--batch_size=2",
        ],
        d.path(),
    );
    common::expect_success(&out);
    d
}

#[test]
fn unknown_characters_and_truncated_checkpoint() {
    let d = trained();
    let e = expect_clean_error(&run(
        &[
            "sample",
            "--out_dir",
            "out",
            "--start",
            "cat Z",
            "--max_new_tokens",
            "3",
        ],
        d.path(),
    ));
    assert!(e.contains("'Z'") && e.contains("position 4"), "{e}");
    let ok = run(
        &[
            "sample",
            "--out_dir",
            "out",
            "--start",
            "the ",
            "--max_new_tokens",
            "3",
            "--num_samples",
            "2",
        ],
        d.path(),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // --top-k 0 keeps every token (as top_k = 0 does in GRPO and judge): the same draws as a k
    // above the vocabulary, never an error.
    let with_k = |k: &str| {
        let out = run(
            &[
                "sample",
                "--out_dir",
                "out",
                "--temperature",
                "1.5",
                "--top-k",
                k,
                "--max_new_tokens=40",
            ],
            d.path(),
        );
        common::expect_success(&out);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(with_k("0"), with_k("1000"));
    let w = d.path().join("out/ckpt/model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let e = expect_clean_error(&run(
        &["sample", "--out_dir", "out", "--max_new_tokens", "3"],
        d.path(),
    ));
    assert!(
        e.contains("model.safetensors") && e.contains("truncated"),
        "{e}"
    );
    let e = expect_clean_error(&run(&["sample", "--checkpoint", "missing_dir"], d.path()));
    assert!(e.contains("missing_dir"), "{e}");
    assert!(leftovers(d.path()).is_empty(), "{:?}", leftovers(d.path()));
}

#[test]
fn reward_data_with_a_missing_model() {
    let d = prepared(&common::tiny_corpus());
    let e = expect_clean_error(&run(
        &[
            "prepare-reward-data",
            "--model_path",
            "nope",
            "--data_path",
            "in.txt",
        ],
        d.path(),
    ));
    assert!(e.contains("nope") && e.contains("checkpoint"), "{e}");
    let e = expect_clean_error(&run(&["inspect-reward-data", "missing"], d.path()));
    assert!(e.contains("missing") && e.contains("metadata"), "{e}");
}

/// The reward commands end to end through the binary: data, training, evaluation, scoring.
#[test]
fn reward_commands_end_to_end() {
    let d = trained();
    std::fs::copy(d.path().join("in.txt"), d.path().join("input.txt")).unwrap();
    let ok = |args: &[&str]| {
        let out = run(args, d.path());
        common::expect_success(&out);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let s = ok(&[
        "prepare-reward-data",
        "--model_path",
        "out",
        "--data_path",
        "input.txt",
        "--output_dir",
        "rd",
        "--max_blocks",
        "20",
        "--samples_per_chunk",
        "3",
    ]);
    assert!(s.contains("train: 20 blocks × 3 = 60 samples"), "{s}");
    let s = ok(&["inspect-reward-data", "rd", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(j["train"]["stats"]["num_samples"], 60);
    let s = ok(&[
        "train-reward",
        "--base=out",
        "--data=rd",
        "--out_dir=rm",
        "--epochs=2",
        "--reward_head_hidden_dim=16",
    ]);
    assert!(
        s.contains("dropped lm_head.weight") && s.contains("AUROC"),
        "{s}"
    );
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("rm/eval.json")).unwrap()).unwrap();
    assert!(j["mae"].as_f64().is_some() && j["auroc"].as_f64().is_some());
    let s = ok(&[
        "eval-reward",
        "--checkpoint",
        "rm",
        "--windows",
        "8",
        "--output-dir",
        "ev",
    ]);
    assert!(s.contains("MAE of P(natural)"), "{s}");
    std::fs::write(
        d.path().join("t.txt"),
        "the cat sat on the mat. the dog sat on the log.",
    )
    .unwrap();
    let s = ok(&["score", "--checkpoint", "rm", "t.txt", "--json"]);
    let j: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
    let p = j["mean_p_natural"].as_f64().unwrap();
    // 47 characters in windows of block_size 16, stride 16: starts 0, 16 and the last full window at 31.
    let starts: Vec<u64> = j["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["start"].as_u64().unwrap())
        .collect();
    assert!((0.0..=1.0).contains(&p) && starts == vec![0, 16, 31], "{j}");
    // Five batches of windows: scored on one thread or on two, the same output.
    std::fs::write(
        d.path().join("long.txt"),
        "the cat sat on the mat. the dog sat on the log.\n".repeat(100),
    )
    .unwrap();
    let by = |threads: &str| {
        ok(&[
            "score",
            "--checkpoint",
            "rm",
            "long.txt",
            "--json",
            "--threads",
            threads,
        ])
    };
    let one = by("1");
    let n = serde_json::from_str::<serde_json::Value>(one.trim()).unwrap()["windows"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(n > 4 * 64, "{n} windows");
    assert_eq!(one, by("2"));
    let e = expect_clean_error(&run(&["score", "--checkpoint", "out", "t.txt"], d.path()));
    assert!(e.contains("generator checkpoint"), "{e}");
    probe_reads_every_group(d.path());
    sample_best_of(d.path());
}

/// scripts/best_of_windows.py on the models above: N windows of the block's length, a data_dir
/// `train` reads (val.bin and meta.pkl beside), the same bytes again under the same seed, other
/// windows best of 3, nothing half-written left.
fn best_of_windows(d: &Path) {
    let make = |best_of: &str, out: &str| {
        let args = [
            env!("CARGO_BIN_EXE_nanoreward"),
            "out",
            "rm",
            "data",
            "12",
            best_of,
            out,
            "5",
        ];
        common::python_command("best_of_windows.py")
            .args(args)
            .arg("16")
            .current_dir(d)
            .output()
    };
    if !common::python_with(&["numpy"], "scripts/best_of_windows.py") {
        return;
    }
    common::expect_success(&make("1", "bw1").unwrap());
    let read = |dir: &str| std::fs::read(d.join(dir).join("train.bin")).unwrap();
    let plain = read("bw1");
    assert_eq!(plain.len(), 12 * 16 * 2);
    common::expect_success(&make("1", "bw1b").unwrap());
    assert_eq!(read("bw1b"), plain);
    common::expect_success(&make("3", "bw3").unwrap());
    assert_ne!(read("bw3"), plain);
    for f in ["val.bin", "meta.pkl"] {
        assert_eq!(
            std::fs::read(d.join("bw3").join(f)).unwrap(),
            std::fs::read(d.join("data").join(f)).unwrap()
        );
    }
    let o = run(
        &[
            "train",
            "--data_dir=bw3",
            "--block_size=16",
            "--n_layer=1",
            "--n_head=2",
            "--n_embd=16",
            "--max_iters=2",
            "--eval_interval=2",
            "--eval_iters=1",
            "--batch_size=2",
            "--out_dir=bw_out",
        ],
        d,
    );
    common::expect_success(&o);
    assert!(!d.join("bw3.tmp").exists());
}

/// `sample --best-of N --reward-model RM` on the reward model above: N = 1 prints what plain
/// sampling prints, N = 4 prints the samples asked for, and the settings it cannot run are one
/// line each.
fn sample_best_of(d: &Path) {
    let sample = |extra: &[&str]| {
        let mut args = vec!["sample", "--out_dir", "out", "--start", "the "];
        args.push("--num_samples=3");
        if !extra.iter().any(|a| a.starts_with("--max_new_tokens")) {
            args.push("--max_new_tokens=8");
        }
        args.extend(extra);
        run(&args, d)
    };
    let text = |o: &std::process::Output| {
        common::expect_success(o);
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let plain = text(&sample(&[]));
    assert_eq!(
        text(&sample(&["--best-of", "1", "--reward-model", "rm"])),
        plain
    );
    let best = text(&sample(&["--best-of", "4", "--reward-model", "rm"]));
    assert_eq!(best.matches("---------------").count(), 3, "{best}");
    best_of_windows(d);
    // The pick calibrated on natural text the reward model never trained on: the fit on stderr.
    let cal = [
        "--best-of",
        "4",
        "--reward-model",
        "rm",
        "--best-of-calibration",
    ];
    let o = sample(&[&cal[..], &["data/val.bin"]].concat());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(text(&o).matches("---------------").count(), 3);
    assert!(
        err.contains("best-of pick calibrated on") && err.contains("τ = "),
        "{err}"
    );
    std::fs::write(d.join("short.bin"), [0u8; 40]).unwrap();
    for (extra, named) in [
        (&[&cal[..], &["short.bin"]].concat()[..], "at least 8"),
        (
            &["--best-of", "1", "--best-of-calibration", "data/val.bin"][..],
            "--best-of above 1",
        ),
    ] {
        let e = expect_clean_error(&sample(extra));
        assert!(e.contains(named), "{extra:?}: {e}");
    }
    for (extra, named) in [
        (&["--best-of", "4"][..], "--reward-model"),
        (
            &["--best-of", "4", "--reward-model", "out"],
            "generator checkpoint",
        ),
        (
            &[
                "--best-of",
                "4",
                "--reward-model",
                "rm",
                "--max_new_tokens=40",
            ],
            "block_size",
        ),
        (
            &[
                "--best-of",
                "4",
                "--reward-model",
                "rm",
                "--best-of-temperature=-1",
            ],
            "≥ 0",
        ),
    ] {
        let e = expect_clean_error(&sample(extra));
        assert!(e.contains(named), "{extra:?}: {e}");
    }
}

/// scripts/reward_probe.py on the reward model above: one row of mean P(natural) per group, and
/// the generator given again as a policy (`PROBE_POLICIES`) sampled as its own T = 1 column is,
/// with the same seed and settings, the same texts: the same cell.
fn probe_reads_every_group(d: &Path) {
    let probe = |policies: &str| {
        common::python_command("reward_probe.py")
            .args([env!("CARGO_BIN_EXE_nanoreward"), "input.txt", "out", "rm"])
            .current_dir(d)
            .envs([("PROBE_N", "6"), ("PROBE_TEMPERATURES", "1.0,2.0")])
            .envs([("PROBE_POLICIES", policies), ("PROBE_JSON", "probe.json")])
            .output()
    };
    let Ok(out) = probe("out") else {
        eprintln!("SKIP: python3 not found; scripts/reward_probe.py skipped");
        return;
    };
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{s}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cells = |line: &str| -> Vec<String> {
        line.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let head = cells(s.lines().find(|l| l.starts_with("| reward model")).unwrap());
    let want = [
        "reward model",
        "natural",
        "base T=1.0",
        "base T=2.0",
        "out",
        "shuffled",
        "uniform",
    ];
    assert_eq!(head, want, "{s}");
    let row = cells(s.lines().find(|l| l.starts_with("| rm |")).unwrap());
    assert_eq!(row.len(), want.len(), "{s}");
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("probe.json")).unwrap()).unwrap();
    let group = |name: &str| -> Vec<f64> {
        let v = j["rm"][name]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {j}"));
        v.iter().map(|p| p.as_f64().unwrap()).collect()
    };
    for (name, cell) in want[1..].iter().zip(&row[1..]) {
        let p = group(name.trim_start_matches("base "));
        let mean = p.iter().sum::<f64>() / p.len() as f64;
        assert!(
            p.len() == 6 && p.iter().all(|p| (0.0..=1.0).contains(p)),
            "{j}"
        );
        assert!(
            cell.starts_with(&format!("{mean:.3}")),
            "{name}: {cell} against {mean}"
        );
    }
    assert_eq!(
        group("T=1.0"),
        group("out"),
        "the generator as a policy is its T = 1 column"
    );
    assert_ne!(
        group("T=1.0"),
        group("T=2.0"),
        "another temperature, other samples"
    );
    let twice = probe("out,./out/ckpt").unwrap();
    let e = String::from_utf8_lossy(&twice.stderr);
    assert!(
        !twice.status.success() && e.trim().lines().count() == 1,
        "{e}"
    );
    assert!(e.contains("names out twice"), "{e}");
}
