//! nanoreward: self-supervised reward models for language models, in Rust.
//!
//! The crate in pipeline order, one line per module:
//!
//! - [`util`]: errors, atomic file writes, device and threads, seed mixing, progress bars.
//! - [`config`]: TOML files plus nanoGPT-style `--key=value` overrides.
//! - [`tokenizer`]: character level (nanoGPT's `meta.pkl`, a bounded reader) and GPT-2 BPE.
//! - [`data`]: nanoGPT's `prepare.py`, uint16 token files, the held-out split, the data folder's tokenizer.
//! - [`model`]: **the GPT** (nanoGPT's architecture) and its reward mode, with the CPU kernels.
//! - [`sampling`]: the one lockstep KV-cache sampler (sample, reward data, GRPO rollouts).
//! - [`checkpoint`]: opening any checkpoint once (directory, nanoGPT `.pt`, Hugging Face GPT-2) and saving one.
//! - [`train`]: nanoGPT's training loop and its optimizer (AdamW, schedule, clipping).
//! - [`reward`]: the reward side — [`reward::recipe`] (cuts and labels), [`reward::dataset`] (**the
//!   reward dataset format**: reader, writer, merge), [`reward::prepare`] (the job), [`reward::model`]
//!   (**the reward model**), [`reward::train`] and [`reward::eval`].
//! - [`grpo`]: **the GRPO loss** ([`grpo::loss`]), its rewards (an ensemble, per token), its
//!   config and its trainer.
//! - [`judge`]: the independent measurement of a generator (C2ST, MAUVE, text statistics).
//! - [`pipeline`]: **the cycle** (rounds of reward data → reward model → GRPO) and the demo.
//! - [`report`]: one self-contained HTML page of a run directory.
//! - [`metrics`]: JSON-lines logs (mirrored to [`tensorboard`] event files on request), SVG plots
//!   and peak memory; [`bench`](mod@bench): speed benchmarks.

pub mod util;

pub mod config;
pub mod tokenizer;

pub mod data;
pub mod model;
pub mod sampling;

pub mod checkpoint;
pub mod train;

pub mod reward;

pub mod grpo;
pub mod judge;
pub mod pipeline;

pub mod bench;
pub mod metrics;
pub mod report;
pub mod tensorboard;

pub use util::error::{Error, Result};
