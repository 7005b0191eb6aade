//! Exclusive use of an output directory: a job that writes a directory holds an advisory lock on
//! `<parent>/.<name>.lock` (flock) for its lifetime, so a second process aiming at the same
//! directory is refused at once, naming the holder's pid. The operating system releases the lock
//! when the process ends, however it ends (kill -9 included): the file left behind blocks nothing.

use crate::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

/// The lock file of `dir`: beside it, so replacing `dir` (a checkpoint written atomically)
/// leaves the lock in place.
fn lock_path(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    dir.with_file_name(format!(".{name}.lock"))
}

impl DirLock {
    /// Takes the lock of `dir` (creating its parent), or fails naming the holder.
    pub fn acquire(asked: &Path) -> Result<Self> {
        let dir = if asked.is_absolute() {
            asked.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io("cannot read the working directory", asked, e))?
                .join(asked)
        };
        let path = lock_path(&dir);
        if let Some(parent) = path.parent() {
            // Named as the user wrote it, with the cause creating it would meet (a file in the
            // way reads "Not a directory", not "File exists").
            if let Err(e) = std::fs::create_dir_all(parent) {
                let cause = std::fs::create_dir_all(&dir).err().unwrap_or(e);
                return Err(Error::io("cannot create directory", asked, cause));
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("cannot open the lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let pid = holder.trim();
                return Err(Error::Other(format!(
                    "{} is in use by another nanoreward process (pid {}); wait for it to finish or choose another output directory",
                    dir.display(),
                    if pid.is_empty() { "unknown" } else { pid }
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::io("cannot lock", &path, e));
            }
        }
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = write!(file, "{}", std::process::id());
        let _ = file.flush();
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_a_dropped_one_released() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        let first = DirLock::acquire(&out).unwrap();
        // flock locks belong to the open file: a second open in this process conflicts too.
        let e = DirLock::acquire(&out).unwrap_err().to_string();
        assert!(
            e.contains("in use by another nanoreward process")
                && e.contains(&std::process::id().to_string()),
            "{e}"
        );
        drop(first);
        assert!(DirLock::acquire(&out).is_ok());
        assert!(d.path().join(".run.lock").exists());
    }
}
