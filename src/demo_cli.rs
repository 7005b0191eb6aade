//! `nanoreward demo`: the whole pipeline on small settings — prepare → train → reward data →
//! reward model → GRPO — with a short report at the end.

use anyhow::{Context, Result};
use clap::Args;
use nanoreward::grpo::{self, GrpoConfig};
use nanoreward::reward_dataset::RewardDataset;
use nanoreward::reward_model::{self, RewardModel, RewardTrainConfig};
use nanoreward::reward_prepare::{self, RewardPrepOptions};
use nanoreward::{checkpoint, config, data, device, reward_eval, sampling, train};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
}

fn sample_text(ckpt: &Path, n: usize) -> Result<String> {
    let dev = device::select("auto")?;
    let model = checkpoint::load_model(ckpt, &dev)?;
    let tok = checkpoint::load_tokenizer(ckpt)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1337);
    let opts = sampling::SampleOptions {
        temperature: 0.8,
        top_k: Some(200),
    };
    let prompt = tok.encode("\n")?;
    let s = sampling::generate(&model, &[prompt], n, &opts, &mut rng, 1)?;
    Ok(tok.decode(&s[0]))
}

pub fn demo(a: DemoArgs) -> Result<()> {
    let input = match a.input {
        Some(p) => p,
        None => {
            let shared = PathBuf::from("../shared/data/tinyshakespeare/input.txt");
            if shared.exists() {
                shared
            } else {
                nanoreward::download::fetch_dataset("tinyshakespeare", Path::new("data"))?
            }
        }
    };
    let out = &a.out_dir;
    let mut report: Vec<(&str, f64, String)> = Vec::new();

    let t = Instant::now();
    let data_dir = out.join("data");
    println!(
        "== 1/5 prepare {} -> {}",
        input.display(),
        data_dir.display()
    );
    let r = data::prepare(&input, &data_dir, data::TokenizationKind::Char, 0.9)?;
    let (ha, hb, _, _) = data::heldout_split(&data_dir.join("val.bin"), &data_dir)?;
    report.push((
        "prepare",
        t.elapsed().as_secs_f64(),
        format!(
            "vocab {}, train {} / val {} tokens",
            r.vocab_size, r.train_tokens, r.val_tokens
        ),
    ));

    let t = Instant::now();
    let s = |v: &dyn ToString| v.to_string();
    let overrides = vec![
        (s(&"data_dir"), data_dir.display().to_string()),
        (s(&"out_dir"), out.join("base").display().to_string()),
        (s(&"max_iters"), s(&a.max_iters)),
        (s(&"lr_decay_iters"), s(&a.max_iters)),
        (s(&"eval_interval"), s(&(a.max_iters / 4).max(1))),
        (s(&"threads"), s(&a.threads)),
    ];
    let cfg: train::TrainConfig = config::load(
        Some(Path::new("configs/cpu_quickstart.toml")),
        &overrides,
        train::IGNORED_KEYS,
    )
    .context("the demo reads configs/cpu_quickstart.toml: run it from the repository root")?;
    println!(
        "== 2/5 train the quick-start model ({} iterations)",
        cfg.max_iters
    );
    let base = train::run(&cfg, true)?;
    let base_ckpt = base.checkpoint.clone();
    report.push((
        "train base model",
        t.elapsed().as_secs_f64(),
        format!("best val loss {:.4}", base.best_val_loss),
    ));

    let t = Instant::now();
    let rd = out.join("reward_data");
    println!(
        "== 3/5 reward data: {} held-out blocks per split × 10 samples (natural prefix + generated rest)",
        a.reward_blocks
    );
    let dev = device::select("auto")?;
    let model = checkpoint::load_model(&base_ckpt, &dev)?;
    let opts = RewardPrepOptions {
        model_path: base_ckpt.clone(),
        input_mode: "binary".into(),
        data_path: None,
        train_bin: Some(ha),
        val_bin: Some(hb),
        tokenization: "auto".into(),
        meta_path: train::data_meta(&data_dir),
        output_dir: rd.clone(),
        train_split: 0.9,
        samples_per_chunk: 10,
        temperature: 1.0,
        top_k: None,
        seed: 42,
        batch_size: 64,
        max_blocks: Some(a.reward_blocks),
        num_shards: 1,
        shard_index: 0,
        threads: a.threads,
    };
    let prep = reward_prepare::run(&opts, &model, true)?;
    let n: Vec<String> = prep
        .metas
        .iter()
        .map(|m| format!("{} {}", m.split, m.num_samples))
        .collect();
    report.push((
        "reward data",
        t.elapsed().as_secs_f64(),
        format!("{} samples", n.join(", ")),
    ));

    let t = Instant::now();
    println!("== 4/5 reward model (frozen trunk, mean pooling) and its evaluation");
    let rcfg = RewardTrainConfig {
        base: base_ckpt.display().to_string(),
        data: rd.display().to_string(),
        out_dir: out.join("reward").display().to_string(),
        epochs: 20,
        lr: 1e-3,
        pooling: "mean".into(),
        patience: 5,
        threads: a.threads,
        ..Default::default()
    };
    let rm_out = reward_model::train(&rcfg, true)?;
    let mut rm = RewardModel::load(&rm_out.checkpoint, &dev)?;
    rm.workers = device::workers(a.threads);
    let val = RewardDataset::open(&rd, "val", None)?;
    let ev = reward_eval::evaluate(
        &rm.model,
        &model,
        &val,
        &rm.tokenizer,
        128,
        1337,
        &out.join("reward"),
    )?;
    let f = |k: &str| ev[k].as_f64().unwrap_or(f64::NAN);
    report.push((
        "reward model",
        t.elapsed().as_secs_f64(),
        format!(
            "val MAE {:.4} (always-0.5 baseline {:.4}); AUROC {:.3} (log-likelihood baseline {:.3})",
            f("mae"),
            f("mae_baseline"),
            f("auroc"),
            f("auroc_loglik_baseline")
        ),
    ));

    let t = Instant::now();
    println!(
        "== 5/5 GRPO against the reward model ({} steps)",
        a.grpo_steps
    );
    let gcfg = GrpoConfig {
        init_from: base_ckpt.display().to_string(),
        reward_model: rm_out.checkpoint.display().to_string(),
        data_dir: data_dir.display().to_string(),
        out_dir: out.join("grpo").display().to_string(),
        max_steps: a.grpo_steps,
        // configs/grpo_quickstart.toml's guard: with β 0.04 and lr 1e-4 the policy learns to
        // exploit a small reward model within ~40 steps ("aaaat" text, val loss 1.9 -> 3.6).
        learning_rate: 5e-5,
        beta: 0.2,
        max_val_loss_increase: 0.3,
        eval_interval: (a.grpo_steps / 3).max(1),
        threads: a.threads,
        ..Default::default()
    };
    let g = grpo::run(&gcfg, true)?;
    crate::grpo_cli::report_grpo(&g);
    let (e0, e1) = (g.evals.first(), g.evals.last());
    report.push((
        "GRPO",
        t.elapsed().as_secs_f64(),
        match (e0, e1) {
            (Some(a), Some(b)) => format!(
                "policy reward {:.4} → {:.4} (reference {:.4}, natural {:.4}); val loss {:.4} → {:.4}",
                a.reward_policy, b.reward_policy, b.reward_ref, b.reward_natural, a.val_loss, b.val_loss
            ),
            _ => String::new(),
        },
    ));

    println!("== report");
    for (stage, secs, what) in &report {
        println!("  {stage:<17} {secs:>7.1} s  {what}");
    }
    println!("-- base model sample:\n{}", sample_text(&base_ckpt, 200)?);
    println!(
        "-- GRPO policy sample:\n{}",
        sample_text(&g.checkpoint, 200)?
    );
    println!(
        "artefacts: {0}/base (generator), {0}/reward (reward model, eval.json, calibration.svg), {0}/grpo (policy, metrics.jsonl, grpo_curve.svg)",
        out.display()
    );
    Ok(())
}
