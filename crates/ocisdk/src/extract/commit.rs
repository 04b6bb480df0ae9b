//! Turning a fully written staging folder into an install: durable (flushed before the
//! sentinel marks it finished) and atomic (one rename, the old install put back on failure).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::unpacker::set_mode;
use super::{io_error, ExtractError, TEMP_PREFIX};

pub(super) fn write_sentinel(root: &Path, name: &str) -> Result<(), ExtractError> {
    let path = root.join(name);
    // The archive may hold an entry of that name, maybe a symlink: remove it, never follow it.
    if fs::symlink_metadata(&path).is_ok_and(|meta| !meta.is_dir()) {
        fs::remove_file(&path).map_err(io_error(&path))?;
    }
    let file = OpenOptions::new().write(true).create_new(true).open(&path);
    file.and_then(|file| file.sync_all())
        .map_err(io_error(&path))?;
    sync_dir(root);
    Ok(())
}

/// Renames `staging` to `target`, swapping out an existing `target` when `replace` is set.
pub(super) fn publish(
    mut staging: TempTree,
    target: &Path,
    parent: &Path,
    replace: bool,
) -> Result<(), ExtractError> {
    let previous = match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(target)(e)),
        Ok(_) if !replace => {
            return Err(ExtractError::AlreadyExists {
                path: target.to_path_buf(),
            })
        }
        Ok(_) => {
            // Aside into a folder of our own, where the name is sure to be free.
            let aside = TempTree::create_in(parent)?;
            let old = aside.path.join("old");
            fs::rename(target, &old).map_err(io_error(target))?;
            Some((aside, old))
        }
    };
    if let Err(e) = fs::rename(&staging.path, target) {
        if let Some((mut aside, old)) = previous {
            if fs::rename(&old, target).is_err() {
                aside.armed = false; // never delete the only copy of the previous install
            }
        }
        return Err(io_error(target)(e));
    }
    staging.armed = false;
    sync_dir(parent);
    drop(previous); // removes the previous install, best effort
    Ok(())
}

/// Removes the install folder `target` so that it is never seen half removed: one rename
/// into a temporary folder beside it (gone from `target` at once), then the deletion, read-only
/// subfolders included. `false` when there was nothing at `target`. A deletion that fails
/// midway leaves only a [`TEMP_PREFIX`] folder, and is logged.
pub(crate) fn retire(target: &Path) -> Result<bool, ExtractError> {
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error(target)(e)),
        Ok(_) => {}
    }
    let parent = target.parent().unwrap_or(Path::new("."));
    let aside = TempTree::create_in(parent)?;
    fs::rename(target, aside.path.join("old")).map_err(io_error(target))?;
    sync_dir(parent);
    let left = aside.path.clone();
    drop(aside);
    if left.exists() {
        tracing::warn!(folder = %left.display(), "could not delete all of the removed folder");
    }
    Ok(true)
}

/// A folder removed on drop, read-only subfolders included, while `armed`.
pub(super) struct TempTree {
    pub(super) path: PathBuf,
    armed: bool,
}

impl TempTree {
    pub(super) fn create_in(parent: &Path) -> Result<Self, ExtractError> {
        let dir = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempdir_in(parent)
            .map_err(io_error(parent))?;
        // Our own cleanup: tempfile's gives up on read-only subfolders.
        Ok(Self {
            path: dir.keep(),
            armed: true,
        })
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        if self.armed && fs::remove_dir_all(&self.path).is_err() {
            make_writable(&self.path);
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Makes `dir` and the folders below it writable, so that their entries can be removed.
pub(super) fn make_writable(dir: &Path) {
    let _ = set_mode(dir, 0o700);
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        // `file_type` does not follow symlinks: nothing outside is touched.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            make_writable(&entry.path());
        }
    }
}

/// Writes out every file of the file system that holds `dir`, waiting until they are on
/// disk; best effort (a failure is logged: the install itself went well).
///
/// Why one `syncfs` and not an fsync per file: an SDK has thousands of files, and an
/// fsync each waits for the device thousands of times (dpkg's well-known slowness), while
/// one `syncfs` lets the kernel write them all in one sweep. Elsewhere than Linux, `sync`.
pub(super) fn sync_filesystem(dir: &Path) {
    #[cfg(test)]
    super::tests::record_sync(dir);
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let result = File::open(dir).and_then(|folder| {
            // SAFETY: syncfs takes a descriptor borrowed from `folder`, open for the whole
            // call, and touches no memory of ours.
            match unsafe { libc::syncfs(folder.as_raw_fd()) } {
                0 => Ok(()),
                _ => Err(io::Error::last_os_error()),
            }
        });
        if let Err(e) = result {
            tracing::warn!(folder = %dir.display(), error = %e, "could not flush the unpacked files to disk");
        }
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        let _ = dir;
        // SAFETY: sync takes no arguments and cannot fail.
        unsafe { libc::sync() };
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Makes a folder's entries (a new file, a rename) durable; best effort.
pub(super) fn sync_dir(dir: &Path) {
    if cfg!(unix) {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
}
