//! `demo`.

use super::report;
use anyhow::Result;
use clap::Args;
use nanoreward::data::download;
use nanoreward::pipeline::demo::{self, DemoOptions};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct DemoArgs {
    /// Tiny Shakespeare input.txt (default: ../shared/data/tinyshakespeare/input.txt, else download).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Where everything goes.
    #[arg(long = "out-dir", alias = "out_dir", default_value = "out/demo")]
    out_dir: PathBuf,
    /// Training iterations of the quick-start model (2000 = nanoGPT's CPU quick start).
    #[arg(long = "max-iters", alias = "max_iters", default_value_t = 1000)]
    max_iters: usize,
    /// Blocks of held-out text per reward-data split (10 samples each).
    #[arg(long = "reward-blocks", alias = "reward_blocks", default_value_t = 400)]
    reward_blocks: usize,
    /// GRPO steps (8 prompts × 8 completions each).
    #[arg(long = "grpo-steps", alias = "grpo_steps", default_value_t = 60)]
    grpo_steps: usize,
    /// CPU threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Skip the judge's verdict at the end.
    #[arg(long = "no-judge", alias = "no_judge")]
    no_judge: bool,
}

pub fn demo(a: DemoArgs) -> Result<()> {
    let input = match a.input {
        Some(p) => p,
        None => {
            let shared = PathBuf::from("../shared/data/tinyshakespeare/input.txt");
            if shared.exists() {
                shared
            } else {
                download::fetch_dataset("tinyshakespeare", Path::new("data"))?
            }
        }
    };
    let o = DemoOptions {
        input,
        out_dir: a.out_dir,
        max_iters: a.max_iters,
        reward_blocks: a.reward_blocks,
        grpo_steps: a.grpo_steps,
        threads: a.threads,
        judge: !a.no_judge,
    };
    let r = demo::run(&o)?;
    report::demo(&r, &o.out_dir);
    Ok(())
}
