//! Taking turns at a file in a folder that is the user's, not ocisdk's: a lock file beside
//! it, removed when the turn ends, so that the folder is left holding only what was asked
//! for. (In the cache, install's lock files stay: `cache clean` knows them.)

use std::fs::{File, TryLockError};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::lock_file::locks_unsupported;
use crate::progress::Reporter;
use crate::sdk::error::SdkError;

/// A turn at a lock file: exclusive among the processes and threads that take it, until
/// dropped. Dropping it removes the lock file.
pub(crate) struct Turn {
    path: PathBuf,
    /// Held, never read: the lock goes with the open file.
    _file: File,
}

impl Turn {
    /// Waits for the turn at the lock file `path`; when another holds it, `waiting` is said
    /// through `reporter` once, so that a pull that seems to hang says why.
    ///
    /// A lock file this user may not write (another user's pull made it, in a folder both
    /// write) is locked through a read-only handle, which locks as well.
    ///
    /// `None` when the folder may not be written: this caller can then only read what is
    /// there (a pull finding its tarball current), which needs no turn, and anything it
    /// would write fails as it did before turns were taken.
    pub(crate) async fn take(
        path: &Path,
        reporter: &dyn Reporter,
        waiting: &str,
    ) -> Result<Option<Turn>, SdkError> {
        use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
        let mut told = false;
        loop {
            // The user's folder, which others may share (a group's): made as a plain
            // `create` makes a file, as before.
            let opened = crate::lock_file::open(path, Some(0o666));
            let (file, read_only) = match opened {
                Ok(file) => (file, false),
                Err(e) if matches!(e.kind(), PermissionDenied | ReadOnlyFilesystem) => {
                    match File::options()
                        .read(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(path)
                    {
                        Ok(file) => (file, true),
                        Err(_) => return Ok(None),
                    }
                }
                Err(e) => return Err(SdkError::io("opening the lock file", path, e)),
            };
            let file = match file.try_lock() {
                Ok(()) => file,
                Err(TryLockError::WouldBlock) => {
                    if !std::mem::replace(&mut told, true) {
                        reporter.step(waiting);
                    }
                    wait_for_lock(file)
                        .await
                        .map_err(|e| SdkError::io("locking", path, e))?
                }
                // Some file systems (NFS) lock only what the handle may write: no turn, as
                // when the file could not be opened.
                Err(TryLockError::Error(_)) if read_only => return Ok(None),
                // A file system without locks (NFS without its lock daemon): pulls there
                // worked before they took turns, and still do, without one.
                Err(TryLockError::Error(e)) if locks_unsupported(&e) => {
                    tracing::warn!(
                        "cannot lock {} ({e}): pulling without waiting for other pulls into this folder",
                        path.display()
                    );
                    // Nobody can hold a lock here, so nobody needs the file: the folder is
                    // left holding only what was asked for.
                    let _ = std::fs::remove_file(path);
                    return Ok(None);
                }
                Err(TryLockError::Error(e)) => return Err(SdkError::io("locking", path, e)),
            };
            // The turn before ours removed the file as it ended: a lock won on it is no lock
            // on the path, where a third may have made and locked a new file meanwhile.
            if is_at(&file, path)? {
                let path = path.to_path_buf();
                return Ok(Some(Turn { path, _file: file }));
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // Removed while still locked: whoever waits for the lock then finds that it holds a
        // file no longer at the path, and opens the path anew.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Waits for the lock of `file` on a thread of its own, not the runtime's blocking pool: a
/// runtime being shut down waits for the work of its pool, so a process stopped by Ctrl-C
/// while it waits would go on waiting until the other holder was done. Dropping the future
/// leaves the thread behind, which takes the lock when it is free and lets it go at once.
pub(crate) async fn wait_for_lock(file: File) -> std::io::Result<File> {
    let (locked_tx, locked) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("ocisdk-turn".to_owned())
        .spawn(move || {
            let _ = locked_tx.send(file.lock().map(|()| file));
        })?;
    locked.await.unwrap_or_else(|_| {
        Err(std::io::Error::other(
            "the thread waiting for the lock died",
        ))
    })
}

/// Whether `file` is the one at `path` now.
fn is_at(file: &File, path: &Path) -> Result<bool, SdkError> {
    let held = file
        .metadata()
        .map_err(|e| SdkError::io("reading", path, e))?;
    Ok(std::fs::metadata(path).is_ok_and(|now| now.dev() == held.dev() && now.ino() == held.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    /// A turn leaves no file behind, and the next turn, taken after it, is a turn of its
    /// own, at a new file.
    #[tokio::test]
    async fn a_turn_removes_its_lock_file_and_the_next_makes_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".tarball.lock");
        let first = Turn::take(&path, &NoProgress, "waiting")
            .await
            .unwrap()
            .unwrap();
        assert!(path.exists());
        drop(first);
        assert!(!path.exists());
        let second = Turn::take(&path, &NoProgress, "waiting")
            .await
            .unwrap()
            .unwrap();
        assert!(path.exists());
        drop(second);
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
