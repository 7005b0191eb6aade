//! The reference model's pass, shared by reward models whose reference is one model weight for
//! weight (the cycle's rounds on one stronger model of natural text, scored together as GRPO's
//! ensemble): each batch of windows runs through that model once, not once per member.

use super::features::TokenStats;
use super::model::FeatureSource;
use std::collections::VecDeque;
use std::sync::Mutex;

/// The reference pass's output for a batch of windows: its statistics of every token and, when
/// asked for, the final trunk state of every token (empty otherwise).
pub type Pass = (Vec<Vec<TokenStats>>, Vec<f32>);

/// The most recent batches whose reference pass is kept (a GRPO step's windows are one or a few
/// batches; every member scores them in turn).
const KEPT: usize = 8;

/// The reference passes of the last few batches, read by every reward model that holds this memo.
#[derive(Default)]
pub struct ReferenceMemo {
    recent: Mutex<VecDeque<(Vec<Vec<u32>>, Pass)>>,
    runs: Mutex<usize>,
}

impl ReferenceMemo {
    /// The reference pass of `windows` (with the trunk states when `states`): a kept one for the
    /// same windows (with states, where asked for), or `run()`'s, then kept.
    pub fn get_or_run(
        &self,
        windows: &[Vec<u32>],
        states: bool,
        run: impl FnOnce() -> Pass,
    ) -> Pass {
        let fits =
            |(w, (_, h)): &&(Vec<Vec<u32>>, Pass)| w == windows && (!states || !h.is_empty());
        if let Some((_, pass)) = self.lock_recent().iter().find(fits) {
            return pass.clone();
        }
        // Run outside the lock: other batches' passes go on meanwhile.
        let pass = run();
        *self.runs.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let mut recent = self.lock_recent();
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back((windows.to_vec(), pass.clone()));
        pass
    }

    /// How many passes ran (the others were read from the memo).
    pub fn runs(&self) -> usize {
        *self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_recent(&self) -> std::sync::MutexGuard<'_, VecDeque<(Vec<Vec<u32>>, Pass)>> {
        // A panic elsewhere cannot leave the list half-changed: every change is one call.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Gives every group of `sources` whose reference models are the same, weight for weight, one
/// memo of their reference passes (e.g. the feature sources of GPT's ensemble members); returns
/// how many sources read another's passes.
pub fn share_references<'a>(sources: impl IntoIterator<Item = &'a mut FeatureSource>) -> usize {
    let mut sources: Vec<&mut FeatureSource> = sources.into_iter().collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn stats(v: f64) -> Vec<Vec<TokenStats>> {
        vec![vec![TokenStats {
            log_q: v,
            ..Default::default()
        }]]
    }

    /// The memo runs a pass once per batch of windows, returns what it ran for those windows,
    /// runs again for other windows or where states are asked for and were not kept.
    #[test]
    fn memo_runs_each_batch_once() {
        let m = ReferenceMemo::default();
        let (a, b) = (vec![vec![1u32, 2]], vec![vec![1u32, 3]]);
        assert_eq!(
            m.get_or_run(&a, false, || (stats(1.0), vec![])).0,
            stats(1.0)
        );
        assert_eq!(
            m.get_or_run(&a, false, || (stats(9.0), vec![])).0,
            stats(1.0)
        );
        assert_eq!(m.runs(), 1);
        assert_eq!(
            m.get_or_run(&b, false, || (stats(2.0), vec![])).0,
            stats(2.0)
        );
        assert_eq!(m.runs(), 2);
        let with = m.get_or_run(&a, true, || (stats(3.0), vec![0.5]));
        assert_eq!(with, (stats(3.0), vec![0.5]));
        assert_eq!(m.runs(), 3);
        for i in 0..KEPT as u32 {
            m.get_or_run(&[vec![i + 10]], false, || (stats(0.0), vec![]));
        }
        m.get_or_run(&b, false, || (stats(4.0), vec![]));
        assert_eq!(m.runs(), 3 + KEPT + 1, "the oldest batches are dropped");
    }

    /// Sources on one reference model (two generators, as two rounds' reward models) share its
    /// passes and get exactly the statistics and trunk states of their own passes; a source on
    /// another reference model is left alone.
    #[test]
    fn shared_reference_passes_equal_their_own() {
        use crate::model::GPT;
        use crate::reward::features::View;
        use crate::reward::model::SharedStates;
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
        assert_eq!(share_references(sources.iter_mut()), 1);
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
