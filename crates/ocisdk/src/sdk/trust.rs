//! Whether the folders SDKs are installed in can be trusted, checked as ssh and sudo check
//! the paths they trust.
//!
//! The default install root sits in `/tmp`, where any local user may create `/tmp/oryx`
//! first. Whoever owns a folder on the way to an install, or may write one that is not
//! sticky, can put a folder holding the sentinel there, or rename a real install away and
//! put their own in its place: every build that then runs the SDK runs their code. So the
//! root, each folder above it, and the platform and version folders below it must be owned
//! by the effective user or by root, and none may be writable by group or others; a sticky
//! folder (`/tmp`, root's 1777) is accepted above the root only: there only an entry's owner
//! may rename or remove it, and the one entry ocisdk goes through must be its user's or
//! root's. The root itself may not be sticky: others could create its platform folders
//! before ocisdk does.

use std::fs::Metadata;
use std::io::ErrorKind::NotFound;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::sdk::error::SdkError;

/// How many symlinks a path may go through, as the kernel's `ELOOP` limit.
const MAX_SYMLINKS: usize = 40;

/// Mode bits that let group or others create, remove or rename entries of a folder.
const SHARED_WRITE: u32 = 0o022;
/// The sticky bit: in such a folder only an entry's owner (and the folder's) may remove or
/// rename it.
const STICKY: u32 = 0o1000;

/// What a folder is to the install, which decides whether sticky is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A folder above the root: sticky is enough.
    Above,
    /// The root, a platform folder or a version folder: no one else may write it at all.
    Inside,
}

/// Checks the folders from `/` to `path`: each existing one as [`Place::Above`] but `path`
/// itself, checked as `last`. Symlinks on the way are followed, and each must be owned by
/// the effective user or root, like the folders. Returns the resolved path, or `None` when
/// some part of it does not exist (what exists is checked).
///
/// `root` is the install root, which the error names.
pub(crate) fn check_path(
    root: &Path,
    path: &Path,
    last: Place,
) -> Result<Option<PathBuf>, SdkError> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| SdkError::io("finding the current folder for", path, e))?
            .join(path)
    };
    let slash = PathBuf::from("/");
    if let Some(meta) = metadata(&slash)? {
        check_folder(root, &slash, &meta, Place::Above)?;
    }
    walk(root, slash, &absolute, Place::Above, last, &mut 0)
}

/// Checks the folders of `rest` (platform, version) below `from`, the resolved install root
/// that [`check_path`] returned, each as [`Place::Inside`]. Returns the resolved path, or
/// `None` when some part of it does not exist.
pub(crate) fn check_below(
    root: &Path,
    from: &Path,
    rest: &Path,
) -> Result<Option<PathBuf>, SdkError> {
    walk(
        root,
        from.to_path_buf(),
        rest,
        Place::Inside,
        Place::Inside,
        &mut 0,
    )
}

/// Checks `rest` below `from`, a resolved folder already checked: its last component as
/// `last`, the others as `mid`.
fn walk(
    root: &Path,
    from: PathBuf,
    rest: &Path,
    mid: Place,
    last: Place,
    links: &mut usize,
) -> Result<Option<PathBuf>, SdkError> {
    let components: Vec<Component> = rest
        .components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect();
    let mut at = from;
    for (i, component) in components.iter().enumerate() {
        let place = if i + 1 == components.len() { last } else { mid };
        let Component::Normal(name) = component else {
            // `at` is resolved, so its parent is where `..` leads.
            at.pop();
            continue;
        };
        let next = at.join(name);
        let Some(meta) = metadata(&next)? else {
            return Ok(None);
        };
        if !meta.file_type().is_symlink() {
            check_folder(root, &next, &meta, place)?;
            at = next;
            continue;
        }
        // The link's folder is checked: only the link's owner (or root) can change it now.
        check_owner(root, &next, &meta)?;
        *links += 1;
        if *links > MAX_SYMLINKS {
            let loops = std::io::Error::other("too many levels of symbolic links");
            return Err(SdkError::io("resolving", &next, loops));
        }
        let target = std::fs::read_link(&next).map_err(|e| SdkError::io("reading", &next, e))?;
        let base = if target.is_absolute() {
            PathBuf::from("/")
        } else {
            at.clone()
        };
        // Where the link leads is checked like the path above the root, ending as `place`.
        match walk(root, base, &target, Place::Above, place, links)? {
            Some(resolved) => at = resolved,
            None => return Ok(None),
        }
    }
    Ok(Some(at))
}

/// The `lstat` of `path`, `None` when it does not exist.
fn metadata(path: &Path) -> Result<Option<Metadata>, SdkError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == NotFound => Ok(None),
        Err(e) => Err(SdkError::io("checking", path, e)),
    }
}

fn check_folder(root: &Path, path: &Path, meta: &Metadata, place: Place) -> Result<(), SdkError> {
    check_owner(root, path, meta)?;
    let mode = meta.mode();
    let sticky_enough = place == Place::Above && mode & STICKY != 0;
    if mode & SHARED_WRITE != 0 && !sticky_enough {
        return Err(untrusted(root, path, meta));
    }
    Ok(())
}

fn check_owner(root: &Path, path: &Path, meta: &Metadata) -> Result<(), SdkError> {
    if meta.uid() == effective_uid() || meta.uid() == 0 {
        Ok(())
    } else {
        Err(untrusted(root, path, meta))
    }
}

fn untrusted(root: &Path, path: &Path, meta: &Metadata) -> SdkError {
    SdkError::UntrustedRoot {
        root: root.to_path_buf(),
        path: path.to_path_buf(),
        owner: meta.uid(),
        mode: meta.mode() & 0o7777,
        user: effective_uid(),
    }
}

/// The user whose files ocisdk trusts besides root's.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `path` if it is missing, with its missing parents, none writable by group or
/// others whatever the umask, so that the folders ocisdk makes pass [`check_path`].
pub(crate) fn create_folders(path: &Path) -> Result<(), SdkError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| SdkError::io("creating", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn refused(result: Result<Option<PathBuf>, SdkError>) -> PathBuf {
        match result {
            Err(SdkError::UntrustedRoot { path, .. }) => path,
            other => panic!("expected UntrustedRoot, got {other:?}"),
        }
    }

    /// Sticky is enough above the root, never for the root itself; group or other write
    /// without it is refused anywhere, also behind a symlink.
    #[test]
    fn shared_folders_are_refused_and_sticky_only_above_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        let root = shared.join("root");
        create_folders(&root).unwrap();
        let resolved = check_path(&root, &root, Place::Inside).unwrap();
        assert_eq!(resolved, Some(std::fs::canonicalize(&root).unwrap()));

        set_mode(&shared, 0o1777);
        check_path(&root, &root, Place::Inside).unwrap();
        set_mode(&shared, 0o777);
        assert_eq!(refused(check_path(&root, &root, Place::Inside)), shared);
        set_mode(&shared, 0o755);

        set_mode(&root, 0o1777);
        assert_eq!(refused(check_path(&root, &root, Place::Inside)), root);
        set_mode(&root, 0o775);
        assert_eq!(refused(check_path(&root, &root, Place::Inside)), root);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        assert_eq!(refused(check_path(&link, &link, Place::Inside)), root);
        set_mode(&root, 0o755);
        check_path(&link, &link, Place::Inside).unwrap();

        // What does not exist yet is not refused: ocisdk will make it.
        let missing = root.join("python/3.11.0");
        assert_eq!(check_path(&root, &missing, Place::Inside).unwrap(), None);
    }
}
