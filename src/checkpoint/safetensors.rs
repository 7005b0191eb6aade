//! The safetensors file format: named f32 tensors written, F32/F16/BF16 tensors read as f32.

use super::weights::{FloatKind, HostTensor, decode_floats};
use crate::util::fsutil;
use crate::{Error, Result};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::HashMap;
use std::path::Path;

/// Serialises named f32 tensors in the safetensors format.
pub fn to_bytes(tensors: &[(String, HostTensor)]) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, t)| {
            let b = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (n.clone(), b, t.shape.clone())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, b, s)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Other(format!("cannot serialise tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| Error::Other(format!("safetensors: {e}")))
}

/// Reads every tensor of a safetensors file as f32 (F32, F16 and BF16 are accepted).
pub fn read(path: &Path) -> Result<HashMap<String, HostTensor>> {
    parse(&fsutil::read(path)?, path)
}

/// The values of one tensor view as f32.
fn values(name: &str, view: &TensorView, path: &Path) -> Result<Vec<f32>> {
    let kind = match view.dtype() {
        Dtype::F32 => FloatKind::F32,
        Dtype::BF16 => FloatKind::BF16,
        Dtype::F16 => FloatKind::F16,
        other => {
            return Err(Error::checkpoint(
                path,
                format!("tensor {name} has dtype {other:?}; only F32/F16/BF16 are supported"),
            ));
        }
    };
    Ok(decode_floats(view.data(), kind))
}

/// Parses safetensors bytes (from `path`, for messages) into f32 host tensors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<HashMap<String, HostTensor>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        Error::checkpoint(
            path,
            format!("not a readable safetensors file ({e}); the file may be truncated"),
        )
    })?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let data = values(&name, &view, path)?;
        if let Some(bad) = data.iter().find(|v| !v.is_finite()) {
            return Err(Error::checkpoint(
                path,
                format!("tensor {name} holds a non-finite value ({bad})"),
            ));
        }
        out.insert(
            name,
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}
