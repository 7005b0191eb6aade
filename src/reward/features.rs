//! The generator's own view of a text, token by token (white-box features of the reward model),
//! and the zero-shot detectors built from it: mean log-likelihood, mean log-rank, mean entropy,
//! Fast-DetectGPT's analytic criterion (Bao et al., ICLR 2024) and single-model Binoculars
//! (Hans et al., 2024).
//!
//! For token t ≥ 1 of a window, with q the generator's next-token distribution given x_<t:
//! log q(x_t), the entropy H_t, μ_t = Σ_v q log q (= −H_t), σ_t² = Σ_v q (log q)² − μ_t²,
//! z_t = (log q(x_t) − μ_t)/σ_t, the rank of x_t, and the randomised probability-integral value
//! u_t = q(v ranked above x_t) + U·q(x_t), exactly uniform on text sampled from q.

use crate::model::{GPT, log_sum_exp};
use crate::util::{device, to_host};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Number of white-box features per token.
pub const NUM_FEATURES: usize = 6;

/// Number of reference-model features per token (see [`reference_rows`]).
pub const NUM_REFERENCE_FEATURES: usize = 3;

/// log q below this counts as this (a token outside top_k has probability 0).
const LOG_FLOOR: f64 = -30.0;

/// How the generator's distribution is read: the sampling temperature and top-k the data was
/// generated with (the features), or the raw model (temperature 1, no top-k: the zero-shot
/// detectors).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub temperature: f64,
    pub top_k: Option<usize>,
}

impl View {
    /// The raw model distribution.
    pub const RAW: View = View {
        temperature: 1.0,
        top_k: None,
    };
}

/// The generator's statistics of one token.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TokenStats {
    /// log q(x_t) (floored at −30).
    pub log_q: f64,
    /// Entropy H_t = −μ_t.
    pub entropy: f64,
    /// σ_t² = Σ q (log q)² − μ_t².
    pub var: f64,
    /// 1 + the number of tokens more probable than x_t.
    pub rank: usize,
    /// The probability of the tokens ranked above x_t.
    pub above: f64,
    /// q(x_t).
    pub q: f64,
}

impl TokenStats {
    /// z_t = (log q(x_t) − μ_t)/σ_t.
    pub fn z(&self) -> f64 {
        (self.log_q + self.entropy) / self.var.max(1e-12).sqrt()
    }
}

/// The statistics of token `x` under one row of logits read through `view`.
pub fn token_stats(logits: &[f32], x: u32, view: View) -> TokenStats {
    let inv_t = 1.0 / view.temperature.max(1e-6);
    let mut scaled: Vec<f64> = logits.iter().map(|&v| v as f64 * inv_t).collect();
    if let Some(k) = view.top_k
        && k < scaled.len()
    {
        let mut sorted = scaled.clone();
        sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let kth = sorted[k - 1];
        for v in scaled.iter_mut().filter(|v| **v < kth) {
            *v = f64::NEG_INFINITY;
        }
    }
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log_z = max + scaled.iter().map(|&v| (v - max).exp()).sum::<f64>().ln();
    let xi = x as usize;
    let (mut h, mut m2, mut above, mut rank) = (0.0, 0.0, 0.0, 1);
    let lx = scaled.get(xi).copied().unwrap_or(f64::NEG_INFINITY) - log_z;
    for &v in &scaled {
        let lq = v - log_z;
        if lq == f64::NEG_INFINITY {
            continue;
        }
        let q = lq.exp();
        h -= q * lq;
        m2 += q * lq * lq;
        if lq > lx {
            above += q;
            rank += 1;
        }
    }
    TokenStats {
        log_q: lx.max(LOG_FLOOR),
        entropy: h,
        var: (m2 - h * h).max(0.0),
        rank,
        above,
        q: lx.exp(),
    }
}

/// The statistics of tokens 1 … T−1 of every window under `model` read through `view`
/// (windows of one length, in batches on the worker threads).
pub fn window_stats(
    model: &GPT,
    windows: &[Vec<u32>],
    view: View,
    batch: usize,
) -> Vec<Vec<TokenStats>> {
    window_stats_states(model, windows, view, batch, false).0
}

/// [`window_stats`], and with `states`, the model's final trunk state of every token of every
/// window from the same pass (`[windows, T, n_embd]` row-major; empty without).
pub fn window_stats_states(
    model: &GPT,
    windows: &[Vec<u32>],
    view: View,
    batch: usize,
    states: bool,
) -> (Vec<Vec<TokenStats>>, Vec<f32>) {
    batched(windows, batch, |chunk| {
        batch_stats(model, chunk, view, states)
    })
}

/// [`window_stats_states`] under a mixture of language models with one vocabulary: the mean of
/// their next-token distributions (one model: that model's), the states (with `states`) from the
/// first model's pass. An ensemble of models of natural text is a better model of it than any
/// member (BENCHMARKS.md).
pub fn mixture_stats_states(
    models: &[GPT],
    windows: &[Vec<u32>],
    view: View,
    batch: usize,
    states: bool,
) -> (Vec<Vec<TokenStats>>, Vec<f32>) {
    match models {
        [] => (vec![Vec::new(); windows.len()], Vec::new()),
        [m] => window_stats_states(m, windows, view, batch, states),
        _ => {
            // Up to 2^24 accumulated log-probabilities per batch (a 50k vocabulary: 5 windows
            // of 64 tokens).
            let t = windows.first().map_or(1, Vec::len).max(1);
            let fit = (1usize << 24) / (t * models[0].config.vocab_size).max(1);
            batched(windows, batch.min(fit.max(1)), |chunk| {
                batch_mixture(models, chunk, view, states)
            })
        }
    }
}

/// `f` of `windows` in batches of at most `batch` on the spare threads (as many batches as
/// threads where there are windows enough: one batch runs on one thread), the batches'
/// statistics and states concatenated in order.
fn batched(
    windows: &[Vec<u32>],
    batch: usize,
    f: impl Fn(&[Vec<u32>]) -> (Vec<Vec<TokenStats>>, Vec<f32>) + Sync,
) -> (Vec<Vec<TokenStats>>, Vec<f32>) {
    let workers = device::spare_threads();
    let batch = device::batch_per_worker(windows.len(), batch, workers);
    let starts: Vec<usize> = (0..windows.len()).step_by(batch).collect();
    let parts = device::par_map(&starts, workers, |&s| {
        f(&windows[s..(s + batch).min(windows.len())])
    });
    let (mut stats, mut hidden) = (Vec::with_capacity(windows.len()), Vec::new());
    for (st, h) in parts {
        stats.extend(st);
        hidden.extend(h);
    }
    (stats, hidden)
}

fn batch_stats(
    model: &GPT,
    chunk: &[Vec<u32>],
    view: View,
    states: bool,
) -> (Vec<Vec<TokenStats>>, Vec<f32>) {
    let b = chunk.len();
    let t = chunk[0].len();
    let ids: Vec<i64> = chunk.iter().flatten().map(|&v| v as i64).collect();
    let x = model.hidden_states(model.tokens(&ids, b));
    let host = if states {
        to_host(x.clone())
    } else {
        Vec::new()
    };
    let mut out: Vec<Vec<TokenStats>> = vec![Vec::with_capacity(t.saturating_sub(1)); b];
    if t >= 2 {
        let x = x.reshape([b * t, model.config.n_embd]);
        model.visit_state_logits(x, |row, logits| {
            let (r, i) = (row / t, row % t);
            if i + 1 < t {
                out[r].push(token_stats(logits, chunk[r][i + 1], view));
            }
        });
    }
    (out, host)
}

/// [`batch_stats`] of a mixture of two or more models: every row's log of the summed next-token
/// probabilities (the mean up to a constant that `token_stats` normalises away).
fn batch_mixture(
    models: &[GPT],
    chunk: &[Vec<u32>],
    view: View,
    states: bool,
) -> (Vec<Vec<TokenStats>>, Vec<f32>) {
    let (b, t) = (chunk.len(), chunk[0].len());
    let v = models[0].config.vocab_size;
    let ids: Vec<i64> = chunk.iter().flatten().map(|&x| x as i64).collect();
    let mut acc = vec![f32::NEG_INFINITY; b * t * v];
    let mut host = Vec::new();
    for (k, m) in models.iter().enumerate() {
        let x = m.hidden_states(m.tokens(&ids, b));
        if k == 0 && states {
            host = to_host(x.clone());
        }
        let x = x.reshape([b * t, m.config.n_embd]);
        m.visit_state_logits(x, |row, logits| {
            let log_z = log_sum_exp(logits);
            for (a, &l) in acc[row * v..(row + 1) * v].iter_mut().zip(logits) {
                *a = log_add(*a, l - log_z);
            }
        });
    }
    let out = (0..b)
        .map(|r| {
            (0..t.saturating_sub(1))
                .map(|i| {
                    let row = r * t + i;
                    token_stats(&acc[row * v..(row + 1) * v], chunk[r][i + 1], view)
                })
                .collect()
        })
        .collect();
    (out, host)
}

/// ln(e^a + e^b).
fn log_add(a: f32, b: f32) -> f32 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if lo == f32::NEG_INFINITY {
        hi
    } else {
        hi + (lo - hi).exp().ln_1p()
    }
}

/// The reward model's white-box feature rows of one window of `stats.len() + 1` tokens
/// (`NUM_FEATURES` per token, row-major; token 0 has no prefix and gets zeros). `seed` fixes the
/// uniform noise of u_t.
pub fn feature_rows(stats: &[TokenStats], seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![0.0f32; NUM_FEATURES];
    for s in stats {
        let u = s.above + rng.random::<f64>() * s.q;
        out.extend([
            (s.log_q / 5.0) as f32,
            (s.entropy / 2.0) as f32,
            (s.var.sqrt() / 2.0) as f32,
            (s.z() / 3.0).clamp(-5.0, 5.0) as f32,
            ((s.rank as f64).ln() / 3.0) as f32,
            (u * 2.0 - 1.0) as f32,
        ]);
    }
    out
}

/// The reference-model feature rows of one window of `reference.len() + 1` tokens
/// (`NUM_REFERENCE_FEATURES` per token, row-major; token 0 gets zeros): log r(x_t), the reference
/// model's entropy, and the log-likelihood ratio log r(x_t) − log q(x_t) against the generator's
/// statistics `generator` of the same tokens — per token, the Neyman–Pearson evidence for
/// "natural" when r models natural text and q is what the generated tokens were drawn from.
pub fn reference_rows(reference: &[TokenStats], generator: &[TokenStats]) -> Vec<f32> {
    let mut out = vec![0.0f32; NUM_REFERENCE_FEATURES];
    for (r, g) in reference.iter().zip(generator) {
        out.extend([
            (r.log_q / 5.0) as f32,
            (r.entropy / 2.0) as f32,
            ((r.log_q - g.log_q) / 5.0).clamp(-5.0, 5.0) as f32,
        ]);
    }
    out
}

/// The per-token log-likelihood ratio log r(x_t) − log q(x_t) of a window of
/// `reference.len() + 1` tokens under a reference model r and the generator q (token 0, without
/// a prefix, gets 0): read as change-point logits (see [`super::changepoint`]) its posterior is
/// the one of a window whose natural text follows r and whose generated text follows q.
pub fn ratio_logits(reference: &[TokenStats], generator: &[TokenStats]) -> Vec<f32> {
    std::iter::once(0.0)
        .chain(
            reference
                .iter()
                .zip(generator)
                .map(|(r, g)| (r.log_q - g.log_q) as f32),
        )
        .collect()
}

/// A window's zero-shot detector scores, each oriented as written (see the fields).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZeroShot {
    /// Mean log q(x_t) (generated text scores higher).
    pub loglik: f64,
    /// Mean log rank (generated text scores lower: it uses likely tokens).
    pub logrank: f64,
    /// Mean entropy of the next-token distributions.
    pub entropy: f64,
    /// Fast-DetectGPT: (Σ log q(x_t) − Σ μ_t) / sqrt(Σ σ_t²) (generated text scores higher).
    pub fast_detect: f64,
    /// Binoculars, one model: Σ −log q(x_t) / Σ H_t (generated text scores lower).
    pub binoculars: f64,
}

/// The zero-shot scores of one window from its token statistics (read through [`View::RAW`]).
pub fn zero_shot(stats: &[TokenStats]) -> ZeroShot {
    let n = stats.len().max(1) as f64;
    let sum = |f: &dyn Fn(&TokenStats) -> f64| stats.iter().map(f).sum::<f64>();
    let (ll, h, var) = (sum(&|s| s.log_q), sum(&|s| s.entropy), sum(&|s| s.var));
    ZeroShot {
        loglik: ll / n,
        logrank: sum(&|s| (s.rank as f64).ln()) / n,
        entropy: h / n,
        fast_detect: (ll + h) / var.max(1e-12).sqrt(),
        binoculars: -ll / h.max(1e-12),
    }
}

/// The cut k ∈ [1, N−1] that best splits a window's per-token z-scores into two segments of
/// constant mean (least squares; `z[i]` is token i + 1's score): the change-point baseline.
pub fn best_split(z: &[f64]) -> usize {
    let n = z.len();
    if n < 2 {
        return 1;
    }
    let total: f64 = z.iter().sum();
    let mut prefix = 0.0;
    let mut best = (1, f64::NEG_INFINITY);
    // Token 0 has no score: a cut at k puts scores z[..k-1] (tokens 1..k-1) before it.
    for j in 1..n {
        prefix += z[j - 1];
        let (a, b) = (j as f64, (n - j) as f64);
        // Maximising the between-segment sum of squares minimises the within-segment one.
        let gain = prefix * prefix / a + (total - prefix).powi(2) / b;
        if gain > best.1 {
            best = (j + 1, gain);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_by_hand() {
        // Probabilities 0.5, 0.25, 0.25 (logits ln of them); token 1.
        let l = [0.5f32.ln(), 0.25f32.ln(), 0.25f32.ln()];
        let s = token_stats(&l, 1, View::RAW);
        let h = -(0.5 * 0.5f64.ln() + 0.5 * 0.25f64.ln());
        assert!((s.entropy - h).abs() < 1e-6);
        assert!((s.log_q - 0.25f64.ln()).abs() < 1e-6);
        assert_eq!(s.rank, 2);
        assert!((s.above - 0.5).abs() < 1e-6);
        let m2 = 0.5 * 0.5f64.ln().powi(2) + 0.5 * 0.25f64.ln().powi(2);
        assert!((s.var - (m2 - h * h)).abs() < 1e-6);
        // top_k = 1 leaves only token 0: token 1 gets the floor, u = 1.
        let s = token_stats(
            &l,
            1,
            View {
                temperature: 1.0,
                top_k: Some(1),
            },
        );
        assert_eq!(s.log_q, LOG_FLOOR);
        assert!((s.above - 1.0).abs() < 1e-9 && s.q == 0.0);
    }

    #[test]
    fn reference_rows_by_hand() {
        // Reference: q(x) = 0.5 of two equal tokens; generator: 0.25 of four.
        let r = token_stats(&[0.0, 0.0], 0, View::RAW);
        let g = token_stats(&[0.0; 4], 0, View::RAW);
        let rows = reference_rows(&[r, r], &[g, g]);
        assert_eq!(rows.len(), 3 * NUM_REFERENCE_FEATURES);
        assert!(rows[..3].iter().all(|&v| v == 0.0));
        let want = [
            0.5f64.ln() / 5.0,
            2f64.ln() / 2.0,
            (0.5f64.ln() - 0.25f64.ln()) / 5.0,
        ];
        for (i, w) in want.iter().enumerate() {
            assert!((rows[3 + i] as f64 - w).abs() < 1e-6, "feature {i}");
            assert_eq!(rows[3 + i], rows[6 + i]);
        }
    }

    /// A mixture of a model with itself is that model; of two models, every token's probability is
    /// the mean of the two models' own (each from its own pass), its entropy at least the mean of
    /// theirs (concavity), and the states are the first model's.
    #[test]
    fn mixture_against_its_members() {
        use burn::tensor::Device;
        let dev = Device::flex();
        let cfg = crate::model::tiny_test_config(11, 8);
        let (a, b) = (
            GPT::new(&cfg, &dev, 1).unwrap(),
            GPT::new(&cfg, &dev, 2).unwrap(),
        );
        let windows: Vec<Vec<u32>> = (0..5u32)
            .map(|w| (0..8).map(|i| (w * 7 + i * 3) % 11).collect())
            .collect();
        let (sa, ha) = window_stats_states(&a, &windows, View::RAW, 2, true);
        let (sb, _) = window_stats_states(&b, &windows, View::RAW, 2, false);
        let (same, _) =
            mixture_stats_states(&[a.clone(), a.clone()], &windows, View::RAW, 2, false);
        for (x, y) in same.iter().flatten().zip(sa.iter().flatten()) {
            assert!((x.log_q - y.log_q).abs() < 1e-5 && (x.entropy - y.entropy).abs() < 1e-5);
            assert!((x.var - y.var).abs() < 1e-4 && x.rank == y.rank);
        }
        let (mix, hm) = mixture_stats_states(&[a, b], &windows, View::RAW, 3, true);
        assert_eq!(hm, ha);
        assert_eq!(mix.len(), 5);
        for ((m, x), y) in mix
            .iter()
            .flatten()
            .zip(sa.iter().flatten())
            .zip(sb.iter().flatten())
        {
            let want = ((x.q + y.q) / 2.0).ln();
            assert!((m.log_q - want).abs() < 1e-5, "{} vs {want}", m.log_q);
            assert!(m.entropy >= (x.entropy + y.entropy) / 2.0 - 1e-6);
        }
    }

    #[test]
    fn best_split_finds_a_mean_shift() {
        let mut z = vec![0.0; 9];
        z.extend(vec![3.0; 20]);
        // z[i] is token i + 1: the shift starts at token 10.
        assert_eq!(best_split(&z), 10);
    }
}
