//! Turning a fully written staging folder into an install: durable (flushed before the
//! sentinel marks it finished) and atomic (one rename, the old install put back on failure).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::unpacker::set_mode;
use super::{io_error, ExtractError, TEMP_PREFIX};

pub(super) fn write_sentinel(root: &Path, name: &str) -> Result<(), ExtractError> {
    write_new_file(root, name, b"")
}

/// Writes the file `name` holding `content` into the staging folder `root`, in place of any
/// entry of the archive by that name.
pub(super) fn write_new_file(root: &Path, name: &str, content: &[u8]) -> Result<(), ExtractError> {
    let path = root.join(name);
    // The archive may hold an entry of that name, maybe a symlink: remove it, never follow it.
    if fs::symlink_metadata(&path).is_ok_and(|meta| !meta.is_dir()) {
        fs::remove_file(&path).map_err(io_error(&path))?;
    }
    // Not flushed here: the flush of the whole folder that follows covers it.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_error(&path))?;
    // 0644 whatever the umask, as the archive's files get their modes: writable by others
    // (umask 0), another user could make the record name another image; readable by the
    // owner alone (umask 077), other users could not list what is installed.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(io_error(&path))?;
    io::Write::write_all(&mut file, content).map_err(io_error(&path))?;
    Ok(())
}

/// Renames `staging` to `target`, swapping out an existing `target` when `replace` is set:
/// in one step where the file system can, else by moving it aside first (put back if the
/// rename fails).
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
        Ok(_) => match exchange(&staging.path, target) {
            // The new install is in place and the previous one in the staging folder's
            // place, in one step: `target` was never missing, as it is between the two
            // renames below, where a build starting then would find no SDK.
            Ok(()) => {
                sync_dir(parent);
                drop(staging); // removes the previous install, best effort
                return Ok(());
            }
            Err(e) if exchange_unsupported(&e) => Some(Aside::move_out(target)?),
            Err(e) => return Err(io_error(target)(e)),
        },
    };
    if let Err(e) = fs::rename(&staging.path, target) {
        if let Some(aside) = previous {
            aside.put_back(target);
        }
        return Err(io_error(target)(e));
    }
    staging.armed = false;
    sync_dir(parent);
    drop(previous); // removes the previous install, best effort
    Ok(())
}

/// Swaps the folders (or files, or symlinks) at `a` and `b` in one step, both kept; they
/// must be on one file system. std has no call for it: Linux's `renameat2` does it.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c_path = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let (a, b) = (c_path(a)?, c_path(b)?);
    // SAFETY: both paths are NUL-terminated strings that live across the call, which only
    // reads them.
    let done = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if done == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    // EINVAL or EOPNOTSUPP: a file system that cannot swap (some network and FUSE ones);
    // ENOSYS, which std maps to `Unsupported` itself: a kernel before 3.15.
    match error.raw_os_error() {
        Some(libc::EINVAL | libc::EOPNOTSUPP) => {
            Err(io::Error::new(io::ErrorKind::Unsupported, error))
        }
        _ => Err(error),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Whether [`exchange`] failed only because the kernel or the file system cannot swap, so
/// two renames must do.
fn exchange_unsupported(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::Unsupported
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
    let parent = parent_of(target);
    let aside = Aside::move_out(target)?;
    sync_dir(parent);
    let left = aside.tree.path.clone();
    drop(aside);
    if left.exists() {
        tracing::warn!(folder = %left.display(), "could not delete all of the removed folder");
    }
    Ok(true)
}

/// An install folder moved into a [`TempTree`] beside it, as [`ASIDE`]: deleted with the
/// tree on drop, unless put back.
struct Aside {
    tree: TempTree,
    /// Its permissions before the move, when the move had to change them.
    lent: Option<fs::Permissions>,
}

impl Aside {
    /// Moves the install folder `target` into a new [`TempTree`] beside it, where the name is
    /// sure to be free.
    ///
    /// Moving a folder to another parent rewrites its `..` entry, for which Linux asks write
    /// permission on the folder itself: a read-only install folder (an archive's `./` entry
    /// of mode 0555) is made writable by its owner for the move, and given its mode back if
    /// the move fails. A rename within the parent would need no permission, but the moved
    /// folder would then be the temporary folder itself, which [`remove_leftovers`] could not
    /// tell from a staging one (and nothing can be written into it to mark it).
    fn move_out(target: &Path) -> Result<Self, ExtractError> {
        let tree = TempTree::beside(target)?;
        let lent = lend_write_permission(target);
        if let Err(e) = fs::rename(target, tree.path.join(ASIDE)) {
            if let Some(permissions) = lent {
                let _ = fs::set_permissions(target, permissions);
            }
            return Err(io_error(target)(e));
        }
        Ok(Self { tree, lent })
    }

    /// Moves the install back to `target`, with its own permissions. If that fails, the
    /// temporary folder is kept: it holds the only copy of the install.
    fn put_back(mut self, target: &Path) {
        if fs::rename(self.tree.path.join(ASIDE), target).is_err() {
            self.tree.armed = false;
            return;
        }
        if let Some(permissions) = self.lent.take() {
            let _ = fs::set_permissions(target, permissions);
        }
    }
}

/// Gives the owner write permission on the folder `dir` if it lacks it; returns the
/// permissions it had. Best effort: when they cannot be changed (not our folder), the move
/// that needed them fails and says why.
#[cfg(unix)]
fn lend_write_permission(dir: &Path) -> Option<fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    let before = fs::symlink_metadata(dir)
        .ok()
        .filter(|meta| meta.is_dir())?
        .permissions();
    let mode = before.mode();
    if mode & 0o200 != 0 {
        return None;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o200)).ok()?;
    Some(before)
}

#[cfg(not(unix))]
fn lend_write_permission(_dir: &Path) -> Option<fs::Permissions> {
    None
}

/// A folder removed on drop, read-only subfolders included, while `armed`.
pub(crate) struct TempTree {
    pub(crate) path: PathBuf,
    armed: bool,
}

/// The name, inside a [`TempTree`], of an install moved aside.
const ASIDE: &str = "old";
/// Random characters that end a [`TempTree`]'s name.
const RANDOM_CHARS: usize = 6;

/// The folder that holds `target` (`.` for a bare name).
pub(super) fn parent_of(target: &Path) -> &Path {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `{TEMP_PREFIX}{name}-` for the temporary folders of the install folder `target`.
fn temp_prefix_for(target: &Path) -> String {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    format!("{TEMP_PREFIX}{name}-")
}

impl TempTree {
    /// A new temporary folder beside `target`, named for it: `{TEMP_PREFIX}{name}-XXXXXX`,
    /// so that [`remove_leftovers`] can tell which ones belong to `target`.
    ///
    /// Only its owner may enter it (the unpacker gives an install its mode at the end): made
    /// with the default mode, under a umask of 0 or 002 other users could rename a folder
    /// the unpacker had checked and put a symlink in its place for the next entry to be
    /// written through.
    pub(crate) fn beside(target: &Path) -> Result<Self, ExtractError> {
        let parent = parent_of(target);
        let mut builder = tempfile::Builder::new();
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let dir = builder
            .prefix(&temp_prefix_for(target))
            .rand_bytes(RANDOM_CHARS)
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

/// Removes the temporary folders left beside the install folder `target` by a process that
/// died while it unpacked into it, replaced it or removed it (a crash, SIGKILL, power
/// loss); returns how many it removed. Only call it while nothing else writes `target` (the SDK
/// catalogue holds the version's lock): a running unpack's folder looks the same. A folder
/// that may hold the only copy of an install (one moved aside while `target` is gone) is
/// kept, and logged.
pub fn remove_leftovers(target: &Path) -> usize {
    let prefix = temp_prefix_for(target);
    let parent = parent_of(target);
    let mut removed = 0;
    for entry in fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // The exact shape: `{prefix}` then the random part, so that the folders of
        // `8.0.100-rc.1` never pass for those of `8.0.100`.
        let ours = name.strip_prefix(&prefix).is_some_and(|rest| {
            rest.len() == RANDOM_CHARS && rest.chars().all(|c| c.is_ascii_alphanumeric())
        });
        if !ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        if path.join(ASIDE).exists() && fs::symlink_metadata(target).is_err() {
            tracing::warn!(folder = %path.display(), "kept: it may hold the only copy of {}", target.display());
            continue;
        }
        drop(TempTree {
            path: path.clone(),
            armed: true,
        });
        removed += usize::from(!path.exists());
    }
    removed
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
