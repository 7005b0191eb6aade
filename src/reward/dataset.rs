//! The reward dataset format, read and written here only: `{split}_x.bin` (uint16, samples × N),
//! `{split}_y.bin` (float32, samples × 2) and `{split}_metadata.txt` (`key: value` lines).
//! Metadata, a memory-mapped validating reader with statistics and host batches, the resumable
//! chunked writer of `prepare-reward-data`, whole-split writes, and shard merging.
//!
//! Every writer builds its files under hidden temporary names and renames them when complete,
//! the metadata last (it marks completion); a reader never sees a half-written split.

use crate::tokenizer::{CharVocab, Tokenizer};
use crate::util::fsutil;
use crate::{Error, Result};
use memmap2::Mmap;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
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
    /// Share of fully natural (K = N) and fully generated (K = 0) samples (0 = none: every
    /// label in [1/N, (N−1)/N]).
    pub full_share: f64,
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
        if self.full_share > 0.0 {
            lines.push(format!("full_share: {}", self.full_share));
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
        let full = if self.full_share > 0.0 {
            format!("|full={}", self.full_share)
        } else {
            String::new()
        };
        let fields = format!(
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
        );
        fields + &full
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
            full_share: num(path, "full_share", &or("full_share", "0"))?,
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

/// The first batch of a split read back (what training reads), as `inspect-reward-data` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BatchTest {
    pub batch_size: usize,
    pub num_batches: usize,
    pub x_shape: [usize; 2],
    pub y_shape: [usize; 2],
    pub first_label: Vec<f32>,
}

/// `inspect-reward-data`'s report on one split.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub stats: DatasetStats,
    pub k_over_n_histogram: [usize; 10],
    pub batch_test: BatchTest,
    pub examples: Vec<String>,
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
        let (lo, hi) = if self.meta.full_share > 0.0 {
            (-1e-6, 1.0 + 1e-6)
        } else {
            (1.0 / n - 1e-6, (n - 1.0) / n + 1e-6)
        };
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
                        "row {i}: P(natural) = {a} is outside [1/N, (N-1)/N] for N = {} (the metadata has no full_share)",
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

    /// The tokenizer the metadata names (GPT-2 BPE, or the char vocabulary at `meta_path`),
    /// when it can be loaded.
    pub fn tokenizer(&self) -> Option<Tokenizer> {
        match self.meta.tokenization_method.as_str() {
            "bpe" => Some(Tokenizer::Bpe),
            _ => {
                let p = self.meta.meta_path.as_ref()?;
                CharVocab::load(Path::new(p)).ok().map(Tokenizer::Char)
            }
        }
    }

    /// What `inspect-reward-data` reports on this split: statistics, the K/N histogram, a test
    /// batch of 4 and two decoded examples (`natural⟦|⟧generated`).
    pub fn inspect(&self) -> Inspection {
        let n = self.meta.block_size;
        let mut hist = [0usize; 10];
        for i in 0..self.len {
            hist[((self.label(i)[0] as f64 * 10.0) as usize).min(9)] += 1;
        }
        let rows: Vec<usize> = (0..self.len.min(4)).collect();
        let (x, y) = self.batch(&rows);
        let tok = self.tokenizer();
        let examples = [0, self.len / 2]
            .iter()
            .map(|&i| {
                let (t, l) = self.get(i);
                let k = (l[0] as f64 * n as f64).round() as usize;
                match &tok {
                    Some(tk) => format!("{}⟦|⟧{}", tk.decode(&t[..k]), tk.decode(&t[k..])),
                    None => format!("{:?}⟦|⟧{:?}", &t[..k], &t[k..]),
                }
            })
            .collect();
        Inspection {
            stats: self.stats(),
            k_over_n_histogram: hist,
            batch_test: BatchTest {
                batch_size: 4,
                num_batches: self.len.div_ceil(4),
                x_shape: [x.len() / n, n],
                y_shape: [y.len() / 2, 2],
                first_label: y[..2].to_vec(),
            },
            examples,
        }
    }

    /// Host batch of rows `rows`: tokens `[rows, N]` as i64 (model input) and labels `[rows, 2]`,
    /// both row-major.
    pub fn batch(&self, rows: &[usize]) -> (Vec<i64>, Vec<f32>) {
        let x = rows
            .iter()
            .flat_map(|&i| self.tokens(i))
            .map(|t| t as i64)
            .collect();
        let y = rows.iter().flat_map(|&i| self.label(i)).collect();
        (x, y)
    }
}

/// Little-endian uint16 bytes of token rows.
fn x_bytes<'a>(rows: impl IntoIterator<Item = &'a [u32]>) -> Vec<u8> {
    rows.into_iter()
        .flatten()
        .flat_map(|&t| (t as u16).to_le_bytes())
        .collect()
}

/// Little-endian float32 bytes of label rows.
fn y_bytes(labels: &[[f32; 2]]) -> Vec<u8> {
    labels
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// Writes a whole split (`samples`: tokens and label per row) with `meta` as its metadata
/// (sample count and label statistics filled in here).
pub fn write_split(
    dir: &Path,
    split: &str,
    samples: &[(Vec<u32>, [f32; 2])],
    mut meta: Metadata,
) -> Result<Metadata> {
    fsutil::create_dir_all(dir)?;
    let (xp, yp, mp) = split_paths(dir, split);
    let labels: Vec<[f32; 2]> = samples.iter().map(|(_, y)| *y).collect();
    fsutil::write_bytes_atomic(&xp, &x_bytes(samples.iter().map(|(x, _)| x.as_slice())))?;
    fsutil::write_bytes_atomic(&yp, &y_bytes(&labels))?;
    meta.num_samples = labels.len();
    meta.y_stats = YStats::of(&labels);
    meta.write(&mp)?;
    Ok(meta)
}

/// Writes into `mixed` the train split of `current` followed by `want` samples drawn uniformly
/// (with replacement, by `rng`) from the train splits of `earlier`, with `current`'s metadata
/// (its source noting the replay), and copies `current`'s val split beside it. Returns how many
/// samples were replayed (`want`, at most the pool's size).
pub fn replay(
    current: &Path,
    earlier: &[PathBuf],
    want: impl Fn(usize) -> usize,
    rng: &mut impl rand::Rng,
    mixed: &Path,
) -> Result<usize> {
    let cur = RewardDataset::open(current, "train", None)?;
    let earlier: Vec<RewardDataset> = earlier
        .iter()
        .map(|d| RewardDataset::open(d, "train", Some(&cur.tokenization())))
        .collect::<Result<_>>()?;
    let pool: usize = earlier.iter().map(|d| d.len()).sum();
    let want = want(cur.len()).min(pool);
    let mut samples: Vec<(Vec<u32>, [f32; 2])> = (0..cur.len()).map(|i| cur.get(i)).collect();
    for _ in 0..want {
        let mut k = rng.random_range(0..pool);
        let ds = earlier
            .iter()
            .find(|d| {
                let hit = k < d.len();
                if !hit {
                    k -= d.len();
                }
                hit
            })
            .ok_or_else(|| Error::Other("replay index out of range".into()))?;
        samples.push(ds.get(k));
    }
    let mut meta = cur.meta.clone();
    meta.source = format!(
        "{} + {want} replayed from rounds 1..{}",
        meta.source,
        earlier.len()
    );
    write_split(mixed, "train", &samples, meta)?;
    copy_split(current, mixed, "val")?;
    Ok(want)
}

/// Copies split `split` of `from` into `to`, byte for byte.
pub fn copy_split(from: &Path, to: &Path, split: &str) -> Result<()> {
    fsutil::create_dir_all(to)?;
    let (fx, fy, fm) = split_paths(from, split);
    let (tx, ty, tm) = split_paths(to, split);
    for (a, b) in [(fx, tx), (fy, ty), (fm, tm)] {
        fsutil::write_bytes_atomic(&b, &fsutil::read(&a)?)?;
    }
    Ok(())
}

/// Whether both splits of `dir` are complete (their metadata, written last, exists).
pub fn is_complete(dir: &Path) -> bool {
    ["train", "val"]
        .iter()
        .all(|s| split_paths(dir, s).2.exists())
}

/// The resumable writer of one split: rows are appended to hidden partial files in chunks of
/// whole blocks, a progress file records how many blocks are safely written (with a fingerprint
/// of the run's arguments), and [`SplitWriter::finish`] renames the files into place.
pub struct SplitWriter {
    split: String,
    dir: PathBuf,
    x_part: PathBuf,
    y_part: PathBuf,
    progress: PathBuf,
    fingerprint: String,
}

impl SplitWriter {
    /// Opens the writer of `split` in `dir` for rows of `n` tokens, `spc` rows per block. An
    /// interrupted run with the same `fingerprint` is resumed: returns the writer and the number
    /// of blocks already written (0 for a fresh start). Complete files of an earlier run are
    /// removed first.
    pub fn open(
        dir: &Path,
        split: &str,
        n: usize,
        spc: usize,
        fingerprint: &str,
    ) -> Result<(Self, usize)> {
        let w = Self {
            split: split.to_string(),
            dir: dir.to_path_buf(),
            x_part: dir.join(format!(".{split}_x.bin.partial")),
            y_part: dir.join(format!(".{split}_y.bin.partial")),
            progress: dir.join(format!(".{split}.progress.json")),
            fingerprint: fingerprint.to_string(),
        };
        let mut done = 0usize;
        if let Ok(bytes) = std::fs::read(&w.progress)
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && v["fingerprint"] == fingerprint
        {
            done = v["blocks_done"].as_u64().unwrap_or(0) as usize;
        }
        let file_len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len() as usize);
        if file_len(&w.x_part) < done * spc * n * 2 || file_len(&w.y_part) < done * spc * 8 {
            done = 0;
        }
        fsutil::create_dir_all(dir)?;
        let (xf, yf, mf) = split_paths(dir, split);
        for p in [&xf, &yf, &mf] {
            if p.exists() {
                std::fs::remove_file(p).map_err(|e| Error::io("cannot replace", p, e))?;
            }
        }
        let rows_done = done * spc;
        truncate(&w.x_part, (rows_done * n * 2) as u64)?;
        truncate(&w.y_part, (rows_done * 2 * 4) as u64)?;
        Ok((w, done))
    }

    /// Appends rows (tokens and labels) and records that `blocks_done` blocks are now written.
    /// A token outside the vocabulary of `vocab_size` ids is refused before anything is
    /// written: the writer never writes what the reader refuses.
    pub fn append(
        &mut self,
        rows: &[Vec<u32>],
        labels: &[[f32; 2]],
        blocks_done: usize,
        vocab_size: usize,
    ) -> Result<()> {
        if let Some((r, t)) = rows.iter().enumerate().find_map(|(r, row)| {
            row.iter()
                .find(|&&t| t as usize >= vocab_size)
                .map(|&t| (r, t))
        }) {
            return Err(Error::Mismatch(format!(
                "generated token {t} (row {r} of this write) is outside the tokenizer's vocabulary of {vocab_size}; nothing was written"
            )));
        }
        fsutil::append_synced(&self.x_part, &x_bytes(rows.iter().map(Vec::as_slice)))?;
        fsutil::append_synced(&self.y_part, &y_bytes(labels))?;
        let state =
            serde_json::json!({"fingerprint": self.fingerprint, "blocks_done": blocks_done});
        fsutil::write_bytes_atomic(&self.progress, state.to_string().as_bytes())
    }

    /// Completes the split: `meta` gets the sample count and label statistics of what was
    /// written, is written under a temporary name, then the three files are renamed into place
    /// (metadata last). A failure (a full disk) leaves nothing under the final names.
    pub fn finish(self, mut meta: Metadata) -> Result<Metadata> {
        let y = fsutil::read(&self.y_part)?;
        let ys: Vec<[f32; 2]> = y
            .chunks_exact(8)
            .map(|c| {
                [
                    f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                    f32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                ]
            })
            .collect();
        meta.num_samples = ys.len();
        meta.y_stats = YStats::of(&ys);
        let name = &self.split;
        let meta_part = self.dir.join(format!(".{name}_metadata.txt.partial"));
        meta.write(&meta_part)?;
        let (xf, yf, mf) = split_paths(&self.dir, name);
        for (from, to) in [(&self.x_part, &xf), (&self.y_part, &yf), (&meta_part, &mf)] {
            std::fs::rename(from, to).map_err(|e| Error::io("cannot rename into place", to, e))?;
        }
        let _ = std::fs::remove_file(&self.progress);
        Ok(meta)
    }
}

/// Creates `p` if needed and sets its length.
fn truncate(p: &Path, len: u64) -> Result<()> {
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(p)
        .map_err(|e| Error::io("cannot open", p, e))?;
    f.set_len(len)
        .map_err(|e| Error::io("cannot truncate", p, e))
}

/// The shards' metadata of one split, checked to belong to one run, in shard order.
fn shard_metas(shard_dirs: &[PathBuf], split: &str) -> Result<Vec<(Metadata, PathBuf)>> {
    let mut shards: Vec<(Metadata, PathBuf)> = Vec::new();
    for d in shard_dirs {
        shards.push((Metadata::read(&split_paths(d, split).2)?, d.clone()));
    }
    let first = shards[0].0.clone();
    let s = first.num_shards;
    if shards.len() != s {
        return Err(Error::Mismatch(format!(
            "the shards say num_shards = {s} but {} were given",
            shards.len()
        )));
    }
    shards.sort_by_key(|(m, _)| m.shard_index);
    for (i, (m, d)) in shards.iter().enumerate() {
        if m.shard_index != i
            || m.num_shards != s
            || m.fingerprint_fields() != first.fingerprint_fields()
        {
            return Err(Error::Mismatch(format!(
                "{} is not shard {i} of the same run (its shard_index is {}, num_shards {}, or its settings differ)",
                d.display(),
                m.shard_index,
                m.num_shards
            )));
        }
    }
    Ok(shards)
}

/// Concatenates shards written with `--num_shards S --shard_index I` into one dataset in block
/// order (block b comes from shard b mod S), checking that the shards belong together.
pub fn merge(out: &Path, shard_dirs: &[PathBuf]) -> Result<Vec<Metadata>> {
    if shard_dirs.is_empty() {
        return Err(Error::Config(
            "give at least one shard directory to merge".into(),
        ));
    }
    let mut written = Vec::new();
    for split in ["train", "val"] {
        let shards = shard_metas(shard_dirs, split)?;
        let first = shards[0].0.clone();
        let s = first.num_shards;
        let datasets: Vec<RewardDataset> = shards
            .iter()
            .map(|(_, d)| RewardDataset::open(d, split, None))
            .collect::<Result<_>>()?;
        let spc = first.samples_per_chunk;
        let total_blocks: usize = shards.iter().map(|(m, _)| m.num_blocks).sum();
        let mut samples = Vec::new();
        for b in 0..total_blocks {
            let (ds, local) = (&datasets[b % s], b / s);
            for j in 0..spc {
                let i = local * spc + j;
                if i >= ds.len() {
                    return Err(Error::Mismatch(format!("shard {} lacks block {b}", b % s)));
                }
                samples.push(ds.get(i));
            }
        }
        let meta = Metadata {
            num_blocks: total_blocks,
            num_shards: 1,
            shard_index: 0,
            created_at: now_iso8601(),
            ..first
        };
        written.push(write_split(out, split, &samples, meta)?);
    }
    Ok(written)
}
