//! Causal self-attention straight from the fused q/k/v projection `[B, T, 3C]` to the merged
//! heads `[B, T, C]`, on plain slices: no head split/merge copies, no mask tensor, and a backward
//! pass that reuses the saved attention weights. The small per-head products go through the
//! `gemm` crate (the kernels burn's Flex backend uses for its own matmuls).

use super::fused::exp_nonpositive;

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub batch: usize,
    pub t: usize,
    pub c: usize,
    pub n_head: usize,
}

impl Dims {
    fn hd(&self) -> usize {
        self.c / self.n_head
    }
    fn scale(&self) -> f32 {
        1.0 / (self.hd() as f32).sqrt()
    }
    /// Offsets of head `h`'s query, key and value columns in row 0 of batch `b` of qkv.
    fn qkv_offsets(&self, b: usize, h: usize) -> [usize; 3] {
        let base = b * self.t * 3 * self.c + h * self.hd();
        [base, base + self.c, base + 2 * self.c]
    }
}

/// A strided matrix inside a slice: element (i, j) is `data[off + i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    data: &'a [f32],
    off: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    pub(super) fn new(data: &'a [f32], off: usize, rs: usize, cs: usize) -> Self {
        Self { data, off, rs, cs }
    }
}

fn in_bounds(len: usize, off: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    rows == 0 || cols == 0 || off + (rows - 1) * rs + (cols - 1) * cs < len
}

/// `dst[off..]` (m×n, row stride `dst_rs`, unit column stride) = `[dst +] scale · lhs·rhs`, with
/// lhs m×k and rhs k×n.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_off: usize,
    dst_rs: usize,
    lhs: View,
    rhs: View,
    accumulate: bool,
    scale: f32,
) {
    assert!(
        in_bounds(dst.len(), dst_off, m, n, dst_rs, 1),
        "matmul: dst out of bounds"
    );
    assert!(
        in_bounds(lhs.data.len(), lhs.off, m, k, lhs.rs, lhs.cs),
        "matmul: lhs out of bounds"
    );
    assert!(
        in_bounds(rhs.data.len(), rhs.off, k, n, rhs.rs, rhs.cs),
        "matmul: rhs out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: every element gemm reads or writes lies inside its slice (asserted above), `dst`
    // is borrowed mutably so it aliases neither operand, and all strides are non-negative.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().add(dst_off),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr().add(lhs.off),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr().add(rhs.off),
            rhs.cs as isize,
            rhs.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Row-wise causal softmax of the T×T scores in place: row i keeps columns ≤ i.
fn causal_softmax(s: &mut [f32], t: usize) {
    for (i, row) in s.chunks_exact_mut(t).enumerate() {
        let (keep, masked) = row.split_at_mut(i + 1);
        let max = keep.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for v in keep.iter_mut() {
            *v = exp_nonpositive(*v - max);
            sum += *v;
        }
        let inv = 1.0 / sum;
        keep.iter_mut().for_each(|v| *v *= inv);
        masked.iter_mut().for_each(|v| *v = 0.0);
    }
}

/// `out = p ⊙ mask` for one head's T×T weights.
fn apply_mask(out: &mut [f32], p: &[f32], mask: &[f32]) {
    for ((o, &pv), &m) in out.iter_mut().zip(p).zip(mask) {
        *o = pv * m;
    }
}

/// `y = softmax(q·kᵀ/√hd, causal)·v` per head, or with a dropout `mask` `[B, n_head, T, T]` (the
/// inverted-dropout multipliers) `(softmax(...) ⊙ mask)·v`. Returns y `[B, T, C]` and, with `keep_weights`,
/// the attention weights `[B, n_head, T, T]` for [`backward`].
pub fn forward(
    qkv: &[f32],
    d: Dims,
    keep_weights: bool,
    mask: Option<&[f32]>,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let (t, c, hd) = (d.t, d.c, d.hd());
    assert_eq!(
        qkv.len(),
        d.batch * t * 3 * c,
        "attention: qkv has the wrong size"
    );
    let mut y = vec![0.0f32; d.batch * t * c];
    let tt = t * t;
    if let Some(m) = mask {
        assert_eq!(
            m.len(),
            d.batch * d.n_head * tt,
            "attention: mask has the wrong size"
        );
    }
    let mut dropped = vec![0.0f32; if mask.is_some() { tt } else { 0 }];
    let mut weights = vec![
        0.0f32;
        if keep_weights {
            d.batch * d.n_head * tt
        } else {
            tt
        }
    ];
    for b in 0..d.batch {
        for h in 0..d.n_head {
            let [qo, ko, vo] = d.qkv_offsets(b, h);
            let p_off = if keep_weights {
                (b * d.n_head + h) * tt
            } else {
                0
            };
            let p = &mut weights[p_off..p_off + tt];
            let q = View::new(qkv, qo, 3 * c, 1);
            let kt = View::new(qkv, ko, 1, 3 * c);
            matmul((t, t, hd), p, 0, t, q, kt, false, d.scale());
            causal_softmax(p, t);
            let pv = match mask {
                Some(m) => {
                    let m_off = (b * d.n_head + h) * tt;
                    apply_mask(&mut dropped, p, &m[m_off..m_off + tt]);
                    View::new(&dropped, 0, t, 1)
                }
                None => View::new(&*p, 0, t, 1),
            };
            let v = View::new(qkv, vo, 3 * c, 1);
            matmul((t, hd, t), &mut y, b * t * c + h * hd, c, pv, v, false, 1.0);
        }
    }
    (y, keep_weights.then_some(weights))
}

/// Gradient with respect to qkv `[B, T, 3C]` given dy `[B, T, C]`, the forward's weights P and its
/// dropout mask M (P' = P ⊙ M; no mask: P' = P): dV = P'ᵀ·dO, dP = (dO·Vᵀ) ⊙ M,
/// dS = P ⊙ (dP − Σⱼ P·dP)/√hd, dQ = dS·K, dK = dSᵀ·Q.
pub fn backward(
    qkv: &[f32],
    weights: &[f32],
    mask: Option<&[f32]>,
    dy: &[f32],
    d: Dims,
) -> Vec<f32> {
    let (t, c, hd) = (d.t, d.c, d.hd());
    let tt = t * t;
    let mut dqkv = vec![0.0f32; qkv.len()];
    let mut ds = vec![0.0f32; tt];
    let mut dropped = vec![0.0f32; if mask.is_some() { tt } else { 0 }];
    for b in 0..d.batch {
        for h in 0..d.n_head {
            let [qo, ko, vo] = d.qkv_offsets(b, h);
            let p_off = (b * d.n_head + h) * tt;
            let p = &weights[p_off..p_off + tt];
            let m = mask.map(|m| &m[p_off..p_off + tt]);
            let d_o = View::new(dy, b * t * c + h * hd, c, 1);
            // dV = P'ᵀ·dO with P' = P ⊙ mask, the weights the forward multiplied v by.
            let pt = match m {
                Some(m) => {
                    apply_mask(&mut dropped, p, m);
                    View::new(&dropped, 0, 1, t)
                }
                None => View::new(weights, p_off, 1, t),
            };
            matmul((t, hd, t), &mut dqkv, vo, 3 * c, pt, d_o, false, 1.0);
            let vt = View::new(qkv, vo, 1, 3 * c);
            matmul((t, t, hd), &mut ds, 0, t, d_o, vt, false, 1.0);
            if let Some(m) = m {
                ds.iter_mut().zip(m).for_each(|(g, &mv)| *g *= mv);
            }
            for (dp_row, p_row) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
                let dot: f32 = dp_row.iter().zip(p_row).map(|(a, b)| a * b).sum();
                for (g, &pv) in dp_row.iter_mut().zip(p_row) {
                    *g = pv * (*g - dot);
                }
            }
            let dsv = View::new(&ds, 0, t, 1);
            let k = View::new(qkv, ko, 3 * c, 1);
            matmul((t, hd, t), &mut dqkv, qo, 3 * c, dsv, k, false, d.scale());
            let dst = View::new(&ds, 0, 1, t);
            let q = View::new(qkv, qo, 3 * c, 1);
            matmul((t, hd, t), &mut dqkv, ko, 3 * c, dst, q, false, d.scale());
        }
    }
    dqkv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed * 97)
                    % 1000;
                x as f32 / 500.0 - 1.0
            })
            .collect()
    }

    /// Naive f64 attention with the causal mask, softmax and dropout multipliers written out.
    fn naive(qkv: &[f32], d: Dims, drop: Option<&[f32]>) -> Vec<f64> {
        let (t, c, hd) = (d.t, d.c, d.hd());
        let at = |b: usize, i: usize, col: usize| qkv[(b * t + i) * 3 * c + col] as f64;
        let mut y = vec![0.0f64; d.batch * t * c];
        for b in 0..d.batch {
            for h in 0..d.n_head {
                for i in 0..t {
                    let scores: Vec<f64> = (0..=i)
                        .map(|j| {
                            (0..hd)
                                .map(|e| at(b, i, h * hd + e) * at(b, j, c + h * hd + e))
                                .sum::<f64>()
                                / (hd as f64).sqrt()
                        })
                        .collect();
                    let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                    let keep = |j: usize| {
                        drop.map_or(1.0, |k| k[((b * d.n_head + h) * t + i) * t + j] as f64)
                    };
                    for e in 0..hd {
                        y[(b * t + i) * c + h * hd + e] = (0..=i)
                            .map(|j| {
                                (scores[j] - m).exp() / z * keep(j) * at(b, j, 2 * c + h * hd + e)
                            })
                            .sum();
                    }
                }
            }
        }
        y
    }

    #[test]
    fn forward_matches_naive_and_backward_matches_finite_differences() {
        let d = Dims {
            batch: 2,
            t: 5,
            c: 8,
            n_head: 2,
        };
        let qkv = pseudo(d.batch * d.t * 3 * d.c, 1);
        // Inverted dropout with p = 0.25: multipliers 0 or 4/3.
        let mask: Vec<f32> = pseudo(d.batch * d.n_head * d.t * d.t, 3)
            .iter()
            .map(|&r| if r < -0.5 { 0.0 } else { 4.0 / 3.0 })
            .collect();
        assert!(mask.contains(&0.0) && mask.contains(&(4.0 / 3.0)));
        for drop in [None, Some(&mask[..])] {
            let (y, w) = forward(&qkv, d, true, drop);
            let reference = naive(&qkv, d, drop);
            for (a, b) in y.iter().zip(&reference) {
                assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
            }
            // Loss L = Σ y·u; its gradient by the backward pass vs central differences of the
            // naive f64 forward.
            let u = pseudo(y.len(), 2);
            let grad = backward(&qkv, &w.unwrap(), drop, &u, d);
            let loss = |x: &[f32]| -> f64 {
                naive(x, d, drop)
                    .iter()
                    .zip(&u)
                    .map(|(a, &b)| a * b as f64)
                    .sum()
            };
            let h = 1e-3f32;
            for i in 0..qkv.len() {
                let (mut plus, mut minus) = (qkv.clone(), qkv.clone());
                plus[i] += h;
                minus[i] -= h;
                let fd = (loss(&plus) - loss(&minus)) / (2.0 * h as f64);
                assert!(
                    (grad[i] as f64 - fd).abs() < 1e-3,
                    "d qkv[{i}] (dropout {}): {} vs {fd}",
                    drop.is_some(),
                    grad[i]
                );
            }
        }
    }
}

/// A layer's cached keys and values on the host for decoding, `[B, n_head, capacity, head_dim]`
/// each, written in place: a step appends its positions and reads the cache where it lies (no
/// per-step concatenation of the whole cache).
#[derive(Debug, Clone)]
pub struct HostKv {
    k: Vec<f32>,
    v: Vec<f32>,
    dims: Dims,
    cap: usize,
    len: usize,
}

impl HostKv {
    /// An empty cache for `batch` rows of `c` = n_head × head_dim, holding `cap` positions.
    pub fn new(batch: usize, c: usize, n_head: usize, cap: usize) -> Self {
        let dims = Dims {
            batch,
            t: 0,
            c,
            n_head,
        };
        let n = batch * c * cap;
        Self {
            k: vec![0.0; n],
            v: vec![0.0; n],
            dims,
            cap,
            len: 0,
        }
    }

    /// Cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    fn at(&self, b: usize, h: usize, pos: usize) -> usize {
        let hd = self.dims.hd();
        ((b * self.dims.n_head + h) * self.cap + pos) * hd
    }

    /// Appends the keys and values of `t` new positions from `qkv` `[B, t, 3C]`, then returns
    /// the attention of their queries `[B, t, C]`, query i (absolute position len + i) seeing
    /// the keys up to its own.
    pub fn step(&mut self, qkv: &[f32], t: usize) -> Vec<f32> {
        let past = self.len;
        self.append(qkv, t);
        let (b, c, nh) = (self.dims.batch, self.dims.c, self.dims.n_head);
        let hd = self.dims.hd();
        let d = Dims { t, ..self.dims };
        let mut y = vec![0.0f32; b * t * c];
        let mut p = vec![0.0f32; past + t];
        for bi in 0..b {
            for h in 0..nh {
                let [qo, _, _] = d.qkv_offsets(bi, h);
                for i in 0..t {
                    let q = &qkv[qo + i * 3 * c..qo + i * 3 * c + hd];
                    let out = (bi * t + i) * c + h * hd;
                    self.attend_one(q, (bi, h, past + i + 1), &mut p, &mut y[out..out + hd]);
                }
            }
        }
        y
    }

    /// Appends the keys and values of `t` new positions from `qkv` `[B, t, 3C]`.
    pub fn append(&mut self, qkv: &[f32], t: usize) {
        let (b, c, nh) = (self.dims.batch, self.dims.c, self.dims.n_head);
        let hd = self.dims.hd();
        let past = self.len;
        assert!(
            past + t <= self.cap && qkv.len() == b * t * 3 * c,
            "HostKv: {} positions of {} rows into {} × {}",
            past + t,
            qkv.len() / (t * 3 * c).max(1),
            b,
            self.cap
        );
        let d = Dims { t, ..self.dims };
        for bi in 0..b {
            for h in 0..nh {
                let [_, ko, vo] = d.qkv_offsets(bi, h);
                for i in 0..t {
                    let dst = self.at(bi, h, past + i);
                    let row = i * 3 * c;
                    self.k[dst..dst + hd].copy_from_slice(&qkv[ko + row..ko + row + hd]);
                    self.v[dst..dst + hd].copy_from_slice(&qkv[vo + row..vo + row + hd]);
                }
            }
        }
        self.len = past + t;
    }

    /// softmax(q·Kᵀ·scale) · V over the first `n` cached positions of row `b`, head `h`.
    fn attend_one(
        &self,
        q: &[f32],
        (b, h, n): (usize, usize, usize),
        p: &mut [f32],
        y: &mut [f32],
    ) {
        let hd = self.dims.hd();
        let base = self.at(b, h, 0);
        let scale = self.dims.scale();
        let mut max = f32::NEG_INFINITY;
        for (j, pj) in p[..n].iter_mut().enumerate() {
            let k = &self.k[base + j * hd..base + (j + 1) * hd];
            *pj = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
            max = max.max(*pj);
        }
        let mut sum = 0.0f32;
        for pj in p[..n].iter_mut() {
            *pj = exp_nonpositive(*pj - max);
            sum += *pj;
        }
        let inv = 1.0 / sum;
        for (j, &pj) in p[..n].iter().enumerate() {
            let v = &self.v[base + j * hd..base + (j + 1) * hd];
            for (o, &x) in y.iter_mut().zip(v) {
                *o += pj * inv * x;
            }
        }
    }
}
