//! The reward model: a generator's trunk plus `reward_head` (the GPT in reward mode, see
//! [`crate::model`]), loaded from a generator checkpoint or a reward checkpoint, and
//! [`RewardModel::score`], P(natural) of token sequences. A token head scores every token and
//! reads the window's P(natural) off the change-point posterior ([`super::changepoint`]); with
//! white-box features it also runs the generator that made its training data (saved inside
//! its checkpoint as `feature_model/`).

use super::changepoint;
use super::features::{self, NUM_FEATURES, NUM_REFERENCE_FEATURES, TokenStats, View};
use super::lexicon::{Lexicon, NUM_LEXICON_FEATURES};
use super::memo::ReferenceMemo;
use crate::checkpoint::{self, Checkpoint, LoadReport, load_weights};
use crate::model::{GPT, Mode, Pooling, RewardHeadKind};
use crate::tokenizer::Tokenizer;
use crate::util::{device, rng::mix, to_host};
use crate::{Error, Result};
use burn::tensor::{Device, Tensor, TensorData};
use std::path::Path;
use std::sync::Arc;

/// The reward head a generator gets: its kind, width, pooling (pooled head), white-box features
/// and context (token head), and the sampling settings its features are read with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadSpec {
    pub kind: RewardHeadKind,
    pub hidden: usize,
    pub pooling: Pooling,
    /// The white-box channel (the generator's view of every token).
    pub features: bool,
    /// The reference channel (a reference language model's view of every token; with
    /// `features`): how many models its mixture holds, 0 for none.
    pub reference: usize,
    /// The lexicon channel (every token's word known or not).
    pub lexicon: bool,
    pub context: usize,
    pub view: View,
}

impl Default for HeadSpec {
    fn default() -> Self {
        Self {
            kind: RewardHeadKind::Pooled,
            hidden: 256,
            pooling: Pooling::Last,
            features: false,
            reference: 0,
            lexicon: false,
            context: 0,
            view: View::RAW,
        }
    }
}

/// The model of an opened checkpoint in reward mode. A generator keeps every trunk tensor, drops
/// the (tied) lm_head and gets a fresh `reward_head` as `spec` says; a reward checkpoint is
/// restored whole (its own head wins). `seed` fixes the new head.
pub fn from_checkpoint(
    ck: &Checkpoint,
    spec: &HeadSpec,
    device: &Device,
    seed: u64,
) -> Result<(GPT, LoadReport)> {
    let mut cfg = ck.config.clone();
    let from_generator = cfg.mode == Mode::Generator;
    if from_generator {
        cfg.mode = Mode::Reward;
        cfg.reward_head = spec.kind;
        cfg.reward_head_hidden_dim = spec.hidden;
        cfg.pooling = spec.pooling;
        let token = spec.kind == RewardHeadKind::Token;
        cfg.white_box = token && spec.features;
        cfg.reference = cfg.white_box && spec.reference > 0;
        cfg.reference_models = if cfg.reference { spec.reference } else { 0 };
        cfg.lexicon = token && spec.lexicon;
        cfg.reward_features = usize::from(cfg.white_box) * NUM_FEATURES
            + usize::from(cfg.reference) * NUM_REFERENCE_FEATURES
            + usize::from(cfg.lexicon) * NUM_LEXICON_FEATURES;
        cfg.reward_context = if token { spec.context } else { 0 };
        cfg.feature_temperature = spec.view.temperature;
        cfg.feature_top_k = spec.view.top_k.unwrap_or(0);
    }
    let mut model = GPT::new(&cfg, device, seed)?;
    let mut report = load_weights(&mut model, &ck.weights, &ck.weights_path(), |n| {
        from_generator && n.starts_with("reward_head.")
    })?;
    if from_generator && !report.unused.iter().any(|n| n == "lm_head.weight") {
        report
            .unused
            .push("lm_head.weight (tied to transformer.wte.weight)".into());
    }
    Ok((model, report))
}

/// What a token head reads besides the tokens: the generator's white-box view of every token
/// (the generator that made its training data, and the sampling settings it made them with),
/// a reference language model's view (a model of natural text, e.g. a stronger trunk) and the
/// lexicon channel (the words of its natural training text).
#[derive(Clone)]
pub struct FeatureSource {
    pub white_box: Option<(GPT, View)>,
    /// The reference: one model of natural text, or a mixture of several (the mean of their
    /// next-token distributions); empty for none. Read only with `white_box` (its features
    /// compare the two models).
    pub reference: Vec<GPT>,
    pub lexicon: Option<Lexicon>,
    pub tokenizer: Tokenizer,
    /// The reference passes shared with other sources of the same reference model (see
    /// [`FeatureSource::share_references`]); None: every pass runs.
    pub memo: Option<Arc<ReferenceMemo>>,
}

/// Which feature model's pass also returns its final trunk state of every token (when the
/// reward model's frozen trunk is that model, so its states need no pass of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedStates {
    No,
    Generator,
    Reference,
}

/// The feature models' statistics of tokens 1 … T−1 of every window (see
/// [`features::window_stats`]): the generator's, read through the view the data was sampled
/// with, and the reference model's (raw).
#[derive(Debug, Clone)]
pub struct ModelStats {
    pub generator: Vec<Vec<TokenStats>>,
    pub reference: Option<Vec<Vec<TokenStats>>>,
}

impl ModelStats {
    /// Statistics of `n` windows, all empty until placed.
    fn empty(n: usize, reference: bool) -> Self {
        Self {
            generator: vec![Vec::new(); n],
            reference: reference.then(|| vec![Vec::new(); n]),
        }
    }

    /// Moves the statistics of a batch (`part`) to the windows `at` it holds.
    fn place(&mut self, at: &[usize], part: ModelStats) {
        for (&i, g) in at.iter().zip(part.generator) {
            self.generator[i] = g;
        }
        if let (Some(all), Some(r)) = (self.reference.as_mut(), part.reference) {
            for (&i, r) in at.iter().zip(r) {
                all[i] = r;
            }
        }
    }

    /// Per window, the log-likelihood ratio of the reference against the generator as
    /// change-point logits ([`features::ratio_logits`]); None without a reference model.
    pub fn ratio_logits(&self) -> Option<Vec<Vec<f32>>> {
        let r = self.reference.as_ref()?;
        Some(
            r.iter()
                .zip(&self.generator)
                .map(|(r, g)| features::ratio_logits(r, g))
                .collect(),
        )
    }
}

/// Per token, `a`'s `wa` values then `b`'s `wb` values (both row-major over the same tokens).
fn interleave(a: &[f32], wa: usize, b: &[f32], wb: usize) -> Vec<f32> {
    a.chunks(wa)
        .zip(b.chunks(wb))
        .flat_map(|(x, y)| x.iter().chain(y).copied())
        .collect()
}

/// The seed of a window's u_t noise: a function of its tokens, so a text always gets the same
/// features.
fn noise_seed(window: &[u32]) -> u64 {
    window
        .iter()
        .fold(0x006e_6f69_7365_u64, |h, &t| mix(h ^ t as u64))
}

impl FeatureSource {
    /// Gives every group of `sources` whose reference models are the same, weight for weight, one
    /// memo of their reference passes (e.g. the feature sources of GRPO's ensemble members); returns
    /// how many sources read another's passes.
    pub fn share_references<'a>(sources: impl IntoIterator<Item = &'a mut Self>) -> usize {
        let mut sources: Vec<&mut Self> = sources.into_iter().collect();
        let mut shared = 0;
        for i in 1..sources.len() {
            let (earlier, rest) = sources.split_at_mut(i);
            let f = &mut rest[0];
            if f.reference.is_empty() {
                continue;
            }
            let same = earlier.iter_mut().find(|e| {
                e.reference.len() == f.reference.len()
                    && e.reference
                        .iter()
                        .zip(&f.reference)
                        .all(|(a, b)| a.same_weights(b))
            });
            if let Some(e) = same {
                f.memo = Some(e.memo.get_or_insert_with(Default::default).clone());
                shared += 1;
            }
        }
        shared
    }

    /// Features per token.
    pub fn width(&self) -> usize {
        self.model_width() + usize::from(self.lexicon.is_some()) * NUM_LEXICON_FEATURES
    }

    /// Features per token that come from the feature models (white-box and reference).
    fn model_width(&self) -> usize {
        usize::from(self.white_box.is_some())
            * (NUM_FEATURES + usize::from(!self.reference.is_empty()) * NUM_REFERENCE_FEATURES)
    }

    /// The feature rows of windows of one length, `[windows, T, width]` row-major.
    pub fn features(&self, windows: &[Vec<u32>]) -> Vec<f32> {
        self.assemble(windows, &self.model_rows(windows, SharedStates::No).0)
    }

    /// Each window's feature rows from the feature models (per token the white-box features,
    /// then the reference features; empty without the white-box channel), and the final trunk
    /// state of every token of the model `states` names, from the same pass
    /// (`[windows, T, n_embd]`; empty for `SharedStates::No`).
    pub fn model_rows(
        &self,
        windows: &[Vec<u32>],
        states: SharedStates,
    ) -> (Vec<Vec<f32>>, Vec<f32>) {
        let (stats, hidden) = self.model_stats(windows, states);
        (self.rows_of(windows, stats.as_ref()), hidden)
    }

    /// The feature models' statistics of windows of one length (None without the white-box
    /// channel), and the final trunk state of every token of the model `states` names, from
    /// the same pass (`[windows, T, n_embd]`; empty for `SharedStates::No`).
    pub fn model_stats(
        &self,
        windows: &[Vec<u32>],
        states: SharedStates,
    ) -> (Option<ModelStats>, Vec<f32>) {
        let Some((g, view)) = &self.white_box else {
            return (None, Vec::new());
        };
        let pass = |m: &[GPT], v: View, which: SharedStates| {
            features::mixture_stats_states(m, windows, v, 64, states == which)
        };
        let (generator, mut hidden) = pass(std::slice::from_ref(g), *view, SharedStates::Generator);
        let reference = (!self.reference.is_empty()).then(|| {
            let run = || pass(&self.reference, View::RAW, SharedStates::Reference);
            let (rs, h) = match &self.memo {
                Some(m) => m.get_or_run(windows, states == SharedStates::Reference, run),
                None => run(),
            };
            if states == SharedStates::Reference {
                hidden = h;
            }
            rs
        });
        let stats = ModelStats {
            generator,
            reference,
        };
        (Some(stats), hidden)
    }

    /// Each window's feature-model rows from the feature models' statistics of the windows
    /// (see [`FeatureSource::model_stats`]; empty rows for None).
    fn rows_of(&self, windows: &[Vec<u32>], stats: Option<&ModelStats>) -> Vec<Vec<f32>> {
        let Some(st) = stats else {
            return vec![Vec::new(); windows.len()];
        };
        st.generator
            .iter()
            .zip(windows)
            .enumerate()
            .map(|(i, (s, w))| {
                let white = features::feature_rows(s, noise_seed(w));
                match &st.reference {
                    Some(rs) => interleave(
                        &white,
                        NUM_FEATURES,
                        &features::reference_rows(&rs[i], s),
                        NUM_REFERENCE_FEATURES,
                    ),
                    None => white,
                }
            })
            .collect()
    }

    /// The feature rows of `windows` from their feature-model rows `white` (see
    /// [`FeatureSource::model_rows`]) and this source's lexicon.
    pub fn assemble(&self, windows: &[Vec<u32>], white: &[Vec<f32>]) -> Vec<f32> {
        let t = windows.first().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(windows.len() * t * self.width());
        for (w, wf) in windows.iter().zip(white) {
            self.push_window(w, wf, &mut out);
        }
        out
    }

    /// Appends the feature rows of one window `w` (`[T, width]`) from its feature-model rows
    /// `wf`.
    pub fn push_window(&self, w: &[u32], wf: &[f32], out: &mut Vec<f32>) {
        let mw = self.model_width();
        let lex = self.lexicon.as_ref().map(|l| {
            let pieces: Vec<String> = w.iter().map(|&id| self.tokenizer.decode(&[id])).collect();
            l.token_features(&pieces)
        });
        for i in 0..w.len() {
            out.extend_from_slice(wf.get(i * mw..(i + 1) * mw).unwrap_or(&[]));
            if let Some(lf) = &lex {
                out.extend_from_slice(
                    &lf[i * NUM_LEXICON_FEATURES..(i + 1) * NUM_LEXICON_FEATURES],
                );
            }
        }
    }

    /// The features of `windows` as a `[B, T, width]` tensor on `device`, from their
    /// feature-model rows `white` (see [`FeatureSource::model_rows`]).
    pub fn tensor(&self, windows: &[Vec<u32>], white: &[Vec<f32>], device: &Device) -> Tensor<3> {
        let t = windows.first().map_or(0, Vec::len);
        let f = self.assemble(windows, white);
        Tensor::from_data(TensorData::new(f, [windows.len(), t, self.width()]), device)
    }
}

/// Which feature model has the reward model's trunk, weight for weight (a frozen trunk taken
/// from the generator or the reference model): its pass gives the trunk's states too.
fn shared_trunk(model: &GPT, features: Option<&FeatureSource>) -> SharedStates {
    let Some((g, _)) = features.and_then(|f| f.white_box.as_ref()) else {
        return SharedStates::No;
    };
    if model.same_trunk(g) {
        SharedStates::Generator
    } else if features
        .and_then(|f| f.reference.first())
        .is_some_and(|r| model.same_trunk(r))
    {
        SharedStates::Reference
    } else {
        SharedStates::No
    }
}

/// The file of a reward checkpoint holding its lexicon channel's words.
pub const LEXICON: &str = "lexicon.tsv";

/// A reward model with its tokenizer, for scoring token sequences.
pub struct RewardModel {
    pub model: GPT,
    pub tokenizer: Tokenizer,
    /// The feature generator of a token head that reads white-box features.
    pub features: Option<FeatureSource>,
    pub batch_size: usize,
    /// Batches scored at once on separate threads.
    pub workers: usize,
    /// The feature model whose pass also gives the trunk's states (a frozen trunk that is the
    /// generator or the reference model, weight for weight), so scoring runs it once.
    pub shared: SharedStates,
}

impl RewardModel {
    /// Loads a reward checkpoint (inference).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let ck = Checkpoint::open(dir)?;
        if ck.config.mode != Mode::Reward {
            return Err(Error::checkpoint(
                &ck.path,
                "this is a generator checkpoint; train a reward model with `nanoreward train-reward` first",
            ));
        }
        let c = &ck.config;
        let tokenizer = ck.tokenizer()?;
        let white_box = if c.white_box {
            let p = ck.path.join(checkpoint::FEATURE_MODEL);
            let view = View {
                temperature: c.feature_temperature,
                top_k: crate::sampling::top_k_or_all(c.feature_top_k),
            };
            Some((checkpoint::load_model(&p, device)?, view))
        } else {
            None
        };
        let reference = (0..c.reference_count())
            .map(|i| checkpoint::load_model(&ck.path.join(checkpoint::reference_dir(i)), device))
            .collect::<Result<Vec<_>>>()?;
        let lexicon = c
            .lexicon
            .then(|| Lexicon::load(&ck.path.join(LEXICON)))
            .transpose()?;
        let features = (c.reward_features > 0).then(|| FeatureSource {
            white_box,
            reference,
            lexicon,
            tokenizer: tokenizer.clone(),
            memo: None,
        });
        let model = ck.model(device)?;
        Ok(Self {
            shared: shared_trunk(&model, features.as_ref()),
            model,
            tokenizer,
            features,
            batch_size: 64,
            workers: 1,
        })
    }

    /// Checks lengths and ids, and groups the sequences into batches of one length: at most
    /// `batch_size` sequences each, and at least `workers` batches of a length where it has that
    /// many sequences, so that every worker scores some (a GRPO step's 64 windows in one batch
    /// ran on one thread). A window's score does not depend on its batch.
    fn batches(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<usize>>> {
        let bs = self.model.config.block_size;
        let vs = self.model.config.vocab_size;
        if let Some(bad) = seqs.iter().find(|s| s.is_empty() || s.len() > bs) {
            return Err(Error::Mismatch(format!(
                "cannot score a sequence of {} tokens: lengths must be 1..={bs}",
                bad.len()
            )));
        }
        if let Some(t) = seqs.iter().flatten().find(|&&t| t as usize >= vs) {
            return Err(Error::Mismatch(format!(
                "token {t} is outside the model's vocabulary of {vs}"
            )));
        }
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| seqs[i].len());
        Ok(order
            .chunk_by(|&a, &b| seqs[a].len() == seqs[b].len())
            .flat_map(|group| {
                group.chunks(device::batch_per_worker(
                    group.len(),
                    self.batch_size,
                    self.workers,
                ))
            })
            .map(<[usize]>::to_vec)
            .collect())
    }

    /// The token head's logits of one batch of equal-length sequences, `[B·T]` on the host,
    /// and the feature models' statistics of the batch (None without the white-box channel;
    /// their pass also gives the trunk's states where [`RewardModel::shared`] says so).
    fn batch_token_logits(&self, batch: &[Vec<u32>]) -> Result<(Vec<f32>, Option<ModelStats>)> {
        let m = &self.model;
        let (b, t) = (batch.len(), batch.first().map_or(0, Vec::len));
        let (stats, hidden) = match &self.features {
            Some(f) => f.model_stats(batch, self.shared),
            None => (None, Vec::new()),
        };
        let x = if hidden.is_empty() {
            let ids: Vec<i64> = batch.iter().flatten().map(|&v| v as i64).collect();
            m.hidden_states(m.tokens(&ids, b))
        } else {
            let shape = [b, t, m.config.n_embd];
            Tensor::from_data(TensorData::new(hidden, shape), &m.device())
        };
        let feats = self.features.as_ref().map(|f| {
            let rows = f.rows_of(batch, stats.as_ref());
            f.tensor(batch, &rows, &m.device())
        });
        Ok((to_host(m.token_head(x, feats)?), stats))
    }

    /// The pooled head's [P(natural), P(synthetic)] of one batch of equal-length sequences,
    /// `[B·2]` on the host.
    fn batch_pooled_probs(&self, batch: &[Vec<u32>]) -> Result<Vec<f32>> {
        let m = &self.model;
        let ids: Vec<i64> = batch.iter().flatten().map(|&v| v as i64).collect();
        Ok(to_host(m.reward_probs(m.tokens(&ids, batch.len()), None)?))
    }

    /// Per sequence, `per_seq(logits or probabilities of that sequence)`, batched by length on
    /// the worker threads: the token head's per-token logits, or the pooled head's pair; with
    /// `keep`, the feature models' statistics of every sequence too (None without them).
    fn map_batches<R: Send + Default + Clone>(
        &self,
        seqs: &[Vec<u32>],
        keep: bool,
        per_seq: impl Fn(&[f32]) -> R + Sync,
    ) -> Result<(Vec<R>, Option<ModelStats>)> {
        let batches = self.batches(seqs)?;
        let scored = device::par_map(&batches, self.workers, |batch| {
            let group: Vec<Vec<u32>> = batch.iter().map(|&i| seqs[i].clone()).collect();
            let (flat, width, stats) = match self.model.config.reward_head {
                RewardHeadKind::Token => {
                    let (flat, stats) = self.batch_token_logits(&group)?;
                    (flat, group[0].len(), stats.filter(|_| keep))
                }
                RewardHeadKind::Pooled => (self.batch_pooled_probs(&group)?, 2, None),
            };
            let r: Vec<R> = flat.chunks(width).map(&per_seq).collect();
            Ok::<_, Error>((r, stats))
        });
        let mut out = vec![R::default(); seqs.len()];
        let mut all: Option<ModelStats> = None;
        for (batch, v) in batches.iter().zip(scored) {
            let (r, stats) = v?;
            for (&i, r) in batch.iter().zip(r) {
                out[i] = r;
            }
            if let Some(st) = stats {
                all.get_or_insert_with(|| ModelStats::empty(seqs.len(), st.reference.is_some()))
                    .place(batch, st);
            }
        }
        Ok((out, all))
    }

    /// P(natural) of each sequence (1 ≤ length ≤ block_size).
    pub fn score(&self, seqs: &[Vec<u32>]) -> Result<Vec<f32>> {
        Ok(self.map_batches(seqs, false, self.p_natural_of())?.0)
    }

    /// P(natural) of a sequence from its head's output (see [`RewardModel::map_batches`]).
    fn p_natural_of(&self) -> fn(&[f32]) -> f32 {
        match self.model.config.reward_head {
            RewardHeadKind::Token => changepoint::p_natural,
            RewardHeadKind::Pooled => |p| p[0],
        }
    }

    /// [`RewardModel::score`], and the feature models' statistics of every sequence from the
    /// same passes (None without the white-box channel): for a caller that reads those
    /// statistics too, without running the feature models twice.
    pub fn score_with_stats(&self, seqs: &[Vec<u32>]) -> Result<(Vec<f32>, Option<ModelStats>)> {
        self.map_batches(seqs, true, self.p_natural_of())
    }

    /// P(natural) of every token of each sequence (token head only).
    pub fn score_tokens(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        if self.model.config.reward_head != RewardHeadKind::Token {
            return Err(Error::Config(
                "per-token P(natural) needs a token-head reward model (train-reward --loss=token_bce or similar)".into(),
            ));
        }
        let sigmoid = |z: &[f32]| z.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect();
        Ok(self.map_batches(seqs, false, sigmoid)?.0)
    }

    /// The token head's posterior over the cut K of each sequence (token head only).
    pub fn posteriors(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f64>>> {
        if self.model.config.reward_head != RewardHeadKind::Token {
            return Err(Error::Config(
                "the posterior over K needs a token-head reward model".into(),
            ));
        }
        Ok(self.map_batches(seqs, false, changepoint::posterior)?.0)
    }
}

/// Column 0 of a `[B, 2]` probability tensor.
pub fn probs_natural(p: Tensor<2>) -> Vec<f32> {
    let b = p.dims()[0];
    to_host(p.narrow(1, 0, 1).reshape([b]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sources on one reference model (two generators, as two rounds' reward models) share its
    /// passes and get exactly the statistics and trunk states of their own passes; a source on
    /// another reference model is left alone.
    #[test]
    fn shared_reference_passes_equal_their_own() {
        use crate::tokenizer::{CharVocab, Tokenizer};
        let dev = burn::tensor::Device::flex();
        let cfg = crate::model::tiny_test_config(11, 8);
        let gpt = |seed| GPT::new(&cfg, &dev, seed).unwrap();
        let source = |white: u64, reference: u64| FeatureSource {
            white_box: Some((gpt(white), View::RAW)),
            reference: vec![gpt(reference)],
            lexicon: None,
            tokenizer: Tokenizer::Char(CharVocab::from_text("abcdefghijk")),
            memo: None,
        };
        let windows: Vec<Vec<u32>> = (0..5u32)
            .map(|w| (0..8).map(|i| (w * 7 + i * 3) % 11).collect())
            .collect();
        let mut sources = [source(1, 3), source(2, 3), source(4, 5)];
        let own: Vec<_> = sources
            .iter()
            .map(|s| s.model_stats(&windows, SharedStates::Reference))
            .collect();
        assert_eq!(FeatureSource::share_references(sources.iter_mut()), 1);
        assert!(sources[2].memo.is_none());
        let memo = sources[0]
            .memo
            .clone()
            .expect("the first source holds the memo");
        assert!(
            sources[1]
                .memo
                .as_ref()
                .is_some_and(|m| Arc::ptr_eq(m, &memo))
        );
        for (s, (want_stats, want_hidden)) in sources.iter().zip(&own) {
            let (stats, hidden) = s.model_stats(&windows, SharedStates::Reference);
            let (got, want) = (stats.unwrap(), want_stats.as_ref().unwrap());
            assert_eq!(got.generator, want.generator);
            assert_eq!(got.reference, want.reference);
            assert_eq!(&hidden, want_hidden);
        }
        assert_eq!(memo.runs(), 1, "one reference pass for both sources");
        assert_ne!(
            own[0].0.as_ref().unwrap().generator,
            own[1].0.as_ref().unwrap().generator
        );
    }
}
