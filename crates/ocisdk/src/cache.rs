//! The cache folder: what is in it, and removing what is old or everything.
//!
//! Only the folders this crate writes are ever touched (each named with a format version);
//! anything else in the cache folder is reported but left alone, so a cache folder pointed
//! at the wrong place by mistake loses nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// The folders this crate keeps in a cache folder, and what each holds.
pub const AREAS: &[(&str, &str)] = &[
    ("partial-v1", "partial downloads, resumed by the next run"),
    ("sdk-tarballs-v1", "SDK tarballs pulled for installs"),
    ("sdk-records-v1", "checksums of pulled SDK tarballs"),
];

/// One area of the cache.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheArea {
    /// Folder name, e.g. `partial-v1`.
    pub name: &'static str,
    /// What it holds.
    pub description: &'static str,
    /// Its path.
    #[serde(serialize_with = "crate::serde_path::lossy")]
    pub path: PathBuf,
    /// Files in it.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
}

/// What a cache folder holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheInfo {
    /// The cache folder.
    #[serde(serialize_with = "crate::serde_path::lossy")]
    pub dir: PathBuf,
    /// The areas this crate writes.
    pub areas: Vec<CacheArea>,
    /// Other entries found in the folder (never removed).
    pub other: Vec<String>,
    /// Total bytes in the areas.
    pub bytes: u64,
    /// Whether the cache folder, every folder above it and its areas pass the check that
    /// [`prune`] and [`clean`] make (always, at or below a folder the caller vouches for).
    pub trusted: bool,
    /// The folders that failed that check, and why: empty when `trusted`.
    #[serde(skip)]
    pub untrusted: Vec<UntrustedFolder>,
}

/// A folder that another user could change: the cache folder, one above it, or an area in it.
/// Downloads and installs do without a cache folder whose areas they use fail this check,
/// and `prune` and `clean` refuse such a cache folder or leave such an area alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cache folder {} cannot be trusted: {} is {}; another user could change what is kept in it: downloads and installs do without it, and cache prune and clean remove nothing from it: {}", cache.display(), path.display(), crate::trust::untrusted_text(*owner, *mode, *user, crate::trust::CACHE_STICKY), crate::trust::CACHE_REMEDY)]
pub struct UntrustedFolder {
    /// The cache folder.
    pub cache: PathBuf,
    /// The folder or symlink that failed the check.
    pub path: PathBuf,
    /// Its owner's uid.
    pub owner: u32,
    /// Its mode (permission, setuid, setgid and sticky bits).
    pub mode: u32,
    /// The effective uid of this process, whose folders are trusted besides root's.
    pub user: u32,
}

/// What a prune or clean removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Removed {
    /// Files removed.
    pub files: u64,
    /// Bytes freed.
    pub bytes: u64,
    /// Files kept because a running download or install holds them.
    pub in_use: u64,
}

/// Describes the cache folder `dir` (an absent folder is an empty cache), as
/// [`info_checked`] does vouching for no folder.
pub fn info(dir: &Path) -> Result<CacheInfo> {
    info_checked(dir, &[])
}

/// Describes the cache folder `dir` (an absent folder is an empty cache), and whether it can
/// be trusted ([`CacheInfo::trusted`]) unless it is at or below one of `safe_folders`. A
/// folder that fails is still counted: describing it changes nothing.
pub fn info_checked(dir: &Path, safe_folders: &[PathBuf]) -> Result<CacheInfo> {
    let untrusted = if crate::trust::declared_safe(dir, safe_folders) {
        Vec::new()
    } else {
        untrusted_folders(dir)
    };
    let mut areas = Vec::new();
    for (name, description) in AREAS {
        let path = dir.join(name);
        let contents = walk(&path, false, &mut |_, _| false)?.kept;
        areas.push(CacheArea {
            name,
            description,
            path,
            files: contents.count,
            bytes: contents.bytes,
        });
    }
    let mut other = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !AREAS.iter().any(|(area, _)| *area == name) {
                other.push(name);
            }
        }
    }
    other.sort();
    let bytes = areas.iter().map(|a| a.bytes).sum();
    Ok(CacheInfo {
        dir: dir.to_path_buf(),
        areas,
        other,
        bytes,
        trusted: untrusted.is_empty(),
        untrusted,
    })
}

/// The folders of the cache folder `dir` that fail the check [`prune`] and [`clean`] make:
/// the first on the way to it that does, else each area that does. One that cannot be
/// looked at is not reported (the count fails on it, or it holds nothing to count): only
/// `prune` and `clean`, which would remove files there, need to refuse it.
fn untrusted_folders(dir: &Path) -> Vec<UntrustedFolder> {
    use crate::trust::{check_below, check_path, CheckError, Place};
    let found = |folder: crate::trust::Untrusted| UntrustedFolder {
        cache: dir.to_path_buf(),
        path: folder.path,
        owner: folder.owner,
        mode: folder.mode,
        user: folder.user,
    };
    let resolved = match check_path(dir, Place::Inside) {
        Ok(Some(resolved)) => resolved,
        Err(CheckError::Untrusted(folder)) => return vec![found(folder)],
        Ok(None) | Err(CheckError::Io(_)) => return Vec::new(),
    };
    AREAS
        .iter()
        .filter_map(|(name, _)| match check_below(&resolved, Path::new(name)) {
            Err(CheckError::Untrusted(folder)) => Some(found(folder)),
            Ok(_) | Err(CheckError::Io(_)) => None,
        })
        .collect()
}

/// Removes cached files not modified for `older_than`. A cache folder another user could
/// change is refused, as [`clean`] says.
pub fn prune(dir: &Path, older_than: Duration, safe_folders: &[PathBuf]) -> Result<Removed> {
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    remove_where(dir, safe_folders, &mut |_, modified| modified < cutoff)
}

/// Removes every cached file, except what a running download or install holds.
///
/// A cache folder that another user could change (it, or a folder above it, is theirs, or
/// writable by others and not sticky; see [`crate::ClientBuilder::safe_folders`]) is refused
/// with [`Error::UntrustedCache`] unless it is at or below one of `safe_folders`: between
/// the look at a folder and the removal of a file in it, they could swap the folder for a
/// symlink, and root's clean would remove a file of theirs choosing. A folder in it that
/// fails the same check is left alone, with a warning.
pub fn clean(dir: &Path, safe_folders: &[PathBuf]) -> Result<Removed> {
    remove_where(dir, safe_folders, &mut |_, _| true)
}

fn remove_where(
    dir: &Path,
    safe_folders: &[PathBuf],
    select: &mut dyn FnMut(&Path, SystemTime) -> bool,
) -> Result<Removed> {
    let checked = !crate::trust::declared_safe(dir, safe_folders);
    if checked {
        match crate::trust::check_path(dir, crate::trust::Place::Inside) {
            Ok(_) => {}
            Err(crate::trust::CheckError::Untrusted(folder)) => {
                return Err(Error::UntrustedCache {
                    cache: dir.to_path_buf(),
                    path: folder.path,
                    owner: folder.owner,
                    mode: folder.mode,
                    user: folder.user,
                })
            }
            Err(crate::trust::CheckError::Io(e)) => return Err(e),
        }
    }
    let mut removed = Removed::default();
    for (name, _) in AREAS {
        let tally = walk(&dir.join(name), checked, &mut |path, modified| {
            if !select(path, modified) {
                return false;
            }
            match hold(path) {
                Hold::Busy => {
                    removed.in_use += 1;
                    false
                }
                // Removed while the locks are held, so that no process starts on the file
                // between the check and the removal.
                Hold::Free(_locks) => std::fs::remove_file(path).is_ok(),
            }
        })?
        .removed;
        removed.files += tally.count;
        removed.bytes += tally.bytes;
    }
    Ok(removed)
}

/// Whether a cached file may go, with the locks that keep it free meanwhile.
enum Hold {
    /// A running download or install holds it.
    Busy,
    /// Free, with the locks taken to keep it so (held until dropped, never read).
    Free(#[allow(dead_code)] Vec<std::fs::File>),
}

/// A file is busy while a process holds its own lock (a partial download) or the lock of
/// the tarball it belongs to (`.{tarball}.lock` beside it: the tarball, its sidecar, and the
/// temporary files of an install that is writing it).
fn hold(path: &Path) -> Hold {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut locks = Vec::new();
    let tarball_lock = tarball_of(&name)
        .map(|tarball| path.with_file_name(format!(".{}.lock", locked_name(tarball))));
    for lock in std::iter::once(path.to_path_buf()).chain(tarball_lock) {
        // A symlink is skipped: locking it would take the lock of some other file.
        let Ok(file) = crate::lock_file::open(&lock, None) else {
            continue;
        };
        match file.try_lock() {
            Ok(()) => locks.push(file),
            Err(std::fs::TryLockError::WouldBlock) => return Hold::Busy,
            Err(std::fs::TryLockError::Error(_)) => {}
        }
    }
    Hold::Free(locks)
}

/// The SDK tarball a file of the tarball cache belongs to: itself, its sidecar's, or an
/// install's temporary file named for it (`.ocisdk-{layer,member}-{tarball}-XXXXXX`).
fn tarball_of(name: &str) -> Option<&str> {
    if let Some(temp) = [".ocisdk-layer-", ".ocisdk-member-"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
    {
        return temp.rsplit_once('-').map(|(tarball, _)| tarball);
    }
    Some(name.strip_suffix(SIDECAR_SUFFIX).unwrap_or(name))
}

/// The name whose lock guards `tarball`: an install locks the gzip name it downloads to
/// (`.{stem}.tar.gz.lock`) and keeps that lock when it names a zstd or plain tarball for
/// what it holds (`{stem}.tar.zst`, `{stem}.tar`), so those are guarded by the gzip name's
/// lock too. (The SDK layer's list of extensions is not reachable from here: the cache sits
/// below it.)
fn locked_name(tarball: &str) -> std::borrow::Cow<'_, str> {
    if tarball.ends_with(".tar.gz") {
        return tarball.into();
    }
    match tarball
        .strip_suffix(".tar.zst")
        .or_else(|| tarball.strip_suffix(".tar"))
    {
        Some(stem) => format!("{stem}.tar.gz").into(),
        None => tarball.into(),
    }
}

/// The suffix of a pulled tarball's sidecar (`sdk::SIDECAR_SUFFIX`; the cache sits below the
/// SDK layer, which it must not depend on).
pub(crate) const SIDECAR_SUFFIX: &str = ".manifest-digest";

#[derive(Default)]
struct Tally {
    count: u64,
    bytes: u64,
}

/// What a walk removed and what it kept.
#[derive(Default)]
struct Walked {
    removed: Tally,
    kept: Tally,
}

/// Whether `name` is a lock file (`.TARBALL.lock`): never removed, since a process that
/// opened it before its removal would lock a file no one else can find, and two would hold
/// "the" lock; and never counted, since it is no cached content (a cache pruned of
/// everything would otherwise still report files).
fn is_lock_file(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') && name.ends_with(".lock")
}

/// Walks `root`, offering each file but lock files to `remove`, which says whether it
/// removed it. Folders emptied by removals are deleted too.
///
/// An area planted as a symlink is not followed (its entries are `lstat`ed, so none below
/// is): run as root, `clean` would remove every file of the folder it leads to, wherever
/// another user who could make it pointed it.
///
/// With `checked`, a folder another user could change is not entered either (warned): they
/// could swap one of its folders for a symlink between the look and the removal.
fn walk(
    root: &Path,
    checked: bool,
    remove: &mut dyn FnMut(&Path, SystemTime) -> bool,
) -> Result<Walked> {
    let mut walked = Walked::default();
    let meta = match std::fs::symlink_metadata(root) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(walked),
        Err(e) => return Err(Error::io("reading", root, e)),
    };
    if meta.file_type().is_symlink() {
        tracing::warn!(
            "{} is a symbolic link, which ocisdk never makes there: not followed, nothing \
             in it counted or removed (someone else may have put it there to have files \
             removed elsewhere; remove it)",
            root.display()
        );
        return Ok(walked);
    }
    if checked {
        if let Err(crate::trust::CheckError::Untrusted(folder)) =
            crate::trust::check_entry(root, &meta)
        {
            tracing::warn!(
                "{} is {}: another user could change it, so nothing in it was removed",
                root.display(),
                crate::trust::untrusted_text(
                    folder.owner,
                    folder.mode,
                    folder.user,
                    crate::trust::CACHE_STICKY
                )
            );
            return Ok(walked);
        }
    }
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(walked),
        Err(e) => return Err(Error::io("listing", root, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", root, e))?;
        let path = entry.path();
        let meta = entry
            .metadata()
            .map_err(|e| Error::io("reading", &path, e))?;
        if meta.is_dir() {
            let sub = walk(&path, checked, remove)?;
            walked.removed.count += sub.removed.count;
            walked.removed.bytes += sub.removed.bytes;
            walked.kept.count += sub.kept.count;
            walked.kept.bytes += sub.kept.bytes;
            // Only succeeds when the folder is now empty.
            let _ = std::fs::remove_dir(&path);
            continue;
        }
        if is_lock_file(&entry.file_name()) {
            continue;
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let tally = if remove(&path, modified) {
            &mut walked.removed
        } else {
            &mut walked.kept
        };
        tally.count += 1;
        tally.bytes += meta.len();
    }
    Ok(walked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(dir: &Path) {
        std::fs::create_dir_all(dir.join("partial-v1")).unwrap();
        std::fs::create_dir_all(dir.join("sdk-tarballs-v1/host/oryx/python-sdk")).unwrap();
        std::fs::write(dir.join("partial-v1/sha256-aa.part"), vec![0u8; 100]).unwrap();
        std::fs::write(
            dir.join("sdk-tarballs-v1/host/oryx/python-sdk/p.tar.gz"),
            vec![0u8; 50],
        )
        .unwrap();
        std::fs::write(dir.join("unrelated.txt"), b"mine").unwrap();
    }

    #[test]
    fn info_counts_areas_and_names_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path());
        let info = info(dir.path()).unwrap();
        assert_eq!(info.bytes, 150);
        assert_eq!(info.areas[0].files, 1);
        assert_eq!(info.other, ["unrelated.txt"]);
    }

    #[test]
    fn clean_removes_only_our_areas_and_prune_keeps_fresh_files() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path());
        let kept = prune(dir.path(), Duration::from_secs(3600), &[]).unwrap();
        assert_eq!(kept.files, 0);
        let removed = clean(dir.path(), &[]).unwrap();
        assert_eq!((removed.files, removed.bytes), (2, 150));
        assert!(dir.path().join("unrelated.txt").exists());
        assert!(
            !dir.path().join("sdk-tarballs-v1/host").exists(),
            "empty folders go too"
        );
        assert_eq!(info(dir.path()).unwrap().bytes, 0);
    }

    /// An install holds its tarball's lock while it writes the tarball and its temporary
    /// files: none of them goes, nor the lock file itself, ever.
    #[test]
    fn the_files_of_a_tarball_an_install_holds_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path());
        let folder = dir.path().join("sdk-tarballs-v1/host/oryx/python-sdk");
        let lock = folder.join(".p.tar.gz.lock");
        std::fs::write(&lock, b"").unwrap();
        std::fs::write(folder.join(".ocisdk-layer-p.tar.gz-a1B2c3"), vec![0u8; 10]).unwrap();
        std::fs::write(folder.join("p.tar.gz.manifest-digest"), b"sha256:x").unwrap();
        std::fs::write(folder.join("q.tar.gz"), vec![0u8; 20]).unwrap();
        let held = std::fs::File::options().write(true).open(&lock).unwrap();
        held.lock().unwrap();

        let removed = clean(dir.path(), &[]).unwrap();
        // The partial and q's tarball go; p's tarball, sidecar and temp file stay.
        assert_eq!((removed.files, removed.in_use), (2, 3));
        assert!(folder.join("p.tar.gz").exists() && lock.exists());
        assert!(folder.join(".ocisdk-layer-p.tar.gz-a1B2c3").exists());
        assert!(!folder.join("q.tar.gz").exists());

        drop(held);
        let removed = clean(dir.path(), &[]).unwrap();
        assert_eq!((removed.files, removed.in_use), (3, 0));
        assert!(lock.exists(), "lock files stay");
    }

    /// A tarball an install named for what it holds (`.tar.zst`, `.tar`) is guarded by the
    /// lock of the gzip name the install downloaded it to and holds while it unpacks it.
    #[test]
    fn a_zstd_or_plain_tarball_an_install_holds_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("sdk-tarballs-v1/host/oryx/python-sdk");
        std::fs::create_dir_all(&folder).unwrap();
        for tarball in ["z.tar.zst", "t.tar"] {
            std::fs::write(folder.join(tarball), vec![0u8; 20]).unwrap();
            let sidecar = format!("{tarball}{SIDECAR_SUFFIX}");
            std::fs::write(folder.join(sidecar), b"sha256:x").unwrap();
        }
        let mut held = Vec::new();
        for lock in [".z.tar.gz.lock", ".t.tar.gz.lock"] {
            let file = std::fs::File::create(folder.join(lock)).unwrap();
            file.lock().unwrap();
            held.push(file);
        }

        let removed = clean(dir.path(), &[]).unwrap();
        assert_eq!((removed.files, removed.in_use), (0, 4));
        assert!(folder.join("z.tar.zst").exists() && folder.join("t.tar").exists());

        drop(held);
        let removed = clean(dir.path(), &[]).unwrap();
        assert_eq!((removed.files, removed.in_use), (4, 0));
        assert!(!folder.join("z.tar.zst").exists());
    }

    /// An area planted as a symlink to another folder is not followed: nothing there is
    /// counted or removed, and the link stays.
    #[test]
    fn an_area_planted_as_a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let chosen = dir.path().join("chosen");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::create_dir_all(&chosen).unwrap();
        std::fs::write(chosen.join("precious"), b"precious").unwrap();
        std::os::unix::fs::symlink(&chosen, cache.join("partial-v1")).unwrap();

        assert_eq!(info(&cache).unwrap().bytes, 0);
        let removed = clean(&cache, &[]).unwrap();
        assert_eq!(removed.files, 0);
        assert_eq!(std::fs::read(chosen.join("precious")).unwrap(), b"precious");
        assert!(cache.join("partial-v1").is_symlink());
    }

    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A cache folder others may write is refused before anything is removed, as they could
    /// swap a folder in it for a symlink between the look and the removal; named in the safe
    /// folders, it is cleaned.
    #[test]
    fn a_cache_folder_others_may_write_is_refused_unless_declared_safe() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        fill(&cache);
        set_mode(&cache, 0o777);
        for result in [clean(&cache, &[]), prune(&cache, Duration::ZERO, &[])] {
            let error = result.unwrap_err();
            assert!(
                matches!(&error, Error::UntrustedCache { path, mode: 0o777, .. } if *path == cache),
                "{error:?}"
            );
            assert_eq!(error.kind(), crate::ErrorKind::Usage);
            assert!(error.to_string().contains("OCISDK_SAFE_FOLDERS"), "{error}");
        }
        assert_eq!(info(&cache).unwrap().bytes, 150, "something was removed");

        let removed = clean(&cache, &[dir.path().to_path_buf()]).unwrap();
        assert_eq!(removed.files, 2);
    }

    /// A folder in the cache others may write is not entered: the rest is cleaned.
    #[test]
    fn a_folder_in_the_cache_others_may_write_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path());
        let host = dir.path().join("sdk-tarballs-v1/host");
        set_mode(&host, 0o757);
        let removed = clean(dir.path(), &[]).unwrap();
        assert_eq!((removed.files, removed.bytes), (1, 100));
        assert!(host.join("oryx/python-sdk/p.tar.gz").exists());
    }

    #[test]
    fn a_partial_held_by_a_download_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path());
        let held = std::fs::File::options()
            .read(true)
            .write(true)
            .open(dir.path().join("partial-v1/sha256-aa.part"))
            .unwrap();
        held.lock().unwrap();
        let removed = clean(dir.path(), &[]).unwrap();
        assert_eq!((removed.files, removed.in_use), (1, 1));
        assert!(dir.path().join("partial-v1/sha256-aa.part").exists());
    }
}
