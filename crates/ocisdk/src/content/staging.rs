//! Where a download's bytes land before they are verified, and how they get into place.
//!
//! Without a cache folder the bytes go to a temporary file beside the destination, deleted
//! on any failure (or when the download is dropped). With one, they go to a partial file
//! named by digest in the cache, kept when the network fails so the next run resumes it,
//! and deleted when the content is proven wrong or the disk fails.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::content::{Files, OWN_FILE_MODE};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::registry::Client;
use crate::trust::{self, CheckError, Place};

/// The folder (inside a cache folder) that holds resumable partial downloads. Versioned so a
/// change of format never resumes from old data.
pub(crate) const PARTIAL_DIR: &str = "partial-v1";

/// A file being downloaded into.
pub(crate) struct Staged {
    pub(crate) file: File,
    /// The hash of the bytes already in the file (a resumed partial), and their count.
    pub(crate) hasher: Hasher,
    pub(crate) offset: u64,
    pub(crate) landing: Landing,
}

/// Where the staged file is, and what becomes of it.
pub(crate) enum Landing {
    /// Deleted on drop unless persisted.
    Temp(tempfile::TempPath),
    /// Kept on drop (to resume), deleted by `discard`.
    Partial {
        path: PathBuf,
        /// A handle sharing the partial's lock, so that it is held until the partial is
        /// renamed away or deleted, not only while the writer has the file: in between
        /// (verification, the rename) a `cache clean` would delete the verified bytes, and
        /// another download of the blob would resume from a file about to leave the path.
        lock: File,
    },
}

impl Landing {
    /// The path of the staged file.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Landing::Temp(t) => t,
            Landing::Partial { path, .. } => path,
        }
    }

    /// Forgets a partial file whose content is wrong or useless.
    pub(crate) fn discard(self) {
        if let Landing::Partial { path, .. } = &self {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Moves the verified file to `dest` (a rename; a copy into a temp beside `dest` and a
    /// rename when the cache is on another file system), whose files are `files`.
    pub(crate) fn persist(self, dest: &Path, files: Files) -> Result<()> {
        match self {
            Landing::Temp(t) => t
                .persist(dest)
                .map(drop)
                .map_err(|e| Error::io("moving the download into place at", dest, e.error)),
            Landing::Partial { path: p, lock } => match std::fs::rename(&p, dest) {
                Ok(()) => {
                    give_user_mode(&lock, dest, files);
                    Ok(())
                }
                Err(e) if e.raw_os_error() == Some(EXDEV) => {
                    copy_into_place(&p, dest, files)?;
                    let _ = std::fs::remove_file(&p);
                    Ok(())
                }
                Err(e) => Err(Error::io("moving the download into place at", dest, e)),
            },
        }
    }
}

/// Gives a partial, made [`OWN_FILE_MODE`] in the cache and now renamed to the user's `dest`
/// (through `file`, its open handle), the mode a plain `create` would have given it there,
/// as a download through a temporary file beside `dest` gets: after the rename, so that it
/// is never wider while in the cache. Where the umask cannot be read, it stays as it is.
///
/// Best effort: the file is verified and in place by now, so a file system that will not
/// change modes (vfat answers EPERM) gets a warning, not a failed command.
fn give_user_mode(file: &File, dest: &Path, files: Files) {
    use std::os::unix::fs::PermissionsExt;
    let Some(mode) = crate::content::user_file_mode().filter(|_| files == Files::User) else {
        return;
    };
    if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(
            "could not set the mode of {} to {mode:04o}, as the umask gives: {e}; it keeps the \
             cache's {OWN_FILE_MODE:04o}",
            dest.display()
        );
    }
}

/// `rename` across file systems.
const EXDEV: i32 = 18;

/// Copies `from` into a temporary file beside `dest`, named `.ocisdk-copy-{dest's name}-XXXXXX`
/// ([`staged_for`] reads it back), and renames that to `dest`.
fn copy_into_place(from: &Path, dest: &Path, files: Files) -> Result<()> {
    let parent = parent_of(dest);
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let mut temp = crate::content::temp_builder(files)
        .prefix(&format!("{COPY_TEMP}{name}-"))
        .rand_bytes(TEMP_RANDOM_CHARS)
        .tempfile_in(&parent)
        .map_err(|e| Error::io("creating a temporary file in", &parent, e))?;
    let mut src = File::open(from).map_err(|e| Error::io("reading", from, e))?;
    std::io::copy(&mut src, temp.as_file_mut())
        .map_err(|e| Error::io("writing", temp.path(), e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| Error::io("writing", temp.path(), e))?;
    temp.persist(dest)
        .map(drop)
        .map_err(|e| Error::io("moving the download into place at", dest, e.error))
}

/// Fails when `dest` cannot take the download (it is a folder, or its folder is missing),
/// so that the mistake is reported before the bytes are fetched, not after a download of
/// gigabytes that the final rename then refuses.
pub(crate) fn check_destination(dest: &Path) -> Result<()> {
    if dest.is_dir() {
        let why = std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "it is a folder: give the path of the file to write",
        );
        return Err(Error::io("downloading to", dest, why));
    }
    let parent = parent_of(dest);
    if !parent.is_dir() {
        let why = std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder");
        return Err(Error::io("downloading into", parent, why));
    }
    Ok(())
}

pub(crate) fn parent_of(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Runs file work that may take long (reading a partial back, copying a blob across file
/// systems, flushing it) on tokio's blocking threads, so that the async threads it would
/// hold up meanwhile (other downloads, the progress display) go on.
pub(crate) async fn off_async<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::io("staging", PathBuf::new(), std::io::Error::other(e)))?
}

/// A temporary file beside `dest`, so the final rename stays on one file system, named
/// `.{dest's name}.XXXXXX.part` ([`staged_for`] reads it back), made as `files` are.
pub(crate) fn temp_beside(dest: &Path, digest: &Digest, files: Files) -> Result<Staged> {
    let parent = parent_of(dest);
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::InvalidInput(format!("{} is not a file path", dest.display())))?;
    let temp = crate::content::temp_builder(files)
        .prefix(&format!(".{file_name}."))
        .suffix(TEMP_SUFFIX)
        .rand_bytes(TEMP_RANDOM_CHARS)
        .tempfile_in(&parent)
        .map_err(|e| Error::io("creating a temporary file in", &parent, e))?;
    let (file, path) = temp.into_parts();
    Ok(Staged {
        file,
        hasher: Hasher::new(digest.algorithm()),
        offset: 0,
        landing: Landing::Temp(path),
    })
}

/// What ends the name of a temporary file beside a destination.
const TEMP_SUFFIX: &str = ".part";
/// What begins the name of a copy from the cache beside a destination.
const COPY_TEMP: &str = ".ocisdk-copy-";
/// Random characters in a temporary file's name (tempfile's are ASCII letters and digits).
pub(crate) const TEMP_RANDOM_CHARS: usize = 6;

/// Whether `text` is what a temporary file's name holds to make it unique.
pub(crate) fn is_temp_random(text: &str) -> bool {
    text.len() == TEMP_RANDOM_CHARS && text.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The name of the destination that the file named `name` is a download's temporary file
/// for ([`temp_beside`], or a copy from a cache on another file system), when it is one.
/// A process killed mid-download leaves such a file, and only the names say whose it is.
pub(crate) fn staged_for(name: &str) -> Option<&str> {
    let (file, random) = match name.strip_prefix(COPY_TEMP) {
        Some(copy) => copy.rsplit_once('-')?,
        None => name
            .strip_prefix('.')?
            .strip_suffix(TEMP_SUFFIX)?
            .rsplit_once('.')?,
    };
    is_temp_random(random).then_some(file)
}

/// The folder of partial downloads in `client`'s cache folder, made if missing, when
/// downloads may use it; `None` without a cache folder, or after a warning (once per
/// client) when it cannot be used.
///
/// Partial files are written into, by root too. Whoever may change the cache folder, one
/// above it or `partial-v1` could make `partial-v1` a symlink to a folder of their choice,
/// and have root's downloads write files there; the bytes themselves are proven by the
/// blob's digest, so what is wrong is where they go. So the folders are checked as the SDK
/// catalogue checks its cache ([`crate::trust`]), unless the user vouches for them.
pub(crate) fn partial_dir(client: &Client) -> Option<&Path> {
    let cache = client.cache_dir()?;
    client
        .partial_dir_cell()
        .get_or_init(|| match checked_partial_dir(cache, client.safe_folders()) {
            Ok(dir) => Some(dir),
            Err(why) => {
                tracing::warn!("{why}; downloading without resuming from the cache");
                None
            }
        })
        .as_deref()
}

/// Why the cache's folder of partial downloads is not used.
#[derive(Debug, thiserror::Error)]
enum Unusable {
    /// It, the cache folder or one above is one another user could change.
    #[error("the cache folder {} cannot be trusted: {} is {}; another user could have the partial downloads kept there written where they choose: {}", cache.display(), folder.path.display(), trust::untrusted_text(folder.owner, folder.mode, folder.user, trust::CACHE_STICKY), trust::CACHE_REMEDY)]
    Untrusted {
        /// The cache folder.
        cache: PathBuf,
        /// The folder (or symlink) that failed the check.
        folder: trust::Untrusted,
    },
    /// It could not be checked or made (a cache folder this user may not write).
    #[error(transparent)]
    Io(#[from] Error),
}

/// [`partial_dir`]'s check: the folder as set (errors then name the folder the user
/// chose), or why it cannot be used.
fn checked_partial_dir(cache: &Path, safe: &[PathBuf]) -> std::result::Result<PathBuf, Unusable> {
    let dir = cache.join(PARTIAL_DIR);
    if trust::declared_safe(cache, safe) {
        trust::create_folders(&dir)?;
        return Ok(dir);
    }
    let check = || {
        let checked = match trust::check_path(cache, Place::Inside) {
            Ok(Some(resolved)) => trust::check_below(&resolved, Path::new(PARTIAL_DIR)),
            other => other,
        };
        checked.map(drop).map_err(|e| match e {
            CheckError::Untrusted(folder) => Unusable::Untrusted {
                cache: cache.to_path_buf(),
                folder,
            },
            CheckError::Io(e) => Unusable::Io(e),
        })
    };
    // What exists is checked before anything is made in it, and again after: the folders
    // made are this user's, in folders no one else may change.
    check()?;
    trust::create_folders(&dir)?;
    check()?;
    Ok(dir)
}

/// Whether `client`'s cache holds bytes of `digest` that an earlier run left: a download
/// would resume from them (and trust them; only the whole blob's digest can tell).
pub(crate) fn has_partial(client: &Client, digest: &Digest) -> bool {
    let Some(dir) = partial_dir(client) else {
        return false;
    };
    let path = dir.join(format!("{}-{}.part", digest.algorithm(), digest.hex()));
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

/// Says that a download which resumed from an earlier run's bytes failed verification
/// (`e`), and starts again from the first byte.
pub(crate) fn warn_discarded_partial(e: &Error) {
    tracing::warn!(
        "{e}: the partial download an earlier run left held other bytes; downloading from the start"
    );
}

/// The resumable partial file for `digest` in `dir`, the checked [`partial_dir`],
/// re-hashing what an earlier run left in it. Returns `None` when another process is
/// downloading the same blob right now (the caller then uses a private temp file instead).
pub(crate) fn resumable(
    dir: &Path,
    digest: &Digest,
    expected_size: Option<u64>,
) -> Result<Option<Staged>> {
    let path = dir.join(format!("{}-{}.part", digest.algorithm(), digest.hex()));
    let Some(mut file) = lock_partial(&path)? else {
        return Ok(None);
    };
    let mut hasher = Hasher::new(digest.algorithm());
    let mut offset = rehash(&mut file, &mut hasher).map_err(|e| Error::io("reading", &path, e))?;
    if expected_size.is_some_and(|size| offset > size) {
        // Longer than the blob can be: start again.
        file.set_len(0)
            .map_err(|e| Error::io("truncating", &path, e))?;
        hasher = Hasher::new(digest.algorithm());
        offset = 0;
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io("reading", &path, e))?;
    // A duplicate descriptor shares the open file, and with it the lock.
    let lock = file
        .try_clone()
        .map_err(|e| Error::io("opening", &path, e))?;
    Ok(Some(Staged {
        file,
        hasher,
        offset,
        landing: Landing::Partial { path, lock },
    }))
}

/// Opens and locks the partial file at `path`; `None` when another process holds it.
///
/// A holder that finishes renames the file away while still holding the lock, so a lock won
/// afterwards may be on a file that is no longer at `path` (it is someone's finished
/// download now). Such a lock is dropped and the path opened again.
fn lock_partial(path: &Path) -> Result<Option<File>> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..8 {
        // Written into, not only locked: never through a symlink.
        let own = Some(OWN_FILE_MODE);
        let file = crate::lock_file::open(path, own).map_err(|e| Error::io("opening", path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            // NFS without its lock daemon: no download there can resume safely, which one
            // warning says for the whole process rather than one per blob.
            Err(std::fs::TryLockError::Error(e)) if crate::lock_file::locks_unsupported(&e) => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    let dir = path.parent().unwrap_or(path);
                    tracing::warn!(
                        "{}: {e}: downloading without resuming from the cache, which needs \
                         file locks",
                        dir.display()
                    );
                });
                return Ok(None);
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("locking", path, e)),
        }
        let held = file.metadata().map_err(|e| Error::io("reading", path, e))?;
        let same = std::fs::metadata(path)
            .is_ok_and(|now| now.dev() == held.dev() && now.ino() == held.ino());
        if same {
            return Ok(Some(file));
        }
    }
    // The path keeps changing under us: let the caller use a private temp file.
    Ok(None)
}

fn rehash(file: &mut File, hasher: &mut Hasher) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name of a download's temporary file says which destination it is for, and
    /// nothing else reads as one.
    #[test]
    fn a_staged_file_names_its_destination() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("python-bookworm-3.11.1.tar.gz");
        let digest: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
        let staged = temp_beside(&dest, &digest, Files::User).unwrap();
        let name = staged.landing.path().file_name().unwrap().to_string_lossy();
        assert_eq!(staged_for(&name), Some("python-bookworm-3.11.1.tar.gz"));
        for other in [
            "python-bookworm-3.11.1.tar.gz",
            ".ocisdk-copy-a1B2c3",
            ".python-bookworm-3.11.1.tar.gz.lock",
            ".python-bookworm-3.11.1.tar.gz.part",
            ".python-bookworm-3.11.1.tar.gz.a1-B2c.part",
            ".python-bookworm-3.11.1.tar.gz.a1B2c3d.part",
        ] {
            assert_eq!(staged_for(other), None, "{other}");
        }
    }

    /// A copy from a cache on another file system names its destination too: the error of
    /// a copy that fails names the copy.
    #[test]
    fn a_copy_from_the_cache_names_its_destination() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("python-bookworm-3.11.1.tar.gz");
        // A folder opens, and fails its first read, once the copy is made.
        let unreadable = dir.path().join("a-folder");
        std::fs::create_dir(&unreadable).unwrap();
        let Err(Error::Io { path: copy, .. }) = copy_into_place(&unreadable, &dest, Files::User)
        else {
            panic!("copying a folder succeeded, or failed otherwise");
        };
        let name = copy.file_name().unwrap().to_string_lossy();
        assert_eq!(
            staged_for(&name),
            Some("python-bookworm-3.11.1.tar.gz"),
            "{name}"
        );
    }
}
