//! The GRPO objective on hand-computed cases, and its gradient against finite differences.

use super::ImportanceLevel;
use super::*;
use crate::model::GPTConfig;
use burn::tensor::{Device, TensorData};

fn dev() -> Device {
    Device::flex()
}

fn t2(v: &[f32], b: usize, l: usize) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v.to_vec(), [b, l]), &dev())
}

fn t1(v: &[f32]) -> Tensor<1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &dev())
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    crate::util::to_host(t)
}

fn cfg(loss_type: LossType, beta: f64) -> LossConfig {
    LossConfig {
        epsilon_low: 0.2,
        epsilon_high: 0.2,
        beta,
        loss_type,
        ..Default::default()
    }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn advantages_by_hand() {
    let r = [1.0f32, 2.0, 3.0, 5.0, 5.0, 5.0];
    let (a, flat) = advantages(&r, 3, ScaleRewards::Group, 1e-4);
    // Group 1: mean 2, unbiased std 1. Group 2: all equal, so zero advantage.
    let want = [-1.0 / 1.0001, 0.0, 1.0 / 1.0001, 0.0, 0.0, 0.0];
    for (x, w) in a.iter().zip(want) {
        assert!(close(*x as f64, w, 1e-6), "{a:?}");
    }
    assert_eq!(flat, 0.5);
    // Batch scaling: the std of all six rewards, sqrt(15.5 / 5).
    let (a, _) = advantages(&r, 3, ScaleRewards::Batch, 0.0);
    let s = (15.5f64 / 5.0).sqrt();
    assert!(close(a[0] as f64, -1.0 / s, 1e-6) && close(a[2] as f64, 1.0 / s, 1e-6));
    assert_eq!(a[3], 0.0);
    // No scaling: the centred rewards (Dr. GRPO).
    let (a, _) = advantages(&r, 3, ScaleRewards::None, 1e-4);
    assert_eq!(a, vec![-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
}

/// Four one-token completions: ratio above/below the band with positive/negative advantages.
/// RAFT: one 1 per group, on its first highest reward; equal groups counted as zero-variance.
#[test]
fn best_of_group_by_hand() {
    let r = [0.2, 0.9, 0.4, 0.5, 0.5, 0.5, 0.1, 0.7, 0.7];
    let (adv, flat) = best_of_group(&r, 3);
    assert_eq!(adv, vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    assert!(close(flat, 1.0 / 3.0, 1e-12));
    let (adv, flat) = best_of_group(&[0.3, 0.1, 0.8], 2);
    // A group of one has nothing to compare (as in `advantages`).
    assert_eq!((adv, flat), (vec![1.0, 0.0, 1.0], 0.5));
}

#[test]
fn clipping_by_hand() {
    let ratios = [1.5f32, 1.5, 0.5, 0.5];
    let adv = [1.0f32, -1.0, 1.0, -1.0];
    let old = [-1.0f32; 4];
    let logp_v: Vec<f32> = ratios.iter().zip(old).map(|(r, o)| r.ln() + o).collect();
    let logp = t2(&logp_v, 4, 1).autodiff().require_grad();
    let x = LossInputs {
        logp: logp.clone(),
        old_logp: t2(&old, 4, 1),
        ref_logp: None,
        advantages: t1(&adv),
        token_advantages: None,
        mask: t2(&[1.0; 4], 4, 1),
        entropy: None,
    };
    let norm = LossNorm {
        rows: 4,
        tokens: 4.0,
        max_len: 1,
    };
    let (loss, st) = grpo_loss(&x, &cfg(LossType::Grpo, 0.0), &norm);
    // Per token: -min(1.5, 1.2) = -1.2 (clipped high); -min(-1.5, -1.2) = 1.5 (not clipped);
    // -min(0.5, 0.8) = -0.5 (not clipped); -min(-0.5, -0.8) = 0.8 (clipped low).
    let want = (-1.2 + 1.5 - 0.5 + 0.8) / 4.0;
    let grads = loss.backward();
    let v = host(loss.inner());
    assert!(close(v[0] as f64, want, 1e-6), "{v:?} vs {want}");
    assert_eq!(
        (st.clipped_low, st.clipped_high, st.tokens),
        (1.0, 1.0, 4.0)
    );
    assert_eq!(st.clip_frac(), 0.5);
    // Clipped tokens carry no gradient; the others -A·ρ/4.
    let g = host(logp.grad(&grads).unwrap());
    let want_g = [0.0, 1.5 / 4.0, -0.5 / 4.0, 0.0];
    for (a, b) in g.iter().zip(want_g) {
        assert!(close(*a as f64, b, 1e-6), "{g:?}");
    }
    // DAPO's wider upper band (0.28) leaves a ratio of 1.25 unclipped.
    let x = LossInputs {
        logp: t2(&[1.25f32.ln()], 1, 1),
        old_logp: t2(&[0.0], 1, 1),
        ref_logp: None,
        advantages: t1(&[1.0]),
        token_advantages: None,
        mask: t2(&[1.0], 1, 1),
        entropy: None,
    };
    let one = LossNorm {
        rows: 1,
        tokens: 1.0,
        max_len: 1,
    };
    let (l, _) = grpo_loss(&x, &cfg(LossType::Grpo, 0.0), &one);
    assert!(close(host(l)[0] as f64, -1.2, 1e-6));
    let wide = LossConfig {
        epsilon_high: 0.28,
        ..cfg(LossType::Grpo, 0.0)
    };
    let (l, st) = grpo_loss(&x, &wide, &one);
    assert!(close(host(l)[0] as f64, -1.25, 1e-6));
    assert_eq!(st.clip_frac(), 0.0);
}

#[test]
fn k3_kl_by_hand() {
    // π = 0.5, π_ref = 0.25: k3 = r − ln r − 1 with r = π_ref/π = 0.5.
    let logp = t2(&[0.5f32.ln(), 0.5f32.ln()], 1, 2)
        .autodiff()
        .require_grad();
    let x = LossInputs {
        logp: logp.clone(),
        old_logp: t2(&[0.5f32.ln(), 0.5f32.ln()], 1, 2),
        ref_logp: Some(t2(&[0.25f32.ln(), 0.5f32.ln()], 1, 2)),
        advantages: t1(&[0.0]),
        token_advantages: None,
        mask: t2(&[1.0, 1.0], 1, 2),
        entropy: None,
    };
    let norm = LossNorm {
        rows: 1,
        tokens: 2.0,
        max_len: 2,
    };
    let k3 = 0.5 - 0.5f64.ln() - 1.0;
    let beta = 0.04;
    let (loss, st) = grpo_loss(&x, &cfg(LossType::Grpo, beta), &norm);
    // The second token has π = π_ref, so its KL is 0; the sequence mean is k3 / 2.
    assert!(close(st.kl(), k3 / 2.0, 1e-6), "{}", st.kl());
    let grads = loss.backward();
    assert!(close(host(loss.inner())[0] as f64, beta * k3 / 2.0, 1e-7));
    // d k3 / d logp = 1 − π_ref/π.
    let g = host(logp.grad(&grads).unwrap());
    assert!(close(g[0] as f64, beta * 0.5 / 2.0, 1e-6) && close(g[1] as f64, 0.0, 1e-7));
    // β = 0 ignores the reference entirely.
    let (loss, st) = grpo_loss(&x, &cfg(LossType::Grpo, 0.0), &norm);
    assert_eq!(host(loss)[0], 0.0);
    assert_eq!(st.kl_sum, 0.0);
}

/// Sequences of 3 and 1 counted tokens with per-token losses 1 and 2.
#[test]
fn each_loss_type_normalises_as_documented() {
    let zeros = [0.0f32; 6];
    let x = LossInputs {
        logp: t2(&zeros, 2, 3),
        old_logp: t2(&zeros, 2, 3),
        ref_logp: None,
        advantages: t1(&[-1.0, -2.0]),
        token_advantages: None,
        mask: t2(&[1.0, 1.0, 1.0, 1.0, 0.0, 0.0], 2, 3),
        entropy: None,
    };
    let norm = LossNorm {
        rows: 2,
        tokens: 4.0,
        max_len: 3,
    };
    let value = |lt| host(grpo_loss(&x, &cfg(lt, 0.0), &norm).0)[0] as f64;
    assert!(close(value(LossType::Grpo), (1.0 + 2.0) / 2.0, 1e-6));
    assert!(close(value(LossType::DrGrpo), 5.0 / 6.0, 1e-6));
    assert!(close(value(LossType::Dapo), 5.0 / 4.0, 1e-6));
}

fn tiny() -> GPT {
    let cfg = GPTConfig {
        block_size: 10,
        vocab_size: 9,
        n_layer: 1,
        n_head: 2,
        n_embd: 16,
        dropout: 0.0,
        bias: true,
        ..Default::default()
    };
    GPT::new(&cfg, &dev(), 5).unwrap()
}

/// With μ = 1 (π_old = π_θ, so ρ = 1) and β = 0 the GRPO gradient is REINFORCE with the group
/// baseline: ∇loss = −∇ (1/B) Σ_i A_i · mean_t log π(o_it). Checked against central finite
/// differences of that REINFORCE objective, which never goes through `grpo_loss`.
#[test]
fn one_update_gradient_is_reinforce_with_baseline() {
    let m = tiny();
    let (b, t, prompt) = (4usize, 8usize, 3usize);
    let ids: Vec<i64> = (0..b * t).map(|i| ((i * 5 + i / 3) % 9) as i64).collect();
    let adv = [0.5f32, -1.0, 1.5, -1.0];
    let train = m.clone().into_trainable(|_| true);
    let (logp, _) = completion_logp(&train, &ids, b, prompt, 1.0).unwrap();
    let l = t - prompt;
    let x = LossInputs {
        logp: logp.clone(),
        old_logp: logp.clone().detach(),
        ref_logp: None,
        advantages: t1(&adv),
        token_advantages: None,
        mask: Tensor::ones([b, l], &dev()),
        entropy: None,
    };
    let norm = LossNorm {
        rows: b,
        tokens: (b * l) as f64,
        max_len: l,
    };
    let (loss, _) = grpo_loss(&x, &cfg(LossType::Grpo, 0.0), &norm);
    let grads = loss.backward();
    let g = crate::train::optim::collect_grads(&train, &grads);
    // The REINFORCE objective from plain log-softmax of the full forward, in f64.
    let reinforce = |m: &GPT| -> f64 {
        let logits = host(m.forward(m.tokens(&ids, b), None));
        let v = m.config.vocab_size;
        let mut j = 0.0;
        for i in 0..b {
            let mut s = 0.0;
            for pos in prompt..t {
                let row = &logits[(i * t + pos - 1) * v..(i * t + pos) * v];
                let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let z: f64 = row.iter().map(|&x| (x as f64 - mx).exp()).sum();
                s += row[ids[i * t + pos] as usize] as f64 - mx - z.ln();
            }
            j += adv[i] as f64 * s / l as f64;
        }
        j / b as f64
    };
    let mut checked = 0;
    for (pi, (name, _)) in m.named_params().iter().enumerate() {
        let gi = host(g[pi].clone().unwrap());
        let (idx, &an) = gi
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        if an.abs() < 1e-3 {
            continue;
        }
        let shifted = |delta: f32| reinforce(&m.perturbed(name, idx, delta).unwrap());
        let eps = 1e-2f32;
        let fd = (shifted(eps) - shifted(-eps)) / (2.0 * eps as f64);
        let rel = (an as f64 + fd).abs() / (an.abs() as f64).max(1e-2);
        assert!(rel < 0.05, "{name}[{idx}]: ∇loss {an} vs −∇J {}", -fd);
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} tensors checked");
}

#[test]
fn completion_logp_picks_the_sampled_tokens() {
    let m = tiny();
    let ids: Vec<i64> = vec![1, 2, 3, 4, 5, 6, 7, 8];
    let (lp, ent) = completion_logp(&m, &ids, 2, 2, 1.0).unwrap();
    assert_eq!(lp.dims(), [2, 2]);
    let logits = host(m.forward(m.tokens(&ids, 2), None));
    // Row 1, second completion token (position 3, token 8) from the logits at position 2.
    let row = &logits[(4 + 2) * 9..(4 + 3) * 9];
    let z: f32 = row.iter().map(|x| x.exp()).sum();
    let want = row[8] - z.ln();
    assert!((host(lp)[3] - want).abs() < 1e-5);
    assert!(host(ent).iter().all(|&e| e > 0.0 && e <= 9f32.ln() + 1e-5));
    assert!(completion_logp(&m, &ids, 2, 4, 1.0).is_err());
}

/// GSPO: one ratio per sequence, exp of the mean log-ratio over its counted tokens, clipped as
/// a whole; `delta` caps the unclipped ratio of a negative advantage.
#[test]
fn sequence_ratio_and_delta_by_hand() {
    // Row 0: log-ratios 0.4 and 0.0 (mean 0.2, ρ = e^0.2 = 1.2214 > 1.2: clipped for A > 0).
    // Row 1: log-ratios 1.0 and a padded token (masked out): ρ = e.
    let logp = t2(&[0.4, 0.0, 1.0, 5.0], 2, 2);
    let x = LossInputs {
        logp,
        old_logp: t2(&[0.0; 4], 2, 2),
        ref_logp: None,
        advantages: t1(&[1.0, -1.0]),
        token_advantages: None,
        mask: t2(&[1.0, 1.0, 1.0, 0.0], 2, 2),
        entropy: None,
    };
    let norm = LossNorm {
        rows: 2,
        tokens: 3.0,
        max_len: 2,
    };
    let gspo = LossConfig {
        importance: ImportanceLevel::Sequence,
        ..cfg(LossType::Grpo, 0.0)
    };
    let (l, st) = grpo_loss(&x, &gspo, &norm);
    // Row 0: −min(1.2214, 1.2) = −1.2 on both tokens; row 1 (A < 0): −min(−e, −1.2) = e.
    let want = (-1.2 + 1f64.exp()) / 2.0;
    assert!(close(host(l)[0] as f64, want, 1e-5), "{want}");
    assert_eq!(st.clipped_high, 2.0);
    // delta = 1.5 caps row 1's unclipped ratio e at 1.5: −min(−1.5, −1.2) = 1.5.
    let capped = LossConfig {
        delta: Some(1.5),
        ..gspo
    };
    let (l, _) = grpo_loss(&x, &capped, &norm);
    assert!(close(host(l)[0] as f64, (-1.2 + 1.5) / 2.0, 1e-5));
}

/// Per-token advantages on a hand-made case: two completions of one prompt whose per-token
/// P(natural) agree until the second one turns unnatural at its third token: that token, and
/// only that token, is blamed (and its twin in the other completion credited).
#[test]
fn token_advantages_credit_where_naturalness_drops() {
    let a = vec![0.9f32, 0.9, 0.9, 0.9, 0.9];
    let b = vec![0.9f32, 0.9, 0.9, 0.1, 0.1];
    // One prompt token (index 0), four completion tokens (1..5).
    let adv = token_advantages(&[a, b], 1, 2, 0.0);
    assert_eq!(adv.len(), 8);
    let drop = (0.1f64 / 0.9).ln() - (0.9f64 / 0.1).ln();
    // Centred: ±drop/2 at completion position 2 (token 3), zero elsewhere; the batch std of
    // {0, 0, d/2, 0, 0, 0, −d/2, 0} is |d|/4, so the two become +2 and −2.
    let want = [0.0, 0.0, 2.0, 0.0, 0.0, 0.0, -2.0, 0.0];
    for (x, w) in adv.iter().zip(want) {
        assert!(close(*x as f64, w, 1e-4), "{adv:?} (drop {drop})");
    }
}

#[test]
fn distillation_advantages_on_hand_computed_values() {
    let teacher = [-1.0f32, -2.0, -3.0, -0.5];
    let policy = [-1.5f32, -1.0, -3.0, -2.0];
    // d = teacher − policy = [0.5, −1, 0, 1.5]: mean 0.25, centred [0.25, −1.25, −0.25, 1.25],
    // population variance 3.25 / 4 = 0.8125.
    let adv = distill_advantages(&teacher, &policy, 0.0);
    let sd = 0.8125f64.sqrt();
    for (a, w) in adv.iter().zip([0.25, -1.25, -0.25, 1.25]) {
        assert!(close(*a as f64, w / sd, 1e-5), "{adv:?}");
    }
    // A teacher equal to the policy: no advantage anywhere.
    let adv = distill_advantages(&policy, &policy, 1e-4);
    assert!(adv.iter().all(|&a| a == 0.0), "{adv:?}");
}

#[test]
fn mean_kl_on_hand_computed_rows() {
    // Row 1: p = (1/2, 1/2), q = (1/4, 3/4): KL = ½ ln 2 + ½ ln(2/3). Row 2: p = q: 0.
    let ln = |v: &[f64]| v.iter().map(|x| x.ln() as f32).collect::<Vec<f32>>();
    let p = ln(&[0.5, 0.5, 0.2, 0.8]);
    let q = ln(&[0.25, 0.75, 0.2, 0.8]);
    let want = (0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln()) / 2.0;
    assert!(close(mean_kl(&p, &q, 2), want, 1e-6));
    assert!(mean_kl(&q, &p, 2) > 0.0 && (mean_kl(&q, &p, 2) - want).abs() > 1e-3);
    assert_eq!(mean_kl(&p, &p, 2), 0.0);
}

#[test]
fn mixed_advantages_weight_reward_and_teacher() {
    // Two rows of two tokens; sequence advantages [1, −1] spread over each row's tokens.
    let distill = [0.5f32, -0.5, 1.0, 0.0];
    let m = mix_advantages(None, &[1.0, -1.0], &distill, 2.0, 0.5);
    let want = [2.25, 1.75, -1.5, -2.0];
    for (x, w) in m.iter().zip(want) {
        assert!(close(*x as f64, w, 1e-6), "{m:?}");
    }
    // Per-token reward advantages replace the sequence ones; reward_coef 0 leaves the teacher's.
    let token = [0.1f32, 0.2, 0.3, 0.4];
    let m = mix_advantages(Some(&token), &[9.0, 9.0], &distill, 1.0, 1.0);
    for (x, w) in m.iter().zip([0.6, -0.3, 1.3, 0.4]) {
        assert!(close(*x as f64, w, 1e-6), "{m:?}");
    }
    assert_eq!(
        mix_advantages(Some(&token), &[9.0, 9.0], &distill, 0.0, 1.0),
        distill
    );
}
