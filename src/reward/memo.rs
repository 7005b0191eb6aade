//! The reference model's pass, shared by reward models whose reference is one model weight for
//! weight (the cycle's rounds on one stronger model of natural text, scored together as GRPO's
//! ensemble): each batch of windows runs through that model once, not once per member. Which
//! sources share one memo: [`crate::reward::model::FeatureSource::share_references`].

use super::features::TokenStats;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    runs: AtomicUsize,
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
        self.runs.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.lock_recent();
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back((windows.to_vec(), pass.clone()));
        pass
    }

    /// How many passes ran (the others were read from the memo).
    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::Relaxed)
    }

    fn lock_recent(&self) -> std::sync::MutexGuard<'_, VecDeque<(Vec<Vec<u32>>, Pass)>> {
        // A panic elsewhere cannot leave the list half-changed: every change is one call.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
