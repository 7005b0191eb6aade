//! The library's error type. Every message says what went wrong and, where it can, what to do.

use std::path::{Path, PathBuf};

/// Errors raised by the nanoreward library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a named path failed.
    /// (The cause is part of the message, not a `source`, so it is printed once.)
    #[error("{action} {path}: {cause}")]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A file exists but its contents are not what they should be.
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    /// Input text cannot be tokenized.
    #[error("{0}")]
    Tokenize(String),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Two pieces of input disagree (vocabularies, shapes, block sizes, ...).
    #[error("mismatch: {0}")]
    Mismatch(String),
    /// A checkpoint cannot be used.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    /// The job stopped on a signal after saving what it needs to resume; the message says how.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// Anything else the user has to act on.
    #[error("{0}")]
    Other(String),
}

/// Short alias used across the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the action and the path it concerned.
    pub fn io(action: &'static str, path: &Path, cause: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_path_buf(),
            cause,
        }
    }

    /// A format error about `path`.
    pub fn format(path: &Path, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }

    /// A checkpoint error about `path`.
    pub fn checkpoint(path: &Path, msg: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}
