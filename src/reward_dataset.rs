//! The reward dataset on disk: `{split}_x.bin` (uint16, samples × N), `{split}_y.bin` (float32,
//! samples × 2) and `{split}_metadata.txt` (`key: value` lines). Metadata, a memory-mapped
//! validating reader, statistics, a shuffling prefetching batch iterator and shard merging.

use crate::error::{Error, Result};
use crate::fsutil;
use burn::tensor::{Device, Int, Tensor, TensorData};
use memmap2::Mmap;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Version of the on-disk layout written in the metadata.
pub const FORMAT_VERSION: u32 = 1;

/// Min, max, mean and standard deviation of each label column.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct YStats {
    pub min: [f64; 2],
    pub max: [f64; 2],
    pub mean: [f64; 2],
    pub std: [f64; 2],
}

impl YStats {
    /// Statistics of label rows.
    pub fn of(ys: &[[f32; 2]]) -> Self {
        let n = ys.len().max(1) as f64;
        let mut s = YStats {
            min: [f64::MAX; 2],
            max: [f64::MIN; 2],
            ..Default::default()
        };
        for y in ys {
            for (c, &v) in y.iter().enumerate() {
                let v = v as f64;
                s.min[c] = s.min[c].min(v);
                s.max[c] = s.max[c].max(v);
                s.mean[c] += v / n;
            }
        }
        for y in ys {
            for (c, &v) in y.iter().enumerate() {
                s.std[c] += (v as f64 - s.mean[c]).powi(2) / n;
            }
        }
        s.std = [s.std[0].sqrt(), s.std[1].sqrt()];
        if ys.is_empty() {
            s.min = [0.0; 2];
            s.max = [0.0; 2];
        }
        s
    }
}

/// What a reward dataset's tokens mean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenizationInfo {
    pub method: String,
    pub vocab_size: usize,
}

/// The contents of `{split}_metadata.txt`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub format_version: u32,
    pub split: String,
    pub num_samples: usize,
    pub block_size: usize,
    pub tokenization_method: String,
    pub vocab_size: usize,
    pub meta_path: Option<String>,
    pub base_model_path: String,
    pub base_model_config: String,
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub samples_per_chunk: usize,
    pub seed: u64,
    pub train_split: f64,
    pub source: String,
    pub num_blocks: usize,
    pub num_shards: usize,
    pub shard_index: usize,
    pub y_stats: YStats,
    pub created_at: String,
}

fn fmt_pair(v: [f64; 2]) -> String {
    format!("{:.6}, {:.6}", v[0], v[1])
}

fn parse_pair(s: &str) -> Option<[f64; 2]> {
    let mut it = s.split(',').map(|p| p.trim().parse::<f64>());
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b)), None) => Some([a, b]),
        _ => None,
    }
}

/// Now as an ISO 8601 UTC timestamp.
pub fn now_iso8601() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

impl Metadata {
    /// The `key: value` text.
    pub fn to_text(&self) -> String {
        let n = self.block_size;
        let mut lines = vec![
            format!("format_version: {}", self.format_version),
            format!("split: {}", self.split),
            format!("num_samples: {}", self.num_samples),
            format!("block_size: {n}"),
            "x_dtype: uint16".to_string(),
            "y_dtype: float32".to_string(),
            format!("x_shape: ({}, {n})", self.num_samples),
            format!("y_shape: ({}, 2)", self.num_samples),
            format!("tokenization_method: {}", self.tokenization_method),
            format!("vocab_size: {}", self.vocab_size),
        ];
        if let Some(m) = &self.meta_path {
            lines.push(format!("meta_path: {m}"));
        }
        lines.extend([
            format!("base_model_path: {}", self.base_model_path),
            format!("base_model_config: {}", self.base_model_config),
            format!("temperature: {}", self.temperature),
            format!(
                "top_k: {}",
                self.top_k.map_or("none".to_string(), |k| k.to_string())
            ),
            format!("samples_per_chunk: {}", self.samples_per_chunk),
            format!("seed: {}", self.seed),
            format!("train_split: {}", self.train_split),
            format!("source: {}", self.source),
            format!("num_blocks: {}", self.num_blocks),
            format!("num_shards: {}", self.num_shards),
            format!("shard_index: {}", self.shard_index),
            format!("y_min: {}", fmt_pair(self.y_stats.min)),
            format!("y_max: {}", fmt_pair(self.y_stats.max)),
            format!("y_mean: {}", fmt_pair(self.y_stats.mean)),
            format!("y_std: {}", fmt_pair(self.y_stats.std)),
            format!("created_at: {}", self.created_at),
        ]);
        lines.join("\n") + "\n"
    }

    /// Writes the metadata file atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        fsutil::write_bytes_atomic(path, self.to_text().as_bytes())
    }

    /// The fields that determine the dataset's contents (for resuming and merging checks).
    pub fn fingerprint_fields(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{:?}|{}|{}|{}|{}",
            self.block_size,
            self.tokenization_method,
            self.vocab_size,
            self.base_model_path,
            self.base_model_config,
            self.temperature,
            self.top_k,
            self.samples_per_chunk,
            self.seed,
            self.train_split,
            self.source
        )
    }

    /// Parses metadata text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut kv = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once(':').ok_or_else(|| {
                Error::format(
                    path,
                    format!("line {} is not `key: value`: {line:?}", i + 1),
                )
            })?;
            kv.insert(k.trim().to_string(), v.trim().to_string());
        }
        let get = |k: &str| kv.get(k).map(String::as_str);
        let req = |k: &str| {
            get(k).ok_or_else(|| Error::format(path, format!("metadata key '{k}' is missing")))
        };
        fn num<T: std::str::FromStr>(path: &Path, k: &str, v: &str) -> Result<T> {
            v.parse().map_err(|_| {
                Error::format(path, format!("metadata '{k}: {v}' is not a valid number"))
            })
        }
        let or = |k: &str, default: &'static str| get(k).unwrap_or(default).to_string();
        let pair = |k: &str| -> Result<[f64; 2]> {
            match get(k) {
                None => Ok([0.0; 2]),
                Some(v) => parse_pair(v).ok_or_else(|| {
                    Error::format(path, format!("metadata '{k}: {v}' is not two numbers"))
                }),
            }
        };
        let m = Metadata {
            format_version: num(path, "format_version", &or("format_version", "1"))?,
            split: get("split").unwrap_or("").to_string(),
            num_samples: num(path, "num_samples", req("num_samples")?)?,
            block_size: num(path, "block_size", req("block_size")?)?,
            tokenization_method: req("tokenization_method")?.to_string(),
            vocab_size: num(path, "vocab_size", req("vocab_size")?)?,
            meta_path: get("meta_path").map(str::to_string),
            base_model_path: get("base_model_path").unwrap_or("").to_string(),
            base_model_config: get("base_model_config").unwrap_or("").to_string(),
            temperature: num(path, "temperature", &or("temperature", "1.0"))?,
            top_k: match get("top_k") {
                None | Some("none") | Some("None") => None,
                Some(v) => Some(num(path, "top_k", v)?),
            },
            samples_per_chunk: num(path, "samples_per_chunk", &or("samples_per_chunk", "1"))?,
            seed: num(path, "seed", &or("seed", "0"))?,
            train_split: num(path, "train_split", &or("train_split", "0.9"))?,
            source: get("source").unwrap_or("").to_string(),
            num_blocks: num(path, "num_blocks", &or("num_blocks", "0"))?,
            num_shards: num(path, "num_shards", &or("num_shards", "1"))?,
            shard_index: num(path, "shard_index", &or("shard_index", "0"))?,
            y_stats: YStats {
                min: pair("y_min")?,
                max: pair("y_max")?,
                mean: pair("y_mean")?,
                std: pair("y_std")?,
            },
            created_at: get("created_at").unwrap_or("").to_string(),
        };
        if m.block_size < 2 {
            return Err(Error::format(
                path,
                format!("block_size {} is below 2", m.block_size),
            ));
        }
        if m.format_version > FORMAT_VERSION {
            return Err(Error::format(
                path,
                format!(
                    "format_version {} is newer than this nanoreward understands ({FORMAT_VERSION}); upgrade nanoreward",
                    m.format_version
                ),
            ));
        }
        Ok(m)
    }

    /// Reads a metadata file.
    pub fn read(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::format(
                path,
                "metadata file is missing (was the dataset completely written?)",
            ));
        }
        Self::parse(&fsutil::read_text(path)?, path)
    }
}

/// Paths of a split's three files.
pub fn split_paths(dir: &Path, split: &str) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(format!("{split}_x.bin")),
        dir.join(format!("{split}_y.bin")),
        dir.join(format!("{split}_metadata.txt")),
    )
}

fn map_file(path: &Path) -> Result<(Option<Mmap>, usize)> {
    let f = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let len = f
        .metadata()
        .map_err(|e| Error::io("cannot stat", path, e))?
        .len() as usize;
    if len == 0 {
        return Ok((None, 0));
    }
    // SAFETY: read-only mapping; nanoreward writes datasets under temporary names and renames
    // them, so a mapped file is never modified in place by us.
    let m = unsafe { Mmap::map(&f) }.map_err(|e| Error::io("cannot map", path, e))?;
    Ok((Some(m), len))
}

fn bytes(m: &Option<Mmap>) -> &[u8] {
    m.as_ref().map_or(&[], |m| m.as_ref())
}

/// Statistics of one split.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetStats {
    pub num_samples: usize,
    pub block_size: usize,
    pub tokenization_method: String,
    pub vocab_size: usize,
    pub y: YStats,
    pub prob_sum_min: f64,
    pub prob_sum_max: f64,
    pub prob_sum_mean: f64,
}

/// A memory-mapped, validated reward dataset split.
#[derive(Clone)]
pub struct RewardDataset {
    pub meta: Metadata,
    x: Arc<Option<Mmap>>,
    y: Arc<Option<Mmap>>,
    len: usize,
}

impl RewardDataset {
    /// Opens `dir`'s `split`, checking sizes against the metadata, every label, and the
    /// tokenization against `expected` when given.
    pub fn open(dir: &Path, split: &str, expected: Option<&TokenizationInfo>) -> Result<Self> {
        let (xp, yp, mp) = split_paths(dir, split);
        let meta = Metadata::read(&mp)?;
        let n = meta.block_size;
        let (x, xlen) = map_file(&xp)?;
        let (y, ylen) = map_file(&yp)?;
        if xlen % (2 * n) != 0 {
            return Err(Error::format(
                &xp,
                format!("size {xlen} bytes is not a multiple of block_size {n} × 2 bytes (uint16)"),
            ));
        }
        if ylen % 8 != 0 {
            return Err(Error::format(
                &yp,
                format!("size {ylen} bytes is not a multiple of 2 × 4 bytes (float32 pairs)"),
            ));
        }
        let (rows_x, rows_y) = (xlen / (2 * n), ylen / 8);
        if rows_x != rows_y {
            return Err(Error::format(
                &yp,
                format!(
                    "{rows_y} label rows but {rows_x} token rows in {}",
                    xp.display()
                ),
            ));
        }
        if rows_x != meta.num_samples {
            return Err(Error::format(
                &mp,
                format!(
                    "num_samples {} but the files hold {rows_x} samples",
                    meta.num_samples
                ),
            ));
        }
        if rows_x == 0 {
            return Err(Error::format(&xp, "the dataset holds zero samples"));
        }
        if let Some(e) = expected
            && (e.method != meta.tokenization_method || e.vocab_size != meta.vocab_size)
        {
            {
                return Err(Error::Mismatch(format!(
                    "{} is tokenized {} (vocab {}) but {} (vocab {}) was expected",
                    mp.display(),
                    meta.tokenization_method,
                    meta.vocab_size,
                    e.method,
                    e.vocab_size
                )));
            }
        }
        let ds = Self {
            meta,
            x: Arc::new(x),
            y: Arc::new(y),
            len: rows_x,
        };
        ds.validate_labels(&yp)?;
        ds.validate_tokens(&xp)?;
        Ok(ds)
    }

    fn validate_labels(&self, yp: &Path) -> Result<()> {
        let n = self.meta.block_size as f64;
        let (lo, hi) = (1.0 / n - 1e-6, (n - 1.0) / n + 1e-6);
        for i in 0..self.len {
            let [a, b] = self.label(i);
            if !a.is_finite() || !b.is_finite() {
                return Err(Error::format(
                    yp,
                    format!("row {i}: label [{a}, {b}] is not finite"),
                ));
            }
            if ((a + b) as f64 - 1.0).abs() > 1e-6 {
                return Err(Error::format(
                    yp,
                    format!("row {i}: probabilities {a} + {b} do not sum to 1"),
                ));
            }
            if (a as f64) < lo || (a as f64) > hi {
                return Err(Error::format(
                    yp,
                    format!(
                        "row {i}: P(natural) = {a} is outside [1/N, (N-1)/N] for N = {}",
                        self.meta.block_size
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_tokens(&self, xp: &Path) -> Result<()> {
        let b = bytes(&self.x);
        if let Some(pos) = b
            .chunks_exact(2)
            .position(|c| u16::from_le_bytes([c[0], c[1]]) as usize >= self.meta.vocab_size)
        {
            return Err(Error::format(
                xp,
                format!(
                    "token at row {}, position {} is outside the vocabulary of {}",
                    pos / self.meta.block_size,
                    pos % self.meta.block_size,
                    self.meta.vocab_size
                ),
            ));
        }
        Ok(())
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty (never, for an opened dataset).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tokenization this split declares.
    pub fn tokenization(&self) -> TokenizationInfo {
        TokenizationInfo {
            method: self.meta.tokenization_method.clone(),
            vocab_size: self.meta.vocab_size,
        }
    }

    /// Tokens of sample `i`.
    pub fn tokens(&self, i: usize) -> Vec<u32> {
        let n = self.meta.block_size;
        let b = bytes(&self.x);
        b[i * n * 2..(i + 1) * n * 2]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
            .collect()
    }

    /// Label of sample `i`: [P(natural), P(synthetic)].
    pub fn label(&self, i: usize) -> [f32; 2] {
        let b = bytes(&self.y);
        let c = &b[i * 8..i * 8 + 8];
        [
            f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            f32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        ]
    }

    /// Sample `i`.
    pub fn get(&self, i: usize) -> (Vec<u32>, [f32; 2]) {
        (self.tokens(i), self.label(i))
    }

    /// Statistics over every sample.
    pub fn stats(&self) -> DatasetStats {
        let ys: Vec<[f32; 2]> = (0..self.len).map(|i| self.label(i)).collect();
        let sums: Vec<f64> = ys.iter().map(|y| (y[0] + y[1]) as f64).collect();
        DatasetStats {
            num_samples: self.len,
            block_size: self.meta.block_size,
            tokenization_method: self.meta.tokenization_method.clone(),
            vocab_size: self.meta.vocab_size,
            y: YStats::of(&ys),
            prob_sum_min: sums.iter().copied().fold(f64::MAX, f64::min),
            prob_sum_max: sums.iter().copied().fold(f64::MIN, f64::max),
            prob_sum_mean: sums.iter().sum::<f64>() / sums.len().max(1) as f64,
        }
    }

    /// Batches of (`[B, N]` tokens, `[B, 2]` labels) on `device`, shuffled with `shuffle_seed`
    /// (None keeps file order), prepared by a background thread a few batches ahead.
    pub fn batches(
        &self,
        batch_size: usize,
        shuffle_seed: Option<u64>,
        drop_last: bool,
        device: &Device,
    ) -> Batches {
        let mut order: Vec<usize> = (0..self.len).collect();
        if let Some(s) = shuffle_seed {
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(s));
        }
        let bs = batch_size.max(1);
        let chunks: Vec<Vec<usize>> = order
            .chunks(bs)
            .filter(|c| !drop_last || c.len() == bs)
            .map(<[usize]>::to_vec)
            .collect();
        let count = chunks.len();
        let (tx, rx) = std::sync::mpsc::sync_channel(3);
        let ds = self.clone();
        let device = device.clone();
        std::thread::spawn(move || {
            let n = ds.meta.block_size;
            for idx in chunks {
                let b = idx.len();
                let x: Vec<i64> = idx
                    .iter()
                    .flat_map(|&i| ds.tokens(i))
                    .map(|t| t as i64)
                    .collect();
                let y: Vec<f32> = idx.iter().flat_map(|&i| ds.label(i)).collect();
                let xt = Tensor::<2, Int>::from_data(TensorData::new(x, [b, n]), &device);
                let yt = Tensor::<2>::from_data(TensorData::new(y, [b, 2]), &device);
                if tx.send((xt, yt)).is_err() {
                    break;
                }
            }
        });
        Batches { rx, count }
    }
}

/// The batch iterator of [`RewardDataset::batches`].
pub struct Batches {
    rx: std::sync::mpsc::Receiver<(Tensor<2, Int>, Tensor<2>)>,
    count: usize,
}

impl Batches {
    /// Number of batches this iterator yields.
    pub fn count_batches(&self) -> usize {
        self.count
    }
}

impl Iterator for Batches {
    type Item = (Tensor<2, Int>, Tensor<2>);
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}
