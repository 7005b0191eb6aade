//! Device selection (`--device auto|cpu|cuda`) and the CPU thread count.

use crate::error::{Error, Result};
use burn::tensor::Device;

/// Picks the compute device by name. `auto` is CUDA when built with the `cuda` feature, else CPU.
pub fn select(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::flex()),
        "auto" => {
            #[cfg(feature = "cuda")]
            {
                Ok(Device::cuda(0))
            }
            #[cfg(not(feature = "cuda"))]
            {
                Ok(Device::flex())
            }
        }
        "cuda" => {
            #[cfg(feature = "cuda")]
            {
                Ok(Device::cuda(0))
            }
            #[cfg(not(feature = "cuda"))]
            {
                Err(Error::Config(
                    "device 'cuda' needs a build with CUDA: cargo install --features cuda (or use --device cpu)".into(),
                ))
            }
        }
        other => Err(Error::Config(format!(
            "unknown device '{other}': use auto, cpu or cuda"
        ))),
    }
}

/// Sets the number of CPU threads used by the compute backend (0 = one per core). Only the first
/// call in a process takes effect.
pub fn set_threads(n: usize) {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}
