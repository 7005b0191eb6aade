//! What GRPO optimises: the reward of a completed window — a reward model's P(natural) (a
//! window's, or every token's with a token head), an ensemble of reward models that the policy
//! must fool together, or any function (tests) — and the repetition penalty.

use super::config::EnsembleAgg;
use crate::Result;
use crate::model::RewardHeadKind;
use crate::reward::RewardModel;

/// The reward of complete windows (prompt + completion); `prompt_len` tokens are the prompt.
pub trait RewardFn {
    fn rewards(&self, windows: &[Vec<u32>], prompt_len: usize) -> Result<Vec<f32>>;

    /// P(natural) of every token of every window (for per-token rewards); None when this
    /// reward has no per-token view.
    fn token_rewards(
        &self,
        _windows: &[Vec<u32>],
        _prompt_len: usize,
    ) -> Result<Option<Vec<Vec<f32>>>> {
        Ok(None)
    }
}

impl RewardFn for RewardModel {
    fn rewards(&self, windows: &[Vec<u32>], _prompt_len: usize) -> Result<Vec<f32>> {
        self.score(windows)
    }

    fn token_rewards(
        &self,
        windows: &[Vec<u32>],
        _prompt_len: usize,
    ) -> Result<Option<Vec<Vec<f32>>>> {
        match self.model.config.reward_head {
            RewardHeadKind::Token => Ok(Some(self.score_tokens(windows)?)),
            RewardHeadKind::Pooled => Ok(None),
        }
    }
}

impl<F: Fn(&[Vec<u32>], usize) -> Vec<f32>> RewardFn for F {
    fn rewards(&self, windows: &[Vec<u32>], prompt_len: usize) -> Result<Vec<f32>> {
        Ok(self(windows, prompt_len))
    }
}

/// Several reward models whose rewards are aggregated element by element.
pub struct Ensemble {
    pub members: Vec<RewardModel>,
    pub agg: EnsembleAgg,
    pub lambda: f64,
}

/// The aggregate of the members' values at every position: their minimum, or their mean minus
/// `lambda` times their (population) standard deviation.
pub fn aggregate(members: &[Vec<f32>], agg: EnsembleAgg, lambda: f64) -> Vec<f32> {
    let n = members.first().map_or(0, Vec::len);
    (0..n)
        .map(|i| {
            let v: Vec<f64> = members.iter().map(|m| m[i] as f64).collect();
            let out = match agg {
                EnsembleAgg::Min => v.iter().copied().fold(f64::INFINITY, f64::min),
                EnsembleAgg::MeanStd => {
                    let mean = v.iter().sum::<f64>() / v.len() as f64;
                    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
                    mean - lambda * var.sqrt()
                }
            };
            out as f32
        })
        .collect()
}

impl RewardFn for Ensemble {
    fn rewards(&self, windows: &[Vec<u32>], prompt_len: usize) -> Result<Vec<f32>> {
        let all = self
            .members
            .iter()
            .map(|m| m.rewards(windows, prompt_len))
            .collect::<Result<Vec<_>>>()?;
        Ok(aggregate(&all, self.agg, self.lambda))
    }

    fn token_rewards(
        &self,
        windows: &[Vec<u32>],
        prompt_len: usize,
    ) -> Result<Option<Vec<Vec<f32>>>> {
        let mut all = Vec::new();
        for m in &self.members {
            match m.token_rewards(windows, prompt_len)? {
                Some(t) => all.push(t),
                None => return Ok(None),
            }
        }
        let rows = (0..windows.len())
            .map(|w| {
                let member_rows: Vec<Vec<f32>> = all.iter().map(|m| m[w].clone()).collect();
                aggregate(&member_rows, self.agg, self.lambda)
            })
            .collect();
        Ok(Some(rows))
    }
}

/// Share of a completion's 4-grams that already occurred earlier in the window.
pub fn repeated_share(window: &[u32], prompt_len: usize) -> f64 {
    let n = 4;
    let starts: Vec<usize> = (prompt_len.saturating_sub(n - 1)..=window.len().saturating_sub(n))
        .filter(|&s| s + n > prompt_len)
        .collect();
    if starts.is_empty() {
        return 0.0;
    }
    let repeated = starts
        .iter()
        .filter(|&&s| (0..s).any(|e| window[e..e + n] == window[s..s + n]))
        .count();
    repeated as f64 / starts.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensemble_aggregates_its_members() {
        let members = vec![
            vec![0.9f32, 0.2, 0.5],
            vec![0.7, 0.4, 0.5],
            vec![0.8, 0.3, 0.2],
        ];
        assert_eq!(
            aggregate(&members, EnsembleAgg::Min, 1.0),
            vec![0.7, 0.2, 0.2]
        );
        let ms = aggregate(&members, EnsembleAgg::MeanStd, 0.5);
        for (i, &v) in ms.iter().enumerate() {
            let col: Vec<f64> = members.iter().map(|m| m[i] as f64).collect();
            let mean = col.iter().sum::<f64>() / 3.0;
            let sd = (col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
            assert!((v as f64 - (mean - 0.5 * sd)).abs() < 1e-6);
        }
        // One member: the aggregate is that member.
        assert_eq!(
            aggregate(&members[..1], EnsembleAgg::MeanStd, 2.0),
            members[0]
        );
    }
}
