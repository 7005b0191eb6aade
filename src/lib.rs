//! nanoreward: self-supervised reward models for language models, in Rust.
//!
//! Stages, one module each: [`tokenizer`] and [`data`] (nanoGPT's prepare), [`model`] (the GPT
//! and its reward mode), [`sampling`] (KV-cache generation), [`train`] (nanoGPT's train loop with
//! [`optim`]), [`checkpoint`] (directory checkpoints), [`metrics`] (JSONL logs and plots) and
//! [`bench`](mod@bench).

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod cycle;
pub mod data;
pub mod device;
pub mod download;
pub mod error;
pub mod fsutil;
pub mod grpo;
pub mod interop;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod reward_data;
pub mod reward_dataset;
pub mod reward_eval;
pub mod reward_model;
pub mod reward_prepare;
pub mod sampling;
pub mod tokenizer;
pub mod train;

pub use error::{Error, Result};
