//! Opening the files ocisdk locks, in folders other users may share (an install root, a
//! cache folder set with `OCISDK_CACHE_DIR`, a pull's output folder).
//!
//! They are opened for writing, created if missing, by whoever runs ocisdk, root too: a
//! symlink planted at such a path would have the open create (or lock, or write into) the
//! file it names, anywhere. So the last component is never followed.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The mode of the lock files ocisdk keeps in its cache folder and install roots (less the
/// umask). Only this user's processes open them, for writing; `flock` needs no write
/// permission, so a lock file others may read (0644), or write (0666 under umask 0), is one
/// another user could open and hold locked for ever, stopping every install of that SDK.
pub(crate) const OWN_LOCK_MODE: u32 = 0o600;

/// Opens `path` for reading and writing, creating it (never truncating) with mode `create`
/// (less the umask) when that is given, and failing when it is a symlink, with an error
/// that says so.
///
/// A file of this user's that is already there with more mode bits than `create` (older
/// versions made them with the umask: 0666 under umask 0) is narrowed to it, so that no
/// one else can open it from now on; the mode it gets here otherwise is only at creation.
pub(crate) fn open(path: &Path, create: Option<u32>) -> io::Result<File> {
    let file = open_nofollow(path, create)?;
    if let Some(mode) = create {
        narrow(&file, mode);
    }
    Ok(file)
}

/// Takes from `file`, when it is this user's, the permission bits `mode` does not have.
/// Best effort: a file that cannot be changed is used as it is, as before.
fn narrow(file: &File, mode: u32) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(meta) = file.metadata() else {
        return;
    };
    let current = meta.mode() & 0o7777;
    if current & !mode != 0 && meta.uid() == crate::trust::effective_uid() {
        let narrowed = std::fs::Permissions::from_mode(current & mode);
        let _ = file.set_permissions(narrowed);
    }
}

fn open_nofollow(path: &Path, create: Option<u32>) -> io::Result<File> {
    File::options()
        .read(true)
        .write(true)
        .create(create.is_some())
        .truncate(false)
        .mode(create.unwrap_or(0o666))
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            // O_NOFOLLOW fails a symlink with ELOOP, "too many levels of symbolic links",
            // which would send the reader looking for a loop.
            if e.raw_os_error() == Some(libc::ELOOP) && path.is_symlink() {
                io::Error::new(
                    e.kind(),
                    "it is a symbolic link, which ocisdk never makes there: not followed \
                     (someone else may have put it there to have a file made elsewhere; \
                     remove it)",
                )
            } else {
                e
            }
        })
}

/// Whether locking failed because the file system has no locks, rather than for this file
/// (NFS without its lock daemon answers ENOLCK). Pulls then go without a turn, and installs
/// and uninstalls without their locks, rather than fail on every such file system.
pub(crate) fn locks_unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOLCK | libc::EOPNOTSUPP | libc::ENOSYS)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A symlink is not followed: the file it names is not made, and the error says why.
    #[test]
    fn a_symlink_is_refused_and_its_target_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        let link = dir.path().join(".x.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for create in [Some(OWN_LOCK_MODE), None] {
            let err = open(&link, create).unwrap_err();
            assert!(err.to_string().contains("symbolic link"), "{err}");
            assert!(!target.exists());
        }
        let plain = dir.path().join(".y.lock");
        open(&plain, Some(OWN_LOCK_MODE)).unwrap();
        assert!(plain.is_file());
    }

    /// A lock file an older version left writable by others (0666 under umask 0) is
    /// narrowed to the mode it would be made with now when it is opened.
    #[test]
    fn a_wider_file_of_this_user_is_narrowed_when_opened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join(".x.lock");
        std::fs::write(&lock, b"").unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o666)).unwrap();
        open(&lock, Some(OWN_LOCK_MODE)).unwrap();
        assert_eq!(mode(&lock), 0o600);
        // Never widened: a narrower one stays as it is.
        open(&lock, Some(0o644)).unwrap();
        assert_eq!(mode(&lock), 0o600);
        // Only opened, not created: left alone.
        std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o666)).unwrap();
        open(&lock, None).unwrap();
        assert_eq!(mode(&lock), 0o666);
    }
}
