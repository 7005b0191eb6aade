//! `nanoreward judge`: the independent measurement of generators — how hard their text is to
//! tell from natural text, by judges they never trained against, on natural text neither they
//! nor the reward models trained on.
//!
//! - C2ST ([`c2st`]): a detector trained from scratch for this measurement — its own trunk (a
//!   model of natural text trained on the train split with its own seed, or one given) and its
//!   own head (a logistic regression on the trunk's pooled states, its own log-likelihood
//!   statistics and the share of known words) — separates natural windows from fresh samples
//!   on one half of the natural text and is scored on the other half and other fresh samples,
//!   and the other way round: AUROC with a bootstrap 95% interval (0.5: indistinguishable).
//! - MAUVE ([`mauve`]) on the judge trunk's mean-pooled states.
//! - Text statistics ([`text`]): word validity, distinct-2/3, repetition, character 3-gram JSD;
//!   and the generator's val loss on natural text.
//! - Optionally the AUROC of given reward models on the same test windows.
//!
//! Every generator is judged at every temperature of `temperatures`; `judge.json`, a table and
//! `frontier.svg` (MAUVE and C2ST AUROC against distinct-3, one line per generator) result.
//! Everything is drawn from `seed`, so a run is deterministic.

pub mod c2st;
pub mod mauve;
pub mod text;

use crate::checkpoint::Checkpoint;
use crate::data::{self, TokenFile};
use crate::metrics::{self, Series};
use crate::model::GPT;
use crate::reward::best_of::{self, Calibration, Pick};
use crate::reward::features::{self, View};
use crate::reward::lexicon::Lexicon;
use crate::reward::{RewardModel, eval};
use crate::sampling::{self, SampleOptions};
use crate::tokenizer::Tokenizer;
use crate::train::{self, mean_loss};
use crate::util::{device, fsutil, rng::mix, to_host};
use crate::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `judge` configuration (TOML + `--key=value`; `[judge]` in a cycle config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JudgeConfig {
    /// The generators to judge (checkpoints).
    pub generators: Vec<String>,
    /// train.bin (the judge trunk's text and the vocabulary of word validity) and val.bin
    /// (the generators' val loss), with meta.pkl.
    pub data_dir: String,
    /// Natural text for the test: a token file neither the generators nor the reward models
    /// trained on (default: data_dir/val.bin), cut into blocks of window_len; its first half
    /// trains the C2ST detector, its second half tests it.
    pub natural: String,
    pub out_dir: String,
    pub temperatures: Vec<f64>,
    /// 0 = no top-k.
    pub top_k: usize,
    /// Natural and generated windows each, for training and again for testing.
    pub windows: usize,
    /// Window length in tokens (at most the generators' and the trunk's block_size).
    pub window_len: usize,
    /// The judge trunk: a checkpoint of a model of natural text; empty = train the quick-start
    /// model on data_dir/train.bin for `trunk_iters` iterations with `trunk_seed` (kept in
    /// out_dir/judge_trunk and reused).
    pub trunk: String,
    pub trunk_iters: usize,
    #[serde(deserialize_with = "crate::config::seed")]
    pub trunk_seed: u64,
    /// MAUVE's k-means clusters (0 = one per ten samples).
    pub clusters: usize,
    /// Batches of the generators' val loss.
    pub val_batches: usize,
    /// Reward models whose AUROC on the same test windows is reported too.
    pub reward_models: Vec<String>,
    /// Best-of-n sampling: each window is generated `best_of` times and the one `best_of_model`
    /// (a reward model) rates most natural is judged (1 = plain sampling).
    pub best_of: usize,
    pub best_of_model: String,
    /// 0 keeps the most natural; τ > 0 draws one ∝ (P / (1 − P))^(1/τ) (see reward::best_of).
    pub best_of_temperature: f64,
    /// Natural text (a token .bin) the best-of reward model never trained on: when given, the
    /// pick temperature is fitted for each generator and temperature (reward::best_of::calibrate
    /// on `windows` of its windows and as many plain samples) instead of `best_of_temperature`.
    pub best_of_calibration: String,
    /// Also score natural text in a generator's place (MAUVE's reach on this judge, see
    /// [`NaturalMauve`]): a few seconds; false leaves `natural_mauve` out of judge.json.
    pub natural_mauve: bool,
    #[serde(deserialize_with = "crate::config::seed")]
    pub seed: u64,
    pub device: String,
    pub threads: usize,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            generators: Vec::new(),
            data_dir: "data/shakespeare_char".into(),
            natural: String::new(),
            out_dir: "out-judge".into(),
            temperatures: vec![1.0],
            top_k: 0,
            windows: 512,
            window_len: 64,
            trunk: String::new(),
            trunk_iters: 1000,
            trunk_seed: 4242,
            clusters: 0,
            val_batches: 20,
            reward_models: Vec::new(),
            best_of: 1,
            best_of_model: String::new(),
            best_of_temperature: 0.0,
            best_of_calibration: String::new(),
            natural_mauve: true,
            seed: 2718,
            device: "auto".into(),
            threads: 0,
        }
    }
}

impl JudgeConfig {
    /// Rejects settings that cannot run.
    pub fn validate(&self) -> Result<()> {
        if self.generators.is_empty() {
            return Err(Error::Config(
                "give at least one generator to judge (generators = [\"CKPT\", ...] or --generators=CKPT)".into(),
            ));
        }
        if self.windows < 8 || self.window_len < 4 {
            return Err(Error::Config(
                "windows must be ≥ 8 and window_len ≥ 4".into(),
            ));
        }
        if self.temperatures.is_empty()
            || self
                .temperatures
                .iter()
                .any(|t| !(t.is_finite() && *t > 0.0))
        {
            return Err(Error::Config(
                "temperatures must be a non-empty list of numbers > 0".into(),
            ));
        }
        if self.best_of == 0 || (self.best_of > 1 && self.best_of_model.is_empty()) {
            return Err(Error::Config(
                "best_of must be ≥ 1, and above 1 it needs best_of_model (a reward model checkpoint)".into(),
            ));
        }
        Pick::from_temperature(self.best_of_temperature)?;
        if self.best_of <= 1 && !self.best_of_calibration.is_empty() {
            return Err(Error::Config(
                "best_of_calibration calibrates best-of picking: it needs best_of > 1".into(),
            ));
        }
        Ok(())
    }
}

/// Best-of-n sampling as the judge ran it (see [`JudgeConfig::best_of`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BestOf {
    pub n: usize,
    pub model: String,
    pub temperature: f64,
    /// The natural text the pick temperature was calibrated on (each row's
    /// `best_of_calibration` holds its fit, and `temperature` is unused); empty: not calibrated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub calibrated_on: String,
}

/// One generator at one temperature, judged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JudgeRow {
    pub generator: String,
    pub temperature: f64,
    pub c2st: c2st::C2st,
    #[serde(with = "crate::util::nan_as_null")]
    pub mauve: f64,
    /// MAUVE's bootstrap 95% interval over the samples on the same clusters (absent in files
    /// written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mauve_ci95: Option<[f64; 2]>,
    #[serde(with = "crate::util::nan_as_null")]
    pub word_validity: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub distinct_2: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub distinct_3: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub repetition: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub trigram_jsd: f64,
    /// The generator's loss on natural val text (independent of the temperature).
    #[serde(with = "crate::util::nan_as_null")]
    pub val_loss: f64,
    /// The AUROC of each given reward model on the same test windows.
    pub reward_model_auroc: Vec<f64>,
    /// The best-of pick's calibration for this generator and temperature (its temperature is
    /// 1 / slope), when the judge calibrated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_of_calibration: Option<Calibration>,
}

impl JudgeRow {
    /// MAUVE with its interval when measured: "0.701 [0.65-0.75]".
    pub fn mauve_text(&self) -> String {
        with_interval(self.mauve, self.mauve_ci95)
    }

    /// The row in one line: C2ST AUROC with its interval, MAUVE (with its), word validity.
    pub fn verdict(&self) -> String {
        format!(
            "C2ST AUROC {:.3} [{:.3}-{:.3}], MAUVE {}, word validity {:.3}",
            self.c2st.auroc,
            self.c2st.ci95[0],
            self.c2st.ci95[1],
            self.mauve_text(),
            self.word_validity
        )
    }
}

/// A measurement with its 95% interval when there is one: "0.701 [0.65-0.75]".
pub fn with_interval(value: f64, ci95: Option<[f64; 2]>) -> String {
    match ci95 {
        Some([lo, hi]) => format!("{value:.3} [{lo:.2}-{hi:.2}]"),
        None => format!("{value:.3}"),
    }
}

/// What `judge` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JudgeReport {
    pub rows: Vec<JudgeRow>,
    /// The same text statistics of the natural test windows (the target).
    #[serde(with = "crate::util::nan_as_null")]
    pub natural_word_validity: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub natural_distinct_3: f64,
    #[serde(with = "crate::util::nan_as_null")]
    pub natural_repetition: f64,
    pub trunk: String,
    pub windows: usize,
    pub window_len: usize,
    /// The judge's seed (a cycle derives it), so a judgement can be repeated with `--seed`
    /// (absent from reports written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Present when the generators' windows were best of n by a reward model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_of: Option<BestOf>,
    /// MAUVE's reach on this judge: natural text scored in a generator's place (absent from
    /// reports written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub natural_mauve: Option<NaturalMauve>,
}

/// What natural text scores in a generator's place, against the same natural test windows, on
/// the same number of windows, clusters and bootstrap: the most MAUVE a generator can reach
/// on this judge (MAUVE's finite-sample ceiling), with its 95% interval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NaturalMauve {
    /// The first half's natural windows (the C2ST detector's training text): unseen text of the
    /// same file, another part of it.
    pub other_half: f64,
    pub other_half_ci95: [f64; 2],
    /// Windows of train.bin: the text the generators learned (and the judge trunk too).
    pub train_text: f64,
    pub train_text_ci95: [f64; 2],
}

impl NaturalMauve {
    /// Both readings with their intervals: "0.808 [0.71-0.91] (the other half), 0.671 [...] (train.bin)".
    pub fn text(&self) -> String {
        format!(
            "{} (the other half), {} (train.bin)",
            with_interval(self.other_half, Some(self.other_half_ci95)),
            with_interval(self.train_text, Some(self.train_text_ci95))
        )
    }
}

impl JudgeReport {
    /// Reads a `judge.json`.
    pub fn read(path: &Path) -> Result<Self> {
        serde_json::from_slice(&fsutil::read(path)?)
            .map_err(|e| Error::format(path, format!("not a judge report: {e}")))
    }
}

/// The judge: its trunk, the vocabulary, the natural windows and their features.
struct Judge {
    trunk: GPT,
    lexicon: Lexicon,
    tokenizer: Tokenizer,
    n: usize,
    natural: Halves,
    natural_features: [Features; 2],
    /// Windows of train.bin, as many as of each half (natural text in a generator's place).
    train: Vec<Vec<u32>>,
    /// Best-of-n sampling: the reward model that picks, n and how.
    best_of: Option<Picker>,
}

/// The judge's best-of-n picking: the reward model, n, how (unless calibrated), and the natural
/// windows the pick temperature is calibrated on.
struct Picker {
    rm: RewardModel,
    n: usize,
    how: Pick,
    calibration: Option<Vec<Vec<u32>>>,
}

/// The judge's view of windows: C2ST feature rows and MAUVE embeddings.
struct Features {
    rows: Vec<Vec<f64>>,
    embeddings: Vec<Vec<f32>>,
}

impl Judge {
    /// C2ST rows (mean-pooled and last trunk state, the trunk's mean log-likelihood, log-rank
    /// and entropy, the share of known words) and MAUVE embeddings (mean-pooled states).
    fn features(&self, windows: &[Vec<u32>]) -> Features {
        let m = &self.trunk;
        let c = m.config.n_embd;
        let mut rows = Vec::with_capacity(windows.len());
        let mut embeddings = Vec::with_capacity(windows.len());
        let stats = features::window_stats(m, windows, View::RAW, 64);
        for (chunk, st) in windows.chunks(64).zip(stats.chunks(64)) {
            let ids: Vec<i64> = chunk.iter().flatten().map(|&t| t as i64).collect();
            let h = to_host(m.hidden_states(m.tokens(&ids, chunk.len())));
            let t = self.n;
            for (r, (w, s)) in chunk.iter().zip(st).enumerate() {
                let rowh = &h[r * t * c..(r + 1) * t * c];
                let mean: Vec<f32> = (0..c)
                    .map(|j| (0..t).map(|i| rowh[i * c + j]).sum::<f32>() / t as f32)
                    .collect();
                let last = &rowh[(t - 1) * c..t * c];
                let z = features::zero_shot(s);
                let known = self.lexicon.known_share(&self.tokenizer.decode(w));
                let mut row: Vec<f64> = mean.iter().chain(last).map(|&v| v as f64).collect();
                row.extend([z.loglik, z.logrank, z.entropy, known]);
                rows.push(row);
                embeddings.push(mean);
            }
        }
        Features { rows, embeddings }
    }
}

/// The judge trunk: the given checkpoint, or the quick-start model trained on the train split
/// (reused when out_dir/judge_trunk holds it).
fn judge_trunk(cfg: &JudgeConfig, dev: &burn::tensor::Device) -> Result<(GPT, String)> {
    if !cfg.trunk.is_empty() {
        return Ok((
            Checkpoint::open(Path::new(&cfg.trunk))?.model(dev)?,
            cfg.trunk.clone(),
        ));
    }
    let out = PathBuf::from(&cfg.out_dir).join("judge_trunk");
    let ckpt = out.join("ckpt");
    if !ckpt.join(crate::checkpoint::CONFIG).exists() {
        let s = |v: &dyn ToString| v.to_string();
        let overrides = vec![
            (s(&"data_dir"), cfg.data_dir.clone()),
            (s(&"out_dir"), out.display().to_string()),
            (s(&"max_iters"), s(&cfg.trunk_iters)),
            (s(&"lr_decay_iters"), s(&cfg.trunk_iters)),
            (s(&"eval_interval"), s(&cfg.trunk_iters.max(1))),
            (s(&"always_save_checkpoint"), s(&true)),
            (s(&"seed"), s(&cfg.trunk_seed)),
            (s(&"threads"), s(&cfg.threads)),
        ];
        println!(
            "judge trunk: training the quick-start model for {} iterations",
            cfg.trunk_iters
        );
        train::run(&train::quickstart(&overrides)?, true)?;
    }
    Ok((
        Checkpoint::open(&ckpt)?.model(dev)?,
        ckpt.display().to_string(),
    ))
}

/// `count` windows of `n` tokens of `tokens`: blocks at offsets k·n (as reward data cuts its
/// blocks) drawn at random without replacement while there are enough, then again.
fn windows_of(
    tokens: &[u32],
    n: usize,
    count: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Vec<u32>>> {
    let blocks = tokens.len() / n;
    if blocks == 0 {
        return Err(Error::Mismatch(format!(
            "the natural text half has {} tokens, fewer than a window of {n}",
            tokens.len()
        )));
    }
    let mut order: Vec<usize> = Vec::with_capacity(count);
    while order.len() < count {
        let mut all: Vec<usize> = (0..blocks).collect();
        all.shuffle(rng);
        order.extend(all.into_iter().take(count - order.len()));
    }
    Ok(order
        .into_iter()
        .map(|b| tokens[b * n..(b + 1) * n].to_vec())
        .collect())
}

/// Builds the judge: trunk, vocabulary and the natural windows of both halves.
fn judge(cfg: &JudgeConfig, dev: &burn::tensor::Device) -> Result<(Judge, String)> {
    let data_dir = PathBuf::from(&cfg.data_dir);
    let tokenizer = data::data_tokenizer(&data_dir)?;
    let (trunk, trunk_path) = judge_trunk(cfg, dev)?;
    let train_tokens = TokenFile::open(&data_dir.join("train.bin"))?.to_vec();
    let lexicon = Lexicon::from_text(&tokenizer.decode(&train_tokens));
    let natural_path = if cfg.natural.is_empty() {
        data_dir.join("val.bin")
    } else {
        PathBuf::from(&cfg.natural)
    };
    let tokens = TokenFile::open(&natural_path)?.to_vec();
    let n = cfg.window_len.min(trunk.config.block_size);
    let half = tokens.len() / 2 / n * n;
    let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed ^ 0x6a75_6467));
    let natural = [
        windows_of(&tokens[..half], n, cfg.windows, &mut rng)?,
        windows_of(&tokens[half..], n, cfg.windows, &mut rng)?,
    ];
    // Its own stream, so that every other draw is what it was before it was measured.
    let mut train_rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed ^ 0x0074_7261_696e));
    let train = windows_of(&train_tokens, n, cfg.windows, &mut train_rng)?;
    let mut j = Judge {
        trunk,
        lexicon,
        tokenizer,
        n,
        natural: [Vec::new(), Vec::new()],
        natural_features: [
            Features {
                rows: Vec::new(),
                embeddings: Vec::new(),
            },
            Features {
                rows: Vec::new(),
                embeddings: Vec::new(),
            },
        ],
        train,
        best_of: None,
    };
    if cfg.best_of > 1 {
        let mut rm = RewardModel::load(Path::new(&cfg.best_of_model), dev)?;
        rm.workers = device::workers(cfg.threads);
        let calibration = if cfg.best_of_calibration.is_empty() {
            None
        } else {
            let t = TokenFile::open(Path::new(&cfg.best_of_calibration))?.to_vec();
            Some(windows_of(&t, n, cfg.windows, &mut rng)?)
        };
        j.best_of = Some(Picker {
            rm,
            n: cfg.best_of,
            how: Pick::from_temperature(cfg.best_of_temperature)?,
            calibration,
        });
    }
    j.natural_features = [j.features(&natural[0]), j.features(&natural[1])];
    j.natural = natural;
    Ok((j, trunk_path))
}

/// Windows of the two halves of the natural text (or the samples that follow their first tokens).
type Halves = [Vec<Vec<u32>>; 2];

/// The generator's samples after the first token of each natural window of both halves (each
/// the best of n when the judge samples best-of-n), and the pick's calibration when it has one.
fn samples(
    j: &Judge,
    g: &GPT,
    temperature: f64,
    top_k: usize,
    seed: u64,
) -> Result<(Halves, Option<Calibration>)> {
    let opts = SampleOptions {
        temperature,
        top_k: sampling::top_k_or_all(top_k),
        vocab: Some(j.tokenizer.vocab_size()),
    };
    let workers = device::workers(0);
    // The picker and how it picks: its configured way, or the temperature calibrated for this
    // generator and temperature.
    let mut calibrated = None;
    let picker = match &j.best_of {
        None => None,
        Some(p) => {
            let how = match &p.calibration {
                None => p.how,
                Some(natural) => {
                    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0x0063_616c));
                    let c = best_of::calibrate(g, &p.rm, natural, &opts, &mut rng, workers)?;
                    let temperature = c.temperature();
                    calibrated = Some(c);
                    Pick::Resample { temperature }
                }
            };
            Some((p, how))
        }
    };
    let mut out = [Vec::new(), Vec::new()];
    for (half, slot) in out.iter_mut().enumerate() {
        let prompts: Vec<Vec<u32>> = j.natural[half].iter().map(|w| vec![w[0]]).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ half as u64));
        let (len, rng) = (j.n - 1, &mut rng);
        *slot = match picker {
            Some((p, how)) => {
                best_of::generate(g, &p.rm, &prompts, len, &opts, p.n, how, rng, workers)?
            }
            None => sampling::generate(g, &prompts, len, &opts, rng, workers)?,
        };
    }
    Ok((out, calibrated))
}

/// One generator at one temperature.
#[allow(clippy::too_many_arguments)]
fn judge_row(
    cfg: &JudgeConfig,
    j: &Judge,
    name: &str,
    g: &GPT,
    val_loss: f64,
    temperature: f64,
    seed: u64,
    rms: &[RewardModel],
) -> Result<JudgeRow> {
    let ([train_gen, test_gen], best_of_calibration) = samples(j, g, temperature, cfg.top_k, seed)?;
    let (fa, fb) = (j.features(&train_gen), j.features(&test_gen));
    let nat = &j.natural_features;
    let c2st = c2st::test([&nat[0].rows, &nat[1].rows], [&fa.rows, &fb.rows], seed);
    let (mauve, mauve_ci95) =
        mauve::mauve_interval(&nat[1].embeddings, &fb.embeddings, cfg.clusters, 1000, seed)?;
    let texts: Vec<String> = test_gen.iter().map(|w| j.tokenizer.decode(w)).collect();
    let natural: Vec<String> = j.natural[1].iter().map(|w| j.tokenizer.decode(w)).collect();
    let all: Vec<Vec<u32>> = j.natural[1].iter().chain(&test_gen).cloned().collect();
    let labels: Vec<bool> = (0..all.len()).map(|i| i < j.natural[1].len()).collect();
    let reward_model_auroc = rms
        .iter()
        .map(|rm| {
            let s: Vec<f64> = rm.score(&all)?.iter().map(|&v| v as f64).collect();
            Ok(eval::auroc(&s, &labels))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(JudgeRow {
        generator: name.to_string(),
        temperature,
        c2st,
        mauve,
        mauve_ci95: Some(mauve_ci95),
        word_validity: text::word_validity(&j.lexicon, &texts),
        distinct_2: text::distinct_n(&texts, 2),
        distinct_3: text::distinct_n(&texts, 3),
        repetition: text::repetition_rate(&texts),
        trigram_jsd: text::trigram_jsd(&texts, &natural),
        val_loss,
        reward_model_auroc,
        best_of_calibration,
    })
}

/// MAUVE of natural text in a generator's place (see [`NaturalMauve`]).
fn natural_mauve(cfg: &JudgeConfig, j: &Judge) -> Result<NaturalMauve> {
    let test = &j.natural_features[1].embeddings;
    let seed = mix(cfg.seed ^ 0x006e_6174);
    let (other_half, other_half_ci95) = mauve::mauve_interval(
        test,
        &j.natural_features[0].embeddings,
        cfg.clusters,
        1000,
        seed,
    )?;
    let train = j.features(&j.train).embeddings;
    let (train_text, train_text_ci95) =
        mauve::mauve_interval(test, &train, cfg.clusters, 1000, seed)?;
    Ok(NaturalMauve {
        other_half,
        other_half_ci95,
        train_text,
        train_text_ci95,
    })
}

/// The generator's mean loss on `batches` random windows of val.bin.
fn val_loss(cfg: &JudgeConfig, g: &GPT) -> Result<f64> {
    let val = TokenFile::open(&PathBuf::from(&cfg.data_dir).join("val.bin"))?;
    let bs = g.config.block_size.min(val.len().saturating_sub(1));
    let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed ^ 0x0076_616c));
    let batches: Vec<(Vec<i64>, Vec<i64>)> = (0..cfg.val_batches)
        .map(|_| val.random_batch(&mut rng, 16, bs))
        .collect();
    Ok(mean_loss(g, &batches, 16, device::workers(cfg.threads)))
}

/// Runs the judge; writes `judge.json` and `frontier.svg` into `out_dir`.
pub fn run(cfg: &JudgeConfig) -> Result<JudgeReport> {
    cfg.validate()?;
    check_inputs(cfg)?;
    let _lock = crate::util::lock::DirLock::acquire(Path::new(&cfg.out_dir))?;
    device::set_threads(cfg.threads);
    let dev = device::select(&cfg.device)?;
    let mut rms = Vec::new();
    for p in &cfg.reward_models {
        rms.push(RewardModel::load(Path::new(p), &dev)?);
    }
    let (j, trunk) = judge(cfg, &dev)?;
    let mut rows = Vec::new();
    for (gi, path) in cfg.generators.iter().enumerate() {
        let ck = Checkpoint::open(Path::new(path))?;
        let g = ck.model(&dev)?;
        if g.config.block_size < j.n {
            return Err(Error::Mismatch(format!(
                "{path} has block_size {} but the judge's windows are {} tokens: lower window_len",
                g.config.block_size, j.n
            )));
        }
        let vl = val_loss(cfg, &g)?;
        for (ti, &t) in cfg.temperatures.iter().enumerate() {
            let seed = mix(cfg.seed ^ mix((gi << 16 | ti) as u64));
            rows.push(judge_row(cfg, &j, path, &g, vl, t, seed, &rms)?);
        }
    }
    let natural: Vec<String> = j.natural[1].iter().map(|w| j.tokenizer.decode(w)).collect();
    let report = JudgeReport {
        rows,
        natural_word_validity: text::word_validity(&j.lexicon, &natural),
        natural_distinct_3: text::distinct_n(&natural, 3),
        natural_repetition: text::repetition_rate(&natural),
        trunk,
        windows: cfg.windows,
        window_len: j.n,
        seed: Some(cfg.seed),
        best_of: (cfg.best_of > 1).then(|| BestOf {
            n: cfg.best_of,
            model: cfg.best_of_model.clone(),
            temperature: cfg.best_of_temperature,
            calibrated_on: cfg.best_of_calibration.clone(),
        }),
        natural_mauve: cfg
            .natural_mauve
            .then(|| natural_mauve(cfg, &j))
            .transpose()?,
    };
    let out = PathBuf::from(&cfg.out_dir);
    fsutil::create_dir_all(&out)?;
    let text = serde_json::to_string_pretty(&report).map_err(|e| Error::Other(e.to_string()))?;
    fsutil::write_bytes_atomic(&out.join("judge.json"), text.as_bytes())?;
    plot_frontier(&report, &out.join("frontier.svg"))?;
    Ok(report)
}

/// The judgement `cfg` asks for: out_dir/judge.json when an earlier run wrote it (a resumed
/// pipeline), which must hold the same generators at the same temperatures, else a fresh [`run`].
pub fn run_or_reuse(cfg: &JudgeConfig) -> Result<JudgeReport> {
    let done = Path::new(&cfg.out_dir).join("judge.json");
    if !done.exists() {
        return run(cfg);
    }
    let report = JudgeReport::read(&done)?;
    let expected = cfg
        .generators
        .iter()
        .flat_map(|g| cfg.temperatures.iter().map(move |&t| (g, t)));
    let same = report.rows.len() == cfg.generators.len() * cfg.temperatures.len()
        && report
            .rows
            .iter()
            .zip(expected)
            .all(|(row, (g, t))| &row.generator == g && (row.temperature - t).abs() < 1e-9);
    if !same {
        return Err(Error::format(
            &done,
            format!(
                "judges other generators or temperatures than asked for now: delete {} to judge again",
                cfg.out_dir
            ),
        ));
    }
    Ok(report)
}

/// Fails on the first input that cannot be read (generators, the judge trunk, the corpus's
/// train.bin, the natural text), before the judge trunk trains.
fn check_inputs(cfg: &JudgeConfig) -> Result<()> {
    let trunk = Some(cfg.trunk.as_str()).filter(|t| !t.is_empty());
    let picker = Some(cfg.best_of_model.as_str()).filter(|_| cfg.best_of > 1);
    for p in cfg
        .generators
        .iter()
        .map(String::as_str)
        .chain(trunk)
        .chain(picker)
    {
        crate::checkpoint::ensure_exists(Path::new(p))?;
    }
    TokenFile::open(&PathBuf::from(&cfg.data_dir).join("train.bin"))?;
    for text in [&cfg.natural, &cfg.best_of_calibration] {
        if !text.is_empty() {
            TokenFile::open(Path::new(text))?;
        }
    }
    Ok(())
}

/// MAUVE and C2ST AUROC against distinct-3 (the quality–diversity frontier), one line per
/// generator through its temperatures.
pub fn plot_frontier(report: &JudgeReport, path: &Path) -> Result<()> {
    let mut names: Vec<&str> = report.rows.iter().map(|r| r.generator.as_str()).collect();
    names.dedup();
    let series = |f: &dyn Fn(&JudgeRow) -> f64| -> Vec<Series> {
        names
            .iter()
            .map(|n| Series {
                name: (*n).to_string(),
                points: report
                    .rows
                    .iter()
                    .filter(|r| r.generator == *n)
                    .map(|r| (r.distinct_3, f(r)))
                    .collect(),
            })
            .collect()
    };
    metrics::plot_panels(
        path,
        "quality-diversity frontier (points: temperatures)",
        "distinct-3 (diversity)",
        &[
            ("MAUVE (higher: closer to natural)", series(&|r| r.mauve)),
            (
                "C2ST AUROC (lower: harder to detect)",
                series(&|r| r.c2st.auroc),
            ),
        ],
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A judged row with made-up figures (for tests of what reads reports).
    pub(crate) fn row(generator: &str, temperature: f64) -> JudgeRow {
        JudgeRow {
            generator: generator.into(),
            temperature,
            c2st: c2st::C2st {
                auroc: 0.9,
                ci95: [0.88, 0.92],
            },
            mauve: 0.6,
            mauve_ci95: None,
            word_validity: 0.7,
            distinct_2: 0.5,
            distinct_3: 0.8,
            repetition: 0.1,
            trigram_jsd: 0.05,
            val_loss: 1.9,
            reward_model_auroc: Vec::new(),
            best_of_calibration: None,
        }
    }

    /// A finished judgement is read back instead of judged again (the generators named here do
    /// not exist, so a fresh run would fail), and one of other generators or temperatures is
    /// refused with the folder to delete.
    #[test]
    fn a_finished_judgement_is_reused_only_when_it_judged_the_same_thing() {
        let d = tempfile::tempdir().unwrap();
        let report = JudgeReport {
            rows: vec![row("a", 0.9), row("a", 1.0), row("b", 0.9), row("b", 1.0)],
            natural_word_validity: 0.8,
            natural_distinct_3: 0.9,
            natural_repetition: 0.05,
            trunk: "trunk".into(),
            windows: 8,
            window_len: 16,
            seed: Some(1),
            best_of: None,
            natural_mauve: None,
        };
        let text = serde_json::to_string(&report).unwrap();
        std::fs::write(d.path().join("judge.json"), text).unwrap();
        let cfg = |generators: &[&str], temperatures: &[f64]| JudgeConfig {
            generators: generators.iter().map(|g| g.to_string()).collect(),
            temperatures: temperatures.to_vec(),
            out_dir: d.path().display().to_string(),
            ..Default::default()
        };
        let again = run_or_reuse(&cfg(&["a", "b"], &[0.9, 1.0])).unwrap();
        assert_eq!(again.rows.len(), 4);
        assert_eq!(again.rows[2].generator, "b");
        for other in [
            cfg(&["a", "b"], &[0.9, 1.1]),
            cfg(&["b", "a"], &[0.9, 1.0]),
            cfg(&["a"], &[0.9, 1.0]),
        ] {
            let e = run_or_reuse(&other).unwrap_err().to_string();
            assert!(e.contains("delete"), "{e}");
        }
        // Without a judge.json it judges, and fails on the missing generator.
        let fresh = JudgeConfig {
            out_dir: d.path().join("new").display().to_string(),
            ..cfg(&["a"], &[1.0])
        };
        assert!(run_or_reuse(&fresh).is_err());
    }
}
