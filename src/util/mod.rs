//! What every stage uses: the error type, atomic file writes, the device and thread count, seed
//! mixing, progress bars, the scheduler's shard, and copying tensors to the host.

pub mod cluster;
pub mod device;
pub mod error;
pub mod fsutil;
pub mod lock;
pub mod progress;
pub mod rng;
pub mod stop;

use burn::tensor::Tensor;

/// The values of a float tensor, copied to the host in row-major order.
pub fn to_host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

/// Serde for f64 fields that may be NaN: written as JSON `null` (as serde_json does), read back
/// from `null` as NaN.
pub mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}
