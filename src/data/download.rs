//! Fetching a named corpus, like nanoGPT's prepare.py does; offline, a clear error.

use crate::util::fsutil;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Tiny Shakespeare's canonical char-rnn URL and its size in bytes.
pub const TINYSHAKESPEARE_URL: &str =
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt";
pub const TINYSHAKESPEARE_LEN: usize = 1_115_394;

/// Downloads `name` into `root/name/input.txt` (skipped when already there with the right size)
/// and returns the path.
pub fn fetch_dataset(name: &str, root: &Path) -> Result<PathBuf> {
    if name != "tinyshakespeare" {
        return Err(Error::Config(format!(
            "unknown dataset '{name}': only 'tinyshakespeare' can be downloaded; use --input FILE for other text"
        )));
    }
    let path = root.join(name).join("input.txt");
    if std::fs::metadata(&path).is_ok_and(|m| m.len() as usize == TINYSHAKESPEARE_LEN) {
        return Ok(path);
    }
    eprintln!("downloading {TINYSHAKESPEARE_URL}");
    let body = ureq::get(TINYSHAKESPEARE_URL)
        .call()
        .map_err(|e| {
            Error::Other(format!(
                "cannot download Tiny Shakespeare ({e}); if this machine is offline, download input.txt elsewhere and pass --input PATH"
            ))
        })?
        .into_body()
        .read_to_vec()
        .map_err(|e| Error::Other(format!("download interrupted ({e}); try again or pass --input PATH")))?;
    if body.len() != TINYSHAKESPEARE_LEN {
        return Err(Error::Other(format!(
            "downloaded {} bytes but Tiny Shakespeare has {TINYSHAKESPEARE_LEN}; try again or pass --input PATH",
            body.len()
        )));
    }
    fsutil::write_bytes_atomic(&path, &body)?;
    Ok(path)
}
