//! Weights between the model and a checkpoint: host copies of tensors, the model's tensors in
//! checkpoint layout (PyTorch names and `[out, in]` Linear weights), and loading named tensors
//! into a model with shape checks.

use crate::model::{GPT, Param};
use crate::util::to_host;
use crate::{Error, Result};
use burn::tensor::{Device, Tensor, TensorData};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// A host copy of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Copies a tensor to the host.
    pub fn from_tensor<const D: usize>(t: Tensor<D>) -> Self {
        let shape = t.dims().to_vec();
        Self {
            shape,
            data: to_host(t),
        }
    }

    /// The transpose of a 2-D tensor.
    pub fn transposed(&self) -> Self {
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut data = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                data[j * r + i] = self.data[i * c + j];
            }
        }
        Self {
            shape: vec![c, r],
            data,
        }
    }

    /// Uploads to `device` as a D-dimensional tensor.
    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }
}

/// A floating-point storage type of a checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatKind {
    F64,
    F32,
    BF16,
    F16,
}

/// Little-endian values of `kind` as f32 (both safetensors and torch.save store little-endian).
pub fn decode_floats(raw: &[u8], kind: FloatKind) -> Vec<f32> {
    match kind {
        FloatKind::F64 => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        FloatKind::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        FloatKind::BF16 => raw
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
        FloatKind::F16 => raw
            .chunks_exact(2)
            .map(|c| half_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
    }
}

/// IEEE half precision to f32.
pub fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal half: value = f · 2^-24.
            let v = f as f32 * 2f32.powi(-24);
            return if sign != 0 { -v } else { v };
        }
        (31, 0) => sign | 0x7f80_0000,
        (31, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | (((e - 15 + 127) as u32) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// True for parameters stored `[in, out]` in the model and `[out, in]` on disk.
fn is_linear_weight(name: &str, p: &Param) -> bool {
    matches!(p, Param::Matrix(_))
        && !name.starts_with("transformer.wte")
        && !name.starts_with("transformer.wpe")
}

/// The model's tensors in checkpoint layout (PyTorch names and shapes).
pub fn model_tensors(model: &GPT) -> Vec<(String, HostTensor)> {
    model
        .named_params()
        .into_iter()
        .map(|(name, p)| {
            let linear = is_linear_weight(&name, &p);
            let host = match p {
                Param::Vector(t) => HostTensor::from_tensor(t),
                Param::Matrix(t) => HostTensor::from_tensor(t),
            };
            (name, if linear { host.transposed() } else { host })
        })
        .collect()
}

/// What loading weights into a model did.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    /// Tensors in the file that the model has no place for (e.g. lm_head in reward mode).
    pub unused: Vec<String>,
    /// Model parameters absent from the file, kept at their fresh initialisation.
    pub initialised: Vec<String>,
}

/// One tensor of the file for parameter `name` of the model (`p`), in the model's layout.
fn fitted(name: &str, p: &Param, w: &HostTensor, path: &Path) -> Result<HostTensor> {
    let linear = is_linear_weight(name, p);
    let want = p.dims();
    let w = if linear && w.shape.len() == 2 {
        w.transposed()
    } else {
        w.clone()
    };
    if w.shape != want {
        let show = |s: &[usize]| if linear { vec![s[1], s[0]] } else { s.to_vec() };
        return Err(Error::checkpoint(
            path,
            format!(
                "tensor {name} has shape {:?} but the model expects {:?}",
                show(&w.shape),
                show(&want)
            ),
        ));
    }
    if w.data.iter().any(|v| !v.is_finite()) {
        return Err(Error::checkpoint(
            path,
            format!("tensor {name} holds NaN or infinite values; the run that wrote it diverged"),
        ));
    }
    Ok(w)
}

/// Copies the tensors of `weights` into `model` by name. A wrong shape is an error naming the
/// tensor; a parameter missing from the file is an error unless `allow_missing` says it may
/// stay freshly initialised (for example `reward_head.*`).
pub fn load_weights(
    model: &mut GPT,
    weights: &HashMap<String, HostTensor>,
    path: &Path,
    allow_missing: impl Fn(&str) -> bool,
) -> Result<LoadReport> {
    let device = model.device();
    let mut report = LoadReport::default();
    model.map_params(|name, p| {
        let Some(w) = weights.get(name) else {
            if allow_missing(name) {
                report.initialised.push(name.to_string());
                return Ok(p);
            }
            return Err(Error::checkpoint(
                path,
                format!("tensor {name} is missing; the checkpoint does not match this model"),
            ));
        };
        let w = fitted(name, &p, w, path)?;
        report.loaded.push(name.to_string());
        Ok(match p {
            Param::Vector(_) => Param::Vector(w.to_tensor(&device)),
            Param::Matrix(_) => Param::Matrix(w.to_tensor(&device)),
        })
    })?;
    let known: HashSet<&str> = report.loaded.iter().map(|s| s.as_str()).collect();
    let mut unused: Vec<String> = weights
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .cloned()
        .collect();
    unused.sort();
    report.unused = unused;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_conversion() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x3555), 0.333_251_95);
        assert_eq!(half_to_f32(0x0001), 2f32.powi(-24));
    }

    #[test]
    fn transpose_round_trip() {
        let t = HostTensor {
            shape: vec![2, 3],
            data: vec![1., 2., 3., 4., 5., 6.],
        };
        let tt = t.transposed();
        assert_eq!(tt.shape, vec![3, 2]);
        assert_eq!(tt.data, vec![1., 4., 2., 5., 3., 6.]);
        assert_eq!(tt.transposed(), t);
    }
}
