//! TensorBoard's event-file format, written: `events.out.tfevents.<time>.<host>.nanoreward` in a
//! log directory, a TFRecord stream (per record: the length as u64 LE, its masked CRC-32C, the
//! bytes, their masked CRC-32C) of `Event` protocol buffers — a version record, then one per
//! scalar (`wall_time`, `step`, `summary { value { tag, simple_value } }`). `tensorboard --logdir`
//! and the tensorboard package's event reader read it.

use crate::util::fsutil;
use crate::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// TFRecord's masked CRC.
fn masked(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Protocol-buffer encoding of the few fields an event needs.
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        varint(out, ((field as u64) << 3) | wire as u64);
    }

    pub fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
        key(out, field, 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

/// An `Event` with a wall time, a step and either a file version or one scalar.
fn event(wall_time: f64, step: i64, body: EventBody) -> Vec<u8> {
    let mut e = Vec::new();
    pb::key(&mut e, 1, 1);
    e.extend_from_slice(&wall_time.to_le_bytes());
    pb::key(&mut e, 2, 0);
    pb::varint(&mut e, step as u64);
    match body {
        EventBody::Version => pb::bytes(&mut e, 3, b"brain.Event:2"),
        EventBody::Scalar(tag, v) => {
            let mut value = Vec::new();
            pb::bytes(&mut value, 1, tag.as_bytes());
            pb::key(&mut value, 2, 5);
            value.extend_from_slice(&v.to_le_bytes());
            let mut summary = Vec::new();
            pb::bytes(&mut summary, 1, &value);
            pb::bytes(&mut e, 5, &summary);
        }
    }
    e
}

enum EventBody<'a> {
    Version,
    Scalar(&'a str, f32),
}

/// One TFRecord holding `data`.
fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked(crc32c(&len)).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked(crc32c(data)).to_le_bytes());
    out
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An open event file, appended to as scalars come.
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// Creates a new event file in `logdir`.
    pub fn create(logdir: &Path) -> Result<Self> {
        fsutil::create_dir_all(logdir)?;
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let t = now();
        let path = logdir.join(format!(
            "events.out.tfevents.{}.{host}.{}.nanoreward",
            t as u64,
            std::process::id()
        ));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("cannot create the event file", &path, e))?;
        let mut w = Self { file, path };
        w.append(&event(t, 0, EventBody::Version))?;
        Ok(w)
    }

    fn append(&mut self, e: &[u8]) -> Result<()> {
        self.file
            .write_all(&record(e))
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io("cannot write the event file", &self.path, e))
    }

    /// Writes scalar `tag` = `value` at `step`.
    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<()> {
        self.append(&event(
            now(),
            step as i64,
            EventBody::Scalar(tag, value as f32),
        ))
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_values() {
        // The CRC-32C check value, and RFC 3720's 32 zero bytes.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    #[test]
    fn varints_encode_as_protobuf() {
        let mut v = Vec::new();
        pb::varint(&mut v, 300);
        assert_eq!(v, vec![0xAC, 0x02]);
    }
}
