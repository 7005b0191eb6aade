//! `import-nanogpt` and `export-nanogpt`.

use anyhow::Result;
use clap::Args;
use nanoreward::checkpoint::nanogpt;
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
