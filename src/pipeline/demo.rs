//! `nanoreward demo`: the whole pipeline on small settings — prepare → train the quick-start
//! model → one round (reward data from held-out text → reward model → GRPO) — and a report.

use super::round::{self, RoundEvent, RoundPlan};
use crate::checkpoint::Checkpoint;
use crate::grpo::{GrpoConfig, GrpoOutcome};
use crate::judge::{self, JudgeConfig, JudgeReport};
use crate::reward::RewardTrainConfig;
use crate::reward::prepare::{InputMode, RewardPrepOptions};
use crate::sampling::{self, SampleOptions};
use crate::train::{self, TrainConfig};
use crate::util::device;
use crate::{Result, data};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The demo's settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Tiny Shakespeare's input.txt (or any text).
    pub input: PathBuf,
    /// Where everything goes.
    pub out_dir: PathBuf,
    /// Training iterations of the quick-start model.
    pub max_iters: usize,
    /// Blocks of held-out text per reward-data split (10 samples each).
    pub reward_blocks: usize,
    /// GRPO steps (8 prompts × 8 completions each).
    pub grpo_steps: usize,
    /// CPU threads (0 = one per core).
    pub threads: usize,
    /// End with the judge's verdict on the base model and the policy.
    pub judge: bool,
}

/// What the demo did: per stage its name, seconds and result; the checkpoints; the GRPO run;
/// a sample from the base model and from the policy.
pub struct DemoReport {
    pub stages: Vec<(&'static str, f64, String)>,
    pub base: PathBuf,
    pub grpo: GrpoOutcome,
    pub base_sample: String,
    pub policy_sample: String,
    /// The judge's verdict: rows for the base model and the policy.
    pub judge: Option<JudgeReport>,
}

/// 200 tokens sampled from a checkpoint after a newline (temperature 0.8, top-k 200, seed 1337).
pub fn sample_text(ckpt: &Path, n: usize) -> Result<String> {
    let ck = Checkpoint::open(ckpt)?;
    let model = ck.model(&device::select("auto")?)?;
    let tok = ck.tokenizer()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1337);
    let opts = SampleOptions {
        temperature: 0.8,
        top_k: Some(200),
        vocab: Some(tok.vocab_size()),
    };
    let prompt = tok.encode("\n")?;
    let s = sampling::generate(&model, &[prompt], n, &opts, &mut rng, 1)?;
    Ok(tok.decode(&s[0]))
}

/// The number of stages the demo announces.
fn stages_total(o: &DemoOptions) -> usize {
    if o.judge { 6 } else { 5 }
}

/// A few words on a reward model's recipe.
fn describe(r: &RewardTrainConfig) -> String {
    use crate::model::RewardHeadKind;
    match r.loss.head() {
        RewardHeadKind::Pooled => format!(
            "{} pooling, {}",
            r.pooling,
            if r.freeze_trunk {
                "frozen trunk"
            } else {
                "fine-tuned trunk"
            }
        ),
        RewardHeadKind::Token => {
            let mut parts = vec![format!("per-token {}", r.loss)];
            if r.features {
                parts.push("white-box features".into());
            }
            if r.lexicon {
                parts.push("lexicon".into());
            }
            parts.push(if r.freeze_trunk {
                "frozen trunk".into()
            } else {
                "fine-tuned trunk".into()
            });
            parts.join(", ")
        }
    }
}

/// Trains the quick-start model on `data_dir` into `out/base`.
fn train_base(o: &DemoOptions, data_dir: &Path) -> Result<train::TrainOutcome> {
    let s = |v: &dyn ToString| v.to_string();
    let overrides = vec![
        (s(&"data_dir"), data_dir.display().to_string()),
        (s(&"out_dir"), o.out_dir.join("base").display().to_string()),
        (s(&"max_iters"), s(&o.max_iters)),
        (s(&"lr_decay_iters"), s(&o.max_iters)),
        (s(&"eval_interval"), s(&(o.max_iters / 4).max(1))),
        (s(&"threads"), s(&o.threads)),
    ];
    let cfg: TrainConfig = train::quickstart(&overrides)?;
    println!(
        "== 2/{} train the quick-start model ({} iterations)",
        stages_total(o),
        cfg.max_iters
    );
    train::run(&cfg, true)
}

/// The demo's round: reward data from the held-out halves of val.bin (seed 42), a frozen-trunk
/// mean-pooled reward model, and GRPO with the quick-start settings.
fn round_plan(
    o: &DemoOptions,
    base: &Path,
    data_dir: &Path,
    heldout: (PathBuf, PathBuf),
) -> RoundPlan {
    let out = &o.out_dir;
    RoundPlan {
        dir: out.clone(),
        generator: base.to_path_buf(),
        prep: RewardPrepOptions {
            model_path: base.to_path_buf(),
            input_mode: InputMode::Binary,
            train_bin: Some(heldout.0),
            val_bin: Some(heldout.1),
            meta_path: data::data_meta(data_dir),
            output_dir: out.join("reward_data"),
            max_blocks: Some(o.reward_blocks),
            threads: o.threads,
            ..Default::default()
        },
        replay: None,
        // The default (token) recipe, with its lexicon read from the generator's training text.
        reward: RewardTrainConfig {
            out_dir: out.join("reward").display().to_string(),
            lexicon_text: data_dir.join("train.bin").display().to_string(),
            threads: o.threads,
            ..Default::default()
        },
        eval_windows: 128,
        eval_seed: 1337,
        grpo: GrpoConfig {
            data_dir: data_dir.display().to_string(),
            out_dir: out.join("grpo").display().to_string(),
            max_steps: o.grpo_steps,
            // configs/grpo_quickstart.toml's guard: with β 0.04 and lr 1e-4 the policy learns
            // to exploit a small reward model within ~40 steps ("aaaat" text, val loss 1.9 -> 3.6).
            learning_rate: 5e-5,
            beta: 0.2,
            max_val_loss_increase: 0.3,
            eval_interval: (o.grpo_steps / 3).max(1),
            threads: o.threads,
            ..Default::default()
        },
        resume: false,
    }
}

/// The judge on the base model and the policy at temperature 1, on the held-out text neither
/// trained on (`data_dir/heldout_val.bin`), with its own quick-start trunk (300 iterations).
fn judge_verdict(
    o: &DemoOptions,
    data_dir: &Path,
    base: &Path,
    policy: &Path,
) -> Result<JudgeReport> {
    println!("== 6/6 the judge: an independent detector on held-out text (base model vs policy)");
    judge::run(&JudgeConfig {
        generators: vec![base.display().to_string(), policy.display().to_string()],
        data_dir: data_dir.display().to_string(),
        natural: data_dir.join("heldout_val.bin").display().to_string(),
        out_dir: o.out_dir.join("judge").display().to_string(),
        windows: 128,
        trunk_iters: 300,
        threads: o.threads,
        ..Default::default()
    })
}

/// Runs the demo.
pub fn run(o: &DemoOptions) -> Result<DemoReport> {
    let _lock = crate::util::lock::DirLock::acquire(&o.out_dir)?;
    let mut stages: Vec<(&'static str, f64, String)> = Vec::new();
    let t = Instant::now();
    let data_dir = o.out_dir.join("data");
    println!(
        "== 1/{} prepare {} -> {}",
        stages_total(o),
        o.input.display(),
        data_dir.display()
    );
    let r = data::prepare(&o.input, &data_dir, data::TokenizationKind::Char, 0.9)?;
    let (ha, hb, _, _) = data::heldout_split(&data_dir.join("val.bin"), &data_dir)?;
    let what = format!(
        "vocab {}, train {} / val {} tokens",
        r.vocab_size, r.train_tokens, r.val_tokens
    );
    stages.push(("prepare", t.elapsed().as_secs_f64(), what));
    let t = Instant::now();
    let base = train_base(o, &data_dir)?;
    let what = format!("best val loss {:.4}", base.best_val_loss);
    stages.push(("train base model", t.elapsed().as_secs_f64(), what));
    let plan = round_plan(o, &base.checkpoint, &data_dir, (ha, hb));
    let blocks = o.reward_blocks;
    let steps = o.grpo_steps;
    let total = stages_total(o);
    let recipe = describe(&plan.reward);
    let outcome = round::run(&plan, &mut |e| match e {
        RoundEvent::RewardData => println!(
            "== 3/{total} reward data: {blocks} held-out blocks per split × 10 samples (natural prefix + generated rest)"
        ),
        RoundEvent::RewardModel => {
            println!("== 4/{total} reward model ({recipe}) and its evaluation")
        }
        RoundEvent::Evaluated(_) => {}
        RoundEvent::Grpo { .. } => {
            println!("== 5/{total} GRPO against the reward model ({steps} steps)")
        }
    })?;
    stages.extend(round_stages(&outcome));
    let g = outcome.grpo;
    let t = Instant::now();
    let judge = o
        .judge
        .then(|| judge_verdict(o, &data_dir, &base.checkpoint, &g.checkpoint))
        .transpose()?;
    if let Some(j) = &judge {
        stages.push(("judge", t.elapsed().as_secs_f64(), judge_line(j)));
    }
    Ok(DemoReport {
        stages,
        base_sample: sample_text(&base.checkpoint, 200)?,
        policy_sample: sample_text(&g.checkpoint, 200)?,
        base: base.checkpoint,
        grpo: g,
        judge,
    })
}

/// The demo's summary lines of a round: reward data, reward model, GRPO.
fn round_stages(outcome: &round::RoundOutcome) -> Vec<(&'static str, f64, String)> {
    let counts: Vec<String> = outcome
        .prep
        .iter()
        .flat_map(|p| &p.metas)
        .map(|m| format!("{} {}", m.split, m.num_samples))
        .collect();
    let [t_data, t_rm, t_grpo] = outcome.seconds;
    let ev = &outcome.eval;
    let best = ev
        .best_baseline()
        .map(|b| format!("best baseline: {} {:.3}", b.name, b.auroc))
        .unwrap_or_default();
    let g = &outcome.grpo;
    let grpo_text = match (g.evals.first(), g.evals.last()) {
        (Some(a), Some(b)) => format!(
            "policy reward {:.4} → {:.4} (reference {:.4}, natural {:.4}); val loss {:.4} → {:.4}",
            a.reward_policy,
            b.reward_policy,
            b.reward_ref,
            b.reward_natural,
            a.val_loss,
            b.val_loss
        ),
        _ => String::new(),
    };
    vec![
        (
            "reward data",
            t_data,
            format!("{} samples", counts.join(", ")),
        ),
        (
            "reward model",
            t_rm,
            format!(
                "val MAE {:.4} (always-0.5 baseline {:.4}), boundary {:.1} tokens; AUROC {:.3} ({best})",
                ev.mae, ev.mae_baseline, ev.boundary_mae_tokens, ev.auroc
            ),
        ),
        ("GRPO", t_grpo, grpo_text),
    ]
}

/// The judge's summary line: base and policy rows, and the MAUVE natural text reaches on the
/// same judge (its other half in a generator's place), to read theirs against.
fn judge_line(j: &JudgeReport) -> String {
    let row = |i: usize| j.rows.get(i).map_or(String::new(), |r| r.verdict());
    let reach = j.natural_mauve.as_ref().map_or(String::new(), |m| {
        format!(
            "; natural text: MAUVE {}",
            judge::with_interval(m.other_half, Some(m.other_half_ci95))
        )
    });
    format!("base: {}; policy: {}{reach}", row(0), row(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::{NaturalMauve, tests::row};

    #[test]
    fn the_judge_line_names_both_rows_and_what_natural_text_reaches() {
        let mut policy = row("policy", 1.0);
        policy.mauve = 0.75;
        let mut j = JudgeReport {
            rows: vec![row("base", 1.0), policy],
            natural_word_validity: 0.9,
            natural_distinct_3: 0.9,
            natural_repetition: 0.02,
            trunk: "t".into(),
            windows: 8,
            window_len: 16,
            seed: None,
            best_of: None,
            natural_mauve: Some(NaturalMauve {
                other_half: 0.812,
                other_half_ci95: [0.71, 0.91],
                train_text: 0.5,
                train_text_ci95: [0.4, 0.6],
            }),
        };
        let line = judge_line(&j);
        assert!(line.starts_with("base: C2ST AUROC 0.900"), "{line}");
        assert!(
            line.contains("; policy: C2ST AUROC 0.900 [0.880-0.920], MAUVE 0.750"),
            "{line}"
        );
        assert!(
            line.ends_with("; natural text: MAUVE 0.812 [0.71-0.91]"),
            "{line}"
        );
        j.natural_mauve = None;
        assert!(
            judge_line(&j).ends_with("word validity 0.700"),
            "{}",
            judge_line(&j)
        );
    }
}
