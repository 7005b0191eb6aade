//! The lm_head and the next-token cross-entropy in one pass over row chunks, never holding the
//! `[N, vocab]` logits or their gradient: for each chunk of rows, logits = x·wteᵀ, then per row
//! the log-sum-exp and the loss. When training, the same pass also turns the chunk's logits into
//! softmax − one-hot in place and adds the two products dx = dlogits·wte and dwte += dlogitsᵀ·x
//! (the gradients of the unweighted sum of the losses; the backward pass scales them), so no
//! logits are computed twice. A backward with unequal row weights recomputes the logits chunk by
//! chunk. With a 50k vocabulary this keeps a BPE training step's memory at the size of the model
//! rather than of the logits.

use super::attention::{View, matmul};
use super::fused::{chunked_sum, exp_nonpositive, lane_max};

/// Logits held at once: rows per chunk = max(1, CHUNK_LOGITS / vocab) (16 MiB of f32).
pub const CHUNK_LOGITS: usize = 1 << 22;

/// Rows per chunk for a vocabulary of `v`.
pub fn chunk_rows(v: usize) -> usize {
    (CHUNK_LOGITS / v.max(1)).max(1)
}

/// The logits of rows `r0..r1` of `x` (`[N, C]`) into `buf` (`[r1 − r0, V]`).
fn logits_into(buf: &mut [f32], x: &[f32], wte: &[f32], (r0, r1): (usize, usize), c: usize) {
    let v = wte.len() / c;
    let rows = r1 - r0;
    matmul(
        (rows, v, c),
        &mut buf[..rows * v],
        0,
        v,
        View::new(x, r0 * c, c, 1),
        View::new(wte, 0, 1, c),
        false,
        1.0,
    );
}

/// Calls `f(r0, logits)` with the logits x·wteᵀ of rows `r0..r0 + rows` of `x` (`[N, C]`),
/// `[rows, V]`, chunk after chunk, so that no more than one chunk is held (mutable: a backward
/// pass turns them into logit gradients in place).
fn for_each_chunk(x: &[f32], wte: &[f32], c: usize, mut f: impl FnMut(usize, &mut [f32])) {
    let (n, v) = (x.len() / c.max(1), wte.len() / c.max(1));
    let step = chunk_rows(v);
    let mut buf = vec![0.0f32; step.min(n) * v];
    for r0 in (0..n).step_by(step) {
        let r1 = (r0 + step).min(n);
        logits_into(&mut buf, x, wte, (r0, r1), c);
        f(r0, &mut buf[..(r1 - r0) * v]);
    }
}

/// Calls `f(row, logits)` for every row of `x` (`[N, C]`) in order, computing the logits
/// x·wteᵀ chunk by chunk so that no more than one chunk of `[rows, V]` is held.
pub fn for_each_row(x: &[f32], wte: &[f32], c: usize, mut f: impl FnMut(usize, &[f32])) {
    let v = wte.len() / c.max(1);
    for_each_chunk(x, wte, c, |r0, chunk| {
        for (i, row) in chunk.chunks_exact(v).enumerate() {
            f(r0 + i, row);
        }
    });
}

/// dx `[N, C]` and dwte `[V, C]` of a loss whose logit gradients `grad(row, logits)` writes over
/// each row's logits in place, chunk by chunk.
fn chunk_grads(
    x: &[f32],
    wte: &[f32],
    c: usize,
    mut grad: impl FnMut(usize, &mut [f32]),
) -> (Vec<f32>, Vec<f32>) {
    let (n, v) = (x.len() / c, wte.len() / c);
    let (mut dx, mut dwte) = (vec![0.0f32; n * c], vec![0.0f32; v * c]);
    for_each_chunk(x, wte, c, |r0, chunk| {
        for (i, row) in chunk.chunks_exact_mut(v).enumerate() {
            grad(r0 + i, row);
        }
        let r1 = r0 + chunk.len() / v;
        products(chunk, x, wte, (r0, r1), c, &mut dx, &mut dwte);
    });
    (dx, dwte)
}

/// Vocabulary entries per panel of [`panels`].
pub const PANEL: usize = 192;

/// wte `[V, C]` rearranged for a sampling step's product: panels of [`PANEL`] vocabulary
/// entries, each stored `[C, width]` and contiguous, so that gemm reads every panel as it lies
/// (no per-step packing of the V × C matrix) from a few pages (a plain `[C, V]` transpose puts
/// every k of a panel on its own page).
pub fn panels(wte: &[f32], c: usize) -> Vec<f32> {
    let v = wte.len() / c.max(1);
    let mut out = vec![0.0f32; v * c];
    for j0 in (0..v).step_by(PANEL) {
        let w = PANEL.min(v - j0);
        let panel = &mut out[j0 * c..(j0 + w) * c];
        for (l, row) in wte[j0 * c..(j0 + w) * c].chunks_exact(c).enumerate() {
            for (k, &x) in row.iter().enumerate() {
                panel[k * w + l] = x;
            }
        }
    }
    out
}

/// The logits `[B, V]` of `x` `[B, C]` into `out`, from wte in [`panels`] form.
pub fn logits_from_panels(out: &mut [f32], x: &[f32], panels: &[f32], c: usize) {
    let v = panels.len() / c.max(1);
    let b = x.len() / c.max(1);
    for j0 in (0..v).step_by(PANEL) {
        let w = PANEL.min(v - j0);
        matmul(
            (b, w, c),
            &mut out[..b * v],
            j0,
            v,
            View::new(x, 0, c, 1),
            View::new(&panels[j0 * c..(j0 + w) * c], 0, w, 1),
            false,
            1.0,
        );
    }
}

/// log Σ exp of one row of logits (f32 sums of 512 terms, added up in f64, so a 50k or 1M
/// vocabulary loses no precision to the running sum).
pub(crate) fn log_sum_exp(row: &[f32]) -> f32 {
    let max = lane_max(row);
    let sum: f64 = row
        .chunks(512)
        .map(|c| {
            let mut e = [0.0f32; 512];
            for (o, &z) in e.iter_mut().zip(c) {
                *o = exp_nonpositive(z - max);
            }
            chunked_sum(&e[..c.len()])
        })
        .sum();
    max + sum.ln() as f32
}

/// Forward: the loss of every row (`lse − logit[target]`) and every row's log-sum-exp, for
/// `x` `[N, C]`, `wte` `[V, C]` and `targets` (N ids below V).
pub fn forward(x: &[f32], wte: &[f32], targets: &[usize], c: usize) -> (Vec<f32>, Vec<f32>) {
    let n = targets.len();
    let (mut losses, mut lse) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for_each_row(x, wte, c, |r, row| {
        let l = log_sum_exp(row);
        lse.push(l);
        losses.push(l - row[targets[r]]);
    });
    (losses, lse)
}

/// [`forward`] plus the gradients of `Σ_i loss_i`: (losses, lse, dx `[N, C]`, dwte `[V, C]`).
pub fn forward_with_grads(
    x: &[f32],
    wte: &[f32],
    targets: &[usize],
    c: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = targets.len();
    let (mut losses, mut lse) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (dx, dwte) = chunk_grads(x, wte, c, |r, row| {
        let t = targets[r];
        let picked = row[t];
        let max = lane_max(row);
        row.iter_mut().for_each(|z| *z = exp_nonpositive(*z - max));
        let sum = chunked_sum(row);
        let l = max + sum.ln() as f32;
        lse.push(l);
        losses.push(l - picked);
        let inv = (1.0 / sum) as f32;
        row.iter_mut().for_each(|z| *z *= inv);
        row[t] -= 1.0;
    });
    (losses, lse, dx, dwte)
}

/// dx[r0..r1] = d·wte and dwte += dᵀ·x[r0..r1], for the logit gradients `d` of those rows.
fn products(
    d: &[f32],
    x: &[f32],
    wte: &[f32],
    (r0, r1): (usize, usize),
    c: usize,
    dx: &mut [f32],
    dwte: &mut [f32],
) {
    let (rows, v) = (r1 - r0, wte.len() / c);
    let (dv, xv) = (View::new(d, 0, v, 1), View::new(x, r0 * c, c, 1));
    matmul(
        (rows, c, v),
        dx,
        r0 * c,
        c,
        dv,
        View::new(wte, 0, c, 1),
        false,
        1.0,
    );
    matmul(
        (v, c, rows),
        dwte,
        0,
        c,
        View::new(d, 0, 1, v),
        xv,
        true,
        1.0,
    );
}

/// Backward of `Σ_i dloss_i · loss_i`: dx `[N, C]` and dwte `[V, C]`, from the forward's `lse`
/// and the gradient of every row's loss.
pub fn backward(
    x: &[f32],
    wte: &[f32],
    targets: &[usize],
    lse: &[f32],
    dloss: &[f32],
    c: usize,
) -> (Vec<f32>, Vec<f32>) {
    chunk_grads(x, wte, c, |r, row| {
        let (l, w) = (lse[r], dloss[r]);
        for z in row.iter_mut() {
            *z = w * exp_nonpositive((*z - l).min(0.0));
        }
        row[targets[r]] -= w;
    })
}

/// The entropy of every row's softmax(x·wteᵀ), H = lse − Σ_j p_j z_j, with each row's lse and
/// E[z] = Σ_j p_j z_j for the backward pass.
pub fn entropy_forward(x: &[f32], wte: &[f32], c: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = x.len() / c;
    let (mut h, mut lse, mut ez) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::new());
    for_each_row(x, wte, c, |_, row| {
        let max = lane_max(row);
        let (mut sum, mut dot) = (0.0f64, 0.0f64);
        for part in row.chunks(512) {
            let (mut s, mut d) = ([0.0f32; 512], [0.0f32; 512]);
            for (k, &z) in part.iter().enumerate() {
                s[k] = exp_nonpositive(z - max);
                d[k] = s[k] * (z - max);
            }
            sum += chunked_sum(&s[..part.len()]);
            dot += chunked_sum(&d[..part.len()]);
        }
        let e = dot / sum + max as f64;
        let l = max as f64 + sum.ln();
        h.push((l - e) as f32);
        lse.push(l as f32);
        ez.push(e as f32);
    });
    (h, lse, ez)
}

/// Backward of `Σ_i g_i · H_i`: with dH_i/dz_ij = −p_ij (z_ij − E[z]_i), dx `[N, C]` and
/// dwte `[V, C]`, recomputing the logits chunk by chunk.
pub fn entropy_backward(
    x: &[f32],
    wte: &[f32],
    (lse, ez): (&[f32], &[f32]),
    g: &[f32],
    c: usize,
) -> (Vec<f32>, Vec<f32>) {
    chunk_grads(x, wte, c, |r, row| {
        let (l, e, w) = (lse[r], ez[r], g[r]);
        for z in row.iter_mut() {
            *z = -w * exp_nonpositive((*z - l).min(0.0)) * (*z - e);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row i's logits in f64.
    fn naive_logits(x: &[f32], wte: &[f32], i: usize, c: usize) -> Vec<f64> {
        wte.chunks_exact(c)
            .map(|w| (0..c).map(|k| x[i * c + k] as f64 * w[k] as f64).sum())
            .collect()
    }

    /// The naive computation in f64: full logits, log-softmax, one-hot gradient of Σ w_i loss_i.
    fn reference(
        x: &[f32],
        wte: &[f32],
        t: &[usize],
        w: &[f32],
        c: usize,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (n, v) = (t.len(), wte.len() / c);
        let (mut loss, mut dx, mut dw) = (vec![0.0; n], vec![0.0; n * c], vec![0.0; v * c]);
        for i in 0..n {
            let z = naive_logits(x, wte, i, c);
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + z.iter().map(|&a| (a - m).exp()).sum::<f64>().ln();
            loss[i] = lse - z[t[i]];
            for j in 0..v {
                let g = w[i] as f64 * ((z[j] - lse).exp() - if j == t[i] { 1.0 } else { 0.0 });
                for k in 0..c {
                    dx[i * c + k] += g * wte[j * c + k] as f64;
                    dw[j * c + k] += g * x[i * c + k] as f64;
                }
            }
        }
        (loss, dx, dw)
    }

    #[test]
    fn entropy_and_its_gradients_equal_the_naive_ones() {
        let (c, v, n) = (3, CHUNK_LOGITS / 4 + 37, 11);
        let val = |i: usize, s: f32| ((i as f32 * 0.618).fract() - 0.5) * s;
        let x: Vec<f32> = (0..n * c).map(|i| val(i, 2.0)).collect();
        let wte: Vec<f32> = (0..v * c).map(|i| val(i + 7, 3.0)).collect();
        let g: Vec<f32> = (0..n).map(|i| 0.5 + i as f32 / n as f32).collect();
        let (h, lse, ez) = entropy_forward(&x, &wte, c);
        let (dx, dw) = entropy_backward(&x, &wte, (&lse, &ez), &g, c);
        // Naive f64: H = −Σ p log p; dH/dz_j = −p_j (log p_j + H).
        let (mut rh, mut rdx, mut rdw) = (vec![0.0; n], vec![0.0; n * c], vec![0.0; v * c]);
        for i in 0..n {
            let z = naive_logits(&x, &wte, i, c);
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = z.iter().map(|&a| (a - m).exp()).sum();
            let logp: Vec<f64> = z.iter().map(|&a| a - m - s.ln()).collect();
            rh[i] = -logp.iter().map(|&lp| lp.exp() * lp).sum::<f64>();
            for j in 0..v {
                let d = -g[i] as f64 * logp[j].exp() * (logp[j] + rh[i]);
                for k in 0..c {
                    rdx[i * c + k] += d * wte[j * c + k] as f64;
                    rdw[j * c + k] += d * x[i * c + k] as f64;
                }
            }
        }
        close(&h, &rh, 1e-3, "entropy");
        close(&dx, &rdx, 1e-3, "dx");
        close(&dw, &rdw, 1e-5, "dwte");
    }

    fn close(a: &[f32], b: &[f64], tol: f64, what: &str) {
        assert_eq!(a.len(), b.len());
        let d = a
            .iter()
            .zip(b)
            .map(|(&p, &q)| (p as f64 - q).abs())
            .fold(0.0, f64::max);
        assert!(d < tol, "{what}: max diff {d}");
    }

    #[test]
    fn chunked_loss_and_gradients_equal_the_naive_ones() {
        // A vocabulary big enough for several chunks of rows (and not a multiple of anything).
        let (c, v, n) = (3, CHUNK_LOGITS / 4 + 37, 11);
        assert!(chunk_rows(v) < n && n % chunk_rows(v) != 0);
        let val = |i: usize, s: f32| ((i as f32 * 0.618).fract() - 0.5) * s;
        let x: Vec<f32> = (0..n * c).map(|i| val(i, 2.0)).collect();
        let wte: Vec<f32> = (0..v * c).map(|i| val(i + 7, 3.0)).collect();
        let t: Vec<usize> = (0..n).map(|i| (i * 7919) % v).collect();
        let (loss, lse) = forward(&x, &wte, &t, c);
        let weights: Vec<f32> = (0..n).map(|i| 0.5 + i as f32 / n as f32).collect();
        let (dx, dw) = backward(&x, &wte, &t, &lse, &weights, c);
        let (rl, rdx, rdw) = reference(&x, &wte, &t, &weights, c);
        close(&loss, &rl, 1e-3, "loss");
        close(&dx, &rdx, 1e-3, "dx");
        close(&dw, &rdw, 1e-5, "dwte");
        // The gradients taken in the forward pass (unit weights).
        let (loss1, lse1, dx1, dw1) = forward_with_grads(&x, &wte, &t, c);
        assert_eq!((loss1, lse1), (loss, lse));
        let ones = vec![1.0f32; n];
        let (_, rdx, rdw) = reference(&x, &wte, &t, &ones, c);
        close(&dx1, &rdx, 1e-3, "dx in the forward");
        close(&dw1, &rdw, 1e-5, "dwte in the forward");
    }

    #[test]
    fn panel_logits_and_row_visits_equal_the_naive_product() {
        // A vocabulary of two full panels and a partial one; rows not a multiple of anything.
        let (c, v, n) = (5, 2 * PANEL + 37, 7);
        let val = |i: usize, s: f32| ((i as f32 * 0.618).fract() - 0.5) * s;
        let x: Vec<f32> = (0..n * c).map(|i| val(i, 2.0)).collect();
        let wte: Vec<f32> = (0..v * c).map(|i| val(i + 7, 3.0)).collect();
        let mut out = vec![f32::NAN; n * v];
        logits_from_panels(&mut out, &x, &panels(&wte, c), c);
        let mut visited = vec![f32::NAN; n * v];
        for_each_row(&x, &wte, c, |r, row| {
            visited[r * v..(r + 1) * v].copy_from_slice(row);
        });
        let reference: Vec<f64> = (0..n).flat_map(|i| naive_logits(&x, &wte, i, c)).collect();
        close(&out, &reference, 1e-5, "panel logits");
        close(&visited, &reference, 1e-5, "visited logits");
    }
}
