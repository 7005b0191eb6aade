//! `nanoreward report OUT_DIR`: one self-contained HTML page (inline SVG, no script, no
//! external file) for the directory of a `train`, `train-reward`, `grpo` or `cycle` run: its
//! curves (one panel per quantity), its evaluation tables (eval.json, judge.json, the cycle's
//! summary), and decoded samples — GRPO's completions at the first and the last logged step, and
//! for a token-head reward model, validation windows shaded by per-token P(natural) with the
//! true boundary marked.

use crate::judge::JudgeReport;
use crate::metrics::{self, Series};
use crate::reward::{EvalReport, RewardDataset, RewardModel};
use crate::util::fsutil;
use crate::{Error, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// HTML-escapes text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The curves of a metrics.jsonl, one panel per quantity present (at most `max` panels).
fn curves(log: &Path, step_key: &str, title: &str) -> Result<Option<String>> {
    if !log.exists() {
        return Ok(None);
    }
    let recs = metrics::read_jsonl(log)?;
    let mut keys: Vec<String> = Vec::new();
    for r in &recs {
        for (k, v) in r.as_object().into_iter().flatten() {
            if k != step_key && v.is_number() && !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let panels: Vec<(&str, Vec<Series>)> = keys
        .iter()
        .map(|k| {
            let points = recs
                .iter()
                .filter_map(|r| Some((r.get(step_key)?.as_f64()?, r.get(k)?.as_f64()?)))
                .collect();
            (
                k.as_str(),
                vec![Series {
                    name: k.clone(),
                    points,
                }],
            )
        })
        .collect();
    if panels.is_empty() {
        return Ok(None);
    }
    Ok(Some(metrics::panels_svg(title, step_key, &panels)?))
}

/// A table of name/value rows.
fn table(rows: &[(String, String)]) -> String {
    let mut h = String::from("<table>");
    for (k, v) in rows {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    h + "</table>"
}

fn eval_section(ev: &EvalReport) -> String {
    let mut rows = vec![
        (
            "MAE of P(natural) vs K/N".into(),
            format!("{:.4} (always 0.5: {:.4})", ev.mae, ev.mae_baseline),
        ),
        (
            "boundary MAE (tokens)".into(),
            format!(
                "{:.2} (midpoint: {:.2})",
                ev.boundary_mae_tokens, ev.boundary_mae_tokens_baseline
            ),
        ),
        (
            "AUROC natural vs generated".into(),
            format!(
                "{:.4} [{:.3}-{:.3}]",
                ev.auroc, ev.auroc_ci95[0], ev.auroc_ci95[1]
            ),
        ),
    ];
    for b in &ev.baselines {
        rows.push((
            format!("baseline: {} ({})", b.name, b.direction),
            format!("{:.4}", b.auroc),
        ));
    }
    for b in &ev.boundary_baselines {
        rows.push((
            format!("boundary baseline: {}", b.name),
            format!("{:.2}", b.boundary_mae_tokens),
        ));
    }
    for t in &ev.temperature_sweep {
        rows.push((
            format!("mean P(natural), samples at T={}", t.temperature),
            format!("{:.3}", t.mean_p_natural),
        ));
    }
    rows.push((
        "mean P(natural), natural text".into(),
        format!("{:.3}", ev.mean_p_natural_text),
    ));
    format!("<h2>Evaluation (eval.json)</h2>{}", table(&rows))
}

fn judge_section(j: &JudgeReport) -> String {
    let mut h = String::from(
        "<h2>The judge (judge.json)</h2><table><tr><th>generator</th><th>T</th><th>C2ST AUROC [95%]</th><th>MAUVE [95%]</th><th>word validity</th><th>distinct-3</th><th>repetition</th><th>val loss</th></tr>",
    );
    for r in &j.rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.3} [{:.3}-{:.3}]</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.4}</td></tr>",
            esc(&r.generator),
            r.temperature,
            r.c2st.auroc,
            r.c2st.ci95[0],
            r.c2st.ci95[1],
            r.mauve_text(),
            r.word_validity,
            r.distinct_3,
            r.repetition,
            r.val_loss
        );
    }
    h + "</table>"
}

/// GRPO's completions at the first and the last step logged in completions.jsonl.
fn completions_section(path: &Path) -> Result<Option<String>> {
    if !path.exists() {
        return Ok(None);
    }
    let rows = metrics::read_jsonl(path)?;
    let steps: Vec<u64> = rows.iter().filter_map(|r| r["step"].as_u64()).collect();
    let (Some(&first), Some(&last)) = (steps.iter().min(), steps.iter().max()) else {
        return Ok(None);
    };
    let mut h = String::from("<h2>Completions before and after (completions.jsonl)</h2>");
    for (label, step) in [("first logged step", first), ("last logged step", last)] {
        let _ = write!(
            h,
            "<h3>{label}: {step}</h3><table><tr><th>prompt</th><th>completion</th><th>reward</th><th>advantage</th></tr>"
        );
        for r in rows
            .iter()
            .filter(|r| r["step"].as_u64() == Some(step))
            .take(8)
        {
            let _ = write!(
                h,
                "<tr><td class=t>{}</td><td class=t>{}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                esc(r["prompt"].as_str().unwrap_or("")),
                esc(r["completion"].as_str().unwrap_or("")),
                r["reward"].as_f64().unwrap_or(f64::NAN),
                r["advantage"].as_f64().unwrap_or(f64::NAN)
            );
        }
        h.push_str("</table>");
    }
    Ok(Some(h))
}

/// Validation windows of a token-head reward model, each token shaded by its P(natural)
/// (green natural, red generated), the true boundary marked ‖.
fn shaded_samples(dir: &Path) -> Result<Option<String>> {
    let ckpt = dir.join("ckpt");
    let state = crate::checkpoint::dir::read_state(&ckpt)?;
    let Some(cfg) = state.config_as::<crate::reward::RewardTrainConfig>() else {
        return Ok(None);
    };
    if cfg.loss.head() != crate::model::RewardHeadKind::Token {
        return Ok(None);
    }
    let rm = RewardModel::load(&ckpt, &crate::util::device::select("cpu")?)?;
    let val = RewardDataset::open(Path::new(&cfg.data), "val", None)?;
    let n = val.meta.block_size;
    let picks: Vec<usize> = (0..8).map(|i| i * val.len() / 8).collect();
    let seqs: Vec<Vec<u32>> = picks.iter().map(|&i| val.tokens(i)).collect();
    let p = rm.score_tokens(&seqs)?;
    let mut h = String::from(
        "<h2>Per-token P(natural) on validation windows</h2><p>green: natural, red: generated; ‖ marks the true boundary K.</p>",
    );
    for ((&i, s), tp) in picks.iter().zip(&seqs).zip(&p) {
        let k = (val.label(i)[0] as f64 * n as f64).round() as usize;
        h.push_str("<p class=t>");
        for (t, (&id, &q)) in s.iter().zip(tp).enumerate() {
            if t == k {
                h.push_str("<b>‖</b>");
            }
            let (r, g) = ((255.0 * (1.0 - q)) as u8, (255.0 * q) as u8);
            let _ = write!(
                h,
                "<span style=\"background: rgba({r},{g},60,0.35)\" title=\"{q:.2}\">{}</span>",
                esc(&rm.tokenizer.decode(&[id]).replace('\n', "⏎"))
            );
        }
        h.push_str("</p>");
    }
    Ok(Some(h))
}

/// The cycle's summary table (cycle_summary.md, as HTML).
fn cycle_section(dir: &Path) -> Result<Option<String>> {
    let md = dir.join("cycle_summary.md");
    if !md.exists() {
        return Ok(None);
    }
    let mut h = String::from("<h2>Rounds (cycle_summary.md)</h2><table>");
    for (i, line) in fsutil::read_text(&md)?.lines().enumerate() {
        if i == 1 || !line.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
        let tag = if i == 0 { "th" } else { "td" };
        h.push_str("<tr>");
        for c in cells {
            let _ = write!(h, "<{tag}>{}</{tag}>", esc(c.trim()));
        }
        h.push_str("</tr>");
    }
    Ok(Some(h + "</table>"))
}

/// Builds the page for `dir`; returns its HTML.
pub fn build(dir: &Path) -> Result<String> {
    if !dir.is_dir() {
        return Err(Error::Other(format!(
            "{} is not a run directory (give the out_dir of train, train-reward, grpo or cycle)",
            dir.display()
        )));
    }
    let mut body = Vec::new();
    let log = dir.join("metrics.jsonl");
    for key in ["iter", "epoch", "step"] {
        let has = log.exists()
            && metrics::read_jsonl(&log)?
                .iter()
                .any(|r| r.get(key).is_some());
        if has && let Some(svg) = curves(&log, key, "curves (metrics.jsonl)")? {
            body.push(format!("<h2>Curves</h2><div class=plot>{svg}</div>"));
            break;
        }
    }
    if dir.join("eval.json").exists() {
        body.push(eval_section(&EvalReport::read(&dir.join("eval.json"))?));
    }
    match shaded_samples(dir) {
        Ok(Some(h)) => body.push(h),
        Ok(None) => {}
        Err(e) => body.push(format!(
            "<p>(no per-token view: {})</p>",
            esc(&e.to_string())
        )),
    }
    if let Some(h) = cycle_section(dir)? {
        body.push(h);
    }
    for j in [dir.join("judge.json"), dir.join("judge_base/judge.json")] {
        if j.exists() {
            body.push(judge_section(&JudgeReport::read(&j)?));
        }
    }
    if let Some(h) = completions_section(&dir.join("completions.jsonl"))? {
        body.push(h);
    }
    if body.is_empty() {
        return Err(Error::Other(format!(
            "{} holds nothing to report (no metrics.jsonl, eval.json, judge.json or cycle summary)",
            dir.display()
        )));
    }
    Ok(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>nanoreward: {title}</title><style>\
body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}\
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}\
.t{{font-family:monospace;white-space:pre-wrap}}.plot svg{{max-width:100%;height:auto}}\
</style></head><body><h1>nanoreward run: {title}</h1>{body}</body></html>",
        title = esc(&dir.display().to_string()),
        body = body.join("\n")
    ))
}

/// Writes `dir/report.html`; returns its path.
pub fn write(dir: &Path) -> Result<PathBuf> {
    let html = build(dir)?;
    let out = dir.join("report.html");
    fsutil::write_bytes_atomic(&out, html.as_bytes())?;
    Ok(out)
}
