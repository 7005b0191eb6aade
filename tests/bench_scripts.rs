//! The arithmetic of the scripts that make BENCHMARKS.md's tables of judged cycles, on hand-made
//! judge.json / cycle_summary.json files, every figure recomputed here: `scripts/judge_seeds.py`
//! (which judge seeds count, which row is the base's best, how rows are named and ordered, every
//! paired difference) and `scripts/judge_summary.py` (the base's frontier against the final
//! policy, and which runs meet the acceptance targets); `scripts/judge_benchmark.sh` with a stand-in
//! binary (seeds side by side, a failed seed named and resumed); and `scripts/round_config.py`, which
//! turns a round's recorded GRPO config into the TOML that reruns it with one thing changed.

mod common;

use common::script;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Output;

struct Row {
    generator: String,
    temperature: f64,
    c2st: f64,
    mauve: f64,
}

fn row(generator: &Path, temperature: f64, c2st: f64, mauve: f64) -> Row {
    Row {
        generator: generator.display().to_string(),
        temperature,
        c2st,
        mauve,
    }
}

/// The rows of the markdown tables in `text` (headers, which start with one of `headers`, and
/// rules left out), cells trimmed.
fn table_rows(text: &str, headers: &[&str]) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with("| ") && !headers.iter().any(|h| l.starts_with(h)))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

fn write_part(dir: &Path, rows: &[Row]) {
    std::fs::create_dir_all(dir).unwrap();
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({"generator": r.generator, "temperature": r.temperature,
                   "c2st": {"auroc": r.c2st, "ci95": [r.c2st - 0.01, r.c2st + 0.01]},
                   "mauve": r.mauve, "word_validity": 0.7, "val_loss": 1.9})
        })
        .collect();
    std::fs::write(dir.join("judge.json"), json!({ "rows": rows }).to_string()).unwrap();
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Mean and standard error (sample standard deviation / √n) of the paired differences a − b.
fn paired(a: &[f64], b: &[f64]) -> (f64, f64, usize) {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let m = mean(&d);
    let var = d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (d.len() - 1) as f64;
    (
        m,
        (var / d.len() as f64).sqrt(),
        d.iter().filter(|&&x| x < 0.0).count(),
    )
}

/// "−0.0135 ± 0.0095 (2/2)" or "+0.010 ± 0.030" → (mean, s.e., negatives if given).
fn parse_cell(cell: &str) -> (f64, f64, Option<usize>) {
    let (m, rest) = cell.split_once(" ± ").unwrap_or_else(|| panic!("{cell}"));
    let mut parts = rest.split_whitespace();
    let se = parts.next().unwrap().trim_end_matches(',');
    let neg = parts
        .next()
        .map(|p| p.trim_matches(|c| c == '(' || c == ')' || c == ','))
        .map(|p| p.split('/').next().unwrap().parse().unwrap());
    (m.parse().unwrap(), se.parse().unwrap(), neg)
}

fn check(cell: &str, want: (f64, f64, usize), digits: i32, with_count: bool) {
    let (m, se, neg) = parse_cell(cell);
    let tol = 0.51 * 10f64.powi(-digits);
    assert!((m - want.0).abs() <= tol, "{cell}: mean {}", want.0);
    assert!((se - want.1).abs() <= tol, "{cell}: s.e. {}", want.1);
    if with_count {
        assert_eq!(neg, Some(want.2), "{cell}");
    }
}

#[test]
fn judge_seeds_table_pairs_every_difference_by_judge_seed() {
    if !common::python_with(&[], "scripts/judge_seeds.py") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = tmp.path().join("seed1");
    // Where the runs were judged need not be where the table is made: the base is whichever
    // generator each judge seed's base part names.
    let base = PathBuf::from("/judged/elsewhere/seed1/gen/ckpt");
    let round = |r: usize| seed_dir.join(format!("rec/cycle_{r}/grpo/ckpt"));
    let control = seed_dir.join("mle450/ckpt");
    let arm = seed_dir.join("rec600/ckpt");
    // Per judge seed 101 and 102: (C2ST, MAUVE) of each generator and temperature.
    let base09 = [(0.93, 0.70), (0.94, 0.66)];
    let base10 = [(0.91, 0.62), (0.925, 0.64)];
    let base12 = [(0.97, 0.30), (0.96, 0.35)];
    let r1 = [(0.915, 0.61), (0.935, 0.69)];
    let r2 = [(0.887, 0.72), (0.921, 0.60)];
    let r2_12 = [(0.95, 0.50), (0.97, 0.45)];
    let ctl = [(0.905, 0.64), (0.915, 0.66)];
    let arm_vals = [(0.875, 0.58), (0.93, 0.61)];
    let best_of = [(0.84, 0.55), (0.86, 0.68)];
    for (i, j) in ["101", "102"].iter().enumerate() {
        let d = seed_dir.join("judge_seeds").join(j);
        write_part(
            &d.join("base"),
            &[
                row(&base, 0.9, base09[i].0, base09[i].1),
                row(&base, 1.0, base10[i].0, base10[i].1),
            ],
        );
        write_part(
            &d.join("runs"),
            &[
                row(&round(1), 1.0, r1[i].0, r1[i].1),
                row(&round(2), 1.0, r2[i].0, r2[i].1),
                row(&control, 1.0, ctl[i].0, ctl[i].1),
                row(&arm, 1.0, arm_vals[i].0, arm_vals[i].1),
            ],
        );
        // The base at T = 1.0 again (already judged in base/: must count once, as there) and the
        // base and the final policy at T = 1.2.
        write_part(
            &d.join("frontier"),
            &[
                row(&base, 1.0, 0.5, 0.99),
                row(&base, 1.2, base12[i].0, base12[i].1),
                row(&round(2), 1.2, r2_12[i].0, r2_12[i].1),
            ],
        );
        // The base at T = 1.0 best of 16 (judge_seeds.sh's BEST_OF): a row of its own, not the
        // base's.
        write_part(
            &d.join("best_of_16_tau0"),
            &[row(&base, 1.0, best_of[i].0, best_of[i].1)],
        );
    }
    // Judge seed 103 judged both controls but has no frontier part: left out (its values would
    // move every mean).
    let d = seed_dir.join("judge_seeds/103");
    write_part(&d.join("base"), &[row(&base, 1.0, 0.1, 0.1)]);
    write_part(
        &d.join("runs"),
        &[
            row(&round(2), 1.0, 0.1, 0.1),
            row(&control, 1.0, 0.1, 0.1),
            row(&arm, 1.0, 0.1, 0.1),
        ],
    );
    // Judge seed 104 has every part but was judged before the second control existed: left out
    // too (its rounds would be paired with the other seeds' control rows).
    let d = seed_dir.join("judge_seeds/104");
    write_part(&d.join("base"), &[row(&base, 1.0, 0.2, 0.2)]);
    write_part(
        &d.join("runs"),
        &[row(&round(2), 1.0, 0.2, 0.2), row(&control, 1.0, 0.2, 0.2)],
    );
    write_part(&d.join("frontier"), &[row(&base, 1.2, 0.2, 0.2)]);

    let text = script(
        "judge_seeds.py",
        &[
            &seed_dir.join("judge_seeds"),
            Path::new("mle450"),
            Path::new("rec600"),
        ],
    );
    assert!(
        text.starts_with(
            "2 judge seeds (101, 102); the base's best C2ST at base T=1.0, best MAUVE at base T=0.9"
        ),
        "{text}"
    );
    let rows = table_rows(&text, &["| generator"]);
    let names: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        names,
        [
            "base T=0.9",
            "base T=1.0",
            "base T=1.2",
            "round 1",
            "round 2",
            "round 2 T=1.2",
            "mle450",
            "rec600",
            "best-of-16 τ=0"
        ]
    );
    let c2st = |x: &[(f64, f64)]| x.iter().map(|p| p.0).collect::<Vec<_>>();
    let mauve = |x: &[(f64, f64)]| x.iter().map(|p| p.1).collect::<Vec<_>>();
    // The base's own row at T = 1.0: the mean of base/'s values, not the frontier's repeat.
    assert!(rows[1][2].starts_with(&format!("{:.4} ±", mean(&c2st(&base10)))));
    for (k, gen_rows) in [
        (3, &r1),
        (4, &r2),
        (5, &r2_12),
        (6, &ctl),
        (7, &arm_vals),
        (8, &best_of),
    ] {
        let r = &rows[k];
        check(&r[6], paired(&c2st(gen_rows), &c2st(&base10)), 4, true);
        check(&r[7], paired(&mauve(gen_rows), &mauve(&base09)), 3, false);
    }
    // Rounds and the later control at T = 1 against the first control: C2ST paired, then the
    // mean MAUVE difference; none for the first control itself or a row at another temperature.
    for (k, gen_rows) in [(3, &r1), (4, &r2), (7, &arm_vals)] {
        let cell = &rows[k][8];
        check(cell, paired(&c2st(gen_rows), &c2st(&ctl)), 4, true);
        let dm = paired(&mauve(gen_rows), &mauve(&ctl)).0;
        let printed: f64 = cell.split(", ").nth(1).unwrap().parse().unwrap();
        assert!((printed - dm).abs() <= 0.00051, "{cell}: MAUVE {dm}");
    }
    for k in [5, 6] {
        assert!(rows[k][8].is_empty(), "{}: {}", rows[k][1], rows[k][8]);
    }

    // Later judge seeds that judged the controls without a frontier part count, while the earlier
    // ones that have a frontier but not the controls are left out (as judge_seeds.sh run again
    // with new JUDGE_SEEDS and new controls, without FRONTIER_TEMPERATURES, leaves them).
    let js = seed_dir.join("judge_seeds");
    let third = seed_dir.join("noptx600/ckpt");
    for j in ["111", "112"] {
        write_part(&js.join(j).join("base"), &[row(&base, 1.0, 0.9, 0.6)]);
        write_part(
            &js.join(j).join("runs"),
            &[
                row(&control, 1.0, 0.88, 0.6),
                row(&arm, 1.0, 0.86, 0.6),
                row(&third, 1.0, 0.99, 0.1),
            ],
        );
    }
    let names = ["mle450", "rec600", "noptx600"].map(Path::new);
    let text = script(
        "judge_seeds.py",
        &[js.as_path(), names[0], names[1], names[2]],
    );
    assert!(text.starts_with("2 judge seeds (111, 112);"), "{text}");
    // Naming the first two controls only, the seeds with every part (101, 102: a frontier and a
    // best-of part) count; with JUDGE_SEEDS, only those judge seeds, whatever the others hold.
    let two = |judge_seeds: Option<&str>| {
        let mut c = common::python_command("judge_seeds.py");
        c.args([js.as_path(), names[0], names[1]]);
        if let Some(v) = judge_seeds {
            c.env("JUDGE_SEEDS", v);
        } else {
            c.env_remove("JUDGE_SEEDS");
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(
        two(None).starts_with("2 judge seeds (101, 102);"),
        "{}",
        two(None)
    );
    let only = two(Some("111 112"));
    assert!(only.starts_with("2 judge seeds (111, 112);"), "{only}");
    // Judge seeds named with and without a frontier and a best-of part: all of them count, and
    // the parts that some lack are left out of the table.
    let mixed = two(Some("101 102 111 112"));
    assert!(
        mixed.starts_with("4 judge seeds (101, 102, 111, 112);"),
        "{mixed}"
    );
    assert!(
        !mixed.contains("T=1.2") && !mixed.contains("best-of"),
        "{mixed}"
    );
    // The base's best MAUVE is at T = 0.9, judged under 101 and 102 only; a generator judged
    // under 111 and 112 only has no difference to pair with it, and says so.
    let third_row = table_rows(&mixed, &["| generator"])
        .into_iter()
        .find(|r| r[1].ends_with("noptx600/ckpt"))
        .unwrap();
    assert_eq!(third_row[7], "no judge seed in common", "{mixed}");
}

/// SELECT_FROM: the base's best temperatures come from another judgement (the cycle's own), not
/// from the means over the judge seeds, and every difference is paired against those rows.
#[test]
fn judge_seeds_pairs_against_temperatures_selected_elsewhere() {
    if !common::python_with(&[], "scripts/judge_seeds.py") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("gen/ckpt");
    let round = tmp.path().join("rec/cycle_1/grpo/ckpt");
    // Per judge seed: the means pick T = 1.0 for C2ST and T = 0.9 for MAUVE ...
    let base09 = [(0.93, 0.70), (0.94, 0.66)];
    let base10 = [(0.91, 0.62), (0.925, 0.64)];
    let r1 = [(0.915, 0.61), (0.935, 0.69)];
    for (i, j) in ["101", "102"].iter().enumerate() {
        let d = tmp.path().join("judge_seeds").join(j);
        write_part(
            &d.join("base"),
            &[
                row(&base, 0.9, base09[i].0, base09[i].1),
                row(&base, 1.0, base10[i].0, base10[i].1),
            ],
        );
        write_part(&d.join("runs"), &[row(&round, 1.0, r1[i].0, r1[i].1)]);
    }
    // Judge seed 100 judged the base at T = 1.0 only: its rows pair against T = 1.0 alone (a
    // pairing by position would set its round against seed 101's base at T = 0.9).
    let (r100, base10_100) = ((0.95, 0.40), (0.90, 0.80));
    let d = tmp.path().join("judge_seeds/100");
    write_part(
        &d.join("base"),
        &[row(&base, 1.0, base10_100.0, base10_100.1)],
    );
    write_part(&d.join("runs"), &[row(&round, 1.0, r100.0, r100.1)]);
    // ... while the cycle's own judgement picks T = 0.9 for C2ST and T = 1.0 for MAUVE.
    let cycle = tmp.path().join("judge_base");
    write_part(
        &cycle,
        &[
            row(&base, 0.9, 0.80, 0.50),
            row(&base, 1.0, 0.85, 0.70),
            row(&base, 1.1, 0.90, 0.60),
        ],
    );
    let run = |select: &Path| {
        let mut c = common::python_command("judge_seeds.py");
        c.arg(tmp.path().join("judge_seeds"))
            .env("SELECT_FROM", select)
            .env_remove("JUDGE_SEEDS");
        c.output().unwrap()
    };
    let out = run(&cycle.join("judge.json"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with(
            "3 judge seeds (100, 101, 102); the base's best C2ST at base T=0.9, best MAUVE at base T=1.0 (selected by"
        ),
        "{text}"
    );
    let rows = table_rows(&text, &["| generator"]);
    assert_eq!(rows[2][1], "round 1");
    let c2st = |x: &[(f64, f64)]| x.iter().map(|p| p.0).collect::<Vec<_>>();
    let mauve = |x: &[(f64, f64)]| x.iter().map(|p| p.1).collect::<Vec<_>>();
    check(&rows[2][6], paired(&c2st(&r1), &c2st(&base09)), 4, true);
    let with_100 = |x: &[(f64, f64)], first: (f64, f64)| [vec![first], x.to_vec()].concat();
    check(
        &rows[2][7],
        paired(
            &mauve(&with_100(&r1, r100)),
            &mauve(&with_100(&base10, base10_100)),
        ),
        3,
        false,
    );
    // Without SELECT_FROM the base's best temperatures come from the means over the judge seeds
    // that judged every base temperature (101 and 102): MAUVE 0.68 at T = 0.9 against 0.63 at
    // T = 1.0. Seed 100's T = 1.0 (0.80) would lift T = 1.0's mean to 0.687 over three seeds, a
    // mean not comparable with T = 0.9's over two.
    let mut c = common::python_command("judge_seeds.py");
    c.arg(tmp.path().join("judge_seeds"))
        .env_remove("JUDGE_SEEDS")
        .env_remove("SELECT_FROM");
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(
            "3 judge seeds (100, 101, 102); the base's best C2ST at base T=1.0, best MAUVE at base T=0.9"
        ),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A selected temperature the judge seeds never judged: a one-line error that says what to do.
    write_part(&cycle, &[row(&base, 1.1, 0.5, 0.9)]);
    let out = run(&cycle.join("judge.json"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("BASE_TEMPERATURES"),
        "{err}"
    );
}

/// A judged cycle's files: the base at T = 0.8 / 1.0 / 1.2 as (C2ST, MAUVE, words, val), the
/// rounds' (C2ST, MAUVE, words), and the final policy's val loss on the judge's windows.
fn write_cycle(
    dir: &Path,
    base: [(f64, f64, f64, f64); 3],
    rounds: [(f64, f64, f64); 3],
    val: f64,
) {
    let temps = [0.8, 1.0, 1.2];
    let rows: Vec<_> = base
        .iter()
        .zip(temps)
        .map(|(b, t)| {
            json!({"generator": "gen/ckpt", "temperature": t, "c2st": {"auroc": b.0, "ci95": [0.0, 1.0]},
                   "mauve": b.1, "word_validity": b.2, "val_loss": b.3})
        })
        .collect();
    std::fs::create_dir_all(dir.join("judge_base")).unwrap();
    std::fs::write(
        dir.join("judge_base/judge.json"),
        json!({ "rows": rows }).to_string(),
    )
    .unwrap();
    let summary: Vec<_> = rounds
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({"round": i + 1, "c2st_auroc": r.0, "mauve": r.1, "word_validity": r.2,
                   "rm_auroc_policy": 0.9})
        })
        .collect();
    std::fs::write(dir.join("cycle_summary.json"), json!(summary).to_string()).unwrap();
    std::fs::create_dir_all(dir.join("cycle_3/judge")).unwrap();
    let last =
        json!({"rows": [{"generator": "cycle_3/grpo/ckpt", "temperature": 1.0, "val_loss": val}]});
    std::fs::write(dir.join("cycle_3/judge/judge.json"), last.to_string()).unwrap();
}

#[test]
fn judge_summary_sets_each_final_policy_against_its_base_frontier() {
    if !common::python_with(&[], "scripts/judge_summary.py") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    // Run a: the base's lowest C2ST is at T = 1.0 (0.90), its best MAUVE at T = 0.8 (0.70); its
    // final policy meets every target (C2ST 0.84, MAUVE 0.71, val +0.03, words up).
    let base_a = [
        (0.95, 0.70, 0.80, 2.0),
        (0.90, 0.60, 0.60, 2.0),
        (0.97, 0.40, 0.50, 2.0),
    ];
    write_cycle(
        &a,
        base_a,
        [(0.93, 0.5, 0.6), (0.90, 0.6, 0.6), (0.84, 0.71, 0.65)],
        2.03,
    );
    // Run b: the policy misses the C2ST target by 0.01 (0.88 against a best of 0.92 at T = 1.2).
    let base_b = [
        (0.99, 0.50, 0.70, 1.9),
        (0.95, 0.65, 0.55, 1.9),
        (0.92, 0.30, 0.45, 1.9),
    ];
    write_cycle(
        &b,
        base_b,
        [(0.95, 0.6, 0.5), (0.90, 0.6, 0.6), (0.88, 0.70, 0.60)],
        1.88,
    );
    // Run b was judged with best_of: rounds 1 and 2 carry best-of figures, round 3 none.
    let summary_b = b.join("cycle_summary.json");
    let mut rounds_b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_b).unwrap()).unwrap();
    for (r, (c, m)) in [(0.85, 0.60), (0.80, 0.55)].into_iter().enumerate() {
        rounds_b[r]["best_of_c2st_auroc"] = json!(c);
        rounds_b[r]["best_of_mauve"] = json!(m);
    }
    rounds_b[2]["best_of_c2st_auroc"] = serde_json::Value::Null;
    std::fs::write(&summary_b, rounds_b.to_string()).unwrap();
    // Run a kept round 2 on its validation judge seeds (C2ST 0.90, MAUVE 0.6, words 0.6, val
    // 2.01): level with the base's lowest C2ST, below its best MAUVE; run b has no selection.
    std::fs::write(a.join("selection.json"), json!({"selected": 2}).to_string()).unwrap();
    std::fs::create_dir_all(a.join("cycle_2/judge")).unwrap();
    let kept =
        json!({"rows": [{"generator": "cycle_2/grpo/ckpt", "temperature": 1.0, "val_loss": 2.01}]});
    std::fs::write(a.join("cycle_2/judge/judge.json"), kept.to_string()).unwrap();
    // Run b also judged its interpolated policy (C2ST 0.86, MAUVE 0.66, words 0.58, val 1.92):
    // beyond its base's frontier on every target; run a has none.
    std::fs::create_dir_all(b.join("interpolated/judge")).unwrap();
    let mix = json!({"rows": [{"generator": "interpolated/ckpt", "temperature": 1.0,
                     "c2st": {"auroc": 0.86}, "mauve": 0.66, "word_validity": 0.58, "val_loss": 1.92}]});
    std::fs::write(b.join("interpolated/judge/judge.json"), mix.to_string()).unwrap();
    // Run b's selection kept its interpolated policy: the kept figures are the mix's.
    std::fs::write(
        b.join("selection.json"),
        json!({"selected": "interpolated"}).to_string(),
    )
    .unwrap();
    let arg = |d: &Path| PathBuf::from(format!("g={}", d.display()));
    let text = script("judge_summary.py", &[&arg(&a), &arg(&b)]);
    let header = text.lines().next().unwrap().to_string();
    let keys: Vec<&str> = header.split('|').map(str::trim).collect();
    let col = |k: &str| {
        keys.iter()
            .position(|c| *c == k)
            .unwrap_or_else(|| panic!("{k}"))
    };
    let rows = table_rows(&text, &["| run", "| configuration"]);
    assert_eq!(rows.len(), 3, "{text}");
    // Per run: (ΔC2ST vs the base's lowest, ΔMAUVE vs its highest, Δval and Δwords at T = 1).
    let want = [
        (0.84 - 0.90, 0.71 - 0.70, 2.03 - 2.0, 0.65 - 0.60),
        (0.88 - 0.92, 0.70 - 0.65, 1.88 - 1.9, 0.60 - 0.55),
    ];
    for (r, w) in rows.iter().zip(want) {
        for (k, v) in [
            ("ΔC2ST vs best", w.0),
            ("ΔMAUVE vs best", w.1),
            ("Δval", w.2),
            ("Δwords", w.3),
        ] {
            let got: f64 = r[col(k)].parse().unwrap();
            assert!((got - v).abs() < 0.0006, "{k}: {got} against {v}\n{text}");
        }
    }
    // The group row: mean ± sample sd over the two runs, and one run of two meeting the targets.
    let group = &rows[2];
    let d = [want[0].0, want[1].0];
    let sd = (d[0] - d[1]).abs() / 2f64.sqrt();
    assert_eq!(
        group[col("ΔC2ST vs best")],
        format!("{:.3} ± {:.3}", (d[0] + d[1]) / 2.0, sd)
    );
    assert!(group[1].starts_with("g (2)"), "{text}");
    assert_eq!(group[group.len() - 4], "1 of 2", "{text}");
    // The kept round: run a's round 2 against its frontier, which misses; run b kept its
    // interpolated policy (against 0.92, 0.65, val 1.9, words 0.55), which meets every target and
    // is also its "mix" figures; run a has no mix.
    let kept_a = [
        ("kept round", 2.0),
        ("kept is mix", 0.0),
        ("kept ΔC2ST vs best", 0.90 - 0.90),
        ("kept ΔMAUVE vs best", 0.6 - 0.70),
        ("kept Δval", 2.01 - 2.0),
        ("kept Δwords", 0.6 - 0.60),
    ];
    let mix_b = [
        ("mix ΔC2ST vs best", 0.86 - 0.92),
        ("mix ΔMAUVE vs best", 0.66 - 0.65),
        ("mix Δval", 1.92 - 1.9),
        ("mix Δwords", 0.58 - 0.55),
    ];
    for &(k, v) in &kept_a {
        let got: f64 = rows[0][col(k)].parse().unwrap();
        assert!((got - v).abs() < 0.0006, "{k}: {got} against {v}\n{text}");
    }
    for &(k, v) in &mix_b {
        for kk in [k.to_string(), k.replace("mix ", "kept ")] {
            let got: f64 = rows[1][col(&kk)].parse().unwrap();
            assert!((got - v).abs() < 0.0006, "{kk}: {got} against {v}\n{text}");
        }
        assert_eq!(rows[0][col(k)], "nan", "{k}\n{text}");
    }
    assert_eq!(rows[1][col("kept round")], "nan", "{text}");
    assert_eq!(rows[1][col("kept is mix")], "1.000", "{text}");
    assert_eq!(group[group.len() - 3], "1 of 2", "{text}");
    assert_eq!(group[group.len() - 2], "1 of 1", "{text}");
    // Best-of columns: run a (not judged so) reads nan; run b's round 1 against its base's
    // frontier (lowest C2ST 0.92, best MAUVE 0.65); no column for round 3.
    for (k, v) in [
        ("r1 best-of ΔC2ST vs best", 0.85 - 0.92),
        ("r1 best-of ΔMAUVE vs best", 0.60 - 0.65),
        ("r2 best-of C2ST", 0.80),
    ] {
        assert_eq!(rows[0][col(k)], "nan", "{k}\n{text}");
        let got: f64 = rows[1][col(k)].parse().unwrap();
        assert!((got - v).abs() < 0.0006, "{k}: {got} against {v}\n{text}");
    }
    assert!(!header.contains("r3 best-of"), "{header}");
    assert_eq!(
        group[col("r1 best-of ΔC2ST vs best")],
        "-0.070 (1 of 2 runs)",
        "{text}"
    );
}

/// round_config.py's TOML, read by nanoreward's own config loader, is the recorded config with
/// the overrides applied and nothing else changed: a seed above TOML's integers, a list, a bool,
/// floats written as 1.0 and in exponent form, quotes in a path; and a setting newer than the
/// run (absent from its record) added with +KEY=VALUE.
#[test]
fn round_config_reproduces_the_recorded_grpo_config_with_overrides() {
    use nanoreward::grpo::GrpoConfig;
    if !common::python_with(&[], "scripts/round_config.py") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let recorded = GrpoConfig {
        init_from: "/runs/seed \"1\"/recipe/cycle_2/grpo/ckpt".into(),
        reward_model: "/runs/reward\\3/ckpt".into(),
        ensemble: vec!["/runs/r1/ckpt".into(), "/runs/r2/ckpt".into()],
        seed: u64::MAX - 5,
        learning_rate: 1e-5,
        ptx_coef: 1.0,
        dynamic_sampling: true,
        max_steps: 150,
        ..GrpoConfig::default()
    };
    let state = tmp.path().join("train_state.json");
    let mut config = serde_json::to_value(&recorded).unwrap();
    config.as_object_mut().unwrap().remove("adv_estimator");
    let text = json!({"step": 150, "config": config}).to_string();
    std::fs::write(&state, text).unwrap();
    let toml = script(
        "round_config.py",
        &[
            state.to_str().unwrap(),
            "max_steps=600",
            "ptx_coef=0",
            "dynamic_sampling=false",
            "ensemble=/a/ckpt,/b/ckpt",
            "out_dir=/arms/rec600.tmp",
            "+adv_estimator=raft",
            "+grad_clip=0.5",
        ],
    );
    let source = tmp.path().join("arm.toml");
    let read: GrpoConfig =
        nanoreward::config::load_text(Some((source.as_path(), toml.as_str())), &[], &[])
            .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let want = GrpoConfig {
        max_steps: 600,
        ptx_coef: 0.0,
        dynamic_sampling: false,
        ensemble: vec!["/a/ckpt".into(), "/b/ckpt".into()],
        out_dir: "/arms/rec600.tmp".into(),
        adv_estimator: nanoreward::grpo::loss::AdvEstimator::Raft,
        grad_clip: 0.5,
        ..recorded
    };
    assert_eq!(
        serde_json::to_value(&read).unwrap(),
        serde_json::to_value(&want).unwrap(),
        "{toml}"
    );
    // A key the run did not record, or a value not of its type: one line saying so.
    for bad in ["max_stepz=600", "max_steps=six", "dynamic_sampling=yes"] {
        let out =
            common::python_script("round_config.py", &[state.to_str().unwrap(), bad]).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.lines().count() == 1,
            "{bad}: {err}"
        );
        assert!(err.contains(bad.split('=').next().unwrap()), "{bad}: {err}");
    }
}

/// A stand-in for the nanoreward binary in scripts/judge_benchmark.sh: `prepare` makes the data
/// files, `train` a finished checkpoint, `cycle` a judged cycle's files (the base's C2ST 0.9 at
/// T = 1, the final policy's 0.8 + seed / 100); every call is appended to `calls`. A cycle waits
/// (up to 20 s) until two seeds' cycles have started, so seeds run one after another never finish;
/// the seed in $STUB_FAIL fails.
const STUB_NR: &str = r#"#!/usr/bin/env bash
cmd=$1; shift
get() { for a in "$@"; do case $a in --$1=*) echo "${a#*=}";; esac; done; }
echo "$cmd $*" >> "$STUB_DIR/calls"
case $cmd in
  prepare)
    while [ $# -gt 0 ]; do [ "$1" = --out-dir ] && d=$2; shift; done
    mkdir -p "$d" && touch "$d/reward.bin" "$d/train.bin" "$d/val.bin" ;;
  train)
    out=$(get out_dir "$@"); mkdir -p "$out/ckpt" && echo '{}' > "$out/ckpt/config.json"
    echo "done: stub" ;;
  cycle)
    out=$(get out_dir "$@"); seed=$(get seed "$@")
    touch "$STUB_DIR/started_$seed"
    for _ in $(seq 200); do
      [ "$(ls "$STUB_DIR" | grep -c started_)" -ge 2 ] && break; sleep 0.1
    done
    [ "$(ls "$STUB_DIR" | grep -c started_)" -ge 2 ] || { echo "seed $seed ran alone" >&2; exit 2; }
    [ "$seed" = "${STUB_FAIL:-}" ] && exit 3
    mkdir -p "$out/judge_base" "$out/cycle_3/judge"
    row() { echo "{\"generator\": \"gen\", \"temperature\": $1, \"c2st\": {\"auroc\": $2, \"ci95\": [0, 1]}, \"mauve\": 0.6, \"word_validity\": 0.5, \"val_loss\": 2.0}"; }
    echo "{\"rows\": [$(row 0.8 0.95), $(row 1.0 0.9), $(row 1.2 0.97)]}" > "$out/judge_base/judge.json"
    c=$(python3 -c "print(0.8 + $seed / 100)")
    echo "[{\"round\": 3, \"c2st_auroc\": $c, \"mauve\": 0.7, \"word_validity\": 0.6, \"rm_auroc_policy\": 0.9}]" > "$out/cycle_summary.json"
    echo "{\"rows\": [{\"generator\": \"p\", \"temperature\": 1.0, \"val_loss\": 2.01}]}" > "$out/cycle_3/judge/judge.json" ;;
esac
"#;

/// The stub binary and a runner of judge_benchmark.sh with it: `bench(out, seeds, fail, envs)`
/// runs the script for SEEDS into OUT with the stub failing seed FAIL's cycle.
struct StubBench {
    tmp: tempfile::TempDir,
}

impl StubBench {
    /// None (the test skips, saying why) where python3 is missing.
    fn new() -> Option<StubBench> {
        if !common::python_with(&[], "scripts/judge_benchmark.sh") {
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let stub = tmp.path().join("nr");
        std::fs::write(&stub, STUB_NR).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        Some(StubBench { tmp })
    }

    fn run(&self, out: &Path, seeds: &str, fail: &str, envs: &[(&str, &Path)]) -> Output {
        let sh = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/judge_benchmark.sh");
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(&sh)
            .arg(out)
            .arg(seeds)
            .arg("arm=configs/cycle_judged.toml:--grpo.max_steps=2")
            .env("NR", self.tmp.path().join("nr"))
            .env("STUB_DIR", self.tmp.path())
            .env("STUB_FAIL", fail)
            .env("JOBS", "2")
            .env("THREADS", "1");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn calls(&self, what: &str) -> usize {
        let text = std::fs::read_to_string(self.tmp.path().join("calls")).unwrap_or_default();
        text.lines().filter(|l| l.starts_with(what)).count()
    }
}

/// The summary's ΔC2ST of every run whose row names a path containing each of `names`.
fn summary_delta_c2st(table: &str, names: &[String]) -> Vec<f64> {
    let keys: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split('|')
        .map(str::trim)
        .collect();
    let col = keys.iter().position(|c| *c == "ΔC2ST vs best").unwrap();
    let rows = table_rows(table, &["| run", "| configuration"]);
    names
        .iter()
        .map(|name| {
            let row = rows
                .iter()
                .find(|r| r.iter().any(|c| c.contains(name.as_str())))
                .unwrap_or_else(|| panic!("no row for {name}\n{table}"));
            row[col].parse().unwrap()
        })
        .collect()
}

/// judge_benchmark.sh with JOBS = 2 runs two seeds' cycles side by side (the stub's cycles
/// finish only so), names a seed that failed while the others finish, and, run again, resumes:
/// only the failed seed's cycle runs, nothing is trained twice, and the summary has every seed's
/// final policy against its base (ΔC2ST = 0.8 + seed / 100 − 0.9).
#[test]
fn judge_benchmark_runs_seeds_side_by_side_and_resumes_a_failed_one() {
    let Some(bench) = StubBench::new() else {
        return;
    };
    let out = bench.tmp.path().join("out");
    let first = bench.run(&out, "1 2 3", "2", &[]);
    let log = String::from_utf8_lossy(&first.stdout);
    assert!(!first.status.success(), "{log}");
    assert!(log.contains("seeds 2 failed"), "{log}");
    for s in [1, 3] {
        assert!(
            out.join(format!("seed{s}/arm/cycle_summary.json")).exists(),
            "{log}"
        );
    }
    assert!(!out.join("seed2/arm/cycle_summary.json").exists());
    assert_eq!((bench.calls("train"), bench.calls("cycle")), (3, 3));
    let second = bench.run(&out, "1 2 3", "", &[]);
    let log = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "{log}{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(
        (bench.calls("prepare"), bench.calls("train")),
        (1, 3),
        "nothing trained twice"
    );
    let table = std::fs::read_to_string(out.join("summary.md")).unwrap();
    let names: Vec<String> = (1..=3)
        .map(|s| {
            out.join(format!("seed{s}/arm"))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for (s, got) in (1..=3).zip(summary_delta_c2st(&table, &names)) {
        let want = s as f64 / 100.0 - 0.1;
        assert!((got - want).abs() < 5e-4, "seed {s}: {got}\n{table}");
    }
}

/// With RESULTS, each finished seed's figures (judge.json files, the cycle's summary) and its
/// provenance are kept in RESULTS/NAME/seedS, a failed seed's not; a later command for other
/// seeds into another OUT_DIR (another machine) summarises every seed kept there, from the kept
/// files alone.
#[test]
fn judge_benchmark_keeps_each_seeds_figures_and_summarises_seeds_of_several_runs() {
    let Some(bench) = StubBench::new() else {
        return;
    };
    let results = bench.tmp.path().join("results");
    let first_out = bench.tmp.path().join("machine1");
    let env = [("RESULTS", results.as_path())];
    let first = bench.run(&first_out, "1 2", "2", &env);
    assert!(!first.status.success());
    let kept = |s: u32| results.join(format!("arm/seed{s}"));
    for f in [
        "cycle_summary.json",
        "judge_base/judge.json",
        "cycle_3/judge/judge.json",
    ] {
        assert!(kept(1).join(f).exists(), "{f} not kept");
    }
    let provenance = std::fs::read_to_string(kept(1).join("provenance.txt")).unwrap();
    assert!(provenance.contains("seed 1: cycle arm"), "{provenance}");
    assert!(provenance.contains("THREADS=1"), "{provenance}");
    let cpu = provenance
        .lines()
        .find(|l| l.starts_with("cpu: "))
        .unwrap_or_else(|| panic!("no cpu line: {provenance}"));
    assert!(cpu.contains(" cores"), "{cpu}");
    assert!(!kept(2).exists(), "a failed seed's figures were kept");
    std::fs::remove_dir_all(&first_out).unwrap();
    let second_out = bench.tmp.path().join("machine2");
    let second = bench.run(&second_out, "3", "", &env);
    let log = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "{log}{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let table = std::fs::read_to_string(second_out.join("summary.md")).unwrap();
    let names: Vec<String> = [1, 3]
        .iter()
        .map(|s| kept(*s).to_string_lossy().into_owned())
        .collect();
    let got = summary_delta_c2st(&table, &names);
    assert!(
        (got[0] - -0.09).abs() < 5e-4 && (got[1] - -0.07).abs() < 5e-4,
        "{got:?}\n{table}"
    );
    assert!(table.contains("| arm (2) |"), "{table}");
}
