//! `import-nanogpt`, `export-nanogpt`, `export-hf` and `interpolate`: checkpoints in and out.

use anyhow::Result;
use clap::Args;
use nanoreward::checkpoint::{hf, interpolate as interp, nanogpt};
use nanoreward::model::Mode;
use std::path::PathBuf;

#[derive(Args)]
pub struct ImportArgs {
    /// nanoGPT checkpoint written by its train.py (ckpt.pt).
    pt: PathBuf,
    /// Checkpoint directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Character vocabulary (nanoGPT's meta.pkl); default: beside the .pt or data/<dataset>/.
    #[arg(long)]
    meta: Option<PathBuf>,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Checkpoint directory (or a training out_dir holding ckpt/).
    checkpoint: PathBuf,
    /// The .pt file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn import(a: ImportArgs) -> Result<()> {
    let r = nanogpt::import(&a.pt, &a.out, a.meta.as_deref())?;
    let c = &r.config;
    println!(
        "imported {} tensors ({} layers, {} heads, {} wide, block {}, vocab {}, bias {}); tokenizer {}; iter_num {}, best_val_loss {}",
        r.loaded,
        c.n_layer,
        c.n_head,
        c.n_embd,
        c.block_size,
        c.vocab_size,
        c.bias,
        r.tokenizer,
        r.iter_num.map_or("-".into(), |v| v.to_string()),
        r.best_val_loss.map_or("-".into(), |v| format!("{v:.4}"))
    );
    println!("wrote {}", a.out.display());
    Ok(())
}

pub fn export(a: ExportArgs) -> Result<()> {
    let n = nanogpt::export(&a.checkpoint, &a.out)?;
    println!(
        "wrote {} ({n} tensors + the tied lm_head.weight); in PyTorch: ck = torch.load(path); model = GPT(GPTConfig(**ck['model_args'])); model.load_state_dict(ck['model'])",
        a.out.display()
    );
    Ok(())
}

#[derive(Args)]
pub struct ExportHfArgs {
    /// Checkpoint: a directory, a training out_dir holding ckpt/, or a nanoGPT ckpt.pt.
    checkpoint: PathBuf,
    /// The Hugging Face directory to write (replaced atomically if it exists).
    #[arg(long)]
    out: PathBuf,
}

pub fn export_hf(a: ExportHfArgs) -> Result<()> {
    let r = hf::export(&a.checkpoint, &a.out)?;
    println!("wrote {} ({})", a.out.display(), r.files.join(", "));
    let dir = a.out.display();
    match r.mode {
        Mode::Generator => println!(
            "in Python: from transformers import GPT2LMHeadModel; model = GPT2LMHeadModel.from_pretrained(\"{dir}\")"
        ),
        Mode::Reward => println!(
            "a reward model: the trunk loads with GPT2Model.from_pretrained(\"{dir}\"); {dir}/README.md shows how to score with its head"
        ),
    }
    Ok(())
}

#[derive(Args)]
pub struct InterpolateArgs {
    /// The first generator (α = 0): a directory, a training out_dir holding ckpt/, or a ckpt.pt.
    a: PathBuf,
    /// The second generator (α = 1), of the same architecture and tokenizer.
    b: PathBuf,
    /// The weight of B: 0.5 is the midpoint; above 1 extrapolates from A through B.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    alpha: f64,
    /// The checkpoint directory to write (replaced atomically if it exists).
    #[arg(long)]
    out: PathBuf,
}

pub fn interpolate(a: InterpolateArgs) -> Result<()> {
    let c = interp::interpolate(&a.a, &a.b, a.alpha, &a.out)?;
    println!(
        "wrote {} = {} + {}·({} − {}) ({} layers, {} wide)",
        a.out.display(),
        a.a.display(),
        a.alpha,
        a.b.display(),
        a.a.display(),
        c.n_layer,
        c.n_embd
    );
    Ok(())
}
