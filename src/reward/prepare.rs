//! The `prepare-reward-data` job: resolves inputs and tokenization, checks them against the base
//! model, generates each split in resumable chunks through the lockstep sampler and writes them
//! with [`SplitWriter`] (the reward dataset format lives in [`super::dataset`]).

use super::dataset::{self, Metadata, SplitWriter};
use super::recipe::{self, Split};
use crate::checkpoint;
use crate::data::{self, TokenFile};
use crate::model::GPT;
use crate::sampling::{self, Batching, Row, SampleOptions, Seqs};
use crate::tokenizer::{CharVocab, Tokenizer};
use crate::util::lock::DirLock;
use crate::util::{device, fsutil, progress, stop};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

crate::choice! {
    /// Where the natural text comes from.
    pub enum InputMode("--input_mode") {
        /// A text file (or a folder holding input.txt), split into train/val by characters.
        #[default]
        Text = "text",
        /// Token files `train_bin` and `val_bin`.
        Binary = "binary",
        /// The base model's `val_bin` split 80/20 into the reward data's train and val text:
        /// text the base model never trained on.
        Heldout = "heldout",
    }
}

crate::choice! {
    /// Which tokenizer the natural text is read with: `auto` is characters when a
    /// meta.pkl/meta.json is found (given, beside the data, or the model's), else GPT-2 BPE.
    pub enum TokenizationChoice("--tokenization") {
        #[default]
        Auto = "auto",
        Char = "char",
        Bpe = "bpe",
    }
}

/// Options of `prepare-reward-data` (the seed's names and defaults).
#[derive(Debug, Clone)]
pub struct RewardPrepOptions {
    pub model_path: PathBuf,
    pub input_mode: InputMode,
    pub data_path: Option<PathBuf>,
    pub train_bin: Option<PathBuf>,
    pub val_bin: Option<PathBuf>,
    /// Heldout mode: more natural text the base model never trained on (token files), appended
    /// in whole blocks to the reward data's train text only; the val text stays `val_bin`'s
    /// last 20%.
    pub extra_train: Vec<PathBuf>,
    pub tokenization: TokenizationChoice,
    pub meta_path: Option<PathBuf>,
    pub output_dir: PathBuf,
    pub train_split: f64,
    pub samples_per_chunk: usize,
    /// Share of samples made fully natural (K = N) or fully generated (K = 0), half each.
    pub full_share: f64,
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

impl Default for RewardPrepOptions {
    fn default() -> Self {
        Self {
            model_path: PathBuf::from("out/ckpt"),
            input_mode: InputMode::Text,
            data_path: None,
            train_bin: None,
            val_bin: None,
            extra_train: Vec::new(),
            tokenization: TokenizationChoice::Auto,
            meta_path: None,
            output_dir: PathBuf::from("data/reward_dataset"),
            train_split: 0.9,
            samples_per_chunk: 10,
            full_share: 0.0,
            temperature: 1.0,
            top_k: None,
            seed: 42,
            batch_size: 64,
            max_blocks: None,
            num_shards: 1,
            shard_index: 0,
            threads: 0,
        }
    }
}

impl RewardPrepOptions {
    /// Rejects settings that cannot run; returns the sampling options.
    pub fn validate(&self) -> Result<SampleOptions> {
        if self.samples_per_chunk == 0 || self.batch_size == 0 {
            return Err(Error::Config(
                "--samples_per_chunk and --batch_size must be at least 1".into(),
            ));
        }
        if self.num_shards == 0 || self.shard_index >= self.num_shards {
            return Err(Error::Config(format!(
                "--shard_index must be in [0, --num_shards = {}), got {}",
                self.num_shards, self.shard_index
            )));
        }
        if !(0.0..=1.0).contains(&self.full_share) {
            return Err(Error::Config(format!(
                "--full_share must be in [0, 1], got {}",
                self.full_share
            )));
        }
        if !(0.0..1.0).contains(&self.train_split) || self.train_split == 0.0 {
            return Err(Error::Config(format!(
                "--train_split must be in (0, 1), got {}",
                self.train_split
            )));
        }
        let sample = SampleOptions {
            temperature: self.temperature,
            top_k: self.top_k,
            vocab: None,
        };
        sample.validate()?;
        Ok(sample)
    }
}

/// The held-out split made for `--input_mode heldout`.
pub struct HeldoutSplit {
    pub source: PathBuf,
    pub train_tokens: usize,
    pub val_tokens: usize,
    /// Tokens of `extra_train` appended to the train text.
    pub extra_tokens: usize,
}

/// Turns `--input_mode heldout` into binary mode on the two halves of `val_bin` (written into
/// `output_dir/heldout_source/`); other modes are returned unchanged. With `extra_train`, the
/// train half is cut to whole blocks of `block_size` and each extra file's whole blocks follow
/// it, so the first blocks (and every val block) are those of a run without extra text.
pub fn resolve_heldout(
    opts: &RewardPrepOptions,
    block_size: usize,
) -> Result<(RewardPrepOptions, Option<HeldoutSplit>)> {
    if opts.input_mode != InputMode::Heldout {
        if !opts.extra_train.is_empty() {
            return Err(Error::Config(
                "--extra_train_bin needs --input_mode heldout (more held-out text for the reward \
                 data's train split)"
                    .into(),
            ));
        }
        return Ok((opts.clone(), None));
    }
    let val = opts.val_bin.clone().ok_or_else(|| {
        Error::Config("--input_mode heldout needs --val_bin (the base model's val.bin)".into())
    })?;
    let src = opts.output_dir.join("heldout_source");
    let (ta, tb, na, nb) = data::heldout_split(&val, &src)?;
    let (na, extra) = if opts.extra_train.is_empty() {
        (na, 0)
    } else {
        append_whole_blocks(&ta, &opts.extra_train, block_size.max(1))?
    };
    let meta_path = opts
        .meta_path
        .clone()
        .or_else(|| val.parent().and_then(data::data_meta));
    let resolved = RewardPrepOptions {
        input_mode: InputMode::Binary,
        train_bin: Some(ta),
        val_bin: Some(tb),
        extra_train: Vec::new(),
        meta_path,
        ..opts.clone()
    };
    let split = HeldoutSplit {
        source: val,
        train_tokens: na,
        val_tokens: nb,
        extra_tokens: extra,
    };
    Ok((resolved, Some(split)))
}

/// Rewrites the token file `train` as its whole blocks of `n` tokens followed by the whole
/// blocks of each of `extra`; returns the tokens written and how many came from `extra`.
fn append_whole_blocks(train: &Path, extra: &[PathBuf], n: usize) -> Result<(usize, usize)> {
    let mut ids = TokenFile::open(train)?.to_vec();
    ids.truncate(ids.len() / n * n);
    let own = ids.len();
    for p in extra {
        let more = TokenFile::open(p)?.to_vec();
        ids.extend_from_slice(&more[..more.len() / n * n]);
    }
    data::write_tokens(train, &ids)?;
    Ok((ids.len(), ids.len() - own))
}

/// Resolved inputs: both splits' natural tokens, the tokenizer, where its meta came from, and a
/// description of the source.
pub struct Inputs {
    pub splits: Vec<(Split, Vec<u32>)>,
    pub tokenizer: Tokenizer,
    pub meta_path: Option<PathBuf>,
    pub source: String,
}

/// The folder the data lives in and, in text mode, the text file.
fn data_location(opts: &RewardPrepOptions) -> Result<(PathBuf, Option<PathBuf>)> {
    let parent = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
    match opts.input_mode {
        InputMode::Text => {
            let p = opts.data_path.clone().ok_or_else(|| {
                Error::Config(
                    "--input_mode text needs --data_path (a text file or a folder with input.txt)"
                        .into(),
                )
            })?;
            if p.is_dir() {
                Ok((p.clone(), Some(p.join("input.txt"))))
            } else {
                Ok((parent(&p), Some(p)))
            }
        }
        InputMode::Binary => {
            let tb = opts.train_bin.as_ref().ok_or_else(|| {
                Error::Config("--input_mode binary needs --train_bin and --val_bin".into())
            })?;
            Ok((parent(tb), None))
        }
        InputMode::Heldout => Err(Error::Config(
            "--input_mode heldout must be resolved to its token files first (resolve_heldout)"
                .into(),
        )),
    }
}

/// The tokenizer, and the meta file a char vocabulary comes from. `text` is the corpus in text
/// mode (a char vocabulary without a meta file is built from it).
fn tokenizer(
    choice: TokenizationChoice,
    meta: Option<PathBuf>,
    text: Option<&str>,
) -> Result<(Tokenizer, Option<PathBuf>)> {
    let char_level = match choice {
        TokenizationChoice::Auto => meta.is_some(),
        TokenizationChoice::Char => true,
        TokenizationChoice::Bpe => false,
    };
    if !char_level {
        return Ok((Tokenizer::Bpe, None));
    }
    match (&meta, text) {
        (Some(m), _) => Ok((Tokenizer::Char(CharVocab::load(m)?), meta)),
        (None, Some(t)) => Ok((Tokenizer::Char(CharVocab::from_text(t)), None)),
        (None, None) => Err(Error::Config(
            "char tokenization of binary token files needs a meta.pkl: pass --meta_path".into(),
        )),
    }
}

/// Reads and tokenizes the inputs as `opts` says, and checks them against the model.
pub fn resolve_inputs(opts: &RewardPrepOptions, model: &GPT) -> Result<Inputs> {
    let model_meta = opts.model_path.join(checkpoint::META);
    let (data_dir, text_file) = data_location(opts)?;
    let meta = opts
        .meta_path
        .clone()
        .or_else(|| data::data_meta(&data_dir))
        .or_else(|| model_meta.exists().then(|| model_meta.clone()));
    let inputs = match text_file {
        Some(file) => {
            let text = fsutil::read_text(&file)?;
            let (tok, meta_path) = tokenizer(opts.tokenization, meta, Some(&text))?;
            if text.is_empty() {
                return Err(Error::format(&file, "the text is empty"));
            }
            let (train_text, val_text) = data::split_text(&text, opts.train_split);
            let splits = vec![
                (Split::Train, tok.encode(train_text)?),
                (Split::Val, tok.encode(val_text)?),
            ];
            let source = format!("text:{}", file.display());
            Inputs {
                splits,
                tokenizer: tok,
                meta_path,
                source,
            }
        }
        None => {
            let vb = opts
                .val_bin
                .clone()
                .ok_or_else(|| Error::Config("--input_mode binary needs --val_bin too".into()))?;
            let tb = opts.train_bin.clone().unwrap_or_default();
            let (tok, meta_path) = tokenizer(opts.tokenization, meta, None)?;
            let splits = vec![
                (Split::Train, TokenFile::open(&tb)?.to_vec()),
                (Split::Val, TokenFile::open(&vb)?.to_vec()),
            ];
            let source = format!("binary:{},{}", tb.display(), vb.display());
            Inputs {
                splits,
                tokenizer: tok,
                meta_path,
                source,
            }
        }
    };
    check_compat(&inputs, model, &model_meta)?;
    Ok(inputs)
}

/// Tokenizer vs model vocabulary, char vocabulary vs the model's own meta, data vs block_size.
fn check_compat(inputs: &Inputs, model: &GPT, model_meta: &Path) -> Result<()> {
    let tok = &inputs.tokenizer;
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
    for (split, t) in &inputs.splits {
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

/// FNV-1a over a string: a stable fingerprint of a run's arguments (for resuming).
fn fingerprint(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Everything one split's generation needs.
struct SplitJob<'a> {
    model: &'a GPT,
    split: Split,
    tokens: &'a [u32],
    blocks: Vec<usize>,
    opts: &'a RewardPrepOptions,
    sample: SampleOptions,
}

impl SplitJob<'_> {
    /// Generates the samples of `blocks` (in block order, `samples_per_chunk` each): their
    /// token rows and labels. A cut 0 < K < N keeps K natural tokens and generates the rest;
    /// K = N is the natural block; K = 0 is N tokens generated after the block's first token
    /// (which is then dropped).
    fn generate(&self, blocks: &[usize]) -> Result<(Seqs, Vec<[f32; 2]>)> {
        let n = self.model.config.block_size;
        let o = self.opts;
        let mut plan = Vec::with_capacity(blocks.len() * o.samples_per_chunk);
        for &b in blocks {
            let natural = &self.tokens[b * n..(b + 1) * n];
            let cuts = recipe::block_plan_full(
                o.seed,
                self.split,
                b,
                o.samples_per_chunk,
                n,
                o.full_share,
            );
            plan.extend(cuts.into_iter().map(|(k, seed)| (natural, k, seed)));
        }
        let batching = Batching {
            batch_size: o.batch_size,
            workers: device::workers(o.threads),
        };
        let cut: Vec<usize> = (0..plan.len())
            .filter(|&i| (1..n).contains(&plan[i].1))
            .collect();
        let rows: Vec<Row> = cut
            .iter()
            .map(|&i| Row {
                prefix: &plan[i].0[..plan[i].1],
                seed: plan[i].2,
            })
            .collect();
        let mut seqs: Seqs = plan.iter().map(|(nat, _, _)| nat.to_vec()).collect();
        for (&i, s) in cut.iter().zip(sampling::complete(
            self.model,
            &rows,
            n,
            &self.sample,
            &batching,
        )?) {
            seqs[i] = s;
        }
        let fresh: Vec<usize> = (0..plan.len()).filter(|&i| plan[i].1 == 0).collect();
        let rows: Vec<Row> = fresh
            .iter()
            .map(|&i| Row {
                prefix: &plan[i].0[..1],
                seed: plan[i].2,
            })
            .collect();
        for (&i, s) in fresh.iter().zip(sampling::complete(
            self.model,
            &rows,
            n + 1,
            &self.sample,
            &batching,
        )?) {
            seqs[i] = s[1..].to_vec();
        }
        let labels = plan.iter().map(|(_, k, _)| recipe::label(*k, n)).collect();
        Ok((seqs, labels))
    }
}

/// Generates one split into `opts.output_dir`, resuming an interrupted run with the same
/// arguments. Returns the metadata written.
fn generate_split(
    job: &SplitJob,
    inputs: &Inputs,
    base_meta: &Metadata,
    show_progress: bool,
) -> Result<Metadata> {
    let (n, name) = (job.model.config.block_size, job.split.name());
    let total = job.blocks.len();
    let fp = fingerprint(&format!(
        "{:?}|{}|{}|{:?}|{}|{}",
        base_meta.fingerprint_fields(),
        name,
        job.tokens.len(),
        &job.tokens[..n.min(job.tokens.len())],
        total,
        inputs.source
    ));
    let spc = job.opts.samples_per_chunk;
    let (mut writer, done) = SplitWriter::open(&job.opts.output_dir, name, n, spc, &fp)?;
    if done > 0 {
        eprintln!("{name}: resuming after {done} of {total} blocks");
    }
    if show_progress {
        println!(
            "{name}: {} natural tokens -> {total} blocks of {n} covered by this run -> {} samples",
            job.tokens.len(),
            total * spc
        );
    }
    let template = format!(
        "{name:>5} {{bar:30}} {{pos}}/{{len}} blocks [{{elapsed_precise}}<{{eta_precise}}] {{per_sec}}"
    );
    let pb = progress::bar(total, done, show_progress, &template);
    // Blocks are generated and appended ~4,096 samples at a time (the unit a rerun resumes at).
    let blocks_per_write = (4096 / spc).max(1);
    let mut pos = done;
    while pos < total {
        let group = &job.blocks[pos..(pos + blocks_per_write).min(total)];
        let (seqs, labels) = job.generate(group)?;
        pos += group.len();
        writer.append(&seqs, &labels, pos, inputs.tokenizer.vocab_size())?;
        pb.set_position(pos as u64);
        if pb.is_hidden() && show_progress {
            // No terminal: a plain progress line per write instead of the bar.
            println!("{name}: {pos}/{total} blocks");
        }
        if stop::requested() && pos < total {
            pb.finish_and_clear();
            return Err(Error::Interrupted(format!(
                "stopped after {pos} of {total} {name} blocks (written); rerun the same command to resume"
            )));
        }
    }
    pb.finish_and_clear();
    writer.finish(Metadata {
        num_blocks: total,
        split: name.to_string(),
        ..base_meta.clone()
    })
}

/// The absolute form of a path for metadata (as given when it cannot be resolved).
fn absolute(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// The metadata fields shared by both splits of a run.
fn base_metadata(opts: &RewardPrepOptions, model: &GPT, inputs: &Inputs) -> Metadata {
    Metadata {
        format_version: dataset::FORMAT_VERSION,
        block_size: model.config.block_size,
        tokenization_method: inputs.tokenizer.method().to_string(),
        vocab_size: inputs.tokenizer.vocab_size(),
        meta_path: inputs.meta_path.as_deref().map(absolute),
        base_model_path: absolute(&opts.model_path),
        base_model_config: serde_json::to_string(&model.config).unwrap_or_default(),
        temperature: opts.temperature,
        top_k: opts.top_k,
        samples_per_chunk: opts.samples_per_chunk,
        full_share: opts.full_share,
        seed: opts.seed,
        train_split: opts.train_split,
        source: inputs.source.clone(),
        num_shards: opts.num_shards,
        shard_index: opts.shard_index,
        created_at: dataset::now_iso8601(),
        ..Default::default()
    }
}

/// What a run produced, per split.
pub struct PrepSummary {
    pub metas: Vec<Metadata>,
    pub seconds: f64,
    pub generated_tokens: usize,
}

/// Runs `prepare-reward-data` on an already loaded base model.
pub fn run(opts: &RewardPrepOptions, model: &GPT, show_progress: bool) -> Result<PrepSummary> {
    let sample = opts.validate()?;
    let _lock = DirLock::acquire(&opts.output_dir)?;
    let (opts, _) = resolve_heldout(opts, model.config.block_size)?;
    let inputs = resolve_inputs(&opts, model)?;
    // Only ids the tokenizer can decode (a padded model has more).
    let sample = SampleOptions {
        vocab: Some(inputs.tokenizer.vocab_size()),
        ..sample
    };
    let base = base_metadata(&opts, model, &inputs);
    let n = model.config.block_size;
    let t0 = std::time::Instant::now();
    let mut metas = Vec::new();
    let mut generated = 0;
    for (split, tokens) in &inputs.splits {
        let blocks = recipe::covered_blocks(
            tokens.len() / n,
            opts.max_blocks,
            opts.num_shards,
            opts.shard_index,
        );
        if blocks.is_empty() {
            return Err(Error::Other(format!(
                "the {} split gives no block to this shard; lower --num_shards",
                split.name()
            )));
        }
        let job = SplitJob {
            model,
            split: *split,
            tokens,
            blocks,
            opts: &opts,
            sample,
        };
        let m = generate_split(&job, &inputs, &base, show_progress)?;
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
