//! Writing PyTorch's `torch.save` format: a zip archive (entries stored, data 64-byte aligned
//! like torch does) holding `<name>/data.pkl`, a protocol-2 pickle in which every tensor is
//! `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())` and every
//! storage the persistent id `('storage', torch.FloatStorage, key, 'cpu', numel)`, plus
//! `<name>/data/<key>` (raw little-endian f32), `<name>/byteorder` and `<name>/version`.

use crate::Result;
use crate::checkpoint::weights::HostTensor;
use crate::util::fsutil;
use std::path::Path;

/// The Python values a checkpoint needs.
#[derive(Debug, Clone)]
pub enum Py {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Py>),
    Dict(Vec<(String, Py)>),
    OrderedDict(Vec<(String, Py)>),
    /// A float32 tensor viewing all of storage `storage`.
    Tensor {
        storage: usize,
        shape: Vec<usize>,
    },
}

/// A protocol-2 pickle of `root`; `numels[k]` is the element count of storage k.
pub fn pickle(root: &Py, numels: &[usize]) -> Vec<u8> {
    let mut out = vec![0x80, 2];
    emit(&mut out, root, numels);
    out.push(b'.');
    out
}

fn global(out: &mut Vec<u8>, module: &str, name: &str) {
    out.push(b'c');
    out.extend_from_slice(module.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

fn items(out: &mut Vec<u8>, kv: &[(String, Py)], numels: &[usize]) {
    if kv.is_empty() {
        return;
    }
    out.push(b'(');
    for (k, v) in kv {
        emit(out, &Py::Str(k.clone()), numels);
        emit(out, v, numels);
    }
    out.push(b'u');
}

fn emit(out: &mut Vec<u8>, v: &Py, numels: &[usize]) {
    match v {
        Py::None => out.push(b'N'),
        Py::Bool(true) => out.push(0x88),
        Py::Bool(false) => out.push(0x89),
        Py::Int(i) => {
            if let Ok(small) = i32::try_from(*i) {
                out.push(b'J');
                out.extend_from_slice(&small.to_le_bytes());
            } else {
                out.push(0x8a);
                out.push(8);
                out.extend_from_slice(&i.to_le_bytes());
            }
        }
        Py::Float(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_be_bytes());
        }
        Py::Str(s) => {
            out.push(b'X');
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Py::Tuple(xs) => {
            out.push(b'(');
            for x in xs {
                emit(out, x, numels);
            }
            out.push(b't');
        }
        Py::Dict(kv) => {
            out.push(b'}');
            items(out, kv, numels);
        }
        Py::OrderedDict(kv) => {
            global(out, "collections", "OrderedDict");
            out.extend_from_slice(b")R");
            items(out, kv, numels);
        }
        Py::Tensor { storage, shape } => {
            let mut strides = vec![1i64; shape.len()];
            for i in (0..shape.len().saturating_sub(1)).rev() {
                strides[i] = strides[i + 1] * shape[i + 1] as i64;
            }
            let ints = |v: Vec<i64>| Py::Tuple(v.into_iter().map(Py::Int).collect());
            global(out, "torch._utils", "_rebuild_tensor_v2");
            out.push(b'(');
            out.push(b'(');
            emit(out, &Py::Str("storage".into()), numels);
            global(out, "torch", "FloatStorage");
            emit(out, &Py::Str(storage.to_string()), numels);
            emit(out, &Py::Str("cpu".into()), numels);
            emit(out, &Py::Int(numels[*storage] as i64), numels);
            out.extend_from_slice(b"tQ");
            emit(out, &Py::Int(0), numels);
            emit(
                out,
                &ints(shape.iter().map(|&d| d as i64).collect()),
                numels,
            );
            emit(out, &ints(strides), numels);
            emit(out, &Py::Bool(false), numels);
            emit(out, &Py::OrderedDict(Vec::new()), numels);
            out.extend_from_slice(b"tR");
        }
    }
}

/// CRC-32 (IEEE), as zip needs.
pub fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

/// A zip archive of stored (uncompressed) entries whose data start at 64-byte boundaries.
pub fn zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len();
        let crc = crc32(data);
        let base = offset + 30 + name.len() + 4;
        let pad = (64 - base % 64) % 64;
        let header = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend_from_slice(&sig.to_le_bytes());
            if central {
                h.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // version needed
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&0u16.to_le_bytes()); // stored
            h.extend_from_slice(&0u32.to_le_bytes()); // time, date
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&(if central { 0u16 } else { 4 + pad as u16 }).to_le_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&0x4650u16.to_le_bytes()); // padding field, as torch writes
        out.extend_from_slice(&(pad as u16).to_le_bytes());
        out.extend(std::iter::repeat_n(b'Z', pad));
        out.extend_from_slice(data);
        central.extend(header(0x0201_4b50, true));
        central.extend_from_slice(&[0u8; 6]); // comment length, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&(offset as u32).to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len();
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&(cd_offset as u32).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// Writes nanoGPT's checkpoint dict `{'model', 'model_args', 'iter_num', 'best_val_loss',
/// 'config'}` to `out` atomically. `tensors` are in state-dict order; `tied` names the tensor
/// whose storage the last one (lm_head.weight) shares.
pub fn save_nanogpt(
    out: &Path,
    tensors: &[(String, HostTensor)],
    tied: Option<usize>,
    model_args: &[(&str, Py)],
    iter_num: i64,
    best_val_loss: f64,
) -> Result<()> {
    let own = if tied.is_some() {
        tensors.len() - 1
    } else {
        tensors.len()
    };
    let numels: Vec<usize> = tensors[..own].iter().map(|(_, t)| t.data.len()).collect();
    let state: Vec<(String, Py)> = tensors
        .iter()
        .enumerate()
        .map(|(i, (name, t))| {
            let storage = if i >= own { tied.unwrap_or(i) } else { i };
            (
                name.clone(),
                Py::Tensor {
                    storage,
                    shape: t.shape.clone(),
                },
            )
        })
        .collect();
    let root = Py::Dict(vec![
        ("model".into(), Py::OrderedDict(state)),
        ("optimizer".into(), Py::None),
        (
            "model_args".into(),
            Py::Dict(
                model_args
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            ),
        ),
        ("iter_num".into(), Py::Int(iter_num)),
        ("best_val_loss".into(), Py::Float(best_val_loss)),
        (
            "config".into(),
            Py::Dict(vec![("exported_by".into(), Py::Str("nanoreward".into()))]),
        ),
    ]);
    let archive = out
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .unwrap_or("archive");
    let mut entries = vec![
        (format!("{archive}/data.pkl"), pickle(&root, &numels)),
        (format!("{archive}/byteorder"), b"little".to_vec()),
    ];
    for (k, (_, t)) in tensors[..own].iter().enumerate() {
        let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        entries.push((format!("{archive}/data/{k}"), bytes));
    }
    entries.push((format!("{archive}/version"), b"3\n".to_vec()));
    fsutil::write_bytes_atomic(out, &zip(&entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn pickle_of_small_values_by_hand() {
        let p = pickle(
            &Py::Dict(vec![
                ("a".into(), Py::Int(1)),
                ("b".into(), Py::Tuple(vec![Py::Bool(true), Py::None])),
            ]),
            &[],
        );
        let want: Vec<u8> = [
            &[0x80, 2, b'}', b'('][..],
            &[b'X', 1, 0, 0, 0, b'a', b'J', 1, 0, 0, 0],
            &[b'X', 1, 0, 0, 0, b'b', b'(', 0x88, b'N', b't'],
            b"u.",
        ]
        .concat();
        assert_eq!(p, want);
    }
}
