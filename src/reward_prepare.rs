//! The `prepare-reward-data` job: resolves inputs and tokenization, checks them against the base
//! model, generates each split in resumable chunks and writes `{split}_x.bin`, `{split}_y.bin`
//! and `{split}_metadata.txt`.

use crate::checkpoint;
use crate::data::{self, TokenFile, TokenizationKind};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::model::GPT;
use crate::reward_data::{self, GenOptions, Row, Split};
use crate::reward_dataset::{Metadata, YStats};
use crate::sampling::SampleOptions;
use crate::tokenizer::{CharVocab, Tokenizer};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// Options of `prepare-reward-data` (the seed's names).
#[derive(Debug, Clone)]
pub struct RewardPrepOptions {
    pub model_path: PathBuf,
    /// `text` or `binary`.
    pub input_mode: String,
    pub data_path: Option<PathBuf>,
    pub train_bin: Option<PathBuf>,
    pub val_bin: Option<PathBuf>,
    /// `auto`, `bpe` or `char`.
    pub tokenization: String,
    pub meta_path: Option<PathBuf>,
    pub output_dir: PathBuf,
    pub train_split: f64,
    pub samples_per_chunk: usize,
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub seed: u64,
    pub batch_size: usize,
    pub max_blocks: Option<usize>,
    pub num_shards: usize,
    pub shard_index: usize,
    /// CPU threads (0 = one per core): batches are generated in parallel.
    pub threads: usize,
}

/// A split's natural tokens and where they came from.
pub struct SplitTokens {
    pub split: Split,
    pub tokens: Vec<u32>,
}

/// Resolved inputs: both splits, the tokenizer, where its meta came from, a source description.
pub struct Inputs {
    pub splits: Vec<SplitTokens>,
    pub tokenizer: Tokenizer,
    pub meta_path: Option<PathBuf>,
    pub source: String,
}

fn find_meta(dir: &Path) -> Option<PathBuf> {
    ["meta.pkl", "meta.json"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
}

/// Reads and tokenizes the inputs as `opts` says, and checks them against the model.
pub fn resolve_inputs(opts: &RewardPrepOptions, model: &GPT) -> Result<Inputs> {
    let model_meta = opts.model_path.join(checkpoint::META);
    let (data_dir, text_file) = match opts.input_mode.as_str() {
        "text" => {
            let p = opts.data_path.clone().ok_or_else(|| {
                Error::Config(
                    "--input_mode text needs --data_path (a text file or a folder with input.txt)"
                        .into(),
                )
            })?;
            if p.is_dir() {
                (p.clone(), Some(p.join("input.txt")))
            } else {
                (
                    p.parent().map(Path::to_path_buf).unwrap_or_default(),
                    Some(p),
                )
            }
        }
        "binary" => {
            let tb = opts.train_bin.clone().ok_or_else(|| {
                Error::Config("--input_mode binary needs --train_bin and --val_bin".into())
            })?;
            (tb.parent().map(Path::to_path_buf).unwrap_or_default(), None)
        }
        other => {
            return Err(Error::Config(format!(
                "--input_mode must be text or binary, got '{other}'"
            )));
        }
    };
    let meta = opts
        .meta_path
        .clone()
        .or_else(|| find_meta(&data_dir))
        .or_else(|| model_meta.exists().then(|| model_meta.clone()));
    let kind = match (opts.tokenization.as_str(), &meta) {
        ("auto", Some(_)) | ("char", _) => TokenizationKind::Char,
        ("auto", None) | ("bpe", _) => TokenizationKind::Bpe,
        (other, _) => {
            return Err(Error::Config(format!(
                "--tokenization must be auto, bpe or char, got '{other}'"
            )));
        }
    };
    let (tokenizer, meta_path, splits, source) = match text_file {
        Some(file) => {
            let text = fsutil::read_text(&file)?;
            let tok = match (kind, &meta) {
                (TokenizationKind::Char, Some(m)) => Tokenizer::Char(CharVocab::load(m)?),
                (TokenizationKind::Char, None) => Tokenizer::Char(CharVocab::from_text(&text)),
                (TokenizationKind::Bpe, _) => Tokenizer::Bpe,
            };
            if text.is_empty() {
                return Err(Error::format(&file, "the text is empty"));
            }
            let (train_text, val_text) = data::split_text(&text, opts.train_split);
            let train = tok.encode(train_text)?;
            let val = tok.encode(val_text)?;
            let m = if kind == TokenizationKind::Char {
                meta.clone()
            } else {
                None
            };
            (
                tok,
                m,
                vec![(Split::Train, train), (Split::Val, val)],
                format!("text:{}", file.display()),
            )
        }
        None => {
            let vb = opts
                .val_bin
                .clone()
                .ok_or_else(|| Error::Config("--input_mode binary needs --val_bin too".into()))?;
            let tb = opts.train_bin.clone().unwrap_or_default();
            let tok = match (kind, &meta) {
                (TokenizationKind::Char, Some(m)) => Tokenizer::Char(CharVocab::load(m)?),
                (TokenizationKind::Char, None) => return Err(Error::Config(
                    "char tokenization of binary token files needs a meta.pkl: pass --meta_path"
                        .into(),
                )),
                (TokenizationKind::Bpe, _) => Tokenizer::Bpe,
            };
            let m = if kind == TokenizationKind::Char {
                meta.clone()
            } else {
                None
            };
            let train = TokenFile::open(&tb)?.to_vec();
            let val = TokenFile::open(&vb)?.to_vec();
            (
                tok,
                m,
                vec![(Split::Train, train), (Split::Val, val)],
                format!("binary:{},{}", tb.display(), vb.display()),
            )
        }
    };
    check_compat(&tokenizer, model, &model_meta, &splits)?;
    Ok(Inputs {
        splits: splits
            .into_iter()
            .map(|(split, tokens)| SplitTokens { split, tokens })
            .collect(),
        tokenizer,
        meta_path,
        source,
    })
}

/// Tokenizer vs model vocabulary, char vocabulary vs the model's own meta, data vs block_size.
fn check_compat(
    tok: &Tokenizer,
    model: &GPT,
    model_meta: &Path,
    splits: &[(Split, Vec<u32>)],
) -> Result<()> {
    let vs = model.config.vocab_size;
    if tok.vocab_size() > vs {
        return Err(Error::Mismatch(format!(
            "the {} tokenizer has {} tokens but the model's vocab_size is {vs}",
            tok.method(),
            tok.vocab_size()
        )));
    }
    if let Tokenizer::Char(v) = tok
        && model_meta.exists()
    {
        let mv = CharVocab::load(model_meta)?;
        if mv != *v {
            return Err(Error::Mismatch(format!(
                "the data's character vocabulary ({} chars) differs from the model's meta.pkl ({} chars, {})",
                v.len(),
                mv.len(),
                model_meta.display()
            )));
        }
    }
    if matches!(tok, Tokenizer::Bpe) && model_meta.exists() {
        return Err(Error::Mismatch(format!(
            "the data is GPT-2 BPE but the model was trained on characters ({}); use --tokenization char",
            model_meta.display()
        )));
    }
    let n = model.config.block_size;
    for (split, t) in splits {
        if let Some(bad) = t.iter().find(|&&x| x as usize >= vs) {
            return Err(Error::Mismatch(format!(
                "{} data holds token id {bad} ≥ the model's vocab_size {vs}",
                split.name()
            )));
        }
        if t.len() < n {
            return Err(Error::Mismatch(format!(
                "the {} split has {} tokens, fewer than the model's block_size {n}: not one block",
                split.name(),
                t.len()
            )));
        }
    }
    Ok(())
}

/// The blocks of `n_blocks` this run covers (max_blocks first, then every S-th from I).
pub fn covered_blocks(
    n_blocks: usize,
    max_blocks: Option<usize>,
    num_shards: usize,
    shard_index: usize,
) -> Vec<usize> {
    let n = max_blocks.map_or(n_blocks, |m| m.min(n_blocks));
    (0..n).filter(|b| b % num_shards == shard_index).collect()
}

/// FNV-1a over a string: a stable fingerprint of a run's arguments (for resuming).
fn fingerprint(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Generates one split into `dir`, resuming an interrupted run with the same arguments.
/// Returns the metadata written.
#[allow(clippy::too_many_arguments)]
pub fn generate_split(
    model: &GPT,
    inputs: &Inputs,
    st: &SplitTokens,
    opts: &RewardPrepOptions,
    gen_opts: &GenOptions,
    base_meta: &Metadata,
    show_progress: bool,
) -> Result<Metadata> {
    let dir = &opts.output_dir;
    let n = model.config.block_size;
    let name = st.split.name();
    let blocks = covered_blocks(
        st.tokens.len() / n,
        opts.max_blocks,
        opts.num_shards,
        opts.shard_index,
    );
    if blocks.is_empty() {
        return Err(Error::Other(format!(
            "the {name} split gives no block to this shard; lower --num_shards"
        )));
    }
    let spc = gen_opts.samples_per_chunk;
    let x_final = dir.join(format!("{name}_x.bin"));
    let y_final = dir.join(format!("{name}_y.bin"));
    let meta_final = dir.join(format!("{name}_metadata.txt"));
    let x_part = dir.join(format!(".{name}_x.bin.partial"));
    let y_part = dir.join(format!(".{name}_y.bin.partial"));
    let progress = dir.join(format!(".{name}.progress.json"));
    let fp = fingerprint(&format!(
        "{:?}|{}|{}|{:?}|{}|{}",
        base_meta.fingerprint_fields(),
        name,
        st.tokens.len(),
        &st.tokens[..n.min(st.tokens.len())],
        blocks.len(),
        inputs.source
    ));
    // Resume point: blocks already written by an interrupted run with the same fingerprint.
    let mut done = 0usize;
    if let Ok(bytes) = std::fs::read(&progress)
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
        && v["fingerprint"] == fp
    {
        done = v["blocks_done"].as_u64().unwrap_or(0) as usize;
    }
    let file_len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len() as usize);
    if file_len(&x_part) < done * spc * n * 2 || file_len(&y_part) < done * spc * 8 {
        done = 0;
    }
    let rows_done = done * spc;
    let truncate = |p: &Path, len: u64| -> Result<()> {
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(p)
            .map_err(|e| Error::io("cannot open", p, e))?;
        f.set_len(len)
            .map_err(|e| Error::io("cannot truncate", p, e))
    };
    fsutil::create_dir_all(dir)?;
    for p in [&x_final, &y_final, &meta_final] {
        if p.exists() {
            std::fs::remove_file(p).map_err(|e| Error::io("cannot replace", p, e))?;
        }
    }
    truncate(&x_part, (rows_done * n * 2) as u64)?;
    truncate(&y_part, (rows_done * 2 * 4) as u64)?;
    if done > 0 {
        eprintln!("{name}: resuming after {done} of {} blocks", blocks.len());
    }
    if show_progress {
        println!(
            "{name}: {} natural tokens -> {} blocks of {n} covered by this run -> {} samples",
            st.tokens.len(),
            blocks.len(),
            blocks.len() * spc
        );
    }
    let pb = if show_progress {
        ProgressBar::new(blocks.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(ProgressStyle::with_template(&format!("{name:>5} {{bar:30}} {{pos}}/{{len}} blocks [{{elapsed_precise}}<{{eta_precise}}] {{per_sec}}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar()));
    pb.set_position(done as u64);
    let chunk_blocks = (4096 / spc).max(1);
    let append = fsutil::append_synced;
    let mut pos = done;
    while pos < blocks.len() {
        let chunk = &blocks[pos..(pos + chunk_blocks).min(blocks.len())];
        let mut rows = Vec::with_capacity(chunk.len() * spc);
        for &b in chunk {
            let natural = &st.tokens[b * n..(b + 1) * n];
            for (k, seed) in reward_data::block_plan(gen_opts.seed, st.split, b, spc, n) {
                rows.push(Row { natural, k, seed });
            }
        }
        let seqs = reward_data::generate_rows(model, &rows, gen_opts)?;
        let xb: Vec<u8> = seqs
            .iter()
            .flatten()
            .flat_map(|&t| (t as u16).to_le_bytes())
            .collect();
        let yb: Vec<u8> = rows
            .iter()
            .flat_map(|r| reward_data::label(r.k, n))
            .flat_map(f32::to_le_bytes)
            .collect();
        append(&x_part, &xb)?;
        append(&y_part, &yb)?;
        pos += chunk.len();
        let state = serde_json::json!({"fingerprint": fp, "blocks_done": pos});
        fsutil::write_bytes_atomic(&progress, state.to_string().as_bytes())?;
        pb.set_position(pos as u64);
        if pb.is_hidden() && show_progress {
            // No terminal: a plain progress line per chunk instead of the bar.
            println!("{name}: {pos}/{} blocks", blocks.len());
        }
    }
    pb.finish_and_clear();
    // Complete: labels statistics from the finished file, then rename into place.
    let y = fsutil::read(&y_part)?;
    let ys: Vec<[f32; 2]> = y
        .chunks_exact(8)
        .map(|c| {
            [
                f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                f32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            ]
        })
        .collect();
    let mut meta = base_meta.clone();
    meta.num_samples = ys.len();
    meta.num_blocks = blocks.len();
    meta.split = name.to_string();
    meta.y_stats = YStats::of(&ys);
    meta.tokenization_method = inputs.tokenizer.method().to_string();
    meta.vocab_size = inputs.tokenizer.vocab_size();
    // The metadata is written first under a temporary name, so a failure (a full disk) leaves
    // nothing under the final names; then three renames, metadata last (it marks completion).
    let meta_part = dir.join(format!(".{name}_metadata.txt.partial"));
    meta.write(&meta_part)?;
    for (from, to) in [
        (&x_part, &x_final),
        (&y_part, &y_final),
        (&meta_part, &meta_final),
    ] {
        std::fs::rename(from, to).map_err(|e| Error::io("cannot rename into place", to, e))?;
    }
    let _ = std::fs::remove_file(&progress);
    Ok(meta)
}

/// The sampling and generation options of a run.
pub fn gen_options(opts: &RewardPrepOptions) -> Result<GenOptions> {
    if opts.samples_per_chunk == 0 || opts.batch_size == 0 {
        return Err(Error::Config(
            "--samples_per_chunk and --batch_size must be at least 1".into(),
        ));
    }
    if opts.num_shards == 0 || opts.shard_index >= opts.num_shards {
        return Err(Error::Config(format!(
            "--shard_index must be in [0, --num_shards = {}), got {}",
            opts.num_shards, opts.shard_index
        )));
    }
    if !(0.0..1.0).contains(&opts.train_split) || opts.train_split == 0.0 {
        return Err(Error::Config(format!(
            "--train_split must be in (0, 1), got {}",
            opts.train_split
        )));
    }
    let sample = SampleOptions {
        temperature: opts.temperature,
        top_k: opts.top_k,
    };
    sample.validate()?;
    Ok(GenOptions {
        samples_per_chunk: opts.samples_per_chunk,
        sample,
        seed: opts.seed,
        batch_size: opts.batch_size,
        workers: crate::device::workers(opts.threads),
    })
}

/// The absolute form of a path for metadata (as given when it cannot be resolved).
fn absolute(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// What a run produced, per split.
pub struct PrepSummary {
    pub metas: Vec<Metadata>,
    pub seconds: f64,
    pub generated_tokens: usize,
}

/// Runs `prepare-reward-data` on an already loaded base model.
pub fn run(opts: &RewardPrepOptions, model: &GPT, show_progress: bool) -> Result<PrepSummary> {
    let gen_opts = gen_options(opts)?;
    let inputs = resolve_inputs(opts, model)?;
    let base = Metadata {
        format_version: crate::reward_dataset::FORMAT_VERSION,
        block_size: model.config.block_size,
        tokenization_method: inputs.tokenizer.method().to_string(),
        vocab_size: inputs.tokenizer.vocab_size(),
        meta_path: inputs.meta_path.as_deref().map(absolute),
        base_model_path: absolute(&opts.model_path),
        base_model_config: serde_json::to_string(&model.config).unwrap_or_default(),
        temperature: opts.temperature,
        top_k: opts.top_k,
        samples_per_chunk: opts.samples_per_chunk,
        seed: opts.seed,
        train_split: opts.train_split,
        source: inputs.source.clone(),
        num_shards: opts.num_shards,
        shard_index: opts.shard_index,
        created_at: crate::reward_dataset::now_iso8601(),
        ..Default::default()
    };
    let t0 = std::time::Instant::now();
    let mut metas = Vec::new();
    let mut generated = 0;
    for st in &inputs.splits {
        let m = generate_split(model, &inputs, st, opts, &gen_opts, &base, show_progress)?;
        // Each sample generates N − K tokens; the labels' mean P(synthetic) gives their total.
        generated += (m.y_stats.mean[1] * (m.num_samples * m.block_size) as f64).round() as usize;
        metas.push(m);
    }
    Ok(PrepSummary {
        metas,
        seconds: t0.elapsed().as_secs_f64(),
        generated_tokens: generated,
    })
}

/// Concatenates shards written with `--num_shards S --shard_index I` into one dataset in block
/// order (block b comes from shard b mod S), checking that the shards belong together.
pub fn merge(out: &Path, shard_dirs: &[PathBuf]) -> Result<Vec<Metadata>> {
    if shard_dirs.is_empty() {
        return Err(Error::Config(
            "give at least one shard directory to merge".into(),
        ));
    }
    let mut written = Vec::new();
    for split in ["train", "val"] {
        let mut shards: Vec<(Metadata, PathBuf)> = Vec::new();
        for d in shard_dirs {
            let (_, _, mp) = crate::reward_dataset::split_paths(d, split);
            shards.push((Metadata::read(&mp)?, d.clone()));
        }
        let first = shards[0].0.clone();
        let s = first.num_shards;
        if shards.len() != s {
            return Err(Error::Mismatch(format!(
                "the shards say num_shards = {s} but {} were given",
                shards.len()
            )));
        }
        shards.sort_by_key(|(m, _)| m.shard_index);
        for (i, (m, d)) in shards.iter().enumerate() {
            if m.shard_index != i
                || m.num_shards != s
                || m.fingerprint_fields() != first.fingerprint_fields()
            {
                return Err(Error::Mismatch(format!(
                    "{} is not shard {i} of the same run (its shard_index is {}, num_shards {}, or its settings differ)",
                    d.display(),
                    m.shard_index,
                    m.num_shards
                )));
            }
        }
        let datasets: Vec<crate::reward_dataset::RewardDataset> = shards
            .iter()
            .map(|(_, d)| crate::reward_dataset::RewardDataset::open(d, split, None))
            .collect::<Result<_>>()?;
        let spc = first.samples_per_chunk;
        let total_blocks: usize = shards.iter().map(|(m, _)| m.num_blocks).sum();
        let mut xs: Vec<u8> = Vec::new();
        let mut ys: Vec<u8> = Vec::new();
        let mut labels = Vec::new();
        for b in 0..total_blocks {
            let (ds, local) = (&datasets[b % s], b / s);
            for j in 0..spc {
                let i = local * spc + j;
                if i >= ds.len() {
                    return Err(Error::Mismatch(format!("shard {} lacks block {b}", b % s)));
                }
                xs.extend(ds.tokens(i).iter().flat_map(|&t| (t as u16).to_le_bytes()));
                let l = ds.label(i);
                ys.extend(l.iter().flat_map(|v| v.to_le_bytes()));
                labels.push(l);
            }
        }
        let (xp, yp, mp) = crate::reward_dataset::split_paths(out, split);
        fsutil::create_dir_all(out)?;
        fsutil::write_bytes_atomic(&xp, &xs)?;
        fsutil::write_bytes_atomic(&yp, &ys)?;
        let mut meta = first.clone();
        meta.num_samples = labels.len();
        meta.num_blocks = total_blocks;
        meta.num_shards = 1;
        meta.shard_index = 0;
        meta.y_stats = YStats::of(&labels);
        meta.created_at = crate::reward_dataset::now_iso8601();
        meta.write(&mp)?;
        written.push(meta);
    }
    Ok(written)
}
