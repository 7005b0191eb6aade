//! Command-line front ends of `grpo` and `cycle`.

use crate::ConfigArgs;
use anyhow::Result;
use nanoreward::config;
use nanoreward::cycle::{self, CycleConfig};
use nanoreward::grpo::{self, GrpoConfig, GrpoOutcome};
use std::path::Path;

fn load<T: serde::Serialize + serde::de::DeserializeOwned + Default>(a: &ConfigArgs) -> Result<T> {
    let (file, overrides) = crate::split_config_args(a.config.clone(), &a.rest)?;
    Ok(config::load(file.as_deref(), &overrides, &[])?)
}

fn resolved(p: &str) -> String {
    crate::resolve_checkpoint(Path::new(p))
        .display()
        .to_string()
}

/// Prints what a GRPO run did: rewards, the val-loss guard and where the time went.
pub fn report_grpo(out: &GrpoOutcome) {
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
    }
    let [s, r, l, u] = out.phase_ms;
    println!(
        "  per step: sampling {s:.0} ms, reward {r:.0} ms, old/reference log-probs {l:.0} ms, update {u:.0} ms"
    );
    println!("  checkpoint {}", out.checkpoint.display());
}

pub fn grpo(a: ConfigArgs) -> Result<()> {
    let mut cfg: GrpoConfig = load(&a)?;
    if cfg.init_from != "resume" {
        cfg.init_from = resolved(&cfg.init_from);
    }
    cfg.reward_model = resolved(&cfg.reward_model);
    cfg.validate()?;
    if a.print_only() {
        println!("{}", toml::to_string(&cfg)?);
        return Ok(());
    }
    let out = grpo::run(&cfg, true)?;
    report_grpo(&out);
    println!(
        "metrics: {0}/metrics.jsonl, plot: {0}/grpo_curve.svg",
        cfg.out_dir
    );
    Ok(())
}

pub fn cycle(a: ConfigArgs) -> Result<()> {
    let mut cfg: CycleConfig = load(&a)?;
    cfg.base = resolved(&cfg.base);
    cfg.reward.validate()?;
    cfg.grpo.validate()?;
    if a.print_only() {
        println!("{}", toml::to_string(&cfg)?);
        return Ok(());
    }
    let rounds = cycle::run(&cfg)?;
    println!(
        "{} rounds done; summary in {}/cycle_summary.{{md,json,svg}}",
        rounds.len(),
        cfg.out_dir
    );
    Ok(())
}
