//! The arithmetic of `scripts/judge_seeds.py`, the table of BENCHMARKS.md's judged cycles, on
//! hand-made judge.json files: which judge seeds count, which row is the base's best, how rows are
//! named and ordered, and every paired difference, each recomputed here.

use serde_json::json;
use std::path::Path;
use std::process::Command;

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
    if !Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("SKIP: python3 not found; scripts/judge_seeds.py needs it");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = tmp.path().join("seed1");
    let base = seed_dir.join("gen/ckpt");
    let round = |r: usize| seed_dir.join(format!("rec/cycle_{r}/grpo/ckpt"));
    let control = seed_dir.join("mle450/ckpt");
    // Per judge seed 101 and 102: (C2ST, MAUVE) of each generator and temperature.
    let base09 = [(0.93, 0.70), (0.94, 0.66)];
    let base10 = [(0.91, 0.62), (0.925, 0.64)];
    let base12 = [(0.97, 0.30), (0.96, 0.35)];
    let r1 = [(0.915, 0.61), (0.935, 0.69)];
    let r2 = [(0.887, 0.72), (0.921, 0.60)];
    let r2_12 = [(0.95, 0.50), (0.97, 0.45)];
    let ctl = [(0.905, 0.64), (0.915, 0.66)];
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
    }
    // Judge seed 103 has no frontier part: left out (its values would move every mean).
    let d = seed_dir.join("judge_seeds/103");
    write_part(&d.join("base"), &[row(&base, 1.0, 0.1, 0.1)]);
    write_part(&d.join("runs"), &[row(&round(2), 1.0, 0.1, 0.1)]);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/judge_seeds.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(seed_dir.join("judge_seeds"))
        .arg("mle450")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with(
            "2 judge seeds (101, 102); the base's best C2ST at base T=1.0, best MAUVE at base T=0.9"
        ),
        "{text}"
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| generator"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(
        names,
        [
            "base T=0.9",
            "base T=1.0",
            "base T=1.2",
            "round 1",
            "round 2",
            "round 2 T=1.2",
            "mle450"
        ]
    );
    let c2st = |x: &[(f64, f64)]| x.iter().map(|p| p.0).collect::<Vec<_>>();
    let mauve = |x: &[(f64, f64)]| x.iter().map(|p| p.1).collect::<Vec<_>>();
    // The base's own row at T = 1.0: the mean of base/'s values, not the frontier's repeat.
    assert!(rows[1][2].starts_with(&format!("{:.4} ±", mean(&c2st(&base10)))));
    for (k, gen_rows) in [(3, &r1), (4, &r2), (5, &r2_12), (6, &ctl)] {
        let r = &rows[k];
        check(r[6], paired(&c2st(gen_rows), &c2st(&base10)), 4, true);
        check(r[7], paired(&mauve(gen_rows), &mauve(&base09)), 3, false);
    }
    // Rounds at T = 1 against the control: C2ST paired, then MAUVE and word validity means.
    for (k, gen_rows) in [(3, &r1), (4, &r2)] {
        let cell = rows[k][8];
        check(cell, paired(&c2st(gen_rows), &c2st(&ctl)), 4, true);
        let dm = paired(&mauve(gen_rows), &mauve(&ctl)).0;
        let printed: f64 = cell.split(", ").nth(1).unwrap().parse().unwrap();
        assert!((printed - dm).abs() <= 0.00051, "{cell}: MAUVE {dm}");
    }
}
