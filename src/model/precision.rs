//! The precision of the model's matrix products (`dtype`), the rule of PyTorch's autocast:
//! under bf16, the linear layers and the lm_head multiply bf16-rounded inputs and weights into
//! a bf16 product; LayerNorm, softmax, attention, the losses, the master weights, the gradients,
//! the optimizer state and checkpoints stay f32.

use burn::tensor::{DType, Tensor};

crate::choice! {
    /// The precision of the matrix products of the linear layers and the lm_head.
    pub enum Precision("dtype") {
        /// f32 throughout.
        #[default]
        Float32 = "float32",
        /// bf16 products with f32 master weights (on the CPU the fused f32 kernels, e.g. the
        /// chunked lm_head, keep f32: burn's CPU backend multiplies bf16 through f32 anyway).
        Bfloat16 = "bfloat16",
    }
}

impl Precision {
    /// `a · b` at this precision. Under bf16 both factors and the product are rounded to bf16
    /// and the result is f32 again, so the f32 parameters get f32 gradients through the casts.
    pub fn matmul<const D: usize>(self, a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
        match self {
            Precision::Float32 => a.matmul(b),
            Precision::Bfloat16 => a
                .cast(DType::BF16)
                .matmul(b.cast(DType::BF16))
                .cast(DType::F32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Precision;
    use crate::util::to_host;
    use burn::tensor::{DType, Device, Distribution, Tensor};

    /// f32 → bf16 → f32, rounding to nearest, ties to even (finite inputs).
    fn bf16(x: f32) -> f32 {
        let b = x.to_bits();
        f32::from_bits((b + 0x7fff + ((b >> 16) & 1)) & 0xffff_0000)
    }

    #[test]
    fn bf16_product_is_the_rounded_product_of_rounded_factors() {
        let dev = Device::flex();
        dev.seed(5);
        let (n, k, m) = (6, 33, 5);
        let a = Tensor::<3>::random([2, n, k], Distribution::Normal(0.0, 1.0), &dev);
        let b = Tensor::<3>::random([1, k, m], Distribution::Normal(0.0, 1.0), &dev);
        let got = Precision::Bfloat16.matmul(a.clone(), b.clone());
        assert_eq!(got.dtype(), DType::F32);
        let exact = Precision::Float32.matmul(a.clone(), b.clone());
        let (got, exact, av, bv) = (to_host(got), to_host(exact), to_host(a), to_host(b));
        let mut differs = 0;
        for bi in 0..2 {
            for i in 0..n {
                for j in 0..m {
                    // The naive product of the rounded factors, in f64, rounded to bf16.
                    let s: f64 = (0..k)
                        .map(|t| bf16(av[(bi * n + i) * k + t]) as f64 * bf16(bv[t * m + j]) as f64)
                        .sum();
                    let (g, e) = (got[(bi * n + i) * m + j], exact[(bi * n + i) * m + j]);
                    assert_eq!(g, bf16(g), "not a bf16 value: {g}");
                    // Within one bf16 step of the reference (f32 vs f64 accumulation may round
                    // the other way at a tie).
                    let ulp = (s.abs() as f32).max(1e-3) / 128.0;
                    assert!((g - bf16(s as f32)).abs() <= ulp, "{g} vs {s}");
                    differs += usize::from((g - e).abs() > 1e-5 * e.abs().max(1.0));
                }
            }
        }
        assert!(
            differs > 0,
            "the bf16 product equals the f32 one everywhere"
        );
    }
}
