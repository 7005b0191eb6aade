//! `grpo` and `cycle`.

use super::{ConfigArgs, printed, report};
use anyhow::Result;
use nanoreward::checkpoint;
use nanoreward::grpo::{self, GrpoConfig};
use nanoreward::pipeline::cycle::{self, CycleConfig};
use std::path::Path;

fn resolved(p: &str) -> String {
    checkpoint::resolve(Path::new(p)).display().to_string()
}

pub fn grpo(a: ConfigArgs) -> Result<()> {
    let mut cfg: GrpoConfig = a.load(&[])?;
    if cfg.init_from != "resume" {
        cfg.init_from = resolved(&cfg.init_from);
    }
    cfg.reward_model = resolved(&cfg.reward_model);
    if !cfg.teacher.is_empty() {
        cfg.teacher = resolved(&cfg.teacher);
    }
    cfg.validate()?;
    if printed(&a, &cfg)? {
        return Ok(());
    }
    let out = grpo::run(&cfg, true)?;
    report::grpo(&out);
    println!(
        "metrics: {0}/metrics.jsonl, plot: {0}/grpo_curve.svg",
        cfg.out_dir
    );
    Ok(())
}

pub fn cycle(a: ConfigArgs) -> Result<()> {
    let mut cfg: CycleConfig = a.load(&[])?;
    cfg.base = resolved(&cfg.base);
    cfg.reward.validate()?;
    cfg.grpo.validate()?;
    if printed(&a, &cfg)? {
        return Ok(());
    }
    let rounds = cycle::run(&cfg)?;
    println!(
        "{} rounds done; summary in {}/cycle_summary.{{md,json,svg}}",
        rounds.len(),
        cfg.out_dir
    );
    if !cfg.judge.select_seeds.is_empty() {
        println!(
            "the round kept on the validation judge seeds: {}/selection.json",
            cfg.out_dir
        );
    }
    Ok(())
}
