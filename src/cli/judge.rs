//! `judge`.

use super::{ConfigArgs, printed, report};
use anyhow::Result;
use nanoreward::checkpoint;
use nanoreward::judge::{self, JudgeConfig};
use std::path::Path;

pub fn judge(a: ConfigArgs) -> Result<()> {
    let mut cfg: JudgeConfig = a.load(&[])?;
    for g in cfg
        .generators
        .iter_mut()
        .chain(cfg.reward_models.iter_mut())
    {
        *g = checkpoint::resolve(Path::new(g)).display().to_string();
    }
    if printed(&a, &cfg)? {
        return Ok(());
    }
    cfg.validate()?;
    let r = judge::run(&cfg)?;
    report::judged(&r);
    println!("wrote {0}/judge.json and {0}/frontier.svg", cfg.out_dir);
    Ok(())
}
