//! Early stopping of a cycle on a validation judge. The later rounds of a cycle keep lowering
//! the judge's C2ST AUROC while its MAUVE can fall back (BENCHMARKS.md, issue 14), so the last
//! round need not be the best policy. Here the base (at its temperatures) and every round's
//! policy are judged again under *validation* judge seeds: other windows, samples and detectors
//! than the cycle's own judgement, which then measures the kept round on judge samples the
//! choice never saw. The rule: against the base temperature with the best mean MAUVE, keep the
//! round with the highest mean MAUVE gain among the rounds whose mean C2ST AUROC is at least
//! `margin` below the base's (differences paired by judge seed); when no round is, the round
//! with the lowest C2ST.

use crate::judge::{self, JudgeConfig};
use crate::util::fsutil;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One judgement of a generator: C2ST AUROC and MAUVE.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub c2st: f64,
    pub mauve: f64,
}

/// A round's differences from the base over the validation judge seeds (mean and standard
/// error of the differences paired by judge seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundDelta {
    pub round: usize,
    pub c2st: f64,
    pub c2st_se: f64,
    pub mauve: f64,
    pub mauve_se: f64,
}

/// The selection, as written to out_dir/selection.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The validation judge seeds.
    pub seeds: Vec<u64>,
    /// The base temperature every round is compared with (its best mean MAUVE).
    pub base_temperature: f64,
    pub margin: f64,
    pub rounds: Vec<RoundDelta>,
    /// The kept round (1-based).
    pub selected: usize,
    /// Whether the kept round's C2ST is at least `margin` below the base's (false: no round's
    /// was, and the round with the lowest C2ST was kept).
    pub within_margin: bool,
    /// The kept round's policy checkpoint.
    pub policy: String,
}

impl Selection {
    /// The Markdown table of the rounds' differences, the kept round in bold, and a line saying
    /// which round is kept and why.
    pub fn table(&self) -> String {
        let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
        let mut md = format!(
            "Selection on validation judge seeds {} (against the base at T {}, its best mean MAUVE):\n\n| round | ΔC2ST AUROC (mean ± s.e.) | ΔMAUVE (mean ± s.e.) |\n|---|---|---|\n",
            seeds.join(", "),
            self.base_temperature
        );
        for d in &self.rounds {
            let r = if d.round == self.selected {
                format!("**{}**", d.round)
            } else {
                d.round.to_string()
            };
            md.push_str(&format!(
                "| {r} | {:+.4} ± {:.4} | {:+.3} ± {:.3} |\n",
                d.c2st, d.c2st_se, d.mauve, d.mauve_se
            ));
        }
        let why = if self.within_margin {
            format!(
                "the highest MAUVE gain among the rounds at least {} below the base's C2ST",
                self.margin
            )
        } else {
            format!(
                "no round is {} below the base's C2ST; the lowest C2ST",
                self.margin
            )
        };
        md.push_str(&format!(
            "\nkept: round {} ({why}): {}\n",
            self.selected, self.policy
        ));
        md
    }
}

/// Mean and standard error (the sample standard deviation over √n; 0 for one value).
fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    (mean, judge::mauve::std_dev(xs) / n.sqrt())
}

/// The rule on judgements `base[t][j]` (base temperature t, judge seed j) and `rounds[r][j]`:
/// the base temperature index with the best mean MAUVE, every round's paired differences from
/// it, the kept round (1-based) and whether it is within the margin.
pub fn pick(
    base: &[Vec<Point>],
    rounds: &[Vec<Point>],
    margin: f64,
) -> (usize, Vec<RoundDelta>, usize, bool) {
    let mean_mauve = |ps: &[Point]| ps.iter().map(|p| p.mauve).sum::<f64>() / ps.len() as f64;
    let t = (0..base.len())
        .max_by(|&a, &b| {
            mean_mauve(&base[a])
                .total_cmp(&mean_mauve(&base[b]))
                .then(b.cmp(&a))
        })
        .unwrap_or(0);
    let deltas: Vec<RoundDelta> = rounds
        .iter()
        .enumerate()
        .map(|(r, ps)| {
            let pairs = ps.iter().zip(&base[t]);
            let dc: Vec<f64> = pairs.clone().map(|(p, b)| p.c2st - b.c2st).collect();
            let dm: Vec<f64> = pairs.map(|(p, b)| p.mauve - b.mauve).collect();
            let ((c2st, c2st_se), (mauve, mauve_se)) = (mean_se(&dc), mean_se(&dm));
            RoundDelta {
                round: r + 1,
                c2st,
                c2st_se,
                mauve,
                mauve_se,
            }
        })
        .collect();
    // Ties go to the earlier round (fewer steps from the base).
    let earlier = |a: &RoundDelta, b: &RoundDelta| b.round.cmp(&a.round);
    let within = deltas
        .iter()
        .filter(|d| d.c2st <= -margin)
        .max_by(|a, b| a.mauve.total_cmp(&b.mauve).then(earlier(a, b)));
    let (kept, within_margin) = match within {
        Some(d) => (d.round, true),
        None => {
            let lowest = deltas
                .iter()
                .min_by(|a, b| a.c2st.total_cmp(&b.c2st).then(earlier(b, a)))
                .map_or(1, |d| d.round);
            (lowest, false)
        }
    };
    (t, deltas, kept, within_margin)
}

/// What the selection judges: validation judge seeds, the base at its temperatures, every
/// round's policy at the policy temperature, with the cycle's judge settings, into
/// `out/select/{seed}/{base,rounds}` (reused when done) and `out/selection.json`.
pub struct Plan<'a> {
    pub seeds: &'a [u64],
    pub temperatures: &'a [f64],
    pub margin: f64,
    pub base: &'a Path,
    pub policies: &'a [PathBuf],
    pub policy_temperature: f64,
    pub out: &'a Path,
    pub judge: JudgeConfig,
}

/// A judgement of `generators` at `temperatures` in `dir` (reused when `dir` holds it); its
/// points, generator-major.
fn judged(
    dir: &Path,
    generators: &[String],
    temperatures: &[f64],
    jc: &JudgeConfig,
) -> Result<Vec<Point>> {
    let report = judge::run_or_reuse(&JudgeConfig {
        generators: generators.to_vec(),
        temperatures: temperatures.to_vec(),
        out_dir: dir.display().to_string(),
        ..jc.clone()
    })?;
    Ok(report
        .rows
        .iter()
        .map(|r| Point {
            c2st: r.c2st.auroc,
            mauve: r.mauve,
        })
        .collect())
}

/// Judges (or reads) every validation judgement, applies the rule and writes the selection
/// (the cycle prints its table with the summary).
pub fn run(plan: &Plan) -> Result<Selection> {
    let dir = plan.out.join("select");
    let policies: Vec<String> = plan
        .policies
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let base = [plan.base.display().to_string()];
    let (mut by_t, mut by_r) = (
        vec![Vec::new(); plan.temperatures.len()],
        vec![Vec::new(); policies.len()],
    );
    for &seed in plan.seeds {
        println!(
            "== selection: the base and every round's policy under validation judge seed {seed}"
        );
        let jc = JudgeConfig {
            seed,
            ..plan.judge.clone()
        };
        let d = dir.join(seed.to_string());
        for (t, p) in judged(&d.join("base"), &base, plan.temperatures, &jc)?
            .into_iter()
            .enumerate()
        {
            by_t[t].push(p);
        }
        let at = [plan.policy_temperature];
        for (r, p) in judged(&d.join("rounds"), &policies, &at, &jc)?
            .into_iter()
            .enumerate()
        {
            by_r[r].push(p);
        }
    }
    let (t, rounds, selected, within_margin) = pick(&by_t, &by_r, plan.margin);
    let s = Selection {
        seeds: plan.seeds.to_vec(),
        base_temperature: plan.temperatures[t],
        margin: plan.margin,
        rounds,
        selected,
        within_margin,
        policy: policies[selected - 1].clone(),
    };
    let bytes = serde_json::to_vec_pretty(&s)
        .map_err(|e| Error::Other(format!("cannot serialise the selection: {e}")))?;
    fsutil::write_bytes_atomic(&plan.out.join("selection.json"), &bytes)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(c2st: f64, mauve: f64) -> Point {
        Point { c2st, mauve }
    }

    /// Two judge seeds, the base at two temperatures, three rounds, worked by hand.
    #[test]
    fn the_rule_by_hand() {
        // Mean MAUVE 0.61 at the first temperature, 0.65 at the second: the second is the base.
        let base = vec![
            vec![p(0.99, 0.60), p(0.98, 0.62)],
            vec![p(0.98, 0.64), p(0.99, 0.66)],
        ];
        let rounds = vec![
            // ΔC2ST −0.03 (not 0.05 below), ΔMAUVE +0.06.
            vec![p(0.95, 0.70), p(0.96, 0.72)],
            // ΔC2ST −0.06, ΔMAUVE +0.05 / +0.03: +0.04 ± 0.01.
            vec![p(0.92, 0.69), p(0.93, 0.69)],
            // ΔC2ST −0.08, ΔMAUVE −0.04 / +0.04: 0 ± 0.04.
            vec![p(0.90, 0.60), p(0.91, 0.70)],
        ];
        let (t, d, kept, within) = pick(&base, &rounds, 0.05);
        assert_eq!(t, 1);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let want = [(-0.03, 0.06, 0.0), (-0.06, 0.04, 0.01), (-0.08, 0.0, 0.04)];
        for (x, &(c, m, mse)) in d.iter().zip(&want) {
            assert!(
                close(x.c2st, c) && close(x.mauve, m) && close(x.mauve_se, mse),
                "{x:?}"
            );
            assert!(close(x.c2st_se, 0.0), "{x:?}");
        }
        assert_eq!(
            (kept, within),
            (2, true),
            "round 1 has more MAUVE but is not 0.05 below"
        );
        // No round 0.1 below: the lowest C2ST (round 3).
        let (_, _, kept, within) = pick(&base, &rounds, 0.1);
        assert_eq!((kept, within), (3, false));
        // A margin every round meets: round 1, the highest MAUVE gain.
        assert_eq!(pick(&base, &rounds, 0.0).2, 1);
    }

    #[test]
    fn ties_go_to_the_earlier_round() {
        let base = vec![vec![p(0.99, 0.60)]];
        let rounds = vec![vec![p(0.90, 0.70)], vec![p(0.90, 0.70)]];
        assert_eq!(pick(&base, &rounds, 0.05).2, 1);
        assert_eq!(pick(&base, &rounds, 0.5).2, 1);
    }
}
