//! Early stopping of a cycle on a validation judge. The later rounds of a cycle keep lowering
//! the judge's C2ST AUROC while its MAUVE can fall back (BENCHMARKS.md, issue 14), so the last
//! round need not be the best policy. Here the base (at its temperatures) and every round's
//! policy are judged again under *validation* judge seeds: other windows, samples and detectors
//! than the cycle's own judgement, which then measures the kept round on judge samples the
//! choice never saw. The rule: against the base temperature with the best mean MAUVE, keep the
//! round with the highest mean MAUVE gain among the rounds whose mean C2ST AUROC is at least
//! `margin` below the base's (differences paired by judge seed); when no round is, the round
//! with the lowest C2ST. A cycle with `interpolate_round` offers its interpolated policy as one
//! more candidate, judged in its own directory (so a finished cycle's round judgements are kept).

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

/// A candidate's differences from the base over the validation judge seeds (mean and standard
/// error of the differences paired by judge seed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    pub c2st: f64,
    pub c2st_se: f64,
    pub mauve: f64,
    pub mauve_se: f64,
}

/// A round's differences from the base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundDelta {
    pub round: usize,
    #[serde(flatten)]
    pub delta: Delta,
}

/// The interpolated policy's differences from the base, with its label (e.g. "R1 + 0.5·(R3 − R1)").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixDelta {
    pub label: String,
    #[serde(flatten)]
    pub delta: Delta,
}

/// The interpolated policy, as `selected` names it in selection.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mix {
    Interpolated,
}

/// The kept candidate: a round (1-based; a number in selection.json) or the interpolated policy
/// (the string "interpolated").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Kept {
    Round(usize),
    Mix(Mix),
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kept::Round(r) => write!(f, "round {r}"),
            Kept::Mix(_) => write!(f, "the interpolated policy"),
        }
    }
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
    /// The interpolated policy, when the cycle offers it (`interpolate_round`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpolated: Option<MixDelta>,
    /// The kept candidate.
    pub selected: Kept,
    /// Whether the kept candidate's C2ST is at least `margin` below the base's (false: no
    /// candidate's was, and the one with the lowest C2ST was kept).
    pub within_margin: bool,
    /// The kept candidate's policy checkpoint.
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
        let rows = self
            .rounds
            .iter()
            .map(|d| (Kept::Round(d.round), d.round.to_string(), &d.delta))
            .chain(
                self.interpolated
                    .iter()
                    .map(|m| (Kept::Mix(Mix::Interpolated), m.label.clone(), &m.delta)),
            );
        for (who, name, d) in rows {
            let name = if who == self.selected {
                format!("**{name}**")
            } else {
                name
            };
            md.push_str(&format!(
                "| {name} | {:+.4} ± {:.4} | {:+.3} ± {:.3} |\n",
                d.c2st, d.c2st_se, d.mauve, d.mauve_se
            ));
        }
        let why = if self.within_margin {
            format!(
                "the highest MAUVE gain among the candidates at least {} below the base's C2ST",
                self.margin
            )
        } else {
            format!(
                "no candidate is {} below the base's C2ST; the lowest C2ST",
                self.margin
            )
        };
        md.push_str(&format!(
            "\nkept: {} ({why}): {}\n",
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

/// The rule on judgements `base[t][j]` (base temperature t, judge seed j) and
/// `candidates[c][j]` (the rounds in order, then any other candidate): the base temperature index
/// with the best mean MAUVE, every candidate's paired differences from it, the kept candidate's
/// index (ties go to the earlier one: fewer steps from the base) and whether it is within the
/// margin.
pub fn pick(
    base: &[Vec<Point>],
    candidates: &[Vec<Point>],
    margin: f64,
) -> (usize, Vec<Delta>, usize, bool) {
    let mean_mauve = |ps: &[Point]| ps.iter().map(|p| p.mauve).sum::<f64>() / ps.len() as f64;
    let t = (0..base.len())
        .max_by(|&a, &b| {
            mean_mauve(&base[a])
                .total_cmp(&mean_mauve(&base[b]))
                .then(b.cmp(&a))
        })
        .unwrap_or(0);
    let deltas: Vec<Delta> = candidates
        .iter()
        .map(|ps| {
            let pairs = ps.iter().zip(&base[t]);
            let dc: Vec<f64> = pairs.clone().map(|(p, b)| p.c2st - b.c2st).collect();
            let dm: Vec<f64> = pairs.map(|(p, b)| p.mauve - b.mauve).collect();
            let ((c2st, c2st_se), (mauve, mauve_se)) = (mean_se(&dc), mean_se(&dm));
            Delta {
                c2st,
                c2st_se,
                mauve,
                mauve_se,
            }
        })
        .collect();
    let indexed = || deltas.iter().enumerate();
    let within = indexed()
        .filter(|(_, d)| d.c2st <= -margin)
        .max_by(|(a, x), (b, y)| x.mauve.total_cmp(&y.mauve).then(b.cmp(a)));
    let (kept, within_margin) = match within {
        Some((i, _)) => (i, true),
        None => {
            let lowest = indexed()
                .min_by(|(a, x), (b, y)| x.c2st.total_cmp(&y.c2st).then(a.cmp(b)))
                .map_or(0, |(i, _)| i);
            (lowest, false)
        }
    };
    (t, deltas, kept, within_margin)
}

/// What the selection judges: validation judge seeds, the base at its temperatures, every
/// round's policy and the interpolated policy (when there is one) at the policy temperature,
/// with the cycle's judge settings, into `out/select/{seed}/{base,rounds,interpolated}` (reused
/// when done) and `out/selection.json`.
pub struct Plan<'a> {
    pub seeds: &'a [u64],
    pub temperatures: &'a [f64],
    pub margin: f64,
    pub base: &'a Path,
    pub policies: &'a [PathBuf],
    /// The interpolated policy's label and checkpoint.
    pub interpolated: Option<(&'a str, &'a Path)>,
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

/// Judgements by generator (or base temperature), each over the judge seeds.
type BySeed = Vec<Vec<Point>>;

/// Judges (or reads) every validation judgement: the base's points by temperature, then every
/// candidate's (the rounds, then the interpolated policy), each over the judge seeds.
fn judge_all(plan: &Plan, policies: &[String]) -> Result<(BySeed, BySeed)> {
    let dir = plan.out.join("select");
    let base = [plan.base.display().to_string()];
    let mix: Vec<String> = plan
        .interpolated
        .iter()
        .map(|(_, p)| p.display().to_string())
        .collect();
    let (mut by_t, mut by_c) = (
        vec![Vec::new(); plan.temperatures.len()],
        vec![Vec::new(); policies.len() + mix.len()],
    );
    let at = [plan.policy_temperature];
    for &seed in plan.seeds {
        println!(
            "== selection: the base and every candidate policy under validation judge seed {seed}"
        );
        let jc = JudgeConfig {
            seed,
            ..plan.judge.clone()
        };
        let d = dir.join(seed.to_string());
        let base_points = judged(&d.join("base"), &base, plan.temperatures, &jc)?;
        let mut points = judged(&d.join("rounds"), policies, &at, &jc)?;
        if !mix.is_empty() {
            points.extend(judged(&d.join("interpolated"), &mix, &at, &jc)?);
        }
        for (t, p) in base_points.into_iter().enumerate() {
            by_t[t].push(p);
        }
        for (c, p) in points.into_iter().enumerate() {
            by_c[c].push(p);
        }
    }
    Ok((by_t, by_c))
}

/// Judges (or reads) every validation judgement, applies the rule and writes the selection
/// (the cycle prints its table with the summary).
pub fn run(plan: &Plan) -> Result<Selection> {
    let policies: Vec<String> = plan
        .policies
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let (by_t, by_c) = judge_all(plan, &policies)?;
    let (t, mut deltas, kept, within_margin) = pick(&by_t, &by_c, plan.margin);
    let interpolated = plan.interpolated.zip(deltas.get(policies.len()).copied());
    deltas.truncate(policies.len());
    let (selected, policy) = match interpolated {
        Some(((_, path), _)) if kept == policies.len() => {
            (Kept::Mix(Mix::Interpolated), path.display().to_string())
        }
        _ => (Kept::Round(kept + 1), policies[kept].clone()),
    };
    let s = Selection {
        seeds: plan.seeds.to_vec(),
        base_temperature: plan.temperatures[t],
        margin: plan.margin,
        rounds: deltas
            .into_iter()
            .enumerate()
            .map(|(r, delta)| RoundDelta {
                round: r + 1,
                delta,
            })
            .collect(),
        interpolated: interpolated.map(|((label, _), delta)| MixDelta {
            label: label.to_string(),
            delta,
        }),
        selected,
        within_margin,
        policy,
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
            (1, true),
            "round 1 has more MAUVE but is not 0.05 below: round 2 (index 1)"
        );
        // No round 0.1 below: the lowest C2ST (round 3).
        let (_, _, kept, within) = pick(&base, &rounds, 0.1);
        assert_eq!((kept, within), (2, false));
        // A margin every round meets: round 1, the highest MAUVE gain.
        assert_eq!(pick(&base, &rounds, 0.0).2, 0);
    }

    #[test]
    fn ties_go_to_the_earlier_round() {
        let base = vec![vec![p(0.99, 0.60)]];
        let rounds = vec![vec![p(0.90, 0.70)], vec![p(0.90, 0.70)]];
        assert_eq!(pick(&base, &rounds, 0.05).2, 0);
        assert_eq!(pick(&base, &rounds, 0.5).2, 0);
    }

    /// selection.json names a kept round by its number and the interpolated policy by the
    /// string "interpolated"; the table bolds the kept row and says which it is.
    #[test]
    fn the_kept_candidate_in_json_and_in_the_table() {
        let d = |c2st, mauve| Delta {
            c2st,
            c2st_se: 0.001,
            mauve,
            mauve_se: 0.01,
        };
        let mut s = Selection {
            seeds: vec![101, 102],
            base_temperature: 1.0,
            margin: 0.05,
            rounds: vec![RoundDelta {
                round: 1,
                delta: d(-0.06, 0.02),
            }],
            interpolated: Some(MixDelta {
                label: "R1 + 0.5·(R3 − R1)".into(),
                delta: d(-0.07, 0.05),
            }),
            selected: Kept::Mix(Mix::Interpolated),
            within_margin: true,
            policy: "out/interpolated/ckpt".into(),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["selected"], "interpolated");
        assert_eq!(v["rounds"][0]["round"], 1);
        assert_eq!(v["rounds"][0]["mauve"], 0.02, "the deltas stay flat: {v}");
        assert_eq!(v["interpolated"]["label"], "R1 + 0.5·(R3 − R1)");
        assert_eq!(serde_json::from_value::<Selection>(v).unwrap(), s);
        let md = s.table();
        assert!(md.contains("| **R1 + 0.5·(R3 − R1)** | -0.0700"), "{md}");
        assert!(md.contains("| 1 | -0.0600"), "{md}");
        assert!(md.contains("kept: the interpolated policy ("), "{md}");
        s.selected = Kept::Round(1);
        s.interpolated = None;
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["selected"], 1);
        assert!(v.get("interpolated").is_none(), "{v}");
        assert!(s.table().contains("kept: round 1 ("));
        // A selection.json written before the interpolated candidate existed still reads.
        let old = serde_json::json!({"seeds": [101], "base_temperature": 1.0, "margin": 0.05,
            "rounds": [{"round": 1, "c2st": -0.06, "c2st_se": 0.0, "mauve": 0.02, "mauve_se": 0.0}],
            "selected": 1, "within_margin": true, "policy": "p"});
        let read: Selection = serde_json::from_value(old).unwrap();
        assert_eq!((read.selected, read.interpolated), (Kept::Round(1), None));
    }
}
