//! What the commands print about their outcomes, in one place.

use anyhow::Result;
use nanoreward::bench::{BenchResult, RewardBenchResult};
use nanoreward::data::PrepareReport;
use nanoreward::grpo::GrpoOutcome;
use nanoreward::judge::JudgeReport;
use nanoreward::metrics;
use nanoreward::pipeline::demo::DemoReport;
use nanoreward::reward::dataset::{Inspection, Metadata};
use nanoreward::reward::prepare::PrepSummary;
use nanoreward::reward::{EvalReport, RewardTrainOutcome, changepoint};
use nanoreward::tokenizer::Tokenizer;
use nanoreward::train::TrainOutcome;
use std::path::Path;

pub fn prepared(r: &PrepareReport, out: &Path) {
    println!("length of dataset in characters: {}", r.chars);
    println!("vocab size: {} ({})", r.vocab_size, r.tokenizer.method());
    println!("train has {} tokens", r.train_tokens);
    println!("val has {} tokens", r.val_tokens);
    if r.reward_tokens > 0 {
        println!("reward has {} tokens (reward.bin)", r.reward_tokens);
    }
    println!("wrote {}", out.display());
}

pub fn trained(out: &TrainOutcome) {
    println!(
        "done: {} iterations in {:.1} s, best val loss {:.4}; checkpoint {}",
        out.iter,
        out.seconds,
        out.best_val_loss,
        out.checkpoint.display()
    );
}

pub fn bench(r: &BenchResult, iters: usize, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    let sampling = r
        .sample_new_tokens_per_s
        .zip(r.sample_in_block_new_tokens_per_s)
        .map(|(s, b)| {
            format!(
                ", sampling {s:.0} new tok/s (16 → +64, past block_size; {b:.0} for → +48 within it)"
            )
        })
        .unwrap_or_default();
    println!(
        "config {}: train step {:.1} ms (median of {iters}; fwd+bwd {:.1} + clip+AdamW {:.1}), forward {:.1} ms, {:.0} train tok/s{sampling}, peak RSS {:.0} MiB after training ({:.0} MiB at the end), {} threads, {}",
        r.config,
        r.train_step_ms_median,
        r.step_forward_backward_ms,
        r.step_optimizer_ms,
        r.forward_ms_median,
        r.train_tokens_per_s,
        r.peak_rss_train_mib,
        r.peak_rss_mib,
        r.threads,
        r.dtype.as_str()
    );
    Ok(())
}

pub fn bench_reward_data(r: &RewardBenchResult, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    println!(
        "reward data, config {} (block {}): {:.1} samples/s, {:.0} generated tok/s ({} samples); seed loop {:.2} samples/s ({} samples): {:.1}x faster; peak RSS {:.0} MiB",
        r.config,
        r.block_size,
        r.samples_per_s,
        r.generated_tokens_per_s,
        r.samples,
        r.baseline_samples_per_s,
        r.baseline_samples,
        r.speedup,
        r.peak_rss_mib
    );
    Ok(())
}

/// The summary of a `prepare-reward-data` run into `out`.
pub fn reward_data(s: &PrepSummary, out: &Path) {
    for m in &s.metas {
        println!(
            "{}: {} blocks × {} = {} samples; saved {}_x.bin ({}, {}) uint16, {}_y.bin ({}, 2) float32",
            m.split,
            m.num_blocks,
            m.samples_per_chunk,
            m.num_samples,
            m.split,
            m.num_samples,
            m.block_size,
            m.split,
            m.num_samples
        );
    }
    let total: usize = s.metas.iter().map(|m| m.num_samples).sum();
    println!(
        "Summary: {total} samples in {:.1} s ({:.1} samples/s, {:.0} generated tokens/s, peak RSS {:.0} MiB) in {}",
        s.seconds,
        total as f64 / s.seconds,
        s.generated_tokens as f64 / s.seconds,
        metrics::peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0,
        out.display()
    );
}

pub fn merged(metas: &[Metadata], out: &Path) {
    for m in metas {
        println!(
            "{}: {} samples from {} blocks",
            m.split, m.num_samples, m.num_blocks
        );
    }
    println!("merged into {}", out.display());
}

/// `inspect-reward-data`'s text report of one split.
pub fn inspection(split: &str, r: &Inspection) {
    let s = &r.stats;
    println!("== {split}");
    println!(
        "  samples: {}, block size: {}, tokenization: {} (vocab {})",
        s.num_samples, s.block_size, s.tokenization_method, s.vocab_size
    );
    println!(
        "  Y min {:.4}/{:.4}  max {:.4}/{:.4}  mean {:.4}/{:.4}  std {:.4}/{:.4}",
        s.y.min[0],
        s.y.min[1],
        s.y.max[0],
        s.y.max[1],
        s.y.mean[0],
        s.y.mean[1],
        s.y.std[0],
        s.y.std[1]
    );
    println!(
        "  probability sums: min {:.7}, max {:.7}, mean {:.7}",
        s.prob_sum_min, s.prob_sum_max, s.prob_sum_mean
    );
    let bt = &r.batch_test;
    println!(
        "  batch test: {} batches of 4; x {} y {}; first label {}",
        bt.num_batches,
        compact(&bt.x_shape),
        compact(&bt.y_shape),
        compact(&bt.first_label)
    );
    println!(
        "  K/N histogram (10 bins): {}",
        compact(&r.k_over_n_histogram)
    );
    for e in &r.examples {
        println!("  example: {}", e.replace('\n', "⏎"));
    }
}

/// Compact JSON of a value, as the text reports show arrays.
fn compact<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// What training a reward model did (from `base`).
pub fn reward_trained(out: &RewardTrainOutcome, base: &str) {
    let r = &out.load_report;
    let list = |v: &[String], empty: &str| {
        if v.is_empty() {
            empty.to_string()
        } else {
            v.join(", ")
        }
    };
    println!(
        "loaded {} trunk tensors from {base}; dropped {}; initialised {}",
        r.loaded.len(),
        list(&r.unused, "nothing"),
        list(&r.initialised, "nothing (reward checkpoint)")
    );
    println!(
        "trained {} epochs in {:.1} s; best val loss {:.5}; checkpoint {}",
        out.epochs_run,
        out.seconds,
        out.best_val_loss,
        out.checkpoint.display()
    );
}

/// The evaluation table of a reward model (files written into `out`).
pub fn evaluation(j: &EvalReport, out: &Path) {
    println!(
        "evaluation on {} val samples ({} windows per class for AUROC):",
        j.num_val_samples, j.auroc_windows_per_class
    );
    println!("  {:<34} {:>10} {:>10}", "metric", "model", "baseline");
    let row = |name: &str, a: f64, b: f64, prec: usize| {
        println!("  {name:<34} {a:>10.prec$} {b:>10.prec$}");
    };
    row("MAE of P(natural) vs K/N", j.mae, j.mae_baseline, 4);
    row(
        "boundary MAE (tokens)",
        j.boundary_mae_tokens,
        j.boundary_mae_tokens_baseline,
        2,
    );
    for b in &j.boundary_baselines {
        println!(
            "  {:<34} {:>10} {:>10.2}",
            format!("  vs {}", b.name),
            "",
            b.boundary_mae_tokens
        );
    }
    row(
        "AUROC natural vs generated",
        j.auroc,
        j.auroc_loglik_baseline,
        4,
    );
    println!(
        "  {:<34} {:>10}",
        "  95% bootstrap interval",
        format!("{:.3}-{:.3}", j.auroc_ci95[0], j.auroc_ci95[1])
    );
    for b in &j.baselines {
        println!(
            "  {:<34} {:>10} {:>10.4}",
            format!("  vs {} ({})", b.name, b.direction),
            "",
            b.auroc
        );
    }
    println!("  (baselines: always 0.5; the midpoint; the base model's zero-shot statistics, each");
    println!(
        "   oriented in its favour; the share of whole words seen in the reward training text)"
    );
    let sweep: Vec<String> = j
        .temperature_sweep
        .iter()
        .map(|t| format!("T={} {:.3}", t.temperature, t.mean_p_natural))
        .collect();
    println!(
        "  mean P(natural): natural text {:.3}; generated {}",
        j.mean_p_natural_text,
        sweep.join(", ")
    );
    let buckets: Vec<String> = j
        .by_k
        .iter()
        .map(|b| format!("{} {:.3}/{:.1}", b.k_over_n, b.mae, b.boundary_mae_tokens))
        .collect();
    println!("  MAE/boundary by K/N: {}", buckets.join(", "));
    println!(
        "wrote {}/eval.json, calibration.svg, predictions_hist.svg",
        out.display()
    );
}

/// Per window of a text: every token's P(natural), and the posterior over the boundary.
pub struct TokenScores {
    pub p: Vec<Vec<f32>>,
    pub posteriors: Vec<Vec<f64>>,
}

/// The scores of one text's windows (`start`, tokens); with `per_token`, every token's
/// P(natural) and the most likely boundary of each window.
pub fn scored(
    name: &str,
    windows: &[(usize, Vec<u32>)],
    p: &[f32],
    per_token: Option<&TokenScores>,
    tok: &Tokenizer,
    json: bool,
) {
    let mean = p.iter().map(|&v| v as f64).sum::<f64>() / p.len() as f64;
    if json {
        let wins: Vec<serde_json::Value> = windows
            .iter()
            .enumerate()
            .map(|(i, (s, t))| {
                let mut w = serde_json::json!({"start": s, "tokens": t.len(), "p_natural": p[i]});
                if let Some(TokenScores { p: tp, posteriors: post }) = per_token {
                    let toks: Vec<serde_json::Value> = t
                        .iter()
                        .zip(&tp[i])
                        .map(|(&id, &q)| serde_json::json!({"text": tok.decode(&[id]), "p_natural": q}))
                        .collect();
                    w["per_token"] = serde_json::json!(toks);
                    w["boundary"] = serde_json::json!(changepoint::mode(&post[i]));
                }
                w
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"source": name, "mean_p_natural": mean, "windows": wins})
        );
        return;
    }
    println!(
        "{name}: P(natural) = {mean:.4} (mean of {} windows)",
        p.len()
    );
    let Some(TokenScores {
        p: tp,
        posteriors: post,
    }) = per_token
    else {
        return;
    };
    for (i, (start, t)) in windows.iter().enumerate() {
        let k = changepoint::mode(&post[i]);
        println!(
            "  window at token {start}: P(natural) {:.3}, most likely boundary after {k} of {} tokens",
            p[i],
            t.len()
        );
        let coloured: String = t
            .iter()
            .zip(&tp[i])
            .map(|(&id, &q)| {
                let colour = if q > 0.66 {
                    42
                } else if q > 0.33 {
                    43
                } else {
                    41
                };
                let text = tok.decode(&[id]).replace('\n', "⏎");
                format!("\x1b[30;{colour}m{text}\x1b[0m")
            })
            .collect();
        println!("  {coloured}");
    }
    println!("  (green: P(natural) > 0.66, yellow: 0.33-0.66, red: < 0.33)");
}

/// What a GRPO run did: rewards, the val-loss guard and where the time went.
pub fn grpo(out: &GrpoOutcome) {
    println!(
        "GRPO: {} steps in {:.1} s; training reward (mean of first/last 10 steps) {:.4} → {:.4}",
        out.steps, out.seconds, out.reward_start, out.reward_end
    );
    if let (Some(a), Some(b)) = (out.evals.first(), out.evals.last()) {
        println!(
            "  eval reward P(natural) on val prompts: policy {:.4} → {:.4} (reference {:.4}, natural text {:.4})",
            a.reward_policy, b.reward_policy, b.reward_ref, b.reward_natural
        );
        println!(
            "  policy val loss on natural text: {:.4} → {:.4} ({:+.4})",
            a.val_loss,
            b.val_loss,
            b.val_loss - a.val_loss
        );
        if let Some(at) = out.rolled_back_from {
            println!(
                "  the val-loss bound was crossed at step {at}: the checkpoint is the step-{} policy above",
                b.step
            );
        }
    }
    let [s, r, l, u] = out.phase_ms;
    println!(
        "  per step: sampling {s:.0} ms, reward {r:.0} ms, old/reference log-probs {l:.0} ms, update {u:.0} ms"
    );
    println!("  checkpoint {}", out.checkpoint.display());
}

/// The judge's table: one row per generator and temperature.
pub fn judged(r: &JudgeReport) {
    println!(
        "judged on {} natural and {} generated windows of {} tokens per half (trunk {}):",
        r.windows, r.windows, r.window_len, r.trunk
    );
    println!(
        "  {:<28} {:>5} {:>16} {:>16} {:>6} {:>6} {:>6} {:>6} {:>7} {:>8}",
        "generator",
        "T",
        "C2ST AUROC [95%]",
        "MAUVE [95%]",
        "words",
        "dist3",
        "rep",
        "JSD",
        "val",
        "RM AUROC"
    );
    for row in &r.rows {
        let g = &row.generator;
        let name = if g.len() > 28 { &g[g.len() - 28..] } else { g };
        let rm: Vec<String> = row
            .reward_model_auroc
            .iter()
            .map(|a| format!("{a:.3}"))
            .collect();
        println!(
            "  {name:<28} {:>5.2} {:>6.3} [{:.2}-{:.2}] {:>16} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>7.4} {:>8}",
            row.temperature,
            row.c2st.auroc,
            row.c2st.ci95[0],
            row.c2st.ci95[1],
            row.mauve_text(),
            row.word_validity,
            row.distinct_3,
            row.repetition,
            row.trigram_jsd,
            row.val_loss,
            rm.join(",")
        );
        if let Some(c) = &row.best_of_calibration {
            println!(
                "    best-of pick calibrated: slope {:.3} on logit P (τ = {:.3}), {} natural and {} generated windows",
                c.slope,
                c.temperature(),
                c.natural,
                c.generated
            );
        }
    }
    println!(
        "  natural text: words {:.3}, dist3 {:.3}, rep {:.3}  (C2ST AUROC 0.5 and MAUVE 1 = indistinguishable)",
        r.natural_word_validity, r.natural_distinct_3, r.natural_repetition
    );
    if let Some(m) = &r.natural_mauve {
        println!(
            "  natural text in a generator's place (MAUVE's reach on this judge): MAUVE {}",
            m.text()
        );
    }
}

/// The demo's closing report (after its GRPO run's own report).
pub fn demo(r: &DemoReport, out: &Path) {
    grpo(&r.grpo);
    println!("== report");
    for (stage, secs, what) in &r.stages {
        println!("  {stage:<17} {secs:>7.1} s  {what}");
    }
    println!("-- base model sample:\n{}", r.base_sample);
    println!("-- GRPO policy sample:\n{}", r.policy_sample);
    println!(
        "artefacts: {0}/base (generator), {0}/reward (reward model, eval.json, calibration.svg), {0}/grpo (policy, metrics.jsonl, grpo_curve.svg)",
        out.display()
    );
}
