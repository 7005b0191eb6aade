//! Atomic file and directory writes: everything is written under a temporary name in the same
//! directory and renamed into place once complete, so an interrupted run never leaves a
//! half-written file under its final name.

use crate::{Error, Result};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The temporary sibling used while `path` is being written.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_string());
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

/// Siblings of `path` named `.{name}.{kind}.*` (temporaries or moved-aside copies).
fn siblings(path: &Path, kind: &str) -> Vec<PathBuf> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let prefix = format!(".{}.{kind}.", name.to_string_lossy());
    fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Repairs what a process killed inside [`write_dir_atomic`] or [`write_atomic`] can leave
/// behind: when `path` is missing but a moved-aside copy exists, the copy is put back; stale
/// temporaries are removed. Called before every atomic write and when a checkpoint is opened.
pub fn recover(path: &Path) {
    if !path.exists()
        && let Some(old) = siblings(path, "old").into_iter().next()
    {
        let _ = fs::rename(&old, path);
    }
    if path.exists() {
        for stale in siblings(path, "old") {
            let _ = fs::remove_dir_all(&stale);
        }
    }
    let mine = tmp_path(path);
    for stale in siblings(path, "tmp").into_iter().filter(|p| *p != mine) {
        let _ = fs::remove_dir_all(&stale).or_else(|_| fs::remove_file(&stale));
    }
}

/// Creates `dir` and its parents, with an error that names it.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| Error::io("cannot create directory", dir, e))
}

/// A writer that fails with "No space left on device" once `left` bytes have gone through: the
/// disk-full test hook, enabled by the `NANOREWARD_TEST_DISK_BYTES` environment variable.
struct LimitedWriter<'a> {
    inner: &'a mut dyn Write,
    left: &'a mut u64,
}

impl Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > *self.left {
            // ENOSPC, as a full disk reports it.
            return Err(std::io::Error::from_raw_os_error(28));
        }
        let n = self.inner.write(buf)?;
        *self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes this process may still write through [`write_atomic`] under the disk-full test hook.
static DISK_LEFT: std::sync::Mutex<Option<u64>> = std::sync::Mutex::new(None);

fn disk_budget() -> Option<u64> {
    let mut left = DISK_LEFT.lock().unwrap_or_else(|e| e.into_inner());
    if left.is_none() {
        *left = std::env::var("NANOREWARD_TEST_DISK_BYTES")
            .ok()
            .and_then(|v| v.parse().ok());
    }
    *left
}

/// Writes a file atomically: `fill` writes the contents into a buffered writer on a temporary
/// file, which is flushed, synced and renamed to `path` only if `fill` succeeds.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    if let Some(parent) = path.parent() {
        create_dir_all(parent)?;
    }
    recover(path);
    let tmp = tmp_path(path);
    let result = (|| -> std::io::Result<()> {
        let file = fs::File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        if let Some(mut left) = disk_budget() {
            let r = fill(&mut LimitedWriter {
                inner: &mut w,
                left: &mut left,
            });
            *DISK_LEFT.lock().unwrap_or_else(|e| e.into_inner()) = Some(left);
            r?;
        } else {
            fill(&mut w)?;
        }
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("cannot write", path, e));
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("cannot rename into place", path, e)
    })
}

/// Appends `bytes` to the existing file `path` and syncs it (chunked outputs that resume).
pub fn append_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io("cannot open", path, e))?;
    let result = match disk_budget() {
        Some(mut left) => {
            let r = LimitedWriter {
                inner: &mut f,
                left: &mut left,
            }
            .write_all(bytes);
            *DISK_LEFT.lock().unwrap_or_else(|e| e.into_inner()) = Some(left);
            r
        }
        None => f.write_all(bytes),
    };
    result
        .and_then(|_| f.sync_data())
        .map_err(|e| Error::io("cannot write", path, e))
}

/// Writes bytes atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// Writes a directory atomically: `fill` populates a temporary sibling directory, which then
/// replaces `dir` (an existing `dir` is moved aside first and removed after the swap).
pub fn write_dir_atomic(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    create_dir_all(parent)?;
    recover(dir);
    let tmp = tmp_path(dir);
    if tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    create_dir_all(&tmp)?;
    if let Err(e) = fill(&tmp) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = dir.with_file_name(format!(
        ".{}.old.{}",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let had_old = dir.exists();
    if had_old {
        fs::rename(dir, &old).map_err(|e| Error::io("cannot move aside", dir, e))?;
    }
    if let Err(e) = fs::rename(&tmp, dir) {
        if had_old {
            let _ = fs::rename(&old, dir);
        }
        return Err(Error::io("cannot rename into place", dir, e));
    }
    if had_old {
        let _ = fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Reads a whole file with an error that names it.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io("cannot read", path, e))
}

/// Reads a whole UTF-8 text file; non-UTF-8 input is a clear error with the byte offset.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read(path)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::format(
            path,
            format!(
                "not valid UTF-8 text (first bad byte at offset {}); convert it to UTF-8 first",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_fill_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        let r = write_atomic(&p, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("injected failure"))
        });
        assert!(r.is_err());
        assert!(!p.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_kill_between_the_two_renames_is_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("ckpt");
        // What a kill after "move aside" and before "rename into place" leaves.
        let old = dir.path().join(".ckpt.old.999999");
        fs::create_dir_all(&old).unwrap();
        fs::write(old.join("a"), b"1").unwrap();
        let tmp = dir.path().join(".ckpt.tmp.999999");
        fs::create_dir_all(&tmp).unwrap();
        recover(&d);
        assert_eq!(fs::read(d.join("a")).unwrap(), b"1");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // Stale temporaries of a file go at its next write.
        let f = dir.path().join("x.bin");
        fs::write(dir.path().join(".x.bin.tmp.999999"), b"partial").unwrap();
        write_bytes_atomic(&f, b"ok").unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn dir_replace_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("ckpt");
        write_dir_atomic(&d, |t| write_bytes_atomic(&t.join("a"), b"1")).unwrap();
        write_dir_atomic(&d, |t| write_bytes_atomic(&t.join("b"), b"2")).unwrap();
        assert!(!d.join("a").exists());
        assert_eq!(fs::read(d.join("b")).unwrap(), b"2");
        let failed = write_dir_atomic(&d, |_| Err(Error::Other("boom".into())));
        assert!(failed.is_err());
        assert_eq!(fs::read(d.join("b")).unwrap(), b"2");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
