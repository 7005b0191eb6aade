//! `nanoreward cycle` and `nanoreward grpo` through the binary on a tiny model: two rounds end to
//! end, round-level resumption, and the config checks.

mod common;

use common::{expect_clean_error, expect_success, run};
use std::path::Path;

/// The tiny cycle of these tests: `rounds` rounds from `base`, on `dir/data`, into `dir/cyc`.
fn cycle_toml(dir: &Path, base: &Path, rounds: usize) -> String {
    let (base, data, out) = (
        base.display(),
        dir.join("data").display().to_string(),
        dir.join("cyc").display().to_string(),
    );
    format!(
        r#"out_dir = "{out}"
base = "{base}"
data_dir = "{data}"
rounds = {rounds}
replay_share = 0.5
eval_windows = 8
threads = 2

[reward_data]
samples_per_chunk = 2
max_blocks = 12
batch_size = 8

[reward]
epochs = 2
batch_size = 8
reward_head_hidden_dim = 16

[grpo]
max_steps = 4
prompts_per_step = 2
group_size = 4
prompt_min = 2
prompt_max = 4
completion_len = 6
eval_interval = 2
eval_iters = 1
eval_batch_size = 2
eval_prompts = 2

[judge]
enabled = false
"#
    )
}

/// Writes a cycle config into `dir/cycle.toml`; returns its path.
fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let cfg = dir.join("cycle.toml");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// Two rounds without replay, round 2's GRPO against both rounds' reward models.
fn ensemble_toml(dir: &Path, base: &Path) -> String {
    cycle_toml(dir, base, 2).replace("replay_share = 0.5", "replay_share = 0.0\nensemble = true")
}

#[test]
fn two_rounds_end_to_end_then_resume_at_round_level() {
    let (d, _m, ck) = common::tiny_base_with_data();
    // Round 1 takes 3 GRPO steps (`round_steps`, not `[grpo] max_steps = 4`).
    let text = cycle_toml(d.path(), &ck, 1).replace("rounds = 1", "rounds = 1\nround_steps = [3]");
    let cfg = write_config(d.path(), &text);
    let o = run(&["cycle", cfg.to_str().unwrap()], d.path());
    expect_success(&o);
    let out = d.path().join("cyc");
    for f in [
        "cycle_1/reward_data/train_x.bin",
        "cycle_1/reward/ckpt/model.safetensors",
        "cycle_1/reward/eval.json",
        "cycle_1/grpo/ckpt/model.safetensors",
        "cycle_1/summary.json",
        "cycle_summary.md",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let round1 = std::fs::read(out.join("cycle_1/summary.json")).unwrap();
    // Two rounds: round 1 is reused as it is, round 2 starts from round 1's policy, replays
    // half as many samples from round 1 and takes its own step count from the command line.
    std::fs::write(&cfg, text.replace("rounds = 1", "rounds = 2")).unwrap();
    let o = run(
        &[
            "cycle",
            "--config",
            cfg.to_str().unwrap(),
            "--round_steps=3,5",
        ],
        d.path(),
    );
    expect_success(&o);
    for (r, steps) in [(1, 3), (2, 5)] {
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(format!("cycle_{r}/grpo/ckpt/train_state.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(state["step"], steps, "round {r}");
        assert_eq!(state["config"]["max_steps"], steps, "round {r}");
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("round 1: already done"), "{stdout}");
    assert_eq!(
        std::fs::read(out.join("cycle_1/summary.json")).unwrap(),
        round1
    );
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("cycle_2/summary.json")).unwrap()).unwrap();
    assert!(
        s["generator"]
            .as_str()
            .unwrap()
            .ends_with("cycle_1/grpo/ckpt")
    );
    let own = s["reward_samples_train"].as_u64().unwrap();
    assert_eq!(s["replayed_samples"].as_u64().unwrap(), own / 2);
    let mixed = nanoreward::reward::dataset::RewardDataset::open(
        &out.join("cycle_2/reward_data_replay"),
        "train",
        None,
    )
    .unwrap();
    assert_eq!(mixed.len() as u64, own + own / 2);
    for k in [
        "rm_auroc",
        "rm_mae",
        "policy_reward_end",
        "policy_val_loss_end",
    ] {
        assert!(s[k].as_f64().unwrap().is_finite(), "{k}");
    }
    let table = std::fs::read_to_string(out.join("cycle_summary.md")).unwrap();
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(common::leftovers(d.path()).is_empty());
}

/// A judged cycle with an ensemble of the rounds' reward models: round 0 judges the base model
/// across temperatures (training the judge trunk once), each round judges its policy and
/// scores it with the round's reward model; round 2's GRPO rewards with both rounds' models.
#[test]
fn judged_cycle_with_an_ensemble() {
    let (d, _m, ck) = common::tiny_base_with_data();
    let text = ensemble_toml(d.path(), &ck)
    .replace("ensemble = true", "ensemble = true\ninterpolate_round = 1")
    .replace(
        "[judge]\nenabled = false",
        "[judge]\nbase_temperatures = [0.8, 1.2]\nwindows = 16\nwindow_len = 16\ntrunk_iters = 10\nclusters = 4\nbest_of = 3\nselect_seeds = [5, 6]",
    );
    // First without the interpolated policy, as cycles run before it existed; then with it: the
    // finished rounds and their validation judgements are kept, the mix joins the selection.
    let cfg = write_config(d.path(), &text.replace("interpolate_round = 1", ""));
    let o = run(&["cycle", cfg.to_str().unwrap()], d.path());
    expect_success(&o);
    let out = d.path().join("cyc");
    let rounds_judged = std::fs::read(out.join("select/5/rounds/judge.json")).unwrap();
    let fresh_summary = std::fs::read(out.join("cycle_summary.json")).unwrap();
    assert!(!out.join("interpolated").exists());
    std::fs::write(&cfg, &text).unwrap();
    let o = run(&["cycle", cfg.to_str().unwrap()], d.path());
    expect_success(&o);
    assert_eq!(
        std::fs::read(out.join("select/5/rounds/judge.json")).unwrap(),
        rounds_judged
    );
    // The rounds' figures read back from their files are the figures written, to the last digit.
    assert!(
        std::fs::read(out.join("cycle_summary.json")).unwrap() == fresh_summary,
        "cycle_summary.json changed when the finished rounds were read back"
    );
    let selection_json = std::fs::read(out.join("selection.json")).unwrap();
    let base: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("judge_base/judge.json")).unwrap()).unwrap();
    assert_eq!(base["rows"].as_array().unwrap().len(), 2);
    assert!(
        out.join("judge_base/judge_trunk/ckpt/model.safetensors")
            .exists()
    );
    for r in 1..=2 {
        let s: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(format!("cycle_{r}/summary.json"))).unwrap(),
        )
        .unwrap();
        for k in [
            "c2st_auroc",
            "mauve",
            "word_validity",
            "rm_auroc_policy",
            "best_of_c2st_auroc",
            "best_of_mauve",
        ] {
            assert!(
                s[k].as_f64().is_some_and(f64::is_finite),
                "round {r}: {k} = {}",
                s[k]
            );
        }
        let ci = &s["mauve_ci95"];
        assert!(
            ci[0].as_f64().unwrap() <= s["mauve"].as_f64().unwrap()
                && s["mauve"].as_f64().unwrap() <= ci[1].as_f64().unwrap(),
            "round {r}: MAUVE {} outside its interval {ci}",
            s["mauve"]
        );
        // Best-of-3 of the round's starting generator (the base, then round 1's policy), picked
        // by the round's own reward model.
        let b: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(format!("cycle_{r}/judge_best_of/judge.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(b["best_of"]["n"], 3);
        // The reach depends on the judge alone: round 0 records it, the rounds do not repeat it.
        for j in ["judge", "judge_best_of"] {
            let p = out.join(format!("cycle_{r}/{j}/judge.json"));
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            assert!(v.get("natural_mauve").is_none(), "{}", p.display());
        }
        let picker = b["best_of"]["model"].as_str().unwrap();
        assert!(
            picker.ends_with(&format!("cycle_{r}/reward/ckpt")),
            "{picker}"
        );
        assert_eq!(b["rows"][0]["generator"], s["generator"]);
        assert_eq!(b["rows"][0]["c2st"]["auroc"], s["best_of_c2st_auroc"]);
        assert_eq!(
            s["best_of_pick_temperature"], 0.0,
            "not calibrated: the configured τ"
        );
    }
    let cfg2: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("cycle_2/grpo/ckpt/train_state.json")).unwrap(),
    )
    .unwrap();
    let ensemble = cfg2["config"]["ensemble"].as_array().unwrap();
    assert_eq!(ensemble.len(), 1);
    assert!(
        ensemble[0]
            .as_str()
            .unwrap()
            .ends_with("cycle_1/reward/ckpt")
    );
    let table = std::fs::read_to_string(out.join("cycle_summary.md")).unwrap();
    assert!(
        table.contains("0 (base)") && table.contains("best-of MAUVE"),
        "{table}"
    );
    the_kept_round_follows_the_rule(&out, &[5, 6], 2, 0.05);
    assert!(table.contains("kept: "), "{table}");
    let selection = &table[table.find("Selection on validation judge seeds").unwrap()..];
    assert!(
        selection.contains("R1 + 0.5·(R2 − R1)"),
        "the interpolated policy is a candidate of the selection: {selection}"
    );
    // MAUVE's reach under the table: the round-0 judgement's natural text in a generator's place.
    let reach = &base["natural_mauve"];
    let line = format!(
        "MAUVE's reach on this judge (natural text in a generator's place): {:.3} [",
        reach["other_half"].as_f64().unwrap()
    );
    assert!(table.contains(&line), "{line} not in {table}");
    assert!(
        table.contains(&format!("{:.3} [", reach["train_text"].as_f64().unwrap())),
        "{table}"
    );
    // The interpolated policy: every weight round 1's + 0.5·(round 2's − round 1's), computed
    // here from the two files; judged like a round, its row under the rounds.
    let w = |p: &str| {
        nanoreward::checkpoint::safetensors::read(&out.join(p).join("model.safetensors")).unwrap()
    };
    let (w1, w2, wi) = (
        w("cycle_1/grpo/ckpt"),
        w("cycle_2/grpo/ckpt"),
        w("interpolated/ckpt"),
    );
    assert_eq!(wi.len(), w1.len());
    for (k, t) in &wi {
        for ((x, y), z) in w1[k].data.iter().zip(&w2[k].data).zip(&t.data) {
            assert_eq!(
                *z,
                (*x as f64 + 0.5 * (*y as f64 - *x as f64)) as f32,
                "{k}"
            );
        }
    }
    let mixed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("interpolated/judge/judge.json")).unwrap())
            .unwrap();
    let row = &mixed["rows"][0];
    assert!(
        row["generator"]
            .as_str()
            .unwrap()
            .ends_with("interpolated/ckpt")
    );
    let line = format!(
        "| R1 + 0.5·(R2 − R1) | | | | | | {:.4} | {:.3} |",
        row["val_loss"].as_f64().unwrap(),
        row["c2st"]["auroc"].as_f64().unwrap()
    );
    assert!(table.contains(&line), "{line} not in {table}");
    // Run again: every judgement is reused, and round 0 says so.
    let o = run(&["cycle", cfg.to_str().unwrap()], d.path());
    expect_success(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("== round 0: the judge on the base model: already done"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("cycle_summary.md")).unwrap(),
        table
    );
    assert!(
        std::fs::read(out.join("selection.json")).unwrap() == selection_json,
        "selection.json changed when its judgements were read back"
    );
}

/// The cycle's selection (`[judge] select_seeds`) recomputed from its validation judgements:
/// the base temperature with the best mean MAUVE, every candidate's mean differences from it
/// paired by judge seed (the rounds, then the interpolated policy where the cycle has one), and
/// the kept candidate (the highest MAUVE gain among those `margin` below the base's C2ST, else
/// the lowest C2ST; ties to the earlier).
fn the_kept_round_follows_the_rule(out: &Path, seeds: &[u64], rounds: usize, margin: f64) {
    let json = |p: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_slice(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap()
    };
    let points = |v: &serde_json::Value| -> Vec<(f64, f64)> {
        let rows = v["rows"].as_array().unwrap();
        rows.iter()
            .map(|r| {
                (
                    r["c2st"]["auroc"].as_f64().unwrap(),
                    r["mauve"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let mixed = out.join("interpolated/ckpt").exists();
    let (mut base, mut pol) = (Vec::new(), Vec::new());
    for &j in seeds {
        let b = json(out.join(format!("select/{j}/base/judge.json")));
        let r = json(out.join(format!("select/{j}/rounds/judge.json")));
        assert_eq!(
            b["seed"], j,
            "judged under the validation seed, not the cycle's"
        );
        assert_eq!(r["seed"], j);
        base.push(points(&b));
        pol.push(points(&r));
        assert_eq!(pol.last().unwrap().len(), rounds);
        if mixed {
            let m = json(out.join(format!("select/{j}/interpolated/judge.json")));
            assert_eq!(m["seed"], j);
            assert!(
                m["rows"][0]["generator"]
                    .as_str()
                    .unwrap()
                    .ends_with("interpolated/ckpt")
            );
            pol.last_mut().unwrap().extend(points(&m));
        }
    }
    let n = seeds.len() as f64;
    let temps = base[0].len();
    let mean_mauve = |t: usize| base.iter().map(|b| b[t].1).sum::<f64>() / n;
    let mut t = 0;
    for u in 1..temps {
        if mean_mauve(u) > mean_mauve(t) {
            t = u;
        }
    }
    let sel = json(out.join("selection.json"));
    let mut kept_within: Option<(usize, f64)> = None;
    let mut lowest: Option<(usize, f64)> = None;
    for c in 0..pol[0].len() {
        let dc = (0..seeds.len())
            .map(|j| pol[j][c].0 - base[j][t].0)
            .sum::<f64>()
            / n;
        let dm = (0..seeds.len())
            .map(|j| pol[j][c].1 - base[j][t].1)
            .sum::<f64>()
            / n;
        let got = if c < rounds {
            &sel["rounds"][c]
        } else {
            &sel["interpolated"]
        };
        assert!((got["c2st"].as_f64().unwrap() - dc).abs() < 1e-12, "{got}");
        assert!((got["mauve"].as_f64().unwrap() - dm).abs() < 1e-12, "{got}");
        if dc <= -margin && kept_within.is_none_or(|(_, m)| dm > m) {
            kept_within = Some((c, dm));
        }
        if lowest.is_none_or(|(_, x)| dc < x) {
            lowest = Some((c, dc));
        }
    }
    let kept = kept_within.or(lowest).unwrap().0;
    let policy = sel["policy"].as_str().unwrap();
    if kept < rounds {
        assert_eq!(sel["selected"], kept + 1, "{sel}");
        assert!(
            policy.ends_with(&format!("cycle_{}/grpo/ckpt", kept + 1)),
            "{policy}"
        );
    } else {
        assert_eq!(sel["selected"], "interpolated", "{sel}");
        assert!(policy.ends_with("interpolated/ckpt"), "{policy}");
    }
    assert_eq!(sel["within_margin"], kept_within.is_some());
    assert_eq!(sel["interpolated"].is_object(), mixed, "{sel}");
}

/// The cycle's "strongest reward model" arm: every round's reward model reads a second model of
/// natural text as its frozen trunk and as the reference channel (`[reward] trunk`/`reference`,
/// configs/reward_strong.toml), and round 2's GRPO scores with both rounds' models. Each round's
/// reward checkpoint carries the reference, and the round-1 reward model reloaded from disk scores
/// through it, its trunk taken from the reference's pass.
#[test]
fn a_cycle_whose_reward_models_read_a_reference() {
    let (d, model, ck) = common::tiny_base_with_data();
    let (_, rp) = common::save_reference(d.path(), &model, &ck, 91);
    let rps = rp.display().to_string();
    let toml = ensemble_toml(d.path(), &ck).replace(
        "reward_head_hidden_dim = 16",
        &format!(
            "reward_head_hidden_dim = 16\ntrunk = \"{rps}\"\nreference = \"{rps}\"\ncontext = 1"
        ),
    );
    let cfg = write_config(d.path(), &toml);
    let o = run(&["cycle", cfg.to_str().unwrap()], d.path());
    expect_success(&o);
    let out = d.path().join("cyc");
    for r in 1..=2 {
        let rm = out.join(format!("cycle_{r}/reward/ckpt"));
        assert!(
            rm.join("reference_model/model.safetensors").exists(),
            "round {r}: the reward checkpoint has no reference"
        );
        let s: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(format!("cycle_{r}/summary.json"))).unwrap(),
        )
        .unwrap();
        for k in ["rm_auroc", "policy_reward_end", "policy_val_loss_end"] {
            assert!(s[k].as_f64().is_some_and(f64::is_finite), "round {r}: {k}");
        }
    }
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("cycle_2/grpo/ckpt/train_state.json")).unwrap(),
    )
    .unwrap();
    let ensemble = state["config"]["ensemble"].as_array().unwrap();
    assert_eq!(ensemble.len(), 1);
    // The round-1 reward model, reloaded, reads the reference, and its frozen trunk is the
    // reference weight for weight (so scoring runs that model once).
    let rm = nanoreward::reward::RewardModel::load(
        &out.join("cycle_1/reward/ckpt"),
        &burn::tensor::Device::flex(),
    )
    .unwrap();
    assert!(
        rm.features
            .as_ref()
            .is_some_and(|f| !f.reference.is_empty())
    );
    assert_eq!(
        rm.shared,
        nanoreward::reward::model::SharedStates::Reference
    );
    assert!(common::leftovers(d.path()).is_empty());
}

/// Every file under `dir` whose name ends in one of `exts`, relative to `dir`, sorted.
fn files_ending(dir: &Path, exts: &[&str]) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = common::entries_under(dir)
        .into_iter()
        .filter(|p| p.is_file() && exts.iter().any(|x| p.to_string_lossy().ends_with(x)))
        .map(|p| p.strip_prefix(dir).unwrap().to_path_buf())
        .collect();
    out.sort();
    out
}

/// Reproducible seeds: the same cycle (the judged recipe's pieces: the per-token reward model on
/// the generator's features with the lexicon channel, replay, the ensemble, the pretraining mix,
/// dynamic sampling and the val-loss rollback) run twice into two directories writes the same
/// bytes: every reward dataset, reward model and policy, on two threads.
#[test]
fn the_same_cycle_twice_writes_the_same_bytes() {
    let (d, _m, ck) = common::tiny_base_with_data();
    let train = d.path().join("data/train.bin").display().to_string();
    let toml = ensemble_toml(d.path(), &ck)
        .replace("replay_share = 0.0", "replay_share = 0.5")
        .replace(
            "reward_head_hidden_dim = 16",
            &format!(
                "reward_head_hidden_dim = 16\nloss = \"token_both\"\ntoken_prior = \"none\"\nlexicon_text = \"{train}\""
            ),
        )
        .replace(
            "max_steps = 4",
            "max_steps = 4\nreward_granularity = \"token\"\nscale_rewards = \"batch\"\nptx_coef = 1.0\nptx_batch_size = 2\ndynamic_sampling = true\nmax_val_loss_increase = 0.05",
        );
    let cfg = write_config(d.path(), &toml);
    for out in ["cyc", "cyc_again"] {
        let o = run(
            &[
                "cycle",
                cfg.to_str().unwrap(),
                &format!("--out_dir={}", d.path().join(out).display()),
            ],
            d.path(),
        );
        expect_success(&o);
    }
    let (a, b) = (d.path().join("cyc"), d.path().join("cyc_again"));
    let files = files_ending(&a, &[".safetensors", ".bin"]);
    assert_eq!(files, files_ending(&b, &[".safetensors", ".bin"]));
    for r in 1..=2 {
        for f in [
            "reward_data/train_x.bin",
            "reward/ckpt/model.safetensors",
            "grpo/ckpt/model.safetensors",
        ] {
            let f = std::path::PathBuf::from(format!("cycle_{r}/{f}"));
            assert!(files.contains(&f), "{} missing", f.display());
        }
    }
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("cycle_2/reward_data_replay"))
    );
    // The runs used the recipe's pieces.
    let state = |f: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(a.join(f)).unwrap()).unwrap()
    };
    let g = state("cycle_2/grpo/ckpt/train_state.json")["config"].clone();
    assert_eq!(g["reward_granularity"], "token", "{g}");
    assert_eq!(g["ptx_coef"], 1.0, "{g}");
    assert_eq!(g["ensemble"].as_array().map(Vec::len), Some(1), "{g}");
    let rcfg = state("cycle_1/reward/ckpt/train_state.json")["config"].clone();
    assert_eq!(rcfg["loss"], "token_both", "{rcfg}");
    assert!(
        rcfg["lexicon_text"]
            .as_str()
            .is_some_and(|t| t.ends_with("train.bin")),
        "{rcfg}"
    );
    for f in &files {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{} differs between two runs of one cycle",
            f.display()
        );
    }
}

#[test]
fn grpo_cli_checks_its_config() {
    let (d, _m, ck) = common::tiny_base();
    let o = run(
        &[
            "grpo",
            "--group_size=1",
            &format!("--init_from={}", ck.display()),
        ],
        d.path(),
    );
    let e = expect_clean_error(&o);
    assert!(e.contains("group_size"), "{e}");
    let o = run(&["grpo", "--max_step=3"], d.path());
    let e = expect_clean_error(&o);
    assert!(e.contains("did you mean 'max_steps'"), "{e}");
    let o = run(&["cycle", "--grpo.bta=0"], d.path());
    let e = expect_clean_error(&o);
    assert!(e.contains("did you mean 'grpo.beta'"), "{e}");
    let o = run(
        &["grpo", "--print-config", "--beta=0", "--loss_type=dapo"],
        d.path(),
    );
    expect_success(&o);
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        shown.contains("beta = 0.0") && shown.contains("loss_type = \"dapo\""),
        "{shown}"
    );
    // A config file first, --print-config among the overrides.
    let f = d.path().join("g.toml");
    std::fs::write(&f, "max_steps = 7\n").unwrap();
    let o = run(
        &["grpo", f.to_str().unwrap(), "--print-config", "--beta=0.5"],
        d.path(),
    );
    expect_success(&o);
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        shown.contains("max_steps = 7") && shown.contains("beta = 0.5"),
        "{shown}"
    );
    let o = run(&["grpo", "--loss_type=ppo"], d.path());
    let e = expect_clean_error(&o);
    assert!(e.contains("ppo"), "{e}");
    // A reward checkpoint that does not exist.
    let o = run(
        &[
            "grpo",
            &format!("--init_from={}", ck.display()),
            "--reward_model=nowhere",
        ],
        d.path(),
    );
    let e = expect_clean_error(&o);
    assert!(e.contains("nowhere"), "{e}");
}

/// A file a long run names that cannot be read fails it at once, before any work: nothing is
/// trained or written (the judge would otherwise train its trunk first, a cycle its round 0).
#[test]
fn missing_inputs_fail_before_any_work() {
    let (d, _m, ck) = common::tiny_base_with_data();
    let judged = cycle_toml(d.path(), &ck, 1).replace("enabled = false", "trunk_iters = 5");
    let cfg = write_config(d.path(), &judged);
    let cyc = d.path().join("cyc");
    for bad in [
        "--reward.lexicon_text=no_such_text.bin",
        "--reward.trunk=no_such_trunk",
        "--reward.reference=no_such_reference",
        "--judge.trunk=no_such_judge",
        "--grpo.teacher=no_such_teacher",
        "--base=no_such_base",
        "--judge.best_of=0",
        "--judge.best_of_temperature=-1",
    ] {
        let o = run(&["cycle", cfg.to_str().unwrap(), bad], d.path());
        let e = expect_clean_error(&o);
        let named = bad.split('=').nth(1).unwrap_or_default();
        assert!(e.contains(named), "{bad}: {e}");
        assert!(!cyc.exists(), "{bad}: the cycle wrote {}", cyc.display());
    }
    // The cycle's own settings: at least one round, replay_share in 0..=10, one GRPO step count
    // per round, each at least 1, an interpolated round before the last and a number for α.
    for (bad, says) in [
        ("--rounds=0", "rounds must be at least 1"),
        ("--replay_share=11", "replay_share must be between 0 and 10"),
        (
            "--round_steps=3,4",
            "round_steps has 2 entries for 1 rounds",
        ),
        ("--round_steps=0", "at least 1"),
        (
            "--interpolate_round=1",
            "interpolate_round is 1 with 1 rounds",
        ),
        (
            "--interpolate_alpha=nan",
            "interpolate_alpha must be a number",
        ),
        ("--judge.select_seeds=3,3", "repeats a seed"),
        ("--judge.select_margin=-1", "select_margin must be a number"),
        ("--judge.select_temperatures=0", "must be numbers > 0"),
        ("--judge.select_temperatures=-1", "must be numbers > 0"),
    ] {
        let e = expect_clean_error(&run(&["cycle", cfg.to_str().unwrap(), bad], d.path()));
        assert!(e.contains(says), "{bad}: {e}");
        assert!(!cyc.exists(), "{bad}: the cycle wrote {}", cyc.display());
    }
    // Calibrating the best-of pick on the reward data's validation text needs that text apart
    // from the judge's (reward_text = "reward").
    let o = run(
        &[
            "cycle",
            cfg.to_str().unwrap(),
            "--judge.best_of=4",
            "--judge.best_of_calibrate=true",
        ],
        d.path(),
    );
    let e = expect_clean_error(&o);
    assert!(e.contains("reward_text = \"reward\""), "{e}");
    assert!(!cyc.exists());
    let out = d.path().join("judged");
    let data = d.path().join("data");
    let ckp = ck.to_str().unwrap();
    let picker = ["--best_of=4", "--best_of_model=no_such_picker"];
    let cases: [(&str, &str, &[&str], &str); 6] = [
        ("no_such_generator", "data/val.bin", &[], "no_such"),
        (ckp, "no_such_natural.bin", &[], "no_such"),
        (ckp, "data/val.bin", &picker, "no_such_picker"),
        (ckp, "data/val.bin", &["--best_of=4"], "best_of_model"),
        (
            ckp,
            "data/val.bin",
            &["--best_of_calibration=data/val.bin"],
            "needs best_of > 1",
        ),
        (
            ckp,
            "data/val.bin",
            &["--best_of_temperature=-1"],
            "best-of temperature",
        ),
    ];
    for (generator, natural, extra, named) in cases {
        let mut args = vec![
            "judge".to_string(),
            format!("--generators={generator}"),
            format!("--data_dir={}", data.display()),
            format!("--natural={natural}"),
            format!("--out_dir={}", out.display()),
            "--trunk_iters=5".to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = expect_clean_error(&run(&args, d.path()));
        assert!(e.contains(named), "{extra:?}: {e}");
        assert!(!out.exists(), "judge wrote {}", out.display());
    }
}
